"""Reptile-PPO (Nichol, Achiam & Schulman 2018, Algorithm 2 "batched"), with PPO as the inner learner.

    require: p(T) over tasks, inner PPO (Schulman et al. 2017), outer step size eps (optionally annealed)
    initialize theta (policy and value function)
    for iteration = 0, 1, 2, ...:
        sample a meta-batch of tasks T_1..T_n ~ p(T)                              # train split
        theta_i <- theta, fresh Adam state, for all i                             # stacked [n, ...]
        repeat k times:                                                           # all tasks at once
            sample episodes D_i on T_i with pi_theta_i                            # fresh episodes each time
            theta_i <- PPO(theta_i, D_i): epochs x minibatches (same indices for every task),
                       Adam per task, gradient clipped per task
        theta <- theta + eps * mean_i(theta_i - theta)                            # batched Reptile step

Meta-test (``meta_test``) runs the very same inner PPO from the learned theta on held-out tasks:
round ``r`` is scored with the parameters after ``r`` PPO updates, and its episodes are the data
of update ``r + 1``. This is also what ``metarl evaluate`` plots against SB3 PPO from scratch.

:class:`JointPPO` (``joint-ppo``) is the same loop with another outer step: plain multi-task PPO
(the "pretrained on the training tasks, then fine-tuned with the same inner PPO" baseline), where
every PPO minibatch step moves the *shared* parameters with the mean of the per-task gradients,
through one Adam whose state persists across iterations (checkpointed). Fine-tuning at meta-test
is unchanged, so the two runs differ only in how the initialization was learned. Runs recorded
before it existed trained it as ``reptile-ppo`` with ``meta_update: joint``; that key still builds
a JointPPO (see :meth:`ReptilePPO.__new__`).

Why the inner loop is batched: Adam is elementwise, so one functional Adam on stacked
``[tasks, ...]`` tensors *is* one Adam per task; only gradient clipping couples a task's
entries, and :func:`metarl.core.adam_step` clips per task. The minibatch
index order is shared across tasks, so every task sees exactly what its own PPO would see.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call

from metarl.agents.base import CommonConfig, MetaAgent, PolicyActor, build_policy, episode_stats
from metarl.core import (
    AdamState,
    adam_init,
    adam_step,
    gae,
    load_params_,
    masked_mean,
    module_params,
    normalize_advantages,
    ppo_clip_loss,
    replicate_params,
    resolve_batched,
    task_grads,
)
from metarl.core.params import Params
from metarl.envs import Task, TaskFamily
from metarl.nn import MLPValueFunction
from metarl.nn.policy import Policy
from metarl.runs import ENV_STEPS_KEY, param
from metarl.sampling import Episodes

POLICY, VALUE = "policy.", "value."


@dataclass(frozen=True)
class ReptilePPOConfig(CommonConfig):
    meta_batch_size: int = param(10, min=1, help="tasks per meta-iteration")
    inner_updates: int = param(3, min=1, help="PPO updates per task per meta-iteration, each on fresh episodes (k)")
    episodes_per_update: int = param(10, min=1, help="episodes per task collected for each inner PPO update")
    ppo_epochs: int = param(4, min=1, help="passes over each update's episodes")
    minibatch_size: int = param(250, min=1, help="steps per minibatch and task (indices shared across tasks)")
    inner_lr: float = param(1e-3, min=0.0, exclusive_min=True, help="Adam step size of the inner PPO")
    clip: float = param(0.2, min=0.0, exclusive_min=True, help="PPO ratio clip range")
    vf_coef: float = param(0.5, min=0.0, help="value-loss weight")
    ent_coef: float = param(0.0, min=0.0, help="entropy-bonus weight")
    max_grad_norm: float | None = param(0.5, min=0.0, exclusive_min=True, help="per-task gradient clip (null: off)")
    discount: float = param(0.99, min=0.0, max=1.0, help="discount gamma")
    gae_lambda: float = param(0.95, min=0.0, max=1.0, help="GAE lambda")
    meta_update: str = param("reptile", choices=["reptile", "joint"],
                             help="deprecated: train joint-ppo instead. joint builds joint-ppo's multi-task PPO under "
                                  "the name reptile-ppo, as runs recorded before joint-ppo did")
    outer_lr: float = param(0.5, min=0.0, max=1.0, exclusive_min=True, help="Reptile outer step size eps")
    outer_lr_final: float | None = param(None, min=0.0, max=1.0,
                                         help="anneal eps linearly to this value (null: constant eps)")
    anneal_iterations: int | None = param(None, min=1, help="iterations of the anneal; set it so a resume with a "
                                                            "new trainer.iterations keeps the schedule (null: the "
                                                            "trainer.iterations the run was created with)")
    hidden_sizes: tuple[int, ...] = param((64, 64), min=1, help="policy and value MLP hidden layers")
    init_std: float = param(1.0, min=0.0, exclusive_min=True, help="initial action std (Gaussian policies)")
    mean_init_scale: float = param(1.0, min=0.0, help="scale of the initial action-mean layer (SB3 uses ~0.01)")
    batched: str = param("auto", choices=["auto", "vmap", "loop"], help="task batching of the gradients")
    init_from: str | None = param(None, help="start theta from this reptile-ppo or joint-ppo run dir or "
                                             "checkpoint, e.g. a joint-ppo run (pretrain jointly, then meta-train)")


@dataclass(frozen=True)
class JointPPOConfig(ReptilePPOConfig):
    """Reptile-PPO's keys, so the two share their family defaults (``metarl/defaults/reptile-ppo``) and a
    joint-ppo run resolves to the same config as a ``reptile-ppo`` one recorded with ``meta_update: joint``.
    ``outer_lr`` and its anneal are Reptile's outer step, unused here."""

    meta_update: str = param("joint", choices=["joint"],
                             help="always joint here (the key reptile-ppo runs recorded this agent under)")


class PPOBatch(NamedTuple):
    """One PPO update's data, flattened to ``[tasks, steps, ...]`` (``mask`` 0.0 on padding)."""

    obs: Tensor
    actions: Tensor
    old_log_probs: Tensor
    advantages: Tensor
    returns: Tensor
    mask: Tensor

    def take(self, index: Tensor) -> PPOBatch:
        """The same step indices of every task (a shared minibatch)."""
        return PPOBatch(*(x[:, index] for x in self))


def split_params(params: Mapping[str, Tensor]) -> tuple[Params, Params]:
    """Joint ``policy.*`` / ``value.*`` dict -> (policy params, value params) without prefixes."""
    pi = {k[len(POLICY):]: v for k, v in params.items() if k.startswith(POLICY)}
    vf = {k[len(VALUE):]: v for k, v in params.items() if k.startswith(VALUE)}
    return pi, vf


def reptile_step(meta: Mapping[str, Tensor], adapted: Mapping[str, Tensor], step_size: float) -> Params:
    """``theta + eps * mean_i(theta_i - theta)``: the batched Reptile update (``adapted`` is ``[tasks, ...]``)."""
    return {k: theta + step_size * (adapted[k].mean(dim=0) - theta) for k, theta in meta.items()}


def annealed(start: float, final: float | None, it: int, horizon: int) -> float:
    """Reptile's linearly annealed outer step size (``final=None``: constant ``start``).

    ``horizon`` must not depend on anything a resume may change: see :meth:`ReptilePPO.anneal_horizon`.
    """
    if final is None:
        return start
    frac = min(it / horizon, 1.0)
    return (1.0 - frac) * start + frac * final


class InnerPPO:
    """PPO-clip on stacked per-task parameters: the inner learner of Reptile, and its meta-test.

    Parameters are one joint dict (``policy.*`` and ``value.*``), so a single Adam and a
    single per-task clip cover both networks, as in SB3's PPO (one optimizer over the
    actor-critic, ``clip_grad_norm_`` over all of it).
    """

    def __init__(self, policy: Policy, value_fn: nn.Module, config: ReptilePPOConfig) -> None:
        self.policy, self.value_fn, self.config = policy, value_fn, config

    def values(self, vf: Params, obs: Tensor) -> Tensor:
        """``V(obs)`` for stacked value params ``[T, ...]`` and obs ``[T, ...]`` (one vmapped call)."""
        return torch.vmap(lambda p, o: functional_call(self.value_fn, p, (o,)))(vf, obs)

    @torch.no_grad()
    def batch(self, params: Mapping[str, Tensor], episodes: Episodes) -> PPOBatch:
        """GAE advantages and value targets from each task's own value function.

        Episodes cut by the horizon are bootstrapped from ``V(last_observation)``;
        terminated ones are not (:func:`metarl.core.gae`).
        """
        cfg = self.config
        _, vf = split_params(params)
        vf = {k: v.expand(episodes.n_tasks, *v.shape[1:]) for k, v in vf.items()}  # shared (joint) params: 1 -> T
        eps = episodes.to(next(iter(params.values())).device)
        values = self.values(vf, eps.observations)
        last = self.values(vf, eps.last_observations)
        adv, returns = gae(eps.rewards, values, eps.mask, gamma=cfg.discount, gae_lambda=cfg.gae_lambda,
                           last_values=last, terminated=eps.terminated.any(dim=-1))
        flat = lambda x: x.flatten(1, 2)  # noqa: E731 - [T, E, H, ...] -> [T, E*H, ...]
        return PPOBatch(flat(eps.observations), flat(eps.actions), flat(eps.log_probs), flat(adv), flat(returns),
                        flat(eps.mask))

    def loss(self, params: Mapping[str, Tensor], mb: PPOBatch) -> Tensor:
        """One task's PPO loss on one minibatch (no task dim): clip surrogate + value MSE - entropy.

        Advantages are normalized per minibatch and task, as SB3 does; the core's
        masked reductions expect ``(episodes, time)``, hence the ``[None]``.
        """
        cfg = self.config
        pi, vf = split_params(params)
        mask = mb.mask[None]
        dist = self.policy.distribution(pi, mb.obs)
        adv = normalize_advantages(mb.advantages[None], mask)
        policy_loss = ppo_clip_loss(dist.log_prob(mb.actions)[None], mb.old_log_probs[None], adv, mask, clip=cfg.clip)
        value_loss = masked_mean((functional_call(self.value_fn, vf, (mb.obs,)) - mb.returns)[None] ** 2, mask)
        loss = policy_loss + cfg.vf_coef * value_loss
        if cfg.ent_coef:
            loss = loss - cfg.ent_coef * masked_mean(dist.entropy()[None], mask)
        return loss

    def update(self, params: Mapping[str, Tensor], opt: AdamState, batch: PPOBatch, generator: torch.Generator,
               *, shared: bool = False) -> tuple[Params, AdamState, dict[str, float]]:
        """``ppo_epochs`` passes of minibatch Adam steps on every task at once.

        ``params`` lead with the task dim. With ``shared`` they lead with 1 instead (one
        set for all tasks) and each step uses the mean of the per-task gradients: joint
        multi-task PPO through the same code.

        Adam runs on one flat ``[tasks, n_params]`` tensor (the dict entries are views of
        it): the same arithmetic as on the dict, but a handful of ops per step instead of
        a handful per entry, which is most of an update's cost for small networks.
        """
        cfg = self.config
        n_tasks, n_steps = batch.mask.shape[:2]
        size = min(cfg.minibatch_size, n_steps)
        # vmap over a single task only adds overhead: plain autograd there (3x faster measured).
        auto_single = n_tasks == 1 and cfg.batched == "auto"
        mode = "loop" if auto_single else resolve_batched(cfg.batched, batch.obs.device, size)  # type: ignore[arg-type]
        shapes = {k: v.shape for k, v in params.items()}
        flat = _flatten(params)
        flat_opt = AdamState(opt.step, {"flat": _flatten(opt.exp_avg)}, {"flat": _flatten(opt.exp_avg_sq)})
        losses, norms = [], []
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(n_steps, generator=generator).to(batch.obs.device)
            for start in range(0, n_steps, size):
                mb = batch.take(order[start:start + size])
                views = _unflatten(flat, shapes)
                if shared:  # one parameter set for all tasks
                    views = {k: v.expand(n_tasks, *v.shape[1:]) for k, v in views.items()}
                grads, task_losses = task_grads(self.loss, views, mb, mode=mode)
                if shared:  # the joint step follows the mean of the per-task gradients
                    grads = {k: g.mean(dim=0, keepdim=True) for k, g in grads.items()}
                new, flat_opt, grad_norms = adam_step({"flat": flat}, {"flat": _flatten(grads)}, flat_opt,
                                                      lr=cfg.inner_lr, max_grad_norm=cfg.max_grad_norm)
                flat = new["flat"]
                losses.append(task_losses.mean())
                norms.append(grad_norms.mean())
        opt = AdamState(flat_opt.step, _unflatten(flat_opt.exp_avg["flat"], shapes),
                        _unflatten(flat_opt.exp_avg_sq["flat"], shapes))
        stats = {"ppo_loss": float(torch.stack(losses).mean()), "grad_norm": float(torch.stack(norms).mean())}
        return _unflatten(flat, shapes), opt, stats


def _flatten(stacked: Mapping[str, Tensor]) -> Tensor:
    """``{name: [T, ...]}`` -> ``[T, n_params]`` (entries concatenated in dict order)."""
    return torch.cat([v.reshape(v.shape[0], -1) for v in stacked.values()], dim=1)


def _unflatten(flat: Tensor, shapes: Mapping[str, torch.Size]) -> Params:
    """Inverse of :func:`_flatten`: views of ``flat`` shaped like ``shapes`` (which include the task dim)."""
    sizes = [s[1:].numel() for s in shapes.values()]
    return {k: part.view(flat.shape[0], *s[1:]) for (k, s), part in zip(shapes.items(), flat.split(sizes, dim=1),
                                                                       strict=True)}


class ReptilePPO(MetaAgent):
    name = "reptile-ppo"
    summary = "Reptile with inner PPO"
    Config = ReptilePPOConfig

    def __new__(cls, config: ReptilePPOConfig, *args: Any, **kwargs: Any) -> ReptilePPO:
        """``meta_update: joint`` (deprecated) builds a :class:`JointPPO` that keeps the name ``reptile-ppo``.

        That is how runs recorded before joint-ppo trained it: their config says ``agent: reptile-ppo``
        and so do their checkpoints, so the agent rebuilt from them must answer to that name to load,
        evaluate and resume as it did (and ``--set meta_update=joint`` still trains it, bit for bit).
        """
        if cls is ReptilePPO and config.meta_update == "joint":
            agent = super().__new__(JointPPO)
            agent.name = ReptilePPO.name  # the recorded name; JointPPO's own is joint-ppo
            return agent
        return super().__new__(cls)

    def __init__(self, config: ReptilePPOConfig, family: str | TaskFamily, *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(config, family, seed=seed, device=device)
        policy = build_policy(self.family, config.hidden_sizes, config.init_std)
        if hasattr(policy.head, "mean"):  # start from a mean action near 0, as SB3's small-gain init does
            with torch.no_grad():
                policy.head.mean.weight.mul_(config.mean_init_scale)
                policy.head.mean.bias.mul_(config.mean_init_scale)
        value_fn = MLPValueFunction(policy.obs_dim, config.hidden_sizes)
        self.net = nn.ModuleDict({"policy": policy, "value": value_fn}).to(self.device)  # theta: both networks
        if config.init_from:
            self.warm_start(config.init_from, self.net.load_state_dict,
                            f"family {self.family.full_name}, hidden_sizes {list(config.hidden_sizes)}")
        self.policy = policy
        self.inner = InnerPPO(policy, value_fn, config)
        # What anneal_iterations=null stands for: the budget at run creation, checkpointed (see anneal_horizon).
        self.created_iterations = config.trainer.iterations

    def anneal_horizon(self) -> int:
        """Iterations over which eps anneals: ``anneal_iterations``, else the run's budget *at creation*.

        Never the current ``trainer.iterations``: ``--resume --iterations 4`` changes that, and a
        schedule stretched mid-run would make "2 iterations, then resume to 4" differ from "4 straight".
        The creation budget travels in the checkpoint (``state_dict``); checkpoints from before it
        did fall back to the current budget, as they always did. The shipped defaults set
        ``anneal_iterations``, so their schedule is the same whatever the budget.
        """
        return self.config.anneal_iterations or self.created_iterations

    # -- the algorithm --------------------------------------------------------------------
    def meta_params(self) -> Params:
        return module_params(self.net, detach=True)

    def collect(self, tasks: Sequence[Task], params: Mapping[str, Tensor], episodes: int, seed: int) -> Episodes:
        """Episodes of every task with its own policy parameters (a leading dim of 1 serves all tasks)."""
        pi, _ = split_params(params)
        pi = {k: v.expand(len(tasks), *v.shape[1:]) for k, v in pi.items()}
        return self.sampler.sample(tasks, PolicyActor(self.policy, pi), episodes, seed=seed)

    def adapt(self, params: Mapping[str, Tensor], episodes: Episodes, opt: AdamState | None = None, *,
              seed: int = 0, shared: bool = False) -> tuple[Params, AdamState]:
        """One inner PPO update per task on ``episodes``; pass the returned Adam state to the next call."""
        params, opt, _ = self._ppo_update(params, episodes, opt, seed=seed, shared=shared)
        return params, opt

    def _ppo_update(self, params: Mapping[str, Tensor], episodes: Episodes, opt: AdamState | None, *, seed: int,
                    shared: bool) -> tuple[Params, AdamState, dict[str, float]]:
        opt = adam_init(params) if opt is None else opt
        generator = torch.Generator().manual_seed(seed)  # minibatch order, replayed exactly on resume
        return self.inner.update(params, opt, self.inner.batch(params, episodes), generator, shared=shared)

    def inner_loop(self, tasks: Sequence[Task], params: Params, opt: AdamState, *, updates: int, shared: bool = False,
                   ) -> tuple[Params, AdamState, dict[str, float], int]:
        """``updates`` rounds of (fresh episodes -> one PPO update); returns params, Adam state, metrics, env steps."""
        cfg = self.config
        metrics: dict[str, float] = {}
        stats: dict[str, float] = {}
        steps = 0
        for k in range(updates):
            episodes = self.collect(tasks, params, cfg.episodes_per_update, seed=self.next_seed())
            steps += episodes.n_steps
            metrics.update(episode_stats(episodes, f"inner_{k}_"))
            params, opt, stats = self._ppo_update(params, episodes, opt, seed=self.next_seed(), shared=shared)
        metrics.update(stats)  # of the last update
        # train/return (shared by every agent): the last, most adapted batch, as MAML's post-update one
        metrics.update(episode_stats(episodes, family=self.family))
        return params, opt, metrics, steps

    def train_iteration(self, it: int) -> dict[str, float]:
        cfg = self.config
        tasks = self.family.sample(cfg.meta_batch_size, self.rng, split="train")
        new_theta, metrics, steps = self.outer_step(it, tasks, self.meta_params())
        load_params_(self.net, new_theta)
        metrics[ENV_STEPS_KEY] = steps
        metrics.update(self.periodic_eval(it, cfg.eval))
        return metrics

    def outer_step(self, it: int, tasks: Sequence[Task], theta: Params) -> tuple[Params, dict[str, float], int]:
        """Reptile: ``k`` PPO updates of a copy of theta per task (fresh Adam), then
        ``theta + eps * mean_i(theta_i - theta)``; returns the new theta, metrics and env steps."""
        cfg = self.config
        adapted = {k: v.clone() for k, v in replicate_params(theta, len(tasks)).items()}
        adapted, _, metrics, steps = self.inner_loop(tasks, adapted, adam_init(adapted), updates=cfg.inner_updates)
        step_size = annealed(cfg.outer_lr, cfg.outer_lr_final, it, self.anneal_horizon())
        metrics["outer_lr"] = step_size
        return reptile_step(theta, adapted, step_size), metrics, steps

    # -- meta-test ------------------------------------------------------------------------
    def adaptation_session(self, n_tasks: int, seed: int = 0) -> _InnerPPOSession:
        return _InnerPPOSession(self, n_tasks, seed)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"net": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "rng": self.rng.bit_generator.state, "created_iterations": self.created_iterations}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.net.load_state_dict({k: v.to(self.device) for k, v in state["net"].items()})
        self.rng.bit_generator.state = state["rng"]
        self.created_iterations = int(state.get("created_iterations", self.created_iterations))
        self._warn_if_anneal_ends_early()

    def _warn_if_anneal_ends_early(self) -> None:
        """A resume past the budget a run was created with, under ``anneal_iterations: null``, spends the
        extra iterations at ``outer_lr_final``; say so, since with the default final eps of 0 they learn nothing."""
        cfg = self.config
        if (cfg.outer_lr_final is not None and cfg.anneal_iterations is None
                and self.created_iterations < cfg.trainer.iterations):
            warnings.warn(f"anneal_iterations is null, so eps anneals over the {self.created_iterations} iterations "
                          f"this run was created with: iterations {self.created_iterations}.."
                          f"{cfg.trainer.iterations - 1} run at outer_lr_final={cfg.outer_lr_final:g}; set "
                          "anneal_iterations for another schedule", UserWarning, stacklevel=2)


class JointPPO(ReptilePPO):
    """Multi-task PPO: Reptile-PPO's baseline, "pretrained on the training tasks, fine-tuned with the same inner PPO".

    One shared theta trained by the inner PPO on all tasks at once: each minibatch step follows the
    mean of the per-task gradients, through one Adam that persists across iterations (checkpointed
    as ``outer_opt``). Its meta-test is Reptile-PPO's, so the two differ only in how theta is learned.
    """

    name = "joint-ppo"
    summary = "its multi-task PPO baseline"
    Config = JointPPOConfig

    def __init__(self, config: ReptilePPOConfig, family: str | TaskFamily, *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(config, family, seed=seed, device=device)
        self.outer_opt: AdamState | None = None  # the shared theta's Adam, created on the first step

    def outer_step(self, it: int, tasks: Sequence[Task], theta: Params) -> tuple[Params, dict[str, float], int]:
        """``k`` PPO updates of the shared theta (a task dim of 1 serves every task), mean gradient per step."""
        shared = {k: v.unsqueeze(0) for k, v in theta.items()}
        opt = self.outer_opt or adam_init(shared)
        shared, self.outer_opt, metrics, steps = self.inner_loop(tasks, shared, opt, updates=self.config.inner_updates,
                                                                 shared=True)
        return {k: v[0] for k, v in shared.items()}, metrics, steps

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        if self.outer_opt is not None:
            state["outer_opt"] = {"step": self.outer_opt.step,
                                  "exp_avg": {k: v.cpu() for k, v in self.outer_opt.exp_avg.items()},
                                  "exp_avg_sq": {k: v.cpu() for k, v in self.outer_opt.exp_avg_sq.items()}}
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        opt = state.get("outer_opt")
        self.outer_opt = None if opt is None else AdamState(
            int(opt["step"]), {k: v.to(self.device) for k, v in opt["exp_avg"].items()},
            {k: v.to(self.device) for k, v in opt["exp_avg_sq"].items()})

    def _warn_if_anneal_ends_early(self) -> None:
        """Nothing to warn about: eps and its anneal belong to Reptile's outer step, which this agent replaces."""


class _InnerPPOSession:
    """Reptile's meta-test from outside: theta per task, one inner PPO update per ``adapt``."""

    def __init__(self, agent: ReptilePPO, n_tasks: int, seed: int) -> None:
        self.agent, self.seed, self.k = agent, seed, 0
        self.params = {k: v.clone() for k, v in replicate_params(agent.meta_params(), n_tasks).items()}
        self.opt = adam_init(self.params)

    @property
    def actor(self) -> PolicyActor:
        pi, _ = split_params(self.params)
        return PolicyActor(self.agent.policy, pi)

    def adapt(self, episodes: Episodes) -> None:
        self.params, self.opt = self.agent.adapt(self.params, episodes, self.opt, seed=self.seed * 7919 + self.k)
        self.k += 1
