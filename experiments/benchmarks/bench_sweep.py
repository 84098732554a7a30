"""Sweep benchmark (issue 11): the same 8-point sweep on 1 and 2 Dask workers, and the scheduler's per-task
overhead against the shard's compute.

    flock /tmp/bench.lock python experiments/benchmarks/bench_sweep.py [--paths 20000] [--t1 80] [--reps 2]

One run measures, on this machine and in the same process:

* the dispatch time (first submission to last result) of an 8-point OU sweep (``sde.sigma``, one shard per
  point) on an already started ``LocalCluster`` of 1 and of 2 worker processes (warmed by one sweep each, so
  imports and the kernels' disk cache are loaded), medians over ``--reps``; and the end-to-end ``st.sweep``
  wall time with the embedded cluster (start, sweep, outputs, close);
* that both worker counts give bit-identical shards;
* per task: the in-task time (``run_shard``: setup, integration, file writing, read-back of the final frame)
  and the scheduler's overhead ``(W * dispatch - sum of in-task times) / n_tasks`` and its ratio to the in-task
  time (with 1 worker this is the scheduler's own cost; with 2 it also holds any imbalance);
* the shard size and write rate, the inputs of ``docs/scaling.md``.

Prints a Markdown table (copied into ``docs/benchmarks.md``, section "Sweeps").
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CONFIG = """
[sde]
type = "ornstein_uhlenbeck"
theta = 1.0
sigma = 1.0

[initial]
distribution = "normal"
n_paths = {paths}

[integrate]
dt = 0.01
t1 = {t1}
save_every = {save_every}
seed = 2026
threads = 1
"""

SIGMAS = [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0]


def _shards(d: Path) -> dict[str, bytes]:
    import h5py

    out = {}
    for p in sorted((d / "shards").glob("*.h5")):
        with h5py.File(p, "r") as f:
            out[p.name] = f["particles/all/position/value"][...].tobytes()
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paths", type=int, default=20_000)
    ap.add_argument("--t1", type=float, default=80.0)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args(argv)

    from dask.distributed import LocalCluster

    import sde_toolkit as st

    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    steps = int(round(a.t1 / 0.01))
    cfg = tmp / "ou.toml"
    cfg.write_text(CONFIG.format(paths=a.paths, t1=a.t1, save_every=max(1, steps // 10)))
    warm = tmp / "warm.toml"
    warm.write_text(CONFIG.format(paths=100, t1=1.0, save_every=10))
    params = {"sde.sigma": SIGMAS}
    print(f"# load average before: {os.getloadavg()[0]:.1f}")
    print(f"# bench_sweep: 8 points x 1 replica, {a.paths} paths x {steps} steps per shard, OU, EM; "
          f"{os.cpu_count()} cores, python {sys.version.split()[0]}", flush=True)

    rows: dict[int, dict] = {}
    data = {}
    clusters = {w: LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=":0",
                                silence_logs=logging.ERROR) for w in (1, 2)}
    disp: dict[int, list] = {1: [], 2: []}
    task_s: dict[int, list] = {1: [], 2: []}
    size = n_tasks = 0
    try:
        for w, cl in clusters.items():  # imports and the kernels' disk cache loaded in every worker
            st.sweep(warm, params, scheduler=cl.scheduler_address, out=tmp / f"warm{w}", progress=False)
        for rep in range(a.reps):  # interleaved, so that a change in the machine's load hits both alike
            for w, cl in clusters.items():
                out = tmp / f"w{w}_r{rep}"
                r = st.sweep(cfg, params, scheduler=cl.scheduler_address, out=out, progress=False)
                assert r.ok and r.n_run == 8, r
                disp[w].append(r.dispatch)
                task_s[w].extend(r.shard_times)
                n_tasks = r.n_shards
                if rep == 0:
                    data[w] = _shards(out)
                    size = sum(p.stat().st_size for p in (out / "shards").glob("*.h5")) / r.n_shards
    finally:
        for cl in clusters.values():
            cl.close()
    for w in (1, 2):
        t0 = time.perf_counter()
        e2e = st.sweep(cfg, params, workers=w, out=tmp / f"e2e{w}", progress=False)
        e2e_wall = time.perf_counter() - t0
        assert e2e.ok
        d = statistics.median(disp[w])
        per_task = statistics.median(task_s[w])
        overhead = (w * d - sum(task_s[w]) / a.reps) / n_tasks
        rows[w] = {"dispatch": d, "task": per_task, "overhead": overhead, "e2e": e2e_wall, "size": size}
        print(f"  {w} worker(s): dispatch {[f'{x:.2f}' for x in disp[w]]} s, median task {per_task:.3f} s, "
              f"end-to-end {e2e_wall:.1f} s (of which dispatch {e2e.dispatch:.1f} s, the rest (cluster start and close, index, results, validation, figures) "
              f"{e2e_wall - e2e.dispatch:.1f} s)", flush=True)

    print(f"# load average after: {os.getloadavg()[0]:.1f} (other processes share these cores)")
    identical = data[1].keys() == data[2].keys() and all(data[1][k] == data[2][k] for k in data[1])
    r1, r2 = rows[1], rows[2]
    speedup = r1["dispatch"] / r2["dispatch"]
    print()
    print("| quantity | 1 worker | 2 workers | ratio / target |")
    print("|---|---|---|---|")
    print(f"| sweep dispatch, 8 shards (s, median of {a.reps}) | {r1['dispatch']:.2f} | {r2['dispatch']:.2f} | "
          f"speed-up {speedup:.2f} (target >= 1.7) |")
    print(f"| end-to-end `st.sweep` with embedded cluster (s) | {r1['e2e']:.1f} | {r2['e2e']:.1f} | "
          f"speed-up {r1['e2e'] / r2['e2e']:.2f} |")
    print(f"| in-task time per shard (s, median) | {r1['task']:.3f} | {r2['task']:.3f} | "
          f"{r2['task'] / r1['task']:.2f} (2 workers / 1) |")
    for w, r in rows.items():
        print(f"| scheduler overhead per task, {w} worker(s) (s) | "
              + (f"{r['overhead']:.3f} | |" if w == 1 else f" | {r['overhead']:.3f} |")
              + f" {100 * r['overhead'] / r['task']:.1f} % of the task (target <= 5 %) |")
    print(f"| shard file size (MB) | {r1['size'] / 1e6:.2f} | | output {r1['size'] / 1e6 / r1['task']:.2f} MB per "
          "in-task second |")
    print(f"| path-steps per second per worker (whole task) | {a.paths * steps / r1['task']:.3g} | "
          f"{a.paths * steps / r2['task']:.3g} | |")
    print(f"| 1 vs 2 workers bit-identical | {identical} | | |")
    np.testing.assert_equal(identical, True)


if __name__ == "__main__":
    main()
