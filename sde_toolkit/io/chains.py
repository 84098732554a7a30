"""MCMC chains in the project's HDF5 file family: a crash-safe streaming writer, a reader and a lazy view.

Layout (full reference in ``docs/file-format.md``)::

    /h5md                                        attrs version=[1, 1]; groups author (name), creator (name, version)
    /particles/chains/box                        attrs dimension=<dim>, boundary=["none", ...]
    /particles/chains/position/value             (n_kept, n_chains, dim) float64: the kept samples
    /particles/chains/position/{step,time}       (n_kept,) sampler step (int64) and time = step * step_size
    /particles/chains/potential_energy/{value,step,time}   (n_kept, n_chains) V at the samples (when recorded)
    /mcmc                                        attrs: status, method, step, kT, gamma, seed, burn_in, thin,
                                                 n_steps, config (JSON), package version, acceptance_rate,
                                                 tau/ess/rhat (per coordinate), ...
    /mcmc/n_committed                            int64 scalar: kept samples safely on disk
    /mcmc/accepted                               (n_chains,) float64 MALA accept counts after burn-in
    /mcmc/final_position, /mcmc/final_momentum   (n_chains, dim) state after the last step (momentum: BAOAB)

Why ``/particles/chains`` for the samples: a chain is a particle that moves in sampler time, so H5MD-aware
tools read the chains as a particle trajectory, with the same ``value/step/time`` triplet as
``/particles/all/position`` of an SDE trajectory. Everything H5MD has no element for (acceptance counts, final
state, provenance, diagnostics, the commit counter) goes in ``/mcmc``. A file holds one sampler run; the
group names differ from a trajectory file's (``/particles/all``, ``/parameters/sde_toolkit``), so a reader can
tell the two kinds apart.

Crash safety follows :mod:`sde_toolkit.io.h5md`: default ``libver``; every dataset is created up front with
its final size (chunked, resizable, NaN fill, fletcher32 checksums) and flushed before the file appears as
``<out>.partial`` (built under a private name opened with ``"w-"``, then hard-linked into place) while the writer
holds ``<out>.partial.lock``; each block of kept samples is written data first, flush, then the status digest,
flush, then the ``n_committed`` counter, flush, so the counter never runs ahead of the data; the finished file is
renamed to ``<out>`` without replacing a file that appeared there meanwhile (``overwrite=True`` replaces it). A
run stopped by ``KeyboardInterrupt`` is trimmed to its committed samples and published with status
``"interrupted"``; a killed run, or one that fails with another error after committing samples, stays at
``<out>.partial`` with status ``"running"`` (read it with ``allow_partial=True``). A failed write (disk full,
file-size limit) closes the file without writing more, so it keeps its last commit. Chains cannot be resumed:
the file has no random-stream checkpoint. Readers verify the provenance digest (config, parameters, seed) and
the status digest (status, ``n_committed``) and refuse a mismatch unless ``force=True``.

This module is a format: it stores arrays and attributes and reads them back as a :class:`ChainsRecord`.
``sde_toolkit.mcmc.Chains.from_record`` / ``Chains.from_file`` turn a record into chains, and the sampler
computes the diagnostics that the writer stores.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._random import Seed, resolve_seed
from .._version import __version__
from ._fs import SpaceGuard, WriterLock, describe_failure, errno_of, fuse_and_close, ignore_sigxfsz, publish
from .h5md import (
    CHECKSUM,
    CHUNK_CACHE_BYTES,
    LazyFrames,
    _attr,
    _chunk_shape,
    _h5py,
    _is_lock_error,
    _json,
    _LazyFile,
    _loads,
    _now,
    _probe_partial,
    _publish_new,
    apply_report,
    checked_read,
    partial_path,
    write_h5md_header,
)
from .integrity import IntegrityReport, check_provenance, overrides_of, seal_attrs, status_digest

__all__ = ["ChainsRecord", "ChainsWriter", "ChainsFile", "write_chains", "read_chains", "open_chains",
           "stream_block"]

GROUP = "/mcmc"
PARTICLES = "/particles/chains"
POSITION = PARTICLES + "/position"
ENERGY = PARTICLES + "/potential_energy"
FORMAT_VERSION = 2  # 2: provenance and status digests, fletcher32 checksums
STATUSES = ("running", "complete", "interrupted")
STREAM_BLOCK_BYTES = 8 << 20  # kept samples per durable commit while streaming: ~8 MiB of positions


def stream_block(n_chains: int, dim: int) -> int:
    """Kept samples per block (one durable commit each) when ``langevin(..., out=)`` streams."""
    return max(1, STREAM_BLOCK_BYTES // (8 * int(n_chains) * int(dim)))


def _seed_attr(seed) -> str:
    return str(resolve_seed(seed).entropy)  # decimal text: exact for 128-bit entropy


@dataclass
class ChainsRecord:
    """One sampler run as stored: the arrays and the scalar attributes of a chains file.

    Attributes:
        samples: ``(n_kept, n_chains, dim)`` kept positions; ``energies``: ``(n_kept, n_chains)`` or ``None``.
        accepted: ``(n_chains,)`` MALA accept counts, else ``None``.
        final_position: ``(n_chains, dim)`` state after the last step; ``final_momentum`` likewise (BAOAB).
        method, step, kT, gamma, n_steps, burn_in, thin, seed, backend, wall_time, compile_time: the run.
        status: ``"complete"``, ``"interrupted"`` or ``"running"``; config: the run's parameters (dict);
        attrs: every attribute of ``/mcmc`` (read back), or extra attributes to store (written).

    For an incomplete file, ``n_steps`` and ``final_position`` describe the last committed kept sample.
    """

    samples: np.ndarray
    method: str
    step: float
    kT: float
    gamma: float
    n_steps: int
    burn_in: int
    thin: int
    seed: Seed
    final_position: np.ndarray
    backend: str
    energies: np.ndarray | None = None
    accepted: np.ndarray | None = None
    final_momentum: np.ndarray | None = None
    wall_time: float = 0.0
    compile_time: float = 0.0
    status: str = "complete"
    config: dict = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.status == "complete"


class ChainsWriter:
    """Stream kept MCMC samples into ``<out>.partial`` and publish ``<out>`` at the end.

    Create with :meth:`create`; call :meth:`write` per block of kept samples (each one a durable commit), then
    :meth:`finish` (complete) or :meth:`abort` (interrupted or failed).
    """

    def __init__(self, file, part: Path, out: Path, n_kept: int, step_size: float, burn_in: int, thin: int,
                 has_energies: bool, has_accepted: bool, lock: WriterLock | None = None, overwrite: bool = False):
        self._f = file
        self.part, self.out = part, out
        self.n_kept, self.step_size, self.burn_in, self.thin = n_kept, step_size, burn_in, thin
        self.has_energies, self.has_accepted = has_energies, has_accepted
        self.overwrite = bool(overwrite)
        self.n_committed = 0
        self.closed = False
        self.status = "running"
        self.failed: BaseException | None = None
        self.final_file: Path | None = None
        self._lock = lock
        self._disk_status = "running"
        self._provenance = _attr(file[GROUP].attrs["digest"])
        self._guard = SpaceGuard(file, part)

    @classmethod
    def create(cls, out, *, n_kept: int, n_chains: int, dim: int, method: str, step: float, kT: float,
               gamma: float, n_steps: int, burn_in: int, thin: int, seed: Seed | int, backend: str,
               has_energies: bool, has_accepted: bool, has_momentum: bool, config: dict | None = None,
               overwrite: bool = False) -> ChainsWriter:
        """Create ``<out>.partial`` with the full layout (sized for ``n_kept`` samples) and flush it.

        Raises:
            IsADirectoryError: ``out`` is a folder.
            FileNotFoundError: the output folder does not exist.
            FileExistsError: ``out`` exists and ``overwrite`` is False, or ``<out>.partial`` exists (another
                writer, or a failed run; ``overwrite=True`` removes it unless another process holds it).
        """
        h5py = _h5py()
        out = Path(out)
        if out.is_dir():
            raise IsADirectoryError(f"output {out} is a folder; give a file name such as {out / 'chains.h5'}")
        parent = out.parent if str(out.parent) else Path(".")
        if not parent.is_dir():
            raise FileNotFoundError(f"output folder {parent} does not exist (output {out})")
        if out.exists() and not overwrite:
            raise FileExistsError(f"output {out} already exists; pass overwrite=True to replace it")
        part = partial_path(out)
        ignore_sigxfsz()
        lock = WriterLock(part).acquire()
        try:
            if part.exists():
                _probe_partial(part)
                if not overwrite:
                    raise FileExistsError(f"{part} exists: an unfinished chains file of this output (killed, or "
                                          "still being written elsewhere); pass overwrite=True to start over")
                part.unlink()
            f = cls._layout(h5py, part, n_kept=n_kept, n_chains=n_chains, dim=dim, method=method, step=step, kT=kT,
                            gamma=gamma, n_steps=n_steps, burn_in=burn_in, thin=thin, seed=seed, backend=backend,
                            has_energies=has_energies, has_accepted=has_accepted, has_momentum=has_momentum,
                            config=config)
        except BaseException:
            lock.release()
            raise
        return cls(f, part, out, n_kept, float(step), burn_in, thin, has_energies, has_accepted, lock=lock,
                   overwrite=overwrite)

    @staticmethod
    def _layout(h5py, part, *, n_kept, n_chains, dim, method, step, kT, gamma, n_steps, burn_in, thin, seed,
                backend, has_energies, has_accepted, has_momentum, config):
        tmp = part.with_name(f".{part.name}.{os.getpid()}.init")
        try:
            f = h5py.File(tmp, "w-", rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            if _is_lock_error(exc):
                raise FileExistsError(f"cannot create {tmp}: HDF5 file lock held by another process ({exc})") from None
            raise
        try:
            write_h5md_header(f, None, dim, PARTICLES.rsplit("/", 1)[-1])
            chunks = _chunk_shape(n_kept, n_chains, dim, 8, None)
            pos = f.create_group(POSITION)
            pos.create_dataset("value", shape=(0, n_chains, dim), maxshape=(None, n_chains, dim),
                               dtype=np.float64, chunks=chunks, fillvalue=np.nan, **CHECKSUM)
            _axes(pos, n_kept, chunks[0])
            if has_energies:
                en = f.create_group(ENERGY)
                en.create_dataset("value", shape=(0, n_chains), maxshape=(None, n_chains), dtype=np.float64,
                                  chunks=(chunks[0], chunks[1]), fillvalue=np.nan, **CHECKSUM)
                _axes(en, n_kept, chunks[0])
            g = f.create_group(GROUP)
            g.create_dataset("n_committed", data=np.int64(0))
            if has_accepted:
                g.create_dataset("accepted", data=np.zeros(n_chains), chunks=(n_chains,), **CHECKSUM)
            g.create_dataset("final_position", shape=(n_chains, dim), dtype=np.float64, fillvalue=np.nan,
                             chunks=_small_chunks(n_chains, dim), **CHECKSUM)
            if has_momentum:
                g.create_dataset("final_momentum", shape=(n_chains, dim), dtype=np.float64, fillvalue=np.nan,
                                 chunks=_small_chunks(n_chains, dim), **CHECKSUM)
            cfg = {"method": method, "step": step, "kT": kT, "gamma": gamma, "n_steps": n_steps,
                   "burn_in": burn_in, "thin": thin, "seed": resolve_seed(seed).to_json(), "n_chains": n_chains,
                   "dim": dim,
                   "backend": backend, **(config or {})}
            attrs = {
                "format_version": np.int32(FORMAT_VERSION), "status": "running", "method": method,
                "step": float(step), "kT": float(kT), "gamma": float(gamma), "n_steps": np.int64(n_steps),
                "burn_in": np.int64(burn_in), "thin": np.int64(thin), "seed": _seed_attr(seed),
                "seed_spawn_key": json.dumps(list(resolve_seed(seed).spawn_key)),
                "n_chains": np.int64(n_chains), "dim": np.int64(dim), "n_kept_expected": np.int64(n_kept),
                "backend": backend, "config": _json(cfg), "package_version": __version__,
                "numpy_version": np.__version__, "h5py_version": h5py.version.version,
                "hdf5_version": h5py.version.hdf5_version, "creation_time": _now(),
            }
            for k, v in attrs.items():
                g.attrs[k] = v
            for k, v in seal_attrs(_chains_parts({k: _attr(v) for k, v in g.attrs.items()})).items():
                g.attrs[k] = v
            d = status_digest(g.attrs["digest"], "running", (0,), n_kept)
            g.attrs["status_digest"] = json.dumps([d, d])
            SpaceGuard(f, tmp).check()
            f.flush()
            _publish_new(tmp, part)
        except BaseException:
            fuse_and_close(f)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return f

    def write(self, i0: int, samples, energies=None, accepted=None) -> None:
        """Write kept samples ``i0 .. i0 + len(samples)`` and commit them durably.

        Args:
            i0: index of the first sample of the block (must equal the number already committed).
            samples: ``(k, n_chains, dim)``.
            energies: ``(k, n_chains)`` (required when the file records energies).
            accepted: ``(n_chains,)`` accept counts up to the block's last step (MALA).
        """
        self._check_usable()
        if i0 != self.n_committed:
            raise ValueError(f"blocks must be written in order: got i0={i0}, {self.n_committed} committed")
        k = len(samples)
        i1 = i0 + k
        if i1 > self.n_kept:
            raise ValueError(f"{i1} samples exceed the {self.n_kept} the file was created for")
        if self.has_energies and energies is None:
            raise ValueError("this file records energies: pass energies=")
        self._guarded(self._write, i0, i1, samples, energies, accepted)

    def _write(self, i0, i1, samples, energies, accepted) -> None:
        steps = self.burn_in + self.thin * np.arange(i0 + 1, i1 + 1, dtype=np.int64)
        times = steps * self.step_size
        for ds in _series(self._f):  # the datasets hold only committed samples (outside readers see no fill)
            if ds.shape[0] < i1:
                ds.resize(i1, axis=0)
        pos = self._f[POSITION]
        pos["value"][i0:i1] = np.asarray(samples, dtype=np.float64)
        pos["step"][i0:i1] = steps
        pos["time"][i0:i1] = times
        if self.has_energies:
            en = self._f[ENERGY]
            en["value"][i0:i1] = np.asarray(energies, dtype=np.float64)
            en["step"][i0:i1] = steps
            en["time"][i0:i1] = times
        g = self._f[GROUP]
        if self.has_accepted and accepted is not None:
            g["accepted"][...] = np.asarray(accepted, dtype=np.float64)
        for ds in _series(self._f):
            self._guard.touch(ds, i0, i1)
        self._flush()  # data first ...
        self._seal(self._disk_status, i1)  # ... the status digest of the new counter ...
        g["n_committed"][()] = np.int64(i1)
        self._flush()  # ... then the counter that points to it
        self.n_committed = i1

    # -- internals --------------------------------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self.failed is not None:
            raise RuntimeError(f"{self.part}: the writer stopped after a failed write ({describe_failure(self.failed)})")
        if self.closed:
            raise RuntimeError(f"{self.part} is closed")

    def _flush(self) -> None:
        self._guard.check()  # refuse before HDF5 starts writing: a half-done flush breaks the file
        self._f.flush()
        self._guard.flushed()

    def _seal(self, status: str, n: int) -> None:
        """Store the status digest of the state about to be written (with the current one), and flush."""
        new = status_digest(self._provenance, status, (n,), self.n_kept)
        cur = status_digest(self._provenance, self._disk_status, (self.n_committed,), self.n_kept)
        self._f[GROUP].attrs["status_digest"] = json.dumps([new, cur])
        self._flush()

    def _set_status(self, status: str) -> None:
        self._flush()  # the final state and attributes reach the file before the digest of the new status
        self._seal(status, self.n_committed)
        self._f[GROUP].attrs["status"] = status
        self._flush()
        self._disk_status = status

    def _guarded(self, fn, *args):
        try:
            return fn(*args)
        except (OSError, RuntimeError) as exc:  # h5py's I/O errors, and the space check's
            if self.failed is None:
                self.failed = exc
                f, self._f = self._f, None
                fuse_and_close(f)  # nothing more reaches the file: it keeps its last commit
                self.closed = True
                self.final_file = self.part
                self._release_lock()
            e = errno_of(exc)
            msg = (f"writing {self.part} failed ({describe_failure(exc)}); the sampler stopped: "
                   f"{self.n_committed} committed samples are kept in {self.part}")
            raise (OSError(e, msg) if e is not None else OSError(msg)) from exc

    def _release_lock(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    def finish(self, *, final_position, final_momentum=None, accepted=None, wall_time: float = 0.0,
               compile_time: float = 0.0, attrs: dict | None = None,
               summarize: Callable[[ChainsRecord], dict] | None = None) -> ChainsRecord:
        """Store the final state, status ``"complete"`` and extra attributes; publish ``<out>``.

        Args:
            final_position, final_momentum, accepted, wall_time, compile_time: the end of the run.
            attrs: extra attributes of ``/mcmc`` (JSON-able scalars or arrays), e.g. diagnostics.
            summarize: called with the record read back from the file before the status turns complete; the
                attributes it returns are stored too (how the sampler adds diagnostics of streamed samples).

        Returns:
            The :class:`ChainsRecord`, with samples read back from the file.
        """
        if self.n_committed != self.n_kept:
            raise ValueError(f"only {self.n_committed} of {self.n_kept} samples were written")
        self._check_usable()
        g = self._f[GROUP]
        try:
            g["final_position"][...] = np.asarray(final_position, dtype=np.float64)
            if final_momentum is not None and "final_momentum" in g:
                g["final_momentum"][...] = np.asarray(final_momentum, dtype=np.float64)
            if accepted is not None and self.has_accepted:
                g["accepted"][...] = np.asarray(accepted, dtype=np.float64)
            g.attrs["wall_time"] = float(wall_time)
            g.attrs["compile_time"] = float(compile_time)
            record = _record_from(self._f, self.n_kept, complete=True)
            extra = dict(attrs or {})
            if summarize is not None:
                extra.update(summarize(record))
            _store_attrs(g, extra)
            g.attrs["end_time"] = _now()
            self._guarded(self._set_status, "complete")
            record.attrs = {k: _attr(v) for k, v in g.attrs.items()}
        except BaseException:
            if not self.closed:
                self._close("running")
            raise
        self._close("complete")
        return record

    def abort(self, interrupted: bool) -> None:
        """End a run that did not finish: publish the committed samples as ``"interrupted"``, or keep
        ``<out>.partial`` with status ``"running"`` (removed when nothing was committed)."""
        if self.closed:
            return
        if interrupted:
            g = self._f[GROUP]
            n = self.n_committed
            for ds in _series(self._f):
                ds.resize(n, axis=0)
            g.attrs["end_time"] = _now()
            self._guarded(self._set_status, "interrupted")
            self._close("interrupted")
            return
        self._close("running")
        if self.n_committed == 0:
            with contextlib.suppress(OSError):
                self.part.unlink()
            self.final_file = None

    def _close(self, status: str) -> None:
        f, self._f = self._f, None
        if f is not None:
            f.close()
        self.closed = True
        self.status = status
        if status == "running":
            self.final_file = self.part
            self._release_lock()
            return
        try:
            publish(self.part, self.out, overwrite=self.overwrite)
        except FileExistsError:
            self.final_file = self.part
            raise FileExistsError(
                f"{self.out} was created by someone else while the sampler was writing; it is not replaced. The "
                f"chains (status {status!r}) are kept in {self.part}: move them into place yourself, or write "
                "again with overwrite=True") from None
        finally:
            self._release_lock()
        self.final_file = self.out


def _small_chunks(n_chains: int, dim: int) -> tuple[int, int]:
    return (max(1, min(n_chains, (1 << 20) // (8 * max(dim, 1)))), dim)


def _chains_parts(attrs) -> dict:
    """The provenance parts of a chains file, from the attributes of ``/mcmc`` (what the digest covers)."""
    return {
        "config": _loads(attrs.get("config")),
        "parameters": {k: _attr(attrs.get(k)) for k in ("method", "step", "kT", "gamma", "n_steps", "burn_in",
                                                         "thin", "n_chains", "dim", "n_kept_expected", "backend")},
        "seed": {"entropy": str(attrs.get("seed")), "spawn_key": _loads(attrs.get("seed_spawn_key"), [])},
    }


def check_chains_file(path, f) -> IntegrityReport:
    """Verify an open chains file's provenance digest, status digest and completeness (no data read)."""
    g = f[GROUP]
    attrs = {k: _attr(v) for k, v in g.attrs.items()}
    rep = IntegrityReport(str(path))
    rep.overrides = overrides_of(attrs)
    status = str(attrs.get("status"))
    n = int(g["n_committed"][()])
    expected = int(attrs.get("n_kept_expected", -1))
    if status not in STATUSES:
        rep.add("status", f"unknown status {status!r}")
    if status == "complete" and n != expected:
        rep.add("status", f"the status says complete but {n} of {expected} samples are committed")
    if "digest" not in attrs:
        if int(attrs.get("format_version", 1)) >= 2:
            rep.add("digest", "its digest attributes were removed (format_version 2 files always carry them)")
        else:
            rep.legacy = True
        return rep
    check_provenance(rep, attrs, _chains_parts(attrs))
    pair = _loads(attrs.get("status_digest"))
    if not (isinstance(pair, list) and status_digest(attrs["digest"], status, (n,), expected) in pair):
        rep.add("status or n_committed", f"the status {status!r} and n_committed {n} are not what the writer "
                                         "recorded (status_digest): one of them was edited")
    return rep


def _axes(group, n: int, chunk: int) -> None:
    kw = {"maxshape": (None,), "chunks": (max(1, min(max(chunk, 64), max(n, 1))),), **CHECKSUM}
    # empty until samples are committed; time = step * step_size, dimensionless (no unit attribute)
    group.create_dataset("step", shape=(0,), dtype=np.int64, fillvalue=-1, **kw)
    group.create_dataset("time", shape=(0,), dtype=np.float64, fillvalue=np.nan, **kw)


def _series(f) -> list:
    out = [f[POSITION][k] for k in ("value", "step", "time")]
    if ENERGY in f:
        out += [f[ENERGY][k] for k in ("value", "step", "time")]
    return out


def _store_attrs(g, attrs: dict) -> None:
    """Store extra attributes; the layout's own (parameters, status, versions, times) are the writer's and are
    skipped, so a record read back from one file writes the same extras into another."""
    for k, v in attrs.items():
        if k in _LAYOUT_ATTRS or v is None:
            continue
        g.attrs[k] = np.asarray(v, dtype=np.float64) if isinstance(v, (list, tuple, np.ndarray)) else v


_LAYOUT_ATTRS = frozenset((
    "digest", "digest_parts", "digest_leaves", "digest_algorithm", "status_digest", "integrity_log",
    "format_version", "status", "method", "step", "kT", "gamma", "n_steps", "burn_in", "thin", "seed",
    "seed_spawn_key", "n_chains",
    "dim", "n_kept_expected", "backend", "config", "package_version", "numpy_version", "h5py_version",
    "hdf5_version", "creation_time", "end_time", "wall_time", "compile_time",
))


def _record_from(f, n: int, complete: bool) -> ChainsRecord:
    """A :class:`ChainsRecord` from an open file's first ``n`` kept samples."""
    g = f[GROUP]
    a = {k: _attr(v) for k, v in g.attrs.items()}
    p = f.filename
    samples = checked_read(p, f[POSITION]["value"], slice(0, n), 0, n)
    energies = checked_read(p, f[ENERGY]["value"], slice(0, n), 0, n) if ENERGY in f else None
    accepted = checked_read(p, g["accepted"], ()) if "accepted" in g else None
    burn_in, thin = int(a["burn_in"]), int(a["thin"])
    if complete:
        n_steps = int(a["n_steps"])
        final_x = checked_read(p, g["final_position"], ())
        final_p = checked_read(p, g["final_momentum"], ()) if "final_momentum" in g else None
    else:
        # an incomplete run ends, as far as the file knows, at its last committed kept sample
        n_steps = burn_in + thin * n
        final_x = samples[-1].copy() if n else np.full(g["final_position"].shape, np.nan)
        final_p = None
    return ChainsRecord(
        samples=samples, method=str(a["method"]), step=float(a["step"]), kT=float(a["kT"]),
        gamma=float(a["gamma"]), n_steps=n_steps, burn_in=burn_in, thin=thin,
        seed=Seed(int(a["seed"]), tuple(json.loads(a.get("seed_spawn_key", "[]")))),
        final_position=final_x, backend=str(a["backend"]), energies=energies, accepted=accepted,
        final_momentum=final_p, wall_time=float(a.get("wall_time", 0.0)),
        compile_time=float(a.get("compile_time", 0.0)), status="complete" if complete else str(a["status"]),
        config=json.loads(a["config"]), attrs=a,
    )


def write_chains(record: ChainsRecord, path, *, config: dict | None = None, overwrite: bool = False) -> Path:
    """Write a :class:`ChainsRecord` to ``path`` (same layout and protocol as ``langevin(..., out=path)``).

    ``Chains.to_file(path)`` is the usual way in: it builds the record and adds the diagnostics.

    Args:
        record: the arrays and parameters; ``record.attrs`` are extra attributes stored in ``/mcmc``
            (e.g. ``acceptance_rate``, ``tau``, ``ess``, ``rhat``).
        path: output file; written as ``<path>.partial`` and renamed when complete.
        config: extra JSON-able provenance merged into the ``config`` attribute.
        overwrite: replace an existing file.

    Returns:
        The published path.
    """
    n_kept, n_chains, dim = record.samples.shape
    w = ChainsWriter.create(
        path, n_kept=n_kept, n_chains=n_chains, dim=dim, method=record.method, step=record.step, kT=record.kT,
        gamma=record.gamma, n_steps=record.n_steps, burn_in=record.burn_in, thin=record.thin, seed=record.seed,
        backend=record.backend, has_energies=record.energies is not None, has_accepted=record.accepted is not None,
        has_momentum=record.final_momentum is not None, config=config, overwrite=overwrite,
    )
    try:
        block = stream_block(n_chains, dim)
        for i0 in range(0, n_kept, block):
            i1 = min(i0 + block, n_kept)
            w.write(i0, record.samples[i0:i1], None if record.energies is None else record.energies[i0:i1])
        w.finish(final_position=record.final_position, final_momentum=record.final_momentum,
                 accepted=record.accepted, wall_time=record.wall_time, compile_time=record.compile_time,
                 attrs=record.attrs)
    except BaseException as exc:
        w.abort(interrupted=isinstance(exc, KeyboardInterrupt))
        raise
    assert w.final_file is not None  # finish() published the file
    return w.final_file


class ChainsFile(_LazyFile):
    """Lazy view of a chains file: metadata now, samples on demand.

    Attributes:
        path: the file.
        status: ``"complete"``, ``"interrupted"`` or ``"running"`` (being written, killed or failed).
        n_committed: kept samples safely on disk (the view never shows more); ``n_expected``: of the full run.
        samples: :class:`~sde_toolkit.io.LazyFrames` ``(n_committed, n_chains, dim)``.
        energies: :class:`~sde_toolkit.io.LazyFrames` ``(n_committed, n_chains)`` or ``None``.
        steps, t: ``(n_committed,)`` sampler steps and times of the kept samples.
        accepted: ``(n_chains,)`` MALA accept counts (``None`` otherwise).
        config: the run's parameters (dict); meta: every attribute of ``/mcmc``.
    """

    def __init__(self, path, allow_partial: bool = False, *, force: bool = False, _warn: bool = True):
        p = self.path = self._resolve(path)
        with _h5py().File(p, "r") as f:
            if GROUP not in f or POSITION not in f:
                raise ValueError(f"{p} is not an sde_toolkit chains file (no {GROUP} and {POSITION})")
            g = f[GROUP]
            self.meta = {k: _attr(v) for k, v in g.attrs.items()}
            self.n_committed = int(g["n_committed"][()])
            self.status = str(self.meta["status"])
            self.n_expected = int(self.meta["n_kept_expected"])
            self.integrity = check_chains_file(p, f)
            apply_report(self.integrity, force)
            self.config = json.loads(self.meta["config"])
            n = self.n_committed
            self.steps = checked_read(p, f[POSITION]["step"], slice(0, n), 0, n)
            self.t = checked_read(p, f[POSITION]["time"], slice(0, n), 0, n)
            self.accepted = checked_read(p, g["accepted"], ()) if "accepted" in g else None
            tail = f[POSITION]["value"].shape[1:]
            has_e = ENERGY in f
        self._check_complete(n, "samples", allow_partial, _warn, lambda: ValueError(
            f"{p}: incomplete chains (status {self.status!r}, {self.n_committed} of {self.n_expected} samples "
            "committed); pass allow_partial=True to read them"))
        self.samples = LazyFrames(self, f"{POSITION}/value", n, tail, np.float64)
        self.energies = LazyFrames(self, f"{ENERGY}/value", n, tail[:1], np.float64) if has_e else None

    @property
    def method(self) -> str:
        return str(self.meta["method"])

    @property
    def n_chains(self) -> int:
        return int(self.meta["n_chains"])

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def acceptance_rate(self) -> float | None:
        """Stored acceptance rate (MALA, complete runs), else ``None``."""
        v = self.meta.get("acceptance_rate")
        return None if v is None else float(v)

    def load(self) -> ChainsRecord:
        """The committed samples in memory as a :class:`ChainsRecord` (``Chains.from_record`` makes chains).

        For an incomplete file, ``n_steps`` and ``final_position`` describe the last committed kept sample.
        """
        with self._opened() as f:
            return _record_from(f, self.n_committed, complete=self.complete)

    def __repr__(self) -> str:
        return (f"ChainsFile({str(self.path)!r}, method={self.method!r}, status={self.status!r}, "
                f"samples={self.samples.shape})")


def open_chains(path, allow_partial: bool = False, *, force: bool = False) -> ChainsFile:
    """Open a chains file lazily (see :class:`ChainsFile`), after checking its digests.

    Raises:
        FileNotFoundError: no such file (nor ``<path>.partial``).
        ValueError: not a chains file, or an incomplete one without ``allow_partial=True``.
        IntegrityError: the provenance (config, parameters such as ``kT``, seed) or the status and
            ``n_committed`` are not what the writer recorded; ``force=True`` opens it with a warning.
    """
    return ChainsFile(path, allow_partial=allow_partial, force=force)


def read_chains(path, allow_partial: bool = False, *, force: bool = False) -> ChainsRecord:
    """Read a chains file into memory as a :class:`ChainsRecord` (exact round trip of :func:`write_chains` and
    ``langevin(..., out=)``; ``Chains.from_file(path)`` gives :class:`~sde_toolkit.mcmc.Chains`)."""
    return ChainsFile(path, allow_partial=allow_partial, force=force, _warn=allow_partial).load()
