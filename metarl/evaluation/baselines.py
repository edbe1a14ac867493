"""Baselines that need no meta-learning, scored on the same test tasks and step budget as the agents.

An adaptation curve only means something next to what you would get without
meta-learning: acting at random (the floor), and learning each test task from
scratch with a standard RL algorithm given the same number of environment
steps (what meta-learning must beat to be worth it). Both produce
:class:`~metarl.evaluation.curves.CurveRow` rows, so they are plotted and
aggregated exactly like agents. ``pretrained-finetune`` needs an agent's own
adaptation step and is built by the evaluation protocol, not here.

Choices that affect comparability (also in ``docs/curves_schema.md``):

* Episodes are capped at ``family.horizon`` and scored by
  :func:`metarl.evaluation.rollout.run_episode` (undiscounted return; success
  if any step reports it).
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
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.envs import Task, TaskFamily
from metarl.evaluation.curves import CurveRow
from metarl.evaluation.rollout import BatchPolicy, Policy, batched, episode_seeds, run_episodes

__all__ = ["policy_baseline", "ppo_rollout_size", "ppo_scratch_baseline", "random_baseline"]

PolicyFactory = Callable[[gym.Env, int], Policy]
"""``(env, seed) -> policy`` for one task; the seed makes stochastic policies reproducible."""

DEFAULT_PPO_KWARGS: dict[str, Any] = {
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "policy_kwargs": {"net_arch": [64, 64]},
}


def _row_base(family: TaskFamily, task: Task, method: str, run: str | None, seed: int) -> dict[str, Any]:
    return {"method": method, "run": run or f"{method}-seed{seed}", "family": family.full_name, "split": task.split,
            "seed": int(seed)}


def policy_baseline(
    family: TaskFamily,
    tasks: Sequence[Task],
    rounds: int,
    episodes_per_round: int,
    seed: int,
    make_policy: PolicyFactory,
    method: str,
    run: str | None = None,
    parallel_trials: bool = False,
) -> list[CurveRow]:
    """Score a fixed (non-learning) policy on each task for rounds ``0..rounds``.

    Nothing is learned between rounds, so the curve is flat up to noise; it
    still has one point per round, with ``env_steps`` counting the steps of the
    earlier rounds' episodes (the experience it had and ignored), so it spans
    the same x-range as an agent that adapts on its episodes. ``parallel_trials``
    counts as :func:`~metarl.evaluation.protocol.rows_from_rounds` does for RL²:
    a round's episodes are separate trials, so one trial's steps (their mean).
    """
    _check_counts(rounds=rounds, episodes_per_round=episodes_per_round)
    rows = []
    for t, task in enumerate(tasks):
        env = family.make_env(task)
        try:
            policy = batched(make_policy(env, episode_seeds(seed, t, n=1)[0]))
            steps = 0
            for k in range(rounds + 1):
                results = run_episodes(env, policy, family.horizon, episode_seeds(seed, t, k, n=episodes_per_round))
                rows.append(CurveRow.from_episodes(
                    **_row_base(family, task, method, run, seed), task=t, round=k, env_steps=steps,
                    returns=[r.ret for r in results], successes=[r.success for r in results]))
                round_steps = sum(r.steps for r in results)
                steps += round(round_steps / len(results)) if parallel_trials else round_steps
        finally:
            env.close()
    return rows


def _uniform_policy(env: gym.Env, seed: int) -> Policy:
    space = env.action_space
    space.seed(seed)
    return lambda obs: space.sample()


def random_baseline(
    family: TaskFamily, tasks: Sequence[Task], rounds: int, episodes_per_round: int, seed: int, run: str | None = None,
    parallel_trials: bool = False,
) -> list[CurveRow]:
    """``random``: uniform random actions; the floor every method must clear."""
    return policy_baseline(family, tasks, rounds, episodes_per_round, seed, _uniform_policy, "random", run,
                           parallel_trials=parallel_trials)


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


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads, restoring the caller's setting afterwards.

    A 64x64 MLP gains nothing from intra-op parallelism, and on shared cores the
    threads' spin-waiting made PPO 4x slower here (9 s vs 36 s per 2000 steps).
    """
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    does not divide the increments. Scoring runs on separate envs (up to
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
    rows = []
    bar = tqdm(total=len(tasks) * budgets[-1], desc="ppo-scratch", unit="step", disable=not progress, leave=False)
    with _torch_threads(torch_threads), contextlib.closing(bar):
        for t, task in enumerate(tasks):
            train_env = Monitor(_ppo_env(family, task))
            eval_envs = [_ppo_env(family, task) for _ in range(min(episodes_per_round, max_eval_envs))]
            try:
                model = PPO("MlpPolicy", train_env, seed=episode_seeds(seed, t, n=1)[0], verbose=0, **kwargs)
                policy: BatchPolicy = lambda obs: model.predict(obs, deterministic=deterministic)[0]  # noqa: B023
                for k, budget in enumerate(budgets):
                    if budget > model.num_timesteps:
                        done = model.num_timesteps
                        model.learn(total_timesteps=budget - done, reset_num_timesteps=False)
                        bar.update(model.num_timesteps - done)
                    results = run_episodes(eval_envs, policy, family.horizon, episode_seeds(seed, t, k, n=episodes_per_round))
                    rows.append(CurveRow.from_episodes(
                        **_row_base(family, task, "ppo-scratch", run, seed), task=t, round=k,
                        env_steps=int(model.num_timesteps), returns=[r.ret for r in results],
                        successes=[r.success for r in results]))
            finally:
                for env in (train_env, *eval_envs):
                    env.close()
    return rows
