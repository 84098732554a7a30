"""Fokker–Planck densities in HDF5 (the project's file family; h5py is imported lazily).

Layout (one group per file, documented in ``docs/fokker-planck.md``)::

    /fokker_planck                attrs: lower (dim,), upper (dim,), n (dim,) int64,
                                         boundary (dim, 2) strings [lower side, upper side] per axis,
                                         config (JSON text), complete (bool), n_committed (int), format_version
    /fokker_planck/t              (n_save,) float64, chunked, resizable
    /fokker_planck/p              (n_save, *grid.shape) float64, chunked, resizable along the first axis

Rows are written data first, then ``n_committed`` and a flush, so a killed writer leaves a readable file whose
first ``n_committed`` rows are valid. ``t`` and ``p`` carry HDF5's fletcher32 checksum (a flipped bit makes the
read fail with :class:`~sde_toolkit.io.integrity.ChecksumError`), and the writer holds ``<path>.partial.lock``
while it writes, so a second writer of the same file fails fast even with HDF5's locking off.

A format only: the grid travels as its plain dict (``Grid.to_dict()``: ``lower``, ``upper``, ``n``,
``boundary``); ``sde_toolkit.fokker_planck.read_density`` returns the record with a real ``Grid``
(``Grid.from_dict``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._fs import WriterLock, ignore_sigxfsz

GROUP = "fokker_planck"
FORMAT_VERSION = 1


def _h5py():
    import h5py

    return h5py


@dataclass(frozen=True)
class DensityRecord:
    """Densities read back from a file: ``t`` ``(n_save,)``, ``p`` ``(n_save, *n)``, the grid, config.

    ``grid`` is the grid's dict (``lower``, ``upper``, ``n`` lists, ``boundary`` as ``[lower side, upper side]``
    per axis) from :func:`read_density`, or a ``Grid`` from ``sde_toolkit.fokker_planck.read_density``.
    """

    t: np.ndarray
    p: np.ndarray
    grid: Any
    config: dict
    complete: bool


class DensityWriter:
    """Stream densities into ``/fokker_planck`` of an HDF5 file (a context manager).

    Args:
        path: file path; the file is created, or opened for appending when it exists.
        grid: the grid as a dict (``Grid.to_dict()``: ``lower``, ``upper``, ``n`` per axis and ``boundary`` as
            ``[lower side, upper side]`` per axis).
        config: JSON-able run description stored in the ``config`` attribute.
        overwrite: replace an existing ``/fokker_planck`` group (otherwise an error).
    """

    def __init__(self, path, grid: Mapping[str, Any], config: dict | None = None, overwrite: bool = False):
        self.path = os.fspath(path)
        self.grid = _grid_dict(grid)
        self.shape = tuple(self.grid["n"])
        self.config = dict(config or {})
        self.overwrite = overwrite
        self._file = None
        self._lock: WriterLock | None = None
        self._n = 0

    def __enter__(self) -> DensityWriter:
        from .h5md import partial_path

        h5py = _h5py()
        ignore_sigxfsz()
        lock = WriterLock(partial_path(self.path)).acquire()
        try:
            f = h5py.File(self.path, "a")
        except BaseException:
            lock.release()
            raise
        try:
            if GROUP in f:
                if not self.overwrite:
                    raise ValueError(f"{self.path} already has a /{GROUP} group (pass overwrite=True)")
                del f[GROUP]
            g = f.create_group(GROUP)
            d = self.grid
            g.attrs["lower"] = np.asarray(d["lower"], dtype=np.float64)
            g.attrs["upper"] = np.asarray(d["upper"], dtype=np.float64)
            g.attrs["n"] = np.asarray(d["n"], dtype=np.int64)
            g.attrs["boundary"] = np.asarray(d["boundary"], dtype=h5py.string_dtype())
            g.attrs["config"] = json.dumps(self.config, default=str)
            g.attrs["format_version"] = FORMAT_VERSION
            g.attrs["complete"] = False
            g.attrs["n_committed"] = 0
            shape = self.shape
            g.create_dataset("t", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(256,), fletcher32=True)
            g.create_dataset("p", shape=(0, *shape), maxshape=(None, *shape), dtype=np.float64,
                             chunks=(1, *shape), fletcher32=True)
            f.flush()
        except BaseException:
            f.close()
            lock.release()
            raise
        self._file = f
        self._lock = lock
        return self

    def append(self, t: float, p) -> None:
        """Append one density ``p`` (shape ``grid.shape``) at time ``t`` and flush."""
        if self._file is None:
            raise RuntimeError("DensityWriter is not open (use it as a context manager)")
        p = np.asarray(p, dtype=np.float64)
        if p.shape != self.shape:
            raise ValueError(f"p must have the grid shape {self.shape}, got {p.shape}")
        g = self._file[GROUP]
        n = self._n
        g["t"].resize((n + 1,))
        g["p"].resize((n + 1, *p.shape))
        g["t"][n] = float(t)
        g["p"][n] = p
        self._n = n + 1
        g.attrs["n_committed"] = self._n
        self._file.flush()

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._file is None:
            return
        try:
            self._file[GROUP].attrs["complete"] = exc_type is None
            self._file.flush()
        finally:
            self._file.close()
            self._file = None
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.release()


def write_density(path, t, p, grid: Mapping[str, Any], config: dict | None = None, overwrite: bool = False) -> None:
    """Write densities ``p`` ``(n_save, *n)`` at times ``t`` ``(n_save,)`` on ``grid`` (its dict) to ``path``.

    ``EvolveResult.to_file(path)`` writes an evolution result this way (with its method and dt in the config).
    """
    t = np.asarray(t, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if t.ndim != 1 or p.shape[:1] != t.shape:
        raise ValueError(f"t must be (n_save,) and p (n_save, *grid shape); got {t.shape} and {p.shape}")
    with DensityWriter(path, grid, config, overwrite=overwrite) as w:
        for ti, pi in zip(t, p):
            w.append(ti, pi)


def _grid_dict(grid: Mapping[str, Any]) -> dict:
    """Check the grid dict's keys and shapes; returns plain lists."""
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict (Grid.to_dict()), got {type(grid).__name__}")
    missing = [k for k in ("lower", "upper", "n", "boundary") if k not in grid]
    if missing:
        raise ValueError(f"grid dict lacks {missing}; expected lower, upper, n, boundary")
    lower = np.atleast_1d(np.asarray(grid["lower"], dtype=np.float64))
    upper = np.atleast_1d(np.asarray(grid["upper"], dtype=np.float64))
    n = np.atleast_1d(np.asarray(grid["n"], dtype=np.int64))
    boundary = [[str(s) for s in side] for side in grid["boundary"]]
    dim = n.size
    if lower.shape != (dim,) or upper.shape != (dim,) or len(boundary) != dim or any(len(b) != 2 for b in boundary):
        raise ValueError(f"grid dict: lower, upper, n and boundary must have one entry per axis, got {dict(grid)!r}")
    return {"lower": lower.tolist(), "upper": upper.tolist(), "n": n.tolist(), "boundary": boundary}


def read_density(path, allow_partial: bool = True) -> DensityRecord:
    """Read ``/fokker_planck`` back: the committed rows, the grid (as a dict) and the config.

    Raises:
        ValueError: when the file has no ``/fokker_planck`` group, or it is incomplete and ``allow_partial`` is
            ``False``.
    """
    h5py = _h5py()
    with h5py.File(os.fspath(path), "r") as f:
        if GROUP not in f:
            raise ValueError(f"{os.fspath(path)} has no /{GROUP} group")
        g = f[GROUP]
        n = int(g.attrs["n_committed"])
        complete = bool(g.attrs["complete"])
        if not complete and not allow_partial:
            raise ValueError(f"{os.fspath(path)}: /{GROUP} is incomplete ({n} rows committed)")
        boundary = [[s.decode() if isinstance(s, bytes) else str(s) for s in row] for row in g.attrs["boundary"]]
        grid = {"lower": np.asarray(g.attrs["lower"], dtype=np.float64).tolist(),
                "upper": np.asarray(g.attrs["upper"], dtype=np.float64).tolist(),
                "n": [int(v) for v in g.attrs["n"]], "boundary": boundary}
        from .h5md import checked_read

        t = checked_read(path, g["t"], slice(0, n), 0, n)
        p = checked_read(path, g["p"], slice(0, n), 0, n)
        config = json.loads(g.attrs["config"])
    return DensityRecord(t=t, p=p, grid=grid, config=config, complete=complete)
