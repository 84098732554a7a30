"""Diffusion-model SDEs: variance preserving (VP, DDPM's limit) and variance exploding (VE).

Both act coordinate-wise with the same scalar coefficient on every coordinate, so one object serves any
``dim`` (set at construction, default 1, or inferred by the caller from the data).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .._jit import jit as _default_jit
from .base import SDE, NumbaFace
from .distributions import Gaussian


class ScheduleWarning(UserWarning):
    """The forward process does not reach its prior: samples started from the prior are biased."""


@dataclass(frozen=True)
class DDPMSchedule:
    """A discrete DDPM schedule on ``N`` steps (float64 arrays of length ``N``, step ``i = 1..N`` at index ``i-1``).

    ``betas``, ``alphas = 1 - betas``, ``alpha_bars = cumprod(alphas)``. The forward chain is
    ``x_i = sqrt(alpha_i) x_{i-1} + sqrt(beta_i) z_i``, so ``q(x_i | x_0) = N(sqrt(alpha_bar_i) x_0, 1 - alpha_bar_i)``.
    Step ``i`` corresponds to the VP-SDE time ``t_i = i T / N``.
    """

    betas: np.ndarray
    alphas: np.ndarray
    alpha_bars: np.ndarray

    @property
    def n_steps(self) -> int:
        return int(self.betas.shape[0])

    @classmethod
    def from_betas(cls, betas) -> DDPMSchedule:
        """Validate ``betas`` (in (0, 1), finite, 1-D) and build the schedule."""
        b = _check_betas(betas)
        a = 1.0 - b
        return cls(betas=b, alphas=a, alpha_bars=np.cumprod(a))

    def diagnostics(self, tol: float = 1e-3) -> dict:
        """Facts about how well the chain reaches its ``N(0, I)`` prior.

        Returns a dict with ``alpha_bar_N``; ``signal_left = sqrt(alpha_bar_N)`` (the fraction of the data's
        amplitude still present at the last step); ``prior_kl_per_dim``, the KL divergence from
        ``q(x_N) = N(sqrt(alpha_bar_N) m, alpha_bar_N s^2 + 1 - alpha_bar_N)`` to ``N(0, 1)`` for data of mean
        ``m = 1`` and variance ``s^2 = 1`` per coordinate; and ``reaches_prior = alpha_bar_N <= tol``.
        """
        ab = float(self.alpha_bars[-1])
        v = ab + (1.0 - ab)  # s^2 = 1
        m2 = ab  # (sqrt(ab) * 1)^2
        kl = 0.5 * (v + m2 - 1.0 - math.log(v))
        return {
            "alpha_bar_N": ab,
            "signal_left": math.sqrt(ab),
            "prior_kl_per_dim": kl,
            "reaches_prior": ab <= tol,
            "n_steps": self.n_steps,
        }

    def check_prior(self, tol: float = 1e-3, stacklevel: int = 2) -> bool:
        """Warn (:class:`ScheduleWarning`) when ``alpha_bar_N > tol``; return whether the prior is reached.

        Example: linear betas 1e-5..5e-3 over 1,000 steps give ``alpha_bar_N = 0.08``: 28 % of the data's
        amplitude survives, so sampling from ``N(0, I)`` starts from the wrong distribution.
        """
        d = self.diagnostics(tol)
        if not d["reaches_prior"]:
            warnings.warn(
                f"DDPM schedule does not reach the N(0, I) prior: alpha_bar_N = {d['alpha_bar_N']:.3g} > {tol:g} "
                f"(signal left sqrt(alpha_bar_N) = {d['signal_left']:.3g}); samples drawn from the prior will be "
                "biased. Use larger betas or more steps.",
                ScheduleWarning,
                stacklevel=stacklevel,
            )
        return bool(d["reaches_prior"])


def _check_betas(betas, name: str = "betas", increasing: bool = False) -> np.ndarray:
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 1 or b.size < 1:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {b.shape}")
    bad = np.flatnonzero(~((b > 0) & (b < 1)))
    if bad.size:
        raise ValueError(f"{name} must lie in the open interval (0, 1): {name}[{bad[0]}] = {b[bad[0]]}")
    if increasing:
        dec = np.flatnonzero(np.diff(b) < 0)
        if dec.size:
            i = int(dec[0])
            raise ValueError(
                f"{name} must be non-decreasing: {name}[{i + 1}] = {b[i + 1]} < {name}[{i}] = {b[i]}"
            )
    return b


class VPSDE(SDE):
    """Variance-preserving SDE ``dX = -beta(t)/2 X dt + sqrt(beta(t)) dW`` on ``t in [0, T]``, ``T = 1``.

    ``beta(t) = beta_min + t (beta_max - beta_min)`` (linear), or piecewise constant on ``[i/N, (i+1)/N)`` when
    built by :meth:`from_ddpm_betas`. Marginal: ``X_t | X_0 = x0 ~ N(x0 e^{-B(t)/2}, (1 - e^{-B(t)}) I)`` with
    ``B(t) = int_0^t beta``. Prior ``N(0, I)``. Facts: linear, additive, diagonal noise; Itô = Stratonovich.

    DDPM is a discretization of this SDE (:meth:`discretize`): step ``i`` of ``N`` ends at ``t_i = i/N``.
    """

    has_numba_face = True
    linear = True
    has_exact_step = True
    affine_marginal = True
    dimension_free = True
    discretizable = True
    T = 1.0
    _fields = ("beta_min", "beta_max", "dim", "ddpm_betas", "ddpm_mapping")

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, dim: int = 1, *, ddpm_betas=None,
                 ddpm_mapping: str | None = None):
        if ddpm_betas is not None:
            b = _check_betas(ddpm_betas, increasing=True)
            N = b.size
            if ddpm_mapping == "first_order":
                rates = N * b
            elif ddpm_mapping == "exact":
                rates = -N * np.log1p(-b)
            else:
                raise ValueError(f"mapping must be 'first_order' or 'exact', got {ddpm_mapping!r}")
            beta_min, beta_max = float(rates.min()), float(rates.max())
        beta_min, beta_max = float(beta_min), float(beta_max)
        if not (math.isfinite(beta_min) and math.isfinite(beta_max) and 0 < beta_min <= beta_max):
            raise ValueError(f"VPSDE needs 0 < beta_min <= beta_max, got beta_min={beta_min}, beta_max={beta_max}")
        if isinstance(dim, bool) or int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        self.beta_min, self.beta_max = beta_min, beta_max
        self.dim = int(dim)
        self.noise_type = "diagonal"
        self.noise_dim = self.dim
        self.additive = True
        self.ddpm_betas: np.ndarray | None = None if ddpm_betas is None else b.copy()
        self.ddpm_mapping: str | None = None if ddpm_betas is None else ddpm_mapping
        self._rates: np.ndarray | None = None if ddpm_betas is None else rates  # piecewise-constant beta(t)

    @classmethod
    def from_ddpm_betas(cls, betas, dim: int = 1, mapping: str = "first_order", check_prior: bool = True) -> VPSDE:
        """The VP-SDE whose discretization on ``N = len(betas)`` steps is the given DDPM schedule.

        ``beta(t)`` is piecewise constant on ``[i/N, (i+1)/N)``:

        * ``mapping="first_order"`` (default): ``beta(t) = N betas[i]``; ``discretize(N)`` returns ``betas``.
        * ``mapping="exact"``: ``beta(t) = -N log(1 - betas[i])``; then ``e^{-B(i/N)} = alpha_bar_i`` exactly and
          ``discretize(N, mapping="exact")`` returns ``betas``.

        ``betas`` must lie in (0, 1) and be non-decreasing. Warns (:class:`ScheduleWarning`) when
        ``alpha_bar_N > 1e-3`` unless ``check_prior=False``.
        """
        if mapping not in ("first_order", "exact"):
            raise ValueError(f"mapping must be 'first_order' or 'exact', got {mapping!r}")
        sde = cls(dim=dim, ddpm_betas=betas, ddpm_mapping=mapping)
        if check_prior:
            DDPMSchedule.from_betas(sde.ddpm_betas).check_prior(stacklevel=3)
        return sde

    def params(self) -> dict:
        if self.ddpm_betas is not None:  # beta_min/max are derived from the betas then
            return {"dim": self.dim, "ddpm_betas": self.ddpm_betas, "ddpm_mapping": self.ddpm_mapping}
        return {"beta_min": self.beta_min, "beta_max": self.beta_max, "dim": self.dim}

    def with_dim(self, dim: int) -> VPSDE:
        return self if dim == self.dim else self.replace(dim=dim)

    def __repr__(self):
        if self.ddpm_betas is not None:
            return (f"VPSDE.from_ddpm_betas(<{self.ddpm_betas.size} betas>, dim={self.dim}, "
                    f"mapping={self.ddpm_mapping!r})")
        return f"VPSDE(beta_min={self.beta_min}, beta_max={self.beta_max}, dim={self.dim})"

    # schedule
    @staticmethod
    def _cell(t, N: int):
        """The index of the piecewise-constant cell (of ``N``) holding ``t``."""
        return np.clip(np.floor(np.asarray(t, dtype=np.float64) * N).astype(np.int64), 0, N - 1)

    def beta(self, t):
        """``beta(t)`` (float or array like ``t``)."""
        t = np.asarray(t, dtype=np.float64)
        if self._rates is not None:
            return self._rates[self._cell(t, self._rates.size)]
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t):
        """``B(t) = int_0^t beta(s) ds``."""
        t = np.asarray(t, dtype=np.float64)
        if self._rates is not None:
            N = self._rates.size
            cum = np.concatenate([[0.0], np.cumsum(self._rates) / N])
            i = self._cell(t, N)
            return cum[i] + self._rates[i] * (t - i / N)
        return self.beta_min * t + 0.5 * t**2 * (self.beta_max - self.beta_min)

    # batched face
    def drift(self, x, t):
        return -0.5 * self._coef(self.beta(t), x) * x

    def diffusion(self, x, t):
        b = self._coef(np.sqrt(self.beta(t)), x)
        return b * np.ones_like(x) if np.ndim(b) == 0 else np.broadcast_to(b, np.shape(x)) * 1.0

    def diffusion_dx(self, x, t):
        return np.zeros(np.shape(x))

    @staticmethod
    def _coef(c, x):
        c = np.asarray(c, dtype=np.float64)
        if c.ndim == 0:
            return float(c)
        return c.reshape(-1, 1)

    def marginal(self, x0, t):
        """``(mean, std)``: ``mean = x0 e^{-B(t)/2}``, ``std = sqrt(1 - e^{-B(t)})`` (``expm1`` for small t)."""
        B = self.integrated_beta(t)
        x0 = np.asarray(x0, dtype=np.float64)
        return x0 * np.exp(-0.5 * self._coef(B, x0)), np.sqrt(-np.expm1(-B))

    def marginal_coef(self, t):
        t = np.asarray(t, dtype=np.float64)
        B = self.integrated_beta(t)
        return np.exp(-0.5 * B), np.zeros((*t.shape, self.dim)), np.sqrt(-np.expm1(-B))

    def affine_coef(self, t):
        b = np.asarray(self.beta(t), dtype=np.float64)
        return 0.5 * b, np.sqrt(b)

    def prior(self) -> Gaussian:
        return Gaussian(np.zeros(self.dim), np.eye(self.dim))

    def stationary(self) -> Gaussian:
        """``N(0, I)``: the limit for a constant ``beta``; for ``t in [0, 1]`` the prior."""
        return self.prior()

    def exact_step(self, x, t, h, z):
        dB = float(self.integrated_beta(t + h) - self.integrated_beta(t))
        a = math.exp(-0.5 * dB)
        s = math.sqrt(-math.expm1(-dB)) if dB > 0 else 0.0
        return a * x + s * z[:, : self.dim]

    # DDPM
    def discretize(self, n_steps: int, mapping: str = "first_order") -> DDPMSchedule:
        """The DDPM schedule on ``N`` steps; step ``i = 1..N`` runs from ``t_{i-1}`` to ``t_i = i T / N``.

        * ``mapping="first_order"``: ``beta_i = beta(s_i) / N`` with ``s_i = (i - 1) / (N - 1)``, i.e.
          ``betas = linspace(beta(0), beta(1), N) / N`` for the linear schedule (score_sde's map: beta 0.1..20 at
          ``N = 1000`` gives DDPM's linear 1e-4..0.02). Then ``sum(betas) = B(1)`` exactly for a linear beta, and
          ``alpha_bar_i`` matches the VP marginal ``e^{-B(t_i)}`` to first order: the error halves as ``N``
          doubles. For a VP-SDE built by :meth:`from_ddpm_betas` with ``N`` betas and first-order mapping, the
          original betas are returned unchanged.
        * ``mapping="exact"``: ``beta_i = 1 - exp(-int_{t_{i-1}}^{t_i} beta)``; then ``alpha_bar_i = e^{-B(t_i)}``
          exactly, so the DDPM forward chain has exactly the VP marginals at every ``t_i``.

        Raises:
            ValueError: ``n_steps`` not a positive integer, an unknown ``mapping``, or resulting betas outside
                (0, 1) (too few steps for the schedule).
        """
        if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
        N = int(n_steps)
        if mapping == "first_order":
            if self.ddpm_betas is not None and self.ddpm_mapping == "first_order" and self.ddpm_betas.size == N:
                betas = self.ddpm_betas.copy()
            elif self._rates is not None:
                # piecewise-constant beta: the rate of the cell containing the step's start, over N
                betas = self.beta((np.arange(N) + 0.5) / N) / N
            else:
                s = np.arange(N) / max(N - 1, 1)
                betas = np.asarray(self.beta(s), dtype=np.float64) / N
        elif mapping == "exact":
            edges = np.arange(N + 1) * (self.T / N)
            dB = np.diff(self.integrated_beta(edges))
            betas = -np.expm1(-dB)
        else:
            raise ValueError(f"mapping must be 'first_order' or 'exact', got {mapping!r}")
        return DDPMSchedule.from_betas(_check_betas(betas, name=f"betas of discretize({N}, {mapping!r})"))

    def check_prior(self, tol: float = 1e-3, stacklevel: int = 2) -> bool:
        """Warn (:class:`ScheduleWarning`) when ``alpha_bar(T) = e^{-B(T)} > tol`` (the prior is not reached)."""
        ab = float(np.exp(-self.integrated_beta(self.T)))
        if ab > tol:
            warnings.warn(
                f"{self!r} does not reach its N(0, I) prior: alpha_bar(T) = exp(-B(T)) = {ab:.3g} > {tol:g}; "
                "samples started from the prior will be biased.",
                ScheduleWarning,
                stacklevel=stacklevel,
            )
            return False
        return True

    def numba_schedule(self, jit=_default_jit):
        """Numba kernels ``(beta(t), B(t))`` of the schedule and its integral ``B(t) = int_0^t beta``."""
        if self._rates is not None:
            nb = self._rates.copy()
            N = nb.size
            cum = np.concatenate([[0.0], np.cumsum(nb) / N])

            def beta(t):
                i = min(max(int(math.floor(t * N)), 0), N - 1)
                return nb[i]

            def intb(t):
                i = min(max(int(math.floor(t * N)), 0), N - 1)
                return cum[i] + nb[i] * (t - i / N)
        else:
            b0, b1 = self.beta_min, self.beta_max

            def beta(t):
                return b0 + t * (b1 - b0)

            def intb(t):
                return b0 * t + 0.5 * t * t * (b1 - b0)

        return jit(beta), jit(intb)

    def numba_marginal_coef(self, jit=_default_jit):
        """Numba kernel ``coef(t) -> (a, v)``: ``X_t | X_0 = x0 ~ N(a x0, v I)`` with ``a = e^{-B/2}``,
        ``v = 1 - e^{-B}`` (the closed form :meth:`marginal` evaluates, for per-particle kernels)."""
        _, intb = self.numba_schedule(jit)

        def coef(t):
            B = intb(t)
            return math.exp(-0.5 * B), -math.expm1(-B)

        return jit(coef)

    def numba_face(self, jit=_default_jit) -> NumbaFace:
        d = self.dim
        beta, intb = self.numba_schedule(jit)

        def drift(x, t, out):
            c = -0.5 * beta(t)
            for i in range(d):
                out[i] = c * x[i]

        def diffusion(x, t, out):
            s = math.sqrt(beta(t))
            for i in range(d):
                out[i] = s

        def diffusion_dx(x, t, out):
            for i in range(d):
                out[i] = 0.0

        def exact_step(h):
            def step(x, t, z, out):
                dB = intb(t + h) - intb(t)
                a = math.exp(-0.5 * dB)
                s = math.sqrt(-math.expm1(-dB)) if dB > 0 else 0.0
                for i in range(d):
                    out[i] = a * x[i] + s * z[i]

            return jit(step)

        return NumbaFace(jit(drift), jit(diffusion), jit(diffusion_dx), exact_step=exact_step)


class VESDE(SDE):
    """Variance-exploding SDE ``dX = sqrt(d sigma^2(t)/dt) dW``, ``sigma(t) = sigma_min (sigma_max/sigma_min)^t``.

    ``g(t) = sigma(t) sqrt(2 log(sigma_max / sigma_min))``. Marginal from ``X_0 = x0``: mean ``x0``, variance
    ``sigma(t)^2 - sigma_min^2`` (exact; score_sde uses ``sigma(t)^2``, the two differ by ``sigma_min^2``).
    Prior ``N(0, sigma_max^2 I)``.
    """

    has_numba_face = True
    linear = True
    has_exact_step = True
    affine_marginal = True
    dimension_free = True
    T = 1.0
    _fields = ("sigma_min", "sigma_max", "dim")

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, dim: int = 1):
        sigma_min, sigma_max = float(sigma_min), float(sigma_max)
        if not (math.isfinite(sigma_max) and 0 < sigma_min < sigma_max):
            raise ValueError(f"VESDE needs 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.dim = int(dim)
        self.noise_type = "diagonal"
        self.noise_dim = self.dim
        self.additive = True
        self._log_ratio = math.log(sigma_max / sigma_min)

    def with_dim(self, dim: int) -> VESDE:
        return self if dim == self.dim else self.replace(dim=dim)

    def __repr__(self):
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, dim={self.dim})"

    def sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** np.asarray(t, dtype=np.float64)

    def g(self, t):
        return self.sigma(t) * math.sqrt(2.0 * self._log_ratio)

    def drift(self, x, t):
        return np.zeros(np.shape(x))

    def diffusion(self, x, t):
        return VPSDE._coef(self.g(t), x) * np.ones(np.shape(x))

    def diffusion_dx(self, x, t):
        return np.zeros(np.shape(x))

    def marginal(self, x0, t):
        x0 = np.asarray(x0, dtype=np.float64)
        var = self.sigma_min**2 * np.expm1(2.0 * self._log_ratio * np.asarray(t, dtype=np.float64))
        return x0.copy(), np.sqrt(var)

    def marginal_coef(self, t):
        t = np.asarray(t, dtype=np.float64)
        std = self.sigma_min * np.sqrt(np.expm1(2.0 * self._log_ratio * t))
        return np.ones_like(t), np.zeros((*t.shape, self.dim)), std

    def affine_coef(self, t):
        t = np.asarray(t, dtype=np.float64)
        return np.zeros_like(t), np.asarray(self.g(t), dtype=np.float64)

    def prior(self) -> Gaussian:
        return Gaussian(np.zeros(self.dim), self.sigma_max**2 * np.eye(self.dim))

    def exact_step(self, x, t, h, z):
        s2 = float(self.sigma(t + h) ** 2 - self.sigma(t) ** 2)
        return x + math.sqrt(max(s2, 0.0)) * z[:, : self.dim]

    def numba_marginal_coef(self, jit=_default_jit):
        """Numba kernel ``coef(t) -> (a, v)``: ``X_t | X_0 = x0 ~ N(a x0, v I)``, ``a = 1``,
        ``v = sigma_min^2 (e^{2 t log(sigma_max/sigma_min)} - 1)``."""
        smin2, lr2 = self.sigma_min**2, 2.0 * self._log_ratio

        def coef(t):
            return 1.0, smin2 * math.expm1(lr2 * t)

        return jit(coef)

    def numba_face(self, jit=_default_jit) -> NumbaFace:
        d = self.dim
        smin, lr = self.sigma_min, self._log_ratio
        c = math.sqrt(2.0 * lr)

        def drift(x, t, out):
            for i in range(d):
                out[i] = 0.0

        def diffusion(x, t, out):
            s = smin * math.exp(lr * t) * c
            for i in range(d):
                out[i] = s

        def diffusion_dx(x, t, out):
            for i in range(d):
                out[i] = 0.0

        def exact_step(h):
            def step(x, t, z, out):
                s2 = smin * smin * (math.exp(2.0 * lr * (t + h)) - math.exp(2.0 * lr * t))
                s = math.sqrt(s2) if s2 > 0 else 0.0
                for i in range(d):
                    out[i] = x[i] + s * z[i]

            return jit(step)

        return NumbaFace(jit(drift), jit(diffusion), jit(diffusion_dx), exact_step=exact_step)
