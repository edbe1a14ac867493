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
from typing import TypeVar, cast

import torch
from torch import Tensor
from torch.func import grad, jvp, vjp

from metarl.core.adaptation import TaskBatch, task_pg_loss
from metarl.core.checks import check_finite
from metarl.core.losses import kl_divergence, surrogate_loss
from metarl.core.maml import MamlObjective, split_step_sizes, step_size_key
from metarl.core.params import Params, replicate_params
from metarl.core.trpo import Linearization

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
    weights, step_sizes = split_step_sizes(meta_params)
    learned = objective.learned_lr  # Meta-SGD: a step size per weight, among the meta-parameters
    names = list(weights)
    tasks = objective.post_batch.num_tasks
    theta: Params = {k: v.detach().contiguous() for k, v in replicate_params(dict(weights), tasks).items()}
    moving = frozenset(names) - objective.frozen
    alpha = {n: step_sizes[n].detach() for n in moving} if learned else {}

    def step_size(n: str) -> float | Tensor:
        return alpha[n] if learned else lr

    # the inner steps, keeping each step's inner-loss Hessian-vector product (reverse over reverse).
    # Frozen parameters enter the inner loss as constants (as in ``inner_step``), so each step's
    # Jacobian is I - lr * H_in on the moving parameters and the identity on the frozen ones.
    hvps: list[ParamsFn | None] = []  # None: first order, the step's gradient is a constant
    inner_grads: list[Params] = []  # each step's gradient: d theta' / d alpha = -g (learned step sizes)
    for k, batch in enumerate(objective.pre_batches):
        constants = {n: theta[n] for n in names if n not in moving}

        def inner_grad(p: Params, b: TaskBatch = batch, c: Params = constants) -> Params:
            def loss(q: Params, bb: TaskBatch, cc: Params) -> Tensor:
                return task_pg_loss(policy, {**q, **cc}, bb, objective.inner_loss)

            return cast(Params, objective._map(grad(loss), p, b, c))

        start = {n: theta[n] for n in names if n in moving}
        if objective.first_order:
            g = inner_grad(start)
            hvps.append(None)
        else:
            g, hvp = _vjp(inner_grad, start)
            hvps.append(_only(hvp))
        check_finite(f"inner-loop gradient (step {k})", g)
        inner_grads.append({n: v.detach() for n, v in g.items()})
        theta = {n: (theta[n] - step_size(n) * g[n]).detach() if n in moving else theta[n] for n in names}
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

    def push(v: Params, v_alpha: Params) -> Params:
        """``J (v, v_alpha)`` per task, the steps first to last: ``dv' = dv - alpha o H dv - g o dalpha``."""
        for hvp, g in zip(hvps, inner_grads, strict=True):
            if hvp is not None:
                step = hvp({k: v[k] for k in names if k in moving})
                v = {k: v[k] - step_size(k) * step[k] if k in moving else v[k] for k in names}
            if learned:
                v = {k: v[k] - g[k] * v_alpha[k] if k in moving else v[k] for k in names}
        return v

    def pull(w: Params) -> tuple[Params, Params]:
        """``J^T w`` per task, last step first: the weights' cotangent and the step sizes'."""
        w_alpha = {k: torch.zeros_like(w[k]) for k in alpha}
        for hvp, g in reversed(list(zip(hvps, inner_grads, strict=True))):
            if learned:
                w_alpha = {k: w_alpha[k] - g[k] * w[k] for k in alpha}
            if hvp is None:
                continue
            if learned:  # (alpha o H)^T w = H (alpha o w): H is symmetric
                step = hvp({k: alpha[k] * w[k] for k in names if k in moving})
                w = {k: w[k] - step[k] if k in moving else w[k] for k in names}
            else:
                step = hvp({k: w[k] for k in names if k in moving})
                w = {k: w[k] - lr * step[k] if k in moving else w[k] for k in names}
        return w, w_alpha

    def meta_sum(w: Params, w_alpha: Params) -> Tensor:
        """Per-task cotangents summed over tasks, flat in the order of ``meta_params``."""
        by_key = {**w, **{step_size_key(k): v for k, v in w_alpha.items()}}
        return torch.cat([by_key[k].sum(0).reshape(-1) for k in meta_params])

    grad_out_params = out_vjp(loss_grad_out)[0]
    flat_grad = meta_sum(*pull(grad_out_params))
    check_finite("meta-gradient", {"flat": flat_grad}, task_dim=False)

    keys = list(meta_params)
    sizes = [meta_params[k].numel() for k in keys]

    def fvp(v: Tensor) -> Tensor:
        parts = dict(zip(keys, torch.split(v, sizes), strict=True))
        stacked = {k: parts[k].view_as(meta_params[k]).expand(tasks, *meta_params[k].shape) for k in names}
        v_alpha = {k: parts[step_size_key(k)].view_as(alpha[k]) for k in alpha}
        u = push(stacked, v_alpha)
        _, du = _jvp(post_out, adapted, u)
        w = out_vjp(kl_hvp(du)[0])[0]
        return meta_sum(*pull(w)) + damping * v

    return Linearization(float(loss), flat_grad, fvp)
