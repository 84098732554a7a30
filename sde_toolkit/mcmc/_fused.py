"""Fused Numba drivers: one nogil call runs every step of one block of chains.

A driver is built per ``(potential, method)`` from the potential's Numba face (``numba_energy()``,
``numba_grad()``) and cached. Within a block the loop is step-major and draws in exactly the order of the
NumPy kernels in :mod:`sde_toolkit.mcmc.kernels` (all proposal normals of the block, then the uniforms), so
the fused and batched paths give the same chains for one seed (up to floating-point rounding of ``V``).

Driver signature (all arrays float64, C-contiguous):
``run(x0, gen, c0, c1, n_steps, burn_in, thin, a, b, c, out_x, out_e, out_acc, final_x, final_p)`` where
``(a, b, c)`` are the method's step coefficients, ``out_x`` ``(n_kept, n_chains, dim)``, ``out_e``
``(n_kept, n_chains)`` (``(0, n_chains)``: ULA/BAOAB skip the energies), ``out_acc`` ``(n_chains,)`` accept counts after burn-in (MALA), ``final_x`` and
``final_p`` ``(n_chains, dim)``. Only rows ``c0:c1`` are written, so blocks run concurrently.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np

from .._jit import jit

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_ID_CACHE: dict = {}
_LOCK = threading.Lock()


def _make_ula(energy, grad):
    def run(x0, gen, c0, c1, n_steps, burn_in, thin, eps, sd, unused, out_x, out_e, out_acc, final_x, final_p):
        bs = c1 - c0
        d = x0.shape[1]
        record = out_e.shape[0] > 0
        x = np.empty((bs, d))
        g = np.empty((bs, d))
        for c in range(bs):
            for i in range(d):
                x[c, i] = x0[c0 + c, i]
            grad(x[c], g[c])
        k = 0
        for s in range(1, n_steps + 1):
            for c in range(bs):
                for i in range(d):
                    x[c, i] = (x[c, i] - eps * g[c, i]) + sd * gen.standard_normal()
                grad(x[c], g[c])
            if s > burn_in and (s - burn_in) % thin == 0:
                for c in range(bs):
                    for i in range(d):
                        out_x[k, c0 + c, i] = x[c, i]
                    if record:
                        out_e[k, c0 + c] = energy(x[c])
                k += 1
        for c in range(bs):
            for i in range(d):
                final_x[c0 + c, i] = x[c, i]

    return jit(run)


def _make_mala(energy, grad):
    def run(x0, gen, c0, c1, n_steps, burn_in, thin, eps, sd, kT, out_x, out_e, out_acc, final_x, final_p):
        bs = c1 - c0
        d = x0.shape[1]
        x = np.empty((bs, d))
        g = np.empty((bs, d))
        v = np.empty(bs)
        z = np.empty((bs, d))
        y = np.empty(d)
        gy = np.empty(d)
        inv4 = 1.0 / (4.0 * eps * kT)
        for c in range(bs):
            for i in range(d):
                x[c, i] = x0[c0 + c, i]
            grad(x[c], g[c])
            v[c] = energy(x[c])
        k = 0
        for s in range(1, n_steps + 1):
            for c in range(bs):
                for i in range(d):
                    z[c, i] = gen.standard_normal()
            for c in range(bs):
                fwd = 0.0
                for i in range(d):
                    y[i] = (x[c, i] - eps * g[c, i]) + sd * z[c, i]
                    fwd += z[c, i] * z[c, i]
                vy = energy(y)
                grad(y, gy)
                bwd = 0.0
                for i in range(d):
                    r = (x[c, i] - y[i]) + eps * gy[i]
                    bwd += r * r
                log_alpha = (-(vy - v[c]) / kT + 0.5 * fwd) - bwd * inv4
                u = gen.random()
                if log_alpha >= 0.0 or u < math.exp(min(log_alpha, 0.0)):
                    for i in range(d):
                        x[c, i] = y[i]
                        g[c, i] = gy[i]
                    v[c] = vy
                    if s > burn_in:
                        out_acc[c0 + c] += 1.0
            if s > burn_in and (s - burn_in) % thin == 0:
                for c in range(bs):
                    for i in range(d):
                        out_x[k, c0 + c, i] = x[c, i]
                    out_e[k, c0 + c] = v[c]
                k += 1
        for c in range(bs):
            for i in range(d):
                final_x[c0 + c, i] = x[c, i]

    return jit(run)


def _make_baoab(energy, grad):
    def run(x0, gen, c0, c1, n_steps, burn_in, thin, hh, c1c, c2c, out_x, out_e, out_acc, final_x, final_p):
        bs = c1 - c0
        d = x0.shape[1]
        record = out_e.shape[0] > 0
        q = np.empty((bs, d))
        p = np.empty((bs, d))
        g = np.empty((bs, d))
        for c in range(bs):
            for i in range(d):
                q[c, i] = x0[c0 + c, i]
                p[c, i] = final_p[c0 + c, i]  # initial momenta (drawn by the caller from the block stream)
            grad(q[c], g[c])
        k = 0
        for s in range(1, n_steps + 1):
            for c in range(bs):
                for i in range(d):
                    p[c, i] = p[c, i] - hh * g[c, i]
                    q[c, i] = q[c, i] + hh * p[c, i]
                for i in range(d):
                    p[c, i] = c1c * p[c, i] + c2c * gen.standard_normal()
                    q[c, i] = q[c, i] + hh * p[c, i]
                grad(q[c], g[c])
                for i in range(d):
                    p[c, i] = p[c, i] - hh * g[c, i]
            if s > burn_in and (s - burn_in) % thin == 0:
                for c in range(bs):
                    for i in range(d):
                        out_x[k, c0 + c, i] = q[c, i]
                    if record:
                        out_e[k, c0 + c] = energy(q[c])
                k += 1
        for c in range(bs):
            for i in range(d):
                final_x[c0 + c, i] = q[c, i]
                final_p[c0 + c, i] = p[c, i]

    return jit(run)


_FACTORIES = {"ula": _make_ula, "mala": _make_mala, "baoab": _make_baoab}


def get_driver(potential, method: str):
    """The cached fused driver for ``potential`` and ``method`` (built, not yet compiled, on first use)."""
    with _LOCK:
        try:
            per = _CACHE.setdefault(potential, {})
        except TypeError:  # not weak-referenceable: key on identity and keep the potential alive
            per = _ID_CACHE.setdefault(id(potential), (potential, {}))[1]
        if method not in per:
            per[method] = _FACTORIES[method](potential.numba_energy(), potential.numba_grad())
        return per[method]
