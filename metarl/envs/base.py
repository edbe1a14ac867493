"""The task-distribution contract every family (built-in or plugged in) follows.

A meta-RL run needs three things from a family: draw tasks reproducibly from a
seeded generator, keep the tasks it trains on apart from the tasks it is judged
on, and build (or re-target) a plain ``gymnasium.Env`` for one task. Tasks are
small immutable values so that they can be pickled into worker processes and
Ray actors without dragging an environment along.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from metarl.errors import UsageError

if TYPE_CHECKING:
    import torch

    from metarl.envs.env_batch import EnvBatch
    from metarl.envs.tensor_env import TensorEnv

SPLITS: tuple[str, ...] = ("train", "test")


class EnvSpecError(UsageError):
    """Bad user input about task families: unknown names, bad parameters, broken plug-ins.

    A :class:`~metarl.errors.UsageError` (so a ``ValueError``): the CLI turns it into a
    one-line message and exit status 2.
    """


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ``did you mean`` hint, because most bad names on a CLI are typos."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise EnvSpecError(f"unknown split '{split}'; allowed: {', '.join(SPLITS)}{suggest(split, SPLITS)}")
    return split


@dataclass(frozen=True)
class Task:
    """One task of a family: a picklable value, not an environment.

    ``params`` holds what distinguishes the task (a goal, arm probabilities, a
    seed for a random MDP, a Meta-World task blob). It should contain only
    plain Python values so tasks compare, hash and print sensibly.
    """

    family: str
    split: str
    index: int
    params: Mapping[str, Any] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.family, self.split, self.index, repr(sorted(self.params.items()))))

    def short(self) -> str:
        """A compact label for logs and error messages (Meta-World blobs elided)."""
        shown = {k: v for k, v in self.params.items() if not isinstance(v, (bytes, bytearray))}
        return f"{self.family}/{self.split}#{self.index}{shown}"


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """Accept a seed or a Generator, so simple scripts can pass an int."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def split_stream(rng: np.random.Generator | int | None, split: str) -> np.random.Generator:
    """A generator private to one split.

    Continuous families draw train and test tasks from the same distribution;
    giving each split its own stream makes the two sets distinct (disjoint with
    probability one) even when the caller reuses one seed for both.
    """
    base = as_generator(rng)
    return np.random.default_rng([int(base.integers(2**62)), SPLITS.index(check_split(split))])


class TaskFamily(ABC):
    """A distribution over tasks with a train and a test split.

    Subclasses set ``name``, ``horizon`` and the two spaces, and implement
    :meth:`sample` and :meth:`make_env`. Override :meth:`set_task` when an env
    can be re-targeted in place (cheaper than rebuilding a MuJoCo model).

    Example:
        >>> from metarl.envs import make_family
        >>> family = make_family("point-nav")
        >>> tasks = family.sample(3, rng=0, split="test")  # held-out goals, the same for rng=0 every time
        >>> [task.split for task in tasks] == ["test"] * 3 and tasks == family.sample(3, rng=0, split="test")
        True
        >>> env = family.make_env(tasks[0])
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape == family.observation_space.shape
        True
    """

    #: Name as typed on the CLI (including parameters, e.g. ``bandit?k=5&n=100``).
    name: str = "unnamed"
    #: The spec string ``make_family`` built this family from, parameters included
    #: (``halfcheetah-dir?horizon=100``); evaluation records it so curves name exactly the tasks
    #: they were scored on. ``None`` for a family constructed directly.
    spec: str | None = None

    @property
    def full_name(self) -> str:
        """The spec with parameters where known, else ``name``: what curves and plots record."""
        return self.spec or self.name

    #: Maximum steps per episode.
    horizon: int = 1
    #: Episodes per trial that context-based agents (RL²) default to.
    trial_episodes: int = 1
    #: One line for ``metarl envs``.
    description: str = ""
    #: Optional: declare that the envs report ``info["success"]`` even in a batch where no step carried
    #: the key (envs that add it only on a successful step), so such a batch scores 0 rather than NaN.
    #: Not needed otherwise: whether envs report success is learned from their ``info``
    #: (``Episodes.reports_success``). It can only turn reporting on; Meta-World families set it.
    has_success: bool = False

    @property
    @abstractmethod
    def observation_space(self) -> gym.Space: ...

    @property
    @abstractmethod
    def action_space(self) -> gym.Space: ...

    def split_size(self, split: str) -> int | None:
        """Number of distinct tasks in a split; ``None`` for a continuous distribution."""
        check_split(split)
        return None

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator | int | None = None, split: str = "train") -> list[Task]:
        """Draw ``n`` tasks of ``split``; the same generator state gives the same tasks."""

    @abstractmethod
    def make_env(self, task: Task) -> gym.Env:
        """A fresh ``gymnasium.Env`` already set to ``task``."""

    def set_task(self, env: gym.Env, task: Task) -> gym.Env:
        """Point ``env`` at ``task``; returns the env to use (maybe a new one)."""
        setter = getattr(env, "set_task", None)
        if callable(setter):
            setter(task)
            return env
        env.close()
        return self.make_env(task)

    def env_key(self, task: Task) -> Hashable:
        """Tasks with equal keys can share an env through :meth:`set_task` (Meta-World: the class).

        Samplers keep envs by key and hand a slot an idle env of its task's key before building
        one; the default (one key for all) suits families whose ``set_task`` re-targets any env.
        """
        return None

    def task_class(self, task: Task) -> str | None:
        """The named class ``task`` belongs to, for metrics broken down by class; ``None``: no classes.

        Benchmarks made of distinct tasks (Meta-World's ML10/ML45: reach, push, ...) are judged
        per class, and a mean over classes hides a class that never succeeds. Families whose
        tasks are goals of one kind (point-nav, bandits) keep the default.
        """
        return None

    def make_batch(self, threads: int = 1) -> EnvBatch:
        """The slots a sampler worker steps together (:mod:`metarl.envs.env_batch`).

        By default a loop over :meth:`make_env` envs, which is all a family has to provide.
        Families whose physics can be stepped as a batch override it (the MuJoCo locomotion
        families); ``threads`` is the share of cores the calling worker may use.
        """
        from metarl.envs.env_batch import GymEnvBatch

        return GymEnvBatch(self)

    def make_tensor_env(self, tasks: Sequence[Task], device: torch.device) -> TensorEnv:
        """A torch implementation of ``len(tasks)`` env rows on ``device`` (:mod:`metarl.envs.tensor_env`).

        Optional: families whose step is a few tensor operations (bandits, tabular MDPs, point-nav)
        override it, and ``sampling.backend: auto`` (the default) then rolls them out on the device
        without a Python ``env.step`` per env. The default has none.
        """
        raise NotImplementedError(f"{self.name}: this family has no tensor env; allowed backends: serial, process, ray")

    @property
    def has_tensor_env(self) -> bool:
        """Whether :meth:`make_tensor_env` is implemented (overridden) by this family."""
        return type(self).make_tensor_env is not TaskFamily.make_tensor_env

    def describe(self) -> dict[str, Any]:
        """What ``metarl envs`` prints: spaces, horizon and split sizes."""
        return {
            "name": self.name,
            "description": self.description,
            "observation_space": str(self.observation_space),
            "action_space": str(self.action_space),
            "horizon": self.horizon,
            "trial_episodes": self.trial_episodes,
            "train_tasks": self.split_size("train") or "continuous",
            "test_tasks": self.split_size("test") or "continuous",
        }

    def _check_n(self, n: int) -> None:
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise EnvSpecError(f"{self.name}: number of tasks n={n!r} is invalid; it must be an integer >= 1")

    def _tasks(self, split: str, params: Sequence[Mapping[str, Any]]) -> list[Task]:
        return [Task(self.name, split, i, dict(p)) for i, p in enumerate(params)]


class Retargetable:
    """Mixin: an env that remembers its task and can switch to another in place.

    Switching in place matters for MuJoCo and Meta-World, where building a model
    costs far more than an episode of a cheap task.
    """

    task: Task

    def set_task(self, task: Task) -> None:
        self.task = task
        self._apply_task(task)

    def _apply_task(self, task: Task) -> None:  # pragma: no cover - trivial default
        pass


class TaskEnv(Retargetable, gym.Env):
    """Base for metarl's own envs."""


class TaskWrapper(Retargetable, gym.Wrapper):
    """Base for re-targetable wrappers around an existing gymnasium env."""


def require(cond: bool, family: str, message: str) -> None:
    """Fail fast on a bad family parameter, naming the family."""
    if not cond:
        raise EnvSpecError(f"{family}: {message}")
