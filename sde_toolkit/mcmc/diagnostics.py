"""MCMC diagnostics: effective sample size, R-hat, autocorrelation and integrated autocorrelation time.

All functions take chains as an array of shape ``(n_steps, n_chains, dim)`` (the layout of
:attr:`Chains.samples`); ``(n_steps,)`` and ``(n_steps, n_chains)`` are accepted and read as one coordinate
and/or one chain. Every function works per coordinate and returns ``(dim,)`` (``autocorrelation``:
``(n_steps, dim)``). NaN or inf in the chains raise ``ValueError`` (a diverged chain has no diagnostic).

**ESS and R-hat** follow Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021), "Rank-normalization, folding,
and localization: an improved R-hat for assessing convergence of MCMC", Bayesian Analysis 16(2) 667-718
(the definitions of Stan and ArviZ):

* *split chains*: each chain is cut into its first and last ``n_steps // 2`` draws (the middle draw is dropped
  when ``n_steps`` is odd), giving ``M = 2 n_chains`` chains of ``N = n_steps // 2`` draws;
* *rank normalization*: the pooled draws of all split chains are ranked (ties get their average rank ``r``) and
  mapped to ``z = Phi^-1((r - 3/8) / (S + 1/4))``, ``S = M N`` (Blom 1958);
* *multi-chain ESS*: with ``W`` the mean within-chain variance, ``var+ = (N-1)/N W + B/N`` (``B/N`` the variance
  of the chain means) and ``C_m(t)`` the (biased, FFT) autocovariance of chain ``m``,
  ``rho(t) = 1 - (W - mean_m C_m(t)) / var+``: between-chain disagreement lowers every ``rho(t)`` less than
  it lowers ``var+``, so chains that sit in different places look strongly correlated and give a small ESS.
  ``tau = -1 + 2 sum_{t <= 2K-1} rho(t) + rho(2K)^+``, truncated by Geyer's initial positive sequence (stop at
  the first pair ``rho(2k) + rho(2k+1) < 0``) and made monotone (pair sums replaced by their running minimum);
  ``tau >= 1 / log10(S)``; ``ESS = S / tau``;
* ``ess(x, "bulk")``: the multi-chain ESS of the rank-normalized split chains (the efficiency of mean-like
  quantities, robust to heavy tails); ``"tail"``: the smaller of the multi-chain ESS of the split indicators
  ``x <= q_5%`` and ``x <= q_95%`` (the efficiency of the 5 % and 95 % quantiles); ``"mean"``: the multi-chain
  ESS of the raw split chains (the ESS of the Monte Carlo standard error of the mean);
* ``rhat(x)``: ``max`` of the split R-hat ``sqrt((N-1)/N + B/(N W))`` of the rank-normalized split chains
  (*bulk*) and of the rank-normalized split chains folded about the pooled median, ``|x - median|`` (*tail*, it
  sees chains with equal locations but different scales). Values above 1.01 mean the chains have not mixed, or
  are too short to tell: for stationary, independent chains ``R-hat ~ 1 + 1 / (2 ESS_split)`` with
  ``ESS_split`` the bulk ESS of one split chain, so ``R-hat <= 1.01`` also needs ``~ 50`` effective draws per
  split chain.

**Earlier estimator** (``effective_sample_size(x, method="sokal")``, :func:`integrated_time`): the
chain-averaged autocorrelation (emcee, Foreman-Mackey et al. 2013) with Sokal's window and
``ESS = n_chains n_steps / tau``. It measures autocorrelation *within* chains only, so chains that never leave
their starting wells report the ESS of well-mixed ones (eight MALA chains in the two wells of a 12 kT double
well, four in each: about 33,000 where the multi-chain bulk ESS is 12). It was the default of ``effective_sample_size`` and
``Chains.ess`` before; it stays available for within-chain correlation times.

:func:`split_rhat` is the classic split R-hat (BDA3 11.4) on the raw values, without rank normalization or
folding; :func:`rhat` is the one to use.

Edge cases: a coordinate constant over all draws has ``ESS = M N`` (as in ArviZ) and ``R-hat = 1``; one whose
split chains are each constant but differ has ``R-hat = inf``. One chain works (it is split in two; ArviZ
returns NaN for R-hat there). ``ess``/``rhat`` need at least 4 draws per chain.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as _fft
from scipy import special, stats

__all__ = [
    "ess",
    "rhat",
    "effective_sample_size",
    "split_rhat",
    "autocorrelation",
    "integrated_time",
    "ESS_METHODS",
]

ESS_METHODS = ("bulk", "tail", "mean", "sokal")


def _as3d(x, name: str = "samples", min_steps: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None, None]
    elif a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"{name} must have shape (n_steps, n_chains, dim), got {np.shape(x)}")
    if a.shape[0] < min_steps:
        raise ValueError(f"{name} needs at least {min_steps} steps per chain, got {a.shape[0]}")
    if a.shape[1] < 1 or a.shape[2] < 1:
        raise ValueError(f"{name} has no chains or no coordinates: shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


# ------------------------------------------------------------------------------ Vehtari et al. (2021) core
def _split(a: np.ndarray) -> np.ndarray:
    """``(n, m, d)`` -> ``(n // 2, 2 m, d)``: first and last halves of every chain (the middle draw dropped)."""
    n = a.shape[0]
    half = n // 2
    return np.concatenate([a[:half], a[n - half :]], axis=1)


def _z_scale(a: np.ndarray) -> np.ndarray:
    """Rank normalization over the pooled draws of every coordinate: ``Phi^-1((r - 3/8) / (S + 1/4))``."""
    n, m, d = a.shape
    s = n * m
    r = stats.rankdata(a.reshape(s, d), method="average", axis=0)
    return special.ndtri((r - 0.375) / (s + 0.25)).reshape(n, m, d)


def _autocov(a: np.ndarray) -> np.ndarray:
    """Biased autocovariance ``C(t) = (1/n) sum_s (x_s - xbar)(x_{s+t} - xbar)`` of every chain, by FFT."""
    n = a.shape[0]
    nfft = _fft.next_fast_len(2 * n)
    c = a - a.mean(axis=0, keepdims=True)
    f = np.fft.rfft(c, n=nfft, axis=0)
    return np.fft.irfft(f * np.conj(f), n=nfft, axis=0)[:n] / n


def _multichain_ess(s: np.ndarray) -> np.ndarray:
    """Multi-chain ESS of (already split) chains ``(n, m, d)``; Geyer's initial monotone sequence."""
    n, m, d = s.shape
    size = n * m
    out = np.full(d, float(size))
    const = (s.max(axis=(0, 1)) - s.min(axis=(0, 1))) < np.finfo(np.float64).resolution
    if const.all():
        return out
    v = s[:, :, ~const]
    acov_mean = _autocov(v).mean(axis=1)  # (n, d'): mean over chains of C_m(t)
    w = acov_mean[0] * n / (n - 1.0)  # mean within-chain variance (ddof=1)
    var_plus = w * (n - 1.0) / n
    if m > 1:
        var_plus = var_plus + v.mean(axis=0).var(axis=0, ddof=1)
    rho = 1.0 - (w - acov_mean) / var_plus
    rho[0] = 1.0
    k_max = max(0, (n - 3) // 2)  # last pair (2k, 2k+1) Geyer's sequence may look at
    k = np.arange(k_max + 1)
    pairs = rho[2 * k] + rho[2 * k + 1]  # (k_max + 1, d')
    stop = pairs <= 0.0
    found = stop.any(axis=0)
    K = np.where(found, np.argmax(stop, axis=0), k_max)  # pairs 0..K-1 enter the sum
    mono = np.minimum.accumulate(pairs, axis=0)  # initial monotone sequence: running minimum of the pair sums
    total = np.where(k[:, None] < K[None, :], mono, 0.0).sum(axis=0)
    cols = np.arange(v.shape[2])
    rho_2k = rho[2 * K, cols]
    p_k = pairs[K, cols]
    tail = np.where(~found | (p_k == 0.0) | (rho_2k > 0.0), rho_2k, 0.0)
    tau = -1.0 + 2.0 * total + tail
    tau = np.maximum(tau, 1.0 / np.log10(size))
    out[~const] = size / tau
    return out


def _rhat_core(s: np.ndarray) -> np.ndarray:
    """Split R-hat ``sqrt((N-1)/N + B/(N W))`` of (already split) chains ``(N, M, d)``."""
    n = s.shape[0]
    flat = (s.max(axis=0) == s.min(axis=0)).all(axis=0)  # every split chain constant: W = 0 exactly
    w = np.where(flat, 0.0, s.var(axis=0, ddof=1).mean(axis=0))
    b_over_n = s.mean(axis=0).var(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt((n - 1.0) / n + b_over_n / w)
    return np.where(w > 0, r, np.where(b_over_n > 0, np.inf, 1.0))


def _check_prob(prob) -> tuple[float, float]:
    if prob is None:
        return 0.05, 0.95
    if np.ndim(prob) == 0:
        prob = (float(prob), 1.0 - float(prob))
    lo, hi = (float(p) for p in prob)
    if not (0.0 < lo < 1.0 and 0.0 < hi < 1.0):
        raise ValueError(f"prob must lie in (0, 1), got {prob}")
    return lo, hi


def ess(x, method: str = "bulk", *, prob=None, c: float | None = None) -> np.ndarray:
    """Effective sample size per coordinate (Vehtari et al. 2021; see the module docs for the definitions).

    Args:
        x: chains ``(n_steps, n_chains, dim)`` (or fewer axes, see module docs), at least 4 steps
            (2 for ``"sokal"``).
        method: ``"bulk"`` (rank-normalized split chains, default), ``"tail"`` (min of the 5 % and 95 %
            quantile-indicator ESS), ``"mean"`` (raw split chains: for the standard error of a mean), or
            ``"sokal"`` (the earlier within-chain estimator ``n_chains n_steps / tau``, Sokal's window ``c``;
            blind to chains that do not mix, kept for within-chain correlation times).
        prob: ``"tail"`` only: the quantile levels, a pair or ``p`` for ``(p, 1 - p)``; default ``(0.05, 0.95)``.
        c: ``"sokal"`` only: the window constant (default 5).

    Returns:
        ``(dim,)`` float array, the same as ``arviz.ess(method=...)`` on ``x`` transposed to ``(chain, draw)``.
    """
    if not isinstance(method, str) or method not in ESS_METHODS:
        raise ValueError(
            f"method must be one of {ESS_METHODS}, got {method!r} (the Sokal window constant is now the keyword "
            "c=, with method='sokal')"
        )
    if method != "sokal" and c is not None:
        raise ValueError(f"c is the Sokal window constant; it has no meaning for method={method!r}")
    if method != "tail" and prob is not None:
        raise ValueError(f"prob is for method='tail', not {method!r}")
    if method == "sokal":
        a = _as3d(x)
        tau = integrated_time(a, 5.0 if c is None else c)
        return a.shape[0] * a.shape[1] / np.maximum(tau, 1e-12)
    a = _as3d(x, min_steps=4)
    if method == "bulk":
        return _multichain_ess(_z_scale(_split(a)))
    if method == "mean":
        return _multichain_ess(_split(a))
    lo, hi = _check_prob(prob)
    flat = a.reshape(-1, a.shape[2])
    ess_lo, ess_hi = (_multichain_ess(_split((a <= np.quantile(flat, p, axis=0)).astype(np.float64)))
                      for p in (lo, hi))  # quantiles of type 7, as R and ArviZ
    return np.minimum(ess_lo, ess_hi)


def effective_sample_size(x, method: str = "bulk", *, prob=None, c: float | None = None) -> np.ndarray:
    """Effective sample size per coordinate: :func:`ess` (multi-chain bulk ESS by default).

    Before, this was ``n_chains n_steps / tau`` with the within-chain Sokal ``tau``; that estimator overclaims on
    chains that do not mix and is now ``method="sokal"`` (with ``c=`` its window constant).
    """
    return ess(x, method, prob=prob, c=c)


def rhat(x, method: str = "rank") -> np.ndarray:
    """R-hat per coordinate.

    Args:
        x: chains ``(n_steps, n_chains, dim)``, at least 4 steps.
        method: ``"rank"`` (default): the rank-normalized split R-hat of Vehtari et al. (2021), the larger of
            the bulk and folded (tail) values, as ``arviz.rhat(method="rank")``; ``"split"``: the classic
            split R-hat on the raw values (:func:`split_rhat`).

    Returns:
        ``(dim,)`` array; about 1 for mixed chains, above 1.01 when they disagree (or are too short to tell).
        ``inf`` where every split chain is constant but they differ; 1 where all draws are equal. One chain is
        split in two halves (ArviZ returns NaN there).
    """
    if method == "split":
        return split_rhat(x)
    if method != "rank":
        raise ValueError(f"method must be 'rank' or 'split', got {method!r}")
    a = _as3d(x, min_steps=4)
    s = _split(a)
    bulk = _rhat_core(_z_scale(s))
    med = np.median(s.reshape(-1, s.shape[2]), axis=0)
    folded = _rhat_core(_z_scale(np.abs(s - med)))
    return np.maximum(bulk, folded)


def split_rhat(x) -> np.ndarray:
    """Classic split R-hat per coordinate (BDA3 11.4): ``sqrt(((n-1)/n W + B/n) / W)`` over half-chains.

    No rank normalization and no folding, so it misses chains that differ in scale or have heavy tails; use
    :func:`rhat` (what :class:`Chains` and :func:`~sde_toolkit.validate_stationary` report). Each chain is cut
    into a first and a second half (the middle sample is dropped when ``n_steps`` is odd), so a drifting single
    chain also shows ``R > 1``.

    Args:
        x: chains ``(n_steps, n_chains, dim)``, at least 4 steps.

    Returns:
        ``(dim,)`` array; 1 for perfectly mixed chains, larger when chains disagree. Coordinates that are
        constant within every half-chain give ``inf`` if the halves differ and 1 if they agree.
    """
    a = _as3d(x)
    if a.shape[0] < 4:
        raise ValueError(f"split_rhat needs at least 4 steps per chain, got {a.shape[0]}")
    return _rhat_core(_split(a))


# ------------------------------------------------------------------------------ within-chain (Sokal)
def autocorrelation(x) -> np.ndarray:
    """Normalized autocorrelation ``rho(t) = C(t) / C(0)`` of each chain by FFT, averaged over chains.

    ``C(t) = (1/n) sum_s (x_s - xbar)(x_{s+t} - xbar)`` (the biased estimator, positive semidefinite), each chain
    about its own mean: it describes correlation *within* chains and says nothing about whether they agree.

    Args:
        x: chains ``(n_steps, n_chains, dim)`` (or fewer axes, see module docs).

    Returns:
        ``(n_steps, dim)``: ``rho[0] == 1``. A constant coordinate gives ``rho = 1`` at lag 0 and 0 elsewhere.
    """
    a = _as3d(x)
    acov = _autocov(a)  # (n, chains, dim)
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
    """Within-chain integrated autocorrelation time ``tau = 1 + 2 sum_{t=1}^M rho(t)`` per coordinate.

    ``rho`` is :func:`autocorrelation` (averaged over chains); the window ``M`` is the smallest lag with
    ``M >= c tau(M)`` (Sokal 1997). The estimate is reliable when the chains are longer than about ``50 tau``
    (a shorter run underestimates tau). It ignores the between-chain variance, so ``n_chains n_steps / tau`` is
    not an effective sample size for chains that do not mix; use :func:`ess`.

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
