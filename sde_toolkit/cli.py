"""Command-line interface: ``sde-toolkit``.

Subcommands::

    sde-toolkit simulate CONFIG.toml -o RUN.h5 [--overwrite] [--progress/--no-progress]
    sde-toolkit resume RUN.h5 [--overwrite] [--force] [--no-verify]
    sde-toolkit inspect FILE.h5 [--json] [--force] [--no-verify] [--frame K] [--group NAME]
    sde-toolkit export FILE.h5 --format npz|csv|netcdf|arviz -o OUT [--overwrite] [--force]
    sde-toolkit run CONFIG.toml [-o OUTDIR]     # when sde_toolkit.runner provides it
    sde-toolkit sweep CONFIG.toml --param sde.kT=0.5,1.0 [--grid | --zip] --replicas R
                [--workers W | --scheduler ADDRESS] [--shard-paths N] [--overwrite] -o DIR

Exit codes: 0 success, 1 runtime failure (including a full disk or a file-size limit: the run stops with its
committed frames kept), 2 usage or config error, 3 diverged, 4 a file failed verification (digest, status or
checksum; ``--force`` continues and says so), 130 interrupted (SIGINT or SIGTERM; the file keeps every committed
frame with status "interrupted"), 141 stdout closed early (``inspect --json | head``: quiet). Tracebacks only
with ``--debug``. ``simulate`` also takes an experiment config: it uses ``[sde]``, ``[initial]``, ``[integrate]``
and ``[output]`` and says which experiment tables it ignores.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import logging
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ._version import __version__

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTEGRITY, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_BROKEN_PIPE = 141


class UsageError(Exception):
    """A user error (bad arguments or files) reported with exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands registered; ``run`` only when the runner module provides it)."""
    p = argparse.ArgumentParser(prog="sde-toolkit", description="SDE ensembles, Fokker–Planck, score models, MCMC.")
    p.add_argument("--version", action="version", version=f"sde-toolkit {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks and debug logs on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("simulate", help="stream a trajectory into an H5MD file")
    s.add_argument("config", type=Path, help="TOML config with [sde], [initial], [integrate], [output] (an experiment "
                   "config works too: its other tables are ignored)")
    s.add_argument("-o", "--output", type=Path, default=None, help="output file (default: [output] path)")
    s.add_argument("--overwrite", action="store_true", default=None, help="replace an existing output file")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: only for runs longer than ~2 s)")
    s.add_argument("--flush-interval", type=float, default=None, metavar="SECONDS",
                   help="seconds between durable commits (default: [output] flush_interval, 5)")
    s.add_argument("--threads", type=int, default=None, help="worker threads (results do not depend on it)")
    s.set_defaults(handler=cmd_simulate)

    r = sub.add_parser("resume", help="continue an interrupted or killed run, bit-identical to an unbroken one")
    r.add_argument("file", type=Path, help="the run's output (RUN.h5) or its RUN.h5.partial")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    r.add_argument("--flush-interval", type=float, default=None, metavar="SECONDS")
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--overwrite", action="store_true",
                   help="replace RUN.h5 when it exists next to the RUN.h5.partial being resumed")
    r.add_argument("--force", action="store_true",
                   help="continue a file that failed verification (recorded in the file: who, when, what differed)")
    r.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip reading every committed chunk to check its checksum")
    r.set_defaults(handler=cmd_resume)

    i = sub.add_parser("inspect", help="summary of a file: groups, shapes, status, config, verification")
    i.add_argument("file", type=Path)
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.add_argument("--force", action="store_true", help="print the summary of a file that fails verification")
    i.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip reading every committed chunk to check its checksum")
    i.add_argument("--frame", type=int, default=None, metavar="K",
                   help="also summarize frame K of /particles/<group>/position (any H5MD file; -1: the last)")
    i.add_argument("--group", default=None, metavar="NAME",
                   help="the particles group for --frame (default: the only one with positions)")
    i.set_defaults(handler=cmd_inspect)

    e = sub.add_parser("export", help="export a trajectory to npz, csv or netcdf, or MCMC chains to arviz")
    e.add_argument("file", type=Path)
    e.add_argument("--format", required=True, choices=("npz", "csv", "netcdf", "arviz"),
                   help="arviz: a chains file as ArviZ InferenceData (NetCDF; open with arviz.from_netcdf)")
    e.add_argument("-o", "--output", type=Path, required=True)
    e.add_argument("--allow-partial", action="store_true", help="export the committed frames of an incomplete run")
    e.add_argument("--overwrite", action="store_true", help="replace an existing output file (never the input)")
    e.add_argument("--force", action="store_true", help="export a file that failed verification")
    e.set_defaults(handler=cmd_export)

    _add_sweep_parser(sub)
    _register_runner(sub)
    return p


def _add_sweep_parser(sub) -> None:
    """``sde-toolkit sweep``: a parameter sweep on Dask (see :func:`sde_toolkit.runs.sweep`)."""
    w = sub.add_parser("sweep", help="parameter sweep / sharded ensemble on Dask (resumable, any worker count)")
    w.add_argument("config", type=Path, help="TOML config with [sde], [initial], [integrate] (and [output])")
    w.add_argument("--param", action="append", required=True, metavar="KEY=V1,V2,...",
                   help="a dotted config key and its values, e.g. sde.kT=0.5,1.0,2.0 (repeatable)")
    mode = w.add_mutually_exclusive_group()
    mode.add_argument("--grid", dest="grid", action="store_true", default=True,
                      help="every combination of the values (default)")
    mode.add_argument("--zip", dest="grid", action="store_false", help="the values zipped (lists of one length)")
    w.add_argument("--replicas", type=int, default=1, help="independent runs per point (default 1)")
    where = w.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="worker processes of the embedded Dask LocalCluster (default: the CPU count)")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="a running Dask scheduler (tcp://host:8786); nothing is started")
    w.add_argument("--shard-paths", type=int, default=None, metavar="N",
                   help="paths per shard (default: one shard per replica); the data do not depend on it")
    w.add_argument("--overwrite", action="store_true", help="start afresh in a folder of another sweep")
    w.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    w.add_argument("-o", "--output", type=Path, required=True, help="the sweep folder")
    w.set_defaults(handler=cmd_sweep)


def cmd_sweep(args) -> int:
    """Exit 0 when every point completed, 3 when any point failed (e.g. diverged; see results.csv)."""
    from .runs.sweep import parse_param, sweep

    params: dict = {}
    for text in args.param:
        key, values = parse_param(text)
        if key in params:
            raise UsageError(f"--param {key} is given twice")
        params[key] = values
    res = sweep(args.config, params, replicas=args.replicas, workers=args.workers, scheduler=args.scheduler,
                out=args.output, shard_paths=args.shard_paths, grid=args.grid, overwrite=args.overwrite,
                progress=args.progress)
    print(f"wrote {res.out}: {len(res.points)} points, {res.n_shards} shards ({res.n_run} run, {res.n_resumed} "
          f"resumed, {res.n_skipped} skipped), {len(res.failed)} failed ({res.elapsed:.1f} s); see {res.results}")
    for i in res.failed:
        _err(f"point {i} {res.points[i]['params']} failed: {res.points[i]['error']}")
    return EXIT_DIVERGED if res.failed else EXIT_OK


def _register_runner(sub) -> None:
    """Register ``run`` from :mod:`sde_toolkit.runner` (``add_parser(subparsers)`` and ``run(args) -> int``).

    A runner that fails to import still gets a ``run`` command, which reports the import error, so the other
    subcommands keep working.
    """
    if importlib.util.find_spec("sde_toolkit.runner") is None:
        return
    try:
        runner = importlib.import_module("sde_toolkit.runner")
        add_parser, run = runner.add_parser, runner.run
    except Exception as exc:  # noqa: BLE001 - keep the CLI usable; report on use
        err = exc
        q = sub.add_parser("run", help="run an experiment (unavailable: the runner failed to import)")
        q.add_argument("rest", nargs=argparse.REMAINDER)

        def broken(args, err=err) -> int:
            raise RuntimeError(f"the experiment runner (sde_toolkit.runner) failed to import: {err}") from err

        q.set_defaults(handler=broken)
        return
    q = add_parser(sub)
    q.set_defaults(handler=run)


@contextlib.contextmanager
def _stop_signals():
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` once (the run then closes its file as "interrupted");
    repeats while shutting down are ignored so the file is closed cleanly."""
    from .integrate.simulate import STOP_REQUESTED

    fired = {"n": 0}
    STOP_REQUESTED.clear()

    def handler(signum, frame):
        fired["n"] += 1
        if fired["n"] == 1:
            # the flag makes the stop certain (a raise can be swallowed inside a weakref callback); the raise
            # makes it immediate when it lands in ordinary code
            STOP_REQUESTED.set()
            raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")
        print("sde-toolkit: already stopping; closing the file", file=sys.stderr)

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not in the main thread
            pass
    try:
        yield
    finally:
        STOP_REQUESTED.clear()
        for sig, h in old.items():
            signal.signal(sig, h)


def _err(msg: str) -> None:
    print(f"sde-toolkit: error: {msg}", file=sys.stderr)


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _require_hdf5(path: Path, prefer_partial: bool = False) -> None:
    """Refuse a file that is not HDF5 before h5py sees it (``not an HDF5 file: PATH``). The signature sits at
    byte 0, 512, 1024, 2048, ... (a user block may precede it). ``RUN.h5`` may stand for ``RUN.h5.partial``;
    with ``prefer_partial`` (``resume``, which continues the ``.partial`` and only publishes onto ``RUN.h5``) the
    ``.partial`` is the file checked whenever it exists."""
    p = Path(path)
    if Path(f"{p}.partial").exists() and (prefer_partial or not p.exists()):
        p = Path(f"{p}.partial")
    if not p.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if p.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not an HDF5 file")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        offset = 0
        while offset + len(HDF5_SIGNATURE) <= size:
            fh.seek(offset)
            if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                return
            offset = 512 if offset == 0 else 2 * offset
    raise UsageError(f"not an HDF5 file: {p}")


def _simulation_config(path: Path):
    """The ``[sde]``, ``[initial]``, ``[integrate]`` and ``[output]`` tables of a simulation or experiment config.

    Every table is validated (an unknown table or key is refused as always); the tables only ``sde-toolkit run``
    uses (``[experiment]``, ``[analysis]``, ``[fokker_planck]``, ...) are then set aside with a note on stderr.
    """
    from .config import SIMULATION_TABLES, Config, load_config

    with contextlib.suppress(ImportError):  # the experiment tables, so that experiment configs validate
        from .runner._schemas import register_tables

        register_tables()
    full = load_config(path)
    missing = [t for t in ("sde", "initial", "integrate") if t not in full]
    if missing:
        kind = full.get("experiment", {}).get("kind")
        what = f"an experiment of kind {kind!r}" if kind else "not a simulation config"
        raise UsageError(f"{path} has no {', '.join(f'[{t}]' for t in missing)} table: {what}; "
                         f"run it with `sde-toolkit run {path}`")
    ignored = [t for t in full.tables if t not in SIMULATION_TABLES]
    if ignored:
        print(f"sde-toolkit: note: simulate uses [sde], [initial], [integrate] and [output]; ignoring "
              f"{', '.join(f'[{t}]' for t in ignored)} (read by `sde-toolkit run`)", file=sys.stderr)
    return Config({k: v for k, v in full.tables.items() if k in SIMULATION_TABLES}, full.source)


def cmd_simulate(args) -> int:
    from .integrate import simulate
    from .runs import prepare_simulation

    cfg = _simulation_config(args.config)
    job = prepare_simulation(cfg, out=args.output, overwrite=args.overwrite)
    if job.out is None:
        raise UsageError("no output file: pass -o RUN.h5 or set [output] path")
    args.output = job.out  # named in the message if the run is interrupted
    if args.flush_interval is not None:
        if not args.flush_interval >= 0:
            raise UsageError(f"--flush-interval must be >= 0, got {args.flush_interval}")
        job.output["flush_interval"] = args.flush_interval
        job.config["output"]["flush_interval"] = args.flush_interval
    kw = dict(job.integrate)
    if args.threads is not None:
        kw["threads"] = args.threads
    start = time.perf_counter()
    traj = simulate(job.sde, job.x0, out=job.out, progress=args.progress, config=job.config, **kw, **job.output)
    el = time.perf_counter() - start
    print(f"wrote {job.out}: {len(traj.t)} frames x {traj.n_paths} paths x {traj.dim} dims, status complete "
          f"({el:.2f} s)")
    return EXIT_OK


def cmd_resume(args) -> int:
    from .runs import resume

    _require_hdf5(args.file, prefer_partial=True)
    start = time.perf_counter()
    traj = resume(args.file, progress=args.progress, threads=args.threads, flush_interval=args.flush_interval,
                  overwrite=args.overwrite, force=args.force, verify=args.verify)
    print(f"resumed {traj.meta.get('file')}: {len(traj.t)} frames, status complete "
          f"({time.perf_counter() - start:.2f} s)")
    return EXIT_OK


def summarize(path: Path, verify: bool = True) -> dict:
    """Groups, datasets (shape, dtype), attributes of the run group, status, config and verification of any
    HDF5 file (:func:`sde_toolkit.io.summarize`, what ``inspect`` prints)."""
    from .io import summarize as summarize_file

    return summarize_file(path, verify=verify)


def cmd_inspect(args) -> int:
    from .io import IntegrityError, integrity_problems

    _require_hdf5(args.file)
    info = summarize(args.file, verify=getattr(args, "verify", True))
    problems = integrity_problems(info)
    if problems and not getattr(args, "force", False):
        raise IntegrityError(info["file"], problems, hint="; `sde-toolkit inspect --force` shows the summary anyway")
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return EXIT_OK
    print(f"file: {info['file']}")
    integ = info.get("integrity")
    if integ is not None or "checksums" in info:
        state = integ["verified"] if integ else "no digest (not a trajectory or chains file)"
        sums = "checked" if "checksums" in info else "not checked (--no-verify)"
        print(f"verified: {state if not problems else 'FAILED (--force)'}  checksums: {sums}")
        for p in problems:
            print(f"  ! {p}")
        for o in (integ or {}).get("overrides", []):
            print(f"  forced: {o.get('action')} by {o.get('user')} at {o.get('time')} ({', '.join(o.get('parts', []))})")
    if "status" in info:
        print(f"status: {info['status']}  committed frames: {info.get('n_committed')} of "
              f"{info.get('n_frames_expected')}  checkpoint step: {info.get('checkpoint_step')}")
    for it in info["items"]:
        depth = it["path"].count("/") - 1
        name = it["path"].rsplit("/", 1)[-1]
        if it["kind"] == "group":
            print(f"{'  ' * depth}{name}/")
        else:
            print(f"{'  ' * depth}{name}  {tuple(it['shape'])} {it['dtype']}")
    for name, pg in (info.get("h5md") or {}).get("particles", {}).items():
        print(f"particles/{name}: {pg['frames']} frames of {pg['n_particles']} particles, "
              f"dimension {pg.get('dimension')}")
    if getattr(args, "frame", None) is not None or getattr(args, "group", None) is not None:
        from .io import read_h5md_positions

        try:
            x, where = read_h5md_positions(info["file"], group=args.group,
                                           frame=-1 if args.frame is None else args.frame)
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(f"inspect --group/--frame: {exc.args[0] if exc.args else exc}") from None
        print(f"frame {where['frame']} of {where['n_frames']} in particles/{where['group']}: step {where['step']}, "
              f"time {where['time']}, shape {tuple(x.shape)}, mean {[round(float(v), 6) for v in x.mean(axis=0)]}, "
              f"min {x.min(axis=0).tolist()}, max {x.max(axis=0).tolist()}")
    params = info.get("parameters")
    if params:
        plan = params.get("plan", {})
        if isinstance(plan, dict):
            print(f"method: {plan.get('method')}  dt: {plan.get('dt')}  t: [{plan.get('t0')}, {plan.get('t1')}]  "
                  f"seed: {plan.get('seed')}  driver: {plan.get('driver')}  package: {params.get('package_version')}")
        print("config:")
        print(json.dumps(params.get("config"), indent=2))
    return EXIT_OK


def cmd_export(args) -> int:
    from .io import export

    _require_hdf5(args.file)
    out = export(args.file, args.format, args.output, allow_partial=args.allow_partial, overwrite=args.overwrite,
                 force=args.force)
    print(f"wrote {out}")
    return EXIT_OK


def _classify(exc: BaseException) -> int:
    from .config import ConfigError

    if isinstance(exc, (ConfigError, UsageError, FileExistsError, FileNotFoundError, IsADirectoryError)):
        return EXIT_USAGE
    io = sys.modules.get("sde_toolkit.io")  # only when a file was touched (no h5py import for other errors)
    if io is not None and isinstance(exc, io.IntegrityError):
        return EXIT_INTEGRITY
    if io is not None and isinstance(exc, (io.IncompleteRunError, io.ResumeError, io.MissingExtraError)):
        return EXIT_USAGE
    return EXIT_FAILURE


def _message(exc: BaseException, args) -> str:
    """The error text for the terminal: Python keyword advice becomes the CLI flag that does the same."""
    msg = str(exc) or type(exc).__name__
    if "allow_partial=True" in msg:
        if getattr(args, "command", None) == "export":
            msg = msg.replace("pass allow_partial=True", "pass --allow-partial").replace(
                "allow_partial=True", "--allow-partial")
        else:
            msg = msg.replace("pass allow_partial=True", "export them with `sde-toolkit export FILE --allow-partial`")
    return msg


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away (``inspect --json | head``): no message, no flush error at exit (Python
    docs, "Note on SIGPIPE": point stdout at devnull). Exit code 141, as for a process ended by SIGPIPE."""
    import os

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 failure, 2 usage/config, 3 diverged, 4 verification failed,
    130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    if args.debug:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
        logging.getLogger("sde_toolkit").setLevel(logging.DEBUG)
    else:
        logging.basicConfig(level=logging.WARNING, format="sde-toolkit: %(levelname)s: %(message)s")
    handler: Callable = args.handler
    if hasattr(signal, "SIGXFSZ"):  # past `ulimit -f` a write fails with EFBIG (a clean stop), not a kill
        with contextlib.suppress(ValueError, OSError):
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    from .integrate.trajectory import DivergenceError

    try:
        with _stop_signals():
            code = int(handler(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        if args.debug:
            traceback.print_exc()
        out = getattr(args, "output", None) or getattr(args, "file", None)
        hint = f"; committed frames are kept in {out} (continue with `sde-toolkit resume {out}`)" if out else ""
        _err(f"interrupted{hint}")
        return EXIT_INTERRUPTED
    except DivergenceError as exc:
        if args.debug:
            traceback.print_exc()
        _err(f"diverged: {_message(exc, args)}")
        return EXIT_DIVERGED
    except Exception as exc:  # noqa: BLE001 - the CLI boundary: message, exit code, traceback only with --debug
        if args.debug:
            traceback.print_exc()
        _err(_message(exc, args))
        return _classify(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
