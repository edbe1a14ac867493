"""How much of the tabular-MDP score needs planning? A myopic Bayesian rule against the references.

The rule: in the current state, take the action with the highest posterior-mean *immediate* reward
(prior N(1, 1), unit noise, so an untried action counts as 1.0); transitions are ignored. It is the
``greedy`` reference with a one-step plan. If it scores as well as full planning, what RL² has to
learn on these tasks is a per-(state, action) reward memory read out for the current state, not a
model of the dynamics; that is what the ``transition_inputs`` and ``torso`` options of RL² target.

    python experiments/diagnostics/tabular_myopic_greedy.py [--tasks 200] [--trials 2]

Scored on the test tasks and seed ``metarl evaluate`` uses (``family.sample(n, rng=0, split="test")``).
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

from metarl.envs import make_family
from metarl.envs.tabular import mdp_tables
from metarl.evaluation.references import GreedyMDPActor, score
from metarl.sampling import make_sampler
from metarl.sampling.episodes import trial_returns


class MyopicGreedy(GreedyMDPActor):
    """Certainty equivalence with a one-step horizon: best posterior-mean immediate reward in this state."""

    def q_values(self, state: dict[str, Any], start: np.ndarray) -> np.ndarray:
        rewards, _ = self.posterior_mean(state)
        return rewards[np.arange(state["state"].size), state["state"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--trials", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    family = make_family("tabular-mdp")
    tasks = family.sample(args.tasks, rng=0, split="test")
    e = family.trial_episodes
    with make_sampler(family, "serial") as sampler:
        episodes = sampler.sample(tasks, MyopicGreedy(family), args.trials * e, episodes_per_trial=e, seed=0)
    per_episode = episodes.returns.view(args.tasks, args.trials, e).mean((0, 1))
    totals, _ = score("tabular-mdp", n_tasks=args.tasks, trials=args.trials)
    # An agent told the MDP: the optimal finite-horizon plan, expected return from a uniform start state.
    transitions, rewards = (np.stack(t) for t in zip(*(mdp_tables(task.params["mdp_seed"], family.states,
                                                                  family.actions) for task in tasks), strict=True))
    oracle = MyopicGreedy(family).plan(rewards, transitions, family.horizon)[:, 0].max(axis=2).mean(axis=1) * e
    print(f"mean total reward per trial on {args.tasks} test tasks x {args.trials} trials (n={e})")
    for name, value in {**totals, "myopic greedy": float(trial_returns(episodes).mean()),
                        "oracle (MDP known, expected)": float(np.mean(oracle))}.items():
        print(f"  {name:30s} {value:7.2f}")
    print("myopic greedy per episode:", " ".join(f"{x:.1f}" for x in per_episode.tolist()))


if __name__ == "__main__":
    main()
