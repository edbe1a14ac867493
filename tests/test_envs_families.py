"""Every built-in family: spaces, seeding, splits, horizons, and check_env."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from metarl.envs import make_family

GYM_FAMILIES = ["point-nav", "bandit?k=5&n=100", "tabular-mdp", "halfcheetah-vel", "halfcheetah-dir",
                "ant-dir", "ant-dir?planar=true", "ant-goal", "gym:Pendulum-v1?g=8..12"]
CONTINUOUS = ["point-nav", "bandit?k=5&n=100", "tabular-mdp", "halfcheetah-vel", "ant-dir?planar=true",
              "ant-goal", "gym:Pendulum-v1?g=8..12"]


def rollout(family, task, seed: int, steps: int | None = None):
    env = family.make_env(task)
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    first = obs
    n = 0
    for n in range(1, (steps or family.horizon) + 1):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs.astype(env.observation_space.dtype)), obs
        assert np.isfinite(reward)
        if terminated or truncated:
            break
    env.close()
    return first, n, terminated, truncated


@pytest.mark.parametrize("spec", GYM_FAMILIES)
def test_spaces_seeding_and_horizon(spec):
    family = make_family(spec)
    tasks = family.sample(3, rng=7, split="train")
    assert tasks == family.sample(3, rng=7, split="train")
    assert all(t.split == "train" for t in tasks)
    env = family.make_env(tasks[0])
    assert env.observation_space.shape == family.observation_space.shape
    assert env.action_space == family.action_space
    env.close()
    first_a, n, terminated, truncated = rollout(family, tasks[0], seed=3)
    first_b, *_ = rollout(family, tasks[0], seed=3)
    np.testing.assert_array_equal(first_a, first_b)
    assert n <= family.horizon
    assert terminated or truncated, "episode must end by the horizon"
    if not terminated:
        assert n == family.horizon


@pytest.mark.parametrize("spec", CONTINUOUS)
def test_train_and_test_splits_are_disjoint(spec):
    family = make_family(spec)
    train = {repr(t.params) for t in family.sample(20, rng=0, split="train")}
    test = {repr(t.params) for t in family.sample(20, rng=0, split="test")}
    assert len(train) == 20 and not train & test


@pytest.mark.parametrize("spec", GYM_FAMILIES)
def test_gymnasium_check_env(spec):
    family = make_family(spec)
    env = family.make_env(family.sample(1, rng=0)[0])
    check_env(env.unwrapped if spec.startswith("gym:") else env, skip_render_check=True)


def test_point_nav_step_by_hand():
    family = make_family("point-nav")
    task = family.sample(1, rng=0)[0]
    gx, gy = task.params["goal"]
    env = family.make_env(task)
    env.reset(seed=0)
    obs, reward, terminated, truncated, _ = env.step(np.array([0.3, -0.05], np.float32))
    # x is clipped to 0.1, y stays -0.05
    np.testing.assert_allclose(obs, [0.1, -0.05], atol=1e-7)
    assert reward == pytest.approx(-np.hypot(0.1 - gx, -0.05 - gy))
    assert not terminated and not truncated


def test_point_nav_terminates_at_goal():
    family = make_family("point-nav")
    from metarl.envs import Task

    env = family.make_env(Task("point-nav", "test", 0, {"goal": (0.05, 0.0)}))
    env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(np.array([0.055, 0.0], np.float32))
    assert terminated and reward == pytest.approx(-0.005)


def test_halfcheetah_vel_reward_definition():
    family = make_family("halfcheetah-vel")
    task = family.sample(1, rng=1)[0]
    env = family.make_env(task)
    env.reset(seed=0)
    action = np.full(6, 0.5, np.float32)
    _, reward, _, _, info = env.step(action)
    expected = -abs(info["x_velocity"] - task.params["velocity"]) - 0.05 * float(action @ action)
    assert reward == pytest.approx(expected)


def test_halfcheetah_dir_has_both_directions_and_sign():
    family = make_family("halfcheetah-dir")
    dirs = {t.params["direction"] for t in family.sample(20, rng=0)}
    assert dirs == {1.0, -1.0}
    from metarl.envs import Task

    rewards = []
    for d in (1.0, -1.0):
        env = family.make_env(Task("halfcheetah-dir", "train", 0, {"direction": d}))
        env.reset(seed=0)
        _, r, _, _, info = env.step(np.zeros(6, np.float32))
        rewards.append((r, info["x_velocity"]))
    assert rewards[0][0] == pytest.approx(rewards[0][1]) and rewards[1][0] == pytest.approx(-rewards[1][1])


def test_ant_goal_in_disk_and_reward():
    family = make_family("ant-goal")
    tasks = family.sample(200, rng=0)
    radii = [np.hypot(*t.params["goal"]) for t in tasks]
    assert max(radii) <= 3.0 and max(radii) > 2.5
    env = family.make_env(tasks[0])
    env.reset(seed=0)
    a = np.zeros(8, np.float32)
    _, reward, _, _, info = env.step(a)
    gx, gy = tasks[0].params["goal"]
    expected = -(abs(info["x_position"] - gx) + abs(info["y_position"] - gy)) + info["reward_contact"] + 1.0
    assert reward == pytest.approx(expected)


def test_bandit_rewards_follow_arm_probabilities():
    family = make_family("bandit?k=3&n=100")
    assert family.trial_episodes == 100 and family.horizon == 1
    from metarl.envs import Task

    env = family.make_env(Task(family.name, "train", 0, {"probs": (0.0, 1.0, 0.25)}))
    env.reset(seed=0)
    assert env.step(0)[1] == 0.0 and env.step(1)[1] == 1.0
    pulls = [env.step(2)[1] for _ in range(4000)]
    assert np.mean(pulls) == pytest.approx(0.25, abs=0.03)


def test_tabular_mdp_matches_its_tables():
    from metarl.envs.tabular import mdp_tables

    family = make_family("tabular-mdp")
    task = family.sample(1, rng=0)[0]
    transitions, means = mdp_tables(task.params["mdp_seed"], 10, 5)
    np.testing.assert_allclose(transitions.sum(-1), 1.0)
    env = family.make_env(task)
    obs, _ = env.reset(seed=0)
    state = int(obs.argmax())
    rewards = []
    for _ in range(3000):
        env.reset(seed=None)
        env.unwrapped._s = state
        rewards.append(env.step(2)[1])
    assert np.mean(rewards) == pytest.approx(means[state, 2], abs=0.08)
    assert np.std(rewards) == pytest.approx(1.0, abs=0.08)
