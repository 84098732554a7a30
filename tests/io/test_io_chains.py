"""MCMC chains in the HDF5 file family: exact round trip, layout with plain h5py, errors, streaming ``out=``.

The format (``sde_toolkit.io.chains``) reads and writes :class:`ChainsRecord`; ``Chains.to_file`` /
``Chains.from_file`` / ``Chains.from_record`` are the mcmc side.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

import sde_toolkit as st
import sde_toolkit.io.chains as chains_io
from sde_toolkit._random import Seed
from sde_toolkit.io import ChainsFile, ChainsRecord, open_chains, read_chains, write_chains
from sde_toolkit.mcmc import Chains

V2 = st.potentials.GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.0, 0.5]],
                                   [[[0.5, 0.1], [0.1, 0.4]], [[0.6, -0.1], [-0.1, 0.3]]])
RUN = dict(step=0.1, n_steps=126, burn_in=11, thin=4)  # 3 trailing steps keep no sample


def _x0(n=70, dim=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim))


def _assert_same(a, b):
    np.testing.assert_array_equal(a.samples, b.samples)
    np.testing.assert_array_equal(a.final_position, b.final_position)
    for name in ("energies", "accepted", "final_momentum"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y)
    for name in ("method", "step", "kT", "gamma", "n_steps", "burn_in", "thin", "seed", "backend"):
        assert getattr(a, name) == getattr(b, name), name
    assert a.acceptance_rate == b.acceptance_rate


@pytest.fixture
def small_blocks(monkeypatch):
    """Stream in blocks of 5 kept samples, so every streamed run spans several durable commits."""
    monkeypatch.setattr(chains_io, "STREAM_BLOCK_BYTES", 8 * 70 * 2 * 5)
    assert chains_io.stream_block(70, 2) == 5


@pytest.mark.parametrize("method", ["ula", "mala", "baoab"])
def test_round_trip_is_exact(tmp_path, method):
    c = st.mcmc.langevin(V2, _x0(), method=method, seed=None, kT=0.8, gamma=1.3, **RUN)  # 128-bit entropy
    assert c.seed.entropy >= 2**64  # stored as decimal text (fails with probability 2^-64)
    path = c.to_file(tmp_path / "c.h5")
    assert path == tmp_path / "c.h5" and path.exists()
    assert not (tmp_path / "c.h5.partial").exists()
    back = Chains.from_file(path)
    _assert_same(c, back)
    assert back.wall_time == c.wall_time
    np.testing.assert_array_equal(back.ess(), c.ess())
    # the format's own reader: a record of arrays and attributes, no Chains
    rec = read_chains(path)
    assert isinstance(rec, ChainsRecord) and not isinstance(rec, Chains) and rec.complete
    np.testing.assert_array_equal(rec.samples, c.samples)
    assert rec.config["method"] == method and rec.attrs["status"] == "complete"
    if method == "mala":
        assert rec.attrs["acceptance_rate"] == c.acceptance_rate
    _assert_same(c, Chains.from_record(rec))


def test_record_round_trip_through_the_format_alone(tmp_path):
    """``write_chains(record)`` stores a record's arrays and extra attributes; reading it back is exact, and a
    read record written again carries the same extras (the layout's own attributes are the writer's)."""
    rec = ChainsRecord(samples=np.arange(24.0).reshape(4, 3, 2), method="ula", step=0.5, kT=1.0, gamma=1.0,
                       n_steps=9, burn_in=1, thin=2, seed=Seed(2**70 + 3, (4,)), final_position=np.ones((3, 2)),
                       backend="numpy", attrs={"note_value": 1.5, "per_coord": [0.1, 0.2]})
    write_chains(rec, tmp_path / "r.h5")
    back = read_chains(tmp_path / "r.h5")
    np.testing.assert_array_equal(back.samples, rec.samples)
    np.testing.assert_array_equal(back.final_position, rec.final_position)
    assert (back.seed, back.n_steps, back.energies, back.accepted) == (rec.seed, 9, None, None)
    assert back.attrs["note_value"] == 1.5
    np.testing.assert_array_equal(back.attrs["per_coord"], [0.1, 0.2])
    write_chains(back, tmp_path / "r2.h5")
    again = read_chains(tmp_path / "r2.h5")
    np.testing.assert_array_equal(again.samples, rec.samples)
    assert again.attrs["note_value"] == 1.5 and again.status == "complete"


def test_layout_with_plain_h5py(tmp_path):
    c = st.mcmc.langevin(V2, _x0(), method="mala", seed=3, **RUN)
    c.to_file(tmp_path / "c.h5", config={"note": "layout"})
    n_kept = (RUN["n_steps"] - RUN["burn_in"]) // RUN["thin"]
    with h5py.File(tmp_path / "c.h5", "r") as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["h5md/creator"].attrs["name"] == b"sde_toolkit"  # fixed-length ASCII (H5MD)
        assert f["h5md/creator"].attrs["version"] == st.__version__.encode()
        assert f["particles/chains/box"].attrs["dimension"] == 2
        pos = f["particles/chains/position"]
        assert pos["value"].shape == (n_kept, 70, 2) and pos["value"].dtype == np.float64
        assert pos["value"].chunks is not None and pos["value"].maxshape == (None, 70, 2)
        np.testing.assert_array_equal(pos["value"][...], c.samples)
        steps = RUN["burn_in"] + RUN["thin"] * np.arange(1, n_kept + 1)
        np.testing.assert_array_equal(pos["step"][...], steps)
        np.testing.assert_array_equal(pos["time"][...], steps * RUN["step"])
        en = f["particles/chains/potential_energy"]
        np.testing.assert_array_equal(en["value"][...], c.energies)
        np.testing.assert_array_equal(en["step"][...], steps)
        g = f["mcmc"]
        assert g["n_committed"][()] == n_kept
        np.testing.assert_array_equal(g["accepted"][...], c.accepted)
        np.testing.assert_array_equal(g["final_position"][...], c.final_position)
        assert "final_momentum" not in g
        a = g.attrs
        assert a["status"] == "complete" and a["method"] == "mala"
        assert (a["step"], a["kT"], a["gamma"]) == (RUN["step"], 1.0, 1.0)
        assert (a["seed"], a["burn_in"], a["thin"], a["n_steps"]) == ("3", RUN["burn_in"], RUN["thin"], RUN["n_steps"])
        assert a["package_version"] == st.__version__
        assert a["acceptance_rate"] == pytest.approx(c.acceptance_rate, rel=1e-15)
        np.testing.assert_allclose(a["tau"], c.tau(), rtol=1e-14)
        np.testing.assert_allclose(a["ess"], c.ess(), rtol=1e-14)  # multi-chain bulk ESS
        np.testing.assert_allclose(a["ess_tail"], c.tail_ess(), rtol=1e-14)
        np.testing.assert_allclose(a["rhat"], c.rhat(), rtol=1e-14)  # rank-normalized split R-hat
        cfg = json.loads(a["config"])
        assert cfg["method"] == "mala" and cfg["seed"] == {"entropy": "3", "spawn_key": []} and cfg["note"] == "layout"


def test_bad_paths_and_existing_files(tmp_path):
    c = st.mcmc.langevin(V2, _x0(8), method="ula", seed=1, **RUN)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        c.to_file(tmp_path / "missing" / "c.h5")
    with pytest.raises(IsADirectoryError):
        c.to_file(tmp_path)
    path = tmp_path / "c.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        c.to_file(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        st.mcmc.langevin(V2, _x0(8), method="ula", seed=1, out=path, **RUN)
    assert path.read_bytes() == b"not hdf5"  # untouched
    assert not (tmp_path / "c.h5.partial").exists()
    c.to_file(path, overwrite=True)
    _assert_same(c, Chains.from_file(path))
    # a leftover .partial (another writer or a failed run) blocks a new run unless overwrite=True
    part = tmp_path / "d.h5.partial"
    part.write_bytes(b"")
    with pytest.raises(FileExistsError, match="partial"):
        c.to_file(tmp_path / "d.h5")
    c.to_file(tmp_path / "d.h5", overwrite=True)
    assert not part.exists()
    with pytest.raises(FileNotFoundError):
        Chains.from_file(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.create_group("particles/all")
    with pytest.raises(ValueError, match="not an sde_toolkit chains file"):
        Chains.from_file(tmp_path / "other.h5")


@pytest.mark.parametrize("method", ["ula", "mala", "baoab"])
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_langevin_out_equals_in_memory(tmp_path, small_blocks, method, backend):
    kw = dict(method=method, seed=7, backend=backend, **RUN)
    mem = st.mcmc.langevin(V2, _x0(), **kw)
    path = tmp_path / f"{method}.h5"
    streamed = st.mcmc.langevin(V2, _x0(), out=path, **kw)
    assert isinstance(streamed, Chains)
    _assert_same(mem, streamed)
    _assert_same(mem, Chains.from_file(path))
    assert mem.samples.shape[0] == 28  # 6 blocks of 5 kept samples (the last one partial)
    assert not (tmp_path / f"{method}.h5.partial").exists()


def test_langevin_out_with_a_score_and_store_energy_off(tmp_path, small_blocks):
    def score(x):
        return -x / 0.7

    kw = dict(method="ula", seed=2, **RUN)
    mem = st.mcmc.langevin(score, _x0(), **kw)
    streamed = st.mcmc.langevin(score, _x0(), out=tmp_path / "s.h5", **kw)
    _assert_same(mem, streamed)
    assert streamed.energies is None
    kw = dict(method="baoab", seed=2, store_energy=False, **RUN)
    mem = st.mcmc.langevin(V2, _x0(), **kw)
    streamed = st.mcmc.langevin(V2, _x0(), out=tmp_path / "b.h5", **kw)
    _assert_same(mem, streamed)
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert "potential_energy" not in f["particles/chains"]


def test_lazy_view(tmp_path):
    c = st.mcmc.langevin(V2, _x0(), method="mala", seed=5, **RUN)
    c.to_file(tmp_path / "c.h5")
    view = open_chains(tmp_path / "c.h5")
    assert isinstance(view, ChainsFile) and view.complete and view.method == "mala"
    assert view.samples.shape == c.samples.shape and view.energies.shape == c.energies.shape
    np.testing.assert_array_equal(view.samples[3], c.samples[3])
    np.testing.assert_array_equal(view.samples[::5, 10:20], c.samples[::5, 10:20])
    np.testing.assert_array_equal(view.samples[-1], c.samples[-1])
    np.testing.assert_array_equal(view.energies[2:4], c.energies[2:4])
    np.testing.assert_array_equal(view.steps, c.burn_in + c.thin * np.arange(1, c.samples.shape[0] + 1))
    assert view.acceptance_rate == pytest.approx(c.acceptance_rate, rel=1e-15)
    with view:
        np.testing.assert_array_equal(np.asarray(view.samples), c.samples)
    _assert_same(c, Chains.from_record(view.load()))


def test_interrupt_publishes_the_committed_blocks(tmp_path, small_blocks):
    calls = {"n": 0}

    def score(x):
        calls["n"] += 1
        if calls["n"] > 60:  # one initial gradient, then one per step: stop at step 60
            raise KeyboardInterrupt
        return -x

    kw = dict(method="ula", seed=9, **RUN)
    path = tmp_path / "i.h5"
    with pytest.raises(KeyboardInterrupt):
        st.mcmc.langevin(score, _x0(), out=path, **kw)
    assert path.exists() and not (tmp_path / "i.h5.partial").exists()
    with pytest.raises(ValueError, match="interrupted"):
        Chains.from_file(path)
    with pytest.warns(st.io.IncompleteRunWarning):
        part = Chains.from_file(path, allow_partial=True)
    # steps 1..59 completed: kept samples at steps 15, 19, ..., 59 -> 12, of which 10 in two committed blocks
    assert part.samples.shape == (10, 70, 2)
    assert part.n_steps == RUN["burn_in"] + RUN["thin"] * 10
    full = st.mcmc.langevin(lambda x: -x, _x0(), **kw)
    np.testing.assert_array_equal(part.samples, full.samples[:10])
    np.testing.assert_array_equal(part.final_position, full.samples[9])
    with h5py.File(path, "r") as f:
        assert f["particles/chains/position/value"].shape[0] == 10
        assert f["mcmc"].attrs["status"] == "interrupted"


def test_a_failing_run_keeps_only_committed_work(tmp_path, small_blocks):
    def bad_shape(x):
        return np.zeros((1, 2))

    with pytest.raises(ValueError, match="shape"):
        st.mcmc.langevin(bad_shape, _x0(), out=tmp_path / "e.h5", method="ula", seed=0, **RUN)
    assert not (tmp_path / "e.h5").exists() and not (tmp_path / "e.h5.partial").exists()

    calls = {"n": 0}

    def late_failure(x):
        calls["n"] += 1
        if calls["n"] > 60:
            raise RuntimeError("boom")
        return -x

    with pytest.raises(RuntimeError, match="boom"):
        st.mcmc.langevin(late_failure, _x0(), out=tmp_path / "f.h5", method="ula", seed=0, **RUN)
    assert not (tmp_path / "f.h5").exists()
    with pytest.warns(st.io.IncompleteRunWarning):
        view = open_chains(tmp_path / "f.h5", allow_partial=True)  # finds f.h5.partial
    assert view.status == "running" and view.n_committed == 10 and view.path.name == "f.h5.partial"
    with pytest.raises(FileExistsError, match="partial"):
        st.mcmc.langevin(lambda x: -x, _x0(), out=tmp_path / "f.h5", method="ula", seed=0, **RUN)
