"""Exact likelihoods through the probability-flow ODE (instantaneous change of variables).

Along ``dx/dt = F(x, t) = f(x, t) - g(t)^2 score(x, t) / 2``,
``d log p_t(x(t)) / dt = -div F``, hence ``log p_eps(x) = log p_T(x(T)) + int_eps^T div F(x(t), t) dt`` with
``div F = div f - g^2 div score / 2``, where ``f = -k(t) (x - c)`` and ``g(t)`` are the forward SDE's declared
``affine_coef`` (so ``div f = -dim k``). The divergence of the score is exact for ``dim <= 8`` (the score's own
``divergence`` where it declares ``has_divergence``: autograd for :class:`TorchScore`, closed form for
:class:`GaussianMixtureScore`; central differences for other callables) and Hutchinson's estimator
``E_z[z^T J z]`` with probes fixed over the solve above that.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

from . import _marginal
from .fewstep import GRIDS, time_grid

DIVERGENCES = ("auto", "exact", "hutchinson")
LIKELIHOOD_METHODS = ("rk45", "dpmpp_2m")
PROBES = ("rademacher", "gaussian")


def _drift_trace_and_g2(sde, t: float) -> tuple[float, float]:
    """``(div f, g^2)`` from the declared ``affine_coef``: ``f = -k (x - c)`` gives ``div f = -dim k``."""
    k, g = sde.affine_coef(float(t))
    return -float(k) * sde.dim, float(g) ** 2


def _has_divergence(score) -> bool:
    """Whether the score declares an exact ``divergence`` and ``vjp`` (``has_divergence``)."""
    return _marginal.score_fact(score, "has_divergence")


def exact_divergence(score, x: np.ndarray, t: float, fd_step: float = 1e-4) -> np.ndarray:
    """``div_x score(x, t)`` per row: the score's own ``divergence`` when it declares ``has_divergence``, else
    central differences (error ``O(fd_step^2)``)."""
    if _has_divergence(score):
        return score.divergence(x, t)
    x = np.asarray(x, dtype=np.float64)
    div = np.zeros(x.shape[0])
    for i in range(x.shape[1]):
        xp, xm = x.copy(), x.copy()
        xp[:, i] += fd_step
        xm[:, i] -= fd_step
        div += (np.asarray(score(xp, t))[:, i] - np.asarray(score(xm, t))[:, i]) / (2 * fd_step)
    return div


def _jt_v(score, x, t, v, fd_step: float = 1e-4) -> np.ndarray:
    if _has_divergence(score):
        return score.vjp(x, t, v)
    # generic callable: J v by central differences (z^T J v = z^T J^T v for the quadratic form used here)
    return (np.asarray(score(x + fd_step * v, t)) - np.asarray(score(x - fd_step * v, t))) / (2 * fd_step)


def _probes(rng: np.random.Generator, shape, probe: str) -> np.ndarray:
    if probe == "rademacher":
        return rng.integers(0, 2, size=shape).astype(np.float64) * 2.0 - 1.0
    return rng.standard_normal(shape)


def hutchinson_divergence(score, x, t: float, *, n_probes: int = 1, probe: str = "rademacher", seed=None,
                          probes: np.ndarray | None = None) -> np.ndarray:
    """Hutchinson's estimates ``z_j^T J z_j`` of ``div score`` per row and probe: shape ``(n, n_probes)``.

    Unbiased for ``E[z z^T] = I`` (Rademacher or Gaussian probes). Rademacher probes are exact when ``J`` is
    diagonal (e.g. an isotropic Gaussian's score).
    """
    if probe not in PROBES:
        raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
    x = np.asarray(x, dtype=np.float64)
    if probes is None:
        if isinstance(n_probes, bool) or int(n_probes) != n_probes or n_probes < 1:
            raise ValueError(f"n_probes must be a positive integer, got {n_probes!r}")
        probes = _probes(np.random.default_rng(seed), (int(n_probes), *x.shape), probe)
    out = np.empty((x.shape[0], probes.shape[0]))
    for j, z in enumerate(probes):
        out[:, j] = np.sum(z * _jt_v(score, x, t, z), axis=1)
    return out


def log_likelihood(sde, score, x, *, eps: float = 1e-5, T: float | None = None, prior=None,
                   divergence: str = "auto", n_probes: int = 1, probe: str = "rademacher", seed=0,
                   rtol: float = 1e-5, atol: float = 1e-5, method: str = "rk45", n_steps: int = 20,
                   grid: str = "logsnr", rho: float = 7.0, info: dict | None = None) -> np.ndarray:
    """``log p_eps(x)`` per row through the probability-flow ODE from ``eps`` to ``T``.

    ``method="rk45"`` (default): scipy's adaptive RK45 with ``rtol``/``atol`` on the state and the log-density
    together. ``method="dpmpp_2m"``: the exponential integrator of the few-step samplers on a fixed grid of
    ``n_steps`` steps (``grid``: ``"logsnr"`` default, ``"uniform"``, ``"karras"``), run forwards in time:
    the state by DPM-Solver++(2M) (``y' = (sigma'/sigma) y - a' (e^{-h} - 1) D``, ``h = lambda' - lambda < 0``),
    and the log-density change split as ``int div F dt = dim log(a(T)/a(eps)) + int sigma^2 div s d lambda``
    (``d lambda / dt = -g^2 / (2 sigma^2)``), the first part exact, the second by the trapezoidal rule in
    ``lambda`` on the same nodes. Order 2; ``n_steps`` score evaluations and ``n_steps + 1`` divergence
    evaluations (``info["nfe"]``, ``info["n_div"]``); ``rtol``/``atol`` unused.

    Args:
        sde: an SDE declaring ``affine_marginal``: VPSDE, VESDE or scalar OrnsteinUhlenbeck (``T`` required where
            ``sde.T`` is ``None``, as for OU).
        score: the score (any callable; scores declaring ``has_divergence``, :class:`TorchScore` and
            :class:`GaussianMixtureScore`, give exact divergences).
        x: ``(n, dim)`` points.
        eps: the start time of the ODE (the density returned is that of ``p_eps``).
        T: end time (default ``sde.T``).
        prior: ``None`` (``sde.prior()``: ``N(0, I)`` for VP, ``N(0, sigma_max^2 I)`` for VE, the stationary law
            for OU), ``"exact"`` (``score.logpdf(., T)`` of a score declaring ``has_logpdf``, such as
            :class:`GaussianMixtureScore`), an object with ``logpdf``, or a callable ``logp(x)``.
        divergence: ``"auto"`` (exact for ``dim <= 8``, Hutchinson above), ``"exact"`` or ``"hutchinson"``.
        n_probes, probe, seed: Hutchinson probes (drawn once, fixed along the solve).
        rtol, atol: solver tolerances (``rk45``).
        method: ``"rk45"`` or ``"dpmpp_2m"`` (see above).
        n_steps, grid, rho: the fixed grid of ``dpmpp_2m``.
        info: a dict to receive ``nfev`` (``nfe`` and ``n_div`` for ``dpmpp_2m``), ``prior_logp`` and
            ``delta_logp``.

    Bits per dimension: ``-log_likelihood / (dim log 2)`` (add the dequantization offset yourself).
    """
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    if method not in LIKELIHOOD_METHODS:
        raise ValueError(f"method must be one of {LIKELIHOOD_METHODS}, got {method!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive integer, got {n_steps!r}")
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS}, got {grid!r}")
    _marginal.require_affine(sde)
    x = np.asarray(x, dtype=np.float64)
    dim = _marginal.score_dim(score, sde.dim)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape (n, {dim}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x contains NaN or inf (first at row {int(np.flatnonzero(~np.isfinite(x).all(1))[0])})")
    sde = _marginal.for_dim(sde, dim)
    T_ = _marginal.end_time(sde, T)
    if not 0.0 < eps < T_:
        raise ValueError(f"eps must satisfy 0 < eps < T = {T_}, got {eps}")
    if prior is None:
        prior_logp = sde.prior().logpdf
    elif isinstance(prior, str):
        if prior != "exact" or not _marginal.score_fact(score, "has_logpdf"):
            raise ValueError(f"prior={prior!r} needs 'exact' with a score that declares has_logpdf "
                             "(a GaussianMixtureScore)")
        prior_logp = lambda z: score.logpdf(z, T_)  # noqa: E731
    elif callable(prior):
        prior_logp = prior
    else:
        prior_logp = prior.logpdf
    use_hutch = divergence == "hutchinson" or (divergence == "auto" and dim > 8)
    probes = None
    if use_hutch:
        if probe not in PROBES:
            raise ValueError(f"probe must be one of {PROBES}, got {probe!r}")
        probes = _probes(np.random.default_rng(seed), (int(n_probes), *x.shape), probe)
    n = x.shape[0]

    def div_of(xx, t):
        if use_hutch:
            return hutchinson_divergence(score, xx, t, probes=probes).mean(axis=1)
        return exact_divergence(score, xx, t)

    if method == "dpmpp_2m":
        xT, delta, nfe = _exp_integrator(sde, score, x, eps, T_, int(n_steps), grid, rho, div_of)
        lp = np.asarray(prior_logp(xT), dtype=np.float64).reshape(n)
        if info is not None:
            info.update(nfe=nfe, n_div=int(n_steps) + 1, prior_logp=lp, delta_logp=delta)
        return lp + delta

    def fun(t, y):
        xx = y[: n * dim].reshape(n, dim)
        trf, g2 = _drift_trace_and_g2(sde, t)
        s = np.asarray(score(xx, t), dtype=np.float64)
        fx = np.asarray(sde.drift(xx, t), dtype=np.float64) - 0.5 * g2 * s
        dv = div_of(xx, t)
        return np.concatenate([fx.ravel(), trf - 0.5 * g2 * dv])

    y0 = np.concatenate([x.ravel(), np.zeros(n)])
    sol = solve_ivp(fun, (eps, T_), y0, method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"likelihood ODE failed: {sol.message}")
    yT = sol.y[:, -1]
    xT = yT[: n * dim].reshape(n, dim)
    delta = yT[n * dim:]
    lp = np.asarray(prior_logp(xT), dtype=np.float64).reshape(n)
    if info is not None:
        info.update(nfev=int(sol.nfev), prior_logp=lp, delta_logp=delta)
    return lp + delta


def _exp_integrator(sde, score, x, eps, T, n_steps, grid, rho, div_of):
    """DPM-Solver++(2M) forwards from ``eps`` to ``T`` with the log-density change (see :func:`log_likelihood`)."""
    ts = time_grid(sde, grid, T, eps, n_steps, rho)[::-1].copy()
    a_, _, s_ = sde.marginal_coef(ts)
    a, sg = np.asarray(a_, dtype=np.float64), np.asarray(s_, dtype=np.float64)
    lam = np.log(a) - np.log(sg)
    c = sde.center
    y = x - c
    prev = None
    acc = np.zeros(x.shape[0])
    w_prev = sg[0] ** 2 * div_of(x, float(ts[0]))
    for k in range(n_steps):
        xk = c + y
        sc = np.asarray(score(xk, float(ts[k])), dtype=np.float64)
        y0 = (y + sg[k] ** 2 * sc) / a[k]
        h = lam[k + 1] - lam[k]
        if prev is None or (k == n_steps - 1 and n_steps < 15):
            D = y0
        else:
            r = (lam[k] - lam[k - 1]) / h
            D = (1.0 + 0.5 / r) * y0 - (0.5 / r) * prev
        prev = y0
        y = (sg[k + 1] / sg[k]) * y - a[k + 1] * math.expm1(-h) * D
        w_next = sg[k + 1] ** 2 * div_of(c + y, float(ts[k + 1]))
        acc += 0.5 * h * (w_prev + w_next)
        w_prev = w_next
    delta = sde.dim * math.log(a[-1] / a[0]) + acc
    return c + y, delta, n_steps


def bits_per_dim(log_p: np.ndarray, dim: int) -> np.ndarray:
    """``-log p / (dim log 2)``."""
    return -np.asarray(log_p) / (dim * math.log(2.0))
