"""Underdamped Langevin *dynamics*, not only its stationary law: momentum relaxation, EM's kinetic temperature
and the free-particle Einstein relation, all with no force (``V = 0``) so that every law is Gaussian and closed.

Model: ``st.UnderdampedLangevin(V, gamma, kT, mass)``, state ``(q, p)``; ``dq = p/m dt``,
``dp = -V'(q) dt - gamma p dt + sqrt(2 gamma m kT) dW``. With ``V = 0``:

* exact: ``E p(t) = e^{-gamma t} p0``, ``Var p(t) = m kT (1 - e^{-2 gamma t})``; BAOAB's O-step is this exact
  transition, so BAOAB has it at any step;
* EM, ``a = 1 - gamma h``: ``E p_N = a^N p0``, ``Var p_N = 2 gamma m kT h (1 - a^{2N}) / (1 - a^2)``, stationary
  ``E p^2 / m = kT / (1 - gamma h / 2)``;
* with ``p0 ~ N(0, m kT)``: ``MSD(t) = 2 D (t - tau (1 - e^{-t/tau}))``, ``D = kT / (m gamma)``, ``tau = 1/gamma``.

Every check is "within 5 standard errors" of its reference, and every check is run again against a wrong
reference (friction halved, mass dropped, EM's law swapped for the continuous one, step dropped) or on a wrong model,
and must reject it. Only the public API is used (``st.simulate``); no random value is hard-coded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import sde_toolkit as st

GAMMA, KT, MASS, P0 = 0.7, 1.3, 2.5, 3.0
ALPHA = 1e-3


def _free(gamma=GAMMA, kT=KT, mass=MASS):
    # "0*x" has energy 0 and gradient 0 on both faces (numpy and numba; checked in test_zero_potential_faces)
    return st.UnderdampedLangevin(st.potentials.from_expression("0*x"), gamma=gamma, kT=kT, mass=mass)


def _exact_p(t, gamma=GAMMA, kT=KT, mass=MASS, p0=P0):
    return math.exp(-gamma * t) * p0, mass * kT * -math.expm1(-2 * gamma * t)


def _em_p(n, h, gamma=GAMMA, kT=KT, mass=MASS, p0=P0):
    a = 1.0 - gamma * h
    return a**n * p0, 2 * gamma * mass * kT * h * (1 - a ** (2 * n)) / (1 - a * a)


def _gauss_ok(x, mean, var, n_se=5.0):
    """Mean and variance within ``n_se`` standard errors, and the standardised sample Gaussian (KS)."""
    n = x.size
    return (abs(x.mean() - mean) < n_se * math.sqrt(var / n)
            and abs(x.var() / var - 1) < n_se * math.sqrt(2 / n)
            and stats.kstest((x - mean) / math.sqrt(var), "norm").pvalue > ALPHA)


def _momenta(sde, method, h, t1, save_every, n, seed, driver="auto"):
    x0 = np.tile([0.0, P0], (n, 1))
    tr = st.simulate(sde, x0, t1=t1, dt=h, save_every=save_every, method=method, seed=seed, driver=driver,
                     progress=False)
    return tr.t, tr.x[:, :, 1]


def test_zero_potential_faces():
    pot = st.potentials.from_expression("0*x")
    x = np.linspace(-3, 3, 7)[:, None]
    assert np.array_equal(pot.energy(x), np.zeros(7)) and np.array_equal(pot.grad(x), np.zeros((7, 1)))
    g = np.full(1, np.nan)
    pot.numba_grad()(x[2], g)
    assert g[0] == 0.0 and pot.numba_energy()(x[2]) == 0.0


# ---------------------------------------------------------------- momentum relaxation from a fixed p0
@pytest.mark.parametrize("driver", ["fused", "batched"])
def test_baoab_momentum_relaxation_is_exact_at_a_coarse_step(driver):
    """BAOAB at h = 0.25 (gamma h = 0.175) against the continuous law at t = 0.5, 1, 2, 4 (n = 40,000)."""
    h, n = 0.25, 40_000
    t, p = _momenta(_free(), "baoab", h, 4.0, 2, n, seed=101, driver=driver)
    assert np.allclose(t, np.arange(0.0, 4.01, 0.5))
    checks = [(ti, p[int(round(ti / 0.5))]) for ti in (0.5, 1.0, 2.0, 4.0)]
    for ti, pi in checks:
        assert _gauss_ok(pi, *_exact_p(ti)), ti
    # negative controls: the same statistic rejects a friction-halved and a mass-dropped law at every time
    for ti, pi in checks:
        assert not _gauss_ok(pi, *_exact_p(ti, gamma=GAMMA / 2)), ti
        assert not _gauss_ok(pi, *_exact_p(ti, mass=1.0)), ti
    # ... and the correct law rejects a friction-halved integrator
    _, p_wrong = _momenta(_free(gamma=GAMMA / 2), "baoab", h, 4.0, 2, n, seed=101, driver=driver)
    assert not _gauss_ok(p_wrong[-1], *_exact_p(4.0))


@pytest.mark.parametrize("driver", ["fused", "batched"])
def test_em_momentum_relaxation_matches_its_discrete_law_at_a_coarse_step(driver):
    """EM at h = 0.2 (gamma h = 0.14): its own law ``a^N p0`` and ``2 gamma m kT h (1 - a^{2N}) / (1 - a^2)``."""
    h, n = 0.2, 40_000
    t, p = _momenta(_free(), "euler_maruyama", h, 4.0, 5, n, seed=102, driver=driver)
    assert np.allclose(t, [0.0, 1.0, 2.0, 3.0, 4.0])
    for i in range(1, t.size):
        k = round(t[i] / h)
        assert _gauss_ok(p[i], *_em_p(k, h)), t[i]
        # negative controls: friction halved, mass dropped
        assert not _gauss_ok(p[i], *_em_p(k, h, gamma=GAMMA / 2)), t[i]
        assert not _gauss_ok(p[i], *_em_p(k, h, mass=1.0)), t[i]
    # at this step EM's law is not the continuous one (the mean a^N p0 vs e^{-gamma t} p0 differs by > 5 SE at t=1)
    assert not _gauss_ok(p[1], *_exact_p(1.0))


def test_em_momentum_relaxation_matches_the_continuous_law_at_a_fine_step():
    """EM at h = 0.005: the O(h) gap to the continuous law (< 0.6 % in mean and variance here) is below 5 SE."""
    h, n = 0.005, 40_000
    t, p = _momenta(_free(), "euler_maruyama", h, 2.0, 100, n, seed=103)
    for i in range(1, t.size):
        assert _gauss_ok(p[i], *_exact_p(t[i])), t[i]
        assert not _gauss_ok(p[i], *_exact_p(t[i], gamma=GAMMA / 2)), t[i]
        assert not _gauss_ok(p[i], *_exact_p(t[i], mass=1.0)), t[i]


# ---------------------------------------------------------------- kinetic temperature under EM
def _kinetic(h, n, seed, mass=MASS, t1=12.0):
    sde = _free(mass=mass)
    rng = np.random.default_rng(seed)
    x0 = np.column_stack([np.zeros(n), rng.normal(0.0, math.sqrt(mass * KT), n)])
    x = st.simulate(sde, x0, t1=t1, dt=h, seed=seed + 1, save_every=10**6, progress=False).final
    return x[:, 1] ** 2 / mass


def _kinetic_ok(ekin, target):
    """``E p^2/m = target`` within 5 SE (``Var(p^2/m) = 2 target^2`` for a centred Gaussian p)."""
    return abs(ekin.mean() - target) < 5 * math.sqrt(2 * target**2 / ekin.size)


def test_em_kinetic_temperature_has_its_discrete_bias():
    """h = 0.2: ``E p^2/m = kT / (1 - gamma h/2)`` = 1.0753 kT (n = 100,000, 5 SE = 2.2 %); h = 0.01: ~kT."""
    n = 100_000
    h = 0.2
    ekin = _kinetic(h, n, seed=104)
    assert _kinetic_ok(ekin, KT / (1 - GAMMA * h / 2))
    assert not _kinetic_ok(ekin, KT)  # negative control: the step dropped from the reference
    assert not _kinetic_ok(ekin * MASS, KT / (1 - GAMMA * h / 2))  # mass dropped: p^2 instead of p^2/m
    ekin_fine = _kinetic(0.01, n, seed=105, t1=4.0)
    assert _kinetic_ok(ekin_fine, KT / (1 - GAMMA * 0.01 / 2))
    assert _kinetic_ok(ekin_fine, KT)  # 0.35 % bias, well inside 5 SE
    # the correct reference rejects a hotter model (kT 10 % too high) at the fine step
    hot = st.simulate(_free(kT=1.1 * KT), np.column_stack([np.zeros(n), np.zeros(n)]), t1=6.0, dt=0.01, seed=106,
                      save_every=10**6, progress=False).final[:, 1] ** 2 / MASS
    assert not _kinetic_ok(hot, KT)


# ---------------------------------------------------------------- free-particle Einstein relation
def _msd_reference(t, gamma=GAMMA, kT=KT, mass=MASS):
    D, tau = kT / (mass * gamma), 1.0 / gamma
    return 2 * D * (t - tau * -math.expm1(-t / tau))


def _baoab_msd_discrete(t, h, gamma=GAMMA, kT=KT, mass=MASS):
    """BAOAB's own MSD for V = 0 from stationary momenta: ``q_N - q_0 = (h/m) sum_k w_k p_k`` (trapezoid weights,
    ``p_k`` the exact OU momentum at ``k h``, ``Cov(p_i, p_j) = m kT e^{-gamma h |i-j|}``)."""
    n = round(t / h)
    w = np.ones(n + 1)
    w[0] = w[-1] = 0.5
    ac = np.correlate(w, w, "full")[n:]
    c = math.exp(-gamma * h)
    s = ac[0] + 2 * np.sum(ac[1:] * c ** np.arange(1, n + 1))
    return (h / mass) ** 2 * mass * kT * s


def test_free_particle_einstein_relation_baoab():
    """MSD at t = 0.5, 2, 5, 10 within 5 SE (``SE = MSD sqrt(2/n)``, q - q0 Gaussian) plus the discretisation
    allowance ``|MSD_h - MSD|``, computed exactly from BAOAB's trapezoid law (O(h^2); at h = 0.02 it is at most
    7e-5 relative, 1/100 of the 5-SE band)."""
    h, n = 0.02, 40_000
    rng = np.random.default_rng(107)
    x0 = np.column_stack([np.zeros(n), rng.normal(0.0, math.sqrt(MASS * KT), n)])
    tr = st.simulate(_free(), x0, t1=10.0, dt=h, save_every=25, method="baoab", seed=108, progress=False)
    times = (0.5, 2.0, 5.0, 10.0)
    idx = [int(np.argmin(np.abs(tr.t - ti))) for ti in times]
    assert np.allclose(tr.t[idx], times)

    def msd_ok(msd_ref, wrong=False):
        ok = []
        for ti, i in zip(times, idx):
            msd = np.mean((tr.x[i, :, 0] - x0[:, 0]) ** 2)
            allowance = abs(_baoab_msd_discrete(ti, h) - _msd_reference(ti))
            assert allowance < 1e-3 * _msd_reference(ti)
            ok.append(abs(msd - msd_ref(ti)) < 5 * msd_ref(ti) * math.sqrt(2 / n) + allowance)
        return ok

    assert all(msd_ok(_msd_reference))
    assert all(msd_ok(lambda t: _baoab_msd_discrete(t, h)))
    # negative controls: D with the mass dropped (D = kT/gamma) fails at every time; the friction halved fails
    # once the motion is diffusive (t >= 2 = 1.4 tau; at t = 0.5 the MSD is ballistic, kT t^2/m, gamma-free)
    assert not any(msd_ok(lambda t: _msd_reference(t, mass=1.0)))
    assert not any(msd_ok(lambda t: _msd_reference(t, gamma=GAMMA / 2))[1:])
