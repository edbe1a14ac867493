"""Bernoulli multi-armed bandits from RL² (Duan et al. 2016, section 3.1).

As in the paper, a pull is an episode of one step and a *trial* is ``n`` pulls on
the same bandit; a context-based agent must carry what it learned from one pull
to the next. Arm probabilities are drawn i.i.d. from U[0, 1].

Spec: ``bandit?k=5&n=100`` (k arms, n pulls per trial; defaults k=5, n=10).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

if TYPE_CHECKING:
    import torch

    from metarl.envs.tensor_env import TensorEnv

from metarl.envs.base import Task, TaskEnv, TaskFamily, require, split_stream


class BanditEnv(TaskEnv):
    """Observation is a constant 1.0: a bandit has no state, only its rewards inform."""

    metadata = {"render_modes": []}

    def __init__(self, task: Task) -> None:
        self.set_task(task)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(len(self.probs))

    def _apply_task(self, task: Task) -> None:
        self.probs = np.asarray(task.params["probs"], dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return np.ones(1, np.float32), {}

    def step(self, action):
        arm = int(action)
        reward = float(self.np_random.random() < self.probs[arm])
        return np.ones(1, np.float32), reward, True, False, {"arm_prob": float(self.probs[arm])}


class Bandit(TaskFamily):
    description = "Bernoulli k-armed bandit, p ~ U[0,1]; a trial is n one-step episodes (RL²)"

    def __init__(self, k: int = 5, n: int = 10) -> None:
        require(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 2,
                "bandit", f"k={k!r} is invalid; k (number of arms) must be an integer >= 2")
        require(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1,
                "bandit", f"n={n!r} is invalid; n (pulls per trial) must be an integer >= 1")
        self.k, self.trial_episodes, self.horizon = int(k), int(n), 1
        self.name = f"bandit?k={self.k}&n={self.trial_episodes}"

    @property
    def observation_space(self) -> gym.Space:
        return gym.spaces.Box(0.0, 1.0, (1,), np.float32)

    @property
    def action_space(self) -> gym.Space:
        return gym.spaces.Discrete(self.k)

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        probs = split_stream(rng, split).uniform(0.0, 1.0, size=(n, self.k))
        return self._tasks(split, [{"probs": tuple(float(p) for p in row)} for row in probs])

    def make_env(self, task: Task) -> gym.Env:
        return BanditEnv(task)

    def make_tensor_env(self, tasks: Sequence[Task], device: torch.device) -> TensorEnv:
        from metarl.envs.tensor_families import BanditTensorEnv

        return BanditTensorEnv(tasks, device)
