"""Scores as objects: a trained network (:class:`TorchScore`) and an exact one (:class:`GaussianMixtureScore`).

A score is a callable ``score(x, t) -> (n, dim)``, ``x`` of shape ``(n, dim)``, ``t`` a float or ``(n,)`` array,
NumPy in -> NumPy out, torch in -> torch out. Any callable is a score; score objects declare what more they offer
as class attributes (read by the samplers and the likelihood, never probed by calling):

* ``dim``: the state dimension (the forward SDE's ``dim`` is adapted to it);
* ``has_divergence``: exact ``divergence(x, t)`` and vector-Jacobian products ``vjp(x, t, v)``
  (:func:`~sde_toolkit.score.log_likelihood`);
* ``has_logpdf``: ``logpdf(x, t)`` of ``p_t`` itself (``log_likelihood(prior="exact")``);
* ``has_numba_face``: ``numba_score(jit)``, a per-particle kernel, so that reverse SDEs and probability-flow ODEs
  driven by the score run on the fused driver.

Identity: :class:`GaussianMixtureScore` is a frozen, value-hashed :class:`~sde_toolkit.sde.base.Model` (equal
parameters give equal scores, so ``sde.reverse(score)`` of equal scores are equal and share one compiled
kernel); :class:`TorchScore` keeps identity semantics, because the network it wraps is mutable.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch

from .._jit import jit
from ..sde.base import Model
from . import _marginal
from .networks import ScoreMLP, precondition


def _as_batch(x, dim: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape (n, {dim}), got {x.shape}")
    return x


def _times(t, n: int) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if t.ndim == 0:
        return np.full(n, float(t))
    if t.shape != (n,):
        raise ValueError(f"t must be a float or an array of shape ({n},), got shape {t.shape}")
    return t


class TorchScore:
    """``score(x, t) = -eps_theta(c_in(t) x, t) / sigma(t)`` from a noise-prediction network and its SDE.

    ``c_in`` and ``sigma`` come from the SDE's affine marginal ``sde.marginal_coef`` (:func:`networks.precondition`).
    Calls run under ``torch.no_grad`` in batches of ``batch_size`` rows on the network's device; NumPy input gives
    float64 NumPy output, torch input gives a tensor of the input's dtype on its device.

    Identity semantics: a ``TorchScore`` equals only itself (no value hash), because the network is mutable (its
    weights change when it is trained further). So ``sde.reverse(score)`` of two ``TorchScore`` objects over the
    same network are different SDEs; none of them has a Numba face (the samplers run it on the batched driver).

    Args:
        net: a :class:`ScoreMLP` (or any module ``net(x, t) -> eps`` with a ``dim`` attribute).
        sde: the forward SDE the network was trained for (``affine_marginal``: VP, VE, scalar OU); its ``dim`` is
            adapted to the net.
        batch_size: rows per forward pass.
    """

    has_numba_face: ClassVar[bool] = False
    has_divergence: ClassVar[bool] = True
    has_logpdf: ClassVar[bool] = False
    uses_torch: ClassVar[bool] = True  # runs ``net`` (sample() picks torch threads for it)

    def __init__(self, net: ScoreMLP, sde, batch_size: int = 65536):
        self.net = net
        self.dim = int(net.dim)
        self.sde = _marginal.for_dim(sde, self.dim)
        self.batch_size = int(batch_size)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    def score_tensor(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Differentiable score on tensors already on the network's device and dtype (``t`` of shape ``(n,)``)."""
        c_in, sigma = precondition(self.sde, t)
        c_in, sigma = c_in.to(x.dtype), sigma.to(x.dtype)
        return -self.net(c_in * x, t) / sigma

    def _t_tensor(self, t, n: int) -> torch.Tensor:
        if isinstance(t, torch.Tensor):
            t = t.detach().to("cpu", torch.float64).numpy()
        return torch.as_tensor(_times(t, n), dtype=self.dtype, device=self.device)

    def __call__(self, x, t):
        is_torch = isinstance(x, torch.Tensor)
        if is_torch:
            if x.ndim != 2 or x.shape[1] != self.dim:
                raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
            xt = x.detach().to(self.device, self.dtype)
        else:
            xt = torch.as_tensor(_as_batch(x, self.dim), dtype=self.dtype, device=self.device)
        n = xt.shape[0]
        tt = self._t_tensor(t, n)
        out = torch.empty_like(xt)
        with torch.no_grad():
            for i in range(0, n, self.batch_size):
                sl = slice(i, i + self.batch_size)
                out[sl] = self.score_tensor(xt[sl], tt[sl])
        if is_torch:
            return out.to(x.device, x.dtype)
        return out.cpu().numpy().astype(np.float64)

    def divergence(self, x, t) -> np.ndarray:
        """Exact ``div_x score`` by autograd, one backward pass per coordinate (use for small ``dim``)."""
        x = _as_batch(x, self.dim)
        xt = torch.as_tensor(x, dtype=self.dtype, device=self.device).requires_grad_(True)
        tt = self._t_tensor(t, x.shape[0])
        with torch.enable_grad():
            s = self.score_tensor(xt, tt)
            div = torch.zeros(x.shape[0], dtype=self.dtype, device=self.device)
            for i in range(self.dim):
                g, = torch.autograd.grad(s[:, i].sum(), xt, retain_graph=i < self.dim - 1)
                div = div + g[:, i]
        return div.detach().cpu().numpy().astype(np.float64)

    def vjp(self, x, t, v) -> np.ndarray:
        """``v^T (d score / d x)`` per row, by one backward pass."""
        x = _as_batch(x, self.dim)
        xt = torch.as_tensor(x, dtype=self.dtype, device=self.device).requires_grad_(True)
        vt = torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=self.dtype, device=self.device)
        tt = self._t_tensor(t, x.shape[0])
        with torch.enable_grad():
            s = self.score_tensor(xt, tt)
            g, = torch.autograd.grad((s * vt).sum(), xt)
        return g.detach().cpu().numpy().astype(np.float64)

    def __repr__(self) -> str:
        return f"TorchScore({type(self.net).__name__}(dim={self.dim}), {self.sde!r})"


class GaussianMixtureScore(Model):
    """Exact score of ``p_0 = sum_k w_k N(m_k, S_k)`` pushed through a linear SDE with isotropic transitions.

    With ``X_t | x0 ~ N(a x0 + b, v I)`` (the SDE's ``marginal_coef``): ``p_t = sum_k w_k N(a m_k + b, C_k)``, ``C_k = a^2 S_k + v I``, and
    ``score = sum_k r_k s_k`` with responsibilities ``r_k ~ w_k N_k(x)`` and ``s_k = -C_k^{-1}(x - a m_k - b)``.
    Each ``S_k = U_k diag(lam_k) U_k^T`` is diagonalized once, so ``C_k^{-1}`` and ``log det C_k`` cost
    ``O(dim^2)`` at any ``t``. Exact divergence ``sum_k r_k (|s_k|^2 - tr C_k^{-1}) - |score|^2``.

    Numba face (``has_numba_face = True``): :meth:`numba_score` returns a kernel ``score(x_row, t, out_row)``,
    so reverse SDEs and probability-flow ODEs driven by this score run on the fused driver.

    Frozen and value-hashed (a :class:`~sde_toolkit.sde.base.Model` with fields ``sde``, ``weights``, ``means``,
    ``covs``, stored normalized: ``covs`` as ``(K, dim, dim)``): two scores with equal parameters are equal and
    hash alike, so ``sde.reverse(score)`` of equal scores are equal SDEs and share one compiled kernel.

    Args:
        sde: an SDE declaring ``affine_marginal`` (VPSDE, VESDE, OrnsteinUhlenbeck with scalar theta and sigma);
            its ``dim`` is adapted where it is ``dimension_free`` (VP/VE).
        weights: ``(K,)`` positive, summing to 1 (within 1e-8).
        means: ``(K, dim)``.
        covs: ``(K, dim, dim)`` symmetric positive definite (or ``(K,)`` variances of isotropic components).
    """

    has_numba_face: ClassVar[bool] = True
    has_divergence: ClassVar[bool] = True
    has_logpdf: ClassVar[bool] = True
    _fields = ("sde", "weights", "means", "covs")

    def __init__(self, sde, weights, means, covs):
        w = np.atleast_1d(np.asarray(weights, dtype=np.float64))
        m = np.asarray(means, dtype=np.float64)
        if m.ndim == 1:
            m = m[None, :] if w.size == 1 else m[:, None]
        K = w.size
        if w.ndim != 1 or m.ndim != 2 or m.shape[0] != K:
            raise ValueError(f"weights must be (K,) and means (K, dim): got {w.shape} and {m.shape}")
        if not (np.all(np.isfinite(w)) and np.all(w > 0)):
            raise ValueError(f"weights must be finite and > 0, got {w}")
        if abs(w.sum() - 1.0) > 1e-8:
            raise ValueError(f"weights must sum to 1, got sum {w.sum()!r}")
        if not np.all(np.isfinite(m)):
            raise ValueError("means must be finite")
        d = m.shape[1]
        c = np.asarray(covs, dtype=np.float64)
        if c.ndim == 1 and c.size == K:
            c = c[:, None, None] * np.eye(d)
        elif c.ndim == 2 and K == 1 and c.shape == (d, d):
            c = c[None]
        if c.shape != (K, d, d):
            raise ValueError(f"covs must have shape ({K}, {d}, {d}), got {c.shape}")
        lam, U = np.linalg.eigh(c)
        if not np.allclose(c, np.swapaxes(c, 1, 2)) or np.any(lam <= 0) or not np.all(np.isfinite(c)):
            raise ValueError("covs must be symmetric positive definite")
        self.sde = _marginal.for_dim(sde, d)
        self.dim = d
        self.weights, self.means, self.covs = w, m, c
        self._lam, self._U = np.ascontiguousarray(lam), np.ascontiguousarray(U)
        self._logw = np.log(w)

    def __repr__(self) -> str:
        return f"GaussianMixtureScore({self.sde!r}, K={self.weights.size})"

    # ------------------------------------------------------------------ closed forms
    def marginal_moments(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(dim,)`` and covariance ``(dim, dim)`` of ``p_t``."""
        a, b, std = (np.asarray(v) for v in self.sde.marginal_coef(float(t)))
        mk = a * self.means + b
        mean = self.weights @ mk
        cov = np.einsum("k,kij->ij", self.weights, a**2 * self.covs) + std**2 * np.eye(self.dim)
        dm = mk - mean
        cov = cov + np.einsum("k,ki,kj->ij", self.weights, dm, dm)
        return mean, cov

    def sample(self, n: int, t: float = 0.0, seed=None) -> np.ndarray:
        """``n`` samples of ``p_t``."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        k = rng.choice(self.weights.size, size=int(n), p=self.weights)
        z = rng.standard_normal((int(n), self.dim))
        a, b, std = (np.asarray(v) for v in self.sde.marginal_coef(float(t)))
        L = np.linalg.cholesky(a**2 * self.covs + std**2 * np.eye(self.dim))
        return a * self.means[k] + b + np.einsum("nij,nj->ni", L[k], z)

    def _components(self, x: np.ndarray, t):
        """Per-component ``log(w_k N_k(x))`` (n, K), ``s_k`` (n, K, d), ``1/den`` (n, K, d) and ``U``."""
        n = x.shape[0]
        t = _times(t, n)
        a, b, std = self.sde.marginal_coef(t)
        v = std**2
        den = a[:, None, None] ** 2 * self._lam[None] + v[:, None, None]  # (n, K, d)
        r = x[:, None, :] - a[:, None, None] * self.means[None] - b[:, None, :]  # (n, K, d)
        y = np.einsum("nkd,kde->nke", r, self._U)
        inv = 1.0 / den
        logp = (self._logw[None] - 0.5 * np.sum(y * y * inv, axis=2) - 0.5 * np.sum(np.log(den), axis=2)
                - 0.5 * self.dim * math.log(2.0 * math.pi))
        s = -np.einsum("nke,kde->nkd", y * inv, self._U)
        return logp, s, inv

    @staticmethod
    def _resp(logp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mx = logp.max(axis=1, keepdims=True)
        e = np.exp(logp - mx)
        tot = e.sum(axis=1, keepdims=True)
        return e / tot, (mx + np.log(tot))[:, 0]

    def logpdf(self, x, t) -> np.ndarray:
        """``log p_t(x)``, shape ``(n,)``."""
        x = _as_batch(x, self.dim)
        logp, _, _ = self._components(x, t)
        return self._resp(logp)[1]

    def __call__(self, x, t):
        if isinstance(x, torch.Tensor):
            tt = t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else t
            out = self(x.detach().cpu().numpy().astype(np.float64), tt)
            return torch.as_tensor(out, dtype=x.dtype, device=x.device)
        x = _as_batch(x, self.dim)
        logp, s, _ = self._components(x, t)
        r, _ = self._resp(logp)
        return np.einsum("nk,nkd->nd", r, s)

    def divergence(self, x, t) -> np.ndarray:
        """Exact ``div_x score = sum_k r_k (|s_k|^2 - tr C_k^{-1}) - |score|^2``, shape ``(n,)``."""
        x = _as_batch(x, self.dim)
        logp, s, inv = self._components(x, t)
        r, _ = self._resp(logp)
        sc = np.einsum("nk,nkd->nd", r, s)
        return np.einsum("nk,nk->n", r, np.sum(s * s, axis=2) - np.sum(inv, axis=2)) - np.sum(sc * sc, axis=1)

    def vjp(self, x, t, v) -> np.ndarray:
        """``J v`` (the Jacobian of the score is symmetric): ``sum_k r_k (-C_k^{-1} v + s_k (s_k . v)) - s (s . v)``."""
        x = _as_batch(x, self.dim)
        v = np.asarray(v, dtype=np.float64)
        logp, s, inv = self._components(x, t)
        r, _ = self._resp(logp)
        sc = np.einsum("nk,nkd->nd", r, s)
        cinv_v = np.einsum("kde,nke->nkd", self._U, inv * np.einsum("kde,nd->nke", self._U, v))
        sv = np.einsum("nkd,nd->nk", s, v)
        return (np.einsum("nk,nkd->nd", r, -cinv_v + s * sv[:, :, None])
                - sc * np.sum(sc * v, axis=1, keepdims=True))

    # ------------------------------------------------------------------ numba face
    def numba_score(self, jit=jit):
        """A Numba kernel ``score(x, t, out)`` on one particle (``x``, ``out``: ``(dim,)``), compiled by ``jit``
        (the driver passes its inlining jit)."""
        sde = self.sde
        coef_j = sde.numba_marginal_coef(jit)  # X_t | x0 ~ N(a x0 + (1 - a) c, v I), the SDE's own closed form
        mu_shift = np.array(sde.center, dtype=np.float64)
        logw, means, lam, U = self._logw.copy(), self.means.copy(), self._lam.copy(), self._U.copy()
        K, d = means.shape

        def score(x, t, out):
            # online log-sum-exp over components: one scratch array, ``out`` accumulates sum_k w_k s_k
            a, v = coef_j(t)
            y = np.empty(d)
            for i in range(d):
                out[i] = 0.0
            mx = -np.inf
            tot = 0.0
            for k in range(K):
                q = 0.0
                ld = 0.0
                for j in range(d):
                    acc = 0.0
                    for i in range(d):
                        acc += U[k, i, j] * (x[i] - a * means[k, i] - (1.0 - a) * mu_shift[i])
                    den = a * a * lam[k, j] + v
                    y[j] = acc / den
                    q += acc * acc / den
                    ld += math.log(den)
                lp = logw[k] - 0.5 * q - 0.5 * ld
                if lp > mx:
                    c = math.exp(mx - lp) if tot > 0.0 else 0.0
                    tot *= c
                    for i in range(d):
                        out[i] *= c
                    mx = lp
                wk = math.exp(lp - mx)
                tot += wk
                for i in range(d):
                    acc = 0.0
                    for j in range(d):
                        acc += U[k, i, j] * y[j]
                    out[i] -= wk * acc
            for i in range(d):
                out[i] /= tot

        return jit(score)
