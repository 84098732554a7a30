"""Distances between samples and densities: KS, exact 1-D Wasserstein, sliced Wasserstein, MMD, energy
distance, total variation and KL divergence of a histogram against a density on a grid.

Conventions: sample sets are ``(n,)`` or ``(n, dim)`` arrays; every function validates its input (finite
values, matching dimensions) and returns plain floats (or a named tuple).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from scipy import stats

__all__ = [
    "KSResult",
    "ks_statistic",
    "wasserstein_1d",
    "sliced_wasserstein",
    "mmd",
    "energy_distance",
    "histogram_probabilities",
    "total_variation",
    "kl_divergence",
]


class KSResult(NamedTuple):
    """``statistic = sup_x |F_n(x) - F(x)|`` and its two-sided p-value (exact Kolmogorov distribution)."""

    statistic: float
    pvalue: float


def _samples(a, name: str, dim: int | None = None) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n,) or (n, dim) with n >= 1, got {np.shape(a)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has dim {x.shape[1]}, expected {dim}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def _samples_1d(a, name: str) -> np.ndarray:
    x = np.asarray(a, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1 or x.size < 1:
        raise ValueError(f"{name} must be 1-D samples of shape (n,) or (n, 1), got {np.shape(a)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def ks_statistic(samples_1d, cdf: Callable[[np.ndarray], np.ndarray]) -> KSResult:
    """One-sample Kolmogorov–Smirnov test ``D_n = sup |F_n - F|`` of 1-D samples against a CDF.

    The p-value assumes independent samples (for correlated MCMC output use independent chains or thin by
    several autocorrelation times; :func:`sde_toolkit.validate_stationary` does this for you).

    Args:
        samples_1d: ``(n,)`` samples.
        cdf: vectorized CDF ``F``.

    Returns:
        :class:`KSResult` ``(statistic, pvalue)``.
    """
    x = _samples_1d(samples_1d, "samples_1d")
    r = stats.kstest(x, cdf)
    return KSResult(float(r.statistic), float(r.pvalue))


def wasserstein_1d(a, b, p: int = 1) -> float:
    """Exact ``W_p`` between two 1-D empirical distributions.

    ``W_1 = int |F_a(x) - F_b(x)| dx`` (unequal sizes allowed); ``W_p^p = int_0^1 |F_a^{-1}(u) - F_b^{-1}(u)|^p du``
    on the merged quantile grid.

    Args:
        a, b: ``(n,)`` and ``(m,)`` samples.
        p: order (>= 1).

    Returns:
        ``W_p`` (same units as the samples).
    """
    if p < 1:
        raise ValueError(f"p must be >= 1, got {p}")
    x = np.sort(_samples_1d(a, "a"))
    y = np.sort(_samples_1d(b, "b"))
    if p == 1:
        allv = np.sort(np.concatenate([x, y]))
        d = np.diff(allv)
        fa = np.searchsorted(x, allv[:-1], side="right") / x.size
        fb = np.searchsorted(y, allv[:-1], side="right") / y.size
        return float(np.sum(np.abs(fa - fb) * d))
    u = np.unique(np.concatenate([np.arange(1, x.size + 1) / x.size, np.arange(1, y.size + 1) / y.size]))
    du = np.diff(np.concatenate([[0.0], u]))
    qa = x[np.minimum(np.ceil(u * x.size - 1e-12).astype(int) - 1, x.size - 1)]
    qb = y[np.minimum(np.ceil(u * y.size - 1e-12).astype(int) - 1, y.size - 1)]
    return float(np.sum(du * np.abs(qa - qb) ** p) ** (1.0 / p))


def sliced_wasserstein(a, b, n_projections: int = 256, seed: int | None = 0, p: int = 1) -> float:
    """Sliced Wasserstein ``SW_p = (E_theta W_p^p(theta . a, theta . b))^(1/p)``, ``theta`` uniform on the sphere.

    Monte Carlo over ``n_projections`` random directions (fixed by ``seed``); in 1-D it equals
    :func:`wasserstein_1d`.

    Args:
        a, b: ``(n, dim)`` and ``(m, dim)`` samples.
        n_projections: number of directions.
        seed: seed of the directions.
        p: order.

    Returns:
        ``SW_p``.
    """
    x = _samples(a, "a")
    y = _samples(b, "b", x.shape[1])
    if int(n_projections) < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    d = x.shape[1]
    if d == 1:
        return wasserstein_1d(x[:, 0], y[:, 0], p)
    th = np.random.default_rng(seed).standard_normal((int(n_projections), d))
    th /= np.linalg.norm(th, axis=1, keepdims=True)
    px, py = x @ th.T, y @ th.T
    w = np.array([wasserstein_1d(px[:, k], py[:, k], p) ** p for k in range(th.shape[0])])
    return float(w.mean() ** (1.0 / p))


def _sqdist(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def mmd(a, b, bandwidth: float | None = None, max_n: int | None = None, seed: int = 0) -> float:
    """Unbiased squared maximum mean discrepancy with the RBF kernel ``k(x, y) = exp(-|x - y|^2 / (2 l^2))``.

    ``MMD_u^2 = mean_{i != j} k(a_i, a_j) + mean_{i != j} k(b_i, b_j) - 2 mean_{i, j} k(a_i, b_j)``
    (Gretton et al. 2012, Eq. 3); it can be slightly negative when the laws agree. The default bandwidth is
    the median heuristic, ``l = median`` of the pooled pairwise distances (a subsample of at most 1000 points
    per set, deterministic). Cost ``O((n + m)^2)`` memory and time.

    Args:
        a, b: ``(n, dim)`` and ``(m, dim)`` samples, ``n, m >= 2``.
        bandwidth: kernel length scale ``l``; ``None`` for the median heuristic.
        max_n: if given, use a seeded random subsample of at most ``max_n`` rows of each set (bounds the
            quadratic cost for large sample sets).
        seed: seed of that subsample.

    Returns:
        ``MMD_u^2``.
    """
    x = _samples(a, "a")
    y = _samples(b, "b", x.shape[1])
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError("mmd needs at least 2 samples in each set")
    if max_n is not None:
        if int(max_n) < 2:
            raise ValueError(f"max_n must be >= 2, got {max_n}")
        rng = np.random.default_rng(seed)
        if x.shape[0] > max_n:
            x = x[rng.choice(x.shape[0], int(max_n), replace=False)]
        if y.shape[0] > max_n:
            y = y[rng.choice(y.shape[0], int(max_n), replace=False)]
    if bandwidth is None:
        z = np.concatenate([x[:: max(1, x.shape[0] // 1000)], y[:: max(1, y.shape[0] // 1000)]])
        dz = _sqdist(z, z)
        iu = np.triu_indices(z.shape[0], 1)
        med = float(np.median(np.sqrt(dz[iu])))
        bandwidth = med if med > 0 else 1.0
    elif not (math.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be positive, got {bandwidth}")
    g = 1.0 / (2.0 * bandwidth**2)
    n, m = x.shape[0], y.shape[0]
    kxx = np.exp(-g * _sqdist(x, x))
    kyy = np.exp(-g * _sqdist(y, y))
    kxy = np.exp(-g * _sqdist(x, y))
    sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
    syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def energy_distance(a, b) -> float:
    """Energy distance ``D = sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` (Székely & Rizzo; V-statistics).

    Euclidean norms in ``dim >= 1``; in 1-D it equals ``scipy.stats.energy_distance`` (``sqrt(2) ||F_a - F_b||_2``).
    Zero iff the two empirical distributions coincide.

    Args:
        a, b: ``(n, dim)`` and ``(m, dim)`` samples.

    Returns:
        ``D >= 0``.
    """
    x = _samples(a, "a")
    y = _samples(b, "b", x.shape[1])
    if x.shape[1] == 1:
        xs, ys = np.sort(x[:, 0]), np.sort(y[:, 0])
        allv = np.sort(np.concatenate([xs, ys]))
        d = np.diff(allv)
        fa = np.searchsorted(xs, allv[:-1], side="right") / xs.size
        fb = np.searchsorted(ys, allv[:-1], side="right") / ys.size
        return float(math.sqrt(2.0 * np.sum((fa - fb) ** 2 * d)))
    exy = np.sqrt(_sqdist(x, y)).mean()
    exx = np.sqrt(_sqdist(x, x)).mean()
    eyy = np.sqrt(_sqdist(y, y)).mean()
    return float(math.sqrt(max(2.0 * exy - exx - eyy, 0.0)))


# ------------------------------------------------------------------------------------ histograms vs densities
def _edges(grid) -> tuple[np.ndarray, ...]:
    if isinstance(grid, np.ndarray) and grid.ndim == 1:
        grid = (grid,)
    if not isinstance(grid, (tuple, list)):
        raise TypeError("grid must be a 1-D array of bin edges or a tuple of per-axis edge arrays")
    out = []
    for k, e in enumerate(grid):
        e = np.asarray(e, dtype=np.float64)
        if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all() or np.any(np.diff(e) <= 0):
            raise ValueError(f"grid axis {k}: edges must be a strictly increasing finite 1-D array of size >= 2")
        out.append(e)
    return tuple(out)


def histogram_probabilities(samples, grid: Sequence[np.ndarray] | np.ndarray) -> tuple[np.ndarray, float]:
    """Empirical cell probabilities ``(p_cells, p_outside)`` of samples on a grid of bin edges.

    Args:
        samples: ``(n,)`` or ``(n, dim)``.
        grid: bin edges, a 1-D array (1-D) or a tuple of per-axis arrays.

    Returns:
        ``p_cells`` with the grid's cell shape and the fraction of samples outside the grid.
    """
    edges = _edges(grid)
    x = _samples(samples, "samples", len(edges))
    counts, _ = np.histogramdd(x, bins=edges)
    n = x.shape[0]
    p = counts / n
    return p, float(max(0.0, 1.0 - p.sum()))


def _reference_probabilities(density, edges) -> np.ndarray:
    shape = tuple(e.size - 1 for e in edges)
    vol = np.ones(shape)
    centers = []
    for k, e in enumerate(edges):
        w = np.diff(e)
        vol = vol * w.reshape([-1 if j == k else 1 for j in range(len(edges))])
        centers.append(0.5 * (e[1:] + e[:-1]))
    if callable(density):
        mesh = np.meshgrid(*centers, indexing="ij")
        pts = np.stack([m.ravel() for m in mesh], axis=1)
        vals = np.asarray(density(pts), dtype=np.float64).reshape(shape)
    else:
        vals = np.asarray(density, dtype=np.float64)
        if vals.shape != shape:
            raise ValueError(f"density values have shape {vals.shape}, the grid has cells {shape}")
    if not np.isfinite(vals).all() or np.any(vals < 0):
        raise ValueError("density must be finite and non-negative on the grid")
    q = vals * vol
    s = q.sum()
    if s <= 0:
        raise ValueError("density integrates to zero on the grid")
    return q / s


def _split_hist(hist_or_samples, edges):
    shape = tuple(e.size - 1 for e in edges)
    h = np.asarray(hist_or_samples, dtype=np.float64)
    if h.shape == shape:  # a histogram; pass 1-D samples as (n, 1) when n equals the number of cells
        if not np.isfinite(h).all() or np.any(h < 0) or h.sum() <= 0:
            raise ValueError("histogram must be finite, non-negative and not all zero")
        return h / h.sum(), 0.0
    return histogram_probabilities(h, edges)


def total_variation(hist_or_samples, density, grid) -> float:
    """Total variation ``TV = 1/2 sum_i |p_i - q_i|`` between a histogram and a density on a grid of cells.

    ``q_i`` is the density at the cell centre times the cell volume (midpoint rule), normalized to sum to 1
    over the grid, or given directly as cell values. When samples are passed, those outside the grid form an
    extra cell with ``q = 0`` (so a grid that misses mass is penalized, never hidden).

    Args:
        hist_or_samples: samples ``(n,)``/``(n, dim)``, or histogram values with the grid's cell shape
            (counts or cell probabilities; normalized here). An array with exactly the cell shape is read as
            a histogram, so pass 1-D samples as ``(n, 1)`` if ``n`` equals the number of cells.
        density: a callable ``pdf(x (m, dim)) -> (m,)`` or an array of density values on the cell centres.
        grid: bin edges (1-D array, or a tuple of per-axis arrays).

    Returns:
        ``TV`` in ``[0, 1]``.
    """
    edges = _edges(grid)
    q = _reference_probabilities(density, edges)
    p, out = _split_hist(hist_or_samples, edges)
    return float(0.5 * (np.abs(p - q).sum() + out))


def kl_divergence(hist_or_samples, density, grid, eps: float = 1e-12) -> float:
    """``KL(p || q) = sum_i p_i log(p_i / q_i)`` of a histogram ``p`` against the density's cell masses ``q``.

    Cells with ``p_i = 0`` contribute 0; ``q_i`` is floored at ``eps`` so an empty reference cell gives a large
    finite value instead of inf. Samples outside the grid are dropped (their fraction is not part of ``p``).

    Args:
        hist_or_samples, density, grid: as in :func:`total_variation`.
        eps: floor on ``q_i``.

    Returns:
        ``KL >= 0`` (nats).
    """
    edges = _edges(grid)
    q = _reference_probabilities(density, edges)
    p, _ = _split_hist(hist_or_samples, edges)
    s = p.sum()
    if s <= 0:
        raise ValueError("no samples fall inside the grid")
    p = p / s
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / np.maximum(q[m], eps))))
