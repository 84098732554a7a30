"""The Fokker–Planck solver reads time-homogeneity from the SDE class's declaration (never a class list)."""

from __future__ import annotations

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.sde import potentials as P


@pytest.mark.parametrize("sde,homogeneous", [
    (st.OrnsteinUhlenbeck(1.0, 1.0), True),
    (st.OverdampedLangevin(P.DoubleWell(), dim=1), True),
    (st.VPSDE(0.1, 20.0), False),
    (st.VESDE(0.01, 5.0), False),
    (st.OrnsteinUhlenbeck(1.0, 1.0).reverse(lambda x, t: -x), False),
    (st.SDE.from_functions(lambda x, t: -x, 1.0, dim=1), False),
    (st.SDE.from_functions(lambda x, t: -x, 1.0, dim=1, time_homogeneous=True), True),
], ids=["ou", "overdamped", "vp", "ve", "reverse", "function_default", "function_declared"])
def test_declared_time_homogeneity_decides_the_default(sde, homogeneous):
    assert sde.time_homogeneous is homogeneous
    g = st.Grid(-3, 3, 30)
    fp = st.FokkerPlanck(sde, g)
    assert fp.time_dependent is (not homogeneous)
    # the explicit override still wins either way
    assert st.FokkerPlanck(sde, g, time_dependent=not fp.time_dependent).time_dependent is homogeneous


def test_underdamped_declares_homogeneity():
    assert st.UnderdampedLangevin(P.DoubleWell()).time_homogeneous
    assert not st.SDE.time_homogeneous  # the safe default of the base class


def test_declared_homogeneous_user_sde_evolves_like_ou():
    """A FunctionSDE declared homogeneous factorizes once and gives OU's evolution (same f, g)."""
    g = st.Grid(-4, 4, 80)
    user = st.SDE.from_functions(lambda x, t: -x, 1.0, dim=1, time_homogeneous=True)
    p0 = g.gaussian(1.0, 0.5)
    a = st.FokkerPlanck(user, g).evolve(p0, t1=0.5, dt=0.05).p
    b = st.FokkerPlanck(st.OrnsteinUhlenbeck(1.0, 1.0), g).evolve(p0, t1=0.5, dt=0.05).p
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
