"""Generalized advantage estimation and discounted returns over padded episodes.

Each row of the time axis is one episode, padded at the end (``mask`` 0.0). How the
row ends matters for the value target: a *terminated* episode (the MDP ended) has no
future value, a *truncated* one (time limit, rollout cut) is bootstrapped from the
value of the observation that followed its last step (``last_values``). Mixing the
two up biases every value target of time-limited tasks.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _bootstrap(last_values: Tensor | None, terminated: Tensor | None, like: Tensor) -> Tensor:
    if last_values is None:
        return like.new_zeros(like.shape[:-1])
    boot = last_values.to(like.dtype)
    if terminated is not None:
        boot = boot * (1.0 - terminated.to(like.dtype))
    return boot


def _check_mask(mask: Tensor) -> None:
    if mask.shape[-1] > 1 and bool((mask[..., 1:] > mask[..., :-1]).any()):
        raise ValueError("mask must be a prefix of ones per episode row (padding only at the end)")


def gae(
    rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    *,
    gamma: float,
    gae_lambda: float,
    last_values: Tensor | None = None,
    terminated: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Advantages and value targets (``advantages + values``), both ``[..., time]``.

    ``rewards``, ``values``, ``mask``: ``[..., time]`` (normally ``[tasks, episodes,
    time]``). ``last_values [...]``: V of the observation after each row's last real
    step, used only where ``terminated [...]`` is false; without ``last_values``
    every row is treated as terminated. Padded steps come out as zero.
    """
    _check_mask(mask)
    mask = mask.to(rewards.dtype)
    real = mask > 0  # `where`, not multiplication: padding may hold NaN/inf garbage
    rewards = torch.where(real, rewards, torch.zeros_like(rewards))
    values = torch.where(real, values.to(rewards.dtype), torch.zeros_like(rewards))
    zeros = torch.zeros_like(mask[..., :1])
    mask_next = torch.cat([mask[..., 1:], zeros], dim=-1)
    values_next = torch.cat([values[..., 1:], zeros], dim=-1)
    is_last = mask - mask_next  # 1.0 exactly on each row's last real step
    next_values = values_next * mask_next + _bootstrap(last_values, terminated, rewards).unsqueeze(-1) * is_last
    deltas = (rewards + gamma * next_values - values) * mask

    advantages = torch.zeros_like(deltas)
    running = torch.zeros_like(deltas[..., 0])
    decay = gamma * gae_lambda
    for t in range(deltas.shape[-1] - 1, -1, -1):
        running = deltas[..., t] + decay * mask_next[..., t] * running
        advantages[..., t] = running
    return advantages, (advantages + values) * mask


def discounted_returns(
    rewards: Tensor,
    mask: Tensor,
    *,
    gamma: float,
    last_values: Tensor | None = None,
    terminated: Tensor | None = None,
) -> Tensor:
    """Discounted reward-to-go ``[..., time]``, bootstrapped for truncated rows.

    This is GAE with zero values and lambda = 1, so both share one code path.
    """
    _, returns = gae(
        rewards,
        torch.zeros_like(rewards),
        mask,
        gamma=gamma,
        gae_lambda=1.0,
        last_values=last_values,
        terminated=terminated,
    )
    return returns
