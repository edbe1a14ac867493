"""Meta-test evaluation: adaptation curves, baselines, statistics and plots.

>>> from metarl.envs import make_family
>>> from metarl.evaluation import random_baseline, write_curves, plot_adaptation
>>> family = make_family("point-nav")
>>> tasks = family.sample(10, rng=0, split="test")
>>> rows = random_baseline(family, tasks, rounds=3, episodes_per_round=20, seed=0)
>>> write_curves(rows, "runs/baselines/eval")            # curves.csv + curves.json
>>> plot_adaptation("runs/baselines/eval/curves.csv", "runs/baselines/eval/adaptation.png")

Plotting and the PPO baseline import matplotlib / stable-baselines3, so they
are loaded on first use rather than with this package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from metarl.evaluation.actors import FunctionActor, UniformActor
from metarl.evaluation.curves import (
    COLUMNS,
    SCHEMA_VERSION,
    CurveRow,
    CurveSchemaError,
    CurveSet,
    curve_meta,
    read_curves,
    read_many,
    validate_rows,
    write_curves,
)
from metarl.evaluation.metrics import LEGACY_KEYS, SHARED_KEYS, Progress, ProgressError, read_progress
from metarl.evaluation.stats import Summary, aggregate, bootstrap_ci, iqm, stratified_bootstrap_ci, write_summary_csv

_LAZY = {
    "plot_adaptation": "metarl.evaluation.plots",
    "plot_training": "metarl.evaluation.plots",
    "policy_baseline": "metarl.evaluation.baselines",
    "ppo_scratch_baseline": "metarl.evaluation.baselines",
    "random_baseline": "metarl.evaluation.baselines",
}

__all__ = [
    "COLUMNS", "LEGACY_KEYS", "SCHEMA_VERSION", "SHARED_KEYS", "CurveRow", "CurveSchemaError", "CurveSet",
    "FunctionActor", "Progress", "ProgressError", "Summary", "UniformActor", "aggregate", "bootstrap_ci",
    "curve_meta", "iqm", "read_curves", "read_many", "read_progress", "stratified_bootstrap_ci", "validate_rows",
    "write_curves", "write_summary_csv", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
