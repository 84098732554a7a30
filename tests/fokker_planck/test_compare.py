"""The Fokker–Planck density against an Euler–Maruyama ensemble of the same SDE object."""

import numpy as np
import pytest

import sde_toolkit as st


class _Traj:
    def __init__(self, t, x):
        self.t, self.x = t, x


def _noise_floor(cells, n, draws=2000, seed=0):
    """Mean and sd of the L1 distance between an n-sample histogram and its own cell masses (multinomial draws)."""
    null = np.abs(np.random.default_rng(seed).multinomial(n, cells / cells.sum(), size=draws) / n - cells).sum(axis=1)
    return null.mean(), null.std()


@pytest.mark.slow
def test_fp_matches_100k_em_paths_of_ou_at_half():
    """Threshold from the histogram's own noise, not a constant: L1 < mean + 5 sd of the L1 of a 1e5-sample
    histogram of the FP cell masses, plus FP's own discretisation error against the exact OU marginal (an upper
    bound on the bias part by the triangle inequality). Measured: noise mean 0.0135 (sqrt(2K/(pi n)) = 0.020 is
    the equal-cell bound for K = 62), sd 0.0018, FP-exact 0.0027, so the threshold is 0.025; over 6 seeds of the EM
    ensemble the L1 was 0.0115-0.0166 (z -1.0 .. 1.7). A diffusion 5 % too large gives 0.040, D = 2 sigma^2 0.30."""
    from scipy import stats

    ou = st.OrnsteinUhlenbeck(1.0, 1.0)
    n = 100_000
    x0 = 1.0 + 0.3 * np.random.default_rng(7).standard_normal((n, 1))
    traj = st.simulate(ou, x0, t1=0.5, dt=1e-3, save_every=250, seed=2024, progress=False)
    # bins of width 0.1 over about +-5 sd of X_0.5 (mean 0.61, sd 0.59)
    g = st.Grid(-2.5, 3.7, 62)
    p0 = g.gaussian(1.0, 0.09)
    cmp = st.FokkerPlanck(ou, g).compare(traj, p0)
    assert cmp.t.tolist() == pytest.approx([0.0, 0.25, 0.5])
    assert cmp.outside[-1] < 1e-4
    cells = cmp.p[-1] * g.cell_volume
    mean, sd = _noise_floor(cells, n)
    assert mean < np.sqrt(2 * g.shape[0] / (np.pi * n))  # below the equal-cell bound, as it must be
    m, v = np.exp(-0.5), 0.09 * np.exp(-1.0) + (1 - np.exp(-1.0)) / 2
    exact = np.diff(stats.norm.cdf(np.linspace(-2.5, 3.7, 63), m, np.sqrt(v)))
    fp_bias = np.abs(cells - exact).sum()
    assert fp_bias < mean  # the grid is fine enough for the comparison to be about the ensemble
    threshold = mean + 5 * sd + fp_bias
    assert cmp.l1[-1] < threshold, (cmp.l1, threshold)
    # negative controls, same threshold: D = 2 sigma^2 (the sigma-vs-D convention mix-up), and sigma 5 % too large
    for sigma in (np.sqrt(2.0), 1.05):
        wrong = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, sigma), g).compare(traj, p0)
        assert wrong.l1[-1] > threshold, (sigma, wrong.l1, threshold)


def test_compare_default_initial_histogram_and_shapes():
    rng = np.random.default_rng(0)
    ou = st.OrnsteinUhlenbeck(1.0, 1.0)
    g = st.Grid(-4, 4, 40)
    # an "ensemble" drawn from the exact marginals of N(0, 1/2) stationary law at three times
    x = rng.normal(0.0, np.sqrt(0.5), size=(3, 20000, 1))
    cmp = st.FokkerPlanck(ou, g).compare(_Traj(np.array([0.0, 0.5, 1.0]), x))
    assert cmp.l1.shape == (3,) and np.all(cmp.tv == cmp.l1 / 2)
    assert cmp.p.shape == (3, 40) and cmp.histograms.shape == (3, 40)
    assert np.all(cmp.l1 < 0.05)
    with pytest.raises(ValueError, match="trajectory.x must be"):
        st.FokkerPlanck(ou, g).compare(_Traj(np.array([0.0, 1.0]), x))


def test_histogram_noise_l1_is_the_multinomial_mean():
    """de Moivre's closed form against 20,000 seeded multinomial draws, on uneven cells and some mass outside."""
    from sde_toolkit.fokker_planck import histogram_noise_l1

    g = st.Grid(-3, 3, 30)
    q = g.gaussian(0.3, 0.8) * g.cell_volume * 0.99  # 1 % of the mass outside the cells
    for n in (50, 2000):
        floor = histogram_noise_l1(q, n)
        cells = np.append(q, 1 - q.sum())
        draws = np.random.default_rng(n).multinomial(n, cells, size=20_000) / n
        null = np.abs(draws - cells).sum(axis=1)
        se = null.std() / np.sqrt(null.size)
        assert abs(floor - null.mean()) < 5 * se, (n, floor, null.mean(), se)
        # negative control: the Gaussian approximation sum sqrt(2 q (1 - q) / (pi n)) is off by >> 5 SE at n = 50
        if n == 50:
            approx = np.sqrt(2 * cells * (1 - cells) / (np.pi * n)).sum()
            assert abs(approx - null.mean()) > 5 * se
    assert histogram_noise_l1([1.0], 10) == 0.0  # a point mass has no sampling noise
    with pytest.raises(ValueError, match="positive integer"):
        histogram_noise_l1(q, 0)
    with pytest.raises(ValueError, match="finite"):
        histogram_noise_l1([0.5, np.nan], 10)


def test_compare_steps_agree_with_the_exact_exponential_and_report_the_floor():
    """The default Crank–Nicolson march through the saved times equals expm_multiply (exact in time) far below
    the histogram noise; implicit Euler (order 1) is visibly further off; the floor is reported per time."""
    ou = st.OrnsteinUhlenbeck(1.0, 1.0)
    n = 20_000
    x0 = 1.0 + 0.3 * np.random.default_rng(1).standard_normal((n, 1))
    traj = st.simulate(ou, x0, t1=1.0, dt=1e-3, save_every=100, seed=5, progress=False)
    g = st.Grid(-3.5, 4.0, 150)
    fp = st.FokkerPlanck(ou, g)
    cn = fp.compare(traj)
    ex = fp.compare(traj, method="expm")
    gap = np.abs(cn.p - ex.p).reshape(len(cn.t), -1).sum(axis=1) * g.cell_volume
    assert gap.max() < 0.02 * cn.noise_floor[1:].min(), gap  # measured 3e-4 vs 0.035
    # second order after the start: the start-up error decays (8e-6 at t = 1; the implicit-Euler start-up
    # repeated in every interval leaves 1.1e-4)
    assert gap[-1] < 3e-5, gap
    ie = fp.compare(traj, method="implicit_euler")
    gap_ie = np.abs(ie.p - ex.p).reshape(len(cn.t), -1).sum(axis=1) * g.cell_volume
    assert gap_ie.max() > 10 * gap.max()
    assert cn.noise_floor.shape == cn.l1.shape
    assert np.all(cn.noise_floor[1:] > 0.5 * np.sqrt(2 * 10 / (np.pi * n)))  # at least ~10 cells carry mass
    # the ensemble agrees with FP: L1 near the floor (the initial histogram's noise is carried along)
    assert np.all(cn.l1[1:] < 1.6 * cn.noise_floor[1:]), (cn.l1, cn.noise_floor)
    with pytest.raises(ValueError, match="method must be"):
        fp.compare(traj, method="rk4")
