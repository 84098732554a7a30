"""H5MD writer/reader: round trip, layout, reader semantics, resume, divergence, observables, export."""

from __future__ import annotations

import json
import sys
import warnings

import h5py
import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.integrate import DivergenceError
from sde_toolkit.io import IncompleteRunError, IncompleteRunWarning, ResumeError, partial_path
from sde_toolkit.io.observables import histogram_counts

OU = dict(t1=1.0, dt=0.01, save_every=3, seed=5)


@pytest.fixture(scope="module")
def ou():
    sde = st.OrnsteinUhlenbeck(1.0, 0.5, mu=0.2, dim=2)
    x0 = np.random.default_rng(0).normal(size=(50, 2))
    return sde, x0, st.simulate(sde, x0, progress=False, **OU)


def test_round_trip_and_h5md_layout(tmp_path, ou):
    sde, x0, ref = ou
    out = tmp_path / "a.h5"
    traj = st.simulate(sde, x0, out=out, progress=False, **OU)
    np.testing.assert_array_equal(np.asarray(traj.x), ref.x)
    np.testing.assert_array_equal(traj.t, ref.t)
    np.testing.assert_array_equal(traj.steps, ref.steps)
    loaded = st.Trajectory.from_file(out)
    np.testing.assert_array_equal(loaded.x, ref.x)
    assert not partial_path(out).exists()
    with h5py.File(out, "r") as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["h5md/creator"].attrs["name"] == b"sde_toolkit"  # fixed-length ASCII (H5MD)
        assert f["h5md/creator"].attrs["version"] == st.__version__.encode()
        assert "name" in f["h5md/author"].attrs
        box = f["particles/all/box"]
        assert box.attrs["dimension"] == 2 and [b.decode() if isinstance(b, bytes) else b
                                                for b in box.attrs["boundary"]] == ["none", "none"]
        v = f["particles/all/position/value"]
        assert v.shape == ref.x.shape and v.dtype == np.float64 and v.chunks is not None
        assert v.maxshape[0] is None
        np.testing.assert_array_equal(v[...], ref.x)
        np.testing.assert_array_equal(f["particles/all/position/step"][...], ref.steps)
        np.testing.assert_array_equal(f["particles/all/position/time"][...], ref.t)
        g = f["parameters/sde_toolkit"]
        assert g.attrs["status"] == "complete"
        assert g.attrs["seed"] == "5" and g.attrs["dt"] == 0.01 and g.attrs["method"] == "euler_maruyama"
        assert g.attrs["package_version"] == st.__version__
        plan = json.loads(g.attrs["plan"])
        assert plan["n_steps"] == 100 and plan["save_every"] == 3
        assert list(g["commit"][...][:2]) == [len(ref.t), 100]


def test_float32_and_compression(tmp_path, ou):
    sde, x0, ref = ou
    out = tmp_path / "b.h5"
    traj = st.simulate(sde, x0, out=out, progress=False, dtype="float32", compression="gzip", **OU)
    assert traj.x.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(traj.x), ref.x.astype(np.float32))
    with h5py.File(out, "r") as f:
        assert f["particles/all/position/value"].compression == "gzip"


def test_lazy_slicing_matches_numpy(tmp_path, ou):
    sde, x0, ref = ou
    out = tmp_path / "c.h5"
    st.simulate(sde, x0, out=out, progress=False, **OU)
    run = st.io.open(out)
    assert run.x.shape == ref.x.shape and len(run.x) == len(ref.t)
    for key in (0, -1, 5, slice(None), slice(2, 9, 3), slice(None, None, -4), (slice(1, 4), slice(0, 10)),
                (Ellipsis, 1), [0, 3, 1], (-2, 7)):
        np.testing.assert_array_equal(run.x[key], ref.x[key])
    with pytest.raises(IndexError):
        run.x[len(ref.t)]
    with run:
        np.testing.assert_array_equal(run.x[3, :5], ref.x[3, :5])


def _interrupting_sde(stop_at):
    def drift(x, t):
        if t >= stop_at:
            raise KeyboardInterrupt
        return -x

    def diffusion(x, t):
        return 0.3 * np.ones_like(x)

    return st.SDE.from_functions(drift, diffusion, dim=1)


def _plain_sde():
    return st.SDE.from_functions(lambda x, t: -x, lambda x, t: 0.3 * np.ones_like(x), dim=1)


def test_interrupted_reader_semantics_and_exact_resume(tmp_path):
    x0 = np.linspace(-1, 1, 20)[:, None]
    kw = dict(t1=6.0, dt=0.01, save_every=7, seed=3, driver="batched", progress=False)
    ref = st.simulate(_plain_sde(), x0, **kw)
    out = tmp_path / "i.h5"
    with pytest.raises(KeyboardInterrupt):
        st.simulate(_interrupting_sde(3.0), x0, out=out, flush_interval=0.0, **kw)
    assert out.exists() and not partial_path(out).exists()
    with pytest.raises(IncompleteRunError) as info:
        st.io.open(out)
    err = info.value
    assert err.status == "interrupted" and 0 < err.n_committed < len(ref.t)
    assert str(err.n_committed) in str(err) and "interrupted" in str(err)
    with pytest.warns(IncompleteRunWarning):
        run = st.io.open(out, allow_partial=True)
    np.testing.assert_array_equal(run.x[:], ref.x[: err.n_committed])
    assert run.x.shape[0] == err.n_committed
    with pytest.raises(ResumeError, match="sde="):
        st.resume(out)
    traj = st.resume(out, sde=_plain_sde(), progress=False)
    np.testing.assert_array_equal(np.asarray(traj.x), ref.x)
    assert st.io.open(out).status == "complete"
    with pytest.raises(ResumeError, match="complete"):
        st.resume(out, sde=_plain_sde())


def test_a_run_driven_by_increments_is_refused_by_resume(tmp_path):
    """The file holds no user-supplied increments, so "resuming" would continue with fresh noise: refused."""
    x0 = np.linspace(-1, 1, 20)[:, None]
    kw = dict(t1=6.0, dt=0.01, save_every=7, seed=3, driver="batched", progress=False)
    dw = np.random.default_rng(1).normal(scale=0.1, size=(600, 20, 1))
    out = tmp_path / "inc.h5"
    with pytest.raises(KeyboardInterrupt):
        st.simulate(_interrupting_sde(3.0), x0, out=out, flush_interval=0.0, increments=dw, **kw)
    with pytest.warns(IncompleteRunWarning):
        run = st.io.open(out, allow_partial=True)
    assert run.status == "interrupted" and run.meta["increments"] is True and 0 < run.n_committed
    before = out.read_bytes()
    with pytest.raises(ResumeError, match="increments"):
        st.resume(out, sde=_plain_sde(), progress=False)
    assert out.read_bytes() == before and not partial_path(out).exists()  # untouched
    # a killed one (still at .partial) is refused too, and a seeded run records increments = False
    part = partial_path(tmp_path / "inc2.h5")
    out.rename(part)
    with pytest.raises(ResumeError, match="increments"):
        st.resume(part, sde=_plain_sde(), progress=False)
    st.simulate(_plain_sde(), x0, out=tmp_path / "seeded.h5", **kw)
    assert st.io.open(tmp_path / "seeded.h5").meta["increments"] is False


def test_trajectory_from_run_and_from_file(tmp_path, ou):
    sde, x0, ref = ou
    out = tmp_path / "r.h5"
    traj = st.simulate(sde, x0, out=out, progress=False, **OU)
    assert isinstance(traj.x, st.io.LazyFrames)  # simulate(out=) reads back lazily, as before
    run = st.io.open(out)
    lazy = st.Trajectory.from_run(run)
    assert isinstance(lazy.x, st.io.LazyFrames) and lazy.x.shape == ref.x.shape
    np.testing.assert_array_equal(lazy.x[-1], ref.x[-1])
    assert lazy.meta["status"] == "complete" and lazy.meta["file"] == str(out)
    assert lazy.meta["seed"] == {"entropy": str(OU["seed"]), "spawn_key": []} and lazy.meta["n_committed"] == len(ref.t)
    eager = st.Trajectory.from_run(run, lazy=False)
    assert isinstance(eager.x, np.ndarray)
    np.testing.assert_array_equal(eager.x, ref.x)
    loaded = st.Trajectory.from_file(out)
    assert isinstance(loaded.x, np.ndarray) and loaded.meta == eager.meta
    np.testing.assert_array_equal(loaded.steps, ref.steps)


def test_divergence_keeps_frames_and_sets_status(tmp_path):
    sde = st.SDE.from_functions(lambda x, t: x * x, lambda x, t: np.zeros_like(x), dim=1)
    x0 = np.array([[1.0], [-1.0]])
    out = tmp_path / "d.h5"
    kw = dict(t1=2.0, dt=1e-3, save_every=50, seed=0, driver="batched", max_abs=1e6, progress=False)
    with pytest.raises(DivergenceError) as info:
        st.simulate(sde, x0, **kw)
    mem = info.value.trajectory
    with pytest.raises(DivergenceError):
        st.simulate(sde, x0, out=out, **kw)
    with pytest.raises(IncompleteRunError, match="diverged"):
        st.io.open(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteRunWarning)
        run = st.io.open(out, allow_partial=True)
    assert run.status == "diverged" and run.n_committed == len(mem.t) > 10
    np.testing.assert_array_equal(run.x[:], mem.x)
    with pytest.raises(ResumeError, match="diverged"):
        st.resume(out, sde=sde)


def test_no_clobber_and_overwrite_keeps_readers_data(tmp_path, ou):
    sde, x0, ref = ou
    out = tmp_path / "e.h5"
    st.simulate(sde, x0, out=out, progress=False, **OU)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        st.simulate(sde, x0, out=out, progress=False, **OU)
    assert out.read_bytes() == before
    with h5py.File(out, "r") as reader:
        st.simulate(sde, x0, out=out, progress=False, overwrite=True, **dict(OU, seed=6))
        np.testing.assert_array_equal(reader["particles/all/position/value"][...], ref.x)
    assert not np.array_equal(st.io.open(out).x[:], ref.x)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        st.simulate(sde, x0, out=tmp_path / "nope" / "f.h5", progress=False, **OU)


def test_stale_partial_needs_resume_or_overwrite(tmp_path, ou):
    sde, x0, _ = ou
    out = tmp_path / "g.h5"
    partial_path(out).write_bytes(b"")
    with pytest.raises(FileExistsError, match="resume"):
        st.simulate(sde, x0, out=out, progress=False, **OU)
    st.simulate(sde, x0, out=out, progress=False, overwrite=True, **OU)
    assert out.exists() and not partial_path(out).exists()


def test_observables_match_numpy_and_resume_exactly(tmp_path):
    x0 = np.linspace(-2, 2, 40)[:, None]
    kw = dict(t1=6.0, dt=0.01, save_every=7, seed=3, driver="batched", progress=False)
    opts = dict(observables=["mean", "variance", "running_mean", "running_variance", "histogram"],
                histogram_bins=8, histogram_range=[-1.5, 1.5])
    ref = st.simulate(_plain_sde(), x0, **kw)
    full = tmp_path / "o_full.h5"
    st.simulate(_plain_sde(), x0, out=full, **kw, **opts)
    run = st.io.open(full)
    np.testing.assert_allclose(run.observables["mean"][:], ref.x.mean(axis=1), rtol=0, atol=1e-15)
    np.testing.assert_allclose(run.observables["variance"][:], ref.x.var(axis=1), rtol=1e-12, atol=1e-15)
    cum = np.cumsum(ref.x.mean(axis=1), axis=0) / np.arange(1, len(ref.t) + 1)[:, None]
    np.testing.assert_allclose(run.observables["running_mean"][:], cum, rtol=1e-12, atol=1e-14)
    allx = np.array([ref.x[: j + 1].ravel().var() for j in range(len(ref.t))])
    np.testing.assert_allclose(run.observables["running_variance"][:, 0], allx, rtol=1e-9, atol=1e-12)
    edges = run.observable_edges()
    for j in (0, 10, len(ref.t) - 1):
        h, _ = np.histogram(ref.x[j, :, 0], bins=edges[0])
        np.testing.assert_array_equal(run.observables["histogram"][j, 0], h)
    # observables only, interrupted then resumed: bit-identical to the unbroken file
    part = tmp_path / "o_only.h5"
    with pytest.raises(KeyboardInterrupt):
        st.simulate(_interrupting_sde(2.5), x0, out=part, positions=False, flush_interval=0.0, **kw, **opts)
    st.resume(part, sde=_plain_sde(), progress=False)
    with h5py.File(part, "r") as a, h5py.File(full, "r") as b:
        assert "particles/all/position" not in a
        for name in opts["observables"]:
            np.testing.assert_array_equal(a[f"observables/{name}/value"][...], b[f"observables/{name}/value"][...])
            np.testing.assert_array_equal(a[f"observables/{name}/time"][...], b[f"observables/{name}/time"][...])
    with pytest.raises(ValueError, match="no positions"):
        st.Trajectory.from_run(st.io.open(part)).x[0]


def test_histogram_counts_edges_convention():
    edges = np.array([[0.0, 0.5, 1.0]])
    fr = np.array([[[0.0], [0.49], [0.5], [1.0], [1.01], [-0.1], [np.nan]]])
    np.testing.assert_array_equal(histogram_counts(fr, edges), [[[2, 2]]])


def test_export_round_trips(tmp_path, ou):
    sde, x0, ref = ou
    out = tmp_path / "x.h5"
    st.simulate(sde, x0, out=out, progress=False, **OU)
    npz = st.io.export(out, "npz", tmp_path / "x.npz")
    with np.load(npz) as d:
        np.testing.assert_array_equal(d["x"], ref.x)
        np.testing.assert_array_equal(d["t"], ref.t)
        np.testing.assert_array_equal(d["steps"], ref.steps)
        assert str(d["status"]) == "complete"
    csv = st.io.export(out, "csv", tmp_path / "x.csv")
    lines = csv.read_text().splitlines()
    assert lines[0] == "frame,time,path,x0,x1"
    data = np.loadtxt(csv, delimiter=",", skiprows=1)
    n_f, n_p, d = ref.x.shape
    assert data.shape == (n_f * n_p, 3 + d)
    np.testing.assert_array_equal(data[:, 0], np.repeat(np.arange(n_f), n_p))
    np.testing.assert_array_equal(data[:, 2], np.tile(np.arange(n_p), n_f))
    np.testing.assert_allclose(data[:, 1], np.repeat(ref.t, n_p), rtol=1e-15)
    np.testing.assert_allclose(data[:, 3:], ref.x.reshape(-1, d), rtol=1e-15, atol=0)


def test_netcdf_export_round_trip(tmp_path, ou):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("netCDF4")
    sde, x0, ref = ou
    out = tmp_path / "n.h5"
    st.simulate(sde, x0, out=out, progress=False, **OU)
    nc = st.io.export(out, "netcdf", tmp_path / "n.nc")
    with xr.open_dataset(nc) as ds:
        np.testing.assert_array_equal(ds["x"].values, ref.x)
        np.testing.assert_array_equal(ds["time"].values, ref.t)  # a coordinate (tests/io/test_io_netcdf.py)
        assert ds.attrs["status"] == "complete"


def test_netcdf_missing_extra_is_named(tmp_path, ou, monkeypatch):
    sde, x0, _ = ou
    out = tmp_path / "m.h5"
    st.simulate(sde, x0, out=out, progress=False, **OU)
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"sde_toolkit\[netcdf\]"):
        st.io.export(out, "netcdf", tmp_path / "m.nc")
    assert not (tmp_path / "m.nc").exists()
