"""TOML run configs: schemas, validation, and pure builders for the SDE, the initial states and run options.

Turning a config into a checked job (seeds resolved, time grid and output path checked) is the runs layer's:
``sde_toolkit.runs.prepare_simulation``.

A config is TOML with tables ``[sde]``, ``[initial]``, ``[integrate]``, ``[output]`` (simulations); the
experiment runner registers more (``[score]``, ``[fokker_planck]``, ``[mcmc]``, ``[compare]``) with
:func:`register_table`. Validation happens before any work: an unknown table or key, a wrong type, a missing
required key or an impossible value raises :class:`ConfigError` naming the table and the key.

Example (the seed's Langevin run)::

    [sde]
    type = "overdamped_langevin"
    potential = "0.1*x**2 - log(0.2 + cos(2*x)**2)"
    kT = 1.0

    [initial]
    distribution = "uniform"
    low = -10.0
    high = 10.0
    n_paths = 20000

    [integrate]
    method = "euler_maruyama"
    dt = 0.05
    t1 = 50.0
    save_every = 10
    seed = 0

    [output]
    path = "seed_langevin.h5"

Paths: ``[initial] path`` is relative to the config file's folder; ``[output] path`` to the current folder
(like ``-o``).
"""

from __future__ import annotations

import copy
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import _checks

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SIMULATION_TABLES = ("sde", "initial", "integrate", "output")
INITIAL_STREAM = 0x5EED_1A17  # spawn key of the initial-state draw, distinct from the integrator's (chunk, block)
_MISSING = object()


class ConfigError(ValueError):
    """An invalid config; ``table`` and ``key`` name where (``key`` may be dotted, e.g. ``potential.a``)."""

    def __init__(self, message: str, table: str | None = None, key: str | None = None):
        self.table, self.key = table, key
        where = ""
        if table is not None:
            where = f"[{table}]" + (f" {key}" if key else "") + ": "
        super().__init__(where + message)


# -- schema ----------------------------------------------------------------------------------------------------
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "number": ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    "integer": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "string": ("a string", lambda v: isinstance(v, str)),
    "boolean": ("true or false", lambda v: isinstance(v, bool)),
    "array": ("an array", lambda v: isinstance(v, list)),
    "table": ("a table", lambda v: isinstance(v, dict)),
}


def _type_name(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "float", str: "string", list: "array", dict: "table"}.get(
        type(v), type(v).__name__)


@dataclass(frozen=True)
class Key:
    """One key of a table: accepted kinds (``"number"``, ``"integer"``, ``"string"``, ``"boolean"``,
    ``"array"``, ``"table"``), whether required, a default, allowed choices, and a value check returning an
    error message (or ``None``)."""

    kinds: tuple[str, ...]
    required: bool = False
    default: Any = _MISSING
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None
    doc: str = ""


@dataclass(frozen=True)
class TableSchema:
    """Keys of a table; with ``variant_key``, the allowed extra keys depend on that key's value."""

    name: str
    keys: Mapping[str, Key]
    variant_key: str | None = None
    variants: Mapping[str, Mapping[str, Key]] = field(default_factory=dict)
    doc: str = ""

    def validate(self, raw: Mapping[str, Any]) -> dict:
        """Check ``raw`` and return a copy with defaults filled in (raises :class:`ConfigError`)."""
        if not isinstance(raw, dict):
            raise ConfigError(f"must be a table, got {_type_name(raw)}", self.name)
        keys = dict(self.keys)
        if self.variant_key is not None:
            vk = self.variant_key
            if vk not in raw:
                raise ConfigError(f"missing required key {vk!r} (one of {sorted(self.variants)})", self.name, vk)
            v = raw[vk]
            if not isinstance(v, str) or v not in self.variants:
                raise ConfigError(f"unknown value {v!r}; choose one of {sorted(self.variants)}", self.name, vk)
            keys.update(self.variants[v])
        return _validate_keys(raw, keys, self.name, prefix="")


def _validate_keys(raw: Mapping[str, Any], keys: Mapping[str, Key], table: str, prefix: str) -> dict:
    out: dict[str, Any] = {}
    for k in raw:
        if k not in keys:
            raise ConfigError(f"unknown key {prefix + k!r}; allowed keys: {', '.join(sorted(keys))}", table,
                              prefix + k)
    for k, spec in keys.items():
        name = prefix + k
        if k not in raw:
            if spec.required:
                raise ConfigError(f"missing required key {name!r}", table, name)
            if spec.default is not _MISSING:
                out[k] = copy.deepcopy(spec.default)
            continue
        v = raw[k]
        if not any(_KINDS[kind][1](v) for kind in spec.kinds):
            want = " or ".join(_KINDS[kind][0] for kind in spec.kinds)
            raise ConfigError(f"expected {want}, got {_type_name(v)} {v!r}", table, name)
        if spec.choices is not None and v not in spec.choices:
            raise ConfigError(f"{v!r} is not allowed; choose one of {list(spec.choices)}", table, name)
        if spec.check is not None:
            msg = spec.check(v)
            if msg:
                raise ConfigError(msg, table, name)
        out[k] = copy.deepcopy(v)
    return out


# value checks (return an error message or None)
def _positive(v) -> str | None:
    return None if _all_numbers(v) and np.all(np.asarray(v, float) > 0) and _finite(v) else \
        f"must be > 0 and finite, got {v!r}"


def _nonneg(v) -> str | None:
    return None if _all_numbers(v) and np.all(np.asarray(v, float) >= 0) and _finite(v) else \
        f"must be >= 0 and finite, got {v!r}"


def _finite_check(v) -> str | None:
    return None if _all_numbers(v) and _finite(v) else f"must be finite numbers, got {v!r}"


def _at_least(n: int) -> Callable[[Any], str | None]:
    return lambda v: None if v >= n else f"must be >= {n}, got {v!r}"


def _all_numbers(v) -> bool:
    if isinstance(v, list):
        return all(_all_numbers(x) for x in v)
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v) -> bool:
    try:
        return bool(np.all(np.isfinite(np.asarray(v, dtype=float))))
    except (TypeError, ValueError):
        return False


NUM = ("number",)
NUM_OR_ARRAY = ("number", "array")

POTENTIAL_SCHEMAS: dict[str, dict[str, Key]] = {
    "double_well": {"a": Key(NUM, default=1.0, check=_positive), "b": Key(NUM, default=1.0, check=_finite_check)},
    "harmonic": {"k": Key(NUM, default=1.0, check=_positive), "center": Key(NUM, default=0.0, check=_finite_check)},
    "gaussian_mixture": {"weights": Key(("array",), required=True, check=_nonneg),
                         "means": Key(("array",), required=True, check=_finite_check),
                         "covs": Key(NUM_OR_ARRAY, required=True, check=_finite_check)},
    "muller_brown": {"scale": Key(NUM, default=1.0, check=_positive)},
    "expression": {"expression": Key(("string",), required=True),
                   "variables": Key(("array",), default=None)},
}


def _check_potential(v) -> str | None:
    if isinstance(v, str):
        return None if v.strip() else "the expression is empty"
    name = v.get("name")
    if name is None:
        return f"a potential table needs 'name' (one of {sorted(POTENTIAL_SCHEMAS)})"
    if name not in POTENTIAL_SCHEMAS:
        return f"unknown potential name {name!r}; choose one of {sorted(POTENTIAL_SCHEMAS)}"
    keys = dict(POTENTIAL_SCHEMAS[name], name=Key(("string",), required=True))
    _validate_keys(v, keys, "sde", prefix="potential.")
    return None


_LANGEVIN_COMMON = {
    "potential": Key(("string", "table"), required=True, check=_check_potential,
                     doc="an expression in x (y, z) or a table {name = ..., params}"),
    "kT": Key(NUM, default=1.0, check=_positive),
    "gamma": Key(NUM, default=1.0, check=_positive),
    "dim": Key(("integer",), check=_at_least(1)),
}

SDE_SCHEMA = TableSchema(
    "sde", {"type": Key(("string",), required=True)}, variant_key="type",
    variants={
        "overdamped_langevin": dict(_LANGEVIN_COMMON),
        "underdamped_langevin": dict(_LANGEVIN_COMMON, mass=Key(NUM, default=1.0, check=_positive)),
        "ornstein_uhlenbeck": {"theta": Key(NUM_OR_ARRAY, required=True, check=_finite_check),
                               "sigma": Key(NUM_OR_ARRAY, required=True, check=_nonneg),
                               "mu": Key(NUM_OR_ARRAY, default=0.0, check=_finite_check),
                               "dim": Key(("integer",), check=_at_least(1))},
        "vpsde": {"beta_min": Key(NUM, default=0.1, check=_positive), "beta_max": Key(NUM, default=20.0, check=_positive),
                  "dim": Key(("integer",), default=1, check=_at_least(1)),
                  "ddpm_betas": Key(("array",), check=_positive, doc="a DDPM schedule (VPSDE.from_ddpm_betas)"),
                  "mapping": Key(("string",), default="first_order", choices=("first_order", "exact"))},
        "vesde": {"sigma_min": Key(NUM, default=0.01, check=_positive),
                  "sigma_max": Key(NUM, default=50.0, check=_positive),
                  "dim": Key(("integer",), default=1, check=_at_least(1))},
    },
    doc="the model",
)

_SEED = Key(("integer",), check=_at_least(0))
INITIAL_SCHEMA = TableSchema(
    "initial", {"distribution": Key(("string",), required=True), "seed": _SEED}, variant_key="distribution",
    variants={
        "uniform": {"low": Key(NUM_OR_ARRAY, required=True, check=_finite_check),
                    "high": Key(NUM_OR_ARRAY, required=True, check=_finite_check),
                    "n_paths": Key(("integer",), required=True, check=_at_least(1))},
        "normal": {"mean": Key(NUM_OR_ARRAY, default=0.0, check=_finite_check),
                   "std": Key(NUM_OR_ARRAY, default=1.0, check=_nonneg),
                   "n_paths": Key(("integer",), required=True, check=_at_least(1))},
        "point": {"x": Key(NUM_OR_ARRAY, required=True, check=_finite_check),
                  "n_paths": Key(("integer",), required=True, check=_at_least(1))},
        "file": {"path": Key(("string",), required=True), "frame": Key(("integer",), default=-1),
                 "group": Key(("string",)), "n_paths": Key(("integer",), check=_at_least(1))},
    },
    doc="initial states x0 (n_paths, dim)",
)


INTEGRATE_SCHEMA = TableSchema("integrate", {
    "method": Key(("string",), default="euler_maruyama",
                  choices=("euler_maruyama", "milstein", "leimkuhler_matthews", "exact", "heun", "baoab")),
    "dt": Key(NUM, required=True, check=_positive),
    "t1": Key(NUM, required=True, check=_finite_check),
    "t0": Key(NUM, default=0.0, check=_finite_check),
    "save_every": Key(("integer",), default=1, check=_at_least(1)),
    "seed": _SEED,
    "driver": Key(("string",), default="auto", choices=("auto", "fused", "batched")),
    "threads": Key(("integer",), check=_at_least(1)),
    "max_abs": Key(NUM, check=lambda v: None if v > 0 else f"must be > 0, got {v!r}"),
    "precision": Key(("string",), default="float64", choices=("float64", "float32")),
}, doc="time grid, method and seed")


def _check_range(v) -> str | None:
    r = np.asarray(v, dtype=float) if _all_numbers(v) else None
    if r is None or r.shape[-1:] != (2,) or r.ndim > 2 or not np.isfinite(r).all() or np.any(r[..., 1] <= r[..., 0]):
        return f"must be [low, high] with low < high (or one pair per coordinate), got {v!r}"
    return None


def _check_observables(v) -> str | None:
    from .io.observables import OBSERVABLE_NAMES

    bad = [o for o in v if o not in OBSERVABLE_NAMES]
    return f"unknown observables {bad}; choose from {list(OBSERVABLE_NAMES)}" if bad else None


def _check_author(v) -> str | None:
    """The H5MD author name (``/h5md/author`` ``name``): the writer's own rule, checked at load time."""
    from .io import resolve_author

    try:
        resolve_author(v)
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


OUTPUT_SCHEMA = TableSchema("output", {
    "path": Key(("string",)),
    "overwrite": Key(("boolean",), default=False),
    "dtype": Key(("string",), choices=("float64", "float32")),  # default: [integrate] precision
    "compression": Key(("string",), default="none", choices=("none", "gzip", "lzf")),
    "compression_level": Key(("integer",), check=lambda v: None if 0 <= v <= 9 else f"must be 0..9, got {v}"),
    "flush_interval": Key(NUM, default=5.0, check=lambda v: None if (math.isfinite(v) and v >= 0) else
                          f"must be a finite number of seconds >= 0, got {v}"),
    "chunk_frames": Key(("integer",), check=_at_least(1)),
    "positions": Key(("boolean",), default=True),
    "observables": Key(("array",), default=[], check=_check_observables),
    "histogram_bins": Key(("integer",), default=50, check=_at_least(1)),
    "histogram_range": Key(("array",), check=_check_range),
    "author": Key(("string",), check=_check_author),
}, doc="the H5MD file")

TABLE_SCHEMAS: dict[str, TableSchema] = {s.name: s for s in (SDE_SCHEMA, INITIAL_SCHEMA, INTEGRATE_SCHEMA, OUTPUT_SCHEMA)}


def register_table(schema: TableSchema, *, replace: bool = False) -> None:
    """Add a table schema (e.g. ``[score]``) so configs may contain it; ``replace`` to redefine one."""
    if schema.name in TABLE_SCHEMAS and not replace:
        raise ValueError(f"table [{schema.name}] is already registered")
    TABLE_SCHEMAS[schema.name] = schema


# -- loading ---------------------------------------------------------------------------------------------------
@dataclass
class Config:
    """A validated config: ``tables`` (name -> dict with defaults filled) and the file it came from."""

    tables: dict[str, dict]
    source: Path | None = None

    def __getitem__(self, name: str) -> dict:
        return self.tables[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tables

    def get(self, name: str, default=None):
        return self.tables.get(name, default)

    def to_dict(self) -> dict:
        return copy.deepcopy(self.tables)

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source is not None else Path.cwd()


def load_config(source, allowed_tables: Iterable[str] | None = None,
                required_tables: Iterable[str] = ()) -> Config:
    """Read and validate a TOML config.

    Args:
        source: a path to a TOML file, or an already parsed dict.
        allowed_tables: tables this command accepts (default: every registered table).
        required_tables: tables that must be present.

    Raises:
        ConfigError: unreadable TOML, or an unknown table or key, a wrong type, a missing required key or an
            impossible value (the message names the table and key).
    """
    path = None
    if isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    allowed = tuple(TABLE_SCHEMAS) if allowed_tables is None else tuple(allowed_tables)
    tables: dict[str, dict] = {}
    for name, value in raw.items():
        if name not in allowed or name not in TABLE_SCHEMAS:
            raise ConfigError(f"unknown table [{name}]; allowed tables: {', '.join(f'[{t}]' for t in allowed)}")
        tables[name] = TABLE_SCHEMAS[name].validate(value)
    for name in required_tables:
        if name not in tables:
            raise ConfigError(f"missing required table [{name}]")
    cfg = Config(tables, path)
    _cross_checks(cfg)
    return cfg


def _cross_checks(cfg: Config) -> None:
    if "initial" in cfg and cfg["initial"]["distribution"] == "uniform":
        lo, hi = np.asarray(cfg["initial"]["low"], float), np.asarray(cfg["initial"]["high"], float)
        try:
            bad = np.any(np.broadcast_to(hi, np.broadcast_shapes(lo.shape, hi.shape)) <= lo)
        except ValueError:
            raise ConfigError(f"low {lo.tolist()} and high {hi.tolist()} have different lengths", "initial",
                              "high") from None
        if bad:
            raise ConfigError(f"high must be > low, got low={lo.tolist()}, high={hi.tolist()}", "initial", "high")
    if "integrate" in cfg:
        it = cfg["integrate"]
        if not it["t1"] != it["t0"]:
            raise ConfigError(f"t1 must differ from t0 = {it['t0']}, got {it['t1']}", "integrate", "t1")
    if "output" in cfg:
        o = cfg["output"]
        if not o["positions"] and not o["observables"]:
            raise ConfigError("positions = false and no observables: nothing would be stored", "output",
                              "positions")
        if "histogram" in o["observables"] and "histogram_range" not in o:
            raise ConfigError("the histogram observable needs histogram_range = [low, high]", "output",
                              "histogram_range")
    if "vesde" == cfg.get("sde", {}).get("type"):
        s = cfg["sde"]
        if not s["sigma_min"] < s["sigma_max"]:
            raise ConfigError(f"sigma_max must be > sigma_min = {s['sigma_min']}", "sde", "sigma_max")
    if "vpsde" == cfg.get("sde", {}).get("type"):
        s = cfg["sde"]
        if not s["beta_min"] <= s["beta_max"]:
            raise ConfigError(f"beta_max must be >= beta_min = {s['beta_min']}", "sde", "beta_max")


# -- builders --------------------------------------------------------------------------------------------------
def build_potential(spec, dim: int | None = None):
    """A :class:`~sde_toolkit.sde.potentials.Potential` from an expression string or a ``{name=...}`` table (the
    model registry, :mod:`sde_toolkit.sde.registry`, builds it)."""
    from .sde import registry

    try:
        return registry.potential_from_config(spec, dim)
    except (ValueError, TypeError) as exc:
        raise ConfigError(str(exc), "sde", "potential") from None


def build_sde(table: Mapping[str, Any]):
    """The SDE described by an ``[sde]`` table (validated here if it was not yet; built by the model registry,
    :mod:`sde_toolkit.sde.registry`, the same one score checkpoints and run files use).

    Raises:
        ConfigError: invalid table or parameters the model rejects (naming ``[sde]`` and the key if known).
    """
    from .sde import registry

    t = SDE_SCHEMA.validate(dict(table))
    kind = t["type"]
    try:
        return registry.from_config(t)
    except ConfigError:
        raise
    except (ValueError, TypeError, SyntaxError) as exc:
        raise ConfigError(f"{kind}: {exc}", "sde") from None


def initial_seed(initial: Mapping[str, Any], integrate_seed: int) -> int | np.random.SeedSequence:
    """The seed of the initial draw: ``[initial] seed`` if given, else derived from the integrator's seed."""
    if initial.get("seed") is not None:
        return int(initial["seed"])
    return np.random.SeedSequence(integrate_seed, spawn_key=(INITIAL_STREAM,))


def _vec(v, dim: int, table: str, key: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        return np.full(dim, float(a))
    if a.shape != (dim,):
        raise ConfigError(f"expected a number or {dim} numbers (dim = {dim}), got {len(a)}", table, key)
    return a


def build_initial(table: Mapping[str, Any], dim: int, seed=0, base_dir: os.PathLike | str | None = None) -> np.ndarray:
    """Initial states ``(n_paths, dim)`` from an ``[initial]`` table.

    Args:
        table: the ``[initial]`` table.
        dim: the SDE's dimension.
        seed: seed (int or ``SeedSequence``) of the draw when the table has no ``seed``.
        base_dir: folder that a relative ``path`` is resolved against (the config file's folder).
    """
    t = INITIAL_SCHEMA.validate(dict(table))
    kind = t["distribution"]
    if t.get("seed") is not None:
        seed = int(t["seed"])
    rng = np.random.default_rng(seed)
    if t.get("n_paths") is not None and kind != "file":
        try:  # before allocating: an impossible ensemble fails here, naming the key
            _checks.require_memory(3.0 * t["n_paths"] * dim * 8, f"n_paths = {t['n_paths']} states of dim {dim}")
        except ValueError as exc:
            raise ConfigError(str(exc), "initial", "n_paths") from None
    if kind == "uniform":
        lo, hi = _vec(t["low"], dim, "initial", "low"), _vec(t["high"], dim, "initial", "high")
        if np.any(hi <= lo):
            raise ConfigError("high must be > low in every coordinate", "initial", "high")
        return lo + (hi - lo) * rng.random((t["n_paths"], dim))
    if kind == "normal":
        mean, std = _vec(t["mean"], dim, "initial", "mean"), _vec(t["std"], dim, "initial", "std")
        return mean + std * rng.standard_normal((t["n_paths"], dim))
    if kind == "point":
        x = _vec(t["x"], dim, "initial", "x")
        return np.tile(x, (t["n_paths"], 1))
    # file
    p = Path(t["path"])
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    if not p.is_file():
        raise ConfigError(f"file {p} does not exist", "initial", "path")
    if p.suffix == ".npy":
        x = np.load(p, allow_pickle=False)
    else:  # any H5MD file with /particles/<group>/position: ours (verified, committed frames) or another program's
        from .io import read_h5md_positions

        try:
            x, _ = read_h5md_positions(p, group=t.get("group"), frame=t["frame"])
        except KeyError as exc:
            raise ConfigError(str(exc.args[0]), "initial", "group") from None
        except IndexError as exc:
            raise ConfigError(str(exc), "initial", "frame") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {p} as .npy or an H5MD file: {exc}", "initial", "path") from None
    try:
        x = _checks.states(x, dim, f"the array in {p}")  # real and finite: a complex file is refused, not cast
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), "initial", "path") from None
    if t.get("n_paths") is not None:
        if t["n_paths"] > x.shape[0]:
            raise ConfigError(f"n_paths = {t['n_paths']} but {p} holds {x.shape[0]} states", "initial", "n_paths")
        x = x[: t["n_paths"]]
    return np.ascontiguousarray(x)


def integrate_options(table: Mapping[str, Any]) -> dict:
    """Keyword arguments of :func:`~sde_toolkit.simulate` from an ``[integrate]`` table (seed resolved)."""
    t = dict(table)
    opts = {"t0": float(t["t0"]), "t1": float(t["t1"]), "dt": float(t["dt"]), "save_every": int(t["save_every"]),
            "method": t["method"], "seed": t.get("seed"), "driver": t["driver"],
            "precision": t.get("precision", "float64")}
    if t.get("threads") is not None:
        opts["threads"] = int(t["threads"])
    if t.get("max_abs") is not None:
        opts["max_abs"] = float(t["max_abs"])
    return opts


def output_options(table: Mapping[str, Any]) -> dict:
    """Writer options (``open_sink`` keywords) from an ``[output]`` table (``path`` excluded)."""
    t = dict(table)
    opts = {"overwrite": bool(t["overwrite"]), "dtype": t.get("dtype"), "compression": t["compression"],
            "flush_interval": float(t["flush_interval"]), "positions": bool(t["positions"]),
            "observables": list(t["observables"]), "histogram_bins": int(t["histogram_bins"])}
    for k in ("compression_level", "chunk_frames", "histogram_range", "author"):
        if t.get(k) is not None:
            opts[k] = t[k]
    return opts
