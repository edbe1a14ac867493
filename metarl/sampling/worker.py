"""What runs inside a worker process or Ray actor: a command dispatcher around an EnvStepper.

Workers receive the family *spec string* and rebuild the family themselves
(Meta-World families hold big benchmark objects; tasks carry everything an env
needs). Every command either returns ``("ok", result)`` or ``("err",
RemoteFailure)``; exceptions never cross the process boundary as objects, so a
user env raising an unpicklable exception still produces a readable error.

A worker enforces the step timeout itself (:func:`~metarl.sampling.backend.call_within`
around each command, on its main thread), so its report names the env slot,
task, episode and step that hung. That also bounds a worker whose driver is
gone: it does not hang forever in an env, it times out, finds the pipe closed
and exits.

This module imports no torch: workers only step envs, which keeps their start
fast and their memory small.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from metarl.envs import Task, make_family
from metarl.sampling.backend import call_within, command_timeout
from metarl.sampling.buffers import INPUTS, Layout, SharedBlock, StepBuffers
from metarl.sampling.errors import RemoteFailure
from metarl.sampling.stepper import EnvStepper


class WorkerCore:
    """Commands a driver can send: ``configure``, ``reset``, ``step``, ``pid``, ``identity``.

    ``shared=True`` (process backend): buffers are views into the driver's
    shared-memory block and ``step`` carries no data. ``shared=False`` (Ray):
    the core owns its buffers; ``step`` receives the inputs and returns the outputs.
    ``timeout`` is the step timeout (:func:`~metarl.sampling.backend.command_timeout`).
    """

    def __init__(self, spec: str, name: str, horizon: int | None, shared: bool, timeout: float | None = None,
                 threads: int = 1) -> None:
        self.name, self.shared, self.timeout = name, shared, timeout
        self.stepper = EnvStepper(make_family(spec), name, horizon, threads)
        self._shm: SharedBlock | None = None
        self._full: StepBuffers | None = None

    def call(self, cmd: str, args: Sequence[Any]) -> tuple[str, Any]:
        try:
            return "ok", call_within(command_timeout(cmd, self.timeout), getattr(self, f"cmd_{cmd}"), *args)
        except Exception as exc:  # report every failure, whatever the env raised
            return "err", RemoteFailure.capture(self.name, exc)

    def cmd_pid(self) -> int:
        return os.getpid()

    def cmd_identity(self) -> tuple[int, str]:
        """``(pid, name)``: a driver names a worker that stops answering as the worker names itself."""
        return os.getpid(), self.name

    def cmd_configure(self, tasks: list[Task], labels: list[str], layout: Layout, lo: int,
                      shm_name: str | None = None) -> None:
        if self.shared:
            if self._shm is None or self._shm.name != shm_name:
                self._drop_shm()
                self._shm = SharedBlock(name=shm_name)
            self._full = StepBuffers.allocate(layout, self._shm.buf)  # the layout may change between calls
            buf = self._full.view(lo, lo + len(tasks))
        else:
            buf = StepBuffers.allocate(Layout(len(tasks), layout.obs_shape, layout.act_shape, layout.act_dtype))
        self.stepper.configure(tasks, labels, buf, offset=lo)

    def cmd_reset(self, seeds: np.ndarray | None = None) -> tuple[np.ndarray, ...] | None:
        if seeds is not None:
            self.stepper.buffers().next_seed[...] = seeds
        self.stepper.reset()
        return None if self.shared else (self.stepper.buffers().obs,)

    def cmd_step(self, inputs: tuple[np.ndarray, ...] | None = None) -> tuple[np.ndarray, ...] | None:
        if inputs is not None:
            self.stepper.buffers().write(INPUTS, inputs)
        self.stepper.step()
        return None if self.shared else self.stepper.buffers().outputs()

    def _drop_shm(self) -> None:
        if self._shm is not None:
            self.stepper.buf = None
            if self._full is not None:
                self._full.release()
            self._full = None
            self._shm.close()
            self._shm = None

    def close(self) -> None:
        self.stepper.close()
        self._drop_shm()


def process_worker_main(conn: Connection, spec: str, index: int, horizon: int | None,
                        timeout: float | None = None, threads: int = 1) -> None:
    """Entry point of a ``process``-backend worker: serve commands until told to stop or the driver goes.

    SIGINT is ignored (from birth, see ``process._born_ignoring_sigint``):
    Ctrl-C in a terminal reaches the whole process group, and the driver, not each
    worker, decides how to shut down. A closed pipe (the
    driver died) ends the loop, so workers never outlive their driver.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    name = f"process worker {index} (pid {os.getpid()})"
    try:
        core = WorkerCore(spec, name, horizon, shared=True, timeout=timeout, threads=threads)
    except Exception as exc:
        conn.send(("err", RemoteFailure.capture(name, exc)))
        return
    conn.send(("ok", os.getpid()))
    try:
        while True:
            try:
                cmd, args = conn.recv()
            except (EOFError, OSError):
                break
            if cmd == "close":
                break
            reply = core.call(cmd, args)
            try:
                conn.send(reply)
            except OSError:  # the driver is gone (e.g. it gave up on this worker): nobody to answer
                break
    finally:
        core.close()
        conn.close()
