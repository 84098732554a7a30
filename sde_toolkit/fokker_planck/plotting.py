"""Plots of Fokker–Planck results (matplotlib, Agg canvas; pyplot is never imported, so no GUI backend).

Every function returns a :class:`matplotlib.figure.Figure`; save it with ``fig.savefig(path)``.
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .grid import Grid


def _figure(figsize) -> Figure:
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def plot_evolution_1d(result, *, log: bool = False, cmap: str = "viridis", figsize=(7, 4)) -> Figure:
    """x–t heatmap of a 1-D evolution: ``result.p`` ``(n_save, n)`` against ``result.t`` and the cell centres.

    ``log=True`` shows ``log10 p`` (floored at 1e-300).
    """
    grid: Grid = result.grid
    if grid.dim != 1:
        raise ValueError(f"plot_evolution_1d needs a 1-D grid, got {grid.dim} axes (use plot_frames_2d)")
    p = np.asarray(result.p)
    z = np.log10(np.maximum(p, 1e-300)) if log else p
    fig = _figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    t = np.asarray(result.t)
    mesh = ax.pcolormesh(grid.centers[0], t, z, shading="nearest", cmap=cmap)
    fig.colorbar(mesh, ax=ax, label="log10 p" if log else "p")
    ax.set_xlabel("x")
    ax.set_ylabel("t")
    ax.set_title("Fokker–Planck density")
    return fig


def plot_frames_2d(result, *, n_frames: int = 4, cmap: str = "magma", figsize=None) -> Figure:
    """``n_frames`` snapshots (evenly spaced saved times, first and last included) of a 2-D evolution."""
    grid: Grid = result.grid
    if grid.dim != 2:
        raise ValueError(f"plot_frames_2d needs a 2-D grid, got {grid.dim} axes")
    if int(n_frames) != n_frames or n_frames < 1:
        raise ValueError(f"n_frames must be a positive integer, got {n_frames!r}")
    idx = np.unique(np.linspace(0, len(result.t) - 1, int(n_frames)).round().astype(int))
    fig = _figure(figsize or (3.2 * idx.size, 3.2))
    ext = (grid.lower[0], grid.upper[0], grid.lower[1], grid.upper[1])
    for j, i in enumerate(idx):
        ax = fig.add_subplot(1, idx.size, j + 1)
        ax.imshow(np.asarray(result.p[i]).T, origin="lower", extent=ext, aspect="auto", cmap=cmap)
        ax.set_title(f"t = {float(result.t[i]):.3g}")
        ax.set_xlabel("x")
        if j == 0:
            ax.set_ylabel("y")
    return fig


def plot_density_histogram(grid: Grid, p, samples, *, axis: int = 0, label: str = "Fokker–Planck",
                           figsize=(6, 4)) -> Figure:
    """The FP density (its marginal along ``axis``) drawn over a histogram of ``samples`` on the same cells."""
    p = np.asarray(p, dtype=np.float64)
    hist = grid.histogram(samples)
    pm = grid.marginal(p, axis) if grid.dim > 1 else p
    hm = grid.marginal(hist, axis) if grid.dim > 1 else hist
    fig = _figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    x = grid.centers[axis]
    ax.bar(x, hm, width=grid.spacing[axis], alpha=0.4, color="tab:gray", label=f"histogram ({len(samples)} samples)")
    ax.plot(x, pm, color="tab:red", lw=1.5, label=label)
    ax.set_xlabel(f"x{axis}" if grid.dim > 1 else "x")
    ax.set_ylabel("density")
    ax.legend()
    return fig
