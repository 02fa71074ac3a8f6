"""Running a pose model over clip crops: heatmaps -> keypoints in image pixels -> PoseTrack people, and the
PoseTrack AP of a whole split (predictions written as per-video PoseTrack18 JSON files, as poseval reads them).
The evaluation settings and split come from the config's ``evaluate`` block (:func:`inference_settings`,
:func:`eval_crops`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

from diffusekit.core.progress import ProgressLine
from diffusekit.pose.codec import HeatmapCodec, invert, transform_points
from diffusekit.pose.datasets import ClipCrops, ClipItem, PoseTrackClips
from diffusekit.pose.detections import KEYPOINT_SCORE_THR, NMS_THR, crop_area, rescore, suppress_duplicates
from diffusekit.pose.metrics import posetrack_ap_videos
from diffusekit.pose.posetrack import PosePerson, PoseVideo, write_video

__all__ = [
    "InferenceSettings",
    "crop_figure",
    "decode_people",
    "diffpose_codec",
    "eval_crops",
    "evaluate_dataset",
    "evaluate_diffpose",
    "format_report",
    "inference_settings",
    "predict_people",
    "suppress_detection_duplicates",
]

logger = logging.getLogger(__name__)


@dataclass
class InferenceSettings:
    """How predictions are made: DDIM ``steps`` and ``samples`` (DiffPose), flip averaging, batch size, the joint
    score under which a joint is not drawn (it is still written and scored, as poseval expects), and MMPose's
    post-processing of poses in detected boxes: the joint score above which joints count in the person score
    (``keypoint_score_thr``) and the OKS NMS threshold (``nms_thr``; `diffusekit.pose.detections`)."""

    steps: int = 5
    samples: int = 1
    flip: bool = True
    sampler: str = "ddim"
    batch_size: int = 32
    draw_threshold: float = 0.2
    keypoint_score_thr: float = KEYPOINT_SCORE_THR
    nms_thr: float = NMS_THR


def inference_settings(
    cfg, steps: int | None = None, samples: int | None = None, flip: bool | None = None
) -> InferenceSettings:
    """The config's ``evaluate`` settings (unknown keys: DataError), with the given values overriding them."""
    from diffusekit.pose.workflow import evaluate_block

    block = evaluate_block(cfg, "diffpose")
    settings = InferenceSettings(**{k: v for k, v in block.items() if k in asdict(InferenceSettings())})
    for name, value in (("steps", steps), ("samples", samples), ("flip", flip)):
        if value is not None:
            setattr(settings, name, value)
    return settings


def diffpose_codec(cfg) -> tuple[HeatmapCodec, tuple[int, ...]]:
    """The heatmap codec and the clip's frame offsets of a DiffPose config's dataset."""
    dataset = cfg.train_dataloader.dataset
    codec = HeatmapCodec(tuple(dataset["input_size"]), tuple(dataset["heatmap_size"]), dataset.get("sigma", 2.0))
    return codec, tuple(dataset.get("frame_offsets", (-1, 0, 1)))


def eval_crops(
    cfg, data: str | Path, split: str | None = None, boxes: str | None = None, min_box_score: float | None = None
) -> PoseTrackClips:
    """The evaluation split of ``data`` (config ``evaluate.split`` / ``evaluate.boxes`` / ``evaluate.min_box_score``,
    the detection score below which boxes are dropped), without augmentation."""
    from diffusekit.pose.workflow import evaluate_block

    dataset = dict(cfg.train_dataloader.dataset)
    evaluate = evaluate_block(cfg, "diffpose")
    return PoseTrackClips(
        str(data),
        split or evaluate["split"],
        dataset["input_size"],
        dataset["heatmap_size"],
        dataset.get("sigma", 2.0),
        dataset.get("frame_offsets", (-1, 0, 1)),
        boxes or evaluate["boxes"],
        evaluate["min_box_score"] if min_box_score is None else min_box_score,
    )


def decode_people(
    videos: Sequence[PoseVideo],
    items: Sequence[ClipItem],
    codec: HeatmapCodec,
    heatmaps: torch.Tensor,
    indices: Sequence[int],
    matrices: np.ndarray,
    keypoint_score_thr: float = KEYPOINT_SCORE_THR,
) -> Iterator[tuple[ClipItem, PosePerson]]:
    """(item, person) for each crop of a batch: the heatmaps decoded (DARK) and mapped back to image pixels through
    the inverse crop matrix; joint scores are the heatmap maxima, the person score MMPose's rescoring (the box
    score times the mean joint score above ``keypoint_score_thr``). The track id is the ground-truth person's (0
    for detections)."""
    keypoints, scores = codec.decode(heatmaps)
    for j, index in enumerate(indices):
        item = items[int(index)]
        xy = transform_points(keypoints[j], invert(np.asarray(matrices[j])))
        track = videos[item.video].frames[item.frame].people[item.person].track_id if item.person is not None else 0
        joint_scores = np.clip(scores[j], 0.0, 1.0)
        person_score = rescore(item.box_score, joint_scores, keypoint_score_thr)
        person = PosePerson(np.column_stack([xy, joint_scores]), track, np.asarray(item.box), None, joint_scores,
                            person_score)  # fmt: skip
        yield item, person


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
        matrices = batch["matrix"].numpy()
        for item, person in decode_people(crops.videos, crops.items, crops.codec, heatmaps, batch["index"].tolist(),
                                          matrices, settings.keypoint_score_thr):  # fmt: skip
            frame_people = people[item.video][item.frame]
            if item.person is None:  # detections: the box's index in its frame
                person.track_id = len(frame_people)
            frame_people.append(person)
        done += len(clip)
        rate = done / max(time.perf_counter() - start, 1e-9)
        line.update(f"predicting: {done}/{len(crops)} people ({rate:.1f}/s)")
    line.finish()
    seconds = time.perf_counter() - start
    return people, {"seconds": seconds, "people_per_second": len(crops) / max(seconds, 1e-9)}


def suppress_detection_duplicates(
    crops: ClipCrops, people: list[list[list[PosePerson]]], threshold: float = NMS_THR
) -> list[list[list[PosePerson]]]:
    """``people`` (per video, per frame) after MMPose's OKS NMS in every frame, when ``crops`` are detected boxes
    (the area of each pose is its crop's, `crop_area`); ground-truth boxes are left as they are (one per person)."""
    if not any(item.person is None for item in crops.items):
        return people
    width, height = crops.codec.input_size
    return [
        [suppress_duplicates(frame, [crop_area(p.bbox, width / height, crops.padding) for p in frame], threshold)
         for frame in video]
        for video in people
    ]  # fmt: skip


def evaluate_dataset(
    model: torch.nn.Module,
    crops: ClipCrops,
    settings: InferenceSettings,
    out_dir: str | Path | None = None,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """PoseTrack AP (poseval's rules) of the model's predictions on ``crops``; with ``out_dir`` the predictions
    are also written as ``out_dir/<video>.json`` (PoseTrack18). With detected boxes the poses of each frame go
    through MMPose's OKS NMS first (`suppress_detection_duplicates`; the scores are already rescored)."""
    people, timing = predict_people(model, crops, settings, progress, seed)
    people = suppress_detection_duplicates(crops, people, settings.nms_thr)
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
        "poses": sum(len(frame) for video in people for frame in video),
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


def evaluate_diffpose(
    model: torch.nn.Module,
    crops: ClipCrops,
    settings: InferenceSettings,
    out: str | Path | None = None,
    title: str = "",
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """`evaluate_dataset`; with ``out`` also ``out/predictions/<video>.json`` and ``out/crops.png``."""
    out = Path(out) if out is not None else None
    result = evaluate_dataset(model, crops, settings, out / "predictions" if out else None, progress, seed)
    logger.info("PoseTrack Total AP %.1f on %d frames, %d people", result["total"], result["frames"], len(crops))
    if out is not None:
        crop_figure(out / "crops.png", crops, model, settings, title)
    return result


def crop_figure(path: Path, crops: ClipCrops, model: torch.nn.Module, settings: InferenceSettings, title: str):
    """Up to 12 evenly spaced crops with the predicted joints (filled) and the ground truth (rings)."""
    from diffusekit.pose.datasets import IMAGENET_MEAN, IMAGENET_STD
    from diffusekit.pose.visualize import plot_crops

    picks = np.linspace(0, len(crops) - 1, min(12, len(crops))).round().astype(int)
    samples = [crops[int(i)] for i in picks]
    clip = torch.stack([s["clip"] for s in samples]).to(next(model.parameters()).device)
    heatmaps = model.predict_heatmaps(clip, steps=settings.steps, samples=settings.samples, flip=settings.flip)
    predicted, _ = crops.codec.decode(heatmaps)
    middle = crops.frame_offsets.index(0)
    images = [np.clip(s["clip"][middle].permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN, 0, 1) for s in samples]
    truth = [s["keypoints"].numpy()[s["weights"].numpy() > 0] for s in samples]
    return plot_crops(path, images, list(predicted), truth, title)
