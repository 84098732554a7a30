"""The experiment runner: every shipped config runs end to end and its report carries its metrics."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sde_toolkit.config import ConfigError
from sde_toolkit.runner import EXPERIMENTS, register_experiment, run_experiment

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "experiments" / "configs").glob("*.toml"))
SHIPPED = {"seed_langevin", "ou_stationary", "double_well_fp_vs_em", "kramers_escape", "ddpm_spiral", "mcmc_vs_score"}


def test_every_promised_config_is_shipped():
    assert SHIPPED <= {p.stem for p in CONFIGS}


def _check_outputs(res):
    out = res.outdir
    metrics = json.loads((out / "metrics.json").read_text())
    report = (out / "report.md").read_text()
    assert metrics["experiment"]["kind"] == res.kind
    assert res.figures, "an experiment must produce at least one figure"
    for f in res.figures:
        assert f.exists() and f.stat().st_size > 1000
        assert f"figures/{f.name}" in report
    return metrics, report


SEED_EDGES = np.linspace(-8.0, 8.0, 81)  # 80 cells of 0.2; mass outside [-8, 8] is 5e-4


def _em_law_cells(potential, dt, n_steps, kT=1.0, low=-10.0, high=10.0, h=0.04, L=14.0):
    """Cell masses on SEED_EDGES of the law of Euler-Maruyama's X_N, started uniform on [low, high]: the EM kernel
    ``x' ~ N(x - dt V'(x), 2 kT dt)`` as a transfer matrix on a grid of spacing h (cell midpoints offset by h/2,
    so every histogram cell is a whole number of grid cells: midpoint rule, O(h^2)); ``n_steps`` products.
    At h = 0.04 its L1 distance to the same at h = 0.01 is 3e-4 (1 % of the histogram noise below)."""
    g = np.arange(-L + h / 2, L, h)
    mu = g - dt * potential.grad(g[:, None])[:, 0]
    P = np.exp(-((g[None, :] - mu[:, None]) ** 2) / (4 * kT * dt))
    P /= P.sum(axis=1, keepdims=True)
    p = ((g >= low) & (g <= high)).astype(float)
    p /= p.sum()
    for _ in range(n_steps):
        p = p @ P
    return _cells(g, p)


def _cells(g, p):
    idx = np.searchsorted(SEED_EDGES, g) - 1
    keep = (idx >= 0) & (idx < len(SEED_EDGES) - 1)
    return np.bincount(idx[keep], weights=p[keep], minlength=len(SEED_EDGES) - 1)


@pytest.mark.slow
def test_seed_langevin(tmp_path):
    """EM at dt = 0.05 does not sample exp(-V)/Z; it samples its own discrete law, which we compute exactly
    (transfer operator). The final histogram must match EM's law within the histogram's own noise and must be
    rejected against exp(-V)/Z and against EM's law at twice the step, by the same threshold.

    Noise floor: the L1 distance between a 20,000-sample histogram and its own law, from 4,000 multinomial
    draws of that law: mean 0.0411, sd 0.0043 (sqrt(2K/(pi n)) = 0.050 for K = 80 is the equal-cell bound);
    threshold = mean + 5 sd = 0.062. Measured over 12 seeds of the same run (``st.simulate``): z-scores of
    L1(hist, EM law) -1.4 .. 2.5; against exp(-V)/Z 18 .. 27; against EM's law at 2 dt 23 .. 29."""
    import sde_toolkit as st

    res = run_experiment(ROOT / "experiments/configs/seed_langevin.toml", tmp_path / "out", progress=False)
    metrics, report = _check_outputs(res)
    stat = metrics["stationary"]
    assert f"{stat['ks']:.4g}" in report
    sim = metrics["simulation"]
    assert sim["n_paths"] == 20000 and sim["n_steps"] == 1000 and sim["dt"] == 0.05
    final = np.asarray(st.io.open(tmp_path / "out" / "seed_langevin.h5").x[-1])[:, 0]
    n = final.size
    hist = np.histogram(final, SEED_EDGES)[0] / n

    pot = st.potentials.from_expression("0.1*x**2 - log(0.2 + cos(2*x)**2)")
    em = _em_law_cells(pot, 0.05, 1000)
    null = np.abs(np.random.default_rng(0).multinomial(n, em / em.sum(), size=4000) / n - em).sum(axis=1)
    threshold = null.mean() + 5 * null.std()
    assert 0.03 < null.mean() < 0.05 and threshold < math.sqrt(2 * (len(SEED_EDGES) - 1) / (math.pi * n)) + 0.02

    def agrees(cells):
        return np.abs(hist - cells).sum() < threshold

    assert agrees(em), (np.abs(hist - em).sum(), threshold)
    # negative controls: the exact density (no O(dt) bias) and EM's law at twice the step
    g = np.arange(-14 + 0.005, 14, 0.01)
    boltz = np.exp(-pot.energy(g[:, None]))
    assert not agrees(_cells(g, boltz / boltz.sum()))
    assert not agrees(_em_law_cells(pot, 0.1, 500))
    # the experiment itself reports the exact-density check as failed and says why
    assert not stat["passed"]
    assert "O(dt)" in report
    # the seed's story: Leimkuhler-Matthews at the same step, seed and cost passes where EM fails
    methods = metrics["methods"]
    assert set(methods) == {"euler_maruyama", "leimkuhler_matthews"}
    assert methods["leimkuhler_matthews"]["passed"] and not methods["euler_maruyama"]["passed"]
    assert methods["leimkuhler_matthews"]["tv"] < 0.5 * methods["euler_maruyama"]["tv"]
    assert any(line.startswith("leimkuhler_matthews at dt = 0.05: stationary-law check PASSED (histogram TV")
               for line in res.headline), res.headline
    assert any(line.startswith("euler_maruyama at dt = 0.05: stationary-law check FAILED") for line in res.headline)
    assert (tmp_path / "out" / "figures" / "methods.png").exists()
    assert (tmp_path / "out" / "seed_langevin.h5").exists()


@pytest.mark.slow
def test_ou_stationary(tmp_path):
    res = run_experiment(ROOT / "experiments/configs/ou_stationary.toml", tmp_path / "out", progress=False)
    metrics, report = _check_outputs(res)
    assert metrics["stationary"]["passed"]
    # exact transitions: ensemble moments equal the exact marginal moments to sampling error
    assert metrics["moments"]["max_abs_mean_error"] < 5 * (1.0 / 20000) ** 0.5 * 2
    assert "PASSED" in report


def _em_transfer_cells(potential, kT, dt, p0_cells, grid, times, sub=5):
    """EM's own law at ``times`` from the cell masses ``p0_cells`` (spread evenly over ``sub`` points per cell):
    the kernel ``x' ~ N(x - dt V'(x), 2 kT dt)`` as a row-normalised transfer matrix on the refined grid."""
    n_cells = p0_cells.size
    h = grid.cell_volume / sub
    x = grid.lower[0] + h / 2 + h * np.arange(n_cells * sub)
    mu = x - dt * potential.grad(x[:, None])[:, 0]
    P = np.exp(-((x[None, :] - mu[:, None]) ** 2) / (4 * kT * dt))
    P /= P.sum(axis=1, keepdims=True)
    p = np.repeat(p0_cells / p0_cells.sum(), sub) / sub
    out, k = [], 0
    for s in np.rint(np.asarray(times) / dt).astype(int):
        for _ in range(s - k):
            p = p @ P
        k = s
        out.append(p.reshape(n_cells, sub).sum(axis=1))
    return np.array(out)


@pytest.mark.slow
def test_double_well_fp_vs_em(tmp_path):
    """FP vs EM at every saved time within the histogram's own noise: per time, the mean + 5 sd of the L1 of a
    50,000-sample histogram of the FP cell masses (multinomial draws; mean 0.019-0.036, sd 0.0027), plus the
    deterministic gap between EM's own law (transfer operator at dt = 0.002 from the same initial histogram) and
    FP (0.0052 at every t > 0). Threshold 0.037-0.055; measured L1 z-scores -2.2 .. 2.7 over the 21 times. The
    former bound, 2 sqrt(2K/(pi n)) = 0.101, let kT 10 % off through (L1 0.048-0.089); the new one rejects it."""
    import sde_toolkit as st

    res = run_experiment(ROOT / "experiments/configs/double_well_fp_vs_em.toml", tmp_path / "out", progress=False)
    metrics, report = _check_outputs(res)
    fp = metrics["fokker_planck"]
    assert f"{fp['l1_final']:.4g}" in report
    traj = st.Trajectory.from_file(tmp_path / "out" / "double_well_em.h5")
    n = traj.n_paths
    pot = st.potentials.DoubleWell(a=1.0, b=1.0)
    grid = st.Grid(-2.5, 2.5, 200, boundary="reflecting")
    cmp = st.FokkerPlanck(st.OverdampedLangevin(pot, kT=0.5, dim=1), grid).compare(traj, dt=0.01)  # FP dt
    assert abs(cmp.l1.max() - fp["l1_max"]) < 1e-12  # the same comparison the experiment reports
    rng = np.random.default_rng(0)
    fp_cells = cmp.p * grid.cell_volume
    floor = []
    for q in fp_cells:
        null = np.abs(rng.multinomial(n, q / q.sum(), size=1000) / n - q).sum(axis=1)
        floor.append(null.mean() + 5 * null.std())
    em_law = _em_transfer_cells(pot, 0.5, 0.002, cmp.histograms[0] * grid.cell_volume, grid, cmp.t)
    gap = np.abs(em_law - fp_cells).sum(axis=1)
    assert np.all(gap < 0.01), gap  # EM's time bias and FP's grid error, small next to the noise
    threshold = np.array(floor) + gap
    assert np.all(threshold < fp["histogram_noise_l1_estimate"] + 0.01)
    assert np.all(cmp.l1 < threshold), (cmp.l1, threshold)
    # negative controls: the same check on FP at a temperature 10 % off rejects it at every t >= 1
    late = cmp.t >= 1.0
    for kT in (0.45, 0.55):
        wrong = st.FokkerPlanck(st.OverdampedLangevin(pot, kT=kT, dim=1), grid).compare(traj)
        assert np.all(wrong.l1[late] > threshold[late]), (kT, wrong.l1, threshold)


@pytest.mark.slow
def test_kramers_escape(tmp_path):
    res = run_experiment(ROOT / "experiments/configs/kramers_escape.toml", tmp_path / "out", progress=False)
    metrics, report = _check_outputs(res)
    k = metrics["kramers"]
    # EM vs the FP adjoint: within 4 standard errors of the EM estimate (plus EM's O(dt) bias, small here)
    assert abs(k["mfpt_em"] - k["mfpt_fp"]) < 4 * k["mfpt_em_se"] + 0.03 * k["mfpt_fp"]
    # Kramers' formula is asymptotic: at a barrier of 4 kT it is within 25 % of the exact MFPT
    assert k["kramers_vs_fp_rel"] < 0.25
    assert "Kramers" in report


@pytest.mark.slow
def test_ddpm_spiral(tmp_path):
    res = run_experiment(ROOT / "experiments/configs/ddpm_spiral.toml", tmp_path / "out", progress=False)
    metrics, report = _check_outputs(res)
    d = metrics["ddpm"]
    # issue 5's target: within 2x the noise floor (two fresh data sets), for DDPM and for the reverse SDE
    assert d["sliced_wasserstein"] < 2 * d["sliced_wasserstein_noise_floor"]
    assert d["reverse_sde_sliced_wasserstein"] < 2 * d["sliced_wasserstein_noise_floor"]
    assert "reverse_process" in report and (tmp_path / "out" / "reverse_sde.h5").exists()


@pytest.mark.slow
def test_mcmc_vs_score(tmp_path):
    res = run_experiment(ROOT / "experiments/configs/mcmc_vs_score.toml", tmp_path / "out", progress=False)
    metrics, report = _check_outputs(res)
    rows = {(r["target"], r["method"]): r for r in metrics["mcmc_vs_score"]}
    for target in ("seed_1d", "gaussian_mixture_2d"):
        assert rows[(target, "MALA exact score")]["passed"]
        assert rows[(target, "Fokker–Planck stationary()")]["TV"] < 1e-3
    assert "ESS/s" in report


def test_unknown_key_names_table_and_key(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[experiment]\nkind = "mcmc_vs_score"\n[compare]\nn_chain = 10\n')
    with pytest.raises(ConfigError) as e:
        run_experiment(cfg, tmp_path / "o")
    assert "[compare]" in str(e.value) and "n_chain" in str(e.value)
    r = subprocess.run([sys.executable, "-m", "sde_toolkit.cli", "run", str(cfg), "-o", str(tmp_path / "o2")],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "n_chain" in r.stderr and "Traceback" not in r.stderr


def test_non_empty_outdir_needs_overwrite(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="overwrite"):
        run_experiment(ROOT / "experiments/configs/ou_stationary.toml", out)
    assert (out / "keep.txt").read_text() == "x"


def test_kind_required_without_simulation_tables(tmp_path):
    cfg = tmp_path / "k.toml"
    cfg.write_text("[compare]\nseed = 1\n")
    with pytest.raises(ConfigError, match="kind"):
        run_experiment(cfg, tmp_path / "o")


SMALL_OU = (
    '[sde]\ntype = "ornstein_uhlenbeck"\ntheta = 1.0\nsigma = 1.0\n'
    '[initial]\ndistribution = "point"\nx = 1.0\nn_paths = 2000\n'
    '[integrate]\nmethod = "exact"\ndt = 0.1\nt1 = 10.0\nseed = 0\n'  # e^-10: the stationary law
    '[output]\npath = "{path}"\n'
)


def _no_nan(name):
    raise ValueError(f"metrics.json is not strict JSON: {name}")


def test_run_cli_prints_report_location(tmp_path):
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_OU.format(path="ou.h5"))
    r = subprocess.run([sys.executable, "-m", "sde_toolkit.cli", "run", str(cfg), "-o", str(tmp_path / "o"),
                        "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "report:" in r.stdout and str(tmp_path / "o" / "report.md") in r.stdout
    m = json.loads((tmp_path / "o" / "metrics.json").read_text(), parse_constant=_no_nan)
    assert m["stationary"]["passed"]
    # the verdicts, each with the number behind it, in the terminal
    assert "result:  exact at dt = 0.1: stationary-law check PASSED (histogram TV " in r.stdout
    assert f"< threshold {m['stationary']['tv_threshold']:.4f})" in r.stdout
    assert "result:  exact moments: ensemble mean of x[0] within" in r.stdout
    # a rerun into the same folder is refused (no silent suffix), --overwrite writes into it
    r2 = subprocess.run([sys.executable, "-m", "sde_toolkit.cli", "run", str(cfg), "-o", str(tmp_path / "o"),
                         "--no-progress"], capture_output=True, text=True)
    assert r2.returncode == 2 and "--overwrite" in r2.stderr and "Traceback" not in r2.stderr
    r3 = subprocess.run([sys.executable, "-m", "sde_toolkit.cli", "run", str(cfg), "-o", str(tmp_path / "o"),
                         "--overwrite"], capture_output=True, text=True)
    assert r3.returncode == 0, r3.stderr
    # without --no-progress each step says on stderr what it is doing, with the elapsed time
    assert re.search(r"\[\s*\d+\.\d s\] simulating 2000 paths with exact", r3.stderr), r3.stderr
    assert "comparing the final states with the stationary law" in r3.stderr
    assert "simulating" not in r.stdout + r.stderr  # --no-progress: silent


def test_default_outdir_is_refused_when_it_exists_and_output_path_folder_is_kept(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "small.toml"
    cfg.write_text(SMALL_OU.format(path="data/ou.h5"))
    res = run_experiment(cfg, progress=False)
    assert res.outdir == Path("runs") / "small"
    assert (tmp_path / "runs" / "small" / "data" / "ou.h5").exists()  # [output] path's folder kept in OUTDIR
    assert res.data == [Path("runs") / "small" / "data" / "ou.h5"]
    with pytest.raises(ConfigError, match="--overwrite"):
        run_experiment(cfg, progress=False)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["small"]  # no small-2
    again = run_experiment(cfg, progress=False, overwrite=True)
    assert again.outdir == res.outdir


def test_metrics_json_is_strict_json_with_null(tmp_path):
    def nan_metrics(ctx):
        ctx.metrics["numbers"] = {"missing": float("nan"), "big": np.inf, "arr": np.array([1.0, np.nan]), "ok": 2.5}

    register_experiment("third_party_nan", nan_metrics, replace=True)
    run_experiment({"experiment": {"kind": "third_party_nan"}}, tmp_path / "o")
    text = (tmp_path / "o" / "metrics.json").read_text()
    m = json.loads(text, parse_constant=_no_nan)
    assert m["numbers"] == {"missing": None, "big": None, "arr": [1.0, None], "ok": 2.5}
    with pytest.raises(ValueError, match="strict"):  # negative control: the old encoding is refused
        json.loads(json.dumps({"x": float("nan")}), parse_constant=_no_nan)


def test_main_job_prints_its_verdicts(tmp_path):
    """The README's main job, at 2,000 paths and t1 = 20 (same step, seed and methods): its stdout states the
    stationary-law verdict of each method with the TV and threshold behind it, and the report says the same."""
    src = (ROOT / "experiments/configs/seed_langevin.toml").read_text()
    cfg = tmp_path / "seed_langevin.toml"
    cfg.write_text(src.replace("n_paths = 20000", "n_paths = 2000").replace("t1 = 50.0", "t1 = 20.0"))
    r = subprocess.run([sys.executable, "-m", "sde_toolkit.cli", "run", str(cfg), "-o", str(tmp_path / "o"),
                        "--no-progress"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "o" / "metrics.json").read_text(), parse_constant=_no_nan)
    for method, rep in m["methods"].items():
        word = "PASSED" if rep["passed"] else "FAILED"
        line = next(ln for ln in r.stdout.splitlines() if ln.startswith(f"  result:  {method} at dt = 0.05"))
        assert f"stationary-law check {word} (" in line and "threshold" in line, line
        assert re.search(r"\d\.\d{4} [<>]=? threshold \d\.\d{4}\)", line), line
    assert "**Result.**" in (tmp_path / "o" / "report.md").read_text()


def _tiny(ctx):
    """A third-party experiment: one metric, one section, one data file."""
    n = 7
    (ctx.outdir / "tiny.txt").write_text("data")
    ctx.data.append(ctx.outdir / "tiny.txt")
    ctx.metrics["tiny"] = {"answer": n * 6, "kind_seen": ctx.kind}
    ctx.section("Tiny", "the answer is 42")


def test_third_party_experiment_runs_through_run_experiment(tmp_path):
    register_experiment("third_party_tiny", _tiny, description="a test experiment", replace=True)
    assert EXPERIMENTS["third_party_tiny"].description == "a test experiment"
    res = run_experiment({"experiment": {"kind": "third_party_tiny", "title": "Tiny"}}, tmp_path / "o")
    assert res.kind == "third_party_tiny" and res.data == [tmp_path / "o" / "tiny.txt"]
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["tiny"] == {"answer": 42, "kind_seen": "third_party_tiny"}
    assert metrics["experiment"]["kind"] == "third_party_tiny"
    report = res.report.read_text()
    assert report.startswith("# Tiny") and "the answer is 42" in report


def test_register_experiment_as_decorator_needs_and_clashes(tmp_path):
    @register_experiment("third_party_needs_sde", description="needs [sde]", needs=("sde",), replace=True)
    def needs_sde(ctx):
        ctx.metrics["sde_type"] = ctx.cfg["sde"]["type"]

    assert needs_sde.__name__ == "needs_sde"  # the decorator hands the function back
    assert EXPERIMENTS["third_party_needs_sde"].needs == ("sde",)
    with pytest.raises(ConfigError, match=r"needs a \[sde\] table"):
        run_experiment({"experiment": {"kind": "third_party_needs_sde"}}, tmp_path / "o")
    assert not (tmp_path / "o").exists()  # refused before any work
    res = run_experiment({"experiment": {"kind": "third_party_needs_sde"},
                          "sde": {"type": "ornstein_uhlenbeck", "theta": 1.0, "sigma": 1.0}}, tmp_path / "o")
    assert res.metrics["sde_type"] == "ornstein_uhlenbeck"
    with pytest.raises(ValueError, match="already registered"):
        register_experiment("simulate", needs_sde)
    with pytest.raises(TypeError):
        EXPERIMENTS["x"] = None  # a read-only view: registration goes through register_experiment
    with pytest.raises(ConfigError, match="unknown experiment kind 'no_such_kind'"):
        run_experiment({"experiment": {"kind": "no_such_kind"}}, tmp_path / "o2")
    assert {"simulate", "fp_vs_em", "kramers", "ddpm", "mcmc_vs_score"} <= set(EXPERIMENTS)


def test_torch_stays_unimported_unless_a_torch_kind_runs(tmp_path):
    code = (
        "import sys, sde_toolkit.runner as r\n"
        "r.register_experiment('plain', lambda ctx: ctx.metrics.update(ok=True))\n"
        f"r.run_experiment({{'experiment': {{'kind': 'plain'}}}}, {str(tmp_path / 'o')!r})\n"
        "print('torch' in sys.modules, 'sde_toolkit.runner.score' in sys.modules)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
