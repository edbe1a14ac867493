"""The batched MuJoCo locomotion path against gymnasium's envs (the reference it replaces).

Exactness: the same task, reset seeds and actions give bit-identical observations, rewards,
terminations and info values (dtypes included), on every thread count; through the sampler, the
batched and the gymnasium path give equal Episodes on every backend. Faults: a blown-up
simulation is an error naming the slot, the task and MuJoCo's warning.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from metarl.envs import EnvSpecError, make_family
from metarl.envs.env_batch import GymEnvBatch
from metarl.envs.mujoco_batch import LocomotionBatch
from metarl.sampling import make_sampler
from metarl.sampling.buffers import Layout, StepBuffers
from metarl.sampling.errors import EnvFailure
from metarl.sampling.stepper import EnvStepper
from tests.test_sampling_helpers import random_actor

pytestmark = pytest.mark.timeout(300)

SPECS = ["halfcheetah-vel", "halfcheetah-dir", "ant-dir", "ant-dir?planar=true", "ant-goal"]


def compare_to_gymnasium(spec: str, seed: int, threads: int, steps: int = 150, n: int = 5) -> int:
    """Step n envs both ways with seeded random float32 actions (the sampler's dtype); resets on
    termination and every 60 steps with fresh seeds. Returns how many episodes terminated."""
    family = make_family(spec)
    tasks = family.sample(n, seed)
    envs = [family.make_env(t) for t in tasks]
    batch = family.make_batch(threads)
    assert isinstance(batch, LocomotionBatch)
    batch.configure(tasks)
    obs = np.zeros((n, *family.observation_space.shape))
    slots = np.arange(n)
    seeds = [seed * 100 + i for i in range(n)]
    batch.reset(slots, seeds, obs)
    for i, env in enumerate(envs):
        np.testing.assert_array_equal(obs[i], env.reset(seed=seeds[i])[0])
    rng = np.random.default_rng(seed)
    terminations = 0
    for t in range(steps):
        actions = rng.uniform(-1, 1, size=(n, *family.action_space.shape)).astype(np.float32)
        result, info = batch.step_with_info(slots, actions, obs)
        for i, env in enumerate(envs):
            o, r, term, trunc, inf = env.step(actions[i])
            assert np.array_equal(o, obs[i]), f"{spec} step {t} slot {i}: obs differ by {np.abs(o - obs[i]).max()}"
            assert r == result.reward[i], f"{spec} step {t} slot {i}: reward {r!r} vs {result.reward[i]!r}"
            assert term == result.terminated[i] and not trunc and not result.truncated[i]
            assert set(inf) == set(info), f"info keys {sorted(inf)} vs {sorted(info)}"
            for key, value in inf.items():
                assert value == info[key][i], f"{spec} step {t} slot {i}: info[{key!r}] {value!r} vs {info[key][i]!r}"
                assert np.asarray(value).dtype == info[key].dtype, key
        ended = np.flatnonzero(result.terminated) if t % 60 != 59 else slots
        terminations += int(result.terminated.sum())
        if len(ended):
            fresh = [int(x) for x in rng.integers(2**31, size=len(ended))]
            batch.reset(ended, fresh, obs)
            for i, s in zip(ended.tolist(), fresh, strict=True):
                np.testing.assert_array_equal(obs[i], envs[i].reset(seed=s)[0])
    batch.close()
    return terminations


@pytest.mark.parametrize("spec", SPECS)
def test_batch_is_bit_identical_to_gymnasium(spec: str) -> None:
    terminations = compare_to_gymnasium(spec, seed=1, threads=2)
    if spec.startswith("ant"):  # random actions topple Ant now and then: the termination logic is exercised
        terminations += compare_to_gymnasium(spec, seed=2, threads=1, steps=300)
        assert terminations > 0


def test_unseeded_reset_continues_the_generator_like_gymnasium() -> None:
    family = make_family("halfcheetah-vel")
    task = family.sample(1, 0)
    env, batch = family.make_env(task[0]), family.make_batch()
    batch.configure(task)
    obs = np.zeros((1, 17))
    env.reset(seed=7)
    batch.reset(np.arange(1), [7], obs)
    for _ in range(3):
        batch.reset(np.arange(1), [None], obs)
        np.testing.assert_array_equal(obs[0], env.reset()[0])


@pytest.mark.parametrize("spec", ["halfcheetah-vel?horizon=30", "ant-goal?horizon=60"])
def test_sampler_episodes_equal_on_both_paths_and_all_backends(spec: str) -> None:
    family = make_family(spec)
    tasks = family.sample(3, 0)
    actor = random_actor(family.observation_space.shape[0], family.action_space, 3)
    with make_sampler(spec.replace("?", "?batched=false&")) as gym_path:
        want = gym_path.sample(tasks, actor, 4, seed=5)
    for backend, kwargs in [("serial", {"env_threads": 1}), ("serial", {"env_threads": 2}),
                            ("process", {"workers": 2})]:
        with make_sampler(spec, backend=backend, **kwargs) as s:
            got = s.sample(tasks, actor, 4, seed=5)
        assert want.equal(got), (backend, kwargs)
    assert not torch.equal(want.rewards[0], want.rewards[1])
    if spec.startswith("ant"):
        assert isinstance(make_family(spec.replace("?", "?batched=false&")).make_batch(), GymEnvBatch)


def test_ray_backend_agrees_on_the_batched_path() -> None:
    ray = pytest.importorskip("ray")
    spec = "halfcheetah-vel?horizon=25"
    family = make_family(spec)
    tasks = family.sample(2, 0)
    actor = random_actor(17, family.action_space, 2)
    with make_sampler(spec) as s:
        want = s.sample(tasks, actor, 2, seed=1)
    started = not ray.is_initialized()
    try:
        if started:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        with make_sampler(spec, backend="ray", workers=2) as r:
            assert want.equal(r.sample(tasks, actor, 2, seed=1))
    finally:
        if started:
            ray.shutdown()


def stepper_for(spec: str, n: int) -> EnvStepper:
    family = make_family(spec)
    stepper = EnvStepper(family, "test stepper", threads=2)
    buf = StepBuffers.allocate(Layout(n, family.observation_space.shape, family.action_space.shape, "float32"))
    buf.next_seed[:] = np.arange(n)
    buf.active[:] = True
    stepper.configure(family.sample(n, 0), [f"task row {i}, trial 0" for i in range(n)], buf)
    stepper.reset()
    return stepper


@pytest.mark.parametrize("blow_up", ["qvel", "qpos"])
def test_unstable_simulation_names_slot_task_and_warning(blow_up: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # MuJoCo appends its warnings to ./MUJOCO_LOG.TXT
    stepper = stepper_for("ant-goal", 6)
    stepper.buf.actions[:] = 0.1
    stepper.step()
    data = stepper.batch.datas[4]
    if blow_up == "qvel":
        data.qvel[:] = 1e12  # beyond MuJoCo's limit: it warns and resets the env
    else:
        data.qpos[2] = np.nan
    with pytest.raises(EnvFailure, match=r"step of env slot 4 \(task row 4, trial 0\), task ant-goal/train#4.*"
                                         r"episode 0 of the trial, step 1.*UnstableSimulation: MuJoCo reported "
                                         r"mjWARN_BAD(QVEL|QPOS|QACC)") as err:
        stepper.step()
    assert err.value.slot == 4 and err.value.task.startswith("ant-goal/train#4")
    stepper.close()


def test_threads_do_not_change_results_and_bad_flag_is_rejected() -> None:
    a, b = stepper_for("halfcheetah-vel", 9), stepper_for("halfcheetah-vel", 9)
    b.batch.threads = 1
    for t in range(20):
        a.buf.actions[:] = b.buf.actions[:] = np.sin(np.arange(9 * 6) + t).reshape(9, 6)
        a.step()
        b.step()
        np.testing.assert_array_equal(a.buf.obs, b.buf.obs)
        np.testing.assert_array_equal(a.buf.reward, b.buf.reward)
    a.close()
    b.close()
    with pytest.raises(EnvSpecError, match="batched=2; allowed: true or false"):
        make_family("halfcheetah-vel?batched=2")


def test_helper_thread_errors_surface_and_threads_end_with_the_batch(monkeypatch) -> None:
    """A failure on a helper thread is the step's error, naming the slot; the threads live as long as the batch."""
    import gc
    import threading

    import mujoco

    def live() -> int:
        return sum(t.name.startswith("metarl-mujoco") for t in threading.enumerate())

    before = live()
    stepper = stepper_for("halfcheetah-vel", 12)
    stepper.batch.threads = 2
    stepper.buf.actions[:] = 0.1
    stepper.step()  # starts the helper thread
    assert live() == before + 1
    bad, real = stepper.batch.datas[7], mujoco.mj_step

    def flaky(model, data, nstep=1):
        if data is bad:
            raise RuntimeError("boom")
        return real(model, data, nstep)

    monkeypatch.setattr(mujoco, "mj_step", flaky)
    for _ in range(3):  # whichever thread takes slot 7, the step fails naming it
        with pytest.raises(EnvFailure, match=r"step of env slot 7 .*RuntimeError: boom") as err:
            stepper.step()
        assert err.value.slot == 7
    monkeypatch.setattr(mujoco, "mj_step", real)
    stepper.close()
    assert live() == before
    dropped = stepper_for("halfcheetah-vel", 12)
    dropped.batch.threads = 2
    dropped.step()
    assert live() == before + 1
    del dropped
    gc.collect()
    for _ in range(100):
        if live() == before:
            break
        threading.Event().wait(0.01)
    assert live() == before
