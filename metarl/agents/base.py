"""Pieces every agent shares: config sections, the policy actor, and :class:`MetaAgent`.

:class:`MetaAgent` is the base class of every agent and implements the agent contract
(:mod:`metarl.contract`): the trainer, the evaluator, the API and the CLI use nothing else.
Two adaptation styles (docs/architecture.md) meet the sampler and the evaluator through it:

* gradient-based agents (MAML-TRPO, Meta-SGD, Reptile-PPO) keep per-task parameters (stacked
  with a leading task dimension) and adapt them with their own inner update;
* context-based agents (RL²) keep a recurrent state inside their actor.

Either way the evaluator asks :meth:`MetaAgent.meta_test` for the episodes of each adaptation
round, or drives an :class:`~metarl.contract.AdaptationSession` step by step, so curves of both
kinds are computed by the same code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor

from metarl.contract import AdaptationSession, MetaLearner
from metarl.core import TaskBatch, linear_baseline_advantages, normalize_advantages
from metarl.envs import EnvSpecError, Task, TaskFamily, make_family
from metarl.nn import CategoricalMLPPolicy, GaussianMLPPolicy, WeightInit, init_linear_
from metarl.nn.policy import Policy
from metarl.runs import CheckpointError, ConfigError, TrainerConfig, adapt_key, load_checkpoint, param
from metarl.sampling import Episodes, make_sampler
from metarl.sampling.actor import ActorOutput
from metarl.sampling.errors import DEFAULT_STEP_TIMEOUT

Params = Mapping[str, Tensor]
StepWeighting = Literal["step", "episode"]


@dataclass(frozen=True)
class SamplingConfig:
    """Where rollouts run; stored with the run so a resume collects the same way."""

    backend: str = param("auto", choices=["auto", "serial", "process", "ray", "tensor"],
                         help="rollout backend: tensor rolls out a family's torch envs on the agent's device "
                              "(bandit, tabular-mdp, point-nav); auto is tensor where the family has one, else serial")
    workers: int | None = param(None, min=1, help="worker processes / Ray actors (null: one per core)")
    ray_address: str | None = param(None, help="join this Ray cluster (null: start a local one)")
    # 60 s: a worker's batched step covers all its envs plus their auto-resets (a Meta-World reset
    # is ~30 ms), so even hundreds of envs per worker stay far below it, while a hung env still
    # ends the run (and a first SIGTERM with it) within a minute. See make_sampler(timeout=...).
    step_timeout: float | None = param(DEFAULT_STEP_TIMEOUT, min=0.0, exclusive_min=True,
                                       help="seconds one batched env step or reset of a worker may take before "
                                            "the run fails with an error naming the env (null: no limit)")
    max_envs: int | None = param(None, min=1, help="the most envs live at once; a larger batch is collected in "
                                                   "passes over its episodes (Meta-World envs hold ~20 MB each; "
                                                   "null: no bound)")
    env_threads: int | None = param(None, min=1, help="threads each worker steps a batched family's physics on "
                                                      "(MuJoCo locomotion); null: its share of the cores")


@dataclass(frozen=True)
class EvalConfig:
    """The small meta-test run during training (``--eval-every``)."""

    every: int = param(0, min=0, help="meta-test every N iterations (0: never)")
    tasks: int = param(10, min=1, help="held-out tasks per meta-test")
    rounds: int = param(1, min=0, help="adaptation rounds (gradient steps or trial episodes)")
    episodes_per_round: int = param(10, min=1, help="episodes per round and task")
    protocol: str = param("metarl", choices=["metarl", "metaworld"],
                          help="metarl: the rounds above on `tasks` held-out tasks; metaworld: Meta-World's own "
                               "evaluator with Meta-World+'s numbers (Meta-World families), logged as "
                               "eval/metaworld/success and eval/metaworld/return")
    mw_meta_batch_size: int = param(20, min=1, help="protocol=metaworld: envs evaluated in parallel")
    mw_goals_per_class: int = param(40, min=1, help="protocol=metaworld: test goals per test class")
    mw_adaptation_episodes: int = param(10, min=1, help="protocol=metaworld: adaptation episodes")
    mw_evaluation_episodes: int = param(3, min=1, help="protocol=metaworld: scored episodes per goal")
    mw_max_episode_steps: int | None = param(None, min=1, help="protocol=metaworld: truncate episodes "
                                                               "(null: the benchmark's 500)")
    mw_carry_memory: bool = param(False, help="protocol=metaworld, memory agents (RL²): the trial carries on through "
                                  "the evaluation episodes instead of each starting from the memory at the end of "
                                  "adaptation (the reference's)")


def default_trainer() -> TrainerConfig:
    return TrainerConfig(iterations=100, checkpoint_every=10)


@dataclass(frozen=True)
class CommonConfig:
    """Fields every agent config carries (composed, not inherited, to keep YAML flat)."""

    trainer: TrainerConfig = field(default_factory=default_trainer)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def space_dims(space: gym.Space[Any]) -> tuple[int, bool]:
    """``(size, discrete)`` of a space the agents' flat policies can read or emit: the number of
    actions of a ``Discrete`` space, the width of a 1-D ``Box``."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n), True
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return int(space.shape[0]), False
    raise EnvSpecError(f"unsupported space {space}; metarl agents handle Discrete and 1-D Box spaces")


def build_policy(family: TaskFamily, hidden_sizes: Sequence[int], init_std: float,
                 weight_init: WeightInit = "torch") -> Policy:
    """The flat MLP policy gradient-based agents share: categorical for discrete actions, else a
    Gaussian with a state-independent std of ``init_std``."""
    obs_dim, _ = space_dims(family.observation_space)
    act_dim, discrete = space_dims(family.action_space)
    if discrete:
        return init_linear_(CategoricalMLPPolicy(obs_dim, act_dim, hidden_sizes), weight_init)
    return init_linear_(GaussianMLPPolicy(obs_dim, act_dim, hidden_sizes, init_std=init_std), weight_init)


class PolicyActor:
    """Adapts an :class:`~metarl.nn.policy.Policy` with optional per-task parameters to the sampler.

    The gymnasium path hands CPU tensors and the policy may live on another device, so
    observations go over once per step and actions come back once; on the tensor path
    (:mod:`metarl.sampling.tensor`) both are on the policy's device and nothing moves.
    """

    def __init__(self, policy: Policy, params: Params | None = None, *, deterministic: bool = False) -> None:
        self.policy, self.params, self.deterministic = policy, params, deterministic
        self.device = next(policy.parameters()).device

    def initial_state(self, n_tasks: int, n_slots: int) -> None:
        return None

    def act(self, obs: Tensor, state: Any, episode_start: Tensor, generator: torch.Generator) -> ActorOutput:
        home = obs.device
        obs = obs.to(self.device, non_blocking=True)
        actions, log_probs = self.policy.act(obs, self.params, deterministic=self.deterministic, generator=generator)
        return ActorOutput(actions.to(home), log_probs.to(home), state, {})

    def observe(self, state: Any, actions: Tensor, rewards: Tensor, dones: Tensor) -> Any:
        return state


def to_cpu(obj: Any) -> Any:
    """Optimizer state (nested dicts and lists) with every tensor on CPU, so checkpoints load on any device."""
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_cpu(v) for v in obj]
    return obj


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: Mapping[str, Any]) -> None:
    """Restore an optimizer's moments from a checkpoint but keep the hyperparameters it was built with.

    ``torch.optim.Optimizer.load_state_dict`` also restores each param group's ``lr``, betas and eps, so a
    resume with ``--set lr=...`` would silently keep training at the checkpoint's step size. The config
    is the source of truth for hyperparameters (and equal to the checkpoint's when nothing was
    overridden, so bit-exact resume is unaffected); the checkpoint only supplies the running state.
    """
    configured = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    optimizer.load_state_dict(dict(state))
    for group, hyper in zip(optimizer.param_groups, configured, strict=True):
        group.update(hyper)


def task_batch(episodes: Episodes, *, discount: float, gae_lambda: float, device: torch.device,
               weighting: StepWeighting = "step", scale: bool = True) -> TaskBatch:
    """Episodes -> the inner-loop batch with linear-baseline advantages, moved in one go.

    ``weighting`` is how a task's losses (and the advantage normalization) average its steps:
    ``"step"``, every real step alike; ``"episode"``, every episode alike, each the mean over its
    own steps (the MAML reference code's ``weighted_mean``), so a short episode's steps weigh
    more. Both are carried by the batch's ``mask``: ``"episode"`` scales each episode's real steps
    by ``mean length / its length``, and every masked mean then reduces per episode.
    ``scale``: advantages centered and scaled to unit std per task (the default), or only centered.
    """
    eps = episodes.to(device)
    adv = linear_baseline_advantages(eps.observations, eps.rewards, eps.mask, gamma=discount, gae_lambda=gae_lambda,
                                     normalize=False)
    weights = eps.mask
    if weighting == "episode":
        lengths = eps.mask.sum(-1, keepdim=True)
        weights = eps.mask * lengths.mean(dim=(-2, -1), keepdim=True) / lengths.clamp(min=1.0)
    elif weighting != "step":
        raise ValueError(f"weighting={weighting!r} is unknown; allowed: step, episode")
    return TaskBatch(eps.observations, eps.actions, normalize_advantages(adv, weights, scale=scale), weights)


def episode_stats(episodes: Episodes, prefix: str = "", returns: Tensor | None = None,
                  family: TaskFamily | None = None) -> dict[str, float]:
    """``{prefix}return`` and, where the envs report success, ``{prefix}success`` of a batch.

    With the empty prefix these are the shared training metrics every agent logs
    (``train/return``, ``train/success``; see :mod:`metarl.evaluation.metrics`), so one
    function spells them for all. ``returns``: the per-unit returns to average instead of
    the per-episode ones (RL² passes its trial returns, the unit its objective is defined on).
    Success is the fraction of episodes with any step's ``info["success"]`` truthy, and is
    left out, not logged as 0, when the batch reports no success (``episodes.reports_success``).

    With ``family`` and a batch holding at least two of its named classes
    (:meth:`~metarl.envs.base.TaskFamily.task_class`: Meta-World's ML10/ML45), success is also
    logged per class as ``train/{prefix}success/{class}``: a multi-task mean hides the classes
    that never succeed, which is the first thing to look at when a benchmark curve stalls.
    """
    out = {f"{prefix}return": float((episodes.returns if returns is None else returns).mean())}
    if not episodes.reports_success:
        return out
    success = episodes.success.float()
    out[f"{prefix}success"] = float(success.mean())
    if family is not None:
        classes = [family.task_class(task) for task in episodes.tasks]
        names = sorted({c for c in classes if c is not None})
        if len(names) >= 2:
            for name in names:
                rows = [i for i, c in enumerate(classes) if c == name]
                # the full key: a key with a slash is not put under train/ by the logger
                out[f"train/{prefix}success/{name}"] = float(success[rows].mean())
    return out


class MetaAgent(ABC):
    """The base class of every agent: :class:`~metarl.contract.MetaLearner`'s shared parts.

    A subclass sets ``name`` and ``Config`` and implements the paper's algorithm in
    ``train_iteration`` and its meta-test in ``meta_test`` (and ``adaptation_session``, for
    Meta-World's evaluator), plus its checkpoint state.
    """

    name: str = "agent"
    #: What one meta-test round is. ``False``: one adaptation step consuming all of the round's
    #: episodes (MAML, Reptile). ``True``: one more episode of each of the round's independent,
    #: parallel trials (RL²), so the experience behind a scored episode is one trial's.
    rounds_are_trial_episodes: bool = False
    #: One line for ``metarl train --help`` (each agent sets its own).
    summary: str = ""
    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that sets its own ``name`` is registered as the agent of that name."""
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            from metarl.agents import register

            register(cls)

    def __init__(self, config: Any, family: str | TaskFamily, *, seed: int = 0,
                 device: torch.device | str = "cpu") -> None:
        """Seeds torch before subclasses build networks, so a seed fixes the initial weights."""
        torch.manual_seed(seed)
        self.config = config
        self.family = make_family(family) if isinstance(family, str) else family
        self.family_spec = self.family.full_name
        self.device = torch.device(device)
        self.rng = np.random.default_rng(seed)
        sampling: SamplingConfig = config.sampling
        self.sampler = make_sampler(self.family_spec, sampling.backend, sampling.workers, sampling.ray_address,
                                    timeout=sampling.step_timeout, env_threads=sampling.env_threads,
                                    max_envs=sampling.max_envs, device=self.device)

    def warm_start(self, source: str, load: Callable[[dict[str, Tensor]], Any], shape: str) -> None:
        """``init_from``: load another run's network (its checkpoint's ``agent.net``) with ``load``.

        Every way this can go wrong is a configuration error that names the key and the source:
        no checkpoint there, a checkpoint without a network, or a network of another shape
        (``shape`` describes this run's, e.g. its family and layer sizes).
        """
        try:
            state = load_checkpoint(source).state.get("agent", {}).get("net")
        except CheckpointError as err:
            raise ConfigError(f"init_from={source!r}: {err}") from err
        if state is None:
            raise ConfigError(f"init_from={source!r}: not a {self.name} checkpoint (no network in it)")
        try:
            load({k: v.to(self.device) for k, v in state.items()})
        except RuntimeError as err:
            detail = " ".join(line.strip() for line in str(err).splitlines()[:2])
            raise ConfigError(f"init_from={source!r}: its network does not fit this run's ({shape}): {detail}") from err

    def periodic_eval(self, it: int, config: EvalConfig) -> dict[str, float]:
        """A small meta-test on held-out tasks every ``config.every`` iterations.

        Uses the same test tasks and seeds each time (drawn from fixed integers,
        never from the training generator), so the logged curve moves only with
        the policy and turning evaluation on does not change training.
        """
        if config.every <= 0 or (it + 1) % config.every:
            return {}
        if config.protocol == "metaworld":
            from metarl.evaluation.metaworld_eval import MetaWorldProtocol, evaluate_metaworld

            result = evaluate_metaworld(self, MetaWorldProtocol(
                meta_batch_size=config.mw_meta_batch_size, goals_per_class=config.mw_goals_per_class,
                adaptation_episodes=config.mw_adaptation_episodes, evaluation_episodes=config.mw_evaluation_episodes,
                max_episode_steps=config.mw_max_episode_steps, restart_from_adapted=not config.mw_carry_memory))
            out: dict[str, float] = {"eval/metaworld/success": result["mean_success"],
                                     "eval/metaworld/return": result["mean_return"]}
            out.update({f"eval/metaworld/success/{name}": rate for name, rate in result["success_per_class"].items()})
            return out
        tasks = self.family.sample(config.tasks, rng=10_007, split="test")
        rounds = self.meta_test(tasks, config.rounds, config.episodes_per_round, seed=20_011)
        out = {}
        for k, episodes in enumerate(rounds):
            out.update({adapt_key(k, metric): value for metric, value in episode_stats(episodes).items()})
        return out

    @abstractmethod
    def adaptation_session(self, n_tasks: int, seed: int = 0) -> AdaptationSession:
        """A meta-test of ``n_tasks`` tasks whose episodes come from elsewhere (see :class:`AdaptationSession`)."""

    def next_seed(self) -> int:
        """Seeds for rollouts come from the agent's generator, so a resumed run replays them."""
        return int(self.rng.integers(2**31 - 1))

    def close(self) -> None:
        self.sampler.close()

    def __enter__(self) -> MetaAgent:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @abstractmethod
    def train_iteration(self, it: int) -> Mapping[str, float]: ...

    @abstractmethod
    def state_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def meta_test(self, tasks: Sequence[Task], rounds: int, episodes_per_round: int, seed: int) -> list[Episodes]:
        """Episodes of rounds ``0..rounds`` on ``tasks``: round 0 before any adaptation.

        Round ``k`` is scored with the policy after ``k`` adaptations, each on the episodes of
        the round before, through the agent's own :meth:`adaptation_session`, so this meta-test
        and Meta-World's evaluator adapt by the same code. Seeds derive from ``seed`` only
        (never the training generator), so evaluating does not change training. Agents whose
        rounds are not adaptation steps (RL²: episodes of one trial) override it.
        """
        session = self.adaptation_session(len(tasks), seed)
        out: list[Episodes] = []
        for k in range(rounds + 1):
            episodes = self.sampler.sample(tasks, session.actor, episodes_per_round, seed=seed + k)
            out.append(episodes)
            if k < rounds:
                session.adapt(episodes)
        return out


def _conforms(agent: MetaAgent) -> MetaLearner:
    """Never called: makes the type checker prove that every MetaAgent fulfils the contract."""
    return agent
