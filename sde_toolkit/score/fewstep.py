"""Few-step samplers on the declared Gaussian marginal: DDIM, DPM-Solver++(2M), EDM Heun; time grids.

Every sampler here reads the forward SDE's declared isotropic affine marginal (``affine_marginal``:
``X_t | x0 ~ N(a(t) x0 + (1 - a(t)) c, sigma(t)^2 I)`` from ``sde.marginal_coef``), never its type, so one code
path serves VP, VE and scalar OU. In centred coordinates ``y = x - c`` the marginal is ``y_t = a y_0 + sigma eps``
and the score gives the two predictions the solvers use:

* noise prediction ``eps_hat = -sigma s(x, t)``,
* data prediction ``y0_hat = (y + sigma^2 s(x, t)) / a``,

and the half log-SNR ``lambda(t) = log(a / sigma)`` (increasing as ``t`` decreases).

Time grids (``grid=``, each from ``t_0 = T`` down to ``t_N = eps`` on ``N = n_steps`` steps, endpoints exact):

* ``"uniform"``: ``t_k = T + k (eps - T) / N`` (the driver's own grid);
* ``"logsnr"``: ``lambda(t_k)`` uniform between ``lambda(T)`` and ``lambda(eps)`` (DPM-Solver's choice);
* ``"karras"``: ``sigma~_k = (sigma~_max^{1/rho} + k/N (sigma~_min^{1/rho} - sigma~_max^{1/rho}))^rho`` with
  ``sigma~ = sigma / a = exp(-lambda)`` and ``rho = 7`` (Karras et al. 2022, eq. 5).

Times of the ``logsnr`` and ``karras`` grids are found by bisection on the monotone ``lambda(t)``
(to machine precision). The samplers store their grid and its ``a``, ``sigma`` as fields (value-hashed tables
indexed by the driver's step ``k``); the driver's own uniform ``t`` is not used by their steps.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from ..sde.base import SDE
from .samplers import SAMPLERS, ScoreSampler, _bool

GRIDS = ("uniform", "logsnr", "karras")

__all__ = ["GRIDS", "time_grid", "half_log_snr", "time_of_lambda", "DDIM", "DPMSolverPP2M", "EDMHeun", "OnGrid"]


# ================================================================================================ grids
def half_log_snr(sde: SDE, t) -> np.ndarray:
    """``lambda(t) = log(a(t) / sigma(t))`` of the declared marginal (``-inf`` never reached for ``t > 0``)."""
    a, _, std = sde.marginal_coef(np.asarray(t, dtype=np.float64))
    return np.log(np.asarray(a, dtype=np.float64)) - np.log(np.asarray(std, dtype=np.float64))


def time_of_lambda(sde: SDE, lam, lo: float, hi: float) -> np.ndarray:
    """The times in ``[lo, hi]`` where ``lambda(t) = lam`` (vectorized bisection; ``lambda`` decreasing)."""
    lam = np.asarray(lam, dtype=np.float64)
    a = np.full(lam.shape, float(lo))
    b = np.full(lam.shape, float(hi))
    for _ in range(200):
        m = 0.5 * (a + b)
        above = half_log_snr(sde, m) > lam  # lambda(m) > target: the root lies later
        a = np.where(above, m, a)
        b = np.where(above, b, m)
        if np.all(b - a <= 4 * np.finfo(float).eps * np.maximum(1.0, np.abs(b))):
            break
    return 0.5 * (a + b)


def time_grid(sde: SDE, grid: str, T: float, eps: float, n_steps: int, rho: float = 7.0) -> np.ndarray:
    """``(n_steps + 1,)`` decreasing times from ``T`` to ``eps`` (see the module docstring); ``ValueError`` for an
    unknown grid, ``rho <= 0`` or a marginal whose log-SNR is not strictly monotone on ``[eps, T]``."""
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    n = int(n_steps)
    T, eps = float(T), float(eps)
    k = np.arange(n + 1, dtype=np.float64)
    if grid == "uniform":
        t = T + k * ((eps - T) / n)  # the driver's t0 + k h, to the bit
    else:
        rho = float(rho)
        if not (math.isfinite(rho) and rho > 0):
            raise ValueError(f"rho must be a finite number > 0, got {rho}")
        l_T, l_e = (float(v) for v in half_log_snr(sde, np.array([T, eps])))
        if not (math.isfinite(l_T) and math.isfinite(l_e) and l_e > l_T):
            raise ValueError(f"the log-SNR of {sde!r} must be finite and decrease on [eps, T] for grid={grid!r} "
                             f"(lambda(eps) = {l_e}, lambda(T) = {l_T})")
        if grid == "logsnr":
            lam = l_T + k * (l_e - l_T) / n
        else:
            s_max, s_min = math.exp(-l_T), math.exp(-l_e)
            sig = (s_max ** (1 / rho) + k / n * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
            lam = -np.log(sig)
        t = time_of_lambda(sde, lam, eps, T)
    t[0], t[-1] = T, eps
    if not np.all(np.diff(t) < 0):
        raise ValueError(f"the {grid!r} grid of {n} steps is not strictly decreasing (steps too small for "
                         f"float64 between eps={eps} and T={T})")
    return t


def _tables(sde: SDE, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, _, std = sde.marginal_coef(times)
    return np.asarray(a, dtype=np.float64).copy(), np.asarray(std, dtype=np.float64).copy()


def _grid_option(cls, options: dict) -> str:
    g = options.get("grid")
    return cls.default_grid if g is None else g


def _nonneg(v, name: str) -> float:
    v = float(v)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")
    return v


# ================================================================================================ base
class MarginalSampler(ScoreSampler):
    """Base of the samplers that step the declared Gaussian marginal (abstract).

    Fields ``times`` ``(N + 1,)`` (decreasing, ``T`` to ``eps``), ``alpha`` and ``sigma`` (``a(t_k)``,
    ``sigma(t_k)``). They are built from the forward SDE by :meth:`from_options`; building a sampler from other
    tables (a reversed grid, a wrong scaling) is how the tests make their negative controls.
    """

    strong_order = {"additive": None, "diagonal": None, "scalar": None, "general": None, "ode": None}
    noise_form = "normal"
    default_grid: ClassVar[str] = "logsnr"

    def _set_tables(self, times, alpha, sigma) -> None:
        t = np.array(times, dtype=np.float64)
        a = np.array(alpha, dtype=np.float64)
        s = np.array(sigma, dtype=np.float64)
        if t.ndim != 1 or t.size < 2 or a.shape != t.shape or s.shape != t.shape:
            raise ValueError(f"times, alpha and sigma must be (n_steps + 1,) arrays with n_steps >= 1, got shapes "
                             f"{t.shape}, {a.shape}, {s.shape}")
        if not (np.all(np.isfinite(t)) and np.all(np.isfinite(a)) and np.all(np.isfinite(s))):
            raise ValueError("times, alpha and sigma must be finite")
        if np.any(a <= 0) or np.any(s[:-1] <= 0) or s[-1] < 0:
            raise ValueError("alpha must be > 0 and sigma > 0 on the grid (sigma = 0 only at its last time)")
        self.times, self.alpha, self.sigma = t, a, s
        with np.errstate(divide="ignore"):
            self._lam = np.log(a) - np.log(s)  # +inf at a last sigma = 0 (DDIM's step to t = 0 only)

    @property
    def n_steps(self) -> int:
        return int(self.times.size - 1)

    def grid_times(self) -> np.ndarray:
        """The sampler's own time of every driver step (the labels of saved frames)."""
        return self.times

    @staticmethod
    def _grid_from(cls, forward: SDE, *, T, eps, n_steps, options) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not forward.affine_marginal:
            raise ValueError(f"method={cls.name!r} needs an SDE with a Gaussian marginal (affine_marginal: VPSDE, "
                             f"VESDE, scalar OrnsteinUhlenbeck), got {forward!r}")
        t = time_grid(forward, _grid_option(cls, options), T, eps, n_steps, options.get("rho", 7.0))
        a, s = _tables(forward, t)
        return t, a, s

    def supports(self, sde):
        why = self._score_driven(sde)
        if why is None and not sde.forward.affine_marginal:
            why = (f"the {self.name!r} sampler needs a forward SDE with a Gaussian marginal (affine_marginal), got "
                   f"{type(sde.forward).__name__}")
        return why

    def _predict(self, sde, x, k: int, t: float | None = None, a: float | None = None, s: float | None = None):
        """``(y, eps_hat, y0_hat)`` at step ``k``'s grid time (or the given ``t, a, s``)."""
        t = self.times[k] if t is None else t
        a = self.alpha[k] if a is None else a
        s = self.sigma[k] if s is None else s
        c = sde.forward.center
        y = x - c
        sc = np.asarray(sde.score(x, float(t)), dtype=np.float64)
        return y, -s * sc, (y + s * s * sc) / a


# ================================================================================================ DDIM
class DDIM(MarginalSampler):
    """DDIM (Song, Meng & Ermon 2021) on the declared marginal, ``eta`` for the stochastic family.

    From ``t_k`` to ``t_{k+1}`` (``a, sigma`` then ``a', sigma'``), with ``eps_hat``, ``y0_hat`` at ``t_k``:
    ``y' = a' y0_hat + sqrt(sigma'^2 - sigma_eta^2) eps_hat + sigma_eta z``,
    ``sigma_eta = eta sigma' sqrt(sigma^2 - (a / a')^2 sigma'^2) / sigma``. ``eta = 0``: deterministic, the
    exponential-integrator Euler step of the probability-flow ODE (DPM-Solver-1); ``eta = 1``: the DDPM posterior
    ``q(x_{t'} | x_t, x0_hat)``, i.e. the ancestral sampler with the posterior variance, on any grid.

    Facts: ``n_steps`` score evaluations; order 1 (``eta = 0``: global error ``O(h)``; ``eta > 0``: weak order
    1); ``dim`` standard normals per path and step when ``eta > 0`` and ``noise`` (none otherwise); batched
    face. Default grid ``"uniform"``.
    """

    name = "ddim"
    weak_order = 1.0
    nfe_per_step = 1
    default_grid = "uniform"
    _fields = ("times", "alpha", "sigma", "eta", "noise")

    def __init__(self, times, alpha, sigma, eta: float = 0.0, noise: bool = True):
        self._set_tables(times, alpha, sigma)
        self.eta = _nonneg(eta, "eta")
        self.noise = _bool(noise, "noise")
        a, s = self.alpha, self.sigma
        post = s[1:] ** 2 * np.maximum(s[:-1] ** 2 - (a[:-1] / a[1:]) ** 2 * s[1:] ** 2, 0.0) / s[:-1] ** 2
        self._s_eta = self.eta * np.sqrt(post)
        self._s_dir = np.sqrt(np.maximum(s[1:] ** 2 - self._s_eta**2, 0.0))

    @property
    def stochastic(self) -> bool:
        return self.eta > 0 and self.noise

    @classmethod
    def from_options(cls, forward, *, T, eps, n_steps, noise, options):
        t, a, s = cls._grid_from(cls, forward, T=T, eps=eps, n_steps=n_steps, options=options)
        return cls(t, a, s, eta=options.get("eta", 0.0), noise=noise)

    def target(self, forward, score):
        return forward.reverse(score) if self.stochastic else forward.probability_flow(score)

    def n_normals(self, sde):
        return sde.dim if self.stochastic else 0

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        y, e, y0 = self._predict(sde, x, k)
        yn = self.alpha[k + 1] * y0 + self._s_dir[k] * e
        if self.stochastic:
            yn = yn + self._s_eta[k] * z
        return sde.forward.center + yn


# ================================================================================================ DPM-Solver++(2M)
class DPMSolverPP2M(MarginalSampler):
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): multistep second order in ``lambda``, data prediction.

    With ``h_k = lambda(t_{k+1}) - lambda(t_k)``, ``D_0 = y0_hat_0`` and, for ``k >= 1``,
    ``D_k = (1 + 1/(2 r)) y0_hat_k - 1/(2 r) y0_hat_{k-1}``, ``r = h_{k-1} / h_k``:
    ``y_{k+1} = (sigma_{k+1} / sigma_k) y_k - a_{k+1} (e^{-h_k} - 1) D_k``. The usual lower-order final step:
    with ``lower_order_final`` (default) and ``n_steps < 15``, the last step is first order (``D = y0_hat``), as
    diffusers does, which keeps few-step runs stable.

    Facts: deterministic (no normals); ``n_steps`` score evaluations; order 2; the previous ``y0_hat`` is the
    driver's per-path carry (``dim`` values); batched face. Default grid ``"logsnr"``.
    """

    name = "dpmpp_2m"
    weak_order = 2.0
    nfe_per_step = 1
    default_grid = "logsnr"
    _fields = ("times", "alpha", "sigma", "lower_order_final")

    def __init__(self, times, alpha, sigma, lower_order_final: bool = True):
        self._set_tables(times, alpha, sigma)
        if not self.sigma[-1] > 0:
            raise ValueError("dpmpp_2m needs sigma > 0 at the last time (a finite log-SNR)")
        self.lower_order_final = _bool(lower_order_final, "lower_order_final")

    @classmethod
    def from_options(cls, forward, *, T, eps, n_steps, noise, options):
        t, a, s = cls._grid_from(cls, forward, T=T, eps=eps, n_steps=n_steps, options=options)
        return cls(t, a, s, lower_order_final=options.get("lower_order_final", True))

    def target(self, forward, score):
        return forward.probability_flow(score)

    def n_normals(self, sde):
        return 0

    def carry_dim(self, sde):
        return sde.dim

    def init_carry(self, sde, x, t):
        return np.zeros_like(x)

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        y, _, y0 = self._predict(sde, x, k)
        lam = self._lam
        hk = lam[k + 1] - lam[k]
        last = k == self.n_steps - 1
        if k == 0 or (self.lower_order_final and last and self.n_steps < 15):
            D = y0
        else:
            r = (lam[k] - lam[k - 1]) / hk
            D = (1.0 + 0.5 / r) * y0 - (0.5 / r) * carry
        carry[:] = y0
        yn = (self.sigma[k + 1] / self.sigma[k]) * y - self.alpha[k + 1] * math.expm1(-hk) * D
        return sde.forward.center + yn


# ================================================================================================ EDM Heun
class EDMHeun(MarginalSampler):
    """Karras et al. (2022) Heun sampler (Algorithm 2) in the sigma parametrization, optional ``churn``.

    In scaled coordinates ``u = y / a`` and ``sigma~ = sigma / a = exp(-lambda)`` the probability-flow ODE is
    ``du / d sigma~ = eps_hat`` (the noise prediction). Step ``k``: with ``churn > 0``, raise the noise level to
    ``sigma^_k = sigma~_k (1 + gamma)``, ``gamma = min(churn / N, sqrt 2 - 1)`` (capped at ``sigma~(T)``), by
    ``u^ = u + s_noise sqrt(sigma^_k^2 - sigma~_k^2) z`` (at the time ``t^_k`` of that level); then Heun from
    ``sigma^_k`` to ``sigma~_{k+1}``: ``u' = u^ + (sigma~_{k+1} - sigma^_k) (d + d') / 2`` with ``d = eps_hat(u^)``
    and ``d' = eps_hat`` at the Euler predictor. All steps are Heun steps (the grid ends at ``eps > 0``, not at
    ``sigma = 0``).

    Facts: ``2 n_steps`` score evaluations; order 2 without churn (deterministic, no normals); with churn
    ``dim`` normals per path and step and weak order 2 as well, because ``gamma = churn / N`` makes the injected
    noise fade as ``N`` grows (measured slope 1.99 on a Gaussian target); batched face. Default grid
    ``"karras"`` (``rho = 7``).
    """

    name = "edm"
    weak_order = 2.0
    nfe_per_step = 2
    default_grid = "karras"
    _fields = ("times", "alpha", "sigma", "churn", "s_noise", "t_hat", "alpha_hat", "sigma_hat", "noise")

    def __init__(self, times, alpha, sigma, churn: float = 0.0, s_noise: float = 1.0, t_hat=None,
                 alpha_hat=None, sigma_hat=None, noise: bool = True):
        self._set_tables(times, alpha, sigma)
        if not self.sigma[-1] > 0:
            raise ValueError("edm needs sigma > 0 at the last time (its last step is a Heun step)")
        self.churn = _nonneg(churn, "churn")
        self.s_noise = _nonneg(s_noise, "s_noise")
        self.noise = _bool(noise, "noise")
        hat = [None if v is None else np.array(v, dtype=np.float64) for v in (t_hat, alpha_hat, sigma_hat)]
        if self.churn > 0 and any(v is None or v.shape != (self.n_steps,) for v in hat):
            raise ValueError(f"churn > 0 needs t_hat, alpha_hat and sigma_hat of shape ({self.n_steps},): the "
                             "raised noise levels (from_options builds them)")
        self.t_hat, self.alpha_hat, self.sigma_hat = hat
        self._st = self.sigma / self.alpha

    @property
    def stochastic(self) -> bool:
        return self.churn > 0 and self.noise

    @classmethod
    def from_options(cls, forward, *, T, eps, n_steps, noise, options):
        t, a, s = cls._grid_from(cls, forward, T=T, eps=eps, n_steps=n_steps, options=options)
        churn = _nonneg(options.get("churn", 0.0), "churn")
        hat: tuple = (None, None, None)
        if churn > 0:
            st = s / a
            gamma = min(churn / n_steps, math.sqrt(2.0) - 1.0)
            s_hat = np.minimum(st[:-1] * (1.0 + gamma), st[0])  # never above the prior's level
            t_hat = time_of_lambda(forward, -np.log(s_hat), float(eps), float(T))
            t_hat = np.where(s_hat >= st[0], t[0], t_hat)
            a_hat, sg_hat = _tables(forward, t_hat)
            hat = (t_hat, a_hat, sg_hat)
        return cls(t, a, s, churn=churn, s_noise=options.get("s_noise", 1.0), t_hat=hat[0], alpha_hat=hat[1],
                   sigma_hat=hat[2], noise=noise)

    def target(self, forward, score):
        return forward.reverse(score) if self.stochastic else forward.probability_flow(score)

    def n_normals(self, sde):
        return sde.dim if self.stochastic else 0

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        fwd = sde.forward
        c = fwd.center
        a0, s0 = self.alpha[k], self.sigma[k]
        u_ = (x - c) / a0
        st_k = self._st[k]
        tk, ak, sk = float(self.times[k]), a0, s0
        if self.stochastic:
            assert self.t_hat is not None and self.alpha_hat is not None and self.sigma_hat is not None
            tk, ak, sk = float(self.t_hat[k]), float(self.alpha_hat[k]), float(self.sigma_hat[k])
            st_h = sk / ak
            u_ = u_ + self.s_noise * math.sqrt(max(st_h**2 - st_k**2, 0.0)) * z
            st_k = st_h
        _, d, _ = self._predict(sde, c + ak * u_, k, t=tk, a=ak, s=sk)
        ds = self._st[k + 1] - st_k
        u1 = u_ + ds * d
        a1 = self.alpha[k + 1]
        _, d1, _ = self._predict(sde, c + a1 * u1, k + 1)
        return c + a1 * (u_ + 0.5 * ds * (d + d1))


# ================================================================================================ grids for the others
class OnGrid(ScoreSampler):
    """Any driver-time sampler (``euler_maruyama``, ``probability_flow``, ``predictor_corrector``) on a grid of its
    own: step ``k`` runs ``inner``'s step with ``t = times[k]``, ``h = times[k+1] - times[k]``, ``t_next =
    times[k+1]`` (noise weight ``sqrt(|h|)`` for ``"dw"`` noise). Same facts and evaluations as ``inner``; batched
    face only (the inner sampler's fused face is compiled for one uniform step)."""

    _fields = ("inner", "times")

    def __init__(self, inner: ScoreSampler, times):
        if not isinstance(inner, ScoreSampler) or isinstance(inner, (MarginalSampler, OnGrid)):
            raise TypeError(f"OnGrid wraps a driver-time ScoreSampler, got {inner!r}")
        t = np.array(times, dtype=np.float64)
        if t.ndim != 1 or t.size < 2 or not np.all(np.isfinite(t)) or not np.all(np.diff(t) < 0):
            raise ValueError("times must be a strictly decreasing finite (n_steps + 1,) array")
        self.inner = inner
        self.times = t
        self.name = inner.name
        self.strong_order = inner.strong_order
        self.weak_order = inner.weak_order
        self.noise_form = inner.noise_form

    @property
    def nfe_per_step(self) -> int:  # type: ignore[override]
        return self.inner.nfe_per_step

    def grid_times(self) -> np.ndarray:
        return self.times

    def target(self, forward, score):
        return self.inner.target(forward, score)

    def time_grid(self, forward, T, eps):
        return float(self.times[0]), float(self.times[-1])

    def supports(self, sde):
        return self.inner.supports(sde)

    def n_normals(self, sde):
        return self.inner.n_normals(sde)

    def carry_dim(self, sde):
        return self.inner.carry_dim(sde)

    def init_carry(self, sde, x, t):
        return self.inner.init_carry(sde, x, t)

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        tk, tn = float(self.times[k]), float(self.times[k + 1])
        hk = tn - tk
        w = math.sqrt(abs(hk)) if self.inner.noise_form == "dw" else s
        return self.inner.batched_step(sde, x, carry, k, tk, hk, tn, z, w, u)


for _cls in (DDIM, DPMSolverPP2M, EDMHeun):
    SAMPLERS[_cls.name] = _cls
