"""TOML config layer: the seed config as written, every error naming table and key, builders, extension."""

from __future__ import annotations

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.config import (
    ConfigError,
    Key,
    TableSchema,
    build_initial,
    build_sde,
    load_config,
    register_table,
)
from sde_toolkit.runs import prepare_simulation

SEED_CONFIG = '''
[sde]
type = "overdamped_langevin"   # also "ornstein_uhlenbeck" (theta, sigma, mu, dim), "underdamped_langevin", "vpsde", "vesde"
potential = "0.1*x**2 - log(0.2 + cos(2*x)**2)"   # an expression, or a table such as {name = "double_well", a = 1.0, b = 1.0}
kT = 1.0

[initial]
distribution = "uniform"       # also "normal" (mean, std), "point" (x), "file" (path of an .npy or H5MD file)
low = -10.0
high = 10.0
n_paths = 20000

[integrate]
method = "euler_maruyama"
dt = 0.05
t1 = 50.0
save_every = 10
seed = 0

[output]
path = "seed_langevin.h5"
'''


def _cfg(tmp_path, text):
    p = tmp_path / "c.toml"
    p.write_text(text)
    return p


def test_seed_config_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(_cfg(tmp_path, SEED_CONFIG))
    job = prepare_simulation(cfg)
    assert isinstance(job.sde, st.OverdampedLangevin) and job.sde.kT == 1.0
    assert job.x0.shape == (20000, 1) and job.x0.min() >= -10 and job.x0.max() <= 10
    assert job.integrate == dict(t0=0.0, t1=50.0, dt=0.05, save_every=10, method="euler_maruyama", seed=0,
                                 driver="auto", precision="float64")
    assert str(job.out) == "seed_langevin.h5"
    again = prepare_simulation(load_config(_cfg(tmp_path, SEED_CONFIG)))
    np.testing.assert_array_equal(job.x0, again.x0)  # the initial draw is fixed by the integrate seed
    other = prepare_simulation(load_config(_cfg(tmp_path, SEED_CONFIG.replace("seed = 0", "seed = 1"))))
    assert not np.array_equal(job.x0, other.x0)


@pytest.mark.parametrize("edit, table, key", [
    (("kT = 1.0", "kT = 1.0\ncolour = 3"), "sde", "colour"),
    (("[output]", "[outptu]"), None, None),
    (("dt = 0.05", 'dt = "0.05"'), "integrate", "dt"),
    (("t1 = 50.0\n", ""), "integrate", "t1"),
    (("dt = 0.05", "dt = -0.05"), "integrate", "dt"),
    (("dt = 0.05", "dt = 0.07"), "integrate", "dt"),
    (("n_paths = 20000", "n_paths = 0"), "initial", "n_paths"),
    (("n_paths = 20000", "n_paths = 2.5"), "initial", "n_paths"),
    (("high = 10.0", "high = -20.0"), "initial", "high"),
    (("kT = 1.0", "kT = -1.0"), "sde", "kT"),
    (("save_every = 10", "save_every = 0"), "integrate", "save_every"),
    (('method = "euler_maruyama"', 'method = "rk4"'), "integrate", "method"),
    (('type = "overdamped_langevin"', 'type = "brownian"'), "sde", "type"),
    (('potential = "0.1*x**2 - log(0.2 + cos(2*x)**2)"', 'potential = {name = "double_well", a = 1.0, c = 2}'),
     "sde", "potential.c"),
    (('potential = "0.1*x**2 - log(0.2 + cos(2*x)**2)"', 'potential = {name = "quartic"}'), "sde", "potential"),
    (('distribution = "uniform"', 'distribution = "cauchy"'), "initial", "distribution"),
    (('path = "seed_langevin.h5"', 'path = "seed_langevin.h5"\nflush_interval = -1'), "output", "flush_interval"),
    (('path = "seed_langevin.h5"', 'path = "nowhere/run.h5"'), "output", "path"),
    (("t1 = 50.0", "t1 = 0.0"), "integrate", "t1"),
    (("seed = 0", 'seed = 0\nprecision = "float16"'), "integrate", "precision"),
])
def test_errors_name_table_and_key(tmp_path, monkeypatch, edit, table, key):
    monkeypatch.chdir(tmp_path)
    text = SEED_CONFIG.replace(*edit)
    assert text != SEED_CONFIG
    with pytest.raises(ConfigError) as info:
        prepare_simulation(load_config(_cfg(tmp_path, text)))
    err = info.value
    assert err.table == table
    if table is not None:
        assert f"[{table}]" in str(err)
    if key is not None:
        assert err.key == key and key in str(err)
    if table is None:
        assert "[outptu]" in str(err)


def test_existing_output_without_overwrite(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "seed_langevin.h5").write_bytes(b"keep")
    cfg = load_config(_cfg(tmp_path, SEED_CONFIG))
    with pytest.raises(ConfigError, match="already exists"):
        prepare_simulation(cfg)
    prepare_simulation(cfg, overwrite=True)
    assert (tmp_path / "seed_langevin.h5").read_bytes() == b"keep"


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(_cfg(tmp_path, "[sde\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.toml")


@pytest.mark.parametrize("table, cls, dim", [
    ({"type": "overdamped_langevin", "potential": {"name": "double_well", "a": 2.0, "b": 1.0}, "dim": 2},
     st.OverdampedLangevin, 2),
    ({"type": "overdamped_langevin", "potential": {"name": "harmonic", "k": 3.0}}, st.OverdampedLangevin, 1),
    ({"type": "overdamped_langevin", "potential": {"name": "muller_brown", "scale": 0.1}, "kT": 2.0},
     st.OverdampedLangevin, 2),
    ({"type": "overdamped_langevin", "potential": {"name": "gaussian_mixture", "weights": [0.5, 0.5],
                                                   "means": [[-1.0], [1.0]], "covs": [0.2, 0.2]}},
     st.OverdampedLangevin, 1),
    ({"type": "underdamped_langevin", "potential": "x**2", "gamma": 0.5}, st.UnderdampedLangevin, 2),
    ({"type": "ornstein_uhlenbeck", "theta": 2.0, "sigma": [0.5, 1.0], "mu": 1.0}, st.OrnsteinUhlenbeck, 2),
    ({"type": "vpsde", "dim": 3}, st.VPSDE, 3),
    ({"type": "vesde", "sigma_min": 0.1, "sigma_max": 10.0}, st.VESDE, 1),
])
def test_build_sde_types(table, cls, dim):
    sde = build_sde(table)
    assert isinstance(sde, cls) and sde.dim == dim


def test_build_sde_rejects_model_errors():
    with pytest.raises(ConfigError, match=r"\[sde\]"):
        build_sde({"type": "ornstein_uhlenbeck", "theta": [[1.0, 0.0]], "sigma": 1.0})


def test_build_initial_distributions(tmp_path):
    x = build_initial({"distribution": "normal", "mean": [1.0, -1.0], "std": 0.0, "n_paths": 4}, 2)
    np.testing.assert_array_equal(x, [[1.0, -1.0]] * 4)
    x = build_initial({"distribution": "point", "x": 0.5, "n_paths": 3}, 1)
    np.testing.assert_array_equal(x, [[0.5]] * 3)
    a = build_initial({"distribution": "uniform", "low": 0.0, "high": 1.0, "n_paths": 5, "seed": 4}, 1)
    b = build_initial({"distribution": "uniform", "low": 0.0, "high": 1.0, "n_paths": 5, "seed": 4}, 1, seed=99)
    np.testing.assert_array_equal(a, b)
    np.save(tmp_path / "x0.npy", np.arange(6.0).reshape(3, 2))
    x = build_initial({"distribution": "file", "path": "x0.npy", "n_paths": 2}, 2, base_dir=tmp_path)
    np.testing.assert_array_equal(x, [[0.0, 1.0], [2.0, 3.0]])
    with pytest.raises(ConfigError, match="n_paths"):
        build_initial({"distribution": "file", "path": "x0.npy", "n_paths": 9}, 2, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"\[initial\] low"):
        build_initial({"distribution": "uniform", "low": [0.0, 1.0, 2.0], "high": 5.0, "n_paths": 1}, 2)
    # from the last frame of an H5MD trajectory
    sde = st.OrnsteinUhlenbeck(1.0, 0.5, dim=2)
    traj = st.simulate(sde, np.zeros((4, 2)), t1=0.1, dt=0.01, seed=1, out=tmp_path / "r.h5", progress=False,
                       driver="batched")
    x = build_initial({"distribution": "file", "path": "r.h5"}, 2, base_dir=tmp_path)
    np.testing.assert_array_equal(x, traj.final)


def test_tables_are_extensible():
    text = {"no_such_table": {"hidden": 64}}
    with pytest.raises(ConfigError, match=r"unknown table \[no_such_table\]"):
        load_config(text)
    register_table(TableSchema("score_test", {"hidden": Key(("integer",), default=128)}))
    cfg = load_config({"score_test": {}}, allowed_tables=("score_test",))
    assert cfg["score_test"]["hidden"] == 128
    with pytest.raises(ConfigError, match=r"\[score_test\] depth"):
        load_config({"score_test": {"depth": 2}})
    with pytest.raises(ConfigError, match=r"unknown table \[sde\]"):
        load_config({"sde": {"type": "vpsde"}}, allowed_tables=("score_test",))


def test_precision_float32_from_a_config(tmp_path, monkeypatch):
    """``[integrate] precision = "float32"``: the job runs in float32 and, without ``[output] dtype``, stores
    float32 frames; ``dtype = "float64"`` stores the same float32 states wider."""
    monkeypatch.chdir(tmp_path)
    text = (SEED_CONFIG.replace("seed = 0", 'seed = 0\nprecision = "float32"').replace("n_paths = 20000", "n_paths = 50")
            .replace("t1 = 50.0", "t1 = 1.0"))
    job = prepare_simulation(load_config(_cfg(tmp_path, text)))
    assert job.integrate["precision"] == "float32" and job.output["dtype"] is None
    traj = st.simulate(job.sde, job.x0, out=job.out, progress=False, **job.integrate, **job.output)
    assert np.asarray(traj.x).dtype == np.float32 and traj.meta["precision"] == "float32"
    wide = prepare_simulation(load_config(_cfg(tmp_path, text.replace('path = "seed_langevin.h5"',
                                                                      'path = "wide.h5"\ndtype = "float64"'))))
    t64 = st.simulate(wide.sde, wide.x0, out=wide.out, progress=False, **wide.integrate, **wide.output)
    assert np.asarray(t64.x).dtype == np.float64
    np.testing.assert_array_equal(np.asarray(t64.x), np.asarray(traj.x).astype(np.float64))
