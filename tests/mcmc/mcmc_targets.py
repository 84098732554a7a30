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


def arviz_diagnostics(x: np.ndarray) -> dict:
    """ArviZ's bulk/tail/mean ESS and rank R-hat of chains ``(n_steps, n_chains, dim)``, per coordinate.

    ArviZ reads a 2-D array as ``(chain, draw)``: each coordinate is passed transposed. Skips the test when ArviZ
    is not installed (it is in the ``dev`` extra, not a dependency of the package).
    """
    import warnings

    import pytest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's import-time FutureWarning about its refactor
        az = pytest.importorskip("arviz")
        cols = [np.ascontiguousarray(x[:, :, j].T) for j in range(x.shape[2])]
        out = {m: np.array([float(az.ess(c, method=m)) for c in cols]) for m in ("bulk", "tail", "mean")}
        out["rhat"] = np.array([float(az.rhat(c, method="rank")) for c in cols])
    return out
