"""The MCMC tests' Gaussian mixture and its exact moments."""

import numpy as np

MIX_WEIGHTS = np.array([0.35, 0.65])
MIX_MEANS = np.array([[-1.0, 0.0], [1.0, 0.5]])
MIX_COVS = np.array([[[0.5, 0.2], [0.2, 0.4]], [[0.6, -0.15], [-0.15, 0.35]]])


def mixture_moments():
    """Exact mean and covariance of the test mixture."""
    mean = MIX_WEIGHTS @ MIX_MEANS
    second = sum(w * (c + np.outer(m, m)) for w, m, c in zip(MIX_WEIGHTS, MIX_MEANS, MIX_COVS))
    return mean, second - np.outer(mean, mean)
