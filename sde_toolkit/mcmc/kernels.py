"""Langevin MCMC in blackjax's three layers (``init`` / ``build_kernel`` / top level), on the SDE's own steps.

These are the NumPy reference of what :func:`sde_toolkit.mcmc.langevin` runs on the driver, for users who step
chains by hand. There is no second copy of any formula: ULA is :class:`~sde_toolkit.integrate.EulerMaruyama` of
``OverdampedLangevin(V, kT, gamma)``, MALA adds :class:`~sde_toolkit.mcmc.layers.MetropolisAdjusted`, BAOAB is
``UnderdampedLangevin(V, gamma, kT, mass=1)``'s splitting step. The noise of step ``k`` is the counter-based
noise of the seed (``sde_toolkit._random``), so stepping by hand from the same state and seed gives the same
chains as ``langevin`` (to rounding between its fused and NumPy faces).

States are :class:`LangevinState` ``(position, carry, step)``; kernels never mutate their inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .. import _checks
from .. import _random as R
from ..integrate.methods import EulerMaruyama, Method, Splitting
from ..sde.langevin import OverdampedLangevin, UnderdampedLangevin
from .layers import MetropolisAdjusted

__all__ = ["LangevinState", "SamplingAlgorithm", "MALAInfo", "ula_init", "ula_build_kernel", "ula", "mala_init",
           "mala_build_kernel", "mala", "baoab_init", "baoab_build_kernel", "baoab"]


class LangevinState(NamedTuple):
    """``position`` ``(n, dim)`` (BAOAB: ``(q, p)`` stacked), the method's ``carry`` and the step count."""

    position: np.ndarray
    carry: np.ndarray
    step: int


class MALAInfo(NamedTuple):
    """Per-chain outcome of one MALA step: ``is_accepted`` ``(n,)``."""

    is_accepted: np.ndarray


class SamplingAlgorithm(NamedTuple):
    """``init(position) -> state`` and ``step(state) -> (state, info)`` with parameters and seed bound."""

    init: Callable
    step: Callable


def _init(sde, method: Method, position) -> LangevinState:
    x = np.array(position, dtype=np.float64)
    return LangevinState(x, method.init_carry(sde, x, 0.0), 0)


def _build(sde, method: Method):
    def kernel(seed, state: LangevinState, step_size: float):
        h = _checks.positive(step_size, "step")
        seed = R.resolve_seed(seed)
        x, k = state.position, state.step
        n = x.shape[0]
        z = R.normals(seed, range(k, k + 1), range(0, n), method.n_normals(sde))[0]
        u = R.uniforms(seed, range(k, k + 1), range(0, n))[0] if method.n_uniforms(sde) else None
        carry = state.carry.copy()
        before = carry[:, -1].copy() if carry.shape[1] else None
        xn = method.batched_step(sde, x, carry, k, k * h, h, (k + 1) * h, z, math.sqrt(h), u)
        info = MALAInfo(carry[:, -1] > before) if isinstance(method, MetropolisAdjusted) else None
        return LangevinState(xn, carry, k + 1), info

    return kernel


def ula_init(position, potential, kT: float = 1.0, gamma: float = 1.0) -> LangevinState:
    return _init(OverdampedLangevin(potential, kT, gamma), EulerMaruyama(), position)


def ula_build_kernel(potential, kT: float = 1.0, gamma: float = 1.0):
    """``kernel(seed, state, step) -> (state, None)``: one Euler–Maruyama step of ``OverdampedLangevin``."""
    return _build(OverdampedLangevin(potential, kT, gamma), EulerMaruyama())


def mala_init(position, potential, kT: float = 1.0, gamma: float = 1.0) -> LangevinState:
    return _init(OverdampedLangevin(potential, kT, gamma), MetropolisAdjusted(), position)


def mala_build_kernel(potential, kT: float = 1.0, gamma: float = 1.0):
    """``kernel(seed, state, step) -> (state, MALAInfo)``: the EM proposal and the Metropolis layer."""
    return _build(OverdampedLangevin(potential, kT, gamma), MetropolisAdjusted())


def baoab_init(position, potential, seed, kT: float = 1.0, gamma: float = 1.0) -> LangevinState:
    """Stacked ``(q, p)`` with momenta ``N(0, kT)`` from the seed's initial-draw lane (as ``langevin`` draws them)."""
    q = np.array(position, dtype=np.float64)
    p = math.sqrt(kT) * R.normals(R.resolve_seed(seed), range(0, 1), range(0, q.shape[0]), q.shape[1],
                                  lane=R.LANE_INIT)[0]
    sde = UnderdampedLangevin(potential, gamma, kT, 1.0, dim=2 * q.shape[1])
    return _init(sde, Splitting(), np.concatenate([q, p], axis=1))


def baoab_build_kernel(potential, dim: int, kT: float = 1.0, gamma: float = 1.0):
    """``kernel(seed, state, step) -> (state, None)``: one BAOAB step of ``UnderdampedLangevin(mass=1)``."""
    return _build(UnderdampedLangevin(potential, gamma, kT, 1.0, dim=2 * dim), Splitting())


def _top(init, build, potential, step, seed, kT, gamma, **kw) -> SamplingAlgorithm:
    h = _checks.positive(step, "step")
    seed = R.resolve_seed(seed)
    kernel = build(potential, kT=kT, gamma=gamma, **kw)
    return SamplingAlgorithm(init, lambda state: kernel(seed, state, h))


def ula(potential, step: float, seed=None, kT: float = 1.0, gamma: float = 1.0) -> SamplingAlgorithm:
    """Top-level ULA with ``step``, ``seed``, ``kT``, ``gamma`` bound."""
    return _top(lambda x: ula_init(x, potential, kT, gamma), ula_build_kernel, potential, step, seed, kT, gamma)


def mala(potential, step: float, seed=None, kT: float = 1.0, gamma: float = 1.0) -> SamplingAlgorithm:
    """Top-level MALA with ``step``, ``seed``, ``kT``, ``gamma`` bound."""
    return _top(lambda x: mala_init(x, potential, kT, gamma), mala_build_kernel, potential, step, seed, kT, gamma)


def baoab(potential, step: float, dim: int, seed=None, kT: float = 1.0, gamma: float = 1.0) -> SamplingAlgorithm:
    """Top-level BAOAB with ``step``, ``seed``, ``kT``, ``gamma`` bound; ``init(q)`` draws the momenta."""
    s = R.resolve_seed(seed)
    return _top(lambda x: baoab_init(x, potential, s, kT, gamma), baoab_build_kernel, potential, step, s, kT, gamma,
                dim=dim)
