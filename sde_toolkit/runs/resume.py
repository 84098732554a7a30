"""Continue an interrupted or killed run from its file, bit-identical to an unbroken run."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

from ..config import build_sde
from ..integrate.plan import RunPlan
from ..integrate.simulate import file_result, run_plan
from ..integrate.trajectory import Trajectory
from ..io import H5MDWriter, IncompleteRunWarning, ResumeError, final_path, open_run, partial_path
from ..io._fs import publish
from ..io.integrity import ChecksumError, IntegrityError, canonical_json, override_entry
from ..sde import registry

log = logging.getLogger("sde_toolkit.runs")

__all__ = ["resume", "ResumeError"]


def resume(path, sde=None, progress: bool | None = None, *, threads: int | None = None,
           flush_interval: float | None = None, overwrite: bool = False, force: bool = False,
           verify: bool = True) -> Trajectory:
    """Continue an interrupted or killed run; the result equals an unbroken run bit for bit.

    The run restarts from its last durable checkpoint (the full float64 state at an integer step) with the
    same plan (``RunPlan.from_dict`` of the stored plan) and the same noise scheme: scheme v2's normals are a
    function of ``(seed, step, path)``, v1's streams are regenerated from ``(seed, path chunk, step block)``.
    A run killed before its first durable commit restarts from ``x0`` (checkpoint slot 1).

    Before anything is written the file is verified: its provenance digest (config, plan, seed, noise scheme,
    SDE config), its status digest (status and commit record, checkpoint slot included) and, with ``verify``,
    the checksum of every committed chunk (frames, observables, the checkpoint).

    Args:
        path: the run's output path (``RUN.h5``) or its ``RUN.h5.partial`` file.
        sde: the SDE, required when the run was started from Python without a config.
        progress: progress bar (``None``: only for runs longer than ~2 s).
        threads: worker threads (results do not depend on it).
        flush_interval: override the stored flush interval (seconds).
        overwrite: replace a file that exists at ``RUN.h5`` while ``RUN.h5.partial`` is resumed (otherwise
            refused, and the finished run is never published over a file that appears meanwhile).
        force: continue although the file failed verification; the file records who forced it, when, and what
            differed (attribute ``integrity_log``), and its digests are recomputed over the file as it is.
        verify: read every committed chunk to check its checksum (the cost of reading the file once).

    Returns:
        The finished :class:`~sde_toolkit.integrate.Trajectory` (lazy ``x``).

    Raises:
        ResumeError: complete or diverged runs, runs driven by user-supplied increments, runs from Python
            without ``sde=``, or a file written with a different random-stream scheme.
        IntegrityError: the file failed verification (the message names what differs); ``ChecksumError`` for
            committed data whose checksum fails (it names the dataset and the frames).
        FileExistsError: ``RUN.h5`` exists next to ``RUN.h5.partial`` (without ``overwrite``), or another
            process writes the run.
        DivergenceError: the continued run diverged (status ``"diverged"``, frames kept).
    """
    out = final_path(Path(path))
    part = partial_path(out)
    src = part if part.exists() else out
    if not src.exists():
        raise FileNotFoundError(f"no run to resume at {out} or {part}")
    if src == part and out.exists() and not overwrite:
        raise FileExistsError(f"both {out} and {part} exist: resuming {part} would replace {out} when it ends; "
                              "move one of them away, or pass overwrite=True (--overwrite) to replace it")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteRunWarning)  # an incomplete run is what resume is for
        run = open_run(src, allow_partial=True, force=force)
    report = run.integrity
    if run.status == "complete":
        raise ResumeError(f"{src} is already complete ({run.n_committed} frames); nothing to resume")
    if run.status == "diverged":
        raise ResumeError(f"{src} diverged at its end; resuming would diverge again. Rerun with a smaller dt")
    if run.meta.get("increments") or run.plan.get("increments"):
        raise ResumeError(f"{src} was driven by user-supplied increments, which the file does not hold; "
                          "it cannot be resumed (rerun it with the same increments)")
    if verify:
        try:
            run.verify()
        except ChecksumError as exc:
            if not force:
                raise
            for part_name, problem in zip(exc.parts, exc.problems):
                report.add(part_name, problem)
            log.warning("resuming %s with force=True although committed data fail their checksums: %s", src, exc)
    stored = run.plan
    if sde is None:
        stored_sde = _stored_sde_config(run)
        if isinstance(run.config, dict) and "sde" in run.config:
            sde = build_sde(run.config["sde"])
        elif stored_sde is not None:  # a run started from Python with a registered SDE: its registry config
            sde = registry.from_config(stored_sde)
        else:
            raise ResumeError(
                f"{src} was started from Python with an SDE that has no config form (SDE {run.meta.get('sde')}); "
                "pass the same SDE: st.resume(path, sde=...)"
            )
    else:
        _check_given_sde(src, sde, run, report, force)
    if sde.dim != int(stored["dim"]):
        raise ResumeError(f"the SDE is {sde.dim}-dimensional but {src} holds dim={stored['dim']}")
    try:
        plan = RunPlan.from_dict(stored)  # refuses a noise scheme this version does not know
    except ValueError as exc:
        raise ResumeError(f"{src}: {exc}; the continuation would not match the original run") from None
    if len(plan.save_steps) != run.n_expected:
        raise ResumeError(f"{src}: stored plan gives {len(plan.save_steps)} frames, file expects {run.n_expected}")
    step, state = run.checkpoint()
    x = np.ascontiguousarray(state, dtype=plan.state_dtype)  # a float32 run's checkpoint holds float32 values
    if plan.state_dtype != np.float64 and not np.array_equal(x.astype(np.float64), state):
        raise ResumeError(f"{src}: its checkpoint is not a {plan.precision} state; the file is not from this plan")
    override = override_entry("resume --force", report) if report.problems else None
    if src == out:
        publish(out, part)  # never over a .partial that appeared meanwhile
    sink = H5MDWriter.reopen(part, out, plan.save_steps, flush_interval=flush_interval, overwrite=overwrite,
                             override=override)
    log.debug("resuming %s at step %d of %d (%d frames on disk)", part, step, plan.n_steps, sink.n_written)
    run_plan(sde, plan, x, sink, start_step=step, progress=progress, threads=threads, out_label=str(out),
             write_initial=sink.n_written == 0)
    return file_result(sink)


def _check_given_sde(src, sde, run, report, force: bool) -> None:
    """An SDE passed to ``resume`` must be the one the file records (compared by registry config when both
    have one; by ``repr`` only as a warning, since a function-defined SDE's ``repr`` is not stable)."""
    stored = _stored_sde_config(run)
    given = registry.try_to_config(sde)
    if stored is not None and given is not None:
        if canonical_json(stored) != canonical_json(json.loads(json.dumps(given, default=_plain))):
            problem = (f"the SDE passed to resume ({sde!r}) is not the one {src} was written with "
                       f"({run.meta.get('sde')})")
            if not force:
                raise IntegrityError(src, [problem], ["sde"])
            report.add("sde", problem)
            log.warning("%s; continuing with force=True", problem)
    elif repr(sde) != run.meta.get("sde"):
        log.warning("resuming %s with SDE %r, but the file was written by %s", src, sde, run.meta.get("sde"))


def _plain(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"cannot compare {type(o).__name__} in an SDE config")


def _stored_sde_config(run) -> dict | None:
    text = run.meta.get("sde_config")
    if not text or text == "null":
        return None
    return json.loads(text)
