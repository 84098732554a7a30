"""Shared targets for the MCMC tests (session-scoped so the fused kernels compile once)."""

import pytest
from mcmc_targets import MIX_COVS, MIX_MEANS, MIX_WEIGHTS

import sde_toolkit as st


@pytest.fixture(scope="session")
def mixture():
    return st.potentials.GaussianMixture(MIX_WEIGHTS, MIX_MEANS, MIX_COVS)


@pytest.fixture(scope="session")
def harmonic():
    return st.potentials.Harmonic(k=1.0)
