"""MAML's outer objective as a function of the meta-parameters.

For each task: adapt the meta-parameters on the pre-update batches, then score the
adapted policy on the post-update batch with the likelihood-ratio surrogate. The
meta-loss is the mean over tasks; its gradient w.r.t. the meta-parameters flows
back through the inner gradient steps (second order) unless ``first_order``. The
KL is measured between the adapted policy that collected the post-update batch
(snapshotted at construction) and the adapted policy of candidate meta-parameters,
which is the trust region MAML-TRPO uses: ``KL(old || new)`` as in the TRPO paper, or with
``kl_direction="new_old"`` ``KL(new || old)`` as the MAML reference code measures it.

With ``learned_lr`` the inner step sizes are meta-parameters too (Meta-SGD): ``meta_params``
then holds, beside the policy's parameters, one tensor ``step_size_key(name)`` per parameter
the inner step moves, and the meta-gradient and the KL reach them through the inner step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from metarl.core.adaptation import BatchedMode, InnerLoss, TaskBatch, adapt, map_tasks, resolve_batched
from metarl.core.checks import check_finite
from metarl.core.losses import KLDirection, kl_divergence, surrogate_loss
from metarl.core.params import Params, replicate_params
from metarl.core.trpo import Linearization

if TYPE_CHECKING:  # annotations only: core is pure tensor math and imports nothing above it
    from metarl.nn.heads import DistParams
    from metarl.nn.policy import Policy

STEP_SIZE_PREFIX = "inner_lr/"


def step_size_key(name: str) -> str:
    """The meta-parameter holding parameter ``name``'s learned inner step size."""
    return STEP_SIZE_PREFIX + name


def split_step_sizes(meta_params: Mapping[str, Tensor]) -> tuple[Params, Params]:
    """``(policy parameters, step sizes by parameter name)`` of a meta-parameter dict."""
    policy = {k: v for k, v in meta_params.items() if not k.startswith(STEP_SIZE_PREFIX)}
    sizes = {k[len(STEP_SIZE_PREFIX):]: v for k, v in meta_params.items() if k.startswith(STEP_SIZE_PREFIX)}
    return policy, sizes


class MamlObjective:
    """Callable ``meta_params -> (loss, kl)`` for :func:`~metarl.core.trpo.trpo_step`.

    ``pre_batches[k]`` is the data of inner step ``k`` (advantages already
    computed); ``post_batch`` the data sampled with the adapted policies.
    """

    def __init__(
        self,
        policy: Policy,
        meta_params: Mapping[str, Tensor],
        pre_batches: Sequence[TaskBatch],
        post_batch: TaskBatch,
        *,
        inner_lr: float,
        first_order: bool = False,
        batched: BatchedMode = "auto",
        frozen: frozenset[str] = frozenset(),
        inner_loss: InnerLoss = "log_likelihood",
        learned_lr: bool = False,
        kl_direction: KLDirection = "old_new",
    ) -> None:
        self.policy, self.learned_lr, self.kl_direction = policy, learned_lr, kl_direction
        self.frozen, self.inner_loss = frozen, inner_loss
        self.pre_batches = list(pre_batches)
        self.post_batch = post_batch
        self.inner_lr = inner_lr
        self.first_order = first_order
        samples = max(b.samples_per_task for b in [*self.pre_batches, post_batch])
        self.mode = resolve_batched(batched, post_batch.obs.device, samples)
        self.snapshot: Params = {k: v.detach() for k, v in meta_params.items()}
        with torch.no_grad():
            adapted = self.adapted_params(self.snapshot)
            self.old_out: DistParams = tuple(t.detach() for t in self._map(self._dist_params, adapted, post_batch.obs))
            old_dist = policy.head.distribution(self.old_out)
            self.old_log_probs = old_dist.log_prob(post_batch.actions).detach()

    def _map(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``map_tasks`` in this objective's mode; the result is whatever pytree ``fn`` returns."""
        return map_tasks(fn, *args, mode=self.mode)

    def _dist_params(self, params: Params, obs: Tensor) -> DistParams:
        return self.policy.dist_params(params, obs)

    def adapted_params(self, meta_params: Mapping[str, Tensor]) -> Params:
        """Per-task adapted parameters (stacked), differentiable w.r.t. ``meta_params``."""
        params, sizes = split_step_sizes(meta_params)
        if self.learned_lr != bool(sizes):
            raise ValueError("learned_lr needs step_size_key(name) entries in meta_params, and only then")
        stacked = replicate_params(params, self.post_batch.num_tasks)
        return adapt(
            self.policy,
            stacked,
            self.pre_batches,
            lr=sizes if self.learned_lr else self.inner_lr,
            first_order=self.first_order,
            batched=self.mode,
            frozen=self.frozen,
            loss=self.inner_loss,
        )

    def _task_terms(self, params: Params, batch: TaskBatch, old_out: DistParams, old_log_probs: Tensor) -> tuple[Tensor, Tensor]:
        head = self.policy.head
        dist = head.distribution(self.policy.dist_params(params, batch.obs))
        loss = surrogate_loss(dist.log_prob(batch.actions), old_log_probs, batch.advantages, batch.mask)
        kl = kl_divergence(head.distribution(old_out), dist, batch.mask, self.kl_direction)
        return loss, kl

    def task_terms(self, meta_params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Per-task surrogate losses and KLs, each ``[tasks]``."""
        adapted = self.adapted_params(meta_params)
        losses, kls = self._map(self._task_terms, adapted, self.post_batch, self.old_out, self.old_log_probs)
        check_finite("post-adaptation surrogate loss", losses)
        return losses, kls

    def __call__(self, meta_params: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Mean surrogate loss and mean KL over tasks (scalars)."""
        losses, kls = self.task_terms(meta_params)
        return losses.mean(), kls.mean()

    def linearize(self, meta_params: Mapping[str, Tensor], damping: float) -> Linearization:
        """Loss, meta-gradient and Fisher-vector product from the inner loop's structure, for
        ``trpo_step(..., linearize=objective.linearize)`` (see :mod:`metarl.core.maml_curvature`)."""
        from metarl.core.maml_curvature import linearize_maml

        if set(meta_params) != set(self.snapshot) or not all(
                torch.equal(meta_params[k], v) for k, v in self.snapshot.items()):
            raise ValueError("linearize is exact only at the meta-parameters the objective was built at "
                             "(where the KL's gradient vanishes); build a new MamlObjective there")
        return linearize_maml(self, meta_params, damping=damping)

    def meta_gradient(self, meta_params: Mapping[str, Tensor]) -> Params:
        """Gradient of the mean post-adaptation loss w.r.t. ``meta_params``."""
        params = {k: v.detach().requires_grad_() for k, v in meta_params.items()}
        loss, _ = self(params)
        grads = torch.autograd.grad(loss, list(params.values()))
        out = dict(zip(params, grads, strict=True))
        check_finite("meta-gradient", out, task_dim=False)
        return out
