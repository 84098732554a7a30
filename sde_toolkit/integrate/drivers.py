"""The two drivers: fused Numba (per chunk of paths, on a thread pool of nogil kernels) and batched NumPy.

Both implement the same step formulas with the same operation order (signed step ``h``,
``dW = sqrt(|h|) z``):

* Euler–Maruyama: ``x + f h + g dW`` (diagonal), ``x + f h + g dW_0`` (scalar), ``x + f h + G dW`` (general).
* Milstein (diagonal): EM ``+ 0.5 g g' (dW^2 - |h|)``.
* exact / BAOAB: the model's transition or splitting kernel fed with ``z``.
* Heun (ODEs): ``x + h/2 (f(x, t) + f(x + h f(x, t), t + h))``.

A kernel advances one chunk over steps ``[k_a, k_b)`` (one noise block at most), writes the frames whose step is a
multiple of ``save_every`` (and the last step) into a frame buffer, and stops at the first step at which a
state is non-finite or exceeds ``max_abs``, returning that step (else -1).
"""

from __future__ import annotations

import math
import weakref

import numpy as np

from .._jit import jit

EM, MILSTEIN, EXACT, SPLIT, HEUN = 0, 1, 2, 3, 4
METHOD_CODES = {"euler_maruyama": EM, "milstein": MILSTEIN, "exact": EXACT, "baoab": SPLIT, "heun": HEUN}
NOISE_CODES = {"diagonal": 0, "scalar": 1, "general": 2}

_KERNELS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def fused_kernel(sde, method: str, h: float):
    """Compile (once per SDE object, method and step) the chunk kernel of the fused driver."""
    per_sde = _KERNELS.setdefault(sde, {})
    key = (method, h if method in ("exact", "baoab") else None)
    if key not in per_sde:
        per_sde[key] = _build_kernel(sde, method, h)
    return per_sde[key]


def _build_kernel(sde, method: str, h_fixed: float):
    face = sde.numba_face()
    drift = face.drift
    diff = face.diffusion
    dim = sde.dim
    m = sde.noise_dim
    ncode = NOISE_CODES[sde.noise_type]
    mcode = METHOD_CODES[method]
    gdx = face.diffusion_dx if face.diffusion_dx is not None else diff
    if mcode == EXACT:
        special = face.exact_step(h_fixed)
    elif mcode == SPLIT:
        special = face.splitting_step(h_fixed)
    else:
        special = diff  # unused placeholder of a compatible type
    general = ncode == 2
    draws = 0 if mcode == HEUN else m

    def kernel(x, k_a, k_b, t0, h, t_last, n_steps, gen, inc, use_inc, save_every, frames, frame0, max_abs, bad):
        n = x.shape[0]
        sqh = math.sqrt(abs(h))
        f = np.empty(dim)
        f2 = np.empty(dim)
        xp = np.empty(dim)
        xn = np.empty(dim)
        if general:
            g = np.empty((dim, m))
        else:
            g = np.empty(dim)
        gp = np.empty(dim)
        z = np.empty((n, max(draws, 1)))
        dw = np.empty(max(m, 1))
        for k in range(k_a, k_b):
            t = t0 + k * h
            t_next = t_last if k + 1 == n_steps else t0 + (k + 1) * h
            if draws > 0:
                if use_inc:
                    for i in range(n):
                        for j in range(m):
                            z[i, j] = inc[k - k_a, i, j]
                else:
                    for i in range(n):
                        for j in range(m):
                            z[i, j] = gen.standard_normal()
            n_bad = 0
            for i in range(n):
                xi = x[i]
                if mcode == EM or mcode == MILSTEIN:
                    drift(xi, t, f)
                    diff(xi, t, g)
                    for j in range(m):
                        dw[j] = z[i, j] if use_inc else sqh * z[i, j]
                    if general:
                        for r in range(dim):
                            acc = 0.0
                            for j in range(m):
                                acc += g[r, j] * dw[j]
                            xn[r] = xi[r] + f[r] * h + acc
                    elif ncode == 1:
                        for r in range(dim):
                            xn[r] = xi[r] + f[r] * h + g[r] * dw[0]
                    else:
                        for r in range(dim):
                            xn[r] = xi[r] + f[r] * h + g[r] * dw[r]
                        if mcode == MILSTEIN:
                            gdx(xi, t, gp)
                            for r in range(dim):
                                xn[r] += 0.5 * g[r] * gp[r] * (dw[r] * dw[r] - abs(h))
                elif mcode == EXACT or mcode == SPLIT:
                    if use_inc:
                        for j in range(m):
                            dw[j] = z[i, j] / sqh
                    else:
                        for j in range(m):
                            dw[j] = z[i, j]
                    special(xi, t, dw, xn)
                else:  # HEUN
                    drift(xi, t, f)
                    for r in range(dim):
                        xp[r] = xi[r] + h * f[r]
                    drift(xp, t_next, f2)
                    for r in range(dim):
                        xn[r] = xi[r] + 0.5 * h * (f[r] + f2[r])
                ok = True
                for r in range(dim):
                    v = xn[r]
                    if not (abs(v) <= max_abs):  # False for NaN and inf
                        ok = False
                    xi[r] = v
                if not ok:
                    bad[i] = True
                    n_bad += 1
            if n_bad > 0:
                return k + 1
            kk = k + 1
            if kk % save_every == 0 or kk == n_steps:
                if kk % save_every == 0:
                    fi = (kk - frame0) // save_every - 1
                else:
                    fi = frames.shape[0] - 1
                for i in range(n):
                    for r in range(dim):
                        frames[fi, i, r] = x[i, r]
        return -1

    return jit(kernel)


def batched_step(sde, method: str, x: np.ndarray, t: float, h: float, t_next: float, dw: np.ndarray | None,
                 z: np.ndarray | None) -> np.ndarray:
    """One step of the batched (NumPy) driver on the whole ensemble; mirrors the fused kernel's formulas."""
    if method in ("euler_maruyama", "milstein"):
        f = np.asarray(sde.drift(x, t), dtype=np.float64)
        g = np.asarray(sde.diffusion(x, t), dtype=np.float64)
        if sde.noise_type == "general":
            xn = x + f * h + np.einsum("nij,nj->ni", g, dw)
        elif sde.noise_type == "scalar":
            xn = x + f * h + g * dw[:, :1]
        else:
            xn = x + f * h + g * dw
            if method == "milstein":
                gp = np.asarray(sde.diffusion_dx(x, t), dtype=np.float64)
                xn = xn + 0.5 * g * gp * (dw * dw - abs(h))
        return xn
    if method == "exact":
        return sde.exact_step(x, t, h, z)
    if method == "baoab":
        return sde.splitting_step(x, t, h, z)
    if method == "heun":
        f = np.asarray(sde.drift(x, t), dtype=np.float64)
        xp = x + h * f
        f2 = np.asarray(sde.drift(xp, t_next), dtype=np.float64)
        return x + 0.5 * h * (f + f2)
    raise ValueError(f"unknown method {method!r}")
