"""Soft actor-critic losses (Haarnoja et al. 2018, "SAC: algorithms and applications", eqs. 5-7 and 18).

Pure tensor math over batches of any leading shape. PEARL applies it to ``[tasks, batch]``
tensors in one go, with the task's latent ``z`` concatenated to the network inputs. Every loss is
a plain mean over all leading dims. With the same batch size per task, that mean equals the mean
over tasks of the per-task losses: the task-batched update is the per-task loop
(``tests/test_core_sac.py``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

__all__ = ["actor_loss", "critic_loss", "polyak_update_", "soft_target", "temperature_loss"]


@torch.no_grad()
def soft_target(reward: Tensor, terminated: Tensor, next_q1: Tensor, next_q2: Tensor, next_log_prob: Tensor, *,
                alpha: float | Tensor, discount: float, reward_scale: float = 1.0) -> Tensor:
    """The soft Bellman target ``scale * r + gamma (1 - terminated) (min(Q1', Q2') - alpha log pi(a'|s'))``.

    ``terminated`` is the env's own end. An episode cut off by the time limit bootstraps like any
    other step, since the state after it still has a value.
    """
    soft_value = torch.minimum(next_q1, next_q2) - alpha * next_log_prob
    return reward_scale * reward + discount * (1.0 - terminated.to(reward.dtype)) * soft_value


def critic_loss(q1: Tensor, q2: Tensor, target: Tensor) -> Tensor:
    """Twin-Q regression onto the (graph-free) soft target: the sum of the two mean squared errors."""
    return ((q1 - target) ** 2).mean() + ((q2 - target) ** 2).mean()


def actor_loss(q1_pi: Tensor, q2_pi: Tensor, log_prob: Tensor, alpha: float | Tensor) -> Tensor:
    """``E[alpha log pi(a|s) - min(Q1, Q2)(s, a)]`` with ``a`` reparameterized from the actor."""
    return (alpha * log_prob - torch.minimum(q1_pi, q2_pi)).mean()


def temperature_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: float) -> Tensor:
    """The automatic temperature's loss: ``alpha`` rises while the policy's entropy is below the target."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


@torch.no_grad()
def polyak_update_(target: Iterable[Tensor], source: Iterable[Tensor], tau: float) -> None:
    """``target <- (1 - tau) target + tau source``, in place (the target networks' slow copy)."""
    for t, s in zip(target, source, strict=True):
        t.mul_(1.0 - tau).add_(s, alpha=tau)
