"""Benchmark: the Fokker–Planck solver against py-pde, and the scaling of ``stationary()``.

Problems (issue 4):
  1-D  the seed density V = 0.1 x^2 - log(0.2 + cos^2 2x), kT = 1, on [-10, 10] with 2,000 cells;
  2-D  the double well V = (x^2 - 1)^2 + y^2, kT = 1, on [-3, 3]^2 with 256 x 256 cells;
each evolved from a narrow Gaussian to t = 10, with the L1 error against the exact stationary density
exp(-V/kT)/Z (Z by quadrature on the same box). py-pde solves the same equation written as an expression PDE
(dp/dt = laplace(p) + dV.grad p + lap(V) p, with the no-flux Robin condition dp/dn + (dV/dn) p = 0) with its
explicit (adaptive), implicit and scipy (BDF) solvers. Then stationary() from 10^3 to 10^6 cells (1-D) and 64^2
to 1024^2 (2-D); a size is skipped when the previous one predicts more than ~30 s.

``--only compare`` times ``FokkerPlanck.compare(traj)`` (issue 14): the default time march (Crank–Nicolson through
the saved times, one LU per step size) against the former path, ``expm_multiply`` per saved interval
(``method="expm"``), and against one ``evolve`` over the same saved times, on the double-well experiment
(50,000 EM paths, 21 frames, 200 cells) and the seed density (20,000 paths, 101 frames, 2,000 cells).

Every case runs in a fresh subprocess (fork) with a time limit; memory is the peak resident set size of that
process above its size after imports. Run: ``python experiments/benchmarks/bench_fp.py``; only the
``stationary()`` scaling table: ``python experiments/benchmarks/bench_fp.py --only scaling`` (add ``--dims 1`` for
the 1-D rows alone).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import resource
import sys
import time

import numpy as np
from scipy import integrate

import sde_toolkit as st

SEED_EXPR = "0.1*x**2 - log(0.2 + cos(2*x)**2)"
DW2_EXPR = "(x**2 - 1)**2 + y**2"
T_END = 10.0
REPEATS = 3


def V1(x):
    return 0.1 * x**2 - np.log(0.2 + np.cos(2 * x) ** 2)


def V2(x, y):
    return (x**2 - 1) ** 2 + y**2


def exact_1d(grid):
    Z = integrate.quad(lambda x: math.exp(-V1(x)), -10, 10, limit=2000, epsabs=1e-14, epsrel=1e-13)[0]
    return np.exp(-V1(grid.centers[0])) / Z


def exact_2d(grid):
    Zx = integrate.quad(lambda x: math.exp(-((x * x - 1) ** 2)), -3, 3, epsabs=1e-14, epsrel=1e-13)[0]
    Zy = integrate.quad(lambda y: math.exp(-y * y), -3, 3, epsabs=1e-14, epsrel=1e-13)[0]
    X, Y = grid.meshgrid()
    return np.exp(-V2(X, Y)) / (Zx * Zy)


def grid_1d(n=2000):
    return st.Grid(-10, 10, n)


def grid_2d(n=256):
    return st.Grid([-3, -3], [3, 3], [n, n])


def l1(grid, p, q):
    return float(np.abs(p - q).sum() * grid.cell_volume)


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------------------------- cases
def case_ours_evolve(dim, method, dt):
    if dim == 1:
        g, sde = grid_1d(), st.OverdampedLangevin(SEED_EXPR, kT=1.0)
        p0 = g.gaussian(2.0, 0.1**2)
        ex = exact_1d(g)
    else:
        g = grid_2d()
        sde = st.OverdampedLangevin(st.potentials.from_expression(DW2_EXPR, ("x", "y")), kT=1.0)
        p0 = g.gaussian([1.0, 0.0], 0.1**2)
        ex = exact_2d(g)
    base = _rss_mb()
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fp = st.FokkerPlanck(sde, g)
        res = fp.evolve(p0, t1=T_END, dt=dt, method=method, save_every=10**9, progress=False)
        times.append(time.perf_counter() - t0)
    return {"time": float(np.median(times)), "l1": l1(g, res.p[-1], ex), "mem": _rss_mb() - base}


def case_ours_stationary(dim, n):
    if dim == 1:
        g, sde = grid_1d(n), st.OverdampedLangevin(SEED_EXPR, kT=1.0)
        ex = exact_1d(g)
    else:
        g = grid_2d(n)
        sde = st.OverdampedLangevin(st.potentials.from_expression(DW2_EXPR, ("x", "y")), kT=1.0)
        ex = exact_2d(g)
    base = _rss_mb()
    times, asm = [], []
    reps = REPEATS if g.size <= 300_000 else 1
    for _ in range(reps):
        t0 = time.perf_counter()
        fp = st.FokkerPlanck(sde, g)
        t1 = time.perf_counter()
        p = fp.stationary()
        times.append(time.perf_counter() - t0)
        asm.append(t1 - t0)
    return {"time": float(np.median(times)), "assemble": float(np.median(asm)), "l1": l1(g, p, ex),
            "mem": _rss_mb() - base}


def case_pypde(dim, solver):
    import pde

    if dim == 1:
        g = grid_1d()
        pg = pde.CartesianGrid([[-10, 10]], [2000])
        x = pg.cell_coords[..., 0]
        dV = 0.2 * x + 4 * np.cos(2 * x) * np.sin(2 * x) / (0.2 + np.cos(2 * x) ** 2)
        xs = np.array([-10.0, 10.0])
        dVw = 0.2 * xs + 4 * np.cos(2 * xs) * np.sin(2 * xs) / (0.2 + np.cos(2 * xs) ** 2)
        lapV = np.gradient(dV, x)  # V'' (smooth; finite differences of the exact V')
        ex = exact_1d(g)
        p0 = g.gaussian(2.0, 0.1**2)
        # no flux: p' + V' p = 0  <=>  dp/dn + (V' n) p = 0 ("mixed": dp/dn + value p = const)
        bc = [{"mixed": float(-dVw[0])}, {"mixed": float(dVw[1])}]
        eq = pde.PDE({"p": "laplace(p) + dVx * d_dx(p) + lapV * p"},
                     consts={"dVx": pde.ScalarField(pg, dV), "lapV": pde.ScalarField(pg, lapV)}, bc=bc)
        field = pde.ScalarField(pg, p0)
    else:
        g = grid_2d()
        pg = pde.CartesianGrid([[-3, 3], [-3, 3]], [256, 256])
        X, Y = pg.cell_coords[..., 0], pg.cell_coords[..., 1]
        dVx, dVy = 4 * X * (X**2 - 1), 2 * Y
        lapV = 12 * X**2 - 4 + 2
        ex = exact_2d(g)
        p0 = g.gaussian([1.0, 0.0], 0.1**2)
        wx = 4 * 3.0 * (9 - 1)  # V_x at x = +-3 (odd), V_y at y = +-3 is +-6
        bc = [[{"mixed": wx}, {"mixed": wx}], [{"mixed": 6.0}, {"mixed": 6.0}]]
        eq = pde.PDE({"p": "laplace(p) + dVx * d_dx(p) + dVy * d_dy(p) + lapV * p"},
                     consts={"dVx": pde.ScalarField(pg, dVx), "dVy": pde.ScalarField(pg, dVy),
                             "lapV": pde.ScalarField(pg, lapV)}, bc=bc)
        field = pde.ScalarField(pg, p0)
    base = _rss_mb()
    kw = {"explicit": dict(solver="explicit", dt=1e-5, adaptive=True),
          "implicit": dict(solver="implicit", dt=1e-3 if dim == 1 else 1e-2),
          "scipy": dict(solver="scipy", method="BDF")}[solver]
    t0 = time.perf_counter()
    eq.solve(field, t_range=0.01, tracker=None, **{**kw, "dt": min(kw.get("dt", 1e-3), 1e-3)})  # compile
    t_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = eq.solve(field, t_range=T_END, tracker=None, **kw)
    el = time.perf_counter() - t0
    p = np.asarray(out.data).reshape(g.shape)
    bad = not np.all(np.isfinite(p))
    return {"time": el, "compile": t_compile, "l1": float("nan") if bad else l1(g, p, ex), "mem": _rss_mb() - base,
            "min": float(np.nanmin(p))}


def _compare_problem(name):
    """(FokkerPlanck, in-memory trajectory) of a compare() benchmark problem (built outside the timing)."""
    if name == "double_well":
        sde = st.OverdampedLangevin(st.potentials.DoubleWell(1.0, 1.0), kT=0.5, dim=1)
        x0 = -1.0 + 0.15 * np.random.default_rng(2).standard_normal((50_000, 1))
        traj = st.simulate(sde, x0, t1=4.0, dt=0.002, save_every=100, seed=2, progress=False)
        return st.FokkerPlanck(sde, st.Grid(-2.5, 2.5, 200)), traj
    sde = st.OverdampedLangevin(SEED_EXPR, kT=1.0)
    x0 = np.random.default_rng(0).uniform(-10, 10, (20_000, 1))
    traj = st.simulate(sde, x0, t1=50.0, dt=0.05, save_every=10, seed=0, progress=False)
    return st.FokkerPlanck(sde, grid_1d()), traj


def case_compare(name, method):
    fp, traj = _compare_problem(name)
    t = np.asarray(traj.t)
    times, l1_ = [], None
    for _ in range(REPEATS if method != "expm" else 1):
        t0 = time.perf_counter()
        cmp = fp.compare(traj, method=method, progress=False)
        times.append(time.perf_counter() - t0)
        l1_ = cmp.l1
    # one evolve over the same saved times at the same step, from the same initial histogram
    p0 = fp.grid.histogram(np.asarray(traj.x[0]), normalize=True)
    span = float(t[1] - t[0])
    dt = span / 16
    t0 = time.perf_counter()
    fp.evolve(p0, t0=float(t[0]), t1=float(t[-1]), dt=dt, save_every=16, method="crank_nicolson", progress=False)
    ev = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(len(t)):
        fp.grid.histogram(np.asarray(traj.x[i]))
    hist = time.perf_counter() - t0
    return {"time": float(np.median(times)), "evolve": ev, "hist": hist, "l1": l1_.tolist(),
            "floor": cmp.noise_floor.tolist(), "frames": len(t), "paths": traj.n_paths, "cells": fp.grid.size}


def compare_table() -> None:
    print("\n## FokkerPlanck.compare(traj): time march vs expm_multiply per interval (issue 14)\n")
    print("| problem | frames x paths, cells | compare (new, CN) s | compare (old, expm) s | old / new | "
          "evolve s | histograms s | new / (evolve + histograms) | max abs L1 diff | final L1 | noise floor |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, label in (("double_well", "double well (fp_vs_em)"), ("seed", "seed density")):
        new = run(case_compare, name, "crank_nicolson", timeout=300.0)
        old = run(case_compare, name, "expm", timeout=300.0)
        if "skipped" in new:
            print(f"| {label} | — | — | — | — | — | — | — | — | — | {new['skipped']} |")
            continue
        ratio = f"{old['time'] / new['time']:.0f}x" if "skipped" not in old else "—"
        diff = (f"{np.max(np.abs(np.array(old['l1']) - np.array(new['l1']))):.1e}" if "skipped" not in old
                else "—")
        old_s = fmt(old) if "skipped" not in old else old["skipped"]
        print(f"| {label} | {new['frames']} x {new['paths']:,}, {new['cells']:,} | {fmt(new)} | {old_s} | {ratio} | "
              f"{fmt(new, 'evolve')} | {fmt(new, 'hist')} | {new['time'] / (new['evolve'] + new['hist']):.2f} | "
              f"{diff} | {new['l1'][-1]:.4f} | {new['floor'][-1]:.4f} |")


# ---------------------------------------------------------------------------------------------- runner
def _child(q, fn, args):
    try:
        q.put(("ok", fn(*args)))
    except Exception as exc:  # report, don't crash the table
        q.put(("error", f"{type(exc).__name__}: {exc}"[:200]))


def run(fn, *args, timeout=120.0):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    proc = ctx.Process(target=_child, args=(q, fn, args))
    t0 = time.perf_counter()
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return {"skipped": f"over {timeout:.0f} s (stopped)", "time": time.perf_counter() - t0}
    status, val = q.get() if not q.empty() else ("error", f"exit code {proc.exitcode}")
    return val if status == "ok" else {"skipped": val}


def fmt(r, key="time", spec="{:.3g}"):
    v = r.get(key)
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else spec.format(v)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark; ``--only evolve|scaling`` runs one part, ``--dims`` picks the scaling dimensions."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=("evolve", "scaling", "compare"), default=None,
                    help="run only the evolve comparison, the stationary() scaling table or the compare() table")
    ap.add_argument("--dims", type=int, nargs="+", choices=(1, 2), default=[1, 2],
                    help="dimensions of the stationary() scaling table (default: 1 2)")
    args = ap.parse_args(argv)
    # warm the sympy / numba paths so the parent's fork carries them
    st.OverdampedLangevin(SEED_EXPR).drift(np.zeros((1, 1)), 0.0)
    print(f"# Fokker–Planck benchmark (t = {T_END}; medians of {REPEATS} runs unless noted)\n")
    if args.only in (None, "evolve"):
        evolve_tables()
    if args.only in (None, "scaling"):
        scaling_table(args.dims)
    if args.only in (None, "compare"):
        compare_table()


def evolve_tables() -> None:
    """The evolve comparison with py-pde and the speed-up summary."""
    rows = []
    print("## Evolve a narrow density to t = 10; L1 against the exact stationary density\n")
    print("| problem | solver | wall time (s) | L1 vs exact stationary | peak RSS (MB) | note |")
    print("|---|---|---|---|---|---|")
    for dim, label in ((1, "1-D seed density, 2,000 cells"), (2, "2-D double well, 256 x 256")):
        ours = {}
        for method, dt in (("implicit_euler", 0.01), ("crank_nicolson", 0.05)) if dim == 1 else (
                ("implicit_euler", 0.1), ("crank_nicolson", 0.1)):
            r = run(case_ours_evolve, dim, method, dt)
            ours[method] = r
            print(f"| {label} | sde_toolkit {method}, dt={dt} | {fmt(r)} | {fmt(r, 'l1', '{:.2e}')} | "
                  f"{fmt(r, 'mem', '{:.0f}')} | {r.get('skipped', '')} |")
            sys.stdout.flush()
        r = run(case_ours_stationary, dim, 2000 if dim == 1 else 256)
        print(f"| {label} | sde_toolkit stationary() | {fmt(r)} | {fmt(r, 'l1', '{:.2e}')} | "
              f"{fmt(r, 'mem', '{:.0f}')} | {r.get('skipped', '')} |")
        best_ours = min((v["time"] for v in ours.values() if "skipped" not in v), default=float("nan"))
        py_best = None
        for solver in ("explicit", "implicit", "scipy"):
            r = run(case_pypde, dim, solver, timeout=150.0 if dim == 1 else 120.0)
            note = r.get("skipped", "")
            if "compile" in r:
                note = f"+{r['compile']:.1f} s first-call compile; min p = {r['min']:.1e}"
            print(f"| {label} | py-pde {solver} | {fmt(r)} | {fmt(r, 'l1', '{:.2e}')} | "
                  f"{fmt(r, 'mem', '{:.0f}')} | {note} |")
            sys.stdout.flush()
            if "skipped" not in r and not math.isnan(r["l1"]) and (py_best is None or r["time"] < py_best[1]):
                py_best = (solver, r["time"])
        if py_best:
            rows.append((label, py_best[0], py_best[1], best_ours, py_best[1] / best_ours))
    print("\n| problem | py-pde best (finite) | py-pde s | ours s (best method) | speed-up |")
    print("|---|---|---|---|---|")
    for label, s, tp, to, ratio in rows:
        print(f"| {label} | {s} | {tp:.3g} | {to:.3g} | {ratio:.0f}x |")


def scaling_table(dims=(1, 2)) -> None:
    """``stationary()`` from 10^3 to 10^6 cells (1-D) and 64^2 to 1024^2 (2-D)."""
    print("\n## stationary() scaling (assembly + direct solve: banded in 1-D, sparse LU in 2-D)\n")
    print("| dim | cells | wall time (s) | of which assembly (s) | L1 vs exact | peak RSS (MB) | note |")
    print("|---|---|---|---|---|---|---|")
    for dim, sizes in ((1, [10**3, 10**4, 10**5, 10**6]), (2, [64, 128, 256, 512, 1024])):
        if dim not in dims:
            continue
        prev = None
        for n in sizes:
            cells = n if dim == 1 else n * n
            if prev is not None:
                pred = prev[1] * (cells / prev[0]) ** (1.0 if dim == 1 else 1.5)
                if pred > 30.0:
                    print(f"| {dim} | {cells:,} | — | — | — | — | skipped: predicted {pred:.0f} s > 30 s |")
                    continue
            r = run(case_ours_stationary, dim, n, timeout=90.0)
            print(f"| {dim} | {cells:,} | {fmt(r)} | {fmt(r, 'assemble')} | {fmt(r, 'l1', '{:.2e}')} | "
                  f"{fmt(r, 'mem', '{:.0f}')} | {r.get('skipped', '')} |")
            sys.stdout.flush()
            if "skipped" not in r:
                prev = (cells, r["time"])


if __name__ == "__main__":
    main()
