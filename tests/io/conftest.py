"""Shared fixtures of the I/O tests (helpers live in ``cli_helpers``)."""

from __future__ import annotations

import pytest
from cli_helpers import write_config


@pytest.fixture(scope="session")
def kill_reference(tmp_path_factory):
    """The uninterrupted in-memory run of the kill config (t1 = 60), and the built job."""
    import sde_toolkit as st
    from sde_toolkit.config import load_config
    from sde_toolkit.runs import prepare_simulation

    d = tmp_path_factory.mktemp("killref")
    cfg = load_config(write_config(d))
    job = prepare_simulation(cfg, check_output=False)
    traj = st.simulate(job.sde, job.x0, progress=False, **job.integrate)
    return job, traj
