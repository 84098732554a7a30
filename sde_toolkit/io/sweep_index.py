"""The index file of a sweep (``DIR/sweep.h5``): one group per parameter point, positions as virtual datasets.

Layout (readable with plain h5py; the shard files are H5MD trajectories, :mod:`.h5md`)::

    /                         attrs: sweep (JSON text of the sweep's spec), format = "sde_toolkit.sweep",
                              version = 1
    /points/<i>               attrs: params (JSON of the point's values), status ("complete" | "failed"),
                              error (text, "" when none), n_paths (paths per replica), replicas,
                              shards (JSON list of relative shard paths), digests (JSON list, one per shard)
    /points/<i>/position      virtual dataset (n_frames, n_paths * replicas, dim) over the shards'
                              /particles/all/position/value; replica r, paths [a, b) of the block live at
                              columns r * n_paths + [a, b). Absent for a failed point.
    /points/<i>/time, step    (n_frames,) copies of the saved times and steps

The sources are stored as paths relative to the index file's folder, so the folder can be moved (HDF5
resolves a relative source path against the folder of the file holding the virtual dataset). The file is
written under a private ``sweep.h5.<pid>.<random>.tmp`` and renamed into place, so a reader never sees half an index.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .h5md import POSITION, _h5py

__all__ = ["write_sweep_index", "SWEEP_FORMAT"]

SWEEP_FORMAT = "sde_toolkit.sweep"
SWEEP_FORMAT_VERSION = 1


def write_sweep_index(path: os.PathLike | str, spec_json: str, points: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``DIR/sweep.h5`` (see the module docstring) and return its path.

    Args:
        path: the index file.
        spec_json: the sweep's spec as JSON text (stored as the root attribute ``sweep``).
        points: one mapping per point: ``params`` (dict), ``status``, ``error``, ``n_paths``, ``replicas``,
            ``digests`` (list), ``time``/``step`` (arrays, or ``None`` for a failed point), ``dim``,
            ``dtype`` (of the shards' positions) and ``sources``: a list of ``(shard path relative to the index
            folder, replica, first path, paths in the block)``.
    """
    h5py = _h5py()
    path = Path(path)
    # a name of our own ("w-": never truncates a file someone else holds), renamed into place when complete
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        _write_index(h5py, tmp, spec_json, points)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def _write_index(h5py, tmp: Path, spec_json: str, points) -> None:
    with h5py.File(tmp, "w-") as f:
        f.attrs["format"] = SWEEP_FORMAT
        f.attrs["version"] = SWEEP_FORMAT_VERSION
        f.attrs["sweep"] = spec_json
        grp = f.create_group("points")
        for i, p in enumerate(points):
            g = grp.create_group(str(i))
            g.attrs["params"] = json.dumps(p["params"], sort_keys=True)
            g.attrs["status"] = str(p["status"])
            g.attrs["error"] = str(p.get("error") or "")
            n, reps = int(p["n_paths"]), int(p["replicas"])
            g.attrs["n_paths"] = n
            g.attrs["replicas"] = reps
            g.attrs["shards"] = json.dumps([s[0] for s in p["sources"]])
            g.attrs["digests"] = json.dumps(list(p.get("digests", [])))
            if p["status"] != "complete" or p.get("time") is None:
                continue
            t = np.asarray(p["time"], dtype=np.float64)
            g.create_dataset("time", data=t)
            g.create_dataset("step", data=np.asarray(p["step"], dtype=np.int64))
            dim, dtype = int(p["dim"]), np.dtype(p["dtype"])
            layout = h5py.VirtualLayout(shape=(t.size, n * reps, dim), dtype=dtype)
            for rel, r, a, nb in p["sources"]:
                if Path(rel).is_absolute():
                    raise ValueError(f"shard path {rel} must be relative to the index folder")
                src = h5py.VirtualSource(str(rel), f"{POSITION}/value", shape=(t.size, int(nb), dim), dtype=dtype)
                col = int(r) * n + int(a)
                layout[:, col:col + int(nb), :] = src
            g.create_virtual_dataset("position", layout, fillvalue=np.nan)
