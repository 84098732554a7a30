"""Diffusion-model SDEs: variance preserving (VP, DDPM's limit) and variance exploding (VE).

Both act coordinate-wise with the same scalar coefficient on every coordinate, so one object serves any
``dim`` (set at construction, default 1, or inferred by the caller from the data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._jit import jit
from .base import SDE, NumbaFace
from .distributions import Gaussian


@dataclass(frozen=True)
class DDPMSchedule:
    """A discrete DDPM schedule: ``betas``, ``alphas = 1 - betas``, ``alpha_bars = cumprod(alphas)`` (float64)."""

    betas: np.ndarray
    alphas: np.ndarray
    alpha_bars: np.ndarray

    @property
    def n_steps(self) -> int:
        return int(self.betas.shape[0])


def _check_betas(betas) -> np.ndarray:
    b = np.asarray(betas, dtype=np.float64)
    if b.ndim != 1 or b.size < 1:
        raise ValueError(f"betas must be a non-empty 1-D array, got shape {b.shape}")
    bad = np.flatnonzero(~((b > 0) & (b < 1)))
    if bad.size:
        raise ValueError(f"betas must lie in (0, 1): betas[{bad[0]}] = {b[bad[0]]}")
    return b


class VPSDE(SDE):
    """Variance-preserving SDE ``dX = -beta(t)/2 X dt + sqrt(beta(t)) dW`` on ``t in [0, 1]``.

    ``beta(t) = beta_min + t (beta_max - beta_min)`` (linear), or piecewise constant ``beta(t) = N betas[i]``
    on ``[i/N, (i+1)/N)`` when built by :meth:`from_ddpm_betas`. Marginal: mean ``x0 e^{-B(t)/2}``, variance
    ``1 - e^{-B(t)}`` with ``B(t) = int_0^t beta``. Facts: linear, additive, diagonal noise.
    """

    has_numba_face = True
    linear = True
    methods = ("euler_maruyama", "milstein", "exact")
    T = 1.0

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, dim: int = 1):
        beta_min, beta_max = float(beta_min), float(beta_max)
        if not (math.isfinite(beta_min) and math.isfinite(beta_max) and 0 < beta_min <= beta_max):
            raise ValueError(f"VPSDE needs 0 < beta_min <= beta_max, got beta_min={beta_min}, beta_max={beta_max}")
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        self.beta_min, self.beta_max = beta_min, beta_max
        self.dim = int(dim)
        self.noise_type = "diagonal"
        self.noise_dim = self.dim
        self.additive = True
        self.ddpm_betas: np.ndarray | None = None

    @classmethod
    def from_ddpm_betas(cls, betas, dim: int = 1) -> VPSDE:
        """The VP-SDE whose ``beta(t) = N betas[i]`` on ``[i/N, (i+1)/N)``: the DDPM schedule exactly."""
        b = _check_betas(betas)
        sde = cls(beta_min=float(b.min() * b.size), beta_max=float(b.max() * b.size), dim=dim)
        sde.ddpm_betas = b.copy()
        return sde

    def with_dim(self, dim: int) -> VPSDE:
        new = VPSDE(self.beta_min, self.beta_max, dim)
        new.ddpm_betas = None if self.ddpm_betas is None else self.ddpm_betas.copy()
        return new

    def __repr__(self):
        if self.ddpm_betas is not None:
            return f"VPSDE.from_ddpm_betas(<{self.ddpm_betas.size} betas>, dim={self.dim})"
        return f"VPSDE(beta_min={self.beta_min}, beta_max={self.beta_max}, dim={self.dim})"

    # schedule
    def beta(self, t):
        t = np.asarray(t, dtype=np.float64)
        if self.ddpm_betas is not None:
            N = self.ddpm_betas.size
            i = np.clip(np.floor(t * N).astype(int), 0, N - 1)
            return N * self.ddpm_betas[i]
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def integrated_beta(self, t):
        """``B(t) = int_0^t beta(s) ds``."""
        t = np.asarray(t, dtype=np.float64)
        if self.ddpm_betas is not None:
            N = self.ddpm_betas.size
            cum = np.concatenate([[0.0], np.cumsum(self.ddpm_betas)])  # B(i/N) = sum_{j<i} betas_j (N * 1/N)
            i = np.clip(np.floor(t * N).astype(int), 0, N - 1)
            return cum[i] + N * self.ddpm_betas[i] * (t - i / N)
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
        """The DDPM schedule on ``N`` steps: ``betas``, ``alphas``, ``alpha_bars`` (float64).

        ``mapping="first_order"``: ``beta_i = beta(t_i) / N`` with ``t_i = i / N`` (score_sde's map;
        beta 0.1..20 gives 1e-4..0.02 at N=1000 when evaluated at ``t_i = i/(N-1)``... see docs).
        ``mapping="exact"``: ``beta_i = 1 - exp(-int_{t_i}^{t_{i+1}} beta)``; the DDPM chain then has exactly the
        VP marginals at ``t_i``. For a VP-SDE built from DDPM betas, ``first_order`` returns them unchanged.
        """
        if int(n_steps) != n_steps or n_steps < 1:
            raise ValueError(f"n_steps must be a positive integer, got {n_steps}")
        N = int(n_steps)
        if mapping == "first_order":
            if self.ddpm_betas is not None and self.ddpm_betas.size == N:
                betas = self.ddpm_betas.copy()
            else:
                # score_sde: discrete betas = linspace(beta_min/N, beta_max/N, N)
                t = np.arange(N) / max(N - 1, 1)
                betas = np.asarray(self.beta(t), dtype=np.float64) / N if self.ddpm_betas is None else (
                    self.beta((np.arange(N) + 0.5) / N) / N
                )
        elif mapping == "exact":
            edges = np.arange(N + 1) / N
            dB = np.diff(self.integrated_beta(edges))
            betas = -np.expm1(-dB)
        else:
            raise ValueError(f"mapping must be 'first_order' or 'exact', got {mapping!r}")
        betas = _check_betas(betas)
        alphas = 1.0 - betas
        return DDPMSchedule(betas=betas, alphas=alphas, alpha_bars=np.cumprod(alphas))

    def numba_face(self) -> NumbaFace:
        d = self.dim
        if self.ddpm_betas is not None:
            nb = self.ddpm_betas * self.ddpm_betas.size
            cum = np.concatenate([[0.0], np.cumsum(self.ddpm_betas)])
            N = self.ddpm_betas.size

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

        beta = jit(beta)
        intb = jit(intb)

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
    methods = ("euler_maruyama", "milstein", "exact")
    T = 1.0

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
        return VESDE(self.sigma_min, self.sigma_max, dim)

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

    def prior(self) -> Gaussian:
        return Gaussian(np.zeros(self.dim), self.sigma_max**2 * np.eye(self.dim))

    def exact_step(self, x, t, h, z):
        s2 = float(self.sigma(t + h) ** 2 - self.sigma(t) ** 2)
        return x + math.sqrt(max(s2, 0.0)) * z[:, : self.dim]

    def numba_face(self) -> NumbaFace:
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
