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

Step timeout (``timeout``, ``sampling.step_timeout``): actor methods run on
the actor process's main thread, so each actor bounds its own calls exactly as
a ``process`` worker does and reports the env slot, task, episode and step
that hung; the driver waits :func:`~metarl.sampling.backend.driver_wait` on top
and kills actors that still have not answered, naming them, their env slots
and tasks, and the step.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from metarl.envs import Task
from metarl.sampling.backend import (
    START_TIMEOUT,
    Backend,
    command_timeout,
    describe_slots,
    driver_wait,
    hung_message,
    partition,
    timed_out_error,
)
from metarl.sampling.buffers import INPUTS, OUTPUTS, Layout, StepBuffers
from metarl.sampling.errors import SamplerConfigError, SamplerError
from metarl.sampling.worker import WorkerCore

#: Seconds allowed for a TCP connection to ``ray_address`` before we call it unreachable.
CONNECT_TIMEOUT = 3.0

AFTERMATH = "all actors were killed (the next sample call starts new ones)"


@contextlib.contextmanager
def _holding_interrupts() -> Iterator[list[int]]:
    """Record SIGINT/SIGTERM instead of acting on them; yields the list of those that came."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return

    def hold(signum: int, frame: Any) -> None:
        if not held:
            print(f"\n{signal.Signals(signum).name} received while Ray starts; stopping once it is up, so it can "
                  "be shut down cleanly", file=sys.stderr, flush=True)
        if signum not in held:
            held.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def init_local_ray(ray: Any, **kwargs: Any) -> None:
    """``ray.init(**kwargs)`` for a local cluster, with Ctrl-C and SIGTERM held until it returns.

    Why: an interrupt inside ``ray.init`` lands before Ray has recorded its node, so neither
    ``ray.shutdown`` nor Ray's own exit hook can stop it; the raylet then dies with the driver
    (fate sharing) and leaves its ``ray::DashboardAgent`` and ``ray::RuntimeEnvAgent``
    running forever (measured with Ray 2.60). Those two agents start with every node,
    ``include_dashboard=False`` or not (it only drops the dashboard's web server), so they
    cannot be avoided, only shut down. Held signals are delivered once Ray is up, to the
    handlers that were in place (e.g. KeyboardInterrupt); Ray is shut down if that raises.
    """
    with _holding_interrupts() as held:
        ray.init(**kwargs)
    try:
        for sig in held:
            signal.raise_signal(sig)
    except BaseException:
        ray.shutdown()
        raise


class RayWorker:
    """The actor class (wrapped with ``ray.remote`` at use, so importing this module needs no Ray)."""

    def __init__(self, spec: str, index: int, horizon: int | None, sys_path: list[str],
                 timeout: float | None = None, threads: int = 1) -> None:
        # Plug-in families live in the driver's sys.path; make them importable here too.
        for path in reversed(sys_path):
            if path and path not in sys.path and os.path.isdir(path):
                sys.path.insert(0, path)
        name = f"ray worker {index} (pid {os.getpid()} on {socket.gethostname()})"
        self.core = WorkerCore(spec, name, horizon, shared=False, timeout=timeout, threads=threads)

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
                 timeout: float | None = None, cpus_per_worker: float = 1.0, threads: int | None = None) -> None:
        try:
            import ray
        except ImportError as exc:  # pragma: no cover - ray is an optional dependency
            raise SamplerConfigError("backend='ray' needs Ray: pip install 'metarl[distributed]'") from exc
        self._ray, self.spec, self.horizon, self.timeout = ray, spec, horizon, timeout
        self._owns_ray = False
        self._actors: list[Any] = []
        self.pids: list[int] = []
        self._names: list[str] = []
        if address is not None:
            check_address(address)  # even when Ray is up: a wrong address is a mistake worth reporting
        if not ray.is_initialized():
            if address is not None:
                try:
                    ray.init(address=address, log_to_driver=False)
                except ConnectionError as exc:
                    raise SamplerConfigError(f"ray_address={address!r}: cannot join the cluster: {exc}") from None
            else:
                init_local_ray(ray, num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
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
        # an actor holds cpus_per_worker of Ray's CPUs: that many threads may step its physics
        self.threads = int(threads) if threads is not None else max(1, int(cpus_per_worker))
        self._actor_cls = ray.remote(num_cpus=cpus_per_worker, max_restarts=0)(RayWorker)
        self._ranges: list[tuple[int, int]] = []
        self._tasks: list[Task] = []
        self._labels: list[str] = []
        self._steps = 0  # step calls since the last reset, for a hung actor's message
        self._buf: StepBuffers | None = None
        self._pending: list[Any] = []
        try:
            self._start()
        except BaseException:  # a failed or interrupted start: no actor, and no cluster of ours, outlives it
            self.close()
            raise

    # -- lifecycle ----------------------------------------------------------------
    def _start(self) -> None:
        path = [p for p in sys.path if p]
        self._actors = [self._actor_cls.remote(self.spec, i, self.horizon, path, self.timeout, self.threads)
                        for i in range(self.workers)]
        identities = self._call_all([("identity", ())] * self.workers, "starting")
        self.pids, self._names = [pid for pid, _ in identities], [name for _, name in identities]

    def _kill_actors(self) -> None:
        for actor in self._actors:
            try:
                self._ray.kill(actor, no_restart=True)
            except Exception:  # already dead or Ray gone: nothing left to stop
                pass
        self._actors, self.pids, self._names = [], [], []

    def abort(self) -> None:
        self._kill_actors()  # keep the Ray session: the next sample call starts new actors

    def close(self) -> None:
        self._kill_actors()
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()
            self._owns_ray = False

    def _call_all(self, messages: Sequence[tuple[str, tuple[Any, ...]]], what: str) -> list[Any]:
        return self._get(self._submit(messages), messages[0][0], what)

    def _submit(self, messages: Sequence[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        try:
            return [a.call.remote(cmd, *args) for a, (cmd, args) in zip(self._actors, messages, strict=True)]
        except BaseException:
            self._kill_actors()
            raise

    def _get(self, refs: list[Any], cmd: str, what: str) -> list[Any]:
        """Replies to ``cmd``, waiting a little longer than the actors' own deadline for it."""
        ray = self._ray
        limit = command_timeout(cmd, self.timeout)
        waited = driver_wait(limit) if limit is not None else (START_TIMEOUT if cmd in ("configure", "identity") else None)
        try:
            _, late = ray.wait(refs, num_returns=len(refs), timeout=waited)
            if late:
                self._hung([refs.index(r) for r in late], what, waited, limit)
            replies = ray.get(refs)
        except SamplerError:
            raise
        except ray.exceptions.RayActorError as exc:
            self._kill_actors()
            raise SamplerError(f"a ray worker died while {what}: {exc}; all actors were killed "
                               "(the next sample call starts new ones)", worker="ray worker") from None
        except BaseException:  # KeyboardInterrupt or a Ray failure: leave no actor behind
            self._kill_actors()
            raise
        failures = [payload for status, payload in replies if status != "ok"]
        timed_out = [f for f in failures if f.timed_out]
        if timed_out:  # envs interrupted mid-call: their state is unknown, start afresh
            self._kill_actors()
            raise timed_out_error(timed_out[0], limit, what, AFTERMATH)
        if failures:
            raise failures[0].to_error()
        return [payload for _, payload in replies]

    def _hung(self, late: list[int], what: str, waited: float | None, limit: float | None) -> None:
        """Actors that did not answer in time: kill them all; say which, at which step, holding which envs."""
        names = [self._names[i] if i < len(self._names) else f"ray worker {i}" for i in late]
        holds = [describe_slots(self._labels, self._tasks, *self._ranges[i]) if i < len(self._ranges) else "no envs yet"
                 for i in late]
        self._kill_actors()
        raise SamplerError("; ".join(hung_message(n, waited, limit, what, self._steps, h)
                                     for n, h in zip(names, holds, strict=True)) + f"; {AFTERMATH}", worker=names[0])

    # -- backend contract ---------------------------------------------------------
    def configure(self, tasks: Sequence[Task], labels: Sequence[str], layout: Layout) -> StepBuffers:
        if not self._actors:
            self._start()
        self._buf = StepBuffers.allocate(layout)
        self._ranges = partition(len(tasks), self.workers)
        self._tasks, self._labels = list(tasks), list(labels)
        msgs = [("configure", (list(tasks[lo:hi]), list(labels[lo:hi]), layout, lo)) for lo, hi in self._ranges]
        self._call_all(msgs, "building envs")
        return self._buf

    def _buffers(self) -> StepBuffers:
        """The buffers of the last :meth:`configure`; stepping before it is a caller's bug."""
        if self._buf is None:
            raise RuntimeError("configure() the Ray backend before resetting or stepping it")
        return self._buf

    def reset(self) -> None:
        b = self._buffers()
        self._steps = 0
        replies = self._call_all([("reset", (b.next_seed[lo:hi],)) for lo, hi in self._ranges], "resetting envs")
        for (lo, hi), (obs,) in zip(self._ranges, replies, strict=True):
            b.obs[lo:hi] = obs

    def step_start(self) -> None:
        b = self._buffers()
        inputs = [tuple(getattr(b, name)[lo:hi].copy() for name in INPUTS) for lo, hi in self._ranges]
        self._pending = self._submit([("step", (x,)) for x in inputs])

    def step_wait(self) -> None:
        b, refs, self._pending = self._buffers(), self._pending, []
        replies = self._get(refs, "step", "stepping envs")
        self._steps += 1
        for (lo, hi), outputs in zip(self._ranges, replies, strict=True):
            b.view(lo, hi).write(OUTPUTS, outputs)


__all__ = ["RayBackend", "RayWorker", "check_address", "init_local_ray"]
