"""PoseTrack18/21 per-video JSON files (and PoseTrack17 through a converter): reading, validation, writing.

The PoseTrack18 format (one JSON per video, COCO-like, the layout poseval and MMPose read):
``images[]`` with ``file_name`` ("images/val/<video>/000000.jpg"), ``id`` = ``frame_id`` (TSSSSSSFFFF), ``vid_id``,
``nframes``, ``is_labeled`` and ``ignore_regions_x/_y`` (polygons); ``annotations[]`` with ``image_id``,
``track_id``, ``keypoints`` (17 x (x, y, vis), flat), ``bbox`` and ``bbox_head`` ([x, y, w, h]); predictions add
``scores`` (per joint) and ``score``. Unannotated joints are (0, 0, 0); the ears are never annotated.
PoseTrack17 (``annolist[]`` with ``annorect`` = head box + ``annopoints``, scalars wrapped in 1-element lists) is
converted to the same structures by the rules of poseval's ``convert.py``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TypeVar

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.pose.readfirst import remembered

__all__ = [
    "DETECTIONS_FORMAT",
    "FLIP_PAIRS",
    "KEYPOINTS",
    "POSEVAL_JOINTS",
    "SKELETON",
    "Detection",
    "PosePerson",
    "PoseFrame",
    "PoseVideo",
    "assign_detections",
    "convert_posetrack17",
    "json_integer",
    "json_numbers",
    "posetrack_frame_id",
    "read_detection_file",
    "read_detections",
    "read_json",
    "read_split",
    "read_video",
    "video_from_json",
    "video_json",
    "write_video",
]

# PoseTrack18 keypoint order (the COCO order with eyes replaced by head_bottom / head_top)
KEYPOINTS = (
    "nose",
    "head_bottom",
    "head_top",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
FLIP_PAIRS = ((3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
# the file's 1-based skeleton, 0-based
SKELETON = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9), (8, 10),
    (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip
# poseval's 15 joint ids (0 r_ankle ... 12 neck = head_bottom, 13 nose, 14 head_top) -> index in KEYPOINTS
POSEVAL_JOINTS = (16, 14, 12, 11, 13, 15, 10, 8, 6, 5, 7, 9, 1, 0, 2)
_DATASET_CODE = {"mpii": 1, "bonn": 2, "mpiinew": 3}  # the T of frame ids TSSSSSSFFFF
T = TypeVar("T")
MAX_PIXELS = 1e6  # a coordinate beyond +-1e6 pixels is a broken file, not a position in a frame


@dataclass
class PosePerson:
    """One person in one frame: ``keypoints`` (17, 3) as (x, y, visibility or score), boxes as [x, y, w, h]."""

    keypoints: np.ndarray
    track_id: int = 0
    bbox: np.ndarray | None = None
    head_box: np.ndarray | None = None
    scores: np.ndarray | None = None  # (17,), predictions only
    score: float | None = None

    @property
    def annotated(self) -> np.ndarray:
        """(17,) bool: poseval's rule, a joint is unannotated only when it is (0, 0) with visibility 0."""
        k = self.keypoints
        return ~((k[:, 0] == 0) & (k[:, 1] == 0) & (k[:, 2] == 0))


@dataclass
class PoseFrame:
    image_id: int
    file_name: str
    is_labeled: bool
    ignore_regions: list[np.ndarray] = field(default_factory=list)  # polygons (n, 2)
    people: list[PosePerson] = field(default_factory=list)

    @property
    def index(self) -> int:
        """The frame number in the video, from the file name (000012.jpg -> 12)."""
        digits = re.findall(r"\d+", Path(self.file_name).stem)
        return int(digits[0]) if digits else 0


@dataclass
class PoseVideo:
    """One PoseTrack video: its frames in file order (labelled or not) and the file it came from."""

    name: str
    path: Path | None
    nframes: int
    frames: list[PoseFrame]
    vid_id: str = ""

    @property
    def labeled_frames(self) -> list[PoseFrame]:
        return [f for f in self.frames if f.is_labeled]

    def frame_file(self, frame: PoseFrame, offset: int = 0) -> str:
        """``frame``'s file name moved by ``offset`` frames, clipped to [0, nframes - 1] (support frames)."""
        if offset == 0:
            return frame.file_name
        stem = Path(frame.file_name).stem
        match = re.search(r"\d+", stem)
        if match is None:
            raise DataError(f"frame file name {frame.file_name!r} has no frame number", self.path)
        index = int(np.clip(int(match.group()) + offset, 0, max(self.nframes - 1, 0)))
        new_stem = stem[: match.start()] + f"{index:0{len(match.group())}d}" + stem[match.end() :]
        return str(Path(frame.file_name).with_name(new_stem + Path(frame.file_name).suffix).as_posix())


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_integer(value, what: str, path: Path | None, minimum: int | None = None) -> int:
    """``value`` as an int: a JSON integer (or an integral float), at least ``minimum``; else a DataError."""
    if not _is_number(value) or not math.isfinite(value) or value != int(value):
        raise DataError(f"{what} must be an integer, got {_short(value)}", path)
    if minimum is not None and value < minimum:
        raise DataError(f"{what} must be at least {minimum}, got {_short(value)}", path)
    return int(value)


def _number(value, what: str, path: Path | None) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise DataError(f"{what} must be a finite number, got {_short(value)}", path)
    return float(value)


def json_numbers(value, what: str, path: Path | None, limit: float = MAX_PIXELS) -> np.ndarray:
    """A JSON list of finite numbers within +-``limit`` as float64; anything else is a DataError naming ``what``."""
    if not isinstance(value, list) or not all(_is_number(v) for v in value):
        raise DataError(f"{what} must be a list of numbers, got {_short(value)}", path)
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise DataError(f"{what} contain NaN or inf", path)
    if array.size and np.abs(array).max() > limit:
        raise DataError(f"{what}: a value of {np.abs(array).max():.3g} is beyond +-{limit:.0e} pixels", path)
    return array


def _mapping(value, what: str, path: Path | None) -> dict:
    if not isinstance(value, dict):
        raise DataError(f"{what} must be a JSON object, got {_short(value)}", path)
    return value


def _listed(value, what: str, path: Path | None) -> list:
    if not isinstance(value, list):
        raise DataError(f"{what!r} must be a JSON list, got {_short(value)}", path)
    return value


def _box(value, path: Path, what: str) -> np.ndarray | None:
    if value is None or (isinstance(value, list) and not value):
        return None
    box = json_numbers(value, what, path)
    if box.shape != (4,):
        raise DataError(f"{what} must be 4 finite numbers [x, y, w, h], got {_short(value)}", path)
    if box[2] < 0 or box[3] < 0:
        raise DataError(f"{what} {_short(value)} has a negative width or height", path)
    return box


def _regions(image: dict, path: Path) -> list[np.ndarray]:
    xs, ys = image.get("ignore_regions_x") or [], image.get("ignore_regions_y") or []
    if not isinstance(xs, list) or not isinstance(ys, list) or len(xs) != len(ys):
        raise DataError(f"image {image.get('id')}: ignore_regions_x and _y must be lists of equal length", path)
    polygons = []
    for x, y in zip(xs, ys):
        x = json_numbers(x, f"image {image.get('id')}: ignore_regions_x", path)
        y = json_numbers(y, f"image {image.get('id')}: ignore_regions_y", path)
        if len(x) != len(y):
            raise DataError(f"image {image.get('id')}: an ignore region has {len(x)} x but {len(y)} y", path)
        polygons.append(np.stack([x, y], axis=1).reshape(-1, 2))
    return polygons


def _person(ann: dict, num_keypoints: int, path: Path) -> PosePerson:
    keypoints = json_numbers(ann.get("keypoints", []), f"annotation {ann.get('id')}: keypoints", path)
    if keypoints.size != 3 * num_keypoints:
        raise DataError(
            f"annotation {ann.get('id')}: {keypoints.size} keypoint values, expected {3 * num_keypoints} "
            f"({num_keypoints} joints x (x, y, v))",
            path,
        )
    keypoints = keypoints.reshape(num_keypoints, 3)
    scores = ann.get("scores")
    scores = json_numbers(scores, f"annotation {ann.get('id')}: scores", path) if scores else None
    if scores is not None and scores.shape != (num_keypoints,):
        raise DataError(f"annotation {ann.get('id')}: {scores.size} joint scores for {num_keypoints} joints", path)
    score = ann.get("score")
    return PosePerson(
        keypoints,
        json_integer(ann.get("track_id", 0), f"annotation {ann.get('id')}: track_id", path),
        _box(ann.get("bbox"), path, f"annotation {ann.get('id')}: bbox"),
        _box(ann.get("bbox_head"), path, f"annotation {ann.get('id')}: bbox_head"),
        scores,
        None if score is None else _number(score, f"annotation {ann.get('id')}: score", path),
    )


def video_from_json(data: dict, path: Path) -> PoseVideo:
    """Validate a PoseTrack18 dict (or convert a PoseTrack17 one) into a `PoseVideo`."""
    if not isinstance(data, dict):
        raise DataError("not a PoseTrack file: the top level is not a JSON object", path)
    if "annolist" in data:
        try:
            data = convert_posetrack17(data, path)
        except DataError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
            raise DataError(f"not a valid PoseTrack17 file ({type(err).__name__}: {err})", path) from None
    if "images" not in data or "annotations" not in data:
        raise DataError("not a PoseTrack file: expected 'images' and 'annotations' (or a PoseTrack17 'annolist')", path)
    images = _listed(data["images"], "images", path)
    annotations = _listed(data["annotations"], "annotations", path)
    categories = _listed(data.get("categories") or [{"keypoints": KEYPOINTS}], "categories", path)
    names = _mapping(categories[0], "categories[0]", path).get("keypoints", KEYPOINTS)
    if not isinstance(names, (list, tuple)) or tuple(names) != KEYPOINTS:
        raise DataError(f"keypoint names {_short(names)} are not PoseTrack18's {KEYPOINTS}", path)
    frames, by_id = [], {}
    for image in images:
        if not isinstance(image, dict) or "file_name" not in image or ("id" not in image and "frame_id" not in image):
            raise DataError(f"an entry of 'images' lacks 'file_name' or 'id': {_short(image)}", path)
        image_id = json_integer(image.get("id", image.get("frame_id")), "an image's 'id'", path)
        if not isinstance(image["file_name"], str):
            raise DataError(f"image {image_id}: file_name must be a string, got {_short(image['file_name'])}", path)
        labeled = image.get("is_labeled", False)
        if labeled not in (True, False, 0, 1):
            raise DataError(f"image {image_id}: is_labeled must be true or false, got {_short(labeled)}", path)
        frame = PoseFrame(image_id, image["file_name"], bool(labeled), _regions(image, path))
        frames.append(frame)
        by_id[image_id] = frame
    for ann in annotations:
        _mapping(ann, "an entry of 'annotations'", path)
        if ann.get("image_id") not in by_id:
            raise DataError(f"annotation {ann.get('id')} refers to image {ann.get('image_id')}, not in 'images'", path)
        by_id[ann["image_id"]].people.append(_person(ann, len(KEYPOINTS), path))
    first = images[0] if images else {}
    nframes = json_integer(first.get("nframes", len(frames)), "'nframes'", path, minimum=1 if frames else 0)
    name = Path(path).stem if path is not None else str(first.get("vid_id", "video"))
    return PoseVideo(name, path, nframes, frames, str(first.get("vid_id", "")))


def read_json(path: str | Path):
    """A UTF-8 JSON file; unreadable, non-UTF-8 and invalid files are a DataError naming the file and where."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path) from None
    except UnicodeDecodeError as err:
        raise DataError(f"not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})", path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON ({err})", path) from None
    except RecursionError:
        raise DataError("not valid JSON (nested too deeply)", path) from None


def read_video(path: str | Path) -> PoseVideo:
    """Read one per-video PoseTrack18 (or PoseTrack17) JSON file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("PoseTrack annotation file not found", path)
    return video_from_json(read_json(path), path)


def read_split(root: str | Path, split: str = "val") -> list[PoseVideo]:
    """Every video of ``root/annotations/<split>/*.json`` (the official PoseTrack18 layout), sorted by name."""
    folder = Path(root) / "annotations" / split
    if not folder.is_dir():
        raise DataError(f"no annotations/{split}/ folder (PoseTrack18 layout: annotations/<split>/<video>.json)", root)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError("no per-video JSON files", folder)
    key = ("posetrack", tuple(str(f.absolute()) for f in files))
    return remembered(key, lambda: [read_video(f) for f in files])


DETECTIONS_FORMAT = (
    'a JSON list of {"image_id": <frame>, "bbox": [x, y, w, h], "score": <0..1>, "category_id": 1} '
    '(COCO detection results; "file_name" may name the frame instead of "image_id")'
)


@dataclass(frozen=True)
class Detection:
    """One entry of a detections file: its index in the file's list (``entry``), the frame it names (``image``: an
    integer image id, or a frame's file name), the box [x, y, w, h] (finite, positive width and height), the
    detector's score (1 when absent) and whether it is a person (``category_id`` 1, or no category)."""

    entry: int
    image: int | str
    box: np.ndarray
    score: float = 1.0
    person: bool = True

    @property
    def label(self) -> str:
        """How error messages name it: ``detection 3 (image_id 10034180000)``."""
        return f"detection {self.entry} (image_id {self.image!r})"


def _detection_box(value, what: str, path: Path) -> np.ndarray:
    if not isinstance(value, list) or len(value) != 4 or not all(_is_number(v) for v in value):
        raise DataError(f"{what}: bbox must be 4 numbers [x, y, w, h], got {_short(value)}", path)
    box = np.asarray(value, dtype=np.float64)
    if not np.isfinite(box).all():
        raise DataError(f"{what}: bbox {_short(value)} has NaN or inf", path)
    if np.abs(box).max() > MAX_PIXELS:
        raise DataError(f"{what}: bbox {_short(value)} has a value beyond +-{MAX_PIXELS:.0e} pixels", path)
    if box[2] <= 0 or box[3] <= 0:
        kind = "negative" if min(box[2], box[3]) < 0 else "zero"
        raise DataError(
            f"{what}: bbox {_short(value)} has {kind} area (width {box[2]:g}, height {box[3]:g}; "
            "a box is [x, y, w, h] with w, h > 0)",
            path,
        )
    return box


def read_detection_file(path: str | Path) -> list[Detection]:
    """Every entry of a detections JSON file (`DETECTIONS_FORMAT`), checked: a DataError naming the file and the
    entry for a missing or malformed frame reference, box or score, a NaN, or a box of zero or negative area."""
    path = Path(path)
    if not path.is_file():
        raise DataError("detections file not found", path)
    items = read_json(path)
    if not isinstance(items, list):
        raise DataError(f"a detections file is {DETECTIONS_FORMAT}; this one is a JSON {type(items).__name__}", path)
    detections = []
    for entry, item in enumerate(items):
        if not isinstance(item, dict):
            raise DataError(f"detection {entry} is not a JSON object but {_short(item)}", path)
        image = item.get("image_id", item.get("file_name"))
        if image is None:
            raise DataError(f"detection {entry} names no frame (no 'image_id' or 'file_name'): {_short(item)}", path)
        if isinstance(image, str):
            if not image.strip():
                raise DataError(f"detection {entry}: image_id is an empty string", path)
        else:
            image = json_integer(image, f"detection {entry}: image_id", path, minimum=0)
        what = f"detection {entry} (image_id {image!r})"
        if "bbox" not in item:
            raise DataError(f"{what} has no 'bbox' [x, y, w, h]", path)
        box = _detection_box(item["bbox"], what, path)
        score = _number(item.get("score", 1.0), f"{what}: score", path)
        category = json_integer(item.get("category_id", 1), f"{what}: category_id", path)
        detections.append(Detection(entry, image, box, score, category == 1))
    return detections


def read_detections(path: str | Path, min_score: float = 0.0) -> dict[int | str, list[tuple[np.ndarray, float]]]:
    """The person boxes of a detections file scored ``min_score`` or more, as (box, score) by frame (its image id,
    or the file name an entry gives instead); the entries are checked by `read_detection_file`."""
    boxes: dict[int | str, list[tuple[np.ndarray, float]]] = {}
    for detection in read_detection_file(path):
        if detection.person and detection.score >= min_score:
            boxes.setdefault(detection.image, []).append((detection.box, detection.score))
    return boxes


def _name_parts(name: str, stem: bool) -> list[tuple[str, ...]]:
    """The path components of ``name``, and (``stem``) the same with the last one's extension dropped."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts:
        return []
    return [parts, (*parts[:-1], PurePosixPath(parts[-1]).stem)] if stem else [parts]


def _name_lookup(names: Mapping[str, T]):
    """A function finding the frame a file name means among ``names``: the same name, or one of which either is a
    trailing part of the other (``000012.jpg`` for ``images/val/v/000012.jpg``, and the reverse), or the same
    without its extension; a name that fits several frames fits none."""
    whole: dict[tuple[str, ...], T] = {}
    endings: dict[tuple[str, ...], T | None] = {}
    for name, target in names.items():
        for parts in _name_parts(name, stem=True):
            whole.setdefault(parts, target)
            for start in range(len(parts)):
                key = parts[start:]
                endings[key] = target if endings.get(key, target) == target else None

    def find(name: str) -> T | None:
        bare = not PurePosixPath(name.replace("\\", "/")).suffix
        for parts in _name_parts(name, stem=False) + (_name_parts(name, stem=True)[1:] if bare else []):
            if endings.get(parts) is not None:
                return endings[parts]
            for start in range(1, len(parts)):
                if parts[start:] in whole:
                    return whole[parts[start:]]
        return None

    return find


def assign_detections(
    detections: Sequence[Detection],
    ids: Mapping[int, T],
    names: Mapping[str, T],
    path: str | Path,
    where: str,
    min_score: float = 0.0,
) -> list[tuple[T, Detection]]:
    """(frame, detection) for the person detections scored ``min_score`` or more (MMPose's ``bbox_score_thr``:
    lower scores are dropped before pose estimation). An integer ``image_id`` is looked up in ``ids``; a string
    (an ``image_id`` or ``file_name`` naming a file) in ``names``, also by a trailing part of the path where that
    fits one frame only. Every entry, kept or not, must name a frame: one that names none is a DataError naming
    the file, the entry and ``where`` (what the frames are)."""
    find = _name_lookup(names)
    assigned = []
    for detection in detections:
        image = detection.image
        target = find(image) if isinstance(image, str) else ids.get(image)
        if target is None:
            raise DataError(f"{detection.label} is not a frame of {where}", path)
        if detection.person and detection.score >= min_score:
            assigned.append((target, detection))
    return assigned


def posetrack_frame_id(file_name: str, index: int) -> int | None:
    """PoseTrack18's id (TSSSSSSFFFF) of frame ``index`` of a file in a folder named like a PoseTrack video
    ("003418_mpii_test"); None for any other folder."""
    parts = Path(file_name).parent.name.split("_")
    if len(parts) < 2 or not parts[0].isdigit() or parts[1] not in _DATASET_CODE or not 0 <= index <= 9999:
        return None
    return _frame_id(file_name, index)


def _frame_id(file_name: str, index: int) -> int:
    """PoseTrack18's TSSSSSSFFFF id of a frame from its folder name ("003418_mpii_test") and frame number."""
    folder = Path(file_name).parent.name
    parts = folder.split("_")
    code = _DATASET_CODE.get(parts[1], 9) if len(parts) > 1 else 9
    video = int(parts[0]) if parts[0].isdigit() else 0
    return int(f"{code}{video:06d}{index:04d}")


def convert_posetrack17(data: dict, path: Path | None = None) -> dict:
    """A PoseTrack17 ``annolist`` as a PoseTrack18 dict (poseval ``convert.py`` rules: head box from x1..y2,
    person box = keypoint extent enlarged 1.3x, visibility 1 when absent, ears left unannotated)."""

    def one(value, what):
        if isinstance(value, list):
            if len(value) != 1:
                raise DataError(f"PoseTrack17 field {what!r} must be a 1-element list, got {value!r}", path)
            return value[0]
        return value

    frames = data.get("annolist")
    if not isinstance(frames, list):
        raise DataError("PoseTrack17 'annolist' must be a list", path)
    images, annotations = [], []
    for frame in frames:
        try:
            name = one(frame["image"], "image")["name"]
        except (KeyError, TypeError):
            raise DataError(f"a PoseTrack17 frame lacks image[0].name: {str(frame)[:120]}", path) from None
        index = int(re.findall(r"\d+", Path(name).stem.split("_")[0])[0])
        image_id = _frame_id(name, index)
        image = {"file_name": name, "id": image_id, "frame_id": image_id, "nframes": len(frames)}
        rects = frame.get("annorect") or []
        image["is_labeled"] = bool(one(frame.get("is_labeled", [int(bool(rects))]), "is_labeled"))
        regions = frame.get("ignore_regions") or []
        image["ignore_regions_x"] = [[one(p["x"], "x") for p in r.get("point", [])] for r in regions]
        image["ignore_regions_y"] = [[one(p["y"], "y") for p in r.get("point", [])] for r in regions]
        images.append(image)
        for k, rect in enumerate(rects):
            keypoints = np.zeros((len(KEYPOINTS), 3))
            scores = np.zeros(len(KEYPOINTS))
            has_scores = False
            points = (rect.get("annopoints") or [{}])[0].get("point", [])
            for point in points:
                joint = int(one(point["id"], "id"))
                if not 0 <= joint < len(POSEVAL_JOINTS):
                    raise DataError(f"PoseTrack17 joint id {joint} is outside 0..14", path)
                slot = POSEVAL_JOINTS[joint]
                keypoints[slot] = (one(point["x"], "x"), one(point["y"], "y"), one(point.get("is_visible", 1), "v"))
                if "score" in point:
                    scores[slot], has_scores = one(point["score"], "score"), True
            person = {
                "id": image_id * 100 + k,
                "image_id": image_id,
                "category_id": 1,
                "track_id": int(one(rect.get("track_id", k), "track_id")),
                "keypoints": keypoints.reshape(-1).tolist(),
                "scores": scores.tolist() if has_scores else [],
            }
            if all(key in rect for key in ("x1", "y1", "x2", "y2")):
                x1, y1, x2, y2 = (float(one(rect[key], key)) for key in ("x1", "y1", "x2", "y2"))
                person["bbox_head"] = [x1, y1, x2 - x1, y2 - y1]
            if points:
                xy = keypoints[[POSEVAL_JOINTS[int(one(p["id"], "id"))] for p in points], :2]
                centre, extent = (xy.max(0) + xy.min(0)) / 2, xy.max(0) - xy.min(0)
                low, high = centre - 0.65 * extent, centre + 0.65 * extent
                person["bbox"] = [low[0], low[1], high[0] - low[0], high[1] - low[1]]
            if "score" in rect:
                person["score"] = float(one(rect["score"], "score"))
            annotations.append(person)
    return {"images": images, "annotations": annotations, "categories": [{"name": "person", "keypoints": KEYPOINTS}]}


def _image_json(frame: PoseFrame, video: PoseVideo) -> dict:
    image = {
        "file_name": frame.file_name,
        "id": frame.image_id,
        "frame_id": frame.image_id,
        "vid_id": video.vid_id,
        "nframes": video.nframes,
        "is_labeled": frame.is_labeled,
    }
    if frame.ignore_regions:
        image["ignore_regions_x"] = [p[:, 0].tolist() for p in frame.ignore_regions]
        image["ignore_regions_y"] = [p[:, 1].tolist() for p in frame.ignore_regions]
    return image


def video_json(video: PoseVideo, people: Sequence[Iterable[PosePerson]] | None = None) -> dict:
    """The PoseTrack18 dict of ``video``; ``people[i]`` replaces the people of frame i (predictions)."""
    annotations = []
    for i, frame in enumerate(video.frames):
        for k, person in enumerate(frame.people if people is None else people[i]):
            ann = {
                "id": frame.image_id * 100 + k,
                "image_id": frame.image_id,
                "category_id": 1,
                "track_id": int(person.track_id),
                "keypoints": np.round(person.keypoints, 3).reshape(-1).tolist(),
                "scores": [] if person.scores is None else np.round(person.scores, 5).tolist(),
            }
            if person.bbox is not None:
                ann["bbox"] = np.round(person.bbox, 2).tolist()
            if person.head_box is not None:
                ann["bbox_head"] = np.round(person.head_box, 2).tolist()
            if person.score is not None:
                ann["score"] = round(float(person.score), 5)
            annotations.append(ann)
    categories = [
        {
            "supercategory": "person",
            "id": 1,
            "name": "person",
            "keypoints": list(KEYPOINTS),
            "skeleton": [[a + 1, b + 1] for a, b in SKELETON],
        }
    ]
    images = [_image_json(f, video) for f in video.frames]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_video(path: str | Path, video: PoseVideo, people: Sequence[Iterable[PosePerson]] | None = None) -> Path:
    """Write ``video`` (with ``people`` per frame, e.g. predictions) as one PoseTrack18 JSON file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(video_json(video, people)))
    tmp.replace(path)
    return path
