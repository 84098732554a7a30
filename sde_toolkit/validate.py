"""``validate_stationary``: do these samples follow the SDE's stationary law?

The samples are compared with the normalized stationary density of ``sde.stationary()`` (Boltzmann
``exp(-V/kT)/Z`` by quadrature, or a Gaussian) and, when a grid is given, with the Fokker–Planck stationary
density ``FokkerPlanck(sde, grid).stationary()``. Three statistics (plus one per extra reference):

* ``ks``: Kolmogorov–Smirnov ``sup |F_n - F|`` (per marginal in 2-D, the maximum over axes);
* ``w1``: ``int |F_n - F| dx``, the exact ``W_1`` between the samples and the density (per marginal in 2-D, the
  maximum over axes);
* ``tv``: total variation ``1/2 sum |p_i - q_i|`` between the histogram and the exact cell masses (samples
  outside the bins form one extra cell).

Thresholds come from each statistic's own sampling distribution at the *effective* sample size ``n_eff``,
never from tuned constants: the Kolmogorov distribution for KS; a parametric bootstrap from the reference
density for ``w1`` and ``tv`` (``n_bootstrap`` replicates, a method-of-moments gamma fit for the far tail).
The family-wise level ``alpha`` is split over the statistics (Bonferroni). ``n_eff`` is the number of samples
for independent draws (e.g. final states of independent chains), ``min`` over coordinates of the multi-chain
bulk ESS (Vehtari et al. 2021, :func:`sde_toolkit.mcmc.diagnostics.ess`) for :class:`~sde_toolkit.mcmc.Chains`
or ``(n_kept, n_chains, dim)`` arrays, or ``effective_size=``. Treating ``n_eff`` correlated samples like
``n_eff`` independent ones is the standard large-sample approximation; prefer independent chains when the
decision matters.

Chains must also have mixed: for chains with >= 4 kept samples the largest rank-normalized split R-hat over
the coordinates must be ``<= rhat_max`` (1.01, Vehtari et al.'s recommendation), else the report fails with
"not enough effective samples / chains not mixed". Chains that never crossed a barrier can match the density
inside the wells they sampled, and the ESS of chains that disagree is small, so loose thresholds alone would
pass them; R-hat is what sees that they disagree. This gate is a precondition, not a test at level ``alpha``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from .sde.distributions import Boltzmann, Gaussian, QuadratureTable

__all__ = ["StationaryReport", "validate_stationary"]

_W1_BOOT_MAX = 5_000
_W1_GRID_MAX = 4_001  # CDF knots used by W1 (interpolation error ~ h^2/8, negligible)


# ------------------------------------------------------------------------------------------- reference
def _reference(sde) -> QuadratureTable:
    dist = sde.stationary()
    if isinstance(dist, Gaussian):
        if dist.dim > 2:
            raise ValueError(f"validate_stationary compares densities by quadrature in 1-D/2-D; the SDE is {dist.dim}-D")
        sd = np.sqrt(np.diag(dist.cov))
        bounds = np.stack([dist.mean - 12.0 * sd, dist.mean + 12.0 * sd], axis=1)
    elif isinstance(dist, Boltzmann):
        if dist.dim > 2:
            raise ValueError(f"validate_stationary compares densities by quadrature in 1-D/2-D; the SDE is {dist.dim}-D")
        return dist.table()
    else:
        raise TypeError(f"unsupported stationary distribution {type(dist).__name__} (need Gaussian or Boltzmann)")
    return QuadratureTable(dist.logpdf, bounds, QuadratureTable.default_n(dist.dim))


# ------------------------------------------------------------------------------------------- statistics
def _w1_to_cdf(x: np.ndarray, grid: np.ndarray, cdf_table: np.ndarray) -> float:
    """Exact ``int |F_n - F| dx`` for a piecewise-linear ``F`` (given on ``grid``) and the ECDF of ``x``."""
    xs = np.sort(x)
    pts = np.union1d(grid, xs)
    F = np.interp(pts, grid, cdf_table, left=0.0, right=1.0)
    Fn = np.searchsorted(xs, pts, side="right") / xs.size  # constant on [pts_k, pts_{k+1})
    a = Fn[:-1] - F[:-1]
    b = Fn[:-1] - F[1:]
    d = np.diff(pts)
    same = a * b >= 0
    aa, ab = np.abs(a), np.abs(b)
    denom = np.where(same, 1.0, aa + ab)
    seg = np.where(same, 0.5 * (aa + ab), 0.5 * (a * a + b * b) / denom)
    return float(np.sum(seg * d))


def _w1(ref: QuadratureTable, x: np.ndarray) -> float:
    out = 0.0
    for k in range(ref.dim):
        ax, c = ref.axes[k], ref.cdf_tables[k]
        stride = max(1, (ax.size - 1) // (_W1_GRID_MAX - 1))
        out = max(out, _w1_to_cdf(x[:, k], ax[::stride], c[::stride]))
    return out


def _ks(ref: QuadratureTable, x: np.ndarray) -> float:
    return max(float(stats.kstest(x[:, k], lambda v, k=k: ref.marginal_cdf(k, v)).statistic) for k in range(ref.dim))


def _tv_counts(p_cells: np.ndarray, p_out: float, q_cells: np.ndarray, q_out: float) -> float:
    return float(0.5 * (np.abs(p_cells - q_cells).sum() + abs(p_out - q_out)))


def _gamma_quantile(reps: np.ndarray, alpha: float) -> float:
    """``1 - alpha`` quantile of a gamma law fitted by moments to bootstrap replicates (positive statistics)."""
    m, v = float(np.mean(reps)), float(np.var(reps, ddof=1))
    if not (m > 0 and v > 0):
        return float(np.max(reps))
    return float(stats.gamma.isf(alpha, m * m / v, scale=v / m))


def _auto_edges(ref: QuadratureTable, n_eff: float) -> tuple[np.ndarray, ...]:
    if ref.dim == 1:
        k = int(np.clip(math.ceil(2.0 * n_eff ** (1.0 / 3.0)), 10, 100))
    else:
        k = int(np.clip(math.ceil(n_eff ** 0.25), 5, 40))
    lo_hi = [ref.quantile(a, np.array([1e-4, 1.0 - 1e-4])) for a in range(ref.dim)]
    return tuple(np.linspace(lo, hi, k + 1) for lo, hi in lo_hi)


def _edges_from_centers(centers) -> tuple[np.ndarray, ...]:
    out = []
    for c in centers:
        c = np.asarray(c, dtype=np.float64)
        h = (c[-1] - c[0]) / (c.size - 1)
        out.append(np.concatenate([c - 0.5 * h, [c[-1] + 0.5 * h]]))
    return tuple(out)


def _check_bins(bins, dim: int) -> tuple[np.ndarray, ...]:
    if isinstance(bins, np.ndarray) and bins.ndim == 1:
        bins = (bins,)
    edges = tuple(np.asarray(e, dtype=np.float64) for e in bins)
    if len(edges) != dim:
        raise ValueError(f"bins has {len(edges)} axes, the SDE has dim {dim}")
    for k, e in enumerate(edges):
        if e.ndim != 1 or e.size < 2 or not np.isfinite(e).all() or np.any(np.diff(e) <= 0):
            raise ValueError(f"bins axis {k}: edges must be strictly increasing, finite, at least 2")
    return edges


def _histogram(x: np.ndarray, edges) -> tuple[np.ndarray, float]:
    counts, _ = np.histogramdd(x, bins=edges)
    p = counts / x.shape[0]
    return p, float(max(0.0, 1.0 - p.sum()))


def _tv_bootstrap(q: np.ndarray, q_out: float, n: int, B: int, rng) -> np.ndarray:
    pv = np.append(q.ravel(), q_out)
    pv = pv / pv.sum()
    reps = np.empty(B)
    for b in range(B):
        c = rng.multinomial(n, pv) / n
        reps[b] = 0.5 * np.abs(c - pv).sum()
    return reps


# ------------------------------------------------------------------------------------------- report
@dataclass
class StationaryReport:
    """Result of :func:`validate_stationary`.

    Attributes:
        dim, n_samples, effective_size: data size (``effective_size`` sets the thresholds).
        alpha: family-wise false-alarm level (split over ``checks`` by Bonferroni).
        ks, ks_pvalue, ks_threshold: KS statistic, its p-value at ``effective_size`` (Bonferroni-adjusted over
            axes) and its critical value.
        w1, w1_threshold: ``W_1`` to the reference (max over marginals in 2-D) and its bootstrap threshold.
        tv, tv_threshold: histogram total variation and its bootstrap threshold.
        kl: KL divergence of the histogram from the reference cell masses (informational).
        tv_fp, tv_fp_threshold: the same against the Fokker–Planck stationary density (``grid`` given).
        fp_vs_reference_tv: TV between the Fokker–Planck and the quadrature cell masses on the grid
            (informational: the FP discretization error).
        edges: the histogram bin edges used for ``tv``.
        rhat: the largest rank-normalized split R-hat over coordinates (chains with >= 4 kept samples), else
            ``None`` (independent draws: not assessed).
        rhat_max: the R-hat above which the report fails (``None``: gate disabled).
    """

    dim: int
    n_samples: int
    effective_size: float
    alpha: float
    ks: float
    ks_pvalue: float
    ks_threshold: float
    w1: float
    w1_threshold: float
    tv: float
    tv_threshold: float
    kl: float
    tv_fp: float | None = None
    tv_fp_threshold: float | None = None
    fp_vs_reference_tv: float | None = None
    edges: tuple = field(default=(), repr=False)
    rhat: float | None = None
    rhat_max: float | None = None

    @property
    def mixing_ok(self) -> bool:
        """False when the chains' R-hat exceeds :attr:`rhat_max` (True when not assessed or gate disabled)."""
        return self.rhat is None or self.rhat_max is None or bool(self.rhat <= self.rhat_max)

    @property
    def mixing_message(self) -> str | None:
        """Why the chains fail the mixing gate, or ``None``."""
        if self.mixing_ok:
            return None
        return (f"not enough effective samples / chains not mixed (R-hat = {self.rhat:.4g} > {self.rhat_max:g}): "
                "run the chains longer, start more of them, or sample across the barrier")

    def checks(self) -> dict:
        """``{name: (value, threshold, passed)}`` for every statistic that decides :attr:`passed`."""
        out = {
            "ks": (self.ks, self.ks_threshold, self.ks <= self.ks_threshold),
            "w1": (self.w1, self.w1_threshold, self.w1 <= self.w1_threshold),
            "tv": (self.tv, self.tv_threshold, self.tv <= self.tv_threshold),
        }
        if self.tv_fp is not None:
            assert self.tv_fp_threshold is not None  # validate_stationary sets both (grid given)
            out["tv_fp"] = (self.tv_fp, self.tv_fp_threshold, self.tv_fp <= self.tv_fp_threshold)
        if self.rhat is not None and self.rhat_max is not None:
            out["rhat"] = (self.rhat, self.rhat_max, self.mixing_ok)
        return out

    @property
    def passed(self) -> bool:
        """True when every statistic is within its threshold and the chains have mixed (:attr:`mixing_ok`)."""
        return self.mixing_ok and all(c[2] for c in self.checks().values())

    def to_dict(self) -> dict:
        """JSON-ready dictionary of the numbers (for ``metrics.json``)."""
        d = {
            k: getattr(self, k)
            for k in (
                "dim", "n_samples", "effective_size", "alpha", "ks", "ks_pvalue", "ks_threshold", "w1",
                "w1_threshold", "tv", "tv_threshold", "kl", "tv_fp", "tv_fp_threshold", "fp_vs_reference_tv",
                "rhat", "rhat_max",
            )
        }
        d["mixing_ok"] = self.mixing_ok
        d["mixing_message"] = self.mixing_message
        d["passed"] = self.passed
        return {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in d.items()}

    def to_markdown(self) -> str:
        """A Markdown table of the statistics, thresholds and verdicts."""
        lines = [
            f"Stationary-law check: {'PASSED' if self.passed else 'FAILED'} "
            f"(n = {self.n_samples}, effective n = {self.effective_size:.0f}, dim = {self.dim}, alpha = {self.alpha:g})",
            "",
            "| statistic | value | threshold | pass |",
            "|---|---|---|---|",
        ]
        if not self.mixing_ok and self.mixing_message:
            msg = self.mixing_message
            lines[1:1] = ["", f"**{msg[0].upper()}{msg[1:]}.**"]
        names = {
            "ks": "KS sup|F_n - F|",
            "w1": "W1 to density",
            "tv": "TV histogram vs density",
            "tv_fp": "TV histogram vs Fokker-Planck",
            "rhat": "R-hat (rank-normalized, max over coordinates)",
        }
        for k, (v, t, ok) in self.checks().items():
            fv, ft = (f"{v:.4f}", f"{t:g}") if k == "rhat" else (f"{v:.4g}", f"{t:.4g}")
            lines.append(f"| {names[k]} | {fv} | {ft} | {'yes' if ok else 'NO'} |")
        lines.append(f"| KS p-value | {self.ks_pvalue:.3g} | | |")
        lines.append(f"| KL histogram vs density (nats) | {self.kl:.4g} | | |")
        if self.fp_vs_reference_tv is not None:
            lines.append(f"| TV Fokker-Planck vs quadrature | {self.fp_vs_reference_tv:.3g} | | |")
        if self.rhat is not None and self.rhat_max is None:
            lines.append(f"| R-hat (gate disabled) | {self.rhat:.4f} | | |")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_markdown()


# ------------------------------------------------------------------------------------------- public
def _flatten_samples(samples, dim: int, effective_size):
    """``(x (n, dim), n_eff, rhat or None)``: flat samples, effective size and the chains' largest R-hat."""
    from .mcmc.diagnostics import ess, rhat
    from .mcmc.sampler import Chains

    if isinstance(samples, Chains):
        arr = samples.samples
    else:
        arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim == 3:
        if arr.shape[2] != dim:
            raise ValueError(f"samples have dim {arr.shape[2]}, the SDE has dim {dim}")
        x = arr.reshape(-1, dim)
    elif arr.ndim == 2:
        if arr.shape[1] != dim:
            raise ValueError(f"samples have dim {arr.shape[1]}, the SDE has dim {dim} (shape {arr.shape})")
        x = arr
    else:
        raise ValueError(f"samples must be (n,), (n, dim), (n_kept, n_chains, dim) or Chains, got shape {arr.shape}")
    if x.shape[0] < 2:
        raise ValueError("need at least 2 samples")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or inf (a diverged chain?)")
    r_hat = None
    if arr.ndim == 2:
        n_eff = float(arr.shape[0])
    elif arr.shape[0] >= 4:  # chains: multi-chain bulk ESS and rank-normalized R-hat
        n_eff = float(np.min(ess(arr, "bulk")))
        r_hat = float(np.max(rhat(arr)))
    else:  # 1-3 kept samples per chain: too few for split chains; count one draw per chain
        n_eff = float(arr.shape[1])
    if effective_size is not None:
        n_eff = float(effective_size)
        if not (math.isfinite(n_eff) and n_eff >= 2):
            raise ValueError(f"effective_size must be a finite number >= 2, got {effective_size!r}")
    return x, min(n_eff, float(x.shape[0])), r_hat


def validate_stationary(
    sde,
    samples,
    grid=None,
    *,
    effective_size: float | None = None,
    alpha: float = 1e-3,
    bins=None,
    n_bootstrap: int = 400,
    seed: int = 0,
    rhat_max: float | None = 1.01,
    ess_c=None,
) -> StationaryReport:
    """Compare samples with the SDE's stationary density; thresholds from each statistic's null law.

    Args:
        sde: an SDE whose ``stationary()`` is a Boltzmann or Gaussian law in 1-D or 2-D
            (``OverdampedLangevin``, ``OrnsteinUhlenbeck``, ``UnderdampedLangevin`` with 1-D ``q``).
        samples: independent draws ``(n,)``/``(n, dim)``, chains ``(n_kept, n_chains, dim)``, or
            :class:`~sde_toolkit.mcmc.Chains`.
        grid: a Fokker–Planck ``Grid``; when given, the histogram on its cells is also compared with
            ``FokkerPlanck(sde, grid).stationary()``.
        effective_size: override the effective sample size (e.g. from your own ESS estimate); the R-hat gate
            still applies to chains.
        alpha: family-wise false-alarm probability of :attr:`StationaryReport.passed` under the null.
        bins: histogram edges for ``tv`` (1-D array, or per-axis tuple); default equal-width bins over the
            reference's ``[1e-4, 1 - 1e-4]`` marginal quantiles, ``~2 n_eff^(1/3)`` per axis in 1-D.
        n_bootstrap: parametric-bootstrap replicates for the ``w1``/``tv`` null laws.
        seed: seed of the bootstrap.
        rhat_max: chains (>= 4 kept samples) whose largest rank-normalized split R-hat exceeds this fail the
            report as "not enough effective samples / chains not mixed"; ``None`` disables the gate (the
            R-hat is still reported).
        ess_c: removed (it was the Sokal window of the earlier within-chain ESS, which overclaimed on chains
            that do not mix); passing it raises ``TypeError``.

    Returns:
        :class:`StationaryReport` (``.passed``, ``.mixing_ok``, ``.to_markdown()``, ``.to_dict()``).
    """
    if ess_c is not None:
        raise TypeError(
            "validate_stationary(ess_c=) is gone: thresholds are now sized by the multi-chain bulk ESS "
            "(st.mcmc.ess(x, 'bulk')); pass effective_size= to override it"
        )
    if rhat_max is not None and not (isinstance(rhat_max, (int, float)) and math.isfinite(rhat_max) and rhat_max > 1):
        raise ValueError(f"rhat_max must be a finite number > 1 or None, got {rhat_max!r}")
    if not (0.0 < alpha < 1.0):
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if int(n_bootstrap) < 20:
        raise ValueError(f"n_bootstrap must be >= 20, got {n_bootstrap}")
    B = int(n_bootstrap)
    ref = _reference(sde)
    dim = ref.dim
    x, n_eff, r_hat = _flatten_samples(samples, dim, effective_size)
    n_int = max(2, int(round(n_eff)))
    n_checks = 3 + (grid is not None)
    a_each = alpha / n_checks
    rng = np.random.default_rng(seed)

    # KS: exact Kolmogorov law at n_eff, Bonferroni over axes
    ks = _ks(ref, x)
    ks_p = float(min(1.0, dim * stats.kstwo.sf(ks, n_int)))
    ks_thr = float(stats.kstwo.isf(a_each / dim, n_int))

    # W1: bootstrap at m <= n_eff, rescaled by the sqrt(n) law of the empirical W1
    w1 = _w1(ref, x)
    m = min(n_int, _W1_BOOT_MAX)
    reps = np.array([_w1(ref, ref.sample(m, rng)) for _ in range(B)]) * math.sqrt(m / n_int)
    w1_thr = _gamma_quantile(reps, a_each)

    # TV of the histogram against exact cell masses: multinomial bootstrap at n_eff
    edges = _auto_edges(ref, n_eff) if bins is None else _check_bins(bins, dim)
    q, q_out = ref.cell_masses(edges)
    p, p_out = _histogram(x, edges)
    tv = _tv_counts(p, p_out, q, q_out)
    tv_thr = _gamma_quantile(_tv_bootstrap(q, q_out, n_int, B, rng), a_each)
    mpos = p > 0
    kl = float(np.sum(p[mpos] * np.log(p[mpos] / np.maximum(q[mpos], 1e-300))))
    if p_out > 0:
        kl += p_out * math.log(p_out / max(q_out, 1e-300))

    tv_fp = tv_fp_thr = fp_ref = None
    if grid is not None:
        from .fokker_planck import FokkerPlanck

        p_fp = np.asarray(FokkerPlanck(sde, grid).stationary(), dtype=np.float64)
        g_edges = _edges_from_centers(grid.centers)
        if len(g_edges) != dim:
            raise ValueError(f"grid has {len(g_edges)} axes, the SDE has dim {dim}")
        vol = float(np.prod([e[1] - e[0] for e in g_edges]))
        q_fp = np.maximum(p_fp * vol, 0.0)
        q_fp = q_fp / q_fp.sum()
        pg, pg_out = _histogram(x, g_edges)
        tv_fp = _tv_counts(pg, pg_out, q_fp, 0.0)
        tv_fp_thr = _gamma_quantile(_tv_bootstrap(q_fp, 0.0, n_int, B, rng), a_each)
        q_ref, q_ref_out = ref.cell_masses(g_edges)
        fp_ref = _tv_counts(q_fp, 0.0, q_ref, q_ref_out)

    return StationaryReport(
        dim=dim,
        n_samples=int(x.shape[0]),
        effective_size=float(n_eff),
        alpha=float(alpha),
        ks=ks,
        ks_pvalue=ks_p,
        ks_threshold=ks_thr,
        w1=w1,
        w1_threshold=w1_thr,
        tv=tv,
        tv_threshold=tv_thr,
        kl=kl,
        tv_fp=tv_fp,
        tv_fp_threshold=tv_fp_thr,
        fp_vs_reference_tv=fp_ref,
        edges=edges,
        rhat=r_hat,
        rhat_max=None if rhat_max is None else float(rhat_max),
    )
