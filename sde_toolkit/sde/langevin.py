"""Overdamped and underdamped Langevin dynamics in a potential."""

from __future__ import annotations

import math

import numpy as np

from .._checks import positive
from .._jit import jit as _default_jit
from .base import SDE, NumbaFace
from .distributions import Boltzmann
from .potentials import Potential, from_expression


def _as_potential(potential, dim):
    if isinstance(potential, str):
        variables = ("x",) if (dim in (None, 1)) else ("x", "y", "z")[: dim]
        return from_expression(potential, variables)
    if not isinstance(potential, Potential):
        raise TypeError(f"potential must be a Potential or an expression string, got {type(potential).__name__}")
    return potential


class OverdampedLangevin(SDE):
    """``dX = -grad V(X) / gamma dt + sqrt(2 kT / gamma) dW``; stationary density ``~ exp(-V / kT)``.

    Args:
        potential: a :class:`Potential` or an expression string (``from_expression``).
        kT: temperature (energy units), > 0.
        gamma: friction, > 0.
        dim: dimension for coordinate-wise potentials (``Harmonic``, ``DoubleWell``); default the potential's
            own dimension, else 1.

    Facts: additive diagonal noise (EM strong order 1 when ``grad V`` is smooth); a gradient flow
    (``gradient_flow``): the Metropolis layer of MALA and the Fokker–Planck potential fluxes read ``V``, ``kT``
    and ``gamma`` from :meth:`gradient_flow_form`. Frozen: ``sde.replace(kT=2.0)`` builds a new one.
    """

    has_numba_face = True
    time_homogeneous = True
    gradient_flow = True
    _fields = ("potential", "kT", "gamma", "dim")

    def __init__(self, potential, kT: float = 1.0, gamma: float = 1.0, dim: int | None = None):
        self.potential = _as_potential(potential, dim)
        pdim = self.potential.dim
        if dim is not None and pdim is not None and dim != pdim:
            raise ValueError(f"dim={dim} but the potential is {pdim}-dimensional")
        self.dim = int(dim or pdim or 1)
        self.kT = positive(kT, "kT")
        self.gamma = positive(gamma, "gamma")
        self.noise_type = "diagonal"
        self.noise_dim = self.dim
        self.additive = True
        self.has_numba_face = bool(self.potential.has_numba_face)

    @property
    def noise_scale(self) -> float:
        """``sqrt(2 kT / gamma)`` (derived from the frozen parameters, never stale)."""
        return math.sqrt(2.0 * self.kT / self.gamma)

    def __repr__(self):
        return f"OverdampedLangevin({self.potential!r}, kT={self.kT}, gamma={self.gamma}, dim={self.dim})"

    def drift(self, x, t):
        return -self.potential.grad(x) / self.gamma

    def diffusion(self, x, t):
        return np.full(np.shape(x), self.noise_scale)

    def diffusion_dx(self, x, t):
        return np.zeros(np.shape(x))

    def stationary(self) -> Boltzmann:
        """Unnormalized Boltzmann density ``exp(-V / kT)`` (quadrature helpers for dim <= 2)."""
        return Boltzmann(self.potential.energy, self.kT, self.dim)

    def log_target(self, x) -> np.ndarray:
        return -np.asarray(self.potential.energy(x), dtype=np.float64) / self.kT

    def gradient_flow_form(self):
        return self.potential, self.kT, self.gamma

    float32_face = True

    def numba_face(self, jit=_default_jit, dtype=np.float64) -> NumbaFace:
        """The kernels; ``dtype=np.float32``: float32 constants here and in potentials with ``float32_grad``
        (the others' gradients compute in float64 and round on store). ``log_target`` stays float64."""
        FT = dtype
        f32 = FT is not np.float64 and self.potential.float32_grad
        kw = {"dtype": FT} if f32 else {}
        grad = self.potential.numba_grad(jit, **kw)
        energy = self.potential.numba_energy(jit) if self.potential.has_energy else None
        inv_g = FT(1.0 / self.gamma)
        s = FT(self.noise_scale)
        inv_kT = 1.0 / self.kT
        d = self.dim

        def drift(x, t, out):
            grad(x, out)
            for i in range(d):
                out[i] = -out[i] * inv_g

        def diffusion(x, t, out):
            for i in range(d):
                out[i] = s

        def diffusion_dx(x, t, out):
            for i in range(d):
                out[i] = 0.0

        log_target = None
        if energy is not None:

            def log_target_(x):
                return -energy(x) * inv_kT

            log_target = jit(log_target_)
        drift_block = None
        if self.potential.has_grad_block:
            grad_block = self.potential.numba_grad_block(jit, d, **kw)

            def drift_block_(X, t, F):
                grad_block(X, F)  # the row face's operations in its order: the same bits
                if d == 1:  # LLVM speculates the unit stride of 1-D rows; wider rows need a flat view
                    for i in range(X.shape[0]):
                        F[i, 0] = -F[i, 0] * inv_g
                else:
                    m = X.shape[0] * d
                    Ff = F.reshape(m)
                    for q in range(m):
                        Ff[q] = -Ff[q] * inv_g

            drift_block = jit(drift_block_)
        return NumbaFace(jit(drift), jit(diffusion), jit(diffusion_dx), log_target=log_target,
                         drift_block=drift_block)


class UnderdampedLangevin(SDE):
    """Phase-space Langevin dynamics; the state is ``(q, p)`` stacked, so ``dim = 2 * dim(q)``.

    ``dq = p / m dt``, ``dp = -grad V(q) dt - gamma p dt + sqrt(2 gamma m kT) dW``; stationary density
    ``~ exp(-(V(q) + |p|^2 / 2m) / kT)``. ``gamma`` is a rate: with no force, ``E p(t) = e^{-gamma t} p0``,
    ``Var p(t) = m kT (1 - e^{-2 gamma t})``, and the free-particle diffusion constant is ``kT / (m gamma)``.

    Its splitting scheme (``has_splitting``; ``method="baoab"``) is BAOAB (Leimkuhler & Matthews 2013):
    ``p -= h/2 grad V(q); q += h/2 p/m; p = c1 p + c2 xi; q += h/2 p/m; p -= h/2 grad V(q)`` with
    ``c1 = exp(-gamma h)``, ``c2 = sqrt(m kT (1 - c1^2))``: one gradient and ``dim(q)`` normals per step; the O step
    is the exact Ornstein–Uhlenbeck flow of the momentum, the configurational marginal is exact for harmonic
    potentials at any stable step. MCMC's BAOAB sampler is this step.
    """

    has_numba_face = True
    time_homogeneous = True
    has_splitting = True
    _fields = ("potential", "gamma", "kT", "mass", "dim")

    def __init__(self, potential, gamma: float = 1.0, kT: float = 1.0, mass: float = 1.0, dim: int | None = None):
        qdim = None if dim is None else dim // 2
        if dim is not None and dim % 2:
            raise ValueError(f"dim must be even (q and p stacked), got {dim}")
        self.potential = _as_potential(potential, qdim)
        self.qdim = int(qdim or self.potential.dim or 1)
        self.potential.check_dim(self.qdim)
        self.dim = 2 * self.qdim
        self.gamma = positive(gamma, "gamma")
        self.kT = positive(kT, "kT")
        self.mass = positive(mass, "mass")
        self.noise_type = "diagonal"
        self.noise_dim = self.dim
        self.additive = True
        self.has_numba_face = bool(self.potential.has_numba_face)

    @property
    def noise_scale(self) -> float:
        """``sqrt(2 gamma m kT)``, the momentum noise amplitude."""
        return math.sqrt(2.0 * self.gamma * self.mass * self.kT)

    @property
    def splitting_noise_dim(self) -> int:
        return self.qdim

    def __repr__(self):
        return f"UnderdampedLangevin({self.potential!r}, gamma={self.gamma}, kT={self.kT}, mass={self.mass})"

    def drift(self, x, t):
        d = self.qdim
        q, p = x[:, :d], x[:, d:]
        return np.concatenate([p / self.mass, -self.potential.grad(q) - self.gamma * p], axis=1)

    def diffusion(self, x, t):
        g = np.zeros(np.shape(x))
        g[:, self.qdim:] = self.noise_scale
        return g

    def diffusion_dx(self, x, t):
        return np.zeros(np.shape(x))

    def hamiltonian(self, x):
        d = self.qdim
        return self.potential.energy(x[:, :d]) + 0.5 * np.sum(x[:, d:] ** 2, axis=1) / self.mass

    def stationary(self) -> Boltzmann:
        return Boltzmann(self.hamiltonian, self.kT, self.dim)

    def baoab_coefficients(self, h: float) -> tuple[float, float]:
        """``(c1, c2) = (exp(-gamma |h|), sqrt(m kT (1 - exp(-2 gamma |h|))))`` (``expm1`` for small steps)."""
        c1 = math.exp(-self.gamma * abs(h))
        c2 = math.sqrt(self.mass * self.kT * (-math.expm1(-2.0 * self.gamma * abs(h))))
        return c1, c2

    def splitting_step(self, x, t, h, z):
        d = self.qdim
        c1, c2 = self.baoab_coefficients(h)
        hh = 0.5 * h
        inv_m = 1.0 / self.mass
        q, p = x[:, :d], x[:, d:]
        p = p - hh * self.potential.grad(q)
        q = q + hh * (p * inv_m)
        p = c1 * p + c2 * z[:, :d]
        q = q + hh * (p * inv_m)
        p = p - hh * self.potential.grad(q)
        return np.concatenate([q, p], axis=1)

    def numba_face(self, jit=_default_jit) -> NumbaFace:
        grad = self.potential.numba_grad(jit)
        d = self.qdim
        m = self.mass
        gam = self.gamma
        s = self.noise_scale

        def drift(x, t, out):
            grad(x[:d], out[d:])
            for i in range(d):
                out[d + i] = -out[d + i] - gam * x[d + i]
                out[i] = x[d + i] / m

        def diffusion(x, t, out):
            for i in range(d):
                out[i] = 0.0
                out[d + i] = s

        def diffusion_dx(x, t, out):
            for i in range(2 * d):
                out[i] = 0.0

        model = self

        def splitting_step(h):
            c1, c2 = model.baoab_coefficients(h)
            hh = 0.5 * h
            inv_m = 1.0 / m

            def step(x, t, z, out):
                # the same operations in the same order as the batched splitting_step
                g = np.empty(d)
                q = out[:d]
                p = out[d:]
                grad(x[:d], g)
                for i in range(d):
                    p[i] = x[d + i] - hh * g[i]
                    q[i] = x[i] + hh * (p[i] * inv_m)
                for i in range(d):
                    p[i] = c1 * p[i] + c2 * z[i]
                    q[i] = q[i] + hh * (p[i] * inv_m)
                grad(q, g)
                for i in range(d):
                    p[i] = p[i] - hh * g[i]

            return jit(step)

        return NumbaFace(jit(drift), jit(diffusion), jit(diffusion_dx), splitting_step=splitting_step)
