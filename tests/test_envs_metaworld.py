"""Meta-World v3 families on the real benchmark objects."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from metarl.envs import EnvSpecError, make_family

ML10_TEST = {"drawer-open-v3", "door-close-v3", "shelf-place-v3", "sweep-into-v3", "lever-pull-v3"}


def goal_of(task) -> tuple:
    return tuple(np.round(pickle.loads(task.params["data"])["rand_vec"], 6))


def first_obs(family, task, seed=0):
    env = family.make_env(task)
    obs, _ = env.reset(seed=seed)
    env.close()
    return obs


def test_ml1_seeded_tasks_and_first_observations():
    a, b = make_family("ml1-reach"), make_family("ml1-reach")
    ta, tb = a.sample(5, rng=3), b.sample(5, rng=3)
    assert [goal_of(t) for t in ta] == [goal_of(t) for t in tb]
    np.testing.assert_array_equal(first_obs(a, ta[0]), first_obs(b, tb[0]))
    other_seed = make_family("ml1-reach?seed=1")
    assert {goal_of(t) for t in other_seed.all_tasks("train")} != {goal_of(t) for t in a.all_tasks("train")}


def test_ml1_train_goals_differ_from_test_goals():
    family = make_family("ml1-push")
    train = {goal_of(t) for t in family.all_tasks("train")}
    test = {goal_of(t) for t in family.all_tasks("test")}
    assert len(train) == 50 and len(test) == 50 and not train & test
    assert family.split_size("train") == 50


def test_ml1_episode_truncates_at_500_and_reports_success():
    family = make_family("ml1-reach")
    env = family.make_env(family.sample(1, rng=0)[0])
    env.reset(seed=0)
    assert env.observation_space.shape == (39,) and env.action_space.shape == (4,)
    for t in range(1, 501):
        _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        assert info["success"] in (0.0, 1.0) and np.isfinite(reward)
        if terminated or truncated:
            break
    assert t == 500 and truncated


def test_set_task_switches_goal_in_place():
    family = make_family("ml1-reach")
    t0, t1 = family.all_tasks("train")[:2]
    env = family.make_env(t0)
    same = family.set_task(env, t1)
    assert same is env
    np.testing.assert_array_equal(first_obs(family, t1), env.reset(seed=0)[0])


def test_ml10_holds_out_its_test_classes():
    family = make_family("ml10")
    train_classes = {t.params["env_name"] for t in family.all_tasks("train")}
    test_classes = {t.params["env_name"] for t in family.all_tasks("test")}
    assert test_classes == ML10_TEST and not train_classes & test_classes and len(train_classes) == 10
    batch = family.sample(10, rng=0, split="train")
    assert {t.params["env_name"] for t in batch} == train_classes, "class-balanced sampling"
    env = family.make_env(batch[0])
    env2 = family.set_task(env, batch[1])
    assert env2.unwrapped.__class__.__name__ != env.unwrapped.__class__.__name__ or batch[0].params["env_name"] == \
        batch[1].params["env_name"]


@pytest.mark.slow
def test_ml45_holds_out_its_test_classes():
    family = make_family("ml45")
    train = {t.params["env_name"] for t in family.all_tasks("train")}
    test = {t.params["env_name"] for t in family.all_tasks("test")}
    assert len(train) == 45 and len(test) == 5 and not train & test


def test_unknown_metaworld_task_suggests_nearest():
    with pytest.raises(EnvSpecError, match="did you mean 'reach'"):
        make_family("ml1-reech")
