"""The getting-started MCMC example converges at the settings the page shows (R-hat <= 1.01)."""

import re
from pathlib import Path

import numpy as np

import sde_toolkit as st

DOC = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"


def _mcmc_call() -> str:
    """The ``st.mcmc.langevin(...)`` line of section 6, as printed on the page."""
    text = DOC.read_text()
    block = text[text.index("## 6. MCMC"):]
    return re.search(r"chains = (st\.mcmc\.langevin\(.*\))\n", block).group(1)


def _run(call: str):
    V = st.potentials.from_expression("0.1*x**2 - log(0.2 + cos(2*x)**2)")  # as in section 3
    x0 = np.random.default_rng(0).uniform(-10, 10, (20000, 1))
    # the page's own call with its own keyword values; only progress is switched off
    args = dict(re.findall(r"(\w+)=([\w.\"]+)", call))
    kw = {k: (v.strip('"') if v.startswith('"') else (float(v) if "." in v else int(v))) for k, v in args.items()}
    assert call.startswith("st.mcmc.langevin(V, x0[:1000], ")
    return st.mcmc.langevin(V, x0[:1000], progress=False, **kw)


def test_getting_started_mcmc_converges():
    call = _mcmc_call()
    ch = _run(call)
    rhat = np.asarray(ch.rhat())
    ess = np.asarray(ch.ess())
    assert np.all(rhat <= 1.01), rhat  # measured 1.0058
    assert np.all(ess > 50_000), ess  # measured 1.5e5 from 800,000 kept samples
    assert 0.3 < ch.acceptance_rate < 0.8
    # the page's numbers are the ones this run gives
    text = DOC.read_text()
    assert f"{ch.acceptance_rate:.2f}" in text and f"{float(rhat[0]):.3f}" in text


def test_negative_control_the_old_settings_do_not_converge():
    """The example as it was (step 0.01, 5,000 steps): R-hat 1.45, refused by the same bound."""
    old = 'st.mcmc.langevin(V, x0[:1000], step=0.01, n_steps=5000, method="mala", seed=0, burn_in=1000, thin=10)'
    assert np.all(np.asarray(_run(old).rhat()) > 1.01)


def test_getting_started_float32_leimkuhler_matthews_passes():
    """Section 3's float32 Leimkuhler–Matthews line, with the page's keyword values: float32 frames and the
    stationary check passes, as the page says."""
    text = DOC.read_text()
    call = re.search(r"traj = (st\.simulate\(sde, x0, .*precision=\"float32\"\))\n", text).group(1)
    args = dict(re.findall(r"(\w+)=([\w.\"]+)", call))
    kw = {k: (v.strip('"') if v.startswith('"') else (float(v) if "." in v else int(v))) for k, v in args.items()}
    sde = st.OverdampedLangevin(st.potentials.from_expression("0.1*x**2 - log(0.2 + cos(2*x)**2)"), kT=1.0)
    x0 = np.random.default_rng(0).uniform(-10, 10, (20000, 1))
    traj = st.simulate(sde, x0, progress=False, **kw)
    assert traj.x.dtype == np.float32 and kw["method"] == "leimkuhler_matthews"
    assert st.validate_stationary(sde, traj.final).passed
