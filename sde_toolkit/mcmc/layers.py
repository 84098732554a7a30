"""Metropolis and recording layers over the integrators' own steps (MCMC has no step formula of its own).

* :class:`MetropolisAdjusted` (MALA): the Euler–Maruyama step of a gradient flow
  ``dX = -grad U / gamma dt + sqrt(2 kT / gamma) dW`` (``OverdampedLangevin``) as the proposal
  ``y = x + f(x) h + g sqrt(h) xi``, accepted with probability ``min(1, alpha)``,
  ``log alpha = -(U(y) - U(x)) / kT + |xi|^2 / 2 - |x - y - f(y) h|^2 / (2 g^2 h)`` (the log ratio of the target
  and of the two proposal densities). Exact (unbiased) at any step. The proposal is
  :func:`sde_toolkit.integrate.methods.em_increment`, the same update Euler–Maruyama uses; the layer adds one
  uniform per chain and step (noise lane :data:`~sde_toolkit._random.LANE_UNIFORM`).
* :class:`WithEnergy`: any method, recording ``U`` of the position at every saved step (the chains' energies).
"""

from __future__ import annotations

import math

import numpy as np

from ..integrate.methods import EulerMaruyama, Method, em_increment, fused_for


class MetropolisAdjusted(Method):
    """MALA: Euler–Maruyama proposal of a gradient-flow SDE plus a Metropolis–Hastings accept/reject layer.

    Per-path carry: ``[U(x), f(x) (dim values), accepted count]``; recorded at saved steps: ``[U(x), accepted]``.
    Draws ``dim`` normals (the same ones Euler–Maruyama would) and one uniform per path and step.
    """

    name = "mala"
    strong_order = {"additive": None, "diagonal": None, "scalar": None, "general": None, "ode": None}
    weak_order = math.inf  # its stationary law is exact; transient moments are only O(h)
    proposal = EulerMaruyama()
    # float32: the proposal is float32 arithmetic; energies, the log ratio and the accept counts stay float64
    precisions = ("float64", "float32")

    def supports(self, sde):
        if not sde.gradient_flow:
            return f"MALA needs a gradient flow (an SDE with a potential and constant noise), got {type(sde).__name__}"
        U, _, _ = sde.gradient_flow_form()
        if not U.has_energy:
            return ("MALA needs the energy V for its accept/reject step; a score alone gives only grad V. Pass a "
                    "Potential, or use method='ula' or 'baoab' with a score")
        return None

    def n_normals(self, sde):
        return sde.dim

    def n_uniforms(self, sde):
        return 1

    def carry_dim(self, sde):
        return sde.dim + 2

    def aux_dim(self, sde):
        return 2

    # ------------------------------------------------------------------ batched face
    def init_carry(self, sde, x, t):
        U, _, _ = sde.gradient_flow_form()
        out = np.zeros((x.shape[0], sde.dim + 2))
        out[:, 0] = U.energy(x)
        out[:, 1:1 + sde.dim] = sde.drift(x, t)
        return out

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        U, kT, _ = sde.gradient_flow_form()
        d = sde.dim
        f = carry[:, 1:1 + d]
        g = np.asarray(sde.diffusion(x, t), dtype=np.float64)
        y = em_increment(x, f, g, s * z, h)
        vy = np.asarray(U.energy(y), dtype=np.float64)
        fy = np.asarray(sde.drift(y, t), dtype=np.float64)
        fwd = 0.5 * np.sum(z * z, axis=1)
        r = x - y - fy * h
        bwd = np.sum(r * r / (2.0 * g * g * abs(h)), axis=1)
        with np.errstate(invalid="ignore", over="ignore"):
            log_alpha = -(vy - carry[:, 0]) / kT + fwd - bwd
            accept = (log_alpha >= 0.0) | (u < np.exp(np.minimum(log_alpha, 0.0)))
        carry[accept, 0] = vy[accept]
        carry[accept, 1:1 + d] = fy[accept]
        carry[accept, 1 + d] += 1.0
        return np.where(accept[:, None], y, x)

    def batched_aux(self, sde, x, carry):
        return carry[:, [0, sde.dim + 1]]

    # ------------------------------------------------------------------ fused face
    def fused(self, sde, face, h, jit, dtype=np.float64):
        U, kT, _ = sde.gradient_flow_form()
        energy = U.numba_energy(jit)
        drift, diff = face.drift, face.diffusion
        inc = jit(em_increment)
        d = sde.dim
        ikT = 1.0 / kT
        FT = dtype

        def make_ws(n):
            return (np.empty(d, FT), np.empty(d, FT), np.empty(d, FT))

        def init_carry(x, carry, t):
            for i in range(x.shape[0]):
                carry[i, 0] = energy(x[i])
                drift(x[i], t, carry[i, 1:1 + d])
                carry[i, 1 + d] = 0.0

        def step(x, carry, k, t, h, t_next, z, s, u, ws):
            y, fy, g0 = ws
            diff(x[0], t, g0)  # constant noise of a gradient flow
            ah = abs(h)
            for i in range(x.shape[0]):
                fwd = 0.0
                for r in range(d):
                    y[r] = inc(x[i, r], FT(carry[i, 1 + r]), g0[r], s * z[i, r], h)
                    fwd += z[i, r] * z[i, r]
                vy = energy(y)
                drift(y, t, fy)
                bwd = 0.0
                for r in range(d):
                    rr = x[i, r] - y[r] - fy[r] * h
                    bwd += rr * rr / (2.0 * g0[r] * g0[r] * ah)
                log_alpha = -(vy - carry[i, 0]) * ikT + 0.5 * fwd - bwd
                if log_alpha >= 0.0 or u[i] < math.exp(min(log_alpha, 0.0)):  # NaN (a bad proposal): rejected
                    for r in range(d):
                        x[i, r] = y[r]
                        carry[i, 1 + r] = fy[r]
                    carry[i, 0] = vy
                    carry[i, 1 + d] += 1.0

        def aux(x, carry, out):
            for i in range(x.shape[0]):
                out[i, 0] = carry[i, 0]
                out[i, 1] = carry[i, 1 + d]

        return {"make_ws": make_ws, "step": step, "init_carry": init_carry, "aux": aux}


class WithEnergy(Method):
    """``method`` unchanged, plus the potential energy of the position (the first ``qdim`` coordinates) recorded
    at every saved step."""

    def __init__(self, method: Method, potential, qdim: int):
        self.inner = method
        self.potential = potential
        self.qdim = int(qdim)
        self.name = method.name
        self.strong_order = method.strong_order
        self.weak_order = method.weak_order
        self.noise_form = method.noise_form
        self.step_dependent = method.step_dependent
        self.precisions = method.precisions
        self.noise_lookahead = method.noise_lookahead  # Leimkuhler–Matthews: step k draws xi_{k+1}

    @property
    def invariant_order(self):
        return self.inner.invariant_order

    @property
    def cache_key(self):
        return ("WithEnergy", self.inner.cache_key, self.potential.cache_key, self.qdim)

    def supports(self, sde):
        return self.inner.supports(sde)

    def n_normals(self, sde):
        return self.inner.n_normals(sde)

    def n_uniforms(self, sde):
        return self.inner.n_uniforms(sde)

    def carry_dim(self, sde):
        return self.inner.carry_dim(sde)

    def aux_dim(self, sde):
        return self.inner.aux_dim(sde) + 1

    def init_carry(self, sde, x, t):
        return self.inner.init_carry(sde, x, t)

    def batched_step(self, sde, x, carry, k, t, h, t_next, z, s, u):
        return self.inner.batched_step(sde, x, carry, k, t, h, t_next, z, s, u)

    def batched_aux(self, sde, x, carry):
        e = np.asarray(self.potential.energy(x[:, :self.qdim]), dtype=np.float64)[:, None]
        return np.concatenate([self.inner.batched_aux(sde, x, carry), e], axis=1)

    def fused(self, sde, face, h, jit, dtype=np.float64):
        parts = dict(fused_for(self.inner, sde, face, h, jit, dtype))
        inner_aux = jit(parts["aux"])
        energy = self.potential.numba_energy(jit)
        q = self.qdim
        na = self.inner.aux_dim(sde)

        def aux(x, carry, out):
            if na > 0:
                inner_aux(x, carry, out[:, :na])
            for i in range(x.shape[0]):
                out[i, na] = energy(x[i, :q])

        parts["aux"] = aux
        return parts
