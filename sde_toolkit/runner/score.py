"""Experiments that need torch: ``ddpm`` and ``mcmc_vs_score`` (loaded by :mod:`sde_toolkit.runner` only when such a
kind is run).

* ``ddpm``: train a score network on a toy data set and sample it (``[score]``).
* ``mcmc_vs_score``: Langevin MCMC with the exact score, with a learned score, MALA, reverse-SDE sampling with a
  learned VP-SDE score and the FP stationary density, side by side (``[compare]``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from .. import plotting
from ..config import ConfigError
from ._context import ExperimentContext, markdown_table

__all__ = ["exp_ddpm", "exp_mcmc_vs_score"]

SEED_EXPRESSION = "0.1*x**2 - log(0.2 + cos(2*x)**2)"


def exp_ddpm(ctx: ExperimentContext) -> None:
    from ..score.experiments import run_ddpm_spiral

    sc = ctx.cfg.get("score", {})
    if sc.get("dataset", "spiral") != "spiral":
        raise ConfigError(f"dataset {sc['dataset']!r}: the ddpm experiment trains on 'spiral'", "score", "dataset")
    ctx.stage(f"training the DDPM score network ({sc.get('steps', 4000)} steps) and sampling it")
    metrics = run_ddpm_spiral(ctx.outdir, steps=sc.get("steps", 4000), seed=sc.get("seed", 0),
                              n_samples=sc.get("n_samples", 5000), n_sample_steps=sc.get("n_steps", 1000),
                              progress=bool(ctx.progress))
    ctx.metrics["ddpm"] = metrics
    # the same network drives the reverse SDE through simulate, whose trajectory streams into H5MD
    import torch

    from ..metrics import sliced_wasserstein
    from ..score import TorchScore, load_checkpoint, sample

    net, sde, _ = load_checkpoint(ctx.outdir / "model.pt")
    ctx.stage("reverse-SDE sampling with the trained network into reverse_sde.h5")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        h5 = ctx.outdir / "reverse_sde.h5"
        xs = sample(sde, TorchScore(net, sde), int(sc.get("n_samples", 5000)), method="euler_maruyama",
                    n_steps=int(sc.get("n_steps", 1000)), seed=int(sc.get("seed", 0)) + 7, out=h5, overwrite=True,
                    save_every=max(1, int(sc.get("n_steps", 1000)) // 10))
        wall = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    from ..datasets import spiral

    fresh = spiral(len(xs), seed=int(sc.get("seed", 0)) + 1000)
    ctx.data.append(h5)
    metrics["reverse_sde_sliced_wasserstein"] = sliced_wasserstein(xs, fresh)
    metrics["reverse_sde_seconds"] = wall
    anc = np.load(ctx.outdir / "samples.npy") if (ctx.outdir / "samples.npy").exists() else None
    panels = {"fresh data": fresh}
    if anc is not None:
        panels["ancestral (DDPM) samples"] = anc
    panels["reverse-SDE samples"] = xs
    plotting.scatter_2d(panels, ctx.figure("samples_vs_data"), title="spiral: data and generated samples")
    for name in ("reverse_process", "loss"):
        p = ctx.outdir / f"{name}.png"
        if p.exists():
            dest = ctx.figure(name)
            p.replace(dest)
    floor = metrics.get("sliced_wasserstein_noise_floor")
    if floor:
        for label, key in (("DDPM ancestral samples", "sliced_wasserstein"),
                           ("reverse-SDE samples", "reverse_sde_sliced_wasserstein")):
            if metrics.get(key) is not None:
                r = metrics[key] / floor
                ctx.verdict(f"{label}: {'PASSED' if r < 2 else 'FAILED'} (sliced Wasserstein {metrics[key]:.4f} = "
                            f"{r:.2f} x the noise floor of two fresh data sets {floor:.4f}; threshold 2 x).")
    rows = [{"metric": k, "value": v} for k, v in metrics.items() if isinstance(v, (int, float))]
    ctx.section("DDPM on the spiral",
                "A VP-SDE (beta 0.1..20) discretized on 1,000 steps is DDPM; the network is trained with the "
                "epsilon-loss and sampled by the ancestral sampler. Sample quality is the sliced Wasserstein "
                "distance and MMD to fresh data, next to the same distances between two fresh data sets "
                "(the noise floor).\n\n" + markdown_table(rows))


def _target(name: str):
    from ..sde.potentials import GaussianMixture, from_expression

    if name == "seed_1d":
        return from_expression(SEED_EXPRESSION), "seed density exp(-(0.1x^2 - log(0.2 + cos^2 2x)))"
    if name == "gaussian_mixture_2d":
        pot = GaussianMixture([0.4, 0.6], [[-1.5, 0.0], [1.5, 0.5]],
                              [[[0.35, 0.15], [0.15, 0.35]], [[0.3, -0.1], [-0.1, 0.25]]])
        return pot, "2-D Gaussian mixture (2 correlated components)"
    raise ConfigError(f"unknown target {name!r}; choose 'seed_1d' or 'gaussian_mixture_2d'", "compare", "targets")


def _ess_total(chains) -> float:
    """Effective sample size over all chains (the smallest over coordinates)."""
    return float(np.min(np.asarray(chains.ess())))


def exp_mcmc_vs_score(ctx: ExperimentContext) -> None:
    import torch

    from ..fokker_planck import FokkerPlanck, Grid
    from ..mcmc import langevin
    from ..score import ScoreMLP, TorchScore, sample, train
    from ..sde import VPSDE, OverdampedLangevin
    from ..validate import validate_stationary

    cp = ctx.cfg.get("compare", {})
    seed = int(cp.get("seed", 0))
    n_chains, n_steps, step = int(cp["n_chains"]), int(cp["n_steps"]), float(cp["step"])
    torch.set_num_threads(1)  # small MLPs: one thread avoids OpenMP oversubscription next to Numba's pool
    all_rows = []
    for ti, tname in enumerate(cp["targets"]):
        pot, label = _target(tname)
        dim = pot.dim or 1
        lsde = OverdampedLangevin(pot, kT=1.0, dim=dim)
        stat = lsde.stationary()
        rng = np.random.default_rng(seed + 100 * ti)
        data = stat.sample(20000, seed=rng)
        x0 = data[rng.integers(0, len(data), n_chains)] + 0.5 * rng.standard_normal((n_chains, dim))
        rows: list[dict[str, Any]] = []
        finals: dict[str, np.ndarray] = {}

        def record(name, final, wall, ess_total, note="", n_eff=None, rows=rows, finals=finals, lsde=lsde, tname=tname):
            rep = validate_stationary(lsde, final, effective_size=n_eff)
            finals[name] = final
            rows.append({"target": tname, "method": name, "KS": rep.ks, "W1": rep.w1, "TV": rep.tv,
                         "TV threshold": rep.tv_threshold, "passed": rep.passed, "wall time (s)": wall, "ESS/s": ess_total / max(wall, 1e-9),
                         "note": note})

        burn = n_steps // 2
        thin = max(1, (n_steps - burn) // 50)
        # ULA and MALA with the exact score (fused Numba kernels)
        for method in ("ula", "mala"):
            ctx.stage(f"{tname}: {method.upper()} with the exact score, {n_chains} chains x {n_steps} steps")
            ch = langevin(pot, x0, step=step, n_steps=n_steps, method=method, seed=seed + ti, burn_in=burn,
                          thin=thin, progress=ctx.progress, store_energy=False)
            ess = _ess_total(ch)
            note = f"acceptance {ch.acceptance_rate:.3f}" if method == "mala" else "bias O(step)"
            record(f"{method.upper()} exact score", ch.final_position, ch.wall_time, ess, note)
        # a VP-SDE score learned by denoising score matching on exact samples
        vp = VPSDE(0.1, 20.0, dim=dim)
        net = ScoreMLP(dim, hidden=128, depth=3, seed=seed)
        ctx.stage(f"{tname}: training the VP-SDE score network ({cp['train_steps']} steps)")
        t0 = time.perf_counter()
        train(net, vp, data, steps=int(cp["train_steps"]), batch_size=512, lr=2e-3, seed=seed, progress=bool(ctx.progress))
        train_s = time.perf_counter() - t0
        score = TorchScore(net, vp)
        # ULA needs the score of the data itself: a second network trained by DSM at small noise only,
        # t in [t_small / 2, 2 t_small] where the VP marginal std is about score_noise
        s_small = float(cp["score_noise"])
        B = -math.log1p(-s_small**2)
        b0, b1 = vp.beta_min, vp.beta_max
        t_small = (-b0 + math.sqrt(b0 * b0 + 2 * (b1 - b0) * B)) / (b1 - b0)
        net_small = ScoreMLP(dim, hidden=128, depth=3, seed=seed + 1)
        ctx.stage(f"{tname}: training the small-noise score network ({cp['train_steps']} steps)")
        t0 = time.perf_counter()
        train(net_small, vp, data, steps=int(cp["train_steps"]), batch_size=512, lr=2e-3, seed=seed + 1,
              eps=0.5 * t_small, T=2.0 * t_small, progress=bool(ctx.progress))
        train_small_s = time.perf_counter() - t0
        score_small = TorchScore(net_small, vp)

        def learned(x, t_small=t_small, score=score_small):
            return score(x, t_small)

        ctx.stage(f"{tname}: ULA with the learned score")
        ch = langevin(learned, x0, step=step, n_steps=n_steps, method="ula", seed=seed + ti, burn_in=burn,
                      thin=thin, progress=ctx.progress)
        ess = _ess_total(ch)
        record("ULA learned score", ch.final_position, ch.wall_time, ess,
               f"DSM net at noise std {s_small:g} (t = {t_small:.3g}); training {train_small_s:.1f} s")
        # reverse-SDE sampling with the learned score: independent samples
        ctx.stage(f"{tname}: reverse VP-SDE sampling ({cp['sample_steps']} steps)")
        t0 = time.perf_counter()
        xs = sample(vp, score, n_chains, method="euler_maruyama", n_steps=int(cp["sample_steps"]), seed=seed + ti)
        wall = time.perf_counter() - t0
        record("reverse VP-SDE, learned score", np.asarray(xs), wall, n_chains,
               f"{cp['sample_steps']} steps; training {train_s:.1f} s", n_eff=n_chains)
        # Fokker-Planck stationary density on a grid (deterministic): TV to the quadrature density
        lo, hi = stat.bounds()[:, 0], stat.bounds()[:, 1]
        lo = np.maximum(lo, data.min(axis=0) - 1.0)
        hi = np.minimum(hi, data.max(axis=0) + 1.0)
        n_cells = 2000 if dim == 1 else 200
        grid = Grid(lo, hi, n_cells)
        t0 = time.perf_counter()
        p = FokkerPlanck(lsde, grid).stationary()
        fp_wall = time.perf_counter() - t0
        pts = np.stack(np.meshgrid(*grid.centers, indexing="ij"), -1).reshape(-1, dim)
        q = np.exp(stat.logpdf(pts) - stat.log_normalizer()).reshape(grid.shape)
        tv_fp = 0.5 * float(np.abs(p - q).sum() * grid.cell_volume)
        rows.append({"target": tname, "method": "Fokker–Planck stationary()", "KS": float("nan"), "W1": float("nan"),
                     "TV": tv_fp, "TV threshold": 1e-3, "passed": tv_fp < 1e-3, "wall time (s)": fp_wall, "ESS/s": float("nan"),
                     "note": f"{grid.shape} cells; TV to quadrature density"})
        all_rows += rows
        for r in rows:
            ctx.verdict(f"{tname}, {r['method']}: {'PASSED' if r['passed'] else 'FAILED'} (TV {r['TV']:.4f} vs "
                        f"threshold {r['TV threshold']:.4f}).")
        # figure
        if dim == 1:
            xs_grid = grid.centers[0]
            curves = {"Fokker–Planck": (xs_grid, p)}
            import matplotlib

            matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt

            fig, axes = plt.subplots(1, len(finals), figsize=(3.3 * len(finals), 3), sharey=True)
            for ax, (name, f) in zip(np.atleast_1d(axes), finals.items()):
                ax.hist(f[:, 0], bins=100, range=(xs_grid[0], xs_grid[-1]), density=True, alpha=0.5)
                ax.plot(xs_grid, q, "k-", lw=1, label="exp(-V)/Z")
                ax.plot(*curves["Fokker–Planck"], "r--", lw=0.8, label="FP stationary")
                ax.set_title(name, fontsize=8)
                ax.set_xlabel("x")
            np.atleast_1d(axes)[0].set_ylabel("density")
            np.atleast_1d(axes)[0].legend(fontsize=7)
            fig.tight_layout()
            fig.savefig(ctx.figure(f"{tname}_histograms"), dpi=120)
            plt.close(fig)
        else:
            plotting.scatter_2d({"exact samples": data[:n_chains], **finals}, ctx.figure(f"{tname}_samples"),
                                title=label)
    ctx.metrics["mcmc_vs_score"] = all_rows
    ctx.section("MCMC with the exact score vs a learned score vs reverse-SDE sampling",
                "Final states of independent chains (or independent reverse-SDE samples) against the exact "
                "density: KS, W1 and histogram TV with pass/fail thresholds from each statistic's null law "
                "(`validate_stationary`). ESS/s counts the effective samples over all chains per second of "
                "sampling (multi-chain bulk ESS, min over coordinates), excluding compilation and training.\n\n"
                + markdown_table(all_rows, ["target", "method", "KS", "W1", "TV", "TV threshold", "passed", "wall time (s)", "ESS/s", "note"]))
    names = [f"{r['target']}: {r['method']}" for r in all_rows if r["method"] != "Fokker–Planck stationary()"]
    vals = [r["TV"] for r in all_rows if r["method"] != "Fokker–Planck stationary()"]
    plotting.bar_table(names, vals, ctx.figure("tv_by_method"), ylabel="histogram TV to exact density",
                       title="distance to the target (lower is better)")
