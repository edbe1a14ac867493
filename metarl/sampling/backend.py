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

Step timeout (``sampling.step_timeout``, ``make_sampler(timeout=...)``): every
call into the envs (one batched ``reset`` or ``step`` of all the slots one
worker holds, auto-resets included) must return within ``timeout`` seconds.
It is enforced where the envs run, by :func:`call_within` (SIGALRM) around each
stepper call, in the driver for ``serial`` and in each worker process / Ray
actor otherwise, so the error names the env slot, task, episode and step that
hung. Remote backends add a driver-side wait of :func:`driver_wait` as a
backstop for a worker the alarm cannot reach (stuck in native code) and kill
it.
"""

from __future__ import annotations

import _signal
import os
import signal
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any, TypeVar

import numpy as np

from metarl.envs import Task
from metarl.sampling.buffers import Layout, StepBuffers
from metarl.sampling.errors import TIMEOUT_KEY, RemoteFailure, SamplerError, StepTimeout

R = TypeVar("R")

# The C accessor: ``signal.getsignal`` maps the result to an enum via a raised ValueError, ~2 us per call.
_getsignal = getattr(_signal, "getsignal", signal.getsignal)

#: Seconds a fresh worker may take to import gymnasium/MuJoCo and build its family, and the
#: least any ``configure`` (which builds envs: Meta-World's take ~1 s each) is allowed.
START_TIMEOUT = 180.0


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


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def env_threads(requested: int | None, workers: int) -> int:
    """Threads each of ``workers`` workers may step a batched family's physics on.

    ``requested`` (``sampling.env_threads``) wins; by default each worker gets its share of
    this machine's cores, so a serial sampler uses them all from one process and ``process``
    workers do not oversubscribe them. Results never depend on it.
    """
    if requested is not None:
        return int(requested)
    return max(1, available_cores() // max(1, workers))


def command_timeout(cmd: str, step_timeout: float | None) -> float | None:
    """The deadline of one worker command: ``reset``/``step`` get the step timeout; ``configure``
    builds envs, which is slower, so it gets at least :data:`START_TIMEOUT`; others none."""
    if step_timeout is None:
        return None
    if cmd == "configure":
        return max(step_timeout, START_TIMEOUT)
    return step_timeout if cmd in ("reset", "step") else None


def driver_wait(limit: float | None) -> float | None:
    """How long a driver waits for a worker whose own deadline (:func:`call_within`) is ``limit``.

    A little longer than ``limit``, so a worker's precise report (which env, which step)
    arrives first; only a worker the alarm cannot reach runs into this wait. The grace is
    25% of ``limit``, between 0.5 and 10 s.
    """
    return None if limit is None else limit + min(max(0.25 * limit, 0.5), 10.0)


def describe_slots(labels: Sequence[str], tasks: Sequence[Task], lo: int, hi: int, shown: int = 3) -> str:
    """``"env slots 4-7: slot 4 (task row 2, trial 0) <task>, ... and 1 more"`` for a worker's slot range."""
    span = f"env slot {lo}" if hi - lo == 1 else f"env slots {lo}-{hi - 1}"
    parts = [f"slot {i} ({labels[i]}) {tasks[i].short()}" for i in range(lo, min(hi, lo + shown))]
    more = f", and {hi - lo - shown} more" if hi - lo > shown else ""
    return f"{span}: {', '.join(parts)}{more}"


def hung_message(worker: str, waited: float | None, limit: float | None, what: str, step: int, holds: str) -> str:
    """A remote worker that did not answer in ``waited`` s: which, at which step, which envs it holds.

    ``limit`` is the worker's own deadline for the call (None: it had none); when it had one, the
    alarm could not reach the call, which is worth saying: it points at native code.
    """
    at = f" (step {step} since the envs were reset)" if what == "stepping envs" else ""
    if limit is None:
        return f"{worker} did not answer within {waited:g} s while {what}{at}; it holds {holds}"
    return (f"{worker} did not answer within {limit:g} s ({TIMEOUT_KEY}) while {what}{at}, nor after "
            f"{waited:g} s: its own timeout could not interrupt the call (stuck in native code, or off its main "
            f"thread); it holds {holds}")


def timed_out_error(failure: RemoteFailure, limit: float | None, what: str, aftermath: str) -> SamplerError:
    """A worker's own timeout report as the driver raises it: worker, limit, then the env slot, task,
    episode and step that did not return (``failure.where``), what the backend did, the traceback."""
    return SamplerError(f"{failure.worker} did not answer within {limit:g} s ({TIMEOUT_KEY}) while {what}: its "
                        f"{failure.where} did not return; {aftermath}\n--- traceback from {failure.worker} ---\n"
                        f"{failure.traceback}", worker=failure.worker, task=failure.task,
                        remote_traceback=failure.traceback)


class _Alarm:
    """State of the one SIGALRM handler :func:`call_within` installs (signals are per process).

    Installing a handler costs ~2.5 us, a third of a cheap env's step, so it is installed
    once and left in place; outside a call it behaves exactly like the handler it replaced
    (``previous``), so to everyone else nothing changed.
    """

    previous: Any = signal.SIG_DFL
    deadline: float | None = None  # set while a call runs
    limit = 0.0
    fired = False
    outer_due: float | None = None  # when an outer ITIMER_REAL (pytest-timeout, a user's alarm) is due
    outer_interval = 0.0


def _delegate(signum: int, frame: FrameType | None) -> None:
    """Do what the replaced handler would have done with this SIGALRM."""
    previous = _Alarm.previous
    if callable(previous):
        previous(signum, frame)
    elif previous in (signal.SIG_DFL, None):  # its default action (terminate) is what the timer's owner asked for
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGALRM)


def _arm(deadline: float) -> None:
    """Set ITIMER_REAL for the sooner of this call's ``deadline`` and the outer timer's."""
    due = deadline if _Alarm.outer_due is None else min(deadline, _Alarm.outer_due)
    signal.setitimer(signal.ITIMER_REAL, max(due - time.monotonic(), 1e-6))


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    if _Alarm.deadline is None:  # no call running: not ours
        _delegate(signum, frame)
        return
    if _Alarm.outer_due is not None and time.monotonic() >= _Alarm.outer_due - 1e-3:
        _Alarm.outer_due = None  # the outer timer's moment: hand it over, then keep our own deadline
        _delegate(signum, frame)
    if time.monotonic() < _Alarm.deadline - 1e-3:
        _arm(_Alarm.deadline)
    elif not _Alarm.fired:  # once per call
        _Alarm.fired = True
        raise StepTimeout(_Alarm.limit)


def call_within(seconds: float | None, fn: Callable[..., R], *args: Any) -> R:
    """``fn(*args)``, raising :class:`StepTimeout` inside it once it ran ``seconds`` (None: unbounded).

    How: ``setitimer(ITIMER_REAL)`` and a SIGALRM handler that raises, so a hung
    ``env.step`` / ``reset`` (a Python loop, ``time.sleep``, a blocking read)
    is interrupted where it is and the stepper reports which env it was.
    Cost: about 2 us per call.

    Limits, inherent to signals in CPython:

    * the handler runs only when control returns to the interpreter, so a C call
      that never does (a native loop that neither returns nor checks for signals,
      or one that blocks SIGALRM) is not interrupted. Remote backends back this up
      from the driver (:func:`driver_wait`) by killing the worker; in-process
      (``serial``) nothing can, short of ending the process;
    * only the main thread receives signals: elsewhere the call runs without a
      deadline, with a warning; so does a call made from inside another one;
    * an env that catches the exception and carries on is still reported: if the
      deadline passed, the call's result is discarded and :class:`StepTimeout` raised.

    An outer ITIMER_REAL is kept: if it is due first, the handler it belongs to runs at
    its time; afterwards it is re-armed with what was left.
    """
    if seconds is None:
        return fn(*args)
    if threading.current_thread() is not threading.main_thread() or _Alarm.deadline is not None:
        warnings.warn(f"{TIMEOUT_KEY}={seconds:g} is not enforced for envs stepped off the main thread or "
                      "inside another bounded call (only the main thread receives SIGALRM)", RuntimeWarning,
                      stacklevel=2)
        return fn(*args)
    current = _getsignal(signal.SIGALRM)
    if current is not _on_alarm:
        _Alarm.previous = current
        signal.signal(signal.SIGALRM, _on_alarm)
    start = time.monotonic()
    outer_delay, _Alarm.outer_interval = signal.getitimer(signal.ITIMER_REAL)
    _Alarm.outer_due = start + outer_delay if outer_delay > 0 else None
    _Alarm.limit, _Alarm.fired, _Alarm.deadline = seconds, False, start + seconds
    try:
        _arm(_Alarm.deadline)
        result = fn(*args)
        _Alarm.deadline = None  # from here on the handler never raises, so the finally runs whole
        if _Alarm.fired:  # the env swallowed the exception; its state is unknown all the same
            raise StepTimeout(seconds)
        return result
    finally:
        _Alarm.deadline = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        if _Alarm.outer_due is not None:  # the outer timer has not fired yet: give it back what was left
            signal.setitimer(signal.ITIMER_REAL, max(_Alarm.outer_due - time.monotonic(), 1e-6),
                             _Alarm.outer_interval)
        elif _Alarm.outer_interval > 0:
            signal.setitimer(signal.ITIMER_REAL, _Alarm.outer_interval, _Alarm.outer_interval)


def partition(n: int, workers: int) -> list[tuple[int, int]]:
    """Contiguous, balanced ``[lo, hi)`` slot ranges, one per worker.

    Contiguous keeps a task's slots together (a worker re-targets envs of the
    same task class in place across calls) and lets each worker use one slice
    of the shared buffers.
    """
    bounds = np.linspace(0, n, workers + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
