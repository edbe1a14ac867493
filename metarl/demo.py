"""The default job behind ``make demo``: a tour of every built-in family.

Until an agent trains here, the demo rolls out a uniformly random policy on one
test task of each family, which doubles as a smoke test of the MuJoCo and
Meta-World installs on a new machine.
"""

from __future__ import annotations

import time

from metarl.envs.registry import make_family

DEMO_FAMILIES = ("point-nav", "bandit?k=5&n=10", "tabular-mdp", "halfcheetah-vel", "halfcheetah-dir",
                 "ant-dir", "ant-goal", "ml1-reach")


def random_episode_return(family_spec: str, seed: int) -> tuple[str, float, int, float]:
    family = make_family(family_spec)
    task = family.sample(1, rng=seed, split="test")[0]
    env = family.make_env(task)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    total, steps, success = 0.0, 0, 0.0
    for steps in range(1, family.horizon + 1):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += float(reward)
        success = max(success, float(info.get("success", 0.0)))
        if terminated or truncated:
            break
    env.close()
    return family.name, total, steps, success


def run_demo(seed: int = 0) -> int:
    print("metarl demo: one random-policy episode on a test task of each built-in family\n")
    print(f"{'family':<22}{'return':>12}{'steps':>8}{'success':>9}{'seconds':>9}")
    for spec in DEMO_FAMILIES:
        start = time.perf_counter()
        name, total, steps, success = random_episode_return(spec, seed)
        print(f"{name:<22}{total:>12.2f}{steps:>8d}{success:>9.0f}{time.perf_counter() - start:>9.2f}")
    print("\nList every family with `metarl envs`; see README.md to plug in your own.")
    return 0
