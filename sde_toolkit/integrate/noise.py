"""Random streams of the integrators.

Contract: the standard normal ``z[k, i, j]`` used at step ``k`` by path ``i`` for noise component ``j`` is a
deterministic function of ``(seed, k, i, j)`` and of the size of path ``i``'s chunk
(``min(CHUNK, n_paths - CHUNK * (i // CHUNK))``); it does not depend on the thread count, on how the driver
schedules chunks, ``save_every``, the driver (fused or batched), or whether the run was resumed from a file.
(So the first ``CHUNK`` paths of runs with at least ``CHUNK`` paths coincide, but a run of 500 paths is not
the prefix of a run of 1000: a partial chunk interleaves its draws by its own size.)

How: paths are cut into fixed chunks of ``CHUNK`` paths and steps into fixed blocks of ``BLOCK`` steps. Chunk
``c`` in block ``b`` draws from its own ``Generator(PCG64(SeedSequence(seed, spawn_key=(c, b))))``, at each step
``chunk_size * noise_dim`` normals in row-major (path, component) order. Numba's ``Generator.standard_normal``
reproduces NumPy's stream exactly, so the fused (Numba) and batched (NumPy) drivers consume identical numbers.
A resumed run re-creates the block's generators and discards the draws of the steps already done.
The cost (one generator per chunk per block, about 20 us each) is negligible next to a block's
``CHUNK * BLOCK`` draws.
"""

from __future__ import annotations

import numpy as np

CHUNK = 4096
BLOCK = 256
SCHEME_VERSION = 1  # recorded in output files; bump when the mapping (seed, k, i, j) -> z changes


def resolve_seed(seed) -> int:
    """An integer root seed; ``None`` draws fresh OS entropy (recorded in the output so the run can be redone)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(seed, (np.integer, int)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        return int(seed)
    raise TypeError(f"seed must be a non-negative integer or None, got {type(seed).__name__}")


def chunk_bounds(n_paths: int) -> list[tuple[int, int]]:
    return [(a, min(a + CHUNK, n_paths)) for a in range(0, n_paths, CHUNK)]


def generator(seed: int, chunk: int, block: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(chunk, block))))


def block_generators(seed: int, n_chunks: int, block: int) -> list[np.random.Generator]:
    return [generator(seed, c, block) for c in range(n_chunks)]


def brownian_increments(seed, n_steps: int, n_paths: int, noise_dim: int, dt: float) -> np.ndarray:
    """The Brownian increments ``dW`` (shape ``(n_steps, n_paths, noise_dim)``) that ``simulate`` would draw
    with this seed and step ``dt`` — handy for common-random-number tests and coarse-graining."""
    seed = resolve_seed(seed)
    bounds = chunk_bounds(n_paths)
    out = np.empty((n_steps, n_paths, noise_dim))
    sq = np.sqrt(abs(dt))
    for b0 in range(0, n_steps, BLOCK):
        gens = block_generators(seed, len(bounds), b0 // BLOCK)
        for k in range(b0, min(b0 + BLOCK, n_steps)):
            for c, (a, e) in enumerate(bounds):
                out[k, a:e] = sq * gens[c].standard_normal((e - a, noise_dim))
    return out
