"""xarray, NetCDF and ArviZ: the NetCDF export has CF coordinates (time, path, dim) with units and the
observables; ``Trajectory.to_xarray()``; ``Chains.to_arviz()`` gives ArviZ's ESS and R-hat equal to ours;
``sde-toolkit export CHAINS.h5 --format arviz``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from cli_helpers import cli_command, package_env

import sde_toolkit as st

xr = pytest.importorskip("xarray")
pytest.importorskip("netCDF4")
az = pytest.importorskip("arviz")

V2 = st.potentials.DoubleWell(a=0.5, b=1.0)


@pytest.fixture(scope="module")
def obs_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("obs")
    sde = st.OrnsteinUhlenbeck(1.0, 0.5, dim=2)
    x0 = np.random.default_rng(0).normal(size=(30, 2))
    out = d / "run.h5"
    traj = st.simulate(sde, x0, t1=0.5, dt=0.01, save_every=5, seed=2, out=out, progress=False,
                       observables=["mean", "variance", "running_mean", "histogram"], histogram_range=(-3, 3),
                       histogram_bins=8)
    return out, traj


@pytest.fixture(scope="module")
def mala(tmp_path_factory):
    d = tmp_path_factory.mktemp("mala")
    x0 = np.random.default_rng(3).normal(size=(8, 2))
    ch = st.mcmc.langevin(V2, x0, step=0.2, n_steps=3000, burn_in=500, method="mala", seed=1, out=d / "c.h5")
    return d / "c.h5", ch


def test_netcdf_export_has_cf_coordinates_units_and_observables(obs_run, tmp_path):
    out, traj = obs_run
    nc = st.io.export(out, "netcdf", tmp_path / "run.nc")
    run = st.io.open(out)
    with xr.open_dataset(nc) as ds:
        assert set(ds.coords) >= {"time", "path", "dim"}
        assert ds["time"].dims == ("time",) and ds.indexes["time"].name == "time"
        np.testing.assert_array_equal(ds["time"].values, traj.t)
        assert ds["time"].attrs["units"] == "1" and ds["time"].attrs["axis"] == "T"
        assert ds["x"].dims == ("time", "path", "dim") and ds["x"].attrs["units"] == "1"
        np.testing.assert_array_equal(ds["x"].values, traj.x)
        np.testing.assert_array_equal(ds["path"].values, np.arange(30))
        np.testing.assert_array_equal(ds["step"].values, traj.steps)
        for name in ("mean", "variance", "running_mean", "histogram"):
            np.testing.assert_array_equal(ds[name].values, run.observables[name][:])
            assert ds[name].dims[0] == "time"
        np.testing.assert_array_equal(ds["histogram_bin_edges"].values, run.observable_edges())
        assert ds.attrs["Conventions"] == "CF-1.10" and ds.attrs["status"] == "complete"
        # selecting by the coordinate works as a user of xarray expects
        np.testing.assert_array_equal(ds["x"].sel(time=traj.t[3]).values, traj.x[3])


def test_trajectory_to_xarray(obs_run):
    _, traj = obs_run
    ds = traj.to_xarray()
    np.testing.assert_array_equal(ds["time"].values, traj.t)
    np.testing.assert_array_equal(ds["x"].values, np.asarray(traj.x))
    assert ds["x"].dims == ("time", "path", "dim")
    assert ds.attrs["method"] == "euler_maruyama"
    loaded = st.Trajectory.from_file(obs_run[0]).to_xarray()
    assert loaded.attrs["status"] == "complete"
    np.testing.assert_array_equal(loaded["x"].values, ds["x"].values)


def test_to_arviz_ess_and_rhat_equal_ours(mala):
    _, ch = mala
    idata = ch.to_arviz()
    np.testing.assert_array_equal(idata.posterior["x"].values, ch.samples.transpose(1, 0, 2))
    for method in ("bulk", "tail", "mean"):
        np.testing.assert_allclose(az.ess(idata, method=method)["x"].values, ch.ess(method), rtol=1e-9)
    np.testing.assert_allclose(az.rhat(idata)["x"].values, ch.rhat(), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(idata.sample_stats["energy"].values, ch.energies.T)
    rate = idata.sample_stats["acceptance_rate"].values
    assert rate.shape == (8,)
    np.testing.assert_allclose(rate.mean(), ch.acceptance_rate, rtol=1e-12)
    # negative control: the same numbers reshaped (not transposed) into (chain, draw) are other chains, and
    # ArviZ's ESS then disagrees with ours: the test can tell a wrong conversion
    wrong = az.convert_to_inference_data({"x": ch.samples.reshape(8, -1, 2)})
    assert not np.allclose(az.ess(wrong)["x"].values, ch.ess(), rtol=0.05)


def test_cli_export_arviz_and_wrong_kinds(mala, obs_run, tmp_path):
    path, ch = mala
    out = tmp_path / "chains.nc"
    r = subprocess.run([*cli_command(), "export", str(path), "--format", "arviz", "-o", str(out)],
                       env=package_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    idata = az.from_netcdf(out)
    np.testing.assert_array_equal(idata.posterior["x"].values, ch.samples.transpose(1, 0, 2))
    np.testing.assert_allclose(az.ess(idata)["x"].values, ch.ess(), rtol=1e-9)
    assert idata.posterior.attrs["method"] == "mala"
    with pytest.raises(ValueError, match="format 'arviz' exports MCMC chains"):
        st.io.export(obs_run[0], "arviz", tmp_path / "no.nc")
    with pytest.raises(ValueError, match="chains file: export it with format 'arviz'"):
        st.io.export(path, "netcdf", tmp_path / "no2.nc")
    assert not (tmp_path / "no.nc").exists() and not (tmp_path / "no2.nc").exists()


def test_missing_arviz_names_the_extra(mala, tmp_path, monkeypatch):
    path, ch = mala
    monkeypatch.setitem(sys.modules, "arviz", None)
    with pytest.raises(ImportError, match=r"sde_toolkit\[arviz\]"):
        ch.to_arviz()
    with pytest.raises(ImportError, match=r"sde_toolkit\[arviz\]"):
        st.io.export(path, "arviz", tmp_path / "x.nc")
    assert not (tmp_path / "x.nc").exists()
