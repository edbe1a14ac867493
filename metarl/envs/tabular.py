"""Random tabular MDPs from RL² (Duan et al. 2016, section 3.2).

Each task is an MDP with ``states`` states and ``actions`` actions: transitions
P(.|s,a) ~ Dirichlet(1,...,1) and mean rewards R(s,a) ~ N(1, 1); a step pays
R(s,a) + N(0, 1) noise. Episodes last ``horizon`` steps and start in a state
drawn uniformly; a trial is ``n`` episodes on the same MDP. The task stores only
the seed of its MDP, so it stays tiny when shipped to workers.

Spec: ``tabular-mdp?n=10`` (also ``states``, ``actions``, ``horizon``).
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


def mdp_tables(seed: int, states: int, actions: int) -> tuple[np.ndarray, np.ndarray]:
    """Rebuild (P, R) of a task from its seed; shared by env and closed-form tests."""
    g = np.random.default_rng(seed)
    transitions = g.dirichlet(np.ones(states), size=(states, actions))
    mean_rewards = g.normal(1.0, 1.0, size=(states, actions))
    return transitions, mean_rewards


class TabularMDPEnv(TaskEnv):
    """Observation is the one-hot current state."""

    metadata = {"render_modes": []}

    def __init__(self, task: Task, states: int, actions: int, horizon: int) -> None:
        self.states, self.actions, self.horizon = states, actions, horizon
        self.observation_space = gym.spaces.Box(0.0, 1.0, (states,), np.float32)
        self.action_space = gym.spaces.Discrete(actions)
        self.set_task(task)
        self._s, self._t = 0, 0

    def _apply_task(self, task: Task) -> None:
        self.transitions, self.mean_rewards = mdp_tables(task.params["mdp_seed"], self.states, self.actions)

    def _obs(self) -> np.ndarray:
        o = np.zeros(self.states, np.float32)
        o[self._s] = 1.0
        return o

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._s, self._t = int(self.np_random.integers(self.states)), 0
        return self._obs(), {}

    def step(self, action):
        a = int(action)
        reward = float(self.mean_rewards[self._s, a] + self.np_random.normal())
        self._s = int(self.np_random.choice(self.states, p=self.transitions[self._s, a]))
        self._t += 1
        return self._obs(), reward, False, self._t >= self.horizon, {}


class TabularMDP(TaskFamily):
    description = "random tabular MDPs (RL²): Dirichlet transitions, N(1,1) mean rewards"

    def __init__(self, n: int = 10, states: int = 10, actions: int = 5, horizon: int = 10) -> None:
        for key, val in (("n", n), ("states", states), ("actions", actions), ("horizon", horizon)):
            require(isinstance(val, (int, np.integer)) and not isinstance(val, bool) and val >= 1,
                    "tabular-mdp", f"{key}={val!r} is invalid; it must be an integer >= 1")
        self.trial_episodes, self.states, self.actions, self.horizon = int(n), int(states), int(actions), int(horizon)
        self.name = f"tabular-mdp?n={self.trial_episodes}"

    @property
    def observation_space(self) -> gym.Space:
        return gym.spaces.Box(0.0, 1.0, (self.states,), np.float32)

    @property
    def action_space(self) -> gym.Space:
        return gym.spaces.Discrete(self.actions)

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        seeds = split_stream(rng, split).integers(2**31, size=n)
        return self._tasks(split, [{"mdp_seed": int(s)} for s in seeds])

    def make_env(self, task: Task) -> gym.Env:
        return TabularMDPEnv(task, self.states, self.actions, self.horizon)

    def make_tensor_env(self, tasks: Sequence[Task], device: torch.device) -> TensorEnv:
        from metarl.envs.tensor_families import TabularMDPTensorEnv

        return TabularMDPTensorEnv(tasks, self.states, self.actions, device)
