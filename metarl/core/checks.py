"""Guards against non-finite numbers.

A NaN that slips into a meta-update silently destroys the meta-parameters, and by
the time a return curve shows it the cause is long gone. These checks run on the
stacked per-task tensors *before* any parameter is replaced, so the error can name
the quantity and the offending task indices and the caller's parameters stay intact.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor


class NonFiniteError(FloatingPointError):
    """A loss or gradient contained NaN or inf; the update was not applied."""


def _bad_tasks(tensor: Tensor) -> list[int]:
    bad = ~torch.isfinite(tensor.detach())
    if bad.dim() == 0:
        return [0] if bool(bad) else []
    return torch.nonzero(bad.reshape(bad.shape[0], -1).any(dim=1)).flatten().tolist()


def check_finite(
    what: str,
    value: Tensor | Mapping[str, Tensor],
    *,
    task_dim: bool = True,
) -> None:
    """Raise :class:`NonFiniteError` naming ``what`` (and entry, task indices) if needed.

    ``task_dim`` says whether dimension 0 indexes tasks, which lets the message say
    which tasks went bad: usually one task's data (an exploding return) is the cause.
    """
    items = value.items() if isinstance(value, Mapping) else [("", value)]
    for key, tensor in items:
        if tensor is None or torch.isfinite(tensor.detach()).all():
            continue
        where = f"{what} '{key}'" if key else what
        if task_dim and tensor.dim() > 0:
            raise NonFiniteError(f"non-finite {where} in task index(es) {_bad_tasks(tensor)}; parameters left unchanged")
        raise NonFiniteError(f"non-finite {where}; parameters left unchanged")
