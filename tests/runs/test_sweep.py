"""Sweeps on Dask (issue 11): identical for any worker count and any sharding, idempotent, crash-resumable.

Every test runs a real ``dask.distributed`` cluster of 2 worker processes (embedded ``LocalCluster``s, or one
module-wide cluster reached through ``scheduler=``), on small OU ensembles.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import psutil
import pytest

pytest.importorskip("dask.distributed")

import sde_toolkit as st  # noqa: E402
from sde_toolkit import cli  # noqa: E402
from sde_toolkit.config import Config, ConfigError  # noqa: E402
from sde_toolkit.runs.jobs import prepare_simulation  # noqa: E402
from sde_toolkit.runs.sweep import parse_param, parse_values, sweep_points  # noqa: E402

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

OU = """
[sde]
type = "ornstein_uhlenbeck"
theta = 1.0
sigma = 1.0

[initial]
distribution = "normal"
n_paths = {n_paths}

[integrate]
dt = 0.01
t1 = {t1}
save_every = {save_every}
seed = 11
{extra}

[output]
flush_interval = {flush}
"""


def write_cfg(d: Path, name="ou.toml", n_paths=200, t1=1.0, save_every=10, extra="", flush=5.0) -> Path:
    p = d / name
    p.write_text(OU.format(n_paths=n_paths, t1=t1, save_every=save_every, extra=extra, flush=flush))
    return p


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def cli_run(*args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sde_toolkit.cli", *map(str, args)], capture_output=True,
                          text=True, env=env(), timeout=timeout)


def shard_files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((d / "shards").iterdir())}


def positions(d: Path) -> dict[str, np.ndarray]:
    with h5py.File(d / "sweep.h5", "r") as f:
        return {k: g["position"][...] for k, g in f["points"].items() if "position" in g}


def data_of_shards(d: Path) -> dict[str, np.ndarray]:
    out = {}
    for p in sorted((d / "shards").glob("*.h5")):
        with h5py.File(p, "r") as f:
            out[p.name] = f["particles/all/position/value"][...]
    return out


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                     silence_logs=40)
    yield c.scheduler_address
    c.close()


def _helper(p) -> bool:
    """multiprocessing's resource tracker / forkserver: one per parent process for its lifetime, not a worker."""
    try:
        cmd = " ".join(p.cmdline())
    except psutil.Error:
        return True
    return "resource_tracker" in cmd or "forkserver" in cmd


@pytest.fixture
def no_leaks():
    """No process of an embedded cluster outlives its sweep."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.time() + 10
    while True:
        extra = [p for p in me.children(recursive=True) if p.pid not in before and p.is_running()
                 and p.status() != psutil.STATUS_ZOMBIE and not _helper(p)]
        if not extra or time.time() > deadline:
            break
        time.sleep(0.2)
    assert not extra, f"processes left behind: {[p.cmdline() for p in extra]}"


# ------------------------------------------------------------------------------------ workers, replicas, rerun
def test_workers_1_and_2_identical_replicas_differ_rerun_skips(tmp_path, cluster, no_leaks):
    cfg = write_cfg(tmp_path)
    params = {"sde.sigma": [0.5, 1.0, 2.0]}
    a = st.sweep(cfg, params, replicas=2, workers=1, out=tmp_path / "w1", progress=False)
    b = st.sweep(cfg, params, replicas=2, workers=2, out=tmp_path / "w2", progress=False)
    assert a.ok and b.ok and a.n_shards == b.n_shards == 6 and a.n_run == b.n_run == 6
    assert shard_files(tmp_path / "w1").keys() == shard_files(tmp_path / "w2").keys()
    da, db = data_of_shards(tmp_path / "w1"), data_of_shards(tmp_path / "w2")
    for k in da:
        assert np.array_equal(da[k], db[k]), k
    pa, pb = positions(tmp_path / "w1"), positions(tmp_path / "w2")
    assert sorted(pa) == ["0", "1", "2"]
    for k in pa:
        assert pa[k].shape == (11, 400, 1)
        assert np.array_equal(pa[k], pb[k])
        r0, r1 = pa[k][:, :200], pa[k][:, 200:]
        assert not np.any(r0[1:] == r1[1:])  # replicas: independent initial states and noise, no equal value
        assert np.isfinite(pa[k]).all()
    # rerun: every shard verified and skipped, nothing in shards/ touched
    files = sorted((tmp_path / "w2" / "shards").iterdir())
    before = {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest()) for p in files}
    c = st.sweep(cfg, params, replicas=2, scheduler=cluster, out=tmp_path / "w2", progress=False)
    assert c.ok and c.n_skipped == 6 and c.n_run == 0 and c.n_resumed == 0
    after = {p.name: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
             for p in sorted((tmp_path / "w2" / "shards").iterdir())}
    assert after == before
    assert np.array_equal(positions(tmp_path / "w2")["1"], pb["1"])


# ------------------------------------------------------------------------------------ sharding, VDS, results
def test_shards_are_blocks_of_one_run_and_vds_survives_a_move(tmp_path, cluster, monkeypatch):
    cfg = write_cfg(tmp_path, n_paths=300)
    params = {"sde.sigma": [0.5, 2.0]}  # SDE values of the first test: their kernels are in the disk cache
    one = st.sweep(cfg, params, replicas=2, scheduler=cluster, out=tmp_path / "one", progress=False)
    cut = st.sweep(cfg, params, replicas=2, scheduler=cluster, out=tmp_path / "cut", shard_paths=128,
                   progress=False)
    assert one.n_shards == 4 and cut.n_shards == 4 * 3  # 300 paths = 128 + 128 + 44
    p1, p2 = positions(tmp_path / "one"), positions(tmp_path / "cut")
    for k in p1:
        assert np.array_equal(p1[k], p2[k]), k
    # replica 1 of point 1 is the run its stored config describes (paths 0..n of one simulate call)
    with h5py.File(tmp_path / "cut" / "shards" / "p1_r1_b1.h5", "r") as f:
        shard_cfg = json.loads(f["parameters/sde_toolkit"].attrs["config"])
    job = prepare_simulation(Config(shard_cfg), check_output=False)
    ref = st.simulate(job.sde, job.x0, progress=False, **job.integrate)
    assert np.array_equal(p2["1"][:, 300:], ref.x)
    assert not np.array_equal(p2["0"][:, 300:], ref.x)
    # results.csv: swept values, n_paths, final mean and variance over all paths of the point
    rows = list(csv.DictReader(open(tmp_path / "cut" / "results.csv")))
    assert [r["sde.sigma"] for r in rows] == ["0.5", "2.0"] and {r["status"] for r in rows} == {"complete"}
    for r, k in zip(rows, ("0", "1")):
        last = p2[k][-1, :, 0]
        assert int(r["n_paths"]) == 600
        assert float(r["mean"]) == pytest.approx(last.mean(), rel=1e-12, abs=1e-15)
        assert float(r["var"]) == pytest.approx(last.var(ddof=1), rel=1e-12)
        assert r["stationary_passed"] in ("True", "False") and 0 <= float(r["ks_pvalue"]) <= 1
    assert (tmp_path / "cut" / "report.md").read_text().startswith("# Sweep")
    assert (tmp_path / "cut" / "figures" / "metrics_vs_sde.sigma.png").stat().st_size > 1000
    # move the folder, read from elsewhere with plain h5py: relative sources
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    shutil.move(str(tmp_path / "cut"), str(moved))
    monkeypatch.chdir(tmp_path / "elsewhere")
    with h5py.File(moved / "sweep.h5", "r") as f:
        g = f["points/1"]
        assert json.loads(g.attrs["params"]) == {"sde.sigma": 2.0}
        assert g["position"].is_virtual
        assert all(not os.path.isabs(s.file_name) for s in g["position"].virtual_sources())
        x = g["position"][...]
    assert np.array_equal(x, p1["1"]) and np.isfinite(x).all()


# ------------------------------------------------------------------------------------ faults
def test_killed_worker_retried_and_identical(tmp_path, cluster):
    cfg = write_cfg(tmp_path, n_paths=4000, t1=300.0, save_every=3000, flush=0.2)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "sde_toolkit.cli", "sweep", str(cfg), "--param",
                             "sde.sigma=0.5,1.0,2.0", "--replicas", "2", "--workers", "2", "--no-progress",
                             "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
    killed = None
    deadline = time.time() + 120
    try:
        while killed is None and time.time() < deadline and proc.poll() is None:
            locks = sorted((out / "shards").glob("*.partial.lock")) if (out / "shards").is_dir() else []
            for lock in locks:
                try:
                    pid = int(lock.read_text().split()[0])
                    committed = (lock.parent / lock.name[:-len(".lock")]).stat().st_size > 0
                except (OSError, ValueError, IndexError):
                    continue
                if committed and pid != proc.pid:
                    time.sleep(0.3)  # let it commit a frame or two
                    os.kill(pid, signal.SIGKILL)
                    killed = (lock.name, pid)
                    break
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, "no shard was seen running"
    assert proc.returncode == 0, stderr
    assert "1 resumed" in stdout or "resumed" in stdout
    names = sorted(p.name for p in (out / "shards").iterdir())
    assert names == sorted(f"p{i}_r{r}_b0.h5" for i in range(3) for r in range(2)), names  # no torn/duplicate
    ref = st.sweep(cfg, {"sde.sigma": [0.5, 1.0, 2.0]}, replicas=2, scheduler=cluster, out=tmp_path / "ref",
                   progress=False)
    assert ref.ok
    a, b = data_of_shards(out), data_of_shards(tmp_path / "ref")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_diverging_point_fails_others_complete_exit_3(tmp_path, cluster):
    cfg = write_cfg(tmp_path, t1=60.0, save_every=10, extra="max_abs = 1e3")
    out = tmp_path / "div"
    # theta dt = 3 makes Euler-Maruyama unstable (|1 - theta dt| = 2 per step): point 1 diverges
    args = ("sweep", cfg, "--param", "integrate.dt=0.01,3.0,0.02", "--scheduler", cluster, "--replicas", "2",
            "-o", out)
    r = cli_run(*args)
    assert r.returncode == 3, r.stderr
    assert "point 1" in r.stderr and "diverged" in r.stderr
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [row["status"] for row in rows] == ["complete", "failed", "complete"]
    assert "diverged" in rows[1]["error"] and rows[0]["error"] == ""
    assert rows[1]["mean"] == "" and float(rows[2]["var"]) > 0
    with h5py.File(out / "sweep.h5", "r") as f:
        assert "position" not in f["points/1"] and f["points/1"].attrs["status"] == "failed"
        assert f["points/2/position"].shape == (301, 400, 1)
        assert f["points/0/position"].shape == (601, 400, 1)
    before = {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    r2 = cli_run(*args)
    assert r2.returncode == 3 and "4 skipped" in r2.stdout, r2.stdout
    assert {p.name: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == before


# ------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("param, names", [
    ("sde.nope=1,2", "sde.nope"),
    ("sde.sigma=-1.0,1.0", "sigma"),
    ("sde.sigma=abc", "sigma"),
    ("integrate.dt=0.3", "dt"),
    ("integrate.seed=1,2", "integrate.seed"),
    ("solver.dt=0.1", "solver.dt"),
    ("kT=1", "kT"),
    ("sde.theta=__import__('os').system('true')", "theta"),
])
def test_bad_params_refused_before_any_task(tmp_path, monkeypatch, capsys, param, names):
    import dask.distributed

    def boom(*a, **k):
        raise AssertionError("a cluster was started for a sweep that should have been refused")

    monkeypatch.setattr(dask.distributed, "LocalCluster", boom)
    monkeypatch.setattr(dask.distributed, "Client", boom)
    cfg = write_cfg(tmp_path)
    code = cli.main(["sweep", str(cfg), "--param", param, "--workers", "2", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert names in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_folder_of_another_sweep_refused_unless_overwrite(tmp_path, cluster):
    cfg = write_cfg(tmp_path)
    out = tmp_path / "s"
    assert st.sweep(cfg, {"sde.sigma": [1.0]}, scheduler=cluster, out=out, progress=False).ok
    other = write_cfg(tmp_path, name="other.toml", t1=2.0)
    with pytest.raises(FileExistsError, match=r"another sweep.*integrate"):
        st.sweep(other, {"sde.sigma": [1.0]}, scheduler=cluster, out=out, progress=False)
    with pytest.raises(FileExistsError, match="replicas"):
        st.sweep(cfg, {"sde.sigma": [1.0]}, replicas=2, scheduler=cluster, out=out, progress=False)
    r = cli_run("sweep", other, "--param", "sde.sigma=1.0", "--scheduler", cluster, "-o", out)
    assert r.returncode == 2 and "another sweep" in r.stderr
    res = st.sweep(other, {"sde.sigma": [1.0]}, scheduler=cluster, out=out, overwrite=True, progress=False)
    assert res.ok and res.n_run == 1
    assert positions(out)["0"].shape[0] == 21


def test_missing_dask_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    with pytest.raises(ImportError, match=r'pip install "sde_toolkit\[dask\]"'):
        st.sweep(write_cfg(tmp_path), {"sde.sigma": [1.0]}, workers=1, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_values_parsed_without_eval_and_points():
    assert parse_values("0.5,1,true,abc,1e-3") == [0.5, 1, True, "abc", 1e-3]
    assert parse_param("sde.kT=0.5, 2") == ("sde.kT", [0.5, 2])
    assert parse_values("__import__('os')") == ["__import__('os')"]
    with pytest.raises(ConfigError):
        parse_param("sde.kT")
    with pytest.raises(ValueError):
        parse_values("1,,2")
    assert sweep_points({"a.x": [1, 2], "b.y": [3, 4]}) == [{"a.x": 1, "b.y": 3}, {"a.x": 1, "b.y": 4},
                                                           {"a.x": 2, "b.y": 3}, {"a.x": 2, "b.y": 4}]
    assert sweep_points({"a.x": [1, 2], "b.y": [3, 4]}, grid=False) == [{"a.x": 1, "b.y": 3}, {"a.x": 2, "b.y": 4}]
    with pytest.raises(ValueError, match="one length"):
        sweep_points({"a.x": [1, 2], "b.y": [3]}, grid=False)
