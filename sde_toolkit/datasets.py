"""Toy data sets, generated (never downloaded): ``(n, 2)`` float64 arrays, or ``(n, 1)`` for the 1-D density.

Every function takes ``n`` and ``seed`` (an int, ``None`` or a ``numpy.random.Generator``) and is
deterministic for an int seed.

* :func:`spiral`: the 2-D swiss-roll spiral of Sohl-Dickstein et al. (2015), ``t ~ U(1.5 pi, 4.5 pi)``,
  ``(t cos t, t sin t) / 10`` plus ``N(0, (noise/10)^2)`` noise (``noise = 0.1``) — the seed's DDPM toy data.
* :func:`swiss_roll`: the same curve at FFJORD's scale and noise: ``(t cos t, t sin t) / 5`` with noise 1.0.
* :func:`two_moons`: two interleaved half circles, noise 0.1, centred (FFJORD's ``2 x + (-1, -0.2)``).
* :func:`eight_gaussians`: eight components of std 0.5 on a circle of radius 4, all divided by sqrt(2).
* :func:`checkerboard`: uniform on the 8 black squares of a 4 x 4 board on ``[-4, 4]^2``.
* :func:`seed_density_1d`: samples of ``p(x) ~ exp(-(0.1 x^2 - log(0.2 + cos^2 2x)))`` by inverse CDF on a
  fine grid (the seed's Langevin density); :func:`seed_density_1d_pdf` is its normalized density.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return int(n)


def _noise(noise: float) -> float:
    noise = float(noise)
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    return noise


def _roll(n: int, rng: np.random.Generator, noise: float, scale: float) -> np.ndarray:
    t = 1.5 * math.pi * (1.0 + 2.0 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)
    return (x + noise * rng.standard_normal((n, 2))) / scale


def spiral(n: int, seed=None, noise: float = 0.1) -> np.ndarray:
    """Sohl-Dickstein et al. (2015) spiral: ``(t cos t, t sin t)/10 + N(0, (noise/10)^2)``, t ~ U(1.5pi, 4.5pi)."""
    return _roll(_n(n), _rng(seed), _noise(noise), 10.0)


def swiss_roll(n: int, seed=None, noise: float = 1.0) -> np.ndarray:
    """The swiss roll at FFJORD's scale: ``((t cos t, t sin t) + N(0, noise^2)) / 5``."""
    return _roll(_n(n), _rng(seed), _noise(noise), 5.0)


def two_moons(n: int, seed=None, noise: float = 0.1) -> np.ndarray:
    """Two interleaved half circles (radius 1), Gaussian noise ``noise``, mapped by ``2 x + (-1, -0.2)``."""
    n, rng, noise = _n(n), _rng(seed), _noise(noise)
    upper = rng.random(n) < 0.5
    th = math.pi * rng.random(n)
    x = np.where(upper, np.cos(th), 1.0 - np.cos(th))
    y = np.where(upper, np.sin(th), 0.5 - np.sin(th))
    pts = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    return 2.0 * pts + np.array([-1.0, -0.2])


def eight_gaussians(n: int, seed=None, radius: float = 4.0, std: float = 0.5) -> np.ndarray:
    """Eight equally weighted Gaussians of std ``std`` at angles ``k pi / 4`` on a circle of ``radius``, / sqrt(2)."""
    n, rng = _n(n), _rng(seed)
    ang = np.arange(8) * math.pi / 4.0
    centers = radius * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    k = rng.integers(0, 8, size=n)
    return (centers[k] + std * rng.standard_normal((n, 2))) / math.sqrt(2.0)


def checkerboard(n: int, seed=None) -> np.ndarray:
    """Uniform on the squares ``[i, i+1] x [j, j+1]`` (scaled by 2) with ``i + j`` even, on ``[-4, 4]^2``."""
    n, rng = _n(n), _rng(seed)
    x1 = 4.0 * rng.random(n) - 2.0
    x2_ = rng.random(n) - 2.0 * rng.integers(0, 2, size=n)
    x2 = x2_ + np.floor(x1) % 2
    return 2.0 * np.stack([x1, x2], axis=1)


def _seed_unnormalized(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.1 * x**2) * (0.2 + np.cos(2.0 * x) ** 2)


@lru_cache(maxsize=1)
def _seed_table(lo: float = -20.0, hi: float = 20.0, m: int = 400_001):
    xs = np.linspace(lo, hi, m)
    p = _seed_unnormalized(xs)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (p[1:] + p[:-1]) * np.diff(xs))])
    Z = cdf[-1]
    return xs, cdf / Z, Z


def seed_density_1d_pdf(x) -> np.ndarray:
    """The normalized density ``exp(-(0.1 x^2 - log(0.2 + cos^2 2x))) / Z`` (Z by the trapezoid rule on
    [-20, 20] with 400,001 points; the tails beyond carry less than 1e-17)."""
    _, _, Z = _seed_table()
    return _seed_unnormalized(np.asarray(x, dtype=np.float64)) / Z


def seed_density_1d_cdf(x) -> np.ndarray:
    """The CDF of :func:`seed_density_1d_pdf` (tabulated, linear interpolation)."""
    xs, cdf, _ = _seed_table()
    return np.interp(np.asarray(x, dtype=np.float64), xs, cdf)


def seed_density_1d(n: int, seed=None) -> np.ndarray:
    """``(n, 1)`` samples of the seed's 1-D density by inverse CDF (interpolated on a 400,001-point grid)."""
    n, rng = _n(n), _rng(seed)
    xs, cdf, _ = _seed_table()
    u = rng.random(n)
    return np.interp(u, cdf, xs)[:, None]


DATASETS: dict[str, Callable[..., np.ndarray]] = {
    "spiral": spiral,
    "swiss_roll": swiss_roll,
    "two_moons": two_moons,
    "eight_gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "seed_density_1d": seed_density_1d,
}


def load(name: str, n: int, seed=None, **kwargs) -> np.ndarray:
    """``DATASETS[name](n, seed, **kwargs)``; raises ``ValueError`` naming the known data sets."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name](n, seed, **kwargs)
