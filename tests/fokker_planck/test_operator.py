"""Generator assembly: Bernoulli / Chang–Cooper numerics, conservation, exact discrete equilibrium."""

import numpy as np
import pytest
import scipy.sparse as sp

import sde_toolkit as st
from sde_toolkit.fokker_planck import bernoulli, chang_cooper_delta


def test_chang_cooper_weight_numerics():
    assert chang_cooper_delta(0.0) == pytest.approx(0.5, rel=1e-14)
    w = 1e-10
    assert chang_cooper_delta(w) == pytest.approx(0.5 - w / 12, rel=1e-12)
    assert chang_cooper_delta(1000.0) == pytest.approx(1e-3, rel=1e-12)
    assert chang_cooper_delta(-1000.0) == pytest.approx(1.0 - 1e-3, rel=1e-12)
    grid = np.linspace(-50, 50, 100001)
    d = chang_cooper_delta(grid)
    assert np.all((d >= 0) & (d <= 1))
    big = np.linspace(-700, 700, 14001)
    assert np.all(np.isfinite(chang_cooper_delta(big))) and np.all(np.isfinite(bernoulli(big)))
    # the series branch joins the direct formula continuously at |w| = 0.1
    for w in (0.1, -0.1):
        direct = 1 / w - 1 / np.expm1(w)
        assert chang_cooper_delta(np.nextafter(w, 0)) == pytest.approx(direct, rel=1e-13)


def test_bernoulli_identities():
    z = np.concatenate([np.linspace(-30, 30, 6001), [0.0, 1e-300, -1e-300, 800.0, -800.0]])
    b = bernoulli(z)
    assert bernoulli(0.0) == 1.0
    assert np.all(np.isfinite(b)) and np.all(b >= 0)
    np.testing.assert_allclose(bernoulli(-z), b + z, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose((1 - b[np.abs(z) > 1e-3]) / z[np.abs(z) > 1e-3],
                               chang_cooper_delta(z[np.abs(z) > 1e-3]), rtol=1e-10)


def _models():
    return {
        "ou": st.OrnsteinUhlenbeck(1.5, 0.8, mu=0.3),
        "double_well": st.OverdampedLangevin(st.potentials.DoubleWell(), kT=0.5),
        "seed": st.OverdampedLangevin("0.1*x**2 - log(0.2 + cos(2*x)**2)", kT=1.0),
    }


@pytest.mark.parametrize("n", [64, 256])
@pytest.mark.parametrize("name", ["ou", "double_well", "seed"])
def test_generator_columns_sum_to_zero_and_offdiagonals_nonnegative(n, name):
    g = st.Grid(-4, 4, n)
    L = st.FokkerPlanck(_models()[name], g).generator()
    scale = abs(L).max()
    assert np.abs(np.asarray(L.sum(axis=0))).max() <= 1e-14 * scale
    off = L - sp.diags(L.diagonal())
    assert off.min() >= 0


def test_periodic_2d_and_absorbing_column_sums():
    ou = st.OrnsteinUhlenbeck(np.array([[1.0, 0.5], [-0.5, 1.0]]), 1.0)
    g = st.Grid([-3, -3], [3, 3], [20, 24], boundary=["periodic", "reflecting"])
    L = st.FokkerPlanck(ou, g).generator()
    assert np.abs(np.asarray(L.sum(axis=0))).max() <= 1e-14 * abs(L).max()
    ga = st.Grid(-3, 3, 30, boundary=[("reflecting", "absorbing")])
    fa = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0), ga)
    cs = np.asarray(fa.generator().sum(axis=0)).ravel()
    assert np.all(cs[:-1] == pytest.approx(0.0, abs=1e-13)) and cs[-1] < 0  # only the last cell leaks
    np.testing.assert_allclose(-cs, fa.operator().outflow, atol=1e-12)


@pytest.mark.parametrize("name, U", [
    ("ou", lambda x: 1.5 * (x - 0.3) ** 2 / 0.8**2),   # exp(-U): 2 theta (x-mu)^2 / (2 sigma^2)
    ("double_well", lambda x: (x**2 - 1) ** 2 / 0.5),
    ("seed", lambda x: 0.1 * x**2 - np.log(0.2 + np.cos(2 * x) ** 2)),
])
def test_exact_discrete_equilibrium(name, U):
    g = st.Grid(-4, 4, 200)
    fp = st.FokkerPlanck(_models()[name], g)
    L = fp.generator()
    x = g.centers[0]
    w = np.exp(-(U(x) - U(x).min()))
    ratio = np.abs(L @ w).max() / (abs(L).max() * np.abs(w).max())
    assert ratio <= 1e-13
    p = fp.stationary()
    w /= w.sum() * g.cell_volume
    assert np.abs(p - w).max() <= 1e-10 * w.max()


def test_equilibrium_negative_control_wrong_temperature():
    # the Boltzmann weights at the wrong kT (a D = sigma^2 vs sigma^2/2 mix-up) are far from L's null space
    g = st.Grid(-4, 4, 200)
    L = st.FokkerPlanck(_models()["double_well"], g).generator()
    x = g.centers[0]
    w = np.exp(-((x**2 - 1) ** 2) / 1.0)
    assert np.abs(L @ w).max() / (abs(L).max() * w.max()) > 1e-5


def test_drift_at_faces_is_second_order_at_equilibrium():
    # a user SDE without a potential: edge-drift weights, stationary density O(h^2) from Boltzmann
    errs = []
    for n in (64, 128, 256):
        g = st.Grid(-2.5, 2.5, n)
        s = st.SDE.from_functions(lambda x, t: -4 * x * (x**2 - 1), 1.0, dim=1)
        p = st.FokkerPlanck(s, g, time_dependent=False).stationary()
        w = np.exp(-2 * (g.centers[0] ** 2 - 1) ** 2)
        w /= w.sum() * g.cell_volume
        errs.append(np.abs(p - w).sum() * g.cell_volume)
    r = np.array(errs[:-1]) / errs[1:]
    assert np.all((r > 3.5) & (r < 4.5)), (errs, r)


def test_non_diagonal_diffusion_and_nonpositive_diffusion_rejected():
    ou = st.OrnsteinUhlenbeck(1.0, np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="diagonal diffusion matrix"):
        st.FokkerPlanck(ou, st.Grid([-2, -2], [2, 2], 10))
    s = st.SDE.from_functions(lambda x, t: -x, lambda x, t: x, dim=1)  # g = x vanishes at 0
    with pytest.raises(ValueError, match="diffusion must be positive on the grid"):
        st.FokkerPlanck(s, st.Grid(-1, 1, 10), time_dependent=False)
    with pytest.raises(ValueError, match="diffusion must be positive"):
        st.FokkerPlanck(st.SDE.from_functions(lambda x, t: -x, 0.0, dim=1), st.Grid(-1, 1, 10),
                        time_dependent=False)
    with pytest.raises(ValueError, match="2 axes"):
        st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0), st.Grid([-1, -1], [1, 1], 10))


def _coo_reference(op, N):
    """The generator rebuilt from the operator's face coefficients by the generic COO route."""
    rows, cols, vals = [], [], []
    colsum = np.zeros(N)
    for fc in op.faces:
        a, b = fc.a.ravel(), fc.b.ravel()
        h_alpha, h_beta = op.L[b, a].A1, op.L[a, b].A1
        rows += [b, a]
        cols += [a, b]
        vals += [h_alpha, h_beta]
        colsum += np.bincount(a, h_alpha, minlength=N) + np.bincount(b, h_beta, minlength=N)
    d = np.arange(N)
    return sp.csr_matrix((np.concatenate(vals + [-colsum - op.outflow]),
                          (np.concatenate(rows + [d]), np.concatenate(cols + [d]))), shape=(N, N))


@pytest.mark.parametrize("boundary", ["reflecting", "absorbing", ("absorbing", "reflecting")])
@pytest.mark.parametrize("name", ["ou", "seed"])
def test_1d_tridiagonal_fast_path_matches_generic_assembly(boundary, name):
    g = st.Grid(-4, 4, 57, boundary=[boundary] if isinstance(boundary, tuple) else boundary)
    op = st.FokkerPlanck(_models()[name], g).operator()
    N = g.size
    assert op.bands is not None and op.bands.shape == (3, N)
    assert op.L.nnz == 3 * N - 2 and op.L.has_sorted_indices
    dense = op.L.toarray()
    np.testing.assert_array_equal(np.diag(dense), op.bands[1])
    np.testing.assert_array_equal(np.diag(dense, 1), op.bands[0, 1:])
    np.testing.assert_array_equal(np.diag(dense, -1), op.bands[2, :-1])
    assert np.count_nonzero(np.triu(dense, 2)) == 0 and np.count_nonzero(np.tril(dense, -2)) == 0
    # bit for bit what the COO route builds from the same face coefficients
    ref = _coo_reference(op, N).toarray()
    np.testing.assert_array_equal(dense, ref)
    # the face coefficients still give the matrix: alpha / h below, beta / h above the diagonal
    h = g.spacing[0]
    np.testing.assert_array_equal(np.diag(dense, -1), op.faces[0].alpha / h)
    np.testing.assert_array_equal(np.diag(dense, 1), op.faces[0].beta / h)


def test_periodic_and_2d_grids_keep_the_sparse_path():
    ou = st.OrnsteinUhlenbeck(1.0, 1.0)
    assert st.FokkerPlanck(ou, st.Grid(-3, 3, 30, boundary="periodic")).operator().bands is None
    ou2 = st.OrnsteinUhlenbeck(1.0, 1.0, dim=2)
    assert st.FokkerPlanck(ou2, st.Grid([-3, -3], [3, 3], [10, 12])).operator().bands is None
