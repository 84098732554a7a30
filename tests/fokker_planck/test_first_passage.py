"""Absorbing walls: mean first-passage time (adjoint, quadrature, Kramers), survival, first-passage density."""

import numpy as np
import pytest
from scipy import integrate

import sde_toolkit as st


def _setup(kT, n=300):
    dw = st.OverdampedLangevin(st.potentials.DoubleWell(), kT=kT)
    g = st.Grid(-2.0, 1.0, n, boundary=[("reflecting", "absorbing")])
    return st.FokkerPlanck(dw, g), g


def _mfpt_quadrature(x0, kT, a=-2.0, b=1.0):
    """tau(x0) = (1/D) int_x0^b dy e^{V(y)/kT} int_a^y dz e^{-V(z)/kT}, D = kT (gamma = 1)."""
    z = np.linspace(a, b, 200001)
    V = (z**2 - 1) ** 2
    inner = integrate.cumulative_trapezoid(np.exp(-V / kT), z, initial=0.0)
    m = z >= x0
    return integrate.trapezoid(np.exp(V[m] / kT) * inner[m], z[m]) / kT


def _kramers_rate(kT):
    return np.sqrt(8.0 * 4.0) / (2 * np.pi) * np.exp(-1.0 / kT)  # sqrt(V''(-1)|V''(0)|)/(2 pi) e^{-dV/kT}


def test_mfpt_adjoint_vs_quadrature_and_kramers():
    kr_err = []
    for kT in (0.125, 0.1):
        fp, g = _setup(kT)
        tau = fp.mean_first_passage_time()
        i = int(np.argmin(abs(g.centers[0] + 1.0)))
        tq = _mfpt_quadrature(g.centers[0][i], kT)
        assert abs(tau[i] / tq - 1) < 2e-3
        kr_err.append(abs(tau[i] * _kramers_rate(kT) - 1))
    assert kr_err[1] < 0.06 and kr_err[1] < kr_err[0]  # Kramers is asymptotic in kT / dV


def test_survival_decays_at_the_escape_rate():
    kT = 0.1
    fp, g = _setup(kT)
    i = int(np.argmin(abs(g.centers[0] + 1.0)))
    T = fp.mean_first_passage_time()[i]
    res = fp.first_passage(g.gaussian(-1.0, kT / 8), t1=2 * T, dt=2 * T / 400, method="crank_nicolson")
    late = res.t > 0.5 * T
    rate = -np.polyfit(res.t[late], np.log(res.survival[late]), 1)[0]
    assert abs(rate * T - 1) < 0.01
    assert abs(rate / _kramers_rate(kT) - 1) < 0.06
    assert abs(res.mean_time / T - 1) < 1e-3
    assert res.survival[0] == pytest.approx(1.0, abs=1e-12) and res.survival[-1] < 0.2


def test_first_passage_density_is_the_outflux():
    fp, g = _setup(0.25, n=120)
    res = fp.first_passage(g.gaussian(-1.0, 0.02), t1=40.0, dt=0.05)
    # implicit Euler: S_{n+1} - S_n = -dt * outflux(p_{n+1}) exactly
    np.testing.assert_allclose(np.diff(res.survival), -0.05 * res.density[1:], atol=1e-13)
    assert res.density.min() >= 0
    assert res.evolution.p.shape == (801, 120)
    assert np.all(np.diff(res.survival) <= 1e-15) and res.survival[-1] < 0.9


def test_first_passage_errors():
    fp = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0), st.Grid(-3, 3, 20))
    with pytest.raises(ValueError, match="absorbing wall"):
        fp.mean_first_passage_time()
    with pytest.raises(ValueError, match="absorbing wall"):
        fp.first_passage(fp.grid.gaussian(0, 1), t1=1.0, dt=0.1)


def test_absorbing_2d_mfpt_matches_separable_1d():
    # pure diffusion in a square with absorbing x-walls and reflecting y-walls: tau depends on x only
    s = st.SDE.from_functions(lambda x, t: 0 * x, np.sqrt(2.0), dim=2)
    g = st.Grid([0, 0], [1, 1], [40, 12], boundary=["absorbing", "reflecting"])
    tau = st.FokkerPlanck(s, g, time_dependent=False).mean_first_passage_time()
    x = g.centers[0]
    np.testing.assert_allclose(tau, (x * (1 - x) / 2)[:, None] * np.ones(12), rtol=0, atol=1e-4)  # O(h^2)
