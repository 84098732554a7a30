"""DDPM = discretized VP-SDE: chain moments, the two mappings, round trips, diagnostics, validation (checks 28, 33)."""

import warnings

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.score import ScheduleWarning

LIN = np.linspace(1e-4, 0.02, 1000)


def _chain_moments(betas, x0):
    """Iterate the forward Markov chain's mean and variance from a point mass at x0."""
    m, v = float(x0), 0.0
    ms, vs = [], []
    for b in betas:
        m = np.sqrt(1.0 - b) * m
        v = (1.0 - b) * v + b
        ms.append(m)
        vs.append(v)
    return np.array(ms), np.array(vs)


def test_chain_moments_equal_closed_form_q():
    sched = st.VPSDE.from_ddpm_betas(LIN).discretize(1000)
    m, v = _chain_moments(sched.betas, 1.7)
    assert np.max(np.abs(m - np.sqrt(sched.alpha_bars) * 1.7)) < 1e-12
    assert np.max(np.abs(v - (1.0 - sched.alpha_bars))) < 1e-12
    # negative controls: alpha_bar off by one, and a cumprod of betas instead of 1 - beta
    shifted = np.concatenate([[1.0], sched.alpha_bars[:-1]])
    assert np.max(np.abs(v - (1.0 - shifted))) > 1e-4
    assert np.max(np.abs(v - (1.0 - np.cumprod(sched.betas)))) > 0.1


def test_exact_mapping_has_vp_marginals_at_every_step():
    sde = st.VPSDE(0.1, 20.0)
    N = 1000
    sched = sde.discretize(N, mapping="exact")
    t = np.arange(1, N + 1) / N
    m, v = _chain_moments(sched.betas, 1.3)
    mean, std = sde.marginal(np.full((N, 1), 1.3), t)
    assert np.max(np.abs(m - mean[:, 0])) < 1e-13
    assert np.max(np.abs(v - std**2)) < 1e-13
    # the first-order map is visibly not exact at this N (negative control)
    fo = sde.discretize(N, mapping="first_order")
    assert np.max(np.abs(fo.alpha_bars - np.exp(-sde.integrated_beta(t)))) > 1e-6


def test_first_order_error_halves_when_n_doubles():
    sde = st.VPSDE(0.1, 20.0)
    target = np.exp(-sde.integrated_beta(1.0))
    errs = [abs(sde.discretize(N).alpha_bars[-1] - target) for N in (500, 1000, 2000, 4000)]
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 1.8) & (ratios < 2.2)), ratios
    # and over the whole grid (max over t_i of |alpha_bar_i - e^{-B(t_i)}|)
    g = []
    for N in (1000, 2000, 4000):
        ab = sde.discretize(N).alpha_bars
        g.append(np.max(np.abs(ab - np.exp(-sde.integrated_beta(np.arange(1, N + 1) / N)))))
    assert 1.8 < g[0] / g[1] < 2.2 and 1.8 < g[1] / g[2] < 2.2


def test_first_order_is_score_sde_map():
    sched = st.VPSDE(0.1, 20.0).discretize(1000)
    np.testing.assert_allclose(sched.betas, LIN, rtol=1e-12)


@pytest.mark.parametrize("mapping", ["first_order", "exact"])
def test_from_ddpm_betas_round_trip(mapping):
    sde = st.VPSDE.from_ddpm_betas(LIN, mapping=mapping)
    back = sde.discretize(1000, mapping=mapping)
    np.testing.assert_allclose(back.betas, LIN, rtol=1e-12, atol=1e-15)
    if mapping == "exact":
        t = np.arange(1, 1001) / 1000
        np.testing.assert_allclose(np.exp(-sde.integrated_beta(t)), np.cumprod(1 - LIN), rtol=1e-12)


def test_piecewise_vp_numba_face_matches_batched_face():
    sde = st.VPSDE.from_ddpm_betas(LIN, dim=2, mapping="exact")
    face = sde.numba_face()
    x = np.array([0.3, -1.2])
    for t in (0.0, 0.0004, 0.5, 0.9995):
        out = np.empty(2)
        face.drift(x, t, out)
        np.testing.assert_allclose(out, sde.drift(x[None], t)[0], rtol=1e-14)
        face.diffusion(x, t, out)
        np.testing.assert_allclose(out, sde.diffusion(x[None], t)[0], rtol=1e-14)
    z = np.array([0.7, -0.1])
    out = np.empty(2)
    face.exact_step(0.25)(x, 0.5, z, out)
    np.testing.assert_allclose(out, sde.exact_step(x[None], 0.5, 0.25, z[None])[0], rtol=1e-13)
    # exact step from 0 to t_i has the chain's variance 1 - alpha_bar_i
    xs = sde.exact_step(np.zeros((1, 2)), 0.0, 0.5, np.ones((1, 2)))
    np.testing.assert_allclose(xs[0, 0] ** 2, 1 - np.prod(1 - LIN[:500]), rtol=1e-12)


def test_schedule_diagnostic_warns_when_prior_not_reached():
    bad = np.linspace(1e-5, 5e-3, 1000)
    with pytest.warns(ScheduleWarning, match="alpha_bar_N = 0.08"):
        sde = st.VPSDE.from_ddpm_betas(bad)
    d = sde.discretize(1000).diagnostics()
    assert abs(d["alpha_bar_N"] - 0.0813) < 5e-4 and not d["reaches_prior"]
    with pytest.warns(ScheduleWarning):
        assert not st.VPSDE(0.01, 0.5).check_prior()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert st.VPSDE.from_ddpm_betas(LIN).discretize(1000).check_prior()
        assert st.VPSDE().check_prior()


@pytest.mark.parametrize(
    "betas, match",
    [
        (np.array([0.1, 1.0]), r"betas\[1\] = 1.0"),
        (np.array([0.0, 0.1]), r"betas\[0\] = 0.0"),
        (np.array([0.1, np.nan]), r"betas\[1\] = nan"),
        (np.array([0.2, 0.1]), "non-decreasing"),
        (np.array([[0.1]]), "1-D"),
    ],
)
def test_bad_betas(betas, match):
    with pytest.raises(ValueError, match=match):
        st.VPSDE.from_ddpm_betas(betas)


@pytest.mark.parametrize("n_steps", [0, -3, 2.5, True])
def test_bad_n_steps(n_steps):
    with pytest.raises(ValueError, match="n_steps"):
        st.VPSDE().discretize(n_steps)


def test_bad_mapping_and_too_few_steps():
    with pytest.raises(ValueError, match="mapping"):
        st.VPSDE().discretize(10, mapping="linear")
    with pytest.raises(ValueError, match="mapping"):
        st.VPSDE.from_ddpm_betas(LIN, mapping="linear")
    # beta(1) / N >= 1 for N = 10 and beta_max = 20: the first-order map breaks, and says so
    with pytest.raises(ValueError, match=r"discretize\(10"):
        st.VPSDE().discretize(10)
