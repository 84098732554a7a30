"""The SDE abstraction: one object, two faces.

An Itô SDE ``dX = f(X, t) dt + g(X, t) dW`` on ``R^dim``.

* **Batched face** (every SDE): ``drift(x, t)`` and ``diffusion(x, t)`` on arrays of shape ``(n_paths, dim)``.
  ``diffusion`` returns ``(n_paths, dim)`` for ``noise_type`` ``"diagonal"`` (``dX_i = ... + g_i dW_i``) and
  ``"scalar"`` (one Brownian motion shared by all coordinates, ``dX_i = ... + g_i dW``), and
  ``(n_paths, dim, noise_dim)`` for ``"general"`` (``dX = ... + G dW``).
* **Numba face** (analytic SDEs, declared by ``has_numba_face = True``): :meth:`SDE.numba_face` returns a
  :class:`NumbaFace` of per-particle kernel functions that close over the parameters as floats; the
  integrator compiles them into a fused time loop. Models never own a time loop.

Capabilities are declared in the class (``has_numba_face``, ``linear``, ``additive``, ``time_homogeneous``,
``methods``), never
probed with ``hasattr`` or try/except.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

NOISE_TYPES = ("diagonal", "scalar", "general")


@dataclass(frozen=True)
class NumbaFace:
    """Per-particle Numba kernels of an SDE (all functions are Numba dispatchers, compiled lazily).

    Signatures (``x``: ``(dim,)`` float64 array, ``t``/``h``: float, ``out``: preallocated output):

    * ``drift(x, t, out)``: ``out[:] = f(x, t)``, ``out`` has shape ``(dim,)``.
    * ``diffusion(x, t, out)``: ``out`` is ``(dim,)`` for diagonal/scalar noise, ``(dim, noise_dim)`` for general.
    * ``diffusion_dx(x, t, out)`` (optional): ``out[i] = d g_i / d x_i`` for Milstein on diagonal noise.
    * ``exact_step(h)`` (optional): a *factory* taking the signed step ``h`` and returning a kernel
      ``step(x, t, z, out)`` that draws ``X_{t+h} | X_t = x`` from standard normals ``z`` of shape
      ``(noise_dim,)`` (linear SDEs). Coefficients that depend only on ``h`` are computed once in the factory.
    * ``splitting_step(h)`` (optional): a factory like ``exact_step`` for the model's splitting scheme (BAOAB).
    """

    drift: Callable[..., Any]
    diffusion: Callable[..., Any]
    diffusion_dx: Callable[..., Any] | None = None
    exact_step: Callable[..., Any] | None = None
    splitting_step: Callable[..., Any] | None = None


class SDE(abc.ABC):
    """Abstract Itô SDE ``dX = f(X, t) dt + g(X, t) dW``.

    Attributes:
        dim: state dimension.
        noise_type: ``"diagonal"``, ``"scalar"`` or ``"general"``.
        noise_dim: number of independent Brownian motions.
        additive: ``True`` when ``g`` does not depend on ``x`` (EM then has strong order 1).
        has_numba_face: ``True`` when :meth:`numba_face` exists (fused driver).
        linear: ``True`` when the drift is affine and the noise additive (closed-form marginals).
        is_ode: ``True`` when the diffusion is identically zero.
        backward: ``True`` for reverse-time SDEs, which are integrated from ``t0`` down to ``t1 < t0``.
        time_homogeneous: ``True`` when neither ``f`` nor ``g`` depends on ``t`` (Fokker–Planck then assembles its
            operator once). ``False`` by default: claiming it wrongly gives wrong answers, denying it only costs time.
        methods: integration methods this SDE supports.
    """

    has_numba_face: ClassVar[bool] = False
    linear: ClassVar[bool] = False
    is_ode: ClassVar[bool] = False
    backward: ClassVar[bool] = False
    time_homogeneous: ClassVar[bool] = False
    methods: ClassVar[tuple[str, ...]] = ("euler_maruyama",)

    dim: int
    noise_type: str = "diagonal"
    noise_dim: int
    additive: bool = False

    # ------------------------------------------------------------------ batched face
    @abc.abstractmethod
    def drift(self, x, t):
        """``f(x, t)`` on ``(n_paths, dim)``; ``t`` a float or an ``(n_paths,)`` array."""

    @abc.abstractmethod
    def diffusion(self, x, t):
        """``g(x, t)``: ``(n_paths, dim)`` (diagonal, scalar) or ``(n_paths, dim, noise_dim)`` (general)."""

    def diffusion_dx(self, x, t):
        """``d g_i / d x_i`` (diagonal noise), needed by Milstein."""
        raise NotImplementedError(f"{type(self).__name__} does not provide diffusion_dx (needed by Milstein)")

    # ------------------------------------------------------------------ numba face
    def numba_face(self) -> NumbaFace:
        raise NotImplementedError(f"{type(self).__name__} has no Numba face (has_numba_face is False)")

    # ------------------------------------------------------------------ closed forms
    def marginal(self, x0, t):
        """``(mean, std or cov)`` of ``X_t | X_0 = x0`` for linear SDEs."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form marginal")

    def stationary(self):
        """The stationary distribution where it is known in closed form."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form stationary distribution")

    def exact_step(self, x, t, h, z):
        """Batched exact transition ``X_{t+h} | X_t = x`` from standard normals ``z`` (linear SDEs)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact transition")

    def splitting_step(self, x, t, h, z):
        """Batched step of the model's splitting scheme (BAOAB for underdamped Langevin)."""
        raise NotImplementedError(f"{type(self).__name__} has no splitting scheme")

    # ------------------------------------------------------------------ derived SDEs
    def reverse(self, score) -> SDE:
        """Reverse-time SDE ``dX = [f - g g^T score] dt + g dW-bar``, integrated from ``t0`` down to ``t1``."""
        from .reverse import ReverseSDE

        return ReverseSDE(self, score)

    def probability_flow(self, score) -> SDE:
        """Probability-flow ODE ``dx = [f - g g^T score / 2] dt`` (diffusion zero), same marginals."""
        from .reverse import ProbabilityFlowODE

        return ProbabilityFlowODE(self, score)

    @staticmethod
    def from_functions(drift, diffusion, dim: int, noise_type: str = "diagonal", noise_dim: int | None = None,
                       additive: bool = False, time_homogeneous: bool = False) -> SDE:
        """A user-defined SDE; see :class:`sde_toolkit.sde.custom.FunctionSDE`."""
        from .custom import FunctionSDE

        return FunctionSDE(drift, diffusion, dim, noise_type=noise_type, noise_dim=noise_dim, additive=additive,
                           time_homogeneous=time_homogeneous)

    # ------------------------------------------------------------------ helpers
    def diffusion_matrix(self, x, t) -> np.ndarray:
        """``D = g g^T`` as ``(n, dim, dim)`` (used by Fokker–Planck and the reverse SDE)."""
        g = np.asarray(self.diffusion(x, t), dtype=float)
        if self.noise_type == "general":
            return np.einsum("nij,nkj->nik", g, g)
        if self.noise_type == "scalar":
            return np.einsum("ni,nk->nik", g, g)
        return np.einsum("ni,ij->nij", g**2, np.eye(self.dim))

    def _check_dim(self, x) -> None:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n_paths, {self.dim}), got {tuple(x.shape)}")

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"{type(self).__name__}(dim={self.dim})"


def as_float_array(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return arr


def check_psd(mat: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` unless ``mat @ mat.T`` is a valid diffusion (real, finite)."""
    if mat.ndim == 0:
        if mat < 0:
            raise ValueError(f"{name} must be >= 0, got {float(mat)}")
        return
    if mat.ndim == 1:
        bad = np.flatnonzero(mat < 0)
        if bad.size:
            raise ValueError(f"{name} must be >= 0, got {mat[bad[0]]} at index {int(bad[0])}")
        return
    if mat.ndim == 2 and mat.shape[0] == mat.shape[1] and np.allclose(mat, mat.T) and not np.allclose(mat, np.diag(np.diag(mat))):
        # a symmetric matrix given as diffusion must be positive semidefinite
        w = np.linalg.eigvalsh(mat)
        if w.min() < -1e-12 * max(1.0, abs(w).max()):
            raise ValueError(f"{name} is symmetric but not positive semidefinite (min eigenvalue {w.min():.3g})")
    elif mat.ndim == 2 and mat.shape[0] == mat.shape[1] and np.allclose(mat, np.diag(np.diag(mat))):
        d = np.diag(mat)
        bad = np.flatnonzero(d < 0)
        if bad.size:
            raise ValueError(f"{name} has a negative diagonal entry {d[bad[0]]} at index {int(bad[0])}")
