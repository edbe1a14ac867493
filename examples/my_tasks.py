"""A plug-in task family, as in README.md: a 1-D walk to a hidden target.

Run it through the CLI without installing anything:

    metarl envs --env "examples.my_tasks:make_family?target_range=2.0"
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from metarl.envs import Task, TaskEnv, TaskFamily, split_stream


class WalkEnv(TaskEnv):
    """Move left or right along a line; reward is minus the distance to the task's target."""

    def __init__(self, task: Task) -> None:
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.set_task(task)

    def _apply_task(self, task: Task) -> None:
        self.target = task.params["target"]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0.0, 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x += float(np.clip(action[0], -1.0, 1.0))
        self.t += 1
        return np.array([self.x], np.float32), -abs(self.x - self.target), False, self.t >= 20, {}


class Walk(TaskFamily):
    name, horizon, description = "walk", 20, "1-D walk to a hidden target"

    def __init__(self, target_range: float = 1.0) -> None:
        self.target_range = target_range

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def sample(self, n, rng=None, split="train"):
        g = split_stream(rng, split)  # a private stream per split keeps train and test tasks apart
        return [Task(self.name, split, i, {"target": float(t)})
                for i, t in enumerate(g.uniform(-self.target_range, self.target_range, n))]

    def make_env(self, task):
        return WalkEnv(task)


def make_family(target_range: float = 1.0) -> Walk:
    return Walk(target_range)
