"""The ``ray`` backend on a real local Ray cluster (started once for this module)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from metarl.sampling import SamplerConfigError, SamplerError, make_sampler
from tests.sampling_faulty_envs import spec, tasks_with
from tests.test_sampling_helpers import CounterActor, random_actor, wait_gone

ray = pytest.importorskip("ray")
TOY = spec(random_length=True)
pytestmark = pytest.mark.timeout(180)




def alive_actor_count() -> int:
    """Actors Ray's control store (GCS) reports as alive (the state API needs the dashboard)."""
    from ray._private import state

    return sum(info["State"] == "ALIVE" for info in state.actors().values())


def test_unreachable_address_fails_fast() -> None:
    t0 = time.monotonic()
    with pytest.raises(SamplerConfigError, match=r"ray_address='127.0.0.1:1' is unreachable"):
        make_sampler(TOY, backend="ray", workers=1, ray_address="127.0.0.1:1")
    with pytest.raises(SamplerConfigError, match=r"ray_address='nonsense' is invalid; allowed"):
        make_sampler(TOY, backend="ray", workers=1, ray_address="nonsense")
    assert time.monotonic() - t0 < 10


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def rs(cluster):
    with make_sampler(TOY, backend="ray", workers=2, timeout=60) as sampler:
        yield sampler


def test_same_seed_same_episodes_as_serial(rs) -> None:
    tasks = rs.family.sample(3)
    actor = random_actor(3, rs.family.action_space, 3)
    with make_sampler(TOY) as serial:
        want = serial.sample(tasks, actor, 4, episodes_per_trial=2, seed=11)
    assert rs.sample(tasks, actor, 4, episodes_per_trial=2, seed=11).equal(want)


def test_env_error_names_worker_task_and_traceback(rs) -> None:
    with pytest.raises(SamplerError) as err:
        rs.sample(tasks_with(rs.family, 4, fail_at=2, fault_task=3, random_length=False), CounterActor(), 1)
    msg = str(err.value)
    assert "ray worker 1 (pid" in msg and "task row 3" in msg and "goal': 4.0" in msg and "step 2" in msg
    assert "RuntimeError: injected failure at step 2" in msg and "Traceback" in msg
    with pytest.raises(SamplerError, match=r"ray worker 0.*non-finite.*step 5"):
        rs.sample(tasks_with(rs.family, 2, nan_at=5, fault_task=0, random_length=False), CounterActor(), 1)


def test_too_many_workers_for_the_cluster(cluster) -> None:
    with pytest.raises(SamplerConfigError, match=r"workers=3 .* Ray cluster has 2 CPUs; allowed: workers <= 2"):
        make_sampler(TOY, backend="ray", workers=3)


def test_killed_actor_is_a_clear_error_then_restarts(rs) -> None:
    victim = rs.backend.pids[0]

    class KillingActor(CounterActor):
        steps = 0

        def act(self, obs, state, episode_start, generator):
            KillingActor.steps += 1
            if KillingActor.steps == 3:
                os.kill(victim, signal.SIGKILL)
            return super().act(obs, state, episode_start, generator)

    old = list(rs.backend.pids)
    t0 = time.monotonic()
    with pytest.raises(SamplerError, match="a ray worker died while stepping envs"):
        rs.sample(rs.family.sample(2), KillingActor(), 2, seed=0)
    assert time.monotonic() - t0 < 60
    assert wait_gone(old, within=20.0)
    assert rs.sample(rs.family.sample(2), CounterActor(), 2, seed=0).n_steps > 0
    assert set(rs.backend.pids).isdisjoint(old)


def test_cluster_without_free_cpus_fails_fast(rs) -> None:
    with pytest.raises(SamplerConfigError, match=r"workers=1 needs 1 free CPUs but only 0 of the Ray cluster's 2"):
        make_sampler(TOY, backend="ray", workers=1)


def test_ctrl_c_and_close_leave_no_actors(rs, ctrl_c_raises: None) -> None:
    """Runs last: it closes the module's sampler."""
    pids = list(rs.backend.pids)
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))  # a real Ctrl-C, mid-collection
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            rs.sample(tasks_with(rs.family, 2, sleep=0.5, random_length=False), CounterActor(), 2)
    finally:
        timer.cancel()
    assert wait_gone(pids, within=20.0), "actors survived a KeyboardInterrupt"
    assert alive_actor_count() == 0
    assert rs.sample(rs.family.sample(2), CounterActor(), 2).n_steps > 0  # restarts
    pids = list(rs.backend.pids)
    assert alive_actor_count() == 2
    rs.close()
    assert wait_gone(pids, within=20.0)
    deadline = time.monotonic() + 20
    while alive_actor_count() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert alive_actor_count() == 0
