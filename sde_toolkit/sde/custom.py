"""User-defined SDEs from functions."""

from __future__ import annotations

import math
import numbers

import numpy as np
from numba.core.registry import CPUDispatcher

from .._jit import jit as _default_jit
from .base import NOISE_TYPES, SDE, NumbaFace


class FunctionSDE(SDE):
    """An SDE from ``drift(x, t)`` and ``diffusion(x, t)`` on ``(n_paths, dim)`` arrays.

    ``diffusion`` may also be a non-negative number (constant additive noise). When ``drift`` (and a callable
    ``diffusion``) are Numba-jitted functions (``numba.njit``), the SDE declares a Numba face and runs on the
    fused driver: the kernels are called per particle on ``(1, dim)`` views, so write them with array
    operations that broadcast over rows. Any other callable runs on the batched driver.

    ``time_homogeneous=True`` declares that neither function depends on ``t`` (the Fokker–Planck solver then
    factorizes its operator once); it is not checked, so leave it ``False`` unless it is true.
    """

    def __init__(self, drift, diffusion, dim: int, noise_type: str = "diagonal", noise_dim: int | None = None,
                 additive: bool = False, diffusion_dx=None, time_homogeneous: bool = False):
        if not callable(drift):
            raise TypeError(f"drift must be callable drift(x, t), got {type(drift).__name__}")
        if int(dim) != dim or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim}")
        if noise_type not in NOISE_TYPES:
            raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {noise_type!r}")
        self.dim = int(dim)
        self.noise_type = noise_type
        if noise_type == "diagonal":
            self.noise_dim = self.dim
        elif noise_type == "scalar":
            self.noise_dim = 1
        else:
            if noise_dim is None:
                raise ValueError("noise_type='general' needs noise_dim")
            self.noise_dim = int(noise_dim)
        self._const = None
        if isinstance(diffusion, numbers.Real):
            const = float(diffusion)
            if not math.isfinite(const) or const < 0:
                raise ValueError(f"diffusion must be a finite number >= 0, got {diffusion}")
            if noise_type == "general":
                raise ValueError("a constant number as diffusion needs noise_type 'diagonal' or 'scalar'")
            self._const = const
            additive = True
        elif not callable(diffusion):
            raise TypeError(f"diffusion must be callable diffusion(x, t) or a number, got {type(diffusion).__name__}")
        self._drift = drift
        self._diffusion = diffusion
        self._diffusion_dx = diffusion_dx
        self.additive = bool(additive)
        self.time_homogeneous = bool(time_homogeneous)
        self.is_ode = self._const == 0.0  # a zero constant diffusion declares an ODE (Heun applies)
        self.has_numba_face = isinstance(drift, CPUDispatcher) and (
            self._const is not None or isinstance(diffusion, CPUDispatcher)
        ) and noise_type != "general"

    def params(self) -> dict:
        return {"drift": self._drift, "diffusion": self._diffusion if self._const is None else self._const,
                "dim": self.dim, "noise_type": self.noise_type,
                "noise_dim": self.noise_dim if self.noise_type == "general" else None, "additive": self.additive,
                "diffusion_dx": self._diffusion_dx, "time_homogeneous": self.time_homogeneous}

    @property
    def has_diffusion_dx(self) -> bool:
        return self._const is not None or self._diffusion_dx is not None

    def drift(self, x, t):
        return self._drift(x, t)

    def diffusion(self, x, t):
        if self._const is not None:
            return np.full(np.shape(x), self._const)
        return self._diffusion(x, t)

    def diffusion_dx(self, x, t):
        if self._const is not None:
            return np.zeros(np.shape(x))
        if self._diffusion_dx is None:
            raise NotImplementedError("Milstein needs diffusion_dx=callable for a state-dependent diffusion")
        return self._diffusion_dx(x, t)

    def numba_face(self, jit=_default_jit) -> NumbaFace:
        if not self.has_numba_face:
            raise NotImplementedError("FunctionSDE has a Numba face only when drift/diffusion are numba.njit functions")
        d = self.dim
        f = _user(self._drift, jit)
        c = self._const

        def drift(x, t, out):
            r = f(x.reshape((1, d)), t)
            for i in range(d):
                out[i] = r[0, i]

        if c is not None:

            def const_diffusion(x, t, out):
                for i in range(d):
                    out[i] = c

            def zero_diffusion_dx(x, t, out):
                for i in range(d):
                    out[i] = 0.0

            return NumbaFace(jit(drift), jit(const_diffusion), jit(zero_diffusion_dx))
        g = _user(self._diffusion, jit)

        def diffusion(x, t, out):
            r = g(x.reshape((1, d)), t)
            for i in range(d):
                out[i] = r[0, i]

        gdx = self._diffusion_dx
        if isinstance(gdx, CPUDispatcher):
            gdx = _user(gdx, jit)

            def diffusion_dx(x, t, out):
                r = gdx(x.reshape((1, d)), t)
                for i in range(d):
                    out[i] = r[0, i]

            return NumbaFace(jit(drift), jit(diffusion), jit(diffusion_dx))
        return NumbaFace(jit(drift), jit(diffusion))


def _user(dispatcher, jit):
    """The user's jitted function recompiled by the driver's ``jit`` (so it is inlined into the fused kernel)."""
    return jit(dispatcher.py_func)
