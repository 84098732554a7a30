"""Benchmark of the fused Euler–Maruyama driver against NumPy, torchsde and the RNG limit.

Usage::

    python experiments/benchmarks/bench_em.py [--repeats 3] [--quick] [--markdown docs/benchmarks-em.md]

Rates are particle-steps per second (median over repeats). Cases:

* OU (theta = sigma = 1, dt = 1e-3, 100,000 paths x 1,000 steps, final state kept);
* the seed's Langevin density ``V = 0.1 x^2 - log(0.2 + cos(2x)^2)`` (20,000 paths x 1,000 steps, dt = 0.05);
* 2-D double well Langevin (100,000 paths x 200 steps, dt = 1e-3).

Columns: (a) ``st.simulate`` fused, float64, all cores; (b) NumPy-vectorized EM with a preallocated
``Generator(PCG64)`` normal buffer; (c) ``torchsde.sdeint(method="euler")`` (fewer steps, rate scaled; torchsde is
a benchmark-only dependency: ``pip install torchsde``); (d) the RNG limit: the same number of normals drawn by the
generator the fused driver uses (per chunk/block PCG64 streams, Numba ``standard_normal``), on the same threads.
Also the first-call compile time (fresh process, empty Numba cache) and the cached second process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import sde_toolkit as st
from sde_toolkit._jit import jit
from sde_toolkit.integrate import default_threads

SEED_EXPR = "0.1*x**2 - log(0.2 + cos(2*x)**2)"


def _median_time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


# ---------------------------------------------------------------- (a) fused simulate
def rate_simulate(sde, x0, n_steps, dt, repeats):
    st.simulate(sde, x0[:8], t1=2 * dt, dt=dt, seed=0, progress=False)  # compile outside the timing
    el = _median_time(lambda: st.simulate(sde, x0, t1=n_steps * dt, dt=dt, seed=0, save_every=n_steps,
                                          progress=False), repeats)
    return x0.shape[0] * n_steps / el


# ---------------------------------------------------------------- (b) numpy EM
def rate_numpy(grad, x0, n_steps, dt, noise_scale, repeats, dtype=np.float64):
    def run():
        rng = np.random.Generator(np.random.PCG64(0))
        x = x0.astype(dtype, copy=True)
        buf = np.empty_like(x)
        sq = dtype(math.sqrt(dt) * noise_scale)
        for _ in range(n_steps):
            rng.standard_normal(out=buf, dtype=dtype)
            buf *= sq
            x -= dtype(dt) * grad(x)
            x += buf
        return x

    return x0.shape[0] * n_steps / _median_time(run, repeats)


# ---------------------------------------------------------------- (c) torchsde
def rate_torchsde(drift_t, x0, n_steps, dt, noise_scale, repeats, dtype_name="float64"):
    try:
        import torch
        import torchsde
    except ImportError:
        return None
    dtype = getattr(torch, dtype_name)

    class _SDE(torch.nn.Module):
        noise_type = "diagonal"
        sde_type = "ito"

        def f(self, t, y):
            return drift_t(y)

        def g(self, t, y):
            return torch.full_like(y, noise_scale)

    sde = _SDE()
    y0 = torch.as_tensor(x0, dtype=dtype)
    ts = torch.tensor([0.0, n_steps * dt], dtype=dtype)
    torch.manual_seed(0)

    def run():
        with torch.no_grad():
            return torchsde.sdeint(sde, y0, ts, method="euler", dt=dt)

    return x0.shape[0] * n_steps / _median_time(run, repeats)


def rate_torch_loop(drift_t, x0, n_steps, dt, noise_scale, repeats, dtype_name="float32"):
    """A plain torch-vectorized EM loop (``torch.randn(out=)`` buffer): torchsde's float32 Brownian interval
    hangs on this time grid (recursion in ``_set_points``), so float32 is compared with this loop."""
    try:
        import torch
    except ImportError:
        return None
    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(0)

    def run():
        with torch.no_grad():
            y = torch.as_tensor(x0, dtype=dtype).clone()
            buf = torch.empty_like(y)
            sq = math.sqrt(dt) * noise_scale
            for _ in range(n_steps):
                torch.randn(y.shape, generator=gen, dtype=dtype, out=buf)
                y += dt * drift_t(y) + sq * buf
        return y

    return x0.shape[0] * n_steps / _median_time(run, repeats)


# ---------------------------------------------------------------- (d) RNG limit
@jit
def _draw(gen, out, n_steps):
    for _ in range(n_steps):
        for q in range(out.shape[0]):
            out[q] = gen.standard_normal()


def _pcg(seed, chunk, block):
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(chunk, block))))


def rate_rng(n_paths, dim, n_steps, repeats, threads):
    """PCG64 ``standard_normal`` in compiled code, one stream per (4096-path chunk, 256-step block) on a thread
    pool: the generator of noise scheme v1 (and of every Numba program that uses NumPy's generators)."""
    chunk, block = 4096, 256
    bounds = [(a, min(a + chunk, n_paths)) for a in range(0, n_paths, chunk)]
    bufs = [np.empty((e - a) * dim) for a, e in bounds]
    _draw(_pcg(0, 0, 0), bufs[0], 1)
    pool = ThreadPoolExecutor(threads)

    def run():
        for b0 in range(0, n_steps, block):
            gens = [_pcg(0, c, b0 // block) for c in range(len(bounds))]
            nb = min(block, n_steps - b0)
            list(pool.map(lambda c, gens=gens, nb=nb: _draw(gens[c], bufs[c], nb), range(len(bounds))))

    r = n_paths * n_steps / _median_time(run, repeats)
    pool.shutdown()
    return r


# ---------------------------------------------------------------- compile time in fresh processes
_COMPILE = """
import json, time, numpy as np
t0 = time.perf_counter()
import sde_toolkit as st
t1 = time.perf_counter()
sde = {model}
sde_built = time.perf_counter()
st.simulate(sde, np.zeros((4, sde.dim)), t1=0.02, dt=0.01, seed=0, progress=False)
t2 = time.perf_counter()
print(json.dumps(dict(import_s=t1 - t0, first_call_s=t2 - sde_built, model_s=sde_built - t1)))
"""


def compile_times(model: str) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "cached"):
            r = subprocess.run([sys.executable, "-c", _COMPILE.format(model=model)], env=env, capture_output=True,
                               text=True, check=True)
            out[label] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="10x fewer paths (smoke test)")
    ap.add_argument("--markdown", default=None, help="write the table to this file")
    ap.add_argument("--torch-steps", type=int, default=100, help="steps run by torchsde (rate scaled)")
    a = ap.parse_args(argv)
    scale = 10 if a.quick else 1
    threads = default_threads()
    rows = []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    # OU
    n, N, dt = 100_000 // scale, 1000, 1e-3
    ou = st.OrnsteinUhlenbeck(1.0, 1.0)
    x0 = np.zeros((n, 1))
    ra = rate_simulate(ou, x0, N, dt, a.repeats)
    rb = rate_numpy(lambda x: x, x0, N, dt, 1.0, a.repeats)
    rc = rate_torchsde(lambda y: -y, x0, a.torch_steps, dt, 1.0, a.repeats)
    rd = rate_rng(n, 1, N, a.repeats, threads)
    rows.append(("OU 1-D", n, N, ra, rb, rc, rd))

    # seed density
    n, N, dt = 20_000 // scale, 1000, 0.05
    pot = st.potentials.from_expression(SEED_EXPR)
    seed = st.OverdampedLangevin(pot)
    x0 = np.random.default_rng(0).uniform(-10, 10, (n, 1))

    def seed_grad(x):
        c, s_ = np.cos(2 * x), np.sin(2 * x)
        return 0.2 * x + 4 * s_ * c / (0.2 + c * c)

    def seed_grad_t(y):
        import torch

        c, s_ = torch.cos(2 * y), torch.sin(2 * y)
        return -(0.2 * y + 4 * s_ * c / (0.2 + c * c))

    ra = rate_simulate(seed, x0, N, dt, a.repeats)
    rb = rate_numpy(seed_grad, x0, N, dt, math.sqrt(2.0), a.repeats)
    rb32 = rate_numpy(seed_grad, x0, N, dt, math.sqrt(2.0), a.repeats, dtype=np.float32)
    # torchsde's Brownian interval degenerates on the grid k * 0.05 (its dependency-tree search did not finish in
    # 6 minutes); the per-step cost does not depend on dt, so it runs with the dyadic dt = 1/16
    rc = rate_torchsde(seed_grad_t, x0, a.torch_steps, 0.0625, math.sqrt(2.0), a.repeats)
    rt32 = rate_torch_loop(seed_grad_t, x0, N, dt, math.sqrt(2.0), a.repeats, "float32")
    rt64 = rate_torch_loop(seed_grad_t, x0, N, dt, math.sqrt(2.0), a.repeats, "float64")
    rd = rate_rng(n, 1, N, a.repeats, threads)
    rows.append(("seed density", n, N, ra, rb, rc, rd))

    # 2-D double well
    n, N, dt = 100_000 // scale, 200, 1e-3
    dw2 = st.OverdampedLangevin(st.potentials.DoubleWell(), dim=2)
    x0 = np.random.default_rng(1).normal(0, 1, (n, 2))
    ra = rate_simulate(dw2, x0, N, dt, a.repeats)
    rb = rate_numpy(lambda x: 4 * x * (x * x - 1), x0, N, dt, math.sqrt(2.0), a.repeats)
    rc = rate_torchsde(lambda y: -4 * y * (y * y - 1), x0, max(10, a.torch_steps // 5), dt, math.sqrt(2.0),
                       a.repeats)
    rd = rate_rng(n, 2, N, a.repeats, threads)
    rows.append(("double well 2-D", n, N, ra, rb, rc, rd))

    comp_ou = compile_times("st.OrnsteinUhlenbeck(1.0, 1.0)")
    comp_seed = compile_times(f"st.OverdampedLangevin({SEED_EXPR!r})")

    def m(r):
        return "n/a" if r is None else f"{r / 1e6:.0f}"

    def ratio(x, y):
        return "n/a" if (x is None or y is None) else f"{x / y:.2f}"

    lines = [
        f"threads: {threads}; load average at start: {load:.2f}; repeats: {a.repeats} (median); "
        f"torchsde ran {a.torch_steps} steps (double well: {max(10, a.torch_steps // 5)}), rate scaled"
        + ("; --quick (10x fewer paths)" if a.quick else ""),
        "",
        "| case | paths | steps | (a) fused M/s | (b) numpy M/s | (c) torchsde M/s | (d) RNG M/s | a/b | a/c | a/d |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, n, N, ra, rb, rc, rd in rows:
        lines.append(f"| {name} | {n} | {N} | {m(ra)} | {m(rb)} | {m(rc)} | {m(rd)} | {ratio(ra, rb)} | "
                     f"{ratio(ra, rc)} | {ratio(ra, rd)} |")
    lines += [
        "",
        f"seed density, plain vectorized loops: numpy float32 {m(rb32)} M/s; torch float64 {m(rt64)} M/s, "
        f"torch float32 {m(rt32)} M/s (plain loops; torchsde float32 hangs in its Brownian interval). "
        "The fused driver has no float32 mode.",
        "",
        "| model | import s | first call (cold cache) s | second process (cached) s |",
        "|---|---|---|---|",
        f"| OU | {comp_ou['cold']['import_s']:.2f} | {comp_ou['cold']['first_call_s']:.2f} | "
        f"{comp_ou['cached']['first_call_s']:.2f} |",
        f"| seed density | {comp_seed['cold']['import_s']:.2f} | {comp_seed['cold']['first_call_s']:.2f} | "
        f"{comp_seed['cached']['first_call_s']:.2f} |",
    ]
    text = "\n".join(lines)
    print(text)
    if a.markdown:
        with open(a.markdown, "w") as fh:
            fh.write("# Benchmark: fused Euler–Maruyama (`experiments/benchmarks/bench_em.py`)\n\n")
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
