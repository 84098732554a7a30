"""``langevin``: many Langevin MCMC chains at once (ULA, MALA, BAOAB), and annealed Langevin for a
noise-conditional score.

Two drivers, one set of equations (see :mod:`sde_toolkit.mcmc.kernels`):

* **fused** (a :class:`~sde_toolkit.sde.potentials.Potential` target): Numba kernels built from the
  potential's Numba face; each block of :data:`~sde_toolkit.mcmc._streams.CHAIN_BLOCK` chains runs all its
  steps in one nogil call, blocks run on a thread pool.
* **batched** (a score callable, or ``backend="numpy"``): the NumPy kernels step all chains at once.

Both draw from the same per-block streams, so a seed fixes the chains bit for bit whatever the thread count,
and the two drivers agree on one seed up to floating-point rounding.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numba
import numpy as np

from .._progress import Progress
from ..sde.potentials import Potential
from . import kernels as K
from ._fused import get_driver
from ._streams import BlockStreams
from .diagnostics import effective_sample_size, integrated_time, split_rhat

__all__ = ["Chains", "langevin", "AnnealedSamples", "annealed_langevin"]

METHODS = ("ula", "mala", "baoab")


@dataclass
class Chains:
    """Output of :func:`langevin`.

    Attributes:
        samples: ``(n_kept, n_chains, dim)`` kept positions (after ``burn_in``, every ``thin``-th step).
        energies: ``(n_kept, n_chains)`` potential ``V`` at the kept positions (Potential targets), else ``None``.
        accepted: ``(n_chains,)`` number of accepted MALA proposals after burn-in, else ``None``.
        method, step, kT, gamma, n_steps, burn_in, thin: the run's parameters.
        seed: root entropy of the random streams (pass it back as ``seed`` to reproduce the run).
        final_position: ``(n_chains, dim)`` state after the last step; ``final_momentum`` likewise (BAOAB).
        backend: ``"numba"`` (fused) or ``"numpy"`` (batched).
        wall_time: seconds spent sampling, excluding compilation; ``compile_time``: seconds of first-call
            compilation (0 when the kernel was cached).
    """

    samples: np.ndarray
    method: str
    step: float
    kT: float
    gamma: float
    n_steps: int
    burn_in: int
    thin: int
    seed: int
    final_position: np.ndarray
    backend: str
    energies: np.ndarray | None = None
    accepted: np.ndarray | None = None
    final_momentum: np.ndarray | None = None
    wall_time: float = 0.0
    compile_time: float = 0.0
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def n_chains(self) -> int:
        return self.samples.shape[1]

    @property
    def dim(self) -> int:
        return self.samples.shape[2]

    @property
    def acceptance_rate(self) -> float | None:
        """Fraction of accepted MALA proposals after burn-in (over all chains); ``None`` for ULA/BAOAB."""
        if self.accepted is None:
            return None
        return float(self.accepted.sum() / (self.n_chains * (self.n_steps - self.burn_in)))

    @property
    def diverged(self) -> np.ndarray:
        """``(n_chains,)`` True where a chain left the finite numbers (step too large for the target)."""
        return ~np.isfinite(self.final_position).all(axis=1)

    def flat(self) -> np.ndarray:
        """All kept samples as ``(n_kept * n_chains, dim)`` (correlated; see :meth:`ess`)."""
        return self.samples.reshape(-1, self.dim)

    def tau(self, c: float = 5.0) -> np.ndarray:
        """Integrated autocorrelation time per coordinate, in kept samples (Sokal window ``c``)."""
        key = ("tau", c)
        if key not in self._cache:
            self._cache[key] = integrated_time(self.samples, c)
        return self._cache[key]

    def ess(self, c: float = 5.0) -> np.ndarray:
        """Effective sample size per coordinate, ``n_kept n_chains / tau``."""
        return effective_sample_size(self.samples, c)

    def rhat(self) -> np.ndarray:
        """Split R-hat per coordinate."""
        return split_rhat(self.samples)

    # -- files (the format itself lives in sde_toolkit.io.chains) ---------------------------------------------
    @classmethod
    def from_record(cls, rec) -> Chains:
        """Chains from a :class:`~sde_toolkit.io.ChainsRecord` (what ``st.io.read_chains`` returns)."""
        return cls(
            samples=rec.samples, method=rec.method, step=rec.step, kT=rec.kT, gamma=rec.gamma, n_steps=rec.n_steps,
            burn_in=rec.burn_in, thin=rec.thin, seed=rec.seed, final_position=rec.final_position,
            backend=rec.backend, energies=rec.energies, accepted=rec.accepted, final_momentum=rec.final_momentum,
            wall_time=rec.wall_time, compile_time=rec.compile_time,
        )

    @classmethod
    def from_file(cls, path, allow_partial: bool = False) -> Chains:
        """Read a chains file (``langevin(..., out=path)`` or :meth:`to_file`) back, bit for bit.

        Raises:
            FileNotFoundError: no such file (nor ``<path>.partial``).
            ValueError: not a chains file, or an incomplete one without ``allow_partial=True`` (then an
                ``IncompleteRunWarning`` is issued and ``n_steps``/``final_position`` describe the last kept
                sample).
        """
        from ..io.chains import read_chains

        return cls.from_record(read_chains(path, allow_partial=allow_partial))

    def to_record(self, diagnostics: bool = True):
        """The :class:`~sde_toolkit.io.ChainsRecord` of these chains, diagnostics in its ``attrs``."""
        from ..io.chains import ChainsRecord

        return ChainsRecord(
            samples=self.samples, method=self.method, step=self.step, kT=self.kT, gamma=self.gamma,
            n_steps=self.n_steps, burn_in=self.burn_in, thin=self.thin, seed=self.seed,
            final_position=self.final_position, backend=self.backend, energies=self.energies,
            accepted=self.accepted, final_momentum=self.final_momentum, wall_time=self.wall_time,
            compile_time=self.compile_time, attrs=diagnostic_attrs(self, diagnostics),
        )

    def to_file(self, path, *, config: dict | None = None, overwrite: bool = False, diagnostics: bool = True):
        """Write the chains to ``path`` in the layout of ``langevin(..., out=path)``; returns the path.

        Args:
            path: output file; written as ``<path>.partial`` and renamed when complete.
            config: extra JSON-able provenance merged into the ``config`` attribute.
            overwrite: replace an existing file.
            diagnostics: store ``tau``, ``ess`` and ``rhat`` attributes (needs >= 4 finite kept samples).
        """
        from ..io.chains import write_chains

        return write_chains(self.to_record(diagnostics), path, config=config, overwrite=overwrite)

    def __repr__(self):
        acc = "" if self.accepted is None else f", acceptance_rate={self.acceptance_rate:.3f}"
        return (
            f"Chains(method={self.method!r}, samples={self.samples.shape}, step={self.step}, kT={self.kT}"
            f"{acc}, backend={self.backend!r})"
        )


def diagnostic_attrs(chains: Chains, enabled: bool = True) -> dict:
    """The attributes a chains file stores about its samples: ``acceptance_rate`` (MALA), ``n_diverged`` and,
    when ``enabled`` and there are >= 4 finite kept samples, ``tau``, ``ess`` and ``rhat`` per coordinate."""
    out: dict = {}
    if chains.accepted is not None:
        out["acceptance_rate"] = float(chains.acceptance_rate)
    out["n_diverged"] = np.int64(int(chains.diverged.sum()))
    if enabled and chains.samples.shape[0] >= 4 and np.isfinite(chains.samples).all():
        out["tau"] = np.asarray(chains.tau(), dtype=np.float64)
        out["ess"] = np.asarray(chains.ess(), dtype=np.float64)
        out["rhat"] = np.asarray(chains.rhat(), dtype=np.float64)
    return out


# ------------------------------------------------------------------------------------------------ helpers
def _positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_x0(x0, dim: int | None) -> np.ndarray:
    x = np.asarray(x0)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"x0 must be a real float array, got dtype {x.dtype}")
    x = np.array(x, dtype=np.float64)
    if x.ndim == 1 and dim in (None, 1):
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x0 must have shape (n_chains, dim), got {np.shape(x0)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"x0 has dim {x.shape[1]} but the target is {dim}-dimensional (x0 shape {x.shape})")
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"x0 contains NaN or inf at index {tuple(int(i) for i in bad[0])}")
    return np.ascontiguousarray(x)


def _score_wants_t(score: Callable) -> bool:
    """True when ``score`` has two or more required positional parameters (``score(x, t)``)."""
    try:
        sig = inspect.signature(score)
    except (TypeError, ValueError):  # builtins without a signature: assume score(x)
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in sig.parameters.values() if p.kind in kinds and p.default is inspect.Parameter.empty]
    return len(required) >= 2


def _score_grad_fn(score: Callable, t, n: int, dim: int) -> Callable:
    """``grad V = -score`` as a batched function, validating the score's output once per call."""
    wants_t = _score_wants_t(score)
    if wants_t and t is None:
        raise ValueError("the score takes (x, t): pass t= (the noise level or time at which to sample)")

    def grad_fn(x):
        s = score(x, t) if t is not None else score(x)
        s = np.asarray(s, dtype=np.float64)
        if s.shape != x.shape:
            raise ValueError(f"score returned shape {s.shape} for x of shape {x.shape}")
        return -s

    return grad_fn


def _progress_bar(progress, total: int, desc: str):
    return None if progress is False else Progress(total, progress, desc)


def _n_threads(n_threads) -> int:
    if n_threads is None:
        return int(numba.config.NUMBA_NUM_THREADS)
    return _count(n_threads, "n_threads", 1)


# ------------------------------------------------------------------------------------------------ drivers
def _segments(n_steps: int, burn_in: int, thin: int, block: int) -> list[tuple[int, int, int]]:
    """Cut a run into ``(steps, burn_in, kept)`` pieces of at most ``block`` kept samples each.

    The first piece carries the burn-in, later ones start right after a kept step (burn-in 0), and the last
    one also runs the trailing steps that keep no sample, so the pieces run back to back are the whole run.
    """
    n_kept = (n_steps - burn_in) // thin
    out = []
    done = 0
    while done < n_kept:
        k = min(block, n_kept - done)
        out.append([k * thin + (burn_in if done == 0 else 0), burn_in if done == 0 else 0, k])
        done += k
    out[-1][0] += (n_steps - burn_in) - n_kept * thin
    return [tuple(seg) for seg in out]


def _run_fused(potential, method, x0, streams, n_steps, burn_in, thin, step, kT, gamma, n_threads, progress,
               store_energy, sink=None, block=None):
    n, d = x0.shape
    n_kept = (n_steps - burn_in) // thin
    # Without a sink one piece runs everything. With one, the run is cut into pieces of `block` kept samples:
    # each piece restarts the drivers from the carried state (positions, BAOAB momenta in final_p, the block
    # generators, which advance in place), which gives the same chains bit for bit as one piece.
    segments = [(n_steps, burn_in, n_kept)] if sink is None else _segments(n_steps, burn_in, thin, block)
    buf = max(seg[2] for seg in segments)
    out_x = np.empty((buf, n, d))
    out_e = np.empty((buf if (store_energy or method == "mala") else 0, n))
    acc = np.zeros(n)
    final_x = np.empty((n, d))
    final_p = np.zeros((n, d))
    if method == "ula":
        eps = step / gamma
        coeffs = (eps, math.sqrt(2.0 * kT * eps), 0.0)
    elif method == "mala":
        eps = step / gamma
        coeffs = (eps, math.sqrt(2.0 * kT * eps), kT)
    else:
        c1, c2 = K.baoab_coefficients(step, gamma, kT)
        coeffs = (0.5 * step, c1, c2)
        sq = math.sqrt(kT)
        for g, (c0, c1_) in zip(streams.generators, streams.blocks):
            final_p[c0:c1_] = sq * g.standard_normal((c1_ - c0, d))
    driver = get_driver(potential, method)
    compile_time = 0.0
    if not driver.signatures:
        # compile on a one-step throwaway run of the first chain, on a copy of its stream
        t0 = time.perf_counter()
        g0 = np.random.Generator(np.random.PCG64())
        g0.bit_generator.state = streams.generators[0].bit_generator.state
        driver(x0[:1], g0, 0, 1, 1, 0, 1, *coeffs, np.empty((1, 1, d)), np.empty((1, 1)), np.zeros(1),
               np.empty((1, d)), final_p[:1].copy())
        compile_time = time.perf_counter() - t0
    nb = len(streams.blocks)
    bar = _progress_bar(progress, nb * len(segments), f"mcmc {method}")
    piece = {}

    def work(b):
        c0, c1_ = streams.blocks[b]
        driver(piece["x"], streams.generators[b], c0, c1_, piece["steps"], piece["burn"], thin, *coeffs,
               piece["out_x"], piece["out_e"], acc, final_x, final_p)
        return b

    t0 = time.perf_counter()
    x_start, k0 = x0, 0
    pool = ThreadPoolExecutor(max_workers=min(n_threads, nb)) if n_threads > 1 and nb > 1 else None
    try:
        for steps, burn, kept in segments:
            piece.update(x=x_start, steps=steps, burn=burn, out_x=out_x[:kept], out_e=out_e[:kept])
            for _ in (pool.map(work, range(nb)) if pool is not None else map(work, range(nb))):
                if bar is not None:
                    bar.update(1)
            if sink is not None:
                sink.write(k0, out_x[:kept], out_e[:kept] if out_e.shape[0] else None,
                           acc if method == "mala" else None)
            k0 += kept
            x_start = final_x.copy()
    finally:
        if pool is not None:
            pool.shutdown()
    wall = time.perf_counter() - t0
    if bar is not None:
        bar.close()
    return dict(
        samples=out_x if sink is None else None,
        energies=out_e if out_e.shape[0] else None,
        accepted=acc if method == "mala" else None,
        final_position=final_x,
        final_momentum=final_p if method == "baoab" else None,
        wall_time=wall,
        compile_time=compile_time,
    )


def _run_batched(grad_fn, energy_fn, method, x0, streams, n_steps, burn_in, thin, step, kT, gamma, progress,
                 sink=None, block=None):
    n, d = x0.shape
    n_kept = (n_steps - burn_in) // thin
    buf = n_kept if sink is None else min(block, n_kept)  # with a sink: a ring of `block` kept samples
    out_x = np.empty((buf, n, d))
    out_e = np.empty((buf, n)) if energy_fn is not None else None
    acc = np.zeros(n) if method == "mala" else None
    t0 = time.perf_counter()
    if method == "ula":
        state = K.ula_init(x0, grad_fn)
        kernel = K.ula_build_kernel(grad_fn, kT, gamma)
    elif method == "mala":
        state = K.mala_init(x0, energy_fn, grad_fn)
        kernel = K.mala_build_kernel(energy_fn, grad_fn, kT, gamma)
    else:
        state = K.baoab_init(x0, grad_fn, streams, kT)
        kernel = K.baoab_build_kernel(grad_fn, kT, gamma)
    if state.grad.shape != x0.shape:
        raise ValueError(f"the gradient/score has shape {state.grad.shape}, expected {x0.shape}")
    bar = _progress_bar(progress, n_steps, f"mcmc {method}")
    k = k0 = 0
    for s in range(1, n_steps + 1):
        state, info = kernel(streams, state, step)
        if acc is not None and s > burn_in:
            acc += info.is_accepted
        if s > burn_in and (s - burn_in) % thin == 0:
            out_x[k] = state.position
            if out_e is not None:
                out_e[k] = state.energy if method == "mala" else energy_fn(state.position)
            k += 1
            if sink is not None and k == buf:
                sink.write(k0, out_x[:k], None if out_e is None else out_e[:k], acc)
                k0, k = k0 + k, 0
        if bar is not None:
            bar.update(1)
    if sink is not None and k:
        sink.write(k0, out_x[:k], None if out_e is None else out_e[:k], acc)
    if bar is not None:
        bar.close()
    return dict(
        samples=out_x if sink is None else None,
        energies=out_e,
        accepted=acc,
        final_position=state.position,
        final_momentum=state.momentum if method == "baoab" else None,
        wall_time=time.perf_counter() - t0,
    )


# ------------------------------------------------------------------------------------------------ public
def langevin(
    target: Potential | Callable,
    x0,
    *,
    step: float,
    n_steps: int,
    method: str = "ula",
    seed=None,
    thin: int = 1,
    burn_in: int = 0,
    kT: float = 1.0,
    gamma: float = 1.0,
    t: float | None = None,
    progress: bool | None = None,
    n_threads: int | None = None,
    backend: str = "auto",
    store_energy: bool = True,
    out=None,
    overwrite: bool = False,
) -> Chains:
    """Run ``n_chains`` Langevin MCMC chains targeting ``pi(x) ~ exp(-V(x) / kT)``.

    ULA: ``x' = x - (h/gamma) grad V + sqrt(2 kT h / gamma) xi`` (Euler–Maruyama of
    ``OverdampedLangevin(V, kT, gamma)``, bias ``O(h)``); MALA: the same proposal with a Metropolis–Hastings
    correction (unbiased); BAOAB: underdamped Langevin (unit mass, friction ``gamma``) split as B-A-O-A-B
    (configurational bias ``O(h^2)``). Equations in :mod:`sde_toolkit.mcmc.kernels`.

    Args:
        target: a :class:`~sde_toolkit.sde.potentials.Potential` ``V`` (fused Numba kernels; all methods), or a
            score callable ``score(x) -> (n, dim)`` or ``score(x, t)`` (``grad log p``; the batched NumPy path,
            ULA and BAOAB only), read as ``V = -log p`` so ``kT = 1`` samples ``p``.
        x0: ``(n_chains, dim)`` initial positions, one row per chain (``(n_chains,)`` for 1-D targets).
        step: step size ``h > 0``.
        n_steps: number of steps per chain (including ``burn_in``).
        method: ``"ula"``, ``"mala"`` or ``"baoab"``.
        seed: ``None``, an int or a ``SeedSequence``; fixes the chains bit for bit whatever ``n_threads``.
        thin: keep every ``thin``-th step after burn-in.
        burn_in: steps discarded at the start; ``n_kept = (n_steps - burn_in) // thin >= 1``.
        kT: temperature.
        gamma: friction (overdamped: time scale ``h / gamma``; BAOAB: the friction of the O step).
        t: time/noise level passed to a score of the form ``score(x, t)``.
        progress: tqdm bar: ``True`` always, ``False`` never, ``None`` when the run is projected to take > 2 s.
        n_threads: threads for the fused driver (default ``NUMBA_NUM_THREADS``); results do not depend on it.
        backend: ``"auto"`` (fused for potentials, batched for scores), ``"numba"`` or ``"numpy"``.
        store_energy: record ``V`` at the kept samples (Potential targets). MALA has it for free; ULA and BAOAB
            pay one extra energy evaluation per kept sample, so pass ``False`` when speed matters.
        out: path of an HDF5 file to stream the chains into (layout: :mod:`sde_toolkit.io.chains` and
            ``docs/file-format.md``). Kept samples are written in blocks of about 8 MiB as the sampler runs,
            each block a durable commit (data, then the counter, each flushed) into ``<out>.partial``, renamed
            to ``out`` when the run completes; only one block is held in memory while sampling. The chains are
            the same, bit for bit, as without ``out``; the returned :class:`Chains` is read back from the file.
            ``KeyboardInterrupt`` publishes the committed samples with status ``"interrupted"``.
        overwrite: replace an existing ``out`` (otherwise ``FileExistsError``).

    Returns:
        :class:`Chains`.

    Raises:
        ValueError: unknown method/backend, ``step <= 0``, NaN/inf in ``x0``, a shape mismatch, MALA with a
            score alone, ``n_kept < 1``.
        FileExistsError: ``out`` (or ``<out>.partial``) exists and ``overwrite`` is False.
        FileNotFoundError: the folder of ``out`` does not exist.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if backend not in ("auto", "numba", "numpy"):
        raise ValueError(f"unknown backend {backend!r}; choose 'auto', 'numba' or 'numpy'")
    h = _positive(step, "step")
    kT = _positive(kT, "kT")
    gamma = _positive(gamma, "gamma")
    n_steps = _count(n_steps, "n_steps", 1)
    thin = _count(thin, "thin", 1)
    burn_in = _count(burn_in, "burn_in", 0)
    if (n_steps - burn_in) // thin < 1:
        raise ValueError(
            f"no samples would be kept: n_steps={n_steps}, burn_in={burn_in}, thin={thin} "
            "(need (n_steps - burn_in) // thin >= 1)"
        )
    n_threads = _n_threads(n_threads)
    is_potential = isinstance(target, Potential)
    if not is_potential and not callable(target):
        raise TypeError(f"target must be a Potential or a score callable, got {type(target).__name__}")
    if not is_potential and method == "mala":
        raise ValueError(
            "MALA needs the energy V for its accept/reject step; a score alone gives only grad V. "
            "Pass a Potential, or use method='ula' or 'baoab' with a score."
        )
    if not is_potential and backend == "numba":
        raise ValueError("backend='numba' needs a Potential target (a score callable runs on the numpy backend)")
    x0 = _check_x0(x0, target.dim if is_potential else None)
    streams = BlockStreams(seed, x0.shape[0])
    use_fused = is_potential and target.has_numba_face and backend != "numpy"
    used = "numba" if use_fused else "numpy"
    records_energy = is_potential and (store_energy or method == "mala")
    sink = block = None
    if out is not None:
        from ..io.chains import ChainsWriter, stream_block

        block = stream_block(*x0.shape)
        sink = ChainsWriter.create(
            out, n_kept=(n_steps - burn_in) // thin, n_chains=x0.shape[0], dim=x0.shape[1], method=method, step=h,
            kT=kT, gamma=gamma, n_steps=n_steps, burn_in=burn_in, thin=thin, seed=int(streams.entropy),
            backend=used, has_energies=records_energy, has_accepted=method == "mala",
            has_momentum=method == "baoab", overwrite=overwrite,
            config={"target": repr(target), "t": t, "store_energy": bool(store_energy)},
        )
    try:
        if use_fused:
            res = _run_fused(target, method, x0, streams, n_steps, burn_in, thin, h, kT, gamma, n_threads, progress,
                             store_energy, sink, block)
        else:
            if is_potential:
                grad_fn = target.grad
                energy_fn = target.energy if records_energy else None
            else:
                grad_fn, energy_fn = _score_grad_fn(target, t, *x0.shape), None
            res = _run_batched(grad_fn, energy_fn, method, x0, streams, n_steps, burn_in, thin, h, kT, gamma,
                               progress, sink, block)
        if sink is not None:
            rec = sink.finish(final_position=res["final_position"], final_momentum=res["final_momentum"],
                              accepted=res["accepted"], wall_time=res["wall_time"],
                              compile_time=res.get("compile_time", 0.0),
                              summarize=lambda r: diagnostic_attrs(Chains.from_record(r)))
            return Chains.from_record(rec)
    except BaseException as exc:
        if sink is not None:
            sink.abort(interrupted=isinstance(exc, KeyboardInterrupt))
        raise
    return Chains(
        method=method,
        step=h,
        kT=kT,
        gamma=gamma,
        n_steps=n_steps,
        burn_in=burn_in,
        thin=thin,
        seed=int(streams.entropy),
        backend=used,
        **res,
    )


@dataclass
class AnnealedSamples:
    """Output of :func:`annealed_langevin`.

    Attributes:
        x: ``(n_chains, dim)`` final samples (after the optional denoising step).
        levels: ``(n_levels, n_chains, dim)`` state at the end of each noise level (before denoising).
        sigmas: the noise levels, decreasing.
        seed: root entropy of the random streams.
    """

    x: np.ndarray
    levels: np.ndarray
    sigmas: np.ndarray
    seed: int


def annealed_langevin(
    score: Callable,
    sigmas,
    x0,
    *,
    step: float = 2e-5,
    n_steps_each: int = 100,
    seed=None,
    denoise: bool = True,
    progress: bool | None = None,
) -> AnnealedSamples:
    """Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) for a noise-conditional score.

    For each noise level ``sigma_i`` (decreasing), ``alpha_i = step sigma_i^2 / sigma_L^2`` and ``n_steps_each``
    ULA steps ``x <- x + alpha_i / 2 s(x, sigma_i) + sqrt(alpha_i) z``, where ``s(x, sigma)`` approximates
    ``grad log (p * N(0, sigma^2 I))(x)``. With ``denoise``, a final Tweedie step
    ``x <- x + sigma_L^2 s(x, sigma_L)`` removes the last level's noise (Jolicoeur-Martineau et al. 2021).

    Args:
        score: ``score(x, sigma) -> (n, dim)``.
        sigmas: noise levels, positive and strictly decreasing.
        x0: ``(n_chains, dim)`` initial points (typically uniform or ``N(0, sigma_1^2 I)``).
        step: ``epsilon`` of the schedule (step at the smallest level).
        n_steps_each: steps per level.
        seed: ``None``, an int or a ``SeedSequence`` (per-block streams, as in :func:`langevin`).
        denoise: apply the final Tweedie denoising step.
        progress: tqdm bar over levels (``None``: only when projected to take > 2 s).

    Returns:
        :class:`AnnealedSamples`.
    """
    sig = np.atleast_1d(np.asarray(sigmas, dtype=np.float64))
    if sig.ndim != 1 or sig.size < 1 or not np.isfinite(sig).all() or np.any(sig <= 0):
        raise ValueError(f"sigmas must be a 1-D array of positive finite numbers, got {sigmas!r}")
    if sig.size > 1 and np.any(np.diff(sig) >= 0):
        raise ValueError("sigmas must be strictly decreasing (largest noise level first)")
    eps = _positive(step, "step")
    n_each = _count(n_steps_each, "n_steps_each", 1)
    x = _check_x0(x0, None)
    streams = BlockStreams(seed, x.shape[0])
    levels = np.empty((sig.size, *x.shape))

    def s_at(y, sigma):
        s = np.asarray(score(y, sigma), dtype=np.float64)
        if s.shape != y.shape:
            raise ValueError(f"score returned shape {s.shape} for x of shape {y.shape}")
        return s

    bar = _progress_bar(progress, sig.size, "annealed langevin")
    for i, sigma in enumerate(sig):
        alpha = eps * (sigma / sig[-1]) ** 2
        sd = math.sqrt(alpha)
        for _ in range(n_each):
            x = x + 0.5 * alpha * s_at(x, float(sigma)) + sd * streams.standard_normal(x.shape[1])
        levels[i] = x
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if denoise:
        x = x + sig[-1] ** 2 * s_at(x, float(sig[-1]))
    return AnnealedSamples(x=x, levels=levels, sigmas=sig, seed=int(streams.entropy))
