"""The batched MuJoCo path against gymnasium's envs: same episodes, less time.

Run from a checkout: ``python examples/batched_locomotion.py`` (about 10 s on two cores).
It collects the same 20 tasks x 5 episodes of ``halfcheetah-vel`` twice with a random policy:
once with ``batched=false`` (the gymnasium ``HalfCheetah-v5`` envs, stepped one by one) and once
on the default batched path (:mod:`metarl.envs.mujoco_batch`, physics on every core), then checks
that the two ``Episodes`` are equal and prints the two rates.
"""

from __future__ import annotations

import time

from metarl.agents.base import PolicyActor
from metarl.envs import make_family
from metarl.nn import GaussianMLPPolicy
from metarl.sampling import make_sampler


def collect(spec: str, tasks, actor) -> tuple[object, float]:
    with make_sampler(spec) as sampler:
        sampler.sample(tasks, actor, 5, seed=0)  # builds the envs
        start = time.perf_counter()
        episodes = sampler.sample(tasks, actor, 5, seed=1)
        return episodes, episodes.n_steps / (time.perf_counter() - start)


def main() -> None:
    family = make_family("halfcheetah-vel")
    tasks = family.sample(20, 0)
    actor = PolicyActor(GaussianMLPPolicy(family.observation_space.shape[0], family.action_space.shape[0]))
    reference, slow = collect("halfcheetah-vel?batched=false", tasks, actor)
    batched, fast = collect("halfcheetah-vel", tasks, actor)
    assert batched.equal(reference), "the batched path must reproduce gymnasium's episodes exactly"
    print(f"gymnasium envs one by one: {slow:8,.0f} env steps/s")
    print(f"batched MuJoCo (default):  {fast:8,.0f} env steps/s  ({fast / slow:.2f}x), episodes identical")


if __name__ == "__main__":
    main()
