"""One sampling API, four samplers: ``sample(sde, score, n, method=...)``.

Every sampler starts from the prior at ``T`` (or given ``x_T``) and returns ``(n, dim)`` samples. None of them
clips samples. Facts per method (``h = (T - eps) / n_steps``):

* ``"euler_maruyama"``: the reverse SDE ``dX = [f - g^2 score] dt + g dW-bar`` through :func:`sde_toolkit.simulate`
  from ``T`` down to ``eps + h`` (``n_steps - 1`` stochastic steps, decreasing time natively), then one last
  noise-free step to ``eps``: the returned samples are the mean of the last transition. Weak order 1;
  ``n_steps`` score evaluations. With an analytic score that has a Numba face it runs on the fused driver.
* ``"ancestral"``: DDPM's Algorithm 2 on ``sde.discretize(n_steps, mapping)`` (VPSDE only), time grid
  ``t_i = i T / N``: ``x_{i-1} = (x_i - beta_i / sqrt(1 - ab_i) eps_i) / sqrt(alpha_i) + sigma_i z`` with
  ``eps_i = -sqrt(1 - ab_i) score(x_i, t_i)``; ``sigma_i^2 = beta_i`` (``variance="beta"``) or
  ``(1 - ab_{i-1}) / (1 - ab_i) beta_i`` (``"posterior"``); no noise at ``i = 1`` (the mean is returned).
  ``eps`` is not used: the chain ends at ``t = 0``. ``n_steps`` score evaluations.
* ``"probability_flow"``: the ODE ``dx = [f - g^2 score / 2] dt`` from ``T`` to ``eps``, deterministic given
  ``x_T``; ``solver="heun"`` (order 2, ``2 n_steps`` evaluations, through ``simulate``) or ``solver="scipy"``
  (adaptive ``solve_ivp`` RK45 with ``rtol``/``atol``; ``n_steps`` unused).
* ``"predictor_corrector"``: per step ``n_corrector`` Langevin corrector steps
  ``x += delta score + sqrt(2 delta) z`` with the signal-to-noise step size
  ``delta = 2 alpha (snr |z| / |score|)^2`` (norms averaged over particles), then one reverse-SDE
  Euler–Maruyama predictor step; the last predictor step returns its mean. For a VPSDE,
  ``alpha = 1 - beta_i`` of the first-order discretization on 1,000 steps with ``i = round(t (N - 1) / T)``,
  exactly as the reference implementation (score_sde) does; ``alpha = 1`` for VE and OU.
  ``(1 + n_corrector) n_steps`` evaluations.

``noise=False`` switches the Brownian increments off in every stochastic sampler (the sampler then applies
its deterministic affine recursion; used to check moment recursions).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import solve_ivp

from ..sde.base import SDE
from . import _marginal

METHODS = ("euler_maruyama", "ancestral", "probability_flow", "predictor_corrector")


class _DriftOnly(SDE):
    """The reverse SDE with its noise switched off (``noise=False``): same drift, zero diffusion."""

    backward = True
    is_ode = True
    methods = ("euler_maruyama",)

    def __init__(self, rev: SDE):
        self._rev = rev
        self.dim = rev.dim
        self.noise_type = "diagonal"
        self.noise_dim = rev.dim
        self.additive = True

    def drift(self, x, t):
        return self._rev.drift(x, t)

    def diffusion(self, x, t):
        return np.zeros(np.shape(x))


def _pos_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def _score_dim(score, sde, x_T) -> int:
    """The state dimension: the one the score declares, else that of ``x_T``, else the SDE's."""
    default = int(np.shape(x_T)[1]) if x_T is not None and np.ndim(x_T) == 2 else sde.dim
    return _marginal.score_dim(score, default)


def sample(sde, score, n: int, *, method: str = "euler_maruyama", n_steps: int = 1000, seed=None,
           eps: float = 1e-3, T: float | None = None, x_T=None, noise: bool = True, mapping: str = "exact",
           variance: str = "beta", solver: str = "heun", rtol: float = 1e-5, atol: float = 1e-5,
           snr: float = 0.16, n_corrector: int = 1, progress=False, return_path: bool = False,
           save_every: int = 1, info: dict | None = None, out=None, overwrite: bool = False):
    """Draw ``n`` samples of ``p_eps`` (``p_0`` for ``ancestral``) by running time backwards with ``score``.

    See the module docstring for each method's formula and facts.

    Args:
        sde: the forward SDE, declaring ``affine_marginal`` (VPSDE, VESDE or scalar OrnsteinUhlenbeck; ``T``
            required where ``sde.T`` is ``None``, as for OU); its ``dim`` is adapted to the score's.
        score: ``score(x, t) -> (n, dim)`` on NumPy arrays (a :class:`TorchScore`, a
            :class:`GaussianMixtureScore`, or any callable).
        n: number of samples.
        method: one of ``"euler_maruyama"``, ``"ancestral"``, ``"probability_flow"``, ``"predictor_corrector"``.
        n_steps: time steps (>= 1).
        seed: int, ``SeedSequence`` or ``None``; fixes the prior draw and all noise.
        eps: end time ``0 < eps < T`` (not used by ``ancestral``).
        T: start time (default ``sde.T``).
        x_T: start points ``(n, dim)`` instead of prior draws.
        noise: ``False`` switches off the noise of the stochastic samplers.
        mapping: DDPM mapping for ``ancestral`` (``"exact"`` or ``"first_order"``, see ``VPSDE.discretize``).
        variance: ``"beta"`` or ``"posterior"`` (``ancestral``).
        solver: ``"heun"`` or ``"scipy"`` (``probability_flow``).
        rtol, atol: tolerances of the scipy solver.
        snr, n_corrector: the Langevin corrector (``predictor_corrector``).
        progress: passed to ``simulate`` (a progress bar), or a bool for the in-house loops.
        return_path: also return ``(t_path, x_path)`` with every ``save_every``-th state, the start and the end.
        save_every: thinning of the path.
        info: a dict to receive facts about the run (``nfe``: score evaluations, ``method``).
        out: path of an H5MD file that receives the reverse-time trajectory (every ``save_every``-th state) as
            ``simulate`` streams it; for ``euler_maruyama`` and ``probability_flow`` with ``solver="heun"``,
            the samplers that run through ``simulate``. The final noise-free mean step of ``euler_maruyama`` is
            not a simulate step and is not in the file (the returned samples include it).
        overwrite: replace an existing ``out``.

    Returns:
        ``(n, dim)`` samples, or ``(samples, t_path, x_path)`` when ``return_path``.

    Raises:
        ValueError: bad ``n``, ``n_steps``, ``method``, ``eps``, ``x_T`` shape or non-finite values.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if out is not None and not (method == "euler_maruyama" or (method == "probability_flow" and solver == "heun")):
        raise ValueError("out= needs a sampler that runs through simulate: method='euler_maruyama', or "
                         f"'probability_flow' with solver='heun' (got method={method!r}, solver={solver!r})")
    sim_out = {} if out is None else {"out": out, "overwrite": bool(overwrite), "dtype": "float64"}
    n = _pos_int(n, "n")
    n_steps = _pos_int(n_steps, "n_steps")
    save_every = _pos_int(save_every, "save_every")
    _marginal.require_affine(sde)
    dim = _score_dim(score, sde, x_T)
    sde = _marginal.for_dim(sde, dim)
    T_ = _marginal.end_time(sde, T)
    eps = float(eps)
    if not (0.0 < eps < T_):
        raise ValueError(f"eps must satisfy 0 < eps < T = {T_}, got {eps}")
    sde.check_prior(stacklevel=3)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    ss_prior, ss_run = ss.spawn(2)
    if x_T is None:
        x = sde.prior().sample(n, seed=np.random.default_rng(ss_prior))
    else:
        x = np.array(x_T, dtype=np.float64)
        if x.shape != (n, dim):
            raise ValueError(f"x_T must have shape ({n}, {dim}), got {x.shape}")
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if bad.size:
            raise ValueError(f"x_T contains NaN or inf (first at row {int(bad[0])})")
    rng = np.random.default_rng(ss_run)
    info = {} if info is None else info
    info["method"] = method
    if method == "euler_maruyama":
        res = _euler_maruyama(sde, score, x, T_, eps, n_steps, rng, noise, progress, save_every, sim_out)
        info["nfe"] = n_steps
    elif method == "ancestral":
        if not sde.discretizable:
            raise ValueError(f"method='ancestral' (DDPM) needs a discretizable forward SDE (a DDPM schedule, "
                             f"sde.discretize: VPSDE), got {sde!r}")
        if variance not in ("beta", "posterior"):
            raise ValueError(f"variance must be 'beta' or 'posterior', got {variance!r}")
        res = _ancestral(sde, score, x, n_steps, rng, noise, mapping, variance, save_every)
        info["nfe"] = n_steps
    elif method == "probability_flow":
        if solver == "heun":
            res = _pf_heun(sde, score, x, T_, eps, n_steps, rng, progress, save_every, sim_out)
            info["nfe"] = 2 * n_steps
        elif solver == "scipy":
            if return_path:
                raise ValueError("return_path is not available with solver='scipy'")
            res, nfe = _pf_scipy(sde, score, x, T_, eps, rtol, atol)
            info["nfe"] = nfe
        else:
            raise ValueError(f"solver must be 'heun' or 'scipy', got {solver!r}")
    else:
        if not (math.isfinite(snr) and snr >= 0):
            raise ValueError(f"snr must be >= 0, got {snr}")
        if isinstance(n_corrector, bool) or not isinstance(n_corrector, (int, np.integer)) or n_corrector < 0:
            raise ValueError(f"n_corrector must be an integer >= 0, got {n_corrector!r}")
        res = _predictor_corrector(sde, score, x, T_, eps, n_steps, rng, noise, snr, int(n_corrector),
                                   save_every)
        info["nfe"] = (1 + int(n_corrector)) * n_steps
    samples, t_path, x_path = res
    if return_path:
        return samples, t_path, x_path
    return samples


def _seed_int(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**63 - 1))


def _euler_maruyama(sde, score, x, T, eps, n_steps, rng, noise, progress, save_every, sim_out=None):
    from ..integrate import simulate

    h = (T - eps) / n_steps
    rev = sde.reverse(score)
    t_last = T - (n_steps - 1) * h
    t_path, x_path = [np.array([T])], [x[None].copy()]
    if n_steps > 1:
        target = rev if noise else _DriftOnly(rev)
        traj = simulate(target, x, t0=T, t1=t_last, dt=h, seed=_seed_int(rng), progress=progress,
                        save_every=save_every, **(sim_out or {}))
        x = np.array(traj.x[-1], dtype=np.float64)
        t_path, x_path = [np.asarray(traj.t)], [np.asarray(traj.x)]  # includes t_last
    # final step without noise: the mean of the last Euler–Maruyama transition
    x = x - h * np.asarray(rev.drift(x, t_last), dtype=np.float64)
    t_path.append(np.array([eps]))
    x_path.append(x[None].copy())
    return x, np.concatenate(t_path), np.concatenate(x_path)


def _ancestral(sde, score, x, n_steps, rng, noise, mapping, variance, save_every):
    sched = sde.discretize(n_steps, mapping=mapping)
    N = n_steps
    T = float(sde.T)
    b, al, ab = sched.betas, sched.alphas, sched.alpha_bars
    t_path, x_path = [T], [x.copy()]
    for i in range(N, 0, -1):
        t_i = i * T / N
        s = np.asarray(score(x, t_i), dtype=np.float64)
        # eps_i = -sqrt(1 - ab_i) score  =>  beta_i / sqrt(1 - ab_i) eps_i = -beta_i score
        mean = (x + b[i - 1] * s) / math.sqrt(al[i - 1])
        if i > 1 and noise:
            var = b[i - 1] if variance == "beta" else (1.0 - ab[i - 2]) / (1.0 - ab[i - 1]) * b[i - 1]
            x = mean + math.sqrt(var) * rng.standard_normal(x.shape)
        else:
            x = mean
        k = N - i + 1
        if k % save_every == 0 or i == 1:
            t_path.append((i - 1) * T / N)
            x_path.append(x.copy())
    return x, np.asarray(t_path), np.stack(x_path)


def _pf_heun(sde, score, x, T, eps, n_steps, rng, progress, save_every, sim_out=None):
    from ..integrate import simulate

    h = (T - eps) / n_steps
    traj = simulate(sde.probability_flow(score), x, t0=T, t1=eps, dt=h, method="heun", seed=_seed_int(rng),
                    progress=progress, save_every=save_every, **(sim_out or {}))
    xs = np.asarray(traj.x)
    return np.array(xs[-1], dtype=np.float64), np.asarray(traj.t), xs


def _pf_scipy(sde, score, x, T, eps, rtol, atol):
    pf = sde.probability_flow(score)
    shape = x.shape

    def fun(t, y):
        return np.asarray(pf.drift(y.reshape(shape), float(t)), dtype=np.float64).ravel()

    sol = solve_ivp(fun, (T, eps), x.ravel(), method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"probability-flow solve_ivp failed: {sol.message}")
    out = sol.y[:, -1].reshape(shape)
    return (out, np.array([T, eps]), np.stack([x, out])), int(sol.nfev)


def _predictor_corrector(sde, score, x, T, eps, n_steps, rng, noise, snr, n_corrector, save_every):
    h = (T - eps) / n_steps
    rev = sde.reverse(score)
    ref = sde.discretize(1000, mapping="first_order") if sde.discretizable else None
    t_path, x_path = [T], [x.copy()]
    sqh = math.sqrt(h)
    for k in range(n_steps):
        t = T - k * h
        if ref is not None:
            alpha = float(ref.alphas[int(round(t * (ref.n_steps - 1) / T))])
        else:
            alpha = 1.0
        for _ in range(n_corrector):
            g = np.asarray(score(x, t), dtype=np.float64)
            z = rng.standard_normal(x.shape) if noise else np.zeros_like(x)
            g_norm = np.mean(np.linalg.norm(g, axis=1))
            z_norm = np.mean(np.linalg.norm(z, axis=1))
            step = 2.0 * alpha * (snr * z_norm / g_norm) ** 2 if g_norm > 0 else 0.0
            x = x + step * g + math.sqrt(2.0 * step) * z
        mean = x - h * np.asarray(rev.drift(x, t), dtype=np.float64)
        if k < n_steps - 1 and noise:
            gdiff = np.asarray(rev.diffusion(x, t), dtype=np.float64)
            x = mean + gdiff * sqh * rng.standard_normal(x.shape)
        else:
            x = mean
        if (k + 1) % save_every == 0 or k == n_steps - 1:
            t_path.append(t - h)
            x_path.append(x.copy())
    return x, np.asarray(t_path), np.stack(x_path)
