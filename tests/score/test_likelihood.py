"""Likelihood through the probability-flow ODE, exact and Hutchinson divergences (check 32)."""

import math

import numpy as np
import pytest
import torch

import sde_toolkit as st
from sde_toolkit.score import (
    GaussianMixtureScore,
    ScoreMLP,
    TorchScore,
    bits_per_dim,
    exact_divergence,
    hutchinson_divergence,
    log_likelihood,
)

MU = np.array([0.5, -1.0])
COV = np.array([[1.0, 1.2], [1.2, 2.25]])


@pytest.fixture(scope="module")
def mix():
    sde = st.VPSDE(0.1, 20.0, dim=2)
    return sde, GaussianMixtureScore(sde, [0.4, 0.6], [MU, [-1.0, 1.0]], [COV, 0.3 * np.eye(2)])


def test_log_likelihood_exact_prior_matches_analytic(mix):
    sde, g = mix
    x = g.sample(20, seed=0)
    eps = 1e-5
    lp = log_likelihood(sde, g, x, eps=eps, prior="exact", rtol=1e-8, atol=1e-8)
    assert np.max(np.abs(lp - g.logpdf(x, eps))) < 1e-5
    # with the N(0, I) prior the error is the prior mismatch: small for beta 0.1..20, but not round-off
    lp0 = log_likelihood(sde, g, x, eps=eps, rtol=1e-8, atol=1e-8)
    err0 = np.max(np.abs(lp0 - g.logpdf(x, eps)))
    assert err0 < 1e-2
    # negative control: a score off by 10 % gives a visibly wrong likelihood
    lp_bad = log_likelihood(sde, lambda z, t: 1.1 * g(z, t), x, eps=eps, prior=None,
                            rtol=1e-8, atol=1e-8)
    assert np.max(np.abs(lp_bad - g.logpdf(x, eps))) > 1e-2
    np.testing.assert_allclose(bits_per_dim(lp, 2), -lp / (2 * math.log(2)))


def test_log_likelihood_vesde_and_ou():
    ve = st.VESDE(0.01, 50.0, dim=2)
    g = GaussianMixtureScore(ve, [1.0], [MU], [COV])
    x = g.sample(5, seed=1)
    lp = log_likelihood(ve, g, x, eps=1e-5, prior="exact", rtol=1e-8, atol=1e-8)
    assert np.max(np.abs(lp - g.logpdf(x, 1e-5))) < 1e-5
    ou = st.OrnsteinUhlenbeck(1.0, 1.0, dim=2)
    g = GaussianMixtureScore(ou, [1.0], [MU], [COV])
    lp = log_likelihood(ou, g, x, eps=1e-4, T=3.0, prior="exact", rtol=1e-8, atol=1e-8)
    assert np.max(np.abs(lp - g.logpdf(x, 1e-4))) < 1e-5


def test_hutchinson_mean_within_5_se_of_exact_divergence(mix):
    sde, g = mix
    x = g.sample(8, t=0.3, seed=2)
    exact = g.divergence(x, 0.3)
    for probe in ("rademacher", "gaussian"):
        est = hutchinson_divergence(g, x, 0.3, n_probes=512, probe=probe, seed=3)
        se = est.std(axis=1, ddof=1) / math.sqrt(512)
        assert np.all(se > 0)
        assert np.all(np.abs(est.mean(axis=1) - exact) < 5 * se)
    # the closed-form divergence equals central differences of the score
    fd = exact_divergence(lambda z, t: g(z, t), x, 0.3)
    np.testing.assert_allclose(exact, fd, rtol=1e-6)


def test_rademacher_exact_for_isotropic_gaussian():
    sde = st.VPSDE(dim=3)
    g = GaussianMixtureScore(sde, [1.0], [np.zeros(3)], [2.0 * np.eye(3)])
    x = np.random.default_rng(0).standard_normal((6, 3))
    est = hutchinson_divergence(g, x, 0.5, n_probes=4, probe="rademacher", seed=0)
    np.testing.assert_allclose(est, g.divergence(x, 0.5)[:, None] * np.ones((1, 4)), rtol=1e-12)


def test_log_likelihood_with_hutchinson_is_unbiased_ish(mix):
    sde, g = mix
    x = g.sample(4, seed=5)
    exact = log_likelihood(sde, g, x, prior="exact")
    runs = np.stack([log_likelihood(sde, g, x, prior="exact", divergence="hutchinson", seed=s)
                     for s in range(8)])
    se = runs.std(axis=0, ddof=1) / math.sqrt(8)
    assert np.all(np.abs(runs.mean(axis=0) - exact) < 5 * se + 1e-3)


def test_torch_score_autograd_divergence():
    torch.manual_seed(0)
    net = ScoreMLP(3, 32, 2, seed=0)
    ts = TorchScore(net, st.VPSDE())
    x = np.random.default_rng(1).standard_normal((5, 3))
    div = ts.divergence(x, 0.4)
    fd = exact_divergence(lambda z, t: ts(z, t), x, 0.4, fd_step=1e-2)
    np.testing.assert_allclose(div, fd, rtol=2e-2, atol=1e-3)
    est = hutchinson_divergence(ts, x, 0.4, n_probes=256, seed=2)
    se = est.std(axis=1, ddof=1) / 16
    assert np.all(np.abs(est.mean(axis=1) - div) < 5 * se + 1e-4)
    lp = log_likelihood(st.VPSDE(), ts, x[:2])
    assert lp.shape == (2,) and np.all(np.isfinite(lp))


def test_likelihood_validation(mix):
    sde, g = mix
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        log_likelihood(sde, g, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        log_likelihood(sde, g, np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="divergence"):
        log_likelihood(sde, g, np.zeros((1, 2)), divergence="skilling")
    with pytest.raises(ValueError, match="eps"):
        log_likelihood(sde, g, np.zeros((1, 2)), eps=0.0)
