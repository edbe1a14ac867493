"""The meta-test protocol: adaptation curves of a trained agent on held-out tasks.

For each evaluation seed, draw ``n_tasks`` tasks of ``split`` and ask the agent
for ``rounds + 1`` rounds of episodes (round 0 before any adaptation; a round is
one gradient step on fresh episodes for gradient-based agents, one more episode
of the trial for RL²). Each (task, round) becomes one :class:`CurveRow`.

For Meta-World families this is Meta-World's own protocol: an episode succeeds
if any step succeeds, and the headline number is the success rate after
adaptation; the JSON's ``meta`` says so.

Baselines run on the *same* tasks with the *same* environment-step budget
(the agent's cumulative ``env_steps`` at each round).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from metarl.contract import MetaLearner
from metarl.envs.base import EnvSpecError, Task, check_split
from metarl.evaluation.curves import CurveRow, curve_meta, write_curves
from metarl.sampling import Episodes

BASELINES = ("random", "ppo-scratch", "pretrained-finetune")
#: What the curves of an agent whose rounds are trial episodes (RL²) say about its headline number.
PER_TRIAL_DEFINITION = (
    "return per trial of {episodes} episodes, the number RL² results report: for one (method, seed, task), the sum "
    "of return_mean over rounds 0..{last} (round k = episode k of each of the parallel trials); see "
    "metarl.evaluation.report.trial_totals"
)


def round_rows(method: str, run: str, family: str, split: str, seed: int, round: int, episodes: Episodes,
               env_steps: Sequence[int], task_ids: Sequence[int] | None = None) -> list[CurveRow]:
    """One row per task row of ``episodes``, scored after ``round`` rounds and ``env_steps[i]`` steps.

    Every curve row of an agent or a baseline is made here, from sampler :class:`Episodes`, so
    return and success are read the same way for all (success NaN where the envs report none).
    ``task_ids``: the task index of each row (default ``0..n-1``; a baseline scoring one task at a
    time passes its index).
    """
    returns = episodes.returns.double().cpu().numpy()  # Episodes of the tensor path may live on a GPU
    success = episodes.success_values().cpu().numpy()
    ids = range(episodes.n_tasks) if task_ids is None else task_ids
    return [CurveRow.from_episodes(method=method, run=run, family=family, split=split, seed=seed, task=int(t),
                                   round=round, env_steps=int(env_steps[i]), returns=returns[i], successes=success[i])
            for i, t in enumerate(ids)]


def rows_from_rounds(method: str, run: str, family: str, split: str, seed: int, rounds: Sequence[Episodes],
                     parallel_trials: bool = False) -> list[CurveRow]:
    """One row per (task, round); ``env_steps`` counts the steps of earlier rounds on that task.

    ``parallel_trials``: a round's episodes belong to separate, independent trials (RL²), so the
    experience behind one scored episode is *one* trial's earlier episodes: the mean over the round's
    episodes, not their sum (which a gradient step, consuming all of them, does use).
    """
    rows: list[CurveRow] = []
    spent = np.zeros(rounds[0].n_tasks, dtype=np.int64)
    for k, episodes in enumerate(rounds):
        rows += round_rows(method, run, family, split, seed, k, episodes, spent)
        lengths = episodes.lengths.double()
        spent = spent + (lengths.mean(dim=1) if parallel_trials else lengths.sum(dim=1)).round().long().cpu().numpy()
    return rows


def agent_rows(agent: MetaLearner, tasks: Sequence[Task], *, method: str, run: str, split: str, seed: int, rounds: int,
               episodes_per_round: int) -> list[CurveRow]:
    episodes = agent.meta_test(tasks, rounds, episodes_per_round, seed)
    return rows_from_rounds(method, run, agent.family.full_name, split, seed, episodes,
                            parallel_trials=agent.rounds_are_trial_episodes)


def budgets_of(rows: Sequence[CurveRow]) -> list[int]:
    """The agent's mean env steps per round, as the step budgets PPO-from-scratch gets.

    Episodes that end early make the agent's budgets ragged (1988, 3944, ...),
    and PPO can only stop at multiples of its rollout size. So budgets are
    rounded *down* to a multiple of a round quantum (1, 2 or 5 times a power of
    ten) no larger than a quarter of the smallest increment: 200 for ~1,000- or
    ~2,000-step rounds; budgets of fixed-length episodes (2,000, 4,000) are
    kept. The baseline never gets more experience than the agent, and its
    rollouts stay a sensible size.
    """
    by_round: dict[int, list[int]] = {}
    for r in rows:
        by_round.setdefault(r.round, []).append(r.env_steps)
    raw = [int(round(float(np.mean(by_round[k])))) for k in sorted(by_round)]
    increments = [b - a for a, b in zip(raw, raw[1:]) if b > a]
    if not increments or math.gcd(*increments) >= 16:  # fixed-length episodes: usable as they are
        return raw
    quarter = max(1.0, min(increments) / 4)
    power = 10 ** math.floor(math.log10(quarter))
    quantum = int(max(m * power for m in (1, 2, 5) if m * power <= quarter))
    return [int(b // quantum) * quantum for b in raw]  # increments >= 4 quanta, so still increasing


def evaluate_agent(
    agent: MetaLearner,
    *,
    run: str,
    out_dir: str | Path,
    split: str = "test",
    n_tasks: int = 10,
    rounds: int = 3,
    episodes_per_round: int = 10,
    seeds: Sequence[int] = (0,),
    baselines: Sequence[str] = (),
    pretrained: MetaLearner | None = None,
    progress: bool = True,
) -> tuple[Path, Path, list[CurveRow]]:
    """Curves of ``agent`` (and baselines) written to ``out_dir/curves.{csv,json}``."""
    check_split(split)
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise EnvSpecError(f"unknown baseline(s) {unknown}; allowed: {', '.join(BASELINES)}")
    if "pretrained-finetune" in baselines and pretrained is None:
        raise EnvSpecError("baseline 'pretrained-finetune' needs --pretrained RUN_DIR (a multitask-trpo or joint-ppo run)")
    from metarl.evaluation.baselines import ppo_scratch_baseline, random_baseline

    family = agent.family
    rows: list[CurveRow] = []
    for seed in seeds:
        tasks = family.sample(n_tasks, rng=seed, split=split)
        mine = agent_rows(agent, tasks, method=agent.name, run=run, split=split, seed=seed, rounds=rounds,
                          episodes_per_round=episodes_per_round)
        rows += mine
        if "random" in baselines:
            rows += random_baseline(family, tasks, rounds, episodes_per_round, seed, run=run,
                                    parallel_trials=agent.rounds_are_trial_episodes, sampler=agent.sampler)
        if "pretrained-finetune" in baselines:
            rows += agent_rows(pretrained, tasks, method="pretrained-finetune", run=run, split=split, seed=seed,
                               rounds=rounds, episodes_per_round=episodes_per_round)
        if "ppo-scratch" in baselines:
            rows += ppo_scratch_baseline(family, tasks, budgets_of(mine), episodes_per_round, seed, run=run,
                                         progress=progress)
    trials = agent.rounds_are_trial_episodes
    extra = {"return_per_trial": PER_TRIAL_DEFINITION.format(episodes=rounds + 1, last=rounds)} if trials else {}
    meta = curve_meta(family.full_name, agent=agent.name, split=split, n_tasks=n_tasks, rounds=rounds,
                      episodes_per_round=episodes_per_round, seeds=list(seeds), baselines=list(baselines),
                      round_definition="one more episode of the trial" if trials
                      else "one inner gradient step on fresh episodes", **extra)
    csv_path, json_path = write_curves(rows, out_dir, meta)
    return csv_path, json_path, rows
