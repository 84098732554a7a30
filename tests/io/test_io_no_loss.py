"""Nothing is lost: export never destroys its input or an existing file, publishing never clobbers, a second
writer cannot delete a live run (even with HDF5's locking off), a full disk or a file-size limit stops a run
cleanly with its committed frames readable and resumable, and a run killed before its first commit resumes from
x0 bit for bit.
"""

from __future__ import annotations

import errno
import importlib
import os
import resource
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
from cli_helpers import cli_command, package_env, start_cli, wait_for, write_config

import sde_toolkit as st
from sde_toolkit import cli
from sde_toolkit.io import partial_path
from sde_toolkit.io._fs import lock_path
from sde_toolkit.io.chains import ChainsWriter

FORMATS = ("npz", "csv", "netcdf")
OU = dict(t1=0.5, dt=0.01, save_every=2, seed=5, progress=False)


def _ou_file(path, **kw):
    sde = st.OrnsteinUhlenbeck(1.0, 0.5, mu=0.2, dim=2)
    x0 = np.random.default_rng(0).normal(size=(12, 2))
    return st.simulate(sde, x0, out=path, **dict(OU, **kw))


def _needs(fmt):
    if fmt == "netcdf":
        pytest.importorskip("xarray")


# -- export -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_export_onto_its_own_input_is_refused_and_the_input_is_intact(tmp_path, fmt, capsys):
    _needs(fmt)
    src = tmp_path / "src.h5"
    _ou_file(src)
    before = src.read_bytes()
    os.link(src, tmp_path / "hard.h5")
    os.symlink(src, tmp_path / "sym.h5")
    aliases = [src, tmp_path / "." / "src.h5", tmp_path / "hard.h5", tmp_path / "sym.h5", partial_path(src)]
    for out in aliases:
        for overwrite in (False, True):
            with pytest.raises(FileExistsError, match="onto itself"):
                st.io.export(src, fmt, out, overwrite=overwrite)
    assert cli.main(["export", str(src), "--format", fmt, "-o", str(src)]) == 2
    assert cli.main(["export", str(src), "--format", fmt, "-o", str(src), "--overwrite"]) == 2
    assert "onto itself" in capsys.readouterr().err
    assert src.read_bytes() == before and st.io.open(src).status == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.h5", "src.h5", "sym.h5"]  # no temporaries left
    # a killed run at RUN.h5.partial: neither its .partial nor the name it will be published under
    part = partial_path(tmp_path / "k.h5")
    src.rename(part)
    for out in (part, tmp_path / "k.h5"):
        with pytest.raises(FileExistsError, match="onto itself"):
            st.io.export(tmp_path / "k.h5", fmt, out, allow_partial=True)
    assert part.read_bytes() == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_onto_an_existing_file_needs_overwrite_and_a_failed_export_leaves_nothing(tmp_path, fmt,
                                                                                          monkeypatch):
    _needs(fmt)
    src = tmp_path / "src.h5"
    _ou_file(src)
    out = tmp_path / f"out.{fmt}"
    out.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        st.io.export(src, fmt, out)
    assert cli.main(["export", str(src), "--format", fmt, "-o", str(out)]) == 2
    assert out.read_bytes() == b"precious"
    # a failure half way (here: the frames cannot be read) removes the temporary and keeps the old file
    export_mod = importlib.import_module("sde_toolkit.io.export")

    def broken(run, tmp, *a):
        tmp.write_bytes(b"half written")
        raise OSError(errno.EIO, "simulated read failure")

    monkeypatch.setattr(export_mod, {"npz": "_export_npz", "csv": "_export_csv", "netcdf": "_export_netcdf"}[fmt],
                        broken)
    with pytest.raises(OSError, match="simulated"):
        st.io.export(src, fmt, out, overwrite=True)
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["src.h5", out.name])
    monkeypatch.undo()
    assert cli.main(["export", str(src), "--format", fmt, "-o", str(out), "--overwrite"]) == 0
    assert out.read_bytes() != b"precious"
    if fmt == "npz":
        with np.load(out) as d:
            np.testing.assert_array_equal(d["x"], st.io.open(src).x[:])


# -- publish without clobbering -----------------------------------------------------------------------------
def _intruding_sde(out, at):
    """An SDE whose drift creates ``out`` (someone else's file) once the run passes time ``at``."""
    def drift(x, t):
        if t >= at and not out.exists():
            out.write_bytes(b"someone else's")
        return -x

    return st.SDE.from_functions(drift, lambda x, t: 0.3 * np.ones_like(x), dim=1)


def test_publish_never_replaces_a_file_created_during_the_run(tmp_path):
    out = tmp_path / "r.h5"
    x0 = np.zeros((4, 1))
    kw = dict(t1=1.0, dt=0.01, seed=1, driver="batched", progress=False)
    with pytest.raises(FileExistsError, match="created by someone else") as info:
        st.simulate(_intruding_sde(out, 0.5), x0, out=out, **kw)
    assert str(partial_path(out)) in str(info.value)
    assert out.read_bytes() == b"someone else's"
    run = st.io.open(partial_path(out))  # the finished run is kept, complete and verified
    assert run.status == "complete" and run.n_committed == run.n_expected
    assert not lock_path(partial_path(out)).exists()
    # with overwrite=True the replacement is explicit
    out2 = tmp_path / "r2.h5"
    st.simulate(_intruding_sde(out2, 0.5), x0, out=out2, overwrite=True, **kw)
    assert st.io.open(out2).status == "complete" and not partial_path(out2).exists()


def test_chains_publish_never_replaces_a_file_created_meanwhile(tmp_path):
    out = tmp_path / "c.h5"
    w = ChainsWriter.create(out, n_kept=4, n_chains=3, dim=1, method="ula", step=0.1, kT=1.0, gamma=1.0,
                            n_steps=4, burn_in=0, thin=1, seed=1, backend="numpy", has_energies=False,
                            has_accepted=False, has_momentum=False)
    w.write(0, np.ones((4, 3, 1)))
    out.write_bytes(b"someone else's")
    with pytest.raises(FileExistsError, match="created by someone else"):
        w.finish(final_position=np.ones((3, 1)))
    assert out.read_bytes() == b"someone else's"
    assert st.io.read_chains(partial_path(out)).status == "complete"


def test_resume_never_replaces_an_existing_output(tmp_path):
    x0 = np.zeros((4, 1))
    sde = st.OrnsteinUhlenbeck(1.0, 0.3)
    out = tmp_path / "r.h5"
    kw = dict(t1=2.0, dt=0.01, seed=1, driver="batched", progress=False)
    ref = st.simulate(sde, x0, **kw)
    from sde_toolkit.io.h5md import H5MDWriter

    with pytest.MonkeyPatch.context() as mp:
        orig = H5MDWriter.commit
        mp.setattr(H5MDWriter, "commit", lambda self, s, x: (_ for _ in ()).throw(RuntimeError("crash"))
                   if s > 100 else orig(self, s, x))
        with pytest.raises(RuntimeError):
            st.simulate(sde, x0, out=out, flush_interval=0, **kw)
    out.write_bytes(b"an older result")
    with pytest.raises(FileExistsError, match="overwrite"):
        st.resume(out, progress=False)
    assert cli.main(["resume", str(out), "--no-progress"]) == 2
    assert out.read_bytes() == b"an older result" and partial_path(out).exists()
    assert cli.main(["resume", str(out), "--no-progress", "--overwrite"]) == 0
    np.testing.assert_array_equal(st.io.open(out).x[:], ref.x)


# -- the writer's own lock ----------------------------------------------------------------------------------
def test_a_second_writer_with_overwrite_cannot_delete_a_live_partial(tmp_path):
    from sde_toolkit.integrate.plan import make_plan
    from sde_toolkit.io import open_sink

    sde = st.OrnsteinUhlenbeck(1.0, 0.3)
    x0 = np.zeros((4, 1))
    plan = make_plan(sde, x0, t0=0.0, t1=1.0, dt=0.1, save_every=1, method="euler_maruyama", seed=1,
                     driver="batched")
    out = tmp_path / "r.h5"
    first = open_sink(out, plan.to_dict(), plan.save_steps, x0)
    part = partial_path(out)
    before = part.read_bytes()
    t0 = time.monotonic()
    with pytest.raises(FileExistsError) as info:
        open_sink(out, plan.to_dict(), plan.save_steps, x0, overwrite=True)
    assert time.monotonic() - t0 < 2.0
    msg = str(info.value)
    assert str(part) in msg and str(lock_path(part)) in msg and "lock" in msg and f"pid {os.getpid()}" in msg
    assert part.read_bytes() == before
    first.close("complete")
    assert not lock_path(part).exists() and out.exists()


@pytest.mark.slow
def test_two_writers_without_hdf5_file_locking(tmp_path, kill_reference):
    """``HDF5_USE_FILE_LOCKING=FALSE`` (NFS): the second ``simulate --overwrite`` fails fast naming the file and
    the lock; the first run completes with exactly its own data. The first writer is stopped (SIGSTOP) while the
    second one tries, so the two overlap whatever the machine's load."""
    _, ref = kill_reference
    env = {"HDF5_USE_FILE_LOCKING": "FALSE"}
    cfg = write_config(tmp_path, t1=8.0)
    out = tmp_path / "run.h5"
    proc = start_cli(["simulate", str(cfg), "-o", str(out), "--no-progress"], tmp_path / "log1.txt", env=env)
    wait_for(partial_path(out), proc)
    proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        second = subprocess.run([*cli_command(), "simulate", str(cfg), "-o", str(out), "--overwrite",
                                 "--no-progress"], capture_output=True, text=True, timeout=120,
                                env=dict(package_env(), NUMBA_NUM_THREADS="1", **env))
        took = time.monotonic() - t0
        assert proc.poll() is None
        assert partial_path(out).exists() and not out.exists()  # the live run's file was not deleted
    finally:
        proc.send_signal(signal.SIGCONT)
    assert second.returncode == 2, second.stderr
    assert took < 60.0  # fails at once (interpreter start included), does not wait for the lock
    assert str(partial_path(out)) in second.stderr and str(lock_path(partial_path(out))) in second.stderr
    assert proc.wait(timeout=120) == 0, (tmp_path / "log1.txt").read_text()
    n = int(round(8.0 / 0.001)) // 4 + 1
    np.testing.assert_array_equal(st.io.open(out).x[:], ref.x[:n])
    assert not lock_path(partial_path(out)).exists()


# -- full disk, file-size limit -----------------------------------------------------------------------------
FSIZE_LIMIT = 1_200_000  # bytes: the 3,001-frame run of the kill config needs about 3 MB


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


@pytest.mark.slow
@pytest.mark.parametrize("flush", [0.0, 60.0])
def test_a_file_size_limit_stops_the_run_cleanly_and_it_resumes_bit_identical(tmp_path, kill_reference, flush):
    """Under ``ulimit -f`` (RLIMIT_FSIZE; a full disk gives ENOSPC the same way) the run stops with an ordinary
    error (exit 1, no segfault, no SIGXFSZ), its committed frames readable with plain h5py, and resumes. With
    ``flush = 60`` nothing was committed before the limit: the resume starts from x0."""
    _, ref = kill_reference
    cfg = write_config(tmp_path, t1=12.0, flush=flush)
    out = tmp_path / "run.h5"
    r = subprocess.run([*cli_command(), "simulate", str(cfg), "-o", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=120, env=dict(package_env(), NUMBA_NUM_THREADS="1"),
                       preexec_fn=_limit_file_size)
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])  # not -11 (SIGSEGV) or -25 (SIGXFSZ)
    assert "File too large" in r.stderr and "resume" in r.stderr and "Traceback" not in r.stderr
    part = partial_path(out)
    assert part.exists() and not out.exists() and not lock_path(part).exists()
    with h5py.File(part, "r") as f:  # readable with plain h5py, committed frames exact
        n = int(f["parameters/sde_toolkit/commit"][0])
        assert f["parameters/sde_toolkit"].attrs["status"] == "running"
        np.testing.assert_array_equal(f["particles/all/position/value"][:n], ref.x[:n])
    assert (n > 100) if flush == 0.0 else (n == 0)
    assert os.path.getsize(part) <= FSIZE_LIMIT
    with pytest.warns(st.io.IncompleteRunWarning):
        st.io.open(part, allow_partial=True).verify()
    r = subprocess.run([*cli_command(), "resume", str(out), "--no-progress"], capture_output=True, text=True,
                       timeout=120, env=package_env())
    assert r.returncode == 0, r.stderr
    n_all = int(round(12.0 / 0.001)) // 4 + 1
    np.testing.assert_array_equal(st.io.open(out).x[:], ref.x[:n_all])


def test_a_full_disk_stops_simulate_and_the_sampler_cleanly(tmp_path, monkeypatch):
    """ENOSPC: the free space reported by the file system runs out after a few commits."""
    import sde_toolkit.io._fs as fs

    real = os.statvfs
    calls = {"n": 0, "limit": 12}

    class Full:
        def __init__(self, st_):
            self.f_bavail, self.f_frsize = 0, st_.f_frsize

    def statvfs(p):
        calls["n"] += 1
        return Full(real(p)) if calls["n"] > calls["limit"] else real(p)

    monkeypatch.setattr(fs.os, "statvfs", statvfs)
    sde = st.OrnsteinUhlenbeck(1.0, 0.3)
    x0 = np.zeros((16, 1))
    kw = dict(t1=5.0, dt=0.001, seed=1, driver="batched", progress=False)
    out = tmp_path / "r.h5"
    with pytest.raises(OSError) as info:
        st.simulate(sde, x0, out=out, flush_interval=0, **kw)
    assert info.value.errno == errno.ENOSPC and "resume" in str(info.value)
    with pytest.warns(st.io.IncompleteRunWarning):
        run = st.io.open(out, allow_partial=True)
    assert 0 < run.n_committed < run.n_expected
    monkeypatch.undo()
    traj = st.resume(out, progress=False)
    np.testing.assert_array_equal(np.asarray(traj.x), st.simulate(sde, x0, **kw).x)
    # chains: the committed blocks are kept
    calls.update(n=0, limit=5)  # creation, then the flushes of the first block (128 samples) pass
    monkeypatch.setattr(fs.os, "statvfs", statvfs)
    with pytest.raises(OSError) as info:
        st.mcmc.langevin(st.potentials.Harmonic(), np.zeros((8192, 1)), step=0.1, n_steps=400, method="ula",
                         seed=1, out=tmp_path / "c.h5")
    assert info.value.errno == errno.ENOSPC
    with pytest.warns(st.io.IncompleteRunWarning):
        view = st.io.open_chains(tmp_path / "c.h5", allow_partial=True)
    assert 0 < view.n_committed < 400 and view.status == "running"
    np.testing.assert_array_equal(view.samples[:], st.mcmc.langevin(
        st.potentials.Harmonic(), np.zeros((8192, 1)), step=0.1, n_steps=400, method="ula", seed=1,
    ).samples[: view.n_committed])


# -- killed before the first durable commit -----------------------------------------------------------------
@pytest.mark.slow
def test_a_run_killed_before_its_first_commit_resumes_from_x0_bit_identical(tmp_path, kill_reference, capsys):
    _, ref = kill_reference
    cfg = write_config(tmp_path, t1=60.0, flush=5.0)  # the first durable commit would come after 5 s
    out = tmp_path / "run.h5"
    proc = start_cli(["simulate", str(cfg), "-o", str(out), "--no-progress"], tmp_path / "log.txt")
    wait_for(partial_path(out), proc)  # triggered by the file's appearance, not by a delay
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    part = partial_path(out)
    with h5py.File(part, "r") as f:
        g = f["parameters/sde_toolkit"]
        assert list(g["commit"][...]) == [0, 0, 1]
        np.testing.assert_array_equal(g["checkpoint/state"][1], ref.x[0])  # x0 was saved
    assert cli.main(["simulate", str(cfg), "-o", str(out)]) == 2  # simulate still refuses to touch it ...
    assert "resume" in capsys.readouterr().err
    r = subprocess.run([*cli_command(), "resume", str(out), "--no-progress"], capture_output=True, text=True,
                       timeout=300, env=package_env())  # ... resume continues it
    assert r.returncode == 0, r.stderr
    run = st.io.open(out)
    assert run.status == "complete" and run.n_committed == len(ref.t)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["particles/all/position/value"][...], ref.x)
        np.testing.assert_array_equal(f["particles/all/position/step"][...], ref.steps)
        np.testing.assert_array_equal(f["particles/all/position/time"][...], ref.t)


def test_in_process_stop_before_the_first_commit_resumes_from_x0(tmp_path):
    """The same without a subprocess: a run that fails before any durable commit keeps x0 and resumes."""
    sde = st.OrnsteinUhlenbeck(1.0, 0.3, mu=0.1)
    x0 = np.random.default_rng(3).normal(size=(6, 1))
    kw = dict(t1=1.0, dt=0.01, save_every=3, seed=4, driver="batched", progress=False)
    out = tmp_path / "r.h5"
    from sde_toolkit.io.h5md import H5MDWriter

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(H5MDWriter, "commit", lambda self, s, x: (_ for _ in ()).throw(RuntimeError("crash")))
        with pytest.raises(RuntimeError):
            st.simulate(sde, x0, out=out, **kw)
    with h5py.File(partial_path(out), "r") as f:
        assert list(f["parameters/sde_toolkit/commit"][...])[:2] == [0, 0]
    traj = st.resume(out, progress=False)
    np.testing.assert_array_equal(np.asarray(traj.x), st.simulate(sde, x0, **kw).x)
