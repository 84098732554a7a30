"""Mutation check of the few-step samplers (issue 13), on the harness of ``mutations.py``.

Usage: python experiments/diagnostics/mutations_issue13.py [--only ID[,ID...]]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutations import Mutation, cli  # noqa: E402

F = "sde_toolkit/score/fewstep.py"
T = "tests/score/test_fewstep.py"

MUTATIONS = [
    Mutation("ddim-post-std", "DDIM eta-noise without the 1 / sigma^2 of the posterior variance", F,
             "s[:-1] ** 2 - (a[:-1] / a[1:]) ** 2 * s[1:] ** 2, 0.0) / s[:-1] ** 2",
             "s[:-1] ** 2 - (a[:-1] / a[1:]) ** 2 * s[1:] ** 2, 0.0)",
             (T + "::test_ddim_eta1_is_ancestral_pathwise",)),
    Mutation("x0-sigma", "data prediction y + sigma s for y + sigma^2 s", F,
             "return y, -s * sc, (y + s * s * sc) / a", "return y, -s * sc, (y + s * sc) / a",
             (T + "::test_deterministic_bias_against_tight_ode",)),
    Mutation("dpm-r-inverted", "DPM-Solver++(2M) with r = h_k / h_{k-1} (ratio inverted)", F,
             "r = (lam[k] - lam[k - 1]) / hk", "r = hk / (lam[k] - lam[k - 1])",
             (T + "::test_deterministic_orders", T + "::test_dpmpp_2m_equals_an_independent_algorithm_2")),
    Mutation("dpm-expm1-sign", "DPM-Solver++(2M) with 1 - e^{h} for e^{-h} - 1 (exponent sign)", F,
             "self.alpha[k + 1] * math.expm1(-hk) * D", "self.alpha[k + 1] * -math.expm1(hk) * D",
             (T + "::test_deterministic_orders",)),
    Mutation("dpm-stale-carry", "DPM-Solver++(2M) history never updated (y0_hat of step k - 1 stays 0)", F,
             "        carry[:] = y0\n", "",
             (T + "::test_deterministic_orders",)),
    Mutation("edm-heun-time", "EDM Heun corrector evaluated at the step's start time (time label)", F,
             "_, d1, _ = self._predict(sde, c + a1 * u1, k + 1)", "_, d1, _ = self._predict(sde, c + a1 * u1, k)",
             (T + "::test_deterministic_orders",)),
    Mutation("edm-churn-noise", "EDM churn noise (sigma^ - sigma) z for sqrt(sigma^2 - sigma^2) z", F,
             "math.sqrt(max(st_h**2 - st_k**2, 0.0)) * z", "(st_h - st_k) * z",
             (T + "::test_weak_orders_of_stochastic_samplers",)),
    Mutation("karras-rho", "karras grid with exponent 1 / rho for rho", F,
             "k / n * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho",
             "k / n * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** (1 / rho)",
             (T + "::test_grids",)),
    Mutation("ongrid-noise-h", "a sampler on its own grid with noise weight |h| for sqrt|h|", F,
             'w = math.sqrt(abs(hk)) if self.inner.noise_form == "dw" else s',
             'w = abs(hk) if self.inner.noise_form == "dw" else s',
             (T + "::test_euler_maruyama_on_a_logsnr_grid_has_weak_order_one",)),
    Mutation("loglik-drift-div", "exponential-integrator likelihood without the dim of div f = -dim k",
             "sde_toolkit/score/likelihood.py", "delta = sde.dim * math.log(a[-1] / a[0]) + acc",
             "delta = math.log(a[-1] / a[0]) + acc", (T + "::test_exponential_integrator_likelihood",)),
    Mutation("threads-not-restored", "torch threads not restored after sampling", "sde_toolkit/score/_threads.py",
             "            torch.set_num_threads(before)\n", "            pass\n",
             (T + "::test_torch_threads_chosen_and_restored",)),
]


def main() -> int:
    return cli(MUTATIONS, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
