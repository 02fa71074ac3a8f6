"""Running a pose model over clip crops: heatmaps -> keypoints in image pixels -> PoseTrack people, and the
PoseTrack AP of a whole split (predictions written as per-video PoseTrack18 JSON files, as poseval reads them)."""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

from diffusekit.core.progress import ProgressLine
from diffusekit.pose.codec import invert, transform_points
from diffusekit.pose.datasets import ClipCrops
from diffusekit.pose.metrics import posetrack_ap_videos
from diffusekit.pose.posetrack import PosePerson, write_video

__all__ = ["InferenceSettings", "evaluate_dataset", "format_report", "predict_people"]


@dataclass
class InferenceSettings:
    """How predictions are made: DDIM ``steps`` and ``samples`` (DiffPose), flip averaging, batch size, and the
    joint score under which a joint is not drawn (it is still written and scored, as poseval expects)."""

    steps: int = 5
    samples: int = 1
    flip: bool = True
    sampler: str = "ddim"
    batch_size: int = 32
    draw_threshold: float = 0.2

    @classmethod
    def from_dict(cls, values: dict | None) -> InferenceSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (values or {}).items() if k in names})


def predict_people(
    model: torch.nn.Module, crops: ClipCrops, settings: InferenceSettings, progress: bool = True, seed: int = 0
) -> tuple[list[list[list[PosePerson]]], dict[str, float]]:
    """People per video per frame (one per crop item) and timings; the joint scores are the heatmap maxima."""
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(crops, batch_size=settings.batch_size, shuffle=False, collate_fn=default_collate)
    people = [[[] for _ in video.frames] for video in crops.videos]
    generator = torch.Generator().manual_seed(seed)
    start, done = time.perf_counter(), 0
    line = ProgressLine(enabled=progress)
    for batch in loader:
        clip = batch["clip"].to(device)
        heatmaps = model.predict_heatmaps(
            clip,
            steps=settings.steps,
            samples=settings.samples,
            flip=settings.flip,
            sampler=settings.sampler,
            generator=generator,
        )
        keypoints, scores = crops.codec.decode(heatmaps)
        for j, index in enumerate(batch["index"].tolist()):
            item = crops.items[index]
            xy = transform_points(keypoints[j], invert(batch["matrix"][j].numpy()))
            frame_people = people[item.video][item.frame]
            gt = crops.videos[item.video].frames[item.frame].people
            track = gt[item.person].track_id if item.person is not None else len(frame_people)
            joint_scores = np.clip(scores[j], 0.0, 1.0)
            confident = joint_scores[joint_scores > settings.draw_threshold]
            person_score = (confident.mean() if len(confident) else 0.0) * item.box_score
            frame_people.append(
                PosePerson(np.column_stack([xy, joint_scores]), track, np.asarray(item.box), None, joint_scores,
                           float(person_score))
            )  # fmt: skip
        done += len(clip)
        rate = done / max(time.perf_counter() - start, 1e-9)
        line.update(f"predicting: {done}/{len(crops)} people ({rate:.1f}/s)")
    line.finish()
    seconds = time.perf_counter() - start
    return people, {"seconds": seconds, "people_per_second": len(crops) / max(seconds, 1e-9)}


def evaluate_dataset(
    model: torch.nn.Module,
    crops: ClipCrops,
    settings: InferenceSettings,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """PoseTrack AP (poseval's rules) of the model's predictions on ``crops``; with ``out_dir`` the predictions
    are also written as ``out_dir/<video>.json`` (PoseTrack18)."""
    people, timing = predict_people(model, crops, settings, progress)
    if out_dir is not None:
        for video, frames in zip(crops.videos, people):
            write_video(Path(out_dir) / f"{video.name}.json", video, frames)
    ap = posetrack_ap_videos(list(zip(crops.videos, people)))
    frames = sum(1 for video in people for frame in video if frame)
    return {
        "ap": ap.columns,
        "joints": ap.joints,
        "total": ap.total,
        "frames": ap.frames,
        "people": len(crops),
        "steps": settings.steps,
        "samples": settings.samples,
        "flip": settings.flip,
        "frames_per_second": frames / max(timing["seconds"], 1e-9),
        **timing,
    }


def format_report(result: dict[str, Any], title: str) -> str:
    """A markdown table of the PoseTrack AP columns."""
    names = list(result["ap"])
    return "\n".join(
        [
            f"**{title}**: PoseTrack AP (poseval rules) on {result['frames']} labelled frames, "
            f"{result['people']} people",
            "",
            "| " + " | ".join(names) + " |",
            "|" + "---:|" * len(names),
            "| " + " | ".join(f"{result['ap'][n]:.1f}" for n in names) + " |",
        ]
    )
