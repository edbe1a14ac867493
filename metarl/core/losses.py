"""Policy-gradient objectives, reduced per task.

Every function reduces over the trailing ``(episodes, time)`` dimensions with the
mask, so ``[tasks, episodes, time]`` inputs give one value per task and, inside a
``vmap`` over tasks, ``[episodes, time]`` inputs give a scalar: the same function
serves the batched path, the per-task loop and single-task agents. All losses are
to be *minimized*.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor
from torch.distributions import Categorical, Distribution
from torch.distributions import kl_divergence as _kl

KLDirection = Literal["old_new", "new_old"]


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over the real steps of the trailing ``(episodes, time)`` dimensions."""
    mask = mask.to(x.dtype)
    kept = torch.where(mask > 0, x * mask, torch.zeros_like(x))  # padding may hold inf/NaN
    return kept.sum(dim=(-2, -1)) / mask.sum(dim=(-2, -1)).clamp(min=1.0)


def pg_loss(log_probs: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """Vanilla policy gradient (REINFORCE with baseline): ``-E[log pi(a|s) A]``.

    MAML's inner step uses this form rather than the likelihood ratio: both have
    the same gradient, but this one's Hessian is the one the MAML paper
    differentiates through.
    """
    return -masked_mean(log_probs * advantages.detach(), mask)


def lvc_loss(log_probs: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """ProMP's low-variance curvature inner loss (Rothfuss et al. 2019): ``-E[pi/stop(pi) A]``.

    Its value and gradient equal :func:`pg_loss`'s, so an inner step with it is the same step; its
    Hessian adds ``E[grad log pi grad log pi^T A]``, the part of the inner objective's curvature
    that comes from the episodes having been sampled by the policy itself. Without that part, the
    second-order meta-gradient rewards a smaller Gaussian std for making the inner step larger and
    never charges for the exploration it loses, so the std collapses over training; for a Gaussian
    mean the two parts cancel exactly where the return is locally linear in the action.
    """
    ratio = torch.exp(log_probs - log_probs.detach())
    return -masked_mean(ratio * advantages.detach(), mask)


def surrogate_loss(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """Likelihood-ratio surrogate ``-E[pi/pi_old A]`` (TRPO's objective)."""
    ratio = torch.exp(log_probs - old_log_probs.detach())
    return -masked_mean(ratio * advantages.detach(), mask)


def ppo_clip_loss(log_probs: Tensor, old_log_probs: Tensor, advantages: Tensor, mask: Tensor, *, clip: float = 0.2) -> Tensor:
    """PPO's clipped surrogate ``-E[min(r A, clip(r, 1-e, 1+e) A)]``."""
    ratio = torch.exp(log_probs - old_log_probs.detach())
    adv = advantages.detach()
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    return -masked_mean(torch.minimum(ratio * adv, clipped * adv), mask)


def kl_divergence(old: Distribution, new: Distribution, mask: Tensor, direction: KLDirection = "old_new") -> Tensor:
    """Mean ``KL(old || new)`` over real steps (the TRPO trust-region measure), or ``KL(new || old)``.

    Both directions have the same Hessian at ``new == old`` (the Fisher), so they give TRPO the same
    step direction and length; they differ at third order, which is what the line search checks.
    """
    p, q = (old, new) if direction == "old_new" else (new, old)
    return masked_mean(pointwise_kl(p, q), mask)


def pointwise_kl(old: Distribution, new: Distribution) -> Tensor:
    """``KL(old || new)`` per step, usable inside ``vmap``.

    torch's categorical KL assigns inf through boolean-mask indexing, which vmap
    cannot batch; with normalized logits the closed form needs no special case
    (zero-probability actions contribute ``0 * finite``).
    """
    if isinstance(old, Categorical) and isinstance(new, Categorical):
        return (old.probs * (old.logits - new.logits)).sum(dim=-1)
    return _kl(old, new)


def entropy(dist: Distribution, mask: Tensor) -> Tensor:
    """Mean entropy over real steps (exploration bonus / diagnostics)."""
    return masked_mean(dist.entropy(), mask)
