"""DDPM on the spiral (the seed's toy model): trains, samples and saves the "Gaussian blob to spiral" figure.

Usage: python experiments/ddpm_spiral.py [OUTDIR] [--steps 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json

from sde_toolkit.score.experiments import run_ddpm_spiral


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("outdir", nargs="?", default="experiments/output/ddpm_spiral")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--progress", action="store_true")
    a = p.parse_args(argv)
    metrics = run_ddpm_spiral(a.outdir, steps=a.steps, seed=a.seed, device=a.device, progress=a.progress)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
