"""``serial``: every env in the calling process.

The reference backend and the fastest for cheap envs (point-nav, bandits):
no inter-process traffic at all; the stepping core writes straight into the
driver's buffers.

Step timeout: each stepper call runs under :func:`~metarl.sampling.backend.call_within`
(SIGALRM), so a hung ``env.step``/``reset`` ends in a :class:`SamplerError` naming
the env slot, task, episode and step. In-process this has the deadline's limits:
an env stuck in native code that never returns to the interpreter is not
interrupted (use ``process``, whose driver kills such a worker), and a sampler
used off the main thread runs without a deadline (with a warning).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from metarl.envs import Task, TaskFamily
from metarl.sampling.backend import Backend, call_within, command_timeout, env_threads
from metarl.sampling.buffers import Layout, StepBuffers
from metarl.sampling.errors import RemoteFailure
from metarl.sampling.stepper import EnvStepper

#: Seconds allowed for closing the envs of a stepper that timed out (closing may hang too).
CLOSE_TIMEOUT = 5.0


class SerialBackend(Backend):
    name = "serial"

    def __init__(self, family: TaskFamily, horizon: int | None = None, *, timeout: float | None = None,
                 threads: int | None = None) -> None:
        self.workers = 1
        self.family, self.horizon, self.timeout = family, horizon, timeout
        self.threads = env_threads(threads, 1)
        self.stepper = self._new_stepper()

    def _new_stepper(self) -> EnvStepper:
        return EnvStepper(self.family, "serial sampler (in-process)", self.horizon, self.threads)

    def configure(self, tasks: Sequence[Task], labels: Sequence[str], layout: Layout) -> StepBuffers:
        buf = StepBuffers.allocate(layout)
        self._run("configure", self.stepper.configure, tasks, labels, buf)
        return buf

    def reset(self) -> None:
        self._run("reset", self.stepper.reset)

    def step_start(self) -> None:  # a batch that steps on threads starts them here ...
        self._run("step", self.stepper.step_start)

    def step_wait(self) -> None:  # ... and the driver records the step's inputs in between
        self._run("step", self.stepper.step_wait)

    def _run(self, cmd: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            call_within(command_timeout(cmd, self.timeout), fn, *args)
        except Exception as exc:  # same message shape as a remote worker's, plus the live chain
            failure = RemoteFailure.capture(self.stepper.name, exc)
            if failure.timed_out:
                self._drop_envs()
            raise failure.to_error() from exc

    def _drop_envs(self) -> None:
        """After a timeout an env was interrupted mid-call: its state is unknown, so none is reused.

        The next ``configure`` builds fresh envs (as a remote backend's fresh workers would).
        Closing is best effort and bounded, since a hung env may hang in ``close`` too.
        """
        old, self.stepper = self.stepper, self._new_stepper()
        try:
            call_within(CLOSE_TIMEOUT, old.close)
        except Exception:  # StepTimeout or the env's own error: we are discarding it anyway
            pass

    def abort(self) -> None:  # nothing in flight in-process: envs stay as they are
        return None

    def close(self) -> None:
        self.stepper.close()
