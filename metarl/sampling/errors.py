"""Errors the sampler raises, and the picklable record a worker sends back.

Why a dedicated hierarchy: a training loop wants to tell *bad settings* (fix the
command line, ``SamplerConfigError``, a ``ValueError``) from *collection
failures* (an env crashed, a worker died, a NaN appeared: ``SamplerError``), and
a failure that happened in another process must still show where it happened
and the original traceback, not just "worker died".
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass


class SamplerConfigError(ValueError):
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

    def __reduce__(self):  # keep keyword fields across pickling
        return (_rebuild_env_failure, (str(self), self.slot, self.task, self.cause))


def _rebuild_env_failure(message: str, slot: int, task: str, cause: str) -> EnvFailure:
    return EnvFailure(message, slot=slot, task=task, cause=cause)


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

    @classmethod
    def capture(cls, worker: str, exc: BaseException) -> RemoteFailure:
        tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if isinstance(exc, EnvFailure):  # already says where: worker, slot, task, step
            return cls(worker=worker, message=str(exc), task=exc.task, traceback=tb)
        return cls(worker=worker, message=f"{worker}: {type(exc).__name__}: {exc}", task=None, traceback=tb)

    def to_error(self) -> SamplerError:
        return SamplerError(
            f"{self.message}\n--- traceback from {self.worker} ---\n{self.traceback}",
            worker=self.worker, task=self.task, remote_traceback=self.traceback,
        )
