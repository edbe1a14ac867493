"""Meta-SGD (Li et al. 2017): MAML whose inner step size is a learned vector, one entry per weight.

    require: p(T) over tasks, outer trust region delta
    initialize theta, and alpha (same shape as theta) to the initial step size
    while not done:
        sample a meta-batch of tasks T_i ~ p(T)
        for all T_i:
            sample trajectories D_i with f_theta
            theta'_i = theta - alpha o grad_theta L_T_i(f_theta)  on D_i      # o: elementwise
            sample trajectories D'_i with f_theta'_i
        (theta, alpha) <- TRPO step on sum_i L_T_i(f_theta'_i) over D'_i       # both meta-learned

The paper's RL experiments meta-train with vanilla policy gradient inside and TRPO outside, as
MAML's; everything but the step size is MAML-TRPO's (:mod:`metarl.agents.maml_trpo`), so this
file only says where alpha lives: beside the policy's weights in the meta-parameters, in the
inner step, and in checkpoints. The trust region bounds the KL of the adapted policies, so it
limits how far a step-size change may move them, just as it does for the weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from metarl.agents.maml_trpo import MAMLTRPO, MAMLTRPOConfig
from metarl.core import load_params_, module_params, split_step_sizes, step_size_key
from metarl.envs import TaskFamily
from metarl.runs import param


@dataclass(frozen=True)
class MetaSGDConfig(MAMLTRPOConfig):
    inner_lr: float = param(0.1, min=0.0, exclusive_min=True, help="initial value of every learned step size alpha")


class MetaSGD(MAMLTRPO):
    name = "meta-sgd"
    summary = "MAML with learned per-parameter step sizes"
    Config = MetaSGDConfig
    learned_step_size = True  # the meta-parameters carry alpha: see metarl.core.maml.step_size_key

    def __init__(self, config: MetaSGDConfig, family: str | TaskFamily, *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(config, family, seed=seed, device=device)
        self.alpha = {k: torch.full_like(p.detach(), config.inner_lr)
                      for k, p in self.policy.named_parameters() if k not in self.frozen}

    def step_size(self) -> dict[str, torch.Tensor]:
        return self.alpha

    def meta_parameters(self) -> dict[str, torch.Tensor]:
        return {**module_params(self.policy, detach=True),
                **{step_size_key(k): v.clone() for k, v in self.alpha.items()}}

    def load_meta_parameters(self, new: Mapping[str, torch.Tensor]) -> None:
        weights, alpha = split_step_sizes(new)
        load_params_(self.policy, weights)
        self.alpha = {k: v.detach().clone() for k, v in alpha.items()}

    def train_iteration(self, it: int) -> dict[str, float]:
        metrics = super().train_iteration(it)
        flat = torch.cat([a.reshape(-1) for a in self.alpha.values()])
        metrics.update(alpha_mean=float(flat.mean()), alpha_abs_min=float(flat.abs().min()),
                       alpha_abs_max=float(flat.abs().max()))
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "alpha": {k: v.detach().cpu() for k, v in self.alpha.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.alpha = {k: v.to(self.device) for k, v in state["alpha"].items()}
