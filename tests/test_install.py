"""The lean install: ``pip install .`` (no extras) gives a package whose import, simulate, Fokker–Planck, MCMC
and the main job run without ever importing torch, and whose score models say which extra to install.

How. A true fresh venv with ``pip install .`` resolves and installs numpy, numba, scipy, matplotlib, h5py, tqdm
and sympy: 1 min 41 s on the 2-core CI machine with its package mirror (measured once; 5.9 GB and several
minutes more before torch moved to the ``score`` extra). That is too slow for every CI run, so the test makes a
venv with ``--system-site-packages`` (the core dependencies come from the CI environment) and installs *this
checkout* into it with ``pip install --no-deps`` from a copy of the source (a real wheel
build and install, not the editable one). What the fresh venv would add, the dependency list, is checked from
the installed metadata: no core requirement names torch. The work then runs in a subprocess of that venv's
Python, outside the checkout, asserting that the installed copy was imported and that ``torch`` is not in
``sys.modules``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

JOB = r"""
import json, sys, tomllib
from pathlib import Path
import numpy as np
import sde_toolkit as st

assert "site-packages" in st.__file__, st.__file__   # the installed copy, not the checkout
sde = st.OverdampedLangevin(st.potentials.DoubleWell(), kT=1.0)
traj = st.simulate(sde, np.zeros((50, 1)), t1=0.5, dt=0.01, save_every=10, seed=0, out="sim.h5", progress=False)
assert traj.x.shape == (6, 50, 1)
fp = st.FokkerPlanck(sde, st.Grid(-3.0, 3.0, 64))
p = fp.stationary()
assert abs(p.sum() * 6.0 / 64 - 1.0) < 1e-12
res = fp.evolve(np.full(64, 1 / 6.0), t1=0.1, dt=0.01)
ch = st.mcmc.langevin(st.potentials.DoubleWell(), np.zeros((4, 1)), step=0.1, n_steps=200, method="mala", seed=1)
assert ch.samples.shape[1] == 4 and 0 < ch.acceptance_rate <= 1
# the main job (README), at a size for a test: the shipped config with fewer particles and a shorter run
from sde_toolkit.runner import run_experiment
cfg = tomllib.loads(Path(sys.argv[1]).read_text())
cfg["initial"]["n_paths"] = 2000
cfg["integrate"]["t1"] = 5.0
cfg["output"]["path"] = "seed_langevin.h5"
result = run_experiment(cfg, "main_job", progress=False)
assert (Path("main_job") / "metrics.json").exists()
json.loads((Path("main_job") / "metrics.json").read_text())
from sde_toolkit.cli import main
assert main(["inspect", "sim.h5"]) == 0
print("TORCH_IMPORTED", "torch" in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))[:5])
"""

NO_TORCH = r"""
import sys
sys.modules["torch"] = None   # as if torch were not installed: `import torch` raises ImportError
import sde_toolkit as st
try:
    st.score
except ImportError as exc:
    print("SCORE_ERROR", exc)
else:
    raise SystemExit("sde_toolkit.score imported without torch")
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    d = tmp_path_factory.mktemp("install")
    src = d / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "sde_toolkit", src / "sde_toolkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env_dir = d / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)], check=True, timeout=120)
    py = env_dir / "bin" / "python"
    env = _clean_env()
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(src)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return py, d


def _clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.setdefault("NUMBA_CACHE_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "numba-install-test"))
    return env


def test_core_requirements_leave_torch_to_the_score_extra(venv):
    py, _ = venv
    code = "import importlib.metadata as m, json; print(json.dumps(m.requires('sde_toolkit')))"
    r = subprocess.run([str(py), "-c", code], env=_clean_env(), capture_output=True, text=True, timeout=60,
                       cwd=venv[1])
    assert r.returncode == 0, r.stderr
    reqs = json.loads(r.stdout)
    core = [q for q in reqs if "extra ==" not in q]
    names = {q.split(";")[0].split(">")[0].split("=")[0].split("[")[0].strip().lower() for q in core}
    assert names >= {"numpy", "numba", "scipy", "matplotlib", "h5py", "tqdm", "sympy"}
    assert "torch" not in names, core
    assert any(q.startswith("torch") and 'extra == "score"' in q for q in reqs), reqs
    for extra in ("netcdf", "arviz", "dask", "bench", "all", "dev"):
        assert any(f'extra == "{extra}"' in q for q in reqs), extra


@pytest.mark.slow
def test_lean_install_runs_everything_without_torch(venv):
    py, d = venv
    work = d / "work"
    work.mkdir()
    r = subprocess.run([str(py), "-c", JOB, str(ROOT / "experiments" / "configs" / "seed_langevin.toml")],
                       env=_clean_env(), capture_output=True, text=True, timeout=600, cwd=work)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "TORCH_IMPORTED False []" in r.stdout, r.stdout[-2000:]


def test_score_without_torch_names_the_extra(venv):
    py, d = venv
    r = subprocess.run([str(py), "-c", NO_TORCH], env=_clean_env(), capture_output=True, text=True, timeout=120,
                       cwd=d)
    assert r.returncode == 0, r.stdout + r.stderr
    assert 'pip install "sde_toolkit[score]"' in r.stdout
