"""What every experiment gets and uses: the context that collects its outputs, and report helpers."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Config

__all__ = ["ExperimentContext", "markdown_table", "jsonable"]


class ExperimentContext:
    """Collects metrics, report sections, figures and data files of one experiment.

    Attributes:
        cfg: the validated :class:`~sde_toolkit.config.Config`.
        outdir: the experiment's folder (``figures/`` exists).
        kind: the experiment kind being run.
        progress: progress-bar setting to pass on (``None`` auto, ``True``/``False``).
        metrics: written to ``metrics.json`` (JSON-able values; NumPy scalars and arrays are converted).
        sections: Markdown sections of ``report.md``; add with :meth:`section`.
        figures: figure paths (from :meth:`figure`) linked in the report when they exist.
        data: data files the experiment wrote (listed by ``sde-toolkit run``).
        headline: one-line verdicts printed in the terminal by ``sde-toolkit run`` (the result and the number
            behind it); add with :meth:`verdict`.

    Stage messages (:meth:`stage`) go to stderr as ``[  12.3 s] training the score network`` unless
    ``progress`` is ``False``, so a long experiment says what it is doing between its progress bars.
    """

    def __init__(self, cfg: Config, outdir: Path, kind: str, progress):
        self.cfg, self.outdir, self.kind, self.progress = cfg, outdir, kind, progress
        self.metrics: dict[str, Any] = {}
        self.sections: list[str] = []
        self.figures: list[Path] = []
        self.data: list[Path] = []
        self.headline: list[str] = []
        self._start = time.perf_counter()
        (outdir / "figures").mkdir(parents=True, exist_ok=True)

    def stage(self, text: str) -> None:
        """Say on stderr which step starts now, with the elapsed time (silent when ``progress`` is ``False``)."""
        if self.progress is False:
            return
        print(f"[{time.perf_counter() - self._start:7.1f} s] {text}", file=sys.stderr, flush=True)

    def verdict(self, text: str) -> None:
        """A one-line result for the terminal (and the top of the report)."""
        self.headline.append(text)

    def figure(self, name: str) -> Path:
        """The path ``figures/<name>.png`` to save a figure to (recorded for the report)."""
        p = self.outdir / "figures" / f"{name}.png"
        self.figures.append(p)
        return p

    def section(self, title: str, body: str) -> None:
        """Add a ``## title`` section with a Markdown ``body`` to the report."""
        self.sections.append(f"## {title}\n\n{body.strip()}\n")


def markdown_table(rows: list[dict], cols: list[str] | None = None) -> str:
    """A Markdown table of ``rows`` (dicts) over ``cols`` (default: the first row's keys); floats to 4 digits."""
    if not rows:
        return ""
    cols = cols or list(rows[0])

    def fmt(v):
        if isinstance(v, float):
            return "—" if math.isnan(v) else f"{v:.4g}"
        if isinstance(v, (bool, np.bool_)):
            return "yes" if v else "no"
        return str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def jsonable(obj):
    """``obj`` with NumPy values made JSON-able; NaN and infinities become ``None`` (``null``: strict JSON, which
    ``json.dumps(..., allow_nan=False)`` then accepts)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    return obj
