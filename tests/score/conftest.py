import numpy as np
import pytest
import torch

import sde_toolkit as st
from sde_toolkit.score import GaussianMixtureScore

torch.set_num_threads(1)

MU = np.array([0.5, -1.0])
COV = np.array([[1.0, 0.8 * 1.5], [0.8 * 1.5, 2.25]])  # correlation 0.8, anisotropic


@pytest.fixture(scope="module")
def vp2():
    return st.VPSDE(0.1, 20.0, dim=2)


@pytest.fixture(scope="module")
def gauss2(vp2):
    return GaussianMixtureScore(vp2, [1.0], [MU], [COV])
