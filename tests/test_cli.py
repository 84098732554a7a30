"""CLI: exit codes, messages without tracebacks, simulate/resume/inspect/export, the runner hook."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit import cli

SMALL = """
[sde]
type = "ornstein_uhlenbeck"
theta = 1.0
sigma = 0.5
dim = 2

[initial]
distribution = "normal"
n_paths = 16

[integrate]
dt = 0.01
t1 = 0.5
save_every = 5
seed = 2
driver = "batched"
{extra}
"""


def _cfg(tmp_path, extra="", text=None):
    p = tmp_path / "c.toml"
    p.write_text(text if text is not None else SMALL.format(extra=extra))
    return p


def test_simulate_inspect_export_success(tmp_path, capsys):
    out = tmp_path / "r.h5"
    assert cli.main(["simulate", str(_cfg(tmp_path)), "-o", str(out), "--no-progress"]) == 0
    run = st.io.open(out)
    assert run.status == "complete" and run.x.shape == (11, 16, 2)
    assert run.config["integrate"]["seed"] == 2 and run.config["sde"]["type"] == "ornstein_uhlenbeck"
    capsys.readouterr()
    assert cli.main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "status: complete" in text and "value  (11, 16, 2) float64" in text and '"ornstein_uhlenbeck"' in text
    assert cli.main(["inspect", "--json", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["n_committed"] == 11
    assert cli.main(["export", str(out), "--format", "npz", "-o", str(tmp_path / "r.npz")]) == 0
    with np.load(tmp_path / "r.npz") as d:
        np.testing.assert_array_equal(d["x"], run.x[:])


def test_config_error_exit_2_without_traceback(tmp_path, capsys):
    cfg = _cfg(tmp_path, extra="colour = 1")
    assert cli.main(["simulate", str(cfg), "-o", str(tmp_path / "r.h5")]) == 2
    err = capsys.readouterr().err
    assert "[integrate] colour" in err and "Traceback" not in err
    assert not (tmp_path / "r.h5").exists() and not (tmp_path / "r.h5.partial").exists()
    assert cli.main(["--debug", "simulate", str(cfg), "-o", str(tmp_path / "r.h5")]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize("extra, text", [
    ('seed = "two"', None),
    (None, SMALL.format(extra="").replace("dt = 0.01\n", "")),
])
def test_wrong_type_or_missing_key_exit_2(tmp_path, extra, text):
    assert cli.main(["simulate", str(_cfg(tmp_path, extra or "", text)), "-o", str(tmp_path / "r.h5")]) == 2


def test_output_folder_missing_and_existing_output(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    assert cli.main(["simulate", str(cfg), "-o", str(tmp_path / "no" / "r.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    out = tmp_path / "r.h5"
    out.write_bytes(b"precious")
    assert cli.main(["simulate", str(cfg), "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"
    assert cli.main(["simulate", str(cfg), "-o", str(out), "--overwrite", "--no-progress"]) == 0
    assert st.io.open(out).status == "complete"


def test_no_output_given(tmp_path, capsys):
    assert cli.main(["simulate", str(_cfg(tmp_path))]) == 2
    assert "-o" in capsys.readouterr().err


def test_diverged_exit_3(tmp_path, capsys):
    text = SMALL.format(extra="max_abs = 1e6").replace("theta = 1.0", "theta = -60.0")
    out = tmp_path / "d.h5"
    assert cli.main(["simulate", str(_cfg(tmp_path, text=text)), "-o", str(out)]) == 3
    assert "diverged" in capsys.readouterr().err
    with pytest.warns(st.io.IncompleteRunWarning):
        run = st.io.open(out, allow_partial=True)
    assert run.status == "diverged" and run.n_committed >= 1


def test_inspect_summary_comes_from_io(tmp_path):
    out = tmp_path / "r.h5"
    assert cli.main(["simulate", str(_cfg(tmp_path)), "-o", str(out), "--no-progress"]) == 0
    info = st.io.summarize(out)
    assert cli.summarize(out) == info
    assert info["status"] == "complete" and info["n_committed"] == info["n_frames_expected"] == 11
    assert info["parameters"]["plan"]["seed"] == {"entropy": "2", "spawn_key": []} and info["parameters"]["config"]["integrate"]["dt"] == 0.01
    items = {it["path"]: it for it in info["items"]}
    assert items["/particles/all/position/value"]["shape"] == [11, 16, 2]
    # a killed run is found at its .partial name
    out.rename(st.io.partial_path(tmp_path / "k.h5"))
    assert st.io.summarize(tmp_path / "k.h5")["file"].endswith("k.h5.partial")
    with pytest.raises(FileNotFoundError):
        st.io.summarize(tmp_path / "none.h5")


def test_resume_is_the_runs_layer():
    import sde_toolkit.runs

    assert st.resume is sde_toolkit.runs.resume
    assert st.io.ResumeError is sde_toolkit.runs.ResumeError


def test_runtime_failure_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not an hdf5 file")
    assert cli.main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


def test_resume_via_cli_and_usage_errors(tmp_path, capsys):
    out = tmp_path / "r.h5"
    assert cli.main(["simulate", str(_cfg(tmp_path)), "-o", str(out), "--no-progress"]) == 0
    assert cli.main(["resume", str(out)]) == 2
    assert "already complete" in capsys.readouterr().err
    assert cli.main(["resume", str(tmp_path / "none.h5")]) == 2
    with pytest.raises(SystemExit) as info:
        cli.main(["simulate"])
    assert info.value.code == 2


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and st.__version__ in capsys.readouterr().out


def test_runner_hook_registers_run(monkeypatch, capsys):
    fake = types.ModuleType("sde_toolkit.runner")
    fake.__spec__ = importlib.machinery.ModuleSpec("sde_toolkit.runner", None)
    seen = {}

    def add_parser(sub):
        p = sub.add_parser("run")
        p.add_argument("config")
        p.add_argument("-o", "--output")
        return p

    def run(args):
        seen["config"] = args.config
        return 0

    fake.add_parser, fake.run = add_parser, run
    monkeypatch.setitem(sys.modules, "sde_toolkit.runner", fake)
    assert cli.main(["run", "exp.toml", "-o", "outdir"]) == 0
    assert seen["config"] == "exp.toml"
