"""The SDE abstraction: one frozen object, two faces, declared capabilities.

An Itô SDE ``dX = f(X, t) dt + g(X, t) dW`` on ``R^dim``.

* **Batched face** (every SDE): ``drift(x, t)`` and ``diffusion(x, t)`` on arrays of shape ``(n_paths, dim)``.
  ``diffusion`` returns ``(n_paths, dim)`` for ``noise_type`` ``"diagonal"`` (``dX_i = ... + g_i dW_i``) and
  ``"scalar"`` (one Brownian motion shared by all coordinates, ``dX_i = ... + g_i dW``), and
  ``(n_paths, dim, noise_dim)`` for ``"general"`` (``dX = ... + G dW``).
* **Numba face** (analytic SDEs, declared by ``has_numba_face = True``): :meth:`SDE.numba_face` takes the
  driver's ``jit`` and returns a :class:`NumbaFace` of per-particle kernels that close over the parameters as
  floats. The model only describes: the driver (``sde_toolkit.integrate``) composes these pieces into one kernel
  and compiles it once. Models never own a time loop.

Models are **frozen and value-hashed** (:class:`Model`): parameters are fixed at construction (assigning raises
``AttributeError``; :meth:`Model.replace` builds a modified copy), and two models with equal parameters are equal
and hash alike, so compiled kernels are shared between them.

Capabilities are declared in the class, never probed with ``hasattr`` or try/except:

* ``has_numba_face``, ``linear`` (affine drift, additive noise), ``is_ode``, ``backward``, ``time_homogeneous``;
* ``has_exact_step`` (an exact transition at any step), ``has_splitting`` (a splitting scheme, e.g. BAOAB);
* ``gradient_flow``: ``dX = -grad U / gamma dt + sqrt(2 kT / gamma) dW`` with a known ``U`` (Metropolis layers
  and Fokker–Planck potential fluxes read :meth:`SDE.log_target` and :meth:`SDE.gradient_flow_form`);
* ``affine_marginal``: ``X_t | X_0 = x0 ~ N(a(t) x0 + (1 - a(t)) c, std(t)^2 I)`` with ``f = -k(t) (x - c)`` and a
  scalar ``g(t)`` (VP, VE, scalar OU); score models read :meth:`SDE.marginal_coef`, :meth:`SDE.affine_coef`,
  :meth:`SDE.prior` and ``T`` instead of switching on types;
* ``dimension_free``: the same law in any dimension (VP, VE): :meth:`SDE.with_dim` gives the ``dim``-dimensional
  copy;
* ``discretizable``: a discrete-time chain of the SDE, :meth:`SDE.discretize` ``(n_steps, mapping)`` (VP: the DDPM
  schedule); the ancestral sampler and the DDPM loss read it;
* ``score_driven``: a reverse-time SDE or probability-flow ODE built from a forward SDE and a score; it exposes
  ``forward`` and ``score`` (the score samplers read them).
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from .._checks import check_psd, float_array
from .._jit import jit as _default_jit

NOISE_TYPES = ("diagonal", "scalar", "general")

__all__ = ["Model", "SDE", "NumbaFace", "rows_block", "NOISE_TYPES", "value_key", "check_psd", "as_float_array"]


def as_float_array(value, name: str) -> np.ndarray:
    return float_array(value, name)


_M = TypeVar("_M", bound="Model")


# ------------------------------------------------------------------------------------------------ frozen models
def value_key(v) -> Any:
    """A hashable description of a parameter value: models and dataclasses by value, arrays by content,
    callables (user functions, networks) by identity."""
    if isinstance(v, Model):
        return v.cache_key
    if isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v)
        return ("array", a.dtype.str, a.shape, a.tobytes())
    if isinstance(v, (bool, int, float, str, type(None), np.number, np.bool_)):
        return (type(v).__name__, v.item() if isinstance(v, (np.number, np.bool_)) else v)
    if isinstance(v, (tuple, list)):
        return ("seq", tuple(value_key(x) for x in v))
    if isinstance(v, dict):
        return ("dict", tuple(sorted((str(k), value_key(x)) for k, x in v.items())))
    if is_dataclass(v) and not isinstance(v, type):
        return (type(v).__qualname__, tuple((f.name, value_key(getattr(v, f.name))) for f in fields(v)))
    return ("id", type(v).__qualname__, id(v))


class Model:
    """Frozen, value-hashed parameters (equinox's abstract-or-final rule: concrete classes set everything in
    ``__init__``; the instance is frozen when the outermost ``__init__`` returns).

    ``_fields`` names the constructor parameters that define the value; :meth:`params` returns them and
    :meth:`replace` rebuilds the model with some changed. Equality and hash follow :attr:`cache_key`.
    """

    _fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            orig = cls.__dict__["__init__"]

            @functools.wraps(orig)
            def __init__(self, *args, _orig=orig, **kw):
                object.__setattr__(self, "_frozen", False)
                _orig(self, *args, **kw)
                if type(self).__init__ is __init__:  # the outermost constructor of the concrete class
                    object.__setattr__(self, "_frozen", True)

            # mypy forbids assigning to a method; here it is the point: wrap the class's own constructor
            cls.__init__ = __init__  # type: ignore[method-assign]

    def __setattr__(self, name, value):
        if self.__dict__.get("_frozen", False):
            raise AttributeError(
                f"{type(self).__name__} is immutable; build a modified copy with .replace({name}=...) "
                f"(compiled kernels are keyed by the model's value)"
            )
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def params(self) -> dict:
        """The constructor parameters (by name) that define this model."""
        return {f: getattr(self, f) for f in self._fields}

    def replace(self: _M, **changes) -> _M:
        """A new model with the same parameters except ``changes``."""
        unknown = sorted(set(changes) - set(self._fields))
        if unknown:
            raise TypeError(f"{type(self).__name__}.replace: unknown parameters {unknown}; it has {list(self._fields)}")
        return type(self)(**{**self.params(), **changes})

    @functools.cached_property
    def cache_key(self) -> tuple:
        """``(class, parameters)`` by value; the key of compiled-kernel caches."""
        return (type(self).__module__, type(self).__qualname__,
                tuple((k, value_key(v)) for k, v in self.params().items()))

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.cache_key == self.cache_key

    def __hash__(self) -> int:
        return hash(self.cache_key)

    def __getstate__(self):
        d = dict(self.__dict__)
        d.pop("cache_key", None)
        return d

    def __setstate__(self, state):
        for k, v in state.items():
            object.__setattr__(self, k, v)


# cached_property writes into __dict__ directly (no __setattr__), so it works on frozen instances.


# ------------------------------------------------------------------------------------------------ numba face
@dataclass(frozen=True)
class NumbaFace:
    """Per-particle Numba kernels of an SDE, compiled by the ``jit`` the driver passed to ``numba_face``.

    Signatures (``x``: ``(dim,)`` float64 array, ``t``/``h``: float, ``out``: preallocated output):

    * ``drift(x, t, out)``: ``out[:] = f(x, t)``, ``out`` has shape ``(dim,)``.
    * ``diffusion(x, t, out)``: ``out`` is ``(dim,)`` for diagonal/scalar noise, ``(dim, noise_dim)`` for general.
    * ``diffusion_dx(x, t, out)`` (optional): ``out[i] = d g_i / d x_i`` for Milstein on diagonal noise.
    * ``exact_step(h)`` (optional): a *factory* taking the signed step ``h`` and returning a kernel
      ``step(x, t, z, out)`` that draws ``X_{t+h} | X_t = x`` from standard normals ``z`` of shape ``(dim,)``.
    * ``splitting_step(h)`` (optional): a factory like ``exact_step`` for the model's splitting scheme (BAOAB),
      drawing ``sde.splitting_noise_dim`` normals.
    * ``log_target(x)`` (gradient flows): ``-U(x) / kT``, the log of the unnormalized stationary density.
    * ``drift_block(X, t, F)`` (optional, a declared capability): ``F[i, :] = f(X[i, :], t)`` for every row of
      the C-contiguous ``(n, dim)`` block ``X``, with the same operations in the same order as ``drift`` (the same
      bits). Its loop indexes flat views (``X.reshape(n * dim)[dim * i + r]``, a constant stride) and calls no
      function that LLVM cannot inline, so it vectorizes across particles; the fused steps use it when present and fall back to ``drift`` row by row otherwise
      (:func:`rows_block`).
    """

    drift: Callable[..., Any]
    diffusion: Callable[..., Any]
    diffusion_dx: Callable[..., Any] | None = None
    exact_step: Callable[..., Any] | None = None
    splitting_step: Callable[..., Any] | None = None
    log_target: Callable[..., Any] | None = None
    drift_block: Callable[..., Any] | None = None


def rows_block(row, jit=_default_jit):
    """A block kernel ``block(X, t, F)`` from a per-row kernel ``row(x, t, out)`` (the fallback of a face
    without ``drift_block``: a loop of calls, which does not vectorize)."""

    def block(X, t, F):
        for i in range(X.shape[0]):
            row(X[i], t, F[i])

    return jit(block)


# ------------------------------------------------------------------------------------------------ the SDE
class SDE(Model, abc.ABC):
    """Abstract Itô SDE ``dX = f(X, t) dt + g(X, t) dW`` (frozen and value-hashed, see :class:`Model`).

    Attributes:
        dim: state dimension.
        noise_type: ``"diagonal"``, ``"scalar"`` or ``"general"``.
        noise_dim: number of independent Brownian motions.
        additive: ``True`` when ``g`` does not depend on ``x`` (EM then has strong order 1).
        T: the end time of a diffusion model's forward process (``None`` when the SDE has none).

    Class-level capabilities: see the module docstring. ``has_numba_face``, ``is_ode``, ``time_homogeneous``
    and ``affine_marginal`` are class defaults that a model may fix per instance in its constructor (a wrapper
    from its parts, ``FunctionSDE`` from its functions); the others are class constants.
    """

    has_numba_face: bool = False
    # numba_face(jit, dtype=np.float32) builds kernels whose constants are float32 (float32 arithmetic throughout;
    # precision="float32"); without it a float32 run uses the float64 face, whose results are rounded on store
    float32_face: bool = False
    linear: ClassVar[bool] = False
    is_ode: bool = False
    backward: ClassVar[bool] = False
    time_homogeneous: bool = False
    has_exact_step: ClassVar[bool] = False
    has_splitting: ClassVar[bool] = False
    gradient_flow: ClassVar[bool] = False
    affine_marginal: bool = False
    dimension_free: ClassVar[bool] = False
    discretizable: ClassVar[bool] = False
    score_driven: ClassVar[bool] = False
    T: ClassVar[float | None] = None

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

    @property
    def has_diffusion_dx(self) -> bool:
        """Whether :meth:`diffusion_dx` is available (Milstein needs it)."""
        return self.additive

    # ------------------------------------------------------------------ numba face
    def numba_face(self, jit=_default_jit) -> NumbaFace:
        """The per-particle kernels, each compiled with ``jit`` (the driver passes an inlining jit)."""
        raise NotImplementedError(f"{type(self).__name__} has no Numba face (has_numba_face is False)")

    # ------------------------------------------------------------------ closed forms
    def marginal(self, x0, t):
        """``(mean, std or cov)`` of ``X_t | X_0 = x0`` for linear SDEs."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form marginal")

    def stationary(self):
        """The stationary distribution where it is known in closed form."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form stationary distribution")

    def exact_step(self, x, t, h, z):
        """Batched exact transition ``X_{t+h} | X_t = x`` from standard normals ``z`` ``(n, dim)`` (linear SDEs)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact transition")

    def splitting_step(self, x, t, h, z):
        """Batched step of the model's splitting scheme from ``(n, splitting_noise_dim)`` standard normals."""
        raise NotImplementedError(f"{type(self).__name__} has no splitting scheme")

    @property
    def splitting_noise_dim(self) -> int:
        """Standard normals per path that one splitting step draws."""
        return self.noise_dim

    # ------------------------------------------------------------------ gradient flows (gradient_flow = True)
    def log_target(self, x) -> np.ndarray:
        """``-U(x) / kT`` ``(n,)``: log of the unnormalized stationary density of a gradient flow."""
        raise NotImplementedError(f"{type(self).__name__} is not a gradient flow")

    def gradient_flow_form(self):
        """``(U, kT, gamma)`` with ``f = -grad U / gamma`` and ``D = g g^T = 2 kT / gamma I`` (gradient flows)."""
        raise NotImplementedError(f"{type(self).__name__} is not a gradient flow")

    # ------------------------------------------------------------------ affine marginals (affine_marginal = True)
    def marginal_coef(self, t):
        """``(a, b, std)``: ``X_t | X_0 = x0 ~ N(a x0 + b, std^2 I)``; ``a``, ``std`` like ``t``, ``b`` of shape
        ``t.shape + (dim,)`` (``b = (1 - a) c``)."""
        raise NotImplementedError(f"{type(self).__name__} has no isotropic affine marginal")

    def affine_coef(self, t):
        """``(k(t), g(t))`` with ``f = -k (x - c)`` and diffusion ``g I`` (so ``div f = -dim k``)."""
        raise NotImplementedError(f"{type(self).__name__} has no isotropic affine marginal")

    @property
    def center(self) -> np.ndarray:
        """``c`` of :meth:`marginal_coef`: the point the drift pulls towards (zeros for VP/VE)."""
        return np.zeros(self.dim)

    def prior(self):
        """The reference law at ``T`` that samplers start from (affine-marginal SDEs)."""
        raise NotImplementedError(f"{type(self).__name__} has no prior")

    def numba_marginal_coef(self, jit=_default_jit):
        """Numba kernel ``coef(t) -> (a, v)`` with ``X_t | x0 ~ N(a x0 + (1 - a) c, v I)``."""
        raise NotImplementedError(f"{type(self).__name__} has no isotropic affine marginal")

    def check_prior(self, tol: float = 1e-3, stacklevel: int = 2) -> bool:
        """Whether the forward process reaches :meth:`prior` at ``T``, warning when it does not. The default knows
        no criterion and returns ``True``; VPSDE checks ``alpha_bar(T) <= tol``."""
        return True

    def discretize(self, n_steps: int, mapping: str = "first_order"):
        """The discrete-time chain on ``n_steps`` steps (``discretizable`` SDEs; VP: the DDPM schedule)."""
        raise NotImplementedError(f"{type(self).__name__} has no discrete-time chain (discretizable is False)")

    def with_dim(self, dim: int) -> SDE:
        """The same law in ``dim`` dimensions (``dimension_free`` SDEs)."""
        if dim == self.dim:
            return self
        raise ValueError(f"dimension mismatch: {type(self).__name__} has dim={self.dim}, asked for dim={dim}")

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

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={_short(v)}" for k, v in self.params().items())
        return f"{type(self).__name__}({inner})"


def _short(v) -> str:
    if isinstance(v, np.ndarray):
        return repr(v.tolist()) if v.size <= 16 else f"<array {v.shape}>"
    return repr(v)
