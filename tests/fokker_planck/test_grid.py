"""Grid construction, validation, initial densities, histograms and marginals."""

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.fokker_planck import Grid


def test_grid_geometry_per_axis():
    g = st.Grid([-1.0, 0.0], [1.0, 3.0], [4, 6], boundary=["periodic", ("reflecting", "absorbing")])
    assert g.dim == 2 and g.shape == (4, 6) and g.size == 24
    assert g.spacing == (0.5, 0.5) and g.cell_volume == 0.25
    np.testing.assert_allclose(g.centers[0], [-0.75, -0.25, 0.25, 0.75], rtol=0, atol=1e-15)
    np.testing.assert_allclose(g.edges[1], np.arange(7) * 0.5, rtol=0, atol=1e-15)
    assert g.boundaries == (("periodic", "periodic"), ("reflecting", "absorbing"))
    assert g.periodic == (True, False) and g.has_absorbing
    pts = g.points()
    assert pts.shape == (24, 2)
    np.testing.assert_array_equal(pts[1], [g.centers[0][0], g.centers[1][1]])  # C order: last axis fastest


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(lower=0, upper=1, n=2), "n must be integers >= 3"),
        (dict(lower=0, upper=1, n=3.5), "n must be integers"),
        (dict(lower=1, upper=1, n=10), "upper must exceed lower"),
        (dict(lower=0, upper=np.inf, n=10), "finite"),
        (dict(lower=[0, 0], upper=[1, 1, 1], n=10), "lower has 2 entries"),
        (dict(lower=0, upper=1, n=10, boundary="sticky"), "boundary for axis 0 must be one of"),
        (dict(lower=0, upper=1, n=10, boundary=[("periodic", "reflecting")]), "'periodic' must apply to both"),
    ],
)
def test_grid_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):  # a non-integer cell count is a TypeError
        Grid(**kwargs)


def test_from_centers_accepts_uniform_and_rejects_non_uniform():
    c = np.linspace(-2, 2, 41)
    g = Grid.from_centers(c)
    np.testing.assert_allclose(g.centers[0], c, atol=1e-14)
    bad = c.copy()
    bad[7] += 0.01
    with pytest.raises(ValueError, match=r"centers\[0\] is not uniform"):
        Grid.from_centers(bad)
    with pytest.raises(ValueError, match="at least 3 points"):
        Grid.from_centers(np.array([0.0, 1.0]))


def test_gaussian_density_and_marginal():
    g = Grid([-6, -5], [6, 5], [120, 100])
    p = g.gaussian([0.5, -1.0], [[1.0, 0.3], [0.3, 0.5]])
    assert abs(g.integrate(p) - 1.0) < 1e-14
    m0 = g.marginal(p, 0)
    x = g.centers[0]
    exact = np.exp(-(x - 0.5) ** 2 / 2) / np.sqrt(2 * np.pi)
    assert np.abs(m0 - exact).sum() * g.spacing[0] < 1e-4
    assert abs(np.sum(g.marginal(p, 1)) * g.spacing[1] - 1) < 1e-14
    with pytest.raises(ValueError, match="positive definite"):
        g.gaussian([0, 0], [[1.0, 2.0], [2.0, 1.0]])


def test_density_from_function_rejects_negative():
    g = Grid(-1, 1, 20)
    with pytest.raises(ValueError, match="negative"):
        g.density(lambda x: x[:, 0])
    p = g.density(lambda x: 1 + x[:, 0] ** 2)
    assert abs(g.integrate(p) - 1) < 1e-14


def test_histogram_counts_mass_inside_and_wraps_periodic():
    g = Grid(0, 1, 10)
    s = np.array([0.05, 0.05, 0.95, 1.5])  # one sample outside
    p = g.histogram(s)
    assert p[0] == pytest.approx(2 / (4 * 0.1)) and p[9] == pytest.approx(1 / (4 * 0.1))
    assert g.integrate(p) == pytest.approx(0.75)
    assert g.integrate(g.histogram(s, normalize=True)) == pytest.approx(1.0)
    gp = Grid(0, 1, 10, boundary="periodic")
    assert gp.integrate(gp.histogram(s)) == pytest.approx(1.0)
    assert gp.histogram(s)[5] == pytest.approx(1 / (4 * 0.1))  # 1.5 wraps to 0.5
