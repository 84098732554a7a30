"""validate_stationary: passes on correct samples, fails on wrong-temperature samples (negative control)."""

import numpy as np
import pytest
from scipy import stats

import sde_toolkit as st

SEED_V = "0.1*x**2 - log(0.2 + cos(2*x)**2)"


@pytest.fixture(scope="module")
def seed_sde():
    return st.OverdampedLangevin(st.potentials.from_expression(SEED_V))


@pytest.mark.slow
def test_exact_samples_pass_wrong_temperature_fails(seed_sde):
    good = seed_sde.stationary().sample(20000, seed=1)
    r = st.validate_stationary(seed_sde, good)
    assert r.passed, r.to_markdown()
    assert r.effective_size == 20000
    assert r.ks_threshold == pytest.approx(stats.kstwo.isf(1e-3 / 3, 20000))
    hot = st.OverdampedLangevin(seed_sde.potential, kT=1.5).stationary().sample(20000, seed=2)
    bad = st.validate_stationary(seed_sde, hot)
    assert not bad.passed
    assert all(not ok for _, _, ok in bad.checks().values())  # every statistic sees it
    assert "FAILED" in bad.to_markdown() and bad.to_dict()["passed"] is False


def test_thresholds_are_not_too_tight():
    """Null calibration: exact samples at several seeds and sizes all pass (alpha = 1e-3)."""
    sde = st.OverdampedLangevin(st.potentials.DoubleWell(), kT=0.5)
    dist = sde.stationary()
    for seed in range(6):
        r = st.validate_stationary(sde, dist.sample(500 * (seed + 1), seed=100 + seed), n_bootstrap=200, seed=seed)
        assert r.passed, r.to_markdown()


@pytest.mark.slow
def test_ou_gaussian_reference():
    ou = st.OrnsteinUhlenbeck(theta=2.0, sigma=1.0, mu=0.5)
    x = ou.stationary().sample(5000, seed=3)
    assert st.validate_stationary(ou, x).passed
    assert not st.validate_stationary(ou, 1.15 * (x - 0.5) + 0.5).passed  # variance 32 % too large


@pytest.mark.slow
def test_2d_mixture_pass_and_fail():
    means = [[-1.0, 0.0], [1.0, 0.5]]
    covs = np.array([[[0.5, 0.2], [0.2, 0.4]], [[0.6, -0.15], [-0.15, 0.35]]])
    sde = st.OverdampedLangevin(st.potentials.GaussianMixture([0.35, 0.65], means, covs))
    assert st.validate_stationary(sde, sde.stationary().sample(20000, seed=4)).passed
    hot = st.OverdampedLangevin(sde.potential, kT=1.25).stationary().sample(20000, seed=5)
    assert not st.validate_stationary(sde, hot).passed


@pytest.mark.slow
def test_mala_chains_pass_with_ess_and_hot_chains_fail(seed_sde):
    x0 = np.random.default_rng(6).uniform(-10, 10, size=(1000, 1))
    kw = dict(step=0.05, n_steps=3000, burn_in=1000, thin=20, method="mala", seed=7)
    ch = st.mcmc.langevin(seed_sde.potential, x0, **kw)
    r = st.validate_stationary(seed_sde, ch)
    assert r.passed, r.to_markdown()
    assert r.n_samples == 100_000 and r.effective_size < r.n_samples
    hot = st.mcmc.langevin(seed_sde.potential, x0, kT=1.5, **kw)
    assert not st.validate_stationary(seed_sde, hot).passed


@pytest.mark.slow
def test_against_fokker_planck_grid(seed_sde):
    fp = pytest.importorskip("sde_toolkit.fokker_planck")
    grid = fp.Grid(-12.0, 12.0, 480)
    good = seed_sde.stationary().sample(20000, seed=8)
    r = st.validate_stationary(seed_sde, good, grid=grid)
    assert r.tv_fp is not None and r.passed, r.to_markdown()
    assert r.fp_vs_reference_tv < 1e-3  # FP stationary density agrees with quadrature
    hot = st.OverdampedLangevin(seed_sde.potential, kT=1.5).stationary().sample(20000, seed=9)
    bad = st.validate_stationary(seed_sde, hot, grid=grid)
    assert bad.checks()["tv_fp"][2] is False


def test_validate_bad_input(seed_sde):
    with pytest.raises(ValueError, match="dim"):
        st.validate_stationary(seed_sde, np.zeros((10, 2)))
    with pytest.raises(ValueError, match="NaN"):
        st.validate_stationary(seed_sde, np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="alpha"):
        st.validate_stationary(seed_sde, np.zeros(10), alpha=2.0)
