"""Tensor envs of the built-in cheap families: bandits, tabular MDPs and 2D navigation.

Each is the torch twin of a gymnasium env in :mod:`metarl.envs.bandit`, :mod:`~metarl.envs.tabular`
or :mod:`~metarl.envs.point` (the contract: :mod:`metarl.envs.tensor_env`). The deterministic part
of every step is a method of its own (``outcome``), a function of the state, the action and the
step's random draws, so tests feed both paths the same draws and compare them exactly; the draws
themselves come from the sampler's generator on the device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from metarl.envs.base import Task
from metarl.envs.tabular import mdp_tables
from metarl.envs.tensor_env import TensorEnv, TensorStep, categorical_from_uniform

__all__ = ["BanditTensorEnv", "PointNavTensorEnv", "TabularMDPTensorEnv"]


class BanditTensorEnv(TensorEnv):
    """Bernoulli arms: a pull pays 1 when the step's uniform falls below the arm's probability."""

    def __init__(self, tasks: Sequence[Task], device: torch.device) -> None:
        super().__init__(len(tasks), device)
        self.probs = torch.tensor([t.params["probs"] for t in tasks], dtype=torch.float64, device=self.device)
        self._obs = torch.ones(self.n, 1, device=self.device)
        self._ends = torch.ones(self.n, dtype=torch.bool, device=self.device)

    def reset(self, rows: Tensor, generator: torch.Generator) -> Tensor:
        return self._obs

    def step(self, actions: Tensor, generator: torch.Generator) -> TensorStep:
        u = torch.rand(self.n, generator=generator, dtype=torch.float64, device=self.device)
        return TensorStep(self._obs, self.outcome(actions, u), self._ends)

    def outcome(self, actions: Tensor, u: Tensor) -> Tensor:
        """The rewards of pulling ``actions`` when the steps' uniforms are ``u`` (``BanditEnv.step``'s rule)."""
        p = self.probs.gather(1, actions.long().view(-1, 1)).squeeze(1)
        return (u < p).to(torch.float32)


class TabularMDPTensorEnv(TensorEnv):
    """Random tabular MDPs: reward ``R[s, a] + N(0, 1)``, next state by inverse CDF of ``P[s, a]``.

    The tables are rebuilt from each task's seed with :func:`~metarl.envs.tabular.mdp_tables` (the
    gymnasium env's own function), once per distinct task, then indexed per row.
    """

    def __init__(self, tasks: Sequence[Task], states: int, actions: int, device: torch.device) -> None:
        super().__init__(len(tasks), device)
        self.states = states
        seeds = [int(t.params["mdp_seed"]) for t in tasks]
        distinct = list(dict.fromkeys(seeds))
        tables = [mdp_tables(s, states, actions) for s in distinct]
        self.transitions = torch.tensor(np.stack([p for p, _ in tables]), dtype=torch.float64, device=self.device)
        self.mean_rewards = torch.tensor(np.stack([r for _, r in tables]), dtype=torch.float64, device=self.device)
        where = {s: i for i, s in enumerate(distinct)}
        self.task = torch.tensor([where[s] for s in seeds], dtype=torch.long, device=self.device)
        self.state = torch.zeros(self.n, dtype=torch.long, device=self.device)

    def _obs(self) -> Tensor:
        return torch.nn.functional.one_hot(self.state, self.states).to(torch.float32)

    def reset(self, rows: Tensor, generator: torch.Generator) -> Tensor:
        start = torch.randint(self.states, (self.n,), generator=generator, device=self.device)
        self.state = torch.where(rows, start, self.state)
        return self._obs()

    def step(self, actions: Tensor, generator: torch.Generator) -> TensorStep:
        noise = torch.randn(self.n, generator=generator, dtype=torch.float64, device=self.device)
        u = torch.rand(self.n, generator=generator, dtype=torch.float64, device=self.device)
        reward, self.state = self.outcome(self.state, actions, noise, u)
        return TensorStep(self._obs(), reward, torch.zeros(self.n, dtype=torch.bool, device=self.device))

    def outcome(self, state: Tensor, actions: Tensor, noise: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        """Reward and next state from ``state`` under ``actions``, given the step's normal ``noise`` and
        uniform ``u`` (the draws ``TabularMDPEnv.step`` makes, in its order)."""
        a = actions.long()
        reward = (self.mean_rewards[self.task, state, a] + noise).to(torch.float32)
        return reward, categorical_from_uniform(self.transitions[self.task, state, a], u)


class PointNavTensorEnv(TensorEnv):
    """2D navigation: the position moves by the clipped action; reward minus the distance to the goal.

    Positions are float64, as in the gymnasium env, so the two paths run the same floating-point
    operations on the same actions.
    """

    def __init__(self, tasks: Sequence[Task], device: torch.device, *, max_step: float = 0.1,
                 goal_radius: float = 0.01, box: bool = False) -> None:
        super().__init__(len(tasks), device)
        self.goal = torch.tensor([t.params["goal"] for t in tasks], dtype=torch.float64, device=self.device)
        self.pos = torch.zeros(self.n, 2, dtype=torch.float64, device=self.device)
        self.max_step, self.goal_radius, self.box = max_step, goal_radius, box

    def reset(self, rows: Tensor, generator: torch.Generator) -> Tensor:
        self.pos = torch.where(rows[:, None], 0.0, self.pos)
        return self.pos.to(torch.float32)

    def step(self, actions: Tensor, generator: torch.Generator) -> TensorStep:
        self.pos, reward, terminated = self.outcome(self.pos, actions)
        return TensorStep(self.pos.to(torch.float32), reward, terminated)

    def outcome(self, pos: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Next position, reward and termination (``PointNavEnv.step``'s arithmetic, row by row)."""
        a = actions.to(torch.float64).clamp(-self.max_step, self.max_step)
        pos = pos + a
        delta = pos - self.goal
        dist = torch.linalg.vector_norm(delta, dim=-1)
        if self.box:
            terminated = (delta.abs() < self.goal_radius).all(-1)
        else:
            terminated = dist < self.goal_radius
        return pos, (-dist).to(torch.float32), terminated
