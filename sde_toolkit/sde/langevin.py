"""Overdamped and underdamped Langevin dynamics in a potential."""

from __future__ import annotations

import math

import numpy as np

from .._jit import jit
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


def _positive(value, name):
    v = float(value)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


class OverdampedLangevin(SDE):
    """``dX = -grad V(X) / gamma dt + sqrt(2 kT / gamma) dW``; stationary density ``~ exp(-V / kT)``.

    Args:
        potential: a :class:`Potential` or an expression string (``from_expression``).
        kT: temperature (energy units), > 0.
        gamma: friction, > 0.
        dim: dimension for coordinate-wise potentials (``Harmonic``, ``DoubleWell``); default the potential's
            own dimension, else 1.

    Facts: additive diagonal noise (EM strong order 1 when ``grad V`` is smooth).
    """

    has_numba_face = True
    time_homogeneous = True
    methods = ("euler_maruyama", "milstein")

    def __init__(self, potential, kT: float = 1.0, gamma: float = 1.0, dim: int | None = None):
        self.potential = _as_potential(potential, dim)
        pdim = self.potential.dim
        if dim is not None and pdim is not None and dim != pdim:
            raise ValueError(f"dim={dim} but the potential is {pdim}-dimensional")
        self.dim = int(dim or pdim or 1)
        self.kT = _positive(kT, "kT")
        self.gamma = _positive(gamma, "gamma")
        self.noise_type = "diagonal"
        self.noise_dim = self.dim
        self.additive = True
        self.noise_scale = math.sqrt(2.0 * self.kT / self.gamma)

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

    def numba_face(self) -> NumbaFace:
        grad = self.potential.numba_grad()
        inv_g = 1.0 / self.gamma
        s = self.noise_scale
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

        return NumbaFace(jit(drift), jit(diffusion), jit(diffusion_dx))


class UnderdampedLangevin(SDE):
    """Phase-space Langevin dynamics; the state is ``(q, p)`` stacked, so ``dim = 2 * dim(q)``.

    ``dq = p / m dt``, ``dp = -grad V(q) dt - gamma p dt + sqrt(2 gamma m kT) dW``; stationary density
    ``~ exp(-(V(q) + |p|^2 / 2m) / kT)``. Method ``"baoab"`` is the BAOAB splitting (Leimkuhler & Matthews),
    whose configurational marginal is exact for harmonic potentials at any stable step.
    """

    has_numba_face = True
    time_homogeneous = True
    methods = ("euler_maruyama", "baoab")

    def __init__(self, potential, gamma: float = 1.0, kT: float = 1.0, mass: float = 1.0, dim: int | None = None):
        qdim = None if dim is None else dim // 2
        if dim is not None and dim % 2:
            raise ValueError(f"dim must be even (q and p stacked), got {dim}")
        self.potential = _as_potential(potential, qdim)
        self.qdim = int(qdim or self.potential.dim or 1)
        self.potential.check_dim(self.qdim)
        self.dim = 2 * self.qdim
        self.gamma = _positive(gamma, "gamma")
        self.kT = _positive(kT, "kT")
        self.mass = _positive(mass, "mass")
        self.noise_type = "diagonal"
        self.noise_dim = self.dim
        self.additive = True
        self.noise_scale = math.sqrt(2.0 * self.gamma * self.mass * self.kT)

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

    def _baoab_coeffs(self, h):
        c1 = math.exp(-self.gamma * abs(h))
        c2 = math.sqrt(self.mass * self.kT * (-math.expm1(-2.0 * self.gamma * abs(h))))
        return c1, c2

    def splitting_step(self, x, t, h, z):
        d = self.qdim
        c1, c2 = self._baoab_coeffs(h)
        q, p = x[:, :d].copy(), x[:, d:].copy()
        p -= 0.5 * h * self.potential.grad(q)
        q += 0.5 * h * p / self.mass
        p = c1 * p + c2 * z[:, d:]
        q += 0.5 * h * p / self.mass
        p -= 0.5 * h * self.potential.grad(q)
        return np.concatenate([q, p], axis=1)

    def numba_face(self) -> NumbaFace:
        grad = self.potential.numba_grad()
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
            c1, c2 = model._baoab_coeffs(h)
            hh = 0.5 * h

            def step(x, t, z, out):
                g = np.empty(d)
                q = out[:d]
                p = out[d:]
                grad(x[:d], g)
                for i in range(d):
                    p[i] = x[d + i] - hh * g[i]
                    q[i] = x[i] + hh * p[i] / m
                for i in range(d):
                    p[i] = c1 * p[i] + c2 * z[d + i]
                    q[i] = q[i] + hh * p[i] / m
                grad(q, g)
                for i in range(d):
                    p[i] = p[i] - hh * g[i]

            return jit(step)

        return NumbaFace(jit(drift), jit(diffusion), jit(diffusion_dx), splitting_step=splitting_step)
