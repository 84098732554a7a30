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
        self._table: QuadratureTable | None = None

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

    def table(self) -> QuadratureTable:
        """The density tabulated on a fine grid over :meth:`bounds` (dim <= 2), built once."""
        if self.dim > 2:
            raise ValueError("quadrature needs dim <= 2 (use MCMC in higher dimension)")
        if self._table is None:
            self._table = QuadratureTable(self.logpdf, self.bounds(), QuadratureTable.default_n(self.dim))
        return self._table

    def log_normalizer(self) -> float:
        """``log Z`` with ``Z = int exp(-H/kT) dx`` (quadrature, dim <= 2)."""
        return self.table().log_normalizer

    def normalized_logpdf(self, x) -> np.ndarray:
        return self.logpdf(x) - self.log_normalizer()

    def pdf(self, x) -> np.ndarray:
        return np.exp(self.normalized_logpdf(x))

    def cdf(self, x) -> np.ndarray:
        """1-D CDF by cumulative quadrature and interpolation."""
        if self.dim != 1:
            raise ValueError("cdf is defined for 1-D distributions only")
        return self.table().marginal_cdf(0, x)

    def moment(self, func) -> float:
        """``E[func(x)]`` by quadrature (1-D)."""
        if self.dim != 1:
            raise ValueError("moment() is 1-D only")
        tab = self.table()
        g = tab.axes[0]
        return float(integrate.simpson(tab.w * func(g), x=g) / integrate.simpson(tab.w, x=g))

    def sample(self, n: int, seed=None) -> np.ndarray:
        """Samples by inverse CDF on a fine grid (1-D) or from the grid's cell masses (2-D)."""
        return self.table().sample(int(n), _rng(seed))


class QuadratureTable:
    """A density ``exp(logpdf)`` tabulated on a fine tensor grid (dim 1 or 2): normalizer, marginal CDFs,
    quantiles, cell masses and sampling by inverse CDF (1-D) or cell masses (2-D). Shared by
    :class:`Boltzmann` and ``validate_stationary``."""

    @staticmethod
    def default_n(dim: int) -> int:
        return 20001 if dim == 1 else 801

    def __init__(self, logpdf, bounds: np.ndarray, n: int):
        self.dim = bounds.shape[0]
        self.axes = [np.linspace(lo, hi, n) for lo, hi in bounds]
        if self.dim == 1:
            lp = logpdf(self.axes[0][:, None])
        else:
            X, Y = np.meshgrid(*self.axes, indexing="ij")
            lp = logpdf(np.stack([X.ravel(), Y.ravel()], 1)).reshape(X.shape)
        lp = np.asarray(lp, dtype=np.float64)
        self.log_max = float(np.nanmax(lp))
        w = np.exp(lp - self.log_max)
        w[~np.isfinite(w)] = 0.0
        self.w = w
        if self.dim == 1:
            c = integrate.cumulative_trapezoid(w, self.axes[0], initial=0.0)
            self.cdf_tables = [c / c[-1]]
        else:
            # C[i, j] = mass of (-inf, x_i] x (-inf, y_j]
            cy = integrate.cumulative_trapezoid(w, self.axes[1], axis=1, initial=0.0)
            C = integrate.cumulative_trapezoid(cy, self.axes[0], axis=0, initial=0.0)
            self.C = C / C[-1, -1]
            self.cdf_tables = [self.C[:, -1], self.C[-1, :]]
        # 2-D sampler tables, built on first use: (normalized cell CDF, cell grid shape, hx, hy)
        self._sampler: tuple[np.ndarray, tuple[int, ...], float, float] | None = None
        if self.dim == 1:
            Z = integrate.simpson(w, x=self.axes[0])
        else:
            Z = integrate.simpson(integrate.simpson(w, x=self.axes[1], axis=1), x=self.axes[0])
        self.log_normalizer = self.log_max + math.log(Z)  # log of int exp(logpdf) dx (Simpson)

    def marginal_cdf(self, k: int, x) -> np.ndarray:
        return np.interp(np.asarray(x, dtype=np.float64), self.axes[k], self.cdf_tables[k], left=0.0, right=1.0)

    def _joint_cdf(self, ex: np.ndarray, ey: np.ndarray) -> np.ndarray:
        # bilinear interpolation of the cumulative table at edge points (clamped outside the support grid)
        ax, ay = self.axes
        Cx = np.empty((ex.size, ay.size))
        for j in range(ay.size):
            Cx[:, j] = np.interp(ex, ax, self.C[:, j], left=0.0, right=self.C[-1, j])
        out = np.empty((ex.size, ey.size))
        for i in range(ex.size):
            out[i] = np.interp(ey, ay, Cx[i], left=0.0, right=Cx[i, -1])
        return out

    def cell_masses(self, edges) -> tuple[np.ndarray, float]:
        """Exact (quadrature) masses of the cells and of everything outside them."""
        if self.dim == 1:
            F = self.marginal_cdf(0, edges[0])
            q = np.diff(F)
        else:
            F = self._joint_cdf(edges[0], edges[1])
            q = F[1:, 1:] - F[:-1, 1:] - F[1:, :-1] + F[:-1, :-1]
        q = np.maximum(q, 0.0)
        return q, float(max(0.0, 1.0 - q.sum()))

    def quantile(self, k: int, u) -> np.ndarray:
        c = self.cdf_tables[k]
        keep = np.concatenate([[True], np.diff(c) > 0])
        return np.interp(u, c[keep], self.axes[k][keep])

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.dim == 1:
            return self.quantile(0, rng.random(n))[:, None]
        if self._sampler is None:
            ax, ay = self.axes
            m = 0.25 * (self.w[1:, 1:] + self.w[:-1, 1:] + self.w[1:, :-1] + self.w[:-1, :-1])
            c = np.cumsum(m.ravel())
            self._sampler = (c / c[-1], m.shape, ax[1] - ax[0], ay[1] - ay[0])
        c, shape, hx, hy = self._sampler
        # sorted uniforms make the search cache-friendly, but they leave the points ordered by grid cell; a seeded
        # permutation makes the order exchangeable again (any prefix is a sample of the law, as in 1-D)
        idx = np.minimum(np.searchsorted(c, np.sort(rng.random(n)), side="right"), c.size - 1)
        idx = idx[rng.permutation(n)]
        i, j = np.unravel_index(idx, shape)
        return np.stack([self.axes[0][i] + rng.random(n) * hx, self.axes[1][j] + rng.random(n) * hy], 1)
