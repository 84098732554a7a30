"""Per-chain-block random streams: a seed fixes every draw, whatever the thread count.

Chains are cut into fixed blocks of :data:`CHAIN_BLOCK` chains; block ``b`` draws from its own
``Generator(PCG64(SeedSequence(entropy, spawn_key=(..., b))))``. A block is always run by one thread, so the
results depend on the seed and the block layout only, never on how blocks are scheduled. Numba's
``Generator.standard_normal()``/``random()`` reproduce NumPy's stream, so the fused kernels and the batched
NumPy path draw identical numbers.
"""

from __future__ import annotations

import numpy as np
from numpy.random import PCG64, Generator, SeedSequence

CHAIN_BLOCK = 64


def seed_sequence(seed) -> SeedSequence:
    """A ``SeedSequence`` from ``None`` (fresh entropy), an int or a ``SeedSequence``."""
    if isinstance(seed, SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        raise TypeError("seed must be an int, None or a numpy SeedSequence (not a Generator: streams are spawned per block)")
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
    return SeedSequence(seed)


class BlockStreams:
    """One ``Generator`` per block of :data:`CHAIN_BLOCK` chains.

    Args:
        seed: ``None``, a non-negative int or a ``SeedSequence``; the root entropy is kept in ``entropy``.
        n_chains: number of chains.
        salt: extra spawn-key component, so that independent uses of one seed (e.g. noise levels) differ.
    """

    def __init__(self, seed, n_chains: int, salt: tuple = ()):
        ss = seed_sequence(seed)
        self.entropy = ss.entropy
        self.n_chains = int(n_chains)
        starts = list(range(0, self.n_chains, CHAIN_BLOCK))
        self.blocks = [(s, min(s + CHAIN_BLOCK, self.n_chains)) for s in starts]
        key = tuple(ss.spawn_key) + tuple(salt)
        self.generators = [
            Generator(PCG64(SeedSequence(ss.entropy, spawn_key=key + (b,)))) for b in range(len(self.blocks))
        ]

    def standard_normal(self, dim: int) -> np.ndarray:
        """``(n_chains, dim)`` standard normals; block ``b`` fills rows ``blocks[b]`` in C order."""
        return np.concatenate([g.standard_normal((c1 - c0, dim)) for g, (c0, c1) in zip(self.generators, self.blocks)])

    def random(self) -> np.ndarray:
        """``(n_chains,)`` uniforms on ``[0, 1)``, block by block."""
        return np.concatenate([g.random(c1 - c0) for g, (c0, c1) in zip(self.generators, self.blocks)])
