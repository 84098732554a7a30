"""Bad input is refused at the public boundary, before any work or file, with a message naming the argument:
the cases found when the toolkit was tried as a careless user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.config import ConfigError, build_initial

ROOT = Path(__file__).resolve().parents[1]
OU = st.OrnsteinUhlenbeck(1.0, 1.0)


def _no_files(folder: Path) -> bool:
    return not any(folder.iterdir())


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(threads=0), ValueError, "threads"),
    (dict(threads=1.5), TypeError, "threads"),
    (dict(dt="0.1"), TypeError, "dt must be a real number"),
    (dict(t1="1"), TypeError, "t1 must be a real number"),
    (dict(save_every=2.0), TypeError, "save_every"),
    (dict(max_abs="big"), ValueError, "max_abs"),
    (dict(seed=1.5), TypeError, "seed"),
    (dict(seed=True), TypeError, "seed"),
    (dict(method="rk4"), ValueError, "unknown method"),
    (dict(noise="mt19937"), ValueError, "noise scheme"),
    (dict(dtype="float16"), ValueError, "dtype"),
    (dict(flush_interval=float("inf")), ValueError, "flush_interval must be a finite"),
    (dict(flush_interval="5"), TypeError, "flush_interval"),
])
def test_simulate_refuses_bad_arguments_before_any_file(kwargs, exc, match, tmp_path):
    args = dict(t1=1.0, dt=0.1, progress=False, out=tmp_path / "r.h5")
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        st.simulate(OU, np.zeros((3, 1)), **args)
    assert _no_files(tmp_path)


def test_complex_and_non_finite_initial_states_are_refused(tmp_path):
    with pytest.raises(TypeError, match="complex"):
        st.simulate(OU, np.ones((3, 1)) * (1 + 2j), t1=1.0, dt=0.1)
    np.save(tmp_path / "c.npy", np.ones((4, 1)) * (1 + 2j))
    with pytest.raises(ConfigError, match=r"\[initial\] path.*complex"):
        build_initial({"distribution": "file", "path": str(tmp_path / "c.npy")}, 1)
    np.save(tmp_path / "n.npy", np.array([[0.0], [np.nan]]))
    with pytest.raises(ConfigError, match="non-finite"):
        build_initial({"distribution": "file", "path": str(tmp_path / "n.npy")}, 1)


def test_impossible_sizes_fail_with_the_numbers_not_inside_numpy(tmp_path):
    with pytest.raises(ValueError, match="frames .* needs .* of memory"):
        st.simulate(OU, np.zeros((20_000, 1)), t1=1e9, dt=1.0, save_every=1)
    with pytest.raises(ValueError, match="time grid"):
        st.simulate(OU, np.zeros((1, 1)), t1=1e12, dt=1.0, save_every=1, out=tmp_path / "big.h5")
    assert _no_files(tmp_path)
    with pytest.raises(ConfigError, match=r"\[initial\] n_paths.*needs"):
        build_initial({"distribution": "point", "x": 0.0, "n_paths": 10**12}, 1)
    with pytest.raises(ValueError, match="beyond any memory"):
        st.Grid([0, 0, 0], [1, 1, 1], [10**5, 10**5, 10**5])
    g = st.Grid([0, 0], [1, 1], [2000, 2000])
    fp = st.FokkerPlanck(st.OverdampedLangevin(st.potentials.Harmonic(), dim=2), g)
    with pytest.raises(ValueError, match="saved densities .* needs"):
        fp.evolve(g.gaussian([0.5, 0.5], 0.01 * np.eye(2)), t1=1e5, dt=0.1)


@pytest.mark.parametrize("args,exc,match", [
    ((0, 1, "10"), TypeError, r"n must be integers.*'10'"),
    ((0, 1, 10.0), TypeError, "n must be integers"),
    (("0", 1, 10), TypeError, "lower"),
    ((0, 1, 2), ValueError, ">= 3"),
    ((1, 0, 10), ValueError, "upper must exceed lower"),
    ((0, np.inf, 10), ValueError, "finite"),
])
def test_grid_refuses_bad_arguments(args, exc, match):
    with pytest.raises(exc, match=match):
        st.Grid(*args)


def test_an_unsupported_expression_leaves_no_partial_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[sde]\ntype = "overdamped_langevin"\npotential = "I*x**2"\n'
                   '[initial]\ndistribution = "point"\nx = 0.0\nn_paths = 4\n'
                   '[integrate]\ndt = 0.1\nt1 = 1.0\nseed = 0\n')
    r = subprocess.run([sys.executable, "-m", "sde_toolkit.cli", "simulate", str(cfg), "-o", str(tmp_path / "r.h5")],
                       capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "the name 'I' is not allowed" in r.stderr and "TypingError" not in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]
    with pytest.raises(ValueError, match="'nan'"):
        st.potentials.from_expression("nan")


def test_a_failed_fokker_planck_evolve_is_not_marked_complete(tmp_path):
    g = st.Grid(-3, 3, 60)
    fp = st.FokkerPlanck(st.OverdampedLangevin(st.potentials.Harmonic()), g)
    calls = {"n": 0}
    real = fp._stepper

    def failing_stepper(*a, **k):
        step = real(*a, **k)

        def wrapped(p, k0, k1):
            calls["n"] += 1
            if calls["n"] == 5:
                raise RuntimeError("solver broke")
            return step(p, k0, k1)

        return wrapped

    fp._stepper = failing_stepper
    out = tmp_path / "d.h5"
    with pytest.raises(RuntimeError, match="solver broke"):
        fp.evolve(g.gaussian(0.0, 0.5), t1=1.0, dt=0.1, out=out)
    with h5py.File(out, "r") as f:
        assert bool(f["fokker_planck"].attrs["complete"]) is False
        assert int(f["fokker_planck"].attrs["n_committed"]) == 5  # the densities before the failure are kept
    rec = st.fokker_planck.read_density(out)
    assert not rec.complete and rec.p.shape[0] == 5
