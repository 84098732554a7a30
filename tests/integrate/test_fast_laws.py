"""Fast closed-form checks (well under a second each) for mistakes that earlier only slow tests caught.

Each check compares a sampler's *own* discrete law (exact for the scheme at the step used, so there is no
discretization allowance to tune) with its samples at 5 standard errors, and has a negative control: the same
statistic against a law with the suspected bug must be rejected.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import sde_toolkit as st

N = 20_000


def _var_z(x: np.ndarray, var: float) -> float:
    """z-score of the sample variance of ``x`` (independent draws) against ``var``."""
    n = x.size
    return (x.var() / var - 1.0) / math.sqrt(2.0 / n)


def _em_harmonic_var(k, kT, gamma, h, n_steps, x0=0.0):
    """Euler–Maruyama's exact law of ``dX = -k X / gamma dt + sqrt(2 kT / gamma) dW`` after ``n_steps``."""
    a = 1.0 - k * h / gamma
    s2 = 2.0 * kT / gamma * h
    return s2 * (1.0 - a ** (2 * n_steps)) / (1.0 - a * a)


@pytest.mark.parametrize("driver", ["fused", "batched"])
def test_overdamped_em_law_carries_the_factor_two(driver):
    """``sqrt(2 kT / gamma)``: dropping the 2 halves the variance, which 20,000 paths see at ~70 SE. The law is
    checked at t = 0.5, before the relaxation time gamma / k = 0.75, where the friction shows too (the stationary
    law alone would not see it)."""
    k, kT, gamma, h, n_steps = 2.0, 0.5, 1.5, 0.05, 10
    sde = st.OverdampedLangevin(st.potentials.Harmonic(k), kT=kT, gamma=gamma)
    x = st.simulate(sde, np.zeros((N, 1)), t1=n_steps * h, dt=h, seed=3, save_every=n_steps, driver=driver,
                    progress=False).final[:, 0]
    v = _em_harmonic_var(k, kT, gamma, h, n_steps)
    assert abs(x.mean()) < 5 * math.sqrt(v / N)
    assert abs(_var_z(x, v)) < 5
    assert abs(_var_z(x, _em_harmonic_var(k, kT / 2.0, gamma, h, n_steps))) > 5  # control: the sqrt(2) dropped
    assert abs(_var_z(x, _em_harmonic_var(k, kT, 2.0 * gamma, h, n_steps))) > 5  # control: friction doubled


def test_mala_is_exact_at_a_large_step_where_ula_is_not():
    """MALA's Metropolis layer removes ULA's O(h) bias: on V = k x^2 / 2 at h = 0.5 the chains' final states
    have variance kT / k exactly; ULA's stationary variance is kT / (k (1 - k h / 2)) (33 % too large here)."""
    k, kT, h = 1.0, 0.7, 0.5
    pot = st.potentials.Harmonic(k)
    x0 = np.random.default_rng(1).normal(0.0, math.sqrt(kT / k), (N, 1))  # start in the law: no burn-in bias
    mala = st.mcmc.langevin(pot, x0, step=h, n_steps=60, thin=60, method="mala", kT=kT, seed=4)
    x = mala.final_position[:, 0]
    assert abs(_var_z(x, kT / k)) < 5
    ula_var = kT / (k * (1.0 - k * h / 2.0))
    assert abs(_var_z(x, ula_var)) > 5  # control: an accept/reject layer without the proposal densities is ULA
    u = st.mcmc.langevin(pot, x0, step=h, n_steps=60, thin=60, method="ula", kT=kT, seed=4).final_position[:, 0]
    assert abs(_var_z(u, ula_var)) < 5 and abs(_var_z(u, kT / k)) > 5
    assert 0.5 < mala.acceptance_rate < 0.99


def test_chains_and_paths_draw_independent_noise():
    """Every chain gets its own noise: final states of chains started at one point are distinct and their
    neighbours uncorrelated (a shared stream makes them identical), across two thread tasks."""
    x0 = np.zeros((4096, 2))
    for method in ("ula", "mala", "baoab"):
        ch = st.mcmc.langevin(st.potentials.Harmonic(1.0), x0, step=0.1, n_steps=20, thin=20, method=method,
                              seed=8, n_threads=2)
        x = ch.final_position
        assert np.unique(x[:, 0]).size == x.shape[0], method
        rho = np.corrcoef(x[:-1, 0], x[1:, 0])[0, 1]
        assert abs(rho) < 5 / math.sqrt(x.shape[0]), (method, rho)
        rho_c = np.corrcoef(x[:, 0], x[:, 1])[0, 1]
        assert abs(rho_c) < 5 / math.sqrt(x.shape[0]), (method, rho_c)


def test_correlated_chains_pass_validation_only_at_their_effective_size():
    """validate_stationary sizes its thresholds by the chains' ESS: strongly correlated chains of the right law
    pass; the same chains counted as independent draws (raw n) are rejected, and the wrong law fails.

    The chains are long enough for the R-hat gate (<= 1.01): stationary chains have R-hat ~ 1 + 1/(2 ESS per
    split chain), so each needs ~ 50 effective draws; tau = 2 time units here, 400 per split chain."""
    ou = st.OrnsteinUhlenbeck(1.0, 1.0)  # stationary N(0, 1/2)
    x0 = np.random.default_rng(2).normal(0.0, math.sqrt(0.5), (40, 1))
    tr = st.simulate(ou, x0, t1=800.0, dt=0.04, method="exact", seed=9, progress=False)
    chains = np.asarray(tr.x[1:])  # (20000, 40, 1): lag-one correlation e^-0.04
    rep = st.validate_stationary(ou, chains)
    assert rep.passed and rep.effective_size < 0.05 * chains.shape[0] * chains.shape[1]
    assert rep.rhat < 1.006
    raw = st.validate_stationary(ou, chains, effective_size=chains.shape[0] * chains.shape[1])
    assert not raw.passed  # control: the raw sample count makes correct, correlated samples look wrong
    assert not st.validate_stationary(st.OrnsteinUhlenbeck(1.0, 1.4), chains).passed  # control: wrong law
