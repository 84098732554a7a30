"""Simulation experiments: ``simulate``, ``fp_vs_em`` and ``kramers`` (registered in :mod:`sde_toolkit.runner`).

* ``simulate``: stream the ensemble into H5MD, then compare the final states with the stationary density
  (``validate_stationary``) and, for linear SDEs, the moments with the exact marginal.
* ``fp_vs_em``: the same run plus a Fokker–Planck evolution on ``[fokker_planck]``'s grid, compared with the
  ensemble's histograms at every saved time.
* ``kramers``: first-passage times between the wells of a double well from EM paths, from the FP adjoint
  equation and from Kramers' formula (``[kramers]``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import plotting
from ..config import ConfigError
from ..runs import prepare_simulation
from ._context import ExperimentContext, markdown_table

__all__ = ["exp_simulate", "exp_fp_vs_em", "exp_kramers"]


# ---------------------------------------------------------------------------------------------- simulate
def data_path(ctx: ExperimentContext, name: str) -> Path:
    """Where the experiment's trajectory goes: ``[output] path`` relative to the experiment folder (its
    sub-folders kept and created; an absolute path as given), else ``<name>.h5`` in the folder."""
    cfg = ctx.cfg
    given = cfg["output"].get("path") if "output" in cfg else None
    if not given:
        return ctx.outdir / f"{name}.h5"
    p = Path(given)
    out = p if p.is_absolute() else ctx.outdir / p
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _density_curve(sde, samples_1d=None, n: int = 2001):
    """``(x, p)`` of the normalized stationary density on a plotting range (1-D)."""
    stat = sde.stationary()
    if getattr(stat, "normalized", False):
        m, s = float(stat.mean[0]), math.sqrt(float(stat.cov[0, 0]))
        x = np.linspace(m - 6 * s, m + 6 * s, n)
        return x, stat.pdf(x[:, None])
    b = stat.bounds()[0]
    if samples_1d is not None:
        lo, hi = np.percentile(samples_1d, [0.01, 99.99])
        pad = 0.15 * (hi - lo)
        b = (max(b[0], lo - pad), min(b[1], hi + pad))
    x = np.linspace(b[0], b[1], n)
    return x, stat.pdf(x[:, None])


def _run_simulation(ctx: ExperimentContext, *, name: str = "trajectory"):
    from ..integrate import simulate

    cfg = ctx.cfg
    out = data_path(ctx, name)
    # inside the experiment folder (already refused when non-empty without --overwrite) a file is replaced;
    # an absolute path elsewhere is never clobbered
    inside = ctx.outdir.resolve() in out.resolve().parents
    job = prepare_simulation(cfg, out=out, overwrite=inside)
    ctx.stage(f"simulating {job.x0.shape[0]} paths with {job.integrate['method']} into {out}")
    start = time.perf_counter()
    traj = simulate(job.sde, job.x0, out=job.out, progress=ctx.progress, config=job.config, **job.integrate,
                    **job.output)
    wall = time.perf_counter() - start
    ctx.data.append(out)
    n_steps = round(abs(job.integrate["t1"] - job.integrate["t0"]) / job.integrate["dt"])
    ctx.metrics["simulation"] = {
        "n_paths": int(traj.n_paths), "dim": int(traj.dim), "n_steps": int(n_steps), "n_frames": int(len(traj.t)),
        "method": job.integrate["method"], "dt": job.integrate["dt"], "seed": int(job.integrate["seed"]),
        "precision": job.integrate.get("precision", "float64"), "wall_time_s": wall, "particle_steps_per_s": traj.n_paths * n_steps / max(wall, 1e-12),
        "file": str(job.out),
    }
    return job, traj


def stationary_verdict(label: str, rep: dict) -> str:
    """``"<label>: stationary-law check PASSED (histogram TV 0.0181 < threshold 0.0245)."``; a failed check names
    the first statistic past its threshold (TV, then KS, then W1) and the chains' mixing when that failed."""
    if rep["passed"]:
        return (f"{label}: stationary-law check PASSED (histogram TV {rep['tv']:.4f} < threshold "
                f"{rep['tv_threshold']:.4f}).")
    for key, name in (("tv", "histogram TV"), ("ks", "KS"), ("w1", "W1")):
        if rep.get(key) is not None and rep.get(f"{key}_threshold") is not None and rep[key] > rep[f"{key}_threshold"]:
            return (f"{label}: stationary-law check FAILED ({name} {rep[key]:.4f} > threshold "
                    f"{rep[f'{key}_threshold']:.4f}).")
    return f"{label}: stationary-law check FAILED ({rep.get('mixing_message') or 'see the report'})."


def _analyse_stationary(ctx: ExperimentContext, sde, final: np.ndarray, label: str, grid=None) -> dict:
    from ..validate import validate_stationary

    alpha = ctx.cfg.get("analysis", {}).get("alpha", 1e-3)
    rep = validate_stationary(sde, final, grid=grid, alpha=alpha)
    d = rep.to_dict()
    ctx.section(f"Stationary law: {label}", rep.to_markdown())
    return d


def exp_simulate(ctx: ExperimentContext) -> None:
    job, traj = _run_simulation(ctx)
    sde = job.sde
    analysis = ctx.cfg.get("analysis", {}) or {"bins": 120, "snapshots": 6}
    x = traj.x
    t = np.asarray(traj.t)
    final = np.asarray(x[-1])
    sim = ctx.metrics["simulation"]
    ctx.section("Run", markdown_table([{"paths": sim["n_paths"], "dim": sim["dim"], "steps": sim["n_steps"],
                                "dt": sim["dt"], "method": sim["method"], "seed": sim["seed"],
                                "wall time (s)": sim["wall_time_s"],
                                "particle-steps/s": sim["particle_steps_per_s"]}])
                + f"\n\nTrajectory file: `{Path(sim['file']).name}` (H5MD; `sde-toolkit inspect` it).")
    ctx.stage(f"ensemble moments over {len(t)} saved times")
    # moments over time (streamed through the lazy reader frame by frame: bounded memory)
    mean = np.array([np.asarray(x[i])[:, 0].mean() for i in range(len(t))])
    var = np.array([np.asarray(x[i])[:, 0].var() for i in range(len(t))])
    exact = None
    if sde.linear and job.sde.dim >= 1:
        x0 = np.asarray(x[0])
        ms, vs = [], []
        for ti in t:
            m_, s_ = sde.marginal(x0, float(ti) - float(t[0]))
            m_ = np.asarray(m_)
            cov0 = np.asarray(s_, dtype=float)
            v_cond = float(cov0) ** 2 if cov0.ndim == 0 else float(cov0[0, 0])
            ms.append(m_[:, 0].mean())
            vs.append(v_cond + m_[:, 0].var())
        exact = (np.array(ms), np.array(vs))
        err_m = np.abs(mean - exact[0]).max()
        err_v = np.abs(var - exact[1]).max()
        # z-score of the ensemble mean at every saved time (standard error from the exact variance)
        n = traj.n_paths
        se = np.sqrt(np.maximum(exact[1], 1e-300) / n)
        z = np.abs(mean - exact[0])[1:] / se[1:] if len(t) > 1 else np.zeros(1)
        z_max = float(np.max(z))
        ctx.metrics["moments"] = {"max_abs_mean_error": float(err_m), "max_abs_var_error": float(err_v),
                                  "max_mean_z": z_max}
        ctx.verdict(f"exact moments: ensemble mean of x[0] within {z_max:.2f} standard errors of the exact "
                    f"marginal at every saved time ({'PASSED' if z_max < 5 else 'FAILED'}, threshold 5).")
    stationary_moments = None
    if exact is None and sde.dim == 1:
        try:
            stat = sde.stationary()
            m1 = stat.moment(lambda g: g)
            stationary_moments = (m1, stat.moment(lambda g: (g - m1) ** 2))
        except (NotImplementedError, ValueError, AttributeError):
            stationary_moments = None
    what = "dashed: exact marginal" if exact is not None else (
        "dotted: stationary values" if stationary_moments is not None else "no closed form for this SDE")
    plotting.moments_over_time(t, mean, var, ctx.figure("moments"), exact=exact, stationary=stationary_moments,
                               title=f"ensemble moments of x[0] ({what})")
    stat_ok = True
    try:
        sde.stationary()
    except (NotImplementedError, ValueError):
        stat_ok = False
    if sde.dim == 1 and stat_ok:
        xs, ps = _density_curve(sde, final[:, 0])
        plotting.histogram_vs_density(final[:, 0], xs, ps, ctx.figure("final_histogram"),
                                      title=f"final states at t = {t[-1]:.4g} vs exp(-V/kT)/Z",
                                      bins=analysis.get("bins", 120))
        plotting.histogram_snapshots(t, x, ctx.figure("snapshots"), n_snapshots=analysis.get("snapshots", 6),
                                     density=(xs, ps), title="law of X_t (black: stationary density)")
    else:
        plotting.histogram_snapshots(t, x, ctx.figure("snapshots"), n_snapshots=analysis.get("snapshots", 6),
                                     title="law of X_t[0]")
        if sde.dim == 2:
            plotting.scatter_2d({f"t = {t[-1]:.3g}": final}, ctx.figure("final_scatter"))
    others = list(ctx.cfg.get("experiment", {}).get("compare_methods") or [])
    if others:
        _compare_methods(ctx, job, final, others, analysis)
    if stat_ok and sde.dim <= 2:
        ctx.stage("comparing the final states with the stationary law")
        try:
            ctx.metrics["stationary"] = _analyse_stationary(ctx, sde, final, "final states of independent paths")
            rep = ctx.metrics["stationary"]
            if not others:  # with compare_methods the comparison gives one verdict per method
                ctx.verdict(stationary_verdict(f"{job.integrate['method']} at dt = {job.integrate['dt']:g}", rep))
            if not ctx.metrics["stationary"].get("passed", True) and job.integrate["method"] == "euler_maruyama":
                ctx.section("Why the check can fail", (
                    f"Euler–Maruyama's own stationary law differs from the exact one by O(dt). At dt = "
                    f"{job.integrate['dt']:g} that bias is resolved by {sim['n_paths']} independent paths. Rerun "
                    "with a smaller dt (the bias shrinks linearly) or sample the same density with MALA "
                    "(`st.mcmc.langevin(..., method=\"mala\")`), whose Metropolis correction removes it."))
        except (ValueError, NotImplementedError) as exc:
            ctx.section("Stationary law", f"not compared: {exc}")


def _compare_methods(ctx: ExperimentContext, job, base_final: np.ndarray, others: list[str], analysis) -> None:
    """Rerun the simulation with each method in ``others`` (same step, seed and x0) and compare the stationary
    checks, costs and final histograms of all methods on one figure and in one table."""
    from ..integrate import get_method, simulate
    from ..validate import validate_stationary

    sde = job.sde
    base = job.integrate["method"]
    for m in others:
        get_method(m, sde)  # unknown or unsupported methods are refused before any run
    finals = {base: base_final}
    walls = {base: ctx.metrics["simulation"]["wall_time_s"]}
    stem = Path(job.out).stem
    for m in others:
        out = Path(job.out).parent / f"{stem}_{m}.h5"
        ctx.stage(f"simulating the same ensemble with {m}")
        opts = dict(job.integrate, method=m)
        start = time.perf_counter()
        traj = simulate(sde, job.x0, out=out, progress=ctx.progress, config=job.config, **opts,
                        **dict(job.output, overwrite=True))
        walls[m] = time.perf_counter() - start
        finals[m] = np.asarray(traj.x[-1])
        ctx.data.append(out)
    alpha = ctx.cfg.get("analysis", {}).get("alpha", 1e-3)
    n_steps = ctx.metrics["simulation"]["n_steps"]
    rows, reports = [], {}
    for m, f in finals.items():
        rep = validate_stationary(sde, f, alpha=alpha)
        reports[m] = rep.to_dict()
        meth = get_method(m)
        rows.append({"method": m, "weak order": meth.weak_order, "invariant order": meth.invariant_order,
                     "TV": rep.tv, "TV threshold": rep.tv_threshold, "KS": rep.ks, "W1": rep.w1,
                     "passed": rep.passed, "wall time (s)": walls[m],
                     "particle-steps/s": f.shape[0] * n_steps / max(walls[m], 1e-12)})
    ctx.metrics["methods"] = reports
    dt = job.integrate["dt"]
    ctx.section(f"Methods at the same step dt = {dt:g}, seed and initial states", markdown_table(rows) + (
        "\n\nEvery method costs one drift evaluation and one normal per particle and step. Euler–Maruyama's "
        "stationary law differs from exp(-V/kT)/Z by O(dt); Leimkuhler–Matthews, which uses the noise "
        "(xi_k + xi_{k+1})/2, has an O(dt^2) invariant-law bias, so at the same step and cost it reaches the "
        "density within the histogram's noise. The TV threshold is the 1 - alpha quantile of the TV of exact "
        "samples of this size (its null law), so 'passed' means: indistinguishable from exact samples."))
    for m in finals:
        ctx.verdict(stationary_verdict(f"{m} at dt = {dt:g}", reports[m]))
    if sde.dim == 1:
        xs, ps = _density_curve(sde, base_final[:, 0])
        plotting.methods_vs_density(finals, xs, ps, ctx.figure("methods"), bins=analysis.get("bins", 120),
                                    title=f"final states at dt = {dt:g}: each method against exp(-V/kT)/Z",
                                    verdicts={r["method"]: f"TV {r['TV']:.3f} ({'pass' if r['passed'] else 'FAIL'})"
                                              for r in rows})


# ---------------------------------------------------------------------------------------------- FP vs EM
def _grid_from(table) -> Any:
    from ..fokker_planck import Grid

    return Grid(table["lower"], table["upper"], table["n"], boundary=table["boundary"])


def exp_fp_vs_em(ctx: ExperimentContext) -> None:
    from ..fokker_planck import FokkerPlanck
    from ..fokker_planck.plotting import plot_evolution_1d

    job, traj = _run_simulation(ctx)
    fpt = ctx.cfg["fokker_planck"]
    grid = _grid_from(fpt)
    fp = FokkerPlanck(job.sde, grid)
    t = np.asarray(traj.t)
    x = np.asarray(traj.x[:])
    p0 = grid.histogram(x[0], normalize=True)
    ctx.stage(f"Fokker–Planck on {grid.shape} cells ({fpt['method']}) and comparison with the ensemble")
    start = time.perf_counter()
    dt_fp = fpt.get("dt") or float(t[1] - t[0]) / 4
    res = fp.evolve(p0, t0=float(t[0]), t1=float(t[-1]), dt=dt_fp, save_every=max(1, round((t[1] - t[0]) / dt_fp)),
                    method=fpt["method"], progress=ctx.progress)
    fp_wall = time.perf_counter() - start
    start = time.perf_counter()
    cmp = fp.compare(traj, dt=dt_fp, progress=ctx.progress)
    cmp_wall = time.perf_counter() - start
    n = x.shape[1]
    n_cells = int(np.prod(grid.shape))
    later = slice(1, None) if len(t) > 1 else slice(None)
    ratio = cmp.l1[later] / np.maximum(cmp.noise_floor[later], 1e-300)
    i_worst = int(np.argmax(ratio)) + (1 if len(t) > 1 else 0)
    worst = float(np.max(ratio))
    ctx.metrics["fokker_planck"] = {"grid": grid.to_dict() if hasattr(grid, "to_dict") else str(grid),
                                    "dt": dt_fp, "method": fpt["method"], "wall_time_s": fp_wall,
                                    "compare_wall_time_s": cmp_wall,
                                    "l1_max": float(np.max(cmp.l1)), "l1_final": float(cmp.l1[-1]),
                                    "tv_final": float(cmp.tv[-1]),
                                    "noise_floor_final": float(cmp.noise_floor[-1]),
                                    "l1_over_noise_floor_max": worst,
                                    # the equal-cell upper bound of the noise floor, sqrt(2 K / (pi n))
                                    "histogram_noise_l1_estimate": float(math.sqrt(2 * n_cells / (math.pi * n)))}
    agree = worst < 1.5
    ctx.verdict(f"Fokker–Planck vs EM histograms: {'AGREE' if agree else 'DISAGREE'} within sampling noise "
                f"(largest L1 / noise floor {worst:.2f} at t = {t[i_worst]:.3g}, threshold 1.5; final L1 "
                f"{cmp.l1[-1]:.4f}, noise floor {cmp.noise_floor[-1]:.4f}).")
    rows = [{"t": float(ti), "L1(FP, EM histogram)": float(li), "noise floor": float(fi), "outside grid": float(oi)}
            for ti, li, fi, oi in zip(cmp.t, cmp.l1, cmp.noise_floor, cmp.outside)]
    step = max(1, len(rows) // 10)
    ctx.section("Fokker–Planck vs Euler–Maruyama",
                f"FP on {grid.shape} cells, {fpt['method']} with dt = {dt_fp:.3g} ({fp_wall:.2f} s; the comparison "
                f"{cmp_wall:.2f} s); EM with {n} paths. The noise floor is the expected L1 of a histogram of {n} "
                "exact samples of the FP density (de Moivre's binomial mean absolute deviation, summed over "
                "cells): an L1 near it means the two agree within the ensemble's sampling noise. The initial "
                "density is the EM histogram at t0, so L1 is 0 there.\n\n"
                + markdown_table(rows[::step] + ([rows[-1]] if (len(rows) - 1) % step else [])))
    if grid.dim == 1:
        fig = plot_evolution_1d(res)
        fig.savefig(ctx.figure("fp_heatmap"), dpi=120)
        import matplotlib.pyplot as plt

        plt.close(fig)
        c = grid.centers[0]
        idx = np.unique(np.linspace(0, len(t) - 1, 4).round().astype(int))
        fig, axes = plt.subplots(1, len(idx), figsize=(3.2 * len(idx), 3))
        for ax, i in zip(np.atleast_1d(axes), idx):
            ax.hist(x[i][:, 0], bins=min(150, grid.shape[0]), range=(grid.lower[0], grid.upper[0]), density=True,
                    alpha=0.5, label="EM")
            ax.plot(c, cmp.p[i], "k-", lw=1.2, label="Fokker–Planck")
            ax.set_title(f"t = {t[i]:.3g}: L1 {cmp.l1[i]:.3f} (noise {cmp.noise_floor[i]:.3f})", fontsize=9)
            ax.set_xlabel("x")
        np.atleast_1d(axes)[0].set_ylabel("density")
        np.atleast_1d(axes)[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(ctx.figure("fp_vs_em"), dpi=120)
        plt.close(fig)


# ---------------------------------------------------------------------------------------------- Kramers
def exp_kramers(ctx: ExperimentContext) -> None:
    from ..fokker_planck import FokkerPlanck, Grid
    from ..sde.potentials import DoubleWell

    sde = prepare_simulation(ctx.cfg, check_output=False).sde
    pot = getattr(sde, "potential", None)
    if not isinstance(pot, DoubleWell) or sde.dim != 1:
        raise ConfigError("kind 'kramers' needs a 1-D overdamped_langevin with potential {name = \"double_well\"}",
                          "sde", "potential")
    kr = ctx.cfg.get("kramers", {})
    a, b = pot.a, pot.b
    xmin = math.sqrt(b)
    x_start = kr.get("x_start") if kr.get("x_start") is not None else -xmin
    x_target = kr.get("x_target") if kr.get("x_target") is not None else xmin
    kT, gamma = sde.kT, sde.gamma
    job, traj = _run_simulation(ctx, name="escape")
    t = np.asarray(traj.t)
    n = traj.n_paths
    first = np.full(n, np.nan)
    alive = np.ones(n, dtype=bool)
    ctx.stage(f"first-passage times from the EM paths ({len(t)} frames)")
    block = max(1, 2**22 // max(n, 1))  # ~32 MB of frames per read
    for i0 in range(0, len(t), block):
        xb = np.asarray(traj.x[i0:i0 + block])[:, :, 0]
        for j in range(xb.shape[0]):
            hit = alive & (xb[j] >= x_target)
            first[hit] = t[i0 + j]
            alive &= ~hit
        if not alive.any():
            break
    censored = int(alive.sum())
    fpt = first[~np.isnan(first)] - t[0]
    # EM estimate of the MFPT; censored paths enter through the exponential tail (maximum likelihood)
    total_time = fpt.sum() + censored * (t[-1] - t[0])
    mfpt_em = total_time / max(len(fpt), 1)
    se_em = mfpt_em / math.sqrt(max(len(fpt), 1))
    # Kramers: k = sqrt(V''(min) |V''(max)|) / (2 pi gamma) exp(-dV / kT)
    v2min = 8.0 * a * b
    v2max = 4.0 * a * b
    dV = a * b * b
    k_kramers = math.sqrt(v2min * v2max) / (2 * math.pi * gamma) * math.exp(-dV / kT)
    # FP adjoint: MFPT to the absorbing wall at x_target, reflecting far on the left
    lower = kr.get("lower") if kr.get("lower") is not None else -xmin - 2.5 * math.sqrt(max(b, 0.1))
    grid = Grid(lower, x_target, kr.get("n_cells", 800), boundary=[("reflecting", "absorbing")])
    fp = FokkerPlanck(sde, grid)
    ctx.stage("first-passage times: Fokker–Planck adjoint")
    tau = fp.mean_first_passage_time()
    c = grid.centers[0]
    mfpt_fp = float(np.interp(x_start, c, tau))
    rows = [
        {"method": "Euler–Maruyama paths", "MFPT": mfpt_em, "rate 1/MFPT": 1 / mfpt_em,
         "note": f"{n} paths, SE {se_em:.3g}, {censored} not escaped by t1"},
        {"method": "Fokker–Planck adjoint", "MFPT": mfpt_fp, "rate 1/MFPT": 1 / mfpt_fp,
         "note": f"{grid.shape[0]} cells"},
        {"method": "Kramers' formula", "MFPT": 1 / k_kramers, "rate 1/MFPT": k_kramers,
         "note": f"asymptotic in dV/kT = {dV / kT:.3g}"},
    ]
    ctx.metrics["kramers"] = {"mfpt_em": mfpt_em, "mfpt_em_se": se_em, "mfpt_fp": mfpt_fp,
                              "mfpt_kramers": 1 / k_kramers, "censored": censored, "barrier_over_kT": dV / kT,
                              "em_vs_fp_rel": abs(mfpt_em - mfpt_fp) / mfpt_fp,
                              "kramers_vs_fp_rel": abs(1 / k_kramers - mfpt_fp) / mfpt_fp}
    z = abs(mfpt_em - mfpt_fp) / se_em
    ctx.verdict(f"mean first-passage time: EM {mfpt_em:.4g} +- {se_em:.2g} vs Fokker–Planck adjoint {mfpt_fp:.4g} "
                f"({z:.1f} standard errors: {'AGREE' if z < 4 else 'DISAGREE'}, threshold 4); Kramers' formula "
                f"{1 / k_kramers:.4g} ({100 * abs(1 / k_kramers - mfpt_fp) / mfpt_fp:.0f} % off at dV/kT = "
                f"{dV / kT:.3g}).")
    ctx.section("Mean first-passage time", f"From x = {x_start:g} to x = {x_target:g} in V = {a:g} (x^2 - {b:g})^2 at "
                f"kT = {kT:g}, gamma = {gamma:g}.\n\n" + markdown_table(rows))
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    # the empirical survival is a step function that drops at each observed escape; drawn only where it is
    # positive (log axis), ending at the last escape, or at t1 when paths are still in the well (censored)
    ev = np.sort(fpt)
    s_after = (n - np.arange(1, ev.size + 1)) / n  # survival just after the k-th escape
    st_t = np.concatenate([[0.0], ev])
    st_s = np.concatenate([[1.0], s_after])
    pos = st_s > 0
    st_t, st_s = st_t[pos], st_s[pos]
    t_end = (t[-1] - t[0]) if censored else (float(ev[-1]) if ev.size else t[-1] - t[0])
    axes[0].step(np.append(st_t, t_end), np.append(st_s, st_s[-1]), where="post",
                 label=f"EM survival ({n} paths{f', {censored} not escaped' if censored else ''})")
    ts = np.linspace(0, t_end, 400)
    axes[0].semilogy(ts, np.exp(-ts / mfpt_fp), "k--", label="exp(-t / MFPT_FP)")
    axes[0].semilogy(ts, np.exp(-ts * k_kramers), "r:", label="exp(-k_Kramers t)")
    axes[0].set_yscale("log")
    axes[0].set_ylim(bottom=0.5 * float(st_s.min()))
    axes[0].set_xlabel("t")
    axes[0].set_ylabel("P(still in the left well)")
    axes[0].set_title("survival in the left well")
    axes[0].legend(fontsize=8)
    axes[1].plot(c, tau, label="FP adjoint MFPT(x)")
    axes[1].axvline(x_start, color="gray", ls=":")
    axes[1].axhline(mfpt_em, color="C1", ls="--", label="EM estimate from x_start")
    axes[1].set_xlabel("x")
    axes[1].set_ylabel("MFPT to x_target")
    axes[1].set_title("mean first-passage time")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ctx.figure("kramers"), dpi=120)
    plt.close(fig)
