"""One sampling API, seven samplers: ``sample(sde, score, n, method=...)``, all on the one driver.

Every sampler starts from the prior at ``T`` (or given ``x_T``) and returns ``(n, dim)`` samples. None of them
clips samples. Each is a :class:`~sde_toolkit.integrate.methods.Method` object (:mod:`sde_toolkit.score.samplers`,
where the formulas and facts are) that steps a score-driven backward SDE on
:func:`sde_toolkit.integrate.driver.run`, so all of them share the driver's machinery:

* noise: one seed (:func:`sde_toolkit._random.resolve_seed`) fixes every sample bit for bit: the prior draw uses
  the counter-based normals of lane ``LANE_INIT`` (step 0), the steps those of ``LANE_NOISE``; a path's noise is a
  function of ``(seed, step, path)``, whatever the thread count;
* ``out=``: the reverse-time trajectory streams into an H5MD file through ``simulate``'s writer, for every
  sampler (the whole path, the final noise-free step included);
* ``progress=``: the driver's progress bar;
* divergence: a non-finite state raises :class:`~sde_toolkit.integrate.DivergenceError` naming the step.

Facts per method (``h = (T - eps) / n_steps``; grid ``t_k = T - k h``):

* ``"euler_maruyama"``: the reverse SDE ``dX = [f - g^2 score] dt + g dW-bar`` from ``T`` to ``eps``
  (:class:`~sde_toolkit.score.samplers.ReverseEulerMaruyama`); the last step is noise-free (the samples are the
  mean of the last transition). Weak order 1; ``n_steps`` score evaluations. With a score that has a Numba face
  (``GaussianMixtureScore``) it runs on the fused driver.
* ``"ancestral"``: DDPM's Algorithm 2 on ``sde.discretize(n_steps, mapping)`` (``discretizable`` SDEs: VPSDE),
  time grid ``t_i = i T / N`` from ``T`` down to 0 (:class:`~sde_toolkit.score.samplers.Ancestral`):
  ``x_{i-1} = (x_i - beta_i / sqrt(1 - ab_i) eps_i) / sqrt(alpha_i) + sigma_i z`` with
  ``eps_i = -sqrt(1 - ab_i) score(x_i, t_i)``; ``sigma_i^2 = beta_i`` (``variance="beta"``) or
  ``(1 - ab_{i-1}) / (1 - ab_i) beta_i`` (``"posterior"``); no noise at ``i = 1`` (the mean is returned).
  ``eps`` is not used: the chain ends at ``t = 0``. ``n_steps`` score evaluations.
* ``"probability_flow"``: the ODE ``dx = [f - g^2 score / 2] dt`` from ``T`` to ``eps``, deterministic given
  ``x_T``; ``solver="heun"`` (order 2, ``2 n_steps`` evaluations, on the driver:
  :class:`~sde_toolkit.score.samplers.ProbabilityFlowHeun`) or ``solver="scipy"`` (adaptive ``solve_ivp`` RK45
  with ``rtol``/``atol``; ``n_steps`` unused; the one sampler off the driver, so no ``out=`` or path).
* ``"predictor_corrector"``: per step ``n_corrector`` Langevin corrector steps
  ``x += delta score + sqrt(2 delta) z`` with the signal-to-noise step size
  ``delta = 2 alpha (snr |z| / |score|)^2`` (norms averaged over particles), then one reverse-SDE
  Euler–Maruyama predictor step; the last predictor step returns its mean. For a discretizable SDE (VPSDE),
  ``alpha = 1 - beta_i`` of the first-order discretization on 1,000 steps with ``i = round(t (N - 1) / T)``,
  exactly as the reference implementation (score_sde) does; ``alpha = 1`` for VE and OU.
  ``(1 + n_corrector) n_steps`` evaluations (:class:`~sde_toolkit.score.samplers.PredictorCorrector`).

* ``"ddim"``, ``"dpmpp_2m"``, ``"edm"``: the few-step samplers on the SDE's declared Gaussian marginal, each on
  its own time grid (``grid=``: ``"uniform"``, ``"logsnr"``, ``"karras"``); formulas, evaluations and orders in
  :mod:`sde_toolkit.score.fewstep` (DDIM: ``n_steps``, order 1, ``eta``; DPM-Solver++(2M): ``n_steps``, order
  2; EDM Heun: ``2 n_steps``, order 2, ``churn``).

Every driver sampler takes ``grid=`` (the older four through :class:`~sde_toolkit.score.fewstep.OnGrid`, except
``ancestral``, which keeps its DDPM grid); saved frames carry the grid's times.

``noise=False`` switches the Brownian increments off in every stochastic sampler (the sampler then applies
its deterministic affine recursion; used to check moment recursions).
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from .. import _random as R
from ..integrate import driver as _driver
from ..integrate.plan import make_plan
from ..integrate.simulate import MemorySink, file_result, open_file_sink
from ..integrate.trajectory import DivergenceError
from ..sde.registry import try_to_config
from . import _marginal, _threads
from .fewstep import GRIDS, MarginalSampler, OnGrid, time_grid
from .samplers import SAMPLERS, ScoreSampler, get_sampler

METHODS = ("euler_maruyama", "ancestral", "probability_flow", "predictor_corrector", "ddim", "dpmpp_2m", "edm")
SOLVERS = ("heun", "scipy")


def _pos_int(v, name: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def prior_draw(prior, seed: R.Seed, n: int) -> np.ndarray:
    """``n`` draws of the Gaussian ``prior`` (``mean + L z``, ``L L^T = cov``) from the counter-based normals of
    lane ``LANE_INIT`` at step 0: row ``i`` depends only on ``(seed, i)``."""
    z = R.normals(seed, range(0, 1), range(0, int(n)), prior.dim, lane=R.LANE_INIT)[0]
    return prior.mean + z @ np.linalg.cholesky(prior.cov).T


def sample(sde, score, n: int, *, method: str = "euler_maruyama", n_steps: int = 1000, seed=None,
           eps: float = 1e-3, T: float | None = None, x_T=None, noise: bool = True, mapping: str = "exact",
           variance: str = "beta", solver: str = "heun", rtol: float = 1e-5, atol: float = 1e-5,
           snr: float = 0.16, n_corrector: int = 1, eta: float = 0.0, churn: float = 0.0, s_noise: float = 1.0,
           grid: str | None = None, rho: float = 7.0, lower_order_final: bool = True, threads: int | None = None,
           progress=None, return_path: bool = False, save_every: int = 1, info: dict | None = None, out=None,
           overwrite: bool = False):
    """Draw ``n`` samples of ``p_eps`` (``p_0`` for ``ancestral``) by running time backwards with ``score``.

    See the module docstring for each method's formula and facts.

    Args:
        sde: the forward SDE, declaring ``affine_marginal`` (VPSDE, VESDE or scalar OrnsteinUhlenbeck; ``T``
            required where ``sde.T`` is ``None``, as for OU); its ``dim`` is adapted to the score's.
        score: ``score(x, t) -> (n, dim)`` on NumPy arrays (a :class:`TorchScore`, a
            :class:`GaussianMixtureScore`, or any callable).
        n: number of samples.
        method: a registered sampler name (``"euler_maruyama"``, ``"ancestral"``, ``"probability_flow"``,
            ``"predictor_corrector"``; see :func:`sde_toolkit.score.samplers.register_sampler`).
        n_steps: time steps (>= 1).
        seed: int, ``SeedSequence``, ``Generator``, a stored seed dict, or ``None`` (fresh entropy, recorded in
            ``info["seed"]``); fixes the prior draw and all noise bit for bit.
        eps: end time ``0 < eps < T`` (not used by ``ancestral``).
        T: start time (default ``sde.T``).
        x_T: start points ``(n, dim)`` instead of prior draws.
        noise: ``False`` switches off the noise of the stochastic samplers.
        mapping: DDPM mapping for ``ancestral`` (``"exact"`` or ``"first_order"``, see ``VPSDE.discretize``).
        variance: ``"beta"`` or ``"posterior"`` (``ancestral``).
        solver: ``"heun"`` or ``"scipy"`` (``probability_flow``).
        rtol, atol: tolerances of the scipy solver.
        snr, n_corrector: the Langevin corrector (``predictor_corrector``).
        eta: DDIM's noise scale (``ddim``: 0 deterministic, 1 the DDPM posterior, i.e. ancestral in law).
        churn, s_noise: EDM's stochastic churn and noise inflation (``edm``; ``churn=0`` is the deterministic
            Heun sampler).
        grid: the time grid, ``"uniform"``, ``"logsnr"`` or ``"karras"`` (``rho``), for every sampler on the
            driver (``None``: the sampler's default, ``"uniform"`` for ``euler_maruyama``, ``ancestral``,
            ``probability_flow``, ``predictor_corrector`` and ``ddim``; ``"logsnr"`` for ``dpmpp_2m``;
            ``"karras"`` for ``edm``). ``ancestral`` runs on its DDPM schedule's uniform grid only (``ddim`` with
            ``eta=1`` is the same chain on any grid).
        rho: the exponent of the ``"karras"`` grid (7).
        lower_order_final: ``dpmpp_2m``'s first-order last step for ``n_steps < 15``.
        threads: torch intra-op threads while a torch score runs (``None``: chosen by the network's size, see
            :func:`sde_toolkit.score._threads.choose_threads`); the previous count is restored afterwards.
        progress: the driver's progress bar: ``True`` always, ``False`` never, ``None`` (default) when the run is
            projected to take over ~2 s.
        return_path: also return ``(t_path, x_path)`` with every ``save_every``-th state, the start and the end.
        save_every: thinning of the path (and of the file).
        info: a dict to receive facts about the run: ``method``, ``nfe`` (score evaluations), ``seed`` (the
            resolved seed as stored in files), ``driver`` (``"fused"`` or ``"batched"``), ``sampler`` (the
            :class:`~sde_toolkit.score.samplers.ScoreSampler` that ran).
        out: path of an H5MD file (``simulate``'s writer, ``docs/file-format.md``) that receives the reverse-time
            trajectory, every ``save_every``-th state plus the first and the last; the returned samples are its
            last frame. Not with ``solver="scipy"``.
        overwrite: replace an existing ``out``.

    Returns:
        ``(n, dim)`` samples, or ``(samples, t_path, x_path)`` when ``return_path``.

    Raises:
        ValueError: bad ``n``, ``n_steps``, ``method``, ``eps``, ``x_T`` shape or non-finite values, a sampler
            option, or a sampler that does not support the SDE (e.g. ``ancestral`` without a DDPM schedule).
        TypeError: an SDE without an affine marginal.
        DivergenceError: a state became non-finite (names the step and time; frames before it are kept in
            ``err.trajectory`` or in ``out``).
    """
    cls = get_sampler(method)
    if grid is not None and grid not in GRIDS:
        raise ValueError(f"grid must be one of {GRIDS} (or None for the sampler's default), got {grid!r}")
    if issubclass(cls, MarginalSampler) and not _marginal.has_gaussian_marginal(sde):
        raise ValueError(f"method={cls.name!r} reads the SDE's Gaussian marginal (affine_marginal: VPSDE, VESDE, "
                         f"scalar OrnsteinUhlenbeck); {sde!r} declares none")
    if cls.name == "ancestral" and grid not in (None, "uniform"):
        raise ValueError(f"ancestral runs on its DDPM schedule's uniform grid, got grid={grid!r}; ddim with eta=1 "
                         "is the same chain on any grid")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be 'heun' or 'scipy', got {solver!r}")
    scipy_pf = cls.name == "probability_flow" and solver == "scipy"
    if scipy_pf and out is not None:
        raise ValueError("out= needs a sampler on the driver; probability_flow with solver='scipy' is adaptive "
                         "(use solver='heun')")
    if scipy_pf and return_path:
        raise ValueError("return_path is not available with solver='scipy'")
    if scipy_pf and grid not in (None, "uniform"):
        raise ValueError("probability_flow with solver='scipy' is adaptive and takes no grid= (use solver='heun')")
    n = _pos_int(n, "n")
    n_steps = _pos_int(n_steps, "n_steps")
    save_every = _pos_int(save_every, "save_every")
    _marginal.require_affine(sde)
    default_dim = int(np.shape(x_T)[1]) if x_T is not None and np.ndim(x_T) == 2 else sde.dim
    dim = _marginal.score_dim(score, default_dim)
    sde = _marginal.for_dim(sde, dim)
    T_ = _marginal.end_time(sde, T)
    eps = float(eps)
    if not (0.0 < eps < T_):
        raise ValueError(f"eps must satisfy 0 < eps < T = {T_}, got {eps}")
    sde.check_prior(stacklevel=3)
    seed = R.resolve_seed(seed)
    if x_T is None:
        x = prior_draw(sde.prior(), seed, n)
    else:
        x = np.array(x_T, dtype=np.float64)
        if x.shape != (n, dim):
            raise ValueError(f"x_T must have shape ({n}, {dim}), got {x.shape}")
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        if bad.size:
            raise ValueError(f"x_T contains NaN or inf (first at row {int(bad[0])})")
    info = {} if info is None else info
    info.update(method=cls.name, seed=seed.to_json())
    with _threads.torch_threads(score, threads, info):
        if scipy_pf:
            samples, nfe = _pf_scipy(sde, score, x, T_, eps, rtol, atol)
            info.update(nfe=nfe, driver="scipy")
            return samples
        options = {"mapping": mapping, "variance": variance, "snr": snr, "n_corrector": n_corrector, "eta": eta,
                   "churn": churn, "s_noise": s_noise, "grid": grid, "rho": rho,
                   "lower_order_final": lower_order_final}
        sampler = cls.from_options(sde, T=T_, eps=eps, n_steps=n_steps, noise=noise, options=options)
        if grid not in (None, "uniform") and not isinstance(sampler, MarginalSampler):
            sampler = OnGrid(sampler, time_grid(sde, grid, *sampler.time_grid(sde, T_, eps), n_steps, rho))
        traj = run_sampler(sampler, sde, score, x, T=T_, eps=eps, n_steps=n_steps, seed=seed,
                           save_every=save_every, progress=progress, out=out, overwrite=overwrite, info=info)
    samples = np.array(traj.x[-1], dtype=np.float64)
    if return_path:
        return samples, np.asarray(traj.t, dtype=np.float64), np.asarray(traj.x, dtype=np.float64)
    return samples


def run_sampler(sampler: ScoreSampler, sde, score, x: np.ndarray, *, T: float, eps: float, n_steps: int, seed,
                save_every: int = 1, progress=False, out=None, overwrite: bool = False, info: dict | None = None):
    """Run ``sampler`` on the driver from the states ``x`` ``(n, dim)`` (modified in place) over ``n_steps``
    steps of ``sampler.time_grid(sde, T, eps)``; returns the :class:`~sde_toolkit.integrate.Trajectory` (in memory,
    or read back lazily from ``out``)."""
    target = sampler.target(sde, score)
    t0, t1 = sampler.time_grid(sde, T, eps)
    own = sampler.grid_times()
    if own is not None:
        if own.size != n_steps + 1:
            raise ValueError(f"the sampler's grid has {own.size - 1} steps, n_steps is {n_steps}")
        k = np.arange(n_steps + 1)
        if out is not None and not np.array_equal(own[1:-1], t0 + k[1:-1] * ((t1 - t0) / n_steps)):
            raise ValueError("out= records the driver's uniform time labels; a sampler on a non-uniform grid "
                             "(grid='logsnr' or 'karras') cannot stream to a file: use grid='uniform' or "
                             "return_path=True")
    plan = make_plan(target, x, t0=t0, t1=t1, dt=abs(t1 - t0) / n_steps, save_every=save_every, method=sampler,
                     seed=seed, driver="auto" if sampler.fused_face else "batched")
    if info is not None:
        info.update(nfe=sampler.evaluations(n_steps), driver=plan.driver, sampler=sampler,
                    grid=None if own is None else own.copy())
    if out is None:
        sink = MemorySink(plan)
    else:
        provenance = {"sampler": {"method": sampler.name, "n_steps": n_steps, "T": T, "eps": eps,
                                  "forward_sde": try_to_config(sde), "score": repr(score),
                                  "facts": sampler.describe()}}
        sink = open_file_sink(out, plan, target, x, dtype="float64", overwrite=bool(overwrite), config=provenance)
    try:
        _driver.run(target, sampler, plan, x, sink, progress=progress, label=None if out is None else str(out),
                    desc=f"sample[{sampler.name}]")
    except DivergenceError as err:
        if out is None:
            err.trajectory = _relabel(sink.result(), own)
        raise
    return _relabel(sink.result(), own) if out is None else file_result(sink)


def _relabel(traj, own):
    """The trajectory with each frame's time read from the sampler's own grid (non-uniform grids)."""
    if own is None:
        return traj
    return type(traj)(t=own[np.asarray(traj.steps, dtype=np.int64)], x=traj.x, steps=traj.steps, meta=traj.meta)


def _pf_scipy(sde, score, x, T, eps, rtol, atol):
    pf = sde.probability_flow(score)
    shape = x.shape

    def fun(t, y):
        return np.asarray(pf.drift(y.reshape(shape), float(t)), dtype=np.float64).ravel()

    sol = solve_ivp(fun, (T, eps), x.ravel(), method="RK45", rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"probability-flow solve_ivp failed: {sol.message}")
    return sol.y[:, -1].reshape(shape), int(sol.nfev)


__all__ = ["sample", "run_sampler", "prior_draw", "METHODS", "SOLVERS", "SAMPLERS"]
