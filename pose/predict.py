"""``diffusekit pose predict``: poses in a video file or a folder of frames, written as PoseTrack18 JSON plus frames
with skeleton overlays. Person boxes come from a detections JSON (COCO-style, ``image_id`` = frame number from 0),
one fixed ``x,y,w,h`` box, or the whole frame."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.pose.codec import HeatmapCodec
from diffusekit.pose.datasets import ClipCrops, ClipItem
from diffusekit.pose.inference import InferenceSettings, predict_people
from diffusekit.pose.posetrack import PoseFrame, PoseVideo, read_detections, write_video
from diffusekit.pose.visualize import draw_people

__all__ = ["extract_frames", "frame_files", "predict_input"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def extract_frames(video: Path, out: Path) -> list[Path]:
    """Decode ``video`` with OpenCV into ``out/000000.jpg ...``."""
    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise DataError("OpenCV cannot open this video", video)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        path = out / f"{len(files):06d}.jpg"
        cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
        files.append(path)
    capture.release()
    if not files:
        raise DataError("OpenCV read no frames from this video", video)
    return files


def frame_files(path: Path, work: Path) -> list[Path]:
    """The frames of ``path``: a folder of images (sorted by name) or a video decoded into ``work``."""
    if not path.exists():
        raise DataError("input not found (a video file or a folder of frames)", path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no frames ({', '.join(IMAGE_SUFFIXES)}) in this folder", path)
        return files
    return extract_frames(path, work / path.stem)


def _boxes(
    files: Sequence[Path], detections: str | None, box: Sequence[float] | None, min_score: float
) -> list[list[tuple[np.ndarray, float]]]:
    first = cv2.imread(str(files[0]))
    if first is None:
        raise DataError("not a readable image", files[0])
    height, width = first.shape[:2]
    if detections:
        by_frame = read_detections(detections, min_score)
        boxes = [by_frame.get(i, []) for i in range(len(files))]
        source = Path(detections)
    elif box is not None:
        boxes = [[(np.asarray(box, float), 1.0)] for _ in files]
        source = None
    else:
        boxes = [[(np.array([0.0, 0.0, width, height]), 1.0)] for _ in files]
        source = None
    for i, frame_boxes in enumerate(boxes):
        for b, _ in frame_boxes:
            if b[2] <= 1 or b[3] <= 1 or b[0] >= width or b[1] >= height or b[0] + b[2] <= 0 or b[1] + b[3] <= 0:
                raise DataError(f"frame {i}: box {b.round(1).tolist()} lies outside the {width}x{height} frame", source)
    return boxes


def predict_input(
    model,
    cfg_codec: HeatmapCodec,
    frame_offsets: Sequence[int],
    settings: InferenceSettings,
    input_path: str | Path,
    out_dir: str | Path,
    detections: str | None = None,
    box: Sequence[float] | None = None,
    min_score: float = 0.0,
) -> list[Path]:
    """Predict every frame of ``input_path``; write ``OUT/<name>.json`` and ``OUT/overlays/<name>/*.jpg``."""
    input_path, out = Path(input_path), Path(out_dir)
    files = frame_files(input_path, out / "frames")
    boxes = _boxes(files, detections, box, min_score)
    name = input_path.stem if input_path.is_file() else input_path.name
    root = files[0].parent
    frames = [PoseFrame(i, f.name, True) for i, f in enumerate(files)]
    video = PoseVideo(name, None, len(files), frames, name)
    items = [ClipItem(0, i, tuple(b.tolist()), s) for i, fb in enumerate(boxes) for b, s in fb]
    crops = ClipCrops(root, [video], items, cfg_codec, frame_offsets)
    people = predict_people(model, crops, settings)[0][0]
    written = [write_video(out / f"{name}.json", video, people)]
    overlays = out / "overlays" / name
    overlays.mkdir(parents=True, exist_ok=True)
    for i, (file, frame_people) in enumerate(zip(files, people)):
        image = cv2.imread(str(file))
        path = overlays / f"{i:06d}.jpg"
        cv2.imwrite(str(path), draw_people(image, frame_people, settings.draw_threshold))
        written.append(path)
    print(f"{name}: {len(files)} frames, {len(items)} people", file=sys.stderr)
    return written
