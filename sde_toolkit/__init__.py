"""sde_toolkit: stochastic dynamics and score-based generative modelling.

One SDE abstraction (drift, diffusion, marginals, reverse-time and probability-flow forms) read by
Numba-compiled Euler–Maruyama ensembles, Fokker–Planck grid solvers, score networks (torch) and MCMC samplers.

Heavy subsystems (torch in ``score``, h5py in ``io``) are imported lazily on first attribute access.
"""

from __future__ import annotations

import importlib

from . import _jit  # noqa: F401  (configures the Numba cache folder before any kernel is compiled)
from ._version import __version__
from .sde import (
    SDE,
    VESDE,
    VPSDE,
    OrnsteinUhlenbeck,
    OverdampedLangevin,
    UnderdampedLangevin,
    potentials,
)

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "simulate": ("sde_toolkit.integrate", "simulate"),
    "Trajectory": ("sde_toolkit.integrate", "Trajectory"),
    "DivergenceError": ("sde_toolkit.integrate", "DivergenceError"),
    "integrate": ("sde_toolkit.integrate", None),
    "Grid": ("sde_toolkit.fokker_planck", "Grid"),
    "FokkerPlanck": ("sde_toolkit.fokker_planck", "FokkerPlanck"),
    "fokker_planck": ("sde_toolkit.fokker_planck", None),
    "score": ("sde_toolkit.score", None),
    "sample": ("sde_toolkit.score", "sample"),
    "datasets": ("sde_toolkit.datasets", None),
    "mcmc": ("sde_toolkit.mcmc", None),
    "metrics": ("sde_toolkit.metrics", None),
    "validate_stationary": ("sde_toolkit.validate", "validate_stationary"),
    "io": ("sde_toolkit.io", None),
    "resume": ("sde_toolkit.runs", "resume"),
    "runs": ("sde_toolkit.runs", None),
    "sweep": ("sde_toolkit.runs", "sweep"),
    "plotting": ("sde_toolkit.plotting", None),
}

__all__ = [
    "__version__",
    "SDE",
    "OrnsteinUhlenbeck",
    "OverdampedLangevin",
    "UnderdampedLangevin",
    "VPSDE",
    "VESDE",
    "potentials",
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        mod_name, attr = _LAZY[name]
        mod = importlib.import_module(mod_name)
        value = mod if attr is None else getattr(mod, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sde_toolkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
