"""MAML-TRPO (Finn et al. 2017, Algorithm 3; meta-optimized with TRPO as in the paper's RL experiments).

    require: p(T) over tasks, inner step size alpha, trust region delta
    randomly initialize theta
    while not done:
        sample a meta-batch of tasks T_i ~ p(T)                              # train split
        for all T_i:                                                         # batched over tasks
            sample K trajectories D_i with f_theta                           # pre-adaptation
            theta'_i = theta - alpha * grad_theta L_T_i(f_theta)  on D_i      # linear-baseline PG step
            sample trajectories D'_i with f_theta'_i                         # post-adaptation
        theta <- TRPO step on sum_i L_T_i(f_theta'_i) over D'_i, KL(theta'_i old || new) <= delta,
                 differentiating through the inner step (second order unless first_order)

With ``inner_steps = 0`` the same loop is plain multi-task TRPO: the
"pretrained on the same tasks without meta-learning" baseline of the MAML paper.
All tasks go through the task-batched core (``metarl.core``) in one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from metarl.agents.base import (
    CommonConfig,
    MetaAgent,
    PolicyActor,
    StepWeighting,
    build_policy,
    episode_stats,
    task_batch,
)
from metarl.core import (
    BatchedMode,
    InnerLoss,
    KLDirection,
    MamlObjective,
    StepSize,
    TaskBatch,
    adapt,
    advantage_spread,
    load_params_,
    module_params,
    relative_advantages,
    replicate_params,
    trpo_step,
)
from metarl.envs import Task, TaskFamily
from metarl.nn import WeightInit
from metarl.runs import ENV_STEPS_KEY, param
from metarl.sampling import Episodes

FisherMode = Literal["structured", "autograd"]
InnerAdvantages = Literal["normalize", "center", "relative"]
TestStepWeighting = Literal["train", "step", "episode"]


@dataclass(frozen=True)
class MAMLTRPOConfig(CommonConfig):
    meta_batch_size: int = param(20, min=1, help="tasks per meta-update")
    episodes_per_task: int = param(20, min=1, help="episodes per task for each inner step and for the post-update batch")
    inner_steps: int = param(1, min=0, help="policy-gradient adaptation steps (0: multi-task TRPO, no meta-learning)")
    inner_lr: float = param(0.1, min=0.0, exclusive_min=True, help="inner step size alpha")
    first_order: bool = param(False, help="drop second-order terms of the meta-gradient (FOMAML)")
    max_kl: float = param(0.01, min=0.0, exclusive_min=True, help="TRPO trust region delta")
    discount: float = param(0.99, min=0.0, max=1.0, help="discount gamma")
    gae_lambda: float = param(1.0, min=0.0, max=1.0, help="GAE lambda of the inner-loop advantages")
    hidden_sizes: tuple[int, ...] = param((64, 64), min=1, help="policy MLP hidden layers")
    init_std: float = param(1.0, min=0.0, exclusive_min=True, help="initial action std (Gaussian policies)")
    cg_iters: int = param(10, min=1, help="conjugate-gradient iterations")
    cg_damping: float = param(1e-5, min=0.0, help="damping added to the Fisher-vector products of conjugate gradient")
    line_search_steps: int = param(15, min=1, help="backtracking line-search candidates before the step is rejected")
    backtrack_ratio: float = param(0.8, min=0.0, max=1.0, exclusive_min=True, exclusive_max=True,
                                   help="line search: each candidate is this fraction of the previous one")
    kl_direction: KLDirection = param("old_new", choices=["old_new", "new_old"],
                                      help="which KL the trust region bounds: KL(old || new), the TRPO paper's, or "
                                           "KL(new || old), the MAML reference code's; the step is the same, the "
                                           "line search's acceptance differs at third order")
    step_weighting: StepWeighting = param("step", choices=["step", "episode"],
                                help="how a task's losses average its steps: every step alike, or every episode "
                                     "alike (the MAML reference code's; short episodes' steps weigh more)")
    test_step_weighting: TestStepWeighting = param(
        "train", choices=["train", "step", "episode"],
        help="how the meta-test inner step averages its episodes' steps: as in training (step_weighting), or "
             "every step / every episode alike. Training is unchanged. With the MAML reference code's estimator "
             "(step_weighting=episode) an every-step meta-test raises the share of point-nav tasks improved "
             "(experiments/results/maml_reference.md, session 12)")
    inner_loss: InnerLoss = param("lvc", choices=["lvc", "log_likelihood"],
                                  help="inner loss the meta-gradient differentiates: lvc (ProMP's: the same inner step, "
                                       "plus the curvature of sampling) or log_likelihood (the MAML paper's, whose "
                                       "meta-gradient shrinks the std and degrades with training)")
    inner_advantages: InnerAdvantages = param(
        "normalize", choices=["normalize", "center", "relative"],
        help="the inner step's advantages per task: centered and scaled to unit std (the MAML reference code's); "
             "only centered (a task whose episodes differ little takes a smaller step); or relative: normalized, "
             "then times (typical spread / this task's spread)^relative_power, the typical spread a running "
             "mean over training tasks kept in the checkpoint (a task whose advantages spread more, e.g. a "
             "point-nav goal near the start, takes a smaller step)")
    relative_power: float = param(1.0, min=0.0, help="inner_advantages=relative: the exponent of the step's "
                                  "spread ratio (0: the same as normalize)")
    spread_momentum: float = param(0.9, min=0.0, max=1.0, exclusive_max=True,
                                   help="inner_advantages=relative: the running mean's weight on its past value "
                                        "per iteration")
    inner_adapts_std: bool = param(True, help="false: the inner step leaves the log-std alone and treats it as a "
                                   "constant, so no second-order term ties the std to the size of the inner step")
    weight_init: WeightInit = param("torch", choices=["torch", "xavier"],
                                    help="policy weights: torch default, or xavier-uniform with zero biases (the "
                                         "MAML reference code's)")
    fisher: FisherMode = param("structured", choices=["structured", "autograd"],
                               help="how the TRPO step gets the meta-gradient and Fisher-vector products: from the "
                                    "inner loop's structure (J^T F J, faster) or by double backward through the "
                                    "whole second-order graph (the MAML reference code's); equal to float rounding")
    batched: BatchedMode = param("auto", choices=["auto", "vmap", "loop"], help="task batching of the core: vmap or loop")


class MAMLTRPO(MetaAgent):
    name = "maml-trpo"
    summary = "MAML with a TRPO meta-update"
    Config = MAMLTRPOConfig
    learned_step_size = False  # Meta-SGD: True, with the step sizes among the meta-parameters

    def __init__(self, config: MAMLTRPOConfig, family: str | TaskFamily, *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        super().__init__(config, family, seed=seed, device=device)
        self.policy = build_policy(self.family, config.hidden_sizes, config.init_std, config.weight_init).to(self.device)
        std_names = frozenset(k for k, _ in self.policy.named_parameters() if k.endswith("log_std"))
        self.frozen = frozenset() if config.inner_adapts_std else std_names
        # inner_advantages=relative: the running mean of the training tasks' advantage spreads
        self.typical_spread: float | None = None

    # -- the algorithm --------------------------------------------------------------------
    def initial_params(self, n_tasks: int) -> dict[str, torch.Tensor]:
        """The meta-parameters replicated per task: the starting point of adaptation."""
        return dict(replicate_params(module_params(self.policy, detach=True), n_tasks))

    def collect(self, tasks: Sequence[Task], params: Mapping[str, torch.Tensor] | None, episodes: int,
                seed: int | None = None) -> Episodes:
        actor = PolicyActor(self.policy, params)
        return self.sampler.sample(tasks, actor, episodes, seed=self.next_seed() if seed is None else seed)

    def batch(self, episodes: Episodes, *, inner: bool = True, track_spread: bool = False,
              weighting: StepWeighting | None = None) -> TaskBatch:
        """The task batch of ``episodes``: of an inner step (``inner``) or of the post-update surrogate.

        ``track_spread``: these are training tasks' pre-update episodes, so they update the running
        typical spread that ``inner_advantages=relative`` scales by (and meta-test reuses).
        ``weighting``: the step weighting, if not the configured ``step_weighting``.
        """
        cfg = self.config
        mode = cfg.inner_advantages if inner else "normalize"
        batch = task_batch(episodes, discount=cfg.discount, gae_lambda=cfg.gae_lambda, device=self.device,
                           weighting=weighting or cfg.step_weighting, scale=mode == "normalize")
        if mode != "relative":
            return batch
        if track_spread or self.typical_spread is None:
            spread = float(advantage_spread(batch.advantages, batch.mask).mean())
            if track_spread:
                m = cfg.spread_momentum
                self.typical_spread = spread if self.typical_spread is None else m * self.typical_spread + (1 - m) * spread
        reference = self.typical_spread if self.typical_spread is not None else spread
        return batch._replace(advantages=relative_advantages(batch.advantages, batch.mask, reference,
                                                             power=cfg.relative_power))

    def adapt(self, params: Mapping[str, torch.Tensor], episodes: Episodes, *,
              weighting: StepWeighting | None = None) -> dict[str, torch.Tensor]:
        """One inner policy-gradient step per task on ``episodes``, detached: for acting, not for meta-gradients."""
        with torch.no_grad():
            adapted = adapt(self.policy, params, self.batch(episodes, weighting=weighting), lr=self.step_size(),
                            first_order=True, batched=self.config.batched, frozen=self.frozen)
        return {k: v.detach() for k, v in adapted.items()}

    # -- what the meta-update optimizes (variants such as Meta-SGD extend these) -----------
    def step_size(self) -> StepSize:
        """The inner step size ``alpha``: a fixed number here."""
        return self.config.inner_lr

    def meta_parameters(self) -> dict[str, torch.Tensor]:
        """The variables of the TRPO meta-update (detached copies)."""
        return module_params(self.policy, detach=True)

    def load_meta_parameters(self, new: Mapping[str, torch.Tensor]) -> None:
        load_params_(self.policy, new)

    def objective(self, meta: Mapping[str, torch.Tensor], pre_batches: list[TaskBatch], post: Episodes) -> MamlObjective:
        cfg = self.config
        return MamlObjective(self.policy, meta, pre_batches, self.batch(post, inner=False), inner_lr=cfg.inner_lr,
                             first_order=cfg.first_order, batched=cfg.batched, frozen=self.frozen,
                             inner_loss=cfg.inner_loss, learned_lr=self.learned_step_size,
                             kl_direction=cfg.kl_direction)

    def train_iteration(self, it: int) -> dict[str, float]:
        cfg = self.config
        tasks = self.family.sample(cfg.meta_batch_size, self.rng, split="train")
        meta = self.meta_parameters()
        params = self.initial_params(len(tasks))
        pre_batches, metrics, steps = [], {}, 0
        for k in range(cfg.inner_steps):
            episodes = self.collect(tasks, params, cfg.episodes_per_task)
            steps += int(episodes.lengths.sum())
            if k == 0:
                metrics.update(episode_stats(episodes, "pre_", family=self.family))
            pre_batches.append(self.batch(episodes, track_spread=k == 0))
            params = self.adapt(params, episodes)
        post = self.collect(tasks, params, cfg.episodes_per_task)
        steps += int(post.lengths.sum())
        # train/return (shared by every agent): the post-adaptation episodes, what the paper reports
        metrics.update(episode_stats(post))
        metrics.update(episode_stats(post, "post_", family=self.family))
        objective = self.objective(meta, pre_batches, post)
        linearize = objective.linearize if cfg.fisher == "structured" else None
        new_meta, info = trpo_step(meta, objective, linearize=linearize, max_kl=cfg.max_kl, cg_iters=cfg.cg_iters,
                                   cg_damping=cfg.cg_damping,
                                   backtrack_ratio=cfg.backtrack_ratio, max_backtracks=cfg.line_search_steps)
        self.load_meta_parameters(new_meta)
        metrics.update({"loss_before": info.loss_before, "loss_after": info.loss_after, "kl": info.kl,
                        "step_accepted": float(info.accepted), "step_fraction": info.step_fraction, ENV_STEPS_KEY: steps})
        log_std = getattr(getattr(self.policy, "head", None), "log_std", None)
        if log_std is not None:  # the exploration noise MAML's second-order term tends to shrink: worth watching
            metrics["log_std"] = float(log_std.detach().mean())
        metrics["post_terminated"] = float(post.terminated.any(-1).float().mean())
        metrics.update(self.periodic_eval(it, cfg.eval))
        return metrics

    # -- meta-test ------------------------------------------------------------------------
    def adaptation_session(self, n_tasks: int, seed: int = 0) -> _InnerStepSession:
        return _InnerStepSession(self, n_tasks)

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"policy": {k: v.detach().cpu() for k, v in self.policy.state_dict().items()},
                                 "rng": self.rng.bit_generator.state}
        if self.typical_spread is not None:
            state["typical_spread"] = self.typical_spread
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.policy.load_state_dict({k: v.to(self.device) for k, v in state["policy"].items()})
        self.rng.bit_generator.state = state["rng"]
        spread = state.get("typical_spread")
        self.typical_spread = None if spread is None else float(spread)


class _InnerStepSession:
    """MAML's meta-test from outside: the meta-parameters per task, one inner step per ``adapt``."""

    def __init__(self, agent: MAMLTRPO, n_tasks: int) -> None:
        self.agent, self.params = agent, agent.initial_params(n_tasks)

    @property
    def actor(self) -> PolicyActor:
        return PolicyActor(self.agent.policy, self.params)

    def adapt(self, episodes: Episodes) -> None:
        test = self.agent.config.test_step_weighting
        self.params = self.agent.adapt(self.params, episodes, weighting=None if test == "train" else test)


@dataclass(frozen=True)
class MultiTaskTRPOConfig(MAMLTRPOConfig):
    inner_steps: int = param(0, min=0, help="0: train one policy on all tasks without meta-learning")


class MultiTaskTRPO(MAMLTRPO):
    """The MAML paper's "pretrained" baseline: TRPO on the pooled training tasks.

    It trains with no inner step, and at meta-test it is fine-tuned with the
    very same inner step as MAML (``inner_lr``), which is the fair comparison.
    """

    name = "multitask-trpo"
    summary = "its multi-task TRPO baseline"
    Config = MultiTaskTRPOConfig
