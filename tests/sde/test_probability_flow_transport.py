"""The probability-flow ODE against its closed-form transport map, on both faces.

For a Gaussian data law ``N(mu, S)`` under a VP or VE SDE, every marginal is Gaussian,
``p_t = N(a_t mu, V_t)`` with ``V_t = a_t^2 S + s_t^2 I``, and the probability-flow ODE is the linear map
``x_t1 = a_t1 mu + V_t1^{1/2} V_t0^{-1/2} (x_t0 - a_t0 mu)`` (``S`` and ``I`` commute, so the flow acts on each
eigendirection of ``S`` as the 1-D quantile map). That map is computed here from ``marginal_coef`` and an
eigendecomposition only -- nothing of the package's drift code -- and Heun's method on the ODE must land on it
to the discretisation error. A drift with ``g^2 s`` in place of ``g^2 s / 2`` (the reverse SDE's factor) or a
sign error in the score term misses it by O(1).
"""

from __future__ import annotations

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.score import GaussianMixtureScore

MU = np.array([0.5, -1.0])
S = np.array([[1.0, 1.2], [1.2, 2.25]])
T0, T1 = 1.0, 1e-3


def _sqrtm(v, power):
    w, q = np.linalg.eigh(v)
    return (q * w**power) @ q.T


def _transport(sde, x):
    a0, _, s0 = (float(np.asarray(c).ravel()[0]) for c in sde.marginal_coef(np.float64(T0)))
    a1, _, s1 = (float(np.asarray(c).ravel()[0]) for c in sde.marginal_coef(np.float64(T1)))
    v0 = a0**2 * S + s0**2 * np.eye(2)
    v1 = a1**2 * S + s1**2 * np.eye(2)
    m = _sqrtm(v1, 0.5) @ _sqrtm(v0, -0.5)
    return a1 * MU + (x - a0 * MU) @ m.T


@pytest.mark.parametrize("driver", ["batched", "fused"])
@pytest.mark.parametrize("make", [lambda: st.VPSDE(0.1, 20.0, dim=2), lambda: st.VESDE(0.01, 5.0, dim=2)],
                         ids=["vp", "ve"])
def test_probability_flow_is_the_gaussian_transport_map(make, driver):
    sde = make()
    pf = sde.probability_flow(GaussianMixtureScore(sde, [1.0], [MU], [S]))
    scale = 5.0 if isinstance(sde, st.VESDE) else 1.0
    x_T = scale * np.random.default_rng(2).standard_normal((64, 2))
    exact = _transport(sde, x_T)
    errs = []
    for n in (100, 400):
        x = st.simulate(pf, x_T, t0=T0, t1=T1, dt=(T0 - T1) / n, method="heun", driver=driver, progress=False).x[-1]
        errs.append(np.abs(x - exact).max())
    spread = np.abs(exact - x_T).max()
    assert spread > 0.5  # the map moves points by O(1): an error of that size cannot hide
    assert errs[1] < 2e-3 * spread, errs
    assert errs[0] / errs[1] > 8, errs  # Heun: second order on the ODE (4x steps, ~16x smaller error)
    # negative control: the reverse SDE's drift (g^2 s, no 1/2) integrated without noise is a different map
    rev = sde.reverse(GaussianMixtureScore(sde, [1.0], [MU], [S]))
    wrong = st.simulate(rev, x_T, t0=T0, t1=T1, dt=(T0 - T1) / 400, method="euler_maruyama", driver=driver,
                        increments=np.zeros((400, 64, 2)), progress=False).x[-1]
    assert np.abs(wrong - exact).max() > 50 * errs[1]
