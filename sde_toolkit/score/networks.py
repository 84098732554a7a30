"""Score networks: an MLP that predicts the noise, ``score(x, t) = -eps_theta(c_in(t) x, t) / sigma(t)``.

The network never sees the SDE: :func:`precondition` turns the SDE's declared affine marginal
``X_t | x0 ~ N(a x0 + b, sigma^2 I)`` (``sde.marginal_coef``) into the input scale ``c_in = 1 / sqrt(a^2 + sigma^2)`` (unit variance for
unit-variance data) and the output scale ``1 / sigma``, so the regression target (standard normal noise) has
unit variance at every ``t`` and the score is well scaled even where ``sigma -> 0``.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

EMBEDDINGS = ("fourier", "sinusoidal")


class GaussianFourierEmbedding(nn.Module):
    """``t -> [sin(2 pi W t), cos(2 pi W t)]`` with fixed ``W ~ N(0, scale^2)`` (continuous ``t in [0, T]``)."""

    W: torch.Tensor

    def __init__(self, embed_dim: int, scale: float, generator: torch.Generator | None = None):
        super().__init__()
        w = torch.randn(embed_dim // 2, generator=generator) * scale
        self.register_buffer("W", w)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        proj = 2.0 * math.pi * t[:, None] * self.W[None, :]
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)


class SinusoidalEmbedding(nn.Module):
    """Transformer embedding of the discrete step ``k = t * n_steps`` (DDPM): ``[sin(k f_j), cos(k f_j)]``,
    ``f_j = 10000^{-j / (embed_dim/2)}``."""

    freqs: torch.Tensor

    def __init__(self, embed_dim: int, n_steps: int = 1000):
        super().__init__()
        half = embed_dim // 2
        self.n_steps = int(n_steps)
        self.register_buffer("freqs", torch.exp(-math.log(10000.0) * torch.arange(half) / half))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        k = t[:, None] * self.n_steps
        return torch.cat([torch.sin(k * self.freqs), torch.cos(k * self.freqs)], dim=1)


class ScoreMLP(nn.Module):
    """A noise-prediction MLP ``eps_theta(x, t)`` with SiLU activations and a time embedding in every layer.

    ``h_0 = SiLU(W_0 x + U_0 e(t))``, ``h_l = SiLU(W_l h_{l-1} + U_l e(t))`` for ``l < depth``, output
    ``W_out h``, where ``e(t)`` is a Gaussian-Fourier embedding (``embedding="fourier"``, continuous ``t``) or a
    sinusoidal one of the step ``t * n_steps`` (``embedding="sinusoidal"``, discrete DDPM steps), followed by
    ``Linear + SiLU``. Used through :class:`~sde_toolkit.score.TorchScore`, which gives
    ``score = -eps / sigma(t)``.

    Args:
        dim: data dimension.
        hidden: width of the hidden layers.
        depth: number of hidden layers (>= 1).
        embedding: ``"fourier"`` or ``"sinusoidal"``.
        embed_dim: size of the time embedding (even).
        fourier_scale: standard deviation of the Fourier frequencies (``t`` in [0, 1]).
        n_steps: number of discrete steps for the sinusoidal embedding.
        seed: seeds the initial weights (and Fourier frequencies) without touching the global torch RNG.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, *, embedding: str = "fourier",
                 embed_dim: int = 32, fourier_scale: float = 4.0, n_steps: int = 1000, seed: int | None = None):
        super().__init__()
        for name, v in (("dim", dim), ("hidden", hidden), ("depth", depth), ("embed_dim", embed_dim),
                        ("n_steps", n_steps)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if embed_dim % 2:
            raise ValueError(f"embed_dim must be even, got {embed_dim}")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
        self.config = {"dim": int(dim), "hidden": int(hidden), "depth": int(depth), "embedding": embedding,
                       "embed_dim": int(embed_dim), "fourier_scale": float(fourier_scale), "n_steps": int(n_steps)}
        self.dim = int(dim)
        gen = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(int(seed))
            self.embed: nn.Module
            if embedding == "fourier":
                self.embed = GaussianFourierEmbedding(embed_dim, fourier_scale, generator=gen)
            else:
                self.embed = SinusoidalEmbedding(embed_dim, n_steps)
            self.t_mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.SiLU())
            self.layers = nn.ModuleList([nn.Linear(dim if i == 0 else hidden, hidden) for i in range(depth)])
            self.t_proj = nn.ModuleList([nn.Linear(hidden, hidden, bias=False) for _ in range(depth)])
            self.out: nn.Linear = nn.Linear(hidden, dim)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``eps_theta(x, t)``: ``x`` ``(n, dim)`` (already multiplied by ``c_in``), ``t`` ``(n,)``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        e = self.t_mlp(self.embed(t.to(x.dtype)))
        # All layers' time shifts ``U_l e(t) + b_l`` in one matrix product (the per-layer weights stay separate
        # parameters, so state dicts are unchanged); then ``h_l = SiLU(b_l + U_l e + W_l h_{l-1})`` per layer.
        layers = cast(list[nn.Linear], list(self.layers))
        t_proj = cast(list[nn.Linear], list(self.t_proj))
        if len(layers) == 1:
            shifts: tuple[torch.Tensor, ...] = (F.linear(e, t_proj[0].weight, layers[0].bias),)
        else:
            U = torch.cat([tp.weight for tp in t_proj])
            b = torch.cat([lin.bias for lin in layers])
            shifts = F.linear(e, U, b).split(layers[0].out_features, dim=1)
        h = x
        for lin, s in zip(layers, shifts):
            h = self.act(torch.addmm(s, h, lin.weight.t()))
        return self.out(h)


class MarginalCoefTorch:
    """``sde.marginal_coef(t)`` for tensors: ``(a, b, std)`` as float64 tensors (training calls it every step).

    The SDE's own closed form is evaluated in float64 NumPy on the host (``t`` is a batch of times; on the CPU both
    conversions share memory) and the results are moved once. ``b`` is ``None`` where the SDE's centre is zero
    (VP, VE), so that callers skip adding zeros; that fact is read once, when the object is built.
    """

    def __init__(self, sde):
        self.sde = sde
        self.shifted = bool(np.any(sde.center))

    def _host(self, t: torch.Tensor):
        return self.sde.marginal_coef(t.detach().to("cpu", torch.float64).numpy())

    def _move(self, arrays, b, dev: torch.device):
        if dev.type == "cpu":
            out = [torch.from_numpy(np.asarray(v)) for v in arrays]
        else:  # one host-to-device copy for all of them
            out = list(torch.as_tensor(np.stack(arrays), device=dev).unbind(0))
        return out, (torch.as_tensor(b, device=dev) if self.shifted else None)

    def __call__(self, t: torch.Tensor, device: torch.device | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        a, b, std = self._host(t)
        (a_t, std_t), b_t = self._move((a, std), b, t.device if device is None else torch.device(device))
        return a_t, b_t, std_t

    def precondition64(self, t: torch.Tensor, device: torch.device | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``(c_in, a, b, std)`` in float64, ``c_in = 1 / sqrt(a^2 + std^2)`` (computed on the host as well)."""
        a, b, std = self._host(t)
        c_in = 1.0 / np.sqrt(a * a + std * std)
        (c_t, a_t, std_t), b_t = self._move((c_in, a, std), b, t.device if device is None else torch.device(device))
        return c_t, a_t, b_t, std_t


def _coeffs_torch(sde, t: torch.Tensor, device: torch.device | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(a, b, std)`` of ``sde.marginal_coef(t)`` as float64 tensors on ``device`` (default ``t``'s); see
    :class:`MarginalCoefTorch`."""
    return MarginalCoefTorch(sde)(t, device)


def _precondition64(sde, t: torch.Tensor, device: torch.device | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """``(c_in, a, b, std)`` in float64 on ``device`` (default ``t``'s; ``t`` ``(n,)``); ``b`` is ``None`` where it
    is zero."""
    return MarginalCoefTorch(sde).precondition64(t, device)


def precondition(sde, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c_in, sigma)`` as ``(n, 1)`` tensors on ``t``'s device: ``c_in = 1/sqrt(a^2 + sigma^2)``, ``sigma = std(t)``,
    with ``(a, b, std) = sde.marginal_coef(t)`` (any SDE declaring ``affine_marginal``).

    Computed in float64, returned in float32 (float64 when ``t`` is float64).
    """
    c_in, _, _, std = _precondition64(sde, t.reshape(-1))
    dt = torch.float32 if t.dtype != torch.float64 else torch.float64
    return c_in.to(dt).reshape(-1, 1), std.to(dt).reshape(-1, 1)


def build_network(config: dict) -> ScoreMLP:
    """Rebuild a network from its ``config`` (as stored in checkpoints)."""
    cfg = dict(config)
    cls = cfg.pop("class", "ScoreMLP")
    if cls != "ScoreMLP":
        raise ValueError(f"unknown network class in config: {cls!r}")
    return ScoreMLP(**cfg)
