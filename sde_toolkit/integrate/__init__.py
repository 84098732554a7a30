"""Integrators: methods as objects with declared facts, one driver skeleton (fused Numba / batched NumPy), and
``simulate``."""

from .driver import default_threads, kernel_cache_info, request_stop
from .methods import (
    METHODS,
    EulerMaruyama,
    Exact,
    Heun,
    Method,
    Milstein,
    Splitting,
    get_method,
    register_method,
    supported_methods,
)
from .noise import brownian_increments
from .plan import RunPlan, make_plan, save_steps, step_times
from .simulate import MemorySink, run_plan, simulate
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
    "Method",
    "EulerMaruyama",
    "Milstein",
    "Exact",
    "Heun",
    "Splitting",
    "METHODS",
    "get_method",
    "register_method",
    "supported_methods",
    "default_threads",
    "request_stop",
    "kernel_cache_info",
]
