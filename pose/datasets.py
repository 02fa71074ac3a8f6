"""Top-down video clips of PoseTrack people for DiffPose and the heatmap baseline, registered for mmengine.

One item = one person box in one labelled frame: the frames at ``frame_offsets`` around it (support frames clipped
at the video ends, as PoseTrack loaders do), all cropped with the key frame's box (grown to the crop's aspect ratio,
then by 25%), and the key frame's Gaussian heatmaps. Boxes come from the ground truth (training, oracle evaluation)
or from a detections JSON (``boxes=<path>``, the published PoseTrack protocol).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset

from diffusekit.core.errors import DataError
from diffusekit.pose.codec import HeatmapCodec, box_to_center_size, crop_matrix, transform_points, warp
from diffusekit.pose.media import image_file_problem, read_image
from diffusekit.pose.posetrack import FLIP_PAIRS, PoseVideo, assign_detections, read_detection_file, read_split

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ClipCrops",
    "ClipItem",
    "PoseTrackClips",
    "detection_items",
    "gt_items",
    "read_frame",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclass(frozen=True)
class ClipItem:
    video: int  # index into the dataset's videos
    frame: int  # index into that video's frames
    box: tuple[float, float, float, float]  # [x, y, w, h] in image pixels
    box_score: float = 1.0
    person: int | None = None  # ground-truth person index (None for detections)


def read_frame(path: Path) -> np.ndarray:
    """An RGB uint8 frame, or a `DataError` naming the file (missing, unreadable, truncated, not an image)."""
    return cv2.cvtColor(read_image(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _gt_box(keypoints: np.ndarray, annotated: np.ndarray, box: np.ndarray | None) -> np.ndarray | None:
    if box is not None and box[2] > 1 and box[3] > 1:
        return box
    if annotated.sum() < 2:
        return None
    lo, hi = keypoints[annotated, :2].min(0), keypoints[annotated, :2].max(0)
    return np.concatenate([lo, np.maximum(hi - lo, 1.0)])


def gt_items(videos: Sequence[PoseVideo]) -> list[ClipItem]:
    """One item per annotated person of every labelled frame (box from the file, else the joints' extent)."""
    items = []
    for v, video in enumerate(videos):
        for f, frame in enumerate(video.frames):
            if not frame.is_labeled:
                continue
            for p, person in enumerate(frame.people):
                box = _gt_box(person.keypoints, person.annotated, person.bbox)
                if box is not None and person.annotated.any():
                    items.append(ClipItem(v, f, tuple(float(b) for b in box), 1.0, p))
    return items


def detection_items(
    videos: Sequence[PoseVideo], path: str | Path, min_score: float = 0.0, where: str = "the PoseTrack videos"
) -> list[ClipItem]:
    """One item per person box scored ``min_score`` or more (a COCO-style detections JSON, ``image_id`` = the
    frame's id in the PoseTrack files, or ``file_name`` = its file name) in every labelled frame, in video and
    frame order. A detection of a frame that none of ``videos`` has is a DataError naming the file and the entry
    (``where`` says which videos they are)."""
    ids, names = {}, {}
    for v, video in enumerate(videos):
        for f, frame in enumerate(video.frames):
            ids[frame.image_id] = names[frame.file_name] = (v, f)
    example = next((f"image_id is an image's 'id' there, e.g. {k}" for k in ids), "it has no frames")
    assigned = assign_detections(read_detection_file(path), ids, names, path, f"{where} ({example})", min_score)
    items = [ClipItem(v, f, tuple(float(b) for b in d.box), d.score) for (v, f), d in assigned
             if videos[v].frames[f].is_labeled]  # fmt: skip
    return sorted(items, key=lambda item: (item.video, item.frame))


class ClipCrops(Dataset):
    """Crops of ``items`` (person boxes in frames of ``videos``, files under ``root``) as model inputs: the clip
    (T, 3, H, W) normalised with the ImageNet statistics, and for ground-truth items the key frame's heatmaps."""

    def __init__(
        self,
        root: str | Path,
        videos: Sequence[PoseVideo],
        items: Sequence[ClipItem],
        codec: HeatmapCodec,
        frame_offsets: Sequence[int] = (-1, 0, 1),
        augment: dict | None = None,
        padding: float = 1.25,
        cache_frames: int = 256,
    ):
        if 0 not in frame_offsets:
            raise DataError(f"frame_offsets {tuple(frame_offsets)} must contain 0 (the key frame)")
        self.root = Path(root)
        self.videos = list(videos)
        self.items = list(items)
        self.codec = codec
        self.frame_offsets = tuple(int(o) for o in frame_offsets)
        self.augment = dict(augment or {})
        self.padding = float(padding)
        self._cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._cache_size = int(cache_frames)
        self.check_frames()

    def check_frames(self) -> None:
        """DataError for the first frame file the items need that is missing, unreadable or cut short, found from
        each file's first and last bytes before any crop is made (so that a run fails before it starts)."""
        seen: set[Path] = set()
        for item in self.items:
            for offset in self.frame_offsets:
                path = self.frame_path(item, offset)
                if path not in seen:
                    seen.add(path)
                    problem = image_file_problem(path)
                    if problem:
                        raise DataError(problem, path)

    def __len__(self) -> int:
        return len(self.items)

    def frame_path(self, item: ClipItem, offset: int) -> Path:
        video = self.videos[item.video]
        return self.root / video.frame_file(video.frames[item.frame], offset)

    def _frame(self, path: Path) -> np.ndarray:
        if path in self._cache:
            self._cache.move_to_end(path)
            return self._cache[path]
        image = read_frame(path)
        self._cache[path] = image
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return image

    def crop_transform(self, item: ClipItem, rng: np.random.Generator | None = None) -> tuple[np.ndarray, bool]:
        """The item's 2 x 3 image -> crop matrix (randomly scaled, rotated and flipped when augmenting)."""
        width, height = self.codec.input_size
        center, size = box_to_center_size(item.box, width / height, self.padding)
        rotation, flip = 0.0, False
        if rng is not None and self.augment:
            size = size * rng.uniform(1 - self.augment.get("scale", 0.0), 1 + self.augment.get("scale", 0.0))
            if rng.random() < 0.6:
                rotation = float(np.clip(rng.normal(), -2, 2) * self.augment.get("rotation", 0.0))
            flip = bool(rng.random() < self.augment.get("flip", 0.0))
        return crop_matrix(center, size, (width, height), rotation, flip), flip

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        rng = np.random.default_rng(np.random.randint(2**31)) if self.augment else None
        matrix, flipped = self.crop_transform(item, rng)
        size = self.codec.input_size
        images = [self._frame(self.frame_path(item, o)) for o in self.frame_offsets]
        height, width = images[self.frame_offsets.index(0)].shape[:2]
        x, y, w, h = item.box
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise DataError(f"box {[round(v, 1) for v in item.box]} lies outside the {width}x{height} frame",
                            self.frame_path(item, 0))  # fmt: skip
        frames = [warp(image, matrix, size) for image in images]
        clip = (np.stack(frames).astype(np.float32) / 255 - IMAGENET_MEAN) / IMAGENET_STD
        hw, hh = self.codec.heatmap_size
        heatmaps, weights, keypoints = np.zeros((17, hh, hw), np.float32), np.zeros(17, np.float32), np.zeros((17, 2))
        if item.person is not None:
            person = self.videos[item.video].frames[item.frame].people[item.person]
            keypoints = transform_points(person.keypoints[:, :2], matrix)
            visible = person.annotated.astype(np.float32)
            if flipped:  # the crop is mirrored, so the person's left joints now look like right ones
                for a, b in FLIP_PAIRS:
                    keypoints[[a, b]] = keypoints[[b, a]]
                    visible[[a, b]] = visible[[b, a]]
            heatmaps, weights = self.codec.encode(keypoints, visible)
        return {
            "clip": torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous(),  # (T, 3, H, W)
            "heatmaps": torch.from_numpy(heatmaps),
            "weights": torch.from_numpy(weights),
            "keypoints": torch.as_tensor(keypoints, dtype=torch.float32),
            "matrix": torch.from_numpy(matrix),
            "index": index,
        }


@DATASETS.register_module()
class PoseTrackClips(ClipCrops):
    """Clips of ``len(frame_offsets)`` frames around each person of each labelled frame of a PoseTrack split.

    Args:
        data_root: the dataset folder (``annotations/<split>/*.json``, ``images/<split>/<video>/*.jpg``).
        split: ``train`` / ``val`` / ``test``.
        input_size, heatmap_size: (W, H) of the crop and of the heatmaps; sigma of the Gaussians (heatmap px).
        frame_offsets: the clip's frames relative to the key frame (0 must be among them).
        boxes: ``"gt"`` or the path of a COCO-style detections JSON; detections scored below ``min_box_score``
            are dropped (MMPose's ``bbox_score_thr``).
        augment: training augmentation, e.g. ``dict(flip=0.5, scale=0.25, rotation=30)`` (None: none).
        padding: the box enlargement (DiffPose: 25%).
        max_videos: only the first N videos of the split (by name; a cheap validation set during training).

    ``metainfo`` (videos, items, codec) lets `PoseTrackAPMetric` score heatmaps predicted for these crops.
    """

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        input_size: Sequence[int] = (192, 256),
        heatmap_size: Sequence[int] = (48, 64),
        sigma: float = 2.0,
        frame_offsets: Sequence[int] = (-1, 0, 1),
        boxes: str = "gt",
        min_box_score: float = 0.0,
        augment: dict | None = None,
        padding: float = 1.25,
        max_videos: int | None = None,
    ):
        videos = read_split(data_root, split)
        if boxes == "gt":
            videos = videos[: int(max_videos)] if max_videos else videos
            items = gt_items(videos)
        else:  # every detection must name a frame of the split, also when only its first videos are used
            where = f"split {split!r} ({Path(data_root) / 'annotations' / split})"
            items = detection_items(videos, boxes, min_box_score, where)
            if max_videos:
                videos = videos[: int(max_videos)]
                items = [item for item in items if item.video < len(videos)]
        if not items:
            raise DataError(f"no people to crop in split {split!r}", Path(data_root) / "annotations" / split)
        codec = HeatmapCodec(tuple(input_size), tuple(heatmap_size), float(sigma))
        super().__init__(data_root, videos, items, codec, frame_offsets, augment, padding)
        self.split = split

    @property
    def metainfo(self) -> dict:
        return {"videos": self.videos, "items": self.items, "codec": self.codec, "padding": self.padding}
