"""Time stepping: conservation, positivity, H-theorem, convergence orders, long-time limit, bad input."""

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.fokker_planck import relative_entropy

OU = st.OrnsteinUhlenbeck(1.0, 1.0)


def _exact_ou(x, t, m0=1.0, v0=0.09):
    m = m0 * np.exp(-t)
    v = v0 * np.exp(-2 * t) + 0.5 * (1 - np.exp(-2 * t))
    return np.exp(-((x - m) ** 2) / (2 * v)) / np.sqrt(2 * np.pi * v)


@pytest.mark.parametrize("n", [64, 256])
def test_mass_drift_over_1000_implicit_steps(n):
    g = st.Grid(-5, 5, n)
    fp = st.FokkerPlanck(st.OverdampedLangevin(st.potentials.DoubleWell(), kT=0.5), g)
    res = fp.evolve(g.gaussian(1.2, 0.05**2), t1=10.0, dt=0.01, save_every=1000)
    assert res.p.shape == (2, n) and res.t[-1] == 10.0
    assert abs(res.mass[-1] - res.mass[0]) <= 1e-12


@pytest.mark.parametrize("dt", [1e-3, 0.1, 10.0])
def test_positivity_from_narrow_off_centre_gaussian(dt):
    g = st.Grid(-6, 6, 32)  # coarse: cell Péclet numbers up to 4.5
    p0 = g.gaussian(2.0, 0.05**2)
    res = st.FokkerPlanck(OU, g).evolve(p0, t1=5 * dt, dt=dt)
    assert res.p.min() >= 0.0
    if dt >= 0.1:  # negative control: central differencing of the drift goes negative on the same problem
        bad = st.FokkerPlanck(OU, g, scheme="central").evolve(p0, t1=5 * dt, dt=dt)
        assert bad.p.min() < -1e-7


def test_explicit_euler_cfl_guard_and_positivity():
    g = st.Grid(-6, 6, 128)
    fp = st.FokkerPlanck(OU, g)
    lim = 1.0 / np.abs(fp.generator().diagonal()).max()
    p0 = g.gaussian(2.0, 0.05**2)
    res = fp.evolve(p0, t1=100 * 0.9 * lim, dt=0.9 * lim, method="euler")
    assert res.p.min() >= 0.0
    with pytest.raises(ValueError, match="explicit-Euler positivity limit"):
        fp.evolve(p0, t1=10 * 1.5 * lim, dt=1.5 * lim, method="euler")


@pytest.mark.parametrize("method, dt", [("implicit_euler", 0.01), ("implicit_euler", 10.0), ("euler", None)])
def test_relative_entropy_never_increases(method, dt):
    g = st.Grid(-3, 3, 96)
    fp = st.FokkerPlanck(st.OverdampedLangevin(st.potentials.DoubleWell(), kT=0.7), g)
    ginf = fp.stationary()
    if dt is None:
        dt = 0.9 / np.abs(fp.generator().diagonal()).max()
    res = fp.evolve(g.gaussian(-1.5, 0.05**2), t1=200 * dt, dt=dt)
    H = np.array([relative_entropy(p, ginf, g) for p in res.p])
    assert H[0] > 0.5
    assert np.all(np.diff(H) <= 1e-14)


def test_second_order_in_space_against_exact_ou():
    errs = []
    for n in (32, 64, 128, 256):
        g = st.Grid(-6, 6, n)
        res = st.FokkerPlanck(OU, g).evolve(g.gaussian(1.0, 0.09), t1=0.5, dt=0.5, method="expm")
        errs.append(np.abs(res.p[-1] - _exact_ou(g.centers[0], 0.5)).sum() * g.cell_volume)
    r = np.array(errs[:-1]) / errs[1:]
    assert np.all((r >= 3.5) & (r <= 4.5)), (errs, r)
    assert errs[-1] < 1e-3


@pytest.mark.parametrize("method, lo, hi", [("implicit_euler", 1.8, 2.2), ("crank_nicolson", 3.5, 4.5)])
def test_time_order(method, lo, hi):
    g = st.Grid(-6, 6, 256)
    fp = st.FokkerPlanck(OU, g)
    p0 = g.gaussian(1.0, 0.09)
    ref = fp.evolve(p0, t1=0.5, dt=0.5, method="expm").p[-1]
    errs = [np.abs(fp.evolve(p0, t1=0.5, dt=dt, method=method).p[-1] - ref).sum() * g.cell_volume
            for dt in (0.05, 0.025, 0.0125)]
    r = np.array(errs[:-1]) / errs[1:]
    assert np.all((r >= lo) & (r <= hi)), (errs, r)


def test_crank_nicolson_startup_damps_oscillation():
    g = st.Grid(-6, 6, 256)
    fp = st.FokkerPlanck(OU, g)
    p0 = g.gaussian(2.0, 0.05**2)
    ref = fp.evolve(p0, t1=1.0, dt=1.0, method="expm").p[-1]
    raw = fp.evolve(p0, t1=1.0, dt=0.1, method="crank_nicolson", startup_steps=0)
    smooth = fp.evolve(p0, t1=1.0, dt=0.1, method="crank_nicolson")
    assert raw.p.min() < -0.1  # negative control: plain CN rings on a rough initial density
    assert smooth.p.min() >= 0.0
    assert np.abs(smooth.p[-1] - ref).sum() * g.cell_volume < 0.01


@pytest.mark.slow
def test_long_time_limit_reaches_boltzmann():
    g = st.Grid(-3, 3, 128)
    fp = st.FokkerPlanck(st.OverdampedLangevin(st.potentials.Harmonic(k=2.0), kT=0.5), g)
    w = np.exp(-(g.centers[0] ** 2) / 0.5)
    w /= w.sum() * g.cell_volume
    for method, dt in (("implicit_euler", 0.1), ("expm", 5.0)):
        res = fp.evolve(g.gaussian(1.5, 0.05**2), t1=25.0, dt=dt, method=method, save_every=50)
        assert np.abs(res.p[-1] - w).sum() * g.cell_volume <= 1e-10  # t = 50 / theta with theta = k = 2


def test_saved_times_are_computed_not_accumulated():
    g = st.Grid(-3, 3, 20)
    res = st.FokkerPlanck(OU, g).evolve(g.gaussian(0, 1), t0=0.3, t1=5.3, dt=0.1, save_every=7)
    k = np.append(np.arange(0, 51, 7), 50)
    np.testing.assert_array_equal(res.t, 0.3 + k * 0.1)
    assert res.p.shape == (k.size, 20)


def test_evolve_bad_input():
    g = st.Grid(-3, 3, 20)
    fp = st.FokkerPlanck(OU, g)
    p0 = g.gaussian(0, 1)
    with pytest.raises(ValueError, match="dt must be > 0, got 0.0"):
        fp.evolve(p0, t1=1.0, dt=0.0)
    with pytest.raises(ValueError, match="dt must be > 0"):
        fp.evolve(p0, t1=1.0, dt=-0.1)
    with pytest.raises(ValueError, match="t1 must exceed t0"):
        fp.evolve(p0, t1=0.0, dt=0.1)
    with pytest.raises(ValueError, match="whole number of steps"):
        fp.evolve(p0, t1=1.0, dt=0.3)
    with pytest.raises(ValueError, match="save_every"):
        fp.evolve(p0, t1=1.0, dt=0.1, save_every=0)
    bad = p0.copy()
    bad[3] = -1e-3
    with pytest.raises(ValueError, match="p0 must be non-negative, got -0.001 at flat index 3"):
        fp.evolve(bad, t1=1.0, dt=0.1)
    with pytest.raises(ValueError, match=r"mass .* = 1, got 2"):
        fp.evolve(2 * p0, t1=1.0, dt=0.1)
    res = fp.evolve(2 * p0, t1=1.0, dt=0.1, normalize=True)
    assert res.mass[0] == pytest.approx(1.0, abs=1e-14)
    with pytest.raises(ValueError, match="grid shape"):
        fp.evolve(np.ones(7), t1=1.0, dt=0.1)
    with pytest.raises(ValueError, match="method must be one of"):
        fp.evolve(p0, t1=1.0, dt=0.1, method="rk4")
    nan = p0.copy()
    nan[0] = np.nan
    with pytest.raises(ValueError, match="p0 must be finite"):
        fp.evolve(nan, t1=1.0, dt=0.1)


def test_progress_bar_explicit(capsys):
    g = st.Grid(-3, 3, 20)
    st.FokkerPlanck(OU, g).evolve(g.gaussian(0, 1), t1=1.0, dt=0.1, progress=True)
    assert "FP implicit_euler" in capsys.readouterr().err
    st.FokkerPlanck(OU, g).evolve(g.gaussian(0, 1), t1=1.0, dt=0.1)  # auto: short run, silent
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_vpsde_mixture_matches_closed_form_marginal():
    vp = st.VPSDE(beta_min=0.1, beta_max=20.0)
    g = st.Grid(-5, 5, 400)
    w, m, s = np.array([0.3, 0.7]), np.array([-1.5, 1.0]), np.array([0.25, 0.4])
    x = g.centers[0]

    def mixture(t):
        B = float(vp.integrated_beta(t))
        mt = m * np.exp(-B / 2)
        vt = s**2 * np.exp(-B) - np.expm1(-B)
        return (w / np.sqrt(2 * np.pi * vt) * np.exp(-((x[:, None] - mt) ** 2) / (2 * vt))).sum(axis=1)

    fp = st.FokkerPlanck(vp, g)
    assert fp.time_dependent
    res = fp.evolve(mixture(0.0), t1=1.0, dt=2e-3, method="crank_nicolson", save_every=125, normalize=True)
    errs = [np.abs(p - mixture(t)).sum() * g.cell_volume for t, p in zip(res.t, res.p)]
    assert max(errs) < 2e-3, errs
    # negative control: freezing beta at t = 0 (a time-homogeneous assembly) is far off
    frozen = st.FokkerPlanck(vp, g, time_dependent=False)
    bad = frozen.evolve(mixture(0.0), t1=1.0, dt=2e-3, method="crank_nicolson", save_every=500, normalize=True)
    assert np.abs(bad.p[-1] - mixture(1.0)).sum() * g.cell_volume > 0.3
