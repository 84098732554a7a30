"""Crash safety is an *ordering*: data, flush, status digest, flush, commit record, flush. A spy on h5py records
every dataset write, every write of the ``status_digest`` and ``status`` attributes and every file flush of a
streamed run, and a checker asserts the order; the negative controls skip one flush inside the writer and the
checker must report it.

Trajectory files (``st.simulate(..., out=, flush_interval=0)``): frames ``/particles/all/position/{value,step,time}``
and the checkpoint ``/parameters/sde_toolkit/checkpoint/state`` must be flushed before the status digest (the
``status_digest`` attribute) that covers the new record, the digest must be flushed before the commit record
``/parameters/sde_toolkit/commit`` (or the ``status`` attribute) that it covers, and the record itself must be
flushed before anything else is written. Chains files (``st.mcmc.langevin(..., out=)``): ``/particles/chains/*``
(and ``/mcmc/accepted``), flush, ``/mcmc@status_digest``, flush, ``/mcmc/n_committed``, flush.
"""

from __future__ import annotations

import threading

import h5py
import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.io.chains import ChainsWriter
from sde_toolkit.io.h5md import H5MDWriter

H5MD_DATA = ("/particles/all/position/value", "/particles/all/position/step", "/particles/all/position/time",
             "/parameters/sde_toolkit/checkpoint/state")
H5MD_COMMIT = "/parameters/sde_toolkit/commit"
CHAINS_COMMIT = "/mcmc/n_committed"
SEAL_ATTR, STATUS_ATTR = "status_digest", "status"


def _h5md_kind(name):
    if name == H5MD_COMMIT or name == f"/parameters/sde_toolkit@{STATUS_ATTR}":
        return "commit"
    if name == f"/parameters/sde_toolkit@{SEAL_ATTR}":
        return "seal"
    return "data" if name in H5MD_DATA else None


def _chains_kind(name):
    if name == CHAINS_COMMIT or name == f"/mcmc@{STATUS_ATTR}":
        return "commit"
    if name == f"/mcmc@{SEAL_ATTR}":
        return "seal"
    return "data" if name.startswith("/particles/chains/") or name in (
        "/mcmc/accepted", "/mcmc/final_position", "/mcmc/final_momentum") else None


class H5Spy:
    """Records ``("write", dataset name)`` and ``("flush", None)`` for files under ``folder``, in call order.

    ``skip_flush(cls, method, which)`` makes the ``which``-th (1-based) flush issued during each call of
    ``cls.method`` a no-op that is not recorded: a writer that forgot that flush.
    """

    def __init__(self, monkeypatch, folder):
        self.events: list[tuple[str, str | None]] = []
        self.folder = str(folder)
        self._lock = threading.Lock()
        self._skip: dict | None = None
        set_orig, flush_orig = h5py.Dataset.__setitem__, h5py.File.flush
        attr_orig = h5py.AttributeManager.__setitem__
        spy = self

        def setitem(ds, key, value):
            if ds.file.filename.startswith(spy.folder):
                with spy._lock:
                    spy.events.append(("write", ds.name))
            return set_orig(ds, key, value)

        def setattr_(attrs, name, value):
            if name in (SEAL_ATTR, STATUS_ATTR) and h5py.h5f.get_name(attrs._id).decode().startswith(spy.folder):
                with spy._lock:
                    spy.events.append(("write", f"{h5py.h5i.get_name(attrs._id).decode()}@{name}"))
            return attr_orig(attrs, name, value)

        def flush(f):
            if f.filename.startswith(spy.folder):
                with spy._lock:
                    s = spy._skip
                    if s is not None:
                        s["count"] += 1
                        if s["count"] == s["which"]:
                            return None
                    spy.events.append(("flush", None))
            return flush_orig(f)

        monkeypatch.setattr(h5py.Dataset, "__setitem__", setitem)
        monkeypatch.setattr(h5py.AttributeManager, "__setitem__", setattr_)
        monkeypatch.setattr(h5py.File, "flush", flush)
        self._mp = monkeypatch

    def skip_flush(self, cls, method, which):
        orig = getattr(cls, method)
        spy = self

        def wrapped(*a, **k):
            spy._skip = {"count": 0, "which": which}
            try:
                return orig(*a, **k)
            finally:
                spy._skip = None

        self._mp.setattr(cls, method, wrapped)


def ordering_violations(events, kind, sealed: bool = False, creation: bool = False) -> list[str]:
    """Check the commit order on a recorded event list; returns the violations (empty: all hold).

    1. every commit-record write is immediately preceded by a flush;
    2. every data write since the previous commit happened before that flush;
    3. every commit-record write is flushed before the next write of any kind (and before the end);
    4. every data write is covered by a later commit record.
    With ``sealed`` (files with a status digest):
    5. every status-digest write is immediately preceded by a flush, and every data write before it was flushed;
    6. every commit-record write has a status-digest write since the previous commit (flushed by rule 1).
    ``creation``: the events up to the first flush build the file under its private name (not checked here).
    """
    if creation:
        first = next((i for i, (ev, _) in enumerate(events) if ev == "flush"), len(events))
        events = events[first:]
    bad = []
    last_flush = last_data = last_commit = last_seal = -1
    unflushed_commit = None
    for i, (ev, name) in enumerate(events):
        if ev == "flush":
            last_flush = i
            unflushed_commit = None
            continue
        k = kind(name)
        if k is None:
            continue
        if unflushed_commit is not None:
            bad.append(f"event {i}: {name} written before the commit record of event {unflushed_commit} was flushed")
            unflushed_commit = None
        if k == "data":
            last_data = i
        elif k == "seal":
            if sealed:
                if last_flush != i - 1:
                    bad.append(f"event {i}: status digest not immediately preceded by a flush")
                if last_data > last_flush:
                    bad.append(f"event {i}: data written at event {last_data} after the last flush before the "
                               "status digest")
            last_seal = i
        else:
            if last_flush != i - 1:
                bad.append(f"event {i}: commit record not immediately preceded by a flush")
            if last_data > last_flush:
                bad.append(f"event {i}: data written at event {last_data} after the last flush ({last_flush})")
            if sealed and last_seal <= last_commit:
                bad.append(f"event {i}: commit record without a status digest since the previous commit")
            last_commit = i
            unflushed_commit = i
    if unflushed_commit is not None:
        bad.append(f"event {unflushed_commit}: last commit record never flushed")
    if last_data > last_commit:
        bad.append(f"event {last_data}: data written after the last commit record")
    return bad


def _simulate(tmp_path, name):
    """OU, 64 paths x 2 dims, 4096 steps, every 4th saved: several segments, each ending in a durable commit."""
    sde = st.OrnsteinUhlenbeck(1.0, 0.5, mu=0.3, dim=2)
    x0 = np.random.default_rng(0).normal(size=(64, 2))
    st.simulate(sde, x0, t1=4.096, dt=0.001, save_every=4, seed=11, out=tmp_path / name, flush_interval=0,
                progress=False)


def _n_commits(events, kind):
    return sum(1 for ev, name in events if ev == "write" and kind(name) == "commit")


def test_checker_on_hand_written_sequences():
    d, c, f = ("write", H5MD_DATA[0]), ("write", H5MD_COMMIT), ("flush", None)
    assert ordering_violations([d, d, f, c, f, d, f, c, f], _h5md_kind) == []
    assert ordering_violations([d, c, f], _h5md_kind)            # no flush before the record
    assert ordering_violations([d, f, d, c, f], _h5md_kind)      # data after the flush
    assert ordering_violations([d, f, c, d, f, c, f], _h5md_kind)  # record not flushed before the next data
    assert ordering_violations([d, f, c], _h5md_kind)            # record never flushed
    assert ordering_violations([d, f, c, f, d, f], _h5md_kind)   # data never committed
    s = ("write", "/parameters/sde_toolkit@status_digest")
    ok = [d, f, s, f, c, f]
    assert ordering_violations(ok, _h5md_kind, sealed=True) == []
    assert ordering_violations([d, s, f, c, f], _h5md_kind, sealed=True)  # data not flushed before the digest
    assert ordering_violations([d, f, s, c, f], _h5md_kind, sealed=True)  # digest not flushed before the record
    assert ordering_violations([d, f, c, f], _h5md_kind, sealed=True)     # a record without its digest
    assert ordering_violations([d, s, f, *ok], _h5md_kind, sealed=True, creation=True) == []  # creation skipped


def test_h5md_writer_flushes_data_before_each_commit_record(tmp_path, monkeypatch):
    spy = H5Spy(monkeypatch, tmp_path)
    _simulate(tmp_path, "run.h5")
    n = _n_commits(spy.events, _h5md_kind)
    assert n >= 4, f"only {n} commit records: the run no longer spans several segments, lengthen it"
    kinds = {name for ev, name in spy.events if ev == "write"}
    assert set(H5MD_DATA) <= kinds
    assert "/parameters/sde_toolkit@status_digest" in kinds and "/parameters/sde_toolkit@status" in kinds
    assert ordering_violations(spy.events, _h5md_kind, sealed=True, creation=True) == []
    assert st.io.open(tmp_path / "run.h5").status == "complete"


@pytest.mark.parametrize("which,expect", [(1, "status digest not immediately preceded by a flush"),
                                          (2, "commit record not immediately preceded by a flush"),
                                          (3, "was flushed")])
def test_negative_control_h5md_writer_skipping_a_commit_flush_is_caught(tmp_path, monkeypatch, which, expect):
    """``which = 1``: the phase-1 flush (data before the digest) is skipped; ``2``: the flush of the status
    digest (digest before the record); ``3``: the phase-2 flush (the record before anything else)."""
    spy = H5Spy(monkeypatch, tmp_path)
    spy.skip_flush(H5MDWriter, "_durable_commit", which)
    _simulate(tmp_path, "run.h5")
    bad = ordering_violations(spy.events, _h5md_kind, sealed=True, creation=True)
    assert bad and any(expect in b for b in bad), bad


def _langevin(tmp_path, name):
    """ULA on a harmonic well, 8192 chains x 1 dim, 400 kept samples: several ~8 MiB blocks, one commit each."""
    x0 = np.zeros((8192, 1))
    st.mcmc.langevin(st.potentials.Harmonic(), x0, step=0.1, n_steps=400, method="ula", seed=1,
                     out=tmp_path / name)


def test_chains_writer_flushes_data_before_each_counter(tmp_path, monkeypatch):
    spy = H5Spy(monkeypatch, tmp_path)
    _langevin(tmp_path, "chains.h5")
    n = _n_commits(spy.events, _chains_kind)
    assert n >= 3, f"only {n} counter writes: the run no longer spans several blocks, lengthen it"
    assert "/mcmc@status_digest" in {name for ev, name in spy.events if ev == "write"}
    assert ordering_violations(spy.events, _chains_kind, sealed=True, creation=True) == []


@pytest.mark.parametrize("which,expect", [(1, "status digest not immediately preceded by a flush"),
                                          (2, "commit record not immediately preceded by a flush"),
                                          (3, "was flushed")])
def test_negative_control_chains_writer_skipping_a_flush_is_caught(tmp_path, monkeypatch, which, expect):
    spy = H5Spy(monkeypatch, tmp_path)
    spy.skip_flush(ChainsWriter, "write", which)
    _langevin(tmp_path, "chains.h5")
    bad = ordering_violations(spy.events, _chains_kind, sealed=True, creation=True)
    assert bad and any(expect in b for b in bad), bad
