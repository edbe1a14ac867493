"""The fast Meta-World code paths equal stock Meta-World bitwise, on real envs, for full episodes."""

from __future__ import annotations

import warnings

import metaworld
import numpy as np
import pytest
from metaworld.policies import ENV_POLICY_MAP
from scipy.spatial.transform import Rotation

from metarl.envs.metaworld_family import MetaWorldEnv, MetaWorldFamily
from metarl.envs.metaworld_fast import install, quat_from_matrix

FAST_METHODS = ("touching_object", "_get_curr_obs_combined_no_goal", "_get_obs")


def _pair(env_name: str, goal: int = 0, reward_version: str = "v2") -> tuple[MetaWorldEnv, MetaWorldEnv]:
    """A stock and a fast env on the same ML1 train goal."""
    task = MetaWorldFamily("ml1", env_name.removesuffix("-v3")).all_tasks("train")[goal]
    return (MetaWorldEnv(task, fast=False, reward_version=reward_version),
            MetaWorldEnv(task, fast=True, reward_version=reward_version))


def _same_step(stock: tuple, fast: tuple, where: str) -> None:
    (o0, r0, te0, tr0, i0), (o1, r1, te1, tr1, i1) = stock, fast
    assert o0.dtype == o1.dtype and o0.tobytes() == o1.tobytes(), f"{where}: obs differ by {o1 - o0}"
    assert r0 == r1 and type(r0) is type(r1), f"{where}: reward {r0!r} != {r1!r}"
    assert (te0, tr0) == (te1, tr1), where
    assert i0.keys() == i1.keys(), where
    for k in i0:
        assert type(i0[k]) is type(i1[k]) and np.array_equal(i0[k], i1[k]), f"{where}: info[{k!r}] {i0[k]!r} != {i1[k]!r}"


def compare_episodes(env_name: str, seed: int = 0, reward_version: str = "v2") -> dict[str, float]:
    """Two 500-step episodes on a stock and a fast env: seeded random actions, then Meta-World's scripted
    policy (told the goal the env hides) plus noise, so that grasps and successes happen too.
    Returns counts of success and of steps where the gripper touched the main object."""
    stock, fast = _pair(env_name, goal=seed % 50, reward_version=reward_version)
    try:
        main_geom = stock.unwrapped._get_id_main_object()
    except (KeyError, NotImplementedError, AttributeError):  # some classes name geoms by a MuJoCo API gone since
        main_geom = None
    counts = {"success": 0.0, "touching": 0.0, "steps": 0.0}
    for episode, scripted in enumerate((False, True)):
        obs = [env.reset(seed=seed + episode)[0] for env in (stock, fast)]
        assert obs[0].tobytes() == obs[1].tobytes(), f"{env_name}: reset obs differ"
        rng = np.random.default_rng(seed + episode)
        policy = ENV_POLICY_MAP[env_name]() if scripted else None
        for t in range(500):
            action = rng.uniform(-1.0, 1.0, 4).astype(np.float32)
            if policy is not None:
                seen = obs[0].copy()
                seen[-3:] = stock.unwrapped._target_pos
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    action = np.clip(policy.get_action(seen) + 0.1 * action, -1.0, 1.0).astype(np.float32)
            steps = stock.step(action), fast.step(action)
            _same_step(*steps, where=f"{env_name} episode {episode} step {t}")
            obs = [s[0] for s in steps]
            if main_geom is not None:
                touching = stock.unwrapped.touching_object(main_geom)
                assert touching == fast.unwrapped.touching_object(main_geom), f"{env_name} step {t}: touching"
                counts["touching"] += touching
            counts["success"] += steps[0][4]["success"]
            counts["steps"] += 1
        assert steps[0][3], "truncated at 500"
    return counts


@pytest.mark.parametrize("env_name", ["reach-v3", "pick-place-v3", "door-open-v3"])
def test_fast_env_equals_stock_for_full_episodes(env_name):
    counts = compare_episodes(env_name)
    assert counts["steps"] == 1000
    assert counts["success"] > 0, "the scripted episode should succeed, so success flags are compared both ways"
    if env_name == "pick-place-v3":
        assert counts["touching"] > 0, "the scripted grasp exercises the contact code"


@pytest.mark.parametrize("env_name", ["reach-v3", "pick-place-v3"])
def test_fast_env_equals_stock_with_v1_rewards(env_name):
    stock, _ = _pair(env_name, reward_version="v1")
    assert stock.unwrapped.reward_function_version == "v1"
    counts = compare_episodes(env_name, seed=1, reward_version="v1")
    assert counts["steps"] == 1000


@pytest.mark.slow
@pytest.mark.parametrize("env_name", list(metaworld.ML1.ENV_NAMES))
def test_fast_env_equals_stock_on_all_50_classes(env_name):
    assert compare_episodes(env_name)["steps"] == 1000


def test_quat_from_matrix_is_scipy_bitwise_on_every_branch():
    rng = np.random.default_rng(0)
    mats = list(Rotation.random(3000, random_state=1).as_matrix())
    mats += [Rotation.from_rotvec(rng.normal(size=3) * s).as_matrix() for s in (1e-9, 1e-3, 0.3, 3.0) for _ in range(200)]
    mats += [Rotation.from_rotvec(np.pi * f * np.eye(3)[i]).as_matrix() for i in range(3) for f in (1.0, 0.999)]
    branches = set()
    for m in mats:
        branches.add(int(np.argmax([m[0, 0], m[1, 1], m[2, 2], np.trace(m)])))
        want, got = Rotation.from_matrix(m).as_quat(), quat_from_matrix(m)
        assert got.dtype == np.float64 and got.tobytes() == want.tobytes(), m
    assert branches == {0, 1, 2, 3}
    skewed = mats[0] * 1.001  # not orthogonal: scipy orthogonalises by SVD, and so do we (via scipy)
    assert quat_from_matrix(skewed).tobytes() == Rotation.from_matrix(skewed).as_quat().tobytes()
    with pytest.raises(ValueError, match="determinant"):
        quat_from_matrix(-mats[0])


def test_fast_methods_live_on_the_instance_only():
    from metaworld.envs.sawyer_pick_place_v3 import SawyerPickPlaceEnvV3
    from metaworld.sawyer_xyz_env import SawyerXYZEnv

    before = [dict(vars(c)) for c in (SawyerPickPlaceEnvV3, SawyerXYZEnv)]
    module_globals = dict(SawyerPickPlaceEnvV3._get_quat_objects.__globals__)
    stock, fast = _pair("pick-place-v3")
    assert [dict(vars(c)) for c in (SawyerPickPlaceEnvV3, SawyerXYZEnv)] == before, "classes untouched"
    assert SawyerPickPlaceEnvV3._get_quat_objects.__globals__ == module_globals, "module untouched"
    assert module_globals["Rotation"] is Rotation
    for name in FAST_METHODS + ("_get_quat_objects",):
        assert name in vars(fast.unwrapped), name
        assert name not in vars(stock.unwrapped), name
    assert fast.unwrapped._get_quat_objects.__func__.__globals__["Rotation"] is not Rotation
    plain = SawyerPickPlaceEnvV3()
    assert not any(name in vars(plain) for name in FAST_METHODS), "a raw Meta-World env stays stock"
    with pytest.raises(TypeError, match="SawyerXYZEnv"):
        install(object())


def test_family_fast_flag_picks_the_code_path_and_set_task_respects_it():
    stock_family = MetaWorldFamily("ml1", "reach", fast=False)
    fast_family = MetaWorldFamily("ml1", "reach")
    assert fast_family.fast and not stock_family.fast
    t0, t1 = stock_family.all_tasks("train")[:2]
    env = stock_family.make_env(t0)
    assert "touching_object" not in vars(env.unwrapped)
    assert stock_family.set_task(env, t1) is env, "same class, same code path: retargeted in place"
    switched = fast_family.set_task(env, t1)
    assert switched is not env and "touching_object" in vars(switched.unwrapped)
    with pytest.raises(ValueError, match="fast"):
        MetaWorldFamily("ml1", "reach", fast="yes")


def test_fast_tolerance_is_stock_tolerance_bitwise():
    from metaworld.utils import reward_utils

    from metarl.envs.metaworld_fast import _fast_tolerance

    rng = np.random.default_rng(0)
    xs = [float(v) for v in rng.normal(0.0, 0.3, 300)] + [0.0, 0.05, -0.0, float("inf"), float("nan")]
    cases = [((0.0, 0.05), 0.2, "long_tail"), ((0.0, 0.0), 0.1, "gaussian"), ((-np.inf, 0.02), 0.5, "long_tail"),
             ((0.1, np.inf), np.float64(0.37), "gaussian"), ((0.0, 0.01), 0.0, "long_tail"),
             ((0.0, 0.02), 0.3, "linear"), ((0.0, 0.02), 0.3, "reciprocal"), ((0, 1), 2, "quadratic")]
    with np.errstate(all="ignore"):
        for bounds, margin, sigmoid in cases:
            for x in xs + [np.float64(v) for v in xs]:
                want = reward_utils.tolerance(x, bounds=bounds, margin=margin, sigmoid=sigmoid)
                got = _fast_tolerance(x, bounds=bounds, margin=margin, sigmoid=sigmoid)
                assert type(got) is type(want) and np.array_equal(got, want, equal_nan=True), (x, bounds, margin)
                assert np.float64(got).tobytes() == np.float64(want).tobytes(), (x, bounds, margin)
    arr = np.array([0.0, 0.3])  # arrays and bad arguments are stock's
    assert np.array_equal(_fast_tolerance(arr, (0.0, 0.1), 0.2, "long_tail"),
                          reward_utils.tolerance(arr, (0.0, 0.1), 0.2, "long_tail"))
    with pytest.raises(ValueError, match="margin"):
        _fast_tolerance(0.3, (0.0, 0.1), -1.0)


def test_a_pickled_fast_env_comes_back_with_stock_methods():
    import pickle

    from metaworld.sawyer_xyz_env import SawyerXYZEnv

    _, fast = _pair("pick-place-v3")
    fast.reset(seed=0)
    back = pickle.loads(pickle.dumps(fast.unwrapped))
    assert back.touching_object.__func__ is SawyerXYZEnv.touching_object
    assert back._get_quat_objects.__func__.__globals__["Rotation"] is Rotation
