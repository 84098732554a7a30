"""A sampler's own error, certified against an exact score (:class:`GaussianMixtureScore`).

With the exact score of a Gaussian mixture pushed through the forward SDE, the law a sampler should return,
``p_eps``, is known in closed form: ``sum_k w_k N(a m_k + b, a^2 S_k + sigma^2 I)`` at ``t = eps``
(``a, b, sigma`` from ``sde.marginal_coef(eps)``). Whatever error is left is the sampler's (its time
discretization and its noise), so a user can choose ``n_steps`` for a tolerance before training anything.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from ..metrics import sliced_wasserstein
from . import _marginal
from .samplers import get_sampler
from .sampling import sample
from .scores import GaussianMixtureScore

__all__ = ["SamplerError", "sampler_error", "mixture_weights", "affine_moments"]


@dataclass(frozen=True)
class SamplerError:
    """Errors of ``n_samples`` draws of a sampler against the exact ``p_eps`` (all ``max`` over entries).

    Attributes:
        method, n_steps, nfe: the sampler, its steps and its score evaluations.
        mean_error: ``max_i |mean_i - mean*_i|`` (exact mean from the closed form).
        cov_error: ``max_ij |cov_ij - cov*_ij|``.
        weight_error: ``max_k |w^_k - w_k|``, ``w^_k`` the mean responsibility of component ``k`` under ``p_eps``
            (its expectation under the exact law is ``w_k``).
        sw: sliced Wasserstein (256 projections) between the samples and as many exact samples.
        sw_floor: the same between two independent exact sample sets (the noise floor of ``sw``).
        mean_se, cov_se, weight_se: Monte Carlo standard errors of the three estimates for an exact sampler
            (the largest over entries), so an error is significant only when well above them.
    """

    method: str
    n_steps: int
    nfe: int
    n_samples: int
    mean_error: float
    cov_error: float
    weight_error: float
    sw: float
    sw_floor: float
    mean_se: float
    cov_se: float
    weight_se: float

    def to_dict(self) -> dict:
        return asdict(self)


def mixture_weights(target: GaussianMixtureScore, x: np.ndarray, t: float) -> np.ndarray:
    """Mean responsibilities ``(K,)`` of the samples ``x`` under ``p_t`` (``w_k`` in expectation for exact draws)."""
    logp, _, _ = target._components(np.asarray(x, dtype=np.float64), float(t))
    r, _ = target._resp(logp)
    return r.mean(axis=0)


def _cov_se(x: np.ndarray) -> float:
    """Largest standard error of the sample covariance entries (from the fourth moments of ``x``)."""
    y = x - x.mean(0)
    n = x.shape[0]
    prod = y[:, :, None] * y[:, None, :]
    return float(np.sqrt(prod.var(axis=0) / n).max())


def sampler_error(sde, method: str, n_steps: int, target: GaussianMixtureScore, *, n_samples: int = 20_000,
                  seed: int = 0, eps: float = 1e-3, T: float | None = None, n_projections: int = 256,
                  **options) -> SamplerError:
    """Run ``sample(sde, target, n_samples, method=method, n_steps=n_steps, seed=seed, eps=eps, **options)`` with
    the exact score ``target`` and measure the samples against the exact ``p_eps`` (``ancestral``: ``p_0``).

    Args:
        sde: the forward SDE (``affine_marginal``); ``target.sde`` must be the same SDE.
        method: any sampler name of :func:`~sde_toolkit.score.sample`.
        n_steps: sampler steps (>= 1).
        target: the exact score, a :class:`GaussianMixtureScore` on ``sde``.
        n_samples: draws (also the size of each exact reference set).
        seed: fixes the sampler's draws; the two exact sets use ``seed + 1`` and ``seed + 2``.
        eps, T: the sampler's end and start times.
        n_projections: directions of the sliced Wasserstein distances.
        **options: sampler options of :func:`sample` (``eta``, ``churn``, ``grid``, ``rho``, ...).

    Returns:
        :class:`SamplerError`.

    Raises:
        ValueError: bad ``n_samples``, ``method``, ``n_steps``, sampler options, or a target on another SDE.
        TypeError: ``target`` is not a :class:`GaussianMixtureScore`.
    """
    if not isinstance(target, GaussianMixtureScore):
        raise TypeError(f"target must be a GaussianMixtureScore (an exact score), got {type(target).__name__}")
    cls = get_sampler(method)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 2:
        raise ValueError(f"n_samples must be an integer >= 2, got {n_samples!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    _marginal.require_affine(sde)
    fwd = _marginal.for_dim(sde, target.dim)
    if fwd != target.sde:
        raise ValueError(f"target is the exact score on {target.sde!r}, not on {fwd!r}")
    options.setdefault("progress", False)
    info: dict = {}
    x = sample(fwd, target, int(n_samples), method=method, n_steps=int(n_steps), seed=seed, eps=eps, T=T,
               info=info, **options)
    t_end = 0.0 if cls.name == "ancestral" else float(eps)
    mean, cov = target.marginal_moments(t_end)
    w_hat = mixture_weights(target, x, t_end)
    ref1 = target.sample(int(n_samples), t_end, seed=int(seed) + 1)
    ref2 = target.sample(int(n_samples), t_end, seed=int(seed) + 2)
    logp, _, _ = target._components(ref1, t_end)
    r_ref, _ = target._resp(logp)
    n = int(n_samples)
    return SamplerError(
        method=cls.name, n_steps=int(n_steps), nfe=int(info["nfe"]), n_samples=n,
        mean_error=float(np.abs(x.mean(0) - mean).max()),
        cov_error=float(np.abs(np.cov(x.T).reshape(cov.shape) - cov).max()),
        weight_error=float(np.abs(w_hat - target.weights).max()),
        sw=sliced_wasserstein(x, ref1, n_projections=n_projections, seed=0),
        sw_floor=sliced_wasserstein(ref2, ref1, n_projections=n_projections, seed=0),
        mean_se=float(np.sqrt(np.diag(cov) / n).max()),
        cov_se=_cov_se(ref1),
        weight_se=float((r_ref.std(axis=0) / math.sqrt(n)).max()),
    )


def affine_moments(sampler, target_sde, mean, cov, stochastic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The exact mean and covariance of a sampler's output for a Gaussian start ``N(mean, cov)`` when its step is
    affine in ``(x, z)`` (a single-Gaussian exact score, a sampler without carry: ``ddim``, ``edm``,
    ``euler_maruyama``): each step's ``x' = A x + b + S z`` is read off by stepping ``mean``, ``mean + e_i``
    (``z = 0``) and ``mean`` with ``z = e_j``, then ``m' = A m + b``, ``C' = A C A^T + S S^T``. No Monte Carlo
    noise: the sampler's weak error for Gaussian targets. ``target_sde`` is ``sampler.target(forward, score)``.
    """
    m = np.array(mean, dtype=np.float64)
    C = np.array(cov, dtype=np.float64)
    d = m.size
    if sampler.carry_dim(target_sde):
        raise ValueError(f"affine_moments needs a sampler without carry, {sampler.name!r} carries state")
    times = sampler.grid_times()
    N = int(times.size - 1)
    nz = sampler.n_normals(target_sde)
    for k in range(N):
        X = np.vstack([m, m + np.eye(d)] + ([np.tile(m, (nz, 1))] if nz else []))
        Z = np.zeros((X.shape[0], nz))
        if nz:
            Z[1 + d:] = np.eye(nz)
        t, tn = float(times[k]), float(times[k + 1])
        out = np.asarray(sampler.batched_step(target_sde, X, np.zeros((X.shape[0], 0)), k, t, tn - t, tn,
                                              Z if nz else None, 1.0, None), dtype=np.float64)
        b = out[0]
        A = (out[1:1 + d] - b).T
        S = (out[1 + d:] - b).T if (nz and stochastic) else np.zeros((d, 0))
        m = b + 0.0
        C = A @ C @ A.T + S @ S.T
    return m, C
