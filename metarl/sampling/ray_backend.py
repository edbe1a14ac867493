"""``ray``: env workers as Ray actors, so collection can scale past one machine.

Each actor runs the same :class:`~metarl.sampling.worker.WorkerCore` as a
``process`` worker, but owns its buffers: a step sends the actor its slice of
the actions and gets its slice of the results back through Ray's object store.
Policy inference stays batched in the driver, as with ``process``.

``ray_address`` joins an existing cluster (checked for reachability first, so
a typo fails in seconds instead of Ray's long retry); without it, an already
initialized Ray is reused, else a local cluster is started and shut down on
``close``. Actors are killed on ``close``, on any failure and on
``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from metarl.envs import Task
from metarl.sampling.backend import Backend, partition
from metarl.sampling.buffers import INPUTS, OUTPUTS, Layout, StepBuffers
from metarl.sampling.errors import SamplerConfigError, SamplerError
from metarl.sampling.process import START_TIMEOUT
from metarl.sampling.worker import WorkerCore

#: Seconds allowed for a TCP connection to ``ray_address`` before we call it unreachable.
CONNECT_TIMEOUT = 3.0


class RayWorker:
    """The actor class (wrapped with ``ray.remote`` at use, so importing this module needs no Ray)."""

    def __init__(self, spec: str, index: int, horizon: int | None, sys_path: list[str]) -> None:
        # Plug-in families live in the driver's sys.path; make them importable here too.
        for path in reversed(sys_path):
            if path and path not in sys.path and os.path.isdir(path):
                sys.path.insert(0, path)
        name = f"ray worker {index} (pid {os.getpid()} on {socket.gethostname()})"
        self.core = WorkerCore(spec, name, horizon, shared=False)

    def call(self, cmd: str, *args: Any) -> tuple[str, Any]:
        return self.core.call(cmd, args)


def check_address(address: str) -> None:
    """Fail fast on an unreachable ``host:port`` (``auto`` and ``ray://`` are checked the same way when possible)."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise SamplerConfigError(f"ray_address={address!r} is invalid; allowed: 'host:port', 'ray://host:port', "
                                 "'auto', or none to start a local cluster")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise SamplerConfigError(f"ray_address={address!r} is unreachable ({exc}); start the cluster with "
                                 "`ray start --head`, fix the address, or pass no address for a local cluster") from None


class RayBackend(Backend):
    name = "ray"

    def __init__(self, spec: str, workers: int | None, horizon: int | None = None, *, address: str | None = None,
                 timeout: float | None = None, cpus_per_worker: float = 1.0) -> None:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is an optional dependency
            raise SamplerConfigError("backend='ray' needs Ray: pip install 'metarl[distributed]'") from exc
        self._ray, self.spec, self.horizon, self.timeout = ray, spec, horizon, timeout
        self._owns_ray = False
        self._actors: list[Any] = []
        self.pids: list[int] = []
        if address is not None:
            check_address(address)  # even when Ray is up: a wrong address is a mistake worth reporting
        if not ray.is_initialized():
            if address is not None:
                try:
                    ray.init(address=address, log_to_driver=False)
                except ConnectionError as exc:
                    raise SamplerConfigError(f"ray_address={address!r}: cannot join the cluster: {exc}") from None
            else:
                ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
                self._owns_ray = True
        cpus = ray.cluster_resources().get("CPU", 0)
        self.workers = int(workers if workers is not None else max(1, cpus // cpus_per_worker))
        if self.workers * cpus_per_worker > cpus:
            self.close()
            raise SamplerConfigError(
                f"workers={self.workers} with {cpus_per_worker:g} CPU each needs {self.workers * cpus_per_worker:g} "
                f"CPUs but the Ray cluster has {cpus:g} CPUs; allowed: workers <= {int(cpus // cpus_per_worker)}")
        free = ray.available_resources().get("CPU", 0)
        if self.workers * cpus_per_worker > free:
            self.close()
            raise SamplerConfigError(
                f"workers={self.workers} needs {self.workers * cpus_per_worker:g} free CPUs but only {free:g} of the "
                f"Ray cluster's {cpus:g} are free (other actors hold the rest); allowed now: "
                f"workers <= {int(free // cpus_per_worker)}, or close other samplers first")
        self._actor_cls = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(RayWorker)
        self._ranges: list[tuple[int, int]] = []
        self._buf: StepBuffers | None = None
        self._pending: list[Any] = []
        self._start()

    # -- lifecycle ----------------------------------------------------------------
    def _start(self) -> None:
        path = [p for p in sys.path if p]
        self._actors = [self._actor_cls.remote(self.spec, i, self.horizon, path) for i in range(self.workers)]
        self.pids = self._call_all([("pid", ())] * self.workers, "starting", START_TIMEOUT)

    def _kill_actors(self) -> None:
        for actor in self._actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # already dead or Ray gone: nothing left to stop
                pass
        self._actors, self.pids = [], []

    def abort(self) -> None:
        self._kill_actors()  # keep the Ray session: the next sample call starts new actors

    def close(self) -> None:
        self._kill_actors()
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False

    def _call_all(self, messages: Sequence[tuple[str, tuple]], what: str, timeout: float | None) -> list[Any]:
        return self._get(self._submit(messages), what, timeout)

    def _submit(self, messages: Sequence[tuple[str, tuple]]) -> list[Any]:
        try:
            return [a.call.remote(cmd, *args) for a, (cmd, args) in zip(self._actors, messages, strict=True)]
        except BaseException:
            self._kill_actors()
            raise

    def _get(self, refs: list[Any], what: str, timeout: float | None) -> list[Any]:
        ray = self._ray
        try:
            replies = ray.get(refs, timeout=timeout)
        except ray.exceptions.GetTimeoutError:
            self._kill_actors()
            raise SamplerError(f"ray workers did not answer within {timeout} s while {what}; all actors were "
                               "killed (the next sample call starts new ones)") from None
        except ray.exceptions.RayActorError as exc:
            self._kill_actors()
            raise SamplerError(f"a ray worker died while {what}: {exc}; all actors were killed "
                               "(the next sample call starts new ones)", worker="ray worker") from None
        except BaseException:  # KeyboardInterrupt or a Ray failure: leave no actor behind
            self._kill_actors()
            raise
        failures = [payload for status, payload in replies if status != "ok"]
        if failures:
            raise failures[0].to_error()
        return [payload for _, payload in replies]

    # -- backend contract ---------------------------------------------------------
    def configure(self, tasks: Sequence[Task], labels: Sequence[str], layout: Layout) -> StepBuffers:
        if not self._actors:
            self._start()
        self._buf = StepBuffers.allocate(layout)
        self._ranges = partition(len(tasks), self.workers)
        msgs = [("configure", (list(tasks[lo:hi]), list(labels[lo:hi]), layout, lo)) for lo, hi in self._ranges]
        self._call_all(msgs, "building envs", START_TIMEOUT if self.timeout is None else max(self.timeout, 60.0))
        return self._buf

    def reset(self) -> None:
        b = self._buf
        replies = self._call_all([("reset", (b.next_seed[lo:hi],)) for lo, hi in self._ranges],
                                 "resetting envs", self.timeout)
        for (lo, hi), (obs,) in zip(self._ranges, replies, strict=True):
            b.obs[lo:hi] = obs

    def step_start(self) -> None:
        b = self._buf
        inputs = [tuple(getattr(b, name)[lo:hi].copy() for name in INPUTS) for lo, hi in self._ranges]
        self._pending = self._submit([("step", (x,)) for x in inputs])

    def step_wait(self) -> None:
        b, refs, self._pending = self._buf, self._pending, []
        replies = self._get(refs, "stepping envs", self.timeout)
        for (lo, hi), outputs in zip(self._ranges, replies, strict=True):
            b.view(lo, hi).write(OUTPUTS, outputs)


__all__ = ["RayBackend", "RayWorker", "check_address"]
