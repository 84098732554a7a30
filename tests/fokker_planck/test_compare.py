"""The Fokker–Planck density against an Euler–Maruyama ensemble of the same SDE object."""

import numpy as np
import pytest

import sde_toolkit as st


class _Traj:
    def __init__(self, t, x):
        self.t, self.x = t, x


@pytest.mark.slow
def test_fp_matches_100k_em_paths_of_ou_at_half():
    ou = st.OrnsteinUhlenbeck(1.0, 1.0)
    x0 = 1.0 + 0.3 * np.random.default_rng(7).standard_normal((100_000, 1))
    traj = st.simulate(ou, x0, t1=0.5, dt=1e-3, save_every=250, seed=2024, progress=False)
    # bins of width 0.1 over about +-5 sd of X_0.5 (mean 0.61, sd 0.59)
    g = st.Grid(-2.5, 3.7, 62)
    p0 = g.gaussian(1.0, 0.09)
    cmp = st.FokkerPlanck(ou, g).compare(traj, p0)
    assert cmp.t.tolist() == pytest.approx([0.0, 0.25, 0.5])
    assert cmp.l1[-1] < 0.02, cmp.l1
    assert cmp.outside[-1] < 1e-4
    # negative control: D = 2 sigma^2 (the sigma-vs-D convention mix-up) is far from the ensemble
    wrong = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, np.sqrt(2.0)), g).compare(traj, p0)
    assert wrong.l1[-1] > 0.1, wrong.l1


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
