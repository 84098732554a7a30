"""Networks and training: learned score vs analytic (check 31), determinism, checkpoints, TorchScore, validation."""

import json
import math

import numpy as np
import pytest
import torch

import sde_toolkit as st
from sde_toolkit.score import (
    GaussianMixtureScore,
    ScoreMLP,
    TorchScore,
    load_checkpoint,
    sample,
    save_checkpoint,
    train,
)

MU = np.array([0.5, -1.0])
COV = np.array([[1.0, 1.2], [1.2, 2.25]])


def _eps_loss_minimum(sde, cov, eps=1e-5, n=2001):
    """Mean over t ~ U[eps, 1] of min E|sigma score + z|^2 = d - sigma^2 tr((a^2 Sigma + sigma^2 I)^{-1})."""
    ts = np.linspace(eps, 1.0, n)
    a, _, s = sde.marginal_coef(ts)
    vals = [2 - s_**2 * np.trace(np.linalg.inv(a_**2 * cov + s_**2 * np.eye(2))) for a_, s_ in zip(a, s)]
    return np.trapezoid(vals, ts) / (1.0 - eps)


LEARNED_SCORE_MAX = 0.05


def _mean_rel_err(score, g, seed=99):
    """Relative L2 error of ``score`` against the exact mixture score ``g``, averaged over 20 times in [0.05, 1]
    on samples of p_t."""
    rng = np.random.default_rng(seed)
    errs = []
    for t in np.linspace(0.05, 1.0, 20):
        x = g.sample(2000, t=t, seed=rng)
        e, ex = score(x, t), g(x, t)
        errs.append(np.sqrt(np.mean(np.sum((e - ex) ** 2, 1)) / np.mean(np.sum(ex**2, 1))))
    return float(np.mean(errs))


@pytest.mark.slow
def test_learned_score_close_to_analytic():
    sde = st.VPSDE(0.1, 20.0, dim=2)
    g = GaussianMixtureScore(sde, [1.0], [MU], [COV])
    data = g.sample(20000, seed=123)
    net = ScoreMLP(2, 64, 2, seed=0)
    res = train(net, sde, data, steps=1000, batch_size=256, lr=3e-3, seed=0)
    ts = TorchScore(net, sde)
    # Time-averaged relative L2 error, calibrated over 20 seeds (net, training and data seeds varied together,
    # sweep recorded in docs/testing-new.md): 0.028-0.041, mean 0.033, sd 0.0037; this seed 0.037.
    # LEARNED_SCORE_MAX = 0.05 = mean + 4.5 sd (1.2x the worst seed). The old bound 0.10 accepted an analytic score
    # off by 10 % in scale (0.100), at t + 0.05 (0.080) or for 1.5 Sigma (0.088); 0.05 rejects all three.
    assert _mean_rel_err(ts, g) <= LEARNED_SCORE_MAX
    # negative controls for the threshold itself: wrong scores that a buggy network could learn
    assert _mean_rel_err(lambda x, t: 1.1 * g(x, t), g) > LEARNED_SCORE_MAX
    assert _mean_rel_err(lambda x, t: g(x, t + 0.05), g) > LEARNED_SCORE_MAX
    assert _mean_rel_err(GaussianMixtureScore(sde, [1.0], [MU], [1.3 * COV]), g) > LEARNED_SCORE_MAX
    # negative control: an untrained network is far off
    raw = TorchScore(ScoreMLP(2, 64, 2, seed=0), sde)
    x = g.sample(2000, t=0.5, seed=1)
    assert np.sqrt(np.mean(np.sum((raw(x, 0.5) - g(x, 0.5)) ** 2, 1)) / np.mean(np.sum(g(x, 0.5) ** 2, 1))) > 0.5
    # the training loss reaches the analytic minimum of the noise-prediction loss within 5 %
    assert abs(res.losses[-300:].mean() / _eps_loss_minimum(sde, COV) - 1) < 0.05
    # the default sampler with the learned score reproduces the target (the probability-flow ODE is more
    # sensitive to score errors: it has no noise to contract them, see docs/score.md)
    xs = sample(sde, ts, 10000, method="euler_maruyama", n_steps=200, seed=3)
    assert np.max(np.abs(xs.mean(0) - MU)) < 0.05
    assert np.max(np.abs(np.cov(xs.T) / COV - 1)) < 0.10


def test_training_deterministic_for_a_seed(tmp_path):
    data = st.datasets.eight_gaussians(2000, seed=0)
    sde = st.VPSDE()
    runs = []
    for seed in (0, 0, 1):
        net = ScoreMLP(2, 32, 2, seed=7)
        res = train(net, sde, data, steps=40, batch_size=64, seed=seed)
        runs.append((res.losses, [p.detach().clone() for p in net.parameters()]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_checkpoint_round_trip_and_loss_file(tmp_path):
    data = st.datasets.two_moons(1000, seed=0)
    sde = st.VESDE(0.01, 5.0)
    net = ScoreMLP(2, 32, 2, embedding="fourier", seed=0)
    res = train(net, sde, data, steps=30, batch_size=64, seed=0, loss_file=tmp_path / "loss.csv",
                checkpoint=tmp_path / "ck" / "model")
    assert res.checkpoint == tmp_path / "ck" / "model.pt"
    lines = (tmp_path / "loss.csv").read_text().splitlines()
    assert lines[0] == "step,loss" and len(lines) == 31
    assert float(lines[-1].split(",")[1]) == pytest.approx(res.losses[-1], rel=1e-6)
    net2, sde2, cfg = load_checkpoint(tmp_path / "ck" / "model.pt")
    assert isinstance(sde2, st.VESDE) and sde2.sigma_max == 5.0 and sde2.dim == 2
    assert cfg["training"]["steps"] == 30 and cfg["network"]["hidden"] == 32
    json.loads((tmp_path / "ck" / "model.json").read_text())
    x = np.random.default_rng(0).standard_normal((7, 2))
    np.testing.assert_array_equal(TorchScore(net, sde)(x, 0.3), TorchScore(net2, sde2)(x, 0.3))
    # a VP-SDE from DDPM betas survives the round trip too
    vp = st.VPSDE.from_ddpm_betas(np.linspace(1e-4, 0.02, 1000), mapping="exact", dim=2)
    p = save_checkpoint(tmp_path / "vp.pt", net, sde=vp)
    _, vp2, _ = load_checkpoint(p)
    np.testing.assert_array_equal(vp2.discretize(1000, "exact").betas, vp.discretize(1000, "exact").betas)


OLD_SDE_CONFIGS = [  # exactly what checkpoints written before the model registry stored under "sde"
    ({"type": "vpsde", "beta_min": 0.1, "beta_max": 20.0, "dim": 2}, st.VPSDE(0.1, 20.0, dim=2)),
    ({"type": "vpsde", "ddpm_betas": np.linspace(1e-4, 0.02, 50).tolist(), "mapping": "exact", "dim": 2},
     st.VPSDE.from_ddpm_betas(np.linspace(1e-4, 0.02, 50), dim=2, mapping="exact", check_prior=False)),
    ({"type": "vesde", "sigma_min": 0.01, "sigma_max": 5.0, "dim": 2}, st.VESDE(0.01, 5.0, dim=2)),
    ({"type": "ornstein_uhlenbeck", "theta": 0.7, "sigma": 1.3, "mu": [0.4, -0.2], "dim": 2},
     st.OrnsteinUhlenbeck(0.7, 1.3, mu=[0.4, -0.2], dim=2)),
]


@pytest.mark.parametrize("old, sde", OLD_SDE_CONFIGS, ids=["vp", "vp_ddpm", "ve", "ou"])
def test_checkpoints_store_the_registry_config_and_old_ones_still_load(tmp_path, old, sde):
    from sde_toolkit.sde.registry import to_config

    net = ScoreMLP(2, 8, 1, seed=0)
    p = save_checkpoint(tmp_path / "m.pt", net, sde=sde)
    cfg = json.loads(p.with_suffix(".json").read_text())
    assert cfg["sde"] == json.loads(json.dumps(to_config(sde)))  # the one serialization
    _, back, _ = load_checkpoint(p)
    assert back == sde
    # a checkpoint JSON of the old format loads to the same law
    cfg["sde"] = old
    p.with_suffix(".json").write_text(json.dumps(cfg))
    _, back, _ = load_checkpoint(p)
    assert type(back) is type(sde) and back.dim == 2
    t = np.linspace(0.01, 1.0, 7)
    for x, y in zip(back.marginal_coef(t), sde.marginal_coef(t)):
        np.testing.assert_array_equal(x, y)
    x = np.random.default_rng(0).standard_normal((3, 2))
    np.testing.assert_array_equal(TorchScore(net, back)(x, 0.3), TorchScore(net, sde)(x, 0.3))


def test_training_coefficients_are_the_sdes_marginal_coef():
    """The per-step coefficients are the SDE's own ``marginal_coef`` (no second copy of the formulas): they equal
    the closed forms written in torch to rounding, and ``b`` is skipped exactly where the centre is zero."""
    from sde_toolkit.score.networks import MarginalCoefTorch

    t = torch.linspace(1e-5, 1.0, 257, dtype=torch.float64)
    vp, ve, ou = st.VPSDE(0.1, 20.0, dim=2), st.VESDE(0.01, 50.0, dim=2), st.OrnsteinUhlenbeck(0.7, 1.3, mu=0.4, dim=2)
    B = 0.1 * t + 0.5 * t * t * 19.9
    var_ou = 1.3**2 * (-torch.expm1(-1.4 * t)) / 1.4
    want = {vp: (torch.exp(-0.5 * B), torch.sqrt(-torch.expm1(-B))),
            ve: (torch.ones_like(t), 0.01 * torch.sqrt(torch.expm1(2 * math.log(5000.0) * t))),
            ou: (torch.exp(-0.7 * t), torch.sqrt(var_ou))}
    for sde, (a_want, s_want) in want.items():
        c_in, a, b, std = MarginalCoefTorch(sde).precondition64(t)
        assert a.dtype == torch.float64 and a.shape == t.shape
        torch.testing.assert_close(a, a_want, rtol=1e-14, atol=0)
        torch.testing.assert_close(std, s_want, rtol=1e-13, atol=0)
        torch.testing.assert_close(c_in, 1 / torch.sqrt(a_want**2 + s_want**2), rtol=1e-14, atol=0)
        assert (b is None) == (sde is not ou)
    _, _, b, _ = MarginalCoefTorch(ou).precondition64(t)
    torch.testing.assert_close(b, (1 - torch.exp(-0.7 * t))[:, None] * torch.full((1, 2), 0.4, dtype=torch.float64))


def test_ddpm_loss_training_reduces_loss():
    data = st.datasets.spiral(2000, seed=0)
    net = ScoreMLP(2, 64, 2, embedding="sinusoidal", seed=0)
    res = train(net, st.VPSDE(), data, steps=300, batch_size=128, lr=3e-3, seed=0, loss="ddpm", n_steps=1000)
    assert res.losses[-50:].mean() < 0.8 * res.losses[:50].mean()
    assert res.config["loss"] == "ddpm" and res.config["mapping"] == "exact"


def test_torch_score_types_batches_and_time_forms():
    net = ScoreMLP(2, 16, 1, seed=0)
    ts = TorchScore(net, st.VPSDE(), batch_size=7)
    x = np.random.default_rng(0).standard_normal((20, 2))
    a = ts(x, 0.4)
    assert isinstance(a, np.ndarray) and a.dtype == np.float64 and a.shape == (20, 2)
    b = ts(torch.as_tensor(x), torch.full((20,), 0.4))
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float64
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-6)
    np.testing.assert_allclose(TorchScore(net, st.VPSDE(), batch_size=1000)(x, np.full(20, 0.4)), a, rtol=1e-6)
    # score = -eps / sigma(t): as t -> 0 the score grows like 1 / sigma
    s_small = np.abs(ts(x, 1e-4)).mean()
    assert s_small > 10 * np.abs(ts(x, 0.5)).mean()
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        ts(np.zeros((3, 3)), 0.1)


def test_training_input_validation():
    net = ScoreMLP(2, 8, 1, seed=0)
    sde = st.VPSDE()
    bad = np.zeros((10, 2))
    bad[6, 1] = np.nan
    with pytest.raises(ValueError, match="row 6"):
        train(net, sde, bad, steps=1)
    with pytest.raises(ValueError, match=r"data must have shape \(n, 2\)"):
        train(net, sde, np.zeros((10, 3)), steps=1)
    with pytest.raises(ValueError, match="steps"):
        train(net, sde, np.zeros((10, 2)), steps=0)
    with pytest.raises(ValueError, match="loss"):
        train(net, sde, np.zeros((10, 2)), steps=1, loss="sliced")
    with pytest.raises(ValueError, match="VPSDE"):
        train(net, st.VESDE(), np.zeros((10, 2)), steps=1, loss="ddpm")
    with pytest.raises(ValueError, match="hidden"):
        ScoreMLP(2, 0)
    with pytest.raises(ValueError, match="embedding"):
        ScoreMLP(2, embedding="learned")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            train(net, sde, np.zeros((10, 2)), steps=1, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_forward_matches_cpu():
    net = ScoreMLP(2, 64, 2, seed=0)
    x = np.random.default_rng(0).standard_normal((100, 2))
    cpu = TorchScore(net, st.VPSDE())(x, 0.3)
    gpu = TorchScore(net.to("cuda"), st.VPSDE())(x, 0.3)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-5, atol=1e-6)
