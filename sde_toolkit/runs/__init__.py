"""Runs: jobs built from configs, and resuming a run from its file (layer above the engines and the config).

* ``prepare_simulation(cfg, out=None, overwrite=None, check_output=True)``: a :class:`SimulationJob` (SDE,
  ``x0``, ``simulate`` and writer options, output path, the config with its seeds filled in), every check done
  before any work.
* ``check_output_path(path, overwrite)``: the output checks on their own.
* ``resume(path, sde=None, progress=None, *, threads=None, flush_interval=None)`` (``st.resume``): continue an
  interrupted or killed run, bit-identical to an unbroken one.
* ``sweep(config, params, replicas=1, workers=None, scheduler=None, out=DIR, shard_paths=None)``
  (``st.sweep``): a parameter sweep / sharded ensemble on Dask, identical for any worker count, resumable.
"""

from __future__ import annotations

from .jobs import SimulationJob, check_output_path, prepare_simulation
from .resume import ResumeError, resume
from .sweep import SweepResult, sweep

__all__ = ["SimulationJob", "prepare_simulation", "check_output_path", "resume", "ResumeError", "sweep", "SweepResult"]
