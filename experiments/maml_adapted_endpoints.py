"""Where MAML-TRPO's adapted policy ends up on point-nav, by goal distance (issue 17's diagnosis).

For goals at a few distances from the start, in 16 directions each, one inner step is taken on
20 pre-update episodes (as at meta-test), then the adapted policy's mean is rolled out once. It
prints, per distance, the deterministic return, the final and the closest distance to the goal,
and the final position along the goal's direction ("radial"): a radial position beyond the goal
distance is an overshoot, one short of it an undershoot.

    python experiments/maml_adapted_endpoints.py experiments/results/maml-reference/point-nav-lvc-seed1 --iteration 150
"""

from __future__ import annotations

import argparse

import numpy as np

from metarl.agents.base import PolicyActor
from metarl.api import load_agent
from metarl.envs import make_family
from metarl.envs.base import Task
from metarl.sampling import make_sampler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run")
    parser.add_argument("--iteration", type=int, default=150)
    parser.add_argument("--distances", type=float, nargs="+", default=[0.1, 0.2, 0.3, 0.45, 0.6])
    parser.add_argument("--directions", type=int, default=16)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    agent = load_agent(args.run, f"{args.run}/checkpoints/iter_{args.iteration:06d}")
    family = make_family("point-nav")
    base = family.sample(1, rng=0, split="test")[0]
    angles = np.linspace(0, 2 * np.pi, args.directions, endpoint=False)
    tasks = [Task(base.family, base.split, i, {**base.params, "goal": (d * np.cos(a), d * np.sin(a))})
             for d in args.distances for i, a in enumerate(angles)]
    sampler = make_sampler(family, backend="serial")
    session = agent.adaptation_session(len(tasks))
    session.adapt(sampler.sample(tasks, session.actor, 20, seed=args.seed))
    post = sampler.sample(tasks, PolicyActor(agent.policy, session.params, deterministic=True), 1, seed=args.seed + 1)
    print("| goal distance | return (mean actions) | final distance to goal | closest | final radial position |")
    print("|---:|---:|---:|---:|---:|")
    for j, d in enumerate(args.distances):
        final, closest, radial, returns = [], [], [], []
        for r in range(j * args.directions, (j + 1) * args.directions):
            goal = np.asarray(tasks[r].params["goal"])
            path = post.observations[r, 0, : int(post.lengths[r, 0])].numpy()
            final.append(np.linalg.norm(path[-1] - goal))
            closest.append(np.linalg.norm(path - goal, axis=1).min())
            radial.append(path[-1] @ goal / np.linalg.norm(goal))
            returns.append(float(post.returns[r, 0]))
        print(f"| {d:.2f} | {np.mean(returns):.2f} | {np.mean(final):.3f} | {np.mean(closest):.3f} | {np.mean(radial):.3f} |")


if __name__ == "__main__":
    main()
