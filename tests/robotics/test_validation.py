"""Validation during training: held-out episodes (disjoint from training, normalised alike), the policy's
``val_step`` (executed actions of a sampled chunk against the demonstration) and the ``ActionChunkMSE`` metric."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusekit.core.errors import DataError
from diffusekit.robotics.dataset import ActionWindows
from diffusekit.robotics.metrics import ActionChunkMSE
from diffusekit.robotics.policy import DiffusionPolicy
from diffusekit.robotics.replay import ReplayBuffer


@pytest.fixture
def replay(tmp_path: Path) -> Path:
    buffer = ReplayBuffer("pointmass", 2, 2)
    for i, length in enumerate((20, 18, 22, 19, 25)):
        steps = np.arange(length, dtype=np.float32)[:, None]
        buffer.add_episode(np.hstack([steps, steps * 0 + i]), np.hstack([steps * 2, steps * 0 - i]))
    return buffer.save(tmp_path / "pointmass_replay.npz")


def _episodes(windows: ActionWindows) -> set[int]:
    return {int(np.searchsorted(windows.buffer.episode_ends, begin, side="right")) for begin in windows.indices[:, 1]}


def test_splits_hold_out_the_last_episodes_and_share_the_normaliser(replay):
    train = ActionWindows(str(replay), split="train", val_episodes=0.4)
    val = ActionWindows(str(replay), split="val", val_episodes=0.4)
    everything = ActionWindows(str(replay))
    assert _episodes(train) == {0, 1, 2} and _episodes(val) == {3, 4}
    assert len(train) + len(val) == len(everything)
    assert train.normalizer_stats == val.normalizer_stats != everything.normalizer_stats
    assert train.normalizer_stats["obs_high"][1] == 2.0  # episode index column: fitted on episodes 0-2 only
    assert val[0]["obs"][0, 1] > 1.0  # held-out values may leave [-1, 1]
    strided = ActionWindows(str(replay), split="val", val_episodes=2, stride=8)
    np.testing.assert_array_equal(strided.indices, val.indices[::8])


def test_a_split_needs_an_episode_on_each_side(replay):
    with pytest.raises(DataError, match="cannot hold out 5 of 5 episodes"):
        ActionWindows(str(replay), split="val", val_episodes=5)
    with pytest.raises(ValueError, match="split must be"):
        ActionWindows(str(replay), split="test")


def test_val_step_scores_the_executed_actions_of_a_sampled_chunk():
    policy = DiffusionPolicy(2, 2, unet=dict(down_dims=(16, 32), step_embed_dim=16), val_steps=2)
    obs, action = torch.zeros(3, 2, 2), torch.rand(3, 16, 2)
    out = policy.val_step({"obs": obs, "action": action})
    assert len(out) == 3 and out[0]["pred"].shape == (8, 2)
    torch.testing.assert_close(out[1]["target"], action[1, 1:9])
    again = policy.val_step({"obs": obs, "action": action})
    torch.testing.assert_close(out[2]["pred"], again[2]["pred"])  # fixed noise: validations compare alike
    with pytest.raises(ValueError, match="val_sampler"):
        DiffusionPolicy(2, 2, val_sampler="dpm")


def test_action_chunk_mse_averages_over_windows():
    metric = ActionChunkMSE()
    zeros = torch.zeros(8, 2)
    metric.process({}, [{"pred": zeros, "target": zeros + 1.0}, {"pred": zeros, "target": zeros}])
    metric.process({}, [{"pred": zeros, "target": zeros - 2.0}])
    values = metric.evaluate(3)
    assert values == {"val/action_mse": pytest.approx(5 / 3), "val/action_mse_max": 4.0}
