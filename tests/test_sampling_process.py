"""The ``process`` backend: same results as serial, clear errors, no hangs, no leftover processes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from metarl.sampling import SamplerConfigError, SamplerError, make_sampler
from tests.sampling_faulty_envs import spec, tasks_with
from tests.test_sampling_helpers import CounterActor, alive, children, constant_actor, random_actor, wait_gone

TOY = spec(random_length=True)
pytestmark = pytest.mark.timeout(120)




@pytest.fixture(scope="module")
def proc():
    with make_sampler(TOY, backend="process", workers=2, timeout=60) as sampler:
        yield sampler


def test_same_seed_same_episodes_as_serial(proc) -> None:
    tasks = proc.family.sample(3)
    actor = random_actor(3, proc.family.action_space, 3)
    with make_sampler(TOY) as serial:
        want = serial.sample(tasks, actor, 4, episodes_per_trial=2, seed=11)
    got = proc.sample(tasks, actor, 4, episodes_per_trial=2, seed=11)
    assert got.equal(want)
    assert len(set(got.lengths.flatten().tolist())) > 1  # unequal lengths were exercised


def test_per_task_params_reach_the_right_envs(proc) -> None:
    tasks = proc.family.sample(3)[::-1]
    ep = proc.sample(tasks, constant_actor(3, proc.family.action_space, [1.0, 2.0, -3.0]), 2, seed=0)
    real = ep.mask.bool()
    for row, (task, c) in enumerate(zip(tasks, [1.0, 2.0, -3.0], strict=True)):
        assert (ep.observations[row, ..., 0][real[row]] == task.params["goal"]).all()
        assert (ep.rewards[row][real[row]] == c).all()


def test_more_workers_than_envs_fails_fast(proc) -> None:
    with pytest.raises(SamplerConfigError, match=r"workers=2 is more than the 1 envs.*allowed: workers <= 1"):
        proc.sample(proc.family.sample(1), CounterActor(), 1)


def test_env_error_names_worker_task_and_traceback(proc) -> None:
    t0 = time.monotonic()
    with pytest.raises(SamplerError) as err:
        proc.sample(tasks_with(proc.family, 4, fail_at=2, fault_task=3, random_length=False), CounterActor(), 1)
    assert time.monotonic() - t0 < 30
    msg = str(err.value)
    assert "process worker 1 (pid" in msg and "task row 3" in msg and "goal': 4.0" in msg and "step 2" in msg
    assert "RuntimeError: injected failure at step 2" in msg and "Traceback" in msg and "in step" in msg
    assert err.value.worker.startswith("process worker 1")
    # a clean env error leaves the workers usable
    assert proc.sample(proc.family.sample(2), CounterActor(), 1, seed=0).n_steps > 0


def test_nonfinite_in_a_worker_names_env_and_step(proc) -> None:
    with pytest.raises(SamplerError, match=r"process worker 0.*non-finite.*task row 0.*step 5"):
        proc.sample(tasks_with(proc.family, 2, nan_at=5, fault_task=0, random_length=False), CounterActor(), 1)


def test_killed_worker_is_a_clear_error_then_restarts(proc) -> None:
    victim = proc.backend.pids[1]

    class KillingActor(CounterActor):
        steps = 0

        def act(self, obs, state, episode_start, generator):
            KillingActor.steps += 1
            if KillingActor.steps == 3:
                os.kill(victim, signal.SIGKILL)
                time.sleep(0.2)
            return super().act(obs, state, episode_start, generator)

    old = list(proc.backend.pids)
    t0 = time.monotonic()
    with pytest.raises(SamplerError, match=rf"process worker 1 \(pid {victim}\) was killed by signal SIGKILL"):
        proc.sample(proc.family.sample(2), KillingActor(), 2, seed=0)
    assert time.monotonic() - t0 < 30
    assert wait_gone(old)  # the survivor was stopped too
    ep = proc.sample(proc.family.sample(2), CounterActor(), 2, seed=0)  # bounded restart: fresh workers
    assert ep.n_steps > 0 and set(proc.backend.pids).isdisjoint(old)


def test_step_timeout_is_an_error_not_a_hang() -> None:
    before = children()
    with make_sampler(spec(sleep=3.0), backend="process", workers=1, timeout=0.5) as s:
        pids = list(s.backend.pids)
        t0 = time.monotonic()
        with pytest.raises(SamplerError, match=r"process worker 0 .* did not answer within 0.5 s"):
            s.sample(s.family.sample(1), CounterActor(), 1)
        assert time.monotonic() - t0 < 10
        assert wait_gone(pids)
    assert children() <= before


def test_close_and_ctrl_c_leave_no_processes(ctrl_c_raises: None) -> None:
    before = children()
    sampler = make_sampler(spec(sleep=0.02, horizon=1000), backend="process", workers=2)
    pids = list(sampler.backend.pids)
    assert all(alive(p) for p in pids) and set(pids) <= children()
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))  # a real Ctrl-C, mid-collection
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sampler.sample(sampler.family.sample(2), CounterActor(), 2)
    finally:
        timer.cancel()
    assert wait_gone(pids), "workers survived a KeyboardInterrupt"
    ep = sampler.sample(tasks_with(sampler.family, 2, sleep=0.0), CounterActor(), 2, seed=0)  # restarts
    assert ep.n_steps == 4 * 1000
    pids = list(sampler.backend.pids)
    sampler.close()
    sampler.close()  # idempotent
    assert wait_gone(pids) and children() <= before
    with pytest.raises(SamplerError, match="closed"):
        sampler.sample(sampler.family.sample(2), CounterActor(), 2)


def test_bad_family_in_workers_is_reported() -> None:
    with pytest.raises(Exception, match="cannot import module"):
        make_sampler("tests.no_such_module:family", backend="process", workers=1)
