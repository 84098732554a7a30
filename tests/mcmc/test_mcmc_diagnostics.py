"""Autocorrelation time, ESS and R-hat against chains with known answers, edge cases, and ArviZ on AR(1) chains.

ArviZ is an optional test dependency (the ``dev`` extra): the comparisons skip without it.
"""

import numpy as np
import pytest
from mcmc_targets import arviz_diagnostics
from scipy.signal import lfilter

from sde_toolkit.mcmc import autocorrelation, effective_sample_size, ess, integrated_time, rhat, split_rhat


def ar1(phi: float, n_steps: int, n_chains: int, dim: int = 1, seed: int = 0) -> np.ndarray:
    """Stationary AR(1) chains x_t = phi x_{t-1} + e_t: rho(t) = phi^t, tau = (1 + phi) / (1 - phi)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((n_steps, n_chains, dim))
    e[0] /= np.sqrt(1 - phi**2)  # start in the stationary law
    return lfilter([1.0], [1.0, -phi], e, axis=0)


@pytest.mark.parametrize("phi", [0.5, 0.9])
def test_ar1_tau_within_10_percent(phi):
    x = ar1(phi, 50_000, 32, seed=int(phi * 10))
    tau = integrated_time(x)[0]
    exact = (1 + phi) / (1 - phi)
    assert abs(tau / exact - 1) < 0.10, (tau, exact)
    n = x.shape[0] * x.shape[1]
    # the earlier estimator, now explicit: n / tau with the within-chain Sokal tau
    assert effective_sample_size(x, method="sokal")[0] == pytest.approx(n / tau)
    # the multi-chain bulk ESS (the default) agrees with the exact n / tau on mixed chains (measured: < 1 %)
    for e in (effective_sample_size(x)[0], ess(x)[0], ess(x, "mean")[0]):
        assert abs(e / (n / exact) - 1) < 0.05, (e, n / exact)


def test_ar1_per_coordinate_and_acf():
    phis = np.array([0.0, 0.8])
    rng = np.random.default_rng(1)
    e = rng.standard_normal((40_000, 8, 2))
    x = np.stack([lfilter([1.0], [1.0, -p], e[..., k], axis=0) for k, p in enumerate(phis)], axis=-1)
    tau = integrated_time(x)
    np.testing.assert_allclose(tau, (1 + phis) / (1 - phis), rtol=0.1)
    rho = autocorrelation(x)
    assert rho.shape == (40_000, 2)
    np.testing.assert_allclose(rho[0], 1.0)
    np.testing.assert_allclose(rho[1:4, 1], 0.8 ** np.arange(1, 4), atol=0.02)
    assert abs(rho[1, 0]) < 0.02


def test_tau_negative_control_short_window_underestimates():
    """A window constant far too small truncates the sum: the 10 % test would catch it."""
    x = ar1(0.95, 50_000, 16, seed=3)
    exact = 39.0
    assert abs(integrated_time(x)[0] / exact - 1) < 0.1
    assert integrated_time(x, c=0.5)[0] < 0.5 * exact


def test_split_rhat():
    rng = np.random.default_rng(2)
    good = rng.standard_normal((2000, 4, 3))
    r = split_rhat(good)
    assert r.shape == (3,) and np.all(r < 1.01)
    shifted = good.copy()
    shifted[:, 0] += 2.0  # one chain stuck elsewhere: R = sqrt(1 + 6/7) ~ 1.36
    np.testing.assert_allclose(split_rhat(shifted), np.sqrt(1 + 6 / 7), rtol=0.05)
    drift = good[:, :1] + np.linspace(0, 3, 2000)[:, None, None]  # one drifting chain: caught by splitting
    assert np.all(split_rhat(drift) > 1.1)


def test_rank_rhat_sees_location_scale_and_drift():
    rng = np.random.default_rng(2)
    good = rng.standard_normal((2000, 4, 3))
    assert rhat(good).shape == (3,) and np.all(rhat(good) < 1.01)
    shifted = good.copy()
    shifted[:, 0] += 2.0
    assert np.all(rhat(shifted) > 1.2)
    drift = good[:, :1] + np.linspace(0, 3, 2000)[:, None, None]  # one chain: split in two halves
    assert np.all(rhat(drift) > 1.1)
    # equal locations, one chain 3x wider: the classic split R-hat misses it, the folded (tail) R-hat does not
    wide = good.copy()
    wide[:, 0] *= 3.0
    assert np.all(split_rhat(wide) < 1.01)
    assert np.all(rhat(wide) > 1.1)
    np.testing.assert_array_equal(rhat(wide, method="split"), split_rhat(wide))


def test_ess_of_stuck_chains_is_small_where_the_within_chain_estimate_is_not():
    """Chains in two places that never meet: the between-chain term makes the ESS ~ the number of chains."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4000, 8, 1))
    x[:, :4] += 10.0
    assert ess(x)[0] < 50 and ess(x, "mean")[0] < 50
    assert effective_sample_size(x, method="sokal")[0] > 10_000  # the documented defect of the old estimator
    # ranks bound the rank-normalized R-hat: two fully separated halves of the chains give ~1.69 however far
    # apart they are (the classic split R-hat grows with the gap)
    assert 1.6 < rhat(x)[0] < 1.8 and split_rhat(x)[0] > 5


def test_ess_rhat_edge_cases():
    # constant everywhere: ESS = all split draws (as ArviZ), R-hat = 1
    const = np.full((11, 3, 2), 2.5)
    np.testing.assert_array_equal(ess(const), 3 * 10)
    np.testing.assert_array_equal(ess(const, "tail"), 3 * 10)
    np.testing.assert_array_equal(rhat(const), 1.0)
    # each chain constant, chains different: R-hat = inf, ESS about the number of split chains
    stuck = np.zeros((50, 4, 1))
    stuck[:, 2:] = 1.0
    assert rhat(stuck)[0] == np.inf and ess(stuck)[0] < 10
    # one chain, an odd number of steps, the shortest allowed chain
    rng = np.random.default_rng(5)
    one = rng.standard_normal((1001, 1, 2))
    assert ess(one).shape == (2,) and np.all(ess(one) > 600) and np.all(rhat(one) < 1.01)
    assert np.isfinite(ess(rng.standard_normal((4, 2)))).all() and np.isfinite(rhat(rng.standard_normal(4))).all()
    # 1-D and 2-D inputs are one coordinate and one chain
    assert ess(one[:, 0, 0]).shape == (1,) and ess(one[:, :, 0])[0] == ess(one)[0]
    # anti-correlated chains: tau is bounded below by 1 / log10(S), so the ESS stays finite
    alt = np.tile([1.0, -1.0], 500)[:, None] + 1e-3 * rng.standard_normal((1000, 1))
    assert np.isfinite(ess(alt)).all()


def test_diagnostics_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        integrated_time(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="NaN"):
        ess(np.array([0.0, 1.0, np.inf, 1.0, 2.0]))
    with pytest.raises(ValueError, match="NaN"):
        rhat(np.array([0.0, 1.0, np.nan, 1.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        integrated_time(np.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match="at least 4"):
        split_rhat(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="at least 4"):
        ess(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="at least 4"):
        rhat(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="method"):
        ess(np.zeros((10, 2)), "median")
    with pytest.raises(ValueError, match="method"):
        effective_sample_size(np.zeros((10, 2)), 5.0)  # the old positional Sokal constant
    with pytest.raises(ValueError, match="Sokal"):
        effective_sample_size(np.zeros((10, 2)), c=10.0)  # c without method="sokal"
    with pytest.raises(ValueError, match="prob"):
        ess(np.zeros((10, 2)), "tail", prob=1.5)
    with pytest.raises(ValueError, match="method"):
        rhat(np.zeros((10, 2)), "bulk")


@pytest.mark.parametrize("n_steps", [5000, 5001])
def test_ar1_chains_agree_with_arviz(n_steps):
    """Mixed AR(1) chains of known tau (3 and 19): bulk/tail/mean ESS within 5 % of ArviZ, R-hat to 1e-3."""
    phis = np.array([0.5, 0.9])
    rng = np.random.default_rng(6)
    e = rng.standard_normal((n_steps, 8, 2))
    e[0] /= np.sqrt(1 - phis**2)
    x = np.stack([lfilter([1.0], [1.0, -p], e[..., k], axis=0) for k, p in enumerate(phis)], axis=-1)
    ref = arviz_diagnostics(x)
    for method in ("bulk", "tail", "mean"):
        np.testing.assert_allclose(ess(x, method), ref[method], rtol=0.05, err_msg=method)
    np.testing.assert_allclose(rhat(x), ref["rhat"], atol=1e-3)
    assert np.all(rhat(x) < 1.01)
    exact = x.shape[0] * x.shape[1] / ((1 + phis) / (1 - phis))
    np.testing.assert_allclose(ess(x), exact, rtol=0.2)
