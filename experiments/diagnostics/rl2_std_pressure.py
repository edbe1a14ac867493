"""Diagnostic: where does the policy gradient of an RL² checkpoint push its action std, and why?

The RL² ML10 run's entropy rose for 14M steps with and without the entropy bonus and at half the
step size (experiments/results/ml10_notes.md), so the policy-gradient term itself must widen the std.
For a Gaussian the first-epoch PPO gradient on one log-std is ``A * (z**2 - 1)`` per sample, with
``z = (a - mean) / std``: positive means "widen". This script samples one training meta-batch
exactly as a training iteration does (same trials, same advantages: ``agent.advantages``), and splits
that pressure by action dimension, by whether the sample left Meta-World's [-1, 1] action box (where
the env clips it, so every sample beyond the bound acts the same), and by episode of the trial. It
also reports how saturated the tanh-bounded mean is (pre-tanh ``|mean| > 2`` means tanh' < 0.07, so
the mean can barely move further toward the bound), and success per training class.

It measures; it trains nothing and writes nothing.

    python experiments/diagnostics/rl2_std_pressure.py RUN_DIR [--checkpoint DIR] [--tasks 20] [--seed 0]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from metarl.agents.rl2_actor import pack_trials
from metarl.api import load_agent
from metarl.evaluation.report import paired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--tasks", type=int, default=20, help="training tasks, one trial each (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent = load_agent(args.run_dir, args.checkpoint)
    head = agent.net.policy.head
    tasks = agent.family.sample(args.tasks, np.random.default_rng(args.seed), split="train")
    episodes = agent.collect(tasks, 1, agent.trial_episodes, seed=args.seed)
    with torch.no_grad():
        trials = pack_trials(agent.net, episodes, agent.device)
        adv, _, _ = agent.advantages(trials)
        features, _ = agent.net.features(trials.inputs)
        pre_mean, pre_log_std = head.mean(features), head.log_std_layer(features)
        dist = agent.net.heads(features)[0].base_dist
        mean, dist_std = dist.loc, dist.scale
    real = trials.mask > 0
    a, z = trials.actions, (trials.actions - mean) / dist_std
    push = adv.unsqueeze(-1) * (z ** 2 - 1)  # d(surrogate)/d(log std) per sample and dim, at ratio 1
    outside = a.abs() > 1
    n = real.sum()
    horizon = agent.family.horizon
    episode = (torch.arange(trials.mask.shape[1]) // horizon).expand_as(trials.mask)
    dims = a.shape[-1]

    def share(sel: torch.Tensor) -> list[str]:
        """Each dim's pressure from the samples in ``sel``, as a part of the mean over each trial's real
        samples; mean over trials ± its standard error (trials are the independent units)."""
        cells = []
        for d in range(dims):
            per_trial = (push[..., d] * (sel[..., d] & real)).sum(dim=1) / real.sum(dim=1)
            stats = paired(per_trial.numpy())
            cells.append(f"{stats.mean:+7.2f}±{stats.stderr:4.2f}")
        return cells

    def fmt(xs) -> str:
        return " ".join(x if isinstance(x, str) else f"{x:+12.3f}" for x in xs)

    print(f"{int(n)} real steps, {len(tasks)} trials of {agent.trial_episodes} episodes; dims x y z gripper")
    print(f"std (as sampled)           {fmt([float(dist_std[..., d][real].mean()) for d in range(dims)])}")
    print(f"pre-tanh log-std           {fmt([float(pre_log_std[..., d][real].mean()) for d in range(dims)])}")
    print(f"share |pre-tanh mean| > 2  {fmt([float((pre_mean[..., d].abs() > 2)[real].float().mean()) for d in range(dims)])}")
    print(f"share |mean| > 0.9         {fmt([float((mean[..., d].abs() > 0.9)[real].float().mean()) for d in range(dims)])}")
    print(f"share of samples |a| > 1   {fmt([float(outside[..., d][real].float().mean()) for d in range(dims)])}")
    print("log-std pressure A*(z^2-1), mean over trials ± s.e. (positive widens):")
    everything = torch.ones_like(outside)
    print(f"  all samples              {fmt(share(everything))}")
    print(f"  from samples inside box  {fmt(share(~outside))}")
    print(f"  from samples outside box {fmt(share(outside))}")
    for lo, hi in ((0, 1), (1, 3), (3, agent.trial_episodes)):
        sel = ((episode >= lo) & (episode < hi)).unsqueeze(-1).expand_as(outside)
        print(f"  from episodes {lo + 1}-{hi} of trial {fmt(share(sel))}")
    print(f"advantage: mean {float(adv[real].mean()):+.3f}, std {float(adv[real].std()):.3f}")
    success = episodes.success_values()  # [T, E] any-step success per episode
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, task in enumerate(tasks):
        by_class[agent.family.task_class(task) or task.family].append(i)
    e = agent.trial_episodes
    print("class                       trials  success(all)  first ep  last ep  std(mean over dims)")
    for name in sorted(by_class):
        rows = by_class[name]
        s = success[rows].float()
        std_c = float(dist_std[rows][real[rows]].mean())
        print(f"{name:28s} {len(rows):5d}  {float(s.mean()):11.2f}  {float(s[:, 0::e].mean()):8.2f}"
              f"  {float(s[:, e - 1::e].mean()):7.2f}  {std_c:8.2f}")
    agent.close()


if __name__ == "__main__":
    main()
