"""Pure Langevin MCMC kernels on batches of chains (NumPy), in blackjax's three layers.

Each algorithm has ``*_init(position, ...) -> state``, ``*_build_kernel(...) -> kernel(rng, state, step)
-> (state, info)`` and a top-level ``ula(...)``/``mala(...)``/``baoab(...)`` returning a
:class:`SamplingAlgorithm` that closes over the parameters. States are ``NamedTuple`` s of ``(n_chains, dim)``
arrays; kernels never mutate their inputs. ``rng`` is anything with ``standard_normal(dim) -> (n, dim)`` and
``random() -> (n,)`` (a :class:`~sde_toolkit.mcmc._streams.BlockStreams`).

The target density is ``pi(x) ~ exp(-V(x) / kT)``; the kernels only need ``grad V`` (and ``V`` for MALA).
A score ``s = grad log p`` is the gradient of ``V = -log p`` (so ``kT = 1`` samples ``p``).

Equations (step ``h``, friction ``gamma``, ``eps = h / gamma``):

* ULA, Euler–Maruyama for ``dX = -grad V / gamma dt + sqrt(2 kT / gamma) dW``:
  ``x' = x - eps grad V(x) + sqrt(2 kT eps) xi``. Biased: the stationary law is ``pi`` up to ``O(h)``.
* MALA: the ULA proposal ``y`` accepted with probability ``min(1, exp(log alpha))``,
  ``log alpha = -(V(y) - V(x)) / kT + |xi|^2 / 2 - |x - y + eps grad V(y)|^2 / (4 eps kT)``. Exact (unbiased).
* BAOAB (Leimkuhler & Matthews 2013), underdamped Langevin with unit mass:
  ``p -= h/2 grad V(q); q += h/2 p; p = c1 p + c2 xi; q += h/2 p; p -= h/2 grad V(q)`` with
  ``c1 = exp(-gamma h)``, ``c2 = sqrt(kT (1 - c1^2))``. Configurational bias ``O(h^2)``; exact for quadratic
  ``V``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

__all__ = [
    "LangevinState",
    "BAOABState",
    "MALAInfo",
    "SamplingAlgorithm",
    "ula_init",
    "ula_build_kernel",
    "ula",
    "mala_init",
    "mala_build_kernel",
    "mala",
    "baoab_init",
    "baoab_build_kernel",
    "baoab",
]

GradFn = Callable[[np.ndarray], np.ndarray]
EnergyFn = Callable[[np.ndarray], np.ndarray]


class LangevinState(NamedTuple):
    """State of ULA/MALA chains: ``position`` and ``grad = grad V(position)`` ``(n, dim)``; ``energy``
    ``V(position)`` ``(n,)`` (MALA) or ``None``."""

    position: np.ndarray
    grad: np.ndarray
    energy: np.ndarray | None


class BAOABState(NamedTuple):
    """State of BAOAB chains: ``position`` q, ``momentum`` p and ``grad = grad V(q)``, all ``(n, dim)``."""

    position: np.ndarray
    momentum: np.ndarray
    grad: np.ndarray


class MALAInfo(NamedTuple):
    """Per-chain outcome of one MALA step: ``acceptance_probability`` and ``is_accepted`` ``(n,)``."""

    acceptance_probability: np.ndarray
    is_accepted: np.ndarray


class SamplingAlgorithm(NamedTuple):
    """``init(position[, rng]) -> state`` and ``step(rng, state) -> (state, info)`` with parameters bound."""

    init: Callable
    step: Callable


def _check_step(step: float) -> float:
    h = float(step)
    if not (math.isfinite(h) and h > 0):
        raise ValueError(f"step must be a positive finite number, got {step!r}")
    return h


# ---------------------------------------------------------------- ULA
def ula_init(position: np.ndarray, grad_fn: GradFn) -> LangevinState:
    """ULA state at ``position`` ``(n, dim)``."""
    x = np.array(position, dtype=np.float64)
    return LangevinState(x, np.asarray(grad_fn(x), dtype=np.float64), None)


def ula_build_kernel(grad_fn: GradFn, kT: float = 1.0, gamma: float = 1.0):
    """ULA transition ``kernel(rng, state, step) -> (state, None)``: ``x' = x - eps g + sqrt(2 kT eps) xi``."""

    def kernel(rng, state: LangevinState, step: float):
        eps = step / gamma
        z = rng.standard_normal(state.position.shape[1])
        x = state.position - eps * state.grad + math.sqrt(2.0 * kT * eps) * z
        return LangevinState(x, np.asarray(grad_fn(x), dtype=np.float64), None), None

    return kernel


def ula(grad_fn: GradFn, step: float, kT: float = 1.0, gamma: float = 1.0) -> SamplingAlgorithm:
    """Top-level ULA with ``step``, ``kT``, ``gamma`` bound."""
    h = _check_step(step)
    kernel = ula_build_kernel(grad_fn, kT, gamma)
    return SamplingAlgorithm(lambda position: ula_init(position, grad_fn), lambda rng, state: kernel(rng, state, h))


# ---------------------------------------------------------------- MALA
def mala_init(position: np.ndarray, energy_fn: EnergyFn, grad_fn: GradFn) -> LangevinState:
    """MALA state at ``position`` ``(n, dim)`` (energy and gradient evaluated once)."""
    x = np.array(position, dtype=np.float64)
    return LangevinState(x, np.asarray(grad_fn(x), dtype=np.float64), np.asarray(energy_fn(x), dtype=np.float64))


def mala_build_kernel(energy_fn: EnergyFn, grad_fn: GradFn, kT: float = 1.0, gamma: float = 1.0):
    """MALA transition ``kernel(rng, state, step) -> (state, MALAInfo)``.

    Draw order per step: all proposal normals ``(n, dim)``, then one uniform per chain (the fused kernels
    draw in the same order, so both give the same chains for one seed). A non-finite proposal energy is
    rejected.
    """

    def kernel(rng, state: LangevinState, step: float):
        eps = step / gamma
        x, g, v = state.position, state.grad, state.energy
        z = rng.standard_normal(x.shape[1])
        u = rng.random()
        y = x - eps * g + math.sqrt(2.0 * kT * eps) * z
        vy = np.asarray(energy_fn(y), dtype=np.float64)
        gy = np.asarray(grad_fn(y), dtype=np.float64)
        fwd = 0.5 * np.sum(z * z, axis=1)
        r = x - y + eps * gy
        bwd = np.sum(r * r, axis=1) / (4.0 * eps * kT)
        with np.errstate(invalid="ignore", over="ignore"):
            log_alpha = -(vy - v) / kT + fwd - bwd
            prob = np.exp(np.minimum(log_alpha, 0.0))
            accept = (log_alpha >= 0.0) | (u < prob)
        prob = np.where(np.isfinite(prob), prob, 0.0)
        a = accept[:, None]
        new = LangevinState(np.where(a, y, x), np.where(a, gy, g), np.where(accept, vy, v))
        return new, MALAInfo(prob, accept)

    return kernel


def mala(energy_fn: EnergyFn, grad_fn: GradFn, step: float, kT: float = 1.0, gamma: float = 1.0) -> SamplingAlgorithm:
    """Top-level MALA with ``step``, ``kT``, ``gamma`` bound."""
    h = _check_step(step)
    kernel = mala_build_kernel(energy_fn, grad_fn, kT, gamma)
    return SamplingAlgorithm(
        lambda position: mala_init(position, energy_fn, grad_fn), lambda rng, state: kernel(rng, state, h)
    )


# ---------------------------------------------------------------- BAOAB
def baoab_coefficients(step: float, gamma: float, kT: float) -> tuple[float, float]:
    """``(c1, c2) = (exp(-gamma h), sqrt(kT (1 - exp(-2 gamma h))))`` (``expm1`` for small ``gamma h``)."""
    return math.exp(-gamma * step), math.sqrt(kT * (-math.expm1(-2.0 * gamma * step)))


def baoab_init(position: np.ndarray, grad_fn: GradFn, rng, kT: float = 1.0) -> BAOABState:
    """BAOAB state at ``position`` with momenta drawn from ``N(0, kT)`` (one normal per coordinate)."""
    x = np.array(position, dtype=np.float64)
    p = math.sqrt(kT) * rng.standard_normal(x.shape[1])
    return BAOABState(x, p, np.asarray(grad_fn(x), dtype=np.float64))


def baoab_build_kernel(grad_fn: GradFn, kT: float = 1.0, gamma: float = 1.0):
    """BAOAB transition ``kernel(rng, state, step) -> (state, None)``; one gradient per step."""

    def kernel(rng, state: BAOABState, step: float):
        c1, c2 = baoab_coefficients(step, gamma, kT)
        hh = 0.5 * step
        z = rng.standard_normal(state.position.shape[1])
        p = state.momentum - hh * state.grad
        q = state.position + hh * p
        p = c1 * p + c2 * z
        q = q + hh * p
        g = np.asarray(grad_fn(q), dtype=np.float64)
        p = p - hh * g
        return BAOABState(q, p, g), None

    return kernel


def baoab(grad_fn: GradFn, step: float, kT: float = 1.0, gamma: float = 1.0) -> SamplingAlgorithm:
    """Top-level BAOAB with ``step``, ``kT``, ``gamma`` bound; ``init(position, rng)`` draws the momenta."""
    h = _check_step(step)
    kernel = baoab_build_kernel(grad_fn, kT, gamma)
    return SamplingAlgorithm(
        lambda position, rng: baoab_init(position, grad_fn, rng, kT), lambda rng, state: kernel(rng, state, h)
    )
