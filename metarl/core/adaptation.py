"""MAML's inner loop on stacked per-task parameters.

Two interchangeable execution paths compute the same per-task gradients:

* ``"vmap"``: ``torch.vmap(torch.func.grad_and_value(task_loss))`` - one batched
  call for all tasks; wins when per-task batches are small or on GPU.
* ``"loop"``: a plain Python loop over tasks with ``torch.autograd.grad`` - wins on
  CPU when per-task batches are large (vmap's batched kernels then cost more than
  they save; see ``experiments/results/bench_core.md``).

``"auto"`` picks by device and per-task batch size (:func:`resolve_batched`).
Both paths stay differentiable w.r.t. the incoming parameters (second-order MAML)
unless ``first_order`` is set, which treats the inner gradient as a constant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch
from torch import Tensor
from torch.utils import _pytree as pytree

from metarl.core.checks import check_finite
from metarl.core.losses import lvc_loss, pg_loss
from metarl.core.params import Params, num_tasks

if TYPE_CHECKING:  # annotations only: core is pure tensor math and imports nothing above it
    from metarl.nn.policy import Policy

BatchedMode = Literal["auto", "vmap", "loop"]
InnerLoss = Literal["log_likelihood", "lvc"]
#: The inner step size: one number, or a tensor per moving parameter (Meta-SGD's learned
#: per-parameter step), shaped like the parameter, with or without the leading task dim.
StepSize = float | Mapping[str, Tensor]
_INNER_LOSSES = {"log_likelihood": pg_loss, "lvc": lvc_loss}

#: CPU rule from bench_core: vmap up to this many samples per task, the loop above.
CPU_VMAP_MAX_SAMPLES_PER_TASK = 500


class TaskBatch(NamedTuple):
    """Per-task rollout data for one policy-gradient step (leading ``tasks`` dim).

    ``obs [T, E, L, obs_dim]``, ``actions [T, E, L, act_dim]`` (or ``[T, E, L]``
    integer for discrete), ``advantages [T, E, L]`` (already baselined and
    normalized, no graph), ``mask [T, E, L]`` (1.0 on real steps).
    """

    obs: Tensor
    actions: Tensor
    advantages: Tensor
    mask: Tensor

    @property
    def num_tasks(self) -> int:
        return self.obs.shape[0]

    @property
    def samples_per_task(self) -> int:
        return self.mask[0].numel()

    def to(self, device: torch.device | str) -> TaskBatch:
        """Move the whole batch in one go (data moves once per batch, not per op)."""
        return TaskBatch(*(x.to(device) for x in self))


def resolve_batched(
    mode: BatchedMode, device: torch.device | str, samples_per_task: int | None = None
) -> Literal["vmap", "loop"]:
    """Resolve ``"auto"`` to the path measured faster on ``device``.

    GPU: always vmap (batching is what makes GPUs fast). CPU: vmap for small
    per-task batches (fewer Python-level launches), the loop for large ones, with
    the threshold :data:`CPU_VMAP_MAX_SAMPLES_PER_TASK` taken from bench_core.
    """
    if mode in ("vmap", "loop"):
        return mode
    if mode != "auto":
        raise ValueError(f"batched must be 'auto', 'vmap' or 'loop', got {mode!r}")
    if torch.device(device).type != "cpu":
        return "vmap"
    if samples_per_task is None or samples_per_task <= CPU_VMAP_MAX_SAMPLES_PER_TASK:
        return "vmap"
    return "loop"


def _task_slice(tree: Any, index: int) -> Any:
    return pytree.tree_map(lambda x: x[index], tree)


def map_tasks(fn: Callable[..., Any], *args: Any, mode: Literal["vmap", "loop"]) -> Any:
    """Apply a per-task function to pytrees whose leaves lead with the task dim.

    ``vmap`` runs it once on the whole stack; ``loop`` slices task by task and
    stacks the outputs, which is the reference the batched path is tested against.
    """
    if mode == "vmap":
        return torch.vmap(fn)(*args)
    leaves = pytree.tree_leaves(args)
    count = leaves[0].shape[0]
    outputs = [fn(*_task_slice(args, i)) for i in range(count)]
    flat, spec = zip(*(pytree.tree_flatten(o) for o in outputs), strict=True)
    return pytree.tree_unflatten([torch.stack(group) for group in zip(*flat, strict=True)], spec[0])


def task_pg_loss(policy: Policy, params: Mapping[str, Tensor], batch: TaskBatch,
                 kind: InnerLoss = "log_likelihood") -> Tensor:
    """One task's inner-loop loss (vanilla PG, or ProMP's LVC form); inputs without the task dim."""
    log_probs = policy.distribution(params, batch.obs).log_prob(batch.actions)
    return _INNER_LOSSES[kind](log_probs, batch.advantages, batch.mask)


def task_grads(
    loss_fn: Callable[[Params, Any], Tensor],
    params: Mapping[str, Tensor],
    batch: Any,
    *,
    mode: Literal["vmap", "loop"],
    create_graph: bool = False,
) -> tuple[Params, Tensor]:
    """Per-task gradients of ``loss_fn(task_params, task_batch) -> scalar``.

    ``params`` and every tensor leaf of ``batch`` (any pytree: ``TaskBatch``, tuple,
    dict) lead with the task dimension; returns stacked gradients and losses
    ``[tasks]``. This is the building block for any per-task update (MAML's inner
    step, Reptile's inner PPO); ``create_graph`` keeps the gradients differentiable
    w.r.t. whatever ``params`` depends on.
    """
    params = dict(params)
    if mode == "vmap":
        grads, losses = torch.vmap(torch.func.grad_and_value(loss_fn))(params, batch)
        if not create_graph:
            grads, losses = {k: g.detach() for k, g in grads.items()}, losses.detach()
        return grads, losses
    per_task: list[tuple[Tensor, ...]] = []
    loss_list = []
    with torch.enable_grad():  # line searches call this under no_grad
        for i in range(num_tasks(params)):
            p = {k: v[i] if v.requires_grad else v[i].detach().requires_grad_() for k, v in params.items()}
            loss = loss_fn(p, _task_slice(batch, i))
            per_task.append(torch.autograd.grad(loss, list(p.values()), create_graph=create_graph))
            loss_list.append(loss if create_graph else loss.detach())
    grads = {k: torch.stack([g[j] for g in per_task]) for j, k in enumerate(params)}
    return grads, torch.stack(loss_list)


def inner_step(
    policy: Policy,
    params: Mapping[str, Tensor],
    batch: TaskBatch,
    *,
    lr: StepSize,
    first_order: bool = False,
    batched: BatchedMode = "auto",
    step_index: int = 0,
    frozen: frozenset[str] = frozenset(),
    loss: InnerLoss = "log_likelihood",
) -> tuple[Params, Tensor]:
    """One vanilla-PG step per task: ``params - lr * grad``; returns ``(params, losses [T])``.

    ``lr`` is a number or, per moving parameter, a tensor multiplied elementwise (see
    :data:`StepSize`); gradients flow into tensor step sizes, so they can be meta-learned.

    ``params`` are stacked (leading task dim; use ``replicate_params`` for shared
    meta-parameters). With ``first_order`` the gradient is detached, which drops
    exactly the second-order term of the meta-gradient (FOMAML). ``frozen`` names
    parameters the step neither changes nor differentiates through: they enter the
    inner loss as constants, so the meta-gradient reaches them only through the
    post-adaptation policy. ``loss``: the inner loss (``"lvc"``: same step, the curvature of
    :func:`~metarl.core.losses.lvc_loss`). Non-finite losses or gradients raise
    :class:`~metarl.core.checks.NonFiniteError` naming the task.
    """
    if loss not in _INNER_LOSSES:
        raise ValueError(f"inner loss {loss!r} is unknown; allowed: {', '.join(_INNER_LOSSES)}")
    params = dict(params)
    if num_tasks(params) != batch.num_tasks:
        raise ValueError(f"{num_tasks(params)} parameter sets for {batch.num_tasks} tasks")
    unknown = frozen - set(params)
    if unknown:
        raise ValueError(f"frozen parameters {sorted(unknown)} are not among {sorted(params)}")
    if isinstance(lr, Mapping) and set(lr) != set(params) - frozen:
        raise ValueError(f"step sizes for {sorted(lr)}, but the step moves {sorted(set(params) - frozen)}")
    mode = resolve_batched(batched, batch.obs.device, batch.samples_per_task)
    moving = {k: v for k, v in params.items() if k not in frozen}
    constants = {k: params[k].detach() for k in frozen}

    def task_loss(p: Params, b: TaskBatch, c: Params) -> Tensor:
        return task_pg_loss(policy, {**p, **c}, b, loss)

    grads, losses = task_grads(lambda p, bc: task_loss(p, *bc), moving, (batch, constants), mode=mode,
                               create_graph=not first_order)
    check_finite(f"inner-loop loss (step {step_index})", losses)
    check_finite(f"inner-loop gradient (step {step_index})", grads)
    sizes = lr if isinstance(lr, Mapping) else dict.fromkeys(grads, lr)
    return {k: v - sizes[k] * grads[k] if k in grads else v for k, v in params.items()}, losses


def adapt(
    policy: Policy,
    params: Mapping[str, Tensor],
    batches: TaskBatch | Sequence[TaskBatch],
    *,
    lr: StepSize,
    steps: int = 1,
    first_order: bool = False,
    batched: BatchedMode = "auto",
    frozen: frozenset[str] = frozenset(),
    loss: InnerLoss = "log_likelihood",
) -> Params:
    """Adapted per-task parameters after one inner step per batch (``frozen``, ``loss``: see :func:`inner_step`).

    Pass a sequence (step ``k`` uses ``batches[k]``, sampled with the step-``k``
    parameters, as in MAML with several inner steps) or one batch reused for
    ``steps`` steps.
    """
    sequence = [batches] * steps if isinstance(batches, TaskBatch) else list(batches)
    adapted = dict(params)
    for k, batch in enumerate(sequence):
        adapted, _ = inner_step(policy, adapted, batch, lr=lr, first_order=first_order, batched=batched, step_index=k,
                                frozen=frozen, loss=loss)
    return adapted
