"""The integrator's machinery: time grid, fused vs batched parity, determinism, golden values, bad input,
divergence, Numba hazards (fastmath, JIT parity, caching)."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.integrate import DivergenceError, brownian_increments
from sde_toolkit.integrate.driver import CHUNK
from sde_toolkit.sde import potentials as P
from tests.problems import NONSYM_THETA, SEED_EXPRESSION, SIGMA_2D, gbm

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "resources" / "golden_ou_seed12345.npy"


# ---------------------------------------------------------------- time grid
@pytest.mark.parametrize("t0,t1,dt,save_every", [(0.0, 1e3, 1e-3, 1000), (0.3, 5.3, 0.1, 1), (0.3, 5.3, 0.1, 7)])
def test_time_grid_is_computed_not_accumulated(t0, t1, dt, save_every):
    from sde_toolkit.integrate import make_plan

    sde = st.OrnsteinUhlenbeck(1.0, 1.0)
    plan = make_plan(sde, np.zeros((1, 1)), t0=t0, t1=t1, dt=dt, save_every=save_every, method="euler_maruyama",
                     seed=0)
    n = round((t1 - t0) / dt)
    assert plan.n_steps == n
    t = plan.times
    k = plan.save_steps
    assert t[0] == t0 and t[-1] == t1 and k[-1] == n
    np.testing.assert_array_equal(t[:-1], t0 + k[:-1] * plan.h)
    assert np.all(np.diff(t) > 0)
    acc = t0 + np.cumsum(np.full(n, dt))  # what accumulation would give: visibly different at (0, 1e3, 1e-3)
    if n > 10**5:
        assert abs(acc[-1] - t1) > 1e-10


def test_saved_times_of_a_run():
    tr = st.simulate(st.OrnsteinUhlenbeck(1.0, 1.0), np.zeros((3, 1)), t0=0.3, t1=5.3, dt=0.1, save_every=7,
                     seed=0, progress=False)
    assert tr.t[-1] == 5.3 and tr.x.shape == (len(tr.t), 3, 1)
    np.testing.assert_array_equal(tr.t[:-1], 0.3 + np.arange(0, 50, 7) * 0.1)


# ---------------------------------------------------------------- fused vs batched
def _numba_gbm():
    return gbm(numba_face=True)


def _numba_scalar_noise():
    @numba.njit
    def drift(x, t):
        return -x * (1.0 + 0.1 * t)

    @numba.njit
    def diffusion(x, t):
        return 0.5 + 0.1 * np.cos(x)

    return st.SDE.from_functions(drift, diffusion, dim=2, noise_type="scalar")


PARITY = [
    ("ou_scalar", lambda: st.OrnsteinUhlenbeck(1.3, 0.7, mu=0.2), ["euler_maruyama", "milstein", "exact"]),
    ("ou_matrix", lambda: st.OrnsteinUhlenbeck(NONSYM_THETA, [0.5, 0.9], mu=[0.1, -0.3]), ["euler_maruyama", "exact"]),
    ("ou_general", lambda: st.OrnsteinUhlenbeck(NONSYM_THETA, SIGMA_2D), ["euler_maruyama", "exact"]),
    ("ou_rect_noise", lambda: st.OrnsteinUhlenbeck(NONSYM_THETA, [[0.5, 0.2, 0.1], [0.0, 0.3, 0.7]]),
     ["euler_maruyama"]),
    ("od_harmonic", lambda: st.OverdampedLangevin(P.Harmonic(2.0, 0.5), kT=0.7, gamma=1.5, dim=2),
     ["euler_maruyama", "milstein"]),
    ("od_double_well", lambda: st.OverdampedLangevin(P.DoubleWell(), dim=3), ["euler_maruyama"]),
    ("od_gmm", lambda: st.OverdampedLangevin(P.GaussianMixture([0.4, 0.6], [[-1.0, 0.0], [1.0, 0.5]], 0.3)),
     ["euler_maruyama"]),
    ("od_muller_brown", lambda: st.OverdampedLangevin(P.MullerBrown(scale=0.05)), ["euler_maruyama"]),
    ("od_expr_1d", lambda: st.OverdampedLangevin(SEED_EXPRESSION), ["euler_maruyama"]),
    ("od_expr_2d", lambda: st.OverdampedLangevin(P.from_expression("(x**2-1)**2 + y**2 + 0.3*x*y", ("x", "y"))),
     ["euler_maruyama"]),
    ("od_expr_3d", lambda: st.OverdampedLangevin(
        P.from_expression("0.5*(x**2 + y**2 + z**2) + 0.1*cos(x*y*z)", ("x", "y", "z"))), ["euler_maruyama"]),
    ("ud_double_well", lambda: st.UnderdampedLangevin(P.DoubleWell(), gamma=0.7, mass=1.5),
     ["euler_maruyama", "baoab"]),
    ("ud_muller_brown", lambda: st.UnderdampedLangevin(P.MullerBrown(scale=0.05)), ["baoab"]),
    ("vpsde", lambda: st.VPSDE(0.1, 20.0, dim=2), ["euler_maruyama", "exact"]),
    ("vesde", lambda: st.VESDE(0.01, 5.0, dim=2), ["euler_maruyama", "exact"]),
    ("function_gbm_numba", _numba_gbm, ["euler_maruyama", "milstein"]),
    ("function_scalar_noise_numba", _numba_scalar_noise, ["euler_maruyama"]),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,make,methods", PARITY, ids=[p[0] for p in PARITY])
def test_fused_and_batched_agree_on_identical_increments(name, make, methods):
    sde = make()
    assert sde.has_numba_face
    n, n_steps = 37, 16
    t1 = 0.5 if name.startswith(("vp", "ve")) else 0.16 if "muller" in name else 0.8
    h = t1 / n_steps
    x0 = np.random.default_rng(3).normal(0.3, 0.5, (n, sde.dim))
    for method in methods:
        dw = brownian_increments(8, n_steps, n, st.integrate.get_method(method).n_normals(sde), h)
        a = st.simulate(sde, x0, t1=t1, dt=h, method=method, increments=dw, driver="fused", progress=False).x
        b = st.simulate(sde, x0, t1=t1, dt=h, method=method, increments=dw, driver="batched", progress=False).x
        assert np.all(np.isfinite(a))
        assert np.all(np.abs(a - b) <= 1e-12 * (1 + np.abs(b))), (name, method, np.abs(a - b).max())
        # the seeded mode feeds both drivers the same normals too
        c = st.simulate(sde, x0, t1=t1, dt=h, method=method, seed=5, driver="fused", progress=False).x
        d = st.simulate(sde, x0, t1=t1, dt=h, method=method, seed=5, driver="batched", progress=False).x
        assert np.all(np.abs(c - d) <= 1e-12 * (1 + np.abs(d))), (name, method)


def test_parity_negative_control():
    """A perturbed step formula must break the 1e-12 agreement (the parity check can fail)."""
    sde = st.OrnsteinUhlenbeck(1.3, 0.7)
    x0 = np.ones((10, 1))
    dw = brownian_increments(8, 16, 10, 1, 0.05)
    a = st.simulate(sde, x0, t1=0.8, dt=0.05, increments=dw, driver="fused", progress=False).final
    b = st.simulate(st.OrnsteinUhlenbeck(1.3 * (1 + 1e-9), 0.7), x0, t1=0.8, dt=0.05, increments=dw,
                    driver="batched", progress=False).final
    assert np.abs(a - b).max() > 1e-12


def test_heun_on_an_ode_matches_exponential_with_order_two():
    @numba.njit
    def drift(x, t):
        return -x

    sde = st.SDE.from_functions(drift, 0.0, dim=1)
    assert sde.is_ode  # a zero-diffusion FunctionSDE declares itself an ODE
    errs = []
    hs = [2.0**-k for k in range(3, 7)]
    for h in hs:
        x = st.simulate(sde, np.ones((2, 1)), t1=1.0, dt=h, method="heun", progress=False).final[0, 0]
        errs.append(abs(x - math.exp(-1.0)))
    assert abs(np.polyfit(np.log(hs), np.log(errs), 1)[0] - 2.0) < 0.15


# ---------------------------------------------------------------- determinism and streams
def test_same_seed_same_bits_and_seed_recorded():
    sde = st.OrnsteinUhlenbeck(1.0, 1.0)
    x0 = np.zeros((2 * CHUNK + 5, 1))
    a = st.simulate(sde, x0, t1=0.2, dt=0.01, seed=99, progress=False)
    b = st.simulate(sde, x0, t1=0.2, dt=0.01, seed=99, progress=False)
    c = st.simulate(sde, x0, t1=0.2, dt=0.01, seed=99, progress=False, threads=1)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.x, c.x)
    assert a.meta["seed"] == {"entropy": "99", "spawn_key": []} and a.meta["noise_scheme"].endswith("-v2")
    d = st.simulate(sde, x0, t1=0.2, dt=0.01, seed=100, progress=False)
    assert np.all(d.final != a.final)  # another root seed changes every path
    for k in (1, 37, CHUNK + 3):  # a path's noise does not depend on the ensemble size (counter-based scheme)
        e = st.simulate(sde, x0[:k], t1=0.2, dt=0.01, seed=99, progress=False)
        assert np.array_equal(e.x, a.x[:, :k])


def test_seed_none_is_recorded_and_reproducible():
    sde = st.OrnsteinUhlenbeck(1.0, 1.0)
    a = st.simulate(sde, np.zeros((5, 1)), t1=0.1, dt=0.01, progress=False)
    b = st.simulate(sde, np.zeros((5, 1)), t1=0.1, dt=0.01, seed=a.meta["seed"], progress=False)
    assert np.array_equal(a.x, b.x)


def test_paths_are_distinct_and_uncorrelated():
    n = 10_000
    tr = st.simulate(st.OrnsteinUhlenbeck(1.0, 1.0, dim=2), np.zeros((n, 2)), t1=1.0, dt=0.01, seed=13,
                     save_every=100, progress=False)
    x = tr.final
    assert np.unique(x[:, 0]).size == n
    for j in range(2):
        rho = np.corrcoef(x[:-1, j], x[1:, j])[0, 1]
        assert abs(rho) < 5 / math.sqrt(n)
    rho_c = np.corrcoef(x[:, 0], x[:, 1])[0, 1]  # components use independent normals
    assert abs(rho_c) < 5 / math.sqrt(n)


def test_resume_from_a_step_continues_exactly():
    from sde_toolkit.integrate import MemorySink, make_plan, run_plan

    sde = st.OrnsteinUhlenbeck(1.0, 1.0)
    x0 = np.zeros((300, 1))
    full = st.simulate(sde, x0, t1=6.0, dt=0.01, seed=4, save_every=50, progress=False)
    plan = make_plan(sde, x0, t0=0.0, t1=6.0, dt=0.01, save_every=50, method="euler_maruyama", seed=4)
    k = 300  # a step inside noise block 1 (BLOCK = 256)
    x = full.x[list(full.steps).index(k)].copy()
    sink = MemorySink(plan)
    run_plan(sde, plan, x, sink, start_step=k, progress=False)
    np.testing.assert_array_equal(x, full.final)


_SCRIPT = textwrap.dedent("""
    import sys, numpy as np, sde_toolkit as st
    sde = st.OverdampedLangevin(st.potentials.DoubleWell(), dim=1)
    n = int(sys.argv[2])
    x0 = np.linspace(-1, 1, n)[:, None]
    tr = st.simulate(sde, x0, t1=float(sys.argv[3]), dt=0.01, seed=2024, progress=False)
    np.save(sys.argv[1], tr.x)
""")


def _run_script(tmp_path, name, env_extra, n, t1):
    env = dict(os.environ, **env_extra)
    out = tmp_path / f"{name}.npy"
    subprocess.run([sys.executable, "-c", _SCRIPT, str(out), str(n), str(t1)], check=True, env=env, cwd=ROOT,
                   timeout=300)
    return np.load(out)


@pytest.mark.slow
def test_bits_identical_with_one_and_two_threads_in_subprocesses(tmp_path):
    n = 3 * CHUNK + 17
    one = _run_script(tmp_path, "t1", {"NUMBA_NUM_THREADS": "1"}, n, 0.5)
    two = _run_script(tmp_path, "t2", {"NUMBA_NUM_THREADS": "2"}, n, 0.5)
    assert np.array_equal(one, two)


@pytest.mark.slow
def test_jit_and_disabled_jit_agree(tmp_path):
    jit_run = _run_script(tmp_path, "jit", {}, 20, 2.0)
    py_run = _run_script(tmp_path, "nojit", {"NUMBA_DISABLE_JIT": "1"}, 20, 2.0)
    np.testing.assert_allclose(py_run, jit_run, rtol=1e-12, atol=1e-14)


def _golden_run():
    return st.simulate(st.OrnsteinUhlenbeck(1.0, 1.0), np.linspace(-1, 1, 10)[:, None], t1=1.0, dt=0.01,
                       seed=12345, progress=False, noise="v1").x[:, :, 0]


def test_golden_regression():
    """10 paths x 100 steps of OU, seed 12345 (noise scheme v1). Refresh only deliberately (changelog)."""
    np.testing.assert_allclose(_golden_run(), np.load(GOLDEN), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- bad input
def _ou():
    return st.OrnsteinUhlenbeck(1.0, 1.0)


@pytest.mark.parametrize(
    "x0,kwargs,exc,match",
    [
        (np.array([[0.0], [np.nan], [1.0]]), {}, ValueError, r"x0\[1, 0\]"),
        (np.array([[0.0], [np.inf]]), {}, ValueError, r"non-finite.*x0\[1, 0\]"),
        (np.zeros((4, 2)), {}, ValueError, r"shape \(n_paths, 1\)"),
        (np.zeros((0, 1)), {}, ValueError, "n_paths"),
        (np.array([["a"]]), {}, TypeError, "dtype"),
        (np.zeros((2, 1)), dict(dt=0.0), ValueError, "dt must be > 0"),
        (np.zeros((2, 1)), dict(dt=-0.1), ValueError, "dt must be > 0"),
        (np.zeros((2, 1)), dict(dt=float("nan")), ValueError, "dt must be finite"),
        (np.zeros((2, 1)), dict(t1=0.0), ValueError, "t1 > t0"),
        (np.zeros((2, 1)), dict(t1=-1.0), ValueError, "t1 > t0"),
        (np.zeros((2, 1)), dict(dt=0.3), ValueError, "whole number"),
        (np.zeros((2, 1)), dict(method="rk4"), ValueError, "unknown method 'rk4'"),
        (np.zeros((2, 1)), dict(method="baoab"), ValueError, "cannot integrate OrnsteinUhlenbeck.*supports"),
        (np.zeros((2, 1)), dict(save_every=0), ValueError, "save_every"),
        (np.zeros((2, 1)), dict(seed=-3), ValueError, "seed"),
        (np.zeros((2, 1)), dict(increments=np.zeros((3, 2, 1))), ValueError, "increments"),
    ],
)
def test_bad_input_raises_naming_the_problem(x0, kwargs, exc, match):
    args = dict(t1=1.0, dt=0.1, progress=False)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        st.simulate(_ou(), x0, **args)


def test_bad_user_functions_are_caught_by_the_contract_check():
    wrong_shape = st.SDE.from_functions(lambda x, t: x[:, :1], lambda x, t: np.ones_like(x), dim=2)
    with pytest.raises(ValueError, match="drift"):
        st.simulate(wrong_shape, np.zeros((3, 2)), t1=1.0, dt=0.1, progress=False)
    nan_g = st.SDE.from_functions(lambda x, t: -x, lambda x, t: np.sqrt(x - 1.0), dim=1)
    with pytest.raises(ValueError, match=r"diffusion\(x0, t0\) is not finite at x0\[0\]"):
        with np.errstate(invalid="ignore"):
            st.simulate(nan_g, np.zeros((3, 1)), t1=1.0, dt=0.1, progress=False)


def test_backward_sde_needs_decreasing_time():
    sde = st.VPSDE(dim=1).reverse(lambda x, t: -x)
    with pytest.raises(ValueError, match="t1 < t0"):
        st.simulate(sde, np.zeros((2, 1)), t0=0.0, t1=1.0, dt=0.1, progress=False)
    tr = st.simulate(sde, np.zeros((2, 1)), t0=1.0, t1=1e-3, dt=(1 - 1e-3) / 10, seed=0, progress=False)
    assert tr.t[0] == 1.0 and tr.t[-1] == 1e-3


# ---------------------------------------------------------------- divergence
@numba.njit
def _square(x, t):
    return x * x


@numba.njit
def _nan_after(x, t):
    return np.where(t >= 0.0495, np.nan, -x)


@pytest.mark.parametrize("driver", ["fused", "batched"])
def test_divergence_blow_up_names_step_time_and_paths(driver):
    sde = st.SDE.from_functions(_square, 0.0, dim=1)
    x0 = np.array([1.0, -1.0] * 8)[:, None]
    with pytest.raises(DivergenceError) as info:
        st.simulate(sde, x0, t1=2.0, dt=1e-3, max_abs=1e6, driver=driver, save_every=100, seed=0, progress=False)
    err = info.value
    assert 0.99 <= err.time <= 1.05
    assert err.step == round(err.time / 1e-3)
    np.testing.assert_array_equal(err.paths, np.arange(0, 16, 2))  # only the x0 = 1 paths
    assert err.n_paths == 8
    msg = str(err)
    assert f"step {err.step}" in msg and "8 path(s)" in msg and "t = 1.0" in msg
    traj = err.trajectory
    assert traj.meta["status"] == "diverged" and traj.t[-1] < err.time
    good = traj.x[:, 1::2, 0]
    assert np.all(np.isfinite(good)) and np.all(good >= -1.0)  # the x0 = -1 paths ran unchanged: -1/(1 + t)
    np.testing.assert_allclose(good[-1], -1.0 / (1.0 + traj.t[-1]), rtol=2e-3)


@pytest.mark.parametrize("driver", ["fused", "batched"])
def test_nan_injected_at_step_50_is_caught(driver):
    sde = st.SDE.from_functions(_nan_after, 0.1, dim=1)
    with pytest.raises(DivergenceError) as info:
        st.simulate(sde, np.ones((5, 1)), t1=1.0, dt=1e-3, driver=driver, seed=0, progress=False)
    assert info.value.step == 51 and info.value.n_paths == 5  # the step taken from t = 0.05 produces NaN


def test_no_kernel_uses_fastmath():
    pkg = ROOT / "sde_toolkit"
    offenders = []
    for f in pkg.rglob("*.py"):
        text = f.read_text()
        for pat in (r"fastmath\s*=\s*True", r"fastmath\s*=\s*\{", r"['\"]nnan['\"]", r"['\"]ninf['\"]"):
            if re.search(pat, text):
                offenders.append(f"{f.relative_to(ROOT)}: {pat}")
    assert not offenders, offenders
    from sde_toolkit import _jit

    assert _jit.JIT_OPTIONS["fastmath"] is False
    with pytest.raises(ValueError, match="fastmath"):
        _jit.jit(lambda x: x, fastmath=True)


# ---------------------------------------------------------------- Numba cache
def test_cache_dir_falls_back_when_package_is_read_only(monkeypatch, tmp_path):
    from sde_toolkit import _jit

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "nothome"))
    real_access = os.access
    monkeypatch.setattr(_jit.os, "access", lambda p, mode: False if str(p).startswith(str(_jit._PKG_DIR)) else
                        real_access(p, mode))
    old = numba.config.CACHE_DIR
    try:
        _jit._configure_cache_dir()
        assert numba.config.CACHE_DIR.startswith(str(tmp_path / "nothome"))
        assert (Path(numba.config.CACHE_DIR).stat().st_mode & 0o777) == 0o700
    finally:
        numba.config.CACHE_DIR = old


@pytest.mark.parametrize("planted", ["world-writable", "symlink", "file", "foreign-owner"])
def test_cache_dir_is_ours_or_none(monkeypatch, tmp_path, capsys, planted):
    """A cache index is a pickle: a folder that someone else could have written is never used (issue: a planted
    index in $TMPDIR/sde_toolkit-numba-<uid> was unpickled)."""
    from sde_toolkit import _jit

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    home = tmp_path / "home"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    monkeypatch.setattr(_jit.tempfile, "gettempdir", lambda: str(tmp))
    monkeypatch.setattr(_jit.tempfile, "tempdir", str(tmp))
    real_access = os.access
    monkeypatch.setattr(_jit.os, "access", lambda p, mode: False if str(p).startswith(str(_jit._PKG_DIR)) else
                        real_access(p, mode))
    victims = [home / "sde_toolkit" / "numba", tmp / f"sde_toolkit-numba-{os.getuid()}"]
    for v in victims:
        v.parent.mkdir(parents=True, exist_ok=True)
        if planted == "world-writable":
            v.mkdir()
            v.chmod(0o777)
            (v / "planted.nbi").write_bytes(b"pickle")
        elif planted == "foreign-owner":
            if os.getuid() != 0:
                pytest.skip("chown to another user needs root")
            v.mkdir(mode=0o700)
            os.chown(v, 65534, 65534)  # nobody's folder, not ours
        elif planted == "symlink":
            target = tmp_path / f"elsewhere-{v.parent.name}"
            target.mkdir()
            v.symlink_to(target)
        else:
            v.write_bytes(b"")
    old = numba.config.CACHE_DIR
    try:
        _jit._configure_cache_dir()
        chosen = Path(numba.config.CACHE_DIR)
        assert chosen not in victims and chosen.parent == tmp
        assert (chosen.stat().st_mode & 0o777) == 0o700 and chosen.stat().st_uid == os.getuid()
        assert "no private Numba cache folder" in capsys.readouterr().err
    finally:
        numba.config.CACHE_DIR = old


@pytest.mark.slow
def test_second_process_loads_kernels_from_cache(tmp_path):
    script = textwrap.dedent("""
        import json, sys, time, numpy as np
        t = time.perf_counter()
        import sde_toolkit as st
        sde = st.OverdampedLangevin(st.potentials.from_expression("0.1*x**2 - log(0.2 + cos(2*x)**2)"))
        st.simulate(sde, np.zeros((4, 1)), t1=0.1, dt=0.01, seed=0, progress=False)
        from sde_toolkit._jit import cache_stats
        print(json.dumps({"wall": time.perf_counter() - t, "hits": cache_stats()["hits"]}))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), HOME=str(tmp_path / "ro_home"))
    runs = [json.loads(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                                      check=True, cwd=ROOT, timeout=300).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    assert runs[0]["hits"] == 0 and runs[1]["hits"] >= 1
    assert any((tmp_path / "cache").rglob("*.nbi"))
