"""Reverse-time SDE and probability-flow ODE of a forward SDE, given a score ``s(x, t) ~ grad log p_t(x)``.

A score is any callable ``score(x, t) -> (n, dim)`` on NumPy arrays. A score object that declares
``has_numba_face = True`` and provides ``numba_score(jit)`` (a Numba kernel ``score(x_row, t, out_row)``) lets
the reverse SDE run on the fused driver when the forward SDE has a Numba face too. Reverse SDEs are frozen and
value-hashed like every SDE: equal forward SDEs and equal scores (value-hashed scores such as
``GaussianMixtureScore``, or the same object) share one compiled kernel.
"""

from __future__ import annotations

import numpy as np

from .._jit import jit as _default_jit
from .base import SDE, NumbaFace


def _score_has_numba(score) -> bool:
    return bool(getattr(score, "has_numba_face", False))


def _g2_score_drift(fw: NumbaFace, score, d: int, noise_type: str, scale: float, jit):
    """Per-particle kernel of ``f - scale g g^T score`` (diagonal or scalar noise), the Numba twin of
    :meth:`ReverseSDE._g2_score` with the same operation order: diagonal ``g_i^2 s_i``, scalar
    ``g_i (sum_j g_j s_j)``. One scratch array of ``2 d`` floats holds ``g`` and ``s``."""
    fdrift, fdiff = fw.drift, fw.diffusion
    scalar = noise_type == "scalar"

    def drift(x, t, out):
        buf = np.empty(2 * d)
        g = buf[:d]
        s = buf[d:]
        fdrift(x, t, out)
        fdiff(x, t, g)
        score(x, t, s)
        if scalar:
            gs = 0.0
            for j in range(d):
                gs += g[j] * s[j]
            for i in range(d):
                out[i] -= scale * g[i] * gs
        else:
            for i in range(d):
                out[i] -= scale * g[i] ** 2 * s[i]

    return jit(drift)


class ReverseSDE(SDE):
    """``dX = [f(X, t) - g g^T score(X, t)] dt + g dW-bar``, integrated backwards from ``t0`` to ``t1 < t0``.

    The drift returned by :meth:`drift` is the coefficient of the *signed* time step: the integrator steps
    ``x += drift * h + g sqrt(|h|) z`` with ``h < 0``.
    """

    backward = True
    score_driven = True
    _fields = ("forward", "score")

    def __init__(self, forward: SDE, score):
        if not callable(score):
            raise TypeError(f"score must be callable score(x, t), got {type(score).__name__}")
        self.forward = forward
        self.score = score
        self.dim = forward.dim
        self.noise_type = forward.noise_type
        self.noise_dim = forward.noise_dim
        self.additive = forward.additive
        self.has_numba_face = bool(forward.has_numba_face and _score_has_numba(score)
                                   and forward.noise_type != "general")

    def __repr__(self):
        return f"ReverseSDE({self.forward!r})"

    def _g2_score(self, x, t, scale):
        s = np.asarray(self.score(x, t))
        if self.forward.noise_type == "general":
            D = self.forward.diffusion_matrix(x, t)
            return scale * np.einsum("nij,nj->ni", D, s)
        g = self.forward.diffusion(x, t)
        if self.forward.noise_type == "scalar":
            return scale * g * np.sum(g * s, axis=1, keepdims=True)
        return scale * g**2 * s

    def drift(self, x, t):
        return self.forward.drift(x, t) - self._g2_score(x, t, 1.0)

    def diffusion(self, x, t):
        return self.forward.diffusion(x, t)

    @property
    def has_diffusion_dx(self) -> bool:
        return self.forward.has_diffusion_dx

    def diffusion_dx(self, x, t):
        return self.forward.diffusion_dx(x, t)

    def numba_face(self, jit=_default_jit) -> NumbaFace:
        if not self.has_numba_face:
            raise NotImplementedError("reverse SDE has no Numba face (forward or score lacks one)")
        fw = self.forward.numba_face(jit)
        return NumbaFace(_g2_score_drift(fw, self.score.numba_score(jit), self.dim, self.noise_type, 1.0, jit),
                         fw.diffusion, fw.diffusion_dx)


class ProbabilityFlowODE(SDE):
    """``dx/dt = f(x, t) - g g^T score(x, t) / 2`` (zero diffusion), integrated backwards like the reverse SDE.

    Its solution has the same marginals ``p_t`` as the forward SDE.
    """

    backward = True
    is_ode = True
    score_driven = True
    _fields = ("forward", "score")

    def __init__(self, forward: SDE, score):
        if not callable(score):
            raise TypeError(f"score must be callable score(x, t), got {type(score).__name__}")
        self.forward = forward
        self.score = score
        self.dim = forward.dim
        self.noise_type = "diagonal"
        self.noise_dim = forward.dim
        self.additive = True
        self._rev = ReverseSDE(forward, score)
        self.has_numba_face = self._rev.has_numba_face

    def __repr__(self):
        return f"ProbabilityFlowODE({self.forward!r})"

    def drift(self, x, t):
        return self.forward.drift(x, t) - self._rev._g2_score(x, t, 0.5)

    def diffusion(self, x, t):
        return np.zeros(np.shape(x))

    def numba_face(self, jit=_default_jit) -> NumbaFace:
        if not self.has_numba_face:
            raise NotImplementedError("probability-flow ODE has no Numba face (forward or score lacks one)")
        fw = self.forward.numba_face(jit)
        drift = _g2_score_drift(fw, self.score.numba_score(jit), self.dim, self.forward.noise_type, 0.5, jit)
        d = self.dim

        def diffusion(x, t, out):
            for i in range(d):
                out[i] = 0.0

        return NumbaFace(drift, jit(diffusion), jit(diffusion))
