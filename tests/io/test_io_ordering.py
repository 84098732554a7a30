"""Crash safety is an *ordering*: data, flush, commit record, flush. A spy on h5py records every dataset write and
every file flush of a streamed run, and a checker asserts the order; the negative controls skip one flush inside
the writer and the checker must report it.

Trajectory files (``st.simulate(..., out=, flush_interval=0)``): frames ``/particles/all/position/{value,step,time}``
and the checkpoint ``/parameters/sde_toolkit/checkpoint/state`` must be flushed before the commit record
``/parameters/sde_toolkit/commit`` that points to them, and the record itself must be flushed before anything else
is written. Chains files (``st.mcmc.langevin(..., out=)``): ``/particles/chains/*`` (and ``/mcmc/accepted``), flush,
``/mcmc/n_committed``, flush.
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


def _h5md_kind(name):
    return "commit" if name == H5MD_COMMIT else "data" if name in H5MD_DATA else None


def _chains_kind(name):
    if name == CHAINS_COMMIT:
        return "commit"
    return "data" if name.startswith("/particles/chains/") or name == "/mcmc/accepted" else None


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
        spy = self

        def setitem(ds, key, value):
            if ds.file.filename.startswith(spy.folder):
                with spy._lock:
                    spy.events.append(("write", ds.name))
            return set_orig(ds, key, value)

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


def ordering_violations(events, kind) -> list[str]:
    """Check the two-phase commit order on a recorded event list; returns the violations (empty: all hold).

    1. every commit-record write is immediately preceded by a flush;
    2. every data write since the previous commit happened before that flush;
    3. every commit-record write is flushed before the next write of any kind (and before the end);
    4. every data write is covered by a later commit record.
    """
    bad = []
    last_flush = last_data = last_commit = -1
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
        else:
            if last_flush != i - 1:
                bad.append(f"event {i}: commit record not immediately preceded by a flush")
            if last_data > last_flush:
                bad.append(f"event {i}: data written at event {last_data} after the last flush ({last_flush})")
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


def test_h5md_writer_flushes_data_before_each_commit_record(tmp_path, monkeypatch):
    spy = H5Spy(monkeypatch, tmp_path)
    _simulate(tmp_path, "run.h5")
    n = _n_commits(spy.events, _h5md_kind)
    assert n >= 4, f"only {n} commit records: the run no longer spans several segments, lengthen it"
    kinds = {name for ev, name in spy.events if ev == "write"}
    assert set(H5MD_DATA) <= kinds
    assert ordering_violations(spy.events, _h5md_kind) == []
    assert st.io.open(tmp_path / "run.h5").status == "complete"


@pytest.mark.parametrize("which,expect", [(1, "not immediately preceded by a flush"), (2, "was flushed")])
def test_negative_control_h5md_writer_skipping_a_commit_flush_is_caught(tmp_path, monkeypatch, which, expect):
    """``which = 1``: the phase-1 flush (data before the record) is skipped; ``2``: the phase-2 flush."""
    spy = H5Spy(monkeypatch, tmp_path)
    spy.skip_flush(H5MDWriter, "_durable_commit", which)
    _simulate(tmp_path, "run.h5")
    bad = ordering_violations(spy.events, _h5md_kind)
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
    assert ordering_violations(spy.events, _chains_kind) == []


@pytest.mark.parametrize("which,expect", [(1, "not immediately preceded by a flush"), (2, "was flushed")])
def test_negative_control_chains_writer_skipping_a_flush_is_caught(tmp_path, monkeypatch, which, expect):
    spy = H5Spy(monkeypatch, tmp_path)
    spy.skip_flush(ChainsWriter, "write", which)
    _langevin(tmp_path, "chains.h5")
    bad = ordering_violations(spy.events, _chains_kind)
    assert bad and any(expect in b for b in bad), bad
