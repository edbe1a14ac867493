"""The small contract every backend fulfils, so the sampler loop is written once.

The driver (``Sampler.sample``) decides *what* to do each step; a backend only
moves buffers to where the envs live and runs :class:`EnvStepper` there:

1. ``configure(tasks, labels, layout)`` -> the driver-side :class:`StepBuffers`
   (slot ``i`` runs ``tasks[i]``);
2. ``reset()``: every slot resets with the seed in ``buffers.next_seed``;
3. ``step_start()`` then ``step_wait()``: active slots step with ``buffers.actions``;
   results land in the buffers. Split in two so the driver records the
   step's inputs while remote workers step (off the critical path);
4. ``close()``: idempotent; leaves no processes or actors behind.

Failures raise :class:`SamplerError`. After a worker death, a timeout or an
interrupt, a remote backend tears its workers down; the next ``configure``
starts fresh ones (one bounded restart per ``sample`` call).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from metarl.envs import Task
from metarl.sampling.buffers import Layout, StepBuffers


class Backend(ABC):
    name: str = "backend"
    workers: int = 1

    @abstractmethod
    def configure(self, tasks: Sequence[Task], labels: Sequence[str], layout: Layout) -> StepBuffers: ...

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def step_start(self) -> None:
        """Start stepping the active slots; remote backends return at once."""

    @abstractmethod
    def step_wait(self) -> None:
        """Wait until the step started by :meth:`step_start` has landed in the buffers."""

    def step(self) -> None:
        self.step_start()
        self.step_wait()

    @abstractmethod
    def close(self) -> None: ...

    def abort(self) -> None:
        """Drop workers after an interrupted step (their pipes may hold stale replies); the next
        ``configure`` starts fresh ones. Unlike ``close``, the backend stays usable."""
        self.close()

    def describe(self) -> str:
        return f"{self.name} ({self.workers} worker{'s' if self.workers != 1 else ''})"


def partition(n: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous, balanced ``[lo, hi)`` slot ranges, one per worker.

    Contiguous keeps a task's slots together (a worker re-targets envs of the
    same task class in place across calls) and lets each worker use one slice
    of the shared buffers.
    """
    bounds = np.linspace(0, n, workers + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
