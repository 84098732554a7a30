"""``simulate``: the one entry point for ensembles of SDE paths (on the one driver, :mod:`.driver`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import _checks
from ..sde.base import SDE
from . import driver as _driver
from .driver import STOP_REQUESTED, default_threads, request_stop
from .methods import get_method
from .plan import RunPlan, make_plan, save_steps, step_times
from .trajectory import DivergenceError, Trajectory

__all__ = ["simulate", "MemorySink", "RunPlan", "make_plan", "run_plan", "step_times", "save_steps",
           "STOP_REQUESTED", "request_stop", "default_threads", "OUTPUT_DTYPES"]

OUTPUT_DTYPES = ("float64", "float32")


class MemorySink:
    """Keeps every saved frame in memory (the default when ``out`` is not given).

    ``dtype`` (``"float64"`` or ``"float32"``) is the storage type of the frames; the integration itself is
    float64, and frames are rounded once when they are written.
    """

    in_memory = True

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
        meta = dict(p.to_dict(), status=self.status)
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
    return _checks.states(x0, sde.dim, "x0")


def _check_contract(sde: SDE, x0: np.ndarray, t0: float, method: str) -> None:
    """One trial evaluation of the batched face on two paths: shapes and finiteness (torchsde's check)."""
    xs = x0[:2]
    f = np.asarray(sde.drift(xs, t0))
    if f.shape != xs.shape:
        raise ValueError(f"drift(x, t) returned shape {f.shape} for x of shape {xs.shape}; it must match x")
    if method in ("euler_maruyama", "milstein") and not sde.is_ode:
        g = np.asarray(sde.diffusion(xs, t0))
        want = (xs.shape[0], sde.dim, sde.noise_dim) if sde.noise_type == "general" else xs.shape
        if g.shape != want:
            raise ValueError(f"diffusion(x, t) returned shape {g.shape}; expected {want} for {sde.noise_type} noise")
        # (a negative g is a valid Itô diffusion, e.g. beta x for x < 0; parameters are checked by the models)
        if g.dtype.kind == "c":
            raise TypeError("diffusion(x, t) returned complex values")
        bad = np.argwhere(~np.isfinite(g))
        if bad.size:
            raise ValueError(f"diffusion(x0, t0) is not finite at x0[{bad[0][0]}]: {g[tuple(bad[0])]}")
    if f.dtype.kind == "c":
        raise TypeError("drift(x, t) returned complex values")
    bad = np.argwhere(~np.isfinite(f))
    if bad.size:
        raise ValueError(f"drift(x0, t0) is not finite at x0[{bad[0][0]}]: {f[tuple(bad[0])]}")


def run_plan(sde: SDE, plan: RunPlan, x: np.ndarray, sink, *, start_step: int = 0, increments=None,
             progress=None, threads: int | None = None, out_label=None, write_initial: bool | None = None) -> None:
    """Advance ``x`` (in place) from ``start_step`` to ``plan.n_steps`` with ``plan.method``, handing frames to
    ``sink`` (see :func:`sde_toolkit.integrate.driver.run`; ``resume`` uses this). The initial frame is written
    only for a fresh start (``start_step == 0`` and ``write_initial`` not false); a resumed file holds it."""
    _driver.run(sde, get_method(plan.method, sde), plan, x, sink, start_step=start_step, increments=increments,
                progress=progress, threads=threads, label=out_label,
                write_initial=(start_step == 0) if write_initial is None else write_initial)


def simulate(sde: SDE, x0, *, t1: float, dt: float, t0: float = 0.0, save_every: int = 1,
             method: str = "euler_maruyama", seed=None, out=None, progress: bool | None = None,
             increments=None, driver: str = "auto", threads: int | None = None, max_abs: float = math.inf,
             dtype: str | None = None, noise: str | None = None, precision: str = "float64",
             **out_options: Any) -> Trajectory:
    """Simulate an ensemble of paths of ``sde`` from ``x0`` on ``[t0, t1]`` with a fixed step.

    Args:
        sde: any :class:`~sde_toolkit.SDE`. SDEs with a Numba face run on the fused driver (one compiled kernel,
            path ranges in parallel); others on the batched NumPy driver. Backward SDEs (reverse-time, probability
            flow) need ``t1 < t0``.
        x0: ``(n_paths, dim)`` initial states (``(n_paths,)`` accepted when ``dim == 1``).
        t1: final time; ``(t1 - t0) / dt`` must be a whole number (checked to 1e-9).
        dt: step size > 0 (the step is ``(t1 - t0) / round(|t1 - t0| / dt)``, signed).
        t0: initial time.
        save_every: keep every ``save_every``-th state; ``t0`` and ``t1`` are always saved.
        method: a name from ``sde_toolkit.integrate.METHODS`` or a :class:`~sde_toolkit.integrate.Method`:
            ``"euler_maruyama"`` (strong order 0.5, 1.0 for additive noise; weak order 1), ``"milstein"``
            (diagonal noise, strong order 1), ``"exact"`` (linear SDEs: exact transition at any step), ``"heun"``
            (ODEs, order 2), ``"baoab"`` (the splitting scheme of underdamped Langevin). A method the SDE does not
            support is refused with the list of those it does.
        seed: ``int``, ``SeedSequence``, ``Generator`` or ``None`` (fresh entropy); fixes every number bit for
            bit, whatever the thread count; recorded in ``traj.meta["seed"]``.
        out: path of an H5MD file to stream into (see ``docs/file-format.md``); extra keyword arguments
            (``compression``, ``flush_interval``, ``overwrite``, ``config``, ...) go to the writer.
        progress: ``True`` always shows a tqdm bar, ``False`` never, ``None`` when the run takes over ~2 s.
        increments: optional Brownian increments ``dW`` of shape ``(n_steps, n_paths, n_normals)`` (common
            random numbers; ``n_normals`` is the method's normals per step, ``noise_dim`` for EM); replaces the
            generator.
        driver: ``"auto"``, ``"fused"`` or ``"batched"``.
        threads: worker threads of the fused driver (default ``NUMBA_NUM_THREADS``); results do not depend on it.
        max_abs: a state with ``|x| > max_abs`` counts as diverged (NaN and +-inf always do).
        dtype: ``"float64"`` or ``"float32"``: the type of the saved frames, in the file (``out``) or in memory
            (``traj.x``); default: the ``precision``. A float64 run with ``dtype="float32"`` rounds frames once
            when they are saved.
        noise: the noise scheme, ``"v2"`` (default: counter-based Philox4x32-10 with Box–Muller; a path's noise is
            independent of the ensemble size) or ``"v1"`` (per chunk/block PCG64 streams of earlier versions).
        precision: ``"float64"`` (default) or ``"float32"``: the type of the state and of the step arithmetic.
            In float32 the state, the drift and diffusion values and the update are float32 (models that declare
            ``float32_face``, such as OU and overdamped Langevin in the built-in potentials, also keep their
            constants in float32; the kernels of other models compute in float64 and round on store). Time,
            the noise transform (each normal is the float64 normal of scheme v2 rounded once, so a float32 run
            sees the same noise as a float64 run of the same seed), transcendental functions of expression
            potentials, energies and the carry of MCMC layers stay float64. Needs noise scheme v2 and a method
            that lists float32 in ``precisions``; the frames are float32 unless ``dtype`` says otherwise.
            See ``docs/precision.md``.

    Returns:
        :class:`Trajectory` with ``t`` ``(n_save,)``, ``x`` ``(n_save, n_paths, dim)``.

    Raises:
        ValueError / TypeError: bad input (before any work or file is created).
        DivergenceError: a state became non-finite or too large; names the step, the time and the paths. Frames
            saved before it are kept (in ``err.trajectory`` or in the file, whose status becomes ``"diverged"``).
    """
    x = _validate_x0(sde, x0)
    plan = make_plan(sde, x, t0=t0, t1=t1, dt=dt, save_every=save_every, method=method, seed=seed, driver=driver,
                     increments=increments, max_abs=max_abs, noise=noise, precision=precision)
    dtype = _output_dtype(plan.precision if dtype is None else dtype).name
    meth = get_method(method, sde)
    _check_contract(sde, x, plan.t0, meth.name)
    if plan.state_dtype != x.dtype:
        x = _checks.in_range_of(x, plan.state_dtype, "x0")  # the float32 state: x0 rounded once
    if increments is not None:
        increments = np.asarray(increments, dtype=np.float64)
    if threads is not None:
        threads = _checks.count(threads, "threads", 1)
    _checks.require_memory(3 * x.nbytes, f"the state of {plan.n_paths} paths x {plan.dim} dims")
    if out is not None:
        sink = open_file_sink(out, plan, sde, x, dtype=dtype, **out_options)
        label = str(out)
    else:
        if out_options:
            raise TypeError(f"unexpected keyword arguments {sorted(out_options)} (writer options need out=)")
        _checks.require_memory(len(plan.save_steps) * x.size * np.dtype(dtype).itemsize,
                               f"keeping {len(plan.save_steps)} frames of {plan.n_paths} x {plan.dim} in memory")
        sink = MemorySink(plan, dtype=dtype)
        label = None
    try:
        _driver.run(sde, meth, plan, x, sink, increments=increments, progress=progress, threads=threads,
                    label=label)
    except DivergenceError as err:
        if isinstance(sink, MemorySink):
            err.trajectory = sink.result()
        raise
    return sink.result() if isinstance(sink, MemorySink) else file_result(sink)


def open_file_sink(out, plan: RunPlan, sde: SDE, x0: np.ndarray, **options: Any):
    """The H5MD writer of a run: the file format gets the plan as a header dict, the saved steps and ``x0``.
    The frames are stored as ``options["dtype"]``, by default the plan's precision."""
    from ..io import open_sink
    from ..sde.registry import try_to_config

    if options.get("dtype") is None:
        options["dtype"] = plan.precision
    return open_sink(out, plan.to_dict(), plan.save_steps, x0, sde=repr(sde),
                     sde_class=f"{type(sde).__module__}.{type(sde).__qualname__}", sde_config=try_to_config(sde),
                     **options)


def file_result(sink) -> Trajectory:
    """The :class:`Trajectory` of a closed file sink, read back from its file (lazy ``x``)."""
    from ..io import open_run

    return Trajectory.from_run(open_run(sink.final_file, allow_partial=sink.status != "complete"))
