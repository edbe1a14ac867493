"""Errors the sampler raises, and the picklable record a worker sends back.

Why a dedicated hierarchy: a training loop wants to tell *bad settings* (fix the
command line, ``SamplerConfigError``, a ``ValueError``) from *collection
failures* (an env crashed, a worker died, a NaN appeared: ``SamplerError``), and
a failure that happened in another process must still show where it happened
and the original traceback, not just "worker died".
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass

from metarl.errors import UsageError


class SamplerConfigError(UsageError):
    """A bad sampler setting (backend, workers, ray address, episode counts).

    The message names the bad value and what is allowed.
    """


class SamplerError(RuntimeError):
    """Collection failed: an env raised, produced a non-finite value, or a worker died or hung.

    ``worker`` names the process or actor, ``task`` the task label (when known),
    ``remote_traceback`` the original traceback text from the worker.
    """

    def __init__(self, message: str, *, worker: str | None = None, task: str | None = None,
                 remote_traceback: str | None = None) -> None:
        super().__init__(message)
        self.worker, self.task, self.remote_traceback = worker, task, remote_traceback


class EnvFailure(Exception):
    """Raised by the env-stepping core: one env failed; carries where (slot, task, episode, step)."""

    def __init__(self, message: str, *, slot: int, task: str, cause: str = "") -> None:
        super().__init__(message)
        self.slot, self.task, self.cause = slot, task, cause

    def __reduce__(self) -> tuple[Callable[..., EnvFailure], tuple[str, int, str, str]]:  # keep keyword fields across pickling
        return (_rebuild_env_failure, (str(self), self.slot, self.task, self.cause))


def _rebuild_env_failure(message: str, slot: int, task: str, cause: str) -> EnvFailure:
    return EnvFailure(message, slot=slot, task=task, cause=cause)


#: The config key a timeout message points to, so a user knows what to raise.
TIMEOUT_KEY = "sampling.step_timeout"
#: Its default, also used by samplers built outside an agent config (baselines, references).
DEFAULT_STEP_TIMEOUT = 60.0


class StepTimeout(Exception):
    """Raised inside a stepper call when it overran its deadline (see :func:`~metarl.sampling.backend.call_within`).

    An ``Exception``, not a ``BaseException``, on purpose: the stepper's per-env
    handler then wraps it into an :class:`EnvFailure` that says which env slot,
    task, episode and step was running when the deadline passed.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not return within {seconds:g} s ({TIMEOUT_KEY})")
        self.seconds = seconds


def timeout_where(exc: BaseException, name: str) -> str | None:
    """What overran, if ``exc`` is a step timeout: ``"step of env slot 3 (...), ..., step 17"``; else None.

    The stepper formats env failures as ``"{name}: {what} of {where} raised {type}: {message}"``;
    for a timeout the "raised ..." tail is noise, so it is cut and the caller says "did not return".
    A bare :class:`StepTimeout` fired outside any env call (the stepper's own bookkeeping) names
    no env.
    """
    if isinstance(exc, StepTimeout):
        return "a call into the envs"
    if not (isinstance(exc, EnvFailure) and isinstance(exc.__cause__, StepTimeout)):
        return None
    text = str(exc).removeprefix(f"{name}: ")
    return text.split(f" raised {StepTimeout.__name__}: ", 1)[0]


@dataclass(frozen=True)
class RemoteFailure:
    """What a worker sends back instead of a result: plain strings, so it always unpickles.

    Exceptions raised by user envs may not be picklable (or importable in the
    driver); their text and traceback always are.
    """

    worker: str
    message: str
    task: str | None
    traceback: str
    #: Set when the call overran its step timeout: what was running (``timeout_where``). The env
    #: was interrupted mid-call, so its state is unknown and a backend drops it (and, remote, the
    #: worker) instead of reusing it.
    where: str | None = None

    @property
    def timed_out(self) -> bool:
        return self.where is not None

    @classmethod
    def capture(cls, worker: str, exc: BaseException) -> RemoteFailure:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        task = exc.task if isinstance(exc, EnvFailure) else None
        where = timeout_where(exc, worker)
        if where is not None:  # exc, or its __cause__, is a StepTimeout (timeout_where checked it)
            seconds = exc.seconds if isinstance(exc, StepTimeout) else exc.__cause__.seconds  # type: ignore[union-attr]
            message = f"{worker}: {where} did not return within {seconds:g} s ({TIMEOUT_KEY})"
            return cls(worker=worker, message=message, task=task, traceback=tb, where=where)
        if isinstance(exc, EnvFailure):  # already says where: worker, slot, task, step
            return cls(worker=worker, message=str(exc), task=task, traceback=tb)
        return cls(worker=worker, message=f"{worker}: {type(exc).__name__}: {exc}", task=None, traceback=tb)

    def to_error(self) -> SamplerError:
        return SamplerError(
            f"{self.message}\n--- traceback from {self.worker} ---\n{self.traceback}",
            worker=self.worker, task=self.task, remote_traceback=self.traceback,
        )
