"""Seed sweep of the core statistical checks (TESTING.md check 38).

Re-runs the *statistics* of the fixed-seed statistical tests over many seeds, with the tests' own parameters
and thresholds, and reports per check the pass rate and the distribution of the statistic relative to its
threshold. Each check is a function ``check_<name>(seed) -> (passed, statistic, threshold)``. Where a test
combines several criteria, ``statistic``/``threshold`` is the criterion closest to failing, normalised so that a
pass means ``statistic < threshold`` (for negative controls, ``statistic > threshold``):

* moment criteria: ``|z|`` against the tests' 5 (or the variance deviation against ``5 sqrt(2/n)``);
* KS criteria: ``-log10(p)`` against ``-log10(1e-3) = 3``;
* slope criteria: ``|slope - expected|`` against 0.15.

Usage::

    python experiments/diagnostics/seed_sweep.py [--seeds N] [--checks a,b] [--out FILE.md] [--seed0 S]

``--seeds`` caps every check; a check's own default N (``CHECKS[name].n_default``) is used when ``--seeds`` is
not given and ``--full`` is not set, so that each check runs in about three minutes on the 2-core CI machine.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

import sde_toolkit as st
from sde_toolkit.integrate import brownian_increments
from sde_toolkit.score import GaussianMixtureScore, sample

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "mcmc"))
from mcmc_targets import MIX_COVS, MIX_MEANS, MIX_WEIGHTS, mixture_moments  # noqa: E402
from problems import (  # noqa: E402
    GBM_U0,
    double_well_1d,
    gbm,
    gbm_exact,
    ou_em_moments,
    ou_exact_moments,
)

ALPHA = 1e-3
KS_THR = -math.log10(ALPHA)
SEED_V = "0.1*x**2 - log(0.2 + cos(2*x)**2)"
FINE = 10
LEVELS = range(3, 9)

# name of the criterion that was closest to failing in the last call of each check (for the report)
LAST_WORST: dict[str, str] = {}


def _nlp(p: float) -> float:
    return -math.log10(max(p, 1e-300))


def _worst(name: str, comps: list[tuple[str, float, float]]) -> tuple[bool, float, float]:
    """Pass iff every ``stat < thr``; return the component with the largest ``stat / thr``."""
    label, s, t = max(comps, key=lambda c: c[1] / c[2])
    LAST_WORST[name] = label
    return all(c[1] < c[2] for c in comps), float(s), float(t)


def _moment_comps(x: np.ndarray, mean: float, var: float, n_se: float = 5.0) -> list[tuple[str, float, float]]:
    """The tests' ``_moments_ok``: |mean - m| < 5 sqrt(v/n) and |var/v - 1| < 5 sqrt(2/n) (var with ddof=0)."""
    n = x.size
    return [("mean", abs(x.mean() - mean), n_se * math.sqrt(var / n)),
            ("var", abs(x.var() / var - 1), n_se * math.sqrt(2 / n))]


def _slope(hs, errs) -> float:
    return float(np.polyfit(np.log(hs), np.log(errs), 1)[0])


def _coarse(dw_fine: np.ndarray, level: int) -> np.ndarray:
    r = 2 ** (FINE - level)
    n_steps, n, m = dw_fine.shape
    return dw_fine.reshape(n_steps // r, r, n, m).sum(axis=1)


# ------------------------------------------------------------------------------------------------ integrators
def check_em_law_coarse(seed: int):
    """Check 5 (test_em_reproduces_its_discrete_law_at_coarse_step): OU theta=sigma=x0=1, h=0.1, T=2, n=1e5;
    mean/var within 5 SE of EM's discrete law and KS p > 1e-3 of the standardised X_T."""
    n, h, T = 100_000, 0.1, 2.0
    sde = st.OrnsteinUhlenbeck(1.0, 1.0)
    x = st.simulate(sde, np.ones((n, 1)), t1=T, dt=h, seed=seed, save_every=10**6, progress=False).final[:, 0]
    m, v = ou_em_moments(1.0, 1.0, 1.0, h, int(round(T / h)))
    p = stats.kstest((x - m) / math.sqrt(v), "norm").pvalue
    return _worst("em_law_coarse", _moment_comps(x, m, v) + [("ks", _nlp(p), KS_THR)])


def check_em_law_power(seed: int):
    """Negative control of check 5: the same EM sample against the *exact* OU law (5 % variance gap) must fail
    the moment test. Pass = detected; statistic = var deviation / its 5-SE band (must be > 1)."""
    n = 100_000
    sde = st.OrnsteinUhlenbeck(1.0, 1.0)
    x = st.simulate(sde, np.ones((n, 1)), t1=2.0, dt=0.1, seed=seed, save_every=100, progress=False).final[:, 0]
    m, v = ou_exact_moments(1.0, 1.0, 1.0, 2.0)
    comps = _moment_comps(x, m, v)
    r = max(c[1] / c[2] for c in comps)
    LAST_WORST["em_law_power"] = "var"
    return r > 1.0, r, 1.0


def check_exact_transition(seed: int):
    """Check 7 (test_exact_method_matches_transition_at_any_step): OU theta=0.8, sigma=1.3, mu=0.5, x0=2,
    method='exact', three steps of h in {0.01, 1, 10}, n=1e5; moments 5 SE and KS p > 1e-3 at every h."""
    theta, sigma, mu, x0 = 0.8, 1.3, 0.5, 2.0
    sde = st.OrnsteinUhlenbeck(theta, sigma, mu=mu)
    n = 100_000
    comps = []
    for k, h in enumerate((0.01, 1.0, 10.0)):
        x = st.simulate(sde, np.full((n, 1), x0), t1=3 * h, dt=h, method="exact", seed=seed * 3 + k,
                        progress=False).final[:, 0]
        m = mu + (x0 - mu) * math.exp(-3 * theta * h)
        v = sigma**2 * -math.expm1(-6 * theta * h) / (2 * theta)
        comps += [(f"{lab}@h={h:g}", s, t) for lab, s, t in _moment_comps(x, m, v)]
        comps.append((f"ks@h={h:g}", _nlp(stats.kstest((x - m) / math.sqrt(v), "norm").pvalue), KS_THR))
    return _worst("exact_transition", comps)


def check_strong_order_gbm(seed: int):
    """Check 2 (test_strong_order_gbm[euler_maruyama]): prob_sde_linear, 16000 paths (1000 before the first
    sweep showed 97 % passes), fine grid 2^-10 summed (CRN) to h=2^-3..2^-8; |slope - 0.5| < 0.15."""
    sde = gbm()
    n = 16000
    dw = brownian_increments(seed, 2**FINE, n, 1, 2.0**-FINE)
    exact = gbm_exact(1.0, dw.sum(axis=0)[:, 0])
    hs, errs = [], []
    for lev in LEVELS:
        h = 2.0**-lev
        x = st.simulate(sde, np.full((n, 1), GBM_U0), t1=1.0, dt=h, increments=_coarse(dw, lev),
                        save_every=10**6, progress=False).final[:, 0]
        hs.append(h)
        errs.append(np.sqrt(np.mean((x - exact) ** 2)))
    return _worst("strong_order_gbm", [("slope", abs(_slope(hs, errs) - 0.5), 0.15)])


def _ou_levels(n: int, seed: int):
    sde = st.OrnsteinUhlenbeck(1.0, 1.0)
    dw = brownian_increments(seed, 2**FINE, n, 1, 2.0**-FINE)
    x0 = np.ones((n, 1))
    ref = st.simulate(sde, x0, t1=1.0, dt=2.0**-FINE, increments=dw, save_every=10**6, progress=False).final[:, 0]
    out = {}
    for lev in LEVELS:
        h = 2.0**-lev
        out[h] = st.simulate(sde, x0, t1=1.0, dt=h, increments=_coarse(dw, lev), save_every=10**6,
                             progress=False).final[:, 0]
    return ref, out


def check_strong_order_ou(seed: int):
    """Check 3 (test_em_strong_order_one_on_ou): OU theta=sigma=x0=1, T=1, 200 paths, reference EM at 2^-10 on
    the same increments; |slope - 1| < 0.15 (the test's 0.5-exclusion |slope - 0.5| > 0.3 is implied)."""
    ref, out = _ou_levels(200, seed)
    hs = sorted(out)
    errs = [np.sqrt(np.mean((out[h] - ref) ** 2)) for h in hs]
    return _worst("strong_order_ou", [("slope", abs(_slope(hs, errs) - 1.0), 0.15)])


def check_weak_order_ou(seed: int):
    """Check 6 (test_em_weak_order_one_on_ou, Monte Carlo part): 1000 paths, CRN, |slope - 1| < 0.15."""
    ref, out = _ou_levels(1000, seed)
    m_ref, _ = ou_em_moments(1.0, 1.0, 1.0, 2.0**-FINE, 2**FINE)
    m_ex, _ = ou_exact_moments(1.0, 1.0, 1.0, 1.0)
    hs = sorted(out)
    errs = [abs(np.mean(out[h] - ref) + (m_ref - m_ex)) for h in hs]
    return _worst("weak_order_ou", [("slope", abs(_slope(hs, errs) - 1.0), 0.15)])


_DW_TARGET = None


def _law_comps(x: np.ndarray, target) -> list[tuple[str, float, float]]:
    """The tests' ``_law_ok``: KS p > 1e-3 against the quadrature CDF; mean and E[x^2] within 5 SE."""
    p = stats.kstest(x, target.cdf).pvalue
    m1 = target.moment(lambda g: g)
    m2 = target.moment(lambda g: g**2)
    m4 = target.moment(lambda g: g**4)
    se1 = math.sqrt((m2 - m1**2) / x.size)
    se2 = math.sqrt((m4 - m2**2) / x.size)
    return [("ks", _nlp(p), KS_THR), ("mean", abs(x.mean() - m1), 5 * se1), ("m2", abs(np.mean(x**2) - m2), 5 * se2)]


def check_langevin_double_well(seed: int):
    """Check 9 (test_langevin_double_well_law_and_negative_control, positive part): U=(x^2-1)^2, kT=1,
    20,000 chains started from exact samples, dt=2e-3, T=5; KS p > 1e-3, mean and E[x^2] within 5 SE."""
    global _DW_TARGET
    sde = double_well_1d()
    if _DW_TARGET is None:
        _DW_TARGET = sde.stationary()
    x0 = _DW_TARGET.sample(20_000, seed=seed)
    x = st.simulate(sde, x0, t1=5.0, dt=2e-3, seed=seed + 1, save_every=10**6, progress=False).final[:, 0]
    return _worst("langevin_double_well", _law_comps(x, _DW_TARGET))


# ------------------------------------------------------------------------------------------------ validate
_SEED_SDE = None


def _seed_sde():
    global _SEED_SDE
    if _SEED_SDE is None:
        _SEED_SDE = st.OverdampedLangevin(st.potentials.from_expression(SEED_V))
    return _SEED_SDE


def check_validate_null(seed: int):
    """tests/test_validate.py::test_exact_samples_pass_wrong_temperature_fails (positive part): 20,000 exact
    samples of the seed density; validate_stationary (alpha=1e-3 family-wise, 400 bootstrap replicates, the
    bootstrap seeded with the sweep seed) must pass. Statistic: the ks/w1/tv statistic closest to its threshold."""
    sde = _seed_sde()
    r = st.validate_stationary(sde, sde.stationary().sample(20_000, seed=seed), seed=seed)
    comps = [(k, s, t) for k, (s, t, _) in r.checks().items()]
    ok, s, t = _worst("validate_null", comps)
    return bool(r.passed), s, t


def check_validate_power(seed: int):
    """Negative control of the same test: 20,000 exact samples at kT=1.5 must fail, and every statistic must see
    it (the test asserts ``all(not ok ...)``). Pass = all detect; statistic = smallest stat/threshold (> 1)."""
    sde = _seed_sde()
    hot = st.OverdampedLangevin(sde.potential, kT=1.5).stationary().sample(20_000, seed=seed)
    r = st.validate_stationary(sde, hot, seed=seed)
    label, s, t = min(((k, s, t) for k, (s, t, _) in r.checks().items()), key=lambda c: c[1] / c[2])
    LAST_WORST["validate_power"] = label
    return (not r.passed) and all(not ok for _, _, ok in r.checks().values()), float(s), float(t)


# ------------------------------------------------------------------------------------------------ MCMC
_MIXTURE = None


def _mixture_comps(method: str, step: float, seed: int) -> list[tuple[str, float, float]]:
    """tests/mcmc/test_mcmc_samplers.py: 4000 independent chains from N(0, 4 I), 1500 steps, final states;
    z-scores of the mean and of each covariance entry against the exact mixture moments, |z| < 5."""
    global _MIXTURE
    if _MIXTURE is None:
        _MIXTURE = st.potentials.GaussianMixture(MIX_WEIGHTS, MIX_MEANS, MIX_COVS)
    n, n_steps = 4000, 1500
    x0 = np.random.default_rng(seed).normal(scale=2.0, size=(n, 2))
    ch = st.mcmc.langevin(_MIXTURE, x0, step=step, n_steps=n_steps, method=method, seed=seed, thin=n_steps,
                          progress=False)
    x = ch.samples[-1]
    mean, cov = mixture_moments()
    zm = (x.mean(0) - mean) / (x.std(0, ddof=1) / np.sqrt(n))
    c = x - x.mean(0)
    comps = [(f"mean[{i}]", abs(zm[i]), 5.0) for i in range(2)]
    for i in range(2):
        for j in range(2):
            prod = c[:, i] * c[:, j]
            comps.append((f"cov[{i}{j}]", abs((prod.mean() - cov[i, j]) / (prod.std(ddof=1) / np.sqrt(n))), 5.0))
    if ch.diverged.any():
        comps.append(("diverged", 1.0, 0.5))
    return comps


def check_mala_mixture(seed: int):
    """test_mixture_moments_from_independent_chains[mala-0.2]: all 6 |z| < 5 and no divergence."""
    return _worst("mala_mixture", _mixture_comps("mala", 0.2, seed))


def check_baoab_mixture(seed: int):
    """test_mixture_moments_from_independent_chains[baoab-0.1]: all 6 |z| < 5 and no divergence."""
    return _worst("baoab_mixture", _mixture_comps("baoab", 0.1, seed))


def check_ula_power(seed: int):
    """test_ula_large_step_fails_the_same_moment_check: ULA at h=0.3 must give max |z_cov| > 5 (pass = detected)."""
    comps = [c for c in _mixture_comps("ula", 0.3, seed) if c[0].startswith("cov")]
    label, s, t = max(comps, key=lambda c: c[1])
    LAST_WORST["ula_power"] = label
    return s > t, float(s), float(t)


# ------------------------------------------------------------------------------------------------ score / DDPM
_DDPM = None


def _ddpm_comps(variance: str, seed: int):
    global _DDPM
    if _DDPM is None:
        sde = st.VPSDE.from_ddpm_betas(np.linspace(1e-4, 0.02, 1000), mapping="exact")
        _DDPM = sde, GaussianMixtureScore(sde, [1.0], [[0.7]], [[[2.25]]])
    sde, g = _DDPM
    n = 100_000
    x = sample(sde, g, n, method="ancestral", n_steps=1000, variance=variance, seed=seed)[:, 0]
    return [(f"mean[{variance}]", abs(x.mean() - 0.7), 5 * 1.5 / math.sqrt(n)),
            (f"var[{variance}]", abs(x.var() / 2.25 - 1), 5 * math.sqrt(2 / n))]


def check_ddpm_ancestral_beta(seed: int):
    """Check 30 (test_ancestral_exact_score_moments_1e5[beta]): linear betas 1e-4..0.02, T=1000, exact score of
    N(0.7, 2.25), 1e5 samples; |mean - 0.7| < 5 SE and |var/2.25 - 1| < 5 sqrt(2/n)."""
    return _worst("ddpm_ancestral_beta", _ddpm_comps("beta", seed))


def check_ddpm_ancestral_posterior(seed: int):
    """Check 30 (test_ancestral_exact_score_moments_1e5[posterior]): as above with the posterior variance."""
    return _worst("ddpm_ancestral_posterior", _ddpm_comps("posterior", seed))


# ------------------------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Check:
    fn: Callable[[int], tuple[bool, float, float]]
    n_default: int  # seeds that fit in about 3 minutes on 2 cores
    test: str
    failure: str
    negative_control: bool = False


CHECKS: dict[str, Check] = {
    "em_law_coarse": Check(check_em_law_coarse, 200,
                           "integrate/test_em_statistics.py::test_em_reproduces_its_discrete_law_at_coarse_step",
                           "EM no longer reproduces its own discrete OU law (drift time level, noise variance, RNG)"),
    "em_law_power": Check(check_em_law_power, 200, "same test, negative control (exact law)",
                          "the 5-SE moment test cannot see EM's 5 % variance bias at h = 0.1", True),
    "exact_transition": Check(check_exact_transition, 200,
                              "integrate/test_em_statistics.py::test_exact_method_matches_transition_at_any_step",
                              "the exact OU sampler's transition mean/variance is wrong at some h"),
    "strong_order_gbm": Check(check_strong_order_gbm, 200, "integrate/test_em_statistics.py::test_strong_order_gbm",
                              "EM strong order on GBM outside 0.5 +- 0.15 (noise scaling, CRN, Ito/Strat)"),
    "strong_order_ou": Check(check_strong_order_ou, 200,
                             "integrate/test_em_statistics.py::test_em_strong_order_one_on_ou",
                             "EM strong order on additive-noise OU outside 1.0 +- 0.15"),
    "weak_order_ou": Check(check_weak_order_ou, 200, "integrate/test_em_statistics.py::test_em_weak_order_one_on_ou",
                           "EM weak order on OU outside 1.0 +- 0.15 (biased mean)"),
    "langevin_double_well": Check(check_langevin_double_well, 200,
                                  "integrate/test_em_statistics.py::test_langevin_double_well_law_and_negative_control",
                                  "Langevin final states do not follow exp(-U) (gradient sign/factor, noise scale)"),
    "validate_null": Check(check_validate_null, 200,
                           "test_validate.py::test_exact_samples_pass_wrong_temperature_fails",
                           "validate_stationary rejects exact samples: a false alarm (thresholds too tight)"),
    "validate_power": Check(check_validate_power, 200, "same test, negative control (kT = 1.5)",
                            "some statistic of validate_stationary misses a 50 % temperature error", True),
    "mala_mixture": Check(check_mala_mixture, 200, "mcmc/test_mcmc_samplers.py::test_mixture_moments_...[mala-0.2]",
                          "MALA final states' mean/covariance off the mixture's by > 5 SE"),
    "baoab_mixture": Check(check_baoab_mixture, 200, "mcmc/test_mcmc_samplers.py::test_mixture_moments_...[baoab-0.1]",
                           "BAOAB final states' mean/covariance off the mixture's by > 5 SE"),
    "ula_power": Check(check_ula_power, 200, "mcmc/test_mcmc_samplers.py::test_ula_large_step_fails_...",
                       "the 5-SE covariance test cannot see ULA's O(h) bias at h = 0.3", True),
    "ddpm_ancestral_beta": Check(check_ddpm_ancestral_beta, 40,
                                 "score/test_samplers.py::test_ancestral_exact_score_moments_1e5[beta]",
                                 "DDPM ancestral sampling with the exact score misses N(0.7, 2.25) (beta variance)"),
    "ddpm_ancestral_posterior": Check(check_ddpm_ancestral_posterior, 40,
                                      "score/test_samplers.py::test_ancestral_exact_score_moments_1e5[posterior]",
                                      "as above with the posterior variance (t indexing, alpha_bar at t = 0)"),
}


@dataclass
class SweepResult:
    name: str
    seeds: list[int]
    passed: np.ndarray
    ratio: np.ndarray  # statistic / threshold
    worst_label: list[str]
    seconds: float


def run_check(name: str, seeds: list[int], verbose: bool = True) -> SweepResult:
    chk = CHECKS[name]
    chk.fn(seeds[0])  # warm-up (JIT compilation, quadrature caches); not counted
    t0 = time.perf_counter()
    passed, ratio, labels = [], [], []
    for s in seeds:
        ok, stat, thr = chk.fn(s)
        passed.append(bool(ok))
        ratio.append(stat / thr if thr else math.inf)
        labels.append(LAST_WORST.get(name, ""))
    res = SweepResult(name, seeds, np.array(passed), np.array(ratio), labels, time.perf_counter() - t0)
    if verbose:
        print(f"{name:26s} n={len(seeds):4d} pass={res.passed.mean():7.2%} "
              f"ratio q50={np.median(res.ratio):.3f} max={res.ratio.max():.3f} min={res.ratio.min():.3f} "
              f"({res.seconds:.0f} s)", flush=True)
    return res


def _wilson_upper_fail(k: int, n: int, z: float = 1.96) -> float:
    """Upper 95 % Wilson bound on the failure rate given k failures in n."""
    p = k / n
    den = 1 + z * z / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + half) / den


def to_markdown(results: list[SweepResult]) -> str:
    lines = [
        "| check | test | seeds | pass rate | 95 % upper bound on failure rate | statistic/threshold median | "
        "worst ratio (seed, criterion) | s | what a failure means |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        chk = CHECKS[r.name]
        n, k = len(r.seeds), int((~r.passed).sum())
        # the worst seed: largest ratio for ordinary checks, smallest for negative controls
        i = int(np.argmin(r.ratio)) if chk.negative_control else int(np.argmax(r.ratio))
        kind = " (negative control: must exceed 1)" if chk.negative_control else ""
        lines.append(
            f"| `{r.name}`{kind} | `{chk.test}` | {n} | {r.passed.mean():.1%} ({n - k}/{n}) | "
            f"{_wilson_upper_fail(k, n):.1%} | {np.median(r.ratio):.3f} | {r.ratio[i]:.3f} "
            f"(seed {r.seeds[i]}, {r.worst_label[i]}) | {r.seconds:.0f} | {chk.failure} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=None,
                    help="seeds per check (default 200, or each check's 3-minute N with --budget)")
    ap.add_argument("--budget", action="store_true", help="use each check's own n_default instead of 200")
    ap.add_argument("--seed0", type=int, default=1000, help="first seed (seeds are seed0, seed0+1, ...)")
    ap.add_argument("--checks", default=",".join(CHECKS), help="comma-separated subset of: " + ", ".join(CHECKS))
    ap.add_argument("--out", default=None, help="write the markdown table to this file")
    args = ap.parse_args(argv)
    names = [c.strip() for c in args.checks.split(",") if c.strip()]
    unknown = [c for c in names if c not in CHECKS]
    if unknown:
        ap.error(f"unknown checks {unknown}; choose from {list(CHECKS)}")
    results = []
    for name in names:
        n = args.seeds if args.seeds is not None else (CHECKS[name].n_default if args.budget else 200)
        results.append(run_check(name, list(range(args.seed0, args.seed0 + n))))
    md = to_markdown(results)
    print(md)
    if args.out:
        Path(args.out).write_text(md)
    below = [r.name for r in results if r.passed.mean() < 0.995]
    if below:
        print("below 99.5 %:", ", ".join(below))
    return 1 if below else 0


if __name__ == "__main__":
    raise SystemExit(main())
