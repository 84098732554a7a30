"""``langevin``: many Langevin MCMC chains at once (ULA, MALA, BAOAB), and annealed Langevin for a
noise-conditional score.

MCMC has no step formulas of its own; it runs the SDE's own steps on the one driver
(:func:`sde_toolkit.integrate.driver.run`):

* ULA is Euler–Maruyama of ``OverdampedLangevin(V, kT, gamma)``: ``st.mcmc.langevin(V, x0, method="ula")`` equals
  ``st.simulate(OverdampedLangevin(V, kT, gamma), x0, method="euler_maruyama")`` bit for bit on one seed;
* MALA is that step plus the Metropolis layer :class:`~sde_toolkit.mcmc.layers.MetropolisAdjusted`;
* BAOAB is ``UnderdampedLangevin(V, gamma, kT, mass=1)``'s splitting step, from momenta drawn from ``N(0, kT)``.

A :class:`~sde_toolkit.sde.potentials.Potential` target runs fused (Numba); a score callable runs batched
(NumPy) through :class:`~sde_toolkit.sde.potentials.ScorePotential`. Both draw the same counter-based noise, so a
seed fixes the chains bit for bit whatever the thread count, and the two agree to rounding.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .. import _checks
from .. import _random as R
from .._progress import Progress
from ..integrate import driver as _driver
from ..integrate.methods import EulerMaruyama, LeimkuhlerMatthews, Method, Splitting
from ..integrate.plan import make_plan
from ..sde.base import SDE
from ..sde.langevin import OverdampedLangevin, UnderdampedLangevin
from ..sde.potentials import Potential, ScorePotential
from .diagnostics import ess, integrated_time, rhat
from .layers import MetropolisAdjusted, WithEnergy

__all__ = ["Chains", "langevin", "AnnealedSamples", "annealed_langevin", "METHODS"]

METHODS = ("ula", "mala", "baoab", "leimkuhler_matthews")


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
    seed: R.Seed
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
        """All kept samples as ``(n_kept * n_chains, dim)`` (correlated; see :meth:`ess` and :meth:`rhat`)."""
        return self.samples.reshape(-1, self.dim)

    def tau(self, c: float = 5.0) -> np.ndarray:
        """Within-chain integrated autocorrelation time per coordinate, in kept samples (Sokal window ``c``).

        It ignores whether the chains agree with one another, so ``n_kept n_chains / tau`` is *not* the ESS of
        chains that have not mixed; see :meth:`ess`."""
        key = ("tau", c)
        if key not in self._cache:
            self._cache[key] = integrated_time(self.samples, c)
        return self._cache[key]

    def ess(self, method: str = "bulk", *, c: float | None = None) -> np.ndarray:
        """Multi-chain effective sample size per coordinate (Vehtari et al. 2021), bulk by default.

        ``method``: ``"bulk"`` (rank-normalized split chains), ``"tail"`` (see :meth:`tail_ess`), ``"mean"``
        (raw split chains), or ``"sokal"`` (the earlier within-chain ``n_kept n_chains / tau``, window ``c``;
        it overclaims on chains that do not mix). See :func:`sde_toolkit.mcmc.diagnostics.ess`."""
        key = ("ess", method, c)
        if key not in self._cache:
            self._cache[key] = ess(self.samples, method, c=c)
        return self._cache[key]

    def tail_ess(self) -> np.ndarray:
        """Tail ESS per coordinate: the smaller multi-chain ESS of the 5 % and 95 % quantile indicators."""
        return self.ess("tail")

    def rhat(self) -> np.ndarray:
        """Rank-normalized split R-hat per coordinate (max of bulk and folded; Vehtari et al. 2021).

        Above 1.01: the chains have not mixed, or are too short to tell."""
        if "rhat" not in self._cache:
            self._cache["rhat"] = rhat(self.samples)
        return self._cache["rhat"]

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
    def from_file(cls, path, allow_partial: bool = False, *, force: bool = False) -> Chains:
        """Read a chains file (``langevin(..., out=path)`` or :meth:`to_file`) back, bit for bit.

        Raises:
            FileNotFoundError: no such file (nor ``<path>.partial``).
            ValueError: not a chains file, or an incomplete one without ``allow_partial=True`` (then an
                ``IncompleteRunWarning`` is issued and ``n_steps``/``final_position`` describe the last kept
                sample).
            IntegrityError: the file failed verification (``force=True`` reads it with a warning);
                ``ChecksumError`` when samples fail their checksum.
        """
        from ..io.chains import read_chains

        return cls.from_record(read_chains(path, allow_partial=allow_partial, force=force))

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
            diagnostics: store ``tau``, ``ess``, ``ess_tail`` and ``rhat`` attributes (needs >= 4 finite kept
                samples; see :func:`diagnostic_attrs`).
        """
        from ..io.chains import write_chains

        return write_chains(self.to_record(diagnostics), path, config=config, overwrite=overwrite)

    def to_arviz(self):
        """The chains as an ``arviz.InferenceData`` (optional extra ``arviz``): ``posterior`` ``x(chain, draw,
        dim)`` (ArviZ's order; ``samples`` is ``(n_kept, n_chains, dim)``) and ``sample_stats`` ``energy(chain,
        draw)`` (the potential energy of each kept sample, Potential targets) and ``acceptance_rate(chain)``
        (MALA); the run's parameters as attributes. ``arviz.ess`` and ``arviz.rhat`` on it agree with
        :meth:`ess` and :meth:`rhat`. See :mod:`sde_toolkit.io.netcdf`.

        Raises:
            MissingExtraError: arviz is not installed (names the extra).
        """
        from ..io.netcdf import chains_inference_data

        return chains_inference_data(
            self.samples, energies=self.energies, accepted=self.accepted, n_sampled_steps=self.n_steps - self.burn_in,
            attrs={"method": self.method, "step": self.step, "kT": self.kT, "gamma": self.gamma,
                   "n_steps": self.n_steps, "burn_in": self.burn_in, "thin": self.thin,
                   "seed": str(self.seed.entropy), "backend": self.backend})

    def __repr__(self):
        acc = "" if self.accepted is None else f", acceptance_rate={self.acceptance_rate:.3f}"
        return (
            f"Chains(method={self.method!r}, samples={self.samples.shape}, step={self.step}, kT={self.kT}"
            f"{acc}, backend={self.backend!r})"
        )


def diagnostic_attrs(chains: Chains, enabled: bool = True) -> dict:
    """The attributes a chains file stores about its samples: ``acceptance_rate`` (MALA), ``n_diverged`` and,
    when ``enabled`` and there are >= 4 finite kept samples, per coordinate: ``tau`` (within-chain, Sokal),
    ``ess`` (multi-chain bulk ESS), ``ess_tail`` (tail ESS) and ``rhat`` (rank-normalized split R-hat)."""
    out: dict = {}
    rate = chains.acceptance_rate  # None exactly when chains.accepted is None
    if rate is not None:
        out["acceptance_rate"] = float(rate)
    out["n_diverged"] = np.int64(int(chains.diverged.sum()))
    if enabled and chains.samples.shape[0] >= 4 and np.isfinite(chains.samples).all():
        out["tau"] = np.asarray(chains.tau(), dtype=np.float64)
        out["ess"] = np.asarray(chains.ess(), dtype=np.float64)
        out["ess_tail"] = np.asarray(chains.tail_ess(), dtype=np.float64)
        out["rhat"] = np.asarray(chains.rhat(), dtype=np.float64)
    return out


# ------------------------------------------------------------------------------------------------ helpers
def _score_wants_t(score: Callable) -> bool:
    """True when ``score`` has two or more required positional parameters (``score(x, t)``)."""
    try:
        sig = inspect.signature(score)
    except (TypeError, ValueError):  # builtins without a signature: assume score(x)
        return False
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in sig.parameters.values() if p.kind in kinds and p.default is inspect.Parameter.empty]
    return len(required) >= 2


def _n_threads(n_threads) -> int:
    if n_threads is None:
        return _driver.default_threads()
    return _checks.count(n_threads, "n_threads", 1)


class _Recorder:
    """The sink of a sampler run: kept samples (positions ``[:qdim]``), energies and accept counts, in memory or
    streamed to a :class:`~sde_toolkit.io.chains.ChainsWriter` (one durable commit per block of kept samples)."""

    def __init__(self, n_kept, n, qdim, energy_col, accept_col, writer=None, dtype=np.float64):
        self.qdim, self.energy_col, self.accept_col = qdim, energy_col, accept_col
        self.writer = writer
        self.in_memory = writer is None
        self.accept_ref = np.zeros(n)
        self.n = 0
        self.status = "running"
        if writer is None:
            self.samples = np.empty((n_kept, n, qdim), dtype=dtype)
            self.energies: np.ndarray | None = np.empty((n_kept, n)) if energy_col is not None else None

    def write(self, steps, times, frames, aux=None):
        k = len(steps)
        samples = frames[:, :, :self.qdim]
        energies = aux[:, :, self.energy_col] if self.energy_col is not None else None
        accepted = aux[-1, :, self.accept_col] - self.accept_ref if self.accept_col is not None else None
        if self.writer is not None:
            self.writer.write(self.n, samples, energies, accepted)
        else:
            self.samples[self.n:self.n + k] = samples
            if self.energies is not None:  # energies were computed (energy_col is set)
                self.energies[self.n:self.n + k] = energies
        self.n += k

    def commit(self, step, state):
        pass

    def close(self, status, info=None):
        self.status = status
        if self.writer is not None and status != "complete":
            self.writer.abort(interrupted=status == "interrupted")


class _Discard:
    """A sink for the burn-in phase: no frame is saved there."""

    in_memory = True

    def write(self, *a):
        raise AssertionError("burn-in saves no frames")

    def commit(self, step, state):
        pass

    def close(self, status, info=None):
        pass


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
    precision: str = "float64",
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
        method: ``"ula"``, ``"mala"``, ``"baoab"`` or ``"leimkuhler_matthews"`` (the EM step of ULA with the noise
            ``(xi_k + xi_{k+1}) / 2``: same cost, invariant-measure bias O(h^2) instead of O(h)).
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
        precision: ``"float64"`` (default) or ``"float32"``: the type of the chains' state and of the proposal
            arithmetic (see :func:`sde_toolkit.simulate`); energies, MALA's log acceptance ratio, the accept
            counts and the noise transform stay float64. The in-memory samples are float32; a file (``out``)
            stores them as float64, which holds every float32 exactly.

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
    h = _checks.positive(step, "step")
    kT = _checks.positive(kT, "kT")
    gamma = _checks.positive(gamma, "gamma")
    n_steps = _checks.count(n_steps, "n_steps", 1)
    thin = _checks.count(thin, "thin", 1)
    burn_in = _checks.count(burn_in, "burn_in", 0)
    if (n_steps - burn_in) // thin < 1:
        raise ValueError(
            f"no samples would be kept: n_steps={n_steps}, burn_in={burn_in}, thin={thin} "
            "(need (n_steps - burn_in) // thin >= 1)"
        )
    n_threads = _n_threads(n_threads)
    is_potential = isinstance(target, Potential)
    if not is_potential and not callable(target):
        raise TypeError(f"target must be a Potential or a score callable, got {type(target).__name__}")
    potential: Potential
    if isinstance(target, Potential):
        x0 = _checks.states(x0, target.dim, "x0")
        potential = target
    else:
        if method == "mala":
            raise ValueError(
                "MALA needs the energy V for its accept/reject step; a score alone gives only grad V. "
                "Pass a Potential, or use method='ula' or 'baoab' with a score."
            )
        if backend == "numba":
            raise ValueError("backend='numba' needs a Potential target (a score callable runs on the numpy backend)")
        if _score_wants_t(target) and t is None:
            raise ValueError("the score takes (x, t): pass t= (the noise level or time at which to sample)")
        x0 = _checks.states(x0, None, "x0")
        potential = ScorePotential(target, t=t, dim=x0.shape[1])
    seed = R.resolve_seed(seed)
    n, d = x0.shape
    sde: SDE
    meth: Method
    if method == "baoab":
        sde = UnderdampedLangevin(potential, gamma=gamma, kT=kT, mass=1.0, dim=2 * d)
        p0 = math.sqrt(kT) * R.normals(seed, range(0, 1), range(0, n), d, lane=R.LANE_INIT)[0]
        x = np.ascontiguousarray(np.concatenate([x0, p0], axis=1))
        meth = Splitting()
    else:
        sde = OverdampedLangevin(potential, kT=kT, gamma=gamma, dim=d)
        x = x0
        meth = {"mala": MetropolisAdjusted(), "leimkuhler_matthews": LeimkuhlerMatthews()}.get(method, EulerMaruyama())
    records_energy = is_potential and potential.has_energy and (store_energy or method == "mala")
    if records_energy and method != "mala":
        meth = WithEnergy(meth, potential, d)
    energy_col = 0 if records_energy else None
    accept_col = 1 if method == "mala" else None
    driver = "batched" if (backend == "numpy" or not potential.has_numba_face) else "auto"
    plan = make_plan(sde, x, t0=0.0, dt=h, n_steps=n_steps, save_every=thin, save_start=burn_in + thin,
                     save_last=False, method=meth, seed=seed, driver=driver, precision=precision)
    x = np.ascontiguousarray(_checks.in_range_of(x, plan.state_dtype, "x0"))
    used = "numba" if plan.driver == "fused" else "numpy"
    n_kept = (n_steps - burn_in) // thin
    writer = block = None
    if out is not None:
        from ..io.chains import ChainsWriter, stream_block

        block = stream_block(n, d)
        writer = ChainsWriter.create(
            out, n_kept=n_kept, n_chains=n, dim=d, method=method, step=h, kT=kT, gamma=gamma, n_steps=n_steps,
            burn_in=burn_in, thin=thin, seed=seed, backend=used, has_energies=records_energy,
            has_accepted=method == "mala", has_momentum=method == "baoab", overwrite=overwrite,
            config={"target": repr(target), "t": t, "store_energy": bool(store_energy),
                    "precision": plan.precision},
        )
    rec = _Recorder(n_kept, n, d, energy_col, accept_col, writer, dtype=plan.state_dtype)
    desc = f"mcmc {method}"
    try:
        t_start = time.perf_counter()
        carry = None
        compile_time = 0.0
        if burn_in > 0:  # burn-in first, so that accept counts start after it (same numbers as one run)
            info = _driver.run(sde, meth, plan, x, _Discard(), stop_step=burn_in, progress=progress,
                               threads=n_threads, on_divergence="flag", desc=desc)
            carry, compile_time = info["carry"], info["compile_time"]
            if accept_col is not None:
                rec.accept_ref = carry[:, -1].copy()
        info = _driver.run(sde, meth, plan, x, rec, carry=carry, start_step=burn_in, progress=progress,
                           threads=n_threads, on_divergence="flag", desc=desc, max_frames=block)
        compile_time += info["compile_time"]
        wall = time.perf_counter() - t_start - compile_time
        accepted = info["carry"][:, -1] - rec.accept_ref if accept_col is not None else None
        final_q = x[:, :d].copy()
        final_p = x[:, d:].copy() if method == "baoab" else None
        if writer is not None:
            rec_ = writer.finish(final_position=final_q, final_momentum=final_p, accepted=accepted, wall_time=wall,
                                 compile_time=compile_time,
                                 summarize=lambda r: diagnostic_attrs(Chains.from_record(r)))
            return Chains.from_record(rec_)
    except BaseException as exc:
        if writer is not None and not writer.closed:
            writer.abort(interrupted=isinstance(exc, KeyboardInterrupt))
        raise
    return Chains(
        samples=rec.samples,
        method=method,
        step=h,
        kT=kT,
        gamma=gamma,
        n_steps=n_steps,
        burn_in=burn_in,
        thin=thin,
        seed=seed,
        final_position=final_q,
        backend=used,
        energies=rec.energies,
        accepted=accepted,
        final_momentum=final_p,
        wall_time=wall,
        compile_time=compile_time,
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
    seed: R.Seed


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
    eps = _checks.positive(step, "step")
    n_each = _checks.count(n_steps_each, "n_steps_each", 1)
    x = _checks.states(x0, None, "x0")
    seed = R.resolve_seed(seed)
    levels = np.empty((sig.size, *x.shape))
    bar = Progress(sig.size, progress, "annealed langevin")
    # each level is ULA (Euler–Maruyama of OverdampedLangevin(-score)) with step alpha_i / 2: the same driver,
    # one independent noise stream per level
    for i, sigma in enumerate(sig):
        alpha = eps * (sigma / sig[-1]) ** 2
        ch = langevin(ScorePotential(score, t=float(sigma), dim=x.shape[1]), x, step=0.5 * alpha, n_steps=n_each,
                      thin=n_each, method="ula", seed=seed.child(i), progress=False)
        x = ch.final_position
        levels[i] = x
        bar.update(1)
    bar.close()
    if denoise:
        s_last = np.asarray(score(x, float(sig[-1])), dtype=np.float64)
        if s_last.shape != x.shape:
            raise ValueError(f"score returned shape {s_last.shape} for x of shape {x.shape}")
        x = x + sig[-1] ** 2 * s_last
    return AnnealedSamples(x=x, levels=levels, sigmas=sig, seed=seed)
