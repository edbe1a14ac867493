"""Running the installed ``metarl`` console script the way a user does, for the CLI tests.

Each call runs in its own process from a working directory outside the repository, with no
``PYTHONPATH``, so nothing works by accident of the test runner's ``sys.path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METARL = Path(sys.executable).with_name("metarl")

#: Tiny but complete settings per agent: every part runs, in a few seconds.
TINY: dict[str, tuple[str, list[str]]] = {
    "maml-trpo": ("point-nav", ["meta_batch_size=2", "episodes_per_task=2", "hidden_sizes=[8, 8]"]),
    "multitask-trpo": ("point-nav", ["meta_batch_size=2", "episodes_per_task=2", "hidden_sizes=[8, 8]"]),
    "meta-sgd": ("point-nav", ["meta_batch_size=2", "episodes_per_task=2", "hidden_sizes=[8, 8]"]),
    "reptile-ppo": ("point-nav", ["meta_batch_size=2", "inner_updates=1", "episodes_per_update=2",
                                  "minibatch_size=50", "hidden_sizes=[8, 8]"]),
    "joint-ppo": ("point-nav", ["meta_batch_size=2", "inner_updates=1", "episodes_per_update=2",
                                "minibatch_size=50", "hidden_sizes=[8, 8]"]),
    "rl2-gru": ("bandit?k=2&n=3", ["policy=gru", "meta_batch_size=2", "trials_per_task=2", "hidden_size=8",
                                   "minibatches=1"]),
    "rl2-lstm": ("bandit?k=2&n=3", ["policy=lstm", "meta_batch_size=2", "trials_per_task=2", "hidden_size=8",
                                    "minibatches=1"]),
    "rl2-snail": ("bandit?k=2&n=3", ["policy=snail", "meta_batch_size=2", "trials_per_task=2", "snail_embed=8",
                                     "snail_filters=8", "snail_key_size=8", "snail_value_size=8", "minibatches=1"]),
    "pearl": ("point-nav", ["train_tasks=4", "initial_episodes=1", "tasks_per_iteration=2", "prior_episodes=1",
                            "extra_posterior_episodes=1", "gradient_steps=3", "meta_batch_size=2", "batch_size=16",
                            "context_size=8", "hidden_sizes=[8]", "encoder_hidden_sizes=[8]"]),
}
QUIET = ["--no-progress", "--set", "trainer.stdout=false", "--set", "trainer.tensorboard=true"]


@dataclass
class Result:
    code: int
    out: str
    err: str


def user_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "METARL_PLUGINS", "METARL_DEBUG")}
    env.update(MPLBACKEND="Agg", **extra)
    return env


def metarl(*args: str, cwd: Path, timeout: float = 240, env: dict[str, str] | None = None) -> Result:
    """``metarl ARGS`` in ``cwd``; returns the exit code and both streams."""
    proc = subprocess.run([str(METARL), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env or user_env())
    return Result(proc.returncode, proc.stdout, proc.stderr)


def train_args(agent: str, run_dir: str, iterations: int = 1) -> list[str]:
    """``train`` arguments for a tiny run of ``agent`` (a key of :data:`TINY`)."""
    env, overrides = TINY[agent]
    sets = [arg for o in overrides for arg in ("--set", o)]
    return ["train", agent.split("-")[0] if agent.startswith("rl2") else agent, "--env", env, "--run-dir", run_dir,
            "--iterations", str(iterations), *sets, *QUIET]
