"""Brownian increments of the integrators' noise schemes (the schemes themselves live in
:mod:`sde_toolkit._random`, the one random-number module).

``brownian_increments(seed, n_steps, n_paths, n_normals, dt)`` returns exactly the increments ``dW`` that
``simulate`` draws for a method with ``n_normals`` normals per path and step (``noise_dim`` for Euler–Maruyama),
for common-random-number tests and coarse-graining.
"""

from __future__ import annotations

import numpy as np

from .. import _random as R

SCHEME_V2 = R.NOISE_V2
SCHEME_V1 = R.NOISE_V1


def brownian_increments(seed, n_steps: int, n_paths: int, noise_dim: int, dt: float, noise: str | None = None
                        ) -> np.ndarray:
    """The increments ``dW = sqrt(|dt|) z`` ``(n_steps, n_paths, noise_dim)`` that ``simulate`` would draw with
    this seed, step ``dt`` and noise scheme (default v2)."""
    scheme = R.parse_scheme(noise)
    seed = R.resolve_seed(seed)
    sq = np.sqrt(abs(dt))
    if scheme == R.NOISE_V2:
        return sq * R.normals(seed, range(0, int(n_steps)), range(0, int(n_paths)), int(noise_dim))
    bounds = [(a, min(a + R.LEGACY_CHUNK, n_paths)) for a in range(0, n_paths, R.LEGACY_CHUNK)]
    out = np.empty((n_steps, n_paths, noise_dim))
    for b0 in range(0, n_steps, R.LEGACY_BLOCK):
        gens = [R.legacy_generator(seed, c, b0 // R.LEGACY_BLOCK) for c in range(len(bounds))]
        for k in range(b0, min(b0 + R.LEGACY_BLOCK, n_steps)):
            for c, (a, e) in enumerate(bounds):
                out[k, a:e] = sq * gens[c].standard_normal((e - a, noise_dim))
    return out
