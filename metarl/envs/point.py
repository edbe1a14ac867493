"""2D point navigation from the MAML paper (Finn et al. 2017, section 5.2).

The agent starts at the origin and must find a goal it cannot see; only the
reward tells it where the goal is, so one batch of experience is enough to
adapt. Exact dynamics and reward, so tests can check a step by hand::

    a_t   = clip(action, -0.1, 0.1)
    s_t+1 = s_t + a_t
    r_t   = -|| s_t+1 - goal ||_2
    terminated when || s_t+1 - goal ||_2 < 0.01; truncated at step 100

``goal_test=box`` ends the episode instead when both |dx| and |dy| are below 0.01, as the MAML
reference code (tristandeleu/pytorch-maml-rl) does: a square about 27% larger than the disk.
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


class PointNavEnv(TaskEnv):
    metadata = {"render_modes": []}

    def __init__(self, task: Task, horizon: int = 100, max_step: float = 0.1, goal_radius: float = 0.01,
                 goal_test: str = "l2") -> None:
        self.horizon, self.max_step, self.goal_radius = horizon, max_step, goal_radius
        self.box = goal_test == "box"
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.action_space = gym.spaces.Box(-max_step, max_step, (2,), np.float32)
        self.set_task(task)
        self._pos = np.zeros(2)
        self._t = 0

    def _apply_task(self, task: Task) -> None:
        self.goal = np.asarray(task.params["goal"], dtype=np.float64)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._pos = np.zeros(2)
        self._t = 0
        return self._pos.astype(np.float32), {}

    def step(self, action):
        a = np.clip(np.asarray(action, dtype=np.float64), -self.max_step, self.max_step)
        self._pos = self._pos + a
        self._t += 1
        delta = self._pos - self.goal
        dist = float(np.linalg.norm(delta))
        terminated = bool(np.all(np.abs(delta) < self.goal_radius)) if self.box else dist < self.goal_radius
        truncated = (not terminated) and self._t >= self.horizon
        return self._pos.astype(np.float32), -dist, terminated, truncated, {"distance": dist}


class PointNav(TaskFamily):
    """Goals uniform in the square [-goal_range, goal_range]^2."""

    description = "2D point navigation to a hidden goal (MAML); obs = position, action = velocity"

    def __init__(self, goal_range: float = 0.5, horizon: int = 100, goal_test: str = "l2") -> None:
        require(goal_range > 0, "point-nav", f"goal_range={goal_range!r} must be > 0")
        require(int(horizon) >= 1, "point-nav", f"horizon={horizon!r} must be an integer >= 1")
        require(goal_test in ("l2", "box"), "point-nav", f"goal_test={goal_test!r} is not allowed; allowed: l2 "
                "(distance < 0.01), box (|dx| and |dy| < 0.01, the MAML reference code's)")
        self.goal_range, self.horizon, self.goal_test = float(goal_range), int(horizon), goal_test
        self.name = "point-nav"

    @property
    def observation_space(self) -> gym.Space:
        return gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)

    @property
    def action_space(self) -> gym.Space:
        return gym.spaces.Box(-0.1, 0.1, (2,), np.float32)

    def sample(self, n, rng=None, split="train"):
        self._check_n(n)
        goals = split_stream(rng, split).uniform(-self.goal_range, self.goal_range, size=(n, 2))
        return self._tasks(split, [{"goal": (float(x), float(y))} for x, y in goals])

    def make_env(self, task: Task) -> gym.Env:
        return PointNavEnv(task, horizon=self.horizon, goal_test=self.goal_test)

    def make_tensor_env(self, tasks: Sequence[Task], device: torch.device) -> TensorEnv:
        from metarl.envs.tensor_families import PointNavTensorEnv

        return PointNavTensorEnv(tasks, device, box=self.goal_test == "box")
