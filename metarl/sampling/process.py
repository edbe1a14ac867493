"""``process``: one worker process per core, each stepping many envs.

Why this shape: on a few cores, one process per env (gymnasium's
``AsyncVectorEnv``) spends more time in IPC than in physics. Here each worker
owns a contiguous block of slots; the driver batches policy inference for all
slots, writes actions into one shared-memory block, and a one-byte-ish
message per worker per step says "go". Workers write results into the same
block, so no arrays are pickled per step.

Robustness: the driver waits on the pipes *and* on the process sentinels, so
a worker killed from outside is reported at once (never a hang). ``timeout``
(``sampling.step_timeout``) bounds each step and reset: a worker interrupts
its own hung env and reports which slot, task, episode and step it was; a
worker that does not answer even then (stuck in native code) is killed by the
driver after :func:`~metarl.sampling.backend.driver_wait`, and the error names
it, the env slots and tasks it holds and the step. Any failure other than a
clean env error, and any ``KeyboardInterrupt``, tears all workers down (hung
ones are terminated at once); the next ``sample`` restarts them. Workers are
daemonic and exit when the driver's pipe closes, so they never outlive the
driver.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, cast

from metarl.envs import Task
from metarl.sampling.backend import (
    START_TIMEOUT,
    Backend,
    command_timeout,
    describe_slots,
    driver_wait,
    env_threads,
    hung_message,
    partition,
    timed_out_error,
)
from metarl.sampling.buffers import Layout, SharedBlock, StepBuffers
from metarl.sampling.errors import RemoteFailure, SamplerError
from metarl.sampling.worker import process_worker_main

if TYPE_CHECKING:  # only named in a cast (the fork contexts are not defined on Windows)
    from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext

RESTART = "all workers were stopped (the next sample call restarts them)"


@contextlib.contextmanager
def _born_ignoring_sigint() -> Iterator[None]:
    """Ignore SIGINT while a worker process is started, so it starts with SIGINT ignored.

    Why: a Ctrl-C in a terminal reaches the whole process group, and a worker still importing
    (before :func:`process_worker_main` ignores SIGINT itself) would die printing a
    KeyboardInterrupt traceback, while the driver alone decides how to stop. An ignored
    disposition survives ``exec`` and Python then installs no handler (a blocked mask would not:
    the spawn launcher resets it). The cost: a Ctrl-C within the few milliseconds of a
    ``start()`` is dropped. Off the main thread no handler can be set; nothing changes there.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class ProcessBackend(Backend):
    name = "process"

    def __init__(self, spec: str, workers: int, horizon: int | None = None, *, start_method: str = "spawn",
                 timeout: float | None = None, threads: int | None = None) -> None:
        self.spec, self.workers, self.horizon, self.timeout = spec, workers, horizon, timeout
        self.threads = env_threads(threads, workers)
        # a concrete context (typeshed types get_context(str) as BaseContext, which has no Process)
        self._ctx = cast("SpawnContext | ForkContext | ForkServerContext", mp.get_context(start_method))
        self._procs: list[mp.process.BaseProcess] = []
        self._conns: list[Connection] = []
        self._shm: SharedBlock | None = None
        self._buf: StepBuffers | None = None
        self._ranges: list[tuple[int, int]] = []
        self._tasks: list[Task] = []
        self._labels: list[str] = []
        self._steps = 0  # step calls since the last reset, for a hung worker's message
        self.pids: list[int] = []
        self._start()

    # -- lifecycle ----------------------------------------------------------------
    def _start(self) -> None:
        try:
            for i in range(self.workers):
                parent, child = self._ctx.Pipe()
                proc = self._ctx.Process(target=process_worker_main,
                                         args=(child, self.spec, i, self.horizon, self.timeout, self.threads),
                                         name=f"metarl-sampler-{i}", daemon=True)
                with _born_ignoring_sigint():
                    proc.start()
                child.close()
                self._procs.append(proc)
                self._conns.append(parent)
            self.pids = self._gather(START_TIMEOUT, "starting")
        except BaseException:
            self._shutdown()
            raise

    def _shutdown(self, hung: Sequence[int] = ()) -> None:
        """Stop every worker: ask, then terminate, then kill; never leaves a child behind.

        ``hung`` workers cannot read the request, so they are terminated at once rather
        than after the polite wait.
        """
        for i in hung:
            self._procs[i].terminate()
        for conn in self._conns:
            try:
                conn.send(("close", ()))
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 2.0
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join()
            proc.close()
        for conn in self._conns:
            conn.close()
        self._procs, self._conns, self.pids = [], [], []
        self._drop_shm()

    def _drop_shm(self) -> None:
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        if self._shm is not None:
            self._shm.close()
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass
            self._shm = None

    def close(self) -> None:
        self._shutdown()

    # -- messaging ----------------------------------------------------------------
    def _gather(self, timeout: float | None, what: str, limit: float | None = None) -> list[Any]:
        """Wait up to ``timeout`` s for one reply per worker; a dead or hung worker is an error, not a hang.

        ``limit`` is the workers' own deadline for this command (None: they have none).
        """
        pending = dict(enumerate(self._conns))
        sentinels: dict[object, int] = {proc.sentinel: i for i, proc in enumerate(self._procs)}  # keys: what wait() returns
        results: list[Any] = [None] * len(self._conns)
        failures: list[RemoteFailure] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while pending:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait([*pending.values(), *(p.sentinel for i, p in enumerate(self._procs) if i in pending)],
                         remaining)
            if not ready:
                self._hung(list(pending), what, timeout, limit, failures)
            for obj in ready:
                i = sentinels.get(obj) if not isinstance(obj, Connection) else self._conns.index(obj)
                if i is None or i not in pending:
                    continue
                conn = self._conns[i]
                try:
                    if isinstance(obj, Connection) or conn.poll():
                        status, payload = conn.recv()
                        del pending[i]
                        if status == "ok":
                            results[i] = payload
                        else:
                            failures.append(payload)
                        continue
                except (EOFError, OSError):
                    pass
                self._died(i, what)
        if failures:
            self._raise(failures, what, limit)
        return results

    def _raise(self, failures: list[RemoteFailure], what: str, limit: float | None) -> None:
        """The first worker report as a SamplerError; after a timeout (envs interrupted mid-call) stop all workers."""
        timed_out = [f for f in failures if f.timed_out]
        if not timed_out:
            raise failures[0].to_error()
        self._shutdown()
        raise timed_out_error(timed_out[0], limit, what, RESTART)

    def _hung(self, pending: list[int], what: str, waited: float | None, limit: float | None,
              failures: list[RemoteFailure]) -> None:
        """Workers that did not answer in time: kill them (and the rest), say which, where and what they hold."""
        names = [f"process worker {i} (pid {self._procs[i].pid})" for i in pending]
        if any(f.timed_out for f in failures):  # another worker's precise report came in: report that one
            self._shutdown(hung=pending)
            self._raise(failures, what, limit)
        lines = [hung_message(name, waited, limit, what, self._steps, self._holds(i))
                 for name, i in zip(names, pending, strict=True)]
        self._shutdown(hung=pending)
        raise SamplerError("; ".join(lines) + f"; {RESTART}", worker=names[0])

    def _holds(self, i: int) -> str:
        if i >= len(self._ranges):
            return "no envs yet"
        lo, hi = self._ranges[i]
        return describe_slots(self._labels, self._tasks, lo, hi) if hi > lo else "no envs"

    def _died(self, i: int, what: str) -> None:
        proc = self._procs[i]
        proc.join(1.0)
        code = proc.exitcode
        how = f"was killed by signal {signal.Signals(-code).name}" if code is not None and code < 0 else \
            f"exited with code {code}"
        name = f"process worker {i} (pid {proc.pid})"
        hint = ("; its stderr shows why (with the 'spawn' start method a script that builds a sampler at "
                "import time must guard it with `if __name__ == '__main__':`)") if what == "starting" else ""
        self._shutdown()
        raise SamplerError(f"{name} {how} while {what}; {RESTART}{hint}", worker=name)

    def _send(self, messages: Sequence[tuple[str, tuple[Any, ...]]], what: str) -> None:
        with self._stop_on_interrupt():
            for i, (conn, msg) in enumerate(zip(self._conns, messages, strict=True)):
                try:
                    conn.send(msg)
                except OSError:  # broken pipe: the worker is gone
                    self._died(i, what)

    def _receive(self, cmd: str, what: str) -> list[Any]:
        """Replies to ``cmd``, waiting a little longer than the workers' own deadline for it."""
        limit = command_timeout(cmd, self.timeout)
        wait_s = driver_wait(limit) if limit is not None else (START_TIMEOUT if cmd == "configure" else None)
        with self._stop_on_interrupt():
            return self._gather(wait_s, what, limit)

    def _broadcast(self, messages: Sequence[tuple[str, tuple[Any, ...]]], what: str) -> list[Any]:
        self._send(messages, what)
        return self._receive(messages[0][0], what)

    @contextlib.contextmanager
    def _stop_on_interrupt(self) -> Iterator[None]:
        try:
            yield
        except SamplerError:
            raise
        except BaseException:  # KeyboardInterrupt, broken pipe: state unknown, so stop everything
            self._shutdown()
            raise

    # -- backend contract ---------------------------------------------------------
    def configure(self, tasks: Sequence[Task], labels: Sequence[str], layout: Layout) -> StepBuffers:
        if not self._procs:
            self._start()
        if self._shm is None or self._shm.size < layout.nbytes():
            self._drop_shm()
            self._shm = SharedBlock(create=True, size=max(layout.nbytes(), 64))
        self._buf = StepBuffers.allocate(layout, self._shm.buf)
        self._ranges = partition(len(tasks), self.workers)
        self._tasks, self._labels = list(tasks), list(labels)
        msgs = [("configure", (list(tasks[lo:hi]), list(labels[lo:hi]), layout, lo, self._shm.name))
                for lo, hi in self._ranges]
        self._broadcast(msgs, "building envs")
        return self._buf

    def reset(self) -> None:
        self._steps = 0
        self._broadcast([("reset", ())] * self.workers, "resetting envs")

    def step_start(self) -> None:
        self._send([("step", ())] * self.workers, "stepping envs")

    def step_wait(self) -> None:
        self._receive("step", "stepping envs")
        self._steps += 1
