"""SDE models (they describe; the integrators in :mod:`sde_toolkit.integrate` execute)."""

from . import potentials
from .base import SDE, NumbaFace
from .diffusion import VESDE, VPSDE, DDPMSchedule, ScheduleWarning
from .distributions import Boltzmann, Gaussian
from .langevin import OverdampedLangevin, UnderdampedLangevin
from .ou import OrnsteinUhlenbeck
from .reverse import ProbabilityFlowODE, ReverseSDE

__all__ = [
    "SDE",
    "NumbaFace",
    "OrnsteinUhlenbeck",
    "OverdampedLangevin",
    "UnderdampedLangevin",
    "VPSDE",
    "VESDE",
    "DDPMSchedule",
    "ScheduleWarning",
    "ReverseSDE",
    "ProbabilityFlowODE",
    "Gaussian",
    "Boltzmann",
    "potentials",
]
