"""Few-step samplers (issue 13): DDIM, DPM-Solver++(2M), EDM Heun on exact scores; grids; certified errors.

Exact scores (GaussianMixtureScore) leave only the sampler's own error. Deterministic samplers are compared with
the probability-flow ODE solved tightly (scipy, rtol = atol = 1e-10) from the same prior draws (common random
numbers: no Monte Carlo noise in the difference); stochastic ones through their exact output moments for a
Gaussian target (``affine_moments``: each step is affine in ``(x, z)``).
"""

import math

import numpy as np
import pytest
import torch

import sde_toolkit as st
from sde_toolkit.score import (
    GaussianMixtureScore,
    ScoreMLP,
    TorchScore,
    log_likelihood,
    sample,
    sampler_error,
)
from sde_toolkit.score.error import affine_moments
from sde_toolkit.score.fewstep import DDIM, DPMSolverPP2M, EDMHeun, OnGrid, half_log_snr, time_grid
from sde_toolkit.score.samplers import Ancestral
from sde_toolkit.score.sampling import prior_draw, run_sampler

torch.set_num_threads(1)

MU = np.array([0.5, -1.0])
COV = np.array([[1.0, 0.8 * 1.5], [0.8 * 1.5, 2.25]])
EPS = 1e-3
# the steps at which each sampler meets the issue's tolerances with margin (measured; at <= 20 evaluations
# dpmpp_2m's covariance bias is 0.055-0.058 on these targets, edm's (10 Heun steps, rho = 7) 0.6, edm needs 50
# steps (100 evaluations) for 0.02: see docs/score.md); ddim is first order and needs ~300 steps
STEPS = {"dpmpp_2m": 30, "edm": 50, "ddim": 300}


@pytest.fixture(scope="module")
def mix2(vp2):
    return GaussianMixtureScore(vp2, [0.3, 0.7], [[-2.0, 0.0], [2.0, 0.5]], [0.25 * np.eye(2), 0.25 * np.eye(2)])


def _x_T(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 2))


def _pf_reference(sde, score, x_T):
    return sample(sde, score, x_T.shape[0], method="probability_flow", solver="scipy", rtol=1e-10, atol=1e-10,
                  x_T=x_T, eps=EPS)


def _issue_ok(err) -> bool:
    # the covariance of 20,000 draws has a standard error of 0.022 here (Sigma_22 = 2.25), so 0.04 alone would
    # fail an exact sampler one time in ten; the sampler's bias is held to 0.04 and below without Monte Carlo
    # noise in test_deterministic_bias_against_tight_ode
    return (err.mean_error < 0.03 and err.cov_error < max(0.04, 5 * err.cov_se) and err.weight_error < 0.02
            and err.sw < 2.0 * err.sw_floor)


# ------------------------------------------------------------------------------------------------ accuracy
@pytest.mark.slow
@pytest.mark.parametrize("method", list(STEPS))
def test_samplers_match_exact_targets(method, vp2, gauss2, mix2):
    """Mean within 0.03, covariance within 0.04 (or 5 SE), weights within 0.02 at 20,000 samples, SW within 2x
    the noise floor."""
    for target in (gauss2, mix2):
        err = sampler_error(vp2, method, STEPS[method], target=target, n_samples=20_000, seed=5)
        assert err.nfe == STEPS[method] * (2 if method == "edm" else 1)
        assert _issue_ok(err), err


@pytest.mark.parametrize("method,n_steps,cov_bias", [("dpmpp_2m", 30, 0.04), ("edm", 50, 0.04),
                                                     ("ddim", 300, 0.04)])
def test_deterministic_bias_against_tight_ode(method, n_steps, cov_bias, vp2, gauss2, mix2):
    """With common prior draws the sampler's covariance is within ``cov_bias`` of the tight ODE's (no MC noise)."""
    for target in (gauss2, mix2):
        x_T = _x_T(2000)
        ref = _pf_reference(vp2, target, x_T)
        x = sample(vp2, target, 2000, method=method, n_steps=n_steps, x_T=x_T, eps=EPS)
        assert np.abs(x.mean(0) - ref.mean(0)).max() < 0.01
        assert np.abs(np.cov(x.T) - np.cov(ref.T)).max() < cov_bias


def test_sampler_error_reports_its_noise(vp2, mix2):
    err = sampler_error(vp2, "dpmpp_2m", 30, target=mix2, n_samples=4000, seed=1)
    assert err.method == "dpmpp_2m" and err.nfe == 30 and err.n_samples == 4000
    assert 0 < err.sw_floor < 0.1 and err.mean_se > 0 and err.cov_se > 0 and err.weight_se > 0
    assert set(err.to_dict()) >= {"mean_error", "cov_error", "weight_error", "sw", "sw_floor"}


# ------------------------------------------------------------------------------------------------ orders
def _slope(ns, errs) -> float:
    return float(-np.polyfit(np.log(ns), np.log(errs), 1)[0])


# max_err: a bound on the coarsest run's error, 2.5x the measured one (ddim 0.103, dpmpp_2m 0.0171 and 0.0445 on
# karras, edm 0.178): a slope alone accepts a wrong formula whose error is 1,000x larger but falls as fast (the
# DPM-Solver++ exponent sign flipped gives 14.5, 2.9, 0.95, 0.38: slope 1.76)
@pytest.mark.parametrize("method,order,ns,grid,max_err", [("ddim", 1.0, (20, 40, 80, 160), None, 0.26),
                                                          ("dpmpp_2m", 2.0, (20, 40, 80, 160), None, 0.043),
                                                          ("dpmpp_2m", 2.0, (20, 40, 80, 160), "karras", 0.11),
                                                          ("edm", 2.0, (10, 20, 40, 80), None, 0.45)])
def test_deterministic_orders(method, order, ns, grid, max_err, vp2, gauss2):
    """Pathwise error against the tight ODE from the same x_T falls at the declared order (slope within 0.3) from
    an error of the measured size; the karras grid has unequal log-SNR steps, so the multistep ratio
    r = h_{k-1} / h_k is not 1 there."""
    x_T = _x_T(500, seed=3)
    ref = _pf_reference(vp2, gauss2, x_T)
    errs = [np.sqrt(np.mean((sample(vp2, gauss2, 500, method=method, n_steps=n, x_T=x_T, eps=EPS, grid=grid)
                             - ref) ** 2)) for n in ns]
    assert abs(_slope(ns, errs) - order) < 0.3, errs
    assert errs[0] < max_err, errs


def _moment_error(vp2, method, n_steps, **opts):
    sde = vp2
    target = GaussianMixtureScore(sde, [1.0], [MU], [COV])
    opts = {"eta": 0.0, "churn": 0.0, "grid": None, "rho": 7.0, "s_noise": 1.0, **opts}
    cls = st.score.samplers.get_sampler(method)
    smp = cls.from_options(sde, T=1.0, eps=EPS, n_steps=n_steps, noise=True, options=opts)
    m, C = affine_moments(smp, smp.target(sde, target), np.zeros(2), np.eye(2))
    mean, cov = target.marginal_moments(EPS)
    return np.abs(m - mean).max(), np.abs(C - cov).max()


@pytest.mark.parametrize("method,opts,ns,order", [("ddim", {"eta": 1.0}, (40, 80, 160, 320), 1.0),
                                                  ("edm", {"churn": 10.0}, (20, 40, 80, 160), 2.0),
                                                  ("ddim", {"eta": 0.0}, (40, 80, 160, 320), 1.0)])
def test_weak_orders_of_stochastic_samplers(method, opts, ns, order, vp2):
    """Exact output covariance (no sampling) for a Gaussian target falls at the declared weak order (+- 0.3)."""
    errs = [_moment_error(vp2, method, n, **opts)[1] for n in ns]
    assert abs(_slope(ns, errs) - order) < 0.3, errs


def test_affine_moments_agree_with_sampling(vp2, gauss2):
    """The moment recursion is the sampler's law: 20,000 draws agree within 5 standard errors."""
    smp = DDIM.from_options(vp2, T=1.0, eps=EPS, n_steps=40, noise=True, options={"eta": 1.0})
    m, C = affine_moments(smp, smp.target(vp2, gauss2), np.zeros(2), np.eye(2))
    x = sample(vp2, gauss2, 20_000, method="ddim", eta=1.0, n_steps=40, seed=2, eps=EPS)
    se_m = np.sqrt(np.diag(C) / 20_000)
    assert np.all(np.abs(x.mean(0) - m) < 5 * se_m)
    assert np.abs(np.cov(x.T) - C).max() < 5 * np.sqrt(2.0 / 20_000) * C.max()


# ------------------------------------------------------------------------------------------------ equivalences
def test_ddim_eta1_is_ancestral_pathwise(vp2, gauss2):
    """DDIM with eta = 1 on DDPM's grid t_i = i / N is the ancestral chain with the posterior variance: on the same
    normals the paths agree to 1e-10 (so the two agree in law)."""
    N = 50
    t = np.linspace(1.0, 0.0, N + 1)
    a, _, s = vp2.marginal_coef(t)
    ddim = DDIM(t, a, s, eta=1.0)
    anc = Ancestral(vp2.discretize(N, mapping="exact").betas, variance="posterior")
    seed = st._random.resolve_seed(4)
    x0 = prior_draw(vp2.prior(), seed, 300)
    xs = []
    for smp in (ddim, anc):
        x = x0.copy()
        traj = run_sampler(smp, vp2, gauss2, x, T=1.0, eps=1.0 / N, n_steps=N, seed=seed)
        xs.append(np.asarray(traj.x[-1]))
    assert np.abs(xs[0] - xs[1]).max() < 1e-10
    # the beta variance is another chain: the same normals give visibly different paths
    anc_b = Ancestral(vp2.discretize(N, mapping="exact").betas, variance="beta")
    xb = np.asarray(run_sampler(anc_b, vp2, gauss2, x0.copy(), T=1.0, eps=1.0 / N, n_steps=N, seed=seed).x[-1])
    assert np.abs(xb - xs[1]).max() > 1e-3


def test_ddim_eta0_deterministic_and_equals_pf_ode(vp2, gauss2):
    x_T = _x_T(300, seed=7)
    a = sample(vp2, gauss2, 300, method="ddim", n_steps=8000, x_T=x_T, seed=1, eps=EPS)
    b = sample(vp2, gauss2, 300, method="ddim", n_steps=8000, x_T=x_T, seed=2, eps=EPS)
    assert np.array_equal(a, b)  # the noise seed does not enter: deterministic in the prior
    ref = _pf_reference(vp2, gauss2, x_T)
    assert np.abs(a - ref).max() < 1e-3
    c = sample(vp2, gauss2, 300, method="ddim", n_steps=100, x_T=x_T + 0.1, eps=EPS)
    assert np.abs(c - a).min() > 1e-3  # and it does depend on the prior sample


def test_seed_fixes_stochastic_samplers_bitwise(vp2, mix2):
    kw = dict(method="edm", churn=5.0, n_steps=8, eps=EPS)
    a = sample(vp2, mix2, 200, seed=3, **kw)
    assert np.array_equal(a, sample(vp2, mix2, 200, seed=3, **kw))
    assert not np.array_equal(a, sample(vp2, mix2, 200, seed=4, **kw))
    assert np.array_equal(a[:50], sample(vp2, mix2, 50, seed=3, **kw))  # a path's draws depend on its index only


# ------------------------------------------------------------------------------------------------ other SDEs
@pytest.mark.parametrize("make", [lambda: st.VESDE(0.01, 50.0, dim=2),
                                  lambda: st.OrnsteinUhlenbeck(theta=1.0, sigma=1.0, mu=[0.3, -0.2], dim=2)])
def test_dpmpp_and_edm_on_ve_and_ou(make):
    sde = make()
    T = None if sde.T is not None else 8.0
    target = GaussianMixtureScore(sde, [1.0], [MU], [COV])
    x_T = prior_draw(sde.prior(), st._random.resolve_seed(0), 1000)
    ref = sample(sde, target, 1000, method="probability_flow", solver="scipy", rtol=1e-10, atol=1e-10, x_T=x_T,
                 eps=EPS, T=T)
    for method, n in (("dpmpp_2m", 40), ("edm", 80)):
        x = sample(sde, target, 1000, method=method, n_steps=n, x_T=x_T, eps=EPS, T=T)
        assert np.abs(x - ref).max() < 0.05, (method, np.abs(x - ref).max())


# ------------------------------------------------------------------------------------------------ grids
def test_grids(vp2):
    n = 12
    for sde in (vp2, st.VESDE(dim=2), st.OrnsteinUhlenbeck(theta=0.5, sigma=1.0, dim=2)):
        T = 1.0 if sde.T is not None else 5.0
        for grid in ("uniform", "logsnr", "karras"):
            t = time_grid(sde, grid, T, EPS, n)
            assert t.shape == (n + 1,) and t[0] == T and t[-1] == EPS and np.all(np.diff(t) < 0)
        lam = half_log_snr(sde, time_grid(sde, "logsnr", T, EPS, n))
        assert np.allclose(np.diff(lam), (lam[-1] - lam[0]) / n, rtol=1e-9, atol=1e-9)
        st_ = np.exp(-half_log_snr(sde, time_grid(sde, "karras", T, EPS, n)))
        r = st_ ** (1 / 7)
        assert np.allclose(np.diff(r), (r[-1] - r[0]) / n, rtol=1e-8, atol=1e-10)
        assert np.allclose(time_grid(sde, "uniform", T, EPS, n), np.linspace(T, EPS, n + 1), rtol=0, atol=1e-14)


@pytest.mark.parametrize("method", ["euler_maruyama", "probability_flow", "predictor_corrector", "ddim"])
def test_every_sampler_takes_a_grid(method, vp2, gauss2):
    info: dict = {}
    x, t, path = sample(vp2, gauss2, 50, method=method, n_steps=10, grid="karras", seed=0, return_path=True,
                        info=info)
    assert np.array_equal(t, time_grid(vp2, "karras", 1.0, EPS, 10))  # frames labelled with the grid's times
    assert np.array_equal(info["grid"], t) and np.all(np.isfinite(x))
    y = sample(vp2, gauss2, 50, method=method, n_steps=10, grid="uniform", seed=0)
    assert not np.allclose(x, y)


def test_euler_maruyama_on_a_logsnr_grid_has_weak_order_one(vp2, gauss2):
    """A driver-time sampler on its own grid (OnGrid) keeps its law: exact output covariance, slope 1 +- 0.3."""
    errs = []
    ns = (40, 80, 160, 320)
    for n in ns:
        inner = st.score.samplers.ReverseEulerMaruyama(t_end=EPS)
        smp = OnGrid(inner, time_grid(vp2, "logsnr", 1.0, EPS, n))
        _, C = affine_moments(smp, smp.target(vp2, gauss2), np.zeros(2), np.eye(2))
        errs.append(np.abs(C - gauss2.marginal_moments(EPS)[1]).max())
    assert abs(_slope(ns, errs) - 1.0) < 0.3 and errs[-1] < 0.05, errs


def test_non_uniform_grid_refuses_a_file(vp2, gauss2, tmp_path):
    with pytest.raises(ValueError, match="uniform time labels"):
        sample(vp2, gauss2, 10, method="dpmpp_2m", n_steps=5, out=tmp_path / "a.h5")
    assert not (tmp_path / "a.h5").exists()
    sample(vp2, gauss2, 10, method="dpmpp_2m", n_steps=5, grid="uniform", out=tmp_path / "b.h5")
    assert (tmp_path / "b.h5").exists()


# ------------------------------------------------------------------------------------------------ negative controls
def _run(smp, sde, score, x_T):
    seed = st._random.resolve_seed(0)
    return np.asarray(run_sampler(smp, sde, score, x_T.copy(), T=1.0, eps=EPS, n_steps=smp.n_steps, seed=seed).x[-1])


def _close(x, ref) -> bool:
    """The bias check of test_deterministic_bias_against_tight_ode."""
    return bool(np.all(np.isfinite(x)) and np.abs(x.mean(0) - ref.mean(0)).max() < 0.01
                and np.abs(np.cov(x.T) - np.cov(ref.T)).max() < 0.04)


@pytest.mark.parametrize("cls,n", [(DPMSolverPP2M, 30), (EDMHeun, 50), (DDIM, 300)])
def test_negative_controls_fail_the_same_checks(cls, n, vp2, gauss2):
    x_T = _x_T(2000)
    ref = _pf_reference(vp2, gauss2, x_T)
    t = time_grid(vp2, cls.default_grid, 1.0, EPS, n)
    a, _, s = vp2.marginal_coef(t)
    assert _close(_run(cls(t, a, s), vp2, gauss2, x_T), ref)  # the sampler itself passes
    with np.errstate(all="ignore"):
        rev = _run(cls(t[::-1].copy(), a[::-1].copy(), s[::-1].copy()), vp2, gauss2, x_T)  # grid reversed
    assert not _close(rev, ref)
    wrong = _run(cls(t, a**2, s), vp2, gauss2, x_T)  # alpha_bar for sqrt(alpha_bar): the wrong marginal scaling
    assert not _close(wrong, ref)


# ------------------------------------------------------------------------------------------------ likelihood
def test_exponential_integrator_likelihood(vp2, mix2):
    x = mix2.sample(300, EPS, seed=0)
    exact = mix2.logpdf(x, EPS)
    ns = (20, 40, 80)
    errs = []
    for n in ns:
        info: dict = {}
        lp = log_likelihood(vp2, mix2, x, eps=EPS, prior="exact", method="dpmpp_2m", n_steps=n, info=info)
        assert info["nfe"] == n and info["n_div"] == n + 1
        errs.append(np.mean(np.abs(lp - exact)))
    assert errs[-1] < 0.01
    assert abs(_slope(ns, errs) - 2.0) < 0.4, errs
    with pytest.raises(ValueError, match="method"):
        log_likelihood(vp2, mix2, x, method="euler")
    with pytest.raises(ValueError, match="n_steps"):
        log_likelihood(vp2, mix2, x, method="dpmpp_2m", n_steps=0)


# ------------------------------------------------------------------------------------------------ bad inputs
def test_bad_inputs(vp2, gauss2):
    with pytest.raises(ValueError, match="n_steps"):
        sample(vp2, gauss2, 10, method="dpmpp_2m", n_steps=0)
    with pytest.raises(ValueError, match="method must be one of"):
        sample(vp2, gauss2, 10, method="dpm_solver_3")
    with pytest.raises(ValueError, match="grid must be one of"):
        sample(vp2, gauss2, 10, method="edm", grid="cosine")
    with pytest.raises(ValueError, match="grid"):
        sample(vp2, gauss2, 10, method="ancestral", grid="karras")
    with pytest.raises(ValueError, match="eta"):
        sample(vp2, gauss2, 10, method="ddim", eta=-1.0)
    with pytest.raises(ValueError, match="churn"):
        sample(vp2, gauss2, 10, method="edm", churn=math.nan)
    ou = st.OrnsteinUhlenbeck(theta=[[1.0, 0.3], [0.0, 1.0]], sigma=1.0, dim=2)
    for method in ("edm", "dpmpp_2m", "ddim"):
        with pytest.raises(ValueError, match="Gaussian marginal"):
            sample(ou, lambda x, t: -x, 10, method=method, T=1.0)
    with pytest.raises(TypeError, match="GaussianMixtureScore"):
        sampler_error(vp2, "edm", 5, target=lambda x, t: -x)
    with pytest.raises(ValueError, match="method"):
        sampler_error(vp2, "nope", 5, target=gauss2)
    with pytest.raises(ValueError, match="threads"):
        sample(vp2, gauss2, 10, method="ddim", n_steps=2, threads=0)


# ------------------------------------------------------------------------------------------------ threads
def test_torch_threads_chosen_and_restored(vp2):
    torch.set_num_threads(2)
    try:
        net = ScoreMLP(2, hidden=32, depth=2)
        score = TorchScore(net, vp2)
        info: dict = {}
        sample(vp2, score, 20, method="dpmpp_2m", n_steps=3, seed=0, info=info)
        assert info["threads"] == 1 and torch.get_num_threads() == 2  # small MLP: one thread, then restored
        sample(vp2, score, 20, method="dpmpp_2m", n_steps=3, seed=0, info=info, threads=2)
        assert info["threads"] == 2

        def bad(x, t):
            raise RuntimeError("boom")

        bad.uses_torch = True  # type: ignore[attr-defined]
        bad.net = net  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="boom"):
            sample(vp2, bad, 20, method="ddim", n_steps=2, seed=0)
        assert torch.get_num_threads() == 2  # restored after an error too
    finally:
        torch.set_num_threads(1)


def test_train_chooses_threads_and_restores_them(vp2):
    data = np.random.default_rng(0).standard_normal((256, 2))
    torch.set_num_threads(2)
    try:
        res = st.score.train(ScoreMLP(2, hidden=32, depth=2), vp2, data, steps=5, batch_size=32, progress=False)
        assert res.config["threads"] == 1 and torch.get_num_threads() == 2
        res = st.score.train(ScoreMLP(2, hidden=32, depth=2), vp2, data, steps=5, batch_size=32, threads=2,
                             progress=False)
        assert res.config["threads"] == 2
        with pytest.raises(ValueError, match="threads"):
            st.score.train(ScoreMLP(2, hidden=32, depth=2), vp2, data, steps=5, threads=-1)
        with pytest.raises(ValueError, match="NaN|finite"):
            st.score.train(ScoreMLP(2, hidden=32, depth=2), vp2, np.full((8, 2), np.nan), steps=5)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_dpmpp_2m_equals_an_independent_algorithm_2(vp2, gauss2):
    """DPM-Solver++(2M) against Lu et al. (2022) Algorithm 2 written here from the paper in plain NumPy (VP
    closed forms, the log-SNR grid by scipy's brentq, the exact mixture score): the same outputs to 1e-9 on the
    karras grid too, where r = h_{k-1} / h_k != 1. Catches formula errors that keep the order (the ratio r
    inverted changes the local error only at O(h^3), so the convergence tests cannot see it)."""
    from scipy.optimize import brentq

    bmin, bmax = vp2.beta_min, vp2.beta_max

    def alpha(t):
        return math.exp(-0.25 * t * t * (bmax - bmin) - 0.5 * t * bmin)

    def lam(t):
        a = alpha(t)
        return math.log(a / math.sqrt(1.0 - a * a))

    def algorithm_2(times, x_T, invert_r=False):
        x = x_T.copy()
        prev = None
        ls = [lam(t) for t in times]
        n = len(times) - 1
        for i in range(n):
            t, tn = times[i], times[i + 1]
            a, s = alpha(t), math.sqrt(1.0 - alpha(t) ** 2)
            an, sn = alpha(tn), math.sqrt(1.0 - alpha(tn) ** 2)
            x0 = (x + s * s * gauss2(x, t)) / a  # data prediction from the score
            h = ls[i + 1] - ls[i]
            if prev is None:
                D = x0
            else:
                r = (ls[i] - ls[i - 1]) / h
                r = 1.0 / r if invert_r else r
                D = (1.0 + 1.0 / (2.0 * r)) * x0 - (1.0 / (2.0 * r)) * prev
            x = (sn / s) * x - an * (math.exp(-h) - 1.0) * D
            prev = x0
        return x

    x_T = _x_T(200, seed=7)
    n = 20  # >= 15: no lower-order final step
    l0, l1 = lam(1.0), lam(EPS)
    t_logsnr = [1.0] + [brentq(lambda t, v=v: lam(t) - v, EPS, 1.0, xtol=1e-15, rtol=1e-15)
                        for v in np.linspace(l0, l1, n + 1)[1:-1]] + [EPS]
    ours = sample(vp2, gauss2, 200, method="dpmpp_2m", n_steps=n, x_T=x_T, eps=EPS, grid="logsnr")
    np.testing.assert_allclose(ours, algorithm_2(t_logsnr, x_T), rtol=0, atol=1e-9)
    # karras: sigma~ = sigma / alpha = exp(-lambda) on the rho = 7 grid
    s_max, s_min = math.exp(-l0), math.exp(-l1)
    sig = [(s_max ** (1 / 7) + k / n * (s_min ** (1 / 7) - s_max ** (1 / 7))) ** 7 for k in range(n + 1)]
    t_karras = [1.0] + [brentq(lambda t, v=v: lam(t) + math.log(v), EPS, 1.0, xtol=1e-15, rtol=1e-15)
                        for v in sig[1:-1]] + [EPS]
    ours = sample(vp2, gauss2, 200, method="dpmpp_2m", n_steps=n, x_T=x_T, eps=EPS, grid="karras")
    ref = algorithm_2(t_karras, x_T)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)
    # negative control: the ratio inverted (the mutation above) is visible at this tolerance
    assert np.abs(ours - algorithm_2(t_karras, x_T, invert_r=True)).max() > 1e-6
