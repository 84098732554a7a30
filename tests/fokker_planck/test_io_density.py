"""HDF5 densities: layout, round trip, streaming from evolve.

``sde_toolkit.io.density`` is the format (grids as plain dicts); ``st.fokker_planck.read_density`` gives a Grid.
"""

import json

import h5py
import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.fokker_planck import read_density
from sde_toolkit.io.density import DensityWriter, write_density
from sde_toolkit.io.density import read_density as read_record


def test_evolve_streams_into_hdf5_and_reads_back(tmp_path):
    g = st.Grid([-3, -2], [3, 2], [12, 10], boundary=["periodic", ("reflecting", "absorbing")])
    fp = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0, dim=2), g)
    path = tmp_path / "fp.h5"
    res = fp.evolve(g.gaussian([0.5, 0.0], 0.2), t1=1.0, dt=0.1, save_every=4, out=path)
    with h5py.File(path, "r") as f:
        grp = f["fokker_planck"]
        assert grp["p"].shape == (4, 12, 10) and grp["t"].shape == (4,)
        np.testing.assert_array_equal(grp.attrs["n"], [12, 10])
        np.testing.assert_array_equal(grp.attrs["lower"], [-3.0, -2.0])
        assert [[s.decode() if isinstance(s, bytes) else s for s in r] for r in grp.attrs["boundary"]] == [
            ["periodic", "periodic"], ["reflecting", "absorbing"]]
        assert json.loads(grp.attrs["config"])["method"] == "implicit_euler"
        assert bool(grp.attrs["complete"]) and int(grp.attrs["n_committed"]) == 4
    rec = read_density(path)
    assert isinstance(rec.grid, st.Grid) and rec.grid == g and rec.complete
    np.testing.assert_array_equal(rec.t, res.t)
    np.testing.assert_array_equal(rec.p, res.p)
    raw = read_record(path)  # the format alone: the grid as its dict, which Grid.from_dict inverts
    assert raw.grid == g.to_dict() and st.Grid.from_dict(raw.grid) == g
    np.testing.assert_array_equal(raw.p, res.p)


def test_write_density_refuses_overwrite_and_partial_files(tmp_path):
    g = st.Grid(-1, 1, 5)
    res = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0), g).evolve(g.gaussian(0, 1), t1=0.2, dt=0.1)
    path = tmp_path / "d.h5"
    res.to_file(path, config={"note": "x"})
    assert read_density(path).config == {"method": "implicit_euler", "dt": 0.1, "note": "x"}
    with pytest.raises(ValueError, match="already has a /fokker_planck group"):
        res.to_file(path)
    res.to_file(path, overwrite=True)
    assert read_density(path).config["method"] == "implicit_euler"
    write_density(path, res.t, res.p, g.to_dict(), overwrite=True)  # arrays plus the grid's dict
    np.testing.assert_array_equal(read_density(path).p, res.p)
    # a writer that stops early (an exception) leaves a readable, incomplete file
    p2 = tmp_path / "partial.h5"
    with pytest.raises(RuntimeError):
        with DensityWriter(p2, g.to_dict()) as w:
            w.append(0.0, res.p[0])
            raise RuntimeError("killed")
    rec = read_density(p2)
    assert not rec.complete and rec.p.shape == (1, 5)
    with pytest.raises(ValueError, match="incomplete"):
        read_density(p2, allow_partial=False)
    with pytest.raises(ValueError, match="grid shape"):
        with DensityWriter(tmp_path / "e.h5", g.to_dict()) as w:
            w.append(0.0, np.ones(4))
