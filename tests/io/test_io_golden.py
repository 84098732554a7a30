"""The committed golden file stays readable, keeps its layout, and matches a fresh run of its stored config."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit._random import NOISE_V1
from sde_toolkit.config import load_config
from sde_toolkit.runs import prepare_simulation

GOLDEN = Path(__file__).resolve().parents[1] / "resources" / "golden_ou.h5"


def test_golden_file_readable_with_plain_h5py():
    with h5py.File(GOLDEN, "r") as f:
        assert list(f["h5md"].attrs["version"]) == [1, 1]
        assert f["particles/all/position/value"].shape == (11, 24, 2)
        assert f["observables/histogram/value"].shape == (11, 2, 6)
        g = f["parameters/sde_toolkit"]
        assert g.attrs["status"] == "complete"
        assert list(g["commit"][...]) == [11, 50, int(g["commit"][2])]


def test_golden_values_match_a_fresh_run(tmp_path):
    # written before file format 2: no digests, so it opens with a warning (never refused)
    with pytest.warns(st.io.IntegrityWarning, match="no digest"):
        run = st.io.open(GOLDEN)
    # written by an earlier version with noise scheme v1, which this version still runs exactly
    assert run.plan["noise_scheme"] == NOISE_V1 == "pcg64-chunk4096-block256-v1"
    job = prepare_simulation(load_config(run.config), check_output=False)
    fresh = st.simulate(job.sde, job.x0, progress=False, noise=run.plan["noise_scheme"], **job.integrate)
    np.testing.assert_allclose(run.x[:], fresh.x, rtol=1e-13, atol=1e-14)
    np.testing.assert_array_equal(run.t, fresh.t)
    np.testing.assert_allclose(run.observables["mean"][:], fresh.x.mean(axis=1), rtol=1e-12, atol=1e-14)
    with pytest.warns(st.io.IntegrityWarning):
        traj = st.Trajectory.from_file(GOLDEN)
    np.testing.assert_array_equal(traj.x, run.x[:])
