"""The default job behind ``make demo``: train, meta-test and plot, in a few minutes on a laptop CPU.

It trains MAML-TRPO on 2D point navigation (the MAML paper's first RL
benchmark) with a small budget, evaluates adaptation on held-out goals beside a
random policy, and prints where the adaptation plot is. Before that, a random
episode on one test task of each built-in family checks the MuJoCo and
Meta-World installs.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from metarl.envs.registry import make_family
from metarl.evaluation.actors import UniformActor
from metarl.sampling import Episodes, make_sampler

TOUR = ("point-nav", "bandit?k=5&n=10", "tabular-mdp", "halfcheetah-vel", "halfcheetah-dir", "ant-dir", "ant-goal",
        "ml1-reach")

DEMO_TRAINING = ["meta_batch_size=10", "episodes_per_task=10", "hidden_sizes=[64, 64]", "trainer.iterations=30",
                 "trainer.checkpoint_every=10", "trainer.stdout=false", "eval.every=10", "eval.tasks=10",
                 "eval.rounds=1", "eval.episodes_per_round=10"]


def random_episode(family_spec: str, seed: int) -> tuple[str, Episodes]:
    """One uniformly random episode on a test task, collected by the sampler like every baseline's.

    Returns the family's name and the ``[1, 1, ...]`` Episodes (sampler seed ``seed``): read
    ``returns``, ``lengths`` and ``success_values()`` (NaN when the envs report no success).
    """
    family = make_family(family_spec)
    task = family.sample(1, rng=seed, split="test")[0]
    with make_sampler(family) as sampler:
        episodes = sampler.sample([task], UniformActor(family.action_space), 1, seed=seed)
    return family.name, episodes


def tour(seed: int) -> None:
    print("1/3  One random-policy episode on a test task of each built-in family\n")
    print(f"{'family':<22}{'return':>12}{'steps':>8}{'success':>9}{'seconds':>9}")
    for spec in TOUR:
        start = time.perf_counter()
        name, episodes = random_episode(spec, seed)
        ret, steps, won = float(episodes.returns[0, 0]), int(episodes.lengths[0, 0]), float(episodes.success_values()[0, 0])
        success = "-" if math.isnan(won) else f"{won:.0f}"
        print(f"{name:<22}{ret:>12.2f}{steps:>8d}{success:>9}{time.perf_counter() - start:>9.2f}")


def run_demo(seed: int = 0, root: str | Path = "runs") -> int:
    from metarl.api import load_agent, train
    from metarl.evaluation.plots import plot_adaptation
    from metarl.evaluation.protocol import evaluate_agent

    tour(seed)
    print("\n2/3  Training MAML-TRPO on point-nav (30 iterations, a few minutes on 2 cores)\n")
    outcome = train("maml-trpo", "point-nav", overrides=DEMO_TRAINING, seed=seed, root=root)
    if outcome.result.exit_code != 0:
        return outcome.result.exit_code
    print("\n3/3  Meta-testing on 20 held-out goals, beside a random policy\n")
    agent = load_agent(outcome.run_dir)
    csv_path, _, rows = evaluate_agent(agent, run=outcome.run_dir.name, out_dir=outcome.run_dir / "eval", n_tasks=20,
                                       rounds=3, episodes_per_round=10, seeds=[seed], baselines=["random"])
    agent.close()
    png = outcome.run_dir / "eval" / "adaptation.png"
    plot_adaptation(csv_path, png, outcome.run_dir / "eval" / "adaptation.svg")
    for k in range(4):
        mine = [r.return_mean for r in rows if r.method == agent.name and r.round == k]
        print(f"  after {k} adaptation step(s): mean return {sum(mine) / len(mine):8.2f}")
    rand = [r.return_mean for r in rows if r.method == "random"]
    print(f"  random policy:                 mean return {sum(rand) / len(rand):8.2f}")
    print(f"\nrun directory:   {outcome.run_dir}\nadaptation plot: {png}")
    print("Next: `metarl envs`, `metarl train maml-trpo --env halfcheetah-vel`, README.md for plug-in families.")
    return 0
