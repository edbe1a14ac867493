"""Task distributions ("environment samplers") for meta-RL.

>>> from metarl.envs import make_family
>>> family = make_family("point-nav")
>>> tasks = family.sample(4, rng=0, split="train")
>>> env = family.make_env(tasks[0])
"""

from metarl.envs.base import SPLITS, EnvSpecError, Task, TaskEnv, TaskFamily, TaskWrapper, split_stream
from metarl.envs.gym_family import GymFamily
from metarl.envs.registry import ENTRY_POINT_GROUP, known_names, make_family, parse_spec, register, unregister

__all__ = [
    "ENTRY_POINT_GROUP", "SPLITS", "EnvSpecError", "GymFamily", "Task", "TaskEnv", "TaskFamily",
    "TaskWrapper", "known_names", "split_stream", "make_family", "parse_spec", "register", "unregister",
]
