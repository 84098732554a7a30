"""Generate ``golden_ou.h5``: a small H5MD trajectory (positions + observables) committed as a format fixture.

Run once from the repository root: ``python tests/resources/make_golden.py``. Never regenerate it to make a
test pass: the point is that files written by this version stay readable by later versions.
"""

from __future__ import annotations

from pathlib import Path

from sde_toolkit.config import load_config
from sde_toolkit.integrate import simulate
from sde_toolkit.runs import prepare_simulation

HERE = Path(__file__).resolve().parent
CONFIG = {
    "sde": {"type": "ornstein_uhlenbeck", "theta": 1.5, "sigma": 0.7, "mu": 0.25, "dim": 2},
    "initial": {"distribution": "uniform", "low": -1.0, "high": 1.0, "n_paths": 24, "seed": 7},
    "integrate": {"dt": 0.02, "t1": 1.0, "save_every": 5, "seed": 2024, "driver": "batched"},
    "output": {"observables": ["mean", "variance", "histogram"], "histogram_bins": 6,
               "histogram_range": [-2.0, 2.0], "chunk_frames": 4},
}


def main(out: Path = HERE / "golden_ou.h5") -> Path:
    job = prepare_simulation(load_config(CONFIG), out=out, overwrite=True)
    simulate(job.sde, job.x0, out=out, progress=False, config=job.config, **job.integrate, **job.output)
    return out


if __name__ == "__main__":
    print(main())
