"""Potential expressions are parsed by a whitelist grammar and never evaluated: code-execution payloads through
the API, a config (``sde-toolkit simulate`` and ``run``) and an edited run file are refused before anything runs;
legitimate expressions (the seed's, the documented 2-D/3-D ones) keep their exact gradients."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.sde._expr import MAX_EXPONENT, ExpressionError

ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = [
    "__import__('os').system('touch {marker}') + x",
    "().__class__.__base__.__subclasses__()",
    "exec('open(\"{marker}\", \"w\")')",
    "getattr(x, 'real')",
    "lambda: 0",
    "x.__class__",
    "[c for c in ()]",
]
HANGS = ["x**(10**10**10)", "x**(9**9**9)", "2**(2**(2**(2**10)))*x", "x**1e300"]


@pytest.mark.parametrize("payload", PAYLOADS + HANGS)
def test_payloads_are_refused_through_the_api(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError, match="from_expression"):
        st.potentials.from_expression(payload.format(marker=marker))
    with pytest.raises(ValueError):
        st.OverdampedLangevin(payload.format(marker=marker))
    assert not marker.exists() and not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("expr,token", [
    ("nan", "'nan'"), ("I*x**2", "'I'"), ("oo + x", "'oo'"), ("f(x)", "'f'"), ("x.real", "Attribute"),
    ("x < 1", "Compare"), ("x**y", "numeric exponent"), ("'a' * x", "literal"), ("True + x", "literal"),
    ("exp(x, 1)", "argument"), ("log(-1) + x", "finite real"), ("1/0 + x", "finite real"), ("exp(x", "valid"),
])
def test_refusals_name_the_token_and_its_position(expr, token):
    with pytest.raises(ExpressionError, match=token) as info:
        st.potentials.from_expression(expr, ("x", "y") if "y" in expr else ("x",))
    assert "from_expression" in str(info.value)
    if info.value.position is not None:
        assert 0 <= info.value.position <= len(expr)


def test_limits_on_length_and_depth():
    with pytest.raises(ExpressionError, match="longer than"):
        st.potentials.from_expression("x+" * 1500 + "x")
    with pytest.raises(ExpressionError, match="nested deeper"):
        st.potentials.from_expression("-" * 100 + "x")
    with pytest.raises(ExpressionError, match="beyond"):
        st.potentials.from_expression(f"x**{MAX_EXPONENT + 1}")
    st.potentials.from_expression(f"x**{MAX_EXPONENT}")  # the limit itself is fine


@pytest.mark.parametrize("expr,variables,point", [
    ("0.1*x**2 - log(0.2 + cos(2*x)**2)", ("x",), [0.7]),
    ("(x**2-1)**2 + y**2 + 0.3*x*y", ("x", "y"), [0.5, -1.2]),
    ("0.5*(x**2 + y**2 + z**2) + 0.1*cos(x*y*z)", ("x", "y", "z"), [0.3, -0.4, 1.1]),
    ("exp(-x**2/2) + sqrt(1 + x**2) + abs(x) + erf(x) + atan2(x, 2) + tanh(x)", ("x",), [0.9]),
])
def test_legitimate_expressions_keep_exact_gradients(expr, variables, point):
    pot = st.potentials.from_expression(expr, variables)
    x = np.array([point])
    g = pot.grad(x)
    eps = 1e-6
    fd = np.array([(pot.energy(x + eps * e) - pot.energy(x - eps * e))[0] / (2 * eps) for e in np.eye(len(point))])
    np.testing.assert_allclose(g[0], fd, rtol=1e-7, atol=1e-8)
    out = np.zeros(len(point))
    pot.numba_grad()(x[0], out)
    np.testing.assert_allclose(out, g[0], rtol=1e-13, atol=1e-14)
    assert pot.numba_energy()(x[0]) == pytest.approx(pot.energy(x)[0], rel=1e-13)


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "sde_toolkit.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}, timeout=300)


CONFIG = """
[sde]
type = "overdamped_langevin"
potential = "{potential}"

[initial]
distribution = "uniform"
low = -1.0
high = 1.0
n_paths = 8

[integrate]
dt = 0.01
t1 = 0.1
seed = 0
"""


@pytest.mark.slow
def test_payload_in_a_config_is_refused_by_simulate_and_run(tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "bad.toml"
    cfg.write_text(CONFIG.format(potential=PAYLOADS[0].format(marker=marker).replace('"', '\\"')))
    for args in (["simulate", str(cfg), "-o", str(tmp_path / "r.h5")], ["run", str(cfg), "-o", str(tmp_path / "o")]):
        r = _cli(args, tmp_path)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert "not allowed" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists() and not (tmp_path / "r.h5").exists() and not (tmp_path / "r.h5.partial").exists()


@pytest.mark.slow
def test_payload_planted_in_a_run_file_never_runs_on_resume(tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "ok.toml"
    cfg.write_text(CONFIG.format(potential="(x**2-1)**2"))
    out = tmp_path / "r.h5"
    assert _cli(["simulate", str(cfg), "-o", str(out)], tmp_path).returncode == 0
    with h5py.File(out, "r+") as f:  # an attacker edits the stored config and marks the run interrupted
        g = f["parameters/sde_toolkit"]
        config = json.loads(g.attrs["config"])
        config["sde"]["potential"] = PAYLOADS[0].format(marker=marker)
        g.attrs["config"] = json.dumps(config)
        g.attrs["status"] = "interrupted"
    for extra in ([], ["--force"]):
        r = _cli(["resume", str(out), *extra], tmp_path)
        assert r.returncode != 0, (extra, r.stdout, r.stderr)
    assert not marker.exists()
