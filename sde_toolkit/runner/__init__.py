"""The experiment runner: ``sde-toolkit run CONFIG.toml [-o OUTDIR]``, and its public experiment registry.

An experiment is a TOML config. Its ``[experiment] kind`` picks what is run (default ``"simulate"`` when the
config has ``[sde]``, ``[initial]`` and ``[integrate]``, as in the seed's Langevin example). Built in:

* ``simulate``, ``fp_vs_em``, ``kramers`` (:mod:`sde_toolkit.runner.simulate`);
* ``ddpm``, ``mcmc_vs_score`` (:mod:`sde_toolkit.runner.score`, torch; loaded only when such a kind runs).

Every experiment writes into OUTDIR (default ``runs/<config name>``): its data (``*.h5``, at ``[output] path``
relative to OUTDIR when the config sets one, sub-folders kept), ``metrics.json`` (strict JSON: a number that does
not exist, such as the KS statistic of a method without samples, is ``null``), ``report.md`` and
``figures/*.png``; it prints its verdicts (the result and the number behind it) and where the files are. An
OUTDIR that exists and is not empty is refused unless ``overwrite`` (``--overwrite``); then files of the same
name are replaced and other files are left alone.

More kinds plug in with :func:`register_experiment`; the function receives an :class:`ExperimentContext`::

    from sde_toolkit.runner import register_experiment

    @register_experiment("my_study", description="...", needs=("sde",))
    def my_study(ctx):
        ctx.metrics["answer"] = 42
        ctx.section("Result", "the answer is 42")

A config may then say ``[experiment] kind = "my_study"``; its own tables are registered with
:func:`sde_toolkit.config.register_table`.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .._version import __version__
from ..config import Config, ConfigError, load_config
from ._context import ExperimentContext, jsonable, markdown_table
from ._schemas import register_tables

__all__ = [
    "Experiment",
    "ExperimentContext",
    "ExperimentResult",
    "EXPERIMENTS",
    "register_experiment",
    "run_experiment",
    "markdown_table",
    "add_parser",
    "run",
]

register_tables()

ExperimentFunc = Callable[[ExperimentContext], None]


@dataclass(frozen=True)
class Experiment:
    """A registered experiment kind.

    Attributes:
        kind: the name a config's ``[experiment] kind`` selects it by.
        target: the function ``f(ctx: ExperimentContext) -> None``, or its import path ``"package.module:name"``,
            imported only when the kind is run (so heavy dependencies stay unimported otherwise).
        description: one line for listings.
        needs: config tables the experiment requires; a config without one is refused before any work.
    """

    kind: str
    target: ExperimentFunc | str
    description: str = ""
    needs: tuple[str, ...] = ()

    def load(self) -> ExperimentFunc:
        """The experiment function (importing its module when ``target`` is an import path)."""
        if callable(self.target):
            return self.target
        module, _, name = self.target.partition(":")
        func = getattr(importlib.import_module(module), name)
        if not callable(func):
            raise TypeError(f"experiment {self.kind!r}: {self.target} is not callable")
        return func


_REGISTRY: dict[str, Experiment] = {}
EXPERIMENTS = MappingProxyType(_REGISTRY)  # kind -> Experiment, read-only; add with register_experiment


def register_experiment(kind: str, func: ExperimentFunc | str | None = None, *, description: str = "",
                        needs=(), replace: bool = False):
    """Register an experiment kind for :func:`run_experiment` and ``sde-toolkit run``.

    Args:
        kind: the ``[experiment] kind`` value that selects it.
        func: ``f(ctx: ExperimentContext) -> None``, or an import path ``"package.module:name"`` loaded when the
            kind is first run. Omitted: returns a decorator.
        description: one line for listings.
        needs: config tables the experiment requires (checked before the output folder is made).
        replace: redefine an existing kind (otherwise a ``ValueError``).

    Returns:
        ``func`` (so that it works as a decorator).
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"an experiment kind must be a non-empty string, got {kind!r}")
    needs = (needs,) if isinstance(needs, str) else tuple(needs)

    def add(f: ExperimentFunc | str):
        if not (callable(f) or (isinstance(f, str) and ":" in f)):
            raise TypeError(f"experiment {kind!r}: expected a function or 'module:name', got {f!r}")
        if kind in _REGISTRY and not replace:
            raise ValueError(f"experiment kind {kind!r} is already registered (pass replace=True to redefine it)")
        _REGISTRY[kind] = Experiment(kind, f, description, needs)
        return f

    return add if func is None else add(func)


_SIM = ("sde", "initial", "integrate")
register_experiment("simulate", "sde_toolkit.runner.simulate:exp_simulate", needs=_SIM,
                    description="stream an ensemble into H5MD; stationary law and exact moments")
register_experiment("fp_vs_em", "sde_toolkit.runner.simulate:exp_fp_vs_em", needs=(*_SIM, "fokker_planck"),
                    description="Fokker–Planck evolution against the ensemble's histograms")
register_experiment("kramers", "sde_toolkit.runner.simulate:exp_kramers", needs=_SIM,
                    description="double-well escape: EM paths, FP adjoint and Kramers' formula")
register_experiment("ddpm", "sde_toolkit.runner.score:exp_ddpm",
                    description="train a score network on a toy data set and sample it (torch)")
register_experiment("mcmc_vs_score", "sde_toolkit.runner.score:exp_mcmc_vs_score",
                    description="Langevin MCMC with exact and learned scores vs reverse-SDE sampling (torch)")


@dataclass
class ExperimentResult:
    """What an experiment produced: its folder, metrics, report and figures."""

    kind: str
    outdir: Path
    metrics: dict
    report: Path
    figures: list[Path] = field(default_factory=list)
    data: list[Path] = field(default_factory=list)
    wall_time: float = 0.0
    headline: list[str] = field(default_factory=list)


def _kind(cfg: Config) -> str:
    kind = cfg.get("experiment", {}).get("kind")
    if kind:
        return kind
    if all(t in cfg for t in _SIM):
        return "simulate"
    raise ConfigError("cannot tell which experiment to run: set [experiment] kind = one of "
                      + ", ".join(sorted(_REGISTRY)), "experiment", "kind")


def _default_outdir(config_path: Path) -> Path:
    return Path("runs") / config_path.stem


def run_experiment(config, outdir=None, *, progress=None, overwrite: bool = False) -> ExperimentResult:
    """Run the experiment described by ``config`` (a TOML path or a dict) into ``outdir``.

    Args:
        config: path of a TOML config, or the parsed dict.
        outdir: output folder; default ``runs/<config name>``.
        progress: progress bars and stage messages (``None`` auto, ``True``/``False``).
        overwrite: allow writing into an existing non-empty ``outdir`` (files of the same name are replaced).

    Returns:
        :class:`ExperimentResult`.

    Raises:
        ConfigError: an invalid config, an unknown kind, a table the kind needs is missing, or an existing
            non-empty ``outdir`` (given or default) without ``overwrite``; all before any work.
    """
    cfg = load_config(config)
    kind = _kind(cfg)
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown experiment kind {kind!r}; choose one of {', '.join(sorted(_REGISTRY))}",
                          "experiment", "kind")
    exp = _REGISTRY[kind]
    for table in exp.needs:
        if table not in cfg:
            raise ConfigError(f"kind {kind!r} needs a [{table}] table", table)
    func = exp.load()
    cpath = Path(config) if not isinstance(config, dict) else Path("experiment.toml")
    out = Path(outdir) if outdir is not None else _default_outdir(cpath)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output folder {out} is a file; choose another -o")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"output folder {out} exists and is not empty; pass --overwrite to write into it, or "
                          "choose another folder with -o")
    out.mkdir(parents=True, exist_ok=True)
    ctx = ExperimentContext(cfg, out, kind, progress)
    start = time.perf_counter()
    func(ctx)
    wall = time.perf_counter() - start
    exp_table = cfg.get("experiment", {})
    title = exp_table.get("title") or f"{cpath.stem} ({kind})"
    ctx.metrics["experiment"] = {"kind": kind, "config": str(cpath), "wall_time_s": wall,
                                 "package_version": __version__}
    (out / "metrics.json").write_text(json.dumps(jsonable(ctx.metrics), indent=2, allow_nan=False) + "\n")
    cfg_text = Path(config).read_text() if not isinstance(config, dict) else json.dumps(config, indent=2)
    figs = "\n".join(f"![{p.stem}](figures/{p.name})" for p in ctx.figures if p.exists())
    description = exp_table.get("description")
    report = [f"# {title}\n", (description or "").strip() + "\n" if description else "",
              f"Kind `{kind}`, sde_toolkit {__version__}, wall time {wall:.1f} s.\n",
              ("**Result.** " + " ".join(ctx.headline) + "\n") if ctx.headline else "", *ctx.sections,
              "## Figures\n\n" + figs + "\n", "## Config\n\n```toml\n" + cfg_text.strip() + "\n```\n"]
    rpath = out / "report.md"
    rpath.write_text("\n".join(s for s in report if s))
    return ExperimentResult(kind, out, ctx.metrics, rpath, [p for p in ctx.figures if p.exists()], ctx.data, wall,
                            list(ctx.headline))


# ---------------------------------------------------------------------------------------------- CLI hook
def add_parser(subparsers):
    p = subparsers.add_parser("run", help="run an experiment: data, metrics.json, report.md, figures/*.png",
                              description="Run an experiment config; writes data (H5MD), metrics.json, report.md "
                                          "and figures/*.png into OUTDIR.")
    p.add_argument("config", help="experiment TOML (see experiments/configs/)")
    p.add_argument("-o", "--output", dest="outdir", default=None, help="output folder (default runs/<config name>)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into an existing non-empty folder (replaces files of the same name)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show progress bars")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="never show progress bars")
    return p


def run(args) -> int:
    res = run_experiment(args.config, args.outdir, progress=args.progress, overwrite=args.overwrite)
    print(f"experiment {res.kind} finished in {res.wall_time:.1f} s")
    for line in res.headline:
        print(f"  result:  {line}")
    print(f"  report:  {res.report}")
    print(f"  metrics: {res.outdir / 'metrics.json'}")
    for f in res.figures:
        print(f"  figure:  {f}")
    for d in res.data:
        print(f"  data:    {d}")
    return 0
