"""Step-size sweep: ULA's stationary variance on V = theta x^2 / 2 is 1 / (theta (1 - theta h / 2)); MALA's is 1/theta."""

import numpy as np
import pytest

import sde_toolkit as st

THETA = 1.0
STEPS = np.array([0.05, 0.1, 0.2])


def ula_variance(h):
    return 1.0 / (THETA * (1.0 - THETA * h / 2.0))


@pytest.mark.slow
def test_ula_bias_linear_in_step_and_mala_unbiased(harmonic):
    x0 = np.random.default_rng(0).normal(scale=THETA**-0.5, size=(4000, 1))
    res = st.mcmc.step_size_sweep(
        harmonic, STEPS, x0, methods=("ula", "mala"), reference=1.0 / THETA, t_burn=5.0, t_sample=50.0, t_thin=0.5, seed=1
    )
    ula, se_u = res.estimates["ula"], res.std_errors["ula"]
    # ULA matches its closed-form discrete stationary variance at every h, and is measurably biased
    assert np.all(np.abs(ula - ula_variance(STEPS)) < 5 * se_u), (ula, ula_variance(STEPS), se_u)
    assert np.all(res.bias("ula") > 5 * se_u)
    # the bias is first order: its WLS slope equals that of the exact bias (h/2)/(1 - theta h/2), ~1/2
    slope, slope_se = res.bias_slope("ula")
    w = 1.0 / se_u**2
    exact_bias = ula_variance(STEPS) - 1.0 / THETA
    exact_slope = np.sum(w * STEPS * exact_bias) / np.sum(w * STEPS**2)
    assert abs(slope - exact_slope) < 5 * slope_se
    assert 0.45 < slope < 0.65
    # MALA removes the bias at every step size
    assert np.all(np.abs(res.bias("mala")) < 5 * res.std_errors["mala"]), res.table()
    m_slope, m_se = res.bias_slope("mala")
    assert abs(m_slope) < 5 * m_se
    assert np.all(res.acceptance["mala"] > 0.9) and np.all(np.isnan(res.acceptance["ula"]))
    assert "| 0.05 |" in res.table()
