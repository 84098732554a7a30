"""Crash safety with the real CLI: SIGKILL at seeded random moments, SIGINT/SIGTERM, exact resume, locking."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
from conftest import cli_command, last_durable_commit, start_cli, wait_for, write_config

import sde_toolkit as st
from sde_toolkit.io import partial_path

N_KILLS = 6
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


def _kill_once(tmp_path, delay, python_code=None):
    cfg = write_config(tmp_path)
    out = tmp_path / "run.h5"
    log = tmp_path / "log.txt"
    proc = start_cli(["--debug", "simulate", str(cfg), "-o", str(out), "--no-progress"], log, python_code=python_code)
    wait_for(partial_path(out), proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before the kill; lengthen it"
    return out, log


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_bit_identical(tmp_path, kill_reference):
    _, ref = kill_reference
    rng = np.random.default_rng(20240601)
    delays = rng.uniform(0.0, 1.2, N_KILLS)
    committed = []
    for i, delay in enumerate(delays):
        d = tmp_path / f"k{i}"
        d.mkdir()
        out, log = _kill_once(d, delay)
        part = partial_path(out)
        assert part.exists() and not out.exists()
        bad = kill_violations(part, log, ref)
        assert not bad, f"kill {i} at +{delay:.3f} s: {bad}"
        committed.append((d, out))
    # the reader reports an incomplete file instead of returning short data
    d0, out0 = committed[0]
    with pytest.raises(st.io.IncompleteRunError, match="running"):
        st.io.open(out0)
    # resume two of them: one with the real CLI, one in-process; both must equal the unbroken run bit for bit
    r = subprocess.run([*cli_command(), "resume", str(out0), "--no-progress"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    d1, out1 = committed[-1]
    st.resume(out1, progress=False)
    for out in (out0, out1):
        assert out.exists() and not partial_path(out).exists()
        run = st.io.open(out)
        assert run.status == "complete" and run.n_committed == len(ref.t)
        np.testing.assert_array_equal(run.x[:], ref.x)
        np.testing.assert_array_equal(run.t, ref.t)


@pytest.mark.slow
def test_negative_control_never_flushing_writer_is_caught(tmp_path, kill_reference):
    """A writer whose flush() does nothing leaves a file the checks reject: the kill test has teeth."""
    _, ref = kill_reference
    out, log = _kill_once(tmp_path, 0.8, python_code=NEVER_FLUSH)
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
