"""``simulate(..., dtype=...)``: one argument sets the stored frame type in memory and in the H5MD file."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.sde import potentials as P

sim_mod = importlib.import_module("sde_toolkit.integrate.driver")  # the driver module owns the frame buffer


@pytest.mark.parametrize("driver", ["fused", "batched"])
def test_float32_frames_are_float64_frames_rounded(driver):
    sde = st.OverdampedLangevin(P.DoubleWell(), dim=2)
    x0 = np.random.default_rng(0).normal(size=(50, 2))
    kw = dict(t1=0.5, dt=0.01, save_every=5, seed=3, driver=driver, progress=False)
    a = st.simulate(sde, x0, **kw)
    b = st.simulate(sde, x0, dtype="float32", **kw)
    assert a.x.dtype == np.float64 and b.x.dtype == np.float32
    np.testing.assert_array_equal(b.x, a.x.astype(np.float32))
    np.testing.assert_array_equal(b.t, a.t)
    # rounding is visible (the check above can fail): float32 frames are not the float64 ones
    assert np.abs(b.x.astype(np.float64) - a.x).max() > 0


def test_float32_frames_survive_many_segments(monkeypatch):
    """Frames cross several frame-buffer segments; each is rounded from the float64 state exactly once."""
    monkeypatch.setattr(sim_mod, "FRAME_BUFFER_BYTES", 3 * 40 * 1 * 8)  # 3 frames of 40 paths per segment
    sde = st.OrnsteinUhlenbeck(1.0, 0.5)
    x0 = np.linspace(-1, 1, 40)[:, None]
    a = st.simulate(sde, x0, t1=1.0, dt=0.01, save_every=3, seed=1, progress=False)
    b = st.simulate(sde, x0, t1=1.0, dt=0.01, save_every=3, seed=1, dtype="float32", progress=False)
    np.testing.assert_array_equal(b.x, a.x.astype(np.float32))


def test_dtype_reaches_the_writer(tmp_path):
    sde = st.OrnsteinUhlenbeck(1.0, 0.5)
    x0 = np.zeros((20, 1))
    out = tmp_path / "run.h5"
    mem = st.simulate(sde, x0, t1=0.2, dt=0.01, seed=2, dtype="float32", progress=False)
    st.simulate(sde, x0, t1=0.2, dt=0.01, seed=2, out=out, dtype="float32", progress=False)
    import h5py

    with h5py.File(out, "r") as f:
        v = f["particles/all/position/value"]
        assert v.dtype == np.float32
        np.testing.assert_array_equal(v[:], mem.x)


@pytest.mark.parametrize("bad", ["float16", "int32", "complex128", "nonsense"])
def test_bad_dtype_is_rejected_before_any_work(bad, tmp_path):
    out = tmp_path / "never.h5"
    with pytest.raises(ValueError, match="dtype"):
        st.simulate(st.OrnsteinUhlenbeck(1.0, 1.0), np.zeros((2, 1)), t1=0.1, dt=0.01, dtype=bad, progress=False)
    with pytest.raises(ValueError, match="dtype"):
        st.simulate(st.OrnsteinUhlenbeck(1.0, 1.0), np.zeros((2, 1)), t1=0.1, dt=0.01, dtype=bad, out=out,
                    progress=False)
    assert not out.exists()
