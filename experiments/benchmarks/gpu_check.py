"""Device check for the score engine (run only where a CUDA GPU exists; CI never needs it).

Checks, in one short run:

1. The score network's forward pass agrees between CPU and CUDA (float32, rtol 1e-5 / atol 1e-6 scaled).
2. ``TorchScore`` on a CUDA network returns the same scores as on CPU (numpy in, numpy out).
3. Training on CUDA for a fixed number of steps learns a 2-D correlated Gaussian's score: the relative score
   error over t in [0.05, 1] is small, and the reverse-SDE sampler driven by the CUDA network reproduces the
   target's mean and covariance; training steps/s on CUDA vs CPU are reported.
4. The DDPM ancestral sampler with the exact score (GaussianMixtureScore) reproduces N(0.7, 1.5^2) moments
   (check 30 of TESTING.md) — host numpy, run here so the whole score path is exercised on the device machine.

Prints a table and exits non-zero if any check fails. Usage: ``python experiments/benchmarks/gpu_check.py``.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

import sde_toolkit as st
from sde_toolkit.score import GaussianMixtureScore, ScoreMLP, TorchScore, train


def main(device: str = "cuda") -> int:
    """``device="cpu"`` dry-runs the same checks on the CPU (to validate the script without a GPU)."""
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    dev = torch.device(device)
    rows = []
    ok_all = True

    def report(name, value, threshold, ok, note=""):
        nonlocal ok_all
        ok_all &= bool(ok)
        rows.append({"check": name, "value": value, "threshold": threshold, "pass": bool(ok), "note": note})
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {value:.4g} (threshold {threshold:.4g}) {note}", flush=True)

    # 1. forward pass CPU vs CUDA
    torch.manual_seed(0)
    net = ScoreMLP(2, hidden=128, depth=3, seed=0)
    x = torch.randn(4096, 2)
    t = torch.rand(4096) * 0.95 + 0.05
    with torch.no_grad():
        out_cpu = net(x, t)
        net_gpu = ScoreMLP(2, hidden=128, depth=3, seed=0).to(dev)
        net_gpu.load_state_dict(net.state_dict())
        out_gpu = net_gpu(x.to(dev), t.to(dev)).cpu()
    rel = float((out_gpu - out_cpu).abs().max() / out_cpu.abs().max())
    report("forward CPU vs CUDA, max rel diff", rel, 1e-5, rel <= 1e-5, f"torch {torch.__version__}, "
           f"{torch.cuda.get_device_name(0) if device == 'cuda' else 'cpu dry run'}")

    # 2. TorchScore on CUDA vs CPU
    vp = st.VPSDE(0.1, 20.0, dim=2)
    xs = np.random.default_rng(1).standard_normal((2048, 2))
    s_cpu = TorchScore(net, vp)(xs, 0.3)
    s_gpu = TorchScore(net_gpu, vp)(xs, 0.3)
    rel = float(np.abs(s_gpu - s_cpu).max() / np.abs(s_cpu).max())
    report("TorchScore CPU vs CUDA, max rel diff", rel, 1e-5, rel <= 1e-5)

    # 3. training on CUDA: a 2-D correlated Gaussian
    mean = np.array([1.0, -0.5])
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    data = np.random.default_rng(2).multivariate_normal(mean, cov, size=50000)
    steps = 3000
    timings = {}
    nets = {}
    for d, k in ((device, steps), ("cpu", 300)):
        n_ = ScoreMLP(2, hidden=64, depth=2, seed=3)
        t0 = time.perf_counter()
        train(n_, vp, data, steps=k, batch_size=512, lr=2e-3, seed=3, device=d)
        if d == "cuda":
            torch.cuda.synchronize()
        timings[d + ("" if d != "cpu" or device != "cpu" else "_ref")] = k / (time.perf_counter() - t0)
        nets.setdefault(d, n_)
    print(f"training steps/s: {timings}", flush=True)
    learned = TorchScore(nets[device], vp)
    exact = GaussianMixtureScore(vp, [1.0], mean[None], cov[None])
    errs = []
    rng = np.random.default_rng(4)
    for tt in np.linspace(0.05, 1.0, 20):
        m, s = vp.marginal(np.zeros((1, 2)), tt)
        a = float(np.exp(-0.5 * vp.integrated_beta(tt)))
        ct = a * a * cov + (1 - a * a) * np.eye(2)
        xt = rng.multivariate_normal(a * mean, ct, size=4000)
        e = exact(xt, tt)
        errs.append(np.linalg.norm(learned(xt, tt) - e) / np.linalg.norm(e))
    err = float(np.mean(errs))
    report(f"learned score rel. L2 error ({device} training)", err, 0.10, err <= 0.10, f"{steps} steps, 2x64 MLP")
    samples = st.sample(vp, learned, 20000, method="euler_maruyama", n_steps=500, seed=5)
    dm = float(np.abs(samples.mean(0) - mean).max())
    dc = float(np.abs(np.cov(samples.T) - cov).max())
    report("reverse SDE with CUDA score: |mean error|", dm, 0.05, dm <= 0.05)
    report("reverse SDE with CUDA score: |cov error|", dc, 0.10, dc <= 0.10)

    # 4. DDPM ancestral with the exact score
    vp1 = st.VPSDE(0.1, 20.0, dim=1)
    gm = GaussianMixtureScore(vp1, [1.0], [[0.7]], [[[2.25]]])
    n = 100000
    xs = st.sample(vp1, gm, n, method="ancestral", n_steps=1000, seed=6)
    se = 1.5 / np.sqrt(n)
    dm = float(abs(xs.mean() - 0.7))
    rv = float(abs(xs.var() / 2.25 - 1))
    report("DDPM ancestral exact score: |mean - 0.7|", dm, 5 * se, dm <= 5 * se)
    report("DDPM ancestral exact score: |var/2.25 - 1|", rv, 0.005 + 5 * np.sqrt(2 / n), rv <= 0.005 + 5 * np.sqrt(2 / n))

    print(json.dumps({"rows": rows, "train_steps_per_s": timings}, indent=1, default=float))
    return 0 if ok_all else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "cuda"))
