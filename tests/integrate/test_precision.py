"""``precision="float32"`` in ``simulate`` and ``mcmc.langevin``: float32 state and step arithmetic.

References that do not share the code under test: one EM / LM step recomputed in NumPy float32 arithmetic from the
scheme-v2 normals (bit for bit: IEEE float32 without FMA on both sides), Euler–Maruyama's exact discrete law of
the OU process (Kloeden & Platen), the harmonic variance of Leimkuhler–Matthews at any stable step, and the same
run in float64 (the same noise, rounded once, so the two differ only by float32 rounding).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import sde_toolkit as st
from sde_toolkit import _random as R
from sde_toolkit.integrate import MemorySink, make_plan, run_plan
from sde_toolkit.sde import potentials as P

SEED_EXPR = "0.1*x**2 - log(0.2 + cos(2*x)**2)"
F32 = np.float32


def _z32(seed, step, n, m=1):
    return R.normals(R.resolve_seed(seed), range(step, step + 1), range(0, n), m)[0].astype(F32)


def test_one_em_step_is_float32_arithmetic():
    """x1 = x0 + f(x0) h + g (sqrt(h) z) in float32, each operation rounded to float32 (em_increment's order).
    Catches a step computed in float64 and rounded once (the results differ in the last bit on many paths).
    The batched driver's update is float32 too, but NumPy models evaluate their drift in float64 (rounded once):
    within one float32 ulp of 2 (the size of the terms) of the fused step."""
    theta, mu, sigma, h = 1.3, 0.4, 0.7, 0.01
    sde = st.OrnsteinUhlenbeck(theta, sigma, mu=mu)
    x0 = np.random.default_rng(0).normal(size=(4096, 1))
    tr = st.simulate(sde, x0, t1=h, dt=h, seed=5, precision="float32")
    tb = st.simulate(sde, x0, t1=h, dt=h, seed=5, precision="float32", driver="batched")
    assert tb.x.dtype == np.float32
    assert np.abs(tb.x[-1] - tr.x[-1]).max() <= np.spacing(F32(2.0))
    x = x0.astype(F32)
    f = -F32(theta) * (x - F32(mu))
    dw = F32(math.sqrt(h)) * _z32(5, 0, 4096)
    want = x + f * F32(h) + F32(sigma) * dw
    assert tr.x.dtype == np.float32
    np.testing.assert_array_equal(tr.x[-1], want)
    # the control: the same formula in float64, rounded once, is not what a float32 run computes
    f64 = (x0 + (-theta * (x0 - mu)) * h + sigma * (math.sqrt(h) * _z32(5, 0, 4096).astype(np.float64)))
    assert (f64.astype(F32) != want).any()


def test_one_lm_step_on_the_seed_density_in_float32():
    """Leimkuhler–Matthews on the expression potential: float32 gradient (float32 constants, the float32 sincos)
    and the noise (xi_0 + xi_1) / 2 in float32, against NumPy float32 (sin/cos from float64, rounded)."""
    h = 0.05
    sde = st.OverdampedLangevin(SEED_EXPR)
    x0 = np.random.default_rng(1).uniform(-10, 10, (3000, 1))
    tr = st.simulate(sde, x0, t1=h, dt=h, seed=2, method="leimkuhler_matthews", precision="float32")
    x = x0.astype(F32)
    s2, c2 = (np.sin(2 * x.astype(np.float64)).astype(F32), np.cos(2 * x.astype(np.float64)).astype(F32))
    grad = F32(4) * s2 * c2 / (c2**2 + F32(0.2)) + F32(0.2) * x
    f = -grad * F32(1.0)
    xi = F32(0.5) * (_z32(2, 0, 3000) + _z32(2, 1, 3000))
    want = x + f * F32(h) + F32(math.sqrt(2.0)) * (F32(math.sqrt(h)) * xi)
    np.testing.assert_array_equal(tr.x[-1], want)


def test_em_law_of_ou_in_float32_against_the_discrete_closed_form():
    """EM on OU has an exact Gaussian law at every step: mean (1 - theta h)^n x0, variance
    sigma^2 h sum_k (1 - theta h)^(2k). 2e5 float32 paths: moments within 5 SE, KS at alpha 1e-3; the control
    (the law of theta * 1.1) fails both."""
    theta, sigma, h, n_steps, n = 1.0, 1.0, 0.02, 50, 200_000
    sde = st.OrnsteinUhlenbeck(theta, sigma)
    tr = st.simulate(sde, np.ones((n, 1)), t1=h * n_steps, dt=h, seed=11, precision="float32", save_every=n_steps)
    x = tr.final[:, 0].astype(np.float64)

    def law(th):
        a = 1 - th * h
        return a**n_steps, sigma**2 * h * sum(a ** (2 * k) for k in range(n_steps))

    m, v = law(theta)
    se_m, se_v = math.sqrt(v / n), v * math.sqrt(2 / n)
    assert abs(x.mean() - m) < 5 * se_m and abs(x.var() - v) < 5 * se_v
    assert stats.kstest(x, "norm", args=(m, math.sqrt(v))).pvalue > 1e-3
    m2, v2 = law(1.1 * theta)
    assert abs(x.mean() - m2) > 5 * se_m or abs(x.var() - v2) > 5 * se_v
    assert stats.kstest(x, "norm", args=(m2, math.sqrt(v2))).pvalue < 1e-3


def test_float32_run_is_the_float64_run_up_to_float32_rounding():
    """The same seed gives the same noise (each normal rounded once): on a contracting OU the paths agree to a few
    float32 ulps after 500 steps, and they do differ (the float32 run is not a rounded float64 run)."""
    sde = st.OrnsteinUhlenbeck(2.0, 0.5)
    x0 = np.random.default_rng(3).normal(size=(5000, 1))
    kw = dict(t1=5.0, dt=0.01, seed=4, save_every=100)
    a = st.simulate(sde, x0, **kw).x
    b = st.simulate(sde, x0, precision="float32", **kw).x
    assert b.dtype == np.float32
    err = np.abs(b.astype(np.float64) - a).max()
    assert 0 < err < 1e-5


def test_lm_harmonic_variance_in_float32_at_step_1_5():
    """LM is exact in variance for a harmonic potential at any stable step: 1 within 5 SE at h = 1.5 in float32;
    EM at the same step (the control) has variance 1 / (1 - h / 2) = 4."""
    sde = st.OverdampedLangevin(P.Harmonic(k=1.0))
    x0 = np.zeros((100_000, 1))
    kw = dict(t1=1.5 * 200, dt=1.5, seed=6, save_every=200, precision="float32")
    lm = st.simulate(sde, x0, method="leimkuhler_matthews", **kw).final[:, 0].astype(np.float64)
    em = st.simulate(sde, x0, **kw).final[:, 0].astype(np.float64)
    se = math.sqrt(2 / lm.size)
    assert abs(lm.var() - 1.0) < 5 * se
    assert abs(em.var() - 4.0) < 5 * 4.0 * se


def test_seed_density_lm_float32_passes_the_stationary_check():
    sde = st.OverdampedLangevin(SEED_EXPR)
    x0 = np.random.default_rng(0).uniform(-10, 10, (20_000, 1))
    lm = st.simulate(sde, x0, t1=50.0, dt=0.05, method="leimkuhler_matthews", seed=0, save_every=1000,
                     precision="float32").final
    assert lm.dtype == np.float32
    assert st.validate_stationary(sde, lm.astype(np.float64)).passed
    em = st.simulate(sde, x0, t1=50.0, dt=0.05, seed=0, save_every=1000, precision="float32").final
    assert not st.validate_stationary(sde, em.astype(np.float64)).passed  # control: EM's O(h) bias


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_fallback_for_huge_arguments_keeps_every_other_row(dtype):
    """A block with one argument beyond the Cody-Waite range (2^24 in float32, 2^20 in float64) reruns with the
    full-range sincos: the other rows get the same bits as in a block without it (a row's value never depends on
    its neighbours), every row equals the row kernel, and the huge row is right (V = cos x: grad = -sin x)."""
    from sde_toolkit._jit import jit

    V = P.from_expression("cos(x)")
    block = V.numba_grad_block(jit, 1, dtype=dtype)
    row = V.numba_grad(jit, dtype=dtype)
    x = np.random.default_rng(2).uniform(-10, 10, (300, 1)).astype(dtype)
    g1 = np.empty_like(x)
    block(x, g1)
    x2 = x.copy()
    x2[7, 0] = dtype(3e6)  # beyond 2^20 (the float64 rerun)
    x2[9, 0] = dtype(3e30)  # beyond 2^24 (the float32 rerun)
    g2 = np.empty_like(x2)
    block(x2, g2)
    keep = np.ones(300, dtype=bool)
    keep[[7, 9]] = False
    np.testing.assert_array_equal(g1[keep], g2[keep])
    r = np.empty(1, dtype=dtype)
    for i in range(300):
        row(x2[i], r)
        assert r[0] == g2[i, 0]
    for i in (7, 9):
        xd = float(x2[i, 0])
        want = -math.sin(xd)
        assert abs(g2[i, 0] - want) <= 2 * np.spacing(dtype(abs(want))), (i, g2[i, 0], want)


def test_resume_prefix_and_threads_in_float32():
    sde = st.OverdampedLangevin(P.DoubleWell(), dim=2)
    x0 = np.random.default_rng(5).normal(size=(1001, 2))
    kw = dict(t1=2.0, dt=0.01, seed=8, save_every=50, precision="float32")
    full = st.simulate(sde, x0, threads=2, **kw)
    one = st.simulate(sde, x0, threads=1, **kw)
    np.testing.assert_array_equal(full.x, one.x)
    part = st.simulate(sde, x0[:300], threads=2, **kw)
    np.testing.assert_array_equal(part.x, full.x[:, :300])
    for method in ("euler_maruyama", "leimkuhler_matthews"):
        ref = st.simulate(sde, x0, method=method, **kw)
        plan = make_plan(sde, x0, t0=0.0, t1=2.0, dt=0.01, method=method, seed=8, save_every=50, precision="float32")
        assert plan.to_dict()["precision"] == "float32"
        assert type(plan).from_dict(plan.to_dict()) == plan
        x = ref.x[2].copy()  # restart at step 100 from the saved float32 state
        run_plan(sde, plan, x, MemorySink(plan), start_step=100)
        np.testing.assert_array_equal(x, ref.final)


def test_float32_file_and_frame_dtype(tmp_path):
    sde = st.OrnsteinUhlenbeck(1.0, 0.5)
    x0 = np.zeros((40, 1))
    kw = dict(t1=0.5, dt=0.01, seed=2, save_every=10, precision="float32")
    mem = st.simulate(sde, x0, **kw)
    wide = st.simulate(sde, x0, dtype="float64", **kw)
    assert mem.x.dtype == np.float32 and wide.x.dtype == np.float64
    np.testing.assert_array_equal(wide.x, mem.x.astype(np.float64))  # float32 state, stored wider: exact
    out = tmp_path / "run.h5"
    got = st.simulate(sde, x0, out=out, **kw)
    assert got.meta["precision"] == "float32"
    np.testing.assert_array_equal(np.asarray(got.x), mem.x)
    assert np.asarray(got.x).dtype == np.float32


@pytest.mark.parametrize("method", ["ula", "mala", "baoab", "leimkuhler_matthews"])
def test_mcmc_langevin_float32(method):
    """2-D harmonic target: stationary variance (each method's own: ULA's 1 / (1 - h/2), exact for the others at
    this step) within 5 SE, samples float32, and the float32 chains follow the float64 ones."""
    V = P.Harmonic(k=1.0)
    x0 = np.zeros((4000, 2))
    kw = dict(step=0.2, n_steps=1200, burn_in=200, thin=20, method=method, seed=3)
    c32 = st.mcmc.langevin(V, x0, precision="float32", **kw)
    c64 = st.mcmc.langevin(V, x0, **kw)
    s32, s64 = np.asarray(c32.samples), np.asarray(c64.samples)
    assert s32.dtype == np.float32 and s64.dtype == np.float64
    want = 1 / (1 - 0.2 / 2) if method == "ula" else 1.0
    tol = {"baoab": 0.01}.get(method, 0.0)  # BAOAB's configurational variance at h = 0.2: 1 exactly for harmonic
    v = s32.reshape(-1, 2).astype(np.float64).var(axis=0)
    se = want * math.sqrt(2 / (4000 * 50 / 2))  # samples 20 steps apart: ~2 correlated per chain-time unit
    assert np.all(np.abs(v - want) < 5 * se + tol), v
    off = np.abs(s32.astype(np.float64) - s64).max(axis=(0, 2)) > 1e-3  # chains that left their float64 twin
    # MALA: an accept/reject decision within float32 rounding of its threshold can flip, and the chain then
    # follows another (equally valid) path; the others are smooth maps of the same noise
    assert off.mean() < (0.01 if method == "mala" else 1e-9), off.mean()


def test_leimkuhler_matthews_chains_with_and_without_energies_are_simulate():
    """Recording energies wraps the method; the wrapper keeps LM's lookahead, so the chains equal simulate's."""
    V = P.Harmonic(k=1.0)
    x0 = np.random.default_rng(0).normal(size=(300, 2))
    kw = dict(step=0.5, n_steps=100, method="leimkuhler_matthews", seed=3)
    a = np.asarray(st.mcmc.langevin(V, x0, store_energy=True, **kw).samples)
    b = np.asarray(st.mcmc.langevin(V, x0, store_energy=False, **kw).samples)
    c = st.simulate(st.OverdampedLangevin(V, dim=2), x0, t1=50.0, dt=0.5, method="leimkuhler_matthews", seed=3).x
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c[1:])


def test_precision_refusals():
    ou = st.OrnsteinUhlenbeck(1.0, 1.0)
    x0 = np.zeros((4, 1))
    for bad in ("float16", "int32", "double", None):
        with pytest.raises(ValueError, match="precision"):
            st.simulate(ou, x0, t1=0.1, dt=0.01, precision=bad)
    with pytest.raises(ValueError, match="noise scheme v2"):
        st.simulate(ou, x0, t1=0.1, dt=0.01, precision="float32", noise="v1")
    with pytest.raises(ValueError, match="beyond the range of float32"):
        st.simulate(ou, np.full((4, 1), 1e39), t1=0.1, dt=0.01, precision="float32")
    with pytest.raises(ValueError, match="precision"):
        st.mcmc.langevin(P.Harmonic(), x0, step=0.1, n_steps=10, precision="float16")

    class Only64(st.integrate.methods.EulerMaruyama):
        name = "only64"
        precisions = ("float64",)

    with pytest.raises(ValueError, match="float64"):
        st.simulate(ou, x0, t1=0.1, dt=0.01, method=Only64(), precision="float32")
    # np.float32 spellings are accepted
    assert st.simulate(ou, x0, t1=0.1, dt=0.01, precision=np.float32, seed=0).x.dtype == np.float32


@pytest.mark.parametrize("driver", ["fused", "batched"])
def test_float32_overflow_is_a_divergence(driver):
    """A float32 state that overflows to inf is diverged in both drivers (the bound is compared in float64:
    the largest float64 would round to inf in float32 and let inf pass)."""
    sde = st.OverdampedLangevin(P.DoubleWell())
    x0 = np.full((64, 1), 1e12)
    with pytest.raises(st.DivergenceError) as err, np.errstate(over="ignore"):
        st.simulate(sde, x0, t1=1.0, dt=0.1, seed=0, precision="float32", driver=driver)
    assert err.value.step == 2  # x_1 = -4e35 is a float32; 4 x_1^3 overflows float32 at step 2
    with pytest.raises(st.DivergenceError) as err64, np.errstate(over="ignore"):
        st.simulate(sde, x0, t1=1.0, dt=0.1, seed=0, driver=driver)
    assert err64.value.step > 2  # the control: float64 holds x_2 = 2.6e106


def test_interrupted_float32_file_resumes_bit_identical(tmp_path):
    """An interrupted float32 run on disk: its float64 checkpoint holds the float32 state exactly, the plan
    records the precision, and ``resume`` finishes it equal to the uninterrupted run (batched driver, LM: the
    pending normals are rebuilt from the counter and rounded as in the run)."""

    def drift(x, t):
        return -x

    def interrupting(x, t):
        if t >= 3.0:
            raise KeyboardInterrupt
        return -x

    def diffusion(x, t):
        return 0.3 * np.ones_like(x)

    plain = st.SDE.from_functions(drift, diffusion, dim=1)
    x0 = np.linspace(-1, 1, 20)[:, None]
    kw = dict(t1=6.0, dt=0.01, save_every=7, seed=3, driver="batched", precision="float32", progress=False)
    ref = st.simulate(plain, x0, **kw)
    out = tmp_path / "i.h5"
    with pytest.raises(KeyboardInterrupt):
        st.simulate(st.SDE.from_functions(interrupting, diffusion, dim=1), x0, out=out, flush_interval=0.0, **kw)
    traj = st.resume(out, sde=plain, progress=False)
    assert np.asarray(traj.x).dtype == np.float32 and traj.meta["precision"] == "float32"
    np.testing.assert_array_equal(np.asarray(traj.x), ref.x)
