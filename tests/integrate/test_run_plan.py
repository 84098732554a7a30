"""``RunPlan`` as data: ``to_dict``/``from_dict`` invert each other, the stored plan of a file rebuilds the plan
``make_plan`` made, and ``save_steps`` is the one rule for the saved steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.integrate import RunPlan, make_plan, save_steps

GOLDEN = Path(__file__).resolve().parents[1] / "resources" / "golden_ou.h5"


@pytest.mark.parametrize("n_steps, save_every, want", [
    (10, 1, list(range(11))), (10, 3, [0, 3, 6, 9, 10]), (10, 5, [0, 5, 10]), (3, 7, [0, 3]), (1, 1, [0, 1]),
])
def test_save_steps(n_steps, save_every, want):
    s = save_steps(n_steps, save_every)
    assert s.dtype == np.int64
    np.testing.assert_array_equal(s, want)


def _plans():
    ou = st.OrnsteinUhlenbeck(1.0, 0.5, dim=2)
    x = np.zeros((7, 2))
    yield make_plan(ou, x, t0=0.0, t1=1.0, dt=0.01, save_every=3, method="euler_maruyama", seed=11)
    yield make_plan(ou, x, t0=0.5, t1=2.0, dt=0.1, save_every=4, method="exact", seed=None, driver="batched",
                    max_abs=1e6)
    yield make_plan(ou, x, t0=0.0, t1=0.2, dt=0.1, save_every=1, method="euler_maruyama", seed=3,
                    increments=np.zeros((2, 7, 2)))
    rev = st.VPSDE(dim=1).probability_flow(lambda x, t: -x)  # backward in time: negative step
    yield make_plan(rev, np.zeros((3, 1)), t0=1.0, t1=1e-3, dt=(1.0 - 1e-3) / 37, save_every=5, method="heun",
                    seed=0)


@pytest.mark.parametrize("plan", list(_plans()), ids=["em", "exact-max_abs", "increments", "backward-heun"])
def test_from_dict_inverts_to_dict_and_the_stored_plan(plan):
    back = RunPlan.from_dict(plan.to_dict())
    assert back == plan
    np.testing.assert_array_equal(back.save_steps, plan.save_steps)
    np.testing.assert_array_equal(back.times, plan.times)
    assert back.meta["increments"] == plan.meta["increments"]
    # a plan stored by an earlier version: no h, an integer seed, no noise scheme (then v1)
    old = {k: v for k, v in plan.to_dict().items() if k not in ("h", "noise_scheme", "save_start", "save_last")}
    old["seed"] = plan.seed.entropy
    legacy = RunPlan.from_dict(old)
    np.testing.assert_array_equal(legacy.save_steps, plan.save_steps)
    assert legacy.noise == "pcg64-chunk4096-block256-v1" and legacy.seed == plan.seed


def test_meta_records_increments_and_equality_sees_every_field():
    import dataclasses

    plans = list(_plans())
    assert plans[2].meta == {"increments": True} and plans[0].meta == {"increments": False}
    assert dataclasses.replace(plans[0], save_every=4) != plans[0]
    assert RunPlan.from_dict(dict(plans[0].to_dict(), seed=12)) != plans[0]
    assert RunPlan.from_dict(dict(plans[0].to_dict(), noise_scheme="v1")) != plans[0]
    with pytest.raises(ValueError, match="unknown noise scheme"):
        RunPlan.from_dict(dict(plans[0].to_dict(), noise_scheme="mt19937-v0"))


def test_golden_file_plan_rebuilds_its_saved_steps():
    with pytest.warns(st.io.IntegrityWarning, match="no digest"):  # written before file format 2
        run = st.io.open(GOLDEN)
    plan = RunPlan.from_dict(run.plan)
    np.testing.assert_array_equal(plan.save_steps, run.steps)
    np.testing.assert_array_equal(plan.times, run.t)
    assert plan.noise == run.plan["noise_scheme"]
