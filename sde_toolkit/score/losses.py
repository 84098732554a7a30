"""Training objectives: denoising score matching (any SDE declaring ``affine_marginal``: its ``marginal_coef``
gives ``x_t``) and the DDPM epsilon-loss on a discrete schedule.

Both take callables on torch tensors, ``score(x, t)`` or ``eps(x, t)`` with ``x`` ``(n, dim)`` and ``t``
``(n,)``, so the same code evaluates a network during training and an analytic score in tests.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..sde.diffusion import DDPMSchedule
from . import _marginal
from .networks import MarginalCoefTorch, _coeffs_torch

WEIGHTINGS = ("sigma2", "none")


def _check_x0(x0: torch.Tensor) -> None:
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (n, dim), got {tuple(x0.shape)}")
    if not torch.isfinite(x0).all():
        bad = int(torch.nonzero(~torch.isfinite(x0).all(dim=1))[0, 0])
        raise ValueError(f"x0 contains NaN or inf (first at row {bad})")


def dsm_loss(score: Callable, sde, x0: torch.Tensor, *, t: float | torch.Tensor | None = None, eps: float = 1e-5,
             T: float | None = None, weighting: str = "sigma2", generator: torch.Generator | None = None
             ) -> torch.Tensor:
    """Denoising score matching ``E_{t, x0, z} lambda(t) |score(x_t, t) + z / sigma(t)|^2`` (summed over ``dim``).

    ``x_t = a(t) x0 + b(t) + sigma(t) z`` with the SDE's closed-form marginal and ``z ~ N(0, I)``; ``t`` is
    uniform on ``[eps, T]`` unless fixed. ``weighting="sigma2"`` (``lambda = sigma^2``, the training default)
    makes it the noise-prediction loss ``E |sigma score + z|^2``; ``"none"`` (``lambda = 1``) is the plain DSM.
    Minimum at the exact score, for Gaussian data of variance ``s^2`` per coordinate at fixed ``t``:
    ``d a^2 s^2 / (sigma^2 (a^2 s^2 + sigma^2))`` (``lambda = 1``; ``a = 1`` for VE).

    Args:
        score: ``score(x, t) -> (n, dim)`` on tensors.
        sde: an SDE declaring ``affine_marginal`` (VPSDE, VESDE, scalar OrnsteinUhlenbeck).
        x0: data batch ``(n, dim)``.
        t: a fixed time (float or ``(n,)`` tensor) instead of uniform sampling.
        eps, T: the sampling interval of ``t`` (``T`` defaults to ``sde.T``; required when that is ``None``).
        weighting: ``"sigma2"`` or ``"none"``.
        generator: torch generator for ``t`` and ``z`` (reproducibility).
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
    _check_x0(x0)
    sde = _marginal.for_dim(sde, x0.shape[1])
    n = x0.shape[0]
    dev, dt = x0.device, x0.dtype
    if t is None:
        T_ = _marginal.end_time(sde, T)
        if not (0.0 <= eps < T_):
            raise ValueError(f"eps must be in [0, T={T_}), got {eps}")
        u = torch.rand(n, generator=generator, dtype=torch.float64, device="cpu")
        tt = eps + (T_ - eps) * u
    else:
        tt = torch.as_tensor(t, dtype=torch.float64).expand(n).clone().cpu()
    a, b, std = _coeffs_torch(sde, tt)
    if bool((std <= 0).any()):
        raise ValueError("sigma(t) must be > 0 for DSM: use t > 0 (eps > 0)")
    z = torch.randn(x0.shape, generator=generator, dtype=torch.float64, device="cpu").to(dev, dt)
    a_t = a.to(dev, dt)[:, None]
    s_t = std.to(dev, dt)[:, None]
    xt = a_t * x0 + s_t * z
    if b is not None:
        xt = xt + b.to(dev, dt)
    s = score(xt, tt.to(dev, dt))
    if weighting == "sigma2":
        res = s_t * s + z
    else:
        res = s + z / s_t
    return (res * res).sum(dim=1).mean()


def ddpm_loss(eps_model: Callable, schedule: DDPMSchedule, x0: torch.Tensor, *, step: int | None = None,
              T: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """DDPM's simple loss ``E_{i, x0, z} |z - eps(sqrt(ab_i) x0 + sqrt(1 - ab_i) z, t_i)|^2`` (summed over ``dim``).

    ``i`` is uniform on ``1..N`` (or the fixed ``step``), ``t_i = i T / N``, ``ab_i = schedule.alpha_bars[i-1]``.
    Minimum at the exact ``eps* = -sqrt(1 - ab) score``, for Gaussian data of variance ``s^2`` per coordinate
    at a fixed step: ``d ab s^2 / (ab s^2 + 1 - ab)``.
    """
    _check_x0(x0)
    N = schedule.n_steps
    n = x0.shape[0]
    dev, dt = x0.device, x0.dtype
    if step is None:
        i = torch.randint(1, N + 1, (n,), generator=generator, device="cpu")
    else:
        if isinstance(step, bool) or int(step) != step or not 1 <= step <= N:
            raise ValueError(f"step must be an integer in [1, {N}], got {step!r}")
        i = torch.full((n,), int(step), dtype=torch.int64)
    ab = torch.as_tensor(schedule.alpha_bars, dtype=torch.float64)[i - 1]
    z = torch.randn(x0.shape, generator=generator, dtype=torch.float64, device="cpu").to(dev, dt)
    ab_t = ab.to(dev, dt)[:, None]
    xt = torch.sqrt(ab_t) * x0 + torch.sqrt(1.0 - ab_t) * z
    tt = (i.to(torch.float64) * (T / N)).to(dev, dt)
    res = z - eps_model(xt, tt)
    return (res * res).sum(dim=1).mean()


def eps_from_score(score: Callable, sde) -> Callable:
    """``eps(x, t) = -sigma(t) score(x, t)`` with ``sigma`` the SDE's marginal std (``sde.marginal_coef``; tensors
    in and out)."""
    _marginal.require_affine(sde)
    coef = MarginalCoefTorch(sde)

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        _, _, std = coef(t)
        return -std.to(x.device, x.dtype)[:, None] * score(x, t)

    return eps
