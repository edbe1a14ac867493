"""Advantage pipelines built from the baseline and GAE pieces."""

from __future__ import annotations

import torch
from torch import Tensor

from metarl.core.baselines import LinearFeatureBaseline
from metarl.core.gae import discounted_returns, gae


def advantage_spread(advantages: Tensor, mask: Tensor) -> Tensor:
    """The (population) std of each task's advantages over ``(episodes, time)``, weighted by ``mask``.

    Shape ``[tasks, 1, 1]``, so it broadcasts against the advantages it describes.
    """
    mask = mask.to(advantages.dtype)
    count = mask.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12)
    mean = (advantages * mask).sum(dim=(-2, -1), keepdim=True) / count
    return (((advantages - mean) ** 2 * mask).sum(dim=(-2, -1), keepdim=True) / count).sqrt()


def normalize_advantages(advantages: Tensor, mask: Tensor, *, eps: float = 1e-8, scale: bool = True) -> Tensor:
    """Zero mean, unit (population) std per task over ``(episodes, time)``.

    Normalizing per task rather than over the meta-batch keeps a task with large
    rewards from drowning out the others in the meta-gradient (garage's center_adv).
    ``scale=False`` only centers, so a task whose episodes differ little keeps small
    advantages (and a gradient step on them stays small). ``mask`` may be a weight per step
    (a task batch's ``"episode"`` weighting): the moments are weighted by it, and padding
    (weight 0) comes out 0.
    """
    weights = mask.to(advantages.dtype)
    count = weights.sum(dim=(-2, -1), keepdim=True).clamp(min=1e-12)
    mean = (advantages * weights).sum(dim=(-2, -1), keepdim=True) / count
    real = (weights > 0).to(advantages.dtype)
    if not scale:
        return (advantages - mean) * real
    return (advantages - mean) / (advantage_spread(advantages, weights) + eps) * real


def relative_advantages(centered: Tensor, mask: Tensor, reference: float | Tensor, *, power: float = 1.0,
                        eps: float = 1e-8) -> Tensor:
    """Normalized advantages times ``(reference / spread) ** power`` per task.

    ``centered`` are per-task centered advantages (``normalize_advantages(..., scale=False)``)
    and ``spread`` their std (:func:`advantage_spread`). A plain normalized step has the same size
    on every task; this one is smaller on a task whose advantages spread more than the
    ``reference`` (a typical task's spread), and larger where they spread less. With ``power=0``
    it is :func:`normalize_advantages`. Invariant to the reward scale when ``reference`` scales
    with it (MAML-TRPO passes a running mean of the training tasks' spreads).
    """
    spread = advantage_spread(centered, mask) + eps
    return centered / spread * (torch.as_tensor(reference, dtype=centered.dtype) / spread) ** power


@torch.no_grad()
def linear_baseline_advantages(
    obs: Tensor,
    rewards: Tensor,
    mask: Tensor,
    *,
    gamma: float,
    gae_lambda: float = 1.0,
    baseline: LinearFeatureBaseline | None = None,
    normalize: bool = True,
) -> Tensor:
    """MAML's inner-loop advantages: fit the linear baseline per task, then GAE.

    Shapes ``obs [tasks, episodes, time, obs_dim]``, ``rewards``/``mask``
    ``[tasks, episodes, time]``. Advantages do not depend on the policy parameters,
    so they are computed once (no graph) and reused by every differentiable pass.
    As in garage, rows are not bootstrapped: the baseline needs the observation after
    the last step, which rollouts of fixed horizon do not keep.
    """
    baseline = baseline or LinearFeatureBaseline()
    returns = discounted_returns(rewards, mask, gamma=gamma)
    values = baseline.fit_predict(obs, returns, mask)
    advantages, _ = gae(rewards, values, mask, gamma=gamma, gae_lambda=gae_lambda)
    return normalize_advantages(advantages, mask) if normalize else advantages
