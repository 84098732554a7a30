"""CLI: exit codes, messages without tracebacks, simulate/resume/inspect/export, the runner hook."""

from __future__ import annotations

import importlib.machinery
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit import cli
from sde_toolkit.config import tomllib  # tomllib, or tomli on Python 3.10

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
    bad.write_bytes(cli.HDF5_SIGNATURE + b"\0" * 40)  # an HDF5 signature on a truncated file: h5py fails
    assert cli.main(["inspect", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "error" in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["inspect"], ["inspect", "--json"], ["resume"],
                                     ["export", "--format", "npz", "-o", "OUT"]])
def test_non_hdf5_input_is_named_exit_2(tmp_path, capsys, command):
    bad = tmp_path / "notes.txt"
    bad.write_text("a text file, not a trajectory\n" * 100)
    argv = [a.replace("OUT", str(tmp_path / "o.npz")) for a in command]
    assert cli.main([argv[0], str(bad), *argv[1:]]) == 2
    err = capsys.readouterr().err
    assert f"not an HDF5 file: {bad}" in err and "Traceback" not in err
    assert not (tmp_path / "o.npz").exists()


def test_hdf5_with_a_user_block_is_accepted(tmp_path, capsys):
    import h5py

    p = tmp_path / "ub.h5"
    with h5py.File(p, "w", userblock_size=1024) as f:
        f["a"] = np.arange(3)
    assert cli.main(["inspect", str(p), "--no-verify"]) == 0
    assert "a  (3,) int64" in capsys.readouterr().out


def test_inspect_into_a_closed_pipe_is_quiet(tmp_path):
    """``inspect --json RUN.h5 | head`` when head has gone: no Broken-pipe message, exit 141 (Python docs'
    recipe: devnull onto stdout). The pipe's read end is closed before the command writes, so it cannot win."""
    import os
    import subprocess

    out = tmp_path / "r.h5"
    assert cli.main(["simulate", str(_cfg(tmp_path)), "-o", str(out), "--no-progress"]) == 0
    r_fd, w_fd = os.pipe()
    os.close(r_fd)
    try:
        proc = subprocess.run([sys.executable, "-m", "sde_toolkit.cli", "inspect", "--json", str(out)],
                              stdout=w_fd, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w_fd)
    assert proc.returncode == cli.EXIT_BROKEN_PIPE == 141, proc.stderr
    assert proc.stderr == "", proc.stderr


def test_incomplete_input_error_names_the_cli_flag(tmp_path, capsys):
    text = SMALL.format(extra="max_abs = 1e6").replace("theta = 1.0", "theta = -60.0")
    out = tmp_path / "d.h5"
    assert cli.main(["simulate", str(_cfg(tmp_path, text=text)), "-o", str(out)]) == 3
    capsys.readouterr()
    assert cli.main(["export", str(out), "--format", "npz", "-o", str(tmp_path / "d.npz")]) == 2
    err = capsys.readouterr().err
    assert "--allow-partial" in err and "allow_partial=True" not in err
    with pytest.warns(st.io.IncompleteRunWarning):
        assert cli.main(["export", str(out), "--format", "npz", "-o", str(tmp_path / "d.npz"),
                         "--allow-partial"]) == 0
    assert (tmp_path / "d.npz").exists()


CONFIGS = sorted((Path(__file__).resolve().parents[1] / "experiments" / "configs").glob("*.toml"))


def _short_copy(src: Path, dst: Path) -> Path:
    """The config with t1 = two saved frames and at most 200 paths (every other key as shipped)."""
    raw = tomllib.loads(src.read_text())
    text = src.read_text()
    if "integrate" in raw:
        it = raw["integrate"]
        t1 = it.get("t0", 0.0) + 2 * it["dt"] * it.get("save_every", 1)
        text = re.sub(r"(?m)^t1 = .*$", f"t1 = {t1!r}", text)
        text = re.sub(r"(?m)^n_paths = .*$", "n_paths = 200", text)
    dst.write_text(text)
    return dst


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_shipped_config_runs_with_simulate(tmp_path, capsys, config):
    raw = tomllib.loads(config.read_text())
    short = _short_copy(config, tmp_path / config.name)
    out = tmp_path / "run.h5"
    code = cli.main(["simulate", str(short), "-o", str(out), "--no-progress"])
    err = capsys.readouterr().err
    if "sde" not in raw:  # score experiments have no SDE to simulate: refused with a pointer to `run`
        assert code == 2 and "sde-toolkit run" in err and "Traceback" not in err
        return
    assert code == 0, err
    extra = sorted(set(raw) - {"sde", "initial", "integrate", "output"})
    assert all(f"[{t}]" in err for t in extra) and "ignoring" in err
    run = st.io.open(out)
    assert run.status == "complete" and run.x.shape[0] == 3 and run.x.shape[1] == 200
    assert set(run.config) <= {"sde", "initial", "integrate", "output"}  # only what simulate used is stored
    assert run.config["sde"]["type"] == raw["sde"]["type"]


def test_simulate_still_refuses_unknown_tables_and_keys(tmp_path, capsys):
    src = CONFIGS[[c.stem for c in CONFIGS].index("double_well_fp_vs_em")]
    text = src.read_text()
    for bad, name in ((text + "\n[experimnt]\nkind = 'x'\n", "experimnt"),
                      (text.replace("[fokker_planck]\n", "[fokker_planck]\ncells = 3\n"), "cells")):
        assert cli.main(["simulate", str(_cfg(tmp_path, text=bad)), "-o", str(tmp_path / "x.h5")]) == 2
        assert name in capsys.readouterr().err
        assert not (tmp_path / "x.h5").exists()


def _help_options(parser):
    """``{subcommand: [option strings]}`` of the parser, as ``--help`` lists them."""
    import argparse

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    out = {}
    for name, p in sub.choices.items():
        opts = []
        for a in p._actions:
            opts += [o for o in a.option_strings if o not in ("-h", "--help")]
        out[name] = opts
    return out


def test_docs_cli_matches_help():
    """Every subcommand and every option of ``--help`` is in docs/cli.md, in that subcommand's synopsis."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    synopsis = doc[doc.index("```"):doc.index("```", doc.index("```") + 3)]
    blocks = re.split(r"\n(?=sde-toolkit )", synopsis)
    parser = cli.build_parser()
    for opt in ("--debug", "--version"):
        assert opt in blocks[0] or opt in synopsis
    for name, opts in _help_options(parser).items():
        block = next((b for b in blocks if b.startswith(f"sde-toolkit {name} ")), None)
        assert block is not None, f"docs/cli.md has no synopsis for `sde-toolkit {name}`"
        for o in opts:
            assert re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", block), f"{name}: {o} missing in docs/cli.md"
        assert f"`{name}`" in doc  # and a paragraph about it


def test_docs_cli_check_has_teeth():
    """Negative control: an option added to the parser but not to the page is caught."""
    parser = cli.build_parser()
    opts = _help_options(parser)
    opts["inspect"].append("--no-such-option")
    doc = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    block = next(b for b in re.split(r"\n(?=sde-toolkit )", doc) if b.startswith("sde-toolkit inspect "))
    assert not all(re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", block) for o in opts["inspect"])


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
