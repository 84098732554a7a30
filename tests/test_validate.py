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
    """Mixed MALA chains pass at their bulk ESS; hot chains (mixed, wrong law) fail the statistics.

    The chains must be long enough to mix: 1000 chains of 3000 steps (the earlier version of this test) have
    R-hat 1.24, each chain having visited only a few of the density's wells, and now fail the R-hat gate."""
    x0 = np.random.default_rng(6).uniform(-10, 10, size=(100, 1))
    kw = dict(step=0.05, n_steps=201_000, burn_in=1000, thin=100, method="mala", seed=7)
    ch = st.mcmc.langevin(seed_sde.potential, x0, **kw)
    r = st.validate_stationary(seed_sde, ch)
    assert r.passed, r.to_markdown()
    assert r.mixing_ok and r.rhat < 1.005
    assert r.n_samples == 200_000 and r.effective_size < 0.5 * r.n_samples
    x0_many = np.random.default_rng(6).uniform(-10, 10, size=(1000, 1))
    short = st.mcmc.langevin(seed_sde.potential, x0_many, step=0.05, n_steps=3000, burn_in=1000, thin=20,
                             method="mala", seed=7)
    r_short = st.validate_stationary(seed_sde, short)
    assert not r_short.passed and not r_short.mixing_ok and r_short.rhat > 1.1, r_short.to_markdown()
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


def test_rhat_gate_negative_control_offset_chains():
    """Eight chains of exact draws, each shifted by a fixed offset (between-chain sd 0.2 within-chain sd): the
    pooled law is nearly right and the statistics pass at the (collapsed) bulk ESS, but R-hat = sqrt(1.04) ~ 1.02
    fails the gate. The same draws without offsets pass. R-hat is a ratio of variances: an offset of 1 % of an
    sd (R-hat - 1 ~ 5e-5) is below its resolution at any sample size and passes; that is not a mixing failure
    the gate can see."""
    ou = st.OrnsteinUhlenbeck(theta=1.0, sigma=1.0)  # stationary N(0, 1/2)
    base = ou.stationary().sample(80_000, seed=13).reshape(10_000, 8, 1)
    spread = np.linspace(-1.0, 1.0, 8)[None, :, None] / np.std(np.linspace(-1.0, 1.0, 8))  # population sd 1
    sd = np.sqrt(0.5)
    bad = st.validate_stationary(ou, base + 0.2 * sd * spread)
    assert not bad.passed and not bad.mixing_ok
    assert 1.015 < bad.rhat < 1.03  # measured 1.0216
    assert all(ok for k, (_, _, ok) in bad.checks().items() if k != "rhat")  # only the gate sees it
    assert "chains not mixed (R-hat = 1.02" in bad.to_markdown()
    good = st.validate_stationary(ou, base)
    assert good.passed and good.rhat < 1.005 and good.effective_size > 50_000
    tiny = st.validate_stationary(ou, base + 0.01 * sd * spread)
    assert tiny.passed and tiny.rhat < 1.005
    # the gate can be turned off; the R-hat is still reported
    off = st.validate_stationary(ou, base + 0.2 * sd * spread, rhat_max=None)
    assert off.passed and off.rhat == pytest.approx(bad.rhat) and "gate disabled" in off.to_markdown()


def test_validate_mixing_fields_for_independent_draws_and_short_chains():
    sde = st.OrnsteinUhlenbeck(theta=1.0, sigma=1.0)
    x = sde.stationary().sample(3000, seed=14)
    r = st.validate_stationary(sde, x)
    assert r.rhat is None and r.mixing_ok and r.mixing_message is None and "rhat" not in r.checks()
    assert r.to_dict()["mixing_ok"] is True and r.to_dict()["rhat"] is None
    # 1-3 kept samples per chain: no split chains; one draw per chain counts, no R-hat
    r3 = st.validate_stationary(sde, x.reshape(3, 1000, 1))
    assert r3.rhat is None and r3.effective_size == 1000 and r3.passed
    # from 4 kept samples R-hat is computed; split chains of 2 draws make it too noisy to pass (measured 1.04 on
    # independent draws): too few draws per chain to tell whether they mixed
    r4 = st.validate_stationary(sde, x[:2000].reshape(4, 500, 1))
    assert r4.rhat is not None and r4.effective_size > 1000
    with pytest.raises(TypeError, match="ess_c"):
        st.validate_stationary(sde, x, ess_c=5.0)
    with pytest.raises(ValueError, match="rhat_max"):
        st.validate_stationary(sde, x, rhat_max=1.0)
