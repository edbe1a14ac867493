"""Diagnostic: how much of Reptile-PPO's zero-shot deficit against the joint policy is its exploration noise?

Scores, on the same held-out tasks and seeds as ``metarl evaluate --tasks 10 --seeds 2``, the
zero-shot return (round 0) and the adapted returns of: the joint policy, the Reptile initialization,
and the Reptile initialization with its action log-std replaced by the joint policy's. This is a
measurement, not a method: the swapped policy is never trained or shipped.

    python experiments/diagnostics/reptile_std_swap.py REPTILE_RUN JOINT_RUN [--rounds 3]
"""

from __future__ import annotations

import argparse

import torch

from metarl.api import load_agent
from metarl.evaluation.report import paired


def returns_per_round(agent, rounds: int, tasks_per_seed: int = 10, seeds: int = 2) -> torch.Tensor:
    """[seeds * tasks, rounds + 1] mean episode return, tasks drawn as `metarl evaluate` draws them."""
    rows = []
    for seed in range(seeds):
        tasks = agent.family.sample(tasks_per_seed, rng=seed, split="test")
        episodes = agent.meta_test(tasks, rounds, 10, seed)
        rows.append(torch.stack([e.returns.mean(dim=1) for e in episodes], dim=1))
    return torch.cat(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reptile_run")
    parser.add_argument("joint_run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    reptile, joint = load_agent(args.reptile_run), load_agent(args.joint_run)
    key = next(k for k in reptile.net.state_dict() if k.endswith("log_std"))
    scores = {"joint": returns_per_round(joint, args.rounds), "reptile": returns_per_round(reptile, args.rounds)}
    own_std = reptile.net.state_dict()[key].exp()
    with torch.no_grad():
        reptile.net.state_dict()[key].copy_(joint.net.state_dict()[key])
    scores["reptile, joint's std"] = returns_per_round(reptile, args.rounds)
    print(f"action std: reptile {own_std.numpy().round(3)}, joint {joint.net.state_dict()[key].exp().numpy().round(3)}")
    print(f"mean return per episode ({len(scores['joint'])} test tasks); paired difference to joint in brackets")
    for name, s in scores.items():
        cells = []
        for r in range(args.rounds + 1):
            d = paired((s[:, r] - scores["joint"][:, r]).numpy()) if name != "joint" else None
            cells.append(f"{s[:, r].mean():8.2f} [{d.mean:+6.2f} ± {d.stderr:4.2f}]" if d else f"{s[:, r].mean():8.2f}")
        print(f"{name:22s} " + "  ".join(cells))
    reptile.close()
    joint.close()


if __name__ == "__main__":
    main()
