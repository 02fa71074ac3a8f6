"""Bad inputs to ``diffusekit robotics``: each case exits 2 with one stderr line naming the file or option, prints
no traceback and writes nothing (issue 16). The inputs are corrupted copies of a collected point-mass replay buffer,
of a Diffusion Policy zarr and a LeRobot v2.1 dataset written in their layouts, and of a policy trained for two
iterations once per module."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusekit.core.checkpoint import save_weights
from diffusekit.core.cli import main
from diffusekit.robotics.synthetic import collect
from tests.bad_input import check_case, run_cli
from tests.robotics.test_importers import LENGTHS, _episodes, write_dp_zarr, write_lerobot

TINY = ["train_cfg.max_iters=2", "train_cfg.val_interval=2", "checkpoint_interval=2", "train_dataloader.batch_size=8"]
BUFFER = "pointmass_replay.npz"
ROOT = os.geteuid() == 0


@dataclass
class Base:
    """The module's clean inputs: a replay-buffer folder, a zarr and a LeRobot source, a trained work dir."""

    data: Path
    zarr: Path
    lerobot: Path
    work: Path

    @property
    def buffer(self) -> Path:
        return self.data / BUFFER

    @property
    def weights(self) -> Path:
        return self.work / "final_weights.pth"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("rb_bad_input")
    collect("pointmass", 3, root / "data", progress=False)
    arrays = _episodes()
    write_dp_zarr(root / "in.zarr", arrays, np.cumsum(LENGTHS))
    write_lerobot(root / "lerobot", arrays["state"], arrays["action"])
    argv = ["robotics", "train", "--task", "pointmass", "--data", root / "data", "--work-dir", root / "work"]
    assert main([str(arg) for arg in [*argv, "--cfg-options", *TINY]]) == 0
    yield Base(root / "data", root / "in.zarr", root / "lerobot", root / "work")
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ helpers
def copy(source: Path, tmp: Path, name: str | None = None) -> Path:
    target = tmp / (name or source.name)
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)
    return target


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def buffer_with(b: Base, tmp: Path, **changes) -> Path:
    """A copy of the replay buffer with some arrays replaced (``obs=...`` for ``data/obs``, ``ends=...``)."""
    keys = {"obs": "data/obs", "action": "data/action", "ends": "meta/episode_ends", "task": "meta/task"}
    with np.load(b.buffer) as archive:
        arrays = dict(archive)
    for key, value in changes.items():
        if value is None:
            del arrays[keys[key]]
        else:
            arrays[keys[key]] = value
    path = tmp / "data" / BUFFER
    path.parent.mkdir()
    np.savez(path, **arrays)
    return path


def train_args(data: Path, tmp: Path, *options: str, task: str = "pointmass") -> list:
    argv = ["robotics", "train", "--task", task, "--data", data, "--work-dir", tmp / "work"]
    return [*argv, "--cfg-options", *TINY, *options]


def evaluate_args(checkpoint: Path, tmp: Path, *extra: str) -> list:
    out = ["--out", tmp / "out"] if "--out" not in extra else []
    return ["robotics", "evaluate", "--task", "pointmass", "--checkpoint", checkpoint, "--episodes", "1", *out, *extra]


def rollout_args(checkpoint: Path, out: Path, *extra: str) -> list:
    return ["robotics", "rollout", "--task", "pointmass", "--checkpoint", checkpoint, "--out", out, *extra]


def import_args(source: str, data: Path, tmp: Path, *extra: str) -> list:
    return ["robotics", "import", "--from", source, "--data", data, "--out", tmp / "out", *extra]


def weights_copy(b: Base, tmp: Path) -> Path:
    return copy(b.weights, tmp, "final_weights.pth")


def edited_weights(b: Base, tmp: Path, edit: Callable[[dict], None]) -> Path:
    """A copy of the trained weights with ``edit`` applied to the raw and the EMA state dicts."""
    state = torch.load(b.weights, weights_only=True)
    for weights in (state["state_dict"], state.get("ema_state_dict") or {}):
        edit(weights)
    path = tmp / "final_weights.pth"
    save_weights(path, state["state_dict"], state.get("ema_state_dict"), **state.get("meta", {}))
    return path


def lerobot_copy(b: Base, tmp: Path) -> Path:
    return copy(b.lerobot, tmp, "lerobot")


def zarr_with(tmp: Path, key: str, value: np.ndarray | None = None, ends=None) -> Path:
    arrays = _episodes()
    if value is not None:
        arrays[key] = value
    return write_dp_zarr(tmp / "src.zarr", arrays, np.cumsum(LENGTHS) if ends is None else ends)


Case = Callable[[Base, Path], tuple]  # -> (argv, names the line must hold, paths that must stay untouched)
CASES: list = []


def case(name: str, needs_non_root: bool = False, needs: str | None = None):
    def register(build: Case) -> Case:
        marks = [pytest.mark.skipif(ROOT, reason="root reads any file")] if needs_non_root else []
        if needs is not None:
            marks.append(pytest.mark.skipif(not _importable(needs), reason=f"needs {needs}"))
        CASES.append(pytest.param(build, id=name, marks=marks))
        return build

    return register


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ---------------------------------------------------------------------------------------------- collect
@case("collect-zero-episodes")
def _(b, tmp):
    return ["robotics", "collect", "--episodes", "0", "--out", tmp / "d"], ("--episodes",), (tmp,)


@case("collect-negative-episodes")
def _(b, tmp):
    return ["robotics", "collect", "--episodes", "-3", "--out", tmp / "d"], ("--episodes",), (tmp,)


@case("collect-negative-seed")
def _(b, tmp):
    return ["robotics", "collect", "--seed", "-1", "--out", tmp / "d"], ("--seed",), (tmp,)


@case("collect-unknown-task")
def _(b, tmp):
    return ["robotics", "collect", "--task", "juggling", "--out", tmp / "d"], ("--task",), (tmp,)


@case("collect-out-is-a-file")
def _(b, tmp):
    (tmp / "d").write_text("mine")
    argv = ["robotics", "collect", "--task", "pointmass", "--episodes", "1", "--out", tmp / "d"]
    return argv, (tmp / "d",), (tmp,)


@case("collect-into-a-folder-holding-its-buffer")
def _(b, tmp):
    data = copy(b.data, tmp)
    argv = ["robotics", "collect", "--task", "pointmass", "--episodes", "1", "--out", data]
    return argv, (data / BUFFER, "--overwrite"), (tmp,)


# ----------------------------------------------------------------------------------------------- import
@case("import-zarr-missing")
def _(b, tmp):
    return import_args("zarr", tmp / "none.zarr", tmp), (tmp / "none.zarr",), (tmp,)


@case("import-zarr-a-text-file")
def _(b, tmp):
    (tmp / "src.zip").write_text("not a zip\n")
    return import_args("zarr", tmp / "src.zip", tmp), (tmp / "src.zip",), (tmp,)


@case("import-zarr-missing-key")
def _(b, tmp):
    return import_args("zarr", b.zarr, tmp, "--obs-keys", "agent_pos"), (b.zarr, "agent_pos"), (tmp, b.zarr)


@case("import-zarr-nan-action")
def _(b, tmp):
    action = _episodes()["action"]
    action[5, 1] = np.nan
    src = zarr_with(tmp, "action", action)
    return import_args("zarr", src, tmp), (src, "NaN"), (tmp,)


@case("import-zarr-1e39-in-float64")
def _(b, tmp):
    state = _episodes()["state"].astype(np.float64)
    state[4, 0] = 1e39
    src = zarr_with(tmp, "state", state)
    return import_args("zarr", src, tmp), (src, "float32"), (tmp,)


@case("import-zarr-strings-as-state")
def _(b, tmp):
    src = zarr_with(tmp, "state", np.array([["a"] * 5] * sum(LENGTHS)))
    return import_args("zarr", src, tmp), (src, "data/state"), (tmp,)


@case("import-zarr-ends-not-increasing")
def _(b, tmp):
    src = zarr_with(tmp, "state", ends=[9, 3, sum(LENGTHS)])
    return import_args("zarr", src, tmp), (src, "episode_ends"), (tmp,)


@case("import-zarr-gripper-dim-out-of-range")
def _(b, tmp):
    return import_args("zarr", b.zarr, tmp, "--gripper-dims", "7"), (b.zarr, "gripper_dims"), (tmp, b.zarr)


@case("import-lerobot-info-not-utf8")
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    (src / "meta" / "info.json").write_bytes(b'{"codebase_version": "v2.1\xff"}')
    return import_args("lerobot", src, tmp), (src / "meta" / "info.json",), (tmp,)


@case("import-lerobot-info-unreadable", needs_non_root=True)
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    (src / "meta" / "info.json").chmod(0)
    return import_args("lerobot", src, tmp), (src / "meta" / "info.json",), (tmp,)


@case("import-lerobot-info-truncated")
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    truncate(src / "meta" / "info.json")
    return import_args("lerobot", src, tmp), (src / "meta" / "info.json", "JSON"), (tmp,)


@case("import-lerobot-info-a-list")
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    (src / "meta" / "info.json").write_text("[1, 2]")
    return import_args("lerobot", src, tmp), (src / "meta" / "info.json",), (tmp,)


@case("import-lerobot-chunks-size-a-string")
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    info = json.loads((src / "meta" / "info.json").read_text())
    info["chunks_size"] = "many"
    (src / "meta" / "info.json").write_text(json.dumps(info))
    return import_args("lerobot", src, tmp), (src / "meta" / "info.json", "chunks_size"), (tmp,)


@case("import-lerobot-data-path-a-number")
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    info = json.loads((src / "meta" / "info.json").read_text())
    info["data_path"] = 5
    (src / "meta" / "info.json").write_text(json.dumps(info))
    return import_args("lerobot", src, tmp), (src / "meta" / "info.json", "data_path"), (tmp,)


@case("import-lerobot-episode-line-a-number")
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    (src / "meta" / "episodes.jsonl").write_text("5\n")
    return import_args("lerobot", src, tmp), (f"{src / 'meta' / 'episodes.jsonl'}:1",), (tmp,)


@case("import-lerobot-episode-length-a-string")
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    path = src / "meta" / "episodes.jsonl"
    path.write_text(json.dumps({"episode_index": 0, "length": "nine"}) + "\n")
    return import_args("lerobot", src, tmp), (f"{path}:1", "length"), (tmp,)


@case("import-lerobot-parquet-truncated")
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    path = src / "data" / "chunk-000" / "episode_000001.parquet"
    truncate(path)
    return import_args("lerobot", src, tmp), (path,), (tmp,)


@case("import-lerobot-length-mismatch")
def _(b, tmp):
    src = lerobot_copy(b, tmp)
    (src / "meta" / "episodes.jsonl").write_text(json.dumps({"episode_index": 0, "length": 10}) + "\n")
    return import_args("lerobot", src, tmp), ("episode_000000.parquet",), (tmp,)


@case("import-out-is-a-file")
def _(b, tmp):
    (tmp / "out").write_text("mine")
    return import_args("zarr", b.zarr, tmp), (tmp / "out",), (tmp, b.zarr)


@case("import-into-a-folder-holding-its-buffer")
def _(b, tmp):
    (tmp / "out").mkdir()
    shutil.copy(b.buffer, tmp / "out" / "pusht_replay.npz")
    return import_args("zarr", b.zarr, tmp), (tmp / "out" / "pusht_replay.npz", "--overwrite"), (tmp, b.zarr)


# --------------------------------------------------------------------------------------- replay buffers
@case("train-data-missing")
def _(b, tmp):
    return train_args(tmp / "none", tmp), (tmp / "none",), (tmp,)


@case("train-buffer-truncated")
def _(b, tmp):
    data = copy(b.data, tmp)
    truncate(data / BUFFER)
    return train_args(data, tmp), (data / BUFFER,), (tmp,)


@case("train-buffer-a-text-file")
def _(b, tmp):
    (tmp / BUFFER).write_text("obs,action\n1,2\n")
    return train_args(tmp / BUFFER, tmp), (tmp / BUFFER, "not a zip"), (tmp,)


@case("train-buffer-unreadable", needs_non_root=True)
def _(b, tmp):
    data = copy(b.data, tmp)
    (data / BUFFER).chmod(0)
    return train_args(data, tmp), (data / BUFFER,), (tmp,)


@case("train-buffer-missing-key")
def _(b, tmp):
    path = buffer_with(b, tmp, ends=None)
    return train_args(path, tmp), (path, "meta/episode_ends"), (tmp,)


@case("train-buffer-nan")
def _(b, tmp):
    with np.load(b.buffer) as archive:
        obs = archive["data/obs"].copy()
    obs[7, 1] = np.nan
    path = buffer_with(b, tmp, obs=obs)
    return train_args(path, tmp), (path, "NaN"), (tmp,)


@case("train-buffer-1e39-in-float64")
def _(b, tmp):
    with np.load(b.buffer) as archive:
        action = archive["data/action"].astype(np.float64)
    action[3, 0] = -1e39
    path = buffer_with(b, tmp, action=action)
    return train_args(path, tmp), (path, "float32"), (tmp,)


@case("train-buffer-obs-1d")
def _(b, tmp):
    with np.load(b.buffer) as archive:
        obs = archive["data/obs"][:, 0].copy()
    path = buffer_with(b, tmp, obs=obs)
    return train_args(path, tmp), (path, "data/obs"), (tmp,)


@case("train-buffer-ends-past-the-steps")
def _(b, tmp):
    with np.load(b.buffer) as archive:
        ends = archive["meta/episode_ends"].copy()
    ends[-1] += 5
    path = buffer_with(b, tmp, ends=ends)
    return train_args(path, tmp), (path, "episode_ends"), (tmp,)


@case("train-buffer-task-a-number")
def _(b, tmp):
    path = buffer_with(b, tmp, task=np.array(3.0))
    return train_args(path, tmp), (path, "meta/task"), (tmp,)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@case("train-buffer-pickle-runs-no-code")
def _(b, tmp):
    path = buffer_with(b, tmp, obs=np.array([_Payload(tmp / "ran")], dtype=object))
    return train_args(path, tmp), (path,), (tmp,)


@case("train-buffer-of-another-task")
def _(b, tmp):
    return train_args(b.data, tmp, task="pusht"), (b.buffer, "pointmass"), (tmp, b.data)


@case("train-several-buffers")
def _(b, tmp):
    data = copy(b.data, tmp)
    shutil.copy(data / BUFFER, data / "pusht_replay.npz")
    return train_args(data, tmp), (data, "several"), (tmp,)


@case("train-work-dir-is-a-file")
def _(b, tmp):
    (tmp / "work").write_text("mine")
    return train_args(b.data, tmp), (tmp / "work",), (tmp, b.data)


@case("train-work-dir-holds-a-run")
def _(b, tmp):
    argv = ["robotics", "train", "--task", "pointmass", "--data", b.data, "--work-dir", b.work, "--cfg-options", *TINY]
    return argv, (b.work, "--resume"), (b.work, b.data)


@case("train-negative-horizon")
def _(b, tmp):
    return train_args(b.data, tmp, "train_dataloader.dataset.horizon=-4"), ("horizon",), (tmp, b.data)


@case("train-zero-gripper-scale")
def _(b, tmp):
    return train_args(b.data, tmp, "train_dataloader.dataset.gripper_scale=0"), ("gripper_scale",), (tmp, b.data)


@case("train-too-many-val-episodes")
def _(b, tmp):
    return train_args(b.data, tmp, "train_dataloader.dataset.val_episodes=5"), (b.buffer,), (tmp, b.data)


@case("train-misspelt-model-key")
def _(b, tmp):
    return train_args(b.data, tmp, "model.horizen=8"), ("horizen",), (tmp, b.data)


@case("train-max-iters-not-a-number")
def _(b, tmp):
    return train_args(b.data, tmp, "train_cfg.max_iters=lots"), ("max_iters",), (tmp, b.data)


@case("train-load-from-url")
def _(b, tmp):
    return train_args(b.data, tmp, "load_from=https://127.0.0.1:9/w.pth"), ("load_from",), (tmp, b.data)


@case("train-yaml-config-runs-no-code")
def _(b, tmp):
    (tmp / "cfg.yaml").write_text(f"model: !!python/object/apply:os.system ['touch {tmp / 'ran'}']\n")
    argv = ["robotics", "train", "--config", tmp / "cfg.yaml", "--data", b.data, "--work-dir", tmp / "work"]
    return argv, (tmp / "cfg.yaml",), (tmp, b.data)


@case("train-config-not-utf8")
def _(b, tmp):
    (tmp / "cfg.py").write_bytes(b"task = '\xff'\n")
    argv = ["robotics", "train", "--config", tmp / "cfg.py", "--data", b.data, "--work-dir", tmp / "work"]
    return argv, (tmp / "cfg.py", "UTF-8"), (tmp, b.data)


# ------------------------------------------------------------------------------------ evaluate options
@case("evaluate-zero-episodes")
def _(b, tmp):
    return [*evaluate_args(b.work, tmp), "--episodes", "0"], ("--episodes",), (tmp, b.work)


@case("evaluate-negative-episodes")
def _(b, tmp):
    return [*evaluate_args(b.work, tmp), "--episodes", "-1"], ("--episodes",), (tmp, b.work)


@case("evaluate-zero-ddim-steps")
def _(b, tmp):
    return evaluate_args(b.work, tmp, "--steps", "0"), ("--steps",), (tmp, b.work)


@case("evaluate-steps-beyond-the-schedule")
def _(b, tmp):
    return evaluate_args(b.work, tmp, "--steps", "1000"), ("--steps", "100"), (tmp, b.work)


@case("evaluate-negative-rti-step")
def _(b, tmp):
    return evaluate_args(b.work, tmp, "--rti-steps", "2", "-1"), ("--rti-steps",), (tmp, b.work)


@case("evaluate-rti-steps-ascending")
def _(b, tmp):
    return evaluate_args(b.work, tmp, "--rti-steps", "0", "1", "2"), ("--rti-steps",), (tmp, b.work)


@case("evaluate-rti-steps-beyond-the-schedule")
def _(b, tmp):
    return evaluate_args(b.work, tmp, "--rti-steps", "500", "0"), ("--rti-steps", "99"), (tmp, b.work)


@case("evaluate-negative-seed")
def _(b, tmp):
    return evaluate_args(b.work, tmp, "--seed", "-1"), ("--seed",), (tmp, b.work)


@case("evaluate-unknown-mode")
def _(b, tmp):
    return evaluate_args(b.work, tmp, "--modes", "fast"), ("--modes",), (tmp, b.work)


@case("evaluate-cfg-negative-episodes")
def _(b, tmp):
    argv = ["robotics", "evaluate", "--task", "pointmass", "--checkpoint", b.work, "--out", tmp / "out"]
    return [*argv, "--cfg-options", "evaluate.episodes=-1"], ("evaluate.episodes",), (tmp, b.work)


@case("evaluate-cfg-zero-episodes")
def _(b, tmp):
    argv = ["robotics", "evaluate", "--task", "pointmass", "--checkpoint", b.work, "--out", tmp / "out"]
    return [*argv, "--cfg-options", "evaluate.episodes=0"], ("evaluate.episodes",), (tmp, b.work)


@case("evaluate-cfg-zero-ddim-steps")
def _(b, tmp):
    argv = [*evaluate_args(b.work, tmp), "--cfg-options", "evaluate.ddim_steps=0"]
    return argv, ("evaluate.ddim_steps",), (tmp, b.work)


@case("evaluate-cfg-rti-steps-ascending")
def _(b, tmp):
    argv = [*evaluate_args(b.work, tmp), "--cfg-options", "evaluate.rti_steps=[0,1,2]"]
    return argv, ("evaluate.rti_steps",), (tmp, b.work)


@case("evaluate-cfg-unknown-mode")
def _(b, tmp):
    argv = [*evaluate_args(b.work, tmp), "--cfg-options", "evaluate.modes=[fast]"]
    return argv, ("evaluate.modes",), (tmp, b.work)


@case("evaluate-cfg-unknown-rti-mode")
def _(b, tmp):
    argv = [*evaluate_args(b.work, tmp), "--cfg-options", "evaluate.rti_mode=quick"]
    return argv, ("evaluate.rti_mode",), (tmp, b.work)


@case("evaluate-cfg-seed-a-string")
def _(b, tmp):
    argv = [*evaluate_args(b.work, tmp), "--cfg-options", "evaluate.seed=abc"]
    return argv, ("evaluate.seed",), (tmp, b.work)


@case("evaluate-cfg-misspelt-key")
def _(b, tmp):
    argv = [*evaluate_args(b.work, tmp), "--cfg-options", "evaluate.episode=3"]
    return argv, ("episode",), (tmp, b.work)


@case("evaluate-out-is-a-file")
def _(b, tmp):
    (tmp / "out").write_text("mine")
    return evaluate_args(b.work, tmp, "--out", tmp / "out"), (tmp / "out",), (tmp, b.work)


@case("evaluate-default-out-is-a-file")
def _(b, tmp):
    weights = weights_copy(b, tmp)
    (tmp / "evaluate").write_text("mine")
    argv = ["robotics", "evaluate", "--task", "pointmass", "--checkpoint", weights, "--episodes", "1"]
    return argv, (tmp / "evaluate",), (tmp,)


@case("evaluate-for-another-task", needs="gym_pusht")
def _(b, tmp):
    argv = ["robotics", "evaluate", "--task", "pusht", "--checkpoint", b.work, "--out", tmp / "out"]
    return argv, (b.weights, "dims"), (tmp, b.work)


# ------------------------------------------------------------------------------------------ checkpoints
@case("checkpoint-missing")
def _(b, tmp):
    return evaluate_args(tmp / "none.pth", tmp), (tmp / "none.pth",), (tmp,)


@case("checkpoint-folder-without-weights")
def _(b, tmp):
    (tmp / "run").mkdir()
    return evaluate_args(tmp / "run", tmp), (tmp / "run",), (tmp,)


@case("checkpoint-truncated")
def _(b, tmp):
    weights = weights_copy(b, tmp)
    truncate(weights)
    return evaluate_args(weights, tmp), (weights,), (tmp,)


@case("checkpoint-a-text-file")
def _(b, tmp):
    (tmp / "w.pth").write_text("weights: none\n")
    return evaluate_args(tmp / "w.pth", tmp), (tmp / "w.pth",), (tmp,)


@case("checkpoint-pickle-runs-no-code")
def _(b, tmp):
    torch.save({"state_dict": _Payload(tmp / "ran")}, tmp / "w.pth")
    return evaluate_args(tmp / "w.pth", tmp), (tmp / "w.pth", "unpickle"), (tmp,)


@case("checkpoint-nan-weights")
def _(b, tmp):
    def poison(weights: dict) -> None:
        for key, value in weights.items():
            if key.startswith("net.") and value.is_floating_point():
                value.view(-1)[0] = float("nan")

    weights = edited_weights(b, tmp, poison)
    return evaluate_args(weights, tmp), (weights, "NaN"), (tmp,)


@case("checkpoint-nan-normaliser")
def _(b, tmp):
    def poison(weights: dict) -> None:
        for key, value in weights.items():
            if key.endswith("normalizer.obs_high"):
                value[0] = float("nan")

    weights = edited_weights(b, tmp, poison)
    return evaluate_args(weights, tmp), (weights, "obs_high"), (tmp,)


@case("checkpoint-normaliser-low-above-high")
def _(b, tmp):
    def swap(weights: dict) -> None:
        for key in [k for k in weights if k.endswith("normalizer.action_low")]:
            high = key.replace("action_low", "action_high")
            weights[key], weights[high] = weights[high].clone() + 1, weights[key].clone()

    weights = edited_weights(b, tmp, swap)
    return evaluate_args(weights, tmp), (weights, "action_low"), (tmp,)


@case("checkpoint-without-normaliser")
def _(b, tmp):
    save_weights(tmp / "w.pth", {"layer.weight": torch.zeros(2, 2)})
    return evaluate_args(tmp / "w.pth", tmp), (tmp / "w.pth", "normalizer"), (tmp,)


@case("checkpoint-of-another-config")
def _(b, tmp):
    argv = [*evaluate_args(b.work, tmp), "--cfg-options", "model.unet.down_dims=(16,32)"]
    return argv, (b.weights,), (tmp, b.work)


# ----------------------------------------------------------------------------------------- rollout, demo
@case("rollout-out-is-a-file")
def _(b, tmp):
    (tmp / "frames").write_text("mine")
    return rollout_args(b.work, tmp / "frames"), (tmp / "frames",), (tmp, b.work)


@case("rollout-zero-steps")
def _(b, tmp):
    return rollout_args(b.work, tmp / "r.gif", "--steps", "0"), ("--steps",), (tmp, b.work)


@case("rollout-rti-steps-not-descending")
def _(b, tmp):
    return rollout_args(b.work, tmp / "r.gif", "--rti-steps", "1", "1", "0"), ("--rti-steps",), (tmp, b.work)


@case("rollout-negative-seed")
def _(b, tmp):
    return rollout_args(b.work, tmp / "r.gif", "--seed", "-5"), ("--seed",), (tmp, b.work)


@case("rollout-checkpoint-truncated")
def _(b, tmp):
    weights = weights_copy(b, tmp)
    truncate(weights, 0.3)
    return rollout_args(weights, tmp / "r.gif"), (weights,), (tmp,)


@case("demo-out-is-a-file")
def _(b, tmp):
    (tmp / "out").write_text("mine")
    return ["robotics", "demo", "--out", tmp / "out", "--quick"], (tmp / "out",), (tmp,)


# ------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("build", CASES)
def test_bad_input_is_one_line_and_writes_nothing(build: Case, base: Base, tmp_path: Path, capfd):
    argv, names, untouched = build(base, tmp_path)
    try:
        check_case(argv, capfd, names=tuple(str(n) for n in names), untouched=untouched)
    finally:
        for path in tmp_path.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
    assert not (tmp_path / "ran").exists(), "a file's code ran"


def test_the_clean_inputs_work(base: Base, tmp_path: Path, capfd):
    """The cases fail because of what they corrupt: the clean sources import and the policy evaluates."""
    for source, data in (("zarr", base.zarr), ("lerobot", base.lerobot)):
        outcome = run_cli(["robotics", "import", "--from", source, "--data", data, "--out", tmp_path / source], capfd)
        assert outcome.code == 0, outcome.err
    argv = [*evaluate_args(base.work, tmp_path), "--modes", "ddim", "--steps", "2"]
    outcome = run_cli(argv, capfd)
    assert outcome.code == 0, outcome.err
