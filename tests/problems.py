"""Canonical SDEs with known answers, shared by the integrator and model tests.

Sources: ``prob_sde_linear`` (geometric Brownian motion) from DiffEqProblemLibrary.jl / torchsde's
``problems.py``; the OU closed forms of Kloeden & Platen (EM's discrete law) and the Lyapunov equation; the double
well ``U = (x^2 - 1)^2`` of TESTING.md check 9; the seed density of the project brief.
"""

from __future__ import annotations

import math

import numba
import numpy as np

import sde_toolkit as st

# prob_sde_linear: dX = alpha X dt + beta X dW, X_0 = u0, pathwise X_t = u0 exp((alpha - beta^2/2) t + beta W_t)
GBM_ALPHA, GBM_BETA, GBM_U0 = 1.01, 0.87, 0.5

SEED_EXPRESSION = "0.1*x**2 - log(0.2 + cos(2*x)**2)"


def gbm(numba_face: bool = False) -> st.SDE:
    """Geometric Brownian motion as a :class:`FunctionSDE` (diagonal, state-dependent noise; Milstein-ready)."""
    a, b = GBM_ALPHA, GBM_BETA
    if numba_face:

        @numba.njit
        def drift(x, t):
            return a * x

        @numba.njit
        def diffusion(x, t):
            return b * x

        @numba.njit
        def diffusion_dx(x, t):
            return b * np.ones_like(x)
    else:

        def drift(x, t):
            return a * x

        def diffusion(x, t):
            return b * x

        def diffusion_dx(x, t):
            return np.full(np.shape(x), b)

    from sde_toolkit.sde.custom import FunctionSDE

    return FunctionSDE(drift, diffusion, 1, diffusion_dx=diffusion_dx)


def gbm_exact(t: float, w_t: np.ndarray) -> np.ndarray:
    """Pathwise Itô solution of :func:`gbm` at time ``t`` given ``W_t``."""
    return GBM_U0 * np.exp((GBM_ALPHA - 0.5 * GBM_BETA**2) * t + GBM_BETA * w_t)


def ou_em_moments(theta: float, sigma: float, x0: float, h: float, n: int) -> tuple[float, float]:
    """EM's own discrete law for scalar OU (mu = 0): ``m_N = (1 - theta h)^N x0``,
    ``v_N = sigma^2 h (1 - (1 - theta h)^{2N}) / (1 - (1 - theta h)^2)``."""
    a = 1.0 - theta * h
    return a**n * x0, sigma**2 * h * (1.0 - a ** (2 * n)) / (1.0 - a * a)


def ou_exact_moments(theta: float, sigma: float, x0: float, t: float) -> tuple[float, float]:
    """Exact mean and variance of scalar OU (mu = 0) at time ``t``."""
    return x0 * math.exp(-theta * t), sigma**2 * (-math.expm1(-2 * theta * t)) / (2 * theta)


def double_well_1d() -> st.OverdampedLangevin:
    """``dX = -U'(X) dt + sqrt(2) dW``, ``U = (x^2 - 1)^2``; stationary ``~ exp(-U)``."""
    return st.OverdampedLangevin(st.potentials.DoubleWell(a=1.0, b=1.0), kT=1.0, dim=1)


def seed_density(kT: float = 1.0) -> st.OverdampedLangevin:
    """The seed's Langevin density ``exp(-V/kT)``, ``V = 0.1 x^2 - log(0.2 + cos(2x)^2)``."""
    return st.OverdampedLangevin(SEED_EXPRESSION, kT=kT)


NONSYM_THETA = np.array([[1.0, 0.8], [-0.3, 0.7]])  # eigenvalues with positive real part, not symmetric
SIGMA_2D = np.array([[0.6, 0.0], [0.3, 0.9]])
