"""Fokker–Planck densities in HDF5 (the project's file family; h5py is imported lazily).

Layout (one group per file, documented in ``docs/fokker-planck.md``)::

    /fokker_planck                attrs: lower (dim,), upper (dim,), n (dim,) int64,
                                         boundary (dim, 2) strings [lower side, upper side] per axis,
                                         config (JSON text), complete (bool), n_committed (int), format_version
    /fokker_planck/t              (n_save,) float64, chunked, resizable
    /fokker_planck/p              (n_save, *grid.shape) float64, chunked, resizable along the first axis

Rows are written data first, then ``n_committed`` and a flush, so a killed writer leaves a readable file whose
first ``n_committed`` rows are valid.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

GROUP = "fokker_planck"
FORMAT_VERSION = 1


def _h5py():
    import h5py

    return h5py


@dataclass(frozen=True)
class DensityRecord:
    """Densities read back from a file: ``t`` ``(n_save,)``, ``p`` ``(n_save, *grid.shape)``, the grid, config."""

    t: np.ndarray
    p: np.ndarray
    grid: Any
    config: dict
    complete: bool


class DensityWriter:
    """Stream densities into ``/fokker_planck`` of an HDF5 file (a context manager).

    Args:
        path: file path; the file is created, or opened for appending when it exists.
        grid: the :class:`~sde_toolkit.fokker_planck.Grid`.
        config: JSON-able run description stored in the ``config`` attribute.
        overwrite: replace an existing ``/fokker_planck`` group (otherwise an error).
    """

    def __init__(self, path, grid, config: dict | None = None, overwrite: bool = False):
        self.path = os.fspath(path)
        self.grid = grid
        self.config = dict(config or {})
        self.overwrite = overwrite
        self._file = None
        self._n = 0

    def __enter__(self) -> DensityWriter:
        h5py = _h5py()
        f = h5py.File(self.path, "a")
        try:
            if GROUP in f:
                if not self.overwrite:
                    raise ValueError(f"{self.path} already has a /{GROUP} group (pass overwrite=True)")
                del f[GROUP]
            g = f.create_group(GROUP)
            d = self.grid.to_dict()
            g.attrs["lower"] = np.asarray(d["lower"], dtype=np.float64)
            g.attrs["upper"] = np.asarray(d["upper"], dtype=np.float64)
            g.attrs["n"] = np.asarray(d["n"], dtype=np.int64)
            g.attrs["boundary"] = np.asarray(d["boundary"], dtype=h5py.string_dtype())
            g.attrs["config"] = json.dumps(self.config, default=str)
            g.attrs["format_version"] = FORMAT_VERSION
            g.attrs["complete"] = False
            g.attrs["n_committed"] = 0
            shape = tuple(self.grid.shape)
            g.create_dataset("t", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(256,))
            g.create_dataset("p", shape=(0, *shape), maxshape=(None, *shape), dtype=np.float64,
                             chunks=(1, *shape))
            f.flush()
        except BaseException:
            f.close()
            raise
        self._file = f
        return self

    def append(self, t: float, p) -> None:
        """Append one density ``p`` (shape ``grid.shape``) at time ``t`` and flush."""
        if self._file is None:
            raise RuntimeError("DensityWriter is not open (use it as a context manager)")
        p = np.asarray(p, dtype=np.float64)
        if p.shape != tuple(self.grid.shape):
            raise ValueError(f"p must have the grid shape {tuple(self.grid.shape)}, got {p.shape}")
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


def write_density(path, result, config: dict | None = None, overwrite: bool = False) -> None:
    """Write an :class:`~sde_toolkit.fokker_planck.EvolveResult` (``t``, ``p``, ``grid``) to ``path``."""
    cfg = {"method": getattr(result, "method", None), "dt": getattr(result, "dt", None), **(config or {})}
    with DensityWriter(path, result.grid, cfg, overwrite=overwrite) as w:
        for ti, pi in zip(result.t, result.p):
            w.append(ti, pi)


def read_density(path, allow_partial: bool = True) -> DensityRecord:
    """Read ``/fokker_planck`` back: the committed rows, the grid and the config.

    Raises:
        ValueError: when the file has no ``/fokker_planck`` group, or it is incomplete and ``allow_partial`` is
            ``False``.
    """
    from ..fokker_planck.grid import Grid

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
        grid = Grid(g.attrs["lower"], g.attrs["upper"], g.attrs["n"], [tuple(b) for b in boundary])
        t = g["t"][:n]
        p = g["p"][:n]
        config = json.loads(g.attrs["config"])
    return DensityRecord(t=t, p=p, grid=grid, config=config, complete=complete)
