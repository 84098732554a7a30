"""Transcendental kernels that LLVM can vectorize (no libm calls inside the loops that use them).

Numba compiles ``math.exp``/``math.sin``/... to scalar libm calls, which LLVM cannot vectorize (and llvmlite from
PyPI has no SVML). These kernels are range reduction plus polynomials, with selects instead of branches and bit
casts between ``float64`` and ``uint64`` (:func:`f64_bits`, :func:`bits_f64`, free in LLVM), so that a loop
calling them vectorizes (``<8 x double>`` with AVX-512, ``<4 x double>`` with AVX2).

Two groups:

* :func:`log_pos` and :func:`sincos_octant`, the math of the noise transform in :mod:`sde_toolkit._random`
  (Box–Muller), whose output they fix bit for bit: changing them changes the random numbers of noise scheme v2
  and needs a new scheme version. ``log_pos`` is within 2 ulp on normal positive doubles, ``sincos_octant``
  within 2 ulp of ``cos``/``sin`` of ``2 pi v``.
* full-domain :func:`exp`, :func:`log`, :func:`sin`, :func:`cos`, :func:`sincos`, :func:`tanh` and :func:`pow`
  for the models' Numba faces (``ExpressionPotential`` routes its functions here): zeros, subnormals, huge
  arguments, infinities and NaN as NumPy; within 1 ulp of the correctly rounded result (``tests/test_vmath.py``
  checks them against NumPy, within 2 ulp, on 1e7 points per function; the table of measured errors is in the
  test module's docstring).

Every function is plain Python over NumPy scalars when ``NUMBA_DISABLE_JIT=1`` (then the bit casts go through
``numpy`` views), so jitted and pure-Python runs agree exactly.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import types
from numba.extending import intrinsic

from ._jit import jit, numba_config

LN2 = 0.6931471805599453
SQRT2 = 1.4142135623730951
PI_4 = 0.7853981633974483
MANTISSA = 0x000FFFFFFFFFFFFF
ONE_BITS = 0x3FF0000000000000

if numba_config.DISABLE_JIT:  # pure Python: the same bit casts through NumPy scalar views

    def f64_bits(x):
        return np.float64(x).view(np.uint64)

    def bits_f64(b):
        return np.uint64(b).view(np.float64)

else:

    @intrinsic
    def f64_bits(typingctx, x):
        """The IEEE-754 bits of a float64 as uint64 (an LLVM bitcast: no instruction)."""
        sig = types.uint64(types.float64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.uint64))

        return sig, codegen

    @intrinsic
    def bits_f64(typingctx, b):
        """The float64 whose IEEE-754 bits are ``b`` (uint64)."""
        sig = types.float64(types.uint64)

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(types.float64))

        return sig, codegen


TWO52_BITS = 0x4330000000000000  # 2^52


@jit(inline="always")
def small_uint_f64(k):
    """``float(k)`` for a uint64 ``k < 2^52``, exactly, by bits (``2^52 + k`` has ``k`` as its mantissa)."""
    return bits_f64(np.uint64(TWO52_BITS) | k) - 4503599627370496.0


# 2 atanh(s) = log((1 + s) / (1 - s)) = 2 s (1 + s^2/3 + s^4/5 + ...); |s| <= 3 - 2 sqrt(2) = 0.1716 after the
# reduction to [sqrt(1/2), sqrt(2)), so s^2 <= 0.0295 and the series to s^20 leaves < 1e-18 relative error.
@jit(inline="always")
def log_pos(x):
    """``log(x)`` for a positive normal float64 (no subnormals, inf or NaN: the callers guarantee that)."""
    b = f64_bits(x)
    f = bits_f64((b & np.uint64(MANTISSA)) | np.uint64(ONE_BITS))
    big = f > SQRT2
    f = 0.5 * f if big else f
    # the exponent as a float without an int-to-float conversion (AVX2 has none for 64-bit lanes, and one such
    # instruction keeps the whole noise loop scalar): 2^52 + k from the bits, minus 2^52, is k exactly
    ef = (small_uint_f64(b >> np.uint64(52)) - 1023.0) + (1.0 if big else 0.0)
    s = (f - 1.0) / (f + 1.0)
    z = s * s
    p = 1.0 / 21.0
    p = p * z + 1.0 / 19.0
    p = p * z + 1.0 / 17.0
    p = p * z + 1.0 / 15.0
    p = p * z + 1.0 / 13.0
    p = p * z + 1.0 / 11.0
    p = p * z + 1.0 / 9.0
    p = p * z + 1.0 / 7.0
    p = p * z + 1.0 / 5.0
    p = p * z + 1.0 / 3.0
    return 2.0 * s + 2.0 * s * (z * p) + ef * LN2


@jit(inline="always")
def _sin_poly(x):
    x2 = x * x
    return x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (
        1.0 / 362880.0 + x2 * (-1.0 / 39916800.0 + x2 * (1.0 / 6227020800.0 + x2 * (-1.0 / 1307674368000.0))))))))


@jit(inline="always")
def _cos_poly(x):
    x2 = x * x
    return 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (
        -1.0 / 3628800.0 + x2 * (1.0 / 479001600.0 + x2 * (-1.0 / 87178291200.0 + x2 * (
            1.0 / 20922789888000.0))))))))


@jit(inline="always")
def sincos_octant(octant, r):
    """``(cos a, sin a)`` for ``a = (octant + r) pi / 4``, ``octant`` in 0..7 (int64), ``r`` in [0, 1).

    The reduction is exact (the angle is given as octant and fraction), so only the polynomial on
    ``[0, pi/4]`` contributes error. Odd octants use the complementary angle, which keeps the argument small.
    """
    odd = (octant & 1) == 1
    x = (1.0 - r) * PI_4 if odd else r * PI_4
    s = _sin_poly(x)
    c = _cos_poly(x)
    swap = ((octant + 1) & 2) != 0  # octants 1, 2, 5, 6: sin and cos exchange roles
    cs = s if swap else c
    sn = c if swap else s
    cneg = (octant >= 2) & (octant <= 5)
    sneg = octant >= 4
    return (-cs if cneg else cs), (-sn if sneg else sn)


# ================================================================================================ full-domain kernels
# ``exp``, ``log``, ``sin``, ``cos``, ``sincos``, ``tanh`` and ``pow`` for every float64 (zeros, subnormals, huge
# arguments, infinities, NaN), each within 2 ulp of NumPy (``tests/test_vmath.py`` measures it on 1e7+ points per
# function). The polynomial coefficients are minimax fits in 60-digit arithmetic by
# ``experiments/diagnostics/vmath_coefficients.py`` (``--check`` compares them with the constants below).
#
# Rules that keep them vectorizable and exact:
# * no calls, and no branches but one: every special case is :func:`select` (an LLVM ``select``) on values
#   computed either way; the one real branch skips the Payne-Hanek reduction of huge sin/cos arguments in scalar
#   code (see :func:`_sincos_reduce`), and LLVM if-converts it in a vectorized loop;
# * no float-to-int conversion of a value that can be NaN or out of range (LLVM makes that poison): integers are
#   read from the bits of ``v + MAGIC`` (``MAGIC = 1.5 * 2^52`` rounds ``|v| < 2^51`` to an integer in the low
#   mantissa bits), and shifts are by amounts in 0..63;
# * no fused multiply-add and no reassociation (``fastmath`` is off project-wide), so the error-free transforms
#   (:func:`_two_sum`, :func:`_two_prod`) are exact and the results are the same on every machine.

if numba_config.DISABLE_JIT:

    def select(c, a, b):
        return a if c else b

else:

    @intrinsic
    def select(typingctx, c, a, b):
        """``a if c else b`` as one LLVM ``select`` (both operands are computed anyway): no branch in scalar code
        (a ternary becomes one, mispredicted on random data, unless LLVM turns it into a select itself)."""
        t = typingctx.unify_types(types.unliteral(a), types.unliteral(b))
        if t is None or not isinstance(types.unliteral(c), types.Boolean):
            return None
        sig = t(c, a, b)

        def codegen(context, builder, signature, args):
            cond = context.cast(builder, args[0], signature.args[0], types.boolean)
            x = context.cast(builder, args[1], signature.args[1], signature.return_type)
            y = context.cast(builder, args[2], signature.args[2], signature.return_type)
            return builder.select(cond, x, y)

        return sig, codegen


MAGIC = 6755399441055744.0  # 1.5 * 2^52
_MAGIC_BITS = 0x4338000000000000
SIGN = 0x8000000000000000
IMPLICIT = 0x0010000000000000
INF = float("inf")
NAN = float("nan")
TINY = 2.2250738585072014e-308  # the smallest normal float64
INV_LN2 = 1.4426950408889634
LN2_HI = 0.6931471805598903  # ln 2 to 42 bits: k * LN2_HI is exact for |k| < 2^11
LN2_LO = 5.497923018708371e-14
TWO_OVER_PI = 0.6366197723675814
# pi/2 = P1 + P2 + P3 + P4 (33, 33, 33 and 53 bits; error 7e-49): k * P1..P3 are exact for k < 2^20
PIO2_1 = 1.5707963267341256
PIO2_2 = 6.077100506303966e-11
PIO2_3 = 2.0222662487111665e-21
PIO2_4 = 8.4784276603689e-32
PIO2_HI = 1.5707963267948966  # pi/2 as a double-double
PIO2_LO = 6.123233995736766e-17
CODY_WAITE_MAX = 1048576.0  # 2^20: |x| below it is reduced by Cody-Waite, above by Payne-Hanek
TANH_SMALL = 0.4  # below it the odd polynomial, above it 1 - 2 / (exp(2|x|) + 1)
TANH_BIG = 20.0  # tanh(x) rounds to 1 above 19.06
_Y_CLAMP = 2.0**960

if numba_config.DISABLE_JIT:  # wrap-around uint64 products without NumPy's overflow warnings

    def _mullo(a, b):
        return np.uint64((int(a) * int(b)) & 0xFFFFFFFFFFFFFFFF)

    def _mulhi(a, b):
        return np.uint64((int(a) * int(b)) >> 64)

else:

    @jit(inline="always")
    def _mullo(a, b):
        return a * b

    @jit(inline="always")
    def _mulhi(a, b):
        """The high 64 bits of the 128-bit product of two uint64 (schoolbook on 32-bit halves)."""
        m32 = np.uint64(0xFFFFFFFF)
        s32 = np.uint64(32)
        ah, al = a >> s32, a & m32
        bh, bl = b >> s32, b & m32
        t = al * bl
        u = ah * bl + (t >> s32)
        v = al * bh + (u & m32)
        return ah * bh + (u >> s32) + (v >> s32)


@jit(inline="always")
def _two_sum(a, b):
    """``s + e == a + b`` exactly, ``s = fl(a + b)`` (Knuth, no condition on the magnitudes)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


@jit(inline="always")
def _fast_two_sum(a, b):
    """``s + e == a + b`` exactly when ``|a| >= |b|`` (or ``a == 0``)."""
    s = a + b
    return s, b - (s - a)


@jit(inline="always")
def _split(a):
    """Veltkamp's split: ``a == hi + lo`` with 26-bit ``hi`` and ``lo`` (``|a| < 2^996``)."""
    c = 134217729.0 * a  # 2^27 + 1
    hi = c - (c - a)
    return hi, a - hi


@jit(inline="always")
def _two_prod(a, b):
    """``p + e == a * b`` exactly, ``p = fl(a * b)`` (Dekker, without fused multiply-add)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


@jit(inline="always")
def _round_int(v):
    """``(round(v), round(v) as int64)`` for ``|v| < 2^51`` (garbage, never poison, otherwise)."""
    t = v + MAGIC
    return t - MAGIC, np.int64(f64_bits(t)) - np.int64(_MAGIC_BITS)


@jit(inline="always")
def _pow2(k):
    """``2.0 ** k`` for an int64 ``k`` in -1022..1023."""
    return bits_f64(np.uint64(k + 1023) << np.uint64(52))


# Polynomials by Estrin's scheme: the same operations as Horner's (plus the powers t^2, t^4, t^8), in a tree a
# few levels deep instead of a chain, so that scalar code (where the loop does not vectorize) overlaps them.
@jit(inline="always")
def _poly6(t, c):
    """``c[0] + c[1] t + ... + c[5] t^5``."""
    c0, c1, c2, c3, c4, c5 = c
    t2 = t * t
    return ((c0 + c1 * t) + t2 * (c2 + c3 * t)) + (t2 * t2) * (c4 + c5 * t)


@jit(inline="always")
def _poly7(t, c):
    """``c[0] + c[1] t + ... + c[6] t^6``."""
    c0, c1, c2, c3, c4, c5, c6 = c
    t2 = t * t
    return ((c0 + c1 * t) + t2 * (c2 + c3 * t)) + (t2 * t2) * ((c4 + c5 * t) + t2 * c6)


@jit(inline="always")
def _poly9(t, c):
    """``c[0] + c[1] t + ... + c[8] t^8``."""
    c0, c1, c2, c3, c4, c5, c6, c7, c8 = c
    t2 = t * t
    t4 = t2 * t2
    return (((c0 + c1 * t) + t2 * (c2 + c3 * t)) + t4 * ((c4 + c5 * t) + t2 * (c6 + c7 * t))) + (t4 * t4) * c8


@jit(inline="always")
def _poly11(t, c):
    """``c[0] + c[1] t + ... + c[10] t^10``."""
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10 = c
    t2 = t * t
    t4 = t2 * t2
    return ((((c0 + c1 * t) + t2 * (c2 + c3 * t)) + t4 * ((c4 + c5 * t) + t2 * (c6 + c7 * t)))
            + (t4 * t4) * ((c8 + c9 * t) + t2 * c10))


# ------------------------------------------------------------------------------------------------------------ exp
# EXP: exp(r) = 1 + r + r^2 E(r) on |r| <= ln2/2, relative error 2^-60.3 after rounding the coefficients
_EXP = (0.5, 0.16666666666666682, 0.041666666666666095, 0.008333333333317048, 0.001388888888911545,
    0.00019841269896350865, 2.480158692685201e-05, 2.7557234895545666e-06, 2.755758174804881e-07,
    2.51120248912833e-08, 2.082663568688412e-09)


@jit(inline="always")
def _exp_core(xh, xl):
    """``(yh, yl, s1, s2)`` with ``exp(xh + xl) = (yh + yl) s1 s2``: ``yh + yl`` (unrounded, in ``[0.7, 1.42]``;
    not normalized: ``yl`` holds the polynomial, up to 0.07)
    is ``exp(r)`` after ``xh + xl = k ln2 + r``, ``s1 s2 = 2^k`` in two normal factors (so that subnormal results
    are rounded once, by the last product). Arguments above 710 are clamped (the result overflows to inf),
    arguments below -746 give the parts of ``exp(0)`` (the callers select 0); a NaN passes through the
    floating-point part."""
    xc = select(xh > 710.0, 710.0, xh)  # overflows to inf in the last product
    xc = select(xh < -746.0, 0.0, xc)  # the result is 0, selected by the callers: no subnormal arithmetic
    kf, k = _round_int(xc * INV_LN2)  # |k| <= 1077
    t = xc - kf * LN2_HI  # exact (Sterbenz; k * LN2_HI is exact)
    d = xl - kf * LN2_LO
    r = t + d
    rl = (t - r) + d  # the rounding error of r (Fast2Sum; within 2^-100 when |t| < |d|)
    p = _poly11(r, _EXP)
    yh = 1.0 + r
    yl = ((1.0 - yh) + r) + ((r * r) * p + rl)  # (1 - yh) + r: the rounding error of yh, exactly
    k1 = k >> np.int64(1)
    return yh, yl, _pow2(k1), _pow2(k - k1)


@jit(inline="always")
def _exp_dd(xh, xl):
    """``exp(xh + xl)`` for a double-double argument (``|xl| <= ulp(xh)``)."""
    yh, yl, s1, s2 = _exp_core(xh, xl)
    # below -746 (and at -inf, as in an online log-sum-exp) 0 without an underflowing product, which costs a
    # microcode assist of ~100 cycles on x86
    return select(xh < -746.0, 0.0, ((yh + yl) * s1) * s2)


@jit(inline="always")
def exp(x):
    """``e**x`` for every float64: overflow to inf above 709.78, subnormal results and underflow to 0 below
    -745.13, ``exp(-inf) = 0``, NaN in, NaN out (within 0.6 ulp of the correctly rounded result)."""
    return _exp_dd(x, 0.0)


# ------------------------------------------------------------------------------------------------------------ log
# LOG: 2 atanh(s) = 2 s + s z R(z), z = s^2 <= (3 - 2 sqrt 2)^2; relative error 2^-58.9 after rounding
_LOG = (0.6666666666666734, 0.3999999999941468, 0.2857142874238752, 0.22222198573193147, 0.18183564325733798,
    0.15314050560753326, 0.14795949624115087)


@jit(inline="always")
def _log_reduce(x):
    """``(e, m)`` with ``x = 2^e (1 + m)``, ``1 + m`` in ``[sqrt(1/2), sqrt(2))`` (``m`` exact) for a positive
    finite ``x``, subnormals included (scaled by 2^52 first)."""
    sub = x < TINY
    xs = select(sub, x * 4503599627370496.0, x)  # 2^52
    b = f64_bits(xs)
    e = np.int64(b >> np.uint64(52)) - select(sub, np.int64(1023 + 52), np.int64(1023))
    f = bits_f64((b & np.uint64(MANTISSA)) | np.uint64(ONE_BITS))
    big = f > SQRT2
    f = select(big, 0.5 * f, f)
    e = select(big, e + 1, e)
    return float(e), f - 1.0


@jit(inline="always")
def log(x):
    """Natural logarithm for every float64: subnormals, ``log(0) = -inf``, ``log(x < 0) = nan``, ``log(inf) =
    inf``, NaN in, NaN out (within 1 ulp of the correctly rounded result)."""
    ef, m = _log_reduce(x)
    s = m / (2.0 + m)
    z = s * s
    R = z * _poly7(z, _LOG)
    hfsq = 0.5 * m * m
    # log(1 + m) = m - hfsq + s (hfsq + R) exactly (as 2 s = m - s m); the large part e ln2_hi + m is summed
    # without error, the small corrections after it
    hi, lo = _two_sum(ef * LN2_HI, m)
    y = hi + (lo - (hfsq - (s * (hfsq + R) + ef * LN2_LO)))
    y = select(x > 0.0, y, select(x == 0.0, -INF, NAN))
    return select(x == INF, INF, y)


# ------------------------------------------------------------------------------------------------- sin, cos, sincos
# SIN: sin(r) = r + r^3 S(r^2), COS: cos(r) = 1 - r^2/2 + r^4 C(r^2) on |r| <= pi/4 (relative errors 2^-56.4 and
# 2^-60.7 after rounding)
_SIN = (-0.1666666666666663, 0.008333333333322118, -0.00019841269829589533, 2.7557313621384503e-06,
    -2.505074776269347e-08, 1.589623014920052e-10)
_COS = (0.04166666666666665, -0.0013888888888882846, 2.4801587294633568e-05, -2.7557315740701314e-07,
    2.08758980815716e-09, -1.1368002354165404e-11)
# The bits of 2/pi, 64 per word, after one word of zeros: bit j (weight 2^-j) at position j + 63.
_TWO_OVER_PI_WORDS = (0x0, 0xa2f9836e4e441529, 0xfc2757d1f534ddc0, 0xdb6295993c439041, 0xfe5163abdebbc561,
    0xb7246e3a424dd2e0, 0x6492eea09d1921c, 0xfe1deb1cb129a73e, 0xe88235f52ebb4484, 0xe99c7026b45f7e41,
    0x3991d639835339f4, 0x9c845f8bbdf9283b, 0x1ff897ffde05980f, 0xef2f118b5a0a6d1f, 0x6d367ecf27cb09b7,
    0x4f463f669e5fea2d, 0x7527bac7ebe5f17b, 0x3d0739f78a5292ea, 0x6bfb5fb11f8d5d08, 0x56033046fc7b6bab)
def _payne_hanek_windows():
    """For each biased exponent ``E`` in 1013..2047 (row ``E - 1013``), the 192 bits of 2/pi from weight
    ``2^-(E - 1076)`` on: the first two 64-bit words, and the third as the float64 ``word * 2^-64`` (its leading 53
    bits are all the reduction needs), stored by its bits. Built from :data:`_TWO_OVER_PI_WORDS` at import."""
    big = 0
    for w in _TWO_OVER_PI_WORDS:
        big = (big << 64) | w
    nbits = 64 * len(_TWO_OVER_PI_WORDS)
    rows = []
    for pos in range(2047 - 1013 + 1):  # bit j of 2/pi sits at position j + 63 of ``big``
        window = (big >> (nbits - pos - 192)) & ((1 << 192) - 1)
        w0, w1, w2 = window >> 128, (window >> 64) & 0xFFFFFFFFFFFFFFFF, window & 0xFFFFFFFFFFFFFFFF
        rows.append((w0, w1, int(np.float64(float(w2) * 2.0**-64).view(np.uint64))))
    return np.array(rows, dtype=np.uint64)


_PH_WINDOWS = _payne_hanek_windows()


@jit(inline="always")
def _reduce_cody_waite(ax):
    """``(q, rh, rl)``: ``ax = k pi/2 + rh + rl``, ``q = k mod 4``, for ``0 <= ax < 2^20``: four parts of pi/2,
    the leading ones summed without error, so ``rh + rl`` carries ~106 bits even next to a multiple of pi/2."""
    kf, k = _round_int(ax * TWO_OVER_PI)
    t1 = ax - kf * PIO2_1  # exact
    h, l1 = _two_sum(t1, -(kf * PIO2_2))  # kf * PIO2_2, kf * PIO2_3: exact
    h2, l2 = _two_sum(h, -(kf * PIO2_3))
    lo = (l1 + l2) - kf * PIO2_4
    rh, rl = _fast_two_sum(h2, lo)
    return k & np.int64(3), rh, rl


@jit(inline="always")
def _payne_hanek_window(ax):
    """The row of :data:`_PH_WINDOWS` for ``ax`` (a valid row for every input: loads that can be hoisted)."""
    row = np.int64(f64_bits(ax) >> np.uint64(52)) - 1013
    row = select(row < 0, np.int64(0), row)  # ax < 2^-10 (or negative): unused
    row = select(row > 1034, np.int64(1034), row)
    return _PH_WINDOWS[row, 0], _PH_WINDOWS[row, 1], bits_f64(_PH_WINDOWS[row, 2])


@jit(inline="always")
def _reduce_payne_hanek(ax, w0, w1, w2f):
    """``(q, rh, rl)`` as :func:`_reduce_cody_waite`, for ``ax >= 2^-10`` up to the largest double (used above
    2^20), given ``ax``'s window of 2/pi (:func:`_payne_hanek_window`): ``ax * 2/pi mod 4`` in exact 64-bit integer
    arithmetic against a 192-bit window of the bits of 2/pi.

    ``ax = m 2^(E - 1075)`` with a 53-bit integer ``m``. Bits of 2/pi of weight above ``2^(E - 1077)`` multiply
    ``m`` into multiples of 4 (whole turns) and are skipped; the window ``V = (w0, w1, w2)`` (192 bits from there,
    one row of :data:`_PH_WINDOWS`) gives ``ax 2/pi mod 4 = (m V mod 2^192) 2^-190`` up to 2^-137. Of the low 192
    bits of ``m V`` only the top two words are formed, ``R2`` (2 bits of quadrant, then the fraction) and ``R1``;
    ``m w2`` enters ``R1`` through a float product, within a few units of its last bit (2^-124 of a quadrant)."""
    m = (f64_bits(ax) & np.uint64(MANTISSA)) | np.uint64(IMPLICIT)
    hi2 = np.uint64(np.int64(float(m) * w2f))  # ~ (m w2) >> 64, < 2^53
    lo1 = _mullo(m, w1)
    r1 = lo1 + hi2
    one = np.uint64(1)
    carry = select(r1 < lo1, one, np.uint64(0))
    r2 = _mullo(m, w0) + _mulhi(m, w1) + carry
    r2 = r2 + np.uint64(0x2000000000000000)  # + 1/2: round to the nearest quadrant
    q = np.int64(r2 >> np.uint64(62))
    f = np.int64(r2 & np.uint64(0x3FFFFFFFFFFFFFFF)) - np.int64(0x2000000000000000)  # in [-2^61, 2^61), 2^-62
    g = (f << np.int64(1)) | np.int64(r1 >> np.uint64(63))  # the fraction in units of 2^-63, |g| <= 2^62
    gh = float(g)
    gl = float(g - np.int64(gh)) + float(r1 & np.uint64(0x7FFFFFFFFFFFFFFF)) * 1.0842021724855044e-19  # 2^-63
    fh, fl = _fast_two_sum(gh * 1.0842021724855044e-19, gl * 1.0842021724855044e-19)  # the fraction of a turn/4
    p, pe = _two_prod(fh, PIO2_HI)
    rh, rl = _fast_two_sum(p, pe + (fh * PIO2_LO + fl * PIO2_HI))
    return q & np.int64(3), rh, rl


@jit(inline="always")
def _sincos_kernel(rh, rl):
    """``(sin r, cos r)`` for ``r = rh + rl``, ``|r| <= pi/4`` (plus rounding)."""
    z = rh * rh
    ps = _poly6(z, _SIN)
    pc = _poly6(z, _COS)
    hz = 0.5 * z
    sn = rh + (rh * (z * ps) + rl * (1.0 - hz))  # sin(rh + rl) = sin rh + rl cos rh
    w = 1.0 - hz
    cs = w + (((1.0 - w) - hz) + (z * (z * pc) - rh * rl))  # (1 - w) - hz: the rounding error of w, exactly
    return sn, cs


@jit(inline="always")
def _sincos_reduce(ax):
    """``(q, rh, rl)`` for ``ax >= 0``: Cody-Waite below 2^20, Payne-Hanek above.

    The one branch of these kernels: its loads are hoisted above it (every input has a valid table row), so what
    it guards is plain arithmetic, which LLVM's loop vectorizer if-converts (both sides computed, one selected:
    the same cost as writing the select) while scalar code skips the Payne-Hanek arithmetic (with a select it
    would cost twice the Cody-Waite path on every call)."""
    w0, w1, w2f = _payne_hanek_window(ax)
    if ax >= CODY_WAITE_MAX:  # NaN: Cody-Waite (garbage, replaced by NaN by the callers)
        return _reduce_payne_hanek(ax, w0, w1, w2f)
    return _reduce_cody_waite(ax)


@jit(inline="always")
def sincos(x):
    """``(sin x, cos x)`` for every float64 (each within 1 ulp of the correctly rounded result; inf and NaN give
    NaN). Cody-Waite reduction for ``|x| < 2^20``, exact Payne-Hanek reduction above."""
    ax = abs(x)
    q, rh, rl = _sincos_reduce(ax)
    return _sincos_finish(x, ax, q, rh, rl)


@jit(inline="always")
def sincos_cw(x):
    """:func:`sincos` for ``|x| < 2^20`` only, with the same bits there (the Cody-Waite branch alone: no table
    and no uint64 arithmetic, so a loop calling it vectorizes on AVX2 hosts too, where the full one stays
    scalar). Garbage beyond: callers check :func:`cw_out` and fall back to :func:`sincos` (the generated block
    kernels of expression potentials rerun the block)."""
    ax = abs(x)
    q, rh, rl = _reduce_cody_waite(select(ax < CODY_WAITE_MAX, ax, 0.0))
    return _sincos_finish(x, ax, q, rh, rl)


@jit(inline="always")
def cw_out(x):
    """``1`` when :func:`sincos_cw` does not apply to ``x`` (``|x| >= 2^20``, inf or NaN), else ``0``."""
    return 0 if abs(x) < CODY_WAITE_MAX else 1


@jit(inline="always")
def _sincos_finish(x, ax, q, rh, rl):
    sr, cr = _sincos_kernel(rh, rl)
    swap = (q & np.int64(1)) == 1  # quadrants 1 and 3: sin and cos exchange roles
    sn = select(swap, cr, sr)
    cs = select(swap, sr, cr)
    sn = select((q & np.int64(2)) != 0, -sn, sn)  # sin < 0 in quadrants 2, 3 (of |x|)
    cs = select(((q + 1) & np.int64(2)) != 0, -cs, cs)  # cos < 0 in quadrants 1, 2
    sn = bits_f64(f64_bits(sn) ^ (f64_bits(x) & np.uint64(SIGN)))  # odd, sin(-0) = -0
    finite = ax < INF
    return select(finite, sn, NAN), select(finite, cs, NAN)


@jit(inline="always")
def sin(x):
    """``sin x`` for every float64 (see :func:`sincos`)."""
    return sincos(x)[0]


@jit(inline="always")
def cos(x):
    """``cos x`` for every float64 (see :func:`sincos`)."""
    return sincos(x)[1]


# ------------------------------------------------------------------------------------------------- float32 sin/cos
# For float32 arguments (the states of precision="float32" runs), computed in float64 and rounded once, with
# reductions that use neither tables nor integers, so that they vectorize with AVX2 too (the float64 Payne-Hanek
# above reads a table and shifts uint64 words, which AVX2 cannot do in vector lanes):
# * |x| < 2^24: Cody-Waite in float64 with pi/2 in three parts (29 + 29 + 53 bits): n pi/2 with n < 2^26 is
#   subtracted exactly but for the last part, so r = x - n pi/2 is good to ~2^-80 absolute;
# * every float32 (the exact reduction): a float32 has 24 significant bits, so its product with a 29-bit chunk
#   of 2/pi is exact in float64, and so is that product modulo 4 (``t - 4 floor(t / 4)``). The seven chunk
#   products modulo 4, summed in a tree of two-sums (independent terms: a short dependency chain), give
#   ``x 2/pi mod 4`` to ~2^-75 absolute whatever the exponent (2/pi to 203 bits; float32 reaches 2^128), far below
#   the closest approach of a float32 to a multiple of pi/2 (~2^-30 relative).
# Float64 Taylor polynomials (to x^11 / x^12, error < 7e-12 relative) then give sin and cos of the remainder, and
# rounding to float32 gives the correctly rounded result except next to a tie (max 0.5001 float32 ulp measured by
# tests/test_vmath.py on 1e7 points).
# :func:`sincos_f32` selects between the two reductions per element (so every element's bits are a function of
# that element alone); the generated block kernels run the Cody-Waite-only :func:`sincos_f32_cw` optimistically
# and rerun the block with :func:`sincos_f32` when any argument is out of its range (``f32_cw_out``), which gives
# the same bits.
# The chunks: floor(2/pi 2^232) in base 2^29, most significant first (the eighth chunk is not needed).
_TWO_OVER_PI_29 = (341782637, 423170132, 352195499, 488592205, 461485765, 90590992, 478285810)
_TOP_CHUNKS = tuple(float(c) * 2.0 ** (-29 * (i + 1)) for i, c in enumerate(_TWO_OVER_PI_29))
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = _TOP_CHUNKS
PI_2 = 1.5707963267948966
TWO_OVER_PI = 0.6366197723675814
_CW1, _CW2, _CW3 = 1.570796325802803, 9.920935774287987e-10, 2.2517417741562176e-18  # pi/2 = C1 + C2 + C3
F32_CW_MAX = 16777216.0  # 2^24
F32_TINY = 2.0**-12  # below it sin x rounds to x in float32 (|x|^3/6 < 2^-26 |x|): keeps -0.0 and subnormals


@jit(inline="always")
def _mod4(t):
    return t - 4.0 * np.floor(t * 0.25)


@jit(inline="always")
def _two_sum4(a, b):
    """``(a + b, error)`` exactly (Knuth's two-sum)."""
    u = a + b
    bp = u - a
    return u, (a - (u - bp)) + (b - bp)


@jit(inline="always")
def _f32_reduce_cw(xd):
    """``(n, r)``: ``x = n pi/2 + r``, ``|r| <= pi/4`` (float64 ``xd >= 0`` holding a float32, ``x < 2^24``)."""
    n = np.floor(xd * TWO_OVER_PI + 0.5)
    r = ((xd - n * _CW1) - n * _CW2) - n * _CW3
    return n, r


@jit(inline="always")
def _f32_reduce_exact(xd):
    """``(n, r)`` as :func:`_f32_reduce_cw` for every float32 ``xd >= 0`` (n modulo 4 only; see above). The
    argument must not be negative: a tiny negative chunk product modulo 4 rounds to 4.0 and loses its bits."""
    s01, e01 = _two_sum4(_mod4(xd * _P0), _mod4(xd * _P1))
    s23, e23 = _two_sum4(_mod4(xd * _P2), _mod4(xd * _P3))
    s45, e45 = _two_sum4(_mod4(xd * _P4), _mod4(xd * _P5))
    s03, e03 = _two_sum4(s01, s23)
    s46, e46 = _two_sum4(s45, _mod4(xd * _P6))
    s, eS = _two_sum4(s03, s46)  # in [0, 28): x 2/pi modulo 4, plus the errors below
    c = ((e01 + e23) + (e45 + e03)) + (e46 + eS)
    n = np.floor(s + c + 0.5)
    return n, ((s - n) + c) * PI_2  # s - n is exact (Sterbenz)


# Taylor polynomials to x^11 / x^12 on |r| <= pi/4, evaluated in float64: truncation below 7e-12 relative, far
# below float32's 6e-8 (the float64 kernels' longer polynomials would only cost time here)
@jit(inline="always")
def _sin_poly_f32(x):
    x2 = x * x
    return x * (1.0 + x2 * (-1.0 / 6.0 + x2 * (1.0 / 120.0 + x2 * (-1.0 / 5040.0 + x2 * (
        1.0 / 362880.0 + x2 * (-1.0 / 39916800.0))))))


@jit(inline="always")
def _cos_poly_f32(x):
    x2 = x * x
    return 1.0 + x2 * (-0.5 + x2 * (1.0 / 24.0 + x2 * (-1.0 / 720.0 + x2 * (1.0 / 40320.0 + x2 * (
        -1.0 / 3628800.0 + x2 * (1.0 / 479001600.0))))))


@jit(inline="always")
def _f32_finish(xd, n, r):
    """sin and cos of ``xd`` from the reduction ``|xd| = n pi/2 + r`` (sin is odd: its sign follows ``xd``)."""
    q = _mod4(n)
    sr = _sin_poly_f32(r)
    cr = _cos_poly_f32(r)
    odd = (q == 1.0) | (q == 3.0)
    sn = select(odd, cr, sr)
    cs = select(odd, sr, cr)
    sn = select(q >= 2.0, -sn, sn)  # sin < 0 in quadrants 2 and 3
    cs = select((q == 1.0) | (q == 2.0), -cs, cs)  # cos < 0 in quadrants 1 and 2
    sn = select(xd < 0.0, -sn, sn)
    sn = select(abs(xd) < F32_TINY, xd, sn)
    finite = abs(xd) < INF
    return np.float32(select(finite, sn, NAN)), np.float32(select(finite, cs, NAN))


@jit(inline="always")
def sincos_f32(x):
    """``(sin x, cos x)`` of a float32 ``x`` as float32, for every float32 (inf and NaN give NaN), each within 1
    ulp of the correctly rounded float32 result (a float64 argument is first rounded to float32)."""
    xd = np.float64(np.float32(x))
    xr = select(abs(xd) < INF, abs(xd), 0.0)  # |x|; inf and NaN: computed on 0, replaced by NaN at the end
    n1, r1 = _f32_reduce_cw(xr)
    n2, r2 = _f32_reduce_exact(xr)
    small = xr < F32_CW_MAX
    return _f32_finish(xd, select(small, n1, n2), select(small, r1, r2))


@jit(inline="always")
def sincos_f32_cw(x):
    """:func:`sincos_f32` for ``|x| < 2^24`` only (the same bits there; garbage beyond: check
    :func:`f32_cw_out`)."""
    xd = np.float64(np.float32(x))
    n, r = _f32_reduce_cw(select(abs(xd) < INF, abs(xd), 0.0))
    return _f32_finish(xd, n, r)


@jit(inline="always")
def f32_cw_out(x):
    """``1`` when :func:`sincos_f32_cw` does not apply to ``x`` (``|x| >= 2^24``, inf or NaN), else ``0``."""
    return 0 if abs(np.float64(x)) < F32_CW_MAX else 1


@jit(inline="always")
def sin_f32(x):
    """``sin x`` of a float32 (see :func:`sincos_f32`)."""
    return sincos_f32(x)[0]


@jit(inline="always")
def cos_f32(x):
    """``cos x`` of a float32 (see :func:`sincos_f32`)."""
    return sincos_f32(x)[1]


# ----------------------------------------------------------------------------------------------------------- tanh
# TANH: tanh(x) = x + x^3 T(x^2) on |x| <= 0.4; relative error 2^-58.4 after rounding
_TANH = (-0.3333333333333321, 0.13333333333301975, -0.05396825394107867, 0.021869487379707495,
    -0.008863207626140266, 0.003591719930305992, -0.0014521342259077284, 0.0005695583447786715,
    -0.00017459221506027699)


@jit(inline="always")
def tanh(x):
    """``tanh x`` for every float64 (``tanh(-0) = -0``, ``tanh(+-inf) = +-1``, NaN in, NaN out)."""
    z = x * x
    small = x + x * (z * _poly9(z, _TANH))
    small = select(z == 0.0, x, small)  # |x| < 2^-537 (z underflows): tanh x = x, and tanh(-0) = -0
    ax = abs(x)
    # 1 - 2 / (E + 1) with E = exp(2|x|) >= 3, in double-double: E + 1 from the unrounded exp(r), the quotient
    # corrected by its exact residual, so that only the last addition rounds; |x| is clamped at 20 (exp(40) is
    # finite and the result rounds to 1); NaN passes through
    yh, yl, s1, s2 = _exp_core(2.0 * select(ax > TANH_BIG, TANH_BIG, ax), 0.0)
    eh, el = _fast_two_sum((yh * s1) * s2, (yl * s1) * s2)  # the scaling is exact: 2^k with k <= 58
    dh, dl = _fast_two_sum(eh, 1.0)
    dl = dl + el
    qh = 2.0 / dh
    p, pe = _two_prod(qh, dh)
    ql = (((2.0 - p) - pe) - qh * dl) / dh  # 2 / (dh + dl) = qh + ql to ~2^-100
    oh, ol = _fast_two_sum(1.0, -qh)
    big = oh + (ol - ql)
    big = select(x < 0.0, -big, big)
    return select(ax < TANH_SMALL, small, big)  # NaN: big, which is NaN


# ------------------------------------------------------------------------------------------------------------ pow
# log(x) as a double-double for pow: log(c) from a table at c = j/128 near x, and 2 atanh(s), s = (f - c)/(f + c),
# |s| <= 2^-8.5, by its series (the terms after s^7 are below 2^-71 relative)
_LOGC_HI = (-0.3522205935893521, -0.34117075740276714, -0.33024168687057687, -0.3194307707663612,
    -0.3087354816496133, -0.29815337231907635, -0.2876820724517809, -0.27731928541623435,
    -0.26706278524904525, -0.2569104137850272, -0.24686007793152578, -0.2369097470783577,
    -0.22705745063534608, -0.2173012756899814, -0.2076393647782445, -0.1980699137620938,
    -0.18859116980755003, -0.179201429457711, -0.16989903679539747, -0.16068238169047347,
    -0.15154989812720093, -0.14250006260728304, -0.13353139262452263, -0.1246424452072766,
    -0.1158318155251217, -0.1070981355563671, -0.09844007281325252, -0.08985632912186105,
    -0.0813456394539524, -0.07290677080808779, -0.06453852113757118, -0.05623971832287608,
    -0.048009219186360606, -0.039845908547199674, -0.0317486983145803, -0.023716526617316044,
    -0.015748356968139168, -0.007843177461025893, 0.0, 0.007782140442054949, 0.015504186535965254,
    0.02316705928153438, 0.030771658666753687, 0.0383188643021366, 0.0458095360312942, 0.053244514518812285,
    0.06062462181643484, 0.06795066190850775, 0.07522342123758753, 0.08244366921107459, 0.08961215868968714,
    0.09672962645855111, 0.10379679368164356, 0.11081436634029011, 0.11778303565638346, 0.12470347850095724,
    0.13157635778871926, 0.13840232285911913, 0.1451820098444979, 0.15191604202584197, 0.15860503017663857,
    0.16524957289530717, 0.17185025692665923, 0.1784076574728183, 0.184922338494012, 0.19139485299962947,
    0.19782574332991987, 0.2042155414286909, 0.21056476910734964, 0.21687393830061436, 0.22314355131420976,
    0.22937410106484582, 0.2355660713127669, 0.24171993688714516, 0.24783616390458127, 0.25391520998096345,
    0.25995752443692605, 0.26596354849713794, 0.27193371548364176, 0.2778684510034563, 0.2837681731306446,
    0.28963329258304266, 0.2954642128938359, 0.3012613305781618, 0.3070250352949119, 0.3127557100038969,
    0.3184537311185346, 0.324119468654212, 0.329753286372468, 0.3353555419211378, 0.3409265869705932,
    0.34646676734620857, 0.3519764231571782)
_LOGC_LO = (-5.7233316949182485e-18, 1.9366790062602867e-17, 1.0828321637483858e-17, -1.354256857264811e-18,
    1.6199186085148102e-17, 1.720695867445866e-17, -2.607160616442564e-17, 7.44528405583513e-18,
    7.32891532732017e-18, -2.502843296152504e-17, -1.361743371748368e-17, -1.9682402978398164e-18,
    -9.551415762738488e-18, -1.6168452453763015e-18, -1.2053243216686129e-17, -3.742843482461439e-18,
    7.432164219196925e-18, 1.0785017454858423e-17, 4.868008764439071e-19, 3.650183553047837e-18,
    -5.1669593684615594e-18, 9.926388234225749e-18, 3.664457663660085e-18, 5.808912678940971e-18,
    -4.338484369808096e-18, 1.73705104015906e-18, 4.439009633675136e-18, 6.273760163689594e-19,
    -5.07707635593117e-18, 6.306860257532778e-18, 6.470486661692933e-18, 3.2835149805605613e-18,
    -1.4390903347292205e-18, 3.129547680315208e-18, -3.0382263084680858e-18, 1.5774243488668215e-18,
    -1.0021578630528974e-18, -2.764708154124904e-19, 0.0, -1.2819179123343845e-20, -3.278321022892429e-19,
    -1.1769544932063305e-18, 1.0431732029005968e-18, -2.357996157351286e-18, 1.902959866474257e-18,
    -1.665575816973663e-18, 2.6424025938726934e-18, -1.2802141240611733e-18, -5.930604196293241e-18,
    5.700437773813987e-18, -5.4268129336647135e-18, -5.597397486289965e-19, 5.47772415726659e-18,
    1.183748342825649e-18, -1.1971685747593677e-18, -4.6522609636496624e-18, 1.1123000879729588e-17,
    4.447777301357527e-18, 8.242418783022475e-18, 6.4838631244022194e-18, 1.1257003872182592e-17,
    -1.0094935622322628e-17, -6.0224538210113705e-18, -1.2432553788701131e-17, 3.0236614153574064e-18,
    -1.2129496905792884e-17, 1.2821194372980142e-17, 2.7338281018722773e-18, -4.249405314729895e-18,
    4.551026193234283e-18, -9.091270597324799e-18, 9.927671823978025e-18, -2.3943371495187355e-18,
    8.900990022166643e-18, -1.2432209578702523e-17, -8.048097394424201e-18, 2.069806938978935e-17,
    5.3393802761314314e-18, 7.83319637697442e-19, -9.16018294909263e-19, -2.032665581126656e-17,
    2.0535953219858174e-17, -2.16461086040599e-17, -9.048511144048564e-18, -1.2319916200101964e-17,
    -1.451808353098951e-17, 2.7114779367326236e-17, -7.958214381893813e-18, 2.122020616196946e-18,
    1.834564437059473e-17, 1.7467136443544747e-17, 1.028583585496265e-17, -1.2953893030191963e-17)
_LOGC_HI_TABLE = np.array(_LOGC_HI, dtype=np.float64)
_LOGC_LO_TABLE = np.array(_LOGC_LO, dtype=np.float64)


@jit(inline="always")
def _log_dd(ax):
    """``log(ax)`` as a double-double ``(hi, lo)`` with a relative error below 2^-67, for a positive finite ``ax``
    (subnormals included); ``(-inf, 0)`` at 0 and ``(inf, 0)`` at inf."""
    ef, m = _log_reduce(ax)
    f = 1.0 + m  # exact: f in [sqrt(1/2), sqrt(2))
    cf, j = _round_int(f * 128.0)  # j in 91..181
    c = cf * 0.0078125
    d = f - c  # exact, |d| <= 1/256
    sh, sl = _two_sum(f, c)
    s = d / sh
    p, pe = _two_prod(s, sh)
    s_lo = (((d - p) - pe) - s * sl) / sh  # s + s_lo = d / (f + c) to ~2^-105
    z = s * s
    tail = s * z * (0.6666666666666666 + z * (0.4 + z * 0.2857142857142857))
    idx = j - 90
    h1, e1 = _two_sum(ef * LN2_HI, _LOGC_HI_TABLE[idx])  # ef * LN2_HI: exact
    h2, e2 = _two_sum(h1, 2.0 * s)
    lo = (e1 + e2) + (((ef * LN2_LO + _LOGC_LO_TABLE[idx]) + 2.0 * s_lo) + tail)
    hi, lo = _fast_two_sum(h2, lo)
    special = (ax <= 0.0) | (ax == INF)
    return select(special, select(ax == 0.0, -INF, INF), hi), select(special, 0.0, lo)


@jit(inline="always")
def pow(x, y):
    """``x ** y`` (C99/IEEE ``pow``, as NumPy's ``power``) for every pair of float64: ``exp(y log|x|)`` with the
    logarithm and the product in double-double (within 1 ulp of the correctly rounded result), negative bases with
    integer exponents (the sign by the parity of ``y``), ``nan`` for a negative finite base and a non-integer
    exponent, and the special values: ``pow(x, 0) = pow(1, y) = 1`` (also for NaN), ``pow(-1, +-inf) = 1``,
    zeros and infinities by the sign of ``y`` and its parity."""
    ax = abs(x)
    ay = abs(y)
    lh, ll = _log_dd(ax)
    # |y| >= 2^960 makes |y log x| overflow or underflow for every x != +-1 (|log x| >= 2^-54), and keeps the
    # splitting finite
    yc = select(ay > _Y_CLAMP, select(y > 0.0, _Y_CLAMP, -_Y_CLAMP), y)  # NaN stays
    ph, pe = _two_prod(yc, lh)
    pl = pe + yc * ll
    pl = select(abs(ph) < 746.0, pl, 0.0)  # out there the result is 0 or inf (and pe may be NaN from inf - inf)
    r = _exp_dd(ph, pl)
    # parity of y: integer if |y| >= 2^52 or round(|y|) == |y|; odd from the last bit of round(|y|) below 2^52, of y
    # itself in [2^52, 2^53), even above
    t = ay + 4503599627370496.0
    isint = (ay >= 4503599627370496.0) | ((t - 4503599627370496.0) == ay)  # inf counts as an (even) integer
    lowbit = select(ay < 4503599627370496.0, f64_bits(t), f64_bits(ay)) & np.uint64(1)
    yodd = isint & (ay < 9007199254740992.0) & (lowbit == np.uint64(1))
    neg = (f64_bits(x) & np.uint64(SIGN)) != np.uint64(0)  # the sign bit: -0 counts
    r = select(neg & yodd, -r, r)
    r = select((x < 0.0) & (x > -INF) & (not isint), NAN, r)
    r = select(x == x, r, x)
    return select((y == 0.0) | (x == 1.0), 1.0, r)


if numba_config.DISABLE_JIT:  # plain Python: NaN, inf and wrapping uint64 arithmetic are expected, not warnings

    def _quiet(f):
        @functools.wraps(f)
        def wrapper(*args):
            with np.errstate(all="ignore"):
                return f(*args)

        return wrapper

    exp, log, sin, cos, sincos, tanh, pow = (_quiet(f) for f in (exp, log, sin, cos, sincos, tanh, pow))
