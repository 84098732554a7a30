"""MCMC diagnostics: autocorrelation, integrated autocorrelation time, effective sample size, split R-hat.

All functions take chains as an array of shape ``(n_steps, n_chains, dim)`` (the layout of
:attr:`Chains.samples`); ``(n_steps,)`` and ``(n_steps, n_chains)`` are accepted and read as one coordinate
and/or one chain.

Facts:

* ``rho(t)`` is the normalized autocorrelation of each chain, computed by FFT (zero-padded to avoid wrap-around),
  averaged over chains (as in emcee, Foreman-Mackey et al. 2013).
* ``tau = 1 + 2 sum_{t=1}^{M} rho(t)`` with Sokal's automatic window: the smallest ``M`` with
  ``M >= c tau(M)`` (``c = 5``; Sokal 1997, "Monte Carlo methods in statistical mechanics").
* ``ESS = n_chains n_steps / tau`` per coordinate.
* Split R-hat (Gelman et al., BDA3 11.4): every chain is cut in two halves, ``R = sqrt(var+ / W)`` with
  ``var+ = (n-1)/n W + B/n``; values near 1 (below ~1.01) indicate mixing between chains.
"""

from __future__ import annotations

import numpy as np

__all__ = ["autocorrelation", "integrated_time", "effective_sample_size", "split_rhat"]


def _as3d(x, name: str = "samples") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None, None]
    elif a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (n_steps, n_chains, dim), got {np.shape(x)}")
    if a.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 steps per chain, got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def autocorrelation(x) -> np.ndarray:
    """Normalized autocorrelation ``rho(t) = C(t) / C(0)`` of each chain by FFT, averaged over chains.

    ``C(t) = (1/n) sum_s (x_s - xbar)(x_{s+t} - xbar)`` (the biased estimator, positive semidefinite).

    Args:
        x: chains ``(n_steps, n_chains, dim)`` (or fewer axes, see module docs).

    Returns:
        ``(n_steps, dim)``: ``rho[0] == 1``. A constant coordinate gives ``rho = 1`` at lag 0 and 0 elsewhere.
    """
    a = _as3d(x)
    n = a.shape[0]
    nfft = 1 << int(2 * n - 1).bit_length()
    c = a - a.mean(axis=0, keepdims=True)
    f = np.fft.rfft(c, n=nfft, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:n]  # (n, chains, dim)
    c0 = acov[0]
    safe = np.where(c0 > 0, c0, 1.0)
    rho = acov / safe
    rho[:, c0 <= 0] = 0.0
    rho[0] = 1.0
    return rho.mean(axis=1)


def _sokal_window(taus: np.ndarray, c: float) -> int:
    m = np.arange(taus.shape[0]) < c * taus
    if np.any(~m):
        return int(np.argmin(m))
    return taus.shape[0] - 1


def integrated_time(x, c: float = 5.0) -> np.ndarray:
    """Integrated autocorrelation time ``tau = 1 + 2 sum_{t=1}^M rho(t)`` per coordinate, Sokal's window.

    The window ``M`` is the smallest lag with ``M >= c tau(M)``; the estimate is reliable when the chains are
    longer than about ``50 tau`` (a shorter run underestimates tau).

    Args:
        x: chains ``(n_steps, n_chains, dim)``.
        c: window constant (5 is Sokal's choice; use ~10 for slowly decaying, non-exponential correlations).

    Returns:
        ``(dim,)`` array, each ``>= 1 / (2 M + 1)``; 1 for independent samples.
    """
    if not (np.isfinite(c) and c > 0):
        raise ValueError(f"c must be a positive number, got {c}")
    rho = autocorrelation(x)
    taus = 2.0 * np.cumsum(rho, axis=0) - 1.0
    out = np.empty(rho.shape[1])
    for j in range(rho.shape[1]):
        out[j] = taus[_sokal_window(taus[:, j], c), j]
    return out


def effective_sample_size(x, c: float = 5.0) -> np.ndarray:
    """Effective sample size ``n_chains n_steps / tau`` per coordinate (``tau`` from :func:`integrated_time`).

    Args:
        x: chains ``(n_steps, n_chains, dim)``.
        c: Sokal window constant.

    Returns:
        ``(dim,)`` array.
    """
    a = _as3d(x)
    tau = integrated_time(a, c)
    return a.shape[0] * a.shape[1] / np.maximum(tau, 1e-12)


def split_rhat(x) -> np.ndarray:
    """Split R-hat per coordinate (BDA3): ``sqrt(((n-1)/n W + B/n) / W)`` over half-chains.

    Each chain is cut into a first and a second half (the middle sample is dropped when ``n_steps`` is odd), so
    a drifting single chain also shows ``R > 1``.

    Args:
        x: chains ``(n_steps, n_chains, dim)``, at least 4 steps.

    Returns:
        ``(dim,)`` array; 1 for perfectly mixed chains, larger when chains disagree. Coordinates that are
        constant within every half-chain give ``inf`` if the halves differ and 1 if they agree.
    """
    a = _as3d(x)
    n_steps = a.shape[0]
    if n_steps < 4:
        raise ValueError(f"split_rhat needs at least 4 steps per chain, got {n_steps}")
    half = n_steps // 2
    s = np.concatenate([a[:half], a[n_steps - half :]], axis=1)  # (half, 2 chains, dim)
    n = s.shape[0]
    means = s.mean(axis=0)
    W = s.var(axis=0, ddof=1).mean(axis=0)
    B_over_n = means.var(axis=0, ddof=1)
    var_plus = (n - 1) / n * W + B_over_n
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(var_plus / W)
    r = np.where(W > 0, r, np.where(B_over_n > 0, np.inf, 1.0))
    return r
