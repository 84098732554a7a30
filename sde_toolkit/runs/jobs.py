"""Jobs from configs: a validated config turned into everything ``simulate`` needs, checked before any work.

The config layer (:mod:`sde_toolkit.config`) owns the schemas and the pure builders (``build_sde``,
``build_initial``, ``integrate_options``, ``output_options``); this module resolves the seeds, checks the time grid
against the integrator's own rules (``make_plan``) and checks the output path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import (
    OUTPUT_SCHEMA,
    Config,
    ConfigError,
    build_initial,
    build_sde,
    initial_seed,
    integrate_options,
    output_options,
)

__all__ = ["SimulationJob", "prepare_simulation", "check_output_path"]


@dataclass
class SimulationJob:
    """Everything ``simulate`` needs, built and checked from a config before any work."""

    sde: Any
    x0: np.ndarray
    integrate: dict
    output: dict
    out: Path | None
    config: dict


def prepare_simulation(cfg: Config, out=None, overwrite: bool | None = None, check_output: bool = True) -> SimulationJob:
    """Build the SDE and x0, resolve seeds, and check the time grid and output path (raises ConfigError).

    The returned ``job.config`` is the config with seeds filled in: stored in the file, it reruns the run
    exactly and is what ``resume`` rebuilds the SDE from.
    """
    from .._random import resolve_seed
    from ..integrate.simulate import _validate_x0, make_plan

    for name in ("sde", "initial", "integrate"):
        if name not in cfg:
            raise ConfigError(f"missing required table [{name}]")
    tables = cfg.to_dict()
    tables.setdefault("output", OUTPUT_SCHEMA.validate({}))
    sde = build_sde(tables["sde"])
    it = tables["integrate"]
    if it.get("seed") is None:
        it["seed"] = resolve_seed(None).entropy
    if tables["initial"].get("seed") is None:
        tables["initial"]["seed"] = int(np.random.default_rng(initial_seed(tables["initial"], it["seed"]))
                                        .integers(2**63))
    x0 = build_initial(tables["initial"], sde.dim, base_dir=cfg.base_dir)
    opts = integrate_options(it)
    try:
        x = _validate_x0(sde, x0)
        make_plan(sde, x, t0=opts["t0"], t1=opts["t1"], dt=opts["dt"], save_every=opts["save_every"],
                  method=opts["method"], seed=opts["seed"], driver=opts["driver"],
                  max_abs=opts.get("max_abs", math.inf), precision=opts["precision"])
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        key = next((k for k in ("precision", "method", "driver", "dt", "t1", "t0", "save_every", "max_abs")
                    if k in msg), None)
        raise ConfigError(msg, "integrate", key) from None
    oo = output_options(tables["output"])
    if overwrite is not None:
        oo["overwrite"] = bool(overwrite)
        tables["output"]["overwrite"] = bool(overwrite)
    path = out if out is not None else tables["output"].get("path")
    if path is not None:
        path = Path(path)
        tables["output"]["path"] = str(path)
        if check_output:
            check_output_path(path, oo["overwrite"])
    return SimulationJob(sde=sde, x0=x0, integrate=opts, output=oo, out=path, config=tables)


def check_output_path(path: Path, overwrite: bool) -> None:
    """Raise :class:`ConfigError` when the output folder is missing or the file exists without overwrite."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ConfigError(f"output folder {parent} does not exist", "output", "path")
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; give a file name", "output", "path")
    if path.exists() and not overwrite:
        raise ConfigError(f"{path} already exists; pass --overwrite (or overwrite = true) to replace it", "output",
                          "path")
