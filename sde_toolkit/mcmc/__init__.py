"""Langevin MCMC on the SDEs' own steps: ULA, MALA and BAOAB chains on potentials (fused) or scores (batched),
annealed Langevin for noise-conditional scores, diagnostics (multi-chain bulk/tail ESS and rank-normalized R-hat
after Vehtari et al. 2021, within-chain tau) and a step-size sweep.

``st.mcmc.langevin(target, x0, step=..., n_steps=..., method="ula" | "mala" | "baoab", seed=...)`` returns
:class:`Chains` with ``samples`` of shape ``(n_kept, n_chains, dim)``.
"""

from . import kernels
from .diagnostics import autocorrelation, effective_sample_size, ess, integrated_time, rhat, split_rhat
from .layers import MetropolisAdjusted, WithEnergy
from .sampler import AnnealedSamples, Chains, annealed_langevin, langevin
from .sweep import SweepResult, step_size_sweep

__all__ = [
    "langevin",
    "annealed_langevin",
    "Chains",
    "AnnealedSamples",
    "step_size_sweep",
    "SweepResult",
    "ess",
    "rhat",
    "autocorrelation",
    "integrated_time",
    "effective_sample_size",
    "split_rhat",
    "kernels",
    "MetropolisAdjusted",
    "WithEnergy",
]
