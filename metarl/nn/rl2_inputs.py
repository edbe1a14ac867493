"""The per-step input of context-based (RL²-style) policies.

RL² (Duan et al. 2016) learns to adapt inside its hidden state, so the policy must
see what a learning algorithm would see: the observation, the action it took, the
reward it got and whether an episode just ended (the hidden state is *not* reset
between the episodes of one trial, only at trial boundaries).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def rl2_input_dim(obs_dim: int, action_dim: int) -> int:
    """Width of :func:`rl2_inputs` (``action_dim`` = number of actions if discrete)."""
    return obs_dim + action_dim + 2


def rl2_inputs(
    obs: Tensor,
    prev_action: Tensor,
    prev_reward: Tensor,
    done: Tensor,
    *,
    action_dim: int,
    discrete: bool,
) -> Tensor:
    """Concatenate ``[obs, prev_action, prev_reward, done]`` on the last dimension.

    Shapes: ``obs [..., obs_dim]``; ``prev_action [..., action_dim]`` (continuous) or
    integer ``[...]`` (discrete, one-hot encoded here; a negative index such as -1
    means "no previous action" at a trial's first step and encodes as all zeros);
    ``prev_reward [...]``; ``done [...]`` (1.0 when the previous step ended an
    episode, so the policy knows the environment was reset).
    """
    if discrete:
        index = prev_action.long()
        valid = (index >= 0).unsqueeze(-1)
        action = F.one_hot(index.clamp(min=0), action_dim).to(obs.dtype) * valid.to(obs.dtype)
    else:
        action = prev_action.to(obs.dtype)
        if action.shape[-1] != action_dim:
            raise ValueError(f"prev_action has last dimension {action.shape[-1]}, expected {action_dim}")
    return torch.cat(
        [obs, action, prev_reward.to(obs.dtype).unsqueeze(-1), done.to(obs.dtype).unsqueeze(-1)],
        dim=-1,
    )
