"""The four samplers with exact scores: Gaussian targets, mixture weights, convergence, noise-free recursions (check 30)."""

import math

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.score import GaussianMixtureScore, sample

MU = np.array([0.5, -1.0])
COV = np.array([[1.0, 0.8 * 1.5], [0.8 * 1.5, 2.25]])  # same target as the conftest fixture

N_SAMPLES = 20_000
STEPS = {"euler_maruyama": 300, "ancestral": 300, "probability_flow": 50, "predictor_corrector": 300}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(STEPS))
def test_samplers_reproduce_correlated_gaussian(method, vp2, gauss2):
    x = sample(vp2, gauss2, N_SAMPLES, method=method, n_steps=STEPS[method], seed=11)
    assert x.shape == (N_SAMPLES, 2)

    def gauss_ok(mu, cov):
        return np.max(np.abs(x.mean(0) - mu)) < 0.05 and np.max(np.abs(np.cov(x.T) - cov)) < 0.07

    assert gauss_ok(MU, COV)
    # negative controls, same check: a target 10 % hotter (covariance x 1.1: 0.225 off in Sigma_22, 10 SE) and
    # one shifted by 0.1 in the mean (9 SE)
    assert not gauss_ok(MU, 1.1 * COV)
    assert not gauss_ok(MU + 0.1, COV)


@pytest.mark.slow
@pytest.mark.parametrize("method", list(STEPS))
def test_samplers_reproduce_mixture_weights(method, vp2):
    mix = GaussianMixtureScore(vp2, [0.3, 0.7], [[-2.0, 0.0], [2.0, 0.5]], [0.25 * np.eye(2), 0.25 * np.eye(2)])
    n = N_SAMPLES // 2
    x = sample(vp2, mix, n, method=method, n_steps=STEPS[method] // 2, seed=12)
    frac = np.mean(x[:, 0] < 0)

    def weight_ok(w):
        return abs(frac - w) < 5 * math.sqrt(w * (1 - w) / n) + 0.005

    assert weight_ok(0.3), frac
    assert not weight_ok(0.36) and not weight_ok(0.24)  # negative control: a weight 0.06 off (13 SE)
    # the components keep their width (no collapse onto the means, no inflation)
    left = x[x[:, 0] < 0]
    assert abs(left[:, 1].std() - 0.5) < 0.03
    assert not abs(left[:, 1].std() - 0.5 * math.sqrt(1.3)) < 0.03  # a component 30 % hotter (width 0.57)


@pytest.mark.slow
def test_samplers_converge_towards_each_other():
    """On N(0.7, 2.25) the spread of the samplers' variances shrinks as n_steps grows, each towards the truth."""
    sde = st.VPSDE(dim=1)
    g = GaussianMixtureScore(sde, [1.0], [[0.7]], [[[2.25]]])
    var = {}
    for n_steps in (8, 256):
        for method in STEPS:
            x = sample(sde, g, N_SAMPLES, method=method, n_steps=n_steps, seed=5)
            var[method, n_steps] = x.var()
    coarse = np.array([var[m, 8] for m in STEPS])
    fine = np.array([var[m, 256] for m in STEPS])
    assert np.ptp(fine) < 0.5 * np.ptp(coarse)
    assert np.max(np.abs(fine - 2.25)) < 5 * 2.25 * math.sqrt(2 / N_SAMPLES) + 0.02
    assert np.max(np.abs(coarse - 2.25)) > np.max(np.abs(fine - 2.25))


def _gauss_1d(m0, s0):
    betas = np.linspace(1e-3, 0.1, 200)
    sde = st.VPSDE.from_ddpm_betas(betas, mapping="exact")
    return sde, GaussianMixtureScore(sde, [1.0], [[m0]], [[[s0**2]]])


def _affine(sde, score, method, n_steps, **kw):
    x = sample(sde, score, 2, method=method, n_steps=n_steps, x_T=np.array([[0.0], [1.0]]), noise=False, **kw)
    return x[1, 0] - x[0, 0], x[0, 0]  # (A, c): x_out = A x_T + c


def test_ancestral_noise_free_is_the_moment_recursion():
    m0, s0 = 0.7, 1.5
    sde, g = _gauss_1d(m0, s0)
    N = 200
    sched = sde.discretize(N, mapping="exact")
    A, c = 1.0, 0.0
    for i in range(N, 0, -1):
        b, al, ab = sched.betas[i - 1], sched.alphas[i - 1], sched.alpha_bars[i - 1]
        V = ab * s0**2 + 1 - ab
        a_i = (1 - b / V) / math.sqrt(al)
        c_i = b * math.sqrt(ab) * m0 / V / math.sqrt(al)
        A, c = a_i * A, a_i * c + c_i
    A_s, c_s = _affine(sde, g, "ancestral", N)
    assert abs(A_s - A) < 1e-10 and abs(c_s - c) < 1e-10
    # negative control: alpha_bar shifted by one step gives a different recursion
    A2 = 1.0
    for i in range(N, 1, -1):
        b, al, ab = sched.betas[i - 1], sched.alphas[i - 1], sched.alpha_bars[i - 2]
        A2 *= (1 - b / (ab * s0**2 + 1 - ab)) / math.sqrt(al)
    assert abs(A2 - A) > 1e-6


@pytest.mark.parametrize("method", ["euler_maruyama", "predictor_corrector"])
def test_reverse_sde_noise_free_is_the_euler_recursion(method):
    m0, s0 = -0.4, 0.8
    sde, g = _gauss_1d(m0, s0)
    N, eps = 100, 1e-3
    h = (1.0 - eps) / N
    A, c = 1.0, 0.0
    for k in range(N):
        t = 1.0 - k * h
        b = float(sde.beta(t))
        ab = math.exp(-float(sde.integrated_beta(t)))
        V = ab * s0**2 + 1 - ab
        # x <- x + h (beta/2 x + beta score), score = -(x - sqrt(ab) m0) / V
        a_k = 1 + h * (0.5 * b - b / V)
        c_k = h * b * math.sqrt(ab) * m0 / V
        A, c = a_k * A, a_k * c + c_k
    A_s, c_s = _affine(sde, g, method, N, eps=eps)
    assert abs(A_s - A) < 1e-10 and abs(c_s - c) < 1e-10


@pytest.mark.slow
def test_probability_flow_heun_and_scipy_agree(vp2, gauss2):
    x_T = np.random.default_rng(3).standard_normal((50, 2))
    info_h, info_s = {}, {}
    b = sample(vp2, gauss2, 50, method="probability_flow", solver="scipy", x_T=x_T, rtol=1e-9, atol=1e-9,
               info=info_s)
    errs = []
    for n_steps in (50, 200):
        a = sample(vp2, gauss2, 50, method="probability_flow", n_steps=n_steps, x_T=x_T, info=info_h)
        errs.append(np.max(np.abs(a - b)))
    assert errs[1] < 2e-4
    assert errs[0] / errs[1] > 8  # Heun is second order: 4x the steps, ~16x smaller error
    assert info_h["nfe"] == 400 and info_s["nfe"] > 0
    # the ODE flow is a deterministic map: the pushforward of x_T is the same with a different seed
    c = sample(vp2, gauss2, 50, method="probability_flow", n_steps=200, x_T=x_T, seed=99)
    a = sample(vp2, gauss2, 50, method="probability_flow", n_steps=200, x_T=x_T, seed=1)
    np.testing.assert_array_equal(a, c)


def test_vesde_probability_flow_reproduces_gaussian():
    sde = st.VESDE(0.01, 50.0, dim=2)
    g = GaussianMixtureScore(sde, [1.0], [MU], [COV])
    x = sample(sde, g, 4000, method="probability_flow", solver="scipy", eps=1e-5, rtol=1e-6, atol=1e-6)

    def gauss_ok(mu, cov):
        return np.max(np.abs(x.mean(0) - mu)) < 5 * 1.5 / math.sqrt(4000) and np.max(np.abs(np.cov(x.T) - cov)) < 0.15

    assert gauss_ok(MU, COV)
    # negative control: a target 20 % hotter (Sigma_22 off by 0.45, 9 SE of a 4000-sample variance) fails
    assert not gauss_ok(MU, 1.2 * COV)


def test_seeding_and_path(vp2, gauss2):
    a = sample(vp2, gauss2, 200, method="ancestral", n_steps=50, seed=4)
    b = sample(vp2, gauss2, 200, method="ancestral", n_steps=50, seed=4)
    c = sample(vp2, gauss2, 200, method="ancestral", n_steps=50, seed=5)
    np.testing.assert_array_equal(a, b)
    assert not np.any(a == c)
    x, t, xp = sample(vp2, gauss2, 100, method="euler_maruyama", n_steps=40, seed=1, return_path=True,
                      save_every=10)
    assert xp.shape[1:] == (100, 2) and t[0] == 1.0 and abs(t[-1] - 1e-3) < 1e-15
    np.testing.assert_array_equal(xp[-1], x)
    assert np.all(np.diff(t) < 0)


def test_sampler_input_validation(vp2, gauss2):
    with pytest.raises(ValueError, match="n_steps"):
        sample(vp2, gauss2, 10, n_steps=0)
    with pytest.raises(ValueError, match="method"):
        sample(vp2, gauss2, 10, method="no_such_sampler")
    with pytest.raises(ValueError, match="eps"):
        sample(vp2, gauss2, 10, eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        sample(vp2, gauss2, 10, eps=1.5)
    with pytest.raises(ValueError, match=r"x_T must have shape \(10, 2\)"):
        sample(vp2, gauss2, 10, x_T=np.zeros((10, 3)))
    xT = np.zeros((10, 2))
    xT[4, 0] = np.nan
    with pytest.raises(ValueError, match="row 4"):
        sample(vp2, gauss2, 10, x_T=xT)
    ve = st.VESDE(dim=2)
    with pytest.raises(ValueError, match="VPSDE"):
        sample(ve, GaussianMixtureScore(ve, [1.0], [MU], [COV]), 10, method="ancestral")
    with pytest.raises(ValueError, match="n must be"):
        sample(vp2, gauss2, 0)


@pytest.mark.slow
@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_ancestral_exact_score_moments_1e5(variance):
    """DDPM sampler, linear betas 1e-4..0.02 at T = 1000, exact score of N(0.7, 2.25): moments within 5 SE."""
    sde = st.VPSDE.from_ddpm_betas(np.linspace(1e-4, 0.02, 1000), mapping="exact")
    g = GaussianMixtureScore(sde, [1.0], [[0.7]], [[[2.25]]])
    n = 100_000
    x = sample(sde, g, n, method="ancestral", n_steps=1000, variance=variance, seed=21)[:, 0]

    def moments_ok(mean, var):
        return abs(x.mean() - mean) < 5 * math.sqrt(var / n) and abs(x.var() / var - 1) < 5 * math.sqrt(2 / n)

    assert moments_ok(0.7, 2.25)
    # negative controls, same 5-SE check: a target 5 % hotter (variance 2.3625; 11 SE) or shifted by 0.05 (10 SE)
    assert not moments_ok(0.7, 1.05 * 2.25)
    assert not moments_ok(0.75, 2.25)


def test_plain_callable_score_takes_dim_from_x_T():
    sde = st.VPSDE()  # dim 1, adapted to x_T's dim 2
    x_T = np.random.default_rng(0).standard_normal((64, 2))
    x = sample(sde, lambda z, t: -z, 64, method="ancestral", n_steps=20, x_T=x_T, seed=0)
    assert x.shape == (64, 2)


@pytest.mark.parametrize("method", list(STEPS))
def test_sample_streams_reverse_trajectory_to_h5md(tmp_path, method):
    """``out=`` writes the whole reverse-time path (the final noise-free step included) through ``simulate``'s
    H5MD writer, for every sampler; samples and path are the same as without ``out``."""
    vp = st.VPSDE(0.1, 20.0, dim=2)
    score = GaussianMixtureScore(vp, [1.0], [[0.5, -0.5]], [[[1.0, 0.3], [0.3, 0.5]]])
    a, t_a, x_a = sample(vp, score, 500, method=method, n_steps=50, seed=3, save_every=10, return_path=True)
    b, t_path, x_path = sample(vp, score, 500, method=method, n_steps=50, seed=3, save_every=10,
                               out=tmp_path / "rev.h5", return_path=True)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(x_a, x_path)
    np.testing.assert_array_equal(t_a, t_path)
    view = st.io.open(tmp_path / "rev.h5")
    assert view.status == "complete"
    np.testing.assert_array_equal(np.asarray(view.x[:]), x_path)
    np.testing.assert_array_equal(np.asarray(view.t), t_path)
    np.testing.assert_array_equal(np.asarray(view.x[-1]), b)
    assert len(t_path) == 6 and t_path[0] == 1.0 and np.all(np.diff(t_path) < 0)
    assert t_path[-1] == (0.0 if method == "ancestral" else 1e-3)
    assert view.plan["method"] == method and view.config["sampler"]["method"] == method
    with pytest.raises(ValueError, match="solver='heun'"):
        sample(vp, score, 10, method="probability_flow", solver="scipy", seed=0, out=tmp_path / "x.h5")
