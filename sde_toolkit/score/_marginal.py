"""The capability reads every score model shares: nothing here knows a concrete SDE or score type.

Score models need a forward SDE that declares ``affine_marginal`` (VPSDE, VESDE, scalar-parameter
OrnsteinUhlenbeck): ``X_t | x0 ~ N(a(t) x0 + b(t), std(t)^2 I)`` from ``sde.marginal_coef(t)``, the drift and
diffusion ``-k(t) (x - c)``, ``g(t)`` from ``sde.affine_coef(t)``, the centre ``c = sde.center``, the prior
``sde.prior()`` and the end time ``sde.T`` (``None`` when the SDE has none, e.g. OU: then ``T`` must be given).

Scores are any callables; score objects declare ``dim`` and their capabilities (``has_numba_face``,
``has_divergence``, ``has_logpdf``) as class attributes, which a plain function lacks (:func:`score_fact`).
"""

from __future__ import annotations

import math

from ..sde.base import SDE


def affine_problem(sde) -> str | None:
    """Why ``sde`` does not declare an isotropic affine marginal (``sde.affine_marginal``), or ``None``."""
    if not isinstance(sde, SDE):
        return f"score models need an sde_toolkit SDE, got {type(sde).__name__}"
    if not sde.affine_marginal:
        return ("score models need an SDE with an isotropic affine marginal (sde.affine_marginal: VPSDE, "
                f"VESDE, OrnsteinUhlenbeck with scalar theta and sigma), got {sde!r}")
    return None


def require_affine(sde) -> None:
    """Raise ``TypeError`` unless ``sde`` declares an isotropic affine marginal (``sde.affine_marginal``)."""
    why = affine_problem(sde)
    if why is not None:
        raise TypeError(why)


def has_gaussian_marginal(sde) -> bool:
    """Whether ``sde`` is an SDE declaring the isotropic affine (Gaussian) marginal the few-step samplers read."""
    return affine_problem(sde) is None


def end_time(sde: SDE, T: float | None = None) -> float:
    """The time the forward process runs to: ``T`` when given, else ``sde.T`` (``ValueError`` when it has none)."""
    if T is not None:
        T = float(T)
        if not (math.isfinite(T) and T > 0):
            raise ValueError(f"T must be a finite number > 0, got {T}")
        return T
    if sde.T is None:
        raise ValueError(f"T must be given for {type(sde).__name__} (it has no fixed end time, sde.T is None)")
    return float(sde.T)


def for_dim(sde: SDE, dim: int) -> SDE:
    """``sde`` itself when its ``dim`` matches, else ``sde.with_dim(dim)`` (``dimension_free`` SDEs; the others
    raise ``ValueError`` naming both dimensions)."""
    require_affine(sde)
    return sde.with_dim(int(dim))


def score_fact(score, name: str) -> bool:
    """A capability the score declares as a class attribute (``has_numba_face``, ``has_divergence``,
    ``has_logpdf``); a plain callable declares none."""
    return bool(getattr(score, name, False))


def score_dim(score, default: int) -> int:
    """The state dimension the score declares (``score.dim``), else ``default``."""
    d = getattr(score, "dim", None)
    return default if d is None else int(d)
