"""Losses at the exact score equal their analytic minima; perturbed scores do worse (check 29)."""

import math

import numpy as np
import pytest
import torch

import sde_toolkit as st
from sde_toolkit.score import GaussianMixtureScore, ddpm_loss, dsm_loss, eps_from_score

D, S = 4, 1.5
N = 1_000_000


def _gaussian_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return S * torch.randn(N, D, generator=g, dtype=torch.float64)


def _ve_time_for_std(sde, sigma):
    lr = math.log(sde.sigma_max / sde.sigma_min)
    return math.log1p((sigma / sde.sigma_min) ** 2) / (2 * lr)


@pytest.mark.slow
def test_dsm_minimum_ve():
    sde = st.VESDE(0.01, 50.0, dim=D)
    sigma = 0.5
    t = _ve_time_for_std(sde, sigma)
    exact = GaussianMixtureScore(sde, [1.0], [np.zeros(D)], [S**2 * np.eye(D)])
    x0 = _gaussian_data()
    analytic = D * S**2 / (sigma**2 * (S**2 + sigma**2))
    val = float(dsm_loss(exact, sde, x0, t=t, weighting="none", generator=torch.Generator().manual_seed(1)))
    assert abs(val / analytic - 1) < 5e-3, (val, analytic)
    for factor in (1.1, 0.9):
        pert = float(dsm_loss(lambda x, tt, f=factor: f * exact(x, tt), sde, x0, t=t, weighting="none",
                              generator=torch.Generator().manual_seed(1)))
        # excess loss of a perturbed score is E|(f - 1) s*|^2 = (f - 1)^2 d / (s^2 + sigma^2) > 0
        assert pert - val > 0.5 * (factor - 1) ** 2 * D / (S**2 + sigma**2)
    # the sigma^2-weighted (noise-prediction) loss is sigma^2 times the plain one on the same draws
    w = float(dsm_loss(exact, sde, x0, t=t, weighting="sigma2", generator=torch.Generator().manual_seed(1)))
    assert abs(w - sigma**2 * val) < 1e-9 * val


@pytest.mark.parametrize("kind", ["vp", "ou"])
def test_dsm_minimum_vp_and_ou(kind):
    if kind == "vp":
        sde, t = st.VPSDE(0.1, 20.0, dim=D), 0.3
    else:
        sde, t = st.OrnsteinUhlenbeck(0.7, 1.3, mu=0.4, dim=D), 0.8
    exact = GaussianMixtureScore(sde, [1.0], [np.zeros(D)], [S**2 * np.eye(D)])
    x0 = _gaussian_data(2)
    a, _, sig = (float(np.asarray(v).ravel()[0]) for v in sde.marginal_coef(t))
    analytic = D * a**2 * S**2 / (sig**2 * (a**2 * S**2 + sig**2))
    val = float(dsm_loss(exact, sde, x0, t=t, weighting="none", generator=torch.Generator().manual_seed(3)))
    assert abs(val / analytic - 1) < 5e-3, (val, analytic)
    pert = float(dsm_loss(lambda x, tt: 1.1 * exact(x, tt), sde, x0, t=t, weighting="none",
                          generator=torch.Generator().manual_seed(3)))
    assert pert - val > 0.5 * 0.01 * D / (a**2 * S**2 + sig**2)


def test_epsilon_loss_minimum_ddpm_step_499():
    betas = np.linspace(1e-4, 0.02, 1000)
    sde = st.VPSDE.from_ddpm_betas(betas, dim=D, mapping="exact")
    sched = sde.discretize(1000, mapping="exact")
    exact = GaussianMixtureScore(sde, [1.0], [np.zeros(D)], [S**2 * np.eye(D)])
    eps = eps_from_score(exact, sde)
    x0 = _gaussian_data(4)
    ab = sched.alpha_bars[498]  # step 499
    analytic = D * ab * S**2 / (ab * S**2 + 1 - ab)
    val = float(ddpm_loss(eps, sched, x0, step=499, generator=torch.Generator().manual_seed(5)))
    assert abs(val / analytic - 1) < 5e-3, (val, analytic)
    pert = float(ddpm_loss(lambda x, t: 1.1 * eps(x, t), sched, x0, step=499,
                           generator=torch.Generator().manual_seed(5)))
    # excess: 0.01 E|eps*|^2 = 0.01 d (1 - ab) / (ab s^2 + 1 - ab)
    assert pert - val > 0.5 * 0.01 * D * (1 - ab) / (ab * S**2 + 1 - ab)
    # negative control: the neighbouring step's alpha_bar (an off-by-one) is a different minimum
    ab_wrong = sched.alpha_bars[499]
    assert abs(D * ab_wrong * S**2 / (ab_wrong * S**2 + 1 - ab_wrong) / analytic - 1) > 1e-3


def test_loss_input_validation():
    sde = st.VPSDE(dim=2)
    x0 = torch.zeros(8, 2, dtype=torch.float64)
    x0[3, 1] = float("nan")
    with pytest.raises(ValueError, match="row 3"):
        dsm_loss(lambda x, t: x, sde, x0)
    with pytest.raises(ValueError, match="weighting"):
        dsm_loss(lambda x, t: x, sde, torch.zeros(4, 2), weighting="likelihood")
    with pytest.raises(ValueError, match="step"):
        ddpm_loss(lambda x, t: x, sde.discretize(100, "exact"), torch.zeros(4, 2), step=0)
