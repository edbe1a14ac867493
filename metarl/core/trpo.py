"""A TRPO step (Schulman et al. 2015) on a parameter dict, functional style.

The objective is passed as one callable returning ``(loss, kl)`` so a MAML
objective can adapt once and give both; the KL must be ``KL(pi_old || pi_params)``
with ``pi_old`` fixed at the incoming parameters. The step is *all or nothing*: the
returned parameters are either a candidate that lowers the loss and satisfies
``kl <= max_kl``, or the incoming values untouched with ``info.accepted == False``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from metarl.core.cg import conjugate_gradient
from metarl.core.checks import NonFiniteError, check_finite
from metarl.core.params import Params, flatten_params, unflatten_params

LossAndKL = Callable[[Params], tuple[Tensor, Tensor]]


class Linearization(NamedTuple):
    """What a TRPO step needs at the incoming parameters: the loss, its flat gradient and the
    damped Fisher-vector product ``v -> (H_kl + damping I) v``."""

    loss: float
    grad: Tensor
    fvp: Callable[[Tensor], Tensor]


#: ``(params, damping) -> Linearization``; the default is :func:`autograd_linearization`.
Linearize = Callable[[Params, float], Linearization]


@dataclass(frozen=True)
class TRPOInfo:
    """What the step did; ``reason`` explains a rejection."""

    accepted: bool
    loss_before: float
    loss_after: float
    kl: float
    step_fraction: float
    backtracks: int
    reason: str = ""


def fisher_vector_product(kl: Tensor, params: Mapping[str, Tensor], *, damping: float = 1e-5) -> Callable[[Tensor], Tensor]:
    """``v -> (H_kl + damping I) v`` by double backward through ``kl``'s graph.

    The KL Hessian at the old parameters is the Fisher matrix. Its first gradient is
    built once with ``create_graph`` and reused by every conjugate-gradient
    iteration; for MAML the graph runs through the adapted policy, so the product is
    the Fisher of the post-adaptation policy w.r.t. the meta-parameters.
    """
    inputs = list(params.values())
    grads = torch.autograd.grad(kl, inputs, create_graph=True)
    flat_grad = torch.cat([g.reshape(-1) for g in grads])

    def fvp(v: Tensor) -> Tensor:
        hv = torch.autograd.grad(flat_grad @ v, inputs, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]) + damping * v

    return fvp


def autograd_linearization(loss_and_kl: LossAndKL, params: Mapping[str, Tensor], damping: float) -> Linearization:
    """The generic linearization: one graph of ``loss_and_kl`` and double backward through its KL.

    A non-finite loss or gradient raises :class:`~metarl.core.checks.NonFiniteError`.
    """
    current = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    loss, kl = loss_and_kl(current)
    check_finite("TRPO surrogate loss", loss, task_dim=False)
    grads = torch.autograd.grad(loss, list(current.values()), retain_graph=True)
    check_finite("TRPO policy gradient", dict(zip(current, grads, strict=True)), task_dim=False)
    flat_grad = torch.cat([g.reshape(-1) for g in grads])
    return Linearization(loss.item(), flat_grad, fisher_vector_product(kl, current, damping=damping))


def trpo_step(
    params: Mapping[str, Tensor],
    loss_and_kl: LossAndKL,
    *,
    linearize: Linearize | None = None,
    max_kl: float = 0.01,
    cg_iters: int = 10,
    cg_damping: float = 1e-5,
    backtrack_ratio: float = 0.8,
    max_backtracks: int = 15,
) -> tuple[Params, TRPOInfo]:
    """Natural-gradient step with backtracking line search under ``max_kl``.

    Returns new detached parameters (or the old ones on rejection) and a
    :class:`TRPOInfo`. ``linearize`` replaces the generic loss/gradient/Fisher computation
    (:func:`autograd_linearization`) with one that knows the objective's structure, e.g.
    :func:`~metarl.core.maml_curvature.linearize_maml`; the line search always evaluates
    ``loss_and_kl`` itself. A non-finite loss or gradient at the incoming parameters
    raises :class:`~metarl.core.checks.NonFiniteError`; non-finite *candidates* are
    simply rejected by the line search, since an overlong step is what backtracking
    is for.
    """
    old = {k: v.detach() for k, v in params.items()}
    if linearize is None:
        lin = autograd_linearization(loss_and_kl, old, cg_damping)
    else:
        lin = linearize(old, cg_damping)
    loss_before, flat_grad, fvp = lin

    def reject(reason: str) -> tuple[Params, TRPOInfo]:
        return old, TRPOInfo(False, loss_before, loss_before, 0.0, 0.0, 0, reason)

    if not bool(flat_grad.abs().max() > 0):
        return reject("zero gradient")
    direction, product = conjugate_gradient(fvp, -flat_grad, iters=cg_iters, with_product=True)
    curvature = float(direction @ product)
    if not math.isfinite(curvature) or curvature <= 0.0:
        return reject(f"non-positive or non-finite curvature {curvature}")
    full_step = math.sqrt(2.0 * max_kl / curvature) * direction
    start = flatten_params(old)

    loss_after, kl_after = loss_before, 0.0
    for backtrack in range(max_backtracks):
        fraction = backtrack_ratio**backtrack
        candidate = unflatten_params(start + fraction * full_step, old)
        try:
            with torch.no_grad():
                cand_loss, cand_kl = loss_and_kl(candidate)
            loss_after, kl_after = cand_loss.item(), cand_kl.item()
        except NonFiniteError:  # e.g. the adapted policy of an overlong step overflowed
            loss_after, kl_after = math.nan, math.nan
        if math.isfinite(loss_after) and math.isfinite(kl_after) and loss_after < loss_before and kl_after <= max_kl:
            new = {k: v.detach().clone() for k, v in candidate.items()}
            return new, TRPOInfo(True, loss_before, loss_after, kl_after, fraction, backtrack)
    params_out, info = reject(
        f"line search failed after {max_backtracks} backtracks "
        f"(last candidate: loss {loss_after:.6g} vs {loss_before:.6g}, kl {kl_after:.3g} vs max {max_kl})"
    )
    return params_out, info
