"""Benchmark of the score subsystem (issue 5): quality at a fixed training budget, speed, sampler overhead.

For the spiral and eight Gaussians: train our model (ScoreMLP 3 x 128, VP-SDE 0.1..20, DSM, Adam + EMA) and
the seed's recipe (a plain torch DDPM: MLP on [x, t/T] with ReLU, linear betas 1e-4..0.02 over 1,000 steps,
epsilon-loss, Adam, no EMA, Algorithm 2 sampler) for the same wall-clock budget; report sliced Wasserstein
(SW, 256 projections) and MMD^2 (Gaussian kernel, median bandwidth, 2,000-row subsamples) between 10,000
generated and 10,000 fresh samples, next to the same between two fresh sets (the noise floor). Then time every
sampler on 10,000 particles x 1,000 steps against 1,000 bare forward passes of the same network.

Usage: python experiments/benchmarks/bench_score.py [--budget 60] [--threads 2] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch
from torch import nn

import sde_toolkit as st
from sde_toolkit.metrics import sliced_wasserstein
from sde_toolkit.score import ScoreMLP, TorchScore, sample, train
from sde_toolkit.score.experiments import mmd

N_EVAL = 10_000


class SeedDDPM(nn.Module):
    """The seed's recipe, in plain torch: eps_theta([x, t/T]) with ReLU, linear betas, Algorithm 2."""

    def __init__(self, dim=2, hidden=128, depth=3, n_steps=1000, beta_1=1e-4, beta_T=0.02):
        super().__init__()
        layers, d_in = [], dim + 1
        for _ in range(depth):
            layers += [nn.Linear(d_in, hidden), nn.ReLU()]
            d_in = hidden
        layers.append(nn.Linear(d_in, dim))
        self.net = nn.Sequential(*layers)
        self.T = n_steps
        self.register_buffer("betas", torch.linspace(beta_1, beta_T, n_steps, dtype=torch.float32))
        self.register_buffer("alpha_bars", torch.cumprod(1 - self.betas, 0))

    def forward(self, x, i):
        return self.net(torch.cat([x, (i.float() / self.T)[:, None]], 1))

    def loss(self, x0, gen):
        i = torch.randint(0, self.T, (x0.shape[0],), generator=gen)
        z = torch.randn(x0.shape, generator=gen)
        ab = self.alpha_bars[i][:, None]
        return ((z - self(ab.sqrt() * x0 + (1 - ab).sqrt() * z, i)) ** 2).mean()

    @torch.no_grad()
    def sample(self, n, gen):
        x = torch.randn(n, 2, generator=gen)
        for i in range(self.T - 1, -1, -1):
            ii = torch.full((n,), i)
            b, ab = self.betas[i], self.alpha_bars[i]
            mean = (x - b / (1 - ab).sqrt() * self(x, ii)) / (1 - b).sqrt()
            x = mean + b.sqrt() * torch.randn(x.shape, generator=gen) if i > 0 else mean
        return x.numpy().astype(np.float64)


def train_seed(data, budget, seed):
    torch.manual_seed(seed)
    model = SeedDDPM()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    x_all = torch.as_tensor(data, dtype=torch.float32)
    t0, k = time.perf_counter(), 0
    while time.perf_counter() - t0 < budget:
        idx = torch.randint(0, x_all.shape[0], (256,), generator=gen)
        loss = model.loss(x_all[idx], gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        k += 1
    return model, k / (time.perf_counter() - t0)


def metrics(x, fresh):
    return sliced_wasserstein(x, fresh), mmd(x, fresh)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--budget", type=float, default=60.0, help="training seconds per model and dataset")
    p.add_argument("--threads", type=int, default=1, help="torch threads (2 threads on a shared 2-core box spin-wait: ~30x slower)")
    p.add_argument("--quick", action="store_true", help="tiny budget and step counts (smoke test)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    budget = 3.0 if a.quick else a.budget
    n_steps = 50 if a.quick else 1000
    sde = st.VPSDE(0.1, 20.0, dim=2)
    rows, speed, floor_sd = [], {}, {}
    nets = {}
    for name in ("spiral", "eight_gaussians"):
        data = st.datasets.load(name, 50_000, seed=0)
        fresh = st.datasets.load(name, N_EVAL, seed=1)
        # the noise floor: two fresh sets, averaged over 5 pairs (one pair alone fluctuates by ~30 %)
        pairs = [metrics(st.datasets.load(name, N_EVAL, seed=10 + 2 * k), st.datasets.load(name, N_EVAL, seed=11 + 2 * k))
                 for k in range(5)]
        floor = tuple(np.mean(pairs, axis=0))
        floor_sd[name] = np.std(pairs, axis=0, ddof=1)
        if name == "eight_gaussians":
            # the sampler alone: the exact score of the generating mixture, default sampler
            ang = np.arange(8) * np.pi / 4
            c = 4 * np.stack([np.cos(ang), np.sin(ang)], 1) / np.sqrt(2)
            exact = st.score.GaussianMixtureScore(sde, np.full(8, 1 / 8), c, np.full(8, 0.125))
            x = sample(sde, exact, N_EVAL, method="euler_maruyama", n_steps=n_steps, seed=3)
            sw, mm = metrics(x, fresh)
            rows.append((name, f"exact score, euler_maruyama ({n_steps} evals)", 0, sw, floor[0], mm, floor[1]))
        net = ScoreMLP(2, 128, 3, seed=0)
        res = train(net, sde, data, steps=10**9, batch_size=256, lr=2e-3, seed=0, time_budget=budget)
        nets[name] = net
        speed[f"ours train steps/s ({name})"] = res.steps_per_s
        score = TorchScore(net, sde)
        for method, ns in (("euler_maruyama", n_steps), ("ancestral", n_steps), ("probability_flow", 50)):
            info = {}
            x = sample(sde, score, N_EVAL, method=method, n_steps=ns if not a.quick else 10, seed=3, info=info)
            sw, mm = metrics(x, fresh)
            rows.append((name, f"ours, {method} ({info['nfe']} evals)", res.steps, sw, floor[0], mm, floor[1]))
        seed_model, sps = train_seed(data, budget, 0)
        speed[f"seed recipe train steps/s ({name})"] = sps
        x = seed_model.sample(N_EVAL, torch.Generator().manual_seed(3))
        sw, mm = metrics(x, fresh)
        rows.append((name, "seed recipe, DDPM Alg. 2 (1000 evals)", int(sps * budget), sw, floor[0], mm, floor[1]))
    # sampler timing on one network: 10,000 particles x n_steps
    score = TorchScore(nets["spiral"], sde)
    xb = torch.randn(N_EVAL, 2)
    tb = torch.full((N_EVAL,), 0.5)
    with torch.no_grad():
        t0 = time.perf_counter()
        for _ in range(n_steps):
            nets["spiral"](xb, tb)
        bare = time.perf_counter() - t0
    timing = [("bare forward passes", n_steps, bare, 0.0)]
    for method in ("euler_maruyama", "ancestral", "probability_flow", "predictor_corrector"):
        info = {}
        ns = n_steps if method != "probability_flow" else n_steps // 2
        t0 = time.perf_counter()
        sample(sde, score, N_EVAL, method=method, n_steps=ns, seed=0, info=info)
        el = time.perf_counter() - t0
        timing.append((method, info["nfe"], el, el / (bare * info["nfe"] / n_steps) - 1))
    print(f"## Score benchmark (training budget {budget:.0f} s per model and dataset instead of the issue's "
          f"180 s; torch threads {a.threads}; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__})\n")
    print("| dataset | model / sampler | train steps | SW | SW floor | SW / floor | MMD^2 | MMD^2 floor |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.4f} | {r[4]:.4f} | {r[3] / r[4]:.2f} | {r[5]:.2e} | "
              f"{r[6]:.2e} |")
    for name, sd in floor_sd.items():
        print(f"\nNoise floor ({name}): mean over 5 pairs of fresh sets; sd SW {sd[0]:.4f}, sd MMD^2 {sd[1]:.1e}.")
    print("\n| training speed | steps/s (batch 256) |\n|---|---:|")
    for k, v in speed.items():
        print(f"| {k} | {v:.0f} |")
    print("\n| sampler (10,000 particles) | score evals | seconds | overhead vs bare forward passes |")
    print("|---|---:|---:|---:|")
    for name, nfe, el, ov in timing:
        print(f"| {name} | {nfe} | {el:.2f} | {'-' if name.startswith('bare') else f'{100 * ov:+.0f} %'} |")


if __name__ == "__main__":
    main()
