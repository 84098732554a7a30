"""The one random-number module: seed policy and noise schemes of every engine.

**Seed policy** (:func:`resolve_seed`): ``simulate``, ``mcmc.langevin``, the score samplers and sweeps accept an
``int`` (>= 0), a :class:`numpy.random.SeedSequence`, a :class:`numpy.random.Generator` (128 bits of entropy are
drawn from it) or ``None`` (fresh OS entropy). Each becomes a :class:`Seed` ``(entropy, spawn_key)``; that record
is stored in results and files and reproduces the run bit for bit. 128-bit entropy is kept exactly (as a Python
int; files store it as a decimal string).

**Noise scheme v2** (the default, ``"philox4x32-10-boxmuller-v2"``): counter-based. The standard normal used at
step ``k`` for path ``i`` and noise component ``j`` of an ``m``-component noise is a pure function of
``(seed, lane, k, i * m + j)``:

* the Philox4x32-10 key is ``SeedSequence(entropy, spawn_key).generate_state(2, uint32)``;
* flat indices ``f = i * m + j`` are paired, ``q = f // 2``, and pair ``q`` at step ``k`` in ``lane`` uses the
  counter ``(q mod 2^32, q div 2^32 + lane * 2^16, k mod 2^32, k div 2^32)``;
* the four output words give two 52-bit uniforms ``u`` in (0, 1] and ``v`` in [0, 1), and the Box–Muller pair
  ``sqrt(-2 log u) (cos 2 pi v, sin 2 pi v)`` is ``(z_{2q}, z_{2q+1})``, with the branch-free math of
  :mod:`sde_toolkit._vmath`.

Lanes separate independent uses of one seed: :data:`LANE_NOISE` (Brownian increments), :data:`LANE_UNIFORM`
(Metropolis acceptance: one 52-bit uniform per path and step, pairs of paths share a counter),
:data:`LANE_INIT` (initial draws such as BAOAB momenta). So a path's noise depends neither on the ensemble size,
nor on chunking or the thread count: the first ``k`` paths of an ``n``-path run equal a ``k``-path run, and a run
resumed at step ``k`` needs no skipping. Paths ``< 2^48`` times ``m``, steps ``< 2^64``.

**Noise scheme v1** (``"pcg64-chunk4096-block256-v1"``, files written before v2): paths cut into chunks of 4096,
steps into blocks of 256; chunk ``c`` in block ``b`` draws from ``Generator(PCG64(SeedSequence(entropy,
spawn_key=(c, b))))``, each step ``chunk_size * m`` normals in (path, component) order. It is kept so that old
files resume exactly and can still be written (``simulate(..., noise="v1")``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._jit import jit
from ._vmath import ONE_BITS, bits_f64, log_pos, sincos_octant, small_uint_f64

__all__ = [
    "Seed",
    "resolve_seed",
    "NOISE_V2",
    "NOISE_V1",
    "NOISE_SCHEMES",
    "parse_scheme",
    "LANE_NOISE",
    "LANE_UNIFORM",
    "LANE_INIT",
    "philox4x32",
    "fill_normals",
    "fill_uniforms",
    "normals",
    "uniforms",
    "legacy_generator",
    "LEGACY_CHUNK",
    "LEGACY_BLOCK",
]

NOISE_V2 = "philox4x32-10-boxmuller-v2"
LEGACY_CHUNK = 4096
LEGACY_BLOCK = 256
NOISE_V1 = f"pcg64-chunk{LEGACY_CHUNK}-block{LEGACY_BLOCK}-v1"
NOISE_SCHEMES = (NOISE_V2, NOISE_V1)
_ALIASES = {"v2": NOISE_V2, "v1": NOISE_V1, "philox": NOISE_V2, "pcg64": NOISE_V1}

LANE_NOISE = 0
LANE_UNIFORM = 1
LANE_INIT = 2


# ------------------------------------------------------------------------------------------------ seed policy
@dataclass(frozen=True)
class Seed:
    """A resolved root seed: ``SeedSequence(entropy, spawn_key=spawn_key)`` reproduces every stream."""

    entropy: int
    spawn_key: tuple[int, ...] = ()

    def sequence(self, *extra: int) -> np.random.SeedSequence:
        return np.random.SeedSequence(self.entropy, spawn_key=self.spawn_key + tuple(int(e) for e in extra))

    def key(self) -> tuple[int, int]:
        """The Philox4x32 key (two uint32 words as ints) of noise scheme v2."""
        k = self.sequence().generate_state(2, np.uint32)
        return int(k[0]), int(k[1])

    def child(self, *extra: int) -> Seed:
        """An independent seed for a sub-task (e.g. a noise level, a sweep shard), fixed by ``extra``."""
        return Seed(self.entropy, self.spawn_key + tuple(int(e) for e in extra))

    def generator(self, *extra: int) -> np.random.Generator:
        """A NumPy generator for draws outside the integrators (initial states, bootstrap, data sets)."""
        return np.random.Generator(np.random.PCG64(self.sequence(*extra)))

    def to_json(self) -> dict:
        """``{"entropy": "<decimal>", "spawn_key": [...]}``: exact for 128-bit entropy."""
        return {"entropy": str(self.entropy), "spawn_key": list(self.spawn_key)}

    @classmethod
    def from_json(cls, d) -> Seed:
        if isinstance(d, (int, np.integer)):
            return cls(int(d))
        if isinstance(d, str):
            return cls(int(d))
        return cls(int(d["entropy"]), tuple(int(v) for v in d.get("spawn_key", ())))

    def __int__(self) -> int:
        return self.entropy


def resolve_seed(seed) -> Seed:
    """The one seed policy: ``int >= 0``, ``SeedSequence``, ``Generator``, :class:`Seed` (or its stored dict form,
    e.g. a run's ``meta["seed"]``) or ``None`` -> :class:`Seed`.

    ``None`` draws fresh OS entropy (128 bits), recorded in the result so the run can be redone exactly. A
    ``Generator`` is advanced by 128 bits (the draw is the seed). Raises ``TypeError``/``ValueError`` otherwise.
    """
    if seed is None:
        seed = np.random.SeedSequence()  # fresh OS entropy (an int), resolved below like any SeedSequence
    if isinstance(seed, Seed):
        return seed
    if isinstance(seed, dict) and "entropy" in seed:  # the stored form (Seed.to_json, a run's meta["seed"])
        s = Seed.from_json(seed)
        if s.entropy < 0:
            raise ValueError(f"seed entropy must be >= 0, got {s.entropy}")
        return s
    if isinstance(seed, np.random.SeedSequence):
        ent = seed.entropy
        if not isinstance(ent, (int, np.integer)):
            # a SeedSequence built from a list of ints: fold it into one integer exactly (base 2^32 digits)
            words = [int(w) for w in np.atleast_1d(np.asarray(ent))]
            ent = sum(w << (32 * i) for i, w in enumerate(words))
        return Seed(int(ent), tuple(int(k) for k in seed.spawn_key))
    if isinstance(seed, np.random.Generator):
        hi, lo = (int(v) for v in seed.integers(0, 2**64, size=2, dtype=np.uint64))
        return Seed((hi << 64) | lo)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}")
        return Seed(int(seed))
    raise TypeError(f"seed must be a non-negative int, a numpy SeedSequence or Generator, or None; "
                    f"got {type(seed).__name__}")


def parse_scheme(name: str | None) -> str:
    """The canonical noise-scheme name (``None`` -> the default v2); ``ValueError`` for unknown schemes."""
    if name is None:
        return NOISE_V2
    name = _ALIASES.get(name, name)
    if name not in NOISE_SCHEMES:
        raise ValueError(f"unknown noise scheme {name!r}; this version knows {NOISE_SCHEMES} (aliases 'v1', 'v2')")
    return name


# ------------------------------------------------------------------------------------------------ Philox4x32-10
@jit(inline="always")
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 (Salmon et al. 2011) on one counter ``(c0..c3)`` with key ``(k0, k1)``; all uint32 values
    held in uint64. Returns the four output words (uint64 < 2^32). Known-answer vectors: tests/test_random.py."""
    m32 = np.uint64(0xFFFFFFFF)
    x0, x1, x2, x3 = np.uint64(c0), np.uint64(c1), np.uint64(c2), np.uint64(c3)
    a, b = np.uint64(k0), np.uint64(k1)
    # ten rounds written out: a loop here would be the innermost loop and stop LLVM from vectorizing callers
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    a, b = (a + np.uint64(0x9E3779B9)) & m32, (b + np.uint64(0xBB67AE85)) & m32
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    a, b = (a + np.uint64(0x9E3779B9)) & m32, (b + np.uint64(0xBB67AE85)) & m32
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    a, b = (a + np.uint64(0x9E3779B9)) & m32, (b + np.uint64(0xBB67AE85)) & m32
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    a, b = (a + np.uint64(0x9E3779B9)) & m32, (b + np.uint64(0xBB67AE85)) & m32
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    a, b = (a + np.uint64(0x9E3779B9)) & m32, (b + np.uint64(0xBB67AE85)) & m32
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    a, b = (a + np.uint64(0x9E3779B9)) & m32, (b + np.uint64(0xBB67AE85)) & m32
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    a, b = (a + np.uint64(0x9E3779B9)) & m32, (b + np.uint64(0xBB67AE85)) & m32
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    a, b = (a + np.uint64(0x9E3779B9)) & m32, (b + np.uint64(0xBB67AE85)) & m32
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    a, b = (a + np.uint64(0x9E3779B9)) & m32, (b + np.uint64(0xBB67AE85)) & m32
    p0, p1 = x0 * np.uint64(0xD2511F53), x2 * np.uint64(0xCD9E8D57)
    x0, x1, x2, x3 = ((p1 >> np.uint64(32)) ^ x1 ^ a) & m32, p1 & m32, ((p0 >> np.uint64(32)) ^ x3 ^ b) & m32, p0 & m32
    return x0, x1, x2, x3


@jit(inline="always")
def _pair(q, lane, step, k0, k1):
    """The Box–Muller pair of counter pair ``q`` at ``step`` in ``lane`` (see the module docstring)."""
    w0, w1, w2, w3 = philox4x32(q & np.uint64(0xFFFFFFFF), (q >> np.uint64(32)) | (lane << np.uint64(16)),
                                step & np.uint64(0xFFFFFFFF), step >> np.uint64(32), k0, k1)
    # u in (0, 1]: 2 - m with m in [1, 2) from 52 bits (exact); v: octant (3 bits) and a 49-bit fraction
    m = bits_f64(np.uint64(ONE_BITS) | (w0 << np.uint64(20)) | (w1 >> np.uint64(12)))
    u = 2.0 - m
    octant = np.int64(w2 >> np.uint64(29))
    frac = small_uint_f64(((w2 & np.uint64(0x1FFFFFFF)) << np.uint64(20)) | (w3 >> np.uint64(12))) * (1.0 / 562949953421312.0)
    r = math.sqrt(-2.0 * log_pos(u))
    c, s = sincos_octant(octant, frac)
    return r * c, r * s


@jit(cache=True)
def _pair_called(q, lane, step, k0, k1):
    """:func:`_pair` as a called (not inlined) function, for the at most two half pairs at a fill's edges: one
    more inlined copy of the Philox rounds and the full-domain sincos costs about a second of compile time."""
    return _pair(q, lane, step, k0, k1)


def _fill_normals(k0, k1, lane, step, f0, count, out):
    """``out[0:count]`` = standard normals of flat indices ``f0 .. f0 + count - 1`` at ``step`` (scheme v2).

    ``k0, k1, lane, step, f0`` are uint64; ``out`` a float64 array of length >= ``count``.
    """
    if count <= 0:
        return
    one = np.uint64(1)
    q0 = f0 >> one
    off = 0
    if f0 & one:  # the first index is the second half of its pair
        _, b = _pair_called(q0, lane, step, k0, k1)
        out[0] = b
        q0 += one
        off = 1
    full = (count - off) // 2
    for j in range(full):  # the vectorized body: whole pairs
        a, b = _pair(q0 + np.uint64(j), lane, step, k0, k1)
        out[off + 2 * j] = a
        out[off + 2 * j + 1] = b
    if off + 2 * full < count:  # a last half pair
        a, _ = _pair_called(q0 + np.uint64(full), lane, step, k0, k1)
        out[count - 1] = a


def _fill_uniforms(k0, k1, lane, step, p0, count, out):
    """``out[0:count]`` = uniforms in (0, 1) of paths ``p0 .. p0 + count - 1`` at ``step`` (52 bits, scheme v2).

    Paths ``2q`` and ``2q + 1`` share counter ``q``: words 0-1 and 2-3 give their uniforms.
    """
    one = np.uint64(1)
    scale = 1.0 / 4503599627370496.0  # 2^-52
    for j in range(count):
        p = p0 + np.uint64(j)
        q = p >> one
        w0, w1, w2, w3 = philox4x32(q & np.uint64(0xFFFFFFFF), (q >> np.uint64(32)) | (lane << np.uint64(16)),
                                    step & np.uint64(0xFFFFFFFF), step >> np.uint64(32), k0, k1)
        hi = w2 if (p & one) else w0
        lo = w3 if (p & one) else w1
        out[j] = (small_uint_f64((hi << np.uint64(20)) | (lo >> np.uint64(12))) + 0.5) * scale


# Compiled once, cached on disk, and *called* (not inlined) by the drivers' kernels: one call fills a whole chunk
# of normals, so the call costs nothing, and the kernels stay small enough to compile in about a second.
fill_normals = jit(_fill_normals, cache=True)
fill_uniforms = jit(_fill_uniforms, cache=True)


@jit(cache=True)
def _normals_block(k0, k1, lane, step0, n_steps, f0, count, out):
    for s in range(n_steps):
        fill_normals(k0, k1, lane, step0 + np.uint64(s), f0, count, out[s])


@jit(cache=True)
def _uniforms_block(k0, k1, lane, step0, n_steps, p0, count, out):
    for s in range(n_steps):
        fill_uniforms(k0, k1, lane, step0 + np.uint64(s), p0, count, out[s])


def _u64(v) -> np.uint64:
    return np.uint64(int(v))


def normals(seed: Seed, steps, paths, m: int, lane: int = LANE_NOISE) -> np.ndarray:
    """Standard normals ``(len(steps), len(paths), m)`` of scheme v2 for a contiguous step range and path range.

    ``steps`` and ``paths`` are ``range`` objects (``range(k0, k1)``, ``range(i0, i1)``).
    """
    k0, k1 = seed.key()
    steps, paths = range(steps.start, steps.stop), range(paths.start, paths.stop)
    out = np.empty((len(steps), len(paths) * m))
    if out.size:
        _normals_block(_u64(k0), _u64(k1), _u64(lane), _u64(steps.start), len(steps), _u64(paths.start * m),
                       len(paths) * m, out)
    return out.reshape(len(steps), len(paths), m)


def uniforms(seed: Seed, steps, paths, lane: int = LANE_UNIFORM) -> np.ndarray:
    """Uniforms ``(len(steps), len(paths))`` in (0, 1) of scheme v2 (the Metropolis lane by default)."""
    k0, k1 = seed.key()
    out = np.empty((len(steps), len(paths)))
    if out.size:
        _uniforms_block(_u64(k0), _u64(k1), _u64(lane), _u64(steps.start), len(steps), _u64(paths.start),
                        len(paths), out)
    return out


# ------------------------------------------------------------------------------------------------ legacy v1
def legacy_generator(seed: Seed, chunk: int, block: int) -> np.random.Generator:
    """The PCG64 stream of path chunk ``chunk`` in step block ``block`` (noise scheme v1)."""
    return np.random.Generator(np.random.PCG64(seed.sequence(chunk, block)))
