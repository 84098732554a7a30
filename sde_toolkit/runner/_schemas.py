"""Config tables of the experiments (``[experiment]``, ``[analysis]``, ``[fokker_planck]``, ``[kramers]``,
``[score]``, ``[compare]``), registered with :func:`sde_toolkit.config.register_table` when the runner loads."""

from __future__ import annotations

from ..config import TABLE_SCHEMAS, Key, TableSchema, _at_least, _finite_check, _positive, register_table

NUM = ("number",)
NUM_OR_ARRAY = ("number", "array")


def register_tables() -> None:
    """Register the experiment tables with the config layer (once)."""
    schemas = [
        TableSchema("experiment", {
            "kind": Key(("string",), default=None, doc="what to run (a registered experiment kind)"),
            "title": Key(("string",), default=None),
            "description": Key(("string",), default=""),
            "compare_methods": Key(("array",), default=[],
                                   check=lambda v: None if all(isinstance(m, str) for m in v) else
                                   f"must be a list of method names, got {v!r}",
                                   doc="simulate: more methods run at the same step, seed and x0, compared"),
        }, doc="which experiment"),
        TableSchema("analysis", {
            "bins": Key(("integer",), default=120, check=_at_least(5)),
            "snapshots": Key(("integer",), default=6, check=_at_least(2)),
            "alpha": Key(NUM, default=1e-3, check=lambda v: None if 0 < v < 1 else f"must be in (0, 1), got {v}"),
        }, doc="analysis of a simulation"),
        TableSchema("fokker_planck", {
            "lower": Key(NUM_OR_ARRAY, required=True, check=_finite_check),
            "upper": Key(NUM_OR_ARRAY, required=True, check=_finite_check),
            "n": Key(("integer", "array"), required=True),
            "boundary": Key(("string", "array"), default="reflecting"),
            "dt": Key(NUM, default=None, check=_positive),
            "method": Key(("string",), default="crank_nicolson",
                          choices=("implicit_euler", "crank_nicolson", "expm")),
        }, doc="Fokker–Planck grid and time stepping"),
        TableSchema("kramers", {
            "x_start": Key(NUM, default=None, check=_finite_check),
            "x_target": Key(NUM, default=None, check=_finite_check),
            "lower": Key(NUM, default=None, check=_finite_check),
            "n_cells": Key(("integer",), default=800, check=_at_least(16)),
        }, doc="first-passage experiment"),
        TableSchema("score", {
            "dataset": Key(("string",), default="spiral"),
            "steps": Key(("integer",), default=4000, check=_at_least(1)),
            "seed": Key(("integer",), default=0),
            "n_samples": Key(("integer",), default=5000, check=_at_least(10)),
            "n_steps": Key(("integer",), default=500, check=_at_least(1)),
        }, doc="score-model training"),
        TableSchema("compare", {
            "targets": Key(("array",), default=["seed_1d", "gaussian_mixture_2d"]),
            "n_chains": Key(("integer",), default=2000, check=_at_least(10)),
            "n_steps": Key(("integer",), default=2000, check=_at_least(10)),
            "step": Key(NUM, default=0.01, check=_positive),
            "train_steps": Key(("integer",), default=1500, check=_at_least(1)),
            "score_noise": Key(NUM, default=0.05, check=_positive),
            "sample_steps": Key(("integer",), default=500, check=_at_least(1)),
            "seed": Key(("integer",), default=0),
        }, doc="MCMC against a learned score"),
    ]
    for s in schemas:
        if s.name not in TABLE_SCHEMAS:
            register_table(s)
