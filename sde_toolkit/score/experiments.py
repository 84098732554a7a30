"""The seed's toy model reproduced: DDPM on the 2-D spiral, "Gaussian blob to spiral".

:func:`run_ddpm_spiral` is what ``experiments/ddpm_spiral.py`` (and later the TOML runner) calls.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .. import datasets
from ..metrics import mmd as _mmd
from ..metrics import sliced_wasserstein
from ..sde import VPSDE
from .networks import ScoreMLP
from .sampling import sample
from .scores import TorchScore
from .training import train


def run_ddpm_spiral(outdir: str | Path = "experiments/output/ddpm_spiral", steps: int = 4000, seed: int = 0, *,
                    n_samples: int = 5000,
                    snapshot_times: tuple[float, ...] = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.0), hidden: int = 128, depth: int = 3,
                    batch_size: int = 256, lr: float = 2e-3, n_sample_steps: int = 1000,
                    method: str = "ancestral", device: str | None = None, progress: bool = False,
                    torch_threads: int | None = 1) -> dict:
    """Train a DDPM (VP-SDE beta 0.1..20 discretized exactly on 1,000 steps, epsilon-loss, sinusoidal step
    embedding) on the spiral, sample it, and save the reverse-process snapshots.

    Writes to ``outdir``: ``reverse_process.png`` (snapshots at ``snapshot_times``, from ``N(0, I)`` at ``t = 1`` to the
    spiral at ``t = 0``), ``loss.png`` and ``loss.csv``, ``model.pt``/``model.json`` (checkpoint), ``samples.npy``,
    ``metrics.json``.

    ``torch_threads`` sets torch's intra-op threads for the run (restored afterwards): on a shared 2-core
    machine two threads spin-wait and train ~30x slower than one.

    Returns:
        Metrics: ``sliced_wasserstein`` and ``mmd`` between samples and fresh data, the same between two fresh
        data sets (``*_noise_floor``), ``final_loss``, ``train_seconds``, ``steps_per_s``, ``sample_seconds``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    old_threads = torch.get_num_threads()
    if torch_threads is not None:
        torch.set_num_threads(int(torch_threads))
    try:
        return _run(Path(outdir), steps, seed, n_samples, snapshot_times, hidden, depth, batch_size, lr,
                    n_sample_steps, method, device, progress, plt)
    finally:
        torch.set_num_threads(old_threads)


def _run(out, steps, seed, n_samples, snapshot_times, hidden, depth, batch_size, lr, n_sample_steps, method, device,
         progress, plt) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    data = datasets.spiral(20000, seed=seed)
    sde = VPSDE(0.1, 20.0, dim=2)
    net = ScoreMLP(2, hidden, depth, embedding="sinusoidal", n_steps=1000, seed=seed)
    res = train(net, sde, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed, loss="ddpm", n_steps=1000,
                mapping="exact", device=device, progress=progress, loss_file=out / "loss.csv",
                checkpoint=out / "model.pt")
    net.to("cpu")
    score = TorchScore(net, sde)
    t0 = time.perf_counter()
    save_every = max(1, n_sample_steps // 100)
    with torch.no_grad():
        xs, t_path, x_path = sample(sde, score, n_samples, method=method, n_steps=n_sample_steps, seed=seed + 1,
                                    return_path=True, save_every=save_every)
    sample_seconds = time.perf_counter() - t0
    np.save(out / "samples.npy", xs)
    fresh = datasets.spiral(n_samples, seed=seed + 1000)
    fresh2 = datasets.spiral(n_samples, seed=seed + 2000)
    metrics = {
        "sliced_wasserstein": sliced_wasserstein(xs, fresh),
        "sliced_wasserstein_noise_floor": sliced_wasserstein(fresh2, fresh),
        "mmd": mmd(xs, fresh),
        "mmd_noise_floor": mmd(fresh2, fresh),
        "final_loss": float(np.mean(res.losses[-min(200, res.steps):])),
        "train_steps": res.steps,
        "train_seconds": res.seconds,
        "steps_per_s": res.steps_per_s,
        "sample_seconds": sample_seconds,
        "method": method,
        "n_sample_steps": n_sample_steps,
    }
    # snapshots at the saved times nearest to snapshot_times (the VP-SDE keeps the blob until late times)
    idx = [int(np.argmin(np.abs(t_path - ts))) for ts in snapshot_times]
    k = len(idx)
    fig, axes = plt.subplots(1, k, figsize=(2.6 * k, 2.8), sharex=True, sharey=True)
    for ax, t, x in zip(np.atleast_1d(axes), t_path[idx], x_path[idx]):
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4, color="tab:blue")
        ax.set_title(f"t = {t:.2f}")
        ax.set_xlim(-2.5, 2.5)
        ax.set_ylim(-2.5, 2.5)
        ax.set_aspect("equal")
    fig.suptitle("Reverse process: Gaussian blob to spiral")
    fig.tight_layout()
    fig.savefig(out / "reverse_process.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3))
    w = max(1, res.steps // 100)
    smooth = np.convolve(res.losses, np.ones(w) / w, mode="valid")
    ax.plot(np.arange(smooth.size) + w, smooth)
    ax.set_xlabel("step")
    ax.set_ylabel("epsilon-loss")
    ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(out / "loss.png", dpi=110)
    plt.close(fig)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def mmd(a, b):
    """Unbiased squared RBF MMD on seeded subsamples of at most 2,000 rows per set (quadratic cost bounded)."""
    return _mmd(a, b, max_n=2000, seed=0)
