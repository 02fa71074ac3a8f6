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
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError

__all__ = [
    "FLIP_PAIRS",
    "KEYPOINTS",
    "POSEVAL_JOINTS",
    "SKELETON",
    "PosePerson",
    "PoseFrame",
    "PoseVideo",
    "convert_posetrack17",
    "read_detections",
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


def _box(value, path: Path, what: str) -> np.ndarray | None:
    if value is None or (isinstance(value, list) and not value):
        return None
    box = np.asarray(value, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise DataError(f"{what} must be 4 finite numbers [x, y, w, h], got {value!r}", path)
    return box


def _regions(image: dict, path: Path) -> list[np.ndarray]:
    xs, ys = image.get("ignore_regions_x") or [], image.get("ignore_regions_y") or []
    if len(xs) != len(ys):
        raise DataError(f"image {image.get('id')}: ignore_regions_x and _y differ in length", path)
    polygons = []
    for x, y in zip(xs, ys):
        if len(x) != len(y):
            raise DataError(f"image {image.get('id')}: an ignore region has {len(x)} x but {len(y)} y", path)
        polygons.append(np.stack([np.asarray(x, float), np.asarray(y, float)], axis=1).reshape(-1, 2))
    return polygons


def _person(ann: dict, num_keypoints: int, path: Path) -> PosePerson:
    keypoints = np.asarray(ann.get("keypoints", []), dtype=np.float64)
    if keypoints.size != 3 * num_keypoints:
        raise DataError(
            f"annotation {ann.get('id')}: {keypoints.size} keypoint values, expected {3 * num_keypoints} "
            f"({num_keypoints} joints x (x, y, v))",
            path,
        )
    keypoints = keypoints.reshape(num_keypoints, 3)
    if not np.isfinite(keypoints).all():
        raise DataError(f"annotation {ann.get('id')}: keypoints contain NaN or inf", path)
    scores = ann.get("scores")
    scores = np.asarray(scores, dtype=np.float64) if scores else None
    if scores is not None and scores.shape != (num_keypoints,):
        raise DataError(f"annotation {ann.get('id')}: {scores.size} joint scores for {num_keypoints} joints", path)
    score = ann.get("score")
    return PosePerson(
        keypoints,
        int(ann.get("track_id", 0)),
        _box(ann.get("bbox"), path, "bbox"),
        _box(ann.get("bbox_head"), path, "bbox_head"),
        scores,
        None if score is None else float(score),
    )


def video_from_json(data: dict, path: Path) -> PoseVideo:
    """Validate a PoseTrack18 dict (or convert a PoseTrack17 one) into a `PoseVideo`."""
    if not isinstance(data, dict):
        raise DataError("not a PoseTrack file: the top level is not a JSON object", path)
    if "annolist" in data:
        data = convert_posetrack17(data, path)
    if "images" not in data or "annotations" not in data:
        raise DataError("not a PoseTrack file: expected 'images' and 'annotations' (or a PoseTrack17 'annolist')", path)
    categories = data.get("categories") or [{"keypoints": KEYPOINTS}]
    names = tuple(categories[0].get("keypoints", KEYPOINTS))
    if names != KEYPOINTS:
        raise DataError(f"keypoint names {names} are not PoseTrack18's {KEYPOINTS}", path)
    frames, by_id = [], {}
    for image in data["images"]:
        if "file_name" not in image or ("id" not in image and "frame_id" not in image):
            raise DataError(f"an image entry lacks 'file_name' or 'id': {str(image)[:120]}", path)
        image_id = int(image.get("id", image.get("frame_id")))
        labeled = bool(image.get("is_labeled", False))
        frame = PoseFrame(image_id, str(image["file_name"]), labeled, _regions(image, path))
        frames.append(frame)
        by_id[image_id] = frame
    for ann in data["annotations"]:
        if ann.get("image_id") not in by_id:
            raise DataError(f"annotation {ann.get('id')} refers to image {ann.get('image_id')}, not in 'images'", path)
        by_id[ann["image_id"]].people.append(_person(ann, len(KEYPOINTS), path))
    first = data["images"][0] if data["images"] else {}
    nframes = int(first.get("nframes", len(frames)))
    name = Path(path).stem if path is not None else str(first.get("vid_id", "video"))
    return PoseVideo(name, path, nframes, frames, str(first.get("vid_id", "")))


def read_video(path: str | Path) -> PoseVideo:
    """Read one per-video PoseTrack18 (or PoseTrack17) JSON file."""
    path = Path(path)
    if not path.is_file():
        raise DataError("PoseTrack annotation file not found", path)
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON ({err})", path) from None
    return video_from_json(data, path)


def read_split(root: str | Path, split: str = "val") -> list[PoseVideo]:
    """Every video of ``root/annotations/<split>/*.json`` (the official PoseTrack18 layout), sorted by name."""
    folder = Path(root) / "annotations" / split
    if not folder.is_dir():
        raise DataError(f"no annotations/{split}/ folder (PoseTrack18 layout: annotations/<split>/<video>.json)", root)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise DataError("no per-video JSON files", folder)
    return [read_video(f) for f in files]


def read_detections(path: str | Path, min_score: float = 0.0) -> dict[int, list[tuple[np.ndarray, float]]]:
    """A COCO-style detections JSON (a list of {image_id, bbox [x, y, w, h], score, category_id}) by image id."""
    path = Path(path)
    if not path.is_file():
        raise DataError("detections file not found", path)
    try:
        items = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid JSON ({err})", path) from None
    if not isinstance(items, list):
        raise DataError("a detections file is a JSON list of {image_id, bbox, score}", path)
    boxes: dict[int, list[tuple[np.ndarray, float]]] = {}
    for item in items:
        if not isinstance(item, dict) or "image_id" not in item or "bbox" not in item:
            raise DataError(f"a detection lacks 'image_id' or 'bbox': {str(item)[:120]}", path)
        if item.get("category_id", 1) != 1 or float(item.get("score", 1.0)) < min_score:
            continue
        boxes.setdefault(int(item["image_id"]), []).append(
            (_box(item["bbox"], path, "bbox"), float(item.get("score", 1.0)))
        )
    return boxes


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
