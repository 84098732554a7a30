"""Files: H5MD trajectories (streaming writer, crash safety, exact resume, lazy reader), export.

h5py is imported only inside this package, and only when a file is touched.

* ``open_sink(out, plan, sde, x0, **options)``: the writer behind ``simulate(..., out=path)``.
* ``open(path, allow_partial=False)``: a lazy :class:`H5MDRun` view (``.t``, ``.x``, ``.config``,
  ``.status``, ``.n_committed``, ``.observables``); raises :class:`IncompleteRunError` on incomplete runs.
* ``load_trajectory(path)``: the whole run in memory as a :class:`~sde_toolkit.integrate.Trajectory`.
* ``resume(path, sde=None)``: continue a killed or interrupted run, bit-identical to an unbroken one.
* ``export(path, format, out)``: npz, csv (long format) or NetCDF (optional extra ``netcdf``).
* ``write_chains(chains, path)``, ``read_chains(path)``, ``open_chains(path)``: MCMC chains (the file that
  ``st.mcmc.langevin(..., out=path)`` streams into), exact round trip and a lazy :class:`ChainsFile` view.

The layout is documented in ``docs/file-format.md``.
"""

from __future__ import annotations

import importlib

from .chains import ChainsFile, ChainsWriter, open_chains, read_chains, write_chains
from .export import FORMATS, MissingExtraError, export
from .h5md import (
    H5MDRun,
    H5MDWriter,
    IncompleteRunError,
    IncompleteRunWarning,
    LazyFrames,
    ResumeError,
    final_path,
    load_trajectory,
    open_run,
    open_sink,
    partial_path,
    resume,
)
from .observables import OBSERVABLE_NAMES

open = open_run  # noqa: A001 - ``st.io.open(path)`` is the public name (DESIGN.md)

# Fokker–Planck densities live in density.py (another module's owner); re-exported lazily when present.
_DENSITY = ("write_density", "read_density", "DensityRecord", "DensityWriter")

__all__ = [
    "open",
    "open_run",
    "open_sink",
    "load_trajectory",
    "resume",
    "export",
    "FORMATS",
    "H5MDRun",
    "H5MDWriter",
    "LazyFrames",
    "IncompleteRunError",
    "IncompleteRunWarning",
    "ResumeError",
    "MissingExtraError",
    "OBSERVABLE_NAMES",
    "partial_path",
    "final_path",
    "write_chains",
    "read_chains",
    "open_chains",
    "ChainsFile",
    "ChainsWriter",
]


def __getattr__(name: str):
    if name in _DENSITY:
        mod = importlib.import_module(".density", __name__)
        value = getattr(mod, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sde_toolkit.io' has no attribute {name!r}")
