"""Score-based generative modelling (the only subpackage that imports torch).

Networks (:class:`ScoreMLP`), training by denoising score matching or DDPM's epsilon-loss (:func:`train`),
scores as objects (:class:`TorchScore`, the exact :class:`GaussianMixtureScore`), one sampling API with seven
samplers (:func:`sample`; each a :class:`ScoreSampler` method on the integrators' driver) and likelihoods through
the probability-flow ODE (:func:`log_likelihood`). Every piece reads the forward SDE's declared capabilities
(``affine_marginal``: ``marginal_coef``, ``affine_coef``, ``prior``, ``T``, ``center``; ``discretizable``), never its
type.
"""

try:
    import torch  # noqa: F401  (the score models' one dependency outside the core install)
except ImportError as exc:  # the lean install: say which extra brings it
    raise ImportError(
        'sde_toolkit.score needs PyTorch, which the core install leaves out: pip install "sde_toolkit[score]" '
        "(without a GPU, the CPU-only wheel is much smaller: "
        "pip install torch --index-url https://download.pytorch.org/whl/cpu)"
    ) from exc

from ..sde.diffusion import DDPMSchedule, ScheduleWarning
from .error import SamplerError, sampler_error
from .fewstep import GRIDS, time_grid
from .likelihood import bits_per_dim, exact_divergence, hutchinson_divergence, log_likelihood
from .losses import ddpm_loss, dsm_loss, eps_from_score
from .networks import ScoreMLP, precondition
from .samplers import ScoreSampler, register_sampler
from .sampling import METHODS, sample
from .scores import GaussianMixtureScore, TorchScore
from .training import TrainResult, load_checkpoint, save_checkpoint, train

__all__ = [
    "ScoreMLP",
    "precondition",
    "train",
    "TrainResult",
    "save_checkpoint",
    "load_checkpoint",
    "dsm_loss",
    "ddpm_loss",
    "eps_from_score",
    "TorchScore",
    "GaussianMixtureScore",
    "sample",
    "METHODS",
    "GRIDS",
    "time_grid",
    "sampler_error",
    "SamplerError",
    "ScoreSampler",
    "register_sampler",
    "log_likelihood",
    "exact_divergence",
    "hutchinson_divergence",
    "bits_per_dim",
    "DDPMSchedule",
    "ScheduleWarning",
]
