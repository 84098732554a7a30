"""Fused vs batched parity of reverse-time SDEs and probability-flow ODEs driven by a score with a Numba face.

Both drivers must agree to 1e-12 on identical Brownian increments (and on the seeded stream), integrating from
``t0 = 1`` down to ``t1 = 1e-3``, for VP and VE forward SDEs with the exact Gaussian-mixture score.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit._jit import jit
from sde_toolkit.integrate import brownian_increments

WEIGHTS = [0.3, 0.7]
MEANS = [[-1.0, 0.5], [1.5, -0.2]]
COVS = [[[0.5, 0.1], [0.1, 0.3]], [[0.8, -0.2], [-0.2, 0.6]]]
T0, T1, N_STEPS, N_PATHS = 1.0, 1e-3, 40, 29

FORWARD = [
    ("vpsde", lambda: st.VPSDE(0.1, 20.0, dim=2)),
    ("vpsde_ddpm", lambda: st.VPSDE.from_ddpm_betas(np.linspace(1e-4, 0.1, 200), dim=2)),
    ("vesde", lambda: st.VESDE(0.01, 5.0, dim=2)),
]


def _close(a, b):
    return np.all(np.abs(a - b) <= 1e-12 * (1 + np.abs(b))), np.abs(a - b).max()


def _start(sde):
    scale = 5.0 if isinstance(sde, st.VESDE) else 1.0  # the prior at t0 = 1
    return scale * np.random.default_rng(11).normal(size=(N_PATHS, 2))


@pytest.mark.slow
@pytest.mark.parametrize("name,make", FORWARD, ids=[f[0] for f in FORWARD])
def test_reverse_sde_fused_matches_batched(name, make):
    fwd = make()
    score = st.score.GaussianMixtureScore(fwd, WEIGHTS, MEANS, COVS)
    rev = fwd.reverse(score)
    assert rev.has_numba_face and rev.backward
    h = (T0 - T1) / N_STEPS
    x0 = _start(fwd)
    dw = brownian_increments(8, N_STEPS, N_PATHS, rev.noise_dim, h)
    kw = dict(t0=T0, t1=T1, dt=h, progress=False)
    a = st.simulate(rev, x0, increments=dw, driver="fused", **kw)
    b = st.simulate(rev, x0, increments=dw, driver="batched", **kw)
    assert a.meta["driver"] == "fused" and b.meta["driver"] == "batched"
    assert np.all(np.isfinite(a.x)) and a.t[-1] == T1
    ok, err = _close(a.x, b.x)
    assert ok, (name, err)
    c = st.simulate(rev, x0, seed=5, driver="fused", **kw).x
    d = st.simulate(rev, x0, seed=5, driver="batched", **kw).x
    ok, err = _close(c, d)
    assert ok, (name, err)
    # the reverse drift really uses the score: without it the end states are far from these
    plain = st.simulate(fwd.reverse(lambda x, t: np.zeros_like(x)), x0, increments=dw, **kw).x
    assert np.abs(plain[-1] - a.x[-1]).max() > 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("method", ["heun", "euler_maruyama"])
@pytest.mark.parametrize("name,make", FORWARD, ids=[f[0] for f in FORWARD])
def test_probability_flow_fused_matches_batched(name, make, method):
    fwd = make()
    score = st.score.GaussianMixtureScore(fwd, WEIGHTS, MEANS, COVS)
    pf = fwd.probability_flow(score)
    assert pf.has_numba_face and pf.is_ode
    h = (T0 - T1) / N_STEPS
    x0 = _start(fwd)
    kw = dict(t0=T0, t1=T1, dt=h, method=method, progress=False)
    if method == "euler_maruyama":
        # zero diffusion: Euler–Maruyama draws no noise for an ODE (n_normals = 0), on either driver
        assert st.integrate.get_method(method).n_normals(pf) == 0
        kw["increments"] = brownian_increments(8, N_STEPS, N_PATHS, 0, h)
    a = st.simulate(pf, x0, driver="fused", **kw)
    b = st.simulate(pf, x0, driver="batched", **kw)
    assert np.all(np.isfinite(a.x))
    ok, err = _close(a.x, b.x)
    assert ok, (name, method, err)
    if method == "euler_maruyama":
        quiet = st.simulate(pf, x0, t0=T0, t1=T1, dt=h, method=method, seed=3, driver="fused", progress=False).x
        np.testing.assert_array_equal(quiet, a.x)


class _StandardNormalScore:
    """Score of N(0, (1 + t) I), with a Numba face (a test double for a scalar-noise forward SDE)."""

    has_numba_face = True

    def __call__(self, x, t):
        return -np.asarray(x) / (1.0 + t)

    def numba_score(self, jit=jit):
        def score(x, t, out):
            for i in range(x.shape[0]):
                out[i] = -x[i] / (1.0 + t)

        return jit(score)


def _scalar_noise_forward():
    @numba.njit
    def drift(x, t):
        return -0.5 * x * (1.0 + t)

    @numba.njit
    def diffusion(x, t):
        return 0.4 + 0.2 * np.cos(x)

    return st.SDE.from_functions(drift, diffusion, dim=3, noise_type="scalar")


@pytest.mark.slow
def test_reverse_of_scalar_noise_sde_fused_matches_batched():
    """Scalar noise shares one Brownian motion: ``g g^T score = g (g . score)``, not ``g^2 * score``."""
    fwd = _scalar_noise_forward()
    score = _StandardNormalScore()
    x0 = np.random.default_rng(2).normal(size=(N_PATHS, 3))
    h = (T0 - T1) / N_STEPS
    for sde in (fwd.reverse(score), fwd.probability_flow(score)):
        assert sde.has_numba_face
        kw = dict(t0=T0, t1=T1, dt=h, progress=False)
        if sde.is_ode:
            kw["method"] = "heun"
        else:
            kw["increments"] = brownian_increments(4, N_STEPS, N_PATHS, sde.noise_dim, h)
        a = st.simulate(sde, x0, driver="fused", **kw).x
        b = st.simulate(sde, x0, driver="batched", **kw).x
        ok, err = _close(a, b)
        assert ok, (sde, err)
    # the batched drift is the scalar-noise formula (checked by hand on a few points)
    x = x0[:4]
    g = 0.4 + 0.2 * np.cos(x)
    s = -x / 1.5
    want = -0.5 * x * 1.5 - g * np.sum(g * s, axis=1, keepdims=True)
    np.testing.assert_allclose(fwd.reverse(score).drift(x, 0.5), want, rtol=1e-14, atol=1e-14)
