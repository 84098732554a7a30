"""Training a score network: Adam, EMA of the weights, gradient clipping, deterministic on CPU for a seed;
checkpoints as a state dict plus a JSON config.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._progress import Progress
from ..sde.registry import from_config, to_config, try_to_config
from . import _marginal, _threads
from .networks import MarginalCoefTorch, ScoreMLP, build_network, precondition

LOSSES = ("dsm", "ddpm")


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes:
        losses: per-step training loss ``(steps_done,)``.
        steps: number of optimizer steps done (fewer than asked when ``time_budget`` ran out).
        seconds: wall-clock training time.
        steps_per_s: ``steps / seconds``.
        raw_state_dict: the last (non-averaged) weights; the network itself holds the EMA weights when
            ``use_ema`` was true.
        config: the training configuration (JSON-serializable).
        loss_file, checkpoint: paths written, or ``None``.
    """

    losses: np.ndarray
    steps: int
    seconds: float
    steps_per_s: float
    raw_state_dict: dict = field(repr=False)
    config: dict
    loss_file: Path | None = None
    checkpoint: Path | None = None


def _data_tensor(data, dim: int) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        arr = data.detach().cpu().to(torch.float64).numpy()
    else:
        arr = np.asarray(data, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise ValueError(f"data must have shape (n, {dim}) to match the network's dim, got {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError("data is empty")
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        raise ValueError(f"data contains NaN or inf (first at row {int(np.flatnonzero(~finite)[0])})")
    return torch.as_tensor(arr)


def _resolve_device(device: str | torch.device | None, net: torch.nn.Module) -> torch.device:
    if device is None:
        return next(net.parameters()).device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    return dev


def _clip_grad_norm_(params: list[torch.Tensor], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_`` (2-norm, same arithmetic) with multi-tensor ops and no per-call grouping."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))


def train(net: ScoreMLP, sde, data, *, steps: int = 2000, batch_size: int = 256, lr: float = 1e-3, seed: int = 0,
          loss: str = "dsm", n_steps: int = 1000, mapping: str = "exact", eps: float = 1e-5, T: float | None = None,
          ema_decay: float = 0.999, use_ema: bool = True, grad_clip: float | None = 1.0,
          device: str | torch.device | None = None, progress: bool | None = None,
          loss_file: str | Path | None = None, checkpoint: str | Path | None = None,
          time_budget: float | None = None, threads: int | None = None) -> TrainResult:
    """Train a noise-prediction network by denoising score matching (``loss="dsm"``) or DDPM's epsilon-loss.

    ``"dsm"``: ``E |sigma(t) score(x_t, t) + z|^2 = E |eps_theta(c_in x_t, t) - z|^2``, ``t ~ U[eps, T]``, for any
    SDE declaring ``affine_marginal`` (VP, VE, scalar OU; ``x_t`` from ``sde.marginal_coef``). ``"ddpm"``: the
    simple loss on the discrete schedule ``sde.discretize(n_steps, mapping)`` of a ``discretizable`` SDE (VPSDE),
    ``t_i = i T / N`` (with the default ``mapping="exact"`` the schedule's ``alpha_bar_i`` are the VP marginals,
    so the trained network is also a score of the VP-SDE at the grid times).

    Adam with learning rate ``lr``; gradient-norm clipping at ``grad_clip``; an exponential moving average of
    the weights with decay ``min(ema_decay, (1 + k) / (10 + k))`` at step ``k``, copied into ``net`` at the end
    when ``use_ema``. Batches are drawn with replacement. On CPU the result is bitwise deterministic for a
    ``seed`` (given the network's initial weights): all randomness comes from one ``torch.Generator``.

    Args:
        net: the network (trained in place); its ``dim`` must match the data.
        sde: an SDE declaring ``affine_marginal``: VPSDE, VESDE, or scalar OrnsteinUhlenbeck (``T`` required
            where ``sde.T`` is ``None``, as for OU).
        data: ``(n, dim)`` array or tensor, finite.
        steps: optimizer steps (>= 1).
        batch_size: rows per step.
        lr: Adam learning rate.
        seed: seeds batches, times and noise.
        loss: ``"dsm"`` or ``"ddpm"``.
        n_steps, mapping: the DDPM schedule (``loss="ddpm"``).
        eps, T: the DSM time interval.
        device: ``None`` (the network's device), ``"cpu"``, ``"cuda"``, or ``"auto"`` (CUDA when available).
        progress: a tqdm bar with the running loss and steps/s: ``True`` always, ``False`` never, ``None``
            (default) once training is projected to take over ~2 s.
        loss_file: write ``step,loss`` CSV lines there.
        checkpoint: save the trained network there (``.pt`` state dict plus ``.json`` config).
        time_budget: stop after this many seconds (benchmarks).
        threads: torch intra-op threads during training (``None``: one for networks below
            ``_threads.SMALL_PARAMS`` parameters, whose many small kernels only spin-wait on more threads;
            torch's current count for larger ones); the previous count is restored afterwards, also on errors.
            The count used is ``result.config["threads"]``.

    Raises:
        ValueError: bad ``steps``/``batch_size``/``lr``, ``loss``, data with NaN or of the wrong dim.
    """
    for name, v in (("steps", steps), ("batch_size", batch_size), ("n_steps", n_steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be > 0, got {lr}")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    if not 0.0 <= ema_decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
    if progress not in (True, False, None):
        raise ValueError(f"progress must be True, False or None, got {progress!r}")
    tinfo: dict = {}
    with _threads.torch_threads(net, threads, tinfo):
        result = _train(net, sde, data, steps=steps, batch_size=batch_size, lr=lr, seed=seed, loss=loss,
                        n_steps=n_steps, mapping=mapping, eps=eps, T=T, ema_decay=ema_decay, use_ema=use_ema,
                        grad_clip=grad_clip, device=device, progress=progress, loss_file=loss_file,
                        checkpoint=checkpoint, time_budget=time_budget)
    result.config["threads"] = tinfo["threads"]
    return result


def _train(net, sde, data, *, steps, batch_size, lr, seed, loss, n_steps, mapping, eps, T, ema_decay, use_ema,
           grad_clip, device, progress, loss_file, checkpoint, time_budget) -> TrainResult:
    dim = int(net.dim)
    x_all = _data_tensor(data, dim)
    sde = _marginal.for_dim(sde, dim)
    if checkpoint is not None:
        to_config(sde)  # a checkpoint stores the SDE's config: refuse an unregistered SDE before training
    dev = _resolve_device(device, net)
    net.to(dev)
    dtype = next(net.parameters()).dtype
    x_all = x_all.to(dev, dtype)
    schedule = None
    if loss == "ddpm":
        if not sde.discretizable:
            raise ValueError(f"loss='ddpm' needs a discretizable SDE (a DDPM schedule, sde.discretize: VPSDE), "
                             f"got {sde!r}")
        schedule = sde.discretize(n_steps, mapping=mapping)
        schedule.check_prior(stacklevel=3)
        T_ = _marginal.end_time(sde)
    else:
        T_ = _marginal.end_time(sde, T)
        sde.check_prior(stacklevel=3)

    gen = torch.Generator().manual_seed(int(seed))
    params: list[torch.Tensor] = list(net.parameters())
    # fused (single-kernel) Adam where this torch build has it for the device, else the multi-tensor one
    try:
        opt = torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError):
        opt = torch.optim.Adam(params, lr=lr, foreach=True)
    ema = [p.detach().clone() for p in params]
    bs = int(batch_size)
    n_data = x_all.shape[0]
    on_cpu = dev.type == "cpu"
    if loss == "ddpm":
        # per-step tables, built once: c_in(t_i) sqrt(ab_i), c_in(t_i) sqrt(1 - ab_i), t_i (i = 1..N), so that
        # the network input c_in x_t = k0_i x0 + k1_i z is two gathers and a fused multiply-add per step
        assert schedule is not None  # built above for loss == "ddpm"
        N = schedule.n_steps
        ab = torch.as_tensor(schedule.alpha_bars, dtype=torch.float64, device=dev)
        t_grid = torch.arange(1, N + 1, dtype=torch.float64, device=dev) * (T_ / N)
        c_in = precondition(sde, t_grid.to(dtype))[0].to(torch.float64).reshape(-1)
        k0_tab = (c_in * torch.sqrt(ab)).to(dtype)[:, None]
        k1_tab = (c_in * torch.sqrt(1.0 - ab)).to(dtype)[:, None]
        t_tab = t_grid.to(dtype)

    coef = MarginalCoefTorch(sde)

    def step_loss(x0):
        # noise-prediction form of both losses: |eps_theta(c_in x_t, t) - z|^2, summed over dim, batch mean
        # (for DSM with lambda = sigma^2 this equals |sigma score + z|^2 with score = -eps_theta / sigma)
        if loss == "dsm":
            u = torch.rand(bs, generator=gen, dtype=torch.float64)
            z = torch.randn((bs, dim), generator=gen, dtype=torch.float64).to(dtype)
            tt = eps + (T_ - eps) * u  # on the host: the SDE's coefficients are evaluated there
            c_in, a, b, std = coef.precondition64(tt, dev)
            z = z.to(dev)
            tt = tt.to(dev)
            xin = torch.addcmul((c_in * a).to(dtype)[:, None] * x0, (c_in * std).to(dtype)[:, None], z)
            if b is not None:
                xin = xin + (c_in[:, None] * b).to(dtype)
            tt = tt.to(dtype)
        else:
            i = torch.randint(0, N, (bs,), generator=gen).to(dev)
            z = torch.randn((bs, dim), generator=gen, dtype=torch.float64).to(dev, dtype)
            xin = torch.addcmul(k0_tab[i] * x0, k1_tab[i], z)
            tt = t_tab[i]
        res = net(xin, tt) - z
        return (res * res).sum(dim=1).mean()

    losses = np.empty(int(steps))
    net.train()
    t_start = time.perf_counter()
    bar = Progress(int(steps), progress, "train")
    done = 0
    for k in range(int(steps)):
        idx = torch.randint(0, n_data, (bs,), generator=gen)
        x0 = torch.index_select(x_all, 0, idx if on_cpu else idx.to(dev))
        val = step_loss(x0)
        opt.zero_grad(set_to_none=True)
        val.backward()
        if grad_clip is not None:
            _clip_grad_norm_(params, grad_clip)
        opt.step()
        d = min(ema_decay, (1.0 + k) / (10.0 + k))
        with torch.no_grad():
            torch._foreach_mul_(ema, d)
            torch._foreach_add_(ema, params, alpha=1.0 - d)
        losses[k] = float(val.detach())
        done = k + 1
        bar.update(1)
        if bar.bar is not None and k % 50 == 0:
            bar.bar.set_postfix(loss=f"{np.mean(losses[max(0, k - 49):k + 1]):.4f}")
        if time_budget is not None and time.perf_counter() - t_start > time_budget:
            break
    bar.close()
    seconds = time.perf_counter() - t_start
    losses = losses[:done]
    net.eval()
    raw = {k_: v.detach().clone() for k_, v in net.state_dict().items()}
    if use_ema:
        with torch.no_grad():
            torch._foreach_copy_(params, ema)
    config = {"loss": loss, "steps": done, "batch_size": int(batch_size), "lr": float(lr), "seed": int(seed),
              "eps": float(eps), "T": T_, "ema_decay": float(ema_decay), "use_ema": bool(use_ema),
              "grad_clip": grad_clip, "device": str(dev), "sde": try_to_config(sde)}
    if loss == "ddpm":
        config.update(n_steps=int(n_steps), mapping=mapping)
    lf = None
    if loss_file is not None:
        lf = Path(loss_file)
        lf.parent.mkdir(parents=True, exist_ok=True)
        with open(lf, "w") as fh:
            fh.write("step,loss\n")
            for k, loss_k in enumerate(losses.tolist()):
                fh.write(f"{k + 1},{loss_k:.8g}\n")
    ck = None
    if checkpoint is not None:
        ck = save_checkpoint(checkpoint, net, sde=sde, extra={"training": config})
    return TrainResult(losses=losses, steps=done, seconds=seconds, steps_per_s=done / max(seconds, 1e-12),
                       raw_state_dict=raw, config=config, loss_file=lf, checkpoint=ck)


def save_checkpoint(path: str | Path, net: ScoreMLP, sde=None, extra: dict | None = None) -> Path:
    """Write ``path`` (``.pt``: the state dict) and ``path`` with suffix ``.json`` (network config, SDE, extra).

    The SDE is stored as :func:`sde_toolkit.sde.registry.to_config` gives it (the one model serialization of
    configs and run files). Returns the ``.pt`` path.
    """
    p = Path(path)
    if p.suffix != ".pt":
        p = p.with_suffix(".pt")
    p.parent.mkdir(parents=True, exist_ok=True)
    cfg = {"network": {"class": type(net).__name__, **net.config}}
    if sde is not None:
        cfg["sde"] = to_config(sde)
    if extra:
        cfg.update(extra)
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, p)
    p.with_suffix(".json").write_text(json.dumps(cfg, indent=2))
    return p


def load_checkpoint(path: str | Path, map_location: str = "cpu"):
    """Read a checkpoint written by :func:`save_checkpoint`: returns ``(net, sde or None, config)``.

    The SDE is rebuilt by :func:`sde_toolkit.sde.registry.from_config`; checkpoints written before the registry
    existed use the same keys (``vpsde``, ``vesde``, ``ornstein_uhlenbeck``) and load unchanged.
    """
    p = Path(path)
    if p.suffix != ".pt":
        p = p.with_suffix(".pt")
    cfg = json.loads(p.with_suffix(".json").read_text())
    net = build_network(copy.deepcopy(cfg["network"]))
    net.load_state_dict(torch.load(p, map_location=map_location, weights_only=True))
    net.eval()
    sde = from_config(cfg["sde"]) if "sde" in cfg else None
    return net, sde, cfg
