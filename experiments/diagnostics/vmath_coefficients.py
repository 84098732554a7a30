"""Derive the polynomial coefficients of ``sde_toolkit._vmath`` (minimax fits in high precision with mpmath).

Usage::

    python experiments/diagnostics/vmath_coefficients.py [--check]

Prints, for each kernel, the coefficients rounded to float64 (``repr``, the form pasted into ``_vmath.py``) and the
weighted maximum error of the fit *after* rounding, measured on a dense grid in 60-digit arithmetic. ``--check``
compares them with the constants in ``sde_toolkit/_vmath.py`` and exits 1 on a difference.

Each fit is a weighted Remez exchange for ``P(t) = sum c_i t^i ~ g(t)`` on ``[a, b]`` minimizing
``max |w(t) (P(t) - g(t))|``, where ``w`` turns the error of ``P`` into the relative error of the function:

* ``exp``: ``exp(r) = 1 + r + r^2 E(r)`` on ``|r| <= ln2/2`` (after ``x = k ln2 + r``); ``w = r^2 / exp(r)``.
* ``sin``: ``sin(r) = r + r^3 S(r^2)`` on ``|r| <= pi/4`` (after ``x = k pi/2 + r``); ``w = r^3 / sin(r)``.
* ``cos``: ``cos(r) = 1 - r^2/2 + r^4 C(r^2)``; ``w = r^4 / cos(r)``.
* ``tanh``: ``tanh(x) = x + x^3 T(x^2)`` on ``|x| <= 0.4``; ``w = x^3 / tanh(x)``.
* ``log``: ``log(1 + m) = 2 atanh(s)``, ``s = m / (2 + m)``, ``2 atanh(s) = 2 s + s z R(z)`` with ``z = s^2``,
  ``|s| <= 3 - 2 sqrt(2)`` (after ``x = 2^e (1 + m)``, ``1 + m`` in ``[sqrt(1/2), sqrt(2))``);
  ``w = s z / (2 atanh s)``.

The table of ``log`` at ``c = j/128`` (double-double, for ``pow``) and the bits of ``2/pi`` (for the Payne-Hanek
reduction of huge sin/cos arguments) are computed here too.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import mpmath as mp

mp.mp.dps = 60


def remez(g, w, a, b, n, iters=40, grid=4000):
    """Weighted minimax polynomial of degree ``n`` for ``g`` on ``[a, b]``: coefficients (mpf) and the error."""
    a, b = mp.mpf(a), mp.mpf(b)
    k = n + 2
    ref = [(a + b) / 2 - (b - a) / 2 * mp.cos(mp.pi * j / (k - 1)) for j in range(k)]
    ref = [t if abs(w(t)) > mp.mpf("1e-30") else t + (b - a) * mp.mpf("1e-4") for t in ref]  # a zero weight makes it singular
    pts = [a + (b - a) * (1 - mp.cos(mp.pi * j / grid)) / 2 for j in range(grid + 1)]  # denser at the ends
    gv = [g(t) for t in pts]
    wv = [w(t) for t in pts]
    best = None
    for _ in range(iters):
        A = mp.matrix(k, k)
        rhs = mp.matrix(k, 1)
        for i, t in enumerate(ref):
            for j in range(n + 1):
                A[i, j] = t**j
            wt = w(t)
            A[i, n + 1] = (-1) ** i / wt if wt != 0 else 0
            rhs[i] = g(t)
        sol = mp.lu_solve(A, rhs)
        c = [sol[j] for j in range(n + 1)]
        err = [wv[i] * (mp.polyval(c[::-1], t) - gv[i]) for i, t in enumerate(pts)]
        # local extrema of the error, merged to alternate in sign
        ext = []
        for i in range(len(pts)):
            left = err[i - 1] if i > 0 else None
            right = err[i + 1] if i < len(pts) - 1 else None
            e = err[i]
            if (left is None or abs(e) >= abs(left)) and (right is None or abs(e) >= abs(right)) and e != 0:
                ext.append((pts[i], e))
        alt: list = []
        for t, e in ext:
            if alt and mp.sign(alt[-1][1]) == mp.sign(e):
                if abs(e) > abs(alt[-1][1]):
                    alt[-1] = (t, e)
            else:
                alt.append((t, e))
        while len(alt) > k:  # drop the smaller end
            alt.pop(0 if abs(alt[0][1]) < abs(alt[-1][1]) else -1)
        emax = max(abs(e) for e in err)
        if best is None or emax < best[1]:
            best = (c, emax)
        if len(alt) < k:
            break
        ref = [t for t, _ in alt]
        emin = min(abs(e) for _, e in alt)
        if emax / emin - 1 < mp.mpf("1e-6"):
            break
    return best


def rounded_error(c, g, w, a, b, grid=20000):
    """Weighted max error of the polynomial with coefficients rounded to float64."""
    cf = [mp.mpf(float(x)) for x in c]
    a, b = mp.mpf(a), mp.mpf(b)
    e = mp.mpf(0)
    for j in range(grid + 1):
        t = a + (b - a) * j / grid
        e = max(e, abs(w(t) * (mp.polyval(cf[::-1], t) - g(t))))
    return cf, e


def _sinc3(z):  # (sin(r) - r) / r^3 with z = r^2, by its series near 0
    if z < mp.mpf("1e-20"):
        return -mp.mpf(1) / 6 + z / 120
    r = mp.sqrt(z)
    return (mp.sin(r) - r) / (r * z)


def _cos4(z):  # (cos(r) - 1 + z/2) / z^2
    if z < mp.mpf("1e-20"):
        return mp.mpf(1) / 24 - z / 720
    return (mp.cos(mp.sqrt(z)) - 1 + z / 2) / (z * z)


def _exp2(r):  # (exp(r) - 1 - r) / r^2
    if abs(r) < mp.mpf("1e-20"):
        return mp.mpf(1) / 2 + r / 6
    return (mp.exp(r) - 1 - r) / (r * r)


def _tanh3(z):  # (tanh(x) - x) / x^3 with z = x^2
    if z < mp.mpf("1e-20"):
        return -mp.mpf(1) / 3 + 2 * z / 15
    x = mp.sqrt(z)
    return (mp.tanh(x) - x) / (x * z)


def _atanh_tail(z):  # (2 atanh(s) - 2 s) / (s z), z = s^2
    if z < mp.mpf("1e-30"):
        return mp.mpf(2) / 3 + 2 * z / 5
    s = mp.sqrt(z)
    return (2 * mp.atanh(s) - 2 * s) / (s * z)


FITS = {
    # name: (g, w, a, b, degree)
    "EXP": (_exp2, lambda r: r * r / mp.exp(r), -mp.log(2) / 2 - mp.mpf("1e-9"), mp.log(2) / 2 + mp.mpf("1e-9"), 10),
    "SIN": (_sinc3, lambda z: z / (mp.sin(mp.sqrt(z)) / mp.sqrt(z)) if z > 0 else z, 0,
            (mp.pi / 4 + mp.mpf("1e-9")) ** 2, 5),
    "COS": (_cos4, lambda z: z * z / mp.cos(mp.sqrt(z)), 0, (mp.pi / 4 + mp.mpf("1e-9")) ** 2, 5),
    "LOG": (_atanh_tail, lambda z: z / 2, 0, (3 - 2 * mp.sqrt(2)) ** 2 * (1 + mp.mpf("1e-9")), 6),
    "TANH": (_tanh3, lambda z: z * mp.sqrt(z) / mp.tanh(mp.sqrt(z)) if z > 0 else z, 0,
             mp.mpf("0.4") ** 2 * (1 + mp.mpf("1e-9")), 8),
}


def fit_all(verbose=True):
    out = {}
    for name, (g, w, a, b, n) in FITS.items():
        c, e = remez(g, w, a, b, n)
        cf, er = rounded_error(c, g, w, a, b)
        out[name] = [float(x) for x in cf]
        if verbose:
            print(f"# {name}: degree {n} on [{float(a):.6g}, {float(b):.6g}]: minimax {mp.nstr(e, 3)}, "
                  f"rounded {mp.nstr(er, 3)} (relative, 2^{float(mp.log(er, 2)):.1f})")
            print(f"{name} = ({', '.join(repr(x) for x in out[name])})")
    return out


def log_table(verbose=True):
    """``log(j/128)`` as double-double for ``j = 90..182`` (centers covering ``[sqrt(1/2), sqrt(2))``)."""
    hi, lo = [], []
    for j in range(90, 183):
        v = mp.log(mp.mpf(j) / 128)
        h = float(v)
        hi.append(h)
        lo.append(float(v - h))
    if verbose:
        print(f"LOGC_HI = ({', '.join(repr(x) for x in hi)})")
        print(f"LOGC_LO = ({', '.join(repr(x) for x in lo)})")
    return hi, lo


def two_over_pi_words(n_words=20, pad_words=1, verbose=True):
    """The bits of ``2/pi`` as ``uint64`` words, bit ``j`` (weight ``2^-j``) at position ``j + 64 pad - 1``."""
    with mp.workdps(n_words * 20 + 50):
        v = int(mp.floor(2 / mp.pi * mp.mpf(2) ** (64 * (n_words - pad_words))))
    words = [0] * pad_words + [(v >> (64 * (n_words - pad_words - 1 - i))) & (2**64 - 1)
                               for i in range(n_words - pad_words)]
    if verbose:
        print(f"TWO_OVER_PI_WORDS = ({', '.join(hex(x) for x in words)})")
    return words


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare with sde_toolkit/_vmath.py")
    args = ap.parse_args()
    fits = fit_all()
    hi, lo = log_table()
    words = two_over_pi_words()
    if args.check:
        src = (Path(__file__).resolve().parents[2] / "sde_toolkit" / "_vmath.py").read_text()
        bad = 0
        for name, want in [*fits.items(), ("LOGC_HI", hi), ("LOGC_LO", lo)]:
            m = re.search(rf"^_?{name} = \(([^)]*)\)", src, re.M)
            got = [float(x) for x in m.group(1).replace("\n", " ").split(",") if x.strip()] if m else None
            if got != want:
                print(f"MISMATCH {name}", file=sys.stderr)
                bad += 1
        m = re.search(r"^_TWO_OVER_PI_WORDS = \(([^)]*)\)", src, re.M)
        if not m or [int(x, 16) for x in m.group(1).replace("\n", " ").split(",") if x.strip()] != words:
            print("MISMATCH TWO_OVER_PI_WORDS", file=sys.stderr)
            bad += 1
        print("check:", "ok" if not bad else f"{bad} mismatches")
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
