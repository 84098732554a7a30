"""Helpers of the I/O tests: small configs, the real CLI as a subprocess.

A module of its own (not ``conftest``): several test folders have a ``conftest.py``, and ``from conftest import``
resolves to whichever of them was loaded last, which depends on the order of the command-line arguments.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

KILL_CONFIG = """
[sde]
type = "ornstein_uhlenbeck"
theta = 1.0
sigma = 0.5
mu = 0.3
dim = 2

[initial]
distribution = "normal"
mean = 0.0
std = 1.0
n_paths = 64

[integrate]
method = "euler_maruyama"
dt = 0.001
t1 = {t1}
save_every = 4
seed = 11
driver = "batched"

[output]
flush_interval = {flush}
chunk_frames = 64
"""


def write_config(folder: Path, t1: float = 60.0, flush: float = 0.0, name: str = "run.toml") -> Path:
    p = Path(folder) / name
    p.write_text(KILL_CONFIG.format(t1=t1, flush=flush))
    return p


def package_env(env: dict | None = None) -> dict:
    """The environment for a subprocess that must run *this* checkout's package: its root goes first on
    ``PYTHONPATH``. Without it the ``sde-toolkit`` console script imports whatever the editable install points at
    (another worktree), and a CLI test silently tests other code."""
    import sde_toolkit

    root = str(Path(sde_toolkit.__file__).resolve().parents[1])
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [e.get("PYTHONPATH")])])
    return e


def cli_command() -> list[str]:
    exe = shutil.which("sde-toolkit")
    return [exe] if exe else [sys.executable, "-m", "sde_toolkit.cli"]


def start_cli(args: list[str], log: Path, env: dict | None = None, python_code: str | None = None) -> subprocess.Popen:
    """Start the real CLI (or ``python -c code`` for the negative control); stderr goes to ``log``."""
    e = package_env()
    e.setdefault("NUMBA_NUM_THREADS", "1")
    if env:
        e.update(env)
    cmd = [sys.executable, "-c", python_code, *args] if python_code else [*cli_command(), *args]
    fh = open(log, "w")
    return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=e)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"process ended with {proc.returncode} before {path} appeared")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.005)


def last_durable_commit(log: Path) -> int:
    """The last ``n_committed`` the writer reported after a completed two-phase flush (``--debug`` log)."""
    hits = re.findall(r"durable commit: n_committed=(\d+)", Path(log).read_text())
    return int(hits[-1]) if hits else 0
