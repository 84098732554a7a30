"""Closed-form marginals of the linear SDEs that score models train on, in one place.

For every supported SDE the transition from time 0 is isotropic and affine:
``X_t | X_0 = x0 ~ N(a(t) x0 + b(t), std(t)^2 I)``. This module returns ``(a, b, std)`` as NumPy arrays for
``t`` a float or an ``(n,)`` array, plus the end time ``T`` and the prior. Supported: :class:`VPSDE`,
:class:`VESDE`, and :class:`OrnsteinUhlenbeck` with scalar ``theta`` and ``sigma`` (any ``mu``).
"""

from __future__ import annotations

import math

import numpy as np

from ..sde import VESDE, VPSDE, OrnsteinUhlenbeck
from ..sde.base import SDE
from ..sde.distributions import Gaussian

SUPPORTED = "VPSDE, VESDE or OrnsteinUhlenbeck with scalar theta and sigma"


def check_supported(sde: SDE) -> None:
    """Raise ``TypeError`` unless ``sde`` has an isotropic closed-form marginal (see module docstring)."""
    if isinstance(sde, (VPSDE, VESDE)):
        return
    if isinstance(sde, OrnsteinUhlenbeck) and sde.scalar_params:
        return
    raise TypeError(f"score models need an SDE with an isotropic closed-form marginal ({SUPPORTED}), "
                    f"got {sde!r}")


def end_time(sde: SDE, T: float | None = None) -> float:
    """The time the forward process is run to: ``sde.T`` for VP/VE (1.0); OU needs an explicit ``T``."""
    if T is not None:
        T = float(T)
        if not (math.isfinite(T) and T > 0):
            raise ValueError(f"T must be a finite number > 0, got {T}")
        return T
    if isinstance(sde, (VPSDE, VESDE)):
        return float(sde.T)
    raise ValueError(f"T must be given for {type(sde).__name__} (it has no fixed end time)")


def coeffs(sde: SDE, t) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a(t), b(t), std(t))`` with ``X_t | x0 ~ N(a x0 + b, std^2 I)``; ``b`` is ``(dim,)`` times ``(1 - a)``.

    Shapes: ``a`` and ``std`` like ``t``; ``b`` is ``t.shape + (dim,)``.
    """
    t = np.asarray(t, dtype=np.float64)
    if isinstance(sde, VPSDE):
        B = sde.integrated_beta(t)
        a = np.exp(-0.5 * B)
        std = np.sqrt(-np.expm1(-B))
        b = np.zeros((*t.shape, sde.dim))
    elif isinstance(sde, VESDE):
        a = np.ones_like(t)
        std = sde.sigma_min * np.sqrt(np.expm1(2.0 * math.log(sde.sigma_max / sde.sigma_min) * t))
        b = np.zeros((*t.shape, sde.dim))
    elif isinstance(sde, OrnsteinUhlenbeck) and sde.scalar_params:
        th = float(sde.theta_param)
        s2 = float(sde.sigma_param) ** 2
        a = np.exp(-th * t)
        var = s2 * t if th == 0.0 else s2 * (-np.expm1(-2.0 * th * t)) / (2.0 * th)
        std = np.sqrt(var)
        b = (1.0 - a)[..., None] * sde.mu
    else:
        check_supported(sde)
        raise AssertionError("unreachable")
    return a, b, std


def prior(sde: SDE, T: float) -> Gaussian:
    """The reference prior at ``T``: ``N(0, I)`` (VP), ``N(0, sigma_max^2 I)`` (VE), the OU marginal of ``N(mu, 0)``
    widened to the stationary law (OU: ``N(mu, sigma^2 / (2 theta) I)``)."""
    if isinstance(sde, (VPSDE, VESDE)):
        return sde.prior()
    if isinstance(sde, OrnsteinUhlenbeck):
        return sde.stationary()
    check_supported(sde)
    raise AssertionError("unreachable")


def sde_for_dim(sde: SDE, dim: int) -> SDE:
    """``sde`` itself when its ``dim`` matches, else a copy with that ``dim`` (VP/VE only; OU's dim is fixed)."""
    if sde.dim == dim:
        return sde
    if isinstance(sde, (VPSDE, VESDE)):
        return sde.with_dim(dim)
    raise ValueError(f"dimension mismatch: the SDE has dim={sde.dim} but the score/data have dim={dim}")


def sde_to_config(sde: SDE) -> dict:
    """A JSON-serializable description of a supported SDE (for checkpoints)."""
    if isinstance(sde, VPSDE):
        if sde.ddpm_betas is not None:
            return {"type": "vpsde", "ddpm_betas": sde.ddpm_betas.tolist(), "mapping": sde.ddpm_mapping,
                    "dim": sde.dim}
        return {"type": "vpsde", "beta_min": sde.beta_min, "beta_max": sde.beta_max, "dim": sde.dim}
    if isinstance(sde, VESDE):
        return {"type": "vesde", "sigma_min": sde.sigma_min, "sigma_max": sde.sigma_max, "dim": sde.dim}
    if isinstance(sde, OrnsteinUhlenbeck) and sde.scalar_params:
        return {"type": "ornstein_uhlenbeck", "theta": float(sde.theta_param), "sigma": float(sde.sigma_param),
                "mu": sde.mu.tolist(), "dim": sde.dim}
    check_supported(sde)
    raise AssertionError("unreachable")


def sde_from_config(cfg: dict) -> SDE:
    """Inverse of :func:`sde_to_config`."""
    kind = cfg.get("type")
    if kind == "vpsde":
        if "ddpm_betas" in cfg:
            return VPSDE.from_ddpm_betas(cfg["ddpm_betas"], dim=cfg["dim"], mapping=cfg["mapping"],
                                         check_prior=False)
        return VPSDE(cfg["beta_min"], cfg["beta_max"], dim=cfg["dim"])
    if kind == "vesde":
        return VESDE(cfg["sigma_min"], cfg["sigma_max"], dim=cfg["dim"])
    if kind == "ornstein_uhlenbeck":
        return OrnsteinUhlenbeck(cfg["theta"], cfg["sigma"], mu=cfg["mu"], dim=cfg["dim"])
    raise ValueError(f"unknown SDE type in config: {kind!r}")
