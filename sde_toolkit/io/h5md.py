"""H5MD 1.1 trajectory files: a crash-safe streaming writer and a lazy reader.

Layout (full reference in ``docs/file-format.md``)::

    /h5md                                   attrs version=[1, 1]; groups author (name), creator (name, version)
    /particles/all/box                      attrs dimension, boundary
    /particles/all/position/{value,step,time}
    /observables/<name>/{value,step,time}   optional on-the-fly statistics (see observables.py)
    /parameters/sde_toolkit                 attrs config, plan, status, seed, dt, method, versions, ...
    /parameters/sde_toolkit/commit          int64 (3,): n_committed, checkpoint_step, checkpoint_slot
    /parameters/sde_toolkit/checkpoint/state  float64 (2, n_paths, dim): two slots of the full state

Crash safety. Every time-series dataset is created up front with its final number of frames (chunked,
resizable along frames, fletcher32 checksums) and the file is flushed before the run starts. A *durable
commit* is two-phase: (1) the frames written since the last commit are already in the datasets; the full
float64 state goes into the checkpoint slot that the commit record does *not* point to; ``flush()``; the
status digest of the new record (see :mod:`.integrity`) is stored; ``flush()``; (2) the commit record
``[n_committed, checkpoint_step, slot]`` is rewritten; ``flush()``. So the counter on disk never runs ahead
of data on disk, the status digest never lags behind the record, and a kill at any moment leaves a file that
opens with plain ``h5py.File(path, "r")`` (default ``libver``: a crashed ``libver="latest"`` file without SWMR
needs ``h5clear``), whose first ``n_committed`` frames are exact and whose checkpoint restarts the run bit for
bit. Durable commits happen at the integrator's commit points whenever ``flush_interval`` seconds of wall time
have passed since the last one, so a kill loses at most one flush interval of work. Before every flush the
writer checks that the file may grow by what HDF5 is about to allocate (file-size limit, free space): a full
disk stops the run with the last durable commit intact instead of a half-written, unreadable file.

Verification. The run group carries a provenance digest (config, plan, seed, noise scheme, SDE config) and a
status digest (status and commit record); :class:`H5MDRun` checks both when it opens a file and refuses a
mismatch (naming what differs) unless ``force=True``. Reads of committed data that fail their checksum raise
:class:`~sde_toolkit.io.integrity.ChecksumError`.

Publishing. The writer holds ``<out>.partial.lock`` while it runs and writes ``<out>.partial``, created with
mode ``"w-"`` (opening with ``"w"`` a file that another process holds wipes it). When the run ends with status
``"complete"``, ``"diverged"`` or ``"interrupted"`` it is renamed to ``<out>`` without replacing a file that
appeared there meanwhile (``renameat2(RENAME_NOREPLACE)``, or ``link`` + ``unlink``); ``overwrite=True``
replaces it. A killed run, or one that fails with any other error, stays at ``<out>.partial`` with status
``"running"``; ``resume`` picks it up there.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import unicodedata
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._random import Seed
from .._version import __version__
from ._fs import (
    SpaceGuard,
    WriterLock,
    describe_failure,
    errno_of,
    fuse,
    fuse_and_close,
    ignore_sigxfsz,
    is_space_error,
    publish,
)
from .integrity import (
    ChecksumError,
    IntegrityReport,
    IntegrityWarning,
    check_provenance,
    overrides_of,
    seal_attrs,
    status_digest,
)
from .observables import OBSERVABLE_NAMES, ObservableAccumulator

log = logging.getLogger("sde_toolkit.io")

PARTIAL_SUFFIX = ".partial"
RUN_GROUP = "/parameters/sde_toolkit"
POSITION = "/particles/all/position"
STATUSES = ("running", "complete", "diverged", "interrupted")
DEFAULT_FLUSH_INTERVAL = 5.0  # seconds of wall time between durable commits
CHUNK_TARGET_BYTES = 1 << 20  # ~1 MiB chunks
CHUNK_MAX_FRAME_BYTES = 4 << 20  # frames larger than this are split along paths
CHUNK_CACHE_BYTES = 8 << 20  # HDF5 raw-data chunk cache per open dataset (bounded memory)
FILE_FORMAT_VERSION = 2  # of the sde_toolkit conventions inside /parameters/sde_toolkit (2: digests, checksums)
CHECKSUM = {"fletcher32": True}  # HDF5's checksum filter on every chunked dataset of committed data
AUTHOR_ENV = "SDE_TOOLKIT_AUTHOR"  # environment setting of the H5MD author name
DEFAULT_AUTHOR = "sde_toolkit user"  # never the login name: a file may travel further than its writer wants
MAX_AUTHOR_LENGTH = 256


def _h5py():
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a hard dependency
        raise ImportError("sde_toolkit.io needs h5py (pip install h5py)") from exc
    return h5py


class IncompleteRunError(RuntimeError):
    """The file holds a run that did not complete (killed, interrupted or diverged).

    Attributes: ``path``, ``status``, ``n_committed`` (frames that are safely on disk), ``n_expected``
    (frames of the complete run). Open it with ``allow_partial=True`` to read the committed frames, or
    continue it with ``sde-toolkit resume``.
    """

    def __init__(self, path, status: str, n_committed: int, n_expected: int):
        self.path, self.status = str(path), status
        self.n_committed, self.n_expected = int(n_committed), int(n_expected)
        hint = ("continue it with `sde-toolkit resume`" if status in ("running", "interrupted")
                else "the run cannot be continued")
        super().__init__(
            f"{self.path} holds an incomplete run: status {status!r}, {self.n_committed} of {self.n_expected} "
            f"frames committed; pass allow_partial=True to read the committed frames, or {hint}"
        )


class IncompleteRunWarning(UserWarning):
    """Reading the committed frames of an incomplete run (``allow_partial=True``)."""


def partial_path(out: os.PathLike | str) -> Path:
    """``<out>.partial``: the name a run is written under until it ends."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def final_path(path: os.PathLike | str) -> Path:
    """The published name of a (possibly ``.partial``) run file."""
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        return path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
    return path


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "lock" in text or "resource temporarily unavailable" in text or "errno = 11" in text


def _probe_partial(part: Path) -> None:
    """Raise ``FileExistsError`` naming the locking cause when another process writes ``part``."""
    h5py = _h5py()
    try:
        with h5py.File(part, "r"):
            pass
    except OSError as exc:
        if _is_lock_error(exc):
            raise FileExistsError(
                f"{part} is being written by another process (HDF5 file lock held: {exc}); "
                "wait for it to finish or choose another output"
            ) from None


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=_json_default)


def _json_default(o: Any):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot store {type(o).__name__} in the run's JSON config")


def _chunk_shape(n_frames: int, n_paths: int, dim: int, itemsize: int, chunk_frames: int | None):
    frame_bytes = n_paths * dim * itemsize
    if frame_bytes > CHUNK_MAX_FRAME_BYTES:
        cp = max(1, CHUNK_MAX_FRAME_BYTES // (dim * itemsize))
        return (chunk_frames or 1, cp, dim)
    cf = chunk_frames or max(1, min(n_frames, CHUNK_TARGET_BYTES // max(frame_bytes, 1)))
    return (min(cf, max(n_frames, 1)) if chunk_frames is None else cf, n_paths, dim)


class H5MDWriter:
    """The sink of ``simulate(..., out=path)``: streams frames into an H5MD file (see the module docstring).

    Create with :func:`open_sink`; resume with :meth:`reopen`. Memory use is bounded by the integrator's frame
    buffer, one copy of the ``(n_paths, dim)`` state and HDF5's chunk cache, whatever the run length. The writer
    knows the run only as data: the plan's header dict, the saved steps and the states it is handed.

    The writer holds ``<out>.partial.lock`` for its whole life. A write that fails (disk full, file-size limit,
    an I/O error) stops the run: the HDF5 file is closed without writing anything more, so the ``.partial`` keeps
    exactly its last durable commit (readable, resumable), and the error says how many frames are kept.
    """

    def __init__(self, file, part: Path, out: Path, save_steps, *, flush_interval: float, positions: bool,
                 dtype: np.dtype, observables: ObservableAccumulator | None, n_frames_done: int = 0,
                 slot: int = 1, lock: WriterLock | None = None, overwrite: bool = False,
                 record: tuple[int, int, int] | None = None, status_on_disk: str = "running"):
        self._f = file
        self.part, self.out = part, out
        self.save_steps = np.asarray(save_steps, dtype=np.int64)
        self.flush_interval = float(flush_interval)
        self.positions = positions
        self.dtype = dtype
        self.obs = observables
        self.overwrite = bool(overwrite)
        self.n_written = n_frames_done  # frames written to the datasets (in order)
        self.n_committed = n_frames_done  # frames covered by the commit record on disk
        self._slot = slot  # checkpoint slot the on-disk commit record points to
        self._record = tuple(int(v) for v in record) if record is not None else (n_frames_done, 0, slot)
        self._disk_status = status_on_disk
        self._pending: tuple[int, int, np.ndarray] | None = None
        self._last_durable = time.monotonic()
        self.status = "running"
        self.closed = False
        self.failed: BaseException | None = None
        self.final_file: Path | None = None
        self._lock = lock
        g = file[RUN_GROUP]
        self._n_expected = int(g.attrs["n_frames_expected"])
        self._provenance = _attr(g.attrs["digest"]) if "digest" in g.attrs else None  # None: an older file
        self._commit = g["commit"]
        self._state = g["checkpoint/state"]
        self._series = _series_datasets(file)
        self._guard = SpaceGuard(file, part)
        for ds in self._series:
            cf = ds.chunks[0] if ds.chunks else 1
            self._guard.known(ds, rows_on_disk=-(-n_frames_done // cf))
        self._guard.known(self._state, extra=(0, 1) if (n_frames_done or self._record[1]) else (1,))
        if positions:
            pos = file[POSITION]
            self._value, self._step, self._time = pos["value"], pos["step"], pos["time"]

    # -- creation ---------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, out, plan: Mapping[str, Any], save_steps, x0, *, sde: str = "", sde_class: str = "",
               sde_config: Mapping[str, Any] | None = None,
               config: dict | None = None, overwrite: bool = False,
               flush_interval: float = DEFAULT_FLUSH_INTERVAL, dtype: str = "float64",
               compression: str | None = None, compression_level: int | None = None,
               chunk_frames: int | None = None, positions: bool = True, observables=(),
               histogram_bins: int = 50, histogram_range=None, boundary=None,
               author: str | None = None) -> H5MDWriter:
        """Create ``<out>.partial`` with the full layout and flush it; see :func:`open_sink`."""
        h5py = _h5py()
        out = Path(out)
        plan = dict(plan)
        save_steps = np.asarray(save_steps, dtype=np.int64)
        x0 = np.asarray(x0, dtype=np.float64)
        if save_steps.ndim != 1 or save_steps.size < 1:
            raise ValueError(f"save_steps must be a non-empty 1-D array of steps, got shape {save_steps.shape}")
        if x0.shape != (int(plan["n_paths"]), int(plan["dim"])):
            raise ValueError(f"x0 has shape {x0.shape}; the plan says (n_paths, dim) = "
                             f"({plan['n_paths']}, {plan['dim']})")
        if out.is_dir():
            raise IsADirectoryError(f"output {out} is a folder; give a file name such as {out / 'run.h5'}")
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise FileNotFoundError(f"output folder {parent} does not exist (output {out})")
        if isinstance(flush_interval, (str, bytes, bool)):
            raise TypeError(f"flush_interval must be a number of seconds, got {flush_interval!r}")
        flush_interval = float(flush_interval)
        if not (math.isfinite(flush_interval) and flush_interval >= 0):
            raise ValueError(f"flush_interval must be a finite number of seconds >= 0, got {flush_interval}")
        dt_ = np.dtype(dtype)
        if dt_ not in (np.dtype(np.float64), np.dtype(np.float32)):
            raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
        if compression not in (None, "none", "gzip", "lzf"):
            raise ValueError(f"compression must be None, 'gzip' or 'lzf', got {compression!r}")
        compression = None if compression == "none" else compression
        if chunk_frames is not None and (int(chunk_frames) != chunk_frames or chunk_frames < 1):
            raise ValueError(f"chunk_frames must be an integer >= 1, got {chunk_frames!r}")
        observables = tuple(observables or ())
        bad = [o for o in observables if o not in OBSERVABLE_NAMES]
        if bad:
            raise ValueError(f"unknown observables {bad}; choose from {OBSERVABLE_NAMES}")
        if not positions and not observables:
            raise ValueError("positions=False and no observables: nothing would be stored")
        author = resolve_author(author)  # a bad name fails here, before any file
        acc = (ObservableAccumulator(observables, int(plan["dim"]), histogram_bins, histogram_range)
               if observables else None)
        if out.exists() and not overwrite:
            raise FileExistsError(f"output {out} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
        part = partial_path(out)
        ignore_sigxfsz()
        # our own lock first: with HDF5's locking off (HDF5_USE_FILE_LOCKING=FALSE) it is what keeps a second
        # writer, even one with overwrite=True, from deleting the .partial of a live run
        lock = WriterLock(part).acquire()
        try:
            if part.exists():
                _probe_partial(part)
                if not overwrite:
                    raise FileExistsError(
                        f"{part} exists: an unfinished run of this output (killed, or still running elsewhere). "
                        f"Continue it with `sde-toolkit resume {out}`, or pass overwrite=True (--overwrite) to "
                        "start over")
                part.unlink()
            f = _create_layout(h5py, part, plan, save_steps, x0, n_paths=int(plan["n_paths"]),
                               dim=int(plan["dim"]), sde=sde, sde_class=sde_class, sde_config=sde_config,
                               config=config, flush_interval=flush_interval, dtype=dt_, compression=compression,
                               compression_level=compression_level, chunk_frames=chunk_frames,
                               positions=positions, acc=acc, boundary=boundary, author=author)
        except BaseException:
            lock.release()
            raise
        w = cls(f, part, out, save_steps, flush_interval=flush_interval, positions=positions, dtype=dt_,
                observables=acc, lock=lock, overwrite=overwrite, record=(0, 0, 1))
        log.debug("created %s (%d frames x %d paths x %d dims, flush every %.3g s)", part, len(save_steps),
                  int(plan["n_paths"]), int(plan["dim"]), flush_interval)
        return w

    @classmethod
    def reopen(cls, part: Path, out: Path, save_steps, *, flush_interval: float | None = None,
               overwrite: bool = False, override: dict | None = None) -> H5MDWriter:
        """Open a ``.partial`` run for appending after its checkpoint (used by ``sde_toolkit.runs.resume``).

        ``save_steps`` are the run's saved steps (rebuilt from the stored plan by the caller). ``override``: the
        record of a ``force=True`` continuation of a file that failed verification (appended to
        ``integrity_log``; the digests are then recomputed over the file as it is). A run killed before its
        first durable commit (commit record ``[0, 0, 1]``) restarts from ``x0`` in slot 1 and writes its
        initial frame again.
        """
        save_steps = np.asarray(save_steps, dtype=np.int64)
        h5py = _h5py()
        ignore_sigxfsz()
        lock = WriterLock(part).acquire()
        try:
            try:
                f = h5py.File(part, "r+", rdcc_nbytes=CHUNK_CACHE_BYTES)
            except OSError as exc:
                if _is_lock_error(exc):
                    raise FileExistsError(f"{part} is open in another process (HDF5 file lock held: {exc})") from None
                raise
        except BaseException:
            lock.release()
            raise
        try:
            g = f[RUN_GROUP]
            c0, c1, c2 = (int(v) for v in g["commit"][...])
            record = (c0, c1, c2)
            n_committed, step, slot = record
            n_save = len(save_steps)
            if n_save != int(g.attrs["n_frames_expected"]):
                raise ValueError(f"{part}: {n_save} saved steps given, the file expects {g.attrs['n_frames_expected']}")
            done = int(np.searchsorted(save_steps, step, side="right"))
            if n_committed == 0 and step == int(save_steps[0]):
                done = 0  # killed before the first durable commit: x0 is in the slot, its frame is written again
            if done > n_committed:
                raise ValueError(f"{part}: checkpoint at step {step} but only {n_committed} frames committed")
            positions = bool(g.attrs["positions"])
            observables = tuple(json.loads(g.attrs["observables"]))
            interval = float(g.attrs["flush_interval"]) if flush_interval is None else float(flush_interval)
            for ds in _series_datasets(f):
                if ds.shape[0] > n_save:
                    raise ValueError(f"{part}: {ds.name} holds {ds.shape[0]} frames, the run has {n_save}")
            acc = None
            if observables:
                try:
                    acc = ObservableAccumulator.from_file(f, observables, done)
                except (OSError, RuntimeError) as exc:
                    raise ChecksumError(part, "/observables/_moments/value", [(0, max(done - 1, 0))], str(exc)) from None
            dt_ = f[POSITION]["value"].dtype if positions else np.dtype(np.float64)
            old_status = str(_attr(g.attrs["status"]))
        except BaseException:
            fuse_and_close(f)
            lock.release()
            raise
        w = cls(f, part, out, save_steps, flush_interval=interval, positions=positions, dtype=dt_,
                observables=acc, n_frames_done=done, slot=slot, lock=lock, overwrite=overwrite, record=record,
                status_on_disk=old_status)
        w.n_committed = n_committed
        try:
            w._guarded(w._reopen_attrs, override)
        except BaseException:
            w._abandon()
            raise
        return w

    def _reopen_attrs(self, override: dict | None) -> None:
        g = self._f[RUN_GROUP]
        if override is not None:
            entries = overrides_of({"integrity_log": _attr(g.attrs.get("integrity_log", "[]"))})
            entries.append(override)
            g.attrs["integrity_log"] = _json(entries)
            if self._provenance is not None:  # re-seal over the file as it is now, so later edits are seen
                attrs = {k: _attr(v) for k, v in g.attrs.items()}
                for k, v in seal_attrs(_run_parts(attrs)).items():
                    g.attrs[k] = v
                self._provenance = _attr(g.attrs["digest"])
                cur = status_digest(self._provenance, self._disk_status, self._record, self._n_expected)
                g.attrs["status_digest"] = json.dumps([cur, cur])  # flushed together with the new digests
        g.attrs["resumed"] = int(g.attrs.get("resumed", 0)) + 1
        g.attrs["resumed_at"] = _now()
        self._set_status("running")

    # -- the sink protocol ------------------------------------------------------------------------------------
    def write(self, steps, times, frames) -> None:
        """Write saved frames (``frames``: float64 ``(k, n_paths, dim)``) at their places in the file."""
        k = len(steps)
        if k == 0:
            return
        self._check_usable()
        i0 = int(np.searchsorted(self.save_steps, steps[0]))
        i1 = i0 + k
        self._guarded(self._write, i0, i1, steps, times, frames)
        self.n_written = i1

    def _write(self, i0, i1, steps, times, frames) -> None:
        # datasets hold the frames written so far (outside readers see no fill values); HDF5 stores the new
        # extent with the frames at the next durable commit
        for ds in self._series:
            if ds.shape[0] < i1:
                ds.resize(i1, axis=0)
        if self.positions:
            self._value[i0:i1] = np.asarray(frames, dtype=self.dtype)
            self._step[i0:i1] = np.asarray(steps, dtype=np.int64)
            self._time[i0:i1] = np.asarray(times, dtype=np.float64)
        if self.obs is not None:
            self.obs.write(self._f, i0, np.asarray(steps), np.asarray(times), frames)
        for ds in self._series:
            self._guard.touch(ds, i0, i1)

    def commit(self, step: int, state) -> None:
        """Record that every frame up to ``step`` is written and ``state`` is the full state at ``step``."""
        self._check_usable()
        self._pending = (self.n_written, int(step), np.array(state, dtype=np.float64, copy=True))
        if time.monotonic() - self._last_durable >= self.flush_interval:
            self._guarded(self._durable_commit)

    def close(self, status: str, info: dict | None = None) -> None:
        """End the run: commit what is written, set ``status``, close, and publish unless ``"running"``.

        Publishing never replaces a file that appeared at ``<out>`` during the run unless the writer was made
        with ``overwrite=True``: the finished run then stays at ``<out>.partial`` and ``FileExistsError`` says so.
        """
        if self.closed:
            return
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if self.failed is not None:  # the file was already closed when the write failed
            self.closed = True
            return
        try:
            self._guarded(self._finish, status, info)
        except BaseException:
            self._abandon()
            raise
        self._release_file()
        self.closed = True
        self.status = status
        if status == "running":
            self.final_file = self.part
            self._release_lock()
            log.warning("run stopped by an error; %d frames kept in %s (continue with `sde-toolkit resume %s`)",
                        self.n_committed, self.part, self.out)
            return
        try:
            publish(self.part, self.out, overwrite=self.overwrite)
        except FileExistsError:
            self.final_file = self.part
            raise FileExistsError(
                f"{self.out} was created by someone else while this run was writing; it is not replaced. The "
                f"finished run (status {status!r}, {self.n_committed} frames) is kept in {self.part}: move it "
                "into place yourself, or run again with overwrite=True (--overwrite)") from None
        finally:
            self._release_lock()
        self.final_file = self.out
        log.debug("published %s with status %s (%d frames)", self.out, status, self.n_committed)

    def _finish(self, status: str, info: dict | None) -> None:
        self._durable_commit(n_frames=self.n_written)
        g = self._f[RUN_GROUP]
        if status != "running":
            n = self.n_committed
            for ds in _series_datasets(self._f):
                if ds.shape[0] != n:
                    ds.resize(n, axis=0)
        g.attrs["end_time"] = _now()
        if info:
            g.attrs["end_info"] = _json(info)
        self._set_status(status)

    # -- internals --------------------------------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self.failed is not None:
            raise RuntimeError(f"{self.part}: the writer stopped after a failed write ({describe_failure(self.failed)})")
        if self.closed:
            raise RuntimeError(f"{self.part} is closed")

    def _guarded(self, fn, *args):
        """Run a step that touches the file; on any failure close the file without writing more (see class)."""
        try:
            return fn(*args)
        except (OSError, RuntimeError) as exc:  # h5py's I/O errors, and the space check's
            self._fail(exc)
            raise self._failure_error(exc) from exc

    def _fail(self, exc: BaseException) -> None:
        if self.failed is None:
            self.failed = exc
            self._abandon()

    def _abandon(self) -> None:
        """Close the HDF5 file without writing anything more to it; keep the .partial; let go of the lock."""
        f, self._f = self._f, None
        fuse(f)  # first: releasing a dataset below flushes its chunk cache
        self._value = self._step = self._time = self._commit = self._state = None
        self._series = []
        self._guard = None  # type: ignore[assignment]  # closed: no further writes
        fuse_and_close(f)
        self.closed = True
        self.final_file = self.part
        self._release_lock()

    def _failure_error(self, exc: BaseException) -> OSError:
        e = errno_of(exc)
        cause = describe_failure(exc)
        what = ("make room on the disk (or raise the file-size limit, ulimit -f)" if is_space_error(exc)
                else "fix the cause")
        kept = (f"{self.n_committed} committed frames are kept in {self.part}" if self.n_committed
                else f"nothing was committed yet; {self.part} keeps x0")
        msg = (f"writing {self.part} failed ({cause}); the run stopped: {kept}. {what[0].upper()}{what[1:]}, then "
               f"continue with `sde-toolkit resume {self.out}`")
        return OSError(e, msg) if e is not None else OSError(msg)

    def _release_file(self) -> None:
        f, self._f = self._f, None
        self._value = self._step = self._time = self._commit = self._state = None
        self._series = []
        if f is not None:
            f.close()

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def _hdf5_flush(self) -> None:
        self._guard.check()  # refuse before HDF5 starts writing: a half-done flush breaks the file
        self._f.flush()
        self._guard.flushed()

    def _seal(self, status: str, record) -> None:
        """Store the status digest of the state about to be written (with the current one), and flush."""
        if self._provenance is None:
            return
        new = status_digest(self._provenance, status, record, self._n_expected)
        cur = status_digest(self._provenance, self._disk_status, self._record, self._n_expected)
        self._f[RUN_GROUP].attrs["status_digest"] = json.dumps([new, cur])
        self._hdf5_flush()  # the digest reaches the file before the record or status it covers

    def _set_status(self, status: str) -> None:
        self._hdf5_flush()  # trimmed datasets and attributes reach the file before the digest of the new status
        self._seal(status, self._record)
        self._f[RUN_GROUP].attrs["status"] = status
        self._hdf5_flush()
        self._disk_status = status

    def _durable_commit(self, n_frames: int | None = None) -> None:
        if self._pending is not None:
            n, step, state = self._pending
            slot = 1 - self._slot
            self._state[slot] = state
            self._guard.touch(self._state, slot, slot + 1)
            self._pending = None
        else:
            n = self.n_committed
            _, step, slot = self._record
        if n_frames is not None:
            n = n_frames
        self._hdf5_flush()  # phase 1: frames and the new checkpoint reach the file first
        record = (int(n), int(step), int(slot))
        self._seal(self._disk_status, record)  # phase 1b: the status digest of the new record
        self._commit[...] = np.array(record, dtype=np.int64)
        self._hdf5_flush()  # phase 2: then the record that points to them
        self._record = record
        self._slot = slot
        self.n_committed = n
        self._last_durable = time.monotonic()
        log.debug("durable commit: n_committed=%d checkpoint_step=%d slot=%d", n, step, slot)


def _create_layout(h5py, part: Path, plan: dict, save_steps, x0, *, n_paths: int, dim: int, sde, sde_class,
                   sde_config, config, flush_interval, dtype, compression, compression_level, chunk_frames,
                   positions, acc, boundary, author):
    """Build the layout under a private name and flush it before it appears as ``<out>.partial`` (a hard link,
    which fails if the name exists): a kill during creation never leaves an unreadable ``.partial``."""
    tmp = part.with_name(f".{part.name}.{os.getpid()}.init")
    try:
        f = h5py.File(tmp, "w-", rdcc_nbytes=CHUNK_CACHE_BYTES)
    except OSError as exc:
        if _is_lock_error(exc):
            raise FileExistsError(f"cannot create {tmp}: HDF5 file lock held by another process ({exc})") from None
        raise
    try:
        n_save = len(save_steps)
        write_h5md_header(f, author, dim, "all", boundary)
        comp: dict[str, Any] = dict(CHECKSUM)
        if compression:
            comp["compression"] = compression
            if compression == "gzip" and compression_level is not None:
                comp["compression_opts"] = int(compression_level)
        if positions:
            pos = f.create_group(POSITION)
            chunks = _chunk_shape(n_save, n_paths, dim, dtype.itemsize, chunk_frames)
            pos.create_dataset("value", shape=(0, n_paths, dim), maxshape=(None, n_paths, dim), dtype=dtype,
                               chunks=chunks, fillvalue=np.nan, **comp)
            _time_series_axes(pos, n_save, chunks[0])
        if acc is not None:
            acc.create(f, n_save, comp)
        _write_run_group(f, plan, n_save, sde, sde_class, sde_config, x0, config, positions, acc.names if acc else (),
                         dtype, flush_interval)
        guard = SpaceGuard(f, tmp)
        guard.touch(f[RUN_GROUP]["checkpoint/state"], 1, 2)
        guard.check()
        f.flush()
        _publish_new(tmp, part)
    except BaseException:
        fuse_and_close(f)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return f


def _publish_new(tmp: Path, part: Path) -> None:
    """Give the flushed new file ``tmp`` the name ``part`` without ever replacing an existing ``part``."""
    try:
        os.link(tmp, part)
    except FileExistsError:
        raise FileExistsError(f"{part} was created by another process meanwhile; not touching it") from None
    except OSError:  # no hard links on this file system
        if part.exists():
            raise FileExistsError(f"{part} was created by another process meanwhile; not touching it") from None
        os.rename(tmp, part)
        return
    tmp.unlink()


def _time_series_axes(group, n_save: int, chunk: int) -> None:
    # empty until frames are written; no unit attribute: model time is dimensionless (docs/file-format.md)
    kw = {"maxshape": (None,), "chunks": (max(1, min(max(chunk, 64), max(n_save, 1))),), **CHECKSUM}
    group.create_dataset("step", shape=(0,), dtype=np.int64, fillvalue=-1, **kw)
    group.create_dataset("time", shape=(0,), dtype=np.float64, fillvalue=np.nan, **kw)


def _series_datasets(f):
    out = []
    if POSITION in f:
        out += [f[POSITION][k] for k in ("value", "step", "time")]
    if "observables" in f:
        for name in f["observables"]:
            grp = f["observables"][name]
            out += [grp[k] for k in ("value", "step", "time")]
    return out


def fixed_ascii(text: str):
    """``text`` as an H5MD string: a fixed-length, null-terminated ASCII string (``numpy.bytes_``).

    Accented letters lose their accents (NFKD); other characters outside ASCII become ``?``.
    """
    plain = unicodedata.normalize("NFKD", str(text))
    out = "".join(c if c.isascii() else ("" if unicodedata.combining(c) else "?") for c in plain)
    return np.bytes_(out.encode("ascii") or b" ")


def fixed_ascii_array(texts) -> np.ndarray:
    """A 1-D array of fixed-length ASCII strings (H5MD's string arrays, e.g. ``box/boundary``)."""
    items = [bytes(fixed_ascii(t)) for t in texts]
    width = max([len(b) for b in items] + [1])
    return np.array(items, dtype=f"S{width}")


def resolve_author(author: str | None = None) -> str:
    """The H5MD author name: ``author`` if given (config ``[output] author``), else the environment setting
    ``SDE_TOOLKIT_AUTHOR``, else ``"sde_toolkit user"`` (never the login name).

    Raises:
        TypeError: ``author`` is not a string.
        ValueError: empty after stripping, longer than 256 characters, or with control characters.
    """
    where = "author"
    if author is None:
        env = os.environ.get(AUTHOR_ENV)
        if env is None or not env.strip():
            return DEFAULT_AUTHOR
        author, where = env, f"the environment setting {AUTHOR_ENV}"
    if not isinstance(author, str):
        raise TypeError(f"{where} must be a string, got {type(author).__name__}")
    name = author.strip()
    if not name:
        raise ValueError(f"{where} is empty; give a name, or leave it unset for {DEFAULT_AUTHOR!r}")
    if len(name) > MAX_AUTHOR_LENGTH:
        raise ValueError(f"{where} has {len(name)} characters; at most {MAX_AUTHOR_LENGTH}")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise ValueError(f"{where} contains control characters: {name!r}")
    return name


def write_h5md_header(f, author: str | None, dim: int, particles: str, boundary=None) -> None:
    """``/h5md`` (version, author, creator) and ``/particles/<particles>/box`` as H5MD 1.1 asks: integer
    version and dimension, fixed-length ASCII strings. No ``/h5md/modules``: nothing here uses a module (no
    unit attributes, since model time and positions are dimensionless; see docs/file-format.md)."""
    h5 = f.create_group("h5md")
    h5.attrs["version"] = np.array([1, 1], dtype=np.int32)
    h5.create_group("author").attrs["name"] = fixed_ascii(resolve_author(author))
    creator = h5.create_group("creator")
    creator.attrs["name"] = fixed_ascii("sde_toolkit")
    creator.attrs["version"] = fixed_ascii(__version__)
    box = f.create_group(f"particles/{particles}/box")
    box.attrs["dimension"] = np.int32(dim)
    bnd = list(boundary) if boundary is not None else ["none"] * dim
    box.attrs["boundary"] = fixed_ascii_array(bnd)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_run_group(f, plan: dict, n_save: int, sde: str, sde_class: str, sde_config, x0, config, positions,
                     observables,
                     dtype, flush_interval) -> None:
    g = f.create_group(RUN_GROUP)
    desc = dict(plan)
    meta = desc.pop("meta", None) or {}
    seed = Seed.from_json(desc["seed"])
    g.attrs["format_version"] = np.int32(FILE_FORMAT_VERSION)
    g.attrs["status"] = "running"
    g.attrs["config"] = _json(config) if config is not None else "null"
    g.attrs["config_source"] = "toml" if config is not None else "python"
    g.attrs["plan"] = _json(desc)
    g.attrs["sde"] = str(sde)
    g.attrs["sde_class"] = str(sde_class)
    g.attrs["sde_config"] = _json(dict(sde_config)) if sde_config is not None else "null"
    g.attrs["seed"] = str(seed.entropy)  # decimal text: exact for 128-bit entropy
    g.attrs["seed_spawn_key"] = json.dumps(list(seed.spawn_key))
    g.attrs["dt"] = float(desc["dt"])
    g.attrs["method"] = str(desc["method"])
    g.attrs["driver"] = str(desc["driver"])
    g.attrs["noise_scheme"] = str(desc["noise_scheme"])
    g.attrs["package_version"] = __version__
    g.attrs["numpy_version"] = str(desc.get("numpy_version", np.__version__))
    g.attrs["numba_version"] = str(desc.get("numba_version", ""))
    g.attrs["h5py_version"] = _h5py().version.version
    g.attrs["hdf5_version"] = _h5py().version.hdf5_version
    g.attrs["creation_time"] = _now()
    g.attrs["positions"] = bool(positions)
    g.attrs["position_dtype"] = str(dtype)
    g.attrs["observables"] = json.dumps(list(observables))
    g.attrs["flush_interval"] = float(flush_interval)
    g.attrs["n_frames_expected"] = np.int64(n_save)
    g.attrs["increments"] = bool(desc.get("increments") or meta.get("increments", False))
    commit = g.create_dataset("commit", data=np.array([0, 0, 1], dtype=np.int64))
    commit.attrs["fields"] = np.array(["n_committed", "checkpoint_step", "checkpoint_slot"],
                                      dtype=_h5py().string_dtype())
    ck = g.create_group("checkpoint")
    n, dim = x0.shape
    cp = n if n * dim * 8 <= CHUNK_MAX_FRAME_BYTES else max(1, CHUNK_MAX_FRAME_BYTES // (dim * 8))
    st = ck.create_dataset("state", shape=(2, n, dim), dtype=np.float64, chunks=(1, cp, dim), **CHECKSUM)
    st[1] = np.asarray(x0, dtype=np.float64)  # slot 1 <- x0, matching the initial record [0, 0, 1]
    # the provenance digest, over the attributes exactly as a reader will find them, then the status digest
    attrs = {k: _attr(v) for k, v in g.attrs.items()}
    for k, v in seal_attrs(_run_parts(attrs)).items():
        g.attrs[k] = v
    d = status_digest(g.attrs["digest"], "running", (0, 0, 1), n_save)
    g.attrs["status_digest"] = json.dumps([d, d])


def _loads(text, default=None):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return default


def _run_parts(attrs: Mapping[str, Any]) -> dict:
    """The provenance parts of a trajectory file, from its run-group attributes (what the digest covers)."""
    return {
        "config": _loads(attrs.get("config")),
        "plan": _loads(attrs.get("plan")),
        "seed": {"entropy": str(attrs.get("seed")), "spawn_key": _loads(attrs.get("seed_spawn_key"), [])},
        "noise_scheme": str(attrs.get("noise_scheme")),
        "sde_config": _loads(attrs.get("sde_config")),
    }


def check_run_file(path, attrs: Mapping[str, Any], record, n_expected: int) -> IntegrityReport:
    """Verify a trajectory file's provenance digest, status digest and the completeness rule (no data read)."""
    rep = IntegrityReport(str(path))
    rep.overrides = overrides_of(attrs)
    status = str(attrs.get("status"))
    record = tuple(int(v) for v in record)
    if status not in STATUSES:
        rep.add("status", f"unknown status {status!r}")
    if status == "complete" and record[0] != int(n_expected):
        rep.add("status", f"the status says complete but the commit record holds {record[0]} of {n_expected} "
                          "frames")
    if "digest" not in attrs:
        if int(attrs.get("format_version", 1)) >= 2:
            rep.add("digest", "its digest attributes were removed (format_version 2 files always carry them)")
        else:
            rep.legacy = True
        return rep
    check_provenance(rep, attrs, _run_parts(attrs))
    pair = _loads(attrs.get("status_digest"))
    want = status_digest(attrs["digest"], status, record, n_expected)
    if not (isinstance(pair, list) and want in pair):
        rep.add("status or commit record",
                f"the status {status!r} and commit record {list(record)} (n_committed, checkpoint_step, "
                "checkpoint_slot) are not what the writer recorded (status_digest): the status, the commit "
                "record or the checkpoint slot was edited")
    return rep


def apply_report(rep: IntegrityReport, force: bool, what: str = "reading") -> None:
    """Warn about a legacy file or recorded overrides; raise on a failed check unless ``force``."""
    if rep.legacy:
        warnings.warn(f"{rep.path} carries no digest (written by an sde_toolkit version before file format 2): "
                      "its provenance and status cannot be verified", IntegrityWarning, stacklevel=3)
    for o in rep.overrides:
        warnings.warn(f"{rep.path} was continued with force=True ({o.get('action')}) by {o.get('user')} at "
                      f"{o.get('time')} although it failed verification: {', '.join(o.get('parts', []))}",
                      IntegrityWarning, stacklevel=3)
    if rep.problems:
        if not force:
            raise rep.error()
        msg = f"{rep.path}: {what} with force=True although it failed verification: " + "; ".join(rep.problems)
        log.warning("%s", msg)
        warnings.warn(msg, IntegrityWarning, stacklevel=3)


def open_sink(out, plan: Mapping[str, Any], save_steps, x0, **options: Any) -> H5MDWriter:
    """Create the H5MD writer that ``simulate(..., out=out)`` streams into.

    Args:
        out: the output path; the run is written to ``<out>.partial`` and renamed to ``out`` when it ends.
        plan: the run plan as a header dict (``RunPlan.to_dict()``: ``n_paths``, ``dim``, ``seed``, ``dt``,
            ``method``, ``driver``, ``noise_scheme``, ...); stored as the ``plan`` attribute (JSON) without its
            ``meta`` entry, whose ``increments`` flag becomes the ``increments`` attribute.
        save_steps: ``(n_frames,)`` integer steps of the saved frames (the datasets' length).
        x0: ``(n_paths, dim)`` initial states (the first checkpoint).
        **options: ``sde`` and ``sde_class`` (text: the SDE's ``repr`` and class path, stored for provenance;
            ``sde_config``: the SDE's registry config, from which ``resume`` can rebuild it;
            the config, if given, is what ``resume`` rebuilds the SDE from), ``config`` (dict stored as JSON; needed by ``resume`` without ``sde=``), ``overwrite``
            (replace an existing ``out``), ``flush_interval`` (seconds between durable commits, default 5),
            ``dtype`` (``"float64"`` or ``"float32"`` positions), ``compression`` (``"gzip"``/``"lzf"``),
            ``compression_level``, ``chunk_frames`` (frames per chunk), ``positions`` (store positions,
            default True), ``observables`` (names from :data:`OBSERVABLE_NAMES`), ``histogram_bins``,
            ``histogram_range`` (``(low, high)`` or one pair per coordinate), ``boundary`` (H5MD box boundary
            per axis), ``author`` (the H5MD author name; default: :func:`resolve_author`).

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False, or ``<out>.partial`` exists (an unfinished
            run, or another writer).
        FileNotFoundError: the output folder does not exist.
        ValueError: a bad option.
    """
    return H5MDWriter.create(out, plan, save_steps, x0, **options)


# ------------------------------------------------------------------------------------------------------------
# reader
# ------------------------------------------------------------------------------------------------------------
class LazyFrames:
    """A read-only, lazily loaded view of a ``(n_frames, n_paths, dim)`` dataset, cut to the committed frames.

    Index it like a NumPy array (``x[10]``, ``x[::5, :100]``, ``x[-1]``): only the selection is read.
    ``np.asarray(x)`` loads everything.
    """

    def __init__(self, run: _LazyFile, name: str, n: int, shape_tail: tuple, dtype):
        self._run, self._name, self._n = run, name, int(n)
        self.shape = (self._n, *shape_tail)
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        if any(k is Ellipsis for k in key):
            i = next(j for j, k in enumerate(key) if k is Ellipsis)
            fill = self.ndim - (len(key) - 1)
            key = key[:i] + (slice(None),) * fill + key[i + 1:]
        first, rest = key[0] if key else slice(None), key[1:]
        n = self._n
        path = self._run.path
        with self._run._opened() as f:
            ds = f[self._name]
            if isinstance(first, (int, np.integer)):
                i = int(first) + n if first < 0 else int(first)
                if not 0 <= i < n:
                    raise IndexError(f"frame {first} out of range for {n} committed frames")
                return checked_read(path, ds, (i,) + rest, i, i + 1, n)
            if isinstance(first, slice):
                start, stop, step = first.indices(n)
                if step > 0:
                    return checked_read(path, ds, (slice(start, max(start, stop), step),) + rest, start,
                                        max(start, stop), n)
                idx = np.arange(start, stop, step)
                return self._fancy(ds, idx, rest)
            idx = np.asarray(first)
            if idx.dtype == np.bool_:
                if idx.shape != (n,):
                    raise IndexError(f"boolean frame mask must have shape ({n},)")
                idx = np.flatnonzero(idx)
            return self._fancy(ds, idx, rest)

    def _fancy(self, ds, idx, rest):
        idx = np.asarray(idx, dtype=np.int64)
        idx = np.where(idx < 0, idx + self._n, idx)
        if idx.size and (idx.min() < 0 or idx.max() >= self._n):
            raise IndexError(f"frame index out of range for {self._n} committed frames")
        uniq, inv = np.unique(idx, return_inverse=True)
        if not uniq.size:
            return ds[(slice(0, 0),) + rest]
        data = checked_read(self._run.path, ds, (uniq.tolist(),) + rest, int(uniq[0]), int(uniq[-1]) + 1, self._n)
        return data[inv]

    def __array__(self, dtype=None, copy=None):
        a = self[:]
        return a if dtype is None else a.astype(dtype)

    def __repr__(self) -> str:
        return f"LazyFrames({self._run.path.name}:{self._name}, shape={self.shape}, dtype={self.dtype})"


class _LazyFile:
    """Mechanics shared by the lazy readers (:class:`H5MDRun`, ``ChainsFile``): the path (``<out>`` or, while
    unfinished, its ``.partial``), the completeness rule, and a handle kept open inside a ``with`` block."""

    path: Path
    status: str
    n_expected: int
    _keep = None

    @staticmethod
    def _resolve(path) -> Path:
        p = Path(path)
        if not p.exists() and partial_path(p).exists():
            p = partial_path(p)
        if not p.exists():
            raise FileNotFoundError(f"no such file: {path}")
        return p

    def _check_complete(self, n: int, noun: str, allow_partial: bool, warn: bool, error) -> None:
        """Raise ``error()`` on an incomplete file unless ``allow_partial`` (then warn once if ``warn``)."""
        if self.status == "complete":
            return
        if not allow_partial:
            raise error()
        if warn:
            warnings.warn(f"{self.path}: reading {n} committed {noun} of an incomplete run (status "
                          f"{self.status!r}, {self.n_expected} expected)", IncompleteRunWarning, stacklevel=4)

    @property
    def complete(self) -> bool:
        return self.status == "complete"

    @contextlib.contextmanager
    def _opened(self):
        if self._keep is not None:
            yield self._keep
            return
        with _h5py().File(self.path, "r") as f:
            yield f

    def __enter__(self):
        """Keep the file open while in the ``with`` block (faster repeated slicing)."""
        self._keep = _h5py().File(self.path, "r")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._keep is not None:
            self._keep.close()
            self._keep = None


class H5MDRun(_LazyFile):
    """Lazy view of a trajectory file: metadata now, frames on demand.

    Attributes:
        path: the file.
        status: ``"running"``, ``"complete"``, ``"diverged"`` or ``"interrupted"``.
        n_committed: frames safely on disk (the reader never shows more).
        n_expected: frames of the complete run.
        t: ``(n_committed,)`` times; ``steps``: ``(n_committed,)`` integer steps.
        x: :class:`LazyFrames` ``(n_committed, n_paths, dim)`` positions (``None`` when not stored).
        observables: dict name -> :class:`LazyFrames` of the on-the-fly statistics.
        config: the run's config (dict, or ``None`` for runs started from Python).
        plan: the run plan (dict: t0, t1, dt, n_steps, save_every, seed, method, driver, noise scheme, ...).
        meta: every attribute of ``/parameters/sde_toolkit``.
    """

    def __init__(self, path, allow_partial: bool = False, *, force: bool = False, _warn: bool = True):
        p = self.path = self._resolve(path)
        h5py = _h5py()
        with h5py.File(p, "r") as f:
            if RUN_GROUP not in f or "commit" not in f[RUN_GROUP]:
                raise ValueError(f"{p} is not an sde_toolkit trajectory file (no {RUN_GROUP}/commit)")
            g = f[RUN_GROUP]
            self.meta = {k: _attr(v) for k, v in g.attrs.items()}
            self.n_committed, self.checkpoint_step, self._slot = (int(v) for v in g["commit"][...])
            self.status = str(self.meta["status"])
            self.n_expected = int(self.meta["n_frames_expected"])
            self.integrity = check_run_file(p, self.meta, (self.n_committed, self.checkpoint_step, self._slot),
                                            self.n_expected)
            apply_report(self.integrity, force)
            self.config = json.loads(self.meta["config"])
            self.plan = json.loads(self.meta["plan"])
            n = self.n_committed
            self.has_positions = POSITION in f
            self._obs_info = {}
            if "observables" in f:
                for name, grp in f["observables"].items():
                    if name.startswith("_"):
                        continue
                    self._obs_info[name] = (grp["value"].shape[1:], grp["value"].dtype)
            axes = f[POSITION] if self.has_positions else (
                f["observables"][next(iter(self._obs_info))] if self._obs_info else None)
            if axes is not None:
                self.t = checked_read(p, axes["time"], slice(0, n), 0, n)
                self.steps = checked_read(p, axes["step"], slice(0, n), 0, n)
            else:
                self.t = np.empty(0)
                self.steps = np.empty(0, dtype=np.int64)
            if self.has_positions:
                vshape, vdtype = f[POSITION]["value"].shape, f[POSITION]["value"].dtype
        self._check_complete(n, "frames", allow_partial, _warn,
                             lambda: IncompleteRunError(p, self.status, n, self.n_expected))
        self.x = LazyFrames(self, f"{POSITION}/value", n, vshape[1:], vdtype) if self.has_positions else None
        self.observables = {name: LazyFrames(self, f"/observables/{name}/value", n, shape, dtype)
                            for name, (shape, dtype) in self._obs_info.items()}

    @property
    def n_paths(self) -> int:
        return int(self.plan["n_paths"])

    @property
    def dim(self) -> int:
        return int(self.plan["dim"])

    def checkpoint(self) -> tuple[int, np.ndarray]:
        """``(step, state)``: the committed float64 ``(n_paths, dim)`` state the run can restart from.

        Raises:
            ChecksumError: the checkpoint slot fails its checksum.
        """
        with self._opened() as f:
            s = self._slot
            return self.checkpoint_step, checked_read(self.path, f[RUN_GROUP]["checkpoint/state"], s, s, s + 1,
                                                      unit="checkpoint slot")

    def observable_edges(self) -> np.ndarray | None:
        """Histogram bin edges ``(dim, bins + 1)`` when the histogram observable was stored."""
        if "histogram" not in self._obs_info:
            return None
        with self._opened() as f:
            return checked_read(self.path, f["observables/histogram/bin_edges"], ())

    def verify(self) -> None:
        """Read every committed chunk (frames, steps, times, observables, the checkpoint slot), one chunk at a
        time, and check its fletcher32 checksum.

        Raises:
            ChecksumError: naming the first dataset that fails and its frames (``problems`` lists every one).
        """
        with self._opened() as f:
            raise_bad(self.path, bad_chunks(f, _committed_rows(f)))

    def position_view(self) -> LazyFrames:
        """The positions as a lazy ``(n_committed, n_paths, dim)`` view; for a run that stored observables only, a
        shape-only view whose reads raise ``ValueError`` (what ``Trajectory.from_run`` puts in ``x``)."""
        return self.x if self.x is not None else _NoPositions(self)

    def __repr__(self) -> str:
        return (f"H5MDRun({str(self.path)!r}, status={self.status!r}, frames={self.n_committed}/{self.n_expected}, "
                f"n_paths={self.n_paths}, dim={self.dim})")


class _NoPositions(LazyFrames):
    """Shape-only stand-in for runs that stored observables only."""

    def __init__(self, run: H5MDRun):
        super().__init__(run, "", run.n_committed, (run.n_paths, run.dim), np.float64)

    def __getitem__(self, key):
        raise ValueError(f"{self._run.path} stores no positions (output.positions = false); "
                         "read st.io.open(path).observables instead")


def _attr(v):
    if isinstance(v, bytes):
        return v.decode()
    if isinstance(v, np.ndarray):
        return [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def open_run(path, allow_partial: bool = False, *, force: bool = False) -> H5MDRun:
    """Open a trajectory file lazily (see :class:`H5MDRun`), after checking its digests.

    Raises:
        IncompleteRunError: the run is not complete (status, committed frames); ``allow_partial=True`` reads
            exactly the committed frames and warns instead.
        IntegrityError: the provenance (config, plan, seed, noise scheme, SDE config) or the status and commit
            record are not what the writer recorded; the message names what differs. ``force=True`` opens it
            anyway with an ``IntegrityWarning`` (and a log line). A file written before file format 2 has no
            digests: it opens with an ``IntegrityWarning``.
        ChecksumError: (when frames are read) committed data fails its checksum.
    """
    return H5MDRun(path, allow_partial=allow_partial, force=force)


# ------------------------------------------------------------------------------------------------------------
# any H5MD file: particle groups and one frame of positions
# ------------------------------------------------------------------------------------------------------------
def h5md_particles(f) -> dict:
    """``{group: {"dimension", "boundary", "frames", "n_particles", "time_dependent"}}`` for every
    ``/particles/<group>`` of an open H5MD file ``f`` that has a ``position`` element (ours or another
    program's). ``frames`` counts the frames an outside reader sees (for our files: the committed ones)."""
    out: dict = {}
    if "particles" not in f:
        return out
    for name, grp in f["particles"].items():
        if not hasattr(grp, "keys") or "position" not in grp:
            continue
        pos = grp["position"]
        value = pos["value"] if hasattr(pos, "keys") and "value" in pos else pos
        box = grp["box"] if "box" in grp else None
        info: dict = {"time_dependent": hasattr(pos, "keys"), "shape": list(value.shape)}
        info["frames"] = int(value.shape[0]) if info["time_dependent"] and value.ndim >= 1 else 1
        info["n_particles"] = int(value.shape[-2]) if value.ndim >= 2 else 1
        if box is not None:
            if "dimension" in box.attrs:
                info["dimension"] = int(np.asarray(box.attrs["dimension"]))
            if "boundary" in box.attrs:
                info["boundary"] = [str(_attr(b)) if isinstance(b, bytes) else str(b)
                                    for b in np.atleast_1d(box.attrs["boundary"])]
        out[name] = info
    return out


def read_h5md_positions(path, group: str | None = None, frame: int = -1) -> tuple[np.ndarray, dict]:
    """One frame of ``/particles/<group>/position`` from any H5MD file, as float64 ``(n_particles, dim)``.

    Our own trajectory files are opened through :func:`open_run` (digests verified, only committed frames; an
    incomplete run is read with ``allow_partial``); other programs' files (pyh5md, MDAnalysis, ...) are read as
    H5MD says: a time-dependent ``position`` group (``value`` ``(n_frames, n_particles, dim)``, ``step``,
    optional ``time``) or a time-independent ``position`` dataset ``(n_particles, dim)``.

    Args:
        path: the file.
        group: the particles group; default: the only one with positions (``all`` for our trajectories).
        frame: frame index (negative counts from the end; ``-1``: the last frame).

    Returns:
        ``(x, info)`` with ``info`` = ``{"group", "frame", "n_frames", "step", "time"}`` (``step``/``time`` None
        for time-independent positions or when not stored).

    Raises:
        ValueError: not an HDF5 or H5MD file, no particle group with positions, several and no ``group``.
        KeyError: ``group`` names no particle group with positions (the message lists those there are).
        IndexError: ``frame`` out of range.
    """
    h5py = _h5py()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such file: {p}")
    if isinstance(frame, bool) or not isinstance(frame, (int, np.integer)):
        raise TypeError(f"frame must be an integer, got {frame!r}")
    frame = int(frame)
    if not h5py.is_hdf5(p):
        raise ValueError(f"{p} is not an HDF5 file")
    with h5py.File(p, "r") as f:
        if "h5md" not in f:
            raise ValueError(f"{p} is not an H5MD file (no /h5md group)")
        groups = h5md_particles(f)
        ours = RUN_GROUP in f and "commit" in f[RUN_GROUP]
    if not groups:
        raise ValueError(f"{p} has no /particles/<group>/position")
    if group is None:
        if len(groups) > 1:
            raise ValueError(f"{p} has several particle groups with positions ({', '.join(sorted(groups))}); "
                             "choose one (group = ...)")
        group = next(iter(groups))
    if group not in groups:
        raise KeyError(f"{p} has no /particles/{group}/position; it has {', '.join(sorted(groups))}")
    if ours and group == "all":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", IncompleteRunWarning)  # the committed frames are what we read
            run = open_run(p, allow_partial=True)
        if run.x is None or run.n_committed == 0:
            raise ValueError(f"{p} holds no committed positions")
        n = run.n_committed
        i = frame + n if frame < 0 else frame
        if not 0 <= i < n:
            raise IndexError(f"frame {frame} out of range ({n} committed frames)")
        return (np.asarray(run.x[i], dtype=np.float64),
                {"group": group, "frame": i, "n_frames": n, "step": int(run.steps[i]), "time": float(run.t[i])})
    with h5py.File(p, "r") as f:
        pos = f["particles"][group]["position"]
        if not hasattr(pos, "keys"):  # time-independent: one (n_particles, dim) array
            if frame not in (0, -1):
                raise IndexError(f"frame {frame} out of range: /particles/{group}/position is time-independent")
            return (checked_read(p, pos, ()).astype(np.float64, copy=False),
                    {"group": group, "frame": 0, "n_frames": 1, "step": None, "time": None})
        value = pos["value"]
        n = int(value.shape[0])
        i = frame + n if frame < 0 else frame
        if not 0 <= i < n:
            raise IndexError(f"frame {frame} out of range ({n} frames)")
        x = checked_read(p, value, i, i, i + 1).astype(np.float64, copy=False)

        def at(key):
            if key not in pos:
                return None
            ds = pos[key]
            if ds.shape == ():  # fixed interval: element i is offset + i * interval (H5MD)
                off = ds.attrs.get("offset", 0)
                return (off + i * ds[()]).item()
            return ds[i].item()

        step, t = at("step"), at("time")
    return x, {"group": group, "frame": i, "n_frames": n, "step": None if step is None else int(step),
               "time": None if t is None else float(t)}


# ------------------------------------------------------------------------------------------------------------
# checksums: reading committed data
# ------------------------------------------------------------------------------------------------------------
def checked_read(path, ds, key, lo: int | None = None, hi: int | None = None, limit: int | None = None,
                 unit: str = "frames"):
    """``ds[key]``, with a failed read (fletcher32 mismatch, unreadable chunk) turned into a
    :class:`ChecksumError` that names the file, the dataset and the rows (frames) of the chunks that fail.

    ``lo:hi`` are the rows the read touches; the failing chunks are reported whole, up to row ``limit``
    (default: the dataset's length; readers pass the committed frames)."""
    try:
        return ds[key]
    except (OSError, RuntimeError) as exc:
        n = ds.shape[0] if ds.shape else 1
        lo = 0 if lo is None else lo
        hi = n if hi is None else hi
        bad = _bad_rows(ds, lo, hi, n if limit is None else limit)
        raise ChecksumError(path, ds.name, bad or [(lo, max(lo, hi - 1))], str(exc), unit) from None


def _bad_rows(ds, lo: int, hi: int, limit: int | None = None) -> list[tuple[int, int]]:
    """Rows ``[first, last]`` of the chunks in rows ``lo:hi`` that cannot be read, each chunk reported whole up
    to row ``limit`` (default ``hi``); one chunk in memory at a time."""
    if hi <= lo:
        return []
    limit = hi if limit is None else max(limit, hi)
    if ds.chunks is None or not ds.shape:
        try:
            ds[()]
            return []
        except (OSError, RuntimeError):
            return [(lo, hi - 1)]
    c = ds.chunks[0]
    out: list[list[int]] = []
    sel = (slice(lo, hi),) + (slice(None),) * (ds.ndim - 1)
    for s in ds.iter_chunks(sel):
        try:
            ds[s]
        except (OSError, RuntimeError):
            a = (s[0].start // c) * c
            b = min(a + c, limit, ds.shape[0]) - 1
            if out and out[-1][1] >= a - 1:
                out[-1][1] = max(out[-1][1], b)
            else:
                out.append([a, b])
    return [(a, b) for a, b in out]


def bad_chunks(f, rows: dict) -> list[tuple[str, list[tuple[int, int]]]]:
    """Every dataset of ``f`` with chunks that fail their checksum: ``[(name, ranges)]``. ``rows`` maps a
    dataset name to the ``(lo, hi)`` rows to check (default: all rows)."""
    h5py = _h5py()
    found: list = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.shape:
            lo, hi = rows.get("/" + name, (0, obj.shape[0]))
            bad = _bad_rows(obj, lo, min(hi, obj.shape[0]), min(hi, obj.shape[0]))
            if bad:
                found.append(("/" + name, bad))

    f.visititems(visit)
    return found


def raise_bad(path, found) -> None:
    if not found:
        return
    def unit(name):
        return "checkpoint slot" if name.endswith("checkpoint/state") else "rows"

    name, ranges = found[0]
    err = ChecksumError(path, name, ranges, unit=unit(name))
    for other, rr in found[1:]:
        err.problems.append(ChecksumError(path, other, rr, unit=unit(other)).problems[0])
        err.parts.append(other)
    if len(found) > 1:
        err.args = (str(err) + f" (and {len(found) - 1} more datasets: {', '.join(n for n, _ in found[1:])})",)
    raise err


def _committed_rows(f) -> dict:
    """The rows that hold committed data, per dataset, in any file of the family (trajectory, chains, density)."""
    rows: dict = {}
    if RUN_GROUP in f and "commit" in f[RUN_GROUP]:
        n, _, slot = (int(v) for v in f[RUN_GROUP]["commit"][...])
        if "checkpoint/state" in f[RUN_GROUP]:
            rows[RUN_GROUP + "/checkpoint/state"] = (slot, slot + 1)
        for ds in _series_datasets(f):
            rows[ds.name] = (0, n)
    if "mcmc" in f and "n_committed" in f["mcmc"]:
        n = int(f["mcmc/n_committed"][()])
        for grp in ("particles/chains/position", "particles/chains/potential_energy"):
            if grp in f:
                for k in ("value", "step", "time"):
                    rows[f"/{grp}/{k}"] = (0, n)
    if "fokker_planck" in f and "n_committed" in f["fokker_planck"].attrs:
        n = int(f["fokker_planck"].attrs["n_committed"])
        for k in ("t", "p"):
            rows[f"/fokker_planck/{k}"] = (0, n)
    return rows


class ResumeError(ValueError):
    """The file cannot be resumed (complete, diverged, no config and no ``sde=``, different noise scheme, or
    driven by user-supplied increments); raised by ``sde_toolkit.runs.resume``."""


def summarize(path, verify: bool = True) -> dict:
    """What ``sde-toolkit inspect`` shows: every group and dataset (shape, dtype, chunks) of any HDF5 file, and
    for a trajectory file its status, commit record, expected frames and run attributes (``config`` and ``plan``
    decoded from JSON).

    ``info["integrity"]`` is the verification of a trajectory or chains file (``verified``: ``"ok"``,
    ``"FAILED"`` or ``"legacy (no digest)"``; ``problems``, ``parts``, ``overrides``); with ``verify=True``
    every committed chunk is read once and ``info["checksums"]`` lists the datasets whose chunks fail
    (``{"verified": True, "bad": [{"dataset", "ranges"}]}``). The summary itself never raises on a failed check:
    ``sde-toolkit inspect`` refuses (without ``--force``) when ``integrity_problems(info)`` is not empty.

    ``path`` may name ``RUN.h5`` while only ``RUN.h5.partial`` exists (a killed run).
    """
    h5py = _h5py()
    p = Path(path)
    if not p.exists() and partial_path(p).exists():
        p = partial_path(p)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {path}")
    items: list[dict] = []
    info: dict = {"file": str(p), "items": items}
    with h5py.File(p, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                items.append({"path": "/" + name, "kind": "dataset", "shape": list(obj.shape), "dtype": str(obj.dtype),
                              "chunks": list(obj.chunks) if obj.chunks else None,
                              "checksum": bool(obj.fletcher32)})
            else:
                items.append({"path": "/" + name, "kind": "group"})

        f.visititems(visit)
        if "h5md" in f:
            info["h5md"] = {"version": _attr(f["h5md"].attrs.get("version")), "particles": h5md_particles(f)}
        if RUN_GROUP in f:
            g = f[RUN_GROUP]
            attrs = {k: _attr(v) for k, v in g.attrs.items()}
            info["status"] = attrs.get("status")
            if "commit" in g:
                record = tuple(int(v) for v in g["commit"][...])
                info["n_committed"], info["checkpoint_step"] = record[0], record[1]
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    info["integrity"] = check_run_file(p, attrs, record, int(attrs["n_frames_expected"])).as_dict()
            info["n_frames_expected"] = attrs.get("n_frames_expected")
            for k in ("config", "plan"):
                with contextlib.suppress(TypeError, ValueError):
                    attrs[k] = json.loads(attrs[k])
            info["parameters"] = attrs
        elif "mcmc" in f and "n_committed" in f["mcmc"]:
            from .chains import check_chains_file

            with contextlib.suppress(KeyError, TypeError, ValueError):
                info["integrity"] = check_chains_file(p, f).as_dict()
        if verify:
            found = bad_chunks(f, _committed_rows(f))
            info["checksums"] = {"verified": True, "bad": [{"dataset": n, "ranges": [list(r) for r in rr]}
                                                           for n, rr in found]}
        for k, v in f.attrs.items():
            info.setdefault("root_attrs", {})[k] = _attr(v)
    return info


def integrity_problems(info: dict) -> list[str]:
    """The failed checks of a :func:`summarize` result (empty: nothing failed)."""
    out = list((info.get("integrity") or {}).get("problems", []))
    for b in (info.get("checksums") or {}).get("bad", []):
        rr = ", ".join(f"{a}-{c}" if a != c else f"{a}" for a, c in b["ranges"])
        out.append(f"{b['dataset']} rows {rr} fail their checksum")
    return out
