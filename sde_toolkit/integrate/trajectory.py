"""Result containers and errors of the integrators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class DivergenceError(FloatingPointError):
    """A state became non-finite (or exceeded ``max_abs``) during a run.

    Attributes: ``step`` (1-based index of the step that produced the bad state), ``time`` (its time),
    ``n_paths`` (how many paths were bad at that step), ``paths`` (their indices, at most 20 listed),
    ``trajectory`` (the frames saved before the divergence, when kept in memory), ``out`` (the file, if any).
    """

    def __init__(self, step: int, time: float, n_paths: int, paths, trajectory=None, out=None):
        self.step, self.time, self.n_paths = int(step), float(time), int(n_paths)
        self.paths = np.asarray(paths, dtype=np.int64)
        self.trajectory = trajectory
        self.out = out
        shown = ", ".join(str(p) for p in self.paths[:20]) + (" ..." if self.paths.size > 20 else "")
        where = f"; frames saved so far are kept in {out}" if out else ""
        super().__init__(
            f"the state became non-finite or too large at step {self.step} (t = {self.time:.6g}) "
            f"in {self.n_paths} path(s): [{shown}]{where}. Reduce dt or check the drift/diffusion."
        )


@dataclass
class Trajectory:
    """Saved states of an ensemble.

    Attributes:
        t: ``(n_save,)`` times, ``t0 + k dt save_every`` computed (never accumulated), ending at ``t1``.
        x: ``(n_save, n_paths, dim)`` states.
        steps: ``(n_save,)`` integer step index of each frame.
        meta: run facts (seed, method, dt, driver, noise scheme version, status).
    """

    t: np.ndarray
    x: Any
    steps: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def n_paths(self) -> int:
        return int(self.x.shape[1])

    @property
    def dim(self) -> int:
        return int(self.x.shape[2])

    @property
    def final(self) -> np.ndarray:
        """The last saved state, ``(n_paths, dim)``."""
        return np.asarray(self.x[-1])

    @classmethod
    def from_file(cls, path, allow_partial: bool = False, *, force: bool = False) -> Trajectory:
        """Load an H5MD trajectory written by ``simulate(..., out=path)`` into memory.

        ``allow_partial=True`` reads the committed frames of an incomplete run (with an ``IncompleteRunWarning``).
        The file is verified first (``IntegrityError`` naming what differs; ``force=True`` reads it anyway with a
        warning); frames that fail their checksum raise ``ChecksumError``.
        """
        from ..io import open_run

        return cls.from_run(open_run(path, allow_partial=allow_partial, force=force), lazy=False)

    @classmethod
    def from_run(cls, run, lazy: bool = True) -> Trajectory:
        """The trajectory of an opened run file (:func:`sde_toolkit.io.open`, an ``H5MDRun``).

        Args:
            run: the lazy view of the file.
            lazy: keep ``x`` as the file's lazy frame view (read on access); ``False`` loads the frames.

        ``meta`` is the stored run plan plus ``status``, ``file`` and ``n_committed``.
        """
        meta = dict(run.plan)
        meta.update(status=run.status, file=str(run.path), n_committed=run.n_committed)
        if lazy:
            return cls(t=run.t, x=run.position_view(), steps=run.steps, meta=meta)
        if run.x is None:
            raise ValueError(f"{run.path} stores no positions (output.positions = false); "
                             f"read run.observables instead")
        return cls(t=np.asarray(run.t), x=run.x[:], steps=np.asarray(run.steps), meta=meta)

    def to_xarray(self):
        """The trajectory as an ``xarray.Dataset`` (optional extra ``netcdf``): coordinates ``time`` (the saved
        times), ``path`` and ``dim`` (indices), variables ``x(time, path, dim)`` and ``step(time)``, CF
        attributes (units ``"1"``: model time and positions are dimensionless) and the run facts in ``meta``
        as global attributes. ``ds.to_netcdf(path)`` writes it; see :mod:`sde_toolkit.io.netcdf`.

        Raises:
            MissingExtraError: xarray is not installed (names the extra).
        """
        from ..io.netcdf import trajectory_dataset

        return trajectory_dataset(self.t, np.asarray(self.x), self.steps,
                                  attrs={k: v for k, v in self.meta.items() if v is not None})

    def __repr__(self) -> str:
        return (f"Trajectory(n_save={len(self.t)}, n_paths={self.x.shape[1]}, dim={self.x.shape[2]}, "
                f"t=[{self.t[0]:.6g}, {self.t[-1]:.6g}], method={self.meta.get('method')!r})")
