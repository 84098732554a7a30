"""Potentials ``V(x)`` with an exact gradient, on ``(n, dim)`` arrays, plus a Numba face.

Every potential provides ``energy(x) -> (n,)`` and ``grad(x) -> (n, dim)`` (NumPy), and
``numba_energy(jit)`` / ``numba_grad(jit)`` returning per-point kernels ``energy(x_row) -> float`` and
``grad(x_row, out_row)`` compiled by the given ``jit`` (the project's plain jit by default; the drivers pass
their inlining jit). Potentials that declare ``has_grad_block`` also give ``numba_grad_block(jit, dim)``: a kernel
``grad_block(X, G)`` over a block of rows (``G[i] = grad V(X[i])``, the same operations as ``grad``, so the same
bits) that indexes flat C-contiguous views ``X.reshape(n * dim)[dim * i + r]`` with a constant stride (2-D indexing
has a run-time row stride, which defeats LLVM's vectorizer beyond ``dim = 1``), so it vectorizes across particles. ``dim`` is ``None`` for
coordinate-wise potentials that work in any dimension (a sum over
coordinates). Potentials are frozen and value-hashed like the SDEs (:class:`~sde_toolkit.sde.base.Model`).
"""

from __future__ import annotations

import abc
import math

import numpy as np

from .. import _vmath
from .._jit import jit as _default_jit
from .base import Model

__all__ = [
    "Potential",
    "Harmonic",
    "DoubleWell",
    "GaussianMixture",
    "MullerBrown",
    "ExpressionPotential",
    "from_expression",
    "ScorePotential",
]


def _num(value, name: str, positive: bool = False) -> float:
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (positive and not v > 0):
        raise ValueError(f"{name} must be a {'positive ' if positive else ''}finite number, got {value!r}")
    return v


class Potential(Model, abc.ABC):
    """Abstract potential energy ``V: R^dim -> R`` (frozen, value-hashed)."""

    dim: int | None = None
    has_numba_face = True
    has_energy = True
    has_grad_block: bool = False
    # numba_grad / numba_grad_block take dtype=np.float32 (float32 constants: float32 arithmetic on float32 rows)
    float32_grad: bool = False

    @abc.abstractmethod
    def energy(self, x) -> np.ndarray: ...

    @abc.abstractmethod
    def grad(self, x) -> np.ndarray: ...

    @abc.abstractmethod
    def numba_energy(self, jit=_default_jit): ...

    @abc.abstractmethod
    def numba_grad(self, jit=_default_jit): ...

    def numba_grad_block(self, jit=_default_jit, dim: int = 1):
        """``grad_block(X, G)``: ``G[i, :] = grad V(X[i, :])`` for every row of an ``(n, dim)`` block
        (potentials with ``has_grad_block``)."""
        raise NotImplementedError(f"{type(self).__name__} has no block gradient (has_grad_block is False)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in self.params().items()) + ")"

    def _as2d(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None] if (self.dim in (None, 1)) else x[None, :]
        if x.ndim != 2:
            raise ValueError(f"x must have shape (n, dim), got {x.shape}")
        if self.dim is not None and x.shape[1] != self.dim:
            raise ValueError(f"{type(self).__name__} is {self.dim}-dimensional, got x with shape {x.shape}")
        return x

    def check_dim(self, dim: int) -> None:
        if self.dim is not None and dim != self.dim:
            raise ValueError(f"{type(self).__name__} is {self.dim}-dimensional, not {dim}-dimensional")


class Harmonic(Potential):
    """``V(x) = k/2 |x - center|^2`` (``k``, ``center`` scalars; any dimension)."""

    _fields = ("k", "center")
    has_grad_block = True
    float32_grad = True

    def __init__(self, k: float = 1.0, center: float = 0.0):
        self.k = _num(k, "Harmonic: k", positive=True)
        self.center = _num(center, "Harmonic: center")

    def energy(self, x):
        x = self._as2d(x)
        return 0.5 * self.k * np.sum((x - self.center) ** 2, axis=1)

    def grad(self, x):
        x = self._as2d(x)
        return self.k * (x - self.center)

    def numba_energy(self, jit=_default_jit):
        k, c = float(self.k), float(self.center)

        def energy(x):
            s = 0.0
            for i in range(x.shape[0]):
                s += (x[i] - c) ** 2
            return 0.5 * k * s

        return jit(energy)

    def numba_grad(self, jit=_default_jit, dtype=np.float64):
        k, c = dtype(self.k), dtype(self.center)

        def grad(x, out):
            for i in range(x.shape[0]):
                out[i] = k * (x[i] - c)

        return jit(grad)

    def numba_grad_block(self, jit=_default_jit, dim: int = 1, dtype=np.float64):
        k, c, d = dtype(self.k), dtype(self.center), int(dim)

        def grad_block(X, G):
            m = X.shape[0] * d
            Xf, Gf = X.reshape(m), G.reshape(m)  # flat: one loop LLVM vectorizes whatever d is
            for q in range(m):
                Gf[q] = k * (Xf[q] - c)

        return jit(grad_block)


class DoubleWell(Potential):
    """``V(x) = a (x^2 - b)^2`` in 1-D; the sum over coordinates in nD. Minima at ``+-sqrt(b)``, barrier ``a b^2``."""

    _fields = ("a", "b")
    has_grad_block = True
    float32_grad = True

    def __init__(self, a: float = 1.0, b: float = 1.0):
        self.a = _num(a, "DoubleWell: a", positive=True)
        self.b = _num(b, "DoubleWell: b")

    def energy(self, x):
        x = self._as2d(x)
        return self.a * np.sum((x**2 - self.b) ** 2, axis=1)

    def grad(self, x):
        x = self._as2d(x)
        return 4.0 * self.a * x * (x**2 - self.b)

    def numba_energy(self, jit=_default_jit):
        a, b = float(self.a), float(self.b)

        def energy(x):
            s = 0.0
            for i in range(x.shape[0]):
                s += (x[i] * x[i] - b) ** 2
            return a * s

        return jit(energy)

    def numba_grad(self, jit=_default_jit, dtype=np.float64):
        a4, b = dtype(4.0 * float(self.a)), dtype(self.b)

        def grad(x, out):
            for i in range(x.shape[0]):
                out[i] = a4 * x[i] * (x[i] * x[i] - b)

        return jit(grad)

    def numba_grad_block(self, jit=_default_jit, dim: int = 1, dtype=np.float64):
        a4, b, d = dtype(4.0 * float(self.a)), dtype(self.b), int(dim)

        def grad_block(X, G):
            m = X.shape[0] * d
            Xf, Gf = X.reshape(m), G.reshape(m)
            for q in range(m):
                Gf[q] = a4 * Xf[q] * (Xf[q] * Xf[q] - b)

        return jit(grad_block)


class GaussianMixture(Potential):
    """``V(x) = -log sum_k w_k N(x; m_k, C_k)`` (normalized weights), so ``exp(-V)`` is the mixture density."""

    _fields = ("weights", "means", "covs")

    def __init__(self, weights, means, covs):
        w = np.asarray(weights, dtype=np.float64)
        m = np.atleast_2d(np.asarray(means, dtype=np.float64))
        if m.shape[0] != w.shape[0] and m.shape[1] == w.shape[0] and m.shape[0] == 1:
            m = m.T  # 1-D means given as a flat list
        c = np.asarray(covs, dtype=np.float64)
        K, d = m.shape
        if w.ndim != 1 or w.shape[0] != K:
            raise ValueError(f"GaussianMixture: {w.shape[0] if w.ndim == 1 else w.shape} weights for {K} means")
        if np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"GaussianMixture: weights must be non-negative and finite, got {w}")
        if c.ndim == 0:
            c = np.broadcast_to(c * np.eye(d), (K, d, d)).copy()
        elif c.ndim == 1 and c.shape[0] == K:
            c = c[:, None, None] * np.eye(d)[None]
        elif c.ndim == 2 and c.shape == (d, d):
            c = np.broadcast_to(c, (K, d, d)).copy()
        if c.shape != (K, d, d):
            raise ValueError(f"GaussianMixture: covs must be (K, d, d) = {(K, d, d)}, got {c.shape}")
        for k in range(K):
            if not np.allclose(c[k], c[k].T):
                raise ValueError(f"GaussianMixture: covariance {k} is not symmetric")
            if np.linalg.eigvalsh(c[k]).min() <= 0:
                raise ValueError(f"GaussianMixture: covariance {k} is not positive definite")
        self.weights = w / w.sum()
        self.means = m
        self.covs = c
        self.dim = d
        self.precs = np.linalg.inv(c)
        with np.errstate(divide="ignore"):  # a zero weight gives log 0 = -inf: a component that adds nothing
            self.log_norm = np.log(self.weights) - 0.5 * (d * np.log(2 * np.pi) + np.linalg.slogdet(c)[1])

    def _logcomp(self, x):
        diff = x[:, None, :] - self.means[None]  # (n, K, d)
        maha = np.einsum("nkd,kde,nke->nk", diff, self.precs, diff)
        return self.log_norm[None] - 0.5 * maha, diff

    def energy(self, x):
        x = self._as2d(x)
        lc, _ = self._logcomp(x)
        mx = lc.max(axis=1, keepdims=True)
        return -(mx[:, 0] + np.log(np.exp(lc - mx).sum(axis=1)))

    def grad(self, x):
        x = self._as2d(x)
        lc, diff = self._logcomp(x)
        r = np.exp(lc - lc.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)
        return np.einsum("nk,kde,nke->nd", r, self.precs, diff)

    # Numba face: allocation-free. An online log-sum-exp keeps a running maximum ``mx`` of the log-components and
    # the sum ``s = sum_k exp(lc_k - mx)`` (and, for the gradient, ``sum_k exp(lc_k - mx) P_k (x - m_k)`` in
    # ``out``); when a larger ``lc`` arrives, what was accumulated is rescaled by ``exp(mx_old - mx_new)``. Terms
    # are never exponentiated unshifted, so far-apart components do not underflow to ``log(0)``.
    def numba_energy(self, jit=_default_jit):
        means, precs, log_norm = self.means.copy(), self.precs.copy(), self.log_norm.copy()
        vexp, vlog = _vmath.exp, _vmath.log
        K, d = means.shape

        def energy(x):
            mx = -math.inf
            s = 0.0
            for k in range(K):
                q = 0.0
                for i in range(d):
                    di = x[i] - means[k, i]
                    for j in range(d):
                        q += di * precs[k, i, j] * (x[j] - means[k, j])
                lc = log_norm[k] - 0.5 * q
                if lc > mx:
                    s = s * vexp(mx - lc) + 1.0
                    mx = lc
                elif lc > -math.inf:  # a zero-weight component (lc = -inf) adds nothing
                    s += vexp(lc - mx)
            return -(mx + vlog(s))

        return jit(energy)

    def numba_grad(self, jit=_default_jit):
        means, precs, log_norm = self.means.copy(), self.precs.copy(), self.log_norm.copy()
        vexp = _vmath.exp
        K, d = means.shape

        def grad(x, out):
            for i in range(d):
                out[i] = 0.0
            mx = -math.inf
            s = 0.0
            for k in range(K):
                q = 0.0
                for i in range(d):
                    di = x[i] - means[k, i]
                    for j in range(d):
                        q += di * precs[k, i, j] * (x[j] - means[k, j])
                lc = log_norm[k] - 0.5 * q
                if lc > mx:
                    c = vexp(mx - lc)
                    s = s * c + 1.0
                    for i in range(d):
                        out[i] *= c
                    mx = lc
                    w = 1.0
                elif lc > -math.inf:
                    w = vexp(lc - mx)
                    s += w
                else:
                    continue
                for i in range(d):
                    acc = 0.0
                    for j in range(d):
                        acc += precs[k, i, j] * (x[j] - means[k, j])
                    out[i] += w * acc
            inv = 1.0 / s
            for i in range(d):
                out[i] *= inv

        return jit(grad)


class MullerBrown(Potential):
    """The Müller–Brown potential (2-D), ``scale`` times the classic parameters (Müller & Brown 1979).

    Minima near (-0.558, 1.442), (0.623, 0.028), (-0.050, 0.467); classic energies are O(100), so
    ``scale=0.1`` or a high ``kT`` are common choices for sampling.
    """

    _fields = ("scale",)
    dim = 2
    has_grad_block = True
    A = (-200.0, -100.0, -170.0, 15.0)
    a = (-1.0, -1.0, -6.5, 0.7)
    b = (0.0, 0.0, 11.0, 0.6)
    c = (-10.0, -10.0, -6.5, 0.7)
    x0 = (1.0, 0.0, -0.5, -1.0)
    y0 = (0.0, 0.5, 1.5, 1.0)

    def __init__(self, scale: float = 1.0):
        self.scale = _num(scale, "MullerBrown: scale", positive=True)

    def _terms(self, x):
        A, a, b, c, x0, y0 = (np.asarray(v)[None] for v in (self.A, self.a, self.b, self.c, self.x0, self.y0))
        dx = x[:, :1] - x0
        dy = x[:, 1:2] - y0
        e = self.scale * A * np.exp(a * dx**2 + b * dx * dy + c * dy**2)
        return e, dx, dy, a, b, c

    def energy(self, x):
        x = self._as2d(x)
        e, *_ = self._terms(x)
        return e.sum(axis=1)

    def grad(self, x):
        x = self._as2d(x)
        e, dx, dy, a, b, c = self._terms(x)
        gx = (e * (2 * a * dx + b * dy)).sum(axis=1)
        gy = (e * (b * dx + 2 * c * dy)).sum(axis=1)
        return np.stack([gx, gy], axis=1)

    def _arrays(self):
        return tuple(np.array(v, dtype=np.float64) for v in (self.A, self.a, self.b, self.c, self.x0, self.y0))

    def numba_energy(self, jit=_default_jit):
        A, a, b, c, x0, y0 = self._arrays()
        vexp = _vmath.exp
        s = float(self.scale)

        def energy(x):
            e = 0.0
            for k in range(4):
                dx = x[0] - x0[k]
                dy = x[1] - y0[k]
                e += A[k] * vexp(a[k] * dx * dx + b[k] * dx * dy + c[k] * dy * dy)
            return s * e

        return jit(energy)

    def numba_grad(self, jit=_default_jit):
        A, a, b, c, x0, y0 = self._arrays()
        vexp = _vmath.exp
        s = float(self.scale)

        def grad(x, out):
            gx = 0.0
            gy = 0.0
            for k in range(4):
                dx = x[0] - x0[k]
                dy = x[1] - y0[k]
                e = A[k] * vexp(a[k] * dx * dx + b[k] * dx * dy + c[k] * dy * dy)
                gx += e * (2.0 * a[k] * dx + b[k] * dy)
                gy += e * (b[k] * dx + 2.0 * c[k] * dy)
            out[0] = s * gx
            out[1] = s * gy

        return jit(grad)

    def numba_grad_block(self, jit=_default_jit, dim: int = 2):
        self.check_dim(dim)
        A, a, b, c, x0, y0 = self._arrays()
        vexp = _vmath.exp
        s = float(self.scale)

        def grad_block(X, G):
            n = X.shape[0]
            Xf, Gf = X.reshape(2 * n), G.reshape(2 * n)  # flat with a constant stride: vectorizable
            for i in range(n):
                gx = 0.0
                gy = 0.0
                for k in range(4):
                    dx = Xf[2 * i] - x0[k]
                    dy = Xf[2 * i + 1] - y0[k]
                    e = A[k] * vexp(a[k] * dx * dx + b[k] * dx * dy + c[k] * dy * dy)
                    gx += e * (2.0 * a[k] * dx + b[k] * dy)
                    gy += e * (b[k] * dx + 2.0 * c[k] * dy)
                Gf[2 * i] = s * gx
                Gf[2 * i + 1] = s * gy

        return jit(grad_block)


# The Numba face of an expression is generated Python source: SymPy's code for the ``math`` module (the printer
# lambdify uses), with the functions that have a vectorizable kernel in :mod:`sde_toolkit._vmath` routed there
# (``exp log sin cos tanh``, and ``**`` with a non-integer exponent as ``pow``), so that loops over particles
# calling it can vectorize; the other whitelisted functions (tan, sinh, cosh, the inverse functions, erf, erfc,
# atan2) stay on ``math`` (scalar libm calls); ``sqrt`` and ``abs`` are LLVM intrinsics already. Common
# subexpressions are computed once (``sympy.cse``), and every ``sin(a)``/``cos(a)`` pair comes from one
# ``sincos(a)`` (one range reduction). Names in the source are internal (``_v0``, ``_t0``, ``_s0``...; variable
# names cannot start with ``_``), so no variable shadows a function.
def _numba_namespace(f32: bool = False) -> dict:
    ns = {k: getattr(math, k) for k in dir(math) if not k.startswith("_")}
    ns.update(exp=_vmath.exp, log=_vmath.log, sin=_vmath.sin, cos=_vmath.cos, tanh=_vmath.tanh, pow=_vmath.pow,
              sincos=_vmath.sincos, sincos_cw=_vmath.sincos_cw, _cwout=_vmath.cw_out)
    if f32:  # float32 rows: float32 constants, float32 sin/cos; exp/log/tanh/pow in float64, rounded once
        ns.update(_f=np.float32, sin=_vmath.sin_f32, cos=_vmath.cos_f32, sincos=_vmath.sincos_f32,
                  sincos_cw=_vmath.sincos_f32_cw, _cwout=_vmath.f32_cw_out, exp=_F32_WRAPPED["exp"],
                  log=_F32_WRAPPED["log"], tanh=_F32_WRAPPED["tanh"], pow=_F32_WRAPPED["pow"])
    return ns


def _f32_wrappers() -> dict:
    from .._jit import jit

    def exp(x):
        return np.float32(_vmath.exp(np.float64(x)))

    def log(x):
        return np.float32(_vmath.log(np.float64(x)))

    def tanh(x):
        return np.float32(_vmath.tanh(np.float64(x)))

    def pow(x, y):
        return np.float32(_vmath.pow(np.float64(x), np.float64(y)))

    return {f.__name__: jit(f, inline="always") for f in (exp, log, tanh, pow)}


_F32_WRAPPED = _f32_wrappers()


def _out_of_line_jit(func):
    from .._jit import jit

    return jit(func)


def _numba_source(name: str, syms, exprs, outputs: bool, block: bool = False, f32: bool = False) -> str:
    """The source of ``name(_x)`` returning ``exprs[0]`` (``outputs=False``) or ``name(_x, _out)`` writing
    ``_out[i] = exprs[i]``, for ``_x`` a row holding ``syms``; with ``block=True`` (``outputs`` only), the same
    statements in a loop over the rows of an ``(n, dim)`` block, ``_out[_i, k] = exprs[k](_x[_i])``.

    A block with sin/cos runs the Cody-Waite-only ``sincos_cw`` (it vectorizes on AVX2 hosts too, where the
    full-range one stays scalar) and reruns itself with the full-range ``sincos`` when an argument is out of its
    range (the same bits either way, so a row's value never depends on the other rows; see
    :mod:`sde_toolkit._vmath`).

    ``f32=True`` (float32 rows): numbers become float32 constants (``_f(...)``; a Python number would promote the
    arithmetic to float64), integer powers stay integer, and sin/cos are the float32 kernels."""
    import sympy as sp
    from sympy.printing.precedence import precedence
    from sympy.printing.pycode import PythonCodePrinter

    class _Printer(PythonCodePrinter):
        def _print_Pow(self, e, rational=False):
            p = e.exp
            if f32 and p.is_Integer:  # x**k with an int k: stays in the type of x
                return f"{self.parenthesize(e.base, precedence(e), strict=False)}**{int(p)}"
            if rational or p.is_Integer or p in (sp.S.Half, -sp.S.Half):  # x**k: multiplications; sqrt, 1/sqrt
                return super()._print_Pow(e, rational=rational)

            def arg(a):  # numbers as floats: the kernels take float64
                return repr(float(a)) if a.is_Number else self._print(a)

            return f"pow({arg(e.base)}, {arg(p)})"

        if f32:
            def _print_Float(self, e):
                return f"_f({float(e)!r})"

            def _print_Integer(self, e):
                return f"_f({int(e)})"

            def _print_Rational(self, e):
                return f"_f({float(e)!r})"

            def _print_NumberSymbol(self, e):
                return f"_f({float(e)!r})"

            _print_Pi = _print_Exp1 = _print_NumberSymbol

    printer = _Printer({"fully_qualified_modules": False, "inline": True, "allow_unknown_functions": True})
    inner = [sp.Symbol(f"_v{i}", real=True) for i in range(len(syms))]
    # the expressions are SymPy trees built by the whitelist parser (never text), so nothing is parsed here
    exprs = [(e if isinstance(e, sp.Basic) else sp.Float(float(e))).xreplace(dict(zip(syms, inner)))
             for e in exprs]
    repl, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_t"), order="none")
    ind = "        " if block else "    "
    D = len(syms)
    # Blocks: 1-D rows index ``_x[_i, 0]`` (LLVM speculates the unit row stride and vectorizes; measured faster
    # than a reshaped view, where the loop with sincos did not vectorize), wider rows flat views with a constant
    # stride (a run-time row stride defeats the vectorizer)
    flat = block and D > 1

    def xs(i):
        return f"_xf[{D} * _i + {i}]" if flat else (f"_x[_i, {i}]" if block else f"_x[{i}]")

    # statements: plain lines, or ("sincos", k, argument) rendered per variant below
    stmts: list = [f"_v{i} = {xs(i)}" for i in range(D)]
    pairs: dict = {}

    def lower(e):
        """``e`` with every sin/cos replaced by a name bound by a ``sincos`` line emitted before use."""
        sub = {}
        for f in sorted(e.atoms(sp.sin, sp.cos), key=sp.default_sort_key):
            a = lower(f.args[0])
            if a not in pairs:
                k = len(pairs)
                pairs[a] = (sp.Symbol(f"_s{k}"), sp.Symbol(f"_c{k}"))
                stmts.append(("sincos", k, printer.doprint(a)))
            sub[f] = pairs[a][0 if isinstance(f, sp.sin) else 1]
        return e.xreplace(sub)

    for sym, rhs in repl:
        rhs = lower(rhs)
        stmts.append(f"{sym} = {printer.doprint(rhs)}")
    reduced = [lower(e) for e in reduced]

    def render(fast: bool, ind: str) -> list[str]:
        out = []
        for st_ in stmts:
            if isinstance(st_, str):
                out.append(ind + st_)
            elif fast:
                _, k, a = st_
                out += [f"{ind}_a{k} = {a}", f"{ind}_s{k}, _c{k} = sincos_cw(_a{k})", f"{ind}_bad += _cwout(_a{k})"]
            else:
                _, k, a = st_
                out.append(f"{ind}_s{k}, _c{k} = sincos({a})")
        return out

    if block:
        if flat:
            stores = [f"_of[{D} * _i + {i}] = {printer.doprint(e)}" for i, e in enumerate(reduced)]
            head = (f"def {name}(_x, _out):\n    _n = _x.shape[0]\n    _xf = _x.reshape({D} * _n)\n"
                    f"    _of = _out.reshape({D} * _n)\n")
        else:
            stores = [f"_out[_i, {i}] = {printer.doprint(e)}" for i, e in enumerate(reduced)]
            head = f"def {name}(_x, _out):\n    _n = _x.shape[0]\n"
        full = ["    for _i in range(_n):"] + render(False, ind) + [ind + t for t in stores]
        if not pairs:
            return head + "\n".join(full) + "\n"
        # the optimistic Cody-Waite loop, and the full-range rerun when it did not apply: a separate function
        # ``_full_<name>`` that the caller compiles out of line (inlined, it would double the kernel's compile time)
        fast = (["    _bad = 0", "    for _i in range(_n):"] + render(True, ind) + [ind + t for t in stores]
                + ["    if _bad > 0:", f"        _full_{name}(_x, _out)"])
        return (head.replace(f"def {name}(", f"def _full_{name}(") + "\n".join(full) + "\n\n\n"
                + head + "\n".join(fast) + "\n")
    lines = render(False, ind)
    if outputs:
        lines += [f"    _out[{i}] = {printer.doprint(e)}" for i, e in enumerate(reduced)]
        return f"def {name}(_x, _out):\n" + "\n".join(lines) + "\n"
    return f"def {name}(_x):\n" + "\n".join(lines) + f"\n    return {printer.doprint(reduced[0])}\n"


class ExpressionPotential(Potential):
    """A potential from an expression string; the gradient is differentiated exactly by SymPy.

    The string is parsed by a whitelist grammar (numbers, the variables, ``+ - * / **``, the functions and
    constants of :mod:`sde_toolkit.sde._expr`) and never evaluated as Python: configs and stored files can hold
    expressions safely. Anything else raises ``ValueError`` naming the token and its position.

    Args:
        expression: a string such as ``"0.1*x**2 - log(0.2 + cos(2*x)**2)"``.
        variables: coordinate names, one per dimension (``("x",)``, ``("x", "y")``, ``("x", "y", "z")``).
    """

    _fields = ("expression", "variables")
    dim: int  # always known: one coordinate per variable
    has_grad_block = True
    float32_grad = True

    def __init__(self, expression: str, variables=("x",)):
        import sympy as sp

        from ._expr import parse

        if isinstance(variables, str):
            variables = tuple(v.strip() for v in variables.replace(",", " ").split())
        variables = tuple(variables)
        if not variables:
            raise ValueError("from_expression: need at least one variable")
        expr, syms = parse(expression, variables)  # whitelist grammar: nothing is evaluated as Python
        self.expression = expression
        self.variables = variables
        self.dim = len(variables)
        self._expr = expr
        self._grad_exprs = [sp.diff(expr, s) for s in syms]
        self._syms = syms
        self._f_np = sp.lambdify(syms, expr, modules=["scipy", "numpy"])  # scipy: erf, erfc on arrays
        self._g_np = [sp.lambdify(syms, g, modules=["scipy", "numpy"]) for g in self._grad_exprs]

    def __repr__(self):
        return f"from_expression({self.expression!r}, variables={self.variables})"

    def energy(self, x):
        x = self._as2d(x)
        cols = [x[:, i] for i in range(self.dim)]
        return np.broadcast_to(np.asarray(self._f_np(*cols), dtype=np.float64), (x.shape[0],)).copy()

    def grad(self, x):
        x = self._as2d(x)
        cols = [x[:, i] for i in range(self.dim)]
        out = np.empty_like(x)
        for i, g in enumerate(self._g_np):
            out[:, i] = g(*cols)
        return out

    def numba_energy(self, jit=_default_jit):
        ns = _numba_namespace()
        exec(_numba_source("energy", self._syms, [self._expr], outputs=False), ns)  # whitelisted, printed by SymPy
        return jit(ns["energy"])

    def numba_grad(self, jit=_default_jit, dtype=np.float64):
        f32 = dtype is np.float32
        ns = _numba_namespace(f32)
        exec(_numba_source("grad", self._syms, self._grad_exprs, outputs=True, f32=f32), ns)
        return jit(ns["grad"])

    def numba_grad_block(self, jit=_default_jit, dim: int | None = None, dtype=np.float64):
        if dim is not None:
            self.check_dim(dim)
        f32 = dtype is np.float32
        ns = _numba_namespace(f32)
        exec(_numba_source("grad_block", self._syms, self._grad_exprs, outputs=True, block=True, f32=f32), ns)
        if "_full_grad_block" in ns:  # the rare full-range rerun: compiled on its own, called, never inlined
            ns["_full_grad_block"] = _out_of_line_jit(ns["_full_grad_block"])
        return jit(ns["grad_block"])


def from_expression(expression: str, variables=("x",)) -> ExpressionPotential:
    """A :class:`Potential` from a SymPy expression string with an exact (symbolic) gradient.

    Example: ``from_expression("0.1*x**2 - log(0.2 + cos(2*x)**2)")`` (the seed's 1-D density) or
    ``from_expression("(x**2-1)**2 + y**2", variables=("x", "y"))``.
    """
    return ExpressionPotential(expression, variables)


class ScorePotential(Potential):
    """The potential of a score: ``grad V(x) = -score(x)`` (or ``-score(x, t)`` at a fixed ``t``), so Langevin
    dynamics at ``kT = 1`` samples the density whose score it is. Only the gradient exists (no energy, no Numba
    face): ULA and BAOAB work, MALA (which needs ``V``) does not.

    Args:
        score: a callable ``score(x) -> (n, dim)`` or ``score(x, t) -> (n, dim)`` on NumPy arrays.
        t: the time or noise level passed to a two-argument score.
        dim: the dimension, when known.
    """

    _fields = ("score", "t", "dim")
    has_numba_face = False
    has_energy = False

    def __init__(self, score, t: float | None = None, dim: int | None = None):
        if not callable(score):
            raise TypeError(f"score must be callable, got {type(score).__name__}")
        self.score = score
        self.t = None if t is None else float(t)
        self.dim = None if dim is None else int(dim)

    def energy(self, x):
        raise NotImplementedError("a score gives only grad V, not the energy V (MALA's accept/reject needs V): "
                                  "pass a Potential, or use method='ula' or 'baoab' with a score")

    def grad(self, x):
        x = np.asarray(x, dtype=np.float64)
        s = self.score(x) if self.t is None else self.score(x, self.t)
        s = np.asarray(s, dtype=np.float64)
        if s.shape != x.shape:
            raise ValueError(f"score returned shape {s.shape} for x of shape {x.shape}")
        return -s

    def numba_energy(self, jit=_default_jit):
        raise NotImplementedError("ScorePotential has no Numba face")

    def numba_grad(self, jit=_default_jit):
        raise NotImplementedError("ScorePotential has no Numba face")
