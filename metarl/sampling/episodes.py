"""``Episodes``: the batch every agent consumes.

Every per-step tensor is shaped ``[tasks, episodes, time, ...]``: row ``i``
holds the episodes of ``tasks[i]``; the episodes of one trial are contiguous
(``episodes_per_trial`` of them), so ``x.view(T, n_trials, episodes_per_trial,
H, ...)`` exposes trials (:func:`trial_rounds` and :func:`trial_returns` read that
layout). Episodes end at different times (early termination), so ``mask`` is 1.0
on real steps and everything past ``lengths`` is zero.

Why tensors and not lists of paths: agents apply per-task parameters with
``vmap`` over the task dimension, and a fixed shape is what makes that (and a
single host-to-device copy) possible.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor

from metarl.envs import Task

_TENSORS = ("observations", "actions", "rewards", "log_probs", "terminated", "truncated", "mask",
            "last_observations", "lengths", "returns", "success")


@dataclass
class Episodes:
    """Experience of ``len(tasks)`` tasks x ``n_episodes`` episodes x ``horizon`` steps.

    Attributes (``T`` tasks, ``E`` episodes per task, ``H`` horizon):
        observations: ``[T, E, H, *obs]`` float32, the observation each action was chosen from.
        actions: ``[T, E, H, *act]`` as the actor produced them (before clipping to the action space).
        rewards, log_probs: ``[T, E, H]`` float32.
        terminated, truncated: ``[T, E, H]`` bool; an episode's last real step has one of them set
            (``truncated`` also at the horizon).
        mask: ``[T, E, H]`` float32, 1.0 on real steps.
        last_observations: ``[T, E, *obs]``, the observation after each episode's last step, to
            bootstrap values of truncated episodes.
        lengths: ``[T, E]`` int64. returns: ``[T, E]`` float32 (undiscounted sums of rewards).
        success: ``[T, E]`` bool, any step's ``info["success"]`` was truthy (the Meta-World rule); all
            false when the envs report no success, so read it together with ``reports_success``.
        agent_info: extra per-step outputs of the actor (means, logits, recurrent inputs), ``[T, E, H, ...]``.
        tasks: the task of each row. episodes_per_trial: trial length (RL²). seed: what ``sample`` used.
        reports_success: whether the envs report success at all: some step of the batch had a
            ``"success"`` key in its info (or the family declares ``has_success``). Learned from the
            envs, so a plug-in family needs no flag; without it ``success`` is meaningless and every
            success rate (:meth:`success_values`) is NaN, for agents and baselines alike.

    Example:
        >>> import torch
        >>> from metarl.evaluation.actors import UniformActor
        >>> from metarl.sampling import make_sampler
        >>> with make_sampler("ml1-reach") as sampler:  # Meta-World: 500-step episodes that report success
        ...     tasks = sampler.family.sample(2, rng=0)
        ...     episodes = sampler.sample(tasks, UniformActor(sampler.family.action_space), 1, seed=0)
        >>> tuple(episodes.rewards.shape), tuple(episodes.lengths.shape)  # [T, E, H] and [T, E]
        ((2, 1, 500), (2, 1))
        >>> bool(torch.equal(episodes.mask.sum(-1), episodes.lengths.float()))  # real steps are a prefix
        True
        >>> bool(torch.allclose(episodes.returns, (episodes.rewards * episodes.mask).sum(-1)))
        True
        >>> episodes.reports_success, tuple(episodes.success_values().shape)  # any-step success per episode
        (True, (2, 1))
    """

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    log_probs: Tensor
    terminated: Tensor
    truncated: Tensor
    mask: Tensor
    last_observations: Tensor
    lengths: Tensor
    returns: Tensor
    success: Tensor
    tasks: tuple[Task, ...]
    agent_info: dict[str, Tensor] = field(default_factory=dict)
    episodes_per_trial: int = 1
    seed: int | None = None
    reports_success: bool = False

    # -- shape helpers ----------------------------------------------------------------
    @property
    def n_tasks(self) -> int:
        return self.rewards.shape[0]

    @property
    def n_episodes(self) -> int:
        """Episodes per task."""
        return self.rewards.shape[1]

    @property
    def horizon(self) -> int:
        return self.rewards.shape[2]

    @property
    def n_trials(self) -> int:
        """Trials per task (``n_episodes // episodes_per_trial``)."""
        return self.n_episodes // self.episodes_per_trial

    @property
    def n_steps(self) -> int:
        """Real environment steps in the batch (for steps/s and sample budgets)."""
        return int(self.lengths.sum())

    def success_values(self) -> Tensor:
        """``[T, E]`` float64: 1.0 / 0.0 per episode, or NaN throughout when the envs report no success.

        The one place the success rule meets the rates built on it: curve rows and training
        metrics average these (ignoring NaN), so a family without a signal shows NaN, never 0.
        """
        if not self.reports_success:
            return torch.full(self.success.shape, float("nan"), dtype=torch.float64)
        return self.success.to(torch.float64)

    @property
    def dones(self) -> Tensor:
        return self.terminated | self.truncated

    @property
    def device(self) -> torch.device:
        return self.rewards.device

    # -- movement ---------------------------------------------------------------------
    def to(self, device: torch.device | str, non_blocking: bool = True) -> Episodes:
        """Move every tensor in one pass: one contiguous (and, for CUDA, pinned) copy per tensor."""
        device = torch.device(device)
        if device == self.device:
            return self
        pin = device.type == "cuda" and self.device.type == "cpu"

        def move(t: Tensor) -> Tensor:
            t = t.contiguous()
            if pin:
                t = t.pin_memory()
            return t.to(device, non_blocking=non_blocking and pin)

        # typed Any: mypy checks a **dict against every field of the dataclass, not only the ones it holds
        moved: dict[str, Any] = {name: move(getattr(self, name)) for name in _TENSORS}
        return replace(self, **moved, agent_info={k: move(v) for k, v in self.agent_info.items()})

    def __repr__(self) -> str:
        extra = f", agent_info={sorted(self.agent_info)}" if self.agent_info else ""
        return (f"Episodes(tasks={self.n_tasks}, episodes={self.n_episodes}, horizon={self.horizon}, "
                f"steps={self.n_steps}, episodes_per_trial={self.episodes_per_trial}, device={self.device}{extra})")

    def equal(self, other: Episodes) -> bool:
        """Exact equality of every tensor and the tasks (for determinism checks across backends)."""
        same = all(torch.equal(getattr(self, n), getattr(other, n)) for n in _TENSORS)
        same = same and self.agent_info.keys() == other.agent_info.keys()
        same = same and all(torch.equal(v, other.agent_info[k]) for k, v in self.agent_info.items())
        same = same and self.reports_success == other.reports_success
        return same and self.tasks == other.tasks and self.episodes_per_trial == other.episodes_per_trial


def tensor_fields() -> tuple[str, ...]:
    """Names of the per-batch tensors (everything but ``agent_info`` and metadata)."""
    return _TENSORS


def trial_rounds(episodes: Episodes) -> list[Episodes]:
    """Split trials of ``E`` episodes into ``E`` rounds: round ``k`` = episode ``k`` of every trial.

    This is how a context-based agent's adaptation curve is read: the ``k``-th
    episode of a trial was played after ``k`` episodes of experience on the task.
    Each round is an :class:`Episodes` of ``n_trials`` episodes per task (one per
    trial, in trial order) with ``episodes_per_trial=1``; ``agent_info`` is split
    the same way.
    """
    e = episodes.episodes_per_trial
    return [replace(episodes, episodes_per_trial=1, agent_info={n: v[:, k::e] for n, v in episodes.agent_info.items()},
                    **{n: getattr(episodes, n)[:, k::e] for n in tensor_fields()}) for k in range(e)]


def trial_returns(episodes: Episodes) -> Tensor:
    """Total undiscounted reward of each trial, ``[T, n_trials]`` (the RL² papers' headline number)."""
    return episodes.returns.view(episodes.n_tasks, episodes.n_trials, episodes.episodes_per_trial).sum(-1)


__all__ = ["Episodes", "tensor_fields", "trial_returns", "trial_rounds"]
