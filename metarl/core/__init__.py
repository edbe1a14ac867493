"""Functional, task-batched math for meta-RL.

Everything here works on pure tensors: policy parameters are dicts of tensors
(stacked with a leading task dimension for per-task parameters) applied with
``torch.func.functional_call``, so the same code serves one task, a ``vmap`` over
tasks, or a plain Python loop over tasks. Rollout tensors are shaped
``[tasks, episodes, time, ...]`` with a float ``mask`` ``[tasks, episodes, time]``
(1.0 on real steps, a prefix of each episode row).

MAML-TRPO meta-step, as an agent would write it::

    meta = module_params(policy, detach=True)
    adv = linear_baseline_advantages(obs, rewards, mask, gamma=0.99, gae_lambda=1.0)
    pre = TaskBatch(obs, actions, adv, mask).to(device)
    with torch.no_grad():  # adapted weights for sampling the post-update episodes
        adapted = adapt(policy, replicate_params(meta, n_tasks), pre, lr=0.1)
    # ... sample with policy.act(obs_t, adapted), build `post` the same way ...
    objective = MamlObjective(policy, meta, [pre], post, inner_lr=0.1, batched="auto")
    new_meta, info = trpo_step(meta, objective, linearize=objective.linearize, max_kl=0.01)  # info.accepted
    load_params_(policy, new_meta)

Reptile-PPO inner loop on all tasks at once::

    params = {k: v.clone() for k, v in replicate_params(meta, n_tasks).items()}
    state = adam_init(params)
    for minibatch in minibatches:  # pytree of [tasks, ...] tensors
        grads, losses = task_grads(ppo_loss, params, minibatch, mode=resolve_batched("auto", device, n))
        params, state, norms = adam_step(params, grads, state, lr=3e-4, max_grad_norm=0.5)
"""

from metarl.core.adam import AdamState, adam_init, adam_step, clip_grad_norm_per_task
from metarl.core.adaptation import (
    BatchedMode,
    InnerLoss,
    StepSize,
    TaskBatch,
    adapt,
    inner_step,
    map_tasks,
    resolve_batched,
    task_grads,
)
from metarl.core.advantages import (
    advantage_spread,
    linear_baseline_advantages,
    normalize_advantages,
    relative_advantages,
)
from metarl.core.baselines import LinearFeatureBaseline
from metarl.core.cg import conjugate_gradient
from metarl.core.checks import NonFiniteError, check_finite
from metarl.core.device import resolve_device
from metarl.core.gae import discounted_returns, gae
from metarl.core.losses import (
    KLDirection,
    entropy,
    kl_divergence,
    masked_mean,
    pg_loss,
    ppo_clip_loss,
    surrogate_loss,
)
from metarl.core.maml import MamlObjective, split_step_sizes, step_size_key
from metarl.core.maml_curvature import linearize_maml
from metarl.core.params import (
    flatten_params,
    load_params_,
    module_params,
    replicate_params,
    stack_params,
    task_params,
    unflatten_params,
)
from metarl.core.trpo import Linearization, TRPOInfo, autograd_linearization, fisher_vector_product, trpo_step

__all__ = [
    "advantage_spread",
    "BatchedMode",
    "InnerLoss",
    "KLDirection",
    "AdamState",
    "MamlObjective",
    "StepSize",
    "NonFiniteError",
    "Linearization",
    "LinearFeatureBaseline",
    "TRPOInfo",
    "TaskBatch",
    "adam_init",
    "adam_step",
    "adapt",
    "autograd_linearization",
    "check_finite",
    "clip_grad_norm_per_task",
    "conjugate_gradient",
    "discounted_returns",
    "entropy",
    "fisher_vector_product",
    "flatten_params",
    "gae",
    "inner_step",
    "load_params_",
    "map_tasks",
    "kl_divergence",
    "linear_baseline_advantages",
    "masked_mean",
    "module_params",
    "normalize_advantages",
    "relative_advantages",
    "pg_loss",
    "ppo_clip_loss",
    "replicate_params",
    "resolve_batched",
    "resolve_device",
    "stack_params",
    "surrogate_loss",
    "task_grads",
    "task_params",
    "linearize_maml",
    "split_step_sizes",
    "step_size_key",
    "trpo_step",
    "unflatten_params",
]
