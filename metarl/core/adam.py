"""Adam on stacked per-task parameters, with per-task gradient clipping.

Reptile-PPO runs the inner PPO for all tasks at once on stacked parameters. Adam is
elementwise, so one Adam over the stacked tensors *is* one Adam per task; gradient
clipping is not elementwise (it uses the norm over all of a task's gradients), so it
is done per task here - a global clip would let one task's large gradient shrink
every other task's step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import torch
from torch import Tensor

from metarl.core.checks import check_finite
from metarl.core.params import Params


class AdamState(NamedTuple):
    """Moments per parameter (stacked like the parameters) and the step count."""

    step: int
    exp_avg: Params
    exp_avg_sq: Params


def adam_init(params: Mapping[str, Tensor]) -> AdamState:
    """Fresh state (zero moments, step 0) for ``params``."""
    zeros = {k: torch.zeros_like(v, memory_format=torch.preserve_format).detach() for k, v in params.items()}
    return AdamState(0, zeros, {k: z.clone() for k, z in zeros.items()})


def clip_grad_norm_per_task(grads: Mapping[str, Tensor], max_norm: float) -> tuple[Params, Tensor]:
    """Scale each task's gradients so their joint L2 norm is at most ``max_norm``.

    Same rule as ``torch.nn.utils.clip_grad_norm_`` applied to each task separately
    (coefficient ``max_norm / (norm + 1e-6)`` clamped at 1). Returns the clipped
    gradients and the per-task norms before clipping ``[tasks]``.
    """
    squares = [g.reshape(g.shape[0], -1).pow(2).sum(dim=1) for g in grads.values()]
    norms = torch.stack(squares).sum(dim=0).sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    clipped = {k: g * coef.view(-1, *([1] * (g.dim() - 1))) for k, g in grads.items()}
    return clipped, norms


@torch.no_grad()
def adam_step(
    params: Mapping[str, Tensor],
    grads: Mapping[str, Tensor],
    state: AdamState,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    max_grad_norm: float | None = None,
) -> tuple[Params, AdamState, Tensor]:
    """One Adam update; returns ``(new_params, new_state, grad_norms [tasks])``.

    Matches ``torch.optim.Adam`` (default settings, no weight decay) run separately
    per task, after per-task ``clip_grad_norm_`` when ``max_grad_norm`` is set.
    Non-finite gradients raise :class:`~metarl.core.checks.NonFiniteError` before
    anything is updated.
    """
    check_finite("gradient", dict(grads))
    if max_grad_norm is not None:
        grads, norms = clip_grad_norm_per_task(grads, max_grad_norm)
    else:
        _, norms = clip_grad_norm_per_task(grads, float("inf"))
    beta1, beta2 = betas
    step = state.step + 1
    bias1 = 1.0 - beta1**step
    bias2_sqrt = (1.0 - beta2**step) ** 0.5
    new_params: Params = {}
    exp_avg: Params = {}
    exp_avg_sq: Params = {}
    for k, p in params.items():
        g = grads[k]
        m = state.exp_avg[k] * beta1 + (1.0 - beta1) * g
        v = state.exp_avg_sq[k] * beta2 + (1.0 - beta2) * g * g
        denom = v.sqrt() / bias2_sqrt + eps
        new_params[k] = p.detach() - (lr / bias1) * m / denom
        exp_avg[k], exp_avg_sq[k] = m, v
    return new_params, AdamState(step, exp_avg, exp_avg_sq), norms
