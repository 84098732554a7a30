"""``Boltzmann.sample`` in 2-D: the points come in random order (not by grid cell) and follow the law."""

import numpy as np
from scipy import stats

import sde_toolkit as st


def _index_correlations(x):
    idx = np.arange(len(x))
    return [abs(stats.spearmanr(idx, x[:, k]).statistic) for k in range(x.shape[1])]


def test_2d_samples_are_not_cell_ordered_and_follow_the_law():
    # V = x^2/2 + y^2 (kT = 1): independent N(0, 1) and N(0, 1/2) coordinates
    sde = st.OverdampedLangevin("x**2/2 + y**2", kT=1.0, dim=2)
    n = 20_000
    x = sde.stationary().sample(n, seed=3)
    assert x.shape == (n, 2)
    bound = 5 / np.sqrt(n)  # |Spearman rho| of independent sequences has sd 1/sqrt(n)
    assert max(_index_correlations(x)) < bound, _index_correlations(x)
    # any prefix is a sample of the law: first half against second half
    assert stats.ks_2samp(x[: n // 2, 0], x[n // 2:, 0]).pvalue > 1e-3
    assert stats.ks_2samp(x[: n // 2, 1], x[n // 2:, 1]).pvalue > 1e-3
    # moments within 5 standard errors (the grid cells are ~0.02 wide, far below that)
    assert abs(x[:, 0].mean()) < 5 / np.sqrt(n)
    assert abs(x[:, 1].mean()) < 5 * np.sqrt(0.5 / n)
    assert abs(x[:, 0].var() - 1.0) < 5 * np.sqrt(2 / n)
    assert abs(x[:, 1].var() / 0.5 - 1.0) < 5 * np.sqrt(2 / n)
    # the same seed gives the same points, bit for bit
    assert np.array_equal(x, sde.stationary().sample(n, seed=3))


def test_negative_control_cell_ordered_points_fail_the_order_check():
    sde = st.OverdampedLangevin("x**2/2 + y**2", kT=1.0, dim=2)
    n = 20_000
    x = sde.stationary().sample(n, seed=3)
    ordered = x[np.lexsort((x[:, 1], x[:, 0]))]  # what ordering by cell (x-major) looks like
    assert max(_index_correlations(ordered)) > 0.9
