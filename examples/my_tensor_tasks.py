"""The plug-in walk family of ``my_tasks.py``, with a tensor env: rolled out in torch on the agent's device.

A family with ``make_tensor_env`` gets the device rollout loop by default (``sampling.backend: auto``);
the gymnasium env of ``my_tasks.py`` stays the reference it is tested against. Try it:

    metarl train maml-trpo --env "examples.my_tensor_tasks:make_family?target_range=2.0" --iterations 5

(from the repository root, like ``my_tasks.py``).

The contract is in ``metarl/envs/tensor_env.py`` (and docs/sampling.md, "Tensor envs").
"""

from __future__ import annotations

import torch

from examples.my_tasks import Walk
from metarl.envs.tensor_env import TensorEnv, TensorStep


class WalkTensorEnv(TensorEnv):
    """``WalkEnv``'s arithmetic for every row at once: float64 positions, as the gymnasium env keeps them."""

    def __init__(self, tasks, device):
        super().__init__(len(tasks), device)
        self.target = torch.tensor([t.params["target"] for t in tasks], dtype=torch.float64, device=self.device)
        self.x = torch.zeros(self.n, dtype=torch.float64, device=self.device)

    def reset(self, rows, generator):
        self.x = torch.where(rows, 0.0, self.x)
        return self.x[:, None].float()

    def step(self, actions, generator):
        self.x = self.x + actions[:, 0].double().clamp(-1.0, 1.0)
        reward = -(self.x - self.target).abs()
        return TensorStep(self.x[:, None].float(), reward.float(), torch.zeros(self.n, dtype=torch.bool,
                                                                               device=self.device))


class TensorWalk(Walk):
    def make_tensor_env(self, tasks, device):
        return WalkTensorEnv(tasks, device)


def make_family(target_range: float = 1.0) -> TensorWalk:
    return TensorWalk(target_range)
