"""Stationary densities: 2-D double well, non-gradient OU (Lyapunov), tilted periodic current, errors."""

import numpy as np
import pytest
from scipy import integrate

import sde_toolkit as st


def test_2d_double_well_stationary_equals_boltzmann():
    dw = st.OverdampedLangevin(st.potentials.DoubleWell(), kT=0.5, dim=2)
    g = st.Grid([-2.5, -2.5], [2.5, 2.5], [80, 90])
    fp = st.FokkerPlanck(dw, g)
    p = fp.stationary()
    assert p.shape == (80, 90)
    w = np.exp(-dw.potential.energy(g.points()) / 0.5).reshape(g.shape)
    w /= w.sum() * g.cell_volume
    assert abs(p.sum() * g.cell_volume - 1) < 1e-13
    assert np.abs(p - w).max() <= 1e-10 * w.max()
    L = fp.generator()
    assert np.abs(L @ w.ravel()).max() / (abs(L).max() * w.max()) <= 1e-13
    J = fp.current(p)  # detailed balance: no current
    assert max(np.abs(j).max() for j in J) < 1e-12 * p.max()


def test_nongradient_ou_stationary_is_lyapunov_gaussian():
    theta = np.array([[1.0, 0.8], [-0.5, 1.2]])
    ou = st.OrnsteinUhlenbeck(theta, np.array([1.0, 0.6]))
    G = ou.stationary()
    assert abs(G.cov[0, 1]) > 0.03  # genuinely correlated, not a product density
    errs = []
    for n in (32, 64, 128):
        g = st.Grid([-4, -4], [4, 4], n)
        fp = st.FokkerPlanck(ou, g)
        p = fp.stationary()
        errs.append(np.abs(p - G.pdf(g.points()).reshape(g.shape)).sum() * g.cell_volume)
    r = np.array(errs[:-1]) / errs[1:]
    assert np.all((r > 3.5) & (r < 4.5)), (errs, r)
    assert errs[-1] < 2e-3
    # a non-equilibrium steady state: a rotating, divergence-free current
    Jc = fp.current_at_centers(p)
    assert np.abs(Jc).max() > 0.01
    np.testing.assert_allclose(fp.generator() @ p.ravel(), 0.0, atol=1e-12 * abs(fp.generator()).max() * p.max())


def _drift_velocity(F, kT, L):
    """Reimann (2002): v = L (1 - e^{-L F / kT}) / int_0^L dx I(x), I(x) = (1/D) int_0^L dy e^{[U(x) - U(x-y)]/kT}."""
    U = lambda x: np.cos(x) - F * x  # noqa: E731
    xs = np.linspace(0, L, 2001)
    I = np.array([integrate.simpson(np.exp((U(x) - U(x - xs)) / kT), x=xs) for x in xs]) / kT
    return L * (1 - np.exp(-L * F / kT)) / integrate.simpson(I, x=xs)


def test_tilted_periodic_potential_steady_current():
    F, kT, L = 0.5, 0.7, 2 * np.pi
    v = _drift_velocity(F, kT, L)
    sde = st.OverdampedLangevin(st.potentials.from_expression(f"cos(x) - {F}*x"), kT=kT)
    errs = []
    for n in (50, 100):
        g = st.Grid(0, L, n, boundary="periodic")
        fp = st.FokkerPlanck(sde, g)
        p = fp.stationary()
        J = fp.current(p)[0]
        assert J.shape == (n,)
        assert J.std() < 1e-12 * abs(J.mean())  # constant current in 1-D
        errs.append(abs(J.mean() * L / v - 1))
    assert errs[-1] < 5e-4 and 3.5 < errs[0] / errs[1] < 4.5, errs
    # the same SDE given only by its drift (no potential) agrees
    s2 = st.SDE.from_functions(lambda x, t: np.sin(x) + F, np.sqrt(2 * kT), dim=1)
    fp2 = st.FokkerPlanck(s2, st.Grid(0, L, 100, boundary="periodic"), time_dependent=False)
    assert abs(fp2.current(fp2.stationary())[0].mean() * L / v - 1) < 5e-4
    # negative control: the untilted potential carries no current
    fp0 = st.FokkerPlanck(st.OverdampedLangevin("cos(x)", kT=kT), st.Grid(0, L, 100, boundary="periodic"))
    assert abs(fp0.current(fp0.stationary())[0]).max() < 1e-13


def test_stationary_errors():
    g = st.Grid(-3, 3, 50, boundary=[("reflecting", "absorbing")])
    with pytest.raises(ValueError, match="absorbing walls"):
        st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0), g).stationary()
    repulsive = st.OverdampedLangevin(st.potentials.from_expression("-x**2"), kT=1.0)
    fp = st.FokkerPlanck(repulsive, st.Grid(-3, 3, 50))
    with pytest.raises(ValueError, match="not confined"):
        fp.stationary()
    p = fp.stationary(allow_wall_mass=True)  # the box model itself is fine
    assert p[0] > p[25]
    # pure diffusion in a box: uniform, no error
    flat = st.FokkerPlanck(st.SDE.from_functions(lambda x, t: 0 * x, 1.0, dim=1), st.Grid(0, 1, 20),
                           time_dependent=False)
    np.testing.assert_allclose(flat.stationary(), 1.0, rtol=1e-12)
    with pytest.raises(ValueError, match="time-dependent"):
        st.FokkerPlanck(st.VPSDE(), st.Grid(-3, 3, 20)).stationary()


def test_stationary_when_the_density_is_far_from_the_centre():
    # a user SDE (no potential) whose mass sits far from the grid centre: pinning must move to the bulk
    s = st.SDE.from_functions(lambda x, t: -5.0 * (x - 7.0), 0.3, dim=1)
    g = st.Grid(-10, 10, 400)
    p = st.FokkerPlanck(s, g, time_dependent=False).stationary()
    x = g.centers[0]
    var = 0.09 / 10.0
    exact = np.exp(-((x - 7.0) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)
    assert np.abs(p - exact).sum() * g.cell_volume < 1e-3


@pytest.mark.parametrize("name", ["seed", "user"])
def test_banded_stationary_solve_equals_sparse_lu(name):
    import dataclasses

    from sde_toolkit.fokker_planck import FokkerPlanck

    if name == "seed":
        sde = st.OverdampedLangevin("0.1*x**2 - log(0.2 + cos(2*x)**2)", kT=1.0)
        fp = FokkerPlanck(sde, st.Grid(-10, 10, 2000))
    else:
        sde = st.SDE.from_functions(lambda x, t: -2.0 * x**3 + x, 0.7, dim=1)
        fp = FokkerPlanck(sde, st.Grid(-3, 3, 700), time_dependent=False)
    op = fp.operator()
    assert op.bands is not None
    sparse = dataclasses.replace(op, bands=None)
    # well-conditioned pins (cells in the bulk of the density), as stationary() chooses them
    bulk = int(np.argmax(fp.stationary()))
    for k in (fp._pin_guess(op), bulk, bulk + 7):
        banded = FokkerPlanck._pinned_solve(op, k)
        lu = FokkerPlanck._pinned_solve(sparse, k)
        np.testing.assert_allclose(banded, lu, rtol=1e-10, atol=1e-14 * np.abs(lu).max())
    # the fallback long implicit step agrees too, and is a positive vector
    a, b = FokkerPlanck._long_implicit_step(op), FokkerPlanck._long_implicit_step(sparse)
    assert a.min() > 0
    np.testing.assert_allclose(a, b, rtol=1e-8)
