"""One registry between models and config dicts: TOML configs, score checkpoints and run-file provenance all use it.

``to_config(model)`` gives a JSON-able dict (``{"type": ..., params}`` for SDEs, ``{"name": ..., params}`` for
potentials) and ``from_config(d)`` builds the model back; ``from_config(to_config(m)) == m`` (models are
value-hashed). The names are the config file's names (``[sde] type = "overdamped_langevin"``,
``potential = {name = "double_well", a = 1.0}``). A potential may also be an expression string, whose variables
follow the SDE's dimension. Models that wrap user code (``SDE.from_functions``, reverse SDEs with a score, a
:class:`~sde_toolkit.sde.potentials.ScorePotential`) have no config form: :func:`to_config` raises ``TypeError``,
:func:`try_to_config` returns ``None``.

Building goes through the models' own constructors, so every parameter is validated there; nothing in a config is
evaluated as code (expressions are parsed by :mod:`sde_toolkit.sde.potentials`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import potentials as P
from .base import Model
from .diffusion import VESDE, VPSDE
from .langevin import OverdampedLangevin, UnderdampedLangevin
from .ou import OrnsteinUhlenbeck

__all__ = ["to_config", "from_config", "try_to_config", "sde_types", "potential_names", "register_sde",
           "register_potential", "potential_to_config", "potential_from_config"]


def _plain(v):
    """JSON-able values: arrays as (nested) lists, numpy scalars as Python numbers."""
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


# ------------------------------------------------------------------------------------------------ potentials
_POT_TO: dict[type, tuple[str, Callable[[Any], dict]]] = {}
_POT_FROM: dict[str, Callable[[Mapping], Any]] = {}


def register_potential(name: str, cls: type, to: Callable[[Any], dict], build: Callable[[Mapping], Any]) -> None:
    """Register a potential class under a config name with its two converters."""
    _POT_TO[cls] = (name, to)
    _POT_FROM[name] = build


def potential_names() -> list[str]:
    return sorted(_POT_FROM)


def potential_to_config(pot) -> dict:
    entry = _POT_TO.get(type(pot))
    if entry is None:
        raise TypeError(f"{type(pot).__name__} has no config form (it is not a registered potential)")
    name, to = entry
    return {"name": name, **to(pot)}


def potential_from_config(spec, dim: int | None = None):
    """A potential from a ``{"name": ..., params}`` table or an expression string (variables ``x, y, z`` up to
    ``dim``)."""
    if isinstance(spec, str):
        variables = ("x",) if dim in (None, 1) else ("x", "y", "z")[:dim]
        return P.from_expression(spec, variables)
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"a potential is an expression string or a table with 'name', got {spec!r}")
    spec = dict(spec)
    name = spec.pop("name")
    build = _POT_FROM.get(name)
    if build is None:
        raise ValueError(f"unknown potential name {name!r}; choose one of {potential_names()}")
    return build(spec)


register_potential("harmonic", P.Harmonic, lambda p: {"k": p.k, "center": p.center},
                   lambda d: P.Harmonic(k=d.get("k", 1.0), center=d.get("center", 0.0)))
register_potential("double_well", P.DoubleWell, lambda p: {"a": p.a, "b": p.b},
                   lambda d: P.DoubleWell(a=d.get("a", 1.0), b=d.get("b", 1.0)))
register_potential("gaussian_mixture", P.GaussianMixture,
                   lambda p: {"weights": _plain(p.weights), "means": _plain(p.means), "covs": _plain(p.covs)},
                   lambda d: P.GaussianMixture(d["weights"], d["means"], d["covs"]))
register_potential("muller_brown", P.MullerBrown, lambda p: {"scale": p.scale},
                   lambda d: P.MullerBrown(scale=d.get("scale", 1.0)))
register_potential("expression", P.ExpressionPotential,
                   lambda p: {"expression": p.expression, "variables": list(p.variables)},
                   lambda d: P.from_expression(d["expression"], tuple(d.get("variables") or ("x",))))


# ------------------------------------------------------------------------------------------------ SDEs
_SDE_TO: dict[type, tuple[str, Callable[[Any], dict]]] = {}
_SDE_FROM: dict[str, Callable[[Mapping], Any]] = {}


def register_sde(name: str, cls: type, to: Callable[[Any], dict], build: Callable[[Mapping], Any]) -> None:
    """Register an SDE class under a config ``type`` with its two converters."""
    _SDE_TO[cls] = (name, to)
    _SDE_FROM[name] = build


def sde_types() -> list[str]:
    return sorted(_SDE_FROM)


def _ol_to(s: OverdampedLangevin) -> dict:
    return {"potential": potential_to_config(s.potential), "kT": s.kT, "gamma": s.gamma, "dim": s.dim}


def _ul_to(s: UnderdampedLangevin) -> dict:
    return {"potential": potential_to_config(s.potential), "gamma": s.gamma, "kT": s.kT, "mass": s.mass,
            "dim": s.dim}


def _vp_to(s: VPSDE) -> dict:
    if s.ddpm_betas is not None:
        return {"ddpm_betas": s.ddpm_betas.tolist(), "mapping": s.ddpm_mapping, "dim": s.dim}
    return {"beta_min": s.beta_min, "beta_max": s.beta_max, "dim": s.dim}


def _vp_from(d: Mapping) -> VPSDE:
    if d.get("ddpm_betas") is not None:
        return VPSDE.from_ddpm_betas(d["ddpm_betas"], dim=d.get("dim", 1), mapping=d.get("mapping", "first_order"),
                                     check_prior=False)
    return VPSDE(beta_min=d.get("beta_min", 0.1), beta_max=d.get("beta_max", 20.0), dim=d.get("dim", 1))


register_sde("overdamped_langevin", OverdampedLangevin, _ol_to,
             lambda d: OverdampedLangevin(potential_from_config(d["potential"], d.get("dim")), kT=d.get("kT", 1.0),
                                          gamma=d.get("gamma", 1.0), dim=d.get("dim")))
register_sde("underdamped_langevin", UnderdampedLangevin, _ul_to,
             lambda d: UnderdampedLangevin(
                 potential_from_config(d["potential"], None if d.get("dim") is None else d["dim"] // 2),
                 gamma=d.get("gamma", 1.0), kT=d.get("kT", 1.0), mass=d.get("mass", 1.0), dim=d.get("dim")))
register_sde("ornstein_uhlenbeck", OrnsteinUhlenbeck,
             lambda s: {"theta": _plain(s.theta_param), "sigma": _plain(s.sigma_param), "mu": _plain(s.mu_param),
                        "dim": s.dim},
             lambda d: OrnsteinUhlenbeck(d["theta"], d["sigma"], mu=d.get("mu", 0.0), dim=d.get("dim")))
register_sde("vpsde", VPSDE, _vp_to, _vp_from)
register_sde("vesde", VESDE, lambda s: {"sigma_min": s.sigma_min, "sigma_max": s.sigma_max, "dim": s.dim},
             lambda d: VESDE(sigma_min=d.get("sigma_min", 0.01), sigma_max=d.get("sigma_max", 50.0),
                             dim=d.get("dim", 1)))


# ------------------------------------------------------------------------------------------------ public
def to_config(model: Model) -> dict:
    """The config dict of a registered SDE (``{"type": ...}``) or potential (``{"name": ...}``)."""
    entry = _SDE_TO.get(type(model))
    if entry is not None:
        name, to = entry
        return {"type": name, **to(model)}
    if type(model) in _POT_TO:
        return potential_to_config(model)
    raise TypeError(f"{type(model).__name__} has no config form: only registered SDEs and potentials "
                    f"({', '.join(sde_types())}) can be stored as configs")


def try_to_config(model) -> dict | None:
    """:func:`to_config`, or ``None`` for models without a config form (user functions, scores)."""
    try:
        return to_config(model)
    except TypeError:
        return None


def from_config(d: Mapping):
    """The model a config dict describes (an SDE for ``{"type": ...}``, a potential for ``{"name": ...}``).

    Raises ``ValueError`` for an unknown type or name, and whatever the model's constructor raises for bad
    parameters.
    """
    if not isinstance(d, Mapping):
        raise ValueError(f"a model config is a table, got {type(d).__name__}")
    if "type" in d:
        kind = d["type"]
        build = _SDE_FROM.get(kind)
        if build is None:
            raise ValueError(f"unknown SDE type {kind!r}; choose one of {sde_types()}")
        return build({k: v for k, v in d.items() if k != "type"})
    if "name" in d:
        return potential_from_config(d)
    raise ValueError(f"a model config needs 'type' (an SDE) or 'name' (a potential), got keys {sorted(d)}")
