"""Toy data sets: shapes, seeding, geometry, and the seed's 1-D density by inverse CDF."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

import sde_toolkit as st

NAMES = ["spiral", "swiss_roll", "two_moons", "eight_gaussians", "checkerboard", "seed_density_1d"]


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_seeding(name):
    a = st.datasets.load(name, 500, seed=1)
    b = st.datasets.load(name, 500, seed=1)
    c = st.datasets.load(name, 500, seed=2)
    assert a.dtype == np.float64 and a.shape == (500, 1 if name == "seed_density_1d" else 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert np.all(np.isfinite(a))


def test_spiral_geometry():
    x = st.datasets.spiral(20000, seed=0, noise=0.0)
    r = np.linalg.norm(x, axis=1)
    assert r.min() >= 1.5 * math.pi / 10 - 1e-12 and r.max() <= 4.5 * math.pi / 10 + 1e-12
    # on the curve r = t / 10, angle t: (x, y) / r = (cos 10 r, sin 10 r)
    np.testing.assert_allclose(x[:, 0] / r, np.cos(10 * r), atol=1e-12)
    noisy = st.datasets.spiral(20000, seed=0)
    assert 0.005 < np.abs(noisy - x).std() < 0.02


def test_eight_gaussians_and_checkerboard():
    x = st.datasets.eight_gaussians(16000, seed=0)
    ang = np.round(np.arctan2(x[:, 1], x[:, 0]) / (math.pi / 4)) % 8
    counts = np.bincount(ang.astype(int), minlength=8)
    assert np.all(np.abs(counts - 2000) < 5 * math.sqrt(2000))
    r = np.linalg.norm(x, axis=1)
    assert abs(np.median(r) - 4 / math.sqrt(2)) < 0.05
    c = st.datasets.checkerboard(10000, seed=0)
    assert np.all(np.abs(c) <= 4.0)
    parity = (np.floor(c[:, 0] / 2) + np.floor(c[:, 1] / 2)) % 2
    assert np.all(parity == 0)  # only the black squares


def test_two_moons_two_arcs():
    x = st.datasets.two_moons(10000, seed=0, noise=0.0)
    p = (x - np.array([-1.0, -0.2])) / 2
    d_up = np.abs(np.hypot(p[:, 0], p[:, 1]) - 1)
    d_lo = np.abs(np.hypot(p[:, 0] - 1, p[:, 1] - 0.5) - 1)
    assert np.all(np.minimum(d_up, d_lo) < 1e-12)


def test_seed_density_inverse_cdf():
    x = st.datasets.seed_density_1d(50000, seed=3)[:, 0]
    assert stats.kstest(x, st.datasets.seed_density_1d_cdf).pvalue > 1e-3
    z, _ = integrate.quad(lambda u: math.exp(-0.1 * u * u) * (0.2 + math.cos(2 * u) ** 2), -40, 40, limit=400)
    m2, _ = integrate.quad(lambda u: u * u * math.exp(-0.1 * u * u) * (0.2 + math.cos(2 * u) ** 2), -40, 40,
                           limit=400)
    assert abs(st.datasets.seed_density_1d_pdf(0.0)[()] - 1.2 / z) < 1e-9
    var = m2 / z
    assert abs(x.mean()) < 5 * math.sqrt(var / x.size)
    assert abs(np.mean(x**2) / var - 1) < 5 * math.sqrt(2 / x.size) * 1.5
    # negative control: the KS test rejects a Gaussian of the same variance
    g = np.random.default_rng(0).normal(0, math.sqrt(var), 50000)
    assert stats.kstest(g, st.datasets.seed_density_1d_cdf).pvalue < 1e-6


@pytest.mark.parametrize("n", [0, -1, 2.5])
def test_bad_n(n):
    with pytest.raises(ValueError, match="n must be"):
        st.datasets.spiral(n)


def test_unknown_name_and_bad_noise():
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        st.datasets.load("mnist", 10)
    with pytest.raises(ValueError, match="noise"):
        st.datasets.spiral(10, noise=-1.0)
