"""Parameter sweeps and sharded ensembles on Dask: identical for any worker count, crash-resumable.

``sweep(config, params={"sde.kT": [0.5, 1.0, 2.0]}, replicas=2, out=DIR)`` runs every parameter point (the grid
of the values, or their zip) ``replicas`` times, each run cut into path blocks of ``shard_paths`` paths. One
Dask task is one shard ``(point i, replica r, block b)``, simulated into ``DIR/shards/p{i}_r{r}_b{b}.h5`` through
the run machinery (written as ``.partial``, published atomically, config, seed and digest in its provenance).

Seeds. The sweep seed is ``[integrate] seed`` of the config. Replica ``r`` of point ``i`` runs with the seed
``Seed(sweep seed).child(SWEEP_STREAM, i, r)`` (its ``[integrate] seed`` in the shard's config), so replicas are
independent and nothing depends on workers or completion order. A block is paths ``[a, b)`` of that one run:
the initial states are the rows ``[a, b)`` of the run's ``x0`` and the counter-based noise (scheme v2: a normal
is a function of seed, step and path index) is addressed with ``path_offset = a``, so the data do not depend on
``shard_paths`` either.

Files. ``DIR/sweep.json`` (the spec: base config, values, replicas, blocks, seed), ``DIR/sweep.h5`` (one group
per point with a virtual dataset over the shards, :mod:`sde_toolkit.io.sweep_index`), ``DIR/results.csv``,
``DIR/report.md`` and ``DIR/figures/``. A rerun skips every published shard whose digests and checksums verify
and whose stored config is the expected one (the file is not touched), resumes ``.partial`` shards
(``runs.resume``) and refuses a folder written for another spec unless ``overwrite``.

Dask (``dask[distributed]``, the ``dask`` extra) is imported only here, when a sweep runs.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import logging
import math
import os
import shutil
import sys
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _checks
from .._random import Seed, resolve_seed
from ..config import SIMULATION_TABLES, Config, ConfigError, load_config

log = logging.getLogger("sde_toolkit.runs")

__all__ = ["sweep", "SweepResult", "sweep_points", "parse_param", "parse_values", "SWEEP_STREAM"]

SWEEP_STREAM = 0x5357_EE9  # first spawn-key word of the replicas' seeds (apart from other uses of the root)
SPEC_VERSION = 1
SWEEP_FILE = "sweep.json"
#: keys that a sweep may not vary: the seeds are derived per replica, the output is the sweep's folder
FORBIDDEN_KEYS = ("integrate.seed", "initial.seed", "output.path", "output.overwrite", "output.positions",
                  "integrate.threads")
#: final-frame samples per point handed to validate_stationary at most (the first paths of the point)
MAX_VALIDATE_SAMPLES = 200_000
DASK_HINT = 'the sweep needs Dask\'s distributed scheduler: pip install "sde_toolkit[dask]"'


# ------------------------------------------------------------------------------------------------ parameters
def parse_values(text: str) -> list:
    """``"0.5,1.0,2"`` -> ``[0.5, 1.0, 2]``: integers, floats, ``true``/``false`` or plain strings, never
    evaluated as code (a value cannot contain a comma)."""
    items = [t.strip() for t in str(text).split(",")]
    if not items or any(t == "" for t in items):
        raise ValueError(f"empty value in {text!r}; give comma-separated values such as 0.5,1.0,2.0")
    return [_parse_scalar(t) for t in items]


def _parse_scalar(t: str):
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(t, 10)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        return t


def parse_param(text: str) -> tuple[str, list]:
    """``"sde.kT=0.5,1.0"`` -> ``("sde.kT", [0.5, 1.0])`` (the CLI's ``--param``)."""
    key, sep, vals = str(text).partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--param {text!r}: expected KEY=V1,V2,... such as sde.kT=0.5,1.0,2.0")
    try:
        return key, parse_values(vals)
    except ValueError as exc:
        raise ConfigError(f"--param {key}: {exc}") from None


def _set_dotted(tables: dict, key: str, value) -> None:
    parts = key.split(".")
    node = tables.setdefault(parts[0], {})
    for p in parts[1:-1]:
        nxt = node.get(p)
        if isinstance(nxt, str) and p == "potential":
            raise ConfigError(f"{key}: the potential is an expression string here; sweep its parameters by "
                              "giving a potential table {name = ..., ...} in the config", parts[0], key)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{key}: {'.'.join(parts[1:parts.index(p) + 1])} is not a table", parts[0], key)
        node = nxt
    node[parts[-1]] = value


def _check_keys(params: Mapping[str, Sequence]) -> dict[str, list]:
    if not isinstance(params, Mapping) or not params:
        raise ValueError("params must be a non-empty dict of dotted config keys -> lists of values, "
                         "e.g. {'sde.kT': [0.5, 1.0]}")
    out = {}
    for key, vals in params.items():
        if not isinstance(key, str) or key.count(".") < 1 or any(not p for p in key.split(".")):
            raise ConfigError(f"parameter key {key!r} must be a dotted config path TABLE.KEY such as sde.kT")
        table = key.split(".")[0]
        if table not in SIMULATION_TABLES:
            raise ConfigError(f"unknown table in parameter key {key!r}; a sweep varies keys of "
                              f"{', '.join(f'[{t}]' for t in SIMULATION_TABLES)}", table, key)
        if key in FORBIDDEN_KEYS:
            raise ConfigError(f"{key} cannot be swept (seeds are derived per replica from [integrate] seed; "
                              "the output is the sweep folder)", table, key)
        if isinstance(vals, (str, bytes)) or not isinstance(vals, Sequence) or len(vals) == 0:
            raise ConfigError(f"values of {key} must be a non-empty list, got {vals!r}", table, key)
        if len(set(json.dumps(v, sort_keys=True) for v in vals)) != len(vals):
            raise ConfigError(f"values of {key} repeat: {list(vals)}", table, key)
        out[key] = list(vals)
    return out


def sweep_points(params: Mapping[str, Sequence], grid: bool = True) -> list[dict]:
    """The parameter points: the grid (first key varies slowest) or the zip of the value lists."""
    keys = list(params)
    if grid:
        return [dict(zip(keys, combo)) for combo in itertools.product(*(params[k] for k in keys))]
    lengths = {k: len(params[k]) for k in keys}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"zip needs value lists of one length, got {lengths}")
    return [dict(zip(keys, combo)) for combo in zip(*(params[k] for k in keys))]


def _point_config(base: dict, point: Mapping[str, Any]) -> dict:
    tables = json.loads(json.dumps(base))
    for key, value in point.items():
        _set_dotted(tables, key, value)
    return tables


def _validated(tables: dict, where: str) -> dict:
    """Validate a point's config with the config schema and the run checks (a tiny ensemble, no work)."""
    from .jobs import prepare_simulation

    try:
        cfg = load_config(tables, allowed_tables=SIMULATION_TABLES)
        probe = cfg.to_dict()
        if probe["initial"].get("n_paths") is not None:
            probe["initial"]["n_paths"] = min(2, int(probe["initial"]["n_paths"]))
        probe["integrate"]["seed"] = probe["integrate"].get("seed") or 0
        prepare_simulation(Config(probe, cfg.source), check_output=False)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}", exc.table, exc.key) from None
    return cfg.to_dict()


# ------------------------------------------------------------------------------------------------ result
@dataclass
class SweepResult:
    """What :func:`sweep` did.

    Attributes:
        out: the sweep folder; ``index`` (``sweep.h5``), ``results`` (``results.csv``), ``report`` (``report.md``).
        points: one dict per point (``index``, ``params``, ``status``, ``error``, ``n_paths``, metrics).
        failed: indices of the failed points.
        n_shards, n_run, n_resumed, n_skipped, n_failed_shards: shard counts.
        elapsed: seconds; ``dashboard``: the Dask dashboard address (``None`` when there is none).
        shard_times: seconds per shard simulated or resumed by this call (measured inside the task: setup,
            integration, file writing and the read-back of the final frame).
        dispatch: seconds from the first submission to the last result (no cluster start, no outputs).
        workers: worker processes of the embedded cluster (``None`` with ``scheduler=``).
    """

    out: Path
    index: Path
    results: Path
    report: Path
    points: list[dict]
    failed: list[int]
    n_shards: int
    n_run: int
    n_resumed: int
    n_skipped: int
    n_failed_shards: int
    elapsed: float
    dashboard: str | None = None
    shard_times: list[float] = field(default_factory=list)
    dispatch: float = math.nan
    workers: int | None = None

    @property
    def ok(self) -> bool:
        return not self.failed


# ------------------------------------------------------------------------------------------------ shards
@dataclass(frozen=True)
class _Shard:
    point: int
    replica: int
    block: int
    start: int
    n: int
    file: str  # relative to the sweep folder
    config: dict  # the replica's full config (seeds filled in); the shard is its paths [start, start + n)


def _replica_seed(root: Seed, i: int, r: int) -> int:
    """The ``[integrate] seed`` of replica ``r`` of point ``i`` (a 63-bit int from the child seed)."""
    words = root.child(SWEEP_STREAM, i, r).sequence().generate_state(2, np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


def _shard_label(s: _Shard) -> str:
    return f"p{s.point}_r{s.replica}_b{s.block}"


def run_shard(folder: str, shard: _Shard, threads: int = 1) -> dict:
    """Simulate one shard into its file, or resume its ``.partial``, or verify and skip its published file.

    Returns a dict (``status`` "run" | "resumed" | "skipped" | "failed", ``error``, ``digest``, ``seconds``,
    the final frame's ``mean`` and ``m2`` per coordinate, ``n``). A diverging shard returns "failed" (it is
    deterministic: retrying cannot help); other errors raise, so that Dask's ``retries`` rerun the task.
    """
    from ..integrate.simulate import _check_contract, _validate_x0, make_plan, open_file_sink, run_plan
    from ..integrate.trajectory import DivergenceError
    from ..io import IncompleteRunWarning, final_path, open_run, partial_path
    from ..io._fs import WriterLock
    from ..io.integrity import canonical_json
    from .jobs import prepare_simulation
    from .resume import resume

    t_start = time.perf_counter()
    out = Path(folder) / shard.file
    part = partial_path(out)
    want = canonical_json(shard.config)

    def stored_ok(run) -> str | None:
        if canonical_json(run.config) != want:
            return f"{out} holds another config than this sweep's shard {_shard_label(shard)}"
        pl = run.plan
        if int(pl.get("path_offset", 0)) != shard.start or int(pl["n_paths"]) != shard.n:
            return f"{out} holds paths {pl.get('path_offset', 0)}+{pl['n_paths']}, not {shard.start}+{shard.n}"
        return None

    action = "run"
    if out.exists() and not part.exists():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IncompleteRunWarning)
            run = open_run(out, allow_partial=True)  # verifies the provenance and status digests
        problem = stored_ok(run)
        if problem:
            raise ValueError(problem + "; rerun with overwrite=True (--overwrite) to start the sweep afresh")
        if run.status == "complete":
            run.verify()  # every committed chunk's checksum
            return _summary(run, "skipped", t_start)
        if run.status == "diverged":
            return dict(_summary(run, "failed", t_start, final=False),
                        error=f"diverged ({run.meta.get('divergence') or 'status diverged in ' + out.name})")
        action = "resumed"  # "running" or "interrupted" under the final name: resume continues it
    elif part.exists():
        action = "resumed"
    if action == "resumed":
        try:
            resume(out, progress=False, threads=threads)
        except DivergenceError as exc:
            return _failed_div(out, exc, t_start)
        except FileExistsError:
            raise  # another writer holds the lock (a retried task whose first try still runs): retry later
        except Exception as exc:  # noqa: BLE001 - a .partial that cannot be resumed is rewritten from x0
            if not part.exists():
                raise
            log.warning("shard %s: cannot resume %s (%s); starting it again", _shard_label(shard), part, exc)
            lock = WriterLock(part).acquire()  # nobody else writes it: it is ours to replace
            try:
                part.unlink()
            finally:
                lock.release()
            action = "run"
    if action == "run":
        job = prepare_simulation(Config(json.loads(json.dumps(shard.config))), check_output=False)
        x = _validate_x0(job.sde, job.x0)[shard.start:shard.start + shard.n]
        x = np.ascontiguousarray(x)
        o = job.integrate
        plan = make_plan(job.sde, x, t0=o["t0"], t1=o["t1"], dt=o["dt"], save_every=o["save_every"],
                         method=o["method"], seed=o["seed"], driver=o["driver"],
                         max_abs=o.get("max_abs", math.inf), path_offset=shard.start,
                         precision=o.get("precision", "float64"))
        _check_contract(job.sde, x, plan.t0, plan.method)
        x = _checks.in_range_of(x, plan.state_dtype, "x0")
        opts = {k: v for k, v in job.output.items() if k != "overwrite"}
        sink = open_file_sink(out, plan, job.sde, x, config=shard.config, overwrite=False, **opts)
        try:
            run_plan(job.sde, plan, x, sink, progress=False, threads=threads, out_label=str(out))
        except DivergenceError as exc:
            return _failed_div(out, exc, t_start)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteRunWarning)
        run = open_run(final_path(out))
    return _summary(run, action if action != "run" else "run", t_start)


def _failed_div(out: Path, exc: Exception, t_start: float) -> dict:
    return {"status": "failed", "error": f"diverged: {exc}", "digest": None, "n": 0, "mean": None, "m2": None,
            "seconds": time.perf_counter() - t_start, "file": str(out)}


def _summary(run, status: str, t_start: float, final: bool = True) -> dict:
    d = {"status": status, "error": "", "digest": run.meta.get("digest"), "n": 0, "mean": None, "m2": None,
         "file": str(run.path)}
    if final and run.x is not None and run.n_committed:
        last = np.asarray(run.x[-1], dtype=np.float64)
        d["n"] = int(last.shape[0])
        d["mean"] = last.mean(axis=0).tolist()
        d["m2"] = ((last - last.mean(axis=0)) ** 2).sum(axis=0).tolist()
    d["seconds"] = time.perf_counter() - t_start
    return d


def _combine(parts: Sequence[dict]) -> tuple[int, np.ndarray, np.ndarray]:
    """Chan et al.'s pairwise update of (count, mean, M2), in the shards' fixed (replica, block) order."""
    n, mean, m2 = 0, None, None
    for p in parts:
        nb, mb, qb = p["n"], np.asarray(p["mean"]), np.asarray(p["m2"])
        if mean is None:
            n, mean, m2 = nb, mb, qb
            continue
        delta = mb - mean
        tot = n + nb
        mean = mean + delta * (nb / tot)
        m2 = m2 + qb + delta**2 * (n * nb / tot)
        n = tot
    assert mean is not None and m2 is not None
    return n, mean, m2


# ------------------------------------------------------------------------------------------------ the sweep
def sweep(config, params: Mapping[str, Sequence], replicas: int = 1, workers: int | None = None,
          scheduler: str | None = None, out=None, shard_paths: int | None = None, grid: bool = True,
          overwrite: bool = False, progress: bool | None = None, retries: int = 2) -> SweepResult:
    """Run a parameter sweep of a simulation config on Dask; see the module docstring.

    Args:
        config: a TOML path, a dict of tables, or a loaded :class:`~sde_toolkit.config.Config` with
            ``[sde]``, ``[initial]``, ``[integrate]`` (and optionally ``[output]``: dtype, compression, ...).
        params: dotted config keys -> values, e.g. ``{"sde.kT": [0.5, 1.0], "integrate.dt": [0.01, 0.02]}``;
            validated with the config schema before any task or file (an unknown key or a bad value raises
            :class:`~sde_toolkit.config.ConfigError`, a ``ValueError``, naming it).
        replicas: independent runs per point (seeds from the sweep seed and ``(point, replica)``).
        workers: worker processes of the embedded ``LocalCluster`` (default: the CPU count).
        scheduler: address of a running Dask scheduler (``tcp://host:8786``); nothing is started then.
        out: the sweep folder (created; its parent must exist).
        shard_paths: paths per shard (default: the whole ensemble of a replica in one shard); the data do not
            depend on it.
        grid: the grid of all value combinations (default) or, ``False``, their zip.
        overwrite: start afresh in a folder written for another spec (its shards and results are removed).
        progress: a bar over shards (``None``: only when the sweep takes over ~2 s).
        retries: times a task that raised is resubmitted (a killed worker's task is rerun by the scheduler).

    Returns:
        :class:`SweepResult`; ``failed`` lists the points whose shards failed (e.g. diverged).

    Raises:
        ConfigError: a bad config, key or value (before anything runs).
        FileExistsError: ``out`` holds a sweep of another spec (without ``overwrite``).
        ImportError: ``dask.distributed`` is missing (the message names ``pip install "sde_toolkit[dask]"``).
    """
    start = time.perf_counter()
    spec, shards, points = _plan(config, params, replicas, shard_paths, grid, workers, scheduler, out)
    folder = Path(out)
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:
        raise ImportError(f"{DASK_HINT} ({exc})") from None
    _prepare_folder(folder, spec, overwrite)
    from .._progress import Progress

    threads = 1
    cluster = None
    results: dict[int, dict] = {}
    errors: dict[int, str] = {}
    dashboard = None
    dispatch = math.nan
    n_workers = workers if workers is not None else (os.cpu_count() or 1)
    try:
        with contextlib.ExitStack() as stack:
            if scheduler is None:
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.ERROR)
                stack.callback(cluster.close)
                client = stack.enter_context(Client(cluster))
            else:
                client = stack.enter_context(Client(scheduler))
            dashboard = _dashboard(client)
            if dashboard and progress is not False:
                print(f"sde-toolkit: Dask dashboard at {dashboard}", file=sys.stderr)
            t_submit = time.perf_counter()
            futures = {}
            token = uuid.uuid4().hex[:8]  # keys unique per call (a shared scheduler may remember old ones)
            for k, s in enumerate(shards):
                fut = client.submit(run_shard, str(folder.resolve()), s, threads, key=f"sweep-{spec['id']}-"
                                    f"{_shard_label(s)}-{token}", retries=retries, pure=False)
                futures[fut] = k
            with Progress(len(shards), progress, desc="sweep", unit="shard") as bar:
                bar.postfix(done=0, running=len(shards), failed=0)
                done = failed = 0
                for fut in as_completed(list(futures)):
                    k = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - one shard's failure fails its point, not the sweep
                        res = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "n": 0}
                    results[k] = res
                    if res["status"] == "failed":
                        failed += 1
                        errors.setdefault(shards[k].point, f"{_shard_label(shards[k])}: {res['error']}")
                    else:
                        done += 1
                    bar.update(1)
                    bar.postfix(done=done, running=_running(client), failed=failed)
            dispatch = time.perf_counter() - t_submit
    except KeyboardInterrupt:
        log.warning("sweep interrupted; published shards are kept and a rerun resumes the rest")
        raise
    res = _finish(folder, spec, shards, points, results, errors, start, dashboard)
    res.dispatch = dispatch
    res.workers = n_workers if scheduler is None else None
    return res


def _running(client) -> int:
    """Tasks being processed by a worker now (the scheduler's view; 0 if it cannot say)."""
    try:
        return int(sum(len(v) for v in client.processing().values()))
    except Exception:  # noqa: BLE001 - the count is for the bar only
        return 0


def _dashboard(client) -> str | None:
    try:
        link = client.dashboard_link
    except Exception:  # noqa: BLE001 - no dashboard (bokeh missing, remote scheduler without one)
        return None
    return str(link) if link else None


def _plan(config, params, replicas, shard_paths, grid, workers, scheduler, out):
    """Everything checked and every shard's config built, before any file or task."""
    from .._checks import count

    if out is None:
        raise ValueError("out= (the sweep folder) is required")
    folder = Path(out)
    parent = folder.parent if str(folder.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"the parent folder {parent} of the sweep folder does not exist", "output", "path")
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} exists and is not a folder", "output", "path")
    replicas = count(replicas, "replicas", 1)
    if shard_paths is not None:
        shard_paths = count(shard_paths, "shard_paths", 1)
    if workers is not None and scheduler is not None:
        raise ValueError("give workers= (an embedded LocalCluster) or scheduler= (a running cluster), not both")
    if workers is not None:
        workers = count(workers, "workers", 1)
    if scheduler is not None and (not isinstance(scheduler, str) or not scheduler.strip()):
        raise ValueError(f"scheduler must be an address such as tcp://host:8786, got {scheduler!r}")
    if isinstance(config, Config):
        cfg = config
    else:
        cfg = load_config(config, allowed_tables=SIMULATION_TABLES, required_tables=("sde", "initial", "integrate"))
    base = cfg.to_dict()
    for t in ("sde", "initial", "integrate"):
        if t not in base:
            raise ConfigError(f"missing required table [{t}]")
    if base.get("output", {}).get("positions") is False:
        raise ConfigError("a sweep stores positions (its index is a view of them); remove positions = false",
                          "output", "positions")
    if base["initial"]["distribution"] == "file" and cfg.source is not None:  # shards run from another folder
        p = Path(base["initial"]["path"])
        if not p.is_absolute():
            base["initial"]["path"] = str((cfg.base_dir / p).resolve())
    base.get("output", {}).pop("path", None)
    base.get("output", {}).pop("overwrite", None)
    params = _check_keys(params)
    pts = sweep_points(params, grid=grid)
    seed = base["integrate"].get("seed")
    validated = []
    for i, pt in enumerate(pts):
        shown = ", ".join(f"{k}={v!r}" for k, v in pt.items())
        validated.append(_validated(_point_config(base, pt), f"parameter point {i} ({shown})"))
    spec_core = {"version": SPEC_VERSION, "config": base, "params": params, "grid": bool(grid),
                 "replicas": replicas, "shard_paths": shard_paths}
    if seed is None:  # reuse the seed of a sweep of this spec in the folder, else draw one (recorded)
        seed = _stored_seed(folder, spec_core)
        if seed is None:
            seed = resolve_seed(None).entropy % (2**63)
    spec = dict(spec_core, seed=int(seed))
    import hashlib

    from ..io.integrity import canonical_json

    spec["id"] = hashlib.sha256(canonical_json({k: v for k, v in spec.items()}).encode()).hexdigest()[:12]
    root = resolve_seed(int(seed))
    shards: list[_Shard] = []
    points = []
    for i, (pt, tables) in enumerate(zip(pts, validated)):
        n = tables["initial"].get("n_paths")
        if n is None:  # a file of states without n_paths: count them once (a small read)
            from .jobs import prepare_simulation

            n = int(prepare_simulation(Config(tables), check_output=False).x0.shape[0])
        n = int(n)
        block = n if shard_paths is None else min(shard_paths, n)
        points.append({"index": i, "params": pt, "n_paths": n, "replicas": replicas})
        for r in range(replicas):
            rc = json.loads(json.dumps(tables))
            rc["integrate"]["seed"] = _replica_seed(root, i, r)
            if rc["initial"].get("seed") is None and rc["initial"]["distribution"] in ("uniform", "normal"):
                rc["initial"]["seed"] = _replica_seed(root.child(1), i, r)
            rc["initial"]["n_paths"] = n
            for b, a in enumerate(range(0, n, block)):
                nb = min(block, n - a)
                shards.append(_Shard(i, r, b, a, nb, f"shards/p{i}_r{r}_b{b}.h5", rc))
    return spec, shards, points


def _stored_seed(folder: Path, spec_core: dict) -> int | None:
    f = folder / SWEEP_FILE
    if not f.is_file():
        return None
    try:
        old = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    from ..io.integrity import canonical_json

    core = {k: old.get(k) for k in spec_core}
    return int(old["seed"]) if canonical_json(core) == canonical_json(spec_core) and "seed" in old else None


def _prepare_folder(folder: Path, spec: dict, overwrite: bool) -> None:
    from ..io.integrity import canonical_json

    f = folder / SWEEP_FILE
    if folder.exists() and any(folder.iterdir()):
        old = None
        if f.is_file():
            try:
                old = json.loads(f.read_text())
            except (OSError, ValueError):
                old = None
        if old is not None and canonical_json(old) == canonical_json(spec):
            (folder / "shards").mkdir(exist_ok=True)
            return  # the same sweep: published shards are verified and skipped, .partial ones resumed
        if not overwrite:
            what = "another sweep" if old is not None else "files that are not a sweep of this spec"
            diff = _spec_diff(old, spec) if old is not None else ""
            raise FileExistsError(f"{folder} holds {what}{diff}; choose another folder or pass overwrite=True "
                                  "(--overwrite) to remove its shards and results")
        for name in ("shards", "figures"):
            if (folder / name).is_dir():
                shutil.rmtree(folder / name)
        for name in (SWEEP_FILE, "sweep.h5", "results.csv", "report.md"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
    folder.mkdir(exist_ok=True)
    (folder / "shards").mkdir(exist_ok=True)
    tmp = f.with_name(f.name + ".tmp")
    tmp.write_text(json.dumps(spec, indent=1, sort_keys=True))
    os.replace(tmp, f)


def _spec_diff(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if k != "id" and json.dumps(old.get(k), sort_keys=True)
            != json.dumps(new.get(k), sort_keys=True)]
    if "config" in keys:
        oc, nc = old.get("config") or {}, new["config"]
        sub = [f"config [{t}]" for t in sorted(set(oc) | set(nc)) if json.dumps(oc.get(t), sort_keys=True)
               != json.dumps(nc.get(t), sort_keys=True)]
        keys = [k for k in keys if k != "config"] + sub
    return f" (differs in: {', '.join(keys)})" if keys else ""


# ------------------------------------------------------------------------------------------------ outputs
def _finish(folder, spec, shards, points, results, errors, start, dashboard) -> SweepResult:
    from ..config import build_sde
    from ..io import open_run
    from ..io.sweep_index import write_sweep_index

    by_point: dict[int, list[int]] = {}
    for k, s in enumerate(shards):
        by_point.setdefault(s.point, []).append(k)
    index_points = []
    for p in points:
        i = p["index"]
        ks = by_point[i]
        parts = [results.get(k, {"status": "failed", "error": "not run"}) for k in ks]
        failed = any(r["status"] == "failed" for r in parts)
        p["status"] = "failed" if failed else "complete"
        p["error"] = errors.get(i, "") if failed else ""
        p["digests"] = [r.get("digest") for r in parts]
        entry = {"params": p["params"], "status": p["status"], "error": p["error"], "n_paths": p["n_paths"],
                 "replicas": p["replicas"], "digests": p["digests"],
                 "sources": [(shards[k].file, shards[k].replica, shards[k].start, shards[k].n) for k in ks],
                 "time": None, "step": None, "dim": None, "dtype": None}
        if not failed:
            n, mean, m2 = _combine(parts)
            p["mean"], p["var"] = mean.tolist(), (m2 / max(n - 1, 1)).tolist()
            first = open_run(folder / shards[ks[0]].file)
            entry.update(time=first.t, step=first.steps, dim=first.dim, dtype=first.position_view().dtype)
            p["validate"] = _validate(folder, [shards[k] for k in ks], build_sde(shards[ks[0]].config["sde"]))
        index_points.append(entry)
    spec_json = json.dumps(spec, sort_keys=True)
    index = write_sweep_index(folder / "sweep.h5", spec_json, index_points)
    csv_path = _write_csv(folder, spec, points)
    figs = _figures(folder, spec, points)
    elapsed = time.perf_counter() - start
    counts = {s: sum(1 for r in results.values() if r["status"] == s) for s in ("run", "resumed", "skipped")}
    n_failed = sum(1 for r in results.values() if r["status"] == "failed")
    res = SweepResult(out=folder, index=index, results=csv_path, report=folder / "report.md", points=points,
                      failed=[p["index"] for p in points if p["status"] == "failed"], n_shards=len(shards),
                      n_run=counts["run"], n_resumed=counts["resumed"], n_skipped=counts["skipped"],
                      n_failed_shards=n_failed, elapsed=elapsed, dashboard=dashboard,
                      shard_times=[r["seconds"] for r in results.values() if r["status"] in ("run", "resumed")
                                   and "seconds" in r])
    _write_report(folder, spec, res, figs)
    return res


def _validate(folder: Path, shards: list, sde) -> dict | None:
    """``validate_stationary`` on the point's final frame (the first ``MAX_VALIDATE_SAMPLES`` paths), where the
    SDE has a closed-form stationary law in 1-D or 2-D; ``None`` otherwise."""
    from ..io import open_run
    from ..validate import validate_stationary

    if sde.dim > 2:
        return None
    try:
        sde.stationary()
    except (NotImplementedError, ValueError):  # no closed-form law (the models raise; there is no flag)
        return None
    finals, n = [], 0
    for s in shards:
        if n >= MAX_VALIDATE_SAMPLES:
            break
        run = open_run(folder / s.file)
        finals.append(np.asarray(run.position_view()[-1], dtype=np.float64)[: MAX_VALIDATE_SAMPLES - n])
        n += finals[-1].shape[0]
    x = np.concatenate(finals, axis=0)
    try:
        rep = validate_stationary(sde, x)
    except (TypeError, ValueError) as exc:
        return {"passed": None, "note": str(exc)}
    return {"passed": bool(rep.passed), "ks": rep.ks, "ks_pvalue": rep.ks_pvalue, "w1": rep.w1,
            "w1_threshold": rep.w1_threshold, "tv": rep.tv, "tv_threshold": rep.tv_threshold,
            "n_samples": rep.n_samples}


def _metric_columns(points: list[dict]) -> list[str]:
    dim = next((len(p["mean"]) for p in points if p.get("mean") is not None), 1)
    cols = []
    for name in ("mean", "var"):
        cols += [name] if dim == 1 else [f"{name}_{d}" for d in range(dim)]
    if any(p.get("validate") for p in points):
        cols += ["stationary_passed", "ks", "ks_pvalue", "w1", "w1_threshold", "tv", "tv_threshold"]
    return cols


def _metrics(p: dict, cols: list[str]) -> dict:
    out: dict[str, Any] = {}
    for c in cols:
        base, _, d = c.partition("_")
        if base in ("mean", "var") and (d == "" or d.isdigit()):
            vals = p.get(base)
            out[c] = "" if vals is None else vals[int(d) if d else 0]
        elif c == "stationary_passed":
            v = p.get("validate") or {}
            out[c] = "" if v.get("passed") is None else v["passed"]
        else:
            out[c] = (p.get("validate") or {}).get(c, "")
    return out


def _write_csv(folder: Path, spec: dict, points: list[dict]) -> Path:
    keys = list(spec["params"])
    cols = _metric_columns(points)
    path = folder / "results.csv"
    with open(path.with_name("results.csv.tmp"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["point", *keys, "n_paths", "replicas", *cols, "status", "error"])
        for p in points:
            m = _metrics(p, cols)
            w.writerow([p["index"], *(p["params"][k] for k in keys), p["n_paths"] * p["replicas"], p["replicas"],
                        *(m[c] for c in cols), p["status"], p.get("error", "")])
    os.replace(path.with_name("results.csv.tmp"), path)
    return path


def _figures(folder: Path, spec: dict, points: list[dict]) -> list[Path]:
    from ..plotting import metrics_vs_parameter

    cols = [c for c in _metric_columns(points) if c not in ("stationary_passed", "w1_threshold", "tv_threshold")]
    ok = [p for p in points if p["status"] == "complete"]
    if not ok:
        return []
    figs = []
    keys = list(spec["params"])
    for key in keys:
        others = [k for k in keys if k != key]
        series: dict[str, list] = {}
        for p in ok:
            label = ", ".join(f"{k}={p['params'][k]}" for k in others) or key
            series.setdefault(label, []).append(p)
        metrics = {}
        for c in cols:
            metrics[c] = {label: ([q["params"][key] for q in ps], [_num(_metrics(q, [c])[c]) for q in ps])
                          for label, ps in series.items()}
        safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in key)
        figs.append(metrics_vs_parameter(metrics, folder / "figures" / f"metrics_vs_{safe}.png", xlabel=key,
                                         title=f"sweep over {key} ({len(ok)} points)"))
    return figs


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _write_report(folder: Path, spec: dict, res: SweepResult, figs: list[Path]) -> None:
    keys = list(spec["params"])
    cols = _metric_columns(res.points)
    lines = [f"# Sweep {spec['id']}", "",
             f"{len(res.points)} points x {spec['replicas']} replicas, {res.n_shards} shards "
             f"({res.n_run} run, {res.n_resumed} resumed, {res.n_skipped} skipped, {res.n_failed_shards} failed) "
             f"in {res.elapsed:.1f} s; sweep seed {spec['seed']}; "
             f"{'grid' if spec['grid'] else 'zip'} over {', '.join(keys)}.", ""]
    if res.failed:
        lines += [f"**{len(res.failed)} point(s) failed:** " + ", ".join(str(i) for i in res.failed), ""]
    else:
        lines += ["All points complete.", ""]
    head = ["point", *keys, "n_paths", *cols, "status"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in res.points:
        m = _metrics(p, cols)
        cells = [p["index"], *(p["params"][k] for k in keys), p["n_paths"] * p["replicas"],
                 *(_fmt(m[c]) for c in cols), p["status"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    errs = [p for p in res.points if p["status"] == "failed"]
    if errs:
        lines += ["", "## Errors", ""] + [f"- point {p['index']}: {p['error']}" for p in errs]
    if figs:
        lines += ["", "## Figures", ""] + [f"![{f.stem}](figures/{f.name})" for f in figs]
    lines += ["", "Data: `sweep.h5` (`/points/<i>/position`, a virtual dataset over `shards/`), `results.csv`.", ""]
    (folder / "report.md").write_text("\n".join(lines))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.5g}"
    return str(v)
