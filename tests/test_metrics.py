"""Metrics against closed forms and scipy."""

import numpy as np
import pytest
from scipy import stats

from sde_toolkit import metrics


def test_ks_matches_scipy():
    x = np.random.default_rng(0).normal(size=500)
    r = metrics.ks_statistic(x, stats.norm.cdf)
    ref = stats.kstest(x, "norm")
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert r.pvalue == pytest.approx(ref.pvalue, rel=1e-9)
    assert metrics.ks_statistic(x + 1.0, stats.norm.cdf).pvalue < 1e-10


def test_wasserstein_1d_closed_forms_and_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=300)
    assert metrics.wasserstein_1d(a, a + 0.7) == pytest.approx(0.7, rel=1e-12)
    assert metrics.wasserstein_1d(a, a + 0.7, p=2) == pytest.approx(0.7, rel=1e-12)
    b = rng.exponential(size=451)
    assert metrics.wasserstein_1d(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    assert metrics.wasserstein_1d(a, a) == 0.0
    # equal sizes: W2^2 = mean of squared differences of order statistics
    c = rng.normal(size=300) * 2
    assert metrics.wasserstein_1d(a, c, p=2) == pytest.approx(np.sqrt(np.mean((np.sort(a) - np.sort(c)) ** 2)), rel=1e-12)


def test_sliced_wasserstein_of_a_shift():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(400, 2))
    v = np.array([1.0, -2.0])
    sw = metrics.sliced_wasserstein(a, a + v, n_projections=256, seed=0)
    th = np.random.default_rng(0).standard_normal((256, 2))
    th /= np.linalg.norm(th, axis=1, keepdims=True)
    assert sw == pytest.approx(np.mean(np.abs(th @ v)), rel=1e-10)  # every projection is an exact shift
    assert sw == pytest.approx(2 / np.pi * np.linalg.norm(v), rel=0.05)  # E|cos| on the circle
    assert metrics.sliced_wasserstein(a[:, :1], a[:, :1] + 0.3) == pytest.approx(0.3)


@pytest.mark.slow
def test_mmd_closed_form_and_identical_samples():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(1500, 1))
    assert abs(metrics.mmd(a, a)) < 2.0 / 1500
    b = rng.normal(size=(1500, 1))
    assert abs(metrics.mmd(a, b)) < 0.005
    # N(0,1) vs N(mu,1), RBF length l: MMD^2 = 2 sqrt(l^2/(l^2+2)) (1 - exp(-mu^2 / (2 (l^2+2))))
    mu, l = 1.0, 1.0
    exact = 2 * np.sqrt(l**2 / (l**2 + 2)) * (1 - np.exp(-(mu**2) / (2 * (l**2 + 2))))
    assert metrics.mmd(a, b + mu, bandwidth=l) == pytest.approx(exact, abs=0.02)
    assert metrics.mmd(a, b + mu) > 0.05  # median heuristic


def test_energy_distance():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=200), rng.normal(loc=0.5, size=150)
    assert metrics.energy_distance(a, b) == pytest.approx(stats.energy_distance(a, b), rel=1e-10)
    x, y = rng.normal(size=(60, 2)), rng.normal(size=(40, 2)) + 1
    d = lambda p, q: np.linalg.norm(p[:, None] - q[None], axis=-1).mean()  # noqa: E731
    assert metrics.energy_distance(x, y) == pytest.approx(np.sqrt(2 * d(x, y) - d(x, x) - d(y, y)), rel=1e-10)
    assert metrics.energy_distance(x, x) == pytest.approx(0.0, abs=1e-7)


def test_total_variation_and_kl_closed_forms():
    edges = np.linspace(0, 1, 5)
    uniform = lambda x: np.ones(len(x))  # noqa: E731
    assert metrics.total_variation(np.ones(4), uniform, edges) == pytest.approx(0.0)
    assert metrics.total_variation(np.array([2.0, 0, 1, 1]), uniform, edges) == pytest.approx(0.25)
    assert metrics.kl_divergence(np.array([1.0, 1, 0, 0]), uniform, edges) == pytest.approx(np.log(2))
    # samples: one of four outside the grid counts against the histogram
    s = np.array([0.1, 0.3, 0.6, 1.5])
    assert metrics.total_variation(s[:, None], np.ones(4), edges) == pytest.approx(0.25)
    # 2-D: all mass in one of four cells against a uniform density
    e2 = (np.array([0.0, 1, 2]), np.array([0.0, 1, 2]))
    assert metrics.total_variation(np.array([[1.0, 0], [0, 0]]), np.ones((2, 2)), e2) == pytest.approx(0.75)
    # statistical: samples of N(0,1) on a fine grid have small TV; shifted ones do not
    x = np.random.default_rng(5).normal(size=20000)
    g = np.linspace(-5, 5, 41)
    assert metrics.total_variation(x, stats.norm.pdf, g) < 0.03
    assert metrics.total_variation(x + 0.5, stats.norm.pdf, g) > 0.15


def test_metrics_bad_input():
    with pytest.raises(ValueError, match="NaN"):
        metrics.wasserstein_1d([0.0, np.nan], [1.0])
    with pytest.raises(ValueError, match="dim"):
        metrics.mmd(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="increasing"):
        metrics.total_variation(np.ones(3), np.ones(3), np.array([0.0, 2.0, 1.0, 3.0]))
