"""ESS per second of Langevin MCMC: sde_toolkit's fused Numba kernels against the baselines a user would write.

Targets: the 2-D Gaussian mixture of the tests and the seed's 1-D density
``V = 0.1 x^2 - log(0.2 + cos^2 2x)``. Methods: MALA and ULA. Implementations, with the same chains, steps,
step size, burn-in and stored samples:

* ``fused``: ``st.mcmc.langevin`` (Numba, per-block streams, thread pool; ``store_energy=False`` like the
  baselines, which keep no energies);
* ``numpy``: a vectorized loop over all chains with the potential's NumPy ``energy``/``grad``;
* ``torch``: a vectorized loop in float64 torch with the gradient from ``torch.autograd`` (as the seed does).

ESS is the within-chain Sokal ESS, ``method="sokal"`` (median over coordinates) of the kept samples; wall time
is the median of ``--repeats`` runs and excludes the fused kernels' first-call compilation, which is reported separately.

Run: ``python experiments/benchmarks/bench_mcmc.py [--chains 1000 --steps 2000 --repeats 3]``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import numba
import numpy as np
import torch

import sde_toolkit as st
from sde_toolkit.mcmc import effective_sample_size

SEED_EXPR = "0.1*x**2 - log(0.2 + cos(2*x)**2)"
MIX_W = np.array([0.35, 0.65])
MIX_M = np.array([[-1.0, 0.0], [1.0, 0.5]])
MIX_C = np.array([[[0.5, 0.2], [0.2, 0.4]], [[0.6, -0.15], [-0.15, 0.35]]])


# ------------------------------------------------------------------------------ numpy baseline
def numpy_sampler(energy, grad, x0, step, n_steps, burn_in, method, seed):
    """Vectorized ULA/MALA over all chains, kT = 1: x' = x - h grad V + sqrt(2h) xi (+ MH for MALA)."""
    rng = np.random.default_rng(seed)
    x = x0.copy()
    g = grad(x)
    v = energy(x) if method == "mala" else None
    out = np.empty((n_steps - burn_in, *x.shape))
    sd = math.sqrt(2.0 * step)
    for s in range(n_steps):
        z = rng.standard_normal(x.shape)
        y = x - step * g + sd * z
        gy = grad(y)
        if method == "mala":
            vy = energy(y)
            r = x - y + step * gy
            log_a = -(vy - v) + 0.5 * np.sum(z * z, 1) - np.sum(r * r, 1) / (4.0 * step)
            acc = np.log(rng.random(x.shape[0])) < log_a
            x = np.where(acc[:, None], y, x)
            g = np.where(acc[:, None], gy, g)
            v = np.where(acc, vy, v)
        else:
            x, g = y, gy
        if s >= burn_in:
            out[s - burn_in] = x
    return out


# ------------------------------------------------------------------------------ torch baseline
def torch_energy_mixture():
    w = torch.tensor(MIX_W, dtype=torch.float64)
    m = torch.tensor(MIX_M, dtype=torch.float64)
    P = torch.linalg.inv(torch.tensor(MIX_C, dtype=torch.float64))
    logn = torch.log(w) - 0.5 * (2 * math.log(2 * math.pi) + torch.logdet(torch.tensor(MIX_C, dtype=torch.float64)))

    def energy(x):
        d = x[:, None, :] - m[None]
        maha = torch.einsum("nkd,kde,nke->nk", d, P, d)
        return -torch.logsumexp(logn[None] - 0.5 * maha, dim=1)

    return energy


def torch_energy_seed(x):
    return (0.1 * x**2 - torch.log(0.2 + torch.cos(2 * x) ** 2)).sum(1)


def torch_sampler(energy, x0, step, n_steps, burn_in, method, seed):
    """The same loop in torch float64, gradient by autograd (one backward pass per step)."""
    gen = torch.Generator().manual_seed(seed)

    def value_and_grad(x):
        x = x.detach().requires_grad_(True)
        e = energy(x)
        (g,) = torch.autograd.grad(e.sum(), x)
        return e.detach(), g

    x = torch.tensor(x0, dtype=torch.float64)
    v, g = value_and_grad(x)
    out = torch.empty((n_steps - burn_in, *x.shape), dtype=torch.float64)
    sd = math.sqrt(2.0 * step)
    for s in range(n_steps):
        z = torch.randn(x.shape, generator=gen, dtype=torch.float64)
        y = x - step * g + sd * z
        vy, gy = value_and_grad(y)
        if method == "mala":
            r = x - y + step * gy
            log_a = -(vy - v) + 0.5 * (z * z).sum(1) - (r * r).sum(1) / (4.0 * step)
            acc = torch.log(torch.rand(x.shape[0], generator=gen, dtype=torch.float64)) < log_a
            x = torch.where(acc[:, None], y, x)
            g = torch.where(acc[:, None], gy, g)
            v = torch.where(acc, vy, v)
        else:
            x, g, v = y, gy, vy
        if s >= burn_in:
            out[s - burn_in] = x
    return out.numpy()


# ------------------------------------------------------------------------------ harness
def timed(repeats, fn, *args, **kwargs):
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn(*args, **kwargs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--burn-in", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n, n_steps, burn, R = args.chains, args.steps, args.burn_in, args.repeats

    targets = {
        "mixture-2d": (st.potentials.GaussianMixture(MIX_W, MIX_M, MIX_C), torch_energy_mixture(), 0.15, 2),
        "seed-1d": (st.potentials.from_expression(SEED_EXPR), torch_energy_seed, 0.05, 1),
    }
    print(
        f"# MCMC benchmark: {n} chains x {n_steps} steps (burn-in {burn}), median of {R} runs\n"
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numba threads "
        f"{numba.config.NUMBA_NUM_THREADS}, torch threads {torch.get_num_threads()}, numpy {np.__version__}, "
        f"numba {numba.__version__}, torch {torch.__version__}\n"
    )
    header = (
        "| target | method | impl | wall s | median ESS | ESS/s | x numpy | x torch | accept | compile s |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = []
    for tname, (pot, tenergy, h, d) in targets.items():
        x0 = np.random.default_rng(0).normal(scale=1.5, size=(n, d))
        for method in ("mala", "ula"):
            kw = dict(step=h, n_steps=n_steps, burn_in=burn, method=method, seed=1, store_energy=False)
            compile_s = st.mcmc.langevin(pot, x0, **kw).compile_time
            t_f, ch = timed(R, st.mcmc.langevin, pot, x0, **kw)
            t_n, xs_n = timed(R, numpy_sampler, pot.energy, pot.grad, x0, h, n_steps, burn, method, 1)
            t_t, xs_t = timed(R, torch_sampler, tenergy, x0, h, n_steps, burn, method, 1)
            res = {
                "fused": (t_f, ch.samples),
                "numpy": (t_n, xs_n),
                "torch": (t_t, xs_t),
            }
            ess_s = {}
            for impl, (t, xs) in res.items():
                # the within-chain Sokal ESS the published tables (docs/benchmarks-mcmc.md) were made with, kept so
                # the numbers stay comparable; it is the same estimator for every implementation
                ess = float(np.median(effective_sample_size(xs, method="sokal")))
                ess_s[impl] = (t, ess, ess / t)
            for impl in ("fused", "numpy", "torch"):
                t, ess, rate = ess_s[impl]
                acc = f"{ch.acceptance_rate:.3f}" if (impl == "fused" and method == "mala") else ""
                comp = f"{compile_s:.2f}" if impl == "fused" else ""
                rows.append(
                    f"| {tname} | {method} | {impl} | {t:.3f} | {ess:.0f} | {rate:.0f} | "
                    f"{rate / ess_s['numpy'][2]:.1f} | {rate / ess_s['torch'][2]:.1f} | {acc} | {comp} |"
                )
            print(f"  done {tname} {method}", flush=True)
    print()
    print(header)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
