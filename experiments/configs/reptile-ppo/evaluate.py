"""``metarl evaluate`` for Reptile-PPO runs, with one fix: SB3's rollout size can be given.

Why this exists: point-nav episodes end early when the goal is reached, so the agent's
per-round step budgets (e.g. 995, 1989, 2984) have no common divisor >= 2, and
``ppo_scratch_baseline`` then refuses to pick SB3's ``n_steps`` (``metarl evaluate`` cannot pass
one; and ``ppo_scratch_baseline`` evaluates ``ppo_rollout_size(budgets)`` even when ``n_steps``
is given, because ``dict.setdefault`` evaluates its argument). Here ``--ppo-n-steps`` sets it and
each budget is rounded *up* to a multiple of it, so SB3 gets slightly *more* experience than the
agent (at most one rollout), and the rows report its actual steps.
Everything else is ``metarl.evaluation.protocol.evaluate_agent``, unchanged.

    python experiments/configs/reptile-ppo/evaluate.py RUN --pretrained JOINT_RUN --ppo-n-steps 250
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from metarl.api import configure_threads, load_agent
from metarl.evaluation.baselines import ppo_scratch_baseline
from metarl.evaluation.curves import curve_meta, write_curves
from metarl.evaluation.plots import plot_adaptation
from metarl.evaluation.protocol import budgets_of, evaluate_agent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--pretrained", help="a reptile-ppo run trained with meta_update=joint")
    p.add_argument("--tasks", type=int, default=10)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--ppo-n-steps", type=int, default=None, help="SB3 n_steps (null: metarl's divisor rule)")
    p.add_argument("--ppo-batch-size", type=int, default=50)
    args = p.parse_args()
    configure_threads(1)
    run = Path(args.run_dir)
    agent = load_agent(run)
    pretrained = load_agent(args.pretrained) if args.pretrained else None
    seeds = list(range(args.seeds))
    baselines = ["random"] + (["pretrained-finetune"] if pretrained else [])
    out = run / "eval"
    _, _, rows = evaluate_agent(agent, run=run.name, out_dir=out, n_tasks=args.tasks, rounds=args.rounds,
                                episodes_per_round=args.episodes, seeds=seeds, baselines=baselines,
                                pretrained=pretrained, progress=False)
    ppo_kwargs = None if args.ppo_n_steps is None else {"n_steps": args.ppo_n_steps, "batch_size": args.ppo_batch_size}
    for seed in seeds:
        tasks = agent.family.sample(args.tasks, rng=seed, split="test")
        mine = [r for r in rows if r.seed == seed and r.method == agent.name]
        budgets = budgets_of(mine)
        if args.ppo_n_steps:
            budgets = [-(-b // args.ppo_n_steps) * args.ppo_n_steps for b in budgets]
        rows += ppo_scratch_baseline(agent.family, tasks, budgets, args.episodes, seed, ppo_kwargs=ppo_kwargs,
                                     progress=False, run=run.name)
    meta = curve_meta(agent.family.name, agent=agent.name, split="test", n_tasks=args.tasks, rounds=args.rounds,
                      episodes_per_round=args.episodes, seeds=seeds, baselines=[*baselines, "ppo-scratch"],
                      round_definition="one inner PPO update on the previous round's (fresh) episodes",
                      pretrained=str(args.pretrained), ppo_scratch_kwargs=ppo_kwargs or "metarl defaults")
    csv_path, _ = write_curves(rows, out, meta)
    plot_adaptation(csv_path, out / "adaptation.png", out / "adaptation.svg", x="env_steps")
    by: dict[tuple[str, int], list[float]] = {}
    steps: dict[tuple[str, int], list[int]] = {}
    for r in rows:
        by.setdefault((r.method, r.round), []).append(r.return_mean)
        steps.setdefault((r.method, r.round), []).append(r.env_steps)
    table = {f"{m} round {k}": {"return": sum(v) / len(v), "env_steps": sum(steps[m, k]) / len(v)}
             for (m, k), v in sorted(by.items())}
    print(json.dumps(table, indent=1))
    agent.close()
    if pretrained:
        pretrained.close()


if __name__ == "__main__":
    main()
