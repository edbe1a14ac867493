"""Which part of PEARL's meta-test loses return on point-nav: the context or the scored episode?

A trained PEARL run's training posterior episodes (context from the encoder buffer, sampled
actions) score well above its meta-test after one context episode (context from one episode of
mean actions). This script meta-tests one checkpoint on the same held-out tasks and seeds four
ways, to separate the two suspects:

- ``mean``: every episode acts with the actor's mean (metarl's default, the authors' meta-test);
- ``sampled``: every episode samples its actions;
- ``sampled-context``: the context episodes sample their actions, and each round is also scored
  with the mean action under the same ``z``, so the context differs from ``mean`` and the scorer
  does not;
- ``posterior-mean``: as ``sampled-context``, with the scored episode acting on the posterior's
  mean instead of a draw from it.

Paired over tasks, so differences between modes are differences of the meta-test, not of tasks.

    python experiments/diagnostics/pearl_exploration.py RUN_DIR [--tasks 40] [--rounds 3] [--split train]
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from metarl.api import load_agent
from metarl.sampling import Episodes


def meta_test(agent, tasks, rounds: int, seed: int, context_sampled: bool, score_sampled: bool,
              score_posterior_mean: bool) -> np.ndarray:
    """Per-task return of the scored episode of each round ``0..rounds``: array [rounds + 1, tasks]."""
    base = agent.config
    session = agent.adaptation_session(len(tasks), seed)
    scores = []
    for k in range(rounds + 1):
        z = session.z
        if score_posterior_mean:
            session.z = session.posterior_moments()[0]
        agent.config = dataclasses.replace(base, eval_deterministic=not score_sampled)
        scored = agent.sampler.sample(tasks, session.actor, 1, seed=seed + k)
        session.z = z
        scores.append(per_task_return(scored, len(tasks)))
        if k == rounds:
            break
        if context_sampled != score_sampled or score_posterior_mean:
            agent.config = dataclasses.replace(base, eval_deterministic=not context_sampled)
            context = agent.sampler.sample(tasks, session.actor, 1, seed=seed + 1000 + k)
        else:
            context = scored
        session.adapt(context)
    agent.config = base
    return np.stack(scores)


def two_prior_contexts(agent, tasks, seed: int) -> np.ndarray:
    """Score after a context of two prior-z episodes (each its own z, sampled actions), the context
    PEARL's training collects for its posterior episodes (``prior_episodes: 2``); array [tasks]."""
    base = agent.config
    agent.config = dataclasses.replace(base, eval_deterministic=False)
    session = agent.adaptation_session(len(tasks), seed)
    first = agent.sampler.sample(tasks, session.actor, 1, seed=seed + 2000)
    session.z = agent.adaptation_session(len(tasks), seed + 1).z  # a second, independent prior draw
    second = agent.sampler.sample(tasks, session.actor, 1, seed=seed + 2001)
    session.adapt(first)
    session.adapt(second)
    agent.config = dataclasses.replace(base, eval_deterministic=True)
    scored = agent.sampler.sample(tasks, session.actor, 1, seed=seed + 2002)
    agent.config = base
    return per_task_return(scored, len(tasks))


def per_task_return(episodes: Episodes, n_tasks: int) -> np.ndarray:
    return episodes.returns.to("cpu").double().numpy().reshape(n_tasks, -1).mean(axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=["test", "train"], default="test",
                        help="train: the run's own training tasks (the first --tasks of them)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent = load_agent(args.run_dir)
    if args.split == "train":
        tasks = agent.train_task_list[: args.tasks]
    else:
        tasks = agent.family.sample(args.tasks, rng=args.seed, split="test")
    modes = {
        "mean": dict(context_sampled=False, score_sampled=False, score_posterior_mean=False),
        "sampled": dict(context_sampled=True, score_sampled=True, score_posterior_mean=False),
        "sampled-context": dict(context_sampled=True, score_sampled=False, score_posterior_mean=False),
        "posterior-mean": dict(context_sampled=True, score_sampled=False, score_posterior_mean=True),
    }
    results = {name: meta_test(agent, tasks, args.rounds, 20_011, **kw) for name, kw in modes.items()}
    print(f"{args.run_dir}: {len(tasks)} {args.split} tasks, return of the scored episode per round (mean +- s.e.)")
    print("mode".ljust(18) + "".join(f"round {k}".rjust(18) for k in range(args.rounds + 1)))
    for name, r in results.items():
        cells = [f"{r[k].mean():8.2f} +- {r[k].std(ddof=1) / np.sqrt(r.shape[1]):5.2f}" for k in range(len(r))]
        print(name.ljust(18) + "".join(c.rjust(18) for c in cells))
    two = two_prior_contexts(agent, tasks, 20_011)
    print(f"after two prior-z context episodes (the training posterior's context), mean action: "
          f"{two.mean():.2f} +- {two.std(ddof=1) / np.sqrt(len(two)):.2f}")
    ref = results["mean"]
    print("paired difference to 'mean' at round 1:")
    for name, r in results.items():
        if name != "mean":
            d = r[1] - ref[1]
            print(f"  {name:16s} {d.mean():+7.2f} +- {d.std(ddof=1) / np.sqrt(len(d)):.2f}")


if __name__ == "__main__":
    main()
