"""Fokker–Planck grid solvers that read the same SDE objects as the integrators.

``dp/dt = -div(f p) + 1/2 sum_i d_i^2 (D_ii p)`` (Itô, ``D = g g^T``) on a uniform :class:`Grid`, discretized by
exponentially fitted finite volumes (Scharfetter–Gummel / Chang–Cooper): positive, conservative, and exact at
Boltzmann equilibrium for overdamped Langevin dynamics. See ``docs/fokker-planck.md``.
"""

from .grid import BOUNDARIES, Grid
from .operator import Operator, assemble, bernoulli, chang_cooper_delta
from .solver import (
    METHODS,
    Comparison,
    EvolveResult,
    FirstPassageResult,
    FokkerPlanck,
    histogram_noise_l1,
    read_density,
    relative_entropy,
)

__all__ = [
    "Grid",
    "FokkerPlanck",
    "EvolveResult",
    "FirstPassageResult",
    "Comparison",
    "Operator",
    "assemble",
    "bernoulli",
    "chang_cooper_delta",
    "relative_entropy",
    "histogram_noise_l1",
    "read_density",
    "BOUNDARIES",
    "METHODS",
]
