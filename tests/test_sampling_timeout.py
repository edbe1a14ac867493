"""``sampling.step_timeout``: a hung env ends collection with a SamplerError on every backend.

The error must come within about the timeout, say which worker, env slot, task and
step hung, and leave no process behind; a run whose env hangs must end (exit 1)
within about the timeout after a first SIGTERM, which only asks it to stop after
the current iteration. The hanging families are in :mod:`tests.sampling_hanging_envs`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metarl.api import train
from metarl.sampling import SamplerError, make_sampler
from metarl.sampling.backend import call_within
from metarl.sampling.errors import StepTimeout
from tests.sampling_faulty_envs import tasks_with
from tests.sampling_hanging_envs import MARKER_ENV, spec
from tests.test_sampling_helpers import CounterActor, alive, children, session, wait_gone

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def no_leftovers() -> Iterator[None]:
    """Fails the test if it leaves a child process behind (the resource tracker, which lives as long
    as this process and is started by the first shared-memory block, is started before counting)."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    before = children()
    yield
    assert wait_gone(list(children() - before), within=5.0), f"left behind: {children() - before}"


def _timed(fn: Callable[[], object]) -> tuple[SamplerError, float]:
    """The SamplerError ``fn`` raises and how long it took to come."""
    t0 = time.monotonic()
    with pytest.raises(SamplerError) as err:
        fn()
    return err.value, time.monotonic() - t0


# ------------------------------------------------------------------------------ backends

WHERE = (r"step of env slot 2 \(task row 1, trial 0\), task tests\.sampling_hanging_envs:hang\?mode={mode}&at=3&task=1"
         r"/train#1\{{'goal': 2\.0\}}, episode 0 of the trial, step 3")


@pytest.mark.parametrize("mode", ["sleep", "busy"])
def test_serial_timeout_names_the_env_task_and_step_then_recovers(mode: str) -> None:
    """Task 1 hangs at step 3 (a system call, or a pure-Python loop); its first slot is slot 2."""
    with make_sampler(spec(mode, at=3, task=1), timeout=1.0) as s:
        tasks = s.family.sample(4)
        err, took = _timed(lambda: s.sample(tasks, CounterActor(), 2))
        assert took < 2.0
        assert re.match(r"serial sampler \(in-process\): " + WHERE.format(mode=mode)
                        + r" did not return within 1 s \(sampling\.step_timeout\)\n", str(err)), str(err)
        assert "hang_forever" in str(err)  # the traceback shows where the env was stuck
        # the interrupted envs were dropped; fresh ones serve the next call
        assert s.sample(tasks[::2], CounterActor(), 2, seed=0).n_steps == 2 * 2 * 10


def test_serial_timeout_covers_reset() -> None:
    with make_sampler(spec("sleep", at=-1, task=0), timeout=1.0) as s:
        err, took = _timed(lambda: s.sample(s.family.sample(2), CounterActor(), 1))
    assert took < 2.0
    assert re.match(r"serial sampler \(in-process\): reset of env slot 0 \(task row 0, trial 0\), .* "
                    r"did not return within 1 s \(sampling\.step_timeout\)", str(err)), str(err)


@pytest.mark.parametrize("mode", ["sleep", "busy"])
def test_process_timeout_names_worker_env_task_and_step_and_stops_workers(mode: str, no_leftovers: None) -> None:
    with make_sampler(spec(mode, at=3, task=1), backend="process", workers=2, timeout=1.5) as s:
        pids = list(s.backend.pids)
        err, took = _timed(lambda: s.sample(s.family.sample(4), CounterActor(), 2))
        assert took < 3.0
        first = str(err).splitlines()[0]
        assert re.match(rf"process worker 0 \(pid {pids[0]}\) did not answer within 1\.5 s \(sampling\.step_timeout\) "
                        r"while stepping envs: its " + WHERE.format(mode=mode) + r" did not return; all workers were "
                        r"stopped", first), first
        assert err.worker == f"process worker 0 (pid {pids[0]})" and "hang_forever" in str(err)
        assert wait_gone(pids, within=5.0)  # both workers, the hung one and the healthy one


def test_process_driver_kills_a_worker_its_own_timeout_cannot_reach(no_leftovers: None) -> None:
    """Native code that never returns to the interpreter (here: SIGALRM masked) is beyond the
    worker's alarm; the driver names the worker, what it holds and the step, and kills it."""
    with make_sampler(spec("native", at=3, task=2), backend="process", workers=2, timeout=2.0) as s:
        pids = list(s.backend.pids)
        err, took = _timed(lambda: s.sample(s.family.sample(4), CounterActor(), 2))
        assert took < 4.0
        assert re.match(rf"process worker 1 \(pid {pids[1]}\) did not answer within 2 s \(sampling\.step_timeout\) "
                        r"while stepping envs \(step 3 since the envs were reset\), nor after 2\.5 s: its own timeout "
                        r"could not interrupt the call .*; it holds env slots 4-7: slot 4 \(task row 2, trial 0\) "
                        r"tests\.sampling_hanging_envs:hang\?mode=native&at=3&task=2/train#2\{'goal': 3\.0\}, "
                        r"slot 5 \(task row 2, trial 1\) .*, and 1 more; all workers were stopped", str(err)), str(err)
        assert wait_gone(pids, within=5.0)


@pytest.fixture(scope="module")
def ray_sampler() -> Iterator[object]:
    """One local Ray cluster and sampler; no task hangs unless its params say so (``tasks_with``)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with make_sampler(spec("sleep", at=3, task=99), backend="ray", workers=2, timeout=1.5) as s:
            yield s
    finally:
        ray.shutdown()


@pytest.mark.parametrize(("mode", "worker", "expect"), [
    ("sleep", 0, r"while stepping envs: its step of env slot 2 \(task row 1, trial 0\), .*, episode 0 of the trial, "
                 r"step 3 did not return; all actors were killed"),
    ("native", 1, r"while stepping envs \(step 3 since the envs were reset\), nor after 2 s: its own timeout could not "
                  r"interrupt the call .*; it holds env slots 4-7: slot 4 \(task row 2, trial 0\) .*; all actors were killed"),
])
def test_ray_timeout_names_the_actor_and_where_and_kills_the_actors(ray_sampler, mode: str, worker: int,
                                                                    expect: str) -> None:
    """An actor bounds its own calls (actor methods run on its main thread); the driver backs it up."""
    s = ray_sampler
    tasks = tasks_with(s.family, 4, task=worker + 1 if mode == "sleep" else 2, mode=mode)
    s.sample(s.family.sample(2), CounterActor(), 1)  # (re)start actors, so their pids are known
    pids = list(s.backend.pids)
    err, took = _timed(lambda: s.sample(tasks, CounterActor(), 2))
    assert took < 3.0
    assert re.match(rf"ray worker {worker} \(pid {pids[worker]} on .*\) did not answer within 1\.5 s "
                    rf"\(sampling\.step_timeout\) " + expect, str(err)), str(err)
    assert wait_gone(pids, within=20.0)


# ------------------------------------------------------------------------------ the alarm itself


@pytest.fixture
def outer_alarm() -> Iterator[list[float]]:
    """A foreign SIGALRM handler recording when it ran; the test's own (pytest-timeout) alarm is put back."""
    fired: list[float] = []
    saved_handler = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    saved_timer = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, saved_handler)
        if saved_timer[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *saved_timer)


def test_an_outer_alarm_due_first_still_fires_and_one_due_later_is_put_back(outer_alarm: list[float]) -> None:
    t0 = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    assert call_within(5.0, time.sleep, 0.5) is None  # the outer alarm interrupted nothing of ours
    assert len(outer_alarm) == 1 and 0.15 < outer_alarm[0] - t0 < 0.45
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    call_within(5.0, time.sleep, 0.05)
    assert 29.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30.0  # re-armed with what was left
    with pytest.raises(StepTimeout):
        call_within(0.2, time.sleep, 5)
    assert 29.0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30.0 and len(outer_alarm) == 1


def test_an_env_that_swallows_the_timeout_is_still_reported() -> None:
    def stubborn() -> str:
        end = time.monotonic() + 0.6
        while time.monotonic() < end:
            try:
                time.sleep(0.01)
            except Exception:  # an env's over-broad except
                pass
        return "finished late"

    with pytest.raises(StepTimeout, match=r"did not return within 0\.2 s \(sampling\.step_timeout\)"):
        call_within(0.2, stubborn)


def test_off_the_main_thread_the_call_runs_unbounded_with_a_warning() -> None:
    out: list[object] = []

    def worker() -> None:
        with pytest.warns(RuntimeWarning, match="not enforced for envs stepped off the main thread"):
            out.append(call_within(0.05, lambda: time.sleep(0.2) or "done"))

    t = threading.Thread(target=worker)
    t.start()
    t.join(10)
    assert out == ["done"]


# ------------------------------------------------------------------------------ whole runs

TINY = ["meta_batch_size=2", "episodes_per_task=2", "hidden_sizes=[8]", "trainer.iterations=2",
        "trainer.stdout=false", "trainer.progress=false", "trainer.tensorboard=false"]


def test_api_train_with_a_hung_env_ends_in_the_timeout_error(tmp_path: Path) -> None:
    err, took = _timed(lambda: train("maml-trpo", spec("sleep", at=3), overrides=[*TINY, "sampling.step_timeout=1"],
                                     run_dir=tmp_path / "run"))
    assert took < 15.0  # building the agent, then at most one timeout
    assert "did not return within 1 s (sampling.step_timeout)" in str(err)
    assert not (tmp_path / "run" / "checkpoints").exists() or not any((tmp_path / "run" / "checkpoints").iterdir())


def _metarl() -> list[str]:
    script = Path(sys.executable).with_name("metarl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "metarl"]


@pytest.mark.parametrize("backend", ["serial", "process"])
def test_first_sigterm_to_a_hung_train_ends_it_within_the_timeout(tmp_path: Path, backend: str) -> None:
    marker = tmp_path / "hanging"
    env = {**os.environ, "PYTHONPATH": str(REPO), MARKER_ENV: str(marker)}
    sets = [f for s in [*TINY, "sampling.step_timeout=2", f"sampling.backend={backend}", "sampling.workers=1"]
            for f in ("--set", s)]
    proc = subprocess.Popen([*_metarl(), "train", "maml-trpo", "--env", spec("sleep", at=3), "--run-dir",
                             str(tmp_path / "run"), *sets], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), proc.communicate(timeout=10)
        hung = [int(p) for p in marker.read_text().split()]
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1, err
    assert took < 4.0, err  # 2 x the timeout: the hung step ends by its timeout, not by the next iteration
    assert "SIGTERM received" in err and "step 3 did not return" in err, err
    assert "within 2 s (sampling.step_timeout)" in err, err
    assert wait_gone(hung, within=5.0) and not any(alive(p) for p in hung)
    deadline = time.monotonic() + 5
    while session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not session(proc.pid), "processes of the run outlived it"
