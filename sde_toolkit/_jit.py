"""The project-wide Numba wrapper.

One place sets the compilation flags for every kernel:

* ``fastmath`` is never enabled: it lets LLVM assume values are finite, which turns divergence checks
  (``np.isfinite``) into constants (numba #2919). A grep test guards this.
* ``nogil=True`` so the fused drivers can run chunks on a thread pool; determinism comes from per-chunk
  random streams, never from ``prange`` reductions.
* ``error_model="numpy"`` so a division by zero yields inf/NaN (caught by the divergence check) instead of
  raising inside a worker thread.

Composition: models never compile. Their Numba faces are factories that take the driver's ``jit`` (here
:func:`piece`: ``inline="always"``, so model kernels are inlined at the Numba IR level into the driver's chunk
kernel, with no call per particle); the driver compiles the composed kernel once with :func:`compile_kernel`,
which keys Numba's disk cache by a fingerprint of the kernel and everything it closes over. That key is the
only place where the project touches Numba's cache internals.

Caching: Numba's cache index files are pickles, so a cache folder is trusted code. When the user has not set
``NUMBA_CACHE_DIR`` and the package folder is not writable (a read-only install, where Numba's default locator
fails with "cannot cache function ... no locator"), a folder is used only if this user owns it and nobody else
can write to it (:func:`_private_dir`): ``$XDG_CACHE_HOME/sde_toolkit/numba`` (or ``~/.cache/...``), else
``$TMPDIR/sde_toolkit-numba-<uid>``, created with mode 0700. A candidate that exists but fails the check (owned by
someone else, or group/world-writable: a planted index could be unpickled) is skipped, and when none qualifies a
fresh private temporary folder is used for this process, with a one-line notice on stderr.
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import tempfile
import types
import weakref
from pathlib import Path
from typing import Any

import numba
import numpy as np

_PKG_DIR = Path(__file__).resolve().parent

# numba.config creates its settings (CACHE_DIR, DISABLE_JIT, NUMBA_NUM_THREADS, ...) at import time from the
# environment, as module globals no type checker can see: the package reads and writes them through this
# untyped handle.
numba_config: Any = numba.config


def _private_dir(path: Path) -> bool:
    """True when ``path`` is (or was just created as) a folder owned by this user that no one else can write."""
    try:
        path.mkdir(parents=True, mode=0o700, exist_ok=True)
        st = path.lstat()
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):  # a symlink or a file planted under the name
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not (st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)) and os.access(path, os.W_OK)


def _configure_cache_dir() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):  # the user's own choice
        return
    if os.access(_PKG_DIR, os.W_OK) and os.access(_PKG_DIR / "sde", os.W_OK):
        return  # Numba's default: __pycache__ next to the package's sources
    home = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    candidates = [Path(home) / "sde_toolkit" / "numba", Path(tempfile.gettempdir()) / f"sde_toolkit-numba-{uid}"]
    for c in candidates:
        if _private_dir(c):
            numba_config.CACHE_DIR = str(c)
            return
    fresh = tempfile.mkdtemp(prefix="sde_toolkit-numba-")  # mode 0700, ours alone; lives for this process
    numba_config.CACHE_DIR = fresh
    print(f"sde_toolkit: no private Numba cache folder ({', '.join(str(c) for c in candidates)} are not owned by "
          f"you or are writable by others); compiling into {fresh} for this process", file=sys.stderr)


_configure_cache_dir()

JIT_OPTIONS: dict[str, Any] = {"nogil": True, "fastmath": False, "error_model": "numpy"}


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


def piece(func):
    """The driver's ``jit`` for model kernels: the project's flags plus ``inline="always"``."""
    return jit(func, inline="always")


# ------------------------------------------------------------------------------------------------ kernel cache
_STATS = {"compiled": 0, "cached": 0, "uncacheable": 0}
_KERNELS: weakref.WeakSet = weakref.WeakSet()


class _Uncacheable(Exception):
    pass


def _code_fp(code: types.CodeType, names: set) -> tuple:
    names.update(code.co_names)
    consts = tuple(_code_fp(c, names) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts)
    return (hashlib.sha256(code.co_code).hexdigest(), consts, code.co_names, code.co_freevars)


def fingerprint(obj, depth: int = 0):
    """A deterministic description of a kernel and everything it closes over (codes, captured floats and
    arrays, called dispatchers). Numba's own cache key pickles closure cells, and a pickled dispatcher carries
    a random uuid, so closure-built kernels would never hit the cache across processes; this key does."""
    from numba.core.dispatcher import Dispatcher

    if depth > 60:
        raise _Uncacheable("too deep")
    if isinstance(obj, Dispatcher):
        return ("dispatcher", fingerprint(obj.py_func, depth + 1), repr(sorted(obj.targetoptions.items())))
    if isinstance(obj, types.FunctionType):
        names: set = set()
        code = _code_fp(obj.__code__, names)
        cells = tuple(fingerprint(c.cell_contents, depth + 1) for c in (obj.__closure__ or ()))
        g = obj.__globals__
        globs = tuple((n, fingerprint(g[n], depth + 1)) for n in sorted(names) if n in g)
        return ("function", obj.__qualname__, code, cells, globs)
    if isinstance(obj, types.ModuleType):
        return ("module", obj.__name__)
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest())
    if obj is None or isinstance(obj, (bool, int, float, complex, str, np.number, np.bool_)):
        return ("value", type(obj).__name__, repr(obj))
    if isinstance(obj, tuple):
        return tuple(fingerprint(o, depth + 1) for o in obj)
    if isinstance(obj, (types.BuiltinFunctionType, type)):
        return ("builtin", getattr(obj, "__module__", None), obj.__qualname__)
    if type(obj).__module__.startswith("numba"):  # intrinsics and other numba-level callables
        return ("numba", type(obj).__qualname__, repr(getattr(obj, "_name", obj)))
    raise _Uncacheable(type(obj).__name__)


def _fingerprint_cache(py_func, fp: str):
    from numba.core.caching import FunctionCache

    class _FingerprintCache(FunctionCache):
        """Numba's file cache with the index key replaced by the kernel's fingerprint (stable across processes)."""

        def _index_key(self, sig, codegen):
            return (sig, codegen.magic_tuple(), fp)

    return _FingerprintCache(py_func)


def compile_kernel(py_func):
    """Compile a driver kernel with the project's flags, cached on disk under its fingerprint when possible."""
    from numba.core.dispatcher import Dispatcher

    disp = jit(py_func)
    _STATS["compiled"] += 1
    if not isinstance(disp, Dispatcher):  # NUMBA_DISABLE_JIT
        return disp
    try:
        fp = hashlib.sha256(repr(fingerprint(py_func)).encode()).hexdigest()
        cache = _fingerprint_cache(py_func, fp)
    except (_Uncacheable, RuntimeError):  # RuntimeError: no writable cache locator (read-only install)
        _STATS["uncacheable"] += 1
        return disp
    # numba's Dispatcher.enable_caching does the same with its default key; ``_cache`` is private to numba
    # (not in its type stubs), hence the untyped handle
    target: Any = disp
    target._cache = cache
    _STATS["cached"] += 1
    _KERNELS.add(disp)
    return disp


def cache_stats() -> dict:
    """Kernels compiled in this process, how many are on Numba's disk cache, and disk-cache hits."""
    hits = sum(sum(k.stats.cache_hits.values()) for k in list(_KERNELS))
    return dict(_STATS, hits=hits)
