"""Graceful Ctrl+C / SIGTERM handling for long training runs.

The first SIGINT or SIGTERM only sets a flag; the training loop checks it at
the next iteration boundary, writes a checkpoint and exits with
:data:`EXIT_INTERRUPTED`. Killing mid-iteration would lose everything since
the last periodic checkpoint, and a half-updated agent must never be saved.
A second SIGINT (or SIGTERM) means "stop now": it raises
``KeyboardInterrupt`` immediately, without checkpointing.

Exit codes used by ``metarl`` commands:

=====  =====================================================================
0      success (:data:`EXIT_OK`)
1      failure at run time, one line (traceback with ``--debug``) (:data:`EXIT_FAILURE`)
2      usage or configuration error, e.g. a bad ``--set`` (:data:`EXIT_USAGE`)
130    interrupted; a checkpoint was written and the run can be resumed
       with ``metarl train --resume RUN_DIR`` (:data:`EXIT_INTERRUPTED`,
       128 + SIGINT as shells report it)
=====  =====================================================================

After a second SIGINT Python exits through the uncaught ``KeyboardInterrupt``
(the shell also sees 130), but no checkpoint is written for the unfinished
iteration; ``--resume`` then continues from the last periodic checkpoint.

SIGTERM is treated like the first SIGINT because cluster schedulers (Slurm,
Kubernetes) send it before killing a job, leaving time to checkpoint.

A run whose env hangs never reaches the next iteration boundary. It still
ends: the sampler's step timeout (``sampling.step_timeout``, 60 s by default)
interrupts the hung step and raises ``SamplerError``, which the trainer does
not catch, so the run stops with exit code 1 within that timeout of the first
SIGTERM, without a checkpoint for the unfinished iteration. Schedulers that
SIGKILL sooner (Kubernetes' default grace is 30 s) need a shorter timeout.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "GracefulInterrupt",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulInterrupt:
    """Context manager turning the first SIGINT/SIGTERM into :attr:`requested`.

    Usage::

        with GracefulInterrupt() as stop:
            for it in range(n):
                if stop.requested:
                    save(); sys.exit(EXIT_INTERRUPTED)
                train_one(it)

    Signal handlers can only be installed from the main thread; elsewhere the
    manager is inert (``requested`` stays False) rather than failing.
    """

    def __init__(self, message: str | None = None) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self._message = message or (
            "will stop after the current iteration and write a checkpoint; press Ctrl+C again to abort immediately without saving"
        )
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            print(f"\n{name} received again: aborting now.", file=sys.stderr, flush=True)
            raise KeyboardInterrupt
        self.requested = True
        self.signal_name = name
        print(f"\n{name} received: {self._message}.", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
