"""Models: potentials (gradients, numba vs numpy faces), from_expression, OU closed forms, bad parameters."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sla

import sde_toolkit as st
from sde_toolkit.sde import potentials as P
from tests.problems import NONSYM_THETA, SEED_EXPRESSION, SIGMA_2D

POTENTIALS = [
    ("harmonic", lambda: P.Harmonic(k=2.5, center=0.3), 3),
    ("double_well", lambda: P.DoubleWell(a=1.3, b=0.7), 2),
    ("gmm", lambda: P.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.2]],
                                      [[[0.5, 0.1], [0.1, 0.3]], [[0.8, -0.2], [-0.2, 0.6]]]), 2),
    ("muller_brown", lambda: P.MullerBrown(scale=0.1), 2),
    ("seed_1d", lambda: P.from_expression(SEED_EXPRESSION), 1),
    ("expr_2d", lambda: P.from_expression("(x**2 - 1)**2 + 0.5*y**2 + 0.3*x*y", ("x", "y")), 2),
    ("expr_3d", lambda: P.from_expression("sin(x)*cos(y) + 0.2*(x**2 + y**2 + z**2) + exp(0.1*z)",
                                          ("x", "y", "z")), 3),
]


@pytest.mark.parametrize("name,make,dim", POTENTIALS, ids=[p[0] for p in POTENTIALS])
def test_gradient_matches_finite_differences(name, make, dim):
    pot = make()
    rng = np.random.default_rng(1)
    x = rng.uniform(-1.5, 1.5, size=(20, dim))
    eps = 1e-6
    fd = np.empty_like(x)
    for j in range(dim):
        e = np.zeros(dim)
        e[j] = eps
        fd[:, j] = (pot.energy(x + e) - pot.energy(x - e)) / (2 * eps)
    g = pot.grad(x)
    assert g.shape == x.shape
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * (1 + np.abs(g).max()))


@pytest.mark.parametrize("name,make,dim", POTENTIALS, ids=[p[0] for p in POTENTIALS])
def test_numba_face_matches_numpy_face(name, make, dim):
    pot = make()
    x = np.random.default_rng(2).uniform(-1.5, 1.5, size=(15, dim))
    e_nb, g_nb = pot.numba_energy(), pot.numba_grad()
    g = np.empty(dim)
    for i in range(x.shape[0]):
        assert abs(e_nb(x[i]) - pot.energy(x[i:i + 1])[0]) <= 1e-12 * (1 + abs(e_nb(x[i])))
        g_nb(x[i], g)
        np.testing.assert_allclose(g, pot.grad(x[i:i + 1])[0], rtol=1e-12, atol=1e-12)


def test_seed_expression_gradient_is_exact():
    pot = P.from_expression(SEED_EXPRESSION)
    x = np.linspace(-5, 5, 101)[:, None]
    c, s = np.cos(2 * x), np.sin(2 * x)
    exact = 0.2 * x + 4 * s * c / (0.2 + c**2)
    np.testing.assert_allclose(pot.grad(x), exact, rtol=1e-12, atol=1e-12)


def test_from_expression_rejects_unknown_symbols():
    with pytest.raises(ValueError, match="the name 'w' is not allowed"):
        P.from_expression("x**2 + w", ("x",))
    with pytest.raises(ValueError, match="not a valid expression"):
        P.from_expression("x**2 +* 1", ("x",))


def test_ou_marginal_scalar_closed_form():
    sde = st.OrnsteinUhlenbeck(theta=1.7, sigma=0.8, mu=0.4)
    mean, std = sde.marginal(np.array([[2.0]]), 0.9)
    e = np.exp(-1.7 * 0.9)
    assert mean[0, 0] == pytest.approx(0.4 + 1.6 * e, rel=1e-14)
    assert std == pytest.approx(np.sqrt(0.64 * (1 - e * e) / 3.4), rel=1e-13)


def test_ou_marginal_matrix_solves_moment_odes():
    """For non-symmetric theta the covariance obeys dC/dt = -theta C - C theta^T + S (checked by expm of the
    vectorized linear ODE, an independent route to Van Loan's formula)."""
    sde = st.OrnsteinUhlenbeck(NONSYM_THETA, SIGMA_2D, mu=[0.5, -0.2])
    x0 = np.array([[1.0, 2.0]])
    t = 0.7
    mean, cov = sde.marginal(x0, t)
    np.testing.assert_allclose(mean[0], np.array([0.5, -0.2]) + sla.expm(-NONSYM_THETA * t) @ (x0[0] - [0.5, -0.2]),
                               rtol=1e-12)
    d = 2
    eye = np.eye(d)
    A = -(np.kron(eye, NONSYM_THETA) + np.kron(NONSYM_THETA, eye))
    S = (SIGMA_2D @ SIGMA_2D.T).reshape(-1, order="F")
    M = np.zeros((d * d + 1, d * d + 1))
    M[: d * d, : d * d] = A
    M[: d * d, -1] = S
    c = sla.expm(M * t)[: d * d, -1].reshape(d, d, order="F")
    np.testing.assert_allclose(cov, c, rtol=1e-10, atol=1e-13)


def test_ou_stationary_solves_lyapunov():
    sde = st.OrnsteinUhlenbeck(NONSYM_THETA, SIGMA_2D)
    P_ = sde.stationary().cov
    np.testing.assert_allclose(NONSYM_THETA @ P_ + P_ @ NONSYM_THETA.T, SIGMA_2D @ SIGMA_2D.T, atol=1e-12)
    _, cov_late = sde.marginal(np.zeros((1, 2)), 60.0)
    np.testing.assert_allclose(cov_late, P_, rtol=1e-9)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(theta=1.0, sigma=-0.5), "sigma"),
        (dict(theta=1.0, sigma=[[1.0, 2.0], [2.0, 1.0]]), "positive semidefinite"),
        (dict(theta=np.nan, sigma=1.0), "theta"),
        (dict(theta=[[1.0, 0.0], [0.0, 1.0]], sigma=[1.0, 1.0, 1.0]), "dim|inconsistent"),
    ],
)
def test_ou_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        st.OrnsteinUhlenbeck(**kwargs)


def test_langevin_rejects_bad_parameters():
    with pytest.raises(ValueError, match="kT"):
        st.OverdampedLangevin(P.DoubleWell(), kT=-1.0)
    with pytest.raises(ValueError, match="gamma"):
        st.UnderdampedLangevin(P.Harmonic(), gamma=0.0)
    with pytest.raises(TypeError, match="potential"):
        st.OverdampedLangevin(3.0)


def test_from_functions_declares_capabilities():
    import numba

    plain = st.SDE.from_functions(lambda x, t: -x, lambda x, t: np.ones_like(x), dim=2)
    assert not plain.has_numba_face
    fast = st.SDE.from_functions(numba.njit(lambda x, t: -x), 0.5, dim=2)
    assert fast.has_numba_face and fast.additive
    with pytest.raises(ValueError, match="diffusion"):
        st.SDE.from_functions(lambda x, t: -x, -1.0, dim=1)


# ---------------------------------------------------------------- GaussianMixture's allocation-free Numba face
SEPARATED = [
    # components 40 apart with variance 0.1: at most points every exp(lc_k) underflows (lc ~ -1e3 .. -1e4)
    ("separated_1d", lambda: P.GaussianMixture([0.2, 0.5, 0.3], [[-20.0], [0.0], [20.0]], [0.1, 0.1, 0.1]), 1),
    ("separated_2d", lambda: P.GaussianMixture([0.6, 0.4], [[-15.0, 3.0], [15.0, -3.0]],
                                               [[[0.2, 0.05], [0.05, 0.1]], [[0.1, -0.02], [-0.02, 0.3]]]), 2),
    # the largest log-component arrives last, first, and in the middle: every rescaling branch is taken
    ("many_components", lambda: P.GaussianMixture(np.arange(1.0, 7.0), np.linspace(-25, 25, 6)[:, None] * [1, -0.5],
                                                  0.2), 2),
    ("zero_weight", lambda: P.GaussianMixture([0.0, 1.0, 0.0], [[-3.0], [0.0], [4.0]], [1.0, 0.5, 2.0]), 1),
]


@pytest.mark.parametrize("name,make,dim", SEPARATED, ids=[p[0] for p in SEPARATED])
def test_gmm_numba_face_matches_numpy_far_from_and_between_components(name, make, dim):
    pot = make()
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.uniform(-40, 40, size=(40, dim)), pot.means + 0.01, [np.full(dim, 60.0)]])
    e_np, g_np = pot.energy(x), pot.grad(x)
    lc, _ = pot._logcomp(x)
    if name.startswith("separated"):
        assert (np.exp(lc).sum(axis=1) == 0.0).sum() >= 10  # the naive sum underflows at these points
    e_nb, g_nb = pot.numba_energy(), pot.numba_grad()
    g = np.empty(dim)
    for i in range(x.shape[0]):
        e = e_nb(x[i])
        assert np.isfinite(e) and abs(e - e_np[i]) <= 1e-12 * (1 + abs(e_np[i])), (i, e, e_np[i])
        g_nb(x[i], g)
        np.testing.assert_allclose(g, g_np[i], rtol=1e-12, atol=1e-12 * (1 + np.abs(g_np[i]).max()))


def test_gmm_numba_kernels_allocate_nothing():
    """No NRT allocation in the compiled energy/gradient (they run once per particle per step)."""
    from numba import types

    pot = P.GaussianMixture([0.3, 0.7], [[-1.0, 0.5], [1.0, -0.2]], 0.4)
    arr = types.float64[::1]
    e_nb, g_nb = pot.numba_energy(), pot.numba_grad()
    e_nb.compile((arr,))
    g_nb.compile((arr, arr))
    for disp in (e_nb, g_nb):
        ir = "".join(disp.inspect_llvm().values())
        assert "NRT_MemInfo_alloc" not in ir and "NRT_Allocate" not in ir
    # control: the test detects an allocating kernel
    from sde_toolkit._jit import jit

    def allocating(x):
        y = np.empty(x.shape[0])
        y[:] = x
        return y.sum()

    a = jit(allocating)
    a.compile((arr,))
    assert "NRT_MemInfo_alloc" in "".join(a.inspect_llvm().values())
