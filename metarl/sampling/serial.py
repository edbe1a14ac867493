"""``serial``: every env in the calling process.

The reference backend and the fastest for cheap envs (point-nav, bandits):
no inter-process traffic at all; the stepping core writes straight into the
driver's buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

from metarl.envs import Task, TaskFamily
from metarl.sampling.backend import Backend
from metarl.sampling.buffers import Layout, StepBuffers
from metarl.sampling.errors import RemoteFailure
from metarl.sampling.stepper import EnvStepper


class SerialBackend(Backend):
    name = "serial"

    def __init__(self, family: TaskFamily, horizon: int | None = None) -> None:
        self.workers = 1
        self.stepper = EnvStepper(family, "serial sampler (in-process)", horizon)

    def configure(self, tasks: Sequence[Task], labels: Sequence[str], layout: Layout) -> StepBuffers:
        buf = StepBuffers.allocate(layout)
        self._run(self.stepper.configure, tasks, labels, buf)
        return buf

    def reset(self) -> None:
        self._run(self.stepper.reset)

    def step_start(self) -> None:
        self._run(self.stepper.step)

    def step_wait(self) -> None:  # the step already happened in step_start
        return None

    def _run(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:  # same message shape as a remote worker's, plus the live chain
            raise RemoteFailure.capture(self.stepper.name, exc).to_error() from exc

    def abort(self) -> None:  # nothing in flight in-process: envs stay as they are
        return None

    def close(self) -> None:
        self.stepper.close()
