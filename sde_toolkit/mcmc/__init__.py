"""Langevin MCMC: ULA, MALA and BAOAB chains on potentials (fused Numba) or scores (batched NumPy),
annealed Langevin for noise-conditional scores, diagnostics (tau, ESS, split R-hat) and a step-size sweep.

``st.mcmc.langevin(target, x0, step=..., n_steps=..., method="ula" | "mala" | "baoab", seed=...)`` returns
:class:`Chains` with ``samples`` of shape ``(n_kept, n_chains, dim)``.
"""

from . import kernels
from ._streams import CHAIN_BLOCK
from .diagnostics import autocorrelation, effective_sample_size, integrated_time, split_rhat
from .sampler import AnnealedSamples, Chains, annealed_langevin, langevin
from .sweep import SweepResult, step_size_sweep

__all__ = [
    "langevin",
    "annealed_langevin",
    "Chains",
    "AnnealedSamples",
    "step_size_sweep",
    "SweepResult",
    "autocorrelation",
    "integrated_time",
    "effective_sample_size",
    "split_rhat",
    "kernels",
    "CHAIN_BLOCK",
]
