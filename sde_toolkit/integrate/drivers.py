"""The two drivers: fused Numba (per chunk of paths, on a thread pool of nogil kernels) and batched NumPy.

Both implement the same step formulas with the same operation order (signed step ``h``,
``dW = sqrt(|h|) z``):

* Euler–Maruyama: ``x + f h + g dW`` (diagonal), ``x + f h + g dW_0`` (scalar), ``x + f h + G dW`` (general).
* Milstein (diagonal): EM ``+ 0.5 g g' (dW^2 - |h|)``.
* exact / BAOAB: the model's transition or splitting kernel fed with ``z``.
* Heun (ODEs): ``x + h/2 (f(x, t) + f(x + h f(x, t), t + h))``.

A kernel advances one chunk over steps ``[k_a, k_b)`` (one noise block at most), writes the frames whose step is a
multiple of ``save_every`` (and the last step) into a frame buffer, and stops at the first step at which a
state is non-finite or exceeds ``max_abs``, returning that step (else -1).
"""

from __future__ import annotations

import hashlib
import math
import types
import weakref

import numpy as np
from numba.core.caching import FunctionCache
from numba.core.dispatcher import Dispatcher

from .._jit import jit

EM, MILSTEIN, EXACT, SPLIT, HEUN = 0, 1, 2, 3, 4
METHOD_CODES = {"euler_maruyama": EM, "milstein": MILSTEIN, "exact": EXACT, "baoab": SPLIT, "heun": HEUN}
NOISE_CODES = {"diagonal": 0, "scalar": 1, "general": 2}

_KERNELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


_STATS = {"built": 0, "cached": 0, "uncacheable": 0}


def fused_kernel(sde, method: str, h: float):
    """Compile (once per SDE object, method and step) the chunk kernel of the fused driver."""
    per_sde = _KERNELS.setdefault(sde, {})
    key = (method, h if method in ("exact", "baoab") else None)
    if key not in per_sde:
        per_sde[key] = _build_kernel(sde, method, h)
        _STATS["built"] += 1
    return per_sde[key]


def cache_stats() -> dict:
    """Kernels built in this process, how many could be put on Numba's disk cache, and disk-cache hits."""
    hits = 0
    for per_sde in list(_KERNELS.values()):
        for k in per_sde.values():
            if isinstance(k, Dispatcher):
                hits += sum(k.stats.cache_hits.values())
    return dict(_STATS, hits=hits)


class _Uncacheable(Exception):
    pass


def _code_fp(code: types.CodeType, names: set) -> tuple:
    names.update(code.co_names)
    consts = tuple(_code_fp(c, names) if isinstance(c, types.CodeType) else repr(c) for c in code.co_consts)
    return (hashlib.sha256(code.co_code).hexdigest(), consts, code.co_names, code.co_freevars)


def _fingerprint(obj, depth: int = 0):
    """A deterministic description of a kernel and everything it closes over (codes, captured floats and
    arrays, called dispatchers). Numba's own cache key pickles closure cells, and a pickled dispatcher carries
    a random uuid, so closure-built kernels would never hit the cache across processes; this key does."""
    if depth > 40:
        raise _Uncacheable("too deep")
    if isinstance(obj, Dispatcher):
        return ("dispatcher", _fingerprint(obj.py_func, depth + 1), repr(sorted(obj.targetoptions.items())))
    if isinstance(obj, types.FunctionType):
        names: set = set()
        code = _code_fp(obj.__code__, names)
        cells = tuple(_fingerprint(c.cell_contents, depth + 1) for c in (obj.__closure__ or ()))
        g = obj.__globals__
        globs = tuple((n, _fingerprint(g[n], depth + 1)) for n in sorted(names) if n in g)
        return ("function", obj.__qualname__, code, cells, globs)
    if isinstance(obj, types.ModuleType):
        return ("module", obj.__name__)
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest())
    if obj is None or isinstance(obj, (bool, int, float, complex, str, np.number, np.bool_)):
        return ("value", type(obj).__name__, repr(obj))
    if isinstance(obj, tuple):
        return tuple(_fingerprint(o, depth + 1) for o in obj)
    if isinstance(obj, (types.BuiltinFunctionType, type)):
        return ("builtin", getattr(obj, "__module__", None), obj.__qualname__)
    raise _Uncacheable(type(obj).__name__)


class _FingerprintCache(FunctionCache):
    """Numba's file cache with the index key replaced by :func:`_fingerprint` (stable across processes)."""

    def __init__(self, py_func, fingerprint: str):
        super().__init__(py_func)
        self._fingerprint = fingerprint

    def _index_key(self, sig, codegen):
        return (sig, codegen.magic_tuple(), self._fingerprint)


def _enable_cache(disp, py_func) -> None:
    if not isinstance(disp, Dispatcher):  # NUMBA_DISABLE_JIT
        return
    try:
        fp = hashlib.sha256(repr(_fingerprint(py_func)).encode()).hexdigest()
    except _Uncacheable:
        _STATS["uncacheable"] += 1
        return
    try:
        cache = _FingerprintCache(py_func, fp)
    except RuntimeError:  # no writable cache locator (read-only install without NUMBA_CACHE_DIR): compile only
        _STATS["uncacheable"] += 1
        return
    disp._cache = cache  # numba's Dispatcher.enable_caching does the same with its default key
    _STATS["cached"] += 1


def _inlined(dispatcher, memo: dict | None = None):
    """The same per-particle kernel, recompiled to be inlined at the Numba IR level into the chunk kernel,
    together with every Numba function it calls (found in its closure cells and globals, recursively).

    Why: a call through a separately compiled dispatcher on a row view costs ~8 ns per particle (measured:
    a 2-D double-well gradient 9.5 ns called, 1.9 ns inlined), more than the RNG itself; inlined, the
    per-particle work of OU or a polynomial potential drops to a few tenths of a ns.
    """
    if not isinstance(dispatcher, Dispatcher):  # NUMBA_DISABLE_JIT: plain Python functions
        return dispatcher
    memo = {} if memo is None else memo
    if id(dispatcher) in memo:
        return memo[id(dispatcher)]
    f = dispatcher.py_func
    cells = None
    if f.__closure__:
        cells = tuple(types.CellType(_inlined(c.cell_contents, memo) if isinstance(c.cell_contents, Dispatcher)
                                     else c.cell_contents) for c in f.__closure__)
    names: set = set()
    _code_fp(f.__code__, names)
    g = f.__globals__
    repl = {n: _inlined(g[n], memo) for n in names if n in g and isinstance(g[n], Dispatcher)}
    if repl:
        g = dict(g)
        g.update(repl)
    nf = types.FunctionType(f.__code__, g, f.__name__, f.__defaults__, cells)
    nf.__qualname__ = f.__qualname__
    res = jit(nf, inline="always")
    memo[id(dispatcher)] = res
    return res


def _build_kernel(sde, method: str, h_fixed: float):
    face = sde.numba_face()
    drift = _inlined(face.drift)
    diff = _inlined(face.diffusion)
    dim = sde.dim
    m = sde.noise_dim
    ncode = NOISE_CODES[sde.noise_type]
    mcode = METHOD_CODES[method]
    gdx = _inlined(face.diffusion_dx) if face.diffusion_dx is not None else diff
    if mcode == EXACT:
        special = _inlined(face.exact_step(h_fixed))
    elif mcode == SPLIT:
        special = _inlined(face.splitting_step(h_fixed))
    else:
        special = diff  # unused placeholder of a compatible type
    general = ncode == 2
    additive = bool(sde.additive) and not general
    draws = 0 if mcode == HEUN else m
    gcols = m if general else 1

    # Layout (why): per step, (1) all normals of the chunk are drawn into a flat buffer (the RNG loop, which
    # cannot vectorize), (2) the per-particle model kernels fill drift/diffusion buffers, (3) a flat update loop
    # combines them. (3) has no calls and no branches, so LLVM vectorizes it; the finiteness test is a
    # branch-free count, and only a step with a bad count pays for a second pass that names the paths.
    def kernel(x, k_a, k_b, t0, h, t_last, n_steps, gen, inc, use_inc, save_every, frames, frame0, max_abs, bad):
        n = x.shape[0]
        sqh = math.sqrt(abs(h))
        nz = n * max(draws, 1)
        zf = np.empty(nz)
        z = zf.reshape((n, max(draws, 1)))
        F = np.empty((n, dim))
        F2 = np.empty((n, dim))
        XN = np.empty((n, dim))
        GP = np.empty((n, dim))
        G = np.empty((n, dim, gcols))
        xp = np.empty(dim)
        g0 = np.empty(dim)
        for k in range(k_a, k_b):
            t = t0 + k * h
            t_next = t_last if k + 1 == n_steps else t0 + (k + 1) * h
            if draws > 0:
                if use_inc:
                    # increments are dW; the step formulas below take dW = sqh * z for EM and z for exact/split
                    if mcode == EM or mcode == MILSTEIN:
                        for i in range(n):
                            for j in range(m):
                                z[i, j] = inc[k - k_a, i, j]
                    else:
                        for i in range(n):
                            for j in range(m):
                                z[i, j] = inc[k - k_a, i, j] / sqh
                else:
                    for q in range(nz):
                        zf[q] = gen.standard_normal()
            # dW = sqh * z for drawn normals, else the given increment; ``g * dW`` then rounds exactly like the
            # batched driver's ``g * (sqh * z)``. The separate scaling pass of earlier versions is folded in.
            fresh = draws > 0 and not use_inc and (mcode == EM or mcode == MILSTEIN)
            n_bad = 0
            if mcode == EM or mcode == MILSTEIN:
                if general:
                    for i in range(n):
                        xi = x[i]
                        drift(xi, t, F[i])
                        diff(xi, t, G[i])
                    for i in range(n):
                        for r in range(dim):
                            acc = 0.0
                            for j in range(m):
                                acc += G[i, r, j] * (sqh * z[i, j] if fresh else z[i, j])
                            XN[i, r] = x[i, r] + F[i, r] * h + acc
                else:
                    if additive:
                        # state-independent noise (declared by the model): one evaluation per step
                        diff(x[0], t, g0)
                    for i in range(n):
                        xi = x[i]
                        drift(xi, t, F[i])
                        if not additive:
                            diff(xi, t, GP[i])
                        if mcode == MILSTEIN:
                            gdx(xi, t, F2[i])
                    ah = abs(h)
                    # one flat pass: update, Milstein term, finiteness count and store
                    for i in range(n):
                        for r in range(dim):
                            c = 0 if ncode == 1 else r
                            dw = sqh * z[i, c] if fresh else z[i, c]
                            g = g0[r] if additive else GP[i, r]
                            v = x[i, r] + F[i, r] * h + g * dw
                            if mcode == MILSTEIN:
                                v += 0.5 * g * F2[i, r] * (dw * dw - ah)
                            n_bad += 0 if abs(v) <= max_abs else 1  # NaN and inf fail the comparison
                            x[i, r] = v
            elif mcode == EXACT or mcode == SPLIT:
                for i in range(n):
                    special(x[i], t, z[i], XN[i])
            else:  # HEUN
                for i in range(n):
                    drift(x[i], t, F[i])
                for i in range(n):
                    for r in range(dim):
                        xp[r] = x[i, r] + h * F[i, r]
                    drift(xp, t_next, F2[i])
                for i in range(n):
                    for r in range(dim):
                        XN[i, r] = x[i, r] + 0.5 * h * (F[i, r] + F2[i, r])
            if not ((mcode == EM or mcode == MILSTEIN) and not general):
                for i in range(n):
                    for r in range(dim):
                        v = XN[i, r]
                        n_bad += 0 if abs(v) <= max_abs else 1  # NaN and inf fail the comparison
                        x[i, r] = v
            if n_bad > 0:
                for i in range(n):
                    for r in range(dim):
                        if not (abs(x[i, r]) <= max_abs):
                            bad[i] = True
                return k + 1
            kk = k + 1
            if kk % save_every == 0 or kk == n_steps:
                if kk % save_every == 0:
                    fi = (kk - frame0) // save_every - 1
                else:
                    fi = frames.shape[0] - 1
                for i in range(n):
                    for r in range(dim):
                        frames[fi, i, r] = x[i, r]
        return -1

    disp = jit(kernel)
    _enable_cache(disp, kernel)
    return disp


def batched_step(sde, method: str, x: np.ndarray, t: float, h: float, t_next: float, dw: np.ndarray | None,
                 z: np.ndarray | None) -> np.ndarray:
    """One step of the batched (NumPy) driver on the whole ensemble; mirrors the fused kernel's formulas."""
    if method in ("euler_maruyama", "milstein"):
        f = np.asarray(sde.drift(x, t), dtype=np.float64)
        g = np.asarray(sde.diffusion(x, t), dtype=np.float64)
        if sde.noise_type == "general":
            xn = x + f * h + np.einsum("nij,nj->ni", g, dw)
        elif sde.noise_type == "scalar":
            xn = x + f * h + g * dw[:, :1]
        else:
            xn = x + f * h + g * dw
            if method == "milstein":
                gp = np.asarray(sde.diffusion_dx(x, t), dtype=np.float64)
                xn = xn + 0.5 * g * gp * (dw * dw - abs(h))
        return xn
    if method == "exact":
        return sde.exact_step(x, t, h, z)
    if method == "baoab":
        return sde.splitting_step(x, t, h, z)
    if method == "heun":
        f = np.asarray(sde.drift(x, t), dtype=np.float64)
        xp = x + h * f
        f2 = np.asarray(sde.drift(xp, t_next), dtype=np.float64)
        return x + 0.5 * h * (f + f2)
    raise ValueError(f"unknown method {method!r}")
