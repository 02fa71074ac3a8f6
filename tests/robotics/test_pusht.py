"""Push-T on gym-pusht (diffusekit.robotics.pusht): seeding, layout, DP's reward rule and the scripted expert."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

pytest.importorskip("gym_pusht")

from diffusekit.core.errors import DataError  # noqa: E402
from diffusekit.robotics.pusht import (  # noqa: E402
    GOAL_POSE,
    SUCCESS_COVERAGE,
    PushTEnv,
    PushTExpert,
    _require_gym_pusht,
    expert_stats,
)

# Local corners of the T's bar then stem, in gym-pusht's keypoint order (`get_keypoints`, `add_tee`).
CORNERS = np.array([[-60, 0], [60, 0], [60, 30], [-60, 30], [-15, 30], [15, 30], [15, 120], [-15, 120]], float)


@pytest.fixture(scope="module")
def env():
    e = PushTEnv(render_size=96)
    yield e
    e.close()


def _expected_obs(state: np.ndarray) -> np.ndarray:
    c, s = math.cos(state[4]), math.sin(state[4])
    keypoints = state[2:4] + CORNERS @ np.array([[c, s], [-s, c]])
    return np.concatenate([keypoints.ravel(), state[:2]])


def test_interface_layout_and_dtypes(env):
    assert (env.name, env.obs_dim, env.action_dim, env.max_steps, env.gripper_dims) == ("pusht", 18, 2, 300, ())
    obs = env.reset(seed=100000)
    assert obs.shape == (18,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs, _expected_obs(env.state()), atol=1e-3)  # 8 keypoints, then the agent
    obs, reward, done, info = env.step(np.array([256.0, 256.0]))
    assert obs.shape == (18,) and obs.dtype == np.float32
    assert isinstance(reward, float) and isinstance(done, bool) and isinstance(info["success"], bool)
    assert 0.0 <= info["coverage"] <= 1.0
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8


def test_reset_is_deterministic_by_seed(env):
    first = env.reset(seed=100000)
    np.testing.assert_array_equal(env.reset(seed=100000), first)
    assert not np.array_equal(env.reset(seed=100001), first)
    for seed in range(5):  # gym-pusht draws the agent from U[50, 450]^2
        env.reset(seed=seed)
        assert np.all((env.state()[:2] >= 50) & (env.state()[:2] <= 450))


def test_goal_pose_covers_the_goal_and_succeeds(env):
    env.reset(seed=0, state=np.array([60.0, 60.0, *GOAL_POSE]))
    np.testing.assert_allclose(env.state()[2:], GOAL_POSE, atol=1e-6)
    assert env.coverage() > 0.999
    _, reward, done, info = env.step(env.state()[:2])  # hold the agent where it is
    assert reward == 1.0 and info["success"] and done


def test_reward_rule_and_success_threshold(env):
    # Shifted goal poses: coverage decreases with the shift; success exactly when coverage > 0.95.
    for shift in (0.5, 2.0, 4.0, 10.0, 40.0):
        env.reset(seed=0, state=np.array([60.0, 60.0, GOAL_POSE[0] + shift, GOAL_POSE[1], GOAL_POSE[2]]))
        _, reward, done, info = env.step(env.state()[:2])
        coverage = info["coverage"]
        assert reward == pytest.approx(min(max(coverage / SUCCESS_COVERAGE, 0.0), 1.0))
        assert info["success"] == (coverage > SUCCESS_COVERAGE) == done
    assert coverage < 0.8
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(10):
        _, reward, done, info = env.step(rng.uniform(0, 512, size=2))
        assert reward == pytest.approx(np.clip(info["coverage"] / 0.95, 0.0, 1.0))
        assert info["success"] == (info["coverage"] > 0.95)


def test_episode_ends_at_max_steps():
    short = PushTEnv(max_steps=3, render_size=32)
    short.reset(seed=1)
    dones = [short.step(short.state()[:2])[2] for _ in range(3)]
    assert dones == [False, False, True]
    short.close()


def test_bad_input_is_rejected(env, monkeypatch):
    env.reset(seed=0)
    with pytest.raises(DataError, match="action"):
        env.step(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(DataError, match="action"):
        env.step(np.array([np.nan, 2.0]))
    with pytest.raises(DataError, match="state"):
        env.set_state(np.zeros(4))
    with pytest.raises(DataError):
        PushTEnv(max_steps=0)
    with pytest.raises(DataError):
        PushTExpert().reset(object(), np.random.default_rng(0))
    with pytest.raises(RuntimeError):
        PushTExpert().act(np.zeros(18, np.float32))
    with pytest.raises(DataError):
        expert_stats(episodes=0)
    monkeypatch.setitem(sys.modules, "gym_pusht", None)  # as if gym-pusht were not installed
    with pytest.raises(ImportError, match=r"diffusekit\[robotics\]"):
        _require_gym_pusht()


def test_expert_solves_push_t_with_smooth_actions(env):
    expert = PushTExpert()
    scores, successes = [], []
    for seed in range(100000, 100004):
        obs = env.reset(seed=seed)
        expert.reset(env, np.random.default_rng(seed))
        done, best, previous = False, 0.0, None
        while not done:
            action = expert.act(obs)
            assert np.linalg.norm(action - env.state()[:2]) <= expert.max_step + 5 * expert.noise
            if previous is not None:
                assert np.linalg.norm(action - previous) <= expert.max_jump + 10 * expert.noise
            previous = action
            obs, reward, done, info = env.step(action)
            best = max(best, reward)
        scores.append(best)
        successes.append(info["success"])
    assert np.mean(successes) >= 0.75 and np.mean(scores) >= 0.9


def test_expert_stats_reports_the_four_numbers():
    stats = expert_stats(episodes=2, seed=100010)
    assert set(stats) == {"success_rate", "mean_score", "mean_length", "seconds_per_episode"}
    assert stats["mean_score"] >= 0.9 and 1 <= stats["mean_length"] <= 300 and stats["seconds_per_episode"] > 0
