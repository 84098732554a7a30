"""Ensemble statistics computed on the fly, per saved frame, into ``/observables`` (H5MD time series).

For runs whose states are too many to keep (``positions = false``), the writer can store, per saved frame and
per coordinate:

* ``mean``: ensemble mean over paths, ``(n_frames, dim)`` float64;
* ``variance``: ensemble (population, ``ddof=0``) variance over paths, ``(n_frames, dim)`` float64;
* ``running_mean``: mean over paths *and* all saved frames so far (a time-and-ensemble average, the estimator
  of a stationary mean), ``(n_frames, dim)`` float64;
* ``running_variance``: the matching variance about ``running_mean``, ``(n_frames, dim)`` float64;
* ``histogram``: counts in fixed bins, ``(n_frames, dim, bins)`` int64; edges in
  ``/observables/histogram/bin_edges`` ``(dim, bins + 1)``. Bins are half-open ``[e_i, e_{i+1})`` except the
  last, which includes its right edge (as ``numpy.histogram``); values outside the range and NaN are not counted.

The running statistics are sums over frames in frame order, rebuilt on resume from the stored per-frame values
in the same order, so a resumed run's observables equal an unbroken run's bit for bit.
"""

from __future__ import annotations

import json

import numpy as np

OBSERVABLE_NAMES = ("mean", "variance", "running_mean", "running_variance", "histogram")


def histogram_counts(frames: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts ``(k, dim, bins)`` of ``frames`` ``(k, n_paths, dim)`` in per-coordinate uniform bins.

    ``edges`` is ``(dim, bins + 1)`` (uniform per row).
    """
    k, n, dim = frames.shape
    bins = edges.shape[1] - 1
    lo = edges[:, 0]
    hi = edges[:, -1]
    u = (frames - lo) / (hi - lo) * bins  # (k, n, dim)
    idx = np.floor(u)
    idx = np.where(frames == hi, bins - 1, idx)
    ok = (idx >= 0) & (idx < bins) & np.isfinite(u)
    fi = np.broadcast_to(np.arange(k)[:, None, None], frames.shape)
    ci = np.broadcast_to(np.arange(dim)[None, None, :], frames.shape)
    flat = (fi[ok] * dim + ci[ok]) * bins + idx[ok].astype(np.int64)
    return np.bincount(flat, minlength=k * dim * bins).reshape(k, dim, bins)


class ObservableAccumulator:
    """Computes the selected observables for each written frame and stores them (see module docstring)."""

    def __init__(self, names, dim: int, bins: int = 50, value_range=None):
        self.names = tuple(names)
        self.dim = int(dim)
        self.edges: np.ndarray | None = None  # (dim, bins + 1), set when "histogram" is among the names
        if "histogram" in self.names:
            if isinstance(bins, bool) or int(bins) != bins or bins < 1:
                raise ValueError(f"histogram_bins must be an integer >= 1, got {bins!r}")
            if value_range is None:
                raise ValueError("the histogram observable needs histogram_range = [low, high] (fixed bins)")
            r = np.asarray(value_range, dtype=np.float64)
            if r.shape == (2,):
                r = np.broadcast_to(r, (self.dim, 2))
            if r.shape != (self.dim, 2) or not np.isfinite(r).all() or np.any(r[:, 1] <= r[:, 0]):
                raise ValueError(f"histogram_range must be [low, high] with low < high (or one pair per "
                                 f"coordinate), got {value_range!r}")
            self.edges = np.stack([np.linspace(a, b, int(bins) + 1) for a, b in r])
        # running sums over frames (frame order): sum of per-frame means and of per-frame second moments
        self.n_frames = 0
        self.sum_mean = np.zeros(self.dim)
        self.sum_m2 = np.zeros(self.dim)

    def create(self, f, n_save: int, comp: dict) -> None:
        """Create the ``/observables`` groups, empty (the writer grows them frame by frame as they are
        written; every dataset with HDF5's fletcher32 checksum; ``comp`` adds compression to the values).
        ``n_save`` (frames of the whole run) sets the chunk length."""
        comp = {**comp, "fletcher32": True}
        root = f.require_group("observables")
        for name in self.names:
            g = root.create_group(name)
            shape: tuple[int, ...]
            dtype: type[np.generic]
            fill: float
            if name == "histogram":
                assert self.edges is not None  # set by __init__ for the histogram
                shape, dtype, fill = (self.dim, self.edges.shape[1] - 1), np.int64, -1
            else:
                shape, dtype, fill = (self.dim,), np.float64, np.nan
            cf = max(1, min(n_save, 64))
            g.create_dataset("value", shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
                             chunks=(cf, *shape), fillvalue=fill, **comp)
            g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(cf,), fillvalue=-1,
                             fletcher32=True)
            g.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(cf,),
                             fillvalue=np.nan, fletcher32=True)
            if name == "histogram":
                assert self.edges is not None
                g.create_dataset("bin_edges", data=self.edges, chunks=self.edges.shape, fletcher32=True)
        root.attrs["sde_toolkit_observables"] = json.dumps(list(self.names))
        self.create_moments(f, n_save)

    @classmethod
    def from_file(cls, f, names, n_done: int) -> ObservableAccumulator:
        """Rebuild the accumulator (including running sums over the first ``n_done`` frames) for resume."""
        grp = f["observables"]
        dim = None
        bins, value_range = 50, None
        if "histogram" in names:
            edges = grp["histogram/bin_edges"][...]
            dim, bins = edges.shape[0], edges.shape[1] - 1
            value_range = np.stack([edges[:, 0], edges[:, -1]], axis=1)
        for name in names:
            if name != "histogram":
                dim = grp[name]["value"].shape[1]
        if dim is None:
            raise ValueError("no observables to rebuild (names is empty)")
        acc = cls(names, dim, bins, value_range)
        if "histogram" in names:
            acc.edges = grp["histogram/bin_edges"][...]
        if acc._needs_moments() and n_done:
            # same additions in the same order as the unbroken run -> bit-identical running sums
            mom = grp["_moments/value"][:n_done]
            for j in range(n_done):
                acc.sum_mean = acc.sum_mean + mom[j, 0]
                acc.sum_m2 = acc.sum_m2 + mom[j, 1]
            acc.n_frames = n_done
        return acc

    def _needs_moments(self) -> bool:
        return "running_mean" in self.names or "running_variance" in self.names

    def create_moments(self, f, n_save: int) -> None:
        """Per-frame (mean, second moment) kept for exact resume of the running statistics."""
        if not self._needs_moments():
            return
        g = f["observables"].create_group("_moments")
        cf = max(1, min(n_save, 64))
        g.create_dataset("value", shape=(0, 2, self.dim), maxshape=(None, 2, self.dim), dtype=np.float64,
                         chunks=(cf, 2, self.dim), fillvalue=np.nan, fletcher32=True)
        g.create_dataset("step", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(cf,), fillvalue=-1,
                         fletcher32=True)
        g.create_dataset("time", shape=(0,), maxshape=(None,), dtype=np.float64, chunks=(cf,),
                         fillvalue=np.nan, fletcher32=True)
        g.attrs["description"] = "per-frame ensemble mean and mean of squares (internal, for exact resume)"

    def write(self, f, i0: int, steps: np.ndarray, times: np.ndarray, frames: np.ndarray) -> None:
        """Compute and store the observables of ``frames`` ``(k, n_paths, dim)`` at frame index ``i0``."""
        frames = np.asarray(frames, dtype=np.float64)
        k = frames.shape[0]
        i1 = i0 + k
        grp = f["observables"]
        mean = frames.mean(axis=1)
        var = frames.var(axis=1)
        m2 = (frames * frames).mean(axis=1)
        values: dict[str, np.ndarray] = {"mean": mean, "variance": var}
        if self._needs_moments():
            rm = np.empty((k, self.dim))
            rv = np.empty((k, self.dim))
            for j in range(k):
                self.sum_mean = self.sum_mean + mean[j]
                self.sum_m2 = self.sum_m2 + m2[j]
                self.n_frames += 1
                rm[j] = self.sum_mean / self.n_frames
                rv[j] = np.maximum(self.sum_m2 / self.n_frames - rm[j] ** 2, 0.0)
            values["running_mean"], values["running_variance"] = rm, rv
            values["_moments"] = np.stack([mean, m2], axis=1)
        if "histogram" in self.names:
            assert self.edges is not None  # set by __init__ for the histogram
            values["histogram"] = histogram_counts(frames, self.edges)
        for name in (*self.names, "_moments"):
            if name not in values or name not in grp:
                continue
            g = grp[name]
            g["value"][i0:i1] = values[name]
            g["step"][i0:i1] = steps
            g["time"][i0:i1] = times
