"""``simulate``: the one entry point for ensembles of SDE paths."""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np

from .._progress import Progress
from .._version import __version__
from ..sde.base import SDE
from . import noise
from .drivers import batched_step, fused_kernel
from .trajectory import DivergenceError, Trajectory

# Frames held in memory per segment before they are handed to the sink (the fused kernels write float64). 16 MiB
# keeps a streamed run's peak RSS low; a segment boundary costs one kernel launch, negligible next to the
# >= 16 MiB of states it follows (see docs/benchmarks-io.md).
FRAME_BUFFER_BYTES = 16 * 2**20

# Set by a signal handler (the CLI's SIGINT/SIGTERM); checked after every segment. A KeyboardInterrupt raised
# directly from a handler can land inside a weakref callback or finalizer, where Python ignores it, so the flag is
# what guarantees that a stop request ends the run (as "interrupted") at the next segment boundary.
STOP_REQUESTED = threading.Event()


def request_stop() -> None:
    """Ask running simulations to stop at their next segment boundary (raising ``KeyboardInterrupt``)."""
    STOP_REQUESTED.set()
OUTPUT_DTYPES = ("float64", "float32")
ALL_METHODS = ("euler_maruyama", "milstein", "exact", "heun", "baoab")


@dataclass(eq=False)
class RunPlan:
    """Everything that fixes a run's numbers: the time grid, the saved steps, the seed, the method.

    ``meta`` holds facts about how the run is driven that are not numbers of the plan (``"increments"``: True when
    the Brownian increments were supplied by the caller, so the run cannot be regenerated from its seed).
    """

    n_paths: int
    dim: int
    noise_dim: int
    t0: float
    t1: float
    dt: float
    h: float  # signed step (t1 - t0) / n_steps
    n_steps: int
    save_every: int
    save_steps: np.ndarray  # (n_save,) int64, 0, save_every, ..., n_steps
    seed: int
    method: str
    driver: str
    max_abs: float = math.inf
    meta: dict = field(default_factory=dict)

    @property
    def times(self) -> np.ndarray:
        return step_times(self.t0, self.t1, self.h, self.n_steps, self.save_steps)

    @property
    def noise_scheme(self) -> str:
        """The random-stream layout the plan's numbers come from (a resumed run must use the same)."""
        return f"pcg64-chunk{noise.CHUNK}-block{noise.BLOCK}-v{noise.SCHEME_VERSION}"

    def describe(self) -> dict:
        return {
            "n_paths": self.n_paths, "dim": self.dim, "noise_dim": self.noise_dim, "t0": self.t0, "t1": self.t1,
            "dt": self.dt, "n_steps": self.n_steps, "save_every": self.save_every, "seed": self.seed,
            "method": self.method, "driver": self.driver, "noise_scheme": self.noise_scheme,
            "package_version": __version__, "numpy_version": np.__version__, "numba_version": numba.__version__,
        }

    def to_dict(self) -> dict:
        """JSON-able: :meth:`describe` plus ``h``, ``max_abs`` and ``meta``; :meth:`from_dict` inverts it."""
        return {**self.describe(), "h": self.h, "max_abs": self.max_abs, "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, d) -> RunPlan:
        """The plan of :meth:`to_dict` (or of :meth:`describe` plus ``h``/``max_abs``, as stored in run files).

        ``save_steps`` is recomputed by :func:`save_steps`, the rule :func:`make_plan` uses; version and
        noise-scheme entries are facts of the writer, not of the plan, and are ignored.
        """
        n_steps, save_every = int(d["n_steps"]), int(d["save_every"])
        t0, t1 = float(d["t0"]), float(d["t1"])
        return cls(
            n_paths=int(d["n_paths"]), dim=int(d["dim"]), noise_dim=int(d["noise_dim"]), t0=t0, t1=t1,
            dt=float(d["dt"]), h=float(d["h"]) if "h" in d else (t1 - t0) / n_steps, n_steps=n_steps,
            save_every=save_every, save_steps=save_steps(n_steps, save_every), seed=int(d["seed"]),
            method=str(d["method"]), driver=str(d["driver"]), max_abs=float(d.get("max_abs", math.inf)),
            meta=dict(d.get("meta") or {}),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunPlan):
            return NotImplemented
        return (np.array_equal(self.save_steps, other.save_steps)
                and {k: v for k, v in vars(self).items() if k != "save_steps"}
                == {k: v for k, v in vars(other).items() if k != "save_steps"})


def save_steps(n_steps: int, save_every: int) -> np.ndarray:
    """The saved steps ``0, save_every, 2 save_every, ..., n_steps`` (the last step is always saved), int64."""
    steps = list(range(0, n_steps + 1, save_every))
    if steps[-1] != n_steps:
        steps.append(n_steps)
    return np.asarray(steps, dtype=np.int64)


def step_times(t0: float, t1: float, h: float, n_steps: int, steps) -> np.ndarray:
    """``t_k = t0 + k h`` computed (never accumulated); ``t_N = t1`` exactly."""
    steps = np.asarray(steps, dtype=np.int64)
    t = t0 + steps * h
    t[steps == n_steps] = t1
    return t


class MemorySink:
    """Keeps every saved frame in memory (the default when ``out`` is not given).

    ``dtype`` (``"float64"`` or ``"float32"``) is the storage type of the frames; the integration itself is
    always float64, and frames are rounded once when they are written.
    """

    def __init__(self, plan: RunPlan, dtype="float64"):
        self.plan = plan
        self.x = np.empty((len(plan.save_steps), plan.n_paths, plan.dim), dtype=_output_dtype(dtype))
        self.n = 0
        self.status = "running"

    def write(self, steps, times, frames):
        k = len(steps)
        self.x[self.n:self.n + k] = frames
        self.n += k

    def commit(self, step, state):
        pass

    def close(self, status: str, info: dict | None = None):
        self.status = status

    def result(self) -> Trajectory:
        p = self.plan
        meta = dict(p.describe(), status=self.status)
        return Trajectory(t=p.times[: self.n], x=self.x[: self.n], steps=p.save_steps[: self.n].copy(), meta=meta)


def _output_dtype(dtype) -> np.dtype:
    try:
        dt_ = np.dtype(dtype)
    except TypeError:
        dt_ = None
    if dt_ is None or dt_.name not in OUTPUT_DTYPES:
        raise ValueError(f"dtype must be one of {OUTPUT_DTYPES}, got {dtype!r}")
    return dt_


def _validate_x0(sde: SDE, x0) -> np.ndarray:
    arr = np.asarray(x0)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise TypeError(f"x0 must be a real floating-point array, got dtype {arr.dtype}")
    x = np.array(arr, dtype=np.float64, copy=True)
    if x.ndim == 1 and sde.dim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != sde.dim:
        raise ValueError(f"x0 must have shape (n_paths, {sde.dim}) for this {sde.dim}-dimensional SDE, got {arr.shape}")
    if x.shape[0] < 1:
        raise ValueError("x0 must hold at least one path (n_paths >= 1)")
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = bad[0]
        raise ValueError(f"x0 contains non-finite values ({bad.shape[0]} entries), first at x0[{i}, {j}] = {x[i, j]}")
    return np.ascontiguousarray(x)


def _finite_number(v, name) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {v!r}") from None
    if not math.isfinite(f):
        raise ValueError(f"{name} must be finite, got {v!r}")
    return f


def make_plan(sde: SDE, x0: np.ndarray, *, t0, t1, dt, save_every, method, seed, driver="auto",
              increments=None, max_abs=math.inf) -> RunPlan:
    """Validate the public arguments and fix the time grid (raises ``ValueError``/``TypeError``)."""
    if not isinstance(sde, SDE):
        raise TypeError(f"sde must be an sde_toolkit SDE, got {type(sde).__name__}")
    if method not in ALL_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {ALL_METHODS}")
    allowed = set(sde.methods) | ({"heun"} if sde.is_ode else set())
    if method not in allowed:
        raise ValueError(f"method {method!r} is not available for {type(sde).__name__}; it supports {sorted(allowed)}")
    t0 = _finite_number(t0, "t0")
    t1 = _finite_number(t1, "t1")
    dt = _finite_number(dt, "dt")
    if dt <= 0:
        raise ValueError(f"dt must be > 0, got {dt}")
    if sde.backward:
        if not t1 < t0:
            raise ValueError(f"{type(sde).__name__} runs backwards in time: need t1 < t0, got t0={t0}, t1={t1}")
    elif not t1 > t0:
        raise ValueError(f"need t1 > t0, got t0={t0}, t1={t1}")
    span = abs(t1 - t0)
    n_float = span / dt
    n_steps = int(round(n_float))
    if n_steps < 1 or abs(n_steps - n_float) > 1e-9 * max(1.0, n_float):
        raise ValueError(
            f"|t1 - t0| / dt = {n_float:.12g} is not a whole number of steps; "
            f"use dt = {span / max(1, round(n_float)):.12g} or adjust t1"
        )
    if isinstance(save_every, bool) or int(save_every) != save_every or save_every < 1:
        raise ValueError(f"save_every must be an integer >= 1, got {save_every!r}")
    save_every = int(save_every)
    max_abs = float(max_abs)
    if not max_abs > 0:
        raise ValueError(f"max_abs must be > 0, got {max_abs}")
    if driver not in ("auto", "fused", "batched"):
        raise ValueError(f"driver must be 'auto', 'fused' or 'batched', got {driver!r}")
    if driver == "fused" and not sde.has_numba_face:
        raise ValueError(f"driver='fused' needs an SDE with a Numba face; {type(sde).__name__} has none")
    chosen = "fused" if (driver in ("auto", "fused") and sde.has_numba_face) else "batched"
    noise_dim = sde.noise_dim if method != "heun" else 0
    if increments is not None:
        inc = np.asarray(increments)
        want = (n_steps, x0.shape[0], sde.noise_dim)
        if inc.shape != want:
            raise ValueError(f"increments must have shape (n_steps, n_paths, noise_dim) = {want}, got {inc.shape}")
        if not np.isfinite(inc).all():
            raise ValueError("increments contain non-finite values")
    return RunPlan(
        n_paths=x0.shape[0], dim=sde.dim, noise_dim=noise_dim, t0=t0, t1=t1, dt=dt,
        h=(t1 - t0) / n_steps, n_steps=n_steps, save_every=save_every,
        save_steps=save_steps(n_steps, save_every), seed=noise.resolve_seed(seed), method=method, driver=chosen,
        max_abs=max_abs, meta={"increments": True} if increments is not None else {},
    )


def _check_contract(sde: SDE, x0: np.ndarray, t0: float, method: str) -> None:
    """One trial evaluation of the batched face on two paths: shapes and finiteness (torchsde's check)."""
    xs = x0[:2]
    f = np.asarray(sde.drift(xs, t0))
    if f.shape != xs.shape:
        raise ValueError(f"drift(x, t) returned shape {f.shape} for x of shape {xs.shape}; it must match x")
    if method in ("euler_maruyama", "milstein"):
        g = np.asarray(sde.diffusion(xs, t0))
        want = (xs.shape[0], sde.dim, sde.noise_dim) if sde.noise_type == "general" else xs.shape
        if g.shape != want:
            raise ValueError(f"diffusion(x, t) returned shape {g.shape}; expected {want} for {sde.noise_type} noise")
        # (a negative g is a valid Itô diffusion, e.g. beta x for x < 0; parameters are checked by the models)
        bad = np.argwhere(~np.isfinite(g))
        if bad.size:
            raise ValueError(f"diffusion(x0, t0) is not finite at x0[{bad[0][0]}]: {g[tuple(bad[0])]}")
    bad = np.argwhere(~np.isfinite(f))
    if bad.size:
        raise ValueError(f"drift(x0, t0) is not finite at x0[{bad[0][0]}]: {f[tuple(bad[0])]}")


def default_threads() -> int:
    env = os.environ.get("NUMBA_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, numba.config.NUMBA_NUM_THREADS)


def run_plan(sde: SDE, plan: RunPlan, x: np.ndarray, sink, *, start_step: int = 0, increments=None,
             progress=None, threads: int | None = None, out_label=None) -> None:
    """Advance ``x`` (modified in place) from ``start_step`` to ``plan.n_steps``, handing frames to ``sink``.

    ``sink`` has ``write(steps, times, frames)``, ``commit(step, state)`` and ``close(status, info)``. The frame
    at ``start_step`` is written by the caller. Raises :class:`DivergenceError` after closing the sink with
    status ``"diverged"``; ``KeyboardInterrupt`` closes it with ``"interrupted"``.
    """
    n, dim, m = plan.n_paths, plan.dim, plan.noise_dim
    N = plan.n_steps
    bounds = noise.chunk_bounds(n)
    nthreads = threads or default_threads()
    fused = plan.driver == "fused"
    kern = fused_kernel(sde, plan.method, plan.h) if fused else None
    max_frames = max(1, FRAME_BUFFER_BYTES // max(1, n * dim * 8))
    save_steps = plan.save_steps
    bar = Progress(N - start_step, progress, desc=f"simulate[{plan.method}]")
    pool = ThreadPoolExecutor(max_workers=nthreads) if (fused and nthreads > 1 and len(bounds) > 1) else None
    dummy_inc = np.zeros((1, 1, 1))
    # File sinks write on a background thread while the next segment computes (the kernels release the GIL);
    # at most one segment is in flight, and writes and commits keep their order, so crash safety is unchanged.
    writer = None if isinstance(sink, MemorySink) else ThreadPoolExecutor(max_workers=1)
    inflight = []

    def hand_off(seg_saves, times, frames, k_commit, state):
        if len(seg_saves):
            sink.write(seg_saves, times, frames)
        sink.commit(k_commit, state)

    def drain():
        while inflight:
            inflight.pop().result()  # re-raises a writer error here, in the caller's thread

    status = "running"
    k = start_step
    try:
        while k < N:
            b = k // noise.BLOCK
            block_end = min((b + 1) * noise.BLOCK, N)
            gens = noise.block_generators(plan.seed, len(bounds), b) if (m > 0 and increments is None) else None
            skip = k - b * noise.BLOCK
            if gens is not None and skip:
                for c, (a, e) in enumerate(bounds):
                    todo = skip * (e - a) * m
                    while todo:
                        piece = min(todo, 2**22)
                        gens[c].standard_normal(piece)
                        todo -= piece
            while k < block_end:
                pending = save_steps[(save_steps > k) & (save_steps <= block_end)]
                k_b = int(pending[max_frames - 1]) if len(pending) > max_frames else block_end
                seg_saves = save_steps[(save_steps > k) & (save_steps <= k_b)]
                frames = np.empty((len(seg_saves), n, dim))
                if fused:
                    bad = np.zeros(n, dtype=np.bool_)
                    frame0 = (k // plan.save_every) * plan.save_every

                    def work(c, k=k, k_b=k_b, frames=frames, bad=bad, frame0=frame0, gens=gens):
                        a, e = bounds[c]
                        inc = dummy_inc if increments is None else np.ascontiguousarray(increments[k:k_b, a:e])
                        gen = gens[c] if gens is not None else np.random.default_rng(0)
                        # The kernel gets a private copy of its chunk: views of the shared ``x`` share one Numba
                        # reference count, and the row views taken per particle would make the threads
                        # fight over that cache line (2 threads ran slower than 1 on 2-D models).
                        xc = x[a:e].copy()
                        r = kern(xc, k, k_b, plan.t0, plan.h, plan.t1, N, gen, inc, increments is not None,
                                 plan.save_every, frames[:, a:e], frame0, plan.max_abs, bad[a:e])
                        x[a:e] = xc
                        return r

                    if pool is not None:
                        res = list(pool.map(work, range(len(bounds))))
                    else:
                        res = [work(c) for c in range(len(bounds))]
                    hits = [r for r in res if r >= 0]
                    if hits:
                        kbad = min(hits)
                        paths = np.flatnonzero(bad & np.isin(np.repeat(np.asarray(res), [e - a for a, e in bounds]), [kbad]))
                        drain()
                        _diverged(plan, sink, frames, seg_saves, kbad, paths, out_label)
                else:
                    fi = 0
                    for kk in range(k, k_b):
                        t = plan.t0 + kk * plan.h
                        t_next = plan.t1 if kk + 1 == N else plan.t0 + (kk + 1) * plan.h
                        z = dw = None
                        if m > 0:
                            if increments is not None:
                                dw = np.asarray(increments[kk], dtype=np.float64)
                                z = dw / math.sqrt(abs(plan.h))
                            else:
                                z = np.concatenate([gens[c].standard_normal((e - a, m)) for c, (a, e) in enumerate(bounds)])
                                dw = math.sqrt(abs(plan.h)) * z
                        xn = batched_step(sde, plan.method, x, t, plan.h, t_next, dw, z)
                        ok = np.all(np.abs(xn) <= plan.max_abs, axis=1)
                        x[:] = xn
                        if not ok.all():
                            drain()
                            _diverged(plan, sink, frames, seg_saves, kk + 1, np.flatnonzero(~ok), out_label)
                        if fi < len(seg_saves) and seg_saves[fi] == kk + 1:
                            frames[fi] = x
                            fi += 1
                bar.update(k_b - k)
                k = k_b
                times = step_times(plan.t0, plan.t1, plan.h, N, seg_saves) if len(seg_saves) else None
                if writer is None:
                    hand_off(seg_saves, times, frames, k, x)
                else:
                    drain()
                    inflight.append(writer.submit(hand_off, seg_saves, times, frames, k, x.copy()))
                if STOP_REQUESTED.is_set():
                    raise KeyboardInterrupt("stop requested")
        drain()
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except DivergenceError:
        status = "diverged"
        raise
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
        if writer is not None:
            try:
                drain()  # the last segment handed off before an interrupt is committed, not lost
            finally:
                writer.shutdown()
                sink.close(status)
        else:
            sink.close(status)


def _diverged(plan, sink, frames, seg_saves, kbad, paths, out_label):
    keep = seg_saves < kbad
    if keep.any():
        sink.write(seg_saves[keep], step_times(plan.t0, plan.t1, plan.h, plan.n_steps, seg_saves[keep]), frames[keep])
    t = plan.t1 if kbad == plan.n_steps else plan.t0 + kbad * plan.h
    raise DivergenceError(kbad, t, len(paths), paths, out=out_label)


def simulate(sde: SDE, x0, *, t1: float, dt: float, t0: float = 0.0, save_every: int = 1,
             method: str = "euler_maruyama", seed: int | None = None, out=None, progress: bool | None = None,
             increments=None, driver: str = "auto", threads: int | None = None, max_abs: float = math.inf,
             dtype: str = "float64", **out_options: Any) -> Trajectory:
    """Simulate an ensemble of paths of ``sde`` from ``x0`` on ``[t0, t1]`` with a fixed step.

    Args:
        sde: any :class:`~sde_toolkit.SDE`. SDEs with a Numba face run on the fused driver (chunks of paths in
            parallel, nogil kernels); others on the batched NumPy driver. Backward SDEs (reverse-time, probability
            flow) need ``t1 < t0``.
        x0: ``(n_paths, dim)`` initial states (``(n_paths,)`` accepted when ``dim == 1``).
        t1: final time; ``(t1 - t0) / dt`` must be a whole number (checked to 1e-9).
        dt: step size > 0 (the step is ``(t1 - t0) / round(|t1 - t0| / dt)``, signed).
        t0: initial time.
        save_every: keep every ``save_every``-th state; ``t0`` and ``t1`` are always saved.
        method: ``"euler_maruyama"`` (strong order 0.5, 1.0 for additive noise; weak order 1),
            ``"milstein"`` (diagonal noise, strong order 1), ``"exact"`` (linear SDEs: exact transition at any
            step), ``"heun"`` (ODEs, order 2), ``"baoab"`` (underdamped Langevin splitting).
        seed: root seed; fixes every number bit for bit, whatever the thread count. ``None`` draws OS entropy
            (recorded in ``traj.meta["seed"]``).
        out: path of an H5MD file to stream into (see ``docs/file-format.md``); extra keyword arguments
            (``compression``, ``flush_interval``, ``overwrite``, ``config``, ...) go to the writer.
        progress: ``True`` always shows a tqdm bar, ``False`` never, ``None`` when the run takes over ~2 s.
        increments: optional Brownian increments ``dW`` of shape ``(n_steps, n_paths, noise_dim)``
            (common random numbers); replaces the generator.
        driver: ``"auto"``, ``"fused"`` or ``"batched"``.
        threads: worker threads of the fused driver (default ``NUMBA_NUM_THREADS``); results do not depend on it.
        max_abs: a state with ``|x| > max_abs`` counts as diverged (default: only NaN/inf).
        dtype: ``"float64"`` (default) or ``"float32"``: the type of the saved frames, in the file (``out``) or in
            memory (``traj.x``). The integration is float64 either way; frames are rounded once when saved.

    Returns:
        :class:`Trajectory` with ``t`` ``(n_save,)``, ``x`` ``(n_save, n_paths, dim)``.

    Raises:
        ValueError / TypeError: bad input (before any work or file is created).
        DivergenceError: a state became non-finite; names the step, the time and the paths. Frames saved before
            it are kept (in ``err.trajectory`` or in the file, whose status becomes ``"diverged"``).
    """
    x = _validate_x0(sde, x0)
    dtype = _output_dtype(dtype).name
    plan = make_plan(sde, x, t0=t0, t1=t1, dt=dt, save_every=save_every, method=method, seed=seed, driver=driver,
                     increments=increments, max_abs=max_abs)
    _check_contract(sde, x, plan.t0, method)
    if increments is not None:
        increments = np.asarray(increments, dtype=np.float64)
    if out is not None:
        sink = open_file_sink(out, plan, sde, x, dtype=dtype, **out_options)
        label = str(out)
    else:
        if out_options:
            raise TypeError(f"unexpected keyword arguments {sorted(out_options)} (writer options need out=)")
        sink = MemorySink(plan, dtype=dtype)
        label = None
    sink.write(plan.save_steps[:1], plan.times[:1], x[None])
    sink.commit(0, x)
    try:
        run_plan(sde, plan, x, sink, increments=increments, progress=progress, threads=threads, out_label=label)
    except DivergenceError as err:
        if isinstance(sink, MemorySink):
            err.trajectory = sink.result()
        raise
    return sink.result() if isinstance(sink, MemorySink) else file_result(sink)


def open_file_sink(out, plan: RunPlan, sde: SDE, x0: np.ndarray, **options: Any):
    """The H5MD writer of a run: the file format gets the plan as a header dict, the saved steps and ``x0``."""
    from ..io import open_sink

    return open_sink(out, plan.to_dict(), plan.save_steps, x0, sde=repr(sde),
                     sde_class=f"{type(sde).__module__}.{type(sde).__qualname__}", **options)


def file_result(sink) -> Trajectory:
    """The :class:`Trajectory` of a closed file sink, read back from its file (lazy ``x``)."""
    from ..io import open_run

    return Trajectory.from_run(open_run(sink.final_file, allow_partial=sink.status != "complete"))
