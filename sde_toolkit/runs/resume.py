"""Continue an interrupted or killed run from its file, bit-identical to an unbroken run."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from ..config import build_sde
from ..integrate.plan import RunPlan
from ..integrate.simulate import file_result, run_plan
from ..integrate.trajectory import Trajectory
from ..io import H5MDWriter, IncompleteRunWarning, ResumeError, final_path, open_run, partial_path
from ..sde import registry

log = logging.getLogger("sde_toolkit.runs")

__all__ = ["resume", "ResumeError"]


def resume(path, sde=None, progress: bool | None = None, *, threads: int | None = None,
           flush_interval: float | None = None) -> Trajectory:
    """Continue an interrupted or killed run; the result equals an unbroken run bit for bit.

    The run restarts from its last durable checkpoint (the full float64 state at an integer step) with the
    same plan (``RunPlan.from_dict`` of the stored plan) and the same noise scheme: scheme v2's normals are a
    function of ``(seed, step, path)``, v1's streams are regenerated from ``(seed, path chunk, step block)``.

    Args:
        path: the run's output path (``RUN.h5``) or its ``RUN.h5.partial`` file.
        sde: the SDE, required when the run was started from Python without a config.
        progress: progress bar (``None``: only for runs longer than ~2 s).
        threads: worker threads (results do not depend on it).
        flush_interval: override the stored flush interval (seconds).

    Returns:
        The finished :class:`~sde_toolkit.integrate.Trajectory` (lazy ``x``).

    Raises:
        ResumeError: complete or diverged runs, runs driven by user-supplied increments, runs from Python
            without ``sde=``, or a file written with a different random-stream scheme.
        DivergenceError: the continued run diverged (status ``"diverged"``, frames kept).
    """
    out = final_path(Path(path))
    part = partial_path(out)
    src = part if part.exists() else out
    if not src.exists():
        raise FileNotFoundError(f"no run to resume at {out} or {part}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteRunWarning)  # an incomplete run is what resume is for
        run = open_run(src, allow_partial=True)
    if run.status == "complete":
        raise ResumeError(f"{src} is already complete ({run.n_committed} frames); nothing to resume")
    if run.status == "diverged":
        raise ResumeError(f"{src} diverged at its end; resuming would diverge again. Rerun with a smaller dt")
    if run.meta.get("increments") or run.plan.get("increments"):
        raise ResumeError(f"{src} was driven by user-supplied increments, which the file does not hold; "
                          "it cannot be resumed (rerun it with the same increments)")
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
    if sde.dim != int(stored["dim"]):
        raise ResumeError(f"the SDE is {sde.dim}-dimensional but {src} holds dim={stored['dim']}")
    try:
        plan = RunPlan.from_dict(stored)  # refuses a noise scheme this version does not know
    except ValueError as exc:
        raise ResumeError(f"{src}: {exc}; the continuation would not match the original run") from None
    if repr(sde) != run.meta.get("sde"):
        log.warning("resuming %s with SDE %r, but the file was written by %s", src, sde, run.meta.get("sde"))
    if len(plan.save_steps) != run.n_expected:
        raise ResumeError(f"{src}: stored plan gives {len(plan.save_steps)} frames, file expects {run.n_expected}")
    step, state = run.checkpoint()
    x = np.ascontiguousarray(state, dtype=np.float64)
    if src == out:
        if part.exists():
            raise FileExistsError(f"both {out} and {part} exist; remove the stale one first")
        os.replace(out, part)
    sink = H5MDWriter.reopen(part, out, plan.save_steps, flush_interval=flush_interval)
    log.debug("resuming %s at step %d of %d (%d frames on disk)", part, step, plan.n_steps, sink.n_written)
    run_plan(sde, plan, x, sink, start_step=step, progress=progress, threads=threads, out_label=str(out),
             write_initial=False)
    return file_result(sink)


def _stored_sde_config(run) -> dict | None:
    text = run.meta.get("sde_config")
    if not text or text == "null":
        return None
    import json

    return json.loads(text)
