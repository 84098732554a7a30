"""Score samplers as integration methods: each is a :class:`~sde_toolkit.integrate.methods.Method` that steps a
score-driven backward SDE on the one driver (:func:`sde_toolkit.integrate.driver.run`).

The driver owns the loop, the counter-based noise of one seed, saved frames and sinks (memory or H5MD), progress
bars and the divergence check; a sampler only states its facts and its step. Every sampler here is a frozen,
value-hashed configuration (:class:`~sde_toolkit.sde.base.Model`), so the compiled kernel of a fused sampler is
shared by equal configurations.

A sampler declares (class attributes or methods, read by :func:`~sde_toolkit.score.sample`):

* ``name``, ``strong_order``, ``weak_order``, ``noise_form`` (the :class:`Method` facts) and ``nfe_per_step``
  (score evaluations per step; the run costs ``nfe_per_step * n_steps``);
* ``fused_face``: ``True`` when it has a Numba face (the driver then compiles it whenever the SDE it steps has
  one, i.e. for scores with a Numba face); otherwise it runs on the batched NumPy driver;
* :meth:`ScoreSampler.target` ``(forward, score)``: the SDE the driver steps (``forward.reverse(score)``, or
  ``forward.probability_flow(score)``); both are ``score_driven`` and expose ``sde.forward`` and ``sde.score``;
* :meth:`ScoreSampler.time_grid` ``(forward, T, eps)``: ``(t0, t1)`` of the plan; the driver's grid is
  ``t_k = t0 + k h``, ``h = (t1 - t0) / n_steps < 0`` (time runs backwards);
* :meth:`ScoreSampler.from_options`: the sampler that ``sample(..., method=name, **options)`` asks for.

Adding a sampler (DDIM, DPM-Solver++, ...): subclass :class:`ScoreSampler`, give it ``name``, its facts, its
``_fields`` and a constructor that validates them, ``from_options``, ``supports`` and ``batched_step`` (and
``fused`` if it has a Numba face), then :func:`register_sampler` it. Per-step tables (a schedule) are fields of
the sampler, indexed by the step ``k``; per-path state between steps (a multistep history) is the driver's
``carry`` (:meth:`Method.carry_dim`).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ..integrate.methods import EulerMaruyama, Heun, Method
from ..sde.base import SDE, Model
from ..sde.diffusion import DDPMSchedule

__all__ = ["ScoreSampler", "ReverseEulerMaruyama", "ProbabilityFlowHeun", "Ancestral", "PredictorCorrector",
           "SAMPLERS", "register_sampler", "get_sampler"]

_EM = EulerMaruyama()
_HEUN = Heun()


class ScoreSampler(Model, Method):
    """Base of the score samplers (abstract): a frozen sampler configuration that is an integration method.

    Subclasses set ``name``, the order facts, ``nfe_per_step``, ``fused_face`` and ``_fields``. Equality, hash and
    the driver's kernel-cache key are :class:`~sde_toolkit.sde.base.Model`'s (class and parameters by value), so
    two equal configurations share a compiled kernel and two different ones never do.
    """

    nfe_per_step: ClassVar[int] = 1
    fused_face: ClassVar[bool] = False

    # ------------------------------------------------------------------ what sample() reads
    @classmethod
    def from_options(cls, forward: SDE, *, T: float, eps: float, n_steps: int, noise: bool,
                     options: dict) -> ScoreSampler:
        """The sampler that ``sample(forward, score, n, method=cls.name, n_steps=..., eps=..., T=..., noise=...,
        **options)`` runs; ``options`` holds every sampler option of :func:`sample` (each takes what it needs)."""
        raise NotImplementedError

    def target(self, forward: SDE, score) -> SDE:
        """The SDE the driver steps: the reverse SDE ``dX = [f - g g^T s] dt + g dW-bar`` by default."""
        return forward.reverse(score)

    def time_grid(self, forward: SDE, T: float, eps: float) -> tuple[float, float]:
        """``(t0, t1)``: from ``T`` down to ``eps`` by default."""
        return float(T), float(eps)

    def grid_times(self) -> np.ndarray | None:
        """The sampler's own time of each step ``k = 0 .. n_steps`` (``None``: the driver's uniform grid)."""
        return None

    def evaluations(self, n_steps: int) -> int:
        """Score evaluations of a run of ``n_steps`` steps."""
        return self.nfe_per_step * int(n_steps)

    # ------------------------------------------------------------------ shared facts
    def _score_driven(self, sde: SDE) -> str | None:
        if not sde.score_driven:
            return (f"the {self.name!r} sampler steps a score-driven SDE (sde.reverse(score) or "
                    f"sde.probability_flow(score)); {type(sde).__name__} is not one")
        if not sde.backward:
            return f"the {self.name!r} sampler runs time backwards; {type(sde).__name__} is not backward"
        return None

    def fused(self, sde, face, h, jit, dtype=np.float64):  # float64 only (precisions)
        raise NotImplementedError(f"the {self.name!r} sampler has no fused face (it runs on the batched driver)")

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" if not isinstance(v, np.ndarray) else f"{k}=<{v.size} values>"
                          for k, v in self.params().items())
        return f"{type(self).__name__}({inner})"


def _bool(v, name: str) -> bool:
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {v!r}")
    return bool(v)


# ================================================================================================ Euler–Maruyama
class ReverseEulerMaruyama(ScoreSampler):
    """Euler–Maruyama on the reverse SDE ``dX = [f - g^2 s] dt + g dW-bar`` from ``T`` down to ``t_end``:
    ``x' = x + (f - g^2 s)(x, t) h + g(t) sqrt(|h|) z`` with ``h < 0``.

    The step that lands on ``t_end`` (the last one: the driver passes ``t_next = t1`` exactly there) is taken
    without noise, so the samples returned are the mean of the last transition. ``noise=False`` drops the noise of
    every step (the deterministic Euler recursion of the reverse drift).

    Facts: Itô; weak order 1 (strong order 1 for the additive noise of affine-marginal SDEs); one score
    evaluation per step (``n_steps`` in all); ``noise_dim`` standard normals per path and step, drawn also where
    they get zero weight (the last step, ``noise=False``), so a step's normals never depend on those options.
    Fused face: the integrator's own Euler–Maruyama step (:class:`~sde_toolkit.integrate.methods.EulerMaruyama`)
    with the noise weight set per step; with a score that has a Numba face it runs compiled, and one kernel serves
    every ``n_steps`` (its parameters are ``t_end`` and ``noise`` only).
    """

    name = "euler_maruyama"
    strong_order = dict(EulerMaruyama.strong_order)
    weak_order = 1.0
    noise_form = "dw"
    nfe_per_step = 1
    fused_face = True
    _fields = ("t_end", "noise")

    def __init__(self, t_end: float, noise: bool = True):
        t_end = float(t_end)
        if not math.isfinite(t_end):
            raise ValueError(f"t_end must be finite, got {t_end}")
        self.t_end = t_end
        self.noise = _bool(noise, "noise")

    @classmethod
    def from_options(cls, forward, *, T, eps, n_steps, noise, options):
        return cls(t_end=eps, noise=noise)

    def supports(self, sde):
        why = self._score_driven(sde)
        if why is None and sde.is_ode:
            why = f"Euler–Maruyama sampling steps the reverse SDE; {type(sde).__name__} is an ODE"
        return why

    def n_normals(self, sde):
        return sde.noise_dim

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        w = s if (self.noise and t_next != self.t_end) else 0.0
        return _EM.batched_step(sde, x, carry, k, t, h, t_next, z, w, u)

    def fused(self, sde, face, h, jit, dtype=np.float64):  # float64 only (precisions)
        parts = dict(_EM.fused(sde, face, h, jit))
        inner = jit(parts["step"])
        t_end, noisy = self.t_end, self.noise

        def step(x, carry, k, t, h, t_next, z, s, u, ws):
            w = s if (noisy and t_next != t_end) else 0.0
            inner(x, carry, k, t, h, t_next, z, w, u, ws)

        parts["step"] = step
        return parts


# ================================================================================================ probability flow
class ProbabilityFlowHeun(ScoreSampler):
    """Heun's method on the probability-flow ODE ``dx = [f - g^2 s / 2] dt`` from ``T`` down to ``eps``:
    ``x' = x + h/2 (F(x, t) + F(x + h F(x, t), t + h))``, ``h < 0``.

    Facts: order 2; two score evaluations per step (``2 n_steps``); no noise (no normals drawn: deterministic given
    ``x_T``). Fused face: the integrator's :class:`~sde_toolkit.integrate.methods.Heun`, compiled when the score
    has a Numba face.
    """

    name = "probability_flow"
    strong_order = dict(Heun.strong_order)
    weak_order = 2.0
    nfe_per_step = 2
    fused_face = True
    _fields = ()

    def __init__(self):
        pass

    @classmethod
    def from_options(cls, forward, *, T, eps, n_steps, noise, options):
        return cls()

    def target(self, forward, score):
        return forward.probability_flow(score)

    def supports(self, sde):
        return self._score_driven(sde) or _HEUN.supports(sde)

    def n_normals(self, sde):
        return 0

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        return _HEUN.batched_step(sde, x, carry, k, t, h, t_next, z, s, u)

    def fused(self, sde, face, h, jit, dtype=np.float64):  # float64 only (precisions)
        return _HEUN.fused(sde, face, h, jit)


# ================================================================================================ DDPM ancestral
class Ancestral(ScoreSampler):
    """DDPM's ancestral sampler (Ho et al. 2020, Algorithm 2) on a discrete schedule ``betas`` of ``N`` steps.

    Driver step ``k = 0 .. N-1`` is DDPM step ``i = N - k``, from ``t_i = i T / N`` to ``t_{i-1}`` (the plan's
    decreasing grid from ``T`` to 0): ``x_{i-1} = (x_i + beta_i s(x_i, t_i)) / sqrt(alpha_i) + sigma_i z``, which is
    ``(x_i - beta_i / sqrt(1 - ab_i) eps_i) / sqrt(alpha_i) + sigma_i z`` with ``eps_i = -sqrt(1 - ab_i) s``;
    ``sigma_i^2 = beta_i`` (``variance="beta"``) or ``(1 - ab_{i-1}) / (1 - ab_i) beta_i`` (``"posterior"``). No
    noise at ``i = 1``: the chain returns its mean at ``t = 0``. ``noise=False`` drops the noise of every step.

    Facts: one score evaluation per step (``N`` in all); ``dim`` standard normals per path and step (none with
    ``noise=False``); a first-order (weak order 1 in ``1/N``) discretization of the reverse SDE; batched face
    only. The schedule comes from the forward SDE's ``discretize(N, mapping)`` (``discretizable`` SDEs: VPSDE).
    """

    name = "ancestral"
    strong_order = {"additive": None, "diagonal": None, "scalar": None, "general": None, "ode": None}
    weak_order = 1.0
    noise_form = "normal"
    nfe_per_step = 1
    _fields = ("betas", "variance", "noise")
    VARIANCES: ClassVar[tuple[str, ...]] = ("beta", "posterior")

    def __init__(self, betas, variance: str = "beta", noise: bool = True):
        sched = DDPMSchedule.from_betas(betas)
        if variance not in self.VARIANCES:
            raise ValueError(f"variance must be 'beta' or 'posterior', got {variance!r}")
        self.betas = sched.betas
        self.variance = variance
        self.noise = _bool(noise, "noise")
        b, ab = sched.betas, sched.alpha_bars
        self._sqrt_alpha = np.sqrt(sched.alphas)
        var = b.copy() if variance == "beta" else b * (1.0 - np.concatenate([[1.0], ab[:-1]])) / (1.0 - ab)
        var[0] = 0.0  # step i = 1: no noise
        self._sigma = np.sqrt(var)

    @property
    def n_steps(self) -> int:
        return int(self.betas.size)

    @classmethod
    def from_options(cls, forward, *, T, eps, n_steps, noise, options):
        if not forward.discretizable:
            raise ValueError(f"method='ancestral' (DDPM) needs a discretizable forward SDE (a DDPM schedule, "
                             f"sde.discretize: VPSDE), got {forward!r}")
        sched = forward.discretize(n_steps, mapping=options.get("mapping", "exact"))
        return cls(sched.betas, variance=options.get("variance", "beta"), noise=noise)

    def time_grid(self, forward, T, eps):
        return float(forward.T), 0.0  # DDPM's grid t_i = i T / N ends at t_0 = 0; eps is not used

    def supports(self, sde):
        why = self._score_driven(sde)
        if why is None and sde.is_ode:
            why = "the ancestral sampler steps the reverse SDE, not an ODE"
        if why is None and not sde.forward.discretizable:
            why = (f"the ancestral sampler needs a discretizable forward SDE (a DDPM schedule: VPSDE), got "
                   f"{type(sde.forward).__name__}")
        return why

    def n_normals(self, sde):
        return sde.dim if self.noise else 0

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        j = self.n_steps - 1 - k  # index of DDPM step i = N - k
        sc = np.asarray(sde.score(x, t), dtype=np.float64)
        mean = (x + self.betas[j] * sc) / self._sqrt_alpha[j]
        if j == 0 or not self.noise:
            return mean
        return mean + self._sigma[j] * z


# ================================================================================================ predictor-corrector
class PredictorCorrector(ScoreSampler):
    """score_sde's predictor-corrector sampler (Song et al. 2021): per step, ``n_corrector`` Langevin corrector
    steps, then one reverse-SDE Euler–Maruyama predictor step.

    Corrector: ``x += delta s(x, t) + sqrt(2 delta) z`` with the signal-to-noise step size
    ``delta = 2 alpha (snr |z| / |s|)^2``, norms averaged over the particles (so the step size, and each path's
    result, depends on the whole ensemble, unlike the other samplers). ``alpha = alphas[round(t (M - 1) / T_ref)]``
    of a table of ``M`` alphas (for a discretizable forward SDE, ``1 - beta_i`` of ``discretize(1000,
    "first_order")``, exactly as the reference implementation does; the heuristic is score_sde's, not a derived
    step size), ``alpha = 1`` without a table (VE, OU). Predictor: ``x' = x + (f - g^2 s) h + g sqrt(|h|) z``,
    ``h < 0``; the step that lands on ``t_end`` returns its mean. ``noise=False`` drops all noise (the corrector
    then does not move: ``|z| = 0``).

    Facts: ``1 + n_corrector`` score evaluations per step; ``(1 + n_corrector) dim`` standard normals per path and
    step (corrector ``c`` uses columns ``[c dim, (c + 1) dim)``, the predictor the last ``dim``; none with
    ``noise=False``); weak order 1 (the predictor); batched face only.
    """

    name = "predictor_corrector"
    strong_order = {"additive": None, "diagonal": None, "scalar": None, "general": None, "ode": None}
    weak_order = 1.0
    noise_form = "normal"
    _fields = ("t_end", "snr", "n_corrector", "alphas", "T_ref", "noise")

    def __init__(self, t_end: float, snr: float = 0.16, n_corrector: int = 1, alphas=None, T_ref: float = 1.0,
                 noise: bool = True):
        snr = float(snr)
        if not (math.isfinite(snr) and snr >= 0):
            raise ValueError(f"snr must be >= 0, got {snr}")
        if isinstance(n_corrector, bool) or not isinstance(n_corrector, (int, np.integer)) or n_corrector < 0:
            raise ValueError(f"n_corrector must be an integer >= 0, got {n_corrector!r}")
        self.t_end = float(t_end)
        self.snr = snr
        self.n_corrector = int(n_corrector)
        self.alphas = None if alphas is None else np.array(alphas, dtype=np.float64)
        self.T_ref = float(T_ref)
        self.noise = _bool(noise, "noise")

    @property
    def nfe_per_step(self) -> int:  # type: ignore[override]
        return 1 + self.n_corrector

    @classmethod
    def from_options(cls, forward, *, T, eps, n_steps, noise, options):
        alphas = forward.discretize(1000, mapping="first_order").alphas if forward.discretizable else None
        return cls(t_end=eps, snr=options.get("snr", 0.16), n_corrector=options.get("n_corrector", 1),
                   alphas=alphas, T_ref=T, noise=noise)

    def supports(self, sde):
        why = self._score_driven(sde)
        if why is None and sde.is_ode:
            why = "the predictor-corrector sampler steps the reverse SDE, not an ODE"
        if why is None and sde.noise_type != "diagonal":
            why = f"the predictor-corrector sampler needs diagonal noise, {type(sde).__name__} has {sde.noise_type}"
        return why

    def n_normals(self, sde):
        return (1 + self.n_corrector) * sde.dim if self.noise else 0

    def _alpha(self, t: float) -> float:
        if self.alphas is None:
            return 1.0
        return float(self.alphas[int(round(t * (self.alphas.size - 1) / self.T_ref))])

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        d = sde.dim
        alpha = self._alpha(t)
        for c in range(self.n_corrector):
            g = np.asarray(sde.score(x, t), dtype=np.float64)
            zc = z[:, c * d:(c + 1) * d] if self.noise else np.zeros_like(x)
            g_norm = np.mean(np.linalg.norm(g, axis=1))
            z_norm = np.mean(np.linalg.norm(zc, axis=1))
            delta = 2.0 * alpha * (self.snr * z_norm / g_norm) ** 2 if g_norm > 0 else 0.0
            x = x + delta * g + math.sqrt(2.0 * delta) * zc
        mean = x + h * np.asarray(sde.drift(x, t), dtype=np.float64)
        if not self.noise or t_next == self.t_end:
            return mean
        gdiff = np.asarray(sde.diffusion(x, t), dtype=np.float64)
        return mean + gdiff * math.sqrt(abs(h)) * z[:, self.n_corrector * d:]


# ================================================================================================ registry
SAMPLERS: dict[str, type[ScoreSampler]] = {
    c.name: c for c in (ReverseEulerMaruyama, Ancestral, ProbabilityFlowHeun, PredictorCorrector)
}


def register_sampler(cls: type[ScoreSampler], *, replace: bool = False) -> None:
    """Make ``sample(..., method=cls.name)`` run ``cls`` (see the module docstring for what it declares)."""
    if not (isinstance(cls, type) and issubclass(cls, ScoreSampler)):
        raise TypeError(f"a sampler is a ScoreSampler subclass, got {cls!r}")
    if cls.name in SAMPLERS and not replace:
        raise ValueError(f"sampler {cls.name!r} is already registered")
    SAMPLERS[cls.name] = cls


def get_sampler(method) -> type[ScoreSampler]:
    """The sampler class of a ``method=`` name (``ValueError`` naming the registered ones otherwise)."""
    cls = SAMPLERS.get(method) if isinstance(method, str) else None
    if cls is None:
        raise ValueError(f"method must be one of {tuple(SAMPLERS)}, got {method!r}")
    return cls
