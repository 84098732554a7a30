"""Mutation check of the test suite: inject one plausible bug at a time and confirm a named test fails.

Each mutation is a (file, exact text, replacement) edit of the package and the fast tests expected to catch it.
The script copies the repository's tracked files into a scratch folder once, and for every mutation applies the
edit there, runs the named tests with ``PYTHONPATH`` pointing at the copy, records whether they failed, and
restores the file. The working tree is never touched. A mutation whose text is not found is reported as stale (the
code moved: update its edit). Results go to stdout as the Markdown table of ``docs/testing.md``.

Usage::

    python experiments/diagnostics/mutations.py [--only ID[,ID...]] [--out FILE.md] [--jobs 1]

A run takes several minutes (each mutation recompiles the kernels it touches in a fresh Numba cache).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutation:
    id: str
    bug: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    count: int = 1  # how many occurrences of ``old`` to replace (0: all)


T_EM = "tests/integrate/test_em_statistics.py"
T_FAST = "tests/integrate/test_fast_laws.py"
T_DRV = "tests/integrate/test_simulate_driver.py"
T_DYN = "tests/sde/test_dynamics.py"
T_FP = "tests/fokker_planck"
T_MCMC_D = "tests/mcmc/test_mcmc_diagnostics.py"
T_SCORE = "tests/score"

MUTATIONS = [
    Mutation("em-noise-h", "EM noise scaled by |h| instead of sqrt|h|", "sde_toolkit/integrate/driver.py",
             "sqh = math.sqrt(abs(h))\n        CH =", "sqh = abs(h)\n        CH =",
             (T_FAST, T_EM + "::test_exact_method_matches_transition_at_any_step")),
    Mutation("od-sqrt2", "sqrt(2) dropped from the overdamped noise", "sde_toolkit/sde/langevin.py",
             "return math.sqrt(2.0 * self.kT / self.gamma)", "return math.sqrt(self.kT / self.gamma)", (T_FAST,)),
    Mutation("grad-sign", "a potential's Numba gradient with the wrong sign (DoubleWell)",
             "sde_toolkit/sde/potentials.py", "out[i] = a4 * x[i] * (x[i] * x[i] - b)",
             "out[i] = -a4 * x[i] * (x[i] * x[i] - b)", ("tests/sde/test_sde_models.py",)),
    Mutation("ou-exact-var", "OU exact variance with exp(-theta h) for exp(-2 theta h)", "sde_toolkit/sde/ou.py",
             "var = S[0, 0] * (-math.expm1(-2.0 * th * h)) / (2.0 * th)",
             "var = S[0, 0] * (-math.expm1(-th * h)) / (2.0 * th)",
             (T_EM + "::test_exact_method_matches_transition_at_any_step",)),
    Mutation("ou-large-step", "OU large-step covariance P - F^T P F instead of P - F P F^T", "sde_toolkit/sde/ou.py",
             "Q = P - F @ P @ F.T", "Q = P - F.T @ P @ F",
             (T_EM + "::test_exact_moments_2x2_nonsymmetric_theta",)),
    Mutation("milstein-half", "Milstein correction halved", "sde_toolkit/integrate/methods.py",
             "v += 0.5 * g * F2[i, r] * (dw * dw - ah)", "v += 0.25 * g * F2[i, r] * (dw * dw - ah)",
             (T_EM + "::test_strong_order_gbm",)),
    Mutation("times-accumulated", "saved times accumulated instead of computed", "sde_toolkit/integrate/plan.py",
             "    t = t0 + steps * h\n    t[steps == n_steps] = t1",
             "    t = t0 + np.concatenate([[0.0], np.cumsum(np.diff(steps) * h)])\n    t[steps == n_steps] = t1",
             (T_DRV + "::test_time_grid_is_computed_not_accumulated",)),
    Mutation("bernoulli-swap", "Bernoulli B(z) and B(-z) swapped in the fluxes", "sde_toolkit/fokker_planck/operator.py",
             "out = z / np.expm1(z)", "out = -z / np.expm1(-z)", (T_FP,)),
    Mutation("fp-kT1", "Fokker–Planck flux with kT = 1 (potential form)", "sde_toolkit/fokker_planck/operator.py",
             "kT = float(kT)\n", "kT = 1.0\n", (T_FP,)),
    Mutation("absorbing-reflecting", "absorbing wall treated as reflecting", "sde_toolkit/fokker_planck/operator.py",
             'if grid.boundaries[k][side] != "absorbing":', "if True:", (T_FP,)),
    Mutation("mala-no-proposal", "MALA without the proposal densities", "sde_toolkit/mcmc/layers.py",
             "log_alpha = -(vy - carry[i, 0]) * ikT + 0.5 * fwd - bwd", "log_alpha = -(vy - carry[i, 0]) * ikT",
             (T_FAST,)),
    Mutation("baoab-friction-half", "BAOAB O-step friction halved", "sde_toolkit/sde/langevin.py",
             "c1 = math.exp(-self.gamma * abs(h))", "c1 = math.exp(-0.5 * self.gamma * abs(h))", (T_DYN,)),
    Mutation("ud-noise-mass", "underdamped noise without the mass", "sde_toolkit/sde/langevin.py",
             "return math.sqrt(2.0 * self.gamma * self.mass * self.kT)",
             "return math.sqrt(2.0 * self.gamma * self.kT)", (T_DYN,)),
    Mutation("ddpm-exact-map", "DDPM exact map returning first-order betas", "sde_toolkit/sde/diffusion.py",
             "betas = -np.expm1(-dB)", "betas = dB", (T_SCORE + "/test_ddpm_schedule.py",)),
    Mutation("alpha-bar-shift", "alpha_bar cumprod off by one", "sde_toolkit/sde/diffusion.py",
             "return cls(betas=b, alphas=a, alpha_bars=np.cumprod(a))",
             "return cls(betas=b, alphas=a, alpha_bars=np.concatenate([[1.0], np.cumprod(a)[:-1]]))",
             (T_SCORE + "/test_ddpm_schedule.py",)),
    Mutation("reverse-g-s", "reverse drift g s for g^2 s", "sde_toolkit/sde/reverse.py",
             "return scale * g**2 * s", "return scale * g * s", (T_SCORE + "/test_samplers.py",)),
    Mutation("pf-full-g2", "probability flow with g^2 s for g^2 s / 2", "sde_toolkit/sde/reverse.py",
             "return self.forward.drift(x, t) - self._rev._g2_score(x, t, 0.5)",
             "return self.forward.drift(x, t) - self._rev._g2_score(x, t, 1.0)",
             ("tests/sde/test_probability_flow_transport.py",)),
    Mutation("pf-full-g2-fused", "probability flow (Numba face) with g^2 s for g^2 s / 2", "sde_toolkit/sde/reverse.py",
             "self.score.numba_score(jit), self.dim, self.forward.noise_type, 0.5, jit)",
             "self.score.numba_score(jit), self.dim, self.forward.noise_type, 1.0, jit)",
             ("tests/sde/test_probability_flow_transport.py",)),
    Mutation("tau-factor2", "factor 2 dropped from tau", "sde_toolkit/mcmc/diagnostics.py",
             "taus = 2.0 * np.cumsum(rho, axis=0) - 1.0", "taus = np.cumsum(rho, axis=0)", (T_MCMC_D,)),
    Mutation("sokal-c1", "Sokal window c = 1", "sde_toolkit/mcmc/diagnostics.py",
             "def integrated_time(x, c: float = 5.0)", "def integrated_time(x, c: float = 1.0)", (T_MCMC_D,)),
    Mutation("ess-no-between", "multi-chain ESS without the between-chain variance", "sde_toolkit/mcmc/diagnostics.py",
             "var_plus = var_plus + v.mean(axis=0).var(axis=0, ddof=1)", "var_plus = var_plus", (T_MCMC_D,)),
    Mutation("rhat-no-fold", "R-hat without the folded (tail) half", "sde_toolkit/mcmc/diagnostics.py",
             "return np.maximum(bulk, folded)", "return bulk", (T_MCMC_D,)),
    Mutation("validate-no-gate", "validate_stationary ignoring R-hat", "sde_toolkit/validate.py",
             "return self.mixing_ok and all(c[2] for c in self.checks().values())",
             "return all(c[2] for k, c in self.checks().items() if k != \"rhat\")", ("tests/test_validate.py",)),
    Mutation("ess-raw-n", "raw n instead of the ESS in validation", "sde_toolkit/validate.py",
             "n_eff = float(np.min(ess(arr, \"bulk\")))",
             "n_eff = float(arr.shape[0] * arr.shape[1])", (T_FAST,)),
    Mutation("skip-flush-commit", "flush before the commit record skipped", "sde_toolkit/io/h5md.py",
             "        self._hdf5_flush()  # phase 1: frames and the new checkpoint reach the file first\n",
             "", ("tests/io/test_io_ordering.py",)),
    Mutation("resume-noise-0", "resumed noise restarting at the segment's first step (counter k - k_a)",
             "sde_toolkit/integrate/driver.py", "LN, np.uint64(k + LOOK), np.uint64((rng_path0 + c0) * NZ)",
             "LN, np.uint64(k - k_a + LOOK), np.uint64((rng_path0 + c0) * NZ)",
             (T_DRV + "::test_resume_from_a_step_continues_exactly",)),
    Mutation("task-offset", "path streams ignoring the task's path offset (chunk index)",
             "sde_toolkit/integrate/driver.py", "LN, np.uint64(k + LOOK), np.uint64((rng_path0 + c0) * NZ)",
             "LN, np.uint64(k + LOOK), np.uint64(c0 * NZ)",
             (T_DRV + "::test_paths_are_distinct_and_uncorrelated", T_FAST)),
    Mutation("divergence-off", "divergence check disabled", "sde_toolkit/integrate/driver.py",
             "n_bad += 0 if abs(xc[i, r]) <= max_abs else 1", "n_bad += 0",
             (T_DRV + "::test_divergence_blow_up_names_step_time_and_paths",)),
    Mutation("config-unknown-key", "unknown config key accepted", "sde_toolkit/config.py",
             "        if k not in keys:\n            raise ConfigError(", "        if False:\n            raise ConfigError(",
             ("tests/test_config.py",)),
    Mutation("score-sign", "score +eps/sigma (sign of the network's score)", "sde_toolkit/score/scores.py",
             "return -self.net(c_in * x, t) / sigma", "return self.net(c_in * x, t) / sigma",
             (T_SCORE + "/test_ddpm_labels.py",)),
    Mutation("pc-noise", "predictor-corrector noise sqrt(delta) for sqrt(2 delta)", "sde_toolkit/score/samplers.py",
             "x = x + delta * g + math.sqrt(2.0 * delta) * zc", "x = x + delta * g + math.sqrt(delta) * zc", (T_SCORE + "/test_samplers.py",)),
    Mutation("mcmc-shared-streams", "all chains sharing one noise stream", "sde_toolkit/integrate/driver.py",
             "LN, np.uint64(k + LOOK), np.uint64((rng_path0 + c0) * NZ), nc * NZ,",
             "LN, np.uint64(k + LOOK), np.uint64(0), nc * NZ,", (T_FAST,)),
    Mutation("ddpm-labels", "DDPM training time labels t_{i-1}", "sde_toolkit/score/training.py",
             "t_grid = torch.arange(1, N + 1, dtype=torch.float64, device=dev) * (T_ / N)",
             "t_grid = torch.arange(0, N, dtype=torch.float64, device=dev) * (T_ / N)",
             (T_SCORE + "/test_ddpm_labels.py",)),
    # kernels of the redesign
    Mutation("philox-round", "a Philox multiplier constant wrong", "sde_toolkit/_random.py",
             "x2 * np.uint64(0xCD9E8D57)", "x2 * np.uint64(0xCD9E8D59)", ("tests/test_random.py",), count=0),
    Mutation("boxmuller-angle", "Box–Muller angle octant misread (sin and cos swapped in octant 1)",
             "sde_toolkit/_vmath.py", "swap = ((octant + 1) & 2) != 0", "swap = (octant & 2) != 0",
             ("tests/test_random.py",)),
    Mutation("boxmuller-radius", "Box–Muller radius sqrt(-log u) for sqrt(-2 log u)", "sde_toolkit/_random.py",
             "r = math.sqrt(-2.0 * log_pos(u))", "r = math.sqrt(-log_pos(u))", ("tests/test_random.py",)),
    Mutation("mala-accept-count", "MALA counting rejected proposals as accepted", "sde_toolkit/mcmc/layers.py",
             "                    carry[i, 1 + d] += 1.0\n", "", ("tests/mcmc/test_mcmc_samplers.py",)),
    Mutation("frame-index", "saved frame written one slot late", "sde_toolkit/integrate/driver.py",
             "fi = gi - gi0\n", "fi = min(gi - gi0 + 1, frames.shape[0] - 1)\n", (T_DRV + "::test_saved_times_of_a_run",
                                                                            "tests/integrate/test_output_dtype.py")),
]


def _copy_repo(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)


def run(mutations, jobs: int = 1) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="sde-mutations-") as tmp:
        work = Path(tmp) / "repo"
        work.mkdir()
        _copy_repo(work)
        for m in mutations:
            path = work / m.file
            text = path.read_text()
            n = text.count(m.old)
            if n == 0:
                rows.append(dict(id=m.id, bug=m.bug, tests=m.tests, caught=None, seconds=0.0, note="stale: text not found"))
                continue
            path.write_text(text.replace(m.old, m.new) if m.count == 0 else text.replace(m.old, m.new, m.count))
            env = dict(os.environ, PYTHONPATH=str(work), NUMBA_CACHE_DIR=str(Path(tmp) / f"nb-{m.id}"),
                       NUMBA_NUM_THREADS=os.environ.get("NUMBA_NUM_THREADS", "2"))
            t = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                *m.tests], cwd=work, env=env, capture_output=True, text=True)
            el = time.perf_counter() - t
            path.write_text(text)
            failed = r.returncode == 1
            note = "" if r.returncode in (0, 1) else f"pytest exit {r.returncode}"
            last = [ln for ln in r.stdout.strip().splitlines() if ln.strip()][-1:] or [""]
            rows.append(dict(id=m.id, bug=m.bug, tests=m.tests, caught=failed, seconds=el, note=note or last[0]))
            print(f"{m.id:24s} {'CAUGHT' if failed else 'MISSED'} {el:6.1f}s {last[0]}", file=sys.stderr, flush=True)
    return rows


def table(rows) -> str:
    lines = ["| id | injected bug | caught by | result | s |", "|---|---|---|---|---|"]
    for r in rows:
        res = "stale" if r["caught"] is None else ("caught" if r["caught"] else "**MISSED**")
        tests = "<br>".join(f"`{t}`" for t in r["tests"])
        lines.append(f"| {r['id']} | {r['bug']} | {tests} | {res} | {r['seconds']:.0f} |")
    n = sum(1 for r in rows if r["caught"])
    lines.append(f"\n{n} of {len(rows)} injected bugs caught.")
    return "\n".join(lines)


def cli(mutations, description: str) -> int:
    """The command line of a mutation script: ``--only ID[,ID...]``, ``--out FILE``; exit status 1 when a bug is
    missed (the issue-specific scripts call this with their own list)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--only", default=None, help="comma-separated mutation ids")
    ap.add_argument("--out", default=None, help="write the Markdown table to this file")
    args = ap.parse_args()
    ms = mutations
    if args.only:
        want = set(args.only.split(","))
        ms = [m for m in mutations if m.id in want]
    rows = run(ms)
    text = table(rows)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if all(r["caught"] for r in rows) else 1


def main() -> int:
    return cli(MUTATIONS, __doc__.splitlines()[0])


if __name__ == "__main__":
    sys.exit(main())
