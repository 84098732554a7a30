"""Mutation check of ``precision="float32"``, the float32 sin/cos and the noise-transform rewrite (issue 12), on
the harness of ``mutations.py``.

Usage: python experiments/diagnostics/mutations_precision.py [--only ID[,ID...]]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutations import Mutation, cli  # noqa: E402

T = "tests/integrate/test_precision.py"
TV = "tests/test_vmath.py"
TR = "tests/test_random.py"
DRV = "sde_toolkit/integrate/driver.py"
METH = "sde_toolkit/integrate/methods.py"
VM = "sde_toolkit/_vmath.py"
POT = "sde_toolkit/sde/potentials.py"

MUTATIONS = [
    Mutation("f32-step-h64", "fused step gets the float64 h (the update promoted to float64, rounded once)", DRV,
             "step(xc, cc, k, t, hs, t_next, z, s, u, ws)", "step(xc, cc, k, t, h, t_next, z, s, u, ws)",
             (T + "::test_one_em_step_is_float32_arithmetic",)),
    Mutation("f32-lm-carry64", "LM averages the float64 carry with the float32 normal (no cast)", METH,
             "s * (half * (FT(carry[i, r]) + zr))", "s * (0.5 * (carry[i, r] + zr))",
             (T + "::test_one_lm_step_on_the_seed_density_in_float32",)),
    Mutation("f32-resume-f64", "resume hands the float64 checkpoint to a float32 plan (no cast)",
             "sde_toolkit/runs/resume.py",
             "x = np.ascontiguousarray(state, dtype=plan.state_dtype)", "x = np.ascontiguousarray(state)",
             (T + "::test_interrupted_float32_file_resumes_bit_identical",)),
    Mutation("f32-ou-const64", "OU face keeps float64 coefficients in a float32 run", "sde_toolkit/sde/ou.py",
             "th = np.diag(self.theta_matrix).astype(FT)", "th = np.diag(self.theta_matrix).copy()",
             (T + "::test_one_em_step_is_float32_arithmetic",)),
    Mutation("f32-expr-int64", "expression float32 code prints integers as Python ints (promotes to float64)", POT,
             'return f"_f({int(e)})"', 'return f"{int(e)}"',
             (T + "::test_one_lm_step_on_the_seed_density_in_float32",)),
    Mutation("f32-expr-no-rerun", "expression block (float32 and float64) never reruns with the full-range sincos", POT,
             '    if _bad > 0:"', '    if _bad > 10**9:"',
             (T + "::test_block_fallback_for_huge_arguments_keeps_every_other_row",)),
    Mutation("f32-batched-inf", "batched divergence bound compared in float32 (inf passes)", DRV,
             "np.abs(xn) <= np.float64(max_abs)", "np.abs(xn) <= max_abs",
             (T + "::test_float32_overflow_is_a_divergence",)),
    Mutation("withenergy-lookahead", "WithEnergy drops the wrapped method's noise lookahead (LM chains shifted)",
             "sde_toolkit/mcmc/layers.py",
             "        self.noise_lookahead = method.noise_lookahead", "        pass",
             (T + "::test_leimkuhler_matthews_chains_with_and_without_energies_are_simulate",)),
    Mutation("sincos32-cos-sign", "float32 cos without the sign of quadrant 2", VM,
             "cs = select((q == 1.0) | (q == 2.0), -cs, cs)", "cs = select(q == 1.0, -cs, cs)",
             (TV + "::test_sincos_f32_ulp_error_and_cody_waite_agreement",)),
    Mutation("sincos32-cw-part", "float32 Cody-Waite without the third part of pi/2", VM,
             "r = ((xd - n * _CW1) - n * _CW2) - n * _CW3", "r = (xd - n * _CW1) - n * _CW2",
             (TV + "::test_sincos_f32_ulp_error_and_cody_waite_agreement",)),
    Mutation("sincos32-chunk", "exact float32 reduction drops its last chunk of 2/pi", VM,
             "s46, e46 = _two_sum4(s45, _mod4(xd * _P6))", "s46, e46 = _two_sum4(s45, 0.0)",
             (TV + "::test_float32_exact_reduction_against_mpmath",)),
    Mutation("sincos32-signed", "exact float32 reduction of the signed argument (tiny negative products mod 4)", VM,
             "xr = select(abs(xd) < INF, abs(xd), 0.0)", "xr = select(abs(xd) < INF, xd, 0.0)",
             (TV + "::test_float32_exact_reduction_against_mpmath", TV + "::test_sincos_f32_special_values")),
    Mutation("sincos32-limit", "Cody-Waite range limit 2^25 for 2^24 (n pi/2 no longer exact)", VM,
             "F32_CW_MAX = 16777216.0", "F32_CW_MAX = 33554432.0",
             (TV + "::test_sincos_f32_ulp_error_and_cody_waite_agreement",)),
    Mutation("cw64-limit", "float64 Cody-Waite-only sincos trusted up to 2^21 (its reduction is exact below 2^20)",
             VM, "return 0 if abs(x) < CODY_WAITE_MAX else 1", "return 0 if abs(x) < 2 * CODY_WAITE_MAX else 1",
             (TV + "::test_sincos_cody_waite_form_gives_the_same_bits_and_vectorizes",
              T + "::test_block_fallback_for_huge_arguments_keeps_every_other_row")),
    Mutation("uint-f64-magic", "exact uint-to-float of the Box-Muller fraction off by one in the magic constant", VM,
             "- 4503599627370496.0", "- 4503599627370495.0",
             (TR + "::test_scheme_v2_numbers_are_frozen",)),
]


def main() -> int:
    return cli(MUTATIONS, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
