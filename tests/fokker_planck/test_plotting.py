"""Plots render to PNG without a display."""

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.fokker_planck import plotting


def test_plots_render(tmp_path):
    g = st.Grid(-3, 3, 30)
    res = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0), g).evolve(g.gaussian(1, 0.1), t1=1.0, dt=0.1)
    fig = plotting.plot_evolution_1d(res, log=True)
    fig.savefig(tmp_path / "xt.png")
    assert (tmp_path / "xt.png").stat().st_size > 1000
    fig = plotting.plot_density_histogram(g, res.p[-1], np.random.default_rng(0).normal(0, 0.7, 2000))
    assert len(fig.axes[0].patches) == 30
    g2 = st.Grid([-2, -2], [2, 2], [20, 24])
    res2 = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0, dim=2), g2).evolve(g2.gaussian([1, 0], 0.1), t1=1.0,
                                                                               dt=0.1)
    fig = plotting.plot_frames_2d(res2, n_frames=3)
    assert len([a for a in fig.axes if a.images]) == 3
    fig.savefig(tmp_path / "frames.png")
    with pytest.raises(ValueError, match="1-D grid"):
        plotting.plot_evolution_1d(res2)
    with pytest.raises(ValueError, match="2-D grid"):
        plotting.plot_frames_2d(res)
