"""Crash safety with the real CLI: SIGKILL at seeded commit counts, SIGINT/SIGTERM, exact resume, locking."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from cli_helpers import cli_command, last_durable_commit, package_env, start_cli, wait_for, write_config

import sde_toolkit as st
from sde_toolkit.io import partial_path

NEVER_FLUSH = (
    "import sys, h5py; h5py.File.flush = lambda self: None\n"
    "from sde_toolkit.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def kill_violations(part, log, ref) -> list[str]:
    """Every property a killed file must satisfy; returns the violated ones (empty list: all hold)."""
    bad = []
    try:
        f = h5py.File(part, "r")
    except OSError as exc:
        return [f"does not open with plain h5py: {exc}"]
    with f:
        g = f["parameters/sde_toolkit"]
        n, step, slot = (int(v) for v in g["commit"][...])
        status = g.attrs["status"]
        if status != "running":
            bad.append(f"status {status!r} after SIGKILL")
        val = f["particles/all/position/value"]
        if not n <= val.shape[0]:
            bad.append(f"n_committed {n} > rows {val.shape[0]}")
        if not np.array_equal(val[:n], ref.x[:n]):
            bad.append("committed frames differ from the uninterrupted run")
        if not np.array_equal(f["particles/all/position/step"][:n], ref.steps[:n]):
            bad.append("committed steps differ")
        if not np.array_equal(f["particles/all/position/time"][:n], ref.t[:n]):
            bad.append("committed times differ")
        k = int(np.searchsorted(ref.steps, step))
        if ref.steps[k] == step and not np.array_equal(g["checkpoint/state"][slot], ref.x[k]):
            bad.append(f"checkpoint state at step {step} differs")
        for key in ("config", "seed", "dt", "method", "package_version", "noise_scheme"):
            if key not in g.attrs:
                bad.append(f"metadata {key} missing")
    logged = last_durable_commit(log)
    if n < logged:
        bad.append(f"lost more than one flush interval: file has {n} frames, writer had committed {logged}")
    return bad


N_KILLS = 20
KILL_T1 = 12.0  # 12,000 steps, 3,001 frames, ~50 durable commits at flush_interval = 0 (about 0.8 s of work)
RESUME_ALL = (
    "import sys\n"
    "from sde_toolkit.cli import main\n"
    "codes = [main(['resume', f, '--no-progress']) for f in sys.argv[1:]]\n"
    "sys.exit(max(codes))\n"
)


def _n_logged_commits(log) -> int:
    return len(re.findall(r"durable commit: n_committed=\d+", log.read_text()))


def _kill_at_commit(folder, target, python_code=None, t1=KILL_T1, timeout=60.0):
    """Start ``sde-toolkit --debug simulate`` (flush_interval 0) and SIGKILL it as soon as its log shows ``target``
    durable commits: the kill moment is set by the writer's own progress, not by a wall-clock delay, so a loaded
    machine changes where in the following segment the kill lands, never whether it lands."""
    cfg = write_config(folder, t1=t1)
    out, log = folder / "run.h5", folder / "log.txt"
    proc = start_cli(["--debug", "simulate", str(cfg), "-o", str(out), "--no-progress"], log, python_code=python_code)
    t0 = time.monotonic()
    while _n_logged_commits(log) < target:
        if proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before commit {target}: {log.read_text()[-500:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"commit {target} not logged within {timeout} s")
        time.sleep(0.001)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the run finished before the kill at commit {target}"
    return out, log


@pytest.fixture(scope="module")
def unbroken_cli_run(tmp_path_factory):
    """The same small config run to the end by the real CLI: the reference file and its number of commits."""
    d = tmp_path_factory.mktemp("unbroken")
    cfg = write_config(d, t1=KILL_T1)
    out, log = d / "run.h5", d / "log.txt"
    proc = start_cli(["--debug", "simulate", str(cfg), "-o", str(out), "--no-progress"], log)
    assert proc.wait(timeout=120) == 0, log.read_text()
    with h5py.File(out, "r") as f:
        pos = f["particles/all/position"]
        ref = SimpleNamespace(x=pos["value"][...], steps=pos["step"][...], t=pos["time"][...])
    return out, ref, _n_logged_commits(log)


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_bit_identical(tmp_path, unbroken_cli_run):
    """20 SIGKILLs, each right after a seeded number of durable commits (drawn from the first 60 % of the run, so
    that ~0.3 s of work is left when the kill is sent), then ``sde-toolkit resume`` on every killed file and a
    bit-identical comparison with the unbroken CLI run. Runtime ~30-40 s (20 CLI starts dominate)."""
    _, ref, n_total = unbroken_cli_run
    assert n_total >= 20, f"only {n_total} durable commits in the reference run; lengthen KILL_T1"
    rng = np.random.default_rng(20240601)
    targets = rng.integers(2, int(0.6 * n_total), N_KILLS)
    killed, n_committed = [], []
    for i, target in enumerate(targets):
        d = tmp_path / f"k{i}"
        d.mkdir()
        out, log = _kill_at_commit(d, int(target))
        part = partial_path(out)
        assert part.exists() and not out.exists()
        bad = kill_violations(part, log, ref)
        assert not bad, f"kill {i} after commit {target}: {bad}"
        with h5py.File(part, "r") as f:
            n_committed.append(int(f["parameters/sde_toolkit/commit"][0]))
        assert 0 < n_committed[-1] < len(ref.t)
        killed.append(out)
    assert len(set(n_committed)) >= 10, n_committed  # the kills land at many different places of the run
    # the reader reports an incomplete file instead of returning short data
    with pytest.raises(st.io.IncompleteRunError, match="running"):
        st.io.open(killed[0])
    # resume: the first with the real `sde-toolkit resume` executable, the others through the same CLI entry point
    # in one process (one interpreter start instead of 19)
    r = subprocess.run([*cli_command(), "resume", str(killed[0]), "--no-progress"], capture_output=True, text=True,
                       timeout=120, env=package_env())
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-c", RESUME_ALL, *map(str, killed[1:])], capture_output=True, text=True,
                       timeout=300, env=package_env())
    assert r.returncode == 0, r.stderr
    for out in killed:
        assert out.exists() and not partial_path(out).exists()
        run = st.io.open(out)
        assert run.status == "complete" and run.n_committed == len(ref.t)
        with h5py.File(out, "r") as f:
            assert np.array_equal(f["particles/all/position/value"][...], ref.x), out
            assert np.array_equal(f["particles/all/position/step"][...], ref.steps), out
            assert np.array_equal(f["particles/all/position/time"][...], ref.t), out


@pytest.mark.slow
def test_negative_control_never_flushing_writer_is_caught(tmp_path, unbroken_cli_run):
    """A writer whose flush() does nothing leaves a file the checks reject: the kill test has teeth."""
    _, ref, _ = unbroken_cli_run
    out, log = _kill_at_commit(tmp_path, 8, python_code=NEVER_FLUSH)
    bad = kill_violations(partial_path(out), log, ref)
    assert bad, "a never-flushing writer passed the kill checks"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigint_sigterm_interrupt_cleanly_and_resume(tmp_path, kill_reference, sig):
    _, ref = kill_reference
    cfg = write_config(tmp_path)
    out = tmp_path / "run.h5"
    log = tmp_path / "log.txt"
    proc = start_cli(["simulate", str(cfg), "-o", str(out), "--no-progress"], log)
    wait_for(partial_path(out), proc)
    time.sleep(0.4)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 130, log.read_text()
    assert "interrupted" in log.read_text() and "Traceback" not in log.read_text()
    assert out.exists() and not partial_path(out).exists()
    with h5py.File(out, "r") as f:
        g = f["parameters/sde_toolkit"]
        assert g.attrs["status"] == "interrupted"
        n = int(g["commit"][0])
        assert 0 < n < len(ref.t)
        assert f["particles/all/position/value"].shape[0] == n
        np.testing.assert_array_equal(f["particles/all/position/value"][...], ref.x[:n])
        assert {"config", "seed", "dt", "package_version"} <= set(g.attrs)
    with pytest.raises(st.io.IncompleteRunError, match="interrupted"):
        st.io.open(out)
    traj = st.resume(out, progress=False)
    np.testing.assert_array_equal(np.asarray(traj.x), ref.x)


@pytest.mark.slow
def test_second_writer_fails_fast_naming_lock_and_first_is_intact(tmp_path, kill_reference):
    job, ref = kill_reference
    cfg = write_config(tmp_path, t1=8.0)
    out = tmp_path / "run.h5"
    proc = start_cli(["simulate", str(cfg), "-o", str(out), "--no-progress"], tmp_path / "log.txt")
    wait_for(partial_path(out), proc)
    t0 = time.monotonic()
    with pytest.raises(FileExistsError) as info:
        st.simulate(job.sde, job.x0, out=out, progress=False, **dict(job.integrate, t1=8.0))
    assert time.monotonic() - t0 < 5.0
    msg = str(info.value)
    assert str(partial_path(out)) in msg and "lock" in msg.lower()
    assert proc.wait(timeout=60) == 0
    n = int(round(8.0 / 0.001)) // 4 + 1
    np.testing.assert_array_equal(st.io.open(out).x[:], ref.x[:n])


@pytest.mark.slow
def test_runs_without_hdf5_file_locking(tmp_path, kill_reference):
    _, ref = kill_reference
    cfg = write_config(tmp_path, t1=2.0)
    out = tmp_path / "run.h5"
    proc = start_cli(["simulate", str(cfg), "-o", str(out), "--no-progress"], tmp_path / "log.txt",
                     env={"HDF5_USE_FILE_LOCKING": "FALSE"})
    assert proc.wait(timeout=60) == 0, (tmp_path / "log.txt").read_text()
    x = st.io.open(out).x[:]
    np.testing.assert_array_equal(x, ref.x[: len(x)])
    assert os.path.getsize(out) > 0
