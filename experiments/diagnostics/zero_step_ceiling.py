"""Diagnostic: how much room is there above the joint policy at 0 adaptation steps on point-nav?

Before adapting, a policy has seen no reward from the test task, so its trajectory cannot depend
on the goal. On point-nav (start at the origin, goal uniform in [-0.5, 0.5]^2, reward minus the
distance, 100 steps) the expected return of any such trajectory is at most
``-100 * E|g|`` with ``E|g| = (sqrt 2 + asinh 1) / 6 = 0.3826``: every step's expected distance is
smallest at the goals' geometric median, which is the origin. The bound ignores one way past it:
passing within 0.01 of the goal by chance, which ends the episode early.

This script scores, on the same held-out tasks and seeds as ``metarl evaluate --tasks 10
--seeds 6``, each run's round-0 return with its own exploration noise (what the adaptation curve
shows) and with its mean action, next to the goal-blind ceiling on those very tasks.
It measures; it trains nothing.

    python experiments/diagnostics/zero_step_ceiling.py RUN [RUN ...] [--seeds 6]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from metarl.api import load_agent
from metarl.evaluation.report import paired


def expected_distance(goal_range: float) -> float:
    """Mean distance from the centre of the square [-goal_range, goal_range]^2 to a uniform point in it."""
    return goal_range * (math.sqrt(2) + math.asinh(1)) / 3


def round0(agent, tasks_per_seed: int, seeds: int, mean_action: bool) -> np.ndarray:
    """Round-0 mean episode return per task, tasks drawn as `metarl evaluate` draws them."""
    log_std = agent.net["policy"].head.log_std
    own = log_std.detach().clone()
    if mean_action:
        with torch.no_grad():
            log_std.fill_(-30.0)  # std e^-30: the sampled action is the mean action
    try:
        rows = []
        for seed in range(seeds):
            tasks = agent.family.sample(tasks_per_seed, rng=seed, split="test")
            (episodes,) = agent.meta_test(tasks, 0, 10, seed)
            rows.append(episodes.returns.mean(dim=1).numpy())
        return np.concatenate(rows)
    finally:
        with torch.no_grad():
            log_std.copy_(own)


def goals(agent, tasks_per_seed: int, seeds: int) -> np.ndarray:
    return np.array([t.params["goal"] for s in range(seeds)
                     for t in agent.family.sample(tasks_per_seed, rng=s, split="test")])


def geometric_median(points: np.ndarray, iters: int = 500) -> np.ndarray:
    """Weiszfeld's iteration: the point with the least mean distance to ``points``."""
    p = points.mean(axis=0)
    for _ in range(iters):
        w = 1.0 / np.maximum(np.linalg.norm(points - p, axis=1), 1e-12)
        p = (points * w[:, None]).sum(axis=0) / w.sum()
    return p


def ceilings(g: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-task returns of two goal-blind reference trajectories.

    Staying at the origin is optimal over the goal distribution. Sitting at the geometric median
    of *these* goals from the first step (teleporting there, so it bounds every real trajectory) is
    the most any goal-blind policy can score on this sample, short of ending an episode by luck.
    """
    median = geometric_median(g)
    return -horizon * np.linalg.norm(g, axis=1), -horizon * np.linalg.norm(g - median, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--tasks", type=int, default=10, help="tasks per evaluation seed")
    parser.add_argument("--seeds", type=int, default=6, help="evaluation seeds 0 .. seeds-1")
    args = parser.parse_args()
    torch.set_num_threads(1)
    agents = {run.name: load_agent(run) for run in args.runs}
    first = next(iter(agents.values()))
    if first.family.name != "point-nav":
        raise SystemExit(f"the ceiling is derived for point-nav, got a {first.family.name!r} run")
    family = first.family
    origin, ceiling = ceilings(goals(first, args.tasks, args.seeds), family.horizon)
    print(f"point-nav, round 0 (no adaptation), {len(ceiling)} held-out tasks (evaluation seeds 0-{args.seeds - 1})")
    print(f"ceiling over the goal distribution: {-family.horizon * expected_distance(family.goal_range):.2f}; on these tasks: "
          f"staying at the origin {origin.mean():.2f}, the ceiling (their geometric median) {ceiling.mean():.2f}")
    print("each run's round-0 return, and its paired difference to staying at the origin (the goal-blind")
    print("policy that is best over the goal distribution)")
    print(f"{'run':45s} {'action std':>11s} {'own noise':>9s} {'- origin':>16s} "
          f"{'mean action':>11s} {'- origin':>16s}")
    for name, agent in agents.items():
        std = agent.net["policy"].head.log_std.detach().exp()
        cells = []
        for mean_action in (False, True):
            r = round0(agent, args.tasks, args.seeds, mean_action)
            gap = paired(r - origin)
            cells.append(f"{r.mean():9.2f} {gap.mean:+8.2f} ± {gap.stderr:4.2f}")
        print(f"{name:45s} {std.mean().item():11.3f} {cells[0]:>26s} {cells[1]:>28s}")
        agent.close()


if __name__ == "__main__":
    main()
