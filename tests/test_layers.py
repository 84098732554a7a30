"""The package's imports point down the layer stack (``.ci/check_layers.py``, also run by ``.ci/run``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_against_the_layer_direction():
    r = subprocess.run([sys.executable, str(ROOT / ".ci" / "check_layers.py"), str(ROOT / "sde_toolkit")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "layers: 0 import(s) against the direction" in r.stdout
    assert "not in the layer table" not in r.stdout


def test_cli_imports_no_private_names_of_other_packages():
    import ast

    tree = ast.parse((ROOT / "sde_toolkit" / "cli.py").read_text(encoding="utf-8"))
    private = [(node.lineno, a.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for a in node.names if a.name.startswith("_") and node.module not in ("__future__", "_version")]
    assert private == []
