"""``RunPlan``: everything that fixes a run's numbers (time grid, saved steps, seed, method, noise scheme).

A plan is built and validated once at the public boundary (:func:`make_plan`), stored in files as JSON
(:meth:`RunPlan.to_dict`) and rebuilt from them exactly (:meth:`RunPlan.from_dict`) when a run is resumed.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field, replace
from functools import cached_property

import numba
import numpy as np

from .. import _checks
from .._random import NOISE_V1, Seed, parse_scheme, resolve_seed
from .._version import __version__
from ..sde.base import SDE
from .methods import Method, get_method

__all__ = ["RunPlan", "make_plan", "save_steps", "n_saved", "step_times", "FLOAT_MAX", "PRECISIONS",
           "check_precision"]

FLOAT_MAX = sys.float_info.max
# A run holds at most this many saved frames and paths (beyond, arrays and files become impractical; the check
# turns an allocation failure deep inside NumPy into a clear error at the boundary).
MAX_FRAMES = 2**40
MAX_PATHS = 2**40
# ``precision=``: the type of the state and of the step arithmetic (time, noise transform and energies stay float64)
PRECISIONS = ("float64", "float32")


def check_precision(precision) -> str:
    """``"float64"`` or ``"float32"`` (``np.float32`` and ``np.dtype`` spellings accepted), else ``ValueError``."""
    try:
        name = precision if isinstance(precision, str) or precision is None else np.dtype(precision).name
    except TypeError:
        name = None
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return name


def n_saved(n_steps: int, save_every: int, save_start: int = 0, save_last: bool = True) -> int:
    """How many steps :func:`save_steps` returns (computed, so that impossible sizes are refused before any
    allocation)."""
    regular = (int(n_steps) - int(save_start)) // int(save_every) + 1 if n_steps >= save_start else 0
    last_regular = int(save_start) + (regular - 1) * int(save_every)
    return regular + (1 if save_last and (regular == 0 or last_regular != n_steps) else 0)


def save_steps(n_steps: int, save_every: int, save_start: int = 0, save_last: bool = True) -> np.ndarray:
    """The saved step indices: ``save_start, save_start + save_every, ...`` up to ``n_steps``, plus ``n_steps``
    when ``save_last`` (``simulate`` saves ``t0`` and ``t1`` always; MCMC keeps ``burn_in + j thin``)."""
    steps = np.arange(int(save_start), int(n_steps) + 1, int(save_every), dtype=np.int64)
    if save_last and (steps.size == 0 or steps[-1] != n_steps):
        steps = np.append(steps, np.int64(n_steps))
    return steps


def step_times(t0: float, t1: float, h: float, n_steps: int, steps) -> np.ndarray:
    """``t_k = t0 + k h`` computed (never accumulated); ``t_N = t1`` exactly."""
    steps = np.asarray(steps, dtype=np.int64)
    t = t0 + steps * h
    t[steps == n_steps] = t1
    return t


@dataclass(frozen=True)
class RunPlan:
    """The numbers that fix a run (frozen; JSON round trip with :meth:`to_dict` / :meth:`from_dict`)."""

    n_paths: int
    dim: int
    noise_dim: int
    t0: float
    t1: float
    dt: float
    h: float  # signed step (t1 - t0) / n_steps
    n_steps: int
    save_every: int
    seed: Seed
    method: str
    driver: str
    noise: str  # noise scheme name (sde_toolkit._random)
    max_abs: float = math.inf
    save_start: int = 0
    save_last: bool = True
    path_offset: int = 0  # index of path 0 in the noise scheme's path numbering (sharded ensembles)
    precision: str = "float64"  # state and step arithmetic (PRECISIONS)
    meta: dict = field(default_factory=dict, compare=False)

    @cached_property
    def save_steps(self) -> np.ndarray:
        return save_steps(self.n_steps, self.save_every, self.save_start, self.save_last)

    @property
    def n_regular(self) -> int:
        """Saved frames on the regular grid ``save_start + j save_every``."""
        return (self.n_steps - self.save_start) // self.save_every + 1

    @property
    def state_dtype(self) -> np.dtype:
        """The NumPy type of the state ``x`` the driver advances (``precision``)."""
        return np.dtype(self.precision)

    @property
    def times(self) -> np.ndarray:
        return step_times(self.t0, self.t1, self.h, self.n_steps, self.save_steps)

    @property
    def max_abs_check(self) -> float:
        """The bound the divergence check compares ``|x|`` with: ``max_abs``, but never above the largest
        finite float, so that ``inf`` counts as diverged even with the default ``max_abs = inf``."""
        return min(self.max_abs, FLOAT_MAX)

    def to_dict(self) -> dict:
        """A JSON-able description (what files store); :meth:`from_dict` rebuilds an equal plan."""
        return {
            "n_paths": self.n_paths, "dim": self.dim, "noise_dim": self.noise_dim, "t0": self.t0, "t1": self.t1,
            "dt": self.dt, "h": self.h, "n_steps": self.n_steps, "save_every": self.save_every,
            "save_start": self.save_start, "save_last": self.save_last, "seed": self.seed.to_json(),
            "method": self.method, "driver": self.driver, "noise_scheme": self.noise,
            "max_abs": None if math.isinf(self.max_abs) else self.max_abs, "path_offset": self.path_offset,
            "precision": self.precision, "increments": bool(self.meta.get("increments", False)),
            "package_version": __version__, "numpy_version": np.__version__, "numba_version": numba.__version__,
        }

    describe = to_dict

    @classmethod
    def from_dict(cls, d: dict) -> RunPlan:
        """The plan a file describes (plans of earlier versions: integer seeds, no ``h``/``save_start``)."""
        n_steps = int(d["n_steps"])
        t0, t1 = float(d["t0"]), float(d["t1"])
        seed = d["seed"]
        max_abs = d.get("max_abs")
        return cls(
            n_paths=int(d["n_paths"]), dim=int(d["dim"]), noise_dim=int(d["noise_dim"]), t0=t0, t1=t1,
            dt=float(d["dt"]), h=float(d["h"]) if d.get("h") is not None else (t1 - t0) / n_steps,
            n_steps=n_steps, save_every=int(d["save_every"]), seed=Seed.from_json(seed), method=str(d["method"]),
            driver=str(d["driver"]), noise=parse_scheme(d.get("noise_scheme", NOISE_V1)),
            max_abs=math.inf if max_abs is None else float(max_abs), save_start=int(d.get("save_start", 0)),
            save_last=bool(d.get("save_last", True)), path_offset=int(d.get("path_offset", 0)),
            precision=check_precision(d.get("precision", "float64")),
            meta={"increments": bool(d.get("increments", False))},
        )

    def with_(self, **changes) -> RunPlan:
        return replace(self, **changes)


def make_plan(sde: SDE, x0: np.ndarray, *, t0, t1=None, dt=None, save_every=1, method="euler_maruyama",
              seed=None, driver="auto", increments=None, max_abs=math.inf, noise=None, save_start: int = 0,
              save_last: bool = True, n_steps: int | None = None, path_offset: int = 0,
              precision="float64") -> RunPlan:
    """Validate the public arguments and fix the time grid (raises ``ValueError``/``TypeError``).

    The grid is ``t_k = t0 + k h`` with ``h = (t1 - t0) / n_steps``; ``|t1 - t0| / dt`` must be a whole number
    (to 1e-9). With ``n_steps`` given (and ``t1`` omitted), ``h = dt`` exactly and ``t1 = t0 + n_steps dt``.
    """
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an sde_toolkit SDE, got {type(sde).__name__}")
    meth: Method = get_method(method, sde)
    t0 = _checks.number(t0, "t0")
    dt = _checks.positive(dt, "dt")
    if n_steps is not None:
        n_steps = _checks.count(n_steps, "n_steps", 1)
        h = -dt if sde.backward else dt
        t1 = t0 + n_steps * h
        if not math.isfinite(t1):
            raise ValueError(f"t0 + n_steps * dt is not finite (n_steps={n_steps}, dt={dt})")
    else:
        t1 = _checks.number(t1, "t1")
        if sde.backward:
            if not t1 < t0:
                raise ValueError(f"{type(sde).__name__} runs backwards in time: need t1 < t0, got t0={t0}, t1={t1}")
        elif not t1 > t0:
            raise ValueError(f"need t1 > t0, got t0={t0}, t1={t1}")
        span = abs(t1 - t0)
        n_float = span / dt
        if not n_float < 2**53:
            raise ValueError(f"|t1 - t0| / dt = {n_float:.3g} steps is too many")
        n_steps = int(round(n_float))
        if n_steps < 1 or abs(n_steps - n_float) > 1e-9 * max(1.0, n_float):
            raise ValueError(
                f"|t1 - t0| / dt = {n_float:.12g} is not a whole number of steps; "
                f"use dt = {span / max(1, round(n_float)):.12g} or adjust t1"
            )
        h = (t1 - t0) / n_steps
    save_every = _checks.count(save_every, "save_every", 1)
    save_start = _checks.count(save_start, "save_start", 0, n_steps)
    max_abs = float(max_abs) if not isinstance(max_abs, (str, bytes)) else math.nan
    if not max_abs > 0:
        raise ValueError(f"max_abs must be > 0, got {max_abs}")
    if driver not in ("auto", "fused", "batched"):
        raise ValueError(f"driver must be 'auto', 'fused' or 'batched', got {driver!r}")
    if driver == "fused" and not sde.has_numba_face:
        raise ValueError(f"driver='fused' needs an SDE with a Numba face; {type(sde).__name__} has none")
    chosen = "fused" if (driver in ("auto", "fused") and sde.has_numba_face) else "batched"
    n = int(x0.shape[0])
    if n > MAX_PATHS:
        raise ValueError(f"{n} paths is more than this version handles ({MAX_PATHS}); shard the ensemble")
    n_save = n_saved(n_steps, save_every, save_start, save_last)
    if n_save > MAX_FRAMES:
        raise ValueError(f"{n_save} saved frames is more than {MAX_FRAMES}; raise save_every")
    _checks.require_memory(24.0 * n_save, f"the time grid of {n_save} saved frames (steps and times)")
    scheme = parse_scheme(noise)
    precision = check_precision(precision)
    if precision != "float64" and scheme == NOISE_V1:
        raise ValueError("precision='float32' needs noise scheme v2 (v1 is kept to resume float64 files)")
    if precision not in meth.precisions:
        raise ValueError(f"method {meth.name!r} runs in {list(meth.precisions)} only, not precision={precision!r}")
    if scheme == NOISE_V1 and (meth.n_uniforms(sde) or meth.carry_dim(sde)):
        raise ValueError(f"noise scheme v1 is kept for simulate's legacy methods; {meth.name} needs v2")
    if increments is not None and meth.noise_lookahead:
        raise ValueError(f"method {meth.name!r} draws its own lookahead noise and does not take increments=")
    if increments is not None:
        inc = np.asarray(increments)
        want = (n_steps, n, meth.n_normals(sde))
        if inc.shape != want:
            raise ValueError(f"increments must have shape (n_steps, n_paths, n_normals) = {want}, got {inc.shape}")
        if not np.isfinite(inc).all():
            raise ValueError("increments contain non-finite values")
    return RunPlan(
        n_paths=n, dim=sde.dim, noise_dim=meth.n_normals(sde), t0=t0, t1=t1, dt=dt, h=h, n_steps=n_steps,
        save_every=save_every, seed=resolve_seed(seed), method=meth.name, driver=chosen, noise=scheme,
        max_abs=max_abs, save_start=save_start, save_last=bool(save_last),
        path_offset=_checks.count(path_offset, "path_offset", 0), precision=precision,
        meta={"increments": increments is not None},
    )
