"""Ornstein–Uhlenbeck process."""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg as sla

from .._jit import jit as _default_jit
from .base import SDE, NumbaFace, as_float_array, check_psd
from .distributions import Gaussian


def _van_loan(theta: np.ndarray, S: np.ndarray, t: float):
    """``(expm(-theta t), int_0^t e^{-theta s} S e^{-theta^T s} ds)`` by Van Loan's block exponential."""
    d = theta.shape[0]
    M = np.zeros((2 * d, 2 * d))
    M[:d, :d] = theta
    M[:d, d:] = S
    M[d:, d:] = -theta.T
    E = sla.expm(M * t)
    F = E[d:, d:].T  # expm(-theta t)
    Q = F @ E[:d, d:]
    return F, 0.5 * (Q + Q.T)


class OrnsteinUhlenbeck(SDE):
    """``dX = -theta (X - mu) dt + sigma dW`` (Itô; additive noise, so EM has strong order 1).

    Args:
        theta: mean-reversion rate, a scalar or a ``(dim, dim)`` matrix (any real matrix; a stationary law
            exists when all its eigenvalues have positive real part).
        sigma: noise amplitude, a scalar >= 0, a ``(dim,)`` vector >= 0 (diagonal noise) or a ``(dim, m)``
            matrix (general noise, ``D = sigma sigma^T``).
        mu: long-time mean, scalar or ``(dim,)``.
        dim: dimension when every parameter is scalar (default 1).

    Facts: linear, additive; marginal ``N(mu + e^{-theta t}(x0 - mu), int_0^t e^{-theta s} S e^{-theta^T s} ds)``
    with ``S = sigma sigma^T``; the stationary covariance solves ``theta P + P theta^T = S``. With scalar
    ``theta`` and ``sigma`` the marginal is isotropic and affine (``affine_marginal``), which score models use.
    """

    has_numba_face = True
    time_homogeneous = True
    linear = True
    has_exact_step = True
    _fields = ("theta", "sigma", "mu", "dim")

    def __init__(self, theta, sigma, mu=0.0, dim: int | None = None):
        theta = as_float_array(theta, "theta")
        sigma = as_float_array(sigma, "sigma")
        mu = as_float_array(mu, "mu")
        dims = {a.shape[0] for a in (theta, sigma, mu) if a.ndim >= 1}
        if dim is not None:
            if int(dim) != dim or dim < 1:
                raise ValueError(f"dim must be a positive integer, got {dim}")
            dims.add(int(dim))
        if len(dims) > 1:
            raise ValueError(f"inconsistent dimensions: theta {theta.shape}, sigma {sigma.shape}, mu {mu.shape}, dim={dim}")
        d = dims.pop() if dims else 1
        if theta.ndim not in (0, 2) or (theta.ndim == 2 and theta.shape != (d, d)):
            raise ValueError(f"theta must be a scalar or a ({d}, {d}) matrix, got shape {theta.shape}")
        if mu.ndim not in (0, 1):
            raise ValueError(f"mu must be a scalar or a ({d},) vector, got shape {mu.shape}")
        check_psd(sigma, "sigma")
        self.dim = d
        self.scalar_params = theta.ndim == 0 and sigma.ndim == 0
        self.affine_marginal = self.scalar_params
        self.theta_param, self.sigma_param, self.mu_param = theta, sigma, mu
        self.theta_matrix = theta * np.eye(d) if theta.ndim == 0 else theta
        self.mu = np.broadcast_to(mu, (d,)).astype(np.float64).copy()
        if sigma.ndim == 2:
            if sigma.shape[0] != d:
                raise ValueError(f"sigma matrix must have {d} rows, got shape {sigma.shape}")
            if sigma.shape[1] == d and np.allclose(sigma, np.diag(np.diag(sigma))):
                self.noise_type = "diagonal"
                self.sigma_vec: np.ndarray | None = np.diag(sigma).copy()  # None for general noise
                self.sigma_matrix = sigma
            else:
                self.noise_type = "general"
                self.sigma_matrix = sigma
                self.sigma_vec = None
        else:
            self.noise_type = "diagonal"
            vec = np.broadcast_to(sigma, (d,)).astype(np.float64).copy()
            self.sigma_vec = vec
            self.sigma_matrix = np.diag(vec)
        self.noise_dim = self.sigma_matrix.shape[1]
        self.additive = True
        self.theta_is_diag = bool(np.allclose(self.theta_matrix, np.diag(np.diag(self.theta_matrix))))

    # the constructor parameters as given (scalars stay scalars): what params()/replace()/configs read
    @property
    def theta(self):
        return self.theta_param

    @property
    def sigma(self):
        return self.sigma_param

    def params(self) -> dict:
        return {"theta": self.theta_param, "sigma": self.sigma_param, "mu": self.mu_param, "dim": self.dim}

    def __repr__(self):
        return f"OrnsteinUhlenbeck(theta={self.theta_param.tolist()}, sigma={self.sigma_param.tolist()}, mu={self.mu_param.tolist()}, dim={self.dim})"

    # batched face
    def drift(self, x, t):
        if self.theta_is_diag:
            return -(x - self.mu) * np.diag(self.theta_matrix)
        return -(x - self.mu) @ self.theta_matrix.T

    def diffusion(self, x, t):
        n = x.shape[0]
        if self.noise_type == "general":
            return np.broadcast_to(self.sigma_matrix, (n, *self.sigma_matrix.shape))
        assert self.sigma_vec is not None  # diagonal noise
        return np.broadcast_to(self.sigma_vec, (n, self.dim))

    def diffusion_dx(self, x, t):
        return np.zeros_like(x)

    # closed forms
    def _transition(self, h: float):
        S = self.sigma_matrix @ self.sigma_matrix.T
        if self.scalar_params:
            th = float(self.theta_param)
            F = math.exp(-th * h) * np.eye(self.dim)
            if th == 0.0:
                var = S[0, 0] * h
            else:
                var = S[0, 0] * (-math.expm1(-2.0 * th * h)) / (2.0 * th)
            return F, var * np.eye(self.dim)
        if abs(h) * np.linalg.norm(self.theta_matrix, 2) > 1.0 and self._stable():
            # Van Loan's block exponential contains e^{+theta^T t}: for large t it overflows or cancels
            # catastrophically. With a stationary covariance P, Q(t) = P - F P F^T holds exactly and is
            # well conditioned once t is not small (small t keeps Van Loan, where it is accurate).
            F = sla.expm(-self.theta_matrix * h)
            P = self.stationary_cov()
            Q = P - F @ P @ F.T
            return F, 0.5 * (Q + Q.T)
        return _van_loan(self.theta_matrix, S, h)

    def _stable(self) -> bool:
        return bool(np.all(np.linalg.eigvals(self.theta_matrix).real > 0))

    def marginal(self, x0, t):
        """``(mean, std)`` for scalar theta and sigma, else ``(mean, cov)``; ``mean`` has x0's shape."""
        x0 = np.asarray(x0, dtype=np.float64)
        t = float(t)
        if t < 0:
            raise ValueError(f"t must be >= 0, got {t}")
        F, Q = self._transition(t)
        mean = self.mu + (x0 - self.mu) @ F.T
        if self.scalar_params:
            return mean, math.sqrt(Q[0, 0])
        return mean, Q

    # affine-marginal capability (scalar theta and sigma): X_t | x0 ~ N(e^{-theta t} x0 + (1 - e^{-theta t}) mu, v I)
    def _require_isotropic(self):
        if not self.scalar_params:
            raise ValueError("this needs scalar theta and sigma (an isotropic affine marginal); "
                             f"{self!r} has matrix parameters")

    def marginal_coef(self, t):
        self._require_isotropic()
        t = np.asarray(t, dtype=np.float64)
        th, s2 = float(self.theta_param), float(self.sigma_param) ** 2
        a = np.exp(-th * t)
        var = s2 * t if th == 0.0 else s2 * (-np.expm1(-2.0 * th * t)) / (2.0 * th)
        return a, (1.0 - a)[..., None] * self.mu, np.sqrt(var)

    def affine_coef(self, t):
        self._require_isotropic()
        t = np.asarray(t, dtype=np.float64)
        return np.full(t.shape, float(self.theta_param)), np.full(t.shape, float(self.sigma_param))

    @property
    def center(self) -> np.ndarray:
        return self.mu.copy()

    def prior(self) -> Gaussian:
        """The stationary law ``N(mu, sigma^2 / (2 theta) I)``: the reference a reverse-time sampler starts from."""
        return self.stationary()

    def numba_marginal_coef(self, jit=_default_jit):
        """Numba kernel ``coef(t) -> (a, v)`` for scalar theta and sigma: ``X_t | X_0 = x0 ~
        N(mu + a (x0 - mu), v I)`` with ``a = e^{-theta t}``, ``v = sigma^2 (1 - e^{-2 theta t}) / (2 theta)``."""
        self._require_isotropic()
        th, s2 = float(self.theta_param), float(self.sigma_param) ** 2

        def coef(t):
            a = math.exp(-th * t)
            v = s2 * t if th == 0.0 else s2 * (-math.expm1(-2.0 * th * t)) / (2.0 * th)
            return a, v

        return jit(coef)

    def stationary_cov(self) -> np.ndarray:
        w = np.linalg.eigvals(self.theta_matrix)
        if np.any(w.real <= 0):
            raise ValueError(f"OU has no stationary law: theta has eigenvalues {w} with real part <= 0")
        S = self.sigma_matrix @ self.sigma_matrix.T
        P = sla.solve_continuous_lyapunov(self.theta_matrix, S)
        return 0.5 * (P + P.T)

    def stationary(self) -> Gaussian:
        """``N(mu, P)`` with ``theta P + P theta^T = sigma sigma^T`` (Lyapunov)."""
        return Gaussian(self.mu, self.stationary_cov())

    def exact_step(self, x, t, h, z):
        F, Q = self._transition(h)
        L = np.linalg.cholesky(Q + 1e-300 * np.eye(self.dim)) if np.any(Q) else np.zeros_like(Q)
        return self.mu + (x - self.mu) @ F.T + z[:, : self.dim] @ L.T

    def exact_noise_dim(self) -> int:
        return self.dim

    # numba face
    float32_face = True

    def numba_face(self, jit=_default_jit, dtype=np.float64) -> NumbaFace:
        """The kernels; ``dtype=np.float32`` casts the coefficients, so that float32 states stay float32
        (the exact transition keeps float64 coefficients: it is a single matrix product per step)."""
        d = self.dim
        FT = dtype
        mu = self.mu.astype(FT)
        theta = self.theta_matrix.astype(FT)
        sig = self.sigma_matrix.astype(FT)
        mu64 = self.mu.copy()
        m = self.noise_dim
        if self.theta_is_diag:
            th = np.diag(self.theta_matrix).astype(FT)

            def drift(x, t, out):
                for i in range(d):
                    out[i] = -th[i] * (x[i] - mu[i])

            def drift_block(X, t, F):  # the row's operations on every row, on flat views: vectorizes
                n = X.shape[0]
                Xf, Ff = X.reshape(n * d), F.reshape(n * d)
                for p in range(n):
                    for i in range(d):
                        Ff[d * p + i] = -th[i] * (Xf[d * p + i] - mu[i])
        else:

            def drift(x, t, out):
                for i in range(d):
                    acc = 0.0
                    for j in range(d):
                        acc += theta[i, j] * (x[j] - mu[j])
                    out[i] = -acc

            def drift_block(X, t, F):
                n = X.shape[0]
                Xf, Ff = X.reshape(n * d), F.reshape(n * d)
                for p in range(n):
                    for i in range(d):
                        acc = 0.0
                        for j in range(d):
                            acc += theta[i, j] * (Xf[d * p + j] - mu[j])
                        Ff[d * p + i] = -acc

        if self.noise_type == "general":

            def diffusion(x, t, out):
                for i in range(d):
                    for j in range(m):
                        out[i, j] = sig[i, j]
        else:
            assert self.sigma_vec is not None  # diagonal noise
            sv = self.sigma_vec.astype(FT)

            def diffusion(x, t, out):
                for i in range(d):
                    out[i] = sv[i]

        def diffusion_dx(x, t, out):
            for i in range(d):
                out[i] = 0.0

        model = self

        def exact_step(h):
            F, Q = model._transition(h)
            L = np.linalg.cholesky(Q) if np.any(Q) else np.zeros_like(Q)
            F = np.ascontiguousarray(F)
            L = np.ascontiguousarray(L)

            def step(x, t, z, out):
                for i in range(d):
                    acc = mu64[i]
                    for j in range(d):
                        acc += F[i, j] * (x[j] - mu64[j]) + L[i, j] * z[j]
                    out[i] = acc

            return jit(step)

        return NumbaFace(jit(drift), jit(diffusion), jit(diffusion_dx), exact_step=exact_step,
                         drift_block=jit(drift_block))
