"""Outside readers open every file kind we write: MDAnalysis's H5MD reader and pyh5md (simulate trajectory, CLI
run with observables, MCMC chains, a killed ``.partial`` showing only its committed frames); every one passes the
H5MD 1.1 spec checker (``h5md_spec``); the author setting; and a file pyh5md wrote starts a run."""

from __future__ import annotations

import re
import signal
import time
import warnings

import h5py
import numpy as np
import pytest
from cli_helpers import package_env, start_cli
from h5md_spec import assert_h5md, check

import sde_toolkit as st
from sde_toolkit.config import ConfigError, build_initial
from sde_toolkit.io import read_h5md_positions, resolve_author

MDA_H5MD = pytest.importorskip("MDAnalysis.coordinates.H5MD")
pyh5md = pytest.importorskip("pyh5md")

CLI_CONFIG = """
[sde]
type = "ornstein_uhlenbeck"
theta = 1.0
sigma = 0.5
dim = 3

[initial]
distribution = "normal"
n_paths = {n_paths}

[integrate]
dt = 0.001
t1 = {t1}
save_every = 4
seed = 3
driver = "batched"

[output]
flush_interval = 0.0
chunk_frames = 16
observables = ["mean", "variance", "running_mean", "histogram"]
histogram_range = [-3.0, 3.0]
histogram_bins = 12
author = "Ana Lopez"
"""


def _mda(path):
    """MDAnalysis's own H5MD reader, topology-less (our model has no atoms or units: convert_units=False)."""
    return MDA_H5MD.H5MDReader(str(path), convert_units=False)


def _mda_frames(path):
    r = _mda(path)
    try:
        times, xs = [], []
        for ts in r:
            times.append(ts.time)
            xs.append(ts.positions.copy())
        return r.n_frames, np.array(times), np.array(xs)
    finally:
        r.close()


def _pyh5md_read(path, group):
    with pyh5md.File(str(path), "r") as f:
        pos = pyh5md.element(f.particles_group(group), "position")
        return np.asarray(pos.value[...]), np.asarray(pos.step[...]), np.asarray(pos.time[...])


@pytest.fixture(scope="module")
def sim_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    sde = st.OrnsteinUhlenbeck(1.0, 0.7, dim=3)
    x0 = np.random.default_rng(0).normal(size=(6, 3))
    traj = st.simulate(sde, x0, t1=1.0, dt=0.01, save_every=10, seed=5, out=d / "sim.h5", progress=False)
    return d / "sim.h5", traj


@pytest.fixture(scope="module")
def cli_file(tmp_path_factory):
    import subprocess

    from cli_helpers import cli_command

    d = tmp_path_factory.mktemp("cli")
    cfg = d / "run.toml"
    cfg.write_text(CLI_CONFIG.format(n_paths=40, t1=0.4))
    out = d / "run.h5"
    r = subprocess.run([*cli_command(), "simulate", str(cfg), "-o", str(out), "--no-progress"], env=package_env(),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def chains_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("chains")
    x0 = np.random.default_rng(1).normal(size=(4, 3))
    ch = st.mcmc.langevin(st.potentials.Harmonic(k=1.0), x0, step=0.2, n_steps=200, method="mala", seed=2,
                          out=d / "chains.h5")
    return d / "chains.h5", ch


@pytest.fixture(scope="module")
def killed_partial(tmp_path_factory):
    """A CLI run SIGKILLed after a few durable commits: its ``.partial``, and the frames committed."""
    d = tmp_path_factory.mktemp("killed")
    cfg = d / "run.toml"
    cfg.write_text(CLI_CONFIG.format(n_paths=50, t1=40.0))
    out, log = d / "run.h5", d / "log.txt"
    proc = start_cli(["--debug", "simulate", str(cfg), "-o", str(out), "--no-progress"], log)
    t0 = time.monotonic()
    while len(re.findall(r"durable commit: n_committed=\d+", log.read_text())) < 4:
        if proc.poll() is not None or time.monotonic() - t0 > 120:
            proc.kill()
            raise AssertionError(f"no 4 commits before the run ended: {log.read_text()[-400:]}")
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill"
    part = d / "run.h5.partial"
    with h5py.File(part, "r") as f:
        n_committed = int(f["parameters/sde_toolkit/commit"][0])
        n_expected = int(f["parameters/sde_toolkit"].attrs["n_frames_expected"])
    assert 0 < n_committed < n_expected
    return part, n_committed


# -- the spec checker ------------------------------------------------------------------------------------------
def test_every_file_kind_passes_the_h5md_spec(sim_file, cli_file, chains_file, killed_partial):
    for path in (sim_file[0], cli_file, chains_file[0], killed_partial[0]):
        assert_h5md(path)


def test_spec_checker_negative_controls(tmp_path, sim_file):
    """The checker fails the old layout: variable-length strings, a unit without the units module (and not a
    unit string), full-length datasets with fill values."""
    import shutil

    bad = tmp_path / "bad.h5"
    shutil.copy(sim_file[0], bad)
    with h5py.File(bad, "r+") as f:
        f["h5md/author"].attrs["name"] = "someone"  # h5py writes a str as a variable-length UTF-8 string
        f["particles/all/position/time"].attrs["unit"] = np.bytes_(b"model time")
        for k in ("value", "step", "time"):
            ds = f["particles/all/position"][k]
            ds.resize(ds.shape[0] + 3, axis=0)  # fill values past the data, as a killed old-style file had
    errors = "\n".join(check(bad))
    assert "variable-length" in errors
    assert "units is not declared" in errors and "'model time' is not an H5MD unit string" in errors
    assert "fill values" in errors
    # and a file that follows the rules passes (the checker is not just failing everything)
    assert check(sim_file[0]) == []


# -- MDAnalysis and pyh5md -------------------------------------------------------------------------------------
def test_mdanalysis_and_pyh5md_read_a_simulate_trajectory_exactly(sim_file):
    path, traj = sim_file
    n, times, xs = _mda_frames(path)
    assert n == len(traj.t)
    np.testing.assert_array_equal(times, traj.t)
    np.testing.assert_array_equal(xs, np.asarray(traj.x, dtype=np.float32))  # MDAnalysis holds float32
    value, step, t = _pyh5md_read(path, "all")
    np.testing.assert_array_equal(value, traj.x)
    np.testing.assert_array_equal(step, traj.steps)
    np.testing.assert_array_equal(t, traj.t)


def test_outside_readers_open_a_cli_run_with_observables(cli_file):
    ref = st.Trajectory.from_file(cli_file)
    n, times, xs = _mda_frames(cli_file)
    assert n == len(ref.t) == 101
    np.testing.assert_array_equal(times, ref.t)
    np.testing.assert_array_equal(xs, ref.x.astype(np.float32))
    run = st.io.open(cli_file)
    with pyh5md.File(str(cli_file), "r") as f:
        obs = f.require_group("observables")
        for name in ("mean", "variance", "running_mean", "histogram"):
            el = pyh5md.element(obs, name)
            np.testing.assert_array_equal(el.value[...], run.observables[name][:])
            np.testing.assert_array_equal(el.time[...], ref.t)
        assert f["h5md/author"].attrs["name"] == b"Ana Lopez"  # [output] author


def test_outside_readers_open_mcmc_chains(chains_file):
    path, ch = chains_file
    n, times, xs = _mda_frames(path)
    assert n == ch.samples.shape[0]
    np.testing.assert_array_equal(xs, ch.samples.astype(np.float32))
    value, step, t = _pyh5md_read(path, "chains")
    np.testing.assert_array_equal(value, ch.samples)
    np.testing.assert_array_equal(step, np.arange(1, 201))
    np.testing.assert_allclose(t, 0.2 * np.arange(1, 201), rtol=0, atol=1e-12)


def test_killed_partial_shows_only_committed_frames(killed_partial):
    part, n_committed = killed_partial
    ours = st.io.open(part, allow_partial=True)
    n, times, xs = _mda_frames(part)
    assert n == n_committed  # not the run's full length filled with NaN and step -1
    assert np.isfinite(xs).all() and np.isfinite(times).all()
    np.testing.assert_array_equal(times, ours.t)
    np.testing.assert_array_equal(xs, ours.x[:].astype(np.float32))
    value, step, _ = _pyh5md_read(part, "all")
    assert value.shape[0] == n_committed and (step >= 0).all()
    np.testing.assert_array_equal(value, ours.x[:])


def test_killed_partial_still_resumes_bit_identical(killed_partial, tmp_path):
    """Datasets sized to the written frames (not the whole run) keep resume exact and the digests valid."""
    import shutil

    from sde_toolkit.config import load_config
    from sde_toolkit.runs import prepare_simulation

    part, _ = killed_partial
    work = tmp_path / "run.h5.partial"
    shutil.copy(part, work)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        st.resume(tmp_path / "run.h5", progress=False)
    done = st.Trajectory.from_file(tmp_path / "run.h5")
    cfg = load_config(part.parent / "run.toml")
    job = prepare_simulation(cfg, check_output=False)
    ref = st.simulate(job.sde, job.x0, progress=False, **job.integrate)
    np.testing.assert_array_equal(done.x, ref.x)
    np.testing.assert_array_equal(done.t, ref.t)
    assert_h5md(tmp_path / "run.h5")


# -- a file another program wrote ------------------------------------------------------------------------------
def _pyh5md_file(path, n_frames=5, n=7, dim=3, group="atoms"):
    rng = np.random.default_rng(4)
    frames = rng.normal(size=(n_frames, n, dim))
    with pyh5md.File(str(path), "w", creator="a test", author="pyh5md user") as f:
        g = f.particles_group(group)
        g.create_box(dimension=dim, boundary=["none"] * dim)
        pos = pyh5md.element(g, "position", store="time", data=frames[0], time=True)  # (shape only)
        for i in range(n_frames):
            pos.append(frames[i], i * 10, i * 0.5)
    return frames


def test_pyh5md_written_file_starts_a_run(tmp_path):
    frames = _pyh5md_file(tmp_path / "other.h5")
    x, info = read_h5md_positions(tmp_path / "other.h5")
    np.testing.assert_array_equal(x, frames[-1])
    assert info == {"group": "atoms", "frame": 4, "n_frames": 5, "step": 40, "time": 2.0}
    x2 = build_initial({"distribution": "file", "path": "other.h5", "frame": 2, "group": "atoms"}, 3,
                       base_dir=tmp_path)
    np.testing.assert_array_equal(x2, frames[2])
    # and a whole run from it, through the CLI, as a user would
    import subprocess

    from cli_helpers import cli_command

    cfg = tmp_path / "from_file.toml"
    cfg.write_text('[sde]\ntype = "ornstein_uhlenbeck"\ntheta = 1.0\nsigma = 0.5\ndim = 3\n\n'
                   '[initial]\ndistribution = "file"\npath = "other.h5"\ngroup = "atoms"\nframe = 1\n\n'
                   '[integrate]\ndt = 0.01\nt1 = 0.1\nseed = 0\n')
    r = subprocess.run([*cli_command(), "simulate", str(cfg), "-o", str(tmp_path / "out.h5"), "--no-progress"],
                       env=package_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    out = st.Trajectory.from_file(tmp_path / "out.h5")
    np.testing.assert_array_equal(out.x[0], frames[1])
    assert_h5md(tmp_path / "out.h5")


def test_foreign_file_errors_name_the_key(tmp_path):
    _pyh5md_file(tmp_path / "two.h5", group="a")
    with h5py.File(tmp_path / "two.h5", "r+") as f:
        f.copy(f["particles/a"], "particles/b")
    with pytest.raises(ValueError, match="several particle groups with positions \\(a, b\\)"):
        read_h5md_positions(tmp_path / "two.h5")
    with pytest.raises(ConfigError, match="no /particles/c/position; it has a, b") as e:
        build_initial({"distribution": "file", "path": str(tmp_path / "two.h5"), "group": "c"}, 3)
    assert "[initial]" in str(e.value) and "group" in str(e.value)
    with pytest.raises(ConfigError, match="frame 9 out of range \\(5 frames\\)"):
        build_initial({"distribution": "file", "path": str(tmp_path / "two.h5"), "group": "a", "frame": 9}, 3)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ConfigError, match="not an HDF5 file"):
        build_initial({"distribution": "file", "path": str(tmp_path / "text.h5")}, 3)
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.zeros((3, 3))
    with pytest.raises(ConfigError, match="not an H5MD file"):
        build_initial({"distribution": "file", "path": str(tmp_path / "plain.h5")}, 3)


def test_inspect_lists_particle_groups_of_a_foreign_file(tmp_path):
    _pyh5md_file(tmp_path / "other.h5")
    info = st.io.summarize(tmp_path / "other.h5")
    assert info["h5md"]["particles"]["atoms"]["frames"] == 5
    assert info["h5md"]["particles"]["atoms"]["n_particles"] == 7


# -- author ----------------------------------------------------------------------------------------------------
def test_author_setting_default_env_and_refusals(tmp_path, monkeypatch):
    monkeypatch.delenv("SDE_TOOLKIT_AUTHOR", raising=False)
    assert resolve_author() == "sde_toolkit user"
    monkeypatch.setenv("SDE_TOOLKIT_AUTHOR", "  José Núñez ")
    assert resolve_author() == "José Núñez"
    sde = st.OrnsteinUhlenbeck(1.0, 1.0)
    st.simulate(sde, np.zeros((2, 1)), t1=0.02, dt=0.01, seed=0, out=tmp_path / "a.h5", progress=False)
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["h5md/author"].attrs["name"] == b"Jose Nunez"  # ASCII, as H5MD asks
    assert_h5md(tmp_path / "a.h5")
    assert resolve_author("Config Name") == "Config Name"  # the config setting wins over the environment
    for bad, msg in (("", "empty"), ("a\nb", "control"), ("x" * 300, "at most 256")):
        with pytest.raises(ValueError, match=msg):
            resolve_author(bad)
    with pytest.raises(TypeError):
        resolve_author(3)  # type: ignore[arg-type]
    monkeypatch.setenv("SDE_TOOLKIT_AUTHOR", "bad\x01name")
    with pytest.raises(ValueError, match="SDE_TOOLKIT_AUTHOR"):
        st.simulate(sde, np.zeros((2, 1)), t1=0.02, dt=0.01, seed=0, out=tmp_path / "b.h5", progress=False)
    assert not (tmp_path / "b.h5").exists() and not (tmp_path / "b.h5.partial").exists()


def test_cli_inspect_selects_a_frame_of_a_foreign_file(tmp_path):
    import subprocess

    from cli_helpers import cli_command

    frames = _pyh5md_file(tmp_path / "other.h5")
    r = subprocess.run([*cli_command(), "inspect", str(tmp_path / "other.h5"), "--frame", "2"], env=package_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "particles/atoms: 5 frames of 7 particles, dimension 3" in r.stdout
    assert "frame 2 of 5 in particles/atoms: step 20, time 1.0, shape (7, 3)" in r.stdout
    assert f"min {frames[2].min(axis=0).tolist()}" in r.stdout
    r = subprocess.run([*cli_command(), "inspect", str(tmp_path / "other.h5"), "--group", "nope"],
                       env=package_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no /particles/nope/position; it has atoms" in r.stderr


def test_fixed_interval_and_time_independent_positions(tmp_path):
    """H5MD's other two forms: a scalar step/time (fixed interval, with offset) and a position dataset."""
    frames = np.random.default_rng(6).normal(size=(4, 5, 2))
    with h5py.File(tmp_path / "lin.h5", "w") as f:
        f.create_group("h5md").attrs["version"] = np.array([1, 1], dtype=np.int32)
        pos = f.create_group("particles/p/position")
        pos.create_dataset("value", data=frames, maxshape=(None, 5, 2))
        pos["step"] = 10
        pos["step"].attrs["offset"] = 5
        pos["time"] = 0.5
        pos["time"].attrs["offset"] = 1.0
        f["particles/q/position"] = frames[1]
    x, info = read_h5md_positions(tmp_path / "lin.h5", group="p", frame=2)
    np.testing.assert_array_equal(x, frames[2])
    assert (info["step"], info["time"], info["n_frames"]) == (25, 2.0, 4)
    x, info = read_h5md_positions(tmp_path / "lin.h5", group="q")
    np.testing.assert_array_equal(x, frames[1])
    assert info["n_frames"] == 1 and info["step"] is None
    with pytest.raises(IndexError, match="time-independent"):
        read_h5md_positions(tmp_path / "lin.h5", group="q", frame=3)
