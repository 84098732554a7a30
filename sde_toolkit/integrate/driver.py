"""The one driver skeleton: compile once, cut the run into segments, run path ranges on one thread pool, hand
frames to a sink. ``simulate``, ``mcmc.langevin`` and the score samplers all run through :func:`run`.

Two execution modes share the noise, the time grid, the divergence rule and the segment/sink loop:

* **fused** (the SDE has a Numba face): the model's per-particle kernels (``sde.numba_face(piece)``, inlined) and
  the method's chunk step (``method.fused(...)``) are composed into one chunk kernel, compiled once per
  ``(SDE value, method, step if the method needs it)`` and kept in a bounded cache keyed by value (two equal SDEs
  share a kernel). The kernel advances a range of paths over a range of steps in chunks of :data:`CHUNK` paths
  (noise drawn in-kernel from the counter-based scheme), checks divergence, and writes saved frames.
* **batched** (any SDE): the method's NumPy step on the whole ensemble, fed the same normals.

Determinism: noise scheme v2 makes every normal a function of ``(seed, step, path, component)``, so results do
not depend on the thread count, the chunking or the partition into tasks, and a resumed run continues exactly.
The legacy scheme v1 (per chunk/block PCG64 streams) runs 4096-path chunks with their generators, as before.

Divergence: a state with ``not |x| <= max_abs`` (NaN, +-inf, or beyond ``max_abs``) stops the run at the first
such step (``on_divergence="raise"``: frames before it are handed to the sink, then :class:`DivergenceError`), or
is only flagged (``"flag"``, for MCMC chains: the paths are recorded in ``info["diverged_step"]``).
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .. import _random as R
from .._jit import compile_kernel, numba_config, piece
from .._progress import Progress
from .methods import Method, fused_for
from .plan import RunPlan, step_times
from .trajectory import DivergenceError

__all__ = ["run", "kernel_cache_info", "STOP_REQUESTED", "request_stop", "default_threads", "CHUNK"]

CHUNK = 256  # paths per inner chunk of a task (cache locality; results do not depend on it)
SEGMENT_STEPS = 256  # steps per segment at most: commit points, stop checks and progress updates
FRAME_BUFFER_BYTES = 16 * 2**20  # frames held per segment before they are handed to the sink
MIN_TASK_PATHS = 64
KERNEL_CACHE_SIZE = 64

# Set by a signal handler (the CLI's SIGINT/SIGTERM); checked after every segment. A KeyboardInterrupt raised
# directly from a handler can land inside a weakref callback or finalizer, where Python ignores it, so the flag is
# what guarantees that a stop request ends the run (as "interrupted") at the next segment boundary.
STOP_REQUESTED = threading.Event()


def request_stop() -> None:
    """Ask running simulations to stop at their next segment boundary (raising ``KeyboardInterrupt``)."""
    STOP_REQUESTED.set()


def default_threads() -> int:
    env = os.environ.get("NUMBA_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, numba_config.NUMBA_NUM_THREADS)


# ------------------------------------------------------------------------------------------------ thread pool
_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _pool(n: int) -> ThreadPoolExecutor:
    """The one worker pool of the fused drivers (grown on demand, shared by every run in the process)."""
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or _POOL_SIZE < n:
            old = _POOL
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="sde_toolkit")
            _POOL_SIZE = n
            if old is not None:
                old.shutdown(wait=False)
        return _POOL


# ------------------------------------------------------------------------------------------------ kernels
_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_STATS = {"hits": 0, "builds": 0}


def kernel_cache_info() -> dict:
    """In-process kernel cache: entries, hits and builds (equal SDEs hit the same entry)."""
    with _CACHE_LOCK:
        return dict(_CACHE_STATS, size=len(_CACHE))


# a compiled kernel (a Numba dispatcher, or the plain function under NUMBA_DISABLE_JIT)
Kernel = Callable[..., Any]


def _kernels(sde, method: Method, h: float, legacy: bool,
             precision: str = "float64") -> tuple[Kernel, Kernel | None, Kernel | None]:
    key = (sde.cache_key, method.cache_key, h if method.step_dependent else None, legacy, precision)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            _CACHE_STATS["hits"] += 1
            return hit[1]
    built = _build(sde, method, h, legacy, precision)
    with _CACHE_LOCK:
        # the entry keeps the model alive, so identity-keyed parameters (user functions) cannot be recycled
        _CACHE[key] = ((sde, method), built)
        _CACHE_STATS["builds"] += 1
        while len(_CACHE) > KERNEL_CACHE_SIZE:
            _CACHE.popitem(last=False)
    return built


def face_of(sde, dtype) -> Any:
    """``sde.numba_face`` for state type ``dtype``: models that declare ``float32_face`` build their kernels with
    constants of that type (float32 arithmetic throughout); the others' float64 constants promote the arithmetic
    inside their kernels, whose results are rounded to the state type when stored (correct, only slower)."""
    if np.dtype(dtype) != np.float64 and sde.float32_face:
        return sde.numba_face(piece, dtype=np.dtype(dtype).type)
    return sde.numba_face(piece)


def _build(sde, method: Method, h: float, legacy: bool,
           precision: str = "float64") -> tuple[Kernel, Kernel | None, Kernel | None]:
    """The chunk kernel, and the carry-init and aux kernels (``None`` without carry / without aux)."""
    FT = np.dtype(precision).type  # the state type: float64, or float32 (then the step arithmetic is float32)
    face = face_of(sde, FT)
    parts = fused_for(method, sde, face, h, piece, FT)
    step = piece(parts["step"])
    make_ws = piece(parts["make_ws"])
    init_fn = piece(parts["init_carry"])
    aux_fn = piece(parts["aux"])
    dim = sde.dim
    NZ = method.n_normals(sde)
    NZW = max(NZ, 1)
    NU = method.n_uniforms(sde)
    AUX = method.aux_dim(sde)
    dw_form = method.noise_form == "dw"
    LEGACY = bool(legacy)
    MZ = (sde.noise_dim if NZ > 0 else 1) if LEGACY else NZW  # normals drawn per path and step
    OFF = method.legacy_offset(sde) if LEGACY else 0
    CH_V2 = CHUNK
    fill_normals, fill_uniforms = R.fill_normals, R.fill_uniforms
    LN, LU = np.uint64(R.LANE_NOISE), np.uint64(R.LANE_UNIFORM)
    LOOK = int(method.noise_lookahead)

    def kernel(x, carry, rng_path0, key0, key1, gen, k_a, k_b, t0, h, t_last, n_steps, inc, use_inc, save_start,
               save_every, save_last, n_regular, gi0, frames, aux, fo, max_abs, stop, bad):
        n = x.shape[0]
        sqh = math.sqrt(abs(h))
        hs = FT(h)  # the step in the state type (time itself stays float64)
        CH = n if LEGACY else min(CH_V2, n)
        zbuf = np.empty(max(CH, 1) * MZ, dtype=FT)  # float32 runs: the float64 normals, rounded once
        ubuf = np.empty(max(CH, 1))
        ws = make_ws(max(CH, 1))
        kbad_min = -1
        s_fresh = FT(sqh) if dw_form else FT(1.0)
        for c0 in range(0, n, CH):
            c1 = min(c0 + CH, n)
            nc = c1 - c0
            xc = x[c0:c1]
            cc = carry[c0:c1]
            zfull = zbuf[: nc * MZ].reshape((nc, MZ))
            z = zfull[:, OFF:OFF + NZW]
            u = ubuf[:nc]
            for k in range(k_a, k_b):
                t = t0 + k * h
                t_next = t_last if k + 1 == n_steps else t0 + (k + 1) * h
                s = s_fresh
                if NZ > 0:
                    if use_inc:
                        for i in range(nc):
                            for j in range(NZ):
                                z[i, j] = inc[k - k_a, c0 + i, j] if dw_form else inc[k - k_a, c0 + i, j] / sqh
                        s = FT(1.0)
                    elif LEGACY:
                        for q in range(nc * MZ):
                            zbuf[q] = gen.standard_normal()
                    else:
                        fill_normals(key0, key1, LN, np.uint64(k + LOOK), np.uint64((rng_path0 + c0) * NZ), nc * NZ,
                                     zbuf)
                if NU > 0:
                    fill_uniforms(key0, key1, LU, np.uint64(k), np.uint64(rng_path0 + c0), nc, ubuf)
                step(xc, cc, k, t, hs, t_next, z, s, u, ws)
                n_bad = 0
                for i in range(nc):
                    for r in range(dim):
                        n_bad += 0 if abs(xc[i, r]) <= max_abs else 1  # NaN and +-inf fail the comparison
                if n_bad > 0:
                    for i in range(nc):
                        if bad[fo + c0 + i] == 0:
                            for r in range(dim):
                                if not (abs(xc[i, r]) <= max_abs):
                                    bad[fo + c0 + i] = k + 1
                                    break
                    if kbad_min < 0 or k + 1 < kbad_min:
                        kbad_min = k + 1
                    if stop:
                        break
                kk = k + 1
                reg = kk >= save_start and (kk - save_start) % save_every == 0
                if reg or (save_last and kk == n_steps):
                    gi = (kk - save_start) // save_every if reg else n_regular
                    fi = gi - gi0
                    for i in range(nc):
                        for r in range(dim):
                            frames[fi, fo + c0 + i, r] = xc[i, r]
                    if AUX > 0:
                        aux_fn(xc, cc, aux[fi, fo + c0:fo + c1])
        return kbad_min

    def init_kernel(x, carry, t):
        init_fn(x, carry, t)

    def aux_kernel(x, carry, out):
        aux_fn(x, carry, out)

    # the helpers compile only for methods that carry state or record values
    CD = method.carry_dim(sde)
    kern = compile_kernel(kernel)
    init_k = compile_kernel(init_kernel) if CD else None
    aux_k = compile_kernel(aux_kernel) if AUX else None
    # compile now (an empty step range), with the argument types of the real calls, so that compilation is timed
    # apart from the run and a later call never pays it
    x1, c1 = np.zeros((1, dim), dtype=FT), np.zeros((1, CD))
    kern(x1, c1, 0, np.uint64(0), np.uint64(0), np.random.default_rng(0), 0, 0, 0.0, 1.0, 1.0, 1,
         np.zeros((1, 1, 1)), False, 0, 1, True, 1, 0, np.zeros((0, 1, dim), dtype=FT), np.zeros((0, 1, AUX)), 0,
         1.0, True, np.zeros(1, dtype=np.int64))
    if init_k is not None:
        init_k(x1, c1, 0.0)
    if aux_k is not None:
        aux_k(x1, c1, np.zeros((1, AUX)))
    return kern, init_k, aux_k


# ------------------------------------------------------------------------------------------------ tasks
def _tasks(n: int, threads: int) -> list[tuple[int, int]]:
    k = max(1, min(threads, n // MIN_TASK_PATHS))
    edges = np.linspace(0, n, k + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _legacy_chunks(n: int) -> list[tuple[int, int]]:
    return [(a, min(a + R.LEGACY_CHUNK, n)) for a in range(0, n, R.LEGACY_CHUNK)]


# ------------------------------------------------------------------------------------------------ run
def run(sde, method: Method, plan: RunPlan, x: np.ndarray, sink, *, carry: np.ndarray | None = None,
        start_step: int = 0, stop_step: int | None = None, increments=None, progress=None,
        threads: int | None = None, label=None, on_divergence: str = "raise", desc: str | None = None,
        max_frames: int | None = None, write_initial: bool = True) -> dict:
    """Advance ``x`` (modified in place) from ``start_step`` to ``stop_step`` (default ``plan.n_steps``), handing
    frames to ``sink``.

    ``sink`` has ``write(steps, times, frames[, aux])``, ``commit(step, state)`` and ``close(status)``; frames are
    ``plan.save_steps`` (the one at ``start_step == save_start == 0`` is written here unless ``write_initial`` is
    false: a resumed run's file holds it already). Raises
    :class:`DivergenceError` after closing the sink with status ``"diverged"`` (``on_divergence="raise"``);
    ``KeyboardInterrupt`` closes it with ``"interrupted"``.

    ``max_frames`` caps the saved frames per segment (a sink that commits every ``max_frames`` frames). Running
    ``[0, s)`` then ``[s, N)`` (passing the carry on) gives the same numbers as one run.

    Returns ``{"carry": final carry, "diverged_step": (n,) int64 (0: never), "compile_time": s}``.
    """
    n, dim = x.shape
    if x.dtype != plan.state_dtype:
        raise TypeError(f"the state is {x.dtype} but the plan's precision is {plan.precision}")
    FT = plan.state_dtype.type
    N = plan.n_steps
    stop_at = N if stop_step is None else int(stop_step)
    legacy = plan.noise == R.NOISE_V1
    fused = plan.driver == "fused"
    stop = on_divergence == "raise"
    NZ = method.n_normals(sde)
    NU = method.n_uniforms(sde)
    CD = method.carry_dim(sde)
    AUX = method.aux_dim(sde)
    nthreads = threads or default_threads()
    kern: Kernel | None = None
    init_k: Kernel | None = None  # set when fused and the method carries state (CD > 0)
    aux_k: Kernel | None = None  # set when fused and the method records values (AUX > 0)
    compile_time = 0.0
    if fused:
        tc = time.perf_counter()
        kern, init_k, aux_k = _kernels(sde, method, plan.h, legacy, plan.precision)
        compile_time = time.perf_counter() - tc
    t_start = plan.t0 + start_step * plan.h if start_step < N else plan.t1
    if carry is None:
        carry = np.zeros((n, CD))
        if CD:
            if init_k is not None:  # fused
                init_k(x, carry, t_start)
            else:
                carry[:] = method.init_carry(sde, x, t_start)
    if method.noise_lookahead and NZ > 0:
        # the pending normals of a lookahead method at the start step: a function of the counter, never stored
        if increments is not None or legacy:
            raise ValueError(f"method {method.name!r} draws its own lookahead noise: it supports neither user "
                             "increments nor noise scheme v1")
        # (rounded to the state type as the kernels round every normal, so that a resumed run continues exactly)
        carry[:, :NZ] = R.normals(plan.seed, range(start_step, start_step + 1),
                                  range(plan.path_offset, plan.path_offset + n), NZ)[0].astype(FT)
    max_abs = plan.max_abs_check
    bad = np.zeros(n, dtype=np.int64)
    key0, key1 = (np.uint64(v) for v in plan.seed.key())
    dummy_gen = np.random.default_rng(0)
    dummy_inc = np.zeros((1, 1, 1))
    save = plan.save_steps
    n_regular = plan.n_regular

    def aux_of(xs, cs):
        out = np.empty((xs.shape[0], AUX))
        if aux_k is not None:  # fused (aux_of is only called when AUX > 0)
            aux_k(xs, cs, out)
        else:
            out[:] = method.batched_aux(sde, xs, cs)
        return out

    if write_initial and start_step == 0 and plan.save_start == 0:
        first = (save[:1], plan.times[:1], x[None].copy()) + ((aux_of(x, carry)[None],) if AUX else ())
        sink.write(*first)
        sink.commit(0, x)

    max_frames = max_frames or max(1, FRAME_BUFFER_BYTES // max(1, n * dim * 8))
    bar = Progress(stop_at - start_step, progress, desc=desc or f"simulate[{method.name}]")
    tasks = _legacy_chunks(n) if legacy else _tasks(n, nthreads)
    pool = _pool(nthreads) if (fused and nthreads > 1 and len(tasks) > 1) else None
    # File sinks write on a background thread while the next segment computes (the kernels release the GIL);
    # at most one segment is in flight, and writes and commits keep their order, so crash safety is unchanged.
    writer = None if getattr(sink, "in_memory", False) else ThreadPoolExecutor(max_workers=1)
    inflight: list = []

    def hand_off(seg_saves, times, frames, aux, k_commit, state):
        if len(seg_saves):
            if AUX:
                sink.write(seg_saves, times, frames, aux)
            else:
                sink.write(seg_saves, times, frames)
        sink.commit(k_commit, state)

    def drain():
        while inflight:
            inflight.pop().result()  # re-raises a writer error here, in the caller's thread

    # batched-mode noise: the same scheme through compiled helpers, one step at a time
    m_draw = (sde.noise_dim if NZ > 0 else 0) if legacy else NZ
    off = method.legacy_offset(sde) if legacy else 0
    zb = np.empty((1, n * max(NZ, 1)))
    ub = np.empty((1, n))

    status = "running"
    k = start_step
    try:
        while k < stop_at:
            seg_end = min(stop_at, (k // SEGMENT_STEPS + 1) * SEGMENT_STEPS)
            gens = None
            if legacy and m_draw > 0 and increments is None:
                b = k // R.LEGACY_BLOCK
                seg_end = min(stop_at, (b + 1) * R.LEGACY_BLOCK)
                gens = [R.legacy_generator(plan.seed, c, b) for c in range(len(tasks))]
                skip = k - b * R.LEGACY_BLOCK
                if skip:  # a resumed run discards the draws of the block's steps already done
                    for c, (a, e) in enumerate(tasks):
                        todo = skip * (e - a) * m_draw
                        while todo:
                            piece_ = min(todo, 2**22)
                            gens[c].standard_normal(piece_)
                            todo -= piece_
            pending = save[(save > k) & (save <= seg_end)]
            k_b = int(pending[max_frames - 1]) if len(pending) > max_frames else seg_end
            seg_saves = save[(save > k) & (save <= k_b)]
            frames = np.empty((len(seg_saves), n, dim), dtype=x.dtype)
            aux = np.empty((len(seg_saves), n, AUX))
            gi0 = int(np.searchsorted(save, seg_saves[0])) if len(seg_saves) else 0
            kbad = -1
            if kern is not None:  # fused
                def work(c, k=k, k_b=k_b, frames=frames, aux=aux, gi0=gi0, gens=gens):
                    a, e = tasks[c]
                    inc = dummy_inc if increments is None else np.ascontiguousarray(increments[k:k_b, a:e])
                    # private copies: views of the shared arrays share one Numba reference count, and the
                    # per-particle row views would make the threads fight over that cache line
                    xt = x[a:e].copy()
                    ct = carry[a:e].copy()
                    r = kern(xt, ct, plan.path_offset + a, key0, key1, gens[c] if gens is not None else dummy_gen,
                             k, k_b, plan.t0, plan.h, plan.t1, N, inc, increments is not None, plan.save_start,
                             plan.save_every, plan.save_last, n_regular, gi0, frames, aux, a, max_abs, stop, bad)
                    x[a:e] = xt
                    carry[a:e] = ct
                    return r

                res = list(pool.map(work, range(len(tasks)))) if pool is not None else [work(c) for c in
                                                                                         range(len(tasks))]
                hits = [r for r in res if r >= 0]
                kbad = min(hits) if hits else -1
            else:
                fi = 0
                for kk in range(k, k_b):
                    t = plan.t0 + kk * plan.h
                    t_next = plan.t1 if kk + 1 == N else plan.t0 + (kk + 1) * plan.h
                    z = u = None
                    s = math.sqrt(abs(plan.h)) if method.noise_form == "dw" else 1.0
                    if NZ > 0:
                        if increments is not None:
                            z = np.asarray(increments[kk], dtype=np.float64)
                            if method.noise_form == "dw":
                                s = 1.0
                            else:
                                z = z / math.sqrt(abs(plan.h))
                        elif legacy:
                            assert gens is not None  # drawn at the segment start (noise, no increments)
                            z = np.concatenate([gens[c].standard_normal((e - a, m_draw))
                                                for c, (a, e) in enumerate(tasks)])[:, off:off + NZ]
                        else:
                            R._normals_block(key0, key1, np.uint64(R.LANE_NOISE),
                                             np.uint64(kk + method.noise_lookahead), 1,
                                             np.uint64((plan.path_offset) * NZ), n * NZ, zb)
                            z = zb[0, : n * NZ].reshape(n, NZ)
                    if NU > 0:
                        R._uniforms_block(key0, key1, np.uint64(R.LANE_UNIFORM), np.uint64(kk), 1,
                                          np.uint64(plan.path_offset), n, ub)
                        u = ub[0]
                    if z is not None:
                        z = z.astype(FT, copy=False)  # float32 runs: the same rounded normals as the fused kernel
                    xn = np.asarray(method.batched_step(sde, x, carry, kk, t, plan.h, t_next, z, s, u),
                                    dtype=x.dtype)
                    ok = np.all(np.abs(xn) <= np.float64(max_abs), axis=1)  # float64: inf stays diverged in float32
                    x[:] = xn
                    if not ok.all():
                        newly = (~ok) & (bad == 0)
                        bad[newly] = kk + 1
                        if kbad < 0:
                            kbad = kk + 1
                        if stop:
                            break
                    if fi < len(seg_saves) and seg_saves[fi] == kk + 1:
                        frames[fi] = x
                        if AUX:
                            aux[fi] = method.batched_aux(sde, x, carry)
                        fi += 1
            if kbad >= 0 and stop:
                drain()
                _diverged(plan, sink, frames, aux if AUX else None, seg_saves, kbad, np.flatnonzero(bad == kbad),
                          label)
            bar.update(k_b - k)
            k = k_b
            times = step_times(plan.t0, plan.t1, plan.h, N, seg_saves) if len(seg_saves) else None
            if writer is None:
                hand_off(seg_saves, times, frames, aux, k, x)
            else:
                drain()
                inflight.append(writer.submit(hand_off, seg_saves, times, frames, aux, k, x.copy()))
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
        if writer is not None:
            try:
                drain()  # the last segment handed off before an interrupt is committed, not lost
            finally:
                writer.shutdown()
                sink.close(status)
        else:
            sink.close(status)
    return {"carry": carry, "diverged_step": bad, "compile_time": compile_time}


def _diverged(plan, sink, frames, aux, seg_saves, kbad, paths, out_label):
    keep = seg_saves < kbad
    if keep.any():
        args: tuple = (seg_saves[keep], step_times(plan.t0, plan.t1, plan.h, plan.n_steps, seg_saves[keep]),
                       frames[keep])
        if aux is not None:
            args = args + (aux[keep],)
        sink.write(*args)
    t = plan.t1 if kbad == plan.n_steps else plan.t0 + kbad * plan.h
    raise DivergenceError(kbad, t, len(paths), paths, out=out_label)
