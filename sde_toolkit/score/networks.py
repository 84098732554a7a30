"""Score networks: an MLP that predicts the noise, ``score(x, t) = -eps_theta(c_in(t) x, t) / sigma(t)``.

The network never sees the SDE: :func:`precondition` turns the SDE's closed-form marginal
``X_t | x0 ~ N(a x0 + b, sigma^2 I)`` into the input scale ``c_in = 1 / sqrt(a^2 + sigma^2)`` (unit variance for
unit-variance data) and the output scale ``1 / sigma``, so the regression target (standard normal noise) has
unit variance at every ``t`` and the score is well scaled even where ``sigma -> 0``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import _marginal

EMBEDDINGS = ("fourier", "sinusoidal")


class GaussianFourierEmbedding(nn.Module):
    """``t -> [sin(2 pi W t), cos(2 pi W t)]`` with fixed ``W ~ N(0, scale^2)`` (continuous ``t in [0, T]``)."""

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
            if embedding == "fourier":
                self.embed = GaussianFourierEmbedding(embed_dim, fourier_scale, generator=gen)
            else:
                self.embed = SinusoidalEmbedding(embed_dim, n_steps)
            self.t_mlp = nn.Sequential(nn.Linear(embed_dim, hidden), nn.SiLU())
            self.layers = nn.ModuleList([nn.Linear(dim if i == 0 else hidden, hidden) for i in range(depth)])
            self.t_proj = nn.ModuleList([nn.Linear(hidden, hidden, bias=False) for _ in range(depth)])
            self.out = nn.Linear(hidden, dim)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``eps_theta(x, t)``: ``x`` ``(n, dim)`` (already multiplied by ``c_in``), ``t`` ``(n,)``."""
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {tuple(x.shape)}")
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        e = self.t_mlp(self.embed(t.to(x.dtype)))
        h = x
        for lin, tp in zip(self.layers, self.t_proj):
            h = self.act(lin(h) + tp(e))
        return self.out(h)


def precondition(sde, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c_in, sigma)`` as ``(n, 1)`` tensors on ``t``'s device: ``c_in = 1/sqrt(a^2 + sigma^2)``, ``sigma = std(t)``."""
    t_np = t.detach().to("cpu", torch.float64).numpy()
    a, _, std = _marginal.coeffs(sde, t_np)
    c_in = 1.0 / np.sqrt(a**2 + std**2)
    dev, dt = t.device, torch.float32 if t.dtype != torch.float64 else torch.float64
    return (torch.as_tensor(c_in, dtype=dt, device=dev).reshape(-1, 1),
            torch.as_tensor(std, dtype=dt, device=dev).reshape(-1, 1))


def build_network(config: dict) -> ScoreMLP:
    """Rebuild a network from its ``config`` (as stored in checkpoints)."""
    cfg = dict(config)
    cls = cfg.pop("class", "ScoreMLP")
    if cls != "ScoreMLP":
        raise ValueError(f"unknown network class in config: {cls!r}")
    return ScoreMLP(**cfg)
