"""Validation at the public boundary, shared by every engine: one definition of each check and its message.

Every function raises ``TypeError`` (wrong kind of value) or ``ValueError`` (impossible value) naming the argument
and the offending value or index, and returns the value normalized (a float, an int, a float64 array).
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np


def number(value, name: str) -> float:
    """A real, finite number (``bool`` and strings are refused, also numeric strings such as ``"0.1"``)."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or not isinstance(value, (numbers.Real, np.number)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if isinstance(value, (complex, np.complexfloating)):
        raise TypeError(f"{name} must be a real number, got complex {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def positive(value, name: str) -> float:
    """A finite number > 0."""
    v = number(value, name)
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def nonnegative(value, name: str) -> float:
    """A finite number >= 0."""
    v = number(value, name)
    if not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return v


def count(value, name: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer ``>= minimum`` (``bool`` and floats such as ``10.0`` are refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, got {value!r}")
    return v


def float_array(value, name: str) -> np.ndarray:
    """A finite, real float64 array (complex input is refused, not silently cast)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got a complex array")
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        if arr.ndim == 0:
            raise ValueError(f"{name} must be finite, got {float(arr)}")
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite: {name}{list(idx)} = {arr[idx]}")
    return arr


def states(value, dim: int | None, name: str = "x0") -> np.ndarray:
    """States ``(n, dim)`` (``(n,)`` accepted when ``dim`` is 1 or unknown): real, finite, at least one row.

    Returns a fresh C-contiguous float64 copy (callers integrate it in place).
    """
    arr = np.asarray(value)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got a complex array (the imaginary part would be dropped)")
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"{name} must be a real floating-point array, got dtype {arr.dtype}")
    x = np.array(arr, dtype=np.float64, copy=True)
    if x.ndim == 1 and dim in (None, 1):
        x = x[:, None]
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        want = f"(n_paths, {dim}) for this {dim}-dimensional model" if dim is not None else "(n_paths, dim)"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must hold at least one state (n_paths >= 1), got shape {arr.shape}")
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = (int(v) for v in bad[0])
        raise ValueError(f"{name} contains non-finite values ({bad.shape[0]} entries), first at {name}[{i}, {j}] = "
                         f"{x[i, j]}")
    return np.ascontiguousarray(x)


def check_psd(mat: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless ``mat`` is a valid noise amplitude: entries of a scalar or a vector >= 0; a
    symmetric matrix positive semidefinite; a diagonal matrix with entries >= 0."""
    if mat.ndim == 0:
        if mat < 0:
            raise ValueError(f"{name} must be >= 0, got {float(mat)}")
        return
    if mat.ndim == 1:
        bad = np.flatnonzero(mat < 0)
        if bad.size:
            raise ValueError(f"{name} must be >= 0, got {mat[bad[0]]} at index {int(bad[0])}")
        return
    if mat.ndim == 2 and mat.shape[0] == mat.shape[1]:
        if np.allclose(mat, np.diag(np.diag(mat))):
            d = np.diag(mat)
            bad = np.flatnonzero(d < 0)
            if bad.size:
                raise ValueError(f"{name} has a negative diagonal entry {d[bad[0]]} at index {int(bad[0])}")
        elif np.allclose(mat, mat.T):
            w = np.linalg.eigvalsh(mat)
            if w.min() < -1e-12 * max(1.0, abs(w).max()):
                raise ValueError(f"{name} is symmetric but not positive semidefinite (min eigenvalue {w.min():.3g})")


def available_memory() -> int:
    """Bytes of memory this process can still expect to get (``MemAvailable`` on Linux, else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 2**62


def require_memory(nbytes: float, what: str) -> None:
    """Refuse (``ValueError``) an allocation of ``nbytes`` that cannot fit, before trying it: an impossible size
    fails at the boundary with the numbers, not deep inside NumPy."""
    have = available_memory()
    if nbytes > have:
        raise ValueError(f"{what} needs {_human(nbytes)} of memory, but {_human(have)} is available; "
                         "reduce the size (or stream frames to a file with out= and a larger save_every)")


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def in_range_of(x: np.ndarray, dtype, name: str) -> np.ndarray:
    """``x`` (finite float64) cast to ``dtype``, refusing values beyond its range (they would become inf)."""
    dt = np.dtype(dtype)
    if dt == x.dtype:
        return x
    big = np.abs(x) > np.finfo(dt).max
    if big.any():
        row = int(np.argwhere(big)[0][0])
        raise ValueError(f"{name}[{row}] is beyond the range of {dt.name} (|x| > {np.finfo(dt).max:.4g})")
    return x.astype(dt)
