"""Langevin MCMC samplers: moments on a 2-D Gaussian mixture, acceptance, path equivalence, determinism."""

import numpy as np
import pytest
from mcmc_targets import mixture_moments

import sde_toolkit as st


def _moment_z_scores(x: np.ndarray):
    """z-scores of the sample mean and covariance of independent draws x (n, 2) against the exact moments."""
    mean, cov = mixture_moments()
    n = x.shape[0]
    zm = (x.mean(0) - mean) / (x.std(0, ddof=1) / np.sqrt(n))
    c = x - x.mean(0)
    zc = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            prod = c[:, i] * c[:, j]
            zc[i, j] = (prod.mean() - cov[i, j]) / (prod.std(ddof=1) / np.sqrt(n))
    return zm, zc


def _final_states(mixture, method, step, n_steps=1500, n=4000, seed=11, **kw):
    x0 = np.random.default_rng(seed).normal(scale=2.0, size=(n, 2))
    ch = st.mcmc.langevin(mixture, x0, step=step, n_steps=n_steps, method=method, seed=seed, thin=n_steps, **kw)
    return ch, ch.samples[-1]


@pytest.mark.slow
@pytest.mark.parametrize("method,step", [("mala", 0.2), ("baoab", 0.1)])
def test_mixture_moments_from_independent_chains(mixture, method, step):
    ch, x = _final_states(mixture, method, step)
    zm, zc = _moment_z_scores(x)
    assert np.all(np.abs(zm) < 5), zm
    assert np.all(np.abs(zc) < 5), zc
    assert not ch.diverged.any()
    # negative control: the same sampler at a wrong temperature (kT = 1.3) fails the same 5-SE moment check
    _, x_hot = _final_states(mixture, method, step, kT=1.3)
    zm_hot, zc_hot = _moment_z_scores(x_hot)
    assert max(np.max(np.abs(zm_hot)), np.max(np.abs(zc_hot))) > 5, (zm_hot, zc_hot)


@pytest.mark.slow
def test_ula_large_step_fails_the_same_moment_check(mixture):
    """Negative control: ULA's O(h) bias at h = 0.3 is visible to the 5-SE covariance test."""
    _, x = _final_states(mixture, "ula", 0.3)
    _, zc = _moment_z_scores(x)
    assert np.max(np.abs(zc)) > 5, zc


def test_mala_acceptance_in_band_and_decreasing(mixture):
    x0 = np.random.default_rng(0).normal(size=(256, 2))
    rates = [
        st.mcmc.langevin(mixture, x0, step=h, n_steps=400, burn_in=100, method="mala", seed=1).acceptance_rate
        for h in (0.02, 0.2, 1.0)
    ]
    assert rates[0] > 0.97
    assert 0.5 < rates[1] < 0.97
    assert rates[2] < rates[1] < rates[0]
    assert rates[2] > 0.05


@pytest.mark.parametrize("method", ["ula", "mala", "baoab"])
def test_fused_equals_numpy_kernels(mixture, method):
    """The fused Numba driver and the pure NumPy kernels draw the same numbers: same chains to rounding."""
    x0 = np.random.default_rng(3).normal(size=(100, 2))  # two chain blocks
    kw = dict(step=0.1, n_steps=200, burn_in=50, thin=3, method=method, seed=5, kT=1.3, gamma=0.7)
    a = st.mcmc.langevin(mixture, x0, **kw)
    b = st.mcmc.langevin(mixture, x0, backend="numpy", **kw)
    assert a.backend == "numba" and b.backend == "numpy"
    assert a.samples.shape == b.samples.shape == ((200 - 50) // 3, 100, 2)
    np.testing.assert_allclose(a.samples, b.samples, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.energies, b.energies, rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.energies, mixture.energy(a.samples.reshape(-1, 2)).reshape(a.energies.shape), atol=1e-12)
    if method == "mala":
        np.testing.assert_array_equal(a.accepted, b.accepted)
    if method == "baoab":
        np.testing.assert_allclose(a.final_momentum, b.final_momentum, atol=1e-10)


@pytest.mark.parametrize("method", ["ula", "baoab"])
def test_score_callable_matches_potential(mixture, method):
    x0 = np.random.default_rng(4).normal(size=(70, 2))
    kw = dict(step=0.05, n_steps=100, method=method, seed=9)
    a = st.mcmc.langevin(mixture, x0, **kw)
    b = st.mcmc.langevin(lambda x: -mixture.grad(x), x0, **kw)
    c = st.mcmc.langevin(lambda x, t: -mixture.grad(x) * (1.0 + t), x0, t=0.0, **kw)
    assert b.energies is None and b.backend == "numpy"
    np.testing.assert_allclose(a.samples, b.samples, atol=1e-10)
    np.testing.assert_array_equal(b.samples, c.samples)


def test_seed_fixes_results_whatever_the_thread_count(mixture):
    x0 = np.random.default_rng(5).normal(size=(300, 2))  # 5 blocks
    kw = dict(step=0.1, n_steps=150, method="mala", seed=123)
    one = st.mcmc.langevin(mixture, x0, n_threads=1, **kw)
    two = st.mcmc.langevin(mixture, x0, n_threads=2, **kw)
    np.testing.assert_array_equal(one.samples, two.samples)
    np.testing.assert_array_equal(one.accepted, two.accepted)
    other = st.mcmc.langevin(mixture, x0, n_threads=2, **{**kw, "seed": 124})
    assert not np.array_equal(one.samples, other.samples)
    fresh = st.mcmc.langevin(mixture, x0, **{**kw, "seed": None})
    again = st.mcmc.langevin(mixture, x0, **{**kw, "seed": fresh.seed})
    np.testing.assert_array_equal(fresh.samples, again.samples)


def test_chains_object(mixture):
    x0 = np.zeros((10, 2))
    ch = st.mcmc.langevin(mixture, x0, step=0.1, n_steps=105, burn_in=5, thin=10, method="ula", seed=0)
    assert ch.samples.shape == (10, 10, 2) and ch.energies.shape == (10, 10)
    assert ch.acceptance_rate is None and ch.accepted is None
    assert ch.flat().shape == (100, 2)
    assert ch.ess().shape == ch.rhat().shape == ch.tau().shape == (2,)
    np.testing.assert_array_equal(ch.final_position, ch.samples[-1])
    assert "ula" in repr(ch)
    lean = st.mcmc.langevin(mixture, x0, step=0.1, n_steps=105, burn_in=5, thin=10, method="ula", seed=0,
                            store_energy=False)
    assert lean.energies is None
    np.testing.assert_array_equal(lean.samples, ch.samples)


@pytest.mark.slow
def test_divergence_is_flagged():
    dw = st.potentials.DoubleWell()
    ch = st.mcmc.langevin(dw, np.full((4, 1), 3.0), step=1.0, n_steps=20, method="ula", seed=0)
    assert ch.diverged.all()


def test_bad_input(mixture):
    x0 = np.zeros((4, 2))
    with pytest.raises(ValueError, match="step"):
        st.mcmc.langevin(mixture, x0, step=0.0, n_steps=10)
    with pytest.raises(ValueError, match="step"):
        st.mcmc.langevin(mixture, x0, step=float("nan"), n_steps=10)
    bad = x0.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"x0 contains non-finite.*x0\[2, 1\]"):
        st.mcmc.langevin(mixture, bad, step=0.1, n_steps=10)
    with pytest.raises(ValueError, match="2-dimensional"):
        st.mcmc.langevin(mixture, np.zeros((4, 3)), step=0.1, n_steps=10)
    with pytest.raises(ValueError, match="unknown method"):
        st.mcmc.langevin(mixture, x0, step=0.1, n_steps=10, method="hmc")
    with pytest.raises(ValueError, match="MALA needs the energy"):
        st.mcmc.langevin(lambda x: -x, x0, step=0.1, n_steps=10, method="mala")
    with pytest.raises(ValueError, match="no samples would be kept"):
        st.mcmc.langevin(mixture, x0, step=0.1, n_steps=10, burn_in=10)
    with pytest.raises(ValueError, match="pass t="):
        st.mcmc.langevin(lambda x, t: -x, x0, step=0.1, n_steps=10)
    with pytest.raises(ValueError, match="score returned shape"):
        st.mcmc.langevin(lambda x: -x[:, :1], x0, step=0.1, n_steps=10)
    with pytest.raises(TypeError):
        st.mcmc.langevin(3.0, x0, step=0.1, n_steps=10)


@pytest.mark.slow
def test_annealed_langevin_recovers_mode_weights():
    """Exact noise-conditional score of a well-separated mixture: annealing finds the right mode weights."""
    w = np.array([0.25, 0.75])
    means = np.array([[-3.0, 0.0], [3.0, 0.0]])
    cov = 0.25 * np.eye(2)
    cache = {}

    def score(x, sigma):
        if sigma not in cache:
            cache[sigma] = st.potentials.GaussianMixture(w, means, cov + sigma**2 * np.eye(2))
        return -cache[sigma].grad(x)

    sigmas = np.geomspace(6.0, 0.05, 12)
    x0 = np.random.default_rng(0).uniform(-1, 1, size=(1000, 2))
    out = st.mcmc.annealed_langevin(score, sigmas, x0, step=1e-4, n_steps_each=400, seed=2)
    assert out.levels.shape == (12, 1000, 2) and out.x.shape == (1000, 2)
    right = out.x[:, 0] > 0
    frac = right.mean()
    assert abs(frac - 0.75) < 5 * np.sqrt(0.75 * 0.25 / 1000)
    # negative control: the same 5-SE check rejects a wrong mode weight, 0.6 (5 SE away from 0.75 at n = 1000)
    assert not abs(frac - 0.6) < 5 * np.sqrt(0.6 * 0.4 / 1000)
    np.testing.assert_allclose(out.x[right].mean(0), means[1], atol=0.1)
    np.testing.assert_allclose(out.x[~right].mean(0), means[0], atol=0.1)
    with pytest.raises(ValueError, match="decreasing"):
        st.mcmc.annealed_langevin(score, sigmas[::-1], x0, seed=0)
