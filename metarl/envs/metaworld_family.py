"""Meta-World v3 benchmarks (ML1, ML10, ML45) with their own train/test splits.

We use the direct ``metaworld.ML1/ML10/ML45`` API: the gymnasium vector entry
point for ML1 serves the *test* goals as train goals. Building a benchmark is
slow (ML45 takes ~40 s), so each family builds it once, lazily, and the tasks it
hands out carry Meta-World's own task blob: a worker rebuilds an env from the
blob alone, without rebuilding the benchmark.

Seeding: Meta-World ignores ``reset(seed=)``; goals are frozen by ``set_task``
and the benchmark object is seeded, so the same seed gives the same tasks and
the same first observations. Our env wrapper forwards ``reset(seed=)`` to
Meta-World's ``seed()`` so its own generator is seeded too.

Episodes are 500 steps; Meta-World raises if stepped past that, so the wrapper
reports ``truncated`` at 500 as Meta-World does. ``info["success"]`` is 0/1 per
step; an episode succeeds if any step does.

Speed: ``fast`` (default true) puts bit-identical replacements for Meta-World's Python hot
spots (the contact scan in ``touching_object``, scipy's ``Rotation.from_matrix`` for object
quaternions, observation assembly, the scalar ``tolerance`` of the rewards) on the envs this
family builds, instance by instance: a step costs 1.2-3x less (pick-place 357 -> 118 us,
reach 160 -> 87 us, measured on one core), and observations, rewards and every ``info`` value
equal stock Meta-World 3.1.1 bitwise (see :mod:`metarl.envs.metaworld_fast`). ``fast=False``
runs the stock code paths (``MetaWorldFamily(..., fast=False)``; the spec form
``ml1-reach?fast=false`` needs the registry to pass ``fast`` through). Nothing in the
installed package or its classes is modified.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from metarl.envs.base import EnvSpecError, Task, TaskFamily, TaskWrapper, as_generator, check_split, suggest

HORIZON = 500


@functools.cache
def task_names() -> tuple[str, ...]:
    """The 50 v3 task names without the ``-v3`` suffix, as users type them."""
    import metaworld

    return tuple(n.removesuffix("-v3") for n in metaworld.ML1.ENV_NAMES)


def _env_class(env_name: str) -> type:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return ALL_V3_ENVIRONMENTS[env_name]


#: Meta-World's reward functions: v2 (the default of every env class in metaworld 3.1.1, used by
#: Meta-World+) and v1 (the original paper's, whose scale moved published numbers).
REWARD_VERSIONS = ("v2", "v1")
DEFAULT_REWARD_VERSION = "v2"


def _mw_task(task: Task):
    from metaworld.types import Task as MWTask

    return MWTask(env_name=task.params["env_name"], data=task.params["data"])


class MetaWorldEnv(TaskWrapper):
    """A Meta-World env with metarl's task switching; rebuilt only across classes."""

    def __init__(self, task: Task, fast: bool = True, reward_version: str = DEFAULT_REWARD_VERSION) -> None:
        env = _env_class(task.params["env_name"])(reward_function_version=reward_version)
        if fast:
            from metarl.envs.metaworld_fast import install

            install(env)
        super().__init__(env)
        self.fast, self.reward_version = fast, reward_version
        self.set_task(task)

    def _apply_task(self, task: Task) -> None:
        self.env.unwrapped.set_task(_mw_task(task))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self.env.unwrapped.seed(seed)
        return self.env.reset()


class MetaWorldFamily(TaskFamily):
    """``ml1-<task>``, ``ml10`` or ``ml45``; ``seed`` picks the benchmark's goal sets; ``fast=False``
    builds envs that run Meta-World's stock (slower, bitwise-equal) code paths."""

    horizon = HORIZON
    has_success = True

    def __init__(self, benchmark: str, task: str | None = None, seed: int = 0, fast: bool = True,
                 reward_version: str = DEFAULT_REWARD_VERSION) -> None:
        if not isinstance(fast, bool):
            raise EnvSpecError(f"Meta-World parameter fast={fast!r}; allowed: true or false")
        if reward_version not in REWARD_VERSIONS:
            raise EnvSpecError(f"Meta-World parameter reward_version={reward_version!r}; allowed: "
                               f"{', '.join(REWARD_VERSIONS)} (default {DEFAULT_REWARD_VERSION}, metaworld 3.1.1's)")
        self.benchmark, self.task, self.seed, self.fast = benchmark, task, int(seed), fast
        self.reward_version = reward_version
        if benchmark == "ml1":
            if task is None or task.removesuffix("-v3") not in task_names():
                raise EnvSpecError(
                    f"unknown Meta-World task {task!r} for ml1{suggest(str(task), task_names())} "
                    f"Allowed: {', '.join(task_names())}"
                )
            self.task = task.removesuffix("-v3")
            self.name = f"ml1-{self.task}"
            self.description = f"Meta-World ML1 {self.task}: 50 train goals, 50 test goals"
        elif benchmark in ("ml10", "ml45"):
            self.name = benchmark
            held = 5
            self.description = f"Meta-World {benchmark.upper()}: {int(benchmark[2:])} train classes, {held} held-out test classes"
        else:
            raise EnvSpecError(f"unknown Meta-World benchmark {benchmark!r}; allowed: ml1-<task>, ml10, ml45")
        extra = ([f"seed={self.seed}"] if self.seed != 0 else []) + (
            [f"reward_version={reward_version}"] if reward_version != DEFAULT_REWARD_VERSION else [])
        if extra:
            self.name += "?" + "&".join(extra)

    @functools.cached_property
    def _benchmark(self):
        import metaworld

        if self.benchmark == "ml1":
            return metaworld.ML1(f"{self.task}-v3", seed=self.seed)
        return (metaworld.ML10 if self.benchmark == "ml10" else metaworld.ML45)(seed=self.seed)

    @property
    def observation_space(self) -> gym.Space:
        return gym.spaces.Box(-np.inf, np.inf, (39,), np.float64)

    @property
    def action_space(self) -> gym.Space:
        return gym.spaces.Box(-1.0, 1.0, (4,), np.float32)

    def split_size(self, split: str) -> int:
        check_split(split)
        classes = {"ml1": (1, 1), "ml10": (10, 5), "ml45": (45, 5)}[self.benchmark]
        return 50 * classes[0 if split == "train" else 1]

    def classes(self, split: str) -> list[str]:
        """Task class names of a split (``-v3`` names, as Meta-World spells them)."""
        check_split(split)
        bm = self._benchmark
        return list(bm.train_classes if split == "train" else bm.test_classes)

    def all_tasks(self, split: str) -> list[Task]:
        return list(self._split_tasks[check_split(split)])

    @functools.cached_property
    def _split_tasks(self) -> dict[str, tuple[Task, ...]]:
        """Built once: ``sample`` runs every iteration and ML45 has 2,500 tasks."""
        bm = self._benchmark
        return {split: tuple(self._tasks(split, [{"env_name": t.env_name, "data": t.data} for t in tasks]))
                for split, tasks in (("train", bm.train_tasks), ("test", bm.test_tasks))}

    def sample(self, n, rng=None, split="train"):
        """Class-balanced: classes are visited round-robin in a shuffled order,
        goals within a class without replacement until exhausted.

        The tasks come back grouped by class in the benchmark's class order, so in every
        meta-batch of the same size row ``i`` holds the same class: a sampler slot keeps its env
        (re-targeted with ``set_task``) instead of building another class's (~20 MB, ~0.1 s each).
        """
        self._check_n(n)
        g = as_generator(rng)
        by_class: dict[str, list[Task]] = {}
        for t in self.all_tasks(split):
            by_class.setdefault(t.params["env_name"], []).append(t)
        names = list(by_class)
        order = [names[i] for i in g.permutation(len(names))]
        pools = {c: [by_class[c][i] for i in g.permutation(len(by_class[c]))] for c in names}
        out: list[Task] = []
        for i in range(n):
            c = order[i % len(order)]
            j = i // len(order)
            out.append(pools[c][j % len(pools[c])])
        rank = {c: k for k, c in enumerate(names)}
        return sorted(out, key=lambda t: rank[t.params["env_name"]])  # stable: goal order within a class kept

    def make_env(self, task: Task) -> gym.Env:
        return MetaWorldEnv(task, fast=self.fast, reward_version=self.reward_version)

    def env_key(self, task: Task) -> str:
        return self.task_class(task)  # an env serves any goal of its class

    def task_class(self, task: Task) -> str:
        return task.params["env_name"]

    def set_task(self, env: gym.Env, task: Task) -> gym.Env:
        if (isinstance(env, MetaWorldEnv) and env.task.params["env_name"] == task.params["env_name"]
                and env.fast == self.fast and env.reward_version == self.reward_version):
            env.set_task(task)
            return env
        env.close()
        return self.make_env(task)
