"""Error against evaluations of the few-step samplers with exact scores (the tables of docs/score.md, issue 13).

Two targets pushed through VPSDE(0.1, 20) (2-D): the two-mode mixture of the tests (weights 0.3 / 0.7, means
(-2, 0) and (2, 0.5), covariance 0.25 I) and the eight Gaussians (radius 4 / sqrt 2 ... as in bench_score, variance
0.125). For each sampler and 10, 20, 40, 80 evaluations: ``sampler_error`` at 20,000 samples (mean, covariance and
weight errors, sliced Wasserstein and its floor). Fitted orders (slope of log error against log evaluations):

* deterministic samplers: the RMS distance to the probability-flow ODE solved with rtol = atol = 1e-10 from the
  same 2,000 prior draws (common random numbers: no Monte Carlo noise);
* stochastic samplers: the exact output covariance for the correlated Gaussian of the tests
  (``affine_moments``: each step is affine in (x, z), so the law is propagated without sampling).

Then the log-likelihood error of ``log_likelihood(method="dpmpp_2m")`` against the exact mixture log-density
(300 points of p_eps) against evaluations, next to scipy's RK45 at rtol = atol = 1e-5.

Usage: python experiments/diagnostics/sampler_orders.py [--quick]   (about 2 minutes on 2 cores)
"""

from __future__ import annotations

import argparse

import numpy as np

import sde_toolkit as st
from sde_toolkit.score import GaussianMixtureScore, log_likelihood, sample, sampler_error
from sde_toolkit.score.error import affine_moments
from sde_toolkit.score.samplers import get_sampler

EPS = 1e-3
SAMPLERS = [("ddim", {}, 1, True), ("dpmpp_2m", {}, 1, True), ("edm", {}, 2, True),
            ("ddim", {"eta": 1.0}, 1, False), ("edm", {"churn": 10.0}, 2, False)]


def label(method, opts):
    return method + "".join(f" {k}={v:g}" for k, v in opts.items())


def targets(sde):
    two = GaussianMixtureScore(sde, [0.3, 0.7], [[-2.0, 0.0], [2.0, 0.5]], [0.25 * np.eye(2), 0.25 * np.eye(2)])
    ang = np.arange(8) * np.pi / 4
    c = 4 * np.stack([np.cos(ang), np.sin(ang)], 1) / np.sqrt(2)
    eight = GaussianMixtureScore(sde, np.full(8, 1 / 8), c, np.full(8, 0.125))
    return {"two modes 0.3/0.7": two, "eight Gaussians": eight}


def slope(nfe, err):
    return float(-np.polyfit(np.log(nfe), np.log(err), 1)[0])


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    sde = st.VPSDE(0.1, 20.0, dim=2)
    n = 4000 if a.quick else 20_000
    nfes = (10, 20, 40, 80)
    x_T = np.random.default_rng(0).standard_normal((2000, 2))
    gauss = GaussianMixtureScore(sde, [1.0], [[0.5, -1.0]], [[[1.0, 1.2], [1.2, 2.25]]])
    g_mean, g_cov = gauss.marginal_moments(EPS)
    for tname, target in targets(sde).items():
        ref = sample(sde, target, x_T.shape[0], method="probability_flow", solver="scipy", rtol=1e-10, atol=1e-10,
                     x_T=x_T, eps=EPS)
        print(f"### {tname} (VPSDE 0.1..20, eps = {EPS}, {n:,} samples per row)\n")
        print("| sampler | evals | mean err | cov err | weight err | SW | SW floor | order (fit) |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for method, opts, per, deterministic in SAMPLERS:
            rows, path_err = [], []
            for nfe in nfes:
                ns = nfe // per
                e = sampler_error(sde, method, ns, target=target, n_samples=n, seed=5, eps=EPS, **opts)
                rows.append(e)
                if deterministic:
                    x = sample(sde, target, x_T.shape[0], method=method, n_steps=ns, x_T=x_T, eps=EPS, **opts)
                    path_err.append(float(np.sqrt(np.mean((x - ref) ** 2))))
                else:
                    cls = get_sampler(method)
                    full = {"eta": 0.0, "churn": 0.0, "grid": None, "rho": 7.0, "s_noise": 1.0, **opts}
                    smp = cls.from_options(sde, T=1.0, eps=EPS, n_steps=ns, noise=True, options=full)
                    m, C = affine_moments(smp, smp.target(sde, gauss), np.zeros(2), np.eye(2))
                    path_err.append(float(np.abs(C - g_cov).max()))
            order = slope(nfes, path_err)
            how = "pathwise vs tight ODE" if deterministic else "weak, exact Gaussian moments"
            for i, e in enumerate(rows):
                o = f"{order:.2f} ({how})" if i == 0 else ""
                print(f"| {label(method, opts)} | {e.nfe} | {e.mean_error:.4f} | {e.cov_error:.4f} | "
                      f"{e.weight_error:.4f} | {e.sw:.4f} | {e.sw_floor:.4f} | {o} |")
        se = rows[0]
        print(f"\nMonte Carlo standard errors of an exact sampler at {n:,} samples: mean {se.mean_se:.4f}, "
              f"covariance {se.cov_se:.4f}, weights {se.weight_se:.4f}.\n")
    two = targets(sde)["two modes 0.3/0.7"]
    x = two.sample(300, EPS, seed=0)
    exact = two.logpdf(x, EPS)
    print("### log_likelihood against the exact log-density (two modes, 300 points of p_eps)\n")
    print("| solver | score evals | divergence evals | mean abs err | max abs err |")
    print("|---|---:|---:|---:|---:|")
    info: dict = {}
    lp = log_likelihood(sde, two, x, eps=EPS, prior="exact", info=info)
    print(f"| rk45 rtol=atol=1e-5 | {info['nfev']} | {info['nfev']} | {np.mean(np.abs(lp - exact)):.2e} | "
          f"{np.max(np.abs(lp - exact)):.2e} |")
    errs = []
    for ns in (10, 20, 40, 80, 160):
        info = {}
        lp = log_likelihood(sde, two, x, eps=EPS, prior="exact", method="dpmpp_2m", n_steps=ns, info=info)
        errs.append(np.mean(np.abs(lp - exact)))
        print(f"| dpmpp_2m, logsnr grid | {info['nfe']} | {info['n_div']} | {errs[-1]:.2e} | "
              f"{np.max(np.abs(lp - exact)):.2e} |")
    print(f"\nFitted order of the mean error (20..160 steps): {slope((20, 40, 80, 160), errs[1:]):.2f}")


if __name__ == "__main__":
    main()
