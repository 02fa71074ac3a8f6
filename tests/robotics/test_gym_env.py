"""The point-mass task as a registered gymnasium environment: gymnasium's own checker, the id, seeds that mean the
same scene as our env, terminated on success and truncated at the step limit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from diffusekit.robotics.gym_env import ENV_ID, PointMassGymEnv  # noqa: E402
from diffusekit.robotics.pointmass import PointMassEnv, PointMassExpert  # noqa: E402


def test_gymnasium_env_checker_passes_without_warnings():
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gymnasium.make(f"diffusekit.robotics.gym_env:{ENV_ID}", render_mode="rgb_array")
        check_env(env.unwrapped)
    assert [str(w.message) for w in caught] == []


def test_the_id_is_registered_and_makes_the_env():
    env = gymnasium.make(f"diffusekit.robotics.gym_env:{ENV_ID}", render_mode="rgb_array")
    assert ENV_ID in gymnasium.registry
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.shape == (5,) and info == {}
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    env.close()


def test_a_seed_starts_the_same_scene_as_our_env():
    env = PointMassGymEnv()
    for seed in (0, 7, 100000):
        np.testing.assert_array_equal(env.reset(seed=seed)[0], PointMassEnv().reset(seed=seed))
    first = env.reset(seed=1)[0]
    assert not np.array_equal(env.reset()[0], first)  # an unseeded reset continues the seeded generator


def test_expert_episode_terminates_on_success_and_idle_one_is_truncated():
    env, expert = PointMassGymEnv(), PointMassExpert()
    obs, _ = env.reset(seed=4)
    expert.reset(env.core, np.random.default_rng(0))
    for _ in range(80):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    assert terminated and not truncated and info["success"] and reward == 1.0 and env.core.t < 80

    env = PointMassGymEnv(max_steps=5)
    obs, _ = env.reset(seed=4)
    flags = [env.step(np.array([obs[0], obs[1], -1.0], np.float32))[2:4] for _ in range(5)]
    assert flags[:-1] == [(False, False)] * 4 and flags[-1] == (False, True)
    assert env.render() is None  # no render_mode
