"""Importers: a Diffusion Policy zarr replay buffer and a LeRobot v2.x dataset, written here in those layouts, read
back into our replay buffer with its checks; `diffusekit robotics import` writes a buffer that `train` reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffusekit.core.errors import DataError
from diffusekit.robotics.importers import import_lerobot, import_replay, import_zarr
from diffusekit.robotics.replay import ReplayBuffer

LENGTHS = (9, 12, 10)


def _episodes(seed: int = 0):
    rng = np.random.default_rng(seed)
    n = sum(LENGTHS)
    return {
        "state": rng.uniform(0, 512, (n, 5)).astype(np.float32),
        "keypoint": rng.uniform(0, 512, (n, 9, 2)).astype(np.float32),
        "action": rng.uniform(0, 512, (n, 2)).astype(np.float32),
        "img": rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8),
        "n_contacts": rng.integers(0, 3, (n, 1)).astype(np.float32),
    }


def write_dp_zarr(path: Path, arrays: dict, ends) -> Path:
    """The layout of DP's ReplayBuffer (zarr format 2, as DP writes it): data/<key> per step, meta/episode_ends."""
    zarr = pytest.importorskip("zarr")
    root = zarr.open_group(str(path), mode="w", zarr_format=2)
    data, meta = root.create_group("data"), root.create_group("meta")
    for key, value in arrays.items():
        data.create_array(key, shape=value.shape, dtype=value.dtype, chunks=(4, *value.shape[1:]))[:] = value
    ends = np.asarray(ends, np.int64)
    meta.create_array("episode_ends", shape=ends.shape, dtype=ends.dtype)[:] = ends
    return path


def write_lerobot(root: Path, state: np.ndarray, action: np.ndarray, lengths=LENGTHS, version="v2.1") -> Path:
    """A LeRobot v2.x dataset: meta/info.json, meta/episodes.jsonl, one parquet file per episode (rows shuffled)."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    (root / "meta").mkdir(parents=True)
    info = {
        "codebase_version": version,
        "chunks_size": 1000,
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "features": {"observation.state": {"dtype": "float32", "shape": [state.shape[1]]}},
    }
    (root / "meta" / "info.json").write_text(json.dumps(info))
    lines, start = [], 0
    for index, length in enumerate(lengths):
        lines.append(json.dumps({"episode_index": index, "tasks": ["push the T"], "length": length}))
        rows = np.random.default_rng(index).permutation(length)  # parquet rows need not be in frame order
        table = pa.table(
            {
                "observation.state": [state[start + r].tolist() for r in rows],
                "action": [action[start + r].tolist() for r in rows],
                "episode_index": [index] * length,
                "frame_index": rows.tolist(),
            }
        )
        file = root / "data" / "chunk-000" / f"episode_{index:06d}.parquet"
        file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, file)
        start += length
    (root / "meta" / "episodes.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_dp_zarr_round_trip_with_pusht_keys(tmp_path):
    arrays, ends = _episodes(), np.cumsum(LENGTHS)
    path = write_dp_zarr(tmp_path / "pusht_cchi_v7_replay.zarr", arrays, ends)
    buffer = import_zarr(path)
    assert (buffer.task, buffer.n_episodes, buffer.obs_dim, buffer.action_dim) == ("pusht", 3, 5, 2)
    np.testing.assert_array_equal(buffer.obs, arrays["state"])
    np.testing.assert_array_equal(buffer.action, arrays["action"])
    np.testing.assert_array_equal(buffer.episode_ends, ends)
    both = import_zarr(path, obs_keys=("keypoint", "state"))  # DP's lowdim keys, flattened and concatenated
    assert both.obs_dim == 23
    np.testing.assert_array_equal(both.obs[:, :18], arrays["keypoint"].reshape(-1, 18))


def test_dp_zarr_errors_name_the_store(tmp_path):
    arrays = _episodes()
    bad_ends = write_dp_zarr(tmp_path / "ends.zarr", arrays, [9, 3, 31])  # not increasing
    with pytest.raises(DataError, match="episode_ends") as err:
        import_zarr(bad_ends)
    assert "ends.zarr" in str(err.value)
    with pytest.raises(DataError, match="no data/agent_pos.*action, img, keypoint, n_contacts, state"):
        import_zarr(bad_ends, obs_keys=("agent_pos",))
    arrays["action"][13, 1] = np.nan
    nan = write_dp_zarr(tmp_path / "nan.zarr", arrays, np.cumsum(LENGTHS))
    with pytest.raises(DataError, match="NaN"):
        import_zarr(nan)
    with pytest.raises(DataError, match="not found"):
        import_zarr(tmp_path / "missing.zarr")


def test_lerobot_v2_round_trip_in_frame_order(tmp_path):
    arrays = _episodes(1)
    root = write_lerobot(tmp_path / "lerobot_pusht", arrays["state"], arrays["action"])
    buffer = import_lerobot(root, task="pointmass", gripper_dims=(1,), progress=False)
    np.testing.assert_array_equal(buffer.obs, arrays["state"])
    np.testing.assert_array_equal(buffer.action, arrays["action"])
    np.testing.assert_array_equal(buffer.episode_ends, np.cumsum(LENGTHS))
    assert buffer.gripper_dims == (1,) and buffer.task == "pointmass"


def test_lerobot_errors(tmp_path):
    arrays = _episodes(2)
    v3 = write_lerobot(tmp_path / "v3", arrays["state"], arrays["action"], version="v3.0")
    with pytest.raises(DataError, match="v3.0: only the v2.x layout"):
        import_lerobot(v3, progress=False)
    short = write_lerobot(tmp_path / "short", arrays["state"], arrays["action"], lengths=LENGTHS)
    (short / "meta" / "episodes.jsonl").write_text(json.dumps({"episode_index": 0, "length": 10}) + "\n")
    with pytest.raises(DataError, match="episode 0: 9 frames") as err:
        import_lerobot(short, progress=False)
    assert "episode_000000.parquet" in str(err.value)
    with pytest.raises(DataError, match="no column observation.image"):
        import_lerobot(v3.parent / "short", obs_keys=("observation.image",), progress=False)
    with pytest.raises(DataError, match="meta/info.json not found"):
        import_lerobot(tmp_path, progress=False)


def test_cli_import_writes_a_buffer_that_trains(tmp_path, capsys):
    from diffusekit.robotics.cli import add_commands
    from diffusekit.robotics.workflow import load_robotics_config, with_data

    arrays = _episodes(3)
    path = write_dp_zarr(tmp_path / "in.zarr", arrays, np.cumsum(LENGTHS))
    out = import_replay("zarr", path, tmp_path / "out", "pusht")
    assert out.name == "pusht_replay.npz" and ReplayBuffer.load(out).n_steps == sum(LENGTHS)
    cfg = with_data(load_robotics_config("dp_pusht_tiny", ["train_dataloader.dataset.val_episodes=1"]), out)
    assert (cfg.model.obs_dim, cfg.model.action_dim) == (5, 2)

    import argparse

    parser = argparse.ArgumentParser()
    add_commands(parser)
    args = parser.parse_args(["import", "--from", "zarr", "--data", str(path), "--out", str(tmp_path / "cli")])
    assert args.func(args) == 0
    assert "pusht_replay.npz" in capsys.readouterr().out
    assert ReplayBuffer.load(tmp_path / "cli" / "pusht_replay.npz").n_episodes == 3
