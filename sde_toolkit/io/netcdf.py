"""xarray, NetCDF and ArviZ forms of trajectories and MCMC chains (optional extras ``netcdf`` and ``arviz``).

Formats only: functions take arrays plus attribute dicts (what the engines' ``Trajectory.to_xarray`` and
``Chains.to_arviz`` hand over, or what the file readers return) and build the outside libraries' objects.

Trajectory dataset (CF-1.10 conventions; model time and positions are dimensionless, units ``"1"``)::

    coordinates  time(time) float64   attrs long_name, units "1", axis "T"
                 path(path) int64     attrs long_name "path index"
                 dim(dim)   int64     attrs long_name "coordinate index"
    variables    x(time, path, dim)   positions; step(time) int64 integrator step of each frame
                 mean, variance, running_mean, running_variance (time, dim), histogram (time, dim, bin) and
                 histogram_bin_edges (dim, bin_edge): the observables a run stored
    attrs        Conventions, title, source, history, status, config, plan (JSON text)

InferenceData of chains (ArviZ's ``chain`` and ``draw`` dimensions; ours are ``(n_kept, n_chains, dim)``, so the
samples are transposed, never reshaped)::

    posterior     x(chain, draw, dim)
    sample_stats  energy(chain, draw): potential energy V of each kept sample (Potential targets);
                  acceptance_rate(chain): accepted fraction of the MALA proposals after burn-in (per chain: the
                  sampler counts acceptances per chain, not per draw)
    attrs         method, step, kT, gamma, n_steps, burn_in, thin, seed, backend, package version
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._version import __version__

NETCDF_EXTRA_HINT = "NetCDF export needs the optional extra 'netcdf': pip install 'sde_toolkit[netcdf]' (xarray, netCDF4)"
ARVIZ_EXTRA_HINT = "ArviZ export needs the optional extra 'arviz': pip install 'sde_toolkit[arviz]'"
OBSERVABLE_LONG_NAMES = {
    "mean": "ensemble mean over paths",
    "variance": "ensemble variance over paths (ddof = 0)",
    "running_mean": "mean over paths and all saved frames up to this one",
    "running_variance": "variance about running_mean over the same samples",
    "histogram": "counts per bin [e_i, e_i+1), last bin closed",
}


class MissingExtraError(ImportError):
    """An optional dependency group (extra) is not installed."""


def require_xarray():
    try:
        import xarray
    except ImportError:
        raise MissingExtraError(NETCDF_EXTRA_HINT) from None
    return xarray


def require_arviz():
    try:
        import arviz
    except ImportError:
        raise MissingExtraError(ARVIZ_EXTRA_HINT) from None
    return arviz


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str)


def trajectory_dataset(t, x, steps, *, observables: Mapping[str, Any] | None = None, edges=None,
                       attrs: Mapping[str, Any] | None = None):
    """An ``xarray.Dataset`` of a trajectory (layout in the module docstring).

    Args:
        t: ``(n_frames,)`` times; x: ``(n_frames, n_paths, dim)`` positions (any array-like, read whole) or
            ``None`` for runs that stored observables only; steps: ``(n_frames,)`` integer steps.
        observables: name -> ``(n_frames, dim)`` (``histogram``: ``(n_frames, dim, bins)``) arrays.
        edges: ``(dim, bins + 1)`` histogram bin edges.
        attrs: global attributes (``status``, ``config``, ``plan``, ``source``, ...); dicts become JSON text.

    Raises:
        MissingExtraError: xarray is not installed (names the extra).
        ValueError: shapes that do not agree.
    """
    xr = require_xarray()
    t = np.asarray(t, dtype=np.float64)
    steps = np.asarray(steps, dtype=np.int64)
    n = t.shape[0]
    if t.ndim != 1 or steps.shape != (n,):
        raise ValueError(f"t and steps must be (n_frames,) arrays of one length, got {t.shape} and {steps.shape}")
    data_vars: dict[str, Any] = {
        "step": (("time",), steps, {"long_name": "integrator step of the frame"}),
    }
    dim = None
    n_paths = None
    if x is not None:
        xa = np.asarray(x)
        if xa.ndim != 3 or xa.shape[0] != n:
            raise ValueError(f"x must be (n_frames, n_paths, dim) with {n} frames, got {xa.shape}")
        n_paths, dim = xa.shape[1], xa.shape[2]
        data_vars["x"] = (("time", "path", "dim"), xa, {"long_name": "position", "units": "1"})
    for name, value in (observables or {}).items():
        v = np.asarray(value)
        if v.shape[0] != n:
            raise ValueError(f"observable {name} has {v.shape[0]} frames, t has {n}")
        if dim is None:
            dim = v.shape[1]
        oattrs = {"long_name": OBSERVABLE_LONG_NAMES.get(name, name)}
        if name == "histogram":
            data_vars[name] = (("time", "dim", "bin"), v, oattrs)
        else:
            data_vars[name] = (("time", "dim"), v, {**oattrs, "units": "1"})
    if edges is not None:
        e = np.asarray(edges, dtype=np.float64)
        data_vars["histogram_bin_edges"] = (("dim", "bin_edge"), e, {"long_name": "histogram bin edges",
                                                                      "units": "1"})
    coords: dict[str, Any] = {
        "time": ("time", t, {"long_name": "model time (dimensionless)", "units": "1", "axis": "T"}),
    }
    if n_paths is not None:
        coords["path"] = ("path", np.arange(n_paths, dtype=np.int64), {"long_name": "path index"})
    if dim is not None:
        coords["dim"] = ("dim", np.arange(dim, dtype=np.int64), {"long_name": "coordinate index"})
    gattrs = {"Conventions": "CF-1.10", "title": "sde_toolkit trajectory",
              "history": f"written by sde_toolkit {__version__}"}
    for k, v in (attrs or {}).items():
        if v is not None:
            gattrs[k] = _text(v)
    return xr.Dataset(data_vars, coords=coords, attrs=gattrs)


def write_netcdf(ds, path) -> None:
    """``ds.to_netcdf(path)`` (netCDF4 engine), naming the extra when the engine is missing."""
    try:
        ds.to_netcdf(path)
    except (ImportError, ValueError) as exc:
        if "netCDF4" in str(exc) or "engine" in str(exc).lower():
            raise MissingExtraError(f"{NETCDF_EXTRA_HINT} ({exc})") from None
        raise


def chains_inference_data(samples, *, energies=None, accepted=None, n_sampled_steps: int | None = None,
                          attrs: Mapping[str, Any] | None = None):
    """An ``arviz.InferenceData`` of MCMC chains (layout in the module docstring).

    Args:
        samples: ``(n_kept, n_chains, dim)`` kept positions.
        energies: ``(n_kept, n_chains)`` potential energies, or ``None``.
        accepted: ``(n_chains,)`` accepted MALA proposals after burn-in, or ``None``.
        n_sampled_steps: steps after burn-in (the denominator of the acceptance rate; needed with
            ``accepted``).
        attrs: run parameters stored as attributes of both groups (dicts become JSON text).

    Raises:
        MissingExtraError: arviz is not installed (names the extra).
        ValueError: shapes that do not agree.
    """
    az = require_arviz()
    xr = require_xarray()
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 3:
        raise ValueError(f"samples must be (n_kept, n_chains, dim), got shape {s.shape}")
    n_kept, n_chains, dim = s.shape
    coords = {"chain": np.arange(n_chains), "draw": np.arange(n_kept), "dim": np.arange(dim)}
    gattrs: dict[str, Any] = {"creation_library": "sde_toolkit", "creation_library_version": __version__}
    for k, v in (attrs or {}).items():
        if v is not None:
            gattrs[k] = v if isinstance(v, (int, float, str)) else _text(v)
    posterior = xr.Dataset({"x": (("chain", "draw", "dim"), np.ascontiguousarray(s.transpose(1, 0, 2)))},
                           coords=coords, attrs=gattrs)
    stats: dict[str, Any] = {}
    if energies is not None:
        e = np.asarray(energies, dtype=np.float64)
        if e.shape != (n_kept, n_chains):
            raise ValueError(f"energies must be (n_kept, n_chains) = {(n_kept, n_chains)}, got {e.shape}")
        stats["energy"] = (("chain", "draw"), np.ascontiguousarray(e.T),
                           {"long_name": "potential energy V of the kept sample"})
    if accepted is not None:
        a = np.asarray(accepted, dtype=np.float64)
        if a.shape != (n_chains,):
            raise ValueError(f"accepted must be (n_chains,) = ({n_chains},), got {a.shape}")
        if not n_sampled_steps or n_sampled_steps < 1:
            raise ValueError("n_sampled_steps (steps after burn-in) must be >= 1 with accepted")
        stats["acceptance_rate"] = (("chain",), a / float(n_sampled_steps),
                                    {"long_name": "accepted fraction of MALA proposals after burn-in"})
    groups: dict[str, Any] = {"posterior": posterior}
    if stats:
        groups["sample_stats"] = xr.Dataset(stats, coords={k: coords[k] for k in ("chain", "draw")}, attrs=gattrs)
    return az.InferenceData(**groups)
