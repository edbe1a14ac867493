"""Parameters as plain dicts of tensors.

Meta-learning needs many versions of one network at once (meta-parameters, one
adapted copy per task, line-search candidates). Keeping them as dicts of tensors,
applied with ``torch.func.functional_call``, avoids deep-copying modules and keeps
the adaptation differentiable. Per-task parameters carry a leading task dimension.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]


def module_params(module: nn.Module, *, detach: bool = False) -> Params:
    """The module's parameters by name (optionally detached copies for snapshots)."""
    return {name: (p.detach().clone() if detach else p) for name, p in module.named_parameters()}


def stack_params(per_task: Sequence[Mapping[str, Tensor]]) -> Params:
    """Stack per-task dicts into one dict with a leading task dimension."""
    if not per_task:
        raise ValueError("stack_params needs at least one parameter dict")
    return {name: torch.stack([p[name] for p in per_task]) for name in per_task[0]}


def replicate_params(params: Mapping[str, Tensor], num_tasks: int) -> Params:
    """Give meta-parameters a task dimension without copying memory.

    ``expand`` keeps the autograd link, so gradients of per-task losses w.r.t. the
    replicated tensors sum back onto the meta-parameters, which is exactly the
    meta-gradient of the summed task losses.
    """
    return {name: p.unsqueeze(0).expand(num_tasks, *p.shape) for name, p in params.items()}


def task_params(stacked: Mapping[str, Tensor], index: int) -> Params:
    """One task's slice of stacked parameters."""
    return {name: p[index] for name, p in stacked.items()}


def num_tasks(stacked: Mapping[str, Tensor]) -> int:
    """Size of the leading task dimension (all entries must agree)."""
    sizes = {p.shape[0] for p in stacked.values()}
    if len(sizes) != 1:
        raise ValueError(f"stacked parameters disagree on the task dimension: {sorted(sizes)}")
    return sizes.pop()


def flatten_params(params: Mapping[str, Tensor]) -> Tensor:
    """Concatenate all entries into one vector (for conjugate gradient and TRPO)."""
    return torch.cat([p.reshape(-1) for p in params.values()])


def unflatten_params(vector: Tensor, like: Mapping[str, Tensor]) -> Params:
    """Split a flat vector back into a dict shaped like ``like``."""
    out: Params = {}
    offset = 0
    for name, p in like.items():
        n = p.numel()
        out[name] = vector[offset : offset + n].view_as(p)
        offset += n
    if offset != vector.numel():
        raise ValueError(f"vector has {vector.numel()} entries, parameters need {offset}")
    return out


@torch.no_grad()
def load_params_(module: nn.Module, params: Mapping[str, Tensor]) -> None:
    """Copy a (non-stacked) parameter dict into ``module`` in place, e.g. after TRPO."""
    named = dict(module.named_parameters())
    unknown = set(params) - set(named)
    if unknown:
        raise KeyError(f"unknown parameter names: {sorted(unknown)}")
    for name, value in params.items():
        named[name].copy_(value)
