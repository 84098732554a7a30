"""Uniform cell-centred grids for the Fokker–Planck solver.

A :class:`Grid` is a tensor product of uniform 1-D grids. Axis ``k`` covers ``[lower_k, upper_k]`` with ``n_k``
cells of width ``h_k = (upper_k - lower_k) / n_k``; the unknowns are cell averages located at the cell centres
``lower_k + (i + 1/2) h_k``. Densities are arrays of shape ``grid.shape`` (C order, axis 0 first) whose
integral ``sum(p) * cell_volume`` is the probability mass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _checks

BOUNDARIES = ("reflecting", "periodic", "absorbing")


def _per_axis(value: Any, dim: int, name: str) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, np.ndarray)):
        return [value] * dim
    seq = list(value)
    if dim == 1 and len(seq) == 2 and all(isinstance(s, str) for s in seq) and seq[0] != seq[1]:
        return [tuple(seq)]  # a 1-D (lower, upper) pair given without the per-axis list
    if len(seq) != dim:
        raise ValueError(f"{name} must be a scalar or have one entry per axis ({dim}), got {value!r}")
    return seq


def _parse_boundary(entry: Any, axis: int) -> tuple[str, str]:
    if isinstance(entry, str):
        sides = (entry, entry)
    else:
        try:
            sides = tuple(entry)
        except TypeError:
            raise ValueError(f"boundary for axis {axis} must be a string or a (lower, upper) pair, got {entry!r}") from None
        if len(sides) != 2 or not all(isinstance(s, str) for s in sides):
            raise ValueError(f"boundary for axis {axis} must be a string or a (lower, upper) pair, got {entry!r}")
    for s in sides:
        if s not in BOUNDARIES:
            raise ValueError(f"boundary for axis {axis} must be one of {BOUNDARIES}, got {s!r}")
    if ("periodic" in sides) and sides != ("periodic", "periodic"):
        raise ValueError(f"boundary for axis {axis}: 'periodic' must apply to both ends, got {sides!r}")
    return sides


class Grid:
    """A uniform cell-centred grid in 1, 2 or 3 dimensions with per-axis boundary conditions.

    Axis ``k`` has ``n_k >= 3`` cells of width ``h_k = (upper_k - lower_k) / n_k`` and centres
    ``x_i = lower_k + (i + 1/2) h_k``. Boundaries (per axis, or per side as a ``(lower, upper)`` pair):

    * ``"reflecting"``: zero probability flux through the wall (mass is conserved);
    * ``"periodic"``: the last cell's upper face is the first cell's lower face;
    * ``"absorbing"``: the density vanishes at the wall (``p = 0`` at the face); mass leaving is the
      first-passage flux.

    Args:
        lower: lower edge per axis (scalar or sequence).
        upper: upper edge per axis (scalar or sequence), ``upper > lower``.
        n: number of cells per axis (int >= 3, scalar or sequence).
        boundary: ``"reflecting"``, ``"periodic"`` or ``"absorbing"``; a string, a per-axis list, or per-axis
            ``(lower_side, upper_side)`` pairs such as ``[("reflecting", "absorbing")]``.

    Attributes:
        dim: number of axes.
        shape: ``tuple(n)``.
        size: total number of cells.
        spacing: cell widths ``h_k`` (tuple).
        cell_volume: ``prod(h_k)``.
        centers: tuple of 1-D arrays of cell centres, one per axis.
        edges: tuple of 1-D arrays of the ``n_k + 1`` cell faces, one per axis.
        boundaries: tuple of ``(lower_side, upper_side)`` boundary names per axis.
    """

    def __init__(self, lower, upper, n, boundary: str | Sequence = "reflecting"):
        lo = np.atleast_1d(_checks.float_array(lower, "lower"))
        hi = np.atleast_1d(_checks.float_array(upper, "upper"))
        nn = np.atleast_1d(np.asarray(n, dtype=object))
        if lo.ndim != 1 or hi.ndim != 1 or nn.ndim != 1:
            raise ValueError(f"lower, upper and n must be scalars or 1-D sequences, got {lower!r}, {upper!r}, {n!r}")
        dim = max(lo.size, hi.size, nn.size)
        for name, arr in (("lower", lo), ("upper", hi), ("n", nn)):
            if arr.size not in (1, dim):
                raise ValueError(f"{name} has {arr.size} entries but the grid has {dim} axes")
        if dim > 3:
            raise ValueError(f"Grid supports 1, 2 or 3 axes, got {dim}")
        lo = np.broadcast_to(lo, (dim,)).copy()
        hi = np.broadcast_to(hi, (dim,)).copy()
        nn = np.broadcast_to(nn, (dim,))
        n_int = []
        for k, v in enumerate(nn):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"n must be integers >= 3 (cells per axis), got n[{k}] = {v!r}")
            if v < 3:
                raise ValueError(f"n must be integers >= 3 (too short a grid otherwise), got n[{k}] = {v!r}")
            n_int.append(int(v))
        if math.prod(n_int) > 2**40:
            raise ValueError(f"a grid of {' x '.join(map(str, n_int))} cells is beyond any memory")
        for k in range(dim):
            if not (math.isfinite(lo[k]) and math.isfinite(hi[k])):
                raise ValueError(f"lower and upper must be finite, got axis {k}: [{lo[k]}, {hi[k]}]")
            if not hi[k] > lo[k]:
                raise ValueError(f"upper must exceed lower, got axis {k}: lower={lo[k]}, upper={hi[k]}")
        self.dim = dim
        self.lower = lo
        self.upper = hi
        self.n = tuple(n_int)
        self.boundaries = tuple(_parse_boundary(b, k) for k, b in enumerate(_per_axis(boundary, dim, "boundary")))
        self.shape = self.n
        self.size = int(np.prod(self.n))
        self.spacing = tuple(float((hi[k] - lo[k]) / self.n[k]) for k in range(dim))
        self.cell_volume = float(np.prod(self.spacing))
        self.centers = tuple(lo[k] + (np.arange(self.n[k]) + 0.5) * self.spacing[k] for k in range(dim))
        self.edges = tuple(lo[k] + np.arange(self.n[k] + 1) * self.spacing[k] for k in range(dim))
        for c in self.centers:
            c.flags.writeable = False

    # ------------------------------------------------------------------ constructors and facts
    @classmethod
    def from_centers(cls, centers, boundary: str | Sequence = "reflecting", rtol: float = 1e-9) -> Grid:
        """The grid whose cell centres are ``centers`` (a 1-D array, or one array per axis); must be uniform.

        Raises:
            ValueError: when the spacing is not uniform within ``rtol`` or an axis has fewer than 3 cells.
        """
        if isinstance(centers, np.ndarray) and centers.ndim == 1:
            centers = (centers,)
        lows, ups, ns = [], [], []
        for k, c in enumerate(centers):
            c = np.asarray(c, dtype=np.float64)
            if c.ndim != 1 or c.size < 3:
                raise ValueError(f"centers[{k}] must be a 1-D array of at least 3 points (n >= 3), got shape {c.shape}")
            d = np.diff(c)
            h = (c[-1] - c[0]) / (c.size - 1)
            if not h > 0 or np.max(np.abs(d - h)) > rtol * abs(h):
                i = int(np.argmax(np.abs(d - h)))
                raise ValueError(
                    f"centers[{k}] is not uniform increasing: spacing {d[i]:.6g} at index {i} differs from the mean "
                    f"spacing {h:.6g} (the solver needs a uniform grid)"
                )
            lows.append(c[0] - h / 2)
            ups.append(c[-1] + h / 2)
            ns.append(c.size)
        return cls(lows, ups, ns, boundary)

    @property
    def periodic(self) -> tuple[bool, ...]:
        """Per-axis flag: ``True`` where the axis is periodic."""
        return tuple(b[0] == "periodic" for b in self.boundaries)

    @property
    def has_absorbing(self) -> bool:
        """``True`` when any wall is absorbing."""
        return any("absorbing" in b for b in self.boundaries)

    def points(self) -> np.ndarray:
        """Cell centres as an ``(size, dim)`` array in C order (the flattening of a density)."""
        mesh = np.meshgrid(*self.centers, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def meshgrid(self) -> tuple[np.ndarray, ...]:
        """``np.meshgrid(*centers, indexing="ij")``."""
        return tuple(np.meshgrid(*self.centers, indexing="ij"))

    def integrate(self, p) -> np.ndarray | float:
        """``sum(p) * cell_volume`` over the grid axes (the trailing ``dim`` axes of ``p``)."""
        p = np.asarray(p, dtype=np.float64)
        axes = tuple(range(p.ndim - self.dim, p.ndim))
        out = p.sum(axis=axes) * self.cell_volume
        return float(out) if np.ndim(out) == 0 else out

    def marginal(self, p, axis: int | Sequence[int] = 0) -> np.ndarray:
        """Marginal density on the kept ``axis`` (or axes): integrate ``p`` over the other grid axes.

        ``p`` has shape ``(..., *grid.shape)``; leading axes (such as time) are kept.
        """
        p = np.asarray(p, dtype=np.float64)
        if p.shape[p.ndim - self.dim:] != self.shape:
            raise ValueError(f"p must end with the grid shape {self.shape}, got {p.shape}")
        keep = tuple(np.atleast_1d(axis).tolist())
        for a in keep:
            if not (0 <= int(a) < self.dim):
                raise ValueError(f"axis must be in [0, {self.dim}), got {a}")
        lead = p.ndim - self.dim
        drop = tuple(k for k in range(self.dim) if k not in keep)
        w = float(np.prod([self.spacing[k] for k in drop])) if drop else 1.0
        return p.sum(axis=tuple(lead + k for k in drop)) * w

    # ------------------------------------------------------------------ initial densities
    def _normalized(self, p: np.ndarray, what: str) -> np.ndarray:
        if not np.all(np.isfinite(p)):
            raise ValueError(f"{what} is not finite on the grid")
        if np.any(p < 0):
            i = int(np.argmin(p))
            raise ValueError(f"{what} is negative on the grid: {p.ravel()[i]:.6g} at flat index {i}")
        mass = p.sum() * self.cell_volume
        if not mass > 0:
            raise ValueError(f"{what} has zero mass on the grid [{self.lower.tolist()}, {self.upper.tolist()}]")
        return p / mass

    def density(self, func: Callable[[np.ndarray], Any], normalize: bool = True) -> np.ndarray:
        """A density from ``func(points) -> (size,)`` evaluated at the cell centres (``points`` is ``(size, dim)``).

        Normalized to ``sum(p) * cell_volume == 1`` unless ``normalize=False``.
        """
        vals = np.asarray(func(self.points()), dtype=np.float64).reshape(self.shape)
        return self._normalized(vals, "func") if normalize else vals

    def gaussian(self, mean, cov) -> np.ndarray:
        """The Gaussian ``N(mean, cov)`` at the cell centres, normalized to mass 1 on the grid.

        ``cov`` is a scalar variance, a ``(dim,)`` vector of variances or a ``(dim, dim)`` matrix.
        """
        mean = np.broadcast_to(np.asarray(mean, dtype=np.float64), (self.dim,))
        cov = np.asarray(cov, dtype=np.float64)
        if cov.ndim == 0:
            cov = cov * np.eye(self.dim)
        elif cov.ndim == 1:
            cov = np.diag(cov)
        if cov.shape != (self.dim, self.dim):
            raise ValueError(f"cov must be a scalar, ({self.dim},) or ({self.dim}, {self.dim}), got shape {cov.shape}")
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            raise ValueError(f"cov must be positive definite, got {cov.tolist()}") from None
        z = np.linalg.solve(chol, (self.points() - mean).T)
        logp = -0.5 * np.sum(z**2, axis=0)
        return self._normalized(np.exp(logp - logp.max()).reshape(self.shape), "gaussian")

    def histogram(self, samples, weights=None, normalize: bool = False) -> np.ndarray:
        """Histogram density of ``samples`` (``(n, dim)``, or ``(n,)`` in 1-D) on the grid cells.

        Periodic axes wrap samples into the box. ``p = counts / (n_total * cell_volume)``, so the mass on the
        grid equals the fraction of samples inside it; ``normalize=True`` rescales it to 1.
        """
        x = np.asarray(samples, dtype=np.float64)
        if x.ndim == 1 and self.dim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"samples must have shape (n, {self.dim}), got {x.shape}")
        if x.shape[0] == 0:
            raise ValueError("samples is empty")
        w = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        x = x.copy()
        for k in range(self.dim):
            if self.periodic[k]:
                L = self.upper[k] - self.lower[k]
                x[:, k] = self.lower[k] + np.mod(x[:, k] - self.lower[k], L)
        counts, _ = np.histogramdd(x, bins=self.edges, weights=w)
        total = x.shape[0] if w is None else w.sum()
        p = counts / (total * self.cell_volume)
        if normalize:
            p = self._normalized(p, "histogram")
        return p

    # ------------------------------------------------------------------ misc
    def to_dict(self) -> dict:
        """JSON-able description (``lower``, ``upper``, ``n``, ``boundary`` per axis as ``[lower, upper]`` names)."""
        return {
            "lower": self.lower.tolist(),
            "upper": self.upper.tolist(),
            "n": list(self.n),
            "boundary": [list(b) for b in self.boundaries],
        }

    @classmethod
    def from_dict(cls, d) -> Grid:
        """The grid of :meth:`to_dict` (``lower``, ``upper``, ``n``, and ``boundary`` per axis)."""
        return cls(d["lower"], d["upper"], d["n"], [tuple(b) if isinstance(b, (list, tuple)) else b
                                                    for b in d["boundary"]])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Grid) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        b = [b[0] if b[0] == b[1] else b for b in self.boundaries]
        return f"Grid(lower={self.lower.tolist()}, upper={self.upper.tolist()}, n={list(self.n)}, boundary={b})"
