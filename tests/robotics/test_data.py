"""The robotics data side: the point-mass task and its expert, the replay buffer (every bad file must be a DataError
naming the file), the 'limits' normaliser, the action-window dataset and the demonstration collector."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.registry import DATASETS

from diffusekit.core.errors import DataError
from diffusekit.robotics.dataset import ActionWindows, window_indices
from diffusekit.robotics.envs import TASKS, Env, Expert, episode_outcome, execute_gripper, make_env, make_expert
from diffusekit.robotics.normalizer import LinearNormalizer
from diffusekit.robotics.pointmass import GOAL, GOAL_RADIUS, OBSTACLE, OBSTACLE_RADIUS, PointMassEnv, PointMassExpert
from diffusekit.robotics.replay import KEYS, ReplayBuffer
from diffusekit.robotics.synthetic import collect, run_expert_episode

# ---------------------------------------------------------------- registry and helpers


def test_registry_knows_the_tasks_and_rejects_others():
    assert TASKS == ("pointmass", "pusht")
    env, expert = make_env("pointmass", max_steps=50), make_expert("pointmass")
    assert isinstance(env, Env) and isinstance(expert, Expert) and env.max_steps == 50
    for factory in (make_env, make_expert):
        with pytest.raises(ValueError, match="pointmass, pusht"):
            factory("cartpole")


def test_episode_outcome_and_gripper_execution():
    assert episode_outcome([0.1, 0.7, 0.3], [False, True, False]) == (0.7, True)
    assert episode_outcome([], []) == (0.0, False)
    executed = execute_gripper(np.array([[0.2, 0.3, 0.05], [0.2, 0.3, 0.0], [0.2, 0.3, -1e-3]]), (2,))
    np.testing.assert_array_equal(executed[:, 2], [1.0, 1.0, -1.0])
    np.testing.assert_allclose(executed[:, :2], [[0.2, 0.3]] * 3, rtol=1e-6)


# ---------------------------------------------------------------- point-mass env


def _drive(env: PointMassEnv, targets, gripper: float, steps_each: int = 15):
    """Track each target for ``steps_each`` steps; return the last (obs, reward, done, info) and all infos."""
    infos, last = [], None
    for tx, ty in targets:
        for _ in range(steps_each):
            last = env.step(np.array([tx, ty, gripper], dtype=np.float32))
            infos.append(last[3])
    return last, infos


AROUND_LEFT = [(0.12, 0.3), (0.12, 0.75), GOAL]


def test_reset_is_deterministic_by_seed():
    env = PointMassEnv()
    first, again, other = env.reset(seed=3), env.reset(seed=3), env.reset(seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert first.dtype == np.float32 and first.shape == (env.obs_dim,)
    assert 0.3 <= first[0] <= 0.7 and 0.05 <= first[1] <= 0.15
    np.testing.assert_array_equal(first[2:], [0.0, 0.0, -1.0])  # at rest, gripper open
    a, b = PointMassEnv(seed=9), PointMassEnv(seed=9)
    np.testing.assert_array_equal(a.reset(), b.reset())


def test_step_shapes_and_bad_actions():
    env = PointMassEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3))
    env.reset(seed=0)
    obs, reward, done, info = env.step(np.array([0.5, 0.3, 0.7]))
    assert obs.shape == (5,) and obs.dtype == np.float32
    assert isinstance(reward, float) and 0.0 <= reward < 1.0 and done is False
    assert info["success"] is False and obs[4] == 1.0  # gripper executed as sign
    assert env.gripper_dims == (2,) and env.action_dim == 3
    with pytest.raises(ValueError, match="3 values"):
        env.step(np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0.5, 0.0]))
    frame = env.render()
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8


def test_obstacle_is_respected():
    env = PointMassEnv(max_steps=1000)
    rng = np.random.default_rng(0)
    obs = env.reset(seed=1)
    hits = 0
    for k in range(400):  # straight through the obstacle, then random targets
        target = [0.5, 0.95] if k < 40 else rng.uniform(0, 1, size=2)
        obs, _, _, info = env.step(np.array([*target, -1.0]))
        hits += info["collision"]
        assert math.hypot(obs[0] - OBSTACLE[0], obs[1] - OBSTACLE[1]) >= OBSTACLE_RADIUS - 1e-6
        assert 0.0 <= obs[0] <= 1.0 and 0.0 <= obs[1] <= 1.0
    assert hits > 0


def test_success_needs_a_grasp_at_the_goal():
    env = PointMassEnv()
    env.reset(seed=0)  # closed all the way: never armed, never succeeds
    (_, reward, done, info), infos = _drive(env, AROUND_LEFT, gripper=1.0)
    assert info["in_goal"] and not any(i["success"] for i in infos) and reward <= 0.5 and not done

    env.reset(seed=0)  # open at the goal: no success, reward capped at 0.5
    (_, reward, _, info), infos = _drive(env, AROUND_LEFT, gripper=-1.0)
    assert info["in_goal"] and not any(i["success"] for i in infos) and 0.45 < reward <= 0.5

    closes = [env.step(np.array([*GOAL, 1.0]))[1:] for _ in range(env.hold_steps)]  # now close it there
    assert [c[2]["success"] for c in closes] == [False] * (env.hold_steps - 1) + [True]
    assert closes[-1][0] == 1.0 and closes[-1][1] is True

    env.reset(seed=0)  # closing away from the goal, then arriving closed: no success
    _drive(env, AROUND_LEFT[:1], gripper=-1.0)
    _, infos = _drive(env, AROUND_LEFT[1:], gripper=1.0)
    assert not any(i["success"] for i in infos)


def test_episode_ends_at_max_steps_and_render_shows_gripper():
    env = PointMassEnv(max_steps=5, render_size=64)
    env.reset(seed=2)
    dones = [env.step(np.array([0.5, 0.2, -1.0]))[2] for _ in range(5)]
    assert dones == [False] * 4 + [True]
    open_frame = env.render()
    env.step(np.array([0.5, 0.2, 1.0]))
    assert open_frame.shape == (64, 64, 3) and not np.array_equal(open_frame, env.render())


def test_expert_succeeds_on_both_sides():
    env, expert = PointMassEnv(), PointMassExpert()
    sides, lengths = [], []
    for seed in range(20):
        obs, action, score, success = run_expert_episode(env, expert, seed)
        assert success and score == 1.0
        sides.append(expert.side)
        lengths.append(len(obs))
        grip = action[:, 2]
        assert set(grip.tolist()) <= {-1.0, 1.0} and grip[0] == -1.0 and grip[-1] == 1.0
        assert (np.diff(grip) >= 0).all()  # opens on the way, closes once at the goal
        assert np.isfinite(action).all() and action.dtype == np.float32
    assert 5 <= sides.count(1) <= 15 and sides.count(-1) + sides.count(1) == 20
    assert max(lengths) < env.max_steps
    # The same seed replays the same demonstration.
    np.testing.assert_array_equal(run_expert_episode(env, expert, 4)[1], run_expert_episode(env, expert, 4)[1])


def test_expert_side_can_be_fixed():
    env = PointMassEnv()
    for side in (-1, 1):
        expert = PointMassExpert(side=side)
        obs, _, _, success = run_expert_episode(env, expert, 0)
        assert success and np.sign(obs[len(obs) // 2, 0] - OBSTACLE[0]) == side
    with pytest.raises(ValueError):
        PointMassExpert(side=0)


# ---------------------------------------------------------------- replay buffer


def _buffer(lengths=(5, 3, 7), obs_dim=4, action_dim=3, gripper_dims=(2,)) -> ReplayBuffer:
    buffer = ReplayBuffer("toy", obs_dim, action_dim, gripper_dims)
    start = 0
    for episode, length in enumerate(lengths):
        steps = np.arange(start, start + length, dtype=np.float32)
        obs = np.stack([steps, np.full(length, episode, np.float32)] + [steps * 0.5] * (obs_dim - 2), axis=1)
        action = np.stack([steps, np.full(length, episode, np.float32), np.where(steps % 2 == 0, 1.0, -1.0)], axis=1)
        buffer.add_episode(obs, action[:, :action_dim])
        start += length
    return buffer


def test_replay_round_trip(tmp_path: Path):
    buffer = _buffer()
    np.testing.assert_array_equal(buffer.episode_ends, [5, 8, 15])
    path = buffer.save(tmp_path / "toy_replay.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy_replay.npz"]  # no temporary file left
    with np.load(path, allow_pickle=False) as archive:
        assert set(archive.files) == set(KEYS)
        assert archive["meta/episode_ends"].dtype == np.int64 and archive["meta/task"].shape == ()
        assert archive["data/obs"].dtype == np.float32
    loaded = ReplayBuffer.load(path)
    assert loaded.task == "toy" and loaded.gripper_dims == (2,) and loaded.n_episodes == 3 and loaded.n_steps == 15
    np.testing.assert_array_equal(loaded.obs, buffer.obs)
    np.testing.assert_array_equal(loaded.action, buffer.action)
    obs, action = loaded.episode(1)
    assert obs.shape == (3, 4) and (obs[:, 1] == 1).all() and action.shape == (3, 3)
    np.testing.assert_array_equal(loaded.episode(-1)[0], buffer.episode(2)[0])
    loaded.add_episode(obs, action)  # a loaded buffer can grow and be saved again
    assert loaded.n_episodes == 4 and loaded.episode_ends[-1] == 18


def test_add_episode_rejects_bad_arrays():
    buffer = ReplayBuffer("toy", 2, 1)
    with pytest.raises(ValueError, match="obs must be"):
        buffer.add_episode(np.zeros((3, 3)), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="same non-zero length"):
        buffer.add_episode(np.zeros((3, 2)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="same non-zero length"):
        buffer.add_episode(np.zeros((0, 2)), np.zeros((0, 1)))
    with pytest.raises(ValueError, match="finite"):
        buffer.add_episode(np.full((2, 2), np.inf), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="gripper_dims"):
        ReplayBuffer("toy", 2, 1, gripper_dims=(1,))


def _good_arrays() -> dict[str, np.ndarray]:
    return {
        "data/obs": np.zeros((10, 4), np.float32),
        "data/action": np.zeros((10, 3), np.float32),
        "meta/episode_ends": np.array([4, 10], np.int64),
        "meta/task": np.array("toy"),
        "meta/gripper_dims": np.array([2], np.int64),
    }


def _with(**changes) -> dict[str, np.ndarray]:
    arrays = _good_arrays()
    for key, value in changes.items():
        key = key.replace("__", "/")
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    return arrays


def _nan_obs():
    obs = np.zeros((10, 4), np.float32)
    obs[3, 1] = np.nan
    return obs


def _inf_action():
    action = np.zeros((10, 3), np.float32)
    action[7, 0] = -np.inf
    return action


BROKEN = {
    "missing key": (_with(meta__episode_ends=None), "lacks key.*meta/episode_ends"),
    "not increasing": (_with(meta__episode_ends=np.array([6, 4, 10])), "strictly increasing"),
    "empty episode": (_with(meta__episode_ends=np.array([4, 4, 10])), "episode is empty"),
    "empty first episode": (_with(meta__episode_ends=np.array([0, 10])), "episode is empty"),
    "short ends": (_with(meta__episode_ends=np.array([4, 8])), "ends at 8 but the buffer holds 10"),
    "no episodes": (_with(meta__episode_ends=np.zeros(0, np.int64)), "no episodes"),
    "length mismatch": (_with(data__action=np.zeros((9, 3), np.float32)), "10 steps but data/action has 9"),
    "nan obs": (_with(data__obs=_nan_obs()), "data/obs holds NaN or inf"),
    "inf action": (_with(data__action=_inf_action()), "data/action holds NaN or inf"),
    "1-d obs": (_with(data__obs=np.zeros(10, np.float32)), "data/obs must be a 2-D"),
    "3-d action": (_with(data__action=np.zeros((10, 3, 1), np.float32)), "data/action must be a 2-D"),
    "float ends": (_with(meta__episode_ends=np.array([4.0, 10.0])), "1-D integer"),
    "gripper out of range": (_with(meta__gripper_dims=np.array([3])), "gripper_dims"),
    "task not text": (_with(meta__task=np.array(3)), "meta/task"),
    "text obs": (_with(data__obs=np.full((10, 4), "a")), "numeric"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_replay_load_rejects_broken_files(tmp_path: Path, case: str):
    arrays, message = BROKEN[case]
    path = tmp_path / f"{case.replace(' ', '_')}.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as err:
        ReplayBuffer.load(path)
    assert path.name in str(err.value) and err.value.path == path


def test_replay_load_rejects_non_npz_files(tmp_path: Path):
    cases = {"missing.npz": None, "text.npz": b"not an archive", "array.npz": "npy", "pickled.npz": "object"}
    for name, content in cases.items():
        path = tmp_path / name
        if content == "npy":
            with path.open("wb") as handle:
                np.save(handle, np.zeros(3))
        elif content == "object":
            np.savez(path, **_with(data__obs=np.array([{"a": 1}] * 10, dtype=object)))
        elif content is not None:
            path.write_bytes(content)
        with pytest.raises(DataError) as err:
            ReplayBuffer.load(path)
        assert name in str(err.value), name
    assert ReplayBuffer.load(_good_path(tmp_path)).n_episodes == 2  # the unbroken file loads


def _good_path(folder: Path) -> Path:
    path = folder / "good.npz"
    np.savez(path, **_good_arrays())
    return path


# ---------------------------------------------------------------- normaliser


def test_normalizer_round_trip_constant_and_passthrough():
    rng = np.random.default_rng(0)
    obs = (rng.normal(size=(50, 3)) * [1.0, 10.0, 0.0] + [0.0, 5.0, 2.5]).astype(np.float32)  # dim 2 is constant
    action = rng.uniform(-3, 7, size=(50, 4)).astype(np.float32)
    action[:, 3] = rng.choice([-0.1, 0.1], size=50)
    stats = LinearNormalizer.fit_stats(obs, action, passthrough=(3,))
    assert all(isinstance(v, list) for v in stats.values()) and stats["action_passthrough"] == [False] * 3 + [True]
    norm = LinearNormalizer(3, 4, stats)

    o = norm.normalize_obs(torch.from_numpy(obs))
    assert o[:, :2].min() >= -1 - 1e-6 and o[:, :2].max() <= 1 + 1e-6
    assert torch.allclose(o[:, :2].amin(0), torch.tensor(-1.0)) and torch.allclose(o[:, :2].amax(0), torch.tensor(1.0))
    assert torch.equal(o[:, 2], torch.zeros(50))  # the constant maps to 0 ...
    assert torch.allclose(norm.unnormalize_obs(o), torch.from_numpy(obs), atol=1e-5)  # ... and back

    a = torch.from_numpy(action).reshape(5, 10, 4)  # any leading dims
    na = norm.normalize_action(a)
    assert na.shape == a.shape and torch.equal(na[..., 3], a[..., 3])  # passthrough untouched
    assert na[..., :3].abs().max() <= 1 + 1e-6
    assert torch.allclose(norm.unnormalize_action(na), a, atol=1e-5)
    middle = (torch.tensor(stats["action_low"]) + torch.tensor(stats["action_high"])) / 2
    assert torch.allclose(norm.unnormalize_action(torch.zeros(4))[:3], middle[:3], atol=1e-5)

    const = LinearNormalizer(1, 1, LinearNormalizer.fit_stats(np.full((4, 1), 3.0), np.full((4, 1), -2.0)))
    assert const.normalize_action(torch.tensor([[-2.0]])).item() == 0.0
    assert const.unnormalize_action(torch.tensor([[0.0]])).item() == -2.0


def test_normalizer_state_dict_and_stats():
    stats = LinearNormalizer.fit_stats(np.array([[0.0, 1.0], [2.0, 3.0]]), np.array([[1.0], [5.0]]), passthrough=())
    norm = LinearNormalizer(2, 1, stats)
    fresh = LinearNormalizer(2, 1)  # identity until loaded
    x = torch.tensor([[1.0, 2.0]])
    assert torch.equal(fresh.normalize_obs(x), x)
    fresh.load_state_dict(norm.state_dict())
    assert torch.equal(fresh.normalize_obs(x), torch.zeros(1, 2))
    assert set(norm.state_dict()) == {"obs_low", "obs_high", "action_low", "action_high", "action_passthrough"}
    assert LinearNormalizer(2, 1, norm.stats()).stats() == norm.stats()
    assert fresh.normalize_action(torch.tensor([3.0], dtype=torch.float64)).dtype == torch.float64
    with pytest.raises(ValueError, match="obs_low needs 2"):
        LinearNormalizer(2, 1, {**stats, "obs_low": [0.0]})
    with pytest.raises(ValueError, match="exceeds"):
        LinearNormalizer(2, 1, {**stats, "action_low": [9.0]})
    with pytest.raises(ValueError, match="last dim 2"):
        norm.normalize_obs(torch.zeros(3))
    with pytest.raises(ValueError, match="out of range"):
        LinearNormalizer.fit_stats(np.zeros((2, 2)), np.zeros((2, 1)), passthrough=(1,))


# ---------------------------------------------------------------- action windows


@pytest.fixture()
def replay_dir(tmp_path: Path) -> Path:
    _buffer(lengths=(12, 3, 20, 9)).save(tmp_path / "toy_replay.npz")
    return tmp_path


def test_window_count_and_padding(replay_dir: Path):
    lengths, horizon, n_obs, n_action = (12, 3, 20, 9), 8, 2, 4
    ds = ActionWindows(str(replay_dir), horizon=horizon, n_obs=n_obs, n_action=n_action)
    assert len(ds) == sum(max(0, L - horizon + n_obs + n_action - 1) for L in lengths) == 9 + 0 + 17 + 6
    ends = np.cumsum(lengths)
    begins = ends - lengths
    first = ds.steps(0)  # the first window of episode 0 repeats its first step n_obs - 1 times
    np.testing.assert_array_equal(first, [0, 0, 1, 2, 3, 4, 5, 6])
    last = ds.steps(8)  # the last window of episode 0 repeats its last step n_action - 1 times
    np.testing.assert_array_equal(last, [7, 8, 9, 10, 11, 11, 11, 11])
    np.testing.assert_array_equal(ds.steps(9), [15, 15, 16, 17, 18, 19, 20, 21])  # episode 2 (1 is too short)
    for i in range(len(ds)):
        rows = ds.steps(i)
        episode = np.searchsorted(ends, rows[0], side="right")
        assert (rows >= begins[episode]).all() and (rows < ends[episode]).all()  # never crosses episodes
        raw = ds.buffer.obs[rows]
        assert (raw[:, 1] == raw[0, 1]).all()
        item = ds[i]
        assert item["obs"].shape == (n_obs, 4) and item["action"].shape == (horizon, 3)
        assert item["obs"].dtype == torch.float32 and item["action"].dtype == torch.float32
        assert item["obs"].abs().max() <= 1 + 1e-6 and item["action"].abs().max() <= 1 + 1e-6
        unnormalised = ds.normalizer.unnormalize_action(item["action"])
        assert torch.allclose(unnormalised, torch.from_numpy(ds.buffer.action[rows]), atol=1e-4)
    np.testing.assert_array_equal(window_indices(np.array([3]), 4, 2, 3)[:, 0], [-1, 0, 1])


def test_windows_default_sizes_and_registry(replay_dir: Path):
    ds = DATASETS.build({"type": "ActionWindows", "data_root": str(replay_dir / "toy_replay.npz")})
    assert (ds.horizon, ds.n_obs, ds.n_action) == (16, 2, 8)
    assert len(ds) == (12 - 7) + 0 + (20 - 7) + (9 - 7)
    assert ds.task == "toy" and ds.normalizer_stats["action_passthrough"] == [False, False, False]
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["obs"].shape == (2, 2, 4) and batch["action"].shape == (2, 16, 3)


def test_windows_gripper_scale(replay_dir: Path):
    plain = ActionWindows(str(replay_dir), horizon=8, n_obs=2, n_action=4)
    scaled = ActionWindows(str(replay_dir), horizon=8, n_obs=2, n_action=4, gripper_scale=10.0)
    assert scaled.normalizer_stats["action_passthrough"] == [False, False, True]
    assert scaled.normalizer_stats["action_low"][2] == pytest.approx(-0.1)
    for i in (0, 5, len(scaled) - 1):
        rows = scaled.steps(i)
        raw = scaled.buffer.action[rows]
        torch.testing.assert_close(scaled[i]["action"][:, 2], torch.from_numpy(raw[:, 2] / 10.0))
        torch.testing.assert_close(scaled[i]["action"][:, :2], plain[i]["action"][:, :2])
        assert set(plain[i]["action"][:, 2].tolist()) <= {-1.0, 1.0}
    back = scaled.normalizer.unnormalize_action(scaled[0]["action"])
    torch.testing.assert_close(torch.sign(back[:, 2]), torch.from_numpy(scaled.buffer.action[scaled.steps(0), 2]))


def test_windows_bad_inputs(tmp_path: Path, replay_dir: Path):
    with pytest.raises(DataError, match="not found"):
        ActionWindows(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no \\*_replay.npz"):
        ActionWindows(str(empty))
    _buffer(lengths=(20,)).save(replay_dir / "other_replay.npz")
    with pytest.raises(DataError, match="several replay buffers"):
        ActionWindows(str(replay_dir))
    assert len(ActionWindows(str(replay_dir), file="other")) == 20 - 7
    assert len(ActionWindows(str(replay_dir), file="other_replay.npz")) == 20 - 7
    with pytest.raises(DataError, match="missing_replay.npz not found"):
        ActionWindows(str(replay_dir), file="missing")
    _buffer(lengths=(3, 4)).save(empty / "short_replay.npz")
    with pytest.raises(DataError, match="no training windows"):
        ActionWindows(str(empty))
    with pytest.raises(ValueError, match="horizon >= n_obs"):
        ActionWindows(str(replay_dir), horizon=4, n_obs=2, n_action=8, file="other")
    with pytest.raises(ValueError, match="gripper_scale"):
        ActionWindows(str(replay_dir), gripper_scale=0.0, file="other")
    nogrip = ReplayBuffer("nogrip", 2, 1)
    nogrip.add_episode(np.zeros((20, 2)), np.zeros((20, 1)))
    path = nogrip.save(tmp_path / "nogrip_replay.npz")
    with pytest.raises(DataError, match="no meta/gripper_dims"):
        ActionWindows(str(path), gripper_scale=10.0)


# ---------------------------------------------------------------- demonstrations on disk


def test_collect_writes_a_loadable_buffer(tmp_path: Path):
    path, stats = collect("pointmass", episodes=6, out=tmp_path / "demos", seed=10, progress=False)
    assert path == tmp_path / "demos" / "pointmass_replay.npz"
    assert stats["episodes"] == 6 and stats["expert_success_rate"] == 1.0 and stats["mean_score"] == 1.0
    assert stats["failed"] == 0 and stats["attempts"] == 6
    buffer = ReplayBuffer.load(path)
    assert buffer.task == "pointmass" and buffer.gripper_dims == (2,) and buffer.n_steps == stats["steps"]
    # The recorded observation is the one before the action: episode 0 starts at env.reset(seed).
    np.testing.assert_array_equal(buffer.episode(0)[0][0], PointMassEnv().reset(seed=10))
    ds = ActionWindows(str(tmp_path / "demos"))
    assert ds.obs_dim == 5 and ds.action_dim == 3 and len(ds) == stats["steps"] - 7 * 6
    goal_dist = np.hypot(buffer.obs[:, 0] - GOAL[0], buffer.obs[:, 1] - GOAL[1])
    closed = buffer.action[:, 2] > 0
    assert (goal_dist[closed] < GOAL_RADIUS).all()
    with pytest.raises(ValueError):
        collect("pointmass", episodes=0, out=tmp_path)


def test_point_mass_expert_delays_some_executed_grasps_but_labels_them_closed():
    """DART-style perturbation: the recorded label closes inside the goal even when the executed grasp is delayed."""
    from diffusekit.robotics.synthetic import run_expert_episode

    env, expert = make_env("pointmass"), make_expert("pointmass")
    delayed = 0
    for seed in range(12):
        obs, action, _, success = run_expert_episode(env, expert, seed)
        assert success
        first_close = int(np.argmax(action[:, 2] > 0))
        executed_open_after = int((obs[first_close + 1 :, 4] < 0).sum())  # obs[4]: the executed gripper state
        delayed += executed_open_after > 0
    assert 0 < delayed < 12
