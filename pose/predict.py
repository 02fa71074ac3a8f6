"""DiffPose on a video file or a folder of frames: poses written as PoseTrack18 JSON, plus the frames with skeleton
overlays as images and as a video. Person boxes come from a detections JSON (COCO-style, ``image_id`` = frame number
from 0), one fixed ``x,y,w,h`` box, or the whole frame."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.core.files import native_stderr_captured
from diffusekit.core.progress import ProgressLine
from diffusekit.pose.codec import HeatmapCodec
from diffusekit.pose.datasets import ClipCrops, ClipItem
from diffusekit.pose.inference import InferenceSettings, predict_people
from diffusekit.pose.media import count_video_frames, read_image, read_video_frames
from diffusekit.pose.posetrack import PoseFrame, PoseVideo, read_detections, write_video
from diffusekit.pose.visualize import draw_people

__all__ = ["extract_frames", "frame_files", "predict_input", "video_fps", "write_video_file"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FPS = 25.0  # overlay videos of frame folders
# (fourcc, suffix) tried in order: MPEG-4 Part 2 in mp4, then Motion JPEG in avi (both in every OpenCV wheel)
VIDEO_CODECS = (("mp4v", ".mp4"), ("MJPG", ".avi"))


def extract_frames(video: Path, out: Path, progress: bool = True) -> list[Path]:
    """Decode ``video`` with OpenCV into ``out/000000.jpg ...``. The video is checked whole first (a truncated or
    unreadable one is a DataError before anything is written); files of a failed extraction are removed."""
    total = count_video_frames(video)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    line = ProgressLine(enabled=progress)
    files = []
    try:
        for frame in read_video_frames(video):
            path = out / f"{len(files):06d}.jpg"
            cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
            files.append(path)
            line.update(f"extracting frames: {len(files)}/{total}")
    except DataError:
        for path in files:
            path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    line.finish()
    return files


def video_fps(path: Path) -> float:
    """The frame rate of a video file (``DEFAULT_FPS`` for a frame folder or when the file does not say)."""
    if path.is_dir():
        return DEFAULT_FPS
    with native_stderr_captured():
        capture = cv2.VideoCapture(str(path))
        fps = capture.get(cv2.CAP_PROP_FPS) if capture.isOpened() else 0.0
        capture.release()
    return float(fps) if fps and np.isfinite(fps) and 0 < fps <= 240 else DEFAULT_FPS


def _readable_frames(path: Path) -> int:
    with native_stderr_captured():
        capture = cv2.VideoCapture(str(path))
        count = 0
        while capture.isOpened():
            ok, _ = capture.read()
            if not ok:
                break
            count += 1
        capture.release()
    return count


def write_video_file(stem: Path, frames: Sequence[Path], fps: float = DEFAULT_FPS) -> Path:
    """Write the images ``frames`` (all of one size) as a video ``stem.mp4`` (mp4v), or ``stem.avi`` (MJPG) where
    OpenCV cannot write or read back mp4v; the file is checked by decoding it again. DataError when neither works."""
    first = cv2.imread(str(frames[0]))
    height, width = first.shape[:2]
    for fourcc, suffix in VIDEO_CODECS:
        path = stem.with_suffix(suffix)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
        if not writer.isOpened():
            continue
        for file in frames:
            writer.write(cv2.imread(str(file)))
        writer.release()
        if _readable_frames(path) == len(frames):
            return path
        logger.warning("%s: OpenCV cannot read back its %s video; trying the next codec", path, fourcc)
        path.unlink(missing_ok=True)
    raise DataError("OpenCV can write no readable overlay video (tried mp4v and MJPG)", stem)


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
    height, width = read_image(files[0]).shape[:2]
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


def _refuse_overwriting_inputs(inputs: Sequence[Path], outputs: Sequence[Path]) -> None:
    """DataError when one of ``outputs`` is one of the ``inputs`` (an --out that would overwrite what it reads)."""
    existing = {path.resolve() for path in inputs if path.is_file()}
    for path in outputs:
        if path.resolve() in existing:
            raise DataError(f"predict would overwrite its input {path.name} here; choose another --out", path.parent)


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
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Predict every frame of ``input_path``; write ``OUT/<name>.json`` (PoseTrack18), ``OUT/overlays/<name>/*.jpg``
    and the overlay video ``OUT/<name>.mp4`` (or ``.avi``). Returns the paths and counts."""
    input_path, out = Path(input_path), Path(out_dir)
    name = input_path.stem if input_path.is_file() else input_path.name
    outputs = [out / f"{name}{suffix}" for suffix in (".json", *(suffix for _, suffix in VIDEO_CODECS))]
    _refuse_overwriting_inputs([input_path], outputs)
    files = frame_files(input_path, out / "frames")
    _refuse_overwriting_inputs(files, [out / "overlays" / name / f"{i:06d}.jpg" for i in range(len(files))])
    boxes = _boxes(files, detections, box, min_score)
    root = files[0].parent
    frames = [PoseFrame(i, f.name, True) for i, f in enumerate(files)]
    video = PoseVideo(name, None, len(files), frames, name)
    items = [ClipItem(0, i, tuple(b.tolist()), s) for i, fb in enumerate(boxes) for b, s in fb]
    crops = ClipCrops(root, [video], items, cfg_codec, frame_offsets)
    people = predict_people(model, crops, settings, progress, seed)[0][0]
    poses = write_video(out / f"{name}.json", video, people)
    overlays = out / "overlays" / name
    overlays.mkdir(parents=True, exist_ok=True)
    line = ProgressLine(enabled=progress)
    drawn = []
    for i, (file, frame_people) in enumerate(zip(files, people)):
        drawn.append(overlays / f"{i:06d}.jpg")
        cv2.imwrite(str(drawn[-1]), draw_people(read_image(file), frame_people, settings.draw_threshold))
        line.update(f"drawing: {i + 1}/{len(files)} frames")
    line.finish()
    movie = write_video_file(out / name, drawn, video_fps(input_path))
    logger.info("%s: %d frames, %d people -> %s, %s", name, len(files), len(items), poses, movie)
    return dict(json=str(poses), video=str(movie), overlays=str(overlays), frames=len(files), people=len(items))
