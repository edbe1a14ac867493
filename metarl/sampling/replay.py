"""Per-task replay buffers of transitions, for off-policy meta-RL (PEARL).

Why per task: PEARL's critic and encoder train on meta-batches of tasks, and each task's batch has
to come from that task's own experience, or the encoder would learn nothing about which task it
is in. Each training task gets a ring buffer of ``(s, a, r, s', terminated)`` that grows as it
fills, up to ``capacity``. Sampling draws indices uniformly from each requested task's buffer
with a ``torch.Generator``, so a seed fixes the batches, and stacks them to ``[tasks, batch, ...]``
for the task-batched update.

Transitions come from :class:`~metarl.sampling.episodes.Episodes`. The real steps of every
episode go in, and ``s'`` of an episode's last step is its ``last_observations`` entry. The whole
state is a dict of tensors (:meth:`TaskReplay.state_dict`), saved in the run's checkpoints, so a
resumed run samples the same batches as one that never stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from metarl.sampling.episodes import Episodes

__all__ = ["TaskReplay", "Transitions"]


class Transitions(NamedTuple):
    """A batch of transitions, ``[..., B, ...]`` (``[tasks, B, ...]`` from :meth:`TaskReplay.sample`)."""

    obs: Tensor
    actions: Tensor
    rewards: Tensor
    next_obs: Tensor
    terminated: Tensor


def episode_transitions(episodes: Episodes, row: int) -> Transitions:
    """The real steps of every episode of task row ``row``, in order, as flat ``[n, ...]`` transitions."""
    mask = episodes.mask[row] > 0  # [E, H]
    nxt = torch.cat([episodes.observations[row, :, 1:], episodes.last_observations[row, :, None]], dim=1)
    last = torch.arange(episodes.horizon, device=mask.device)[None, :] == (episodes.lengths[row, :, None] - 1)
    nxt = torch.where(last.reshape(*last.shape, *([1] * (nxt.dim() - 2))), episodes.last_observations[row, :, None], nxt)
    return Transitions(episodes.observations[row][mask], episodes.actions[row][mask].to(torch.float32),
                       episodes.rewards[row][mask], nxt[mask], episodes.terminated[row][mask])


class TaskReplay:
    """``n_tasks`` ring buffers of transitions, each holding at most ``capacity``."""

    def __init__(self, n_tasks: int, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity={capacity!r} is invalid; allowed: an integer >= 1")
        self.n_tasks, self.capacity = int(n_tasks), int(capacity)
        self.data: list[Transitions | None] = [None] * self.n_tasks
        self.size = [0] * self.n_tasks
        self.next = [0] * self.n_tasks  # ring position of the next write once full

    def __len__(self) -> int:
        return sum(self.size)

    def add(self, task: int, new: Transitions) -> None:
        """Append transitions to ``task``'s buffer, overwriting its oldest once it holds ``capacity``."""
        n = int(new.obs.shape[0])
        if n == 0:
            return
        if n > self.capacity:
            new = Transitions(*(x[-self.capacity:] for x in new))
            n = self.capacity
        old = self.data[task]
        size = self.size[task]
        if size + n <= self.capacity:  # still filling: grow by concatenation
            self.data[task] = new if old is None else Transitions(*(torch.cat([o[:size], x]) for o, x in zip(old, new,
                                                                                                              strict=True)))
            self.size[task] = size + n
            self.next[task] = self.size[task] % self.capacity
            return
        if size < self.capacity:  # the write that fills it: pad to capacity, then write as a ring
            fill = self.capacity - size
            self.add(task, Transitions(*(x[:fill] for x in new)))
            self.add(task, Transitions(*(x[fill:] for x in new)))
            return
        stored = self.data[task]
        assert stored is not None
        positions = (self.next[task] + torch.arange(n)) % self.capacity
        for buf, x in zip(stored, new, strict=True):
            buf[positions] = x
        self.next[task] = int((self.next[task] + n) % self.capacity)

    def add_episodes(self, tasks: Sequence[int], episodes: Episodes) -> None:
        """Row ``i`` of ``episodes`` goes to buffer ``tasks[i]``."""
        cpu = episodes.to("cpu")
        for row, task in enumerate(tasks):
            self.add(task, episode_transitions(cpu, row))

    def clear(self, task: int) -> None:
        self.data[task], self.size[task], self.next[task] = None, 0, 0

    def sample(self, tasks: Sequence[int], batch_size: int, generator: torch.Generator) -> Transitions:
        """``batch_size`` transitions drawn uniformly (with replacement) from each of ``tasks``: ``[T, B, ...]``."""
        empty = [t for t in tasks if self.size[t] == 0]
        if empty:
            raise ValueError(f"task buffers {empty} are empty; collect experience for them before sampling")
        u = torch.rand(len(tasks), batch_size, generator=generator, dtype=torch.float64)
        parts = []
        for k, task in enumerate(tasks):
            stored = self.data[task]
            assert stored is not None
            idx = (u[k] * self.size[task]).long().clamp(max=self.size[task] - 1)
            parts.append(Transitions(*(x[idx] for x in stored)))
        return Transitions(*(torch.stack(field) for field in zip(*parts, strict=True)))

    def state_dict(self) -> dict[str, Any]:
        """Tensors only (checkpoints load with ``weights_only=True``): each task's filled part and positions."""
        buffers = {str(t): {name: x[: self.size[t]].clone() for name, x in d._asdict().items()}
                   for t, d in enumerate(self.data) if d is not None}
        return {"capacity": self.capacity, "size": torch.tensor(self.size), "next": torch.tensor(self.next),
                "buffers": buffers}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["capacity"]) != self.capacity or len(state["size"]) != self.n_tasks:
            raise ValueError(f"replay state for {len(state['size'])} tasks x {int(state['capacity'])} does not fit "
                             f"{self.n_tasks} tasks x {self.capacity}")
        self.size = [int(x) for x in state["size"]]
        self.next = [int(x) for x in state["next"]]
        self.data = [None] * self.n_tasks
        for key, fields in state["buffers"].items():
            self.data[int(key)] = Transitions(**{name: fields[name] for name in Transitions._fields})
