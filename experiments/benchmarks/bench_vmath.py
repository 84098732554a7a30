"""Benchmark and accuracy of the vectorizable kernels of ``sde_toolkit._vmath`` against NumPy and ``math``.

Usage::

    python experiments/benchmarks/bench_vmath.py [--repeats 15] [--n 1000000] [--no-scalar] [--no-accuracy]

Per function, ns per element (median over interleaved repeats) of: (a) the ``_vmath`` kernel in a Numba loop over
a contiguous array (vectorized: the vector width found in its LLVM IR is printed), (b) the ``math`` function in
the same Numba loop (scalar libm calls), (c) NumPy's ufunc (``out=``); then (a') and (b') again in a subprocess with
``NUMBA_LOOP_VECTORIZE=0``, the cost where a loop does not vectorize (e.g. the fused drivers' per-particle loop).
The seed density's drift ``-(0.2 x + 4 sin 2x cos 2x / (0.2 + cos^2 2x))`` is timed the same way (kernel level),
and the Cody-Waite path of ``sincos`` alone (what the Payne-Hanek fallback for ``|x| >= 2^20`` costs on top).

Accuracy: the maximum error in ulp of the correctly rounded result (a long-double reference, x86 only) of
``_vmath`` and of NumPy on random samples, and the maximum distance between them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

from sde_toolkit import _vmath as V
from sde_toolkit._jit import jit


def _loop1(f):
    @jit
    def run(x, y, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i])

    return run


def _loop2(f):
    @jit
    def run(x, y, out):
        for i in range(x.shape[0]):
            out[i] = f(x[i], y[i])

    return run


@jit(inline="always")
def _v_sincos(x):
    s, c = V.sincos(x)
    return s + c


@jit(inline="always")
def _v_sincos_cw(x):  # the Cody-Waite path alone (|x| < 2^20): what the full-domain guarantee costs on top
    ax = abs(x)
    q, rh, rl = V._reduce_cody_waite(ax)
    sr, cr = V._sincos_kernel(rh, rl)
    swap = (q & np.int64(1)) == 1
    return V.select(swap, cr, sr) + V.select(swap, sr, cr)


@jit(inline="always")
def _m_sincos(x):
    return math.sin(x) + math.cos(x)


@jit(inline="always")
def _v_seed(x):
    s, c = V.sincos(2.0 * x)
    return -(0.2 * x + 4.0 * s * c / (c * c + 0.2))


@jit(inline="always")
def _m_seed(x):
    s, c = math.sin(2.0 * x), math.cos(2.0 * x)
    return -(0.2 * x + 4.0 * s * c / (c * c + 0.2))


def _np_seed(x, out):
    c, s = np.cos(2 * x), np.sin(2 * x)
    np.negative(0.2 * x + 4 * s * c / (c * c + 0.2), out=out)


def _math(name):
    if name == "pow":
        return jit(inline="always")(lambda a, b: a**b)
    f = getattr(math, name)
    return jit(inline="always")(lambda v: f(v))


def _ufunc(f):
    return lambda x, y, o: f(x, out=o)


def cases():
    """name -> (vmath loop, math loop, numpy call, x, y)"""
    r = np.random.default_rng(0)
    n = ARGS.n
    xs = {"exp": r.uniform(-10, 10, n), "log": 10.0 ** r.uniform(-5, 5, n), "sin": r.uniform(-10, 10, n),
          "cos": r.uniform(-10, 10, n), "tanh": r.uniform(-5, 5, n), "pow": 10.0 ** r.uniform(-3, 3, n),
          "sincos": r.uniform(-10, 10, n), "sincos, |x| < 2^20 path": r.uniform(-10, 10, n),
          "seed drift": r.uniform(-10, 10, n)}
    y = r.uniform(-3, 3, n)
    out = {}
    for name in ("exp", "log", "sin", "cos", "tanh"):
        out[name] = (_loop1(getattr(V, name)), _loop1(_math(name)), _ufunc(getattr(np, name)))
    out["pow"] = (_loop2(V.pow), _loop2(_math("pow")), lambda x, y, o: np.power(x, y, out=o))
    out["sincos"] = (_loop1(_v_sincos), _loop1(_m_sincos), lambda x, y, o: np.add(np.sin(x), np.cos(x), out=o))
    out["sincos, |x| < 2^20 path"] = (_loop1(_v_sincos_cw), _loop1(_m_sincos),
                                      lambda x, y, o: np.add(np.sin(x), np.cos(x), out=o))
    out["seed drift"] = (_loop1(_v_seed), _loop1(_m_seed), lambda x, y, o: _np_seed(x, o))
    return {k: (*v, xs[k], y) for k, v in out.items()}


def time_all(fns, repeats):
    """Interleaved repeats; median ns/element per function."""
    ts: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, (f, x, y, o) in fns.items():
            t = time.perf_counter()
            f(x, y, o)
            ts[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) / fns[k][1].size * 1e9 for k, v in ts.items()}


def vector_width(disp):
    ir = disp.inspect_llvm(disp.signatures[0])
    w = [int(m) for m in re.findall(r"<(\d+) x double>", ir)]
    return max(w) if w else 1


def speed(scalar_only=False):
    cs = cases()
    fns = {}
    for name, (v, m, npf, x, y) in cs.items():
        o = np.empty_like(x)
        v(x, y, o), m(x, y, o)  # compile
        fns[(name, "vmath")] = (v, x, y, o)
        fns[(name, "math")] = (m, x, y, o)
        if not scalar_only:
            fns[(name, "numpy")] = (npf, x, y, o)
    res = time_all(fns, ARGS.repeats)
    widths = {name: (vector_width(v), vector_width(m)) for name, (v, m, *_) in cs.items()}
    return {f"{k[0]}|{k[1]}": t for k, t in res.items()}, widths


def accuracy():
    L = np.longdouble
    if np.finfo(L).nmant < 63:
        return None
    r = np.random.default_rng(1)
    n = 1_000_000
    rows = []
    doms = [("exp", np.concatenate([r.uniform(-745, 709.7, n), r.uniform(-1, 1, n)]), None),
            ("log", np.concatenate([10.0 ** r.uniform(-307, 308, n), 1 + r.uniform(-0.01, 0.01, n)]), None),
            ("sin", np.concatenate([r.uniform(-10, 10, n), r.uniform(-1e6, 1e6, n), 2.0 ** r.uniform(20, 1000, n)]),
             None),
            ("cos", np.concatenate([r.uniform(-10, 10, n), r.uniform(-1e6, 1e6, n), 2.0 ** r.uniform(20, 1000, n)]),
             None),
            ("tanh", np.concatenate([r.uniform(-25, 25, n), r.uniform(-0.6, 0.6, n)]), None)]
    x = 10.0 ** r.uniform(-30, 30, n)
    doms.append(("pow", x, r.uniform(-700, 700, n) / np.log(x)))
    for name, x, y in doms:
        out = np.empty_like(x)
        if y is None:
            _loop1(getattr(V, name))(x, x, out)
            with np.errstate(all="ignore"):
                ref, rn = getattr(np, name)(x.astype(L)), getattr(np, name)(x)
        else:
            _loop2(V.pow)(x, y, out)
            with np.errstate(all="ignore"):
                ref, rn = np.power(x.astype(L), y.astype(L)), np.power(x, y)
        ok = np.isfinite(ref) & (np.abs(ref) > L(np.finfo(np.float64).tiny))
        sp = np.spacing(np.abs(ref[ok].astype(np.float64))).astype(L)
        e_v = float((np.abs(out[ok].astype(L) - ref[ok]) / sp).max())
        e_n = float((np.abs(rn[ok].astype(L) - ref[ok]) / sp).max())
        d = float((np.abs(out[ok] - rn[ok]) / np.spacing(np.abs(rn[ok]))).max())
        rows.append((name, x.size, e_v, e_n, d))
    return rows


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--no-scalar", action="store_true", help="skip the NUMBA_LOOP_VECTORIZE=0 subprocess")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument("--scalar-child", action="store_true", help=argparse.SUPPRESS)
    ARGS = ap.parse_args()
    if ARGS.scalar_child:
        res, widths = speed(scalar_only=True)
        print(json.dumps({"res": res, "widths": widths}))
        return
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    res, widths = speed()
    sres: dict = {}
    if not ARGS.no_scalar:
        env = dict(os.environ, NUMBA_LOOP_VECTORIZE="0")
        p = subprocess.run([sys.executable, __file__, "--scalar-child", "--repeats", str(ARGS.repeats), "--n",
                            str(ARGS.n)], env=env, capture_output=True, text=True, check=True)
        sres = json.loads(p.stdout.strip().splitlines()[-1])["res"]
    print(f"n = {ARGS.n:,}, {ARGS.repeats} interleaved repeats (median), load average at start {load:.2f}")
    print()
    print("| function | vmath loop ns | (vector width) | math loop ns | numpy ns | math/vmath | numpy/vmath | "
          "vmath scalar ns | math scalar ns |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("exp", "log", "sin", "cos", "sincos", "sincos, |x| < 2^20 path", "tanh", "pow", "seed drift"):
        v, m, n_ = res[f"{name}|vmath"], res[f"{name}|math"], res[f"{name}|numpy"]
        vs, ms = sres.get(f"{name}|vmath"), sres.get(f"{name}|math")
        print(f"| {name} | {v:.2f} | {widths[name][0]} | {m:.2f} | {n_:.2f} | {m / v:.1f} | {n_ / v:.1f} | "
              + (f"{vs:.2f} | {ms:.2f} |" if vs is not None else "n/a | n/a |"))
    if not ARGS.no_accuracy:
        rows = accuracy()
        if rows is None:
            print("\n(no 80-bit long double here: accuracy against the correctly rounded result skipped)")
            return
        print()
        print("| function | points | vmath max ulp (vs correctly rounded) | numpy max ulp | max vmath-numpy ulp |")
        print("|---|---|---|---|---|")
        for name, n_, e_v, e_n, d in rows:
            print(f"| {name} | {n_:,} | {e_v:.3f} | {e_n:.3f} | {d:.0f} |")


ARGS: argparse.Namespace

if __name__ == "__main__":
    main()
