"""The DDPM spiral experiment runs end to end and writes its files (a short run)."""

import json

import pytest

from sde_toolkit.score.experiments import run_ddpm_spiral


@pytest.mark.slow
def test_run_ddpm_spiral_short(tmp_path):
    m = run_ddpm_spiral(tmp_path, steps=150, seed=0, n_samples=500, hidden=32, depth=2, n_sample_steps=100)
    for f in ("reverse_process.png", "loss.png", "loss.csv", "model.pt", "model.json", "samples.npy",
              "metrics.json"):
        assert (tmp_path / f).exists(), f
    assert json.loads((tmp_path / "metrics.json").read_text())["train_steps"] == 150
    assert m["sliced_wasserstein"] > m["sliced_wasserstein_noise_floor"] > 0
    # even a short run moves the prior towards the data: the N(0, I) prior is ~0.5 away in sliced W1
    assert m["sliced_wasserstein"] < 0.4
