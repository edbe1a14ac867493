"""The training-metrics vocabulary: the ``progress.csv`` keys that mean the same thing for every agent.

Each agent logs what its algorithm needs to be debugged (MAML's pre/post-update
returns, Reptile's return after each inner update, RL²'s first and last episode),
but a plot or a script comparing runs must not need to know which agent made
which run. So every agent also logs the shared keys below, with one meaning each:

==========================  ====================================================================
key                         meaning
==========================  ====================================================================
``train/return``            mean undiscounted return of the episodes the agent trained on this
                            iteration, after the iteration's adaptation: MAML, multi-task TRPO:
                            the post-update episodes; Reptile and joint PPO: the episodes of
                            the last inner PPO update. RL²: the return **per trial** (the
                            sum over the trial's episodes), since RL² optimizes the trial as one
                            long episode and its paper reports that total; with one episode per
                            trial it is the episode return.
``train/success``           fraction of those episodes (RL²: of all the trials' episodes) in
                            which any step's ``info["success"]`` was truthy; logged only when
                            the envs report success (``Episodes.reports_success``).
``train/success/<class>``   the same per task class, where the family names classes and a
                            batch holds two or more (Meta-World ML10/ML45:
                            ``train/success/reach-v3``; ``TaskFamily.task_class``). MAML also
                            logs ``train/pre_success/<class>`` and ``train/post_success/<class>``.
``time/total_env_steps``    environment steps collected since the run started (the trainer
                            sums each iteration's ``time/env_steps``).
``time/iteration``          iterations completed.
==========================  ====================================================================

Agents spell the two ``train/`` keys through one function,
:func:`metarl.agents.base.episode_stats`. Runs written before this vocabulary
lack ``train/return`` and ``train/success``; :func:`read_progress` then reads
them from the key each agent logged instead (:data:`LEGACY_KEYS`), so old
committed runs still plot beside new ones:

======================  =========================================  ================================
shared key              legacy key (agent)                         same quantity because
======================  =========================================  ================================
``train/return``        ``train/post_return`` (maml-trpo,          the post-update episodes
                        multitask-trpo)
``train/return``        ``train/trial_return`` (rl2)               the return per trial
``train/return``        ``train/inner_<k>_return``, largest k      the last inner update's batch
                        (reptile-ppo)
``train/success``       ``train/post_success`` (maml-trpo)         as for the return
``train/success``       ``train/inner_<k>_success``, largest k     as for the return
                        (reptile-ppo)
======================  =========================================  ================================
"""

from __future__ import annotations

import csv
import fnmatch
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from metarl.evaluation.curves import CurveSchemaError

__all__ = [
    "ENV_STEPS_KEY",
    "ITERATION_KEY",
    "LEGACY_KEYS",
    "PROGRESS_CSV",
    "RETURN_KEY",
    "SHARED_KEYS",
    "SUCCESS_KEY",
    "Progress",
    "ProgressError",
    "read_progress",
]

PROGRESS_CSV = "progress.csv"
RETURN_KEY = "train/return"
SUCCESS_KEY = "train/success"
ENV_STEPS_KEY = "time/total_env_steps"
ITERATION_KEY = "time/iteration"
#: The metrics every agent logs with the same meaning (the x-axis keys aside).
SHARED_KEYS: tuple[str, ...] = (RETURN_KEY, SUCCESS_KEY)

#: Where runs from before the shared vocabulary keep each shared metric, tried in order; a pattern
#: matching several columns means the one with the largest number (Reptile's last inner update).
LEGACY_KEYS: dict[str, tuple[str, ...]] = {
    RETURN_KEY: ("train/post_return", "train/trial_return", "train/inner_*_return"),
    SUCCESS_KEY: ("train/post_success", "train/inner_*_success"),
}


class ProgressError(CurveSchemaError):
    """A run's ``progress.csv`` is missing, empty, or lacks the metrics asked for (a usage error, exit 2)."""


@dataclass(frozen=True)
class Progress:
    """The columns of one ``progress.csv`` as float arrays (NaN where a key was not logged that row).

    ``sources`` maps each shared key read from a legacy column to that column's name, so a plot
    can say where an old run's curve came from.
    """

    path: Path
    columns: dict[str, np.ndarray]
    sources: dict[str, str]

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def has(self, key: str) -> bool:
        """Whether ``key`` has at least one finite value (a column of blanks was never really logged)."""
        values = self.columns.get(key)
        return values is not None and bool(np.isfinite(values).any())


def _number(raw: str | None) -> float:
    try:
        return float(raw) if raw not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _natural(key: str) -> tuple:
    """Sort key that orders ``inner_10`` after ``inner_9``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", key))


def legacy_source(columns: Mapping[str, np.ndarray], key: str) -> str | None:
    """The column an old run logged ``key``'s quantity under (see :data:`LEGACY_KEYS`), if any."""
    for pattern in LEGACY_KEYS.get(key, ()):
        found = [c for c in columns if fnmatch.fnmatchcase(c, pattern) and np.isfinite(columns[c]).any()]
        if found:
            return max(found, key=_natural)
    return None


def read_progress(path: str | Path) -> Progress:
    """Read a run's ``progress.csv`` (a file, or the run directory holding it), shared keys filled in.

    A shared key the run never logged is read from its legacy column when there is one
    (:data:`LEGACY_KEYS`); the file on disk is not changed. Raises :class:`ProgressError`
    when there is no such file or it has no rows yet.
    """
    path = Path(path)
    if path.is_dir():
        path = path / PROGRESS_CSV
    if not path.is_file():
        raise ProgressError(f"{path}: no such file (is {path.parent} a metarl run directory that has trained?)")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        records = list(reader)
        names = list(reader.fieldnames or [])
    if not records:
        raise ProgressError(f"{path}: no rows yet (the run has not finished an iteration)")
    columns = {name: np.array([_number(r.get(name)) for r in records]) for name in names}
    sources: dict[str, str] = {}
    for key in SHARED_KEYS:
        values = columns.get(key)
        if values is not None and np.isfinite(values).any():
            continue
        source = legacy_source(columns, key)
        if source is not None:
            columns[key] = columns[source]
            sources[key] = source
    return Progress(path, columns, sources)
