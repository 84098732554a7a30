"""Models are frozen values: assignment raises, replace() copies, equal models hash alike and share compiled
kernels; the one registry turns every registered model into a config dict and back."""

from __future__ import annotations

import json

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.integrate import driver
from sde_toolkit.sde import registry

SEED = "0.1*x**2 - log(0.2 + cos(2*x)**2)"


def _models():
    P = st.potentials
    return [
        st.OverdampedLangevin(SEED),
        st.OverdampedLangevin(P.DoubleWell(2.0, 0.5), kT=0.7, gamma=1.3, dim=3),
        st.OverdampedLangevin(P.from_expression("(x**2-1)**2 + y**2", ("x", "y"))),
        st.UnderdampedLangevin(P.GaussianMixture([0.3, 0.7], [[0, 0], [1, 1]], 0.5), gamma=0.3, mass=2.0),
        st.UnderdampedLangevin(P.MullerBrown(0.1), kT=2.0),
        st.OrnsteinUhlenbeck([[1.0, 0.2], [0.0, 2.0]], [0.5, 0.3], mu=[0.1, -0.2]),
        st.OrnsteinUhlenbeck(1.5, 0.3, dim=3),
        st.OrnsteinUhlenbeck([[1.0, 0.0], [0.3, 1.0]], [[0.5, 0.2, 0.1], [0.0, 0.3, 0.7]]),
        st.VPSDE(0.2, 15.0, dim=2),
        st.VPSDE.from_ddpm_betas(np.linspace(1e-4, 0.02, 100), mapping="exact", check_prior=False),
        st.VESDE(0.01, 30.0, dim=2),
    ]


@pytest.mark.parametrize("model", _models(), ids=lambda m: type(m).__name__)
def test_registry_round_trip_through_json(model):
    cfg = registry.to_config(model)
    text = json.dumps(cfg)  # plain JSON: no arrays, no numpy scalars
    back = registry.from_config(json.loads(text))
    assert back == model and hash(back) == hash(model)
    assert type(back) is type(model)


def test_config_tables_and_registry_build_the_same_model():
    from sde_toolkit.config import build_sde

    a = build_sde({"type": "overdamped_langevin", "potential": {"name": "double_well", "a": 2.0}, "kT": 0.5})
    assert a == st.OverdampedLangevin(st.potentials.DoubleWell(a=2.0), kT=0.5)
    v = build_sde({"type": "vpsde", "ddpm_betas": [1e-3, 2e-3, 0.5], "mapping": "exact"})
    assert v == st.VPSDE.from_ddpm_betas([1e-3, 2e-3, 0.5], mapping="exact", check_prior=False)


def test_models_without_a_config_form_say_so():
    user = st.SDE.from_functions(lambda x, t: -x, 1.0, dim=1)
    assert registry.try_to_config(user) is None
    with pytest.raises(TypeError, match="no config form"):
        registry.to_config(user)
    with pytest.raises(ValueError, match="unknown SDE type 'nope'"):
        registry.from_config({"type": "nope"})
    with pytest.raises(ValueError, match="unknown potential name"):
        registry.from_config({"name": "nope"})


def test_models_are_frozen_and_replace_builds_a_new_one():
    sde = st.OverdampedLangevin(st.potentials.Harmonic(1.0), kT=1.0)
    with pytest.raises(AttributeError, match="immutable.*replace"):
        sde.kT = 2.0
    with pytest.raises(AttributeError, match="immutable"):
        sde.potential.k = 3.0
    hot = sde.replace(kT=2.0)
    assert hot.kT == 2.0 and sde.kT == 1.0
    assert hot.noise_scale == pytest.approx(2.0)  # derived from the frozen kT: never stale
    assert hot != sde and hot == st.OverdampedLangevin(st.potentials.Harmonic(1.0), kT=2.0)
    with pytest.raises(TypeError, match="unknown parameters"):
        sde.replace(temperature=2.0)


def test_equal_sdes_share_one_compiled_kernel():
    x0 = np.zeros((8, 1))
    a = st.OrnsteinUhlenbeck(1.234, 0.5)
    st.simulate(a, x0, t1=0.1, dt=0.01, seed=0)
    before = driver.kernel_cache_info()
    b = st.OrnsteinUhlenbeck(1.234, 0.5)  # another object, the same value
    assert b is not a and b == a
    st.simulate(b, x0, t1=0.1, dt=0.01, seed=0)
    after = driver.kernel_cache_info()
    assert after["builds"] == before["builds"] and after["hits"] == before["hits"] + 1
    st.simulate(a.replace(theta=2.0), x0, t1=0.1, dt=0.01, seed=0)  # a different value builds its own
    assert driver.kernel_cache_info()["builds"] == after["builds"] + 1


def test_a_python_run_of_a_registered_sde_resumes_without_sde(tmp_path, monkeypatch):
    from sde_toolkit.io.h5md import H5MDWriter

    sde = st.OverdampedLangevin(st.potentials.DoubleWell(), kT=0.8)
    x0 = np.linspace(-1, 1, 16)[:, None]
    kw = dict(t1=3.0, dt=0.01, save_every=10, seed=5, progress=False)
    ref = st.simulate(sde, x0, **kw)
    commit, calls = H5MDWriter.commit, {"n": 0}

    def interrupting_commit(self, step, state):
        commit(self, step, state)
        calls["n"] += 1
        if calls["n"] == 2:  # after the first segment's commit: stop the run as a signal would
            raise KeyboardInterrupt

    monkeypatch.setattr(H5MDWriter, "commit", interrupting_commit)
    out = tmp_path / "r.h5"
    with pytest.raises(KeyboardInterrupt):
        st.simulate(sde, x0, out=out, flush_interval=0.0, **kw)
    monkeypatch.setattr(H5MDWriter, "commit", commit)
    with pytest.warns(st.io.IncompleteRunWarning):
        assert st.io.open(out, allow_partial=True).status == "interrupted"
    traj = st.resume(out, progress=False)  # no sde=: rebuilt from the registry config stored in the file
    np.testing.assert_array_equal(np.asarray(traj.x), ref.x)
