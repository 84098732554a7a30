"""Sample-based distances used by the score experiments and benchmark (NumPy only).

Kept private: :mod:`sde_toolkit.metrics` is the public home of these metrics.
"""

from __future__ import annotations

import numpy as np


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, n_projections: int = 256, seed=0) -> float:
    """Sliced 1-Wasserstein distance: the mean over random unit directions of ``W_1`` between projections.

    Both sample sets must have the same size (``W_1`` of two equal-size empirical laws is the mean absolute
    difference of sorted values).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    th = rng.standard_normal((a.shape[1], int(n_projections)))
    th /= np.linalg.norm(th, axis=0, keepdims=True)
    pa, pb = np.sort(a @ th, axis=0), np.sort(b @ th, axis=0)
    return float(np.mean(np.abs(pa - pb)))


def mmd(a: np.ndarray, b: np.ndarray, bandwidth: float | None = None, max_n: int = 2000, seed=0) -> float:
    """Unbiased squared MMD with a Gaussian kernel (bandwidth: median pairwise distance of the pooled sample),
    on at most ``max_n`` rows of each set (a seeded subsample)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[0] > max_n:
        a = a[rng.choice(a.shape[0], max_n, replace=False)]
    if b.shape[0] > max_n:
        b = b[rng.choice(b.shape[0], max_n, replace=False)]

    def d2(x, y):
        return np.maximum((x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T, 0.0)

    if bandwidth is None:
        pool = np.concatenate([a, b])
        bandwidth = float(np.sqrt(np.median(d2(pool, pool))))
    g = 1.0 / (2.0 * bandwidth**2)
    kaa, kbb, kab = np.exp(-g * d2(a, a)), np.exp(-g * d2(b, b)), np.exp(-g * d2(a, b))
    n, m = a.shape[0], b.shape[0]
    return float((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1))
                 - 2.0 * kab.mean())
