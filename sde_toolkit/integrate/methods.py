"""Integration methods as objects that declare their facts (diffrax's ``_solver/euler.py`` is the model).

Each :class:`Method` states its strong and weak order for each noise class, its convention (Itô), how many
standard normals (and uniforms) it draws per path and step, and which SDEs it supports
(:meth:`Method.supports` returns ``None`` or the reason). It has two faces with the same formulas in the same
operation order:

* :meth:`Method.batched_step` steps a whole ensemble with NumPy (the batched driver, and the reference);
* :meth:`Method.fused` returns plain functions that the driver (:mod:`sde_toolkit.integrate.driver`) inlines into
  its compiled chunk kernel: ``make_ws(n) -> workspace`` and ``step(x, carry, k, t, h, t_next, z, s, u, ws)``,
  which advances the chunk ``x`` ``(n, dim)`` in place. Drifts are evaluated on the whole chunk through the
  face's ``drift_block`` when the model declares one (a loop LLVM vectorizes across particles), else row by row
  (:func:`~sde_toolkit.sde.base.rows_block`); both give the same bits.

Noise conventions: ``z`` is ``(n, n_normals)``; methods with ``noise_form = "dw"`` use ``dW = s * z`` (``s =
sqrt|h|`` for drawn normals, ``s = 1`` when user increments ``dW`` are fed), the others take ``z`` as standard
normals. ``u`` is ``(n,)`` uniforms (Metropolis layers). ``carry`` is ``(n, carry_dim)`` per-path state that a
method keeps between steps (cached drift and energy of MALA, counts); ``aux`` ``(n, aux_dim)`` is what a method
records at saved steps.

Methods never branch on the SDE's type, only on its declared capabilities (``noise_type``, ``additive``,
``is_ode``, ``has_exact_step``, ``has_splitting``, ``has_diffusion_dx``).
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar

import numpy as np

from ..sde.base import SDE, rows_block

__all__ = [
    "Method",
    "EulerMaruyama",
    "Milstein",
    "Exact",
    "Heun",
    "Splitting",
    "LeimkuhlerMatthews",
    "METHODS",
    "get_method",
    "supported_methods",
    "em_increment",
    "fused_for",
]

NOISE_CODES = {"diagonal": 0, "scalar": 1, "general": 2}


def em_increment(x, f, g, dw, h):
    """The Euler–Maruyama update ``x + f h + g dW`` (one definition: EM, Milstein and MALA's proposal use it;
    on scalars inside compiled kernels and on arrays in the batched face, with the same rounding)."""
    return x + f * h + g * dw


class Method(abc.ABC):
    """An integration method: facts, support rule, batched step and fused step factory.

    Attributes (set in the class; a wrapper such as ``mcmc.layers.WithEnergy`` copies them, except
    ``convention``, from the method it wraps on the instance):
        name: the ``method=`` string.
        convention: ``"ito"``.
        strong_order: order of strong (pathwise) convergence per noise class (``"additive"``, ``"diagonal"``,
            ``"scalar"``, ``"general"``, ``"ode"``); ``None`` where it does not converge strongly.
        weak_order: order of weak convergence (moments), for smooth coefficients.
        invariant_order: order of the bias of the stationary law's averages (``weak_order`` unless a method
            does better there, e.g. Leimkuhler–Matthews: 2 with weak order 1).
        noise_form: ``"dw"`` (uses ``s * z``) or ``"normal"`` (standard normals).
        step_dependent: the fused kernel is built for one step ``h`` (coefficients precomputed).
        noise_lookahead: ``1`` when step ``k`` draws the normals of step ``k + 1`` and carries them to the next
            step (the carry's first ``n_normals`` columns hold the pending normals, which the driver sets from the
            counter-based noise of the start step, so a resumed run needs no stored state).
        precisions: the state types the method runs in (``precision=``). A method listing ``"float32"`` takes
            ``fused(..., dtype=np.float32)``: its workspaces hold that type and its update arithmetic stays in it
            (the driver passes ``h`` and ``s`` as that type; the carry stays float64).
    """

    name: str
    convention: ClassVar[str] = "ito"
    strong_order: dict[str, float | None]
    weak_order: float
    noise_form: str = "dw"
    step_dependent: bool = False
    noise_lookahead: int = 0
    precisions: tuple[str, ...] = ("float64",)

    @property
    def invariant_order(self) -> float:
        return self.weak_order

    # ------------------------------------------------------------------ facts
    @abc.abstractmethod
    def supports(self, sde: SDE) -> str | None:
        """``None`` when this method can integrate ``sde``, else the reason."""

    def n_normals(self, sde: SDE) -> int:
        return sde.noise_dim

    def n_uniforms(self, sde: SDE) -> int:
        return 0

    def carry_dim(self, sde: SDE) -> int:
        return 0

    def aux_dim(self, sde: SDE) -> int:
        return 0

    def legacy_offset(self, sde: SDE) -> int:
        """Noise scheme v1 drew ``sde.noise_dim`` normals per path for every method; this method used the
        columns from this offset on (kept so that v1 files resume exactly)."""
        return 0

    @property
    def cache_key(self) -> tuple:
        return (type(self).__module__, type(self).__qualname__)

    def describe(self) -> dict:
        return {"name": self.name, "convention": self.convention, "strong_order": dict(self.strong_order),
                "weak_order": self.weak_order, "invariant_order": self.invariant_order}

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    # ------------------------------------------------------------------ batched face
    def init_carry(self, sde: SDE, x: np.ndarray, t: float) -> np.ndarray:
        """Initial per-path carry ``(n, carry_dim)``; a deterministic function of ``x`` (so resume can rebuild it)."""
        return np.zeros((x.shape[0], self.carry_dim(sde)))

    @abc.abstractmethod
    def batched_step(self, sde: SDE, x: np.ndarray, carry: np.ndarray, k: int, t: float, h: float,
                     t_next: float, z, s: float, u) -> np.ndarray:
        """The state after one step (``carry`` is updated in place)."""

    def batched_aux(self, sde: SDE, x: np.ndarray, carry: np.ndarray) -> np.ndarray:
        return np.zeros((x.shape[0], 0))

    # ------------------------------------------------------------------ fused face
    @abc.abstractmethod
    def fused(self, sde: SDE, face, h: float, jit, dtype=np.float64) -> dict[str, Any]:
        """``{"make_ws": ..., "step": ..., "init_carry": ..., "aux": ...}`` plain functions (see the module
        docstring; ``init_carry(x, carry, t)`` and ``aux(x, carry, out)`` work on one chunk). ``dtype``: the
        state type (see ``precisions``)."""


def fused_for(method: Method, sde: SDE, face, h: float, jit, dtype=np.float64) -> dict[str, Any]:
    """``method.fused`` for state type ``dtype``. ``dtype=`` is passed only for float32, so a method registered
    from outside that lists only float64 in ``precisions`` keeps the four-argument signature."""
    if np.dtype(dtype) == np.float64:
        return method.fused(sde, face, h, jit)
    return method.fused(sde, face, h, jit, dtype=np.dtype(dtype).type)


def _no_carry(x, carry, t):
    pass


def drift_block_of(face, jit):
    """The face's ``drift_block(X, t, F)`` where the model declares one, else the row-by-row fallback. Callers
    pass ``F`` with exactly as many rows as ``X`` (block kernels work on flat views of both)."""
    return face.drift_block if face.drift_block is not None else rows_block(face.drift, jit)


def _no_aux(x, carry, out):
    pass


# ================================================================================================ Euler–Maruyama
class EulerMaruyama(Method):
    """Euler–Maruyama: ``x' = x + f(x, t) h + g(x, t) dW`` (diagonal), ``g dW_0`` (scalar), ``G dW`` (general).

    Itô. Strong order 0.5 for multiplicative noise, 1.0 for additive noise and ODEs; weak order 1. ``noise_dim``
    normals per step (none for ODEs).
    """

    name = "euler_maruyama"
    strong_order = {"additive": 1.0, "diagonal": 0.5, "scalar": 0.5, "general": 0.5, "ode": 1.0}
    weak_order = 1.0
    milstein = False
    precisions = ("float64", "float32")

    def supports(self, sde: SDE) -> str | None:
        return None

    def n_normals(self, sde: SDE) -> int:
        return 0 if sde.is_ode else sde.noise_dim

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        f = np.asarray(sde.drift(x, t), dtype=x.dtype)  # float32 states: float32 arithmetic (NumPy's NEP 50)
        if sde.is_ode:
            return x + f * h
        g = np.asarray(sde.diffusion(x, t), dtype=x.dtype)
        dw = s * z
        if sde.noise_type == "general":
            return x + f * h + np.einsum("nij,nj->ni", g, dw)
        if sde.noise_type == "scalar":
            return em_increment(x, f, g, dw[:, :1], h)
        xn = em_increment(x, f, g, dw, h)
        if self.milstein:
            gp = np.asarray(sde.diffusion_dx(x, t), dtype=x.dtype)
            xn = xn + 0.5 * g * gp * (dw * dw - abs(h))
        return xn

    def fused(self, sde, face, h, jit, dtype=np.float64):
        drift, diff = face.drift, face.diffusion
        dim, m = sde.dim, sde.noise_dim
        FT = dtype
        half = FT(0.5)
        scalar = sde.noise_type == "scalar"
        general = sde.noise_type == "general"
        additive = bool(sde.additive) and not general
        ode = bool(sde.is_ode)
        milstein = self.milstein
        gdx = face.diffusion_dx if (milstein and face.diffusion_dx is not None) else diff
        gcols = m if general else 1
        inc = jit(em_increment)
        dblock = drift_block_of(face, jit)
        row_pass = milstein or not additive  # per-row diffusion kernels remain

        def make_ws(n):
            return (np.empty((n, dim), FT), np.empty((n, dim), FT), np.empty((n, dim, gcols), FT), np.empty(dim, FT),
                    np.empty((n, dim), FT))

        # Layout (why): the per-particle model kernels fill drift/diffusion buffers, then one flat update pass
        # combines them; that pass has no calls and no branches, so LLVM vectorizes it.
        def step(x, carry, k, t, h, t_next, z, s, u, ws):
            F, GP, G, g0, F2 = ws
            n = x.shape[0]
            if ode:
                dblock(x, t, F[:n])
                for i in range(n):
                    for r in range(dim):
                        x[i, r] = x[i, r] + F[i, r] * h
                return
            if general:
                for i in range(n):
                    drift(x[i], t, F[i])
                    diff(x[i], t, G[i])
                for i in range(n):
                    for r in range(dim):
                        acc = 0.0
                        for j in range(m):
                            acc += G[i, r, j] * (s * z[i, j])
                        F2[i, r] = x[i, r] + F[i, r] * h + acc
                for i in range(n):
                    for r in range(dim):
                        x[i, r] = F2[i, r]
                return
            if additive:  # state-independent noise (declared by the model): one evaluation per step
                diff(x[0], t, g0)
            dblock(x, t, F[:n])
            if row_pass:
                for i in range(n):
                    xi = x[i]
                    if not additive:
                        diff(xi, t, GP[i])
                    if milstein:
                        gdx(xi, t, F2[i])
            ah = abs(h)
            for i in range(n):
                for r in range(dim):
                    c = 0 if scalar else r
                    dw = s * z[i, c]
                    g = g0[r] if additive else GP[i, r]
                    v = inc(x[i, r], F[i, r], g, dw, h)
                    if milstein:
                        v += half * g * F2[i, r] * (dw * dw - ah)
                    x[i, r] = v

        return {"make_ws": make_ws, "step": step, "init_carry": _no_carry, "aux": _no_aux}


class Milstein(EulerMaruyama):
    """Milstein for diagonal noise: Euler–Maruyama ``+ 1/2 g g' (dW^2 - h)``; strong and weak order 1.

    Needs ``d g_i / d x_i`` (``diffusion_dx``); additive noise makes it Euler–Maruyama.
    """

    name = "milstein"
    strong_order = {"additive": 1.0, "diagonal": 1.0, "scalar": None, "general": None, "ode": 1.0}
    milstein = True

    def supports(self, sde):
        if sde.noise_type != "diagonal":
            return f"Milstein needs diagonal noise ({type(sde).__name__} has {sde.noise_type} noise)"
        if not sde.has_diffusion_dx:
            return "Milstein needs diffusion_dx (d g_i / d x_i) for a state-dependent diffusion"
        return None


class LeimkuhlerMatthews(Method):
    """Leimkuhler–Matthews (2013): ``x' = x + f(x) h + g sqrt(h) (xi_k + xi_{k+1}) / 2`` for additive diagonal
    noise (overdamped Langevin: ``x' = x - h grad V / gamma + sqrt(2 kT h / gamma) (xi_k + xi_{k+1}) / 2``).

    Facts: the same cost as Euler–Maruyama (one drift evaluation, ``noise_dim`` fresh normals per step: step ``k``
    draws ``xi_{k+1}`` and reuses ``xi_k``); weak order 1 for transient moments, but invariant-measure order 2 for
    gradient flows (configurational averages are biased only at O(h^2)), and exact in variance for a harmonic
    potential at any stable step. Noise lookahead 1 (see :class:`Method`); user increments are not supported.
    """

    name = "leimkuhler_matthews"
    strong_order = {"additive": 1.0, "diagonal": None, "scalar": None, "general": None, "ode": None}
    weak_order = 1.0
    noise_lookahead = 1
    precisions = ("float64", "float32")

    @property
    def invariant_order(self) -> float:
        return 2.0

    def supports(self, sde: SDE) -> str | None:
        if sde.is_ode:
            return "Leimkuhler-Matthews is a scheme for SDEs with noise"
        if not sde.additive or sde.noise_type != "diagonal":
            return (f"Leimkuhler-Matthews needs additive diagonal noise ({type(sde).__name__} has "
                    f"{'additive ' if sde.additive else 'state-dependent '}{sde.noise_type} noise)")
        return None

    def n_normals(self, sde: SDE) -> int:
        return sde.noise_dim

    def carry_dim(self, sde: SDE) -> int:
        return sde.noise_dim  # the pending normals xi_{k}

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        f = np.asarray(sde.drift(x, t), dtype=x.dtype)
        g = np.asarray(sde.diffusion(x, t), dtype=x.dtype)
        xn = em_increment(x, f, g, s * (0.5 * (carry.astype(x.dtype) + z)), h)
        carry[:] = z
        return xn

    def fused(self, sde, face, h, jit, dtype=np.float64):
        diff = face.diffusion
        dim = sde.dim
        inc = jit(em_increment)
        dblock = drift_block_of(face, jit)
        FT = dtype
        half = FT(0.5)

        def make_ws(n):
            return (np.empty((n, dim), FT), np.empty(dim, FT))

        def step(x, carry, k, t, h, t_next, z, s, u, ws):
            F, g0 = ws
            n = x.shape[0]
            diff(x[0], t, g0)  # additive noise: one evaluation per step
            dblock(x, t, F[:n])
            for i in range(n):
                for r in range(dim):
                    zr = z[i, r]
                    x[i, r] = inc(x[i, r], F[i, r], g0[r], s * (half * (FT(carry[i, r]) + zr)), h)
                    carry[i, r] = zr

        return {"make_ws": make_ws, "step": step, "init_carry": _no_carry, "aux": _no_aux}


# ================================================================================================ exact
class Exact(Method):
    """The model's exact transition ``X_{t+h} | X_t`` (linear SDEs: OU, VP, VE) at any step; ``dim`` normals."""

    name = "exact"
    strong_order = {"additive": math.inf, "diagonal": math.inf, "scalar": math.inf, "general": math.inf,
                    "ode": math.inf}
    weak_order = math.inf
    noise_form = "normal"
    step_dependent = True
    precisions = ("float64", "float32")

    def supports(self, sde):
        return None if sde.has_exact_step else f"{type(sde).__name__} has no exact transition (has_exact_step)"

    def n_normals(self, sde):
        return sde.dim

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        return sde.exact_step(x, t, h, z)

    def fused(self, sde, face, h, jit, dtype=np.float64):
        return _transition(sde, face.exact_step(h), dtype)


class Splitting(Method):
    """The model's splitting scheme (``has_splitting``): BAOAB for :class:`UnderdampedLangevin`.

    BAOAB: weak order 2 for configurational averages (the O step is exact), exact configurational marginal for
    harmonic potentials at any stable step; ``sde.splitting_noise_dim`` normals per step.
    """

    name = "baoab"
    strong_order = {"additive": 1.0, "diagonal": None, "scalar": None, "general": None, "ode": None}
    weak_order = 2.0
    noise_form = "normal"
    step_dependent = True
    precisions = ("float64", "float32")

    def supports(self, sde):
        return None if sde.has_splitting else f"{type(sde).__name__} has no splitting scheme (has_splitting)"

    def n_normals(self, sde):
        return sde.splitting_noise_dim

    def legacy_offset(self, sde):
        return sde.noise_dim - sde.splitting_noise_dim

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        return sde.splitting_step(x, t, h, z)

    def fused(self, sde, face, h, jit, dtype=np.float64):
        return _transition(sde, face.splitting_step(h), dtype)


def _transition(sde, special, dtype=np.float64):
    dim = sde.dim
    FT = dtype

    def make_ws(n):
        return (np.empty((n, dim), FT),)

    def step(x, carry, k, t, h, t_next, z, s, u, ws):
        XN = ws[0]
        n = x.shape[0]
        for i in range(n):
            special(x[i], t, z[i], XN[i])
        for i in range(n):
            for r in range(dim):
                x[i, r] = XN[i, r]

    return {"make_ws": make_ws, "step": step, "init_carry": _no_carry, "aux": _no_aux}


# ================================================================================================ Heun
class Heun(Method):
    """Heun's method for ODEs (``is_ode``: probability-flow ODEs, zero diffusion):
    ``x + h/2 (f(x, t) + f(x + h f(x, t), t + h))``; order 2, two drift evaluations, no noise."""

    name = "heun"
    strong_order = {"additive": None, "diagonal": None, "scalar": None, "general": None, "ode": 2.0}
    weak_order = 2.0
    precisions = ("float64", "float32")

    def supports(self, sde):
        return None if sde.is_ode else f"Heun integrates ODEs only; {type(sde).__name__} has noise"

    def n_normals(self, sde):
        return 0

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        f = np.asarray(sde.drift(x, t), dtype=x.dtype)
        xp = x + h * f
        f2 = np.asarray(sde.drift(xp, t_next), dtype=x.dtype)
        return x + 0.5 * h * (f + f2)

    def fused(self, sde, face, h, jit, dtype=np.float64):
        drift = face.drift
        dim = sde.dim
        FT = dtype
        half = FT(0.5)

        def make_ws(n):
            return (np.empty((n, dim), FT), np.empty((n, dim), FT), np.empty(dim, FT))

        def step(x, carry, k, t, h, t_next, z, s, u, ws):
            F, F2, xp = ws
            n = x.shape[0]
            for i in range(n):
                drift(x[i], t, F[i])
            for i in range(n):
                for r in range(dim):
                    xp[r] = x[i, r] + h * F[i, r]
                drift(xp, t_next, F2[i])
            for i in range(n):
                for r in range(dim):
                    x[i, r] = x[i, r] + half * h * (F[i, r] + F2[i, r])

        return {"make_ws": make_ws, "step": step, "init_carry": _no_carry, "aux": _no_aux}


# ================================================================================================ registry
METHODS: dict[str, Method] = {m.name: m for m in (EulerMaruyama(), Milstein(), LeimkuhlerMatthews(), Exact(), Heun(),
                                                  Splitting())}


def register_method(method: Method, *, replace: bool = False) -> None:
    """Add a method object to the registry (``simulate(method=name)`` then finds it)."""
    if method.name in METHODS and not replace:
        raise ValueError(f"method {method.name!r} is already registered")
    METHODS[method.name] = method


def supported_methods(sde: SDE) -> list[str]:
    """Names of the registered methods that support ``sde``."""
    return [name for name, m in METHODS.items() if m.supports(sde) is None]


def get_method(method, sde: SDE | None = None) -> Method:
    """The :class:`Method` for a name or object; with ``sde``, refuse one that does not support it."""
    if isinstance(method, Method):
        m = method
    elif isinstance(method, str) and method in METHODS:
        m = METHODS[method]
    else:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    if sde is not None:
        why = m.supports(sde)
        if why is not None:
            raise ValueError(f"method {m.name!r} cannot integrate {type(sde).__name__}: {why}. "
                             f"It supports {supported_methods(sde)}")
    return m
