"""Integrators: ``simulate`` with fused Numba and batched NumPy drivers."""

from .noise import brownian_increments
from .simulate import MemorySink, RunPlan, make_plan, run_plan, save_steps, simulate, step_times
from .trajectory import DivergenceError, Trajectory

__all__ = [
    "simulate",
    "Trajectory",
    "DivergenceError",
    "brownian_increments",
    "RunPlan",
    "MemorySink",
    "make_plan",
    "run_plan",
    "step_times",
    "save_steps",
]
