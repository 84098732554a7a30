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
resizable along frames) and the file is flushed before the run starts. A *durable commit* is two-phase:
(1) the frames written since the last commit are already in the datasets; the full float64 state goes into
the checkpoint slot that the commit record does *not* point to; ``flush()``; (2) the commit record
``[n_committed, checkpoint_step, slot]`` is rewritten; ``flush()``. So the counter on disk never runs ahead
of data on disk, and a kill at any moment leaves a file that opens with plain ``h5py.File(path, "r")``
(default ``libver``: a crashed ``libver="latest"`` file without SWMR needs ``h5clear``), whose first
``n_committed`` frames are exact and whose checkpoint restarts the run bit for bit. Durable commits happen at
the integrator's commit points whenever ``flush_interval`` seconds of wall time have passed since the last one,
so a kill loses at most one flush interval of work.

Publishing. The writer writes ``<out>.partial``, created with mode ``"w-"`` (opening with ``"w"`` a file that
another process holds wipes it), and renames it to ``<out>`` with :func:`os.replace` when the run ends with
status ``"complete"``, ``"diverged"`` or ``"interrupted"``. A killed run, or one that fails with any other
error, stays at ``<out>.partial`` with status ``"running"``; ``resume`` picks it up there. An existing
``<out>`` is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .._random import Seed
from .._version import __version__
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
FILE_FORMAT_VERSION = 1  # of the sde_toolkit conventions inside /parameters/sde_toolkit


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
    """

    def __init__(self, file, part: Path, out: Path, save_steps, *, flush_interval: float, positions: bool,
                 dtype: np.dtype, observables: ObservableAccumulator | None, n_frames_done: int = 0,
                 slot: int = 1):
        self._f = file
        self.part, self.out = part, out
        self.save_steps = np.asarray(save_steps, dtype=np.int64)
        self.flush_interval = float(flush_interval)
        self.positions = positions
        self.dtype = dtype
        self.obs = observables
        self.n_written = n_frames_done  # frames written to the datasets (in order)
        self.n_committed = n_frames_done  # frames covered by the commit record on disk
        self._slot = slot  # checkpoint slot the on-disk commit record points to
        self._pending: tuple[int, int, np.ndarray] | None = None
        self._last_durable = time.monotonic()
        self.status = "running"
        self.closed = False
        self.final_file: Path | None = None
        g = file[RUN_GROUP]
        self._commit = g["commit"]
        self._state = g["checkpoint/state"]
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
               histogram_bins: int = 50, histogram_range=None, boundary=None) -> H5MDWriter:
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
        acc = (ObservableAccumulator(observables, int(plan["dim"]), histogram_bins, histogram_range)
               if observables else None)
        if out.exists() and not overwrite:
            raise FileExistsError(f"output {out} already exists; pass overwrite=True (CLI: --overwrite) to replace it")
        part = partial_path(out)
        if part.exists():
            _probe_partial(part)
            if not overwrite:
                raise FileExistsError(
                    f"{part} exists: an unfinished run of this output (killed, or still running elsewhere). "
                    f"Continue it with `sde-toolkit resume {out}`, or pass overwrite=True (--overwrite) to start over"
                )
            part.unlink()
        # Build the layout under a private name and flush it before it appears as <out>.partial (a hard link,
        # which fails if the name exists): a kill during creation never leaves an unreadable .partial.
        tmp = part.with_name(f".{part.name}.{os.getpid()}.init")
        try:
            f = h5py.File(tmp, "w-", rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            if _is_lock_error(exc):
                raise FileExistsError(f"cannot create {tmp}: HDF5 file lock held by another process ({exc})") from None
            raise
        try:
            n_save = len(save_steps)
            n, dim = int(plan["n_paths"]), int(plan["dim"])
            h5 = f.create_group("h5md")
            h5.attrs["version"] = np.array([1, 1], dtype=np.int32)
            author = h5.create_group("author")
            author.attrs["name"] = _user_name()
            creator = h5.create_group("creator")
            creator.attrs["name"] = "sde_toolkit"
            creator.attrs["version"] = __version__
            box = f.create_group("particles/all/box")
            box.attrs["dimension"] = np.int32(dim)
            bnd = list(boundary) if boundary is not None else ["none"] * dim
            box.attrs["boundary"] = np.array(bnd, dtype=h5py.string_dtype())
            comp: dict[str, Any] = {}
            if compression:
                comp["compression"] = compression
                if compression == "gzip" and compression_level is not None:
                    comp["compression_opts"] = int(compression_level)
            if positions:
                pos = f.create_group(POSITION)
                chunks = _chunk_shape(n_save, n, dim, dt_.itemsize, chunk_frames)
                pos.create_dataset("value", shape=(n_save, n, dim), maxshape=(None, n, dim), dtype=dt_,
                                   chunks=chunks, fillvalue=np.nan, **comp)
                _time_series_axes(pos, n_save, chunks[0])
            if acc is not None:
                acc.create(f, n_save, comp)
            _write_run_group(f, plan, n_save, sde, sde_class, sde_config, x0, config, positions, observables, dt_,
                             flush_interval)
            f.flush()
            _publish_new(tmp, part)
        except BaseException:
            f.close()
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        w = cls(f, part, out, save_steps, flush_interval=flush_interval, positions=positions, dtype=dt_,
                observables=acc)
        log.debug("created %s (%d frames x %d paths x %d dims, flush every %.3g s)", part, n_save, n, dim,
                  flush_interval)
        return w

    @classmethod
    def reopen(cls, part: Path, out: Path, save_steps, *, flush_interval: float | None = None) -> H5MDWriter:
        """Open a ``.partial`` run for appending after its checkpoint (used by ``sde_toolkit.runs.resume``).

        ``save_steps`` are the run's saved steps (rebuilt from the stored plan by the caller).
        """
        save_steps = np.asarray(save_steps, dtype=np.int64)
        h5py = _h5py()
        try:
            f = h5py.File(part, "r+", rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            if _is_lock_error(exc):
                raise FileExistsError(f"{part} is open in another process (HDF5 file lock held: {exc})") from None
            raise
        try:
            g = f[RUN_GROUP]
            n_committed, step, slot = (int(v) for v in g["commit"][...])
            n_save = len(save_steps)
            if n_save != int(g.attrs["n_frames_expected"]):
                raise ValueError(f"{part}: {n_save} saved steps given, the file expects {g.attrs['n_frames_expected']}")
            done = int(np.searchsorted(save_steps, step, side="right"))
            if done > n_committed:
                raise ValueError(f"{part}: checkpoint at step {step} but only {n_committed} frames committed")
            positions = bool(g.attrs["positions"])
            observables = tuple(json.loads(g.attrs["observables"]))
            interval = float(g.attrs["flush_interval"]) if flush_interval is None else float(flush_interval)
            for ds in _series_datasets(f):
                if ds.shape[0] != n_save:
                    ds.resize(n_save, axis=0)
            acc = None
            if observables:
                acc = ObservableAccumulator.from_file(f, observables, done)
            g.attrs["status"] = "running"
            g.attrs["resumed"] = int(g.attrs.get("resumed", 0)) + 1
            g.attrs["resumed_at"] = _now()
            dt_ = f[POSITION]["value"].dtype if positions else np.dtype(np.float64)
            f.flush()
        except BaseException:
            f.close()
            raise
        w = cls(f, part, out, save_steps, flush_interval=interval, positions=positions, dtype=dt_,
                observables=acc, n_frames_done=done, slot=slot)
        w.n_committed = n_committed
        return w

    # -- the sink protocol ------------------------------------------------------------------------------------
    def write(self, steps, times, frames) -> None:
        """Write saved frames (``frames``: float64 ``(k, n_paths, dim)``) at their places in the file."""
        k = len(steps)
        if k == 0:
            return
        i0 = int(np.searchsorted(self.save_steps, steps[0]))
        i1 = i0 + k
        if self.positions:
            self._value[i0:i1] = np.asarray(frames, dtype=self.dtype)
            self._step[i0:i1] = np.asarray(steps, dtype=np.int64)
            self._time[i0:i1] = np.asarray(times, dtype=np.float64)
        if self.obs is not None:
            self.obs.write(self._f, i0, np.asarray(steps), np.asarray(times), frames)
        self.n_written = i1

    def commit(self, step: int, state) -> None:
        """Record that every frame up to ``step`` is written and ``state`` is the full state at ``step``."""
        self._pending = (self.n_written, int(step), np.array(state, dtype=np.float64, copy=True))
        if time.monotonic() - self._last_durable >= self.flush_interval:
            self._durable_commit()

    def close(self, status: str, info: dict | None = None) -> None:
        """End the run: commit what is written, set ``status``, close, and publish unless ``"running"``."""
        if self.closed:
            return
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        g = self._f[RUN_GROUP]
        try:
            self._durable_commit(n_frames=self.n_written)
            if status != "running":
                n = self.n_committed
                for ds in _series_datasets(self._f):
                    if ds.shape[0] != n:
                        ds.resize(n, axis=0)
            g.attrs["status"] = status
            g.attrs["end_time"] = _now()
            if info:
                g.attrs["end_info"] = _json(info)
            self._hdf5_flush()
        finally:
            self._f.close()
            self.closed = True
            self.status = status
        if status == "running":
            self.final_file = self.part
            log.warning("run stopped by an error; %d frames kept in %s (continue with `sde-toolkit resume %s`)",
                        self.n_committed, self.part, self.out)
            return
        os.replace(self.part, self.out)
        self.final_file = self.out
        log.debug("published %s with status %s (%d frames)", self.out, status, self.n_committed)

    # -- internals --------------------------------------------------------------------------------------------
    def _hdf5_flush(self) -> None:
        self._f.flush()

    def _durable_commit(self, n_frames: int | None = None) -> None:
        if self._pending is not None:
            n, step, state = self._pending
            slot = 1 - self._slot
            self._state[slot] = state
            self._pending = None
        else:
            n = self.n_committed
            step, slot = (int(v) for v in self._commit[1:])
        if n_frames is not None:
            n = n_frames
        self._hdf5_flush()  # phase 1: frames and the new checkpoint reach the file first
        self._commit[...] = np.array([n, step, slot], dtype=np.int64)
        self._hdf5_flush()  # phase 2: then the record that points to them
        self._slot = slot
        self.n_committed = n
        self._last_durable = time.monotonic()
        log.debug("durable commit: n_committed=%d checkpoint_step=%d slot=%d", n, step, slot)


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
    kw = {"maxshape": (None,), "chunks": (max(1, min(max(chunk, 64), max(n_save, 1))),)}
    group.create_dataset("step", shape=(n_save,), dtype=np.int64, fillvalue=-1, **kw)
    group.create_dataset("time", shape=(n_save,), dtype=np.float64, fillvalue=np.nan, **kw)
    group["time"].attrs["unit"] = "model time"


def _series_datasets(f):
    out = []
    if POSITION in f:
        out += [f[POSITION][k] for k in ("value", "step", "time")]
    if "observables" in f:
        for name in f["observables"]:
            grp = f["observables"][name]
            out += [grp[k] for k in ("value", "step", "time")]
    return out


def _user_name() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no passwd entry in some containers
        return "unknown"


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
    st = ck.create_dataset("state", shape=(2, n, dim), dtype=np.float64, chunks=(1, cp, dim))
    st[1] = np.asarray(x0, dtype=np.float64)  # slot 1 <- x0, matching the initial record [0, 0, 1]


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
            per axis).

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
        with self._run._opened() as f:
            ds = f[self._name]
            if isinstance(first, (int, np.integer)):
                i = int(first) + n if first < 0 else int(first)
                if not 0 <= i < n:
                    raise IndexError(f"frame {first} out of range for {n} committed frames")
                return ds[(i,) + rest]
            if isinstance(first, slice):
                start, stop, step = first.indices(n)
                if step > 0:
                    return ds[(slice(start, max(start, stop), step),) + rest]
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
        data = ds[(uniq.tolist(),) + rest] if uniq.size else ds[(slice(0, 0),) + rest]
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

    def __init__(self, path, allow_partial: bool = False, *, _warn: bool = True):
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
            if self.has_positions:
                self.t = f[POSITION]["time"][:n]
                self.steps = f[POSITION]["step"][:n]
                vshape, vdtype = f[POSITION]["value"].shape, f[POSITION]["value"].dtype
            elif self._obs_info:
                first = next(iter(self._obs_info))
                self.t = f["observables"][first]["time"][:n]
                self.steps = f["observables"][first]["step"][:n]
            else:
                self.t = np.empty(0)
                self.steps = np.empty(0, dtype=np.int64)
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
        """``(step, state)``: the committed float64 ``(n_paths, dim)`` state the run can restart from."""
        with self._opened() as f:
            return self.checkpoint_step, f[RUN_GROUP]["checkpoint/state"][self._slot]

    def observable_edges(self) -> np.ndarray | None:
        """Histogram bin edges ``(dim, bins + 1)`` when the histogram observable was stored."""
        if "histogram" not in self._obs_info:
            return None
        with self._opened() as f:
            return f["observables/histogram/bin_edges"][...]

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


def open_run(path, allow_partial: bool = False) -> H5MDRun:
    """Open a trajectory file lazily (see :class:`H5MDRun`).

    Raises:
        IncompleteRunError: the run is not complete (status, committed frames); ``allow_partial=True`` reads
            exactly the committed frames and warns instead.
    """
    return H5MDRun(path, allow_partial=allow_partial)


class ResumeError(ValueError):
    """The file cannot be resumed (complete, diverged, no config and no ``sde=``, different noise scheme, or
    driven by user-supplied increments); raised by ``sde_toolkit.runs.resume``."""


def summarize(path) -> dict:
    """What ``sde-toolkit inspect`` shows: every group and dataset (shape, dtype, chunks) of any HDF5 file, and
    for a trajectory file its status, commit record, expected frames and run attributes (``config`` and ``plan``
    decoded from JSON).

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
                              "chunks": list(obj.chunks) if obj.chunks else None})
            else:
                items.append({"path": "/" + name, "kind": "group"})

        f.visititems(visit)
        if RUN_GROUP in f:
            g = f[RUN_GROUP]
            attrs = {k: _attr(v) for k, v in g.attrs.items()}
            info["status"] = attrs.get("status")
            if "commit" in g:
                n, step, _ = (int(v) for v in g["commit"][...])
                info["n_committed"], info["checkpoint_step"] = n, step
            info["n_frames_expected"] = attrs.get("n_frames_expected")
            for k in ("config", "plan"):
                with contextlib.suppress(TypeError, ValueError):
                    attrs[k] = json.loads(attrs[k])
            info["parameters"] = attrs
        for k, v in f.attrs.items():
            info.setdefault("root_attrs", {})[k] = _attr(v)
    return info
