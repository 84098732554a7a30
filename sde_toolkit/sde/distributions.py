"""Distribution objects returned by ``SDE.stationary()`` and ``SDE.marginal``-based helpers."""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class Gaussian:
    """``N(mean, cov)`` on ``R^dim`` with ``logpdf``, ``pdf``, ``sample`` and (1-D) ``cdf``."""

    normalized = True

    def __init__(self, mean, cov):
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        cov = np.asarray(cov, dtype=np.float64)
        d = mean.shape[0]
        if cov.ndim == 0:
            cov = cov * np.eye(d)
        elif cov.ndim == 1:
            cov = np.diag(cov)
        if cov.shape != (d, d):
            raise ValueError(f"Gaussian: cov must be ({d}, {d}), got {cov.shape}")
        self.mean, self.cov, self.dim = mean, cov, d
        self._chol = np.linalg.cholesky(cov + 0.0)
        self._logdet = 2.0 * np.log(np.diag(self._chol)).sum()

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        z = np.linalg.solve(self._chol, (x - self.mean).T)
        return -0.5 * (z**2).sum(axis=0) - 0.5 * (self.dim * math.log(2 * math.pi) + self._logdet)

    def pdf(self, x) -> np.ndarray:
        return np.exp(self.logpdf(x))

    def score(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        return -np.linalg.solve(self.cov, (x - self.mean).T).T

    def cdf(self, x) -> np.ndarray:
        if self.dim != 1:
            raise ValueError("cdf is defined for 1-D distributions only")
        s = math.sqrt(self.cov[0, 0])
        return special.ndtr((np.asarray(x, dtype=np.float64) - self.mean[0]) / s)

    def sample(self, n: int, seed=None) -> np.ndarray:
        z = _rng(seed).standard_normal((int(n), self.dim))
        return self.mean + z @ self._chol.T

    def __repr__(self):
        return f"Gaussian(mean={self.mean}, cov={self.cov.tolist()})"


class Boltzmann:
    """The Boltzmann density ``p(x) ~ exp(-H(x) / kT)``; ``logpdf`` is unnormalized (``normalized=False``).

    ``log_normalizer`` / ``normalized_logpdf`` / ``cdf`` / ``sample`` use quadrature on a grid for
    ``dim <= 2`` (bounds found from the energy, or given).
    """

    normalized = False

    def __init__(self, energy, kT: float, dim: int, bounds=None):
        self.energy = energy
        self.kT = float(kT)
        self.dim = int(dim)
        self._bounds = bounds
        self._cache = None

    def logpdf(self, x) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.dim)
        return -np.asarray(self.energy(x)) / self.kT

    def bounds(self, n: int = 4001):
        """Per-axis bounds outside which the density is below 1e-16 of its maximum (dim <= 2)."""
        if self._bounds is not None:
            b = np.asarray(self._bounds, dtype=np.float64).reshape(self.dim, 2)
            return b
        if self.dim > 2:
            raise ValueError("automatic bounds need dim <= 2; pass bounds=")
        lim = 1.0
        for _ in range(12):
            g = np.linspace(-lim, lim, 401)
            if self.dim == 1:
                lp = self.logpdf(g[:, None])
                edge = max(lp[0], lp[-1])
            else:
                X, Y = np.meshgrid(g, g, indexing="ij")
                lp = self.logpdf(np.stack([X.ravel(), Y.ravel()], 1)).reshape(X.shape)
                edge = max(lp[0].max(), lp[-1].max(), lp[:, 0].max(), lp[:, -1].max())
            if np.isfinite(lp).any() and edge < np.nanmax(lp) - 40.0:
                break
            lim *= 2.0
        return np.array([[-lim, lim]] * self.dim)

    def _grid(self, n=None):
        if self._cache is None:
            b = self.bounds()
            n = n or (20001 if self.dim == 1 else 801)
            axes = [np.linspace(lo, hi, n) for lo, hi in b]
            if self.dim == 1:
                lp = self.logpdf(axes[0][:, None])
            else:
                X, Y = np.meshgrid(*axes, indexing="ij")
                lp = self.logpdf(np.stack([X.ravel(), Y.ravel()], 1)).reshape(X.shape)
            m = lp.max()
            w = np.exp(lp - m)
            if self.dim == 1:
                Z = integrate.simpson(w, x=axes[0])
            else:
                Z = integrate.simpson(integrate.simpson(w, x=axes[1], axis=1), x=axes[0])
            self._cache = (axes, w, m + math.log(Z))
        return self._cache

    def log_normalizer(self) -> float:
        """``log Z`` with ``Z = int exp(-H/kT) dx`` (quadrature, dim <= 2)."""
        return self._grid()[2]

    def normalized_logpdf(self, x) -> np.ndarray:
        return self.logpdf(x) - self.log_normalizer()

    def pdf(self, x) -> np.ndarray:
        return np.exp(self.normalized_logpdf(x))

    def cdf(self, x) -> np.ndarray:
        """1-D CDF by cumulative quadrature and interpolation."""
        if self.dim != 1:
            raise ValueError("cdf is defined for 1-D distributions only")
        axes, w, logZ = self._grid()
        g = axes[0]
        c = integrate.cumulative_trapezoid(w, g, initial=0.0)
        c /= c[-1]
        return np.interp(np.asarray(x, dtype=np.float64), g, c, left=0.0, right=1.0)

    def moment(self, func) -> float:
        """``E[func(x)]`` by quadrature (1-D)."""
        if self.dim != 1:
            raise ValueError("moment() is 1-D only")
        axes, w, _ = self._grid()
        g = axes[0]
        return float(integrate.simpson(w * func(g), x=g) / integrate.simpson(w, x=g))

    def sample(self, n: int, seed=None) -> np.ndarray:
        """Exact-in-law samples by inverse CDF on a fine grid (1-D) or grid cells (2-D)."""
        rng = _rng(seed)
        axes, w, _ = self._grid()
        if self.dim == 1:
            g = axes[0]
            c = integrate.cumulative_trapezoid(w, g, initial=0.0)
            c /= c[-1]
            return np.interp(rng.random(int(n)), c, g)[:, None]
        if self.dim == 2:
            p = w.ravel() / w.sum()
            idx = rng.choice(p.size, size=int(n), p=p)
            i, j = np.unravel_index(idx, w.shape)
            hx = axes[0][1] - axes[0][0]
            hy = axes[1][1] - axes[1][0]
            return np.stack([axes[0][i] + (rng.random(n) - 0.5) * hx, axes[1][j] + (rng.random(n) - 0.5) * hy], 1)
        raise ValueError("sample() needs dim <= 2 (use MCMC in higher dimension)")
