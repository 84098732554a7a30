"""Block faces: ``drift_block(X, t, F)`` / ``grad_block(X, G)`` over a block of rows equal the row faces bit for
bit (same operations, same order), are declared capabilities (models without one fall back to rows), and the fused
driver that uses them agrees with the batched NumPy driver to 1e-12 relative on the seed density."""

from __future__ import annotations

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit._jit import jit, piece
from sde_toolkit.integrate.methods import drift_block_of
from sde_toolkit.sde import potentials as P
from sde_toolkit.sde.base import rows_block

SEED_EXPR = "0.1*x**2 - log(0.2 + cos(2*x)**2)"

POTENTIALS = [
    ("harmonic_1d", lambda: P.Harmonic(2.0, 0.5), 1),
    ("harmonic_3d", lambda: P.Harmonic(0.7, -0.2), 3),
    ("double_well_1d", lambda: P.DoubleWell(1.3, 0.8), 1),
    ("double_well_2d", lambda: P.DoubleWell(), 2),
    ("muller_brown", lambda: P.MullerBrown(0.1), 2),
    ("seed_expr", lambda: P.from_expression(SEED_EXPR), 1),
    ("expr_2d", lambda: P.from_expression("(x**2-1)**2 + y**2 + 0.3*x*y + 0.2*sin(3*x)*exp(-y**2)", ("x", "y")), 2),
    ("expr_3d", lambda: P.from_expression("0.5*(x**2 + y**2 + z**2) + 0.1*cos(x*y*z) + log(1 + x**2)",
                                          ("x", "y", "z")), 3),
]


def _rows(grad):
    @jit
    def run(X, G):
        for i in range(X.shape[0]):
            grad(X[i], G[i])

    return run


@pytest.mark.parametrize("name,make,dim", POTENTIALS, ids=[p[0] for p in POTENTIALS])
def test_grad_block_equals_rows_bit_for_bit(name, make, dim):
    pot = make()
    assert pot.has_grad_block
    X = np.random.default_rng(7).normal(0.2, 1.5, (1037, dim))
    X[::97] *= 40.0  # large arguments too (Payne-Hanek path of sincos, overflowing exp)
    G_rows = np.empty_like(X)
    _rows(pot.numba_grad(piece))(X, G_rows)
    G_block = np.full_like(X, np.nan)
    pot.numba_grad_block(jit, dim)(X, G_block)
    np.testing.assert_array_equal(G_block, G_rows)
    # and the NumPy face (the independent reference of both): to rounding, on the moderate rows (at the scaled
    # ones an ulp of a product such as x*y*z moves cos by its condition number, far above 1e-12)
    ref = pot.grad(X)
    ok = np.isfinite(ref)
    ok[::97] = False
    np.testing.assert_allclose(G_block[ok], ref[ok], rtol=1e-12, atol=1e-12)


def test_block_kernels_touch_only_their_rows():
    """A block of the first k rows of a larger buffer (how the drivers call it) writes rows 0..k-1 only."""
    pot = P.from_expression("(x**2-1)**2 + y**2", ("x", "y"))
    X = np.random.default_rng(1).normal(size=(300, 2))
    G = np.full((300, 2), 7.0)
    pot.numba_grad_block(jit, 2)(X[:100], G[:100])
    assert np.all(G[100:] == 7.0) and np.all(np.isfinite(G[:100]))
    np.testing.assert_allclose(G[:100], pot.grad(X[:100]), rtol=1e-13)


@pytest.mark.parametrize("make", [
    lambda: st.OverdampedLangevin(SEED_EXPR, kT=0.7, gamma=1.3),
    lambda: st.OverdampedLangevin(P.MullerBrown(0.1), gamma=2.0),
    lambda: st.OverdampedLangevin(P.DoubleWell(), dim=2),
    lambda: st.OrnsteinUhlenbeck(1.3, 0.7, mu=0.2),
    lambda: st.OrnsteinUhlenbeck([[1.0, 0.3], [-0.2, 0.8]], [0.5, 0.9], mu=[0.1, -0.3]),
])
def test_drift_block_equals_rows_bit_for_bit(make):
    sde = make()
    face = sde.numba_face(piece)
    assert face.drift_block is not None
    X = np.random.default_rng(3).normal(0.1, 2.0, (515, sde.dim))
    F_rows = np.empty_like(X)
    F_block = np.full_like(X, np.nan)
    rows_block(face.drift, piece)(X, 0.0, F_rows)  # pieces (inline="always") run from Python too
    face.drift_block(X, 0.0, F_block)
    np.testing.assert_array_equal(F_block, F_rows)
    np.testing.assert_allclose(F_block, sde.drift(X, 0.0), rtol=1e-12, atol=1e-13)


def test_a_model_without_block_face_falls_back_to_rows():
    """Declared, not probed: GaussianMixture declares no block gradient, its Langevin face has no drift_block and
    the fused steps use the row fallback, with the same results as the batched driver."""
    gm = P.GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.0, 0.5]], 0.3)
    assert not gm.has_grad_block
    with pytest.raises(NotImplementedError, match="has_grad_block"):
        gm.numba_grad_block()
    sde = st.OverdampedLangevin(gm)
    face = sde.numba_face(piece)
    assert face.drift_block is None
    blk = drift_block_of(face, piece)
    X = np.random.default_rng(0).normal(size=(50, 2))
    F = np.empty_like(X)
    blk(X, 0.0, F)
    np.testing.assert_allclose(F, sde.drift(X, 0.0), rtol=1e-12)


@pytest.mark.parametrize("method", ["euler_maruyama", "leimkuhler_matthews"])
def test_fused_block_driver_agrees_with_batched_on_the_seed_density(method):
    """4,097 paths (16 full 256-path chunks and one of 1 path), 40 steps at the seed's step, seeded noise: the fused
    driver (vectorized block drift) and the batched NumPy driver agree to 1e-12 relative."""
    sde = st.OverdampedLangevin(SEED_EXPR)
    x0 = np.random.default_rng(0).uniform(-10, 10, (4097, 1))
    kw = dict(t1=2.0, dt=0.05, method=method, seed=11, save_every=10, progress=False)
    a = st.simulate(sde, x0, driver="fused", **kw).x
    b = st.simulate(sde, x0, driver="batched", **kw).x
    assert np.all(np.isfinite(a))
    rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
    assert rel.max() <= 1e-12, rel.max()
    # thread counts and the prefix property are unchanged by the block path
    c = st.simulate(sde, x0, driver="fused", threads=1, **kw).x
    np.testing.assert_array_equal(a, c)
    d = st.simulate(sde, x0[:500], driver="fused", threads=2, **kw).x
    np.testing.assert_array_equal(d, a[:, :500])
