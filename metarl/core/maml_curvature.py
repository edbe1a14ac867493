"""MAML-TRPO's meta-gradient and Fisher-vector product from the structure of the inner loop.

The trust region of MAML-TRPO is the KL of the *adapted* policy, ``KL(theta'(theta))`` with
``theta' = theta - lr * grad L_in(theta)`` per task. Its Hessian at the incoming parameters is

    H_kl = (1 / T) sum_t  J_t^T  F_t  J_t          (exactly: the KL's gradient w.r.t. theta' is 0 there)

where ``J_t = d theta'_t / d theta`` is the Jacobian of task ``t``'s inner steps and ``F_t`` the
Fisher of the adapted policy on the post-update batch. The meta-gradient is ``J_t^T`` applied to
the post-update surrogate's plain gradient. Double backward through the whole second-order graph
(:func:`~metarl.core.trpo.fisher_vector_product`, what the MAML reference code does) computes the
same products, but re-differentiates the post-update network's backward pass and the inner step
together on every conjugate-gradient iteration. Here each factor is applied on its own:

* ``J v`` and ``J^T w`` through the inner loss's Hessian-vector product: each inner step's
  Jacobian is ``I - lr H_in`` on the parameters it moves (the identity on frozen ones), which is
  symmetric, so one saved reverse-over-reverse graph per step serves both directions;
* ``F u = D^T H_out D u``, the Gauss-Newton form, exact at the old policy: ``D u`` is one
  forward-mode pass of the post-update network, ``D^T`` one backward through its saved graph and
  ``H_out`` the KL's Hessian in the distribution parameters (elementwise for a Gaussian).

Measured on this machine in ``metarl bench maml`` (the autograd path stays selectable as
``fisher: autograd`` and is what the tests check this against, to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar, cast

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp

from metarl.core.adaptation import TaskBatch, task_pg_loss
from metarl.core.checks import check_finite
from metarl.core.losses import kl_divergence, surrogate_loss
from metarl.core.params import Params, replicate_params
from metarl.core.trpo import Linearization

if TYPE_CHECKING:  # maml.py imports this module
    from metarl.core.maml import MamlObjective

ParamsFn = Callable[[Params], Params]
P = TypeVar("P")
R = TypeVar("R")


def _vjp(fn: Callable[[P], R], primal: P) -> tuple[R, Callable[[R], tuple[P]]]:
    """``torch.func.vjp`` of a one-argument function, typed (its stub's return also covers ``has_aux``)."""
    return cast("tuple[R, Callable[[R], tuple[P]]]", vjp(fn, primal))


def _jvp(fn: Callable[[P], R], primal: P, tangent: P) -> tuple[R, R]:
    """``torch.func.jvp`` of a one-argument function, typed likewise."""
    return cast("tuple[R, R]", jvp(fn, (primal,), (tangent,)))


def _only(pullback: Callable[[Params], tuple[Params]]) -> ParamsFn:
    """A one-argument function's pullback, returning its one cotangent (bound here, not in the loop)."""
    return lambda v: pullback(v)[0]


def linearize_maml(objective: MamlObjective, meta_params: Mapping[str, Tensor], *, damping: float) -> Linearization:
    """Loss, meta-gradient and damped Fisher-vector product of ``objective`` at ``meta_params``.

    Equal to :func:`~metarl.core.trpo.autograd_linearization` of the same objective up to float
    rounding; valid only at the parameters the objective snapshotted its old policy at (where the
    KL's gradient vanishes), which is where TRPO linearizes.
    """
    policy, lr = objective.policy, objective.inner_lr
    names = list(meta_params)
    tasks = objective.post_batch.num_tasks
    theta: Params = {k: v.detach().contiguous() for k, v in replicate_params(dict(meta_params), tasks).items()}
    moving = frozenset(names) - objective.frozen

    # the inner steps, keeping each step's inner-loss Hessian-vector product (reverse over reverse).
    # Frozen parameters enter the inner loss as constants (as in ``inner_step``), so each step's
    # Jacobian is I - lr * H_in on the moving parameters and the identity on the frozen ones.
    hvps: list[ParamsFn] = []
    for k, batch in enumerate(objective.pre_batches):
        constants = {n: theta[n] for n in names if n not in moving}

        def inner_grad(p: Params, b: TaskBatch = batch, c: Params = constants) -> Params:
            def loss(q: Params, bb: TaskBatch, cc: Params) -> Tensor:
                return task_pg_loss(policy, {**q, **cc}, bb, objective.inner_loss)

            return cast(Params, objective._map(grad(loss), p, b, c))

        start = {n: theta[n] for n in names if n in moving}
        if objective.first_order:
            g = inner_grad(start)
        else:
            g, hvp = _vjp(inner_grad, start)
            hvps.append(_only(hvp))
        check_finite(f"inner-loop gradient (step {k})", g)
        theta = {n: (theta[n] - lr * g[n]).detach() if n in moving else theta[n] for n in names}
    adapted = theta

    post = objective.post_batch
    head = policy.head

    def post_out(p: Params) -> tuple[Tensor, ...]:
        return cast("tuple[Tensor, ...]", objective._map(objective._dist_params, p, post.obs))

    out, out_vjp = _vjp(post_out, adapted)
    old = objective.old_out

    def task_loss(o: tuple[Tensor, ...], b: TaskBatch, old_lp: Tensor) -> Tensor:
        return surrogate_loss(head.distribution(o).log_prob(b.actions), old_lp, b.advantages, b.mask)

    def mean_loss(o: tuple[Tensor, ...]) -> Tensor:
        losses: Tensor = objective._map(task_loss, o, post, objective.old_log_probs)
        check_finite("post-adaptation surrogate loss", losses)
        return losses.mean()

    def mean_kl(o: tuple[Tensor, ...]) -> Tensor:
        kls: Tensor = objective._map(lambda oo, b, od: kl_divergence(head.distribution(od), head.distribution(oo), b.mask),
                                     o, post, old)
        return kls.mean()

    loss_grad_out, loss = torch.func.grad_and_value(mean_loss)(out)
    _, kl_hvp = _vjp(grad(mean_kl), out)  # the KL's Hessian in the distribution parameters, at the old policy

    def jac(v: Params, order: list[ParamsFn]) -> Params:
        """``J v`` per task (``order``: the steps first to last) or ``J^T v`` (last to first)."""
        for hvp in order:
            step = hvp({k: v[k] for k in names if k in moving})
            v = {k: v[k] - lr * step[k] if k in moving else v[k] for k in names}
        return v

    def meta_sum(per_task: Params) -> Tensor:
        return torch.cat([per_task[k].sum(0).reshape(-1) for k in names])

    grad_out_params = out_vjp(loss_grad_out)[0]
    flat_grad = meta_sum(jac(grad_out_params, hvps[::-1]))
    check_finite("meta-gradient", {"flat": flat_grad}, task_dim=False)

    sizes = [meta_params[k].numel() for k in names]

    def fvp(v: Tensor) -> Tensor:
        parts = dict(zip(names, torch.split(v, sizes), strict=True))
        stacked = {k: parts[k].view_as(meta_params[k]).expand(tasks, *meta_params[k].shape) for k in names}
        u = jac(stacked, hvps)
        _, du = _jvp(post_out, adapted, u)
        w = out_vjp(kl_hvp(du)[0])[0]
        return meta_sum(jac(w, hvps[::-1])) + damping * v

    return Linearization(float(loss), flat_grad, fvp)
