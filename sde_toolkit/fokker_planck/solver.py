"""The Fokker–Planck solver: time stepping, stationary density, first passage, currents, comparison with SDEs.

Itô Fokker–Planck equation of ``dX = f(X, t) dt + g(X, t) dW`` with ``D = g g^T`` (diagonal)::

    dp/dt = -div(f p) + 1/2 sum_i d_i d_i (D_ii p) = L(t) p

discretized in space by :func:`~sde_toolkit.fokker_planck.operator.assemble` (exponential fitting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from scipy import special

from .. import _checks
from .._progress import Progress
from .grid import Grid
from .operator import SCHEMES, Operator, assemble, face_currents

METHODS = ("implicit_euler", "crank_nicolson", "expm", "euler")
MASS_TOL = 1e-6


@dataclass(frozen=True)
class EvolveResult:
    """Densities from :meth:`FokkerPlanck.evolve`.

    Attributes:
        t: saved times ``t0 + k * save_every * dt`` (and the final time), shape ``(n_save,)``.
        p: densities at the saved times, shape ``(n_save, *grid.shape)``.
        grid: the grid.
        method: the time stepper.
        dt: the step.
    """

    t: np.ndarray
    p: np.ndarray
    grid: Grid
    method: str
    dt: float

    @property
    def mass(self) -> np.ndarray:
        """``sum(p) * cell_volume`` at each saved time, ``(n_save,)`` (the survival probability with absorbing walls)."""
        return np.asarray(self.grid.integrate(self.p))  # p has the time axis: always an array

    @property
    def survival(self) -> np.ndarray:
        """Survival probability ``S(t)`` (the mass left on the grid), ``(n_save,)``."""
        return self.mass

    def marginal(self, axis: int = 0) -> np.ndarray:
        """Marginal densities along ``axis``, ``(n_save, n_axis)``."""
        return self.grid.marginal(self.p, axis)

    def to_file(self, path, config: dict | None = None, overwrite: bool = False) -> None:
        """Write the densities to ``/fokker_planck`` of an HDF5 file (the layout of ``evolve(..., out=path)``);
        ``config`` is extra JSON-able provenance next to the method and step."""
        from ..io.density import write_density

        write_density(path, self.t, self.p, self.grid.to_dict(),
                      config={"method": self.method, "dt": self.dt, **(config or {})}, overwrite=overwrite)


def read_density(path, allow_partial: bool = True):
    """Read densities written by ``evolve(..., out=path)`` or :meth:`EvolveResult.to_file`.

    Returns:
        :class:`~sde_toolkit.io.DensityRecord` (``t``, ``p``, ``config``, ``complete``) whose ``grid`` is a
        :class:`Grid`.

    Raises:
        ValueError: no ``/fokker_planck`` group, or an incomplete one with ``allow_partial=False``.
    """
    import dataclasses

    from ..io.density import read_density as read_record

    rec = read_record(path, allow_partial=allow_partial)
    return dataclasses.replace(rec, grid=Grid.from_dict(rec.grid))


@dataclass(frozen=True)
class FirstPassageResult:
    """First passage through the absorbing walls, from :meth:`FokkerPlanck.first_passage`.

    Attributes:
        t: saved times.
        survival: ``S(t) = int p(x, t) dx``.
        density: first-passage-time density ``-dS/dt``, the probability flux through the absorbing walls.
        mean_time: mean first-passage time ``int tau(x) p0(x) dx`` from the adjoint equation ``L^T tau = -1``
            (``None`` for time-dependent SDEs).
        evolution: the underlying :class:`EvolveResult`.
    """

    t: np.ndarray
    survival: np.ndarray
    density: np.ndarray
    mean_time: float | None
    evolution: EvolveResult


@dataclass(frozen=True)
class Comparison:
    """Distance between Fokker–Planck densities and an ensemble's histograms at the trajectory's saved times.

    Attributes:
        t: times.
        l1: ``sum |p_FP - p_hist| dV + fraction of samples outside the grid``.
        tv: total variation, ``l1 / 2``.
        outside: fraction of samples outside the grid at each time.
        noise_floor: the expected ``l1`` of a histogram of ``n_paths`` exact samples of the FP density at each
            time (:func:`histogram_noise_l1`): what ``l1`` is when FP and the ensemble agree perfectly. An ``l1``
            near it means agreement within sampling noise; well above it, a real difference.
        p: the Fokker–Planck densities, ``(n_save, *grid.shape)``.
        histograms: the ensemble histograms on the grid cells.
    """

    t: np.ndarray
    l1: np.ndarray
    tv: np.ndarray
    outside: np.ndarray
    noise_floor: np.ndarray
    p: np.ndarray = field(repr=False)
    histograms: np.ndarray = field(repr=False)


def histogram_noise_l1(masses, n: int) -> float:
    """Expected L1 distance ``E sum_i |N_i / n - q_i|`` between the histogram of ``n`` independent samples and
    the cell masses ``q`` they are drawn from (``N ~ Multinomial(n, q)``; mass ``1 - sum q`` falls outside).

    Exact, by de Moivre's mean absolute deviation of the binomial ``N_i ~ Bin(n, q_i)``: with
    ``k = floor(n q) + 1``, ``E|N - n q| = 2 k C(n, k) q^k (1 - q)^(n - k + 1)`` (evaluated in log space). For
    many small cells it approaches ``sum_i sqrt(2 q_i (1 - q_i) / (pi n))``, below the equal-cell bound
    ``sqrt(2 K / (pi n))``.
    """
    q = np.asarray(masses, dtype=np.float64).ravel()
    if not (isinstance(n, (int, np.integer)) and n >= 1):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if q.size == 0 or not np.all(np.isfinite(q)) or np.any(q < -1e-12):
        raise ValueError("masses must be finite and non-negative")
    q = np.clip(q, 0.0, 1.0)
    q = np.append(q, max(0.0, 1.0 - float(q.sum())))
    q = q[(q > 0) & (q < 1)]
    if q.size == 0:
        return 0.0
    k = np.floor(n * q) + 1.0
    log_mad = (math.log(2.0) + np.log(k) + special.gammaln(n + 1.0) - special.gammaln(k + 1.0)
               - special.gammaln(n - k + 1.0) + k * np.log(q) + (n - k + 1.0) * np.log1p(-q))
    return float(np.exp(log_mad).sum() / n)


def relative_entropy(p, q, grid: Grid) -> float:
    """``H(p | q) = sum p log(p / q) dV`` (with ``0 log 0 = 0``)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / q[m])) * grid.cell_volume)


class FokkerPlanck:
    """Fokker–Planck equation of an SDE on a :class:`Grid`: ``dp/dt = L(t) p`` (Itô, diagonal ``D = g g^T``).

    ``dp/dt = -div(f p) + 1/2 sum_i d_i^2 (D_ii p)``, discretized by finite volumes with exponentially fitted
    (Scharfetter–Gummel / Chang–Cooper) fluxes. Facts (``scheme="exponential"``): ``L`` is a rate matrix (columns
    sum to zero without absorbing walls, off-diagonals >= 0), so implicit Euler conserves mass to round-off and
    keeps ``p >= 0`` at any ``dt``; second order in space; for :class:`OverdampedLangevin` the Boltzmann weights
    ``exp(-V(x_i) / kT)`` are the exact discrete stationary state (potential differences in the fluxes).

    Args:
        sde: the SDE (batched face: ``drift(x, t)``, ``diffusion_matrix(x, t)``), ``sde.dim == grid.dim``.
        grid: the grid.
        scheme: ``"exponential"`` (default), ``"upwind"`` (first order, positive) or ``"central"`` (second order,
            not positive at large cell Péclet numbers; for comparison).
        time_dependent: whether ``f`` or ``g`` depend on ``t`` (then ``L`` is re-assembled every step). Default:
            ``not sde.time_homogeneous``, the SDE class's declaration (``False`` for OU and Langevin models,
            ``True`` for VP/VE/reverse SDEs and for user SDEs unless built with ``time_homogeneous=True``).
        use_potential: use potential differences for :class:`OverdampedLangevin` (exact equilibrium).
    """

    def __init__(self, sde, grid: Grid, *, scheme: str = "exponential", time_dependent: bool | None = None,
                 use_potential: bool = True):
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a Grid, got {type(grid).__name__}")
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
        if sde.dim != grid.dim:
            raise ValueError(f"the SDE is {sde.dim}-dimensional but the grid has {grid.dim} axes")
        if time_dependent is None:
            time_dependent = not sde.time_homogeneous
        self.sde = sde
        self.grid = grid
        self.scheme = scheme
        self.time_dependent = bool(time_dependent)
        self.use_potential = bool(use_potential)
        self._op: Operator | None = None
        if not self.time_dependent:
            self._op = self.operator(0.0)  # validates D > 0 and finite drift now

    # ------------------------------------------------------------------ operator
    def operator(self, t: float = 0.0) -> Operator:
        """The assembled :class:`Operator` at time ``t`` (cached for time-homogeneous SDEs)."""
        if not self.time_dependent and self._op is not None:
            return self._op
        return assemble(self.sde, self.grid, float(t), self.scheme, self.use_potential)

    def generator(self, t: float = 0.0) -> sp.csr_matrix:
        """The sparse generator ``L(t)`` (``size x size``, CSR) acting on ``p.ravel()``."""
        return self.operator(t).L

    # ------------------------------------------------------------------ helpers
    def _check_p0(self, p0, normalize: bool) -> np.ndarray:
        if callable(p0):
            p0 = self.grid.density(p0, normalize=False)
        p = np.array(p0, dtype=np.float64)
        if p.shape != self.grid.shape:
            if p.size == self.grid.size and p.ndim == 1:
                p = p.reshape(self.grid.shape)
            else:
                raise ValueError(f"p0 must have the grid shape {self.grid.shape}, got {p.shape}")
        if not np.all(np.isfinite(p)):
            i = int(np.flatnonzero(~np.isfinite(p.ravel()))[0])
            raise ValueError(f"p0 must be finite, got {p.ravel()[i]!r} at flat index {i}")
        if np.any(p < 0):
            i = int(np.argmin(p.ravel()))
            raise ValueError(f"p0 must be non-negative, got {p.ravel()[i]:.6g} at flat index {i}")
        mass = float(p.sum() * self.grid.cell_volume)
        if normalize:
            if not mass > 0:
                raise ValueError("p0 has zero mass and cannot be normalized")
            p /= mass
        elif abs(mass - 1.0) > MASS_TOL:
            raise ValueError(f"p0 must have mass sum(p0) * cell_volume = 1, got {mass:.9g} (pass normalize=True)")
        return p

    @staticmethod
    def _time_grid(t0: float, t1: float, dt: float, save_every: int) -> tuple[int, np.ndarray, np.ndarray]:
        for name, v in (("t0", t0), ("t1", t1), ("dt", dt)):
            if not math.isfinite(v):
                raise ValueError(f"{name} must be finite, got {v!r}")
        if not dt > 0:
            raise ValueError(f"dt must be > 0, got {dt!r}")
        if not t1 > t0:
            raise ValueError(f"t1 must exceed t0, got t0={t0!r}, t1={t1!r}")
        if int(save_every) != save_every or save_every < 1:
            raise ValueError(f"save_every must be a positive integer, got {save_every!r}")
        n = int(round((t1 - t0) / dt))
        if n < 1 or abs(n * dt - (t1 - t0)) > 1e-9 * max(abs(t1 - t0), abs(dt)):
            raise ValueError(f"t1 - t0 = {t1 - t0!r} must be a whole number of steps dt = {dt!r}")
        steps = np.arange(0, n + 1, int(save_every))
        if steps[-1] != n:
            steps = np.append(steps, n)
        return n, steps, t0 + steps * dt

    # ------------------------------------------------------------------ evolution
    def evolve(self, p0, *, t1: float, dt: float, t0: float = 0.0, save_every: int = 1,
               method: str = "implicit_euler", startup_steps: int = 2, normalize: bool = False,
               progress: bool | None = None, out=None) -> EvolveResult:
        """Propagate ``p0`` from ``t0`` to ``t1`` with steps ``dt``, saving every ``save_every`` steps.

        Methods (``t_n = t0 + n dt`` computed, never accumulated):

        * ``"implicit_euler"``: ``(I - dt L) p_{n+1} = p_n``; order 1; positive and mass-conserving at any ``dt``.
        * ``"crank_nicolson"``: ``(I - dt/2 L) p_{n+1} = (I + dt/2 L) p_n``; order 2. The first
          ``startup_steps`` steps are each replaced by two implicit-Euler half steps (Rannacher start-up), which
          damps the oscillation CN leaves on a rough initial density; the same LU serves both.
        * ``"expm"``: ``p(t) = expm(L (t - t0)) p0`` by ``scipy.sparse.linalg.expm_multiply`` at the saved
          times (exact in time; time-homogeneous SDEs only; ``dt`` only sets the saved times).
        * ``"euler"``: explicit ``p_{n+1} = p_n + dt L p_n``; refused when ``dt > 1 / max|L_ii|`` (positivity).

        A time-homogeneous ``L`` is LU-factorized once; a time-dependent one is re-assembled every step (implicit
        Euler at ``t_{n+1}``; Crank–Nicolson with ``L(t_n)`` and ``L(t_{n+1})``).

        Args:
            p0: initial density on the grid (shape ``grid.shape``), or a callable ``f(points)``; ``p0 >= 0``
                with mass 1 (within 1e-6) unless ``normalize=True``.
            t1, dt, t0, save_every: time grid (``t1 - t0`` must be a whole number of ``dt``).
            method: one of ``"implicit_euler"``, ``"crank_nicolson"``, ``"expm"``, ``"euler"``.
            startup_steps: Crank–Nicolson start-up steps.
            normalize: rescale ``p0`` to mass 1.
            progress: tqdm bar; ``None`` shows it only for runs projected to last more than ~2 s.
            out: path of an HDF5 file to stream the saved densities into (group ``/fokker_planck``).

        Returns:
            :class:`EvolveResult` with ``t`` ``(n_save,)`` and ``p`` ``(n_save, *grid.shape)``.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if int(startup_steps) != startup_steps or startup_steps < 0:
            raise ValueError(f"startup_steps must be a non-negative integer, got {startup_steps!r}")
        t0, t1, dt = _checks.number(t0, "t0"), _checks.number(t1, "t1"), _checks.positive(dt, "dt")
        n, steps, times = self._time_grid(t0, t1, dt, save_every)
        _checks.require_memory(steps.size * self.grid.size * 8.0, f"{steps.size} saved densities of {self.grid.size} cells")
        p = self._check_p0(p0, normalize).ravel()
        if method == "expm" and self.time_dependent:
            raise ValueError("method='expm' needs a time-homogeneous SDE (time_dependent is True)")
        saved = np.empty((steps.size, self.grid.size))
        saved[0] = p
        writer = None
        if out is not None:
            from ..io.density import DensityWriter

            writer = DensityWriter(out, self.grid.to_dict(), config=self._config(method, dt, save_every, t0, t1))
            writer.__enter__()
            writer.append(times[0], p.reshape(self.grid.shape))
        bar = Progress(n, progress, f"FP {method}")
        failure: BaseException | None = None
        try:
            save_pos = 1
            step_fn = self._stepper(method, dt, t0, int(startup_steps))
            k = 0
            while k < n:
                if method == "expm":
                    k_next = int(steps[save_pos])
                    p = step_fn(p, k, k_next)
                else:
                    k_next = k + 1
                    p = step_fn(p, k, k_next)
                bar.update(k_next - k)
                k = k_next
                if save_pos < steps.size and k == steps[save_pos]:
                    saved[save_pos] = p
                    if writer is not None:
                        writer.append(times[save_pos], p.reshape(self.grid.shape))
                    save_pos += 1
        except BaseException as exc:
            failure = exc
            raise
        finally:
            bar.close()
            if writer is not None:  # a failed or interrupted run is recorded as incomplete, never as complete
                writer.__exit__(type(failure) if failure else None, failure, None)
        return EvolveResult(t=times, p=saved.reshape(steps.size, *self.grid.shape), grid=self.grid, method=method,
                            dt=dt)

    def _config(self, method, dt, save_every, t0, t1) -> dict:
        return {"sde": repr(self.sde), "grid": self.grid.to_dict(), "scheme": self.scheme, "method": method,
                "dt": dt, "save_every": int(save_every), "t0": t0, "t1": t1}

    def _stepper(self, method: str, dt: float, t0: float, startup: int):
        """A function ``(p, k, k_next) -> p`` advancing from step ``k`` to ``k_next`` (``t_k = t0 + k dt``)."""
        N = self.grid.size
        eye = sp.identity(N, format="csc")

        def tk(k: int) -> float:
            return t0 + k * dt

        if method == "expm":
            L = self.generator()

            def step(p, k, k_next):
                return spla.expm_multiply(L * ((k_next - k) * dt), p)

            return step

        if method == "euler":
            def limit(L):
                return 1.0 / max(np.abs(L.diagonal()).max(), 1e-300)

            if not self.time_dependent:
                L = self.generator()
                if dt > limit(L):
                    raise ValueError(f"dt = {dt!r} exceeds the explicit-Euler positivity limit 1/max|L_ii| = "
                                     f"{limit(L):.6g}; use an implicit method")

            def step(p, k, k_next):
                Lk = self.generator(tk(k))
                if self.time_dependent and dt > limit(Lk):
                    raise ValueError(f"dt = {dt!r} exceeds the explicit-Euler positivity limit "
                                     f"{limit(Lk):.6g} at t = {tk(k)!r}")
                return p + dt * (Lk @ p)

            return step

        if not self.time_dependent:
            L = self.generator()
            if method == "implicit_euler":
                lu = spla.splu((eye - dt * L).tocsc())

                def step(p, k, k_next):
                    return lu.solve(p)

                return step
            lu = spla.splu((eye - 0.5 * dt * L).tocsc())
            rhs = (eye + 0.5 * dt * L).tocsr()

            def step(p, k, k_next):
                if k < startup:
                    return lu.solve(lu.solve(p))  # two implicit-Euler half steps with the CN matrix
                return lu.solve(rhs @ p)

            return step

        if method == "implicit_euler":
            def step(p, k, k_next):
                L1 = self.generator(tk(k + 1))
                return spla.splu((eye - dt * L1).tocsc()).solve(p)

            return step

        def cn_step(p, k, k_next):  # Crank-Nicolson, time-dependent generator
            if k < startup:
                Lh = self.generator(tk(k) + 0.5 * dt)
                p = spla.splu((eye - 0.5 * dt * Lh).tocsc()).solve(p)
                L1 = self.generator(tk(k + 1))
                return spla.splu((eye - 0.5 * dt * L1).tocsc()).solve(p)
            L0 = self.generator(tk(k))
            L1 = self.generator(tk(k + 1))
            return spla.splu((eye - 0.5 * dt * L1).tocsc()).solve(p + 0.5 * dt * (L0 @ p))

        return cn_step

    # ------------------------------------------------------------------ stationary
    def stationary(self, *, t: float | None = None, allow_wall_mass: bool = False) -> np.ndarray:
        """Stationary density: the sparse direct solution of ``L p = 0`` with ``sum(p) * cell_volume = 1``.

        One equation of ``L p = 0`` is redundant (columns of ``L`` sum to zero); it is replaced by pinning the
        density at one cell (the potential minimum for Langevin SDEs, else a cell of high density), which keeps
        the system sparse; the result is then normalized.

        Args:
            t: time at which to freeze a time-dependent SDE (required for those).
            allow_wall_mass: accept a stationary density whose mass piles up at a reflecting wall while the drift
                there points out of the box (the SDE on the whole space is then not confined).

        Raises:
            ValueError: with absorbing walls (mass leaves: no normalizable stationary density), or when the drift
                is not confining (the density peaks in the outermost cells of a reflecting wall that the drift
                pushes against), unless ``allow_wall_mass``.
        """
        if self.grid.has_absorbing:
            raise ValueError("no normalizable stationary density: the grid has absorbing walls, so all mass "
                             "eventually leaves; use mean_first_passage_time() or first_passage()")
        if self.time_dependent and t is None:
            raise ValueError("the SDE is time-dependent: pass t= to freeze it, or use evolve()")
        tt = 0.0 if t is None else float(t)
        op = self.operator(tt)
        k = self._pin_guess(op)
        p = self._pinned_solve(op, k)
        if not self._plausible(p):
            # the pinned cell holds (almost) no mass and the solve lost all precision: find the bulk by one
            # long implicit-Euler step from the uniform density (a positive, well-conditioned solve), pin there
            p = self._pinned_solve(op, int(np.argmax(self._long_implicit_step(op))))
        elif p.max() > 1e3:
            p = self._pinned_solve(op, int(np.argmax(p)))
        if not self._plausible(p):
            raise RuntimeError(f"stationary(): the sparse solve did not return a valid density "
                               f"(min {np.nanmin(p):.3g}, max {np.nanmax(p):.3g})")
        p = np.maximum(p, 0.0)
        p /= p.sum() * self.grid.cell_volume
        p = p.reshape(self.grid.shape)
        if not allow_wall_mass:
            self._check_confined(p, tt)
        return p

    def _pin_guess(self, op: Operator) -> int:
        if op.energy is not None:  # potential minimum, from the energies the assembly already evaluated
            return int(np.argmin(op.energy))
        return int(np.ravel_multi_index(tuple(n // 2 for n in self.grid.shape), self.grid.shape))

    @staticmethod
    def _plausible(p: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(p)) and p.max() < 1e8 and p.min() >= -1e-10 * p.max())

    @staticmethod
    def _pinned_solve(op: Operator, k: int) -> np.ndarray:
        """Solve ``L p = 0`` with row ``k`` replaced by ``p_k = 1``: banded LU (``O(N)``) for tridiagonal ``L``,
        sparse LU otherwise. Pinning keeps the tridiagonal structure (row ``k`` becomes a unit row)."""
        N = op.L.shape[0]
        rhs = np.zeros(N)
        rhs[k] = 1.0
        if op.bands is not None:
            ab = op.bands.copy()
            ab[1, k] = 1.0
            if k + 1 < N:
                ab[0, k + 1] = 0.0  # L[k, k + 1]
            if k >= 1:
                ab[2, k - 1] = 0.0  # L[k, k - 1]
            with np.errstate(all="ignore"):
                try:
                    return sla.solve_banded((1, 1), ab, rhs, overwrite_ab=True, overwrite_b=True,
                                            check_finite=False)
                except np.linalg.LinAlgError:
                    return np.full(N, np.nan)  # singular: reported as implausible by the caller
        A = op.L.copy()
        A.data[A.indptr[k]:A.indptr[k + 1]] = 0.0
        A = A + sp.csr_matrix(([1.0], ([k], [k])), shape=A.shape)
        A.eliminate_zeros()
        with np.errstate(all="ignore"):
            return spla.spsolve(A.tocsc(), rhs)

    @staticmethod
    def _long_implicit_step(op: Operator) -> np.ndarray:
        """``(I - T L)^{-1} 1`` for a very long ``T``: a positive density concentrated on the bulk."""
        L = op.L
        N = L.shape[0]
        T = 1e6 / max(abs(L.diagonal()).max(), 1e-300)
        if op.bands is not None:
            ab = -T * op.bands
            ab[1] += 1.0
            return sla.solve_banded((1, 1), ab, np.ones(N), overwrite_ab=True, check_finite=False)
        return spla.spsolve((sp.identity(N, format="csc") - T * L).tocsc(), np.ones(N))

    def _check_confined(self, p: np.ndarray, t: float) -> None:
        """Raise when the density peaks in a cell at a reflecting wall that the drift pushes against."""
        g = self.grid
        peak = np.unravel_index(int(np.argmax(p)), g.shape)
        for k in range(g.dim):
            if g.periodic[k] or peak[k] not in (0, g.shape[k] - 1):
                continue
            side = 0 if peak[k] == 0 else 1
            x = np.array([[g.centers[j][peak[j]] for j in range(g.dim)]])
            x[0, k] = g.edges[k][0 if side == 0 else -1]
            f = float(np.asarray(self.sde.drift(x, t), dtype=np.float64)[0, k])
            if (f > 0) if side == 1 else (f < 0):
                mass = float(np.take(p, [peak[k]], axis=k).sum() * g.cell_volume)
                raise ValueError(
                    f"no normalizable stationary density: the drift pushes mass against the "
                    f"{'upper' if side else 'lower'} wall of axis {k}, where the density peaks (mass {mass:.3g} in "
                    f"the outermost cells); the SDE is not confined on this domain (enlarge the grid, or pass "
                    f"allow_wall_mass=True if the box itself is the model)"
                )

    # ------------------------------------------------------------------ first passage
    def mean_first_passage_time(self) -> np.ndarray:
        """Mean first-passage time ``tau(x)`` to the absorbing walls, from the backward (adjoint) equation.

        ``L^T tau = -1`` (``L^T`` is the discrete backward generator; ``tau = 0`` beyond the absorbing walls).
        Returns ``tau`` on the grid, shape ``grid.shape``.
        """
        if not self.grid.has_absorbing:
            raise ValueError("mean_first_passage_time() needs at least one absorbing wall")
        if self.time_dependent:
            raise ValueError("mean_first_passage_time() needs a time-homogeneous SDE")
        L = self.generator()
        tau = spla.spsolve(L.T.tocsc(), -np.ones(self.grid.size))
        return tau.reshape(self.grid.shape)

    def first_passage(self, p0, *, t1: float, dt: float, t0: float = 0.0, save_every: int = 1,
                      method: str = "implicit_euler", normalize: bool = False,
                      progress: bool | None = None) -> FirstPassageResult:
        """Survival ``S(t)``, first-passage-time density ``-dS/dt`` (the outflux) and the mean first-passage time.

        The outflux at a saved time is ``sum_i r_i p_i dV`` with ``r_i`` the absorption rate of cell ``i`` (the
        column deficit of ``L``); for implicit Euler ``S_{n+1} - S_n = -dt * outflux(p_{n+1})`` exactly.
        """
        if not self.grid.has_absorbing:
            raise ValueError("first_passage() needs at least one absorbing wall")
        res = self.evolve(p0, t1=t1, dt=dt, t0=t0, save_every=save_every, method=method, normalize=normalize,
                          progress=progress)
        flat = res.p.reshape(res.t.size, -1)
        if self.time_dependent:
            flux = np.array([self.operator(ti).outflow @ pi for ti, pi in zip(res.t, flat)])
        else:
            flux = flat @ self.operator().outflow
        flux = flux * self.grid.cell_volume
        mean = None
        if not self.time_dependent:
            tau = self.mean_first_passage_time()
            mean = float(np.sum(tau * res.p[0]) * self.grid.cell_volume)
        return FirstPassageResult(t=res.t, survival=res.mass, density=flux, mean_time=mean, evolution=res)

    # ------------------------------------------------------------------ currents, comparison
    def current(self, p, t: float = 0.0) -> tuple[np.ndarray, ...]:
        """Probability current ``J_k = f_k p - 1/2 d_k (D_kk p)`` on the faces of each axis (the scheme's fluxes).

        Axis ``k`` gives an array with ``n_k + 1`` entries along ``k`` (faces ``grid.edges[k]``, walls included:
        zero at reflecting walls, the outflux at absorbing ones) or ``n_k`` when periodic (upper face of each
        cell). A stationary density has a divergence-free current; with detailed balance it is zero.
        """
        p = np.asarray(p, dtype=np.float64)
        if p.shape != self.grid.shape:
            raise ValueError(f"p must have the grid shape {self.grid.shape}, got {p.shape}")
        return face_currents(self.operator(t), self.grid, p)

    def current_at_centers(self, p, t: float = 0.0) -> np.ndarray:
        """Current averaged from the two faces of each cell to its centre, shape ``(dim, *grid.shape)``."""
        out = []
        for k, J in enumerate(self.current(p, t)):
            if self.grid.periodic[k]:
                out.append(0.5 * (J + np.roll(J, 1, axis=k)))
            else:
                n = self.grid.shape[k]
                out.append(0.5 * (np.take(J, range(0, n), axis=k) + np.take(J, range(1, n + 1), axis=k)))
        return np.stack(out)

    def propagate(self, p0, times, *, dt: float | None = None, normalize: bool = False) -> np.ndarray:
        """Densities at the increasing ``times`` (the first is the time of ``p0``), ``(len(times), *grid.shape)``.

        Time-homogeneous SDEs: exact in time (``expm_multiply`` per interval). Time-dependent: Crank–Nicolson with
        steps of at most ``dt`` (required) in each interval.
        """
        times = np.asarray(times, dtype=np.float64).ravel()
        if times.size < 1 or np.any(np.diff(times) <= 0):
            raise ValueError(f"times must be strictly increasing, got {times!r}")
        p = self._check_p0(p0, normalize).ravel()
        out = np.empty((times.size, self.grid.size))
        out[0] = p
        if self.time_dependent and (dt is None or not dt > 0):
            raise ValueError(f"a time-dependent SDE needs dt > 0 for propagate(), got dt={dt!r}")
        for i in range(1, times.size):
            span = times[i] - times[i - 1]
            if not self.time_dependent:
                p = spla.expm_multiply(self.generator() * span, p)
            else:
                m = max(1, int(math.ceil(span / dt - 1e-9)))
                step = self._stepper("crank_nicolson", span / m, times[i - 1], 2)
                for j in range(m):
                    p = step(p, j, j + 1)
            out[i] = p
        return out.reshape(times.size, *self.grid.shape)

    def compare(self, trajectory, p0=None, *, dt: float | None = None, method: str = "crank_nicolson",
                progress: bool | None = None) -> Comparison:
        """L1 and total-variation distances between FP densities and the ensemble's histograms on the grid cells,
        with the histogram noise floor at each time.

        The cost is one time stepping through the saved times (one LU per step size for a time-homogeneous
        SDE) and one histogram per frame, read frame by frame (a file-backed trajectory is streamed).

        Args:
            trajectory: an object with ``.t`` ``(n_save,)`` and ``.x`` ``(n_save, n_paths, dim)`` (``simulate``).
            p0: the initial density at ``trajectory.t[0]``; default the histogram of ``trajectory.x[0]``
                (normalized to the samples on the grid; then ``l1[0] = 0`` and the initial histogram's noise
                is propagated with it).
            dt: largest time step; default a sixteenth of the shortest interval between saved times. Every
                interval is split into whole steps of at most ``dt``.
            method: ``"crank_nicolson"`` (default; order 2 with a Rannacher start), ``"implicit_euler"``, or
                ``"expm"`` (exact in time by ``expm_multiply``; time-homogeneous SDEs only; its cost grows with
                ``|L| * interval`` and can be minutes on fine grids).
            progress: tqdm bar over the time steps (``None``: only when projected past ~2 s).

        Returns:
            :class:`Comparison` with ``l1 = sum |p - hist| dV + (fraction outside the grid)``, ``tv = l1 / 2`` and
            ``noise_floor`` (the expected ``l1`` of ``n_paths`` exact samples of ``p``).
        """
        if method not in ("crank_nicolson", "implicit_euler", "expm"):
            raise ValueError(f"method must be 'crank_nicolson', 'implicit_euler' or 'expm', got {method!r}")
        t = np.asarray(trajectory.t, dtype=np.float64).ravel()
        x = trajectory.x
        shape = tuple(np.shape(x))
        if len(shape) != 3 or shape[0] != t.size or shape[2] != self.grid.dim:
            raise ValueError(f"trajectory.x must be (n_save={t.size}, n_paths, {self.grid.dim}), got {shape}")
        if t.size < 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
            raise ValueError("trajectory.t must be finite and strictly increasing")
        if dt is not None:
            dt = _checks.positive(dt, "dt")
        if method == "expm" and self.time_dependent:
            raise ValueError("method='expm' needs a time-homogeneous SDE (time_dependent is True)")
        hists = np.stack([self.grid.histogram(np.asarray(x[i], dtype=np.float64)) for i in range(t.size)])
        if p0 is None:
            p0, normalize = hists[0], True
        else:
            normalize = False
        if method == "expm":
            p = self.propagate(p0, t, normalize=normalize)
        else:
            p = self._march(self._check_p0(p0, normalize).ravel(), t, dt, method, progress)
        outside = 1.0 - np.asarray(self.grid.integrate(hists))  # one value per saved time
        l1 = np.abs(p - hists).reshape(t.size, -1).sum(axis=1) * self.grid.cell_volume + outside
        n = int(shape[1])
        floor = np.array([histogram_noise_l1(np.maximum(pi, 0.0) * self.grid.cell_volume, n) for pi in p])
        return Comparison(t=t, l1=l1, tv=0.5 * l1, outside=outside, noise_floor=floor, p=p, histograms=hists)

    def _march(self, p: np.ndarray, times: np.ndarray, dt: float | None, method: str,
               progress: bool | None) -> np.ndarray:
        """Densities at ``times`` from ``p`` at ``times[0]``: each interval in whole steps of at most ``dt``
        (one factorization per distinct step for a time-homogeneous generator)."""
        spans = np.diff(times)
        out = np.empty((times.size, self.grid.size))
        out[0] = p
        if spans.size == 0:
            return out.reshape(times.size, *self.grid.shape)
        if dt is None:
            dt = float(spans.min()) / 16.0
        counts = np.maximum(1, np.ceil(spans / dt - 1e-9)).astype(int)
        steppers: dict = {}
        bar = Progress(int(counts.sum()), progress, f"FP compare {method}")
        done = 0
        try:
            for i, (span, m) in enumerate(zip(spans, counts)):
                h = float(span) / int(m)
                if self.time_dependent:
                    step = self._stepper(method, h, float(times[i]), 2 if i == 0 else 0)
                    ks = range(int(m))
                else:
                    key = round(h, 12)
                    if key not in steppers:
                        steppers[key] = self._stepper(method, h, 0.0, 2)
                    step = steppers[key]
                    # the Rannacher start-up steps (k < 2) only at the very start of the march
                    ks = range(done, done + int(m))
                for k in ks:
                    p = step(p, k, k + 1)
                done += int(m)
                bar.update(int(m))
                out[i + 1] = p
        finally:
            bar.close()
        return out.reshape(times.size, *self.grid.shape)

    def __repr__(self) -> str:
        return f"FokkerPlanck({self.sde!r}, {self.grid!r}, scheme={self.scheme!r})"
