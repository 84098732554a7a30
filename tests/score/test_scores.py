"""Scores as models: GaussianMixtureScore is frozen and value-hashed (equal scores give equal reverse SDEs that
share one compiled kernel); TorchScore keeps identity semantics (its network is mutable)."""

import numpy as np
import pytest

import sde_toolkit as st
from sde_toolkit.integrate.driver import kernel_cache_info
from sde_toolkit.score import GaussianMixtureScore, ScoreMLP, TorchScore, sample

MU = np.array([0.5, -1.0])
COV = np.array([[1.0, 1.2], [1.2, 2.25]])


def test_equal_exact_scores_share_one_compiled_kernel():
    vp = st.VPSDE(0.1, 20.0, dim=2)

    def make(w=0.37):
        return GaussianMixtureScore(vp, [w, 1 - w], [[-1.0, 0.3], [1.2, 0.5]], [0.21 * np.eye(2), 0.33 * np.eye(2)])

    s1, s2 = make(), make()
    assert s1 is not s2 and s1 == s2
    for method in ("euler_maruyama", "probability_flow"):
        first = sample(vp, s1, 100, method=method, n_steps=10, seed=0)
        c0 = kernel_cache_info()
        again = sample(vp, s1, 100, method=method, n_steps=10, seed=0)  # the same score
        equal = sample(vp, s2, 100, method=method, n_steps=10, seed=0)  # an equal score
        other_steps = sample(vp, s2, 100, method=method, n_steps=25, seed=0)  # one kernel for every n_steps
        c1 = kernel_cache_info()
        assert c1["builds"] == c0["builds"] and c1["hits"] >= c0["hits"] + 3
        np.testing.assert_array_equal(first, again)
        np.testing.assert_array_equal(first, equal)
        assert other_steps.shape == first.shape
        # negative control: a different score is a different reverse SDE and builds its own kernel
        sample(vp, make(0.41), 100, method=method, n_steps=10, seed=0)
        assert kernel_cache_info()["builds"] == c1["builds"] + 1


def test_gaussian_mixture_score_is_value_hashed(vp2):
    a = GaussianMixtureScore(vp2, [1.0], [MU], [COV])
    b = GaussianMixtureScore(st.VPSDE(0.1, 20.0), [1.0], [MU], [COV])  # dim adapted: the same forward SDE
    c = GaussianMixtureScore(vp2, [1.0], [MU], [1.1 * COV])
    assert a == b and hash(a) == hash(b) and a != c
    assert vp2.reverse(a) == vp2.reverse(b) and vp2.reverse(a) != vp2.reverse(c)
    assert vp2.probability_flow(a) == vp2.probability_flow(b)
    # stored normalized: isotropic variances equal the full matrices
    iso = GaussianMixtureScore(vp2, [1.0], [[0.0, 0.0]], [2.0])
    assert iso == GaussianMixtureScore(vp2, [1.0], [[0.0, 0.0]], [2.0 * np.eye(2)])
    assert a.replace(covs=[1.1 * COV]) == c
    with pytest.raises(AttributeError, match="immutable"):
        a.weights = np.array([1.0])
    assert set(a.params()) == {"sde", "weights", "means", "covs"}


def test_torch_score_keeps_identity_semantics(vp2):
    net = ScoreMLP(2, 8, 1, seed=0)
    a, b = TorchScore(net, vp2), TorchScore(net, vp2)
    assert a == a and a != b  # a network is mutable: no value hash
    assert vp2.reverse(a) == vp2.reverse(a) and vp2.reverse(a) != vp2.reverse(b)
    assert not vp2.reverse(a).has_numba_face
