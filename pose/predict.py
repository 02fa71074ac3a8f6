"""DiffPose on a video file or a folder of frames: poses written as PoseTrack18 JSON, plus the frames with skeleton
overlays as images and as a video.

DiffPose is top-down: it estimates the pose inside a person box, so it needs the boxes of a person detector. They
come from a detections JSON written by any detector (COCO-style results, ``DETECTIONS_FORMAT``: ``image_id`` = the
frame number from 0, or ``file_name`` = the frame's file name; a PoseTrack18 detections file such as MMPose's
``posetrack18_val_human_detections.json`` works on a PoseTrack video's frame folder, its ids are the frames' ids).
One fixed ``x,y,w,h`` box or the whole frame as one person are explicit choices; without any of them predict
refuses (`require_person_boxes`) rather than assume one person filling the frame."""

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
from diffusekit.pose.posetrack import (
    PoseFrame,
    PoseVideo,
    assign_detections,
    posetrack_frame_id,
    read_detection_file,
    write_video,
)
from diffusekit.pose.visualize import draw_people

__all__ = [
    "NEEDS_DETECTIONS",
    "extract_frames",
    "frame_files",
    "predict_input",
    "require_person_boxes",
    "video_fps",
    "write_video_file",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FPS = 25.0  # overlay videos of frame folders
# (fourcc, suffix) tried in order: MPEG-4 Part 2 in mp4, then Motion JPEG in avi (both in every OpenCV wheel)
VIDEO_CODECS = (("mp4v", ".mp4"), ("MJPG", ".avi"))
DET_SCORE_THR = 0.3  # MMPoseInferencer's bbox_thr
NEEDS_DETECTIONS = (
    "no person boxes: DiffPose is top-down and needs a person detector's boxes; run any detector and pass "
    '--detections people.json, a JSON list of {"image_id": <frame number from 0, or "file_name": <frame file>>, '
    '"bbox": [x, y, w, h], "score": <0..1>, "category_id": 1} (COCO detection results); or --box X,Y,W,H for one '
    "fixed box, or --whole-frame for one person filling every frame"
)


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


def require_person_boxes(
    input_path: str | Path, detections: str | Path | None, box: Sequence[float] | None, whole_frame: bool
) -> None:
    """DataError (`NEEDS_DETECTIONS`, naming the input) unless person boxes are given: a detections file, a fixed
    box, or the explicit choice of the whole frame."""
    if detections is None and box is None and not whole_frame:
        raise DataError(NEEDS_DETECTIONS, input_path)


def _detected_boxes(files: Sequence[Path], path: Path, min_score: float) -> list[list[tuple[np.ndarray, float, str]]]:
    """The person boxes of ``path`` per frame of ``files`` (``image_id`` = the frame number from 0, the frame's
    PoseTrack id in a PoseTrack video folder, or a file name), as (box, score, the entry's label)."""
    ids = {i: i for i in range(len(files))}
    names = {file.name: i for i, file in enumerate(files)}
    for i, file in enumerate(files):
        frame_id = posetrack_frame_id(f"{file.parent.name}/{file.name}", PoseFrame(i, file.name, True).index)
        if frame_id is not None:
            ids.setdefault(frame_id, i)
    where = f"the input ({len(files)} frames: image_id 0..{len(files) - 1} is the frame number, or a file name)"
    boxes: list[list[tuple[np.ndarray, float, str]]] = [[] for _ in files]
    for i, detection in assign_detections(read_detection_file(path), ids, names, path, where, min_score):
        boxes[i].append((detection.box, detection.score, detection.label))
    return boxes


def _boxes(
    files: Sequence[Path],
    detections: str | Path | None,
    box: Sequence[float] | None,
    whole_frame: bool,
    min_score: float,
) -> list[list[tuple[np.ndarray, float]]]:
    height, width = read_image(files[0]).shape[:2]
    source = None
    if detections is not None:
        source = Path(detections)
        boxes = _detected_boxes(files, source, min_score)
    elif box is not None:
        boxes = [[(np.asarray(box, float), 1.0, "--box")] for _ in files]
    elif whole_frame:
        boxes = [[(np.array([0.0, 0.0, width, height]), 1.0, "the whole frame")] for _ in files]
    else:
        raise DataError(NEEDS_DETECTIONS, files[0].parent)
    for i, frame_boxes in enumerate(boxes):
        for b, _, label in frame_boxes:
            if b[2] <= 0 or b[3] <= 0 or not np.isfinite(b).all():
                raise DataError(f"{label}: box {b.round(1).tolist()} needs a finite, positive width and height", source)
            if b[0] >= width or b[1] >= height or b[0] + b[2] <= 0 or b[1] + b[3] <= 0:
                message = f"{label}: box {b.round(1).tolist()} lies outside the {width}x{height} frame {files[i].name}"
                raise DataError(message, source)
    return [[(b, s) for b, s, _ in frame_boxes] for frame_boxes in boxes]


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
    detections: str | Path | None = None,
    box: Sequence[float] | None = None,
    min_score: float = DET_SCORE_THR,
    seed: int = 0,
    progress: bool = True,
    whole_frame: bool = False,
) -> dict:
    """Predict every frame of ``input_path``; write ``OUT/<name>.json`` (PoseTrack18), ``OUT/overlays/<name>/*.jpg``
    and the overlay video ``OUT/<name>.mp4`` (or ``.avi``). Returns the paths and counts.

    The person boxes: ``detections`` (a detections JSON; boxes scored below ``min_score`` are dropped, MMPose's
    ``bbox_thr``), one fixed ``box`` on every frame, or ``whole_frame=True``; one of them is required
    (`require_person_boxes`)."""
    input_path, out = Path(input_path), Path(out_dir)
    require_person_boxes(input_path, detections, box, whole_frame)
    name = input_path.stem if input_path.is_file() else input_path.name
    outputs = [out / f"{name}{suffix}" for suffix in (".json", *(suffix for _, suffix in VIDEO_CODECS))]
    _refuse_overwriting_inputs([input_path], outputs)
    files = frame_files(input_path, out / "frames")
    _refuse_overwriting_inputs(files, [out / "overlays" / name / f"{i:06d}.jpg" for i in range(len(files))])
    boxes = _boxes(files, detections, box, whole_frame, min_score)
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
