"""Files: the formats only. H5MD trajectories (streaming writer, crash safety, lazy reader), MCMC chains,
Fokker–Planck densities, export, and the summary that ``sde-toolkit inspect`` prints.

io knows no engine, no config and no runner: writers take arrays plus a header dict, readers return records
and lazy views, and the engines build their own objects from them (``Trajectory.from_file`` /
``Trajectory.from_run``, ``Chains.from_file`` / ``Chains.from_record``, ``Grid.from_dict``). h5py is imported
only inside this package, and only when a file is touched.

* ``open_sink(out, plan, save_steps, x0, **options)``: the writer behind ``simulate(..., out=path)`` (``plan``
  is the run plan's header dict).
* ``open(path, allow_partial=False)``: a lazy :class:`H5MDRun` view (``.t``, ``.x``, ``.config``, ``.plan``,
  ``.status``, ``.n_committed``, ``.observables``, ``.checkpoint()``); raises :class:`IncompleteRunError` on
  incomplete runs. Continuing a killed run is ``sde_toolkit.runs.resume`` (``st.resume``).
* ``read_h5md_positions(path, group=None, frame=-1)``: one frame of ``/particles/<group>/position`` from any
  H5MD file (ours verified and cut to the committed frames; other programs' as H5MD says).
* ``summarize(path, verify=True)``: groups, datasets, status, commit record, run attributes and verification
  (digests, checksums) of any HDF5 file.
* ``export(path, format, out, overwrite=False)``: npz, csv (long format) or NetCDF (optional extra ``netcdf``;
  CF coordinates ``time``, ``path``, ``dim``), and ``"arviz"`` for chains files (ArviZ's ``InferenceData`` as
  NetCDF); never onto its input, never over an existing file without ``overwrite``. The xarray and ArviZ forms
  themselves are built in :mod:`.netcdf` (``Trajectory.to_xarray``, ``Chains.to_arviz``).
* Verification (:mod:`.integrity`): readers check each file's provenance digest and status digest and raise
  :class:`IntegrityError` naming what differs (``force=True`` continues with an :class:`IntegrityWarning`);
  committed data carry fletcher32 checksums, and a failed read raises :class:`ChecksumError` (file, dataset,
  frames). Files of earlier versions (no digests) open with an :class:`IntegrityWarning`.
* ``write_chains(record, path)``, ``read_chains(path)``, ``open_chains(path)``: MCMC chains (the file that
  ``st.mcmc.langevin(..., out=path)`` streams into) as a :class:`ChainsRecord` (arrays plus attributes), and a
  lazy :class:`ChainsFile` view.
* ``write_density``, ``read_density``, ``DensityWriter``, ``DensityRecord``: Fokker–Planck densities.

The layout is documented in ``docs/file-format.md``.
"""

from __future__ import annotations

import importlib

from .chains import ChainsFile, ChainsRecord, ChainsWriter, open_chains, read_chains, write_chains
from .export import FORMATS, MissingExtraError, export
from .h5md import (
    H5MDRun,
    H5MDWriter,
    IncompleteRunError,
    IncompleteRunWarning,
    LazyFrames,
    ResumeError,
    final_path,
    h5md_particles,
    integrity_problems,
    open_run,
    open_sink,
    partial_path,
    read_h5md_positions,
    resolve_author,
    summarize,
)
from .integrity import ChecksumError, IntegrityError, IntegrityWarning
from .observables import OBSERVABLE_NAMES

open = open_run  # noqa: A001 - ``st.io.open(path)`` is the public name (DESIGN.md)

# Fokker–Planck densities live in density.py; loaded on first use.
_DENSITY = ("write_density", "read_density", "DensityRecord", "DensityWriter")

__all__ = [
    "open",
    "open_run",
    "open_sink",
    "summarize",
    "read_h5md_positions",
    "h5md_particles",
    "resolve_author",
    "export",
    "FORMATS",
    "H5MDRun",
    "H5MDWriter",
    "LazyFrames",
    "IncompleteRunError",
    "IncompleteRunWarning",
    "ResumeError",
    "MissingExtraError",
    "IntegrityError",
    "ChecksumError",
    "IntegrityWarning",
    "integrity_problems",
    "OBSERVABLE_NAMES",
    "partial_path",
    "final_path",
    "write_chains",
    "read_chains",
    "open_chains",
    "ChainsFile",
    "ChainsRecord",
    "ChainsWriter",
    *_DENSITY,
]


def __getattr__(name: str):
    if name in _DENSITY:
        mod = importlib.import_module(".density", __name__)
        value = getattr(mod, name)
        globals()[name] = value
        return value
    if name == "resume":
        # ``st.io.resume`` was the home of resume before it moved up to the runs layer; say where it is now
        raise AttributeError("sde_toolkit.io has no attribute 'resume': continuing a run is "
                             "sde_toolkit.runs.resume (st.resume)")
    raise AttributeError(f"module 'sde_toolkit.io' has no attribute {name!r}")
