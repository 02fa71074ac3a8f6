"""Configs, training, evaluation and prediction of the perception3d domain as library calls (the CLI, the demo, the
benchmark and notebooks use them alike).

`evaluate_model` runs a trained detector over the test split at every pose-noise level and delay asked for and scores
each run with OpenCOOD's BEV AP at IoU 0.3 / 0.5 / 0.7, in both detection-sort modes; `predict_scenario` writes the
boxes of every frame of one scenario folder as JSON plus BEV figures.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from torch import nn

from diffusekit.core import commands
from diffusekit.core.config_checks import config_block
from diffusekit.core.engine import load_config, train_on_data
from diffusekit.core.errors import DataError
from diffusekit.core.progress import ProgressLine

__all__ = [
    "EVALUATE_DEFAULTS",
    "PeakMemory",
    "evaluate_model",
    "load_model",
    "load_perception_config",
    "predict_scenario",
    "train_model",
]

PACKAGE = "diffusekit.perception3d"
MODEL_IMPORTS = (
    "diffusekit.perception3d.codiff",
    "diffusekit.perception3d.datasets",
    "diffusekit.perception3d.metrics",
)
EVALUATE_DEFAULTS = dict(
    layout="opv2v",
    split="test",
    noise=(0.0, 0.2, 0.4, 0.6),  # pose noise std in m and degrees (CoAlign's sweep)
    laplace=False,
    delay=(0,),  # frames
    seed=303,  # CoAlign's test seed
    sort="frame",
    max_voxels=70_000,
    max_cav=None,  # None: the validation dataset's
    thresholds=(0.3, 0.5, 0.7),
)


def _check_evaluate(block: dict, path) -> None:
    for key in ("noise", "delay"):
        values = block[key]
        if not isinstance(values, (list, tuple)) or not values:
            raise DataError(f"evaluate.{key} must be a non-empty list, got {values!r}", path)
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise DataError(f"evaluate.{key} values must be non-negative numbers, got {value!r}", path)
    if any(int(d) != d for d in block["delay"]):
        raise DataError(f"evaluate.delay values are whole frames, got {block['delay']!r}", path)
    if block["sort"] not in ("frame", "global"):
        raise DataError(f"evaluate.sort must be 'frame' or 'global', got {block['sort']!r}", path)


def load_perception_config(config: str | Path, options: list[str] | None = None) -> Config:
    """A config file or shipped name with ``key=value`` overrides; a bad ``evaluate`` block is a DataError."""
    cfg = load_config(config, package=PACKAGE, cfg_options=options or [])
    if "model" not in cfg:
        raise DataError(f"the config has no 'model'; is it a config of {PACKAGE}?", cfg.filename)
    _check_evaluate(config_block(cfg, "evaluate", EVALUATE_DEFAULTS), cfg.filename)
    return cfg


def load_model(cfg: Config, checkpoint: str | Path, device: str = "auto") -> nn.Module:
    """The model of ``cfg`` with the weights ``checkpoint`` names, on ``device``, in eval mode."""
    return commands.load_model(cfg, checkpoint, device, imports=MODEL_IMPORTS)


def build_model(cfg: Config) -> nn.Module:
    return commands.build_model(cfg, imports=MODEL_IMPORTS)


def train_model(cfg: Config, data: str | Path, work_dir: str | Path, **options) -> Path:
    """Train ``cfg`` on ``data`` (validation frames from the same folder); returns the final weights path.
    ``options``: ``resume``, ``launcher``, ``seed``, ``progress``, ``overwrite`` of ``core.engine.train_on_data``."""
    return train_on_data(copy.deepcopy(cfg), data, work_dir, **options)


class PeakMemory:
    """Peak resident memory (bytes) of this process while the block runs, sampled every 5 ms from /proc
    (CUDA: ``torch.cuda.max_memory_allocated`` instead). ``peak`` is None where neither is available."""

    def __init__(self, device: torch.device | None = None):
        self.device, self.peak, self._stop = device, None, threading.Event()

    @staticmethod
    def _rss() -> int | None:
        try:
            fields = Path("/proc/self/statm").read_text().split()
        except OSError:
            return None
        import os

        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakMemory:
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            value = self._rss()
            if value is not None and (self.peak is None or value > self.peak):
                self.peak = value

    def __exit__(self, *exc) -> None:
        if self.device is not None and self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
            return
        self._stop.set()
        self._thread.join()


def evaluation_dataset(cfg: Config, data: str | Path, noise: float, delay: int, split: str | None = None, **extra):
    """The validation dataset of ``cfg`` on ``data``'s evaluation split with pose noise ``noise`` (m / deg) and a
    ``delay`` of whole frames for every non-ego agent."""
    from diffusekit.perception3d.datasets import CooperativeDetectionDataset

    block = config_block(cfg, "evaluate", EVALUATE_DEFAULTS)
    spec = copy.deepcopy(dict(cfg.val_dataloader.dataset))
    spec.pop("type", None)
    spec.update(
        data_root=str(data),
        layout=block["layout"],
        split=split or block["split"],
        max_voxels=block["max_voxels"],
        seed=block["seed"],
        noise=dict(pos_std=float(noise), rot_std=float(noise), laplace=bool(block["laplace"])) if noise else None,
        delay=dict(mode="frames", num_frames=int(delay)) if delay else None,
    )
    if block["max_cav"] is not None:
        spec["max_cav"] = block["max_cav"]
    spec.update(extra)
    return CooperativeDetectionDataset(**spec)


def _run(model: nn.Module, dataset, label: str, progress: ProgressLine | None, keep: int = 0):
    from diffusekit.perception3d.datasets import cooperative_collate

    device = next(model.parameters()).device
    frames, seconds, examples = [], 0.0, []
    for index in range(len(dataset)):
        batch = cooperative_collate([dataset[index]])
        inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch["inputs"].items()}
        inputs["gt_boxes"] = [g.to(device) for g in inputs["gt_boxes"]]
        start = time.perf_counter()
        output = model.predict(inputs, batch["data_samples"])[0]
        seconds += time.perf_counter() - start
        frames.append(output)
        if len(examples) < keep:
            examples.append(output)
        if progress is not None:
            progress.update(f"{label}: frame {index + 1}/{len(dataset)}")
    return frames, seconds, examples


def evaluate_model(
    cfg: Config,
    model: nn.Module,
    data: str | Path,
    noise: list[float] | None = None,
    delay: list[int] | None = None,
    fusion: str | None = None,
    split: str | None = None,
    max_frames: int | None = None,
    keep: int = 0,
) -> tuple[list[dict[str, Any]], list[dict]]:
    """Detect on every frame of the evaluation split at each (pose noise, delay) pair and score it.

    Returns one record per pair (AP at each IoU threshold in both sorts, the sort the config names as ``ap_*``,
    frames per second, peak memory, counts) and up to ``keep`` example frames of the first pair (for figures).
    ``fusion`` overrides the model's ("late" runs a single-agent model on every agent)."""
    from diffusekit.perception3d.metrics import evaluate_detections

    block = config_block(cfg, "evaluate", EVALUATE_DEFAULTS)
    noises = list(block["noise"] if noise is None else noise)
    delays = [int(d) for d in (block["delay"] if delay is None else delay)]
    _check_evaluate({**block, "noise": noises, "delay": delays}, cfg.filename)
    if fusion is not None:
        if fusion == "attention" and model.fusion != "attention":
            raise DataError("--fusion attention needs a model trained with attention fusion", cfg.filename)
        if fusion != "attention" and model.fusion == "attention":
            raise DataError(f"--fusion {fusion} needs a single-agent model (fusion none)", cfg.filename)
        model.fusion = fusion
    device = next(model.parameters()).device
    records, examples = [], []
    progress = ProgressLine()
    for lag in delays:
        for level in noises:
            dataset = evaluation_dataset(cfg, data, level, lag, split, max_frames=max_frames)
            if len(dataset) == 0:
                raise DataError(f"no frames in split {split or block['split']!r}", data)
            with PeakMemory(device) as memory:
                frames, seconds, kept = _run(
                    model, dataset, f"noise {level:g}, delay {lag}", progress, keep if not records else 0
                )
            examples.extend(kept)
            scores = evaluate_detections(
                frames, thresholds=tuple(block["thresholds"]), sort=block["sort"], both_sorts=True
            )
            records.append(
                dict(
                    scores,
                    noise=float(level),
                    delay=lag,
                    fusion=getattr(model, "fusion", None),
                    frames_per_second=len(frames) / seconds if seconds else float("nan"),
                    seconds_per_frame=seconds / max(1, len(frames)),
                    peak_memory_mib=None if memory.peak is None else memory.peak / 2**20,
                )
            )
    progress.finish()
    return records, examples


def predict_scenario(
    cfg: Config,
    model: nn.Module,
    folder: str | Path,
    out: Path,
    figures: int = 3,
    noise: float = 0.0,
    export: bool = False,
) -> list[Path]:
    """Detect on every frame of one OPV2V/V2XSet scenario folder: ``out/<scenario>/<frame>.json`` (boxes in the ego
    LiDAR frame: x, y, z, l, w, h, yaw, score), BEV figures of the first ``figures`` frames and, with ``export``,
    ``out/<scenario>/<frame>_3d/`` PLY files of every agent's points (in the ego frame), the ground truth and the
    detections for a 3-D viewer (`export.export_scene`). Never reads ``out``."""
    from diffusekit.perception3d.datasets import CooperativeDetectionDataset
    from diffusekit.perception3d.export import export_scene
    from diffusekit.perception3d.geometry import relative_transform, transform_points
    from diffusekit.perception3d.visualize import plot_cooperative_scene

    folder, out = Path(folder).expanduser(), Path(out).expanduser()
    if not folder.is_dir():
        raise DataError("not a scenario folder (one folder per agent with .pcd + .yaml frames)", folder)
    if folder.resolve() == out.resolve() or folder.resolve() in out.resolve().parents:
        raise DataError("the output folder lies inside the scenario folder; choose another --out", out)
    spec = copy.deepcopy(dict(cfg.val_dataloader.dataset))
    spec.pop("type", None)
    block = config_block(cfg, "evaluate", EVALUATE_DEFAULTS)
    spec.update(
        data_root=str(folder.parent.parent),
        split=folder.parent.name,
        layout="opv2v",
        scenario=folder.name,
        max_voxels=block["max_voxels"],
        noise=dict(pos_std=float(noise), rot_std=float(noise)) if noise else None,
        delay=None,
    )
    dataset = CooperativeDetectionDataset(**spec)
    target = commands.output_dir(Path(out).expanduser() / folder.name)
    written = []
    progress = ProgressLine()
    frames, _, _ = _run(model, dataset, f"detecting in {folder.name}", progress)
    progress.finish()
    for index, frame in enumerate(frames):
        boxes = [
            dict(zip(("x", "y", "z", "l", "w", "h", "yaw"), map(float, b)), score=float(s))
            for b, s in zip(frame["boxes"], frame["scores"])
        ]
        record = {
            "scenario": frame["scenario"],
            "frame": frame["frame"],
            "agents": frame["agent_ids"],
            "frame_of_reference": "ego LiDAR (first agent), metres and radians",
            "boxes": boxes,
        }
        path = target / f"{frame['frame']}.json"
        path.write_text(json.dumps(record, indent=1))
        written.append(path)
        if index >= figures and not export:
            continue
        sample = dataset.scenes[frame["index"]]
        poses = np.asarray(sample["poses"])
        to_ego = [relative_transform(pose, poses[0]) for pose in poses]
        points = [transform_points(p, m) for p, m in zip(sample["points"], to_ego)]
        if export:
            named = {str(agent): p for agent, p in zip(frame["agent_ids"], points)}
            written += export_scene(target / f"{frame['frame']}_3d", named, frame["gt_boxes"], frame["boxes"])
        if index < figures:
            written.append(
                plot_cooperative_scene(
                    target / f"{frame['frame']}_bev.png",
                    points,
                    [str(a) for a in frame["agent_ids"]],
                    np.stack([m[:2, 3] for m in to_ego]),
                    frame["gt_boxes"],
                    {"fused": (frame["boxes"], frame["scores"])},
                    cfg.model.point_cloud_range,
                )
            )
    return written
