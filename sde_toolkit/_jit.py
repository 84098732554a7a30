"""The project-wide Numba wrapper.

One place sets the compilation flags for every kernel:

* ``fastmath`` is never enabled: it lets LLVM assume values are finite, which turns divergence checks
  (``np.isfinite``) into constants (numba #2919). A grep test guards this.
* ``nogil=True`` so the fused drivers can run chunks on a thread pool; determinism comes from per-chunk
  random streams, never from ``prange`` reductions.
* ``error_model="numpy"`` so a division by zero yields inf/NaN (caught by the divergence check) instead of
  raising inside a worker thread.

Caching: on a read-only install (no writable package folder), Numba's default cache locator fails with
"cannot cache function ... no locator". We point ``numba.config.CACHE_DIR`` at a per-user folder when the
user has not set ``NUMBA_CACHE_DIR`` and the package folder is not writable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numba

_PKG_DIR = Path(__file__).resolve().parent


def _configure_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    if os.access(_PKG_DIR, os.W_OK) and os.access(_PKG_DIR / "sde", os.W_OK):
        return
    candidates = []
    home = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    candidates.append(Path(home) / "sde_toolkit" / "numba")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    candidates.append(Path(tempfile.gettempdir()) / f"sde_toolkit-numba-{uid}")
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(c, os.W_OK):
            numba.config.CACHE_DIR = str(c)
            return


_configure_cache_dir()

JIT_OPTIONS = {"nogil": True, "fastmath": False, "error_model": "numpy"}


def jit(func=None, *, cache: bool = False, **overrides):
    """``numba.njit`` with the project's flags. Use as ``@jit`` or ``@jit(cache=True)``."""
    if overrides.get("fastmath"):
        raise ValueError("fastmath is forbidden in sde_toolkit kernels: it hides NaN/inf (divergence checks)")
    options = dict(JIT_OPTIONS)
    options.update(overrides)
    options["cache"] = cache

    def wrap(f):
        return numba.njit(**options)(f)

    if func is None:
        return wrap
    return wrap(func)
