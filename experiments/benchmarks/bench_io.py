"""I/O benchmark (issue 3): streaming overhead, raw h5py write speed, peak RSS of a >= 2 GB streamed run, and
resume cost versus frames already on disk.

    python experiments/benchmarks/bench_io.py [--paths 100000] [--frames 1000] [--reps 3] [--big-gb 2.0]

Prints a Markdown table (medians over ``--reps``) that goes into ``docs/benchmarks-io.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIG_CHILD = r"""
import json, resource, sys, time
import numpy as np
import sde_toolkit as st
n_paths, n_frames, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
sde = st.OrnsteinUhlenbeck(1.0, 0.5)
x0 = np.zeros((n_paths, 1))
t = time.perf_counter()
st.simulate(sde, x0, t1=(n_frames - 1) * 1e-3, dt=1e-3, seed=0, out=out, progress=False)
el = time.perf_counter() - t
# VmHWM, not ru_maxrss: after fork+exec ru_maxrss can carry the parent's high-water mark
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")]
peak = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": el, "peak_rss_mb": peak}))
"""


def _median_time(fn, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), ts


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--paths", type=int, default=100_000)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--big-gb", type=float, default=2.0)
    ap.add_argument("--dir", type=Path, default=None)
    a = ap.parse_args(argv)

    import h5py

    import sde_toolkit as st
    from sde_toolkit.io import h5md

    work = Path(a.dir or tempfile.mkdtemp(prefix="bench_io_"))
    n, F = a.paths, a.frames
    sde = st.OrnsteinUhlenbeck(1.0, 0.5)
    x0 = np.zeros((n, 1))
    kw = dict(t1=(F - 1) * 1e-3, dt=1e-3, seed=0, progress=False)
    st.simulate(sde, x0[:10], **kw)  # compile

    rows = []
    # the same float32 frames in memory and on disk, so the difference is the cost of writing
    t_mem, _ = _median_time(lambda: st.simulate(sde, x0, dtype="float32", **kw), a.reps)
    out = work / "stream.h5"

    def streamed():
        st.simulate(sde, x0, out=out, overwrite=True, dtype="float32", **kw)

    t_file, _ = _median_time(streamed, a.reps)
    size_mb = os.path.getsize(out) / 2**20
    rows.append(("simulate, in memory (float32 frames)", f"{t_mem:.3f} s", ""))
    rows.append(("simulate, streamed to H5MD (float32)", f"{t_file:.3f} s",
                 f"overhead {100 * (t_file / t_mem - 1):+.1f} % (target <= 15 %)"))

    arr = st.io.open(out).x[:]
    raw = work / "raw.h5"

    def raw_write():
        with h5py.File(raw, "w") as f:
            f.create_dataset("x", data=arr)

    t_raw, _ = _median_time(raw_write, a.reps)
    mb = arr.nbytes / 2**20
    rows.append((f"raw h5py, one call ({mb:.0f} MB float32)", f"{t_raw:.3f} s", f"{mb / t_raw:.0f} MB/s"))
    rows.append(("streamed writer throughput (whole simulate)", f"{size_mb:.0f} MB file", f"{size_mb / t_file:.0f} MB/s"))
    raw.unlink()

    # peak RSS of a >= big-gb streamed float64 run, in a subprocess
    big_frames = int(np.ceil(a.big_gb * 2**30 / (n * 8)))
    big = work / "big.h5"
    r = subprocess.run([sys.executable, "-c", BIG_CHILD, str(n), str(big_frames), str(big)], capture_output=True,
                       text=True, check=True)
    res = json.loads(r.stdout.strip().splitlines()[-1])
    gb = os.path.getsize(big) / 2**30
    rows.append((f"streamed run, {n} paths x {big_frames} frames float64 ({gb:.2f} GB file)",
                 f"{res['seconds']:.1f} s", f"peak RSS {res['peak_rss_mb']:.0f} MB (target < 300 MB)"))
    big.unlink()

    # resume cost vs frames already on disk (same remaining work: 256 steps)
    class Stop(h5md.H5MDWriter):
        stop_at = 0

        def commit(self, step, state):
            super().commit(step, state)
            if step >= self.stop_at:
                raise KeyboardInterrupt

    m = 20_000
    for done_blocks, total_blocks in ((2, 3), (20, 21)):
        p = work / f"resume_{done_blocks}.h5"
        Stop.stop_at = done_blocks * 256
        orig = st.io.open_sink
        st.io.open_sink = lambda out, plan, steps, x, **o: Stop.create(out, plan, steps, x, **o)
        try:
            st.simulate(sde, np.zeros((m, 1)), t1=total_blocks * 256e-3, dt=1e-3, seed=0, out=p, overwrite=True,
                        progress=False)
        except KeyboardInterrupt:
            pass
        finally:
            st.io.open_sink = orig
        with h5py.File(p, "r") as f:
            on_disk = int(f["parameters/sde_toolkit/commit"][0])
        t = time.perf_counter()
        st.resume(p, sde=sde, progress=False)
        el = time.perf_counter() - t
        rows.append((f"resume with {on_disk} frames on disk ({m} paths, 256 steps left)", f"{el:.3f} s", ""))
        p.unlink()

    print(f"\nI/O benchmark: {n} paths, {F} saved frames, OU dim 1, median of {a.reps}; "
          f"{os.cpu_count()} CPUs visible, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}\n")
    print("| measurement | time | ratio / rate |")
    print("|---|---|---|")
    for r_ in rows:
        print(f"| {r_[0]} | {r_[1]} | {r_[2]} |")


if __name__ == "__main__":
    main()
