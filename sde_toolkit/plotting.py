"""Figures for trajectories and densities (matplotlib, Agg backend; nothing is shown, everything is saved)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _plt().close(fig)
    return path


def histogram_vs_density(samples, density_x, density_p, path, *, title="", label="samples", bins=120,
                         extra_curves=None):
    """1-D histogram of ``samples`` (normalized) over a reference density curve; saved as PNG."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    s = np.asarray(samples).ravel()
    lo, hi = float(np.min(density_x)), float(np.max(density_x))
    ax.hist(s, bins=bins, range=(lo, hi), density=True, alpha=0.45, color="C0", label=f"{label} (n={s.size})")
    ax.plot(density_x, density_p, "k-", lw=1.6, label="reference density")
    for name, (xx, pp) in (extra_curves or {}).items():
        ax.plot(xx, pp, "--", lw=1.2, label=name)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def histogram_snapshots(t, x, path, *, n_snapshots=6, density=None, bins=100, title=""):
    """Histograms of coordinate 0 at a few saved times (the law's evolution), optional reference density."""
    plt = _plt()
    t = np.asarray(t)
    idx = np.unique(np.linspace(0, len(t) - 1, n_snapshots).round().astype(int))
    fig, axes = plt.subplots(1, len(idx), figsize=(2.6 * len(idx), 2.8), sharey=False)
    axes = np.atleast_1d(axes)
    data = [np.asarray(x[i])[:, 0] for i in idx]
    lo = min(float(np.percentile(d, 0.1)) for d in data)
    hi = max(float(np.percentile(d, 99.9)) for d in data)
    for ax, i, d in zip(axes, idx, data):
        ax.hist(d, bins=bins, range=(lo, hi), density=True, color="C0", alpha=0.6)
        if density is not None:
            ax.plot(density[0], density[1], "k-", lw=1)
        ax.set_title(f"t = {t[i]:.3g}", fontsize=9)
        ax.set_xlabel("x_0")
        ax.set_yticks([])
    axes[0].set_ylabel("density")
    fig.suptitle(title)
    return _save(fig, path)


def moments_over_time(t, mean, var, path, *, exact=None, stationary=None, title=""):
    """Ensemble mean and variance against time; ``exact=(mean, var)`` arrays are drawn dashed on top,
    ``stationary=(mean, var)`` numbers as dotted horizontal lines. The legend names only what is drawn."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    axes[0].plot(t, mean, color="C0", lw=2.5, alpha=0.6, label="ensemble")
    axes[1].plot(t, var, color="C0", lw=2.5, alpha=0.6, label="ensemble")
    if exact is not None:
        axes[0].plot(t, exact[0], "k--", lw=1.2, label="exact marginal")
        axes[1].plot(t, exact[1], "k--", lw=1.2, label="exact marginal")
    if stationary is not None:
        axes[0].axhline(stationary[0], color="k", ls=":", lw=1.2, label="stationary value")
        axes[1].axhline(stationary[1], color="k", ls=":", lw=1.2, label="stationary value")
    axes[0].set_title("mean")
    axes[1].set_title("variance")
    axes[0].set_ylabel("E[x_0(t)]")
    axes[1].set_ylabel("Var[x_0(t)]")
    for ax in axes:
        ax.set_xlabel("t")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def scatter_2d(samples_dict, path, *, title="", lim=None, max_points=5000):
    """Side-by-side 2-D scatter plots, one panel per entry of ``samples_dict``."""
    plt = _plt()
    n = len(samples_dict)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2))
    axes = np.atleast_1d(axes)
    for ax, (name, s) in zip(axes, samples_dict.items()):
        s = np.asarray(s)[:max_points]
        ax.scatter(s[:, 0], s[:, 1], s=2, alpha=0.5)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("x_0")
        ax.set_ylabel("x_1")
        if lim is not None:
            ax.set_xlim(lim[0])
            ax.set_ylim(lim[1])
        ax.set_aspect("equal", adjustable="box")
    fig.suptitle(title)
    return _save(fig, path)


def bar_table(names, values, path, *, ylabel="", title="", log=False):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 3.5))
    ax.bar(range(len(names)), values, color=[f"C{i}" for i in range(len(names))])
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.set_title(title)
    return _save(fig, path)


def methods_vs_density(finals: dict, density_x, density_p, path, *, bins=120, title="", verdicts=None):
    """Top: each method's final histogram over the reference density; bottom: histogram minus density per
    method, with the band of +-2 standard deviations of a histogram of exact samples of the same size."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    lo, hi = float(np.min(density_x)), float(np.max(density_x))
    edges = np.linspace(lo, hi, bins + 1)
    mid = 0.5 * (edges[1:] + edges[:-1])
    width = edges[1] - edges[0]
    ref = np.interp(mid, density_x, density_p)
    n = None
    for i, (name, f) in enumerate(finals.items()):
        s = np.asarray(f).ravel()
        n = s.size
        h, _ = np.histogram(s, bins=edges, density=True)
        label = name + (f": {verdicts[name]}" if verdicts and name in verdicts else "")
        ax.step(mid, h, where="mid", lw=1.2, color=f"C{i}", label=label)
        ax2.step(mid, h - ref, where="mid", lw=1.0, color=f"C{i}")
    ax.plot(density_x, density_p, "k-", lw=1.6, label="exp(-V/kT)/Z (exact)")
    if n:
        band = 2 * np.sqrt(np.maximum(ref * width, 1e-300) / n) / width
        ax2.fill_between(mid, -band, band, color="0.85", label="+-2 sd of exact samples")
    ax2.axhline(0.0, color="k", lw=0.8)
    ax.set_ylabel("density")
    ax2.set_ylabel("histogram - exact")
    ax2.set_xlabel("x")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax2.legend(fontsize=8, loc="upper right")
    return _save(fig, path)


def metrics_vs_parameter(metrics: dict, path, *, xlabel="", title=""):
    """One panel per metric: ``metrics[name][label] = (x values, y values)``, a line per label (e.g. one per
    value of the other swept parameters). Non-numeric ``x`` values are placed at categorical positions."""
    plt = _plt()
    names = list(metrics)
    ncol = min(3, max(1, len(names)))
    nrow = (len(names) + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    xs_all = [x for series in metrics.values() for xs, _ in series.values() for x in xs]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs_all)
    cats = {x: i for i, x in enumerate(dict.fromkeys(str(x) for x in xs_all))}
    for ax, name in zip(axes.ravel(), names):
        for j, (label, (xs, ys)) in enumerate(metrics[name].items()):
            xv = [float(x) for x in xs] if numeric else [cats[str(x)] for x in xs]
            order = np.argsort(xv)
            ax.plot(np.asarray(xv)[order], np.asarray(ys, dtype=float)[order], "o-", color=f"C{j % 10}",
                    label=label if len(metrics[name]) > 1 else None)
        if not numeric:
            ax.set_xticks(list(cats.values()))
            ax.set_xticklabels(list(cats), rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(name)
        if len(metrics[name]) > 1:
            ax.legend(fontsize=7)
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save(fig, path)
