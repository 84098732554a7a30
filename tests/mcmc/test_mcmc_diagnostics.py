"""Autocorrelation time, ESS and split R-hat against chains with known answers."""

import numpy as np
import pytest
from scipy.signal import lfilter

from sde_toolkit.mcmc import autocorrelation, effective_sample_size, integrated_time, split_rhat


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
    ess = effective_sample_size(x)[0]
    assert ess == pytest.approx(x.shape[0] * x.shape[1] / tau)


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


def test_diagnostics_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        integrated_time(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        integrated_time(np.zeros((3, 2, 2, 2)))
    with pytest.raises(ValueError, match="at least 4"):
        split_rhat(np.zeros((3, 2)))
