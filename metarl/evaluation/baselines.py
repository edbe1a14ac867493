"""Baselines that need no meta-learning, scored on the same test tasks and step budget as the agents.

An adaptation curve only means something next to what you would get without
meta-learning: acting at random (the floor), and learning each test task from
scratch with a standard RL algorithm given the same number of environment
steps (what meta-learning must beat to be worth it). Both produce
:class:`~metarl.evaluation.curves.CurveRow` rows, so they are plotted and
aggregated exactly like agents. ``pretrained-finetune`` needs an agent's own
adaptation step and is built by the evaluation protocol, not here.

Choices that affect comparability (also in ``docs/curves_schema.md``):

* Episodes are collected by the agents' own sampler (:mod:`metarl.sampling`)
  with the baseline as an actor, capped at ``family.horizon``, and turned into
  rows by :func:`metarl.evaluation.protocol.round_rows`, as the agents' are:
  undiscounted return; success if any step's ``info["success"]`` is truthy, NaN
  where the envs report no success.
* Fixed policies (``random``) are scored on round ``k`` with sampler seed
  ``seed + k``, the seeds gradient agents' ``meta_test`` uses, so on the same
  tasks they meet the same env resets (common random numbers).
* ``ppo-scratch`` is evaluated with the **stochastic** policy
  (``deterministic=False``) by default: meta-RL agents are scored by sampling
  from their stochastic policy (MAML's post-update episodes are sampled), and
  a deterministic mean action would give PPO an advantage the agents do not get.
* ``ppo-scratch``'s ``n_steps`` (rollout length per update) divides every
  budget increment, so training stops exactly on each budget and ``env_steps``
  equals the budget; see :func:`ppo_rollout_size`.
* Bounded continuous action spaces are rescaled to [-1, 1] for PPO (SB3's
  Gaussian policy starts with unit standard deviation; the task is unchanged).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.core.device import torch_threads as with_torch_threads
from metarl.envs import Task, TaskFamily
from metarl.evaluation.actors import FunctionActor, UniformActor
from metarl.evaluation.curves import CurveRow
from metarl.evaluation.protocol import round_rows, rows_from_rounds
from metarl.sampling import Sampler, make_sampler
from metarl.sampling.actor import Actor
from metarl.sampling.errors import DEFAULT_STEP_TIMEOUT

__all__ = ["policy_baseline", "ppo_rollout_size", "ppo_scratch_baseline", "random_baseline"]

DEFAULT_PPO_KWARGS: dict[str, Any] = {
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "policy_kwargs": {"net_arch": [64, 64]},
}


def policy_baseline(
    family: TaskFamily,
    tasks: Sequence[Task],
    rounds: int,
    episodes_per_round: int,
    seed: int,
    actor: Actor,
    method: str,
    run: str | None = None,
    parallel_trials: bool = False,
    sampler: Sampler | None = None,
) -> list[CurveRow]:
    """Score a fixed (non-learning) actor on each task for rounds ``0..rounds``.

    ``actor``: any sampler actor (:class:`~metarl.evaluation.actors.UniformActor`, or a
    scripted rule in a :class:`~metarl.evaluation.actors.FunctionActor`). Nothing is
    learned between rounds, so the curve is flat up to noise; it still has one point per
    round, with ``env_steps`` counting the steps of the earlier rounds' episodes (the
    experience it had and ignored), so it spans the same x-range as an agent that adapts on
    its episodes. ``parallel_trials`` counts as
    :func:`~metarl.evaluation.protocol.rows_from_rounds` does for RL²: a round's episodes
    are separate trials, so one trial's steps (their mean). It changes the counting only:
    the episodes are the same either way. ``sampler``: collect on this one (the agent's, which
    already holds envs for this batch shape on its backend); default: a serial one of its own.
    """
    _check_counts(rounds=rounds, episodes_per_round=episodes_per_round)
    own = sampler is None
    with make_sampler(family, "serial", timeout=DEFAULT_STEP_TIMEOUT) if own else contextlib.nullcontext(sampler) as collector:
        episodes = [collector.sample(tasks, actor, episodes_per_round, seed=seed + k) for k in range(rounds + 1)]
    return rows_from_rounds(method, run or f"{method}-seed{seed}", family.full_name, tasks[0].split, seed, episodes,
                            parallel_trials=parallel_trials)


def random_baseline(
    family: TaskFamily, tasks: Sequence[Task], rounds: int, episodes_per_round: int, seed: int, run: str | None = None,
    parallel_trials: bool = False, sampler: Sampler | None = None,
) -> list[CurveRow]:
    """``random``: uniform random actions; the floor every method must clear."""
    return policy_baseline(family, tasks, rounds, episodes_per_round, seed, UniformActor(family.action_space),
                           "random", run, parallel_trials=parallel_trials, sampler=sampler)


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        low = 0 if name == "rounds" else 1
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}={value!r} is invalid; it must be an integer >= {low}")


def _check_budgets(budgets: Sequence[int]) -> list[int]:
    b = [int(x) for x in budgets]
    if not b or b[0] != 0 or any(x < 0 for x in b) or any(y < x for x, y in zip(b, b[1:])):
        raise ValueError(f"budgets={list(budgets)!r} is invalid; it must start at 0 and never decrease (env steps)")
    return b


def ppo_rollout_size(budgets: Sequence[int], max_n_steps: int = 2048) -> int:
    """The largest ``n_steps`` <= ``max_n_steps`` that divides every budget increment.

    SB3 only stops between rollouts, so a rollout size that divides each
    increment makes training end exactly on every budget; the steps PPO used
    then equal the agent's. Raises if only 1 would fit (PPO needs >= 2 samples).
    """
    increments = [y - x for x, y in zip(budgets, budgets[1:]) if y > x]
    if not increments:
        return max(2, min(max_n_steps, 64))  # nothing will be trained; any valid size
    g = 0
    for inc in increments:
        g = math.gcd(g, inc)
    n = max(d for d in range(1, min(g, max_n_steps) + 1) if g % d == 0)
    if n < 2:
        raise ValueError(
            f"budget increments {increments} have no common divisor >= 2; pass ppo_kwargs={{'n_steps': ...}} "
            f"(training then overshoots each budget by less than n_steps, and env_steps reports the actual steps)"
        )
    return n


def _batch_size(n_steps: int, target: int = 64) -> int:
    """A minibatch size dividing the rollout, so no update sees a truncated minibatch."""
    divisors = [d for d in range(2, min(target, n_steps) + 1) if n_steps % d == 0]
    return max(divisors) if divisors else n_steps


def _ppo_env(family: TaskFamily, task: Task) -> gym.Env:
    """The task's env as PPO sees it: horizon-capped and, for bounded boxes, actions in [-1, 1]."""
    env: gym.Env = gym.wrappers.TimeLimit(family.make_env(task), max_episode_steps=family.horizon)
    space = env.action_space
    if isinstance(space, gym.spaces.Box) and np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high)):
        if not (np.allclose(space.low, -1.0) and np.allclose(space.high, 1.0)):
            unit = np.ones(space.shape, dtype=space.dtype)  # float32 bounds: no precision warning
            env = gym.wrappers.RescaleAction(env, -unit, unit)
    return env


def _task_actions(env: gym.Env) -> Callable[[np.ndarray], np.ndarray]:
    """What ``env``'s action wrappers do to an action (outermost first): PPO's actions as the task's env takes them.

    PPO is scored on the sampler's unwrapped envs, so its actions go through the very
    transforms (:class:`gymnasium.wrappers.RescaleAction`) it was trained behind.
    """
    wrappers: list[gym.ActionWrapper] = []
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.ActionWrapper):
            wrappers.append(env)
        env = env.env

    def apply(actions: np.ndarray) -> np.ndarray:
        for wrapper in wrappers:
            actions = wrapper.action(actions)
        return actions

    return apply


def _sb3_seed(seed: int, *key: int) -> int:
    """A seed private to ``(seed, *key)``: ``(seed, task)`` seeds PPO, ``(seed, task, round)`` a round's sampler.

    Independent streams per task and round keep ``ppo-scratch`` reproducible regardless of
    evaluation order. Its own rule (a ``SeedSequence``), not the sampler's reset-seed hash
    (:func:`metarl.sampling.sampler.episode_seeds`): the committed ``ppo-scratch`` curves were made with it.
    """
    ss = np.random.SeedSequence([int(seed), *(int(k) for k in key)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _slots(episodes: int, most: int) -> int:
    """Envs to score ``episodes`` episodes on: the largest divisor of ``episodes`` up to ``most``.

    A slot runs its share one after another (a "trial" of a stateless policy), so at most
    ``most`` envs exist however many episodes are scored.
    """
    return max(d for d in range(1, min(most, episodes) + 1) if episodes % d == 0)


def ppo_scratch_baseline(
    family: TaskFamily,
    tasks: Sequence[Task],
    budgets: Sequence[int],
    episodes_per_round: int,
    seed: int,
    ppo_kwargs: dict[str, Any] | None = None,
    progress: bool = True,
    deterministic: bool = False,
    run: str | None = None,
    max_eval_envs: int = 10,
    torch_threads: int | None = 1,
) -> list[CurveRow]:
    """``ppo-scratch``: a fresh SB3 PPO per task, scored after training on each budget.

    ``budgets[k]`` is the env-step budget of round ``k`` (``budgets[0] == 0``
    scores the untrained policy); pass the agent's ``env_steps`` per round to
    compare at equal experience. ``env_steps`` in the rows is PPO's actual step
    count, equal to the budget unless ``ppo_kwargs`` forces an ``n_steps`` that
    does not divide the increments. Scoring runs on the sampler's own envs (up to
    ``max_eval_envs`` in lockstep, one batched policy call per step) so that
    training episodes are never cut short by evaluation. ``torch_threads``
    (default 1, restored afterwards) keeps small-MLP PPO fast on shared cores.
    """
    from stable_baselines3 import PPO
    from stable_baselines3.common.monitor import Monitor
    from tqdm import tqdm

    budgets = _check_budgets(budgets)
    _check_counts(episodes_per_round=episodes_per_round)
    kwargs = {**DEFAULT_PPO_KWARGS, **(ppo_kwargs or {})}
    if "n_steps" not in kwargs:
        kwargs["n_steps"] = ppo_rollout_size(budgets)
    kwargs.setdefault("batch_size", _batch_size(kwargs["n_steps"]))
    kwargs.setdefault("device", "cpu")
    rows: list[CurveRow] = []
    per_slot = episodes_per_round // _slots(episodes_per_round, max_eval_envs)
    bar = tqdm(total=len(tasks) * budgets[-1], desc="ppo-scratch", unit="step", disable=not progress, leave=False)
    serial = make_sampler(family, "serial", timeout=DEFAULT_STEP_TIMEOUT)
    with with_torch_threads(torch_threads), contextlib.closing(bar), serial as sampler:
        for t, task in enumerate(tasks):
            train_env = Monitor(_ppo_env(family, task))
            try:
                model = PPO("MlpPolicy", train_env, seed=_sb3_seed(seed, t), verbose=0, **kwargs)
                to_task = _task_actions(train_env)
                actor = FunctionActor(lambda obs: to_task(model.predict(obs, deterministic=deterministic)[0]))  # noqa: B023
                for k, budget in enumerate(budgets):
                    if budget > model.num_timesteps:
                        done = model.num_timesteps
                        model.learn(total_timesteps=budget - done, reset_num_timesteps=False)
                        bar.update(model.num_timesteps - done)
                    episodes = sampler.sample([task], actor, episodes_per_round, episodes_per_trial=per_slot,
                                              seed=_sb3_seed(seed, t, k))
                    rows += round_rows("ppo-scratch", run or f"ppo-scratch-seed{seed}", family.full_name, task.split,
                                       seed, k, episodes, [int(model.num_timesteps)], task_ids=[t])
            finally:
                train_env.close()
    return rows
