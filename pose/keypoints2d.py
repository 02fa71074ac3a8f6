"""2D keypoint sequences as lifting input: npz, PoseTrack18 JSON and COCO keypoints JSON, in the H36M joint order.

Inputs (`read_keypoints_2d`):

- ``.npz`` (pickle-free): ``keypoints`` (N, 17, 2) or (N, 17, 3) (the score column is dropped) already in the
  Human3.6M order, with optional scalar ``width`` / ``height``; or a flat VideoPose3D 2D file (`npz_tree.convert_npz`),
  giving every subject / action / camera.
- PoseTrack18 (or 17) JSON: one sequence per track id; COCO keypoints JSON (``images`` with ``width`` / ``height``,
  ``annotations`` with 51 ``keypoints`` numbers, ``image_id`` and an optional ``track_id``): one per track id.

COCO / PoseTrack -> the 17 Human3.6M joints (`coco_to_h36m`, `posetrack_to_h36m`): hips, knees, ankles, shoulders,
elbows and wrists map directly; pelvis = mean of the hips; thorax = mean of the shoulders; spine = mean of pelvis and
thorax; neck/nose = nose; head = head_top (PoseTrack) or the mean of the eyes (COCO).

A sequence spans the frames from the track's first to its last appearance, in file order. Joints that are missing
(visibility / score <= 0, or the person absent from the frame) are linearly interpolated in time per joint (held
constant before the first and after the last observation); a joint the mapping needs that is never visible in a
sequence is an error.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.pose.camera import CAMERA_IDS, H36M_SUBJECTS, h36m_camera
from diffusekit.pose.h36m import positions_2d_from_tree
from diffusekit.pose.npz_tree import read_npz
from diffusekit.pose.posetrack import KEYPOINTS as POSETRACK_KEYPOINTS
from diffusekit.pose.posetrack import MAX_PIXELS, json_integer, json_numbers, read_json, video_from_json
from diffusekit.pose.skeleton import H36M_JOINTS

__all__ = [
    "COCO_KEYPOINTS",
    "Keypoints2D",
    "coco_to_h36m",
    "interpolate_missing",
    "posetrack_to_h36m",
    "read_keypoints_2d",
]

COCO_KEYPOINTS = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
)  # fmt: skip


class TrackSkipped(UserWarning):
    """A track of a JSON input was left out (a needed joint is never visible in it)."""


@dataclass
class Keypoints2D:
    """One 2D sequence: ``keypoints`` (N, 17, 2) float32 pixels in the H36M order, in an image of width x height.

    ``frames`` (JSON inputs) holds each row's image id; ``observed`` (N, 17) marks joints that were not interpolated.
    """

    name: str
    keypoints: np.ndarray
    width: int
    height: int
    frames: np.ndarray | None = None
    observed: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keypoints)


def _mapping(head: Sequence[int]) -> np.ndarray:
    """(17 H36M, 17 source) averaging weights for a COCO-ordered source whose head joint(s) are ``head``."""
    hips, shoulders = (11, 12), (5, 6)
    sources = {
        "pelvis": hips, "right_hip": (12,), "right_knee": (14,), "right_ankle": (16,), "left_hip": (11,),
        "left_knee": (13,), "left_ankle": (15,), "spine": hips + shoulders, "thorax": shoulders, "neck": (0,),
        "head": tuple(head), "left_shoulder": (5,), "left_elbow": (7,), "left_wrist": (9,), "right_shoulder": (6,),
        "right_elbow": (8,), "right_wrist": (10,),
    }  # fmt: skip
    weights = np.zeros((len(H36M_JOINTS), 17))
    for out, name in enumerate(H36M_JOINTS):
        weights[out, list(sources[name])] = 1.0 / len(sources[name])
    return weights


_COCO_WEIGHTS = _mapping((1, 2))  # head = mean of the eyes
_POSETRACK_WEIGHTS = _mapping((2,))  # head = head_top


def _apply(keypoints: np.ndarray, weights: np.ndarray) -> np.ndarray:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.shape[-2:-1] != (17,) or keypoints.shape[-1] not in (2, 3):
        raise ValueError(f"expected (..., 17, 2) or (..., 17, 3) keypoints, got {keypoints.shape}")
    xy = np.einsum("oj,...jc->...oc", weights, keypoints[..., :2])
    if keypoints.shape[-1] == 2:
        return xy
    conf = np.where(weights > 0, keypoints[..., None, :, 2], np.inf).min(axis=-1)  # over each output's sources
    return np.concatenate([xy, conf[..., None]], axis=-1)


def coco_to_h36m(keypoints: np.ndarray) -> np.ndarray:
    """COCO (..., 17, 2|3) -> H36M (..., 17, 2|3); a derived joint's score is the lowest of its sources'."""
    return _apply(keypoints, _COCO_WEIGHTS)


def posetrack_to_h36m(keypoints: np.ndarray) -> np.ndarray:
    """PoseTrack18 (..., 17, 2|3) -> H36M (..., 17, 2|3); like `coco_to_h36m` with head = head_top."""
    return _apply(keypoints, _POSETRACK_WEIGHTS)


def interpolate_missing(points: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Fill unobserved (N, J, D) entries by linear interpolation in time per joint (constant beyond the ends).

    Raises ValueError naming the joint indices that are never observed.
    """
    points = np.array(points, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    never = np.flatnonzero(~observed.any(axis=0))
    if never.size:
        raise ValueError(f"joints {never.tolist()} are never observed")
    t = np.arange(len(points))
    for j in range(points.shape[1]):
        seen = observed[:, j]
        if seen.all():
            continue
        for c in range(points.shape[2]):
            points[:, j, c] = np.interp(t, t[seen], points[seen, j, c])
    return points


def _track_sequence(
    name: str,
    rows: list[tuple[np.ndarray, np.ndarray] | None],
    frame_ids: list[int],
    weights: np.ndarray,
    source_names: Sequence[str],
    size: tuple[int, int],
    path: Path,
) -> Keypoints2D | None:
    """Map one track's per-frame (source keypoints, observed) (None when absent) to H36M, filling missing joints;
    None (and a `TrackSkipped` warning) when a needed joint is never visible."""
    source = np.zeros((len(rows), 17, 2))
    seen = np.zeros((len(rows), 17), dtype=bool)
    for i, row in enumerate(rows):
        if row is not None:
            source[i], seen[i] = row[0][:, :2], row[1]
    needed = np.flatnonzero(weights.any(axis=0))
    never = [source_names[j] for j in needed if not seen[:, j].any()]
    if never:
        warnings.warn(
            f"{name}: joint(s) {', '.join(never)} never visible, cannot interpolate", TrackSkipped, stacklevel=2
        )
        return None
    filled = source.copy()
    filled[:, needed] = interpolate_missing(source[:, needed], seen[:, needed])
    keypoints = np.einsum("oj,njc->noc", weights, filled).astype(np.float32)
    observed = ~np.einsum("oj,nj->no", (weights > 0).astype(int), (~seen).astype(int)).astype(bool)
    return Keypoints2D(name, keypoints, size[0], size[1], np.asarray(frame_ids, dtype=np.int64), observed)


def _image_size(path: Path, file_name: str) -> tuple[int, int] | None:
    """(width, height) of a frame found next to the JSON file or under one of its parent folders (None when there
    is none, or it cannot be decoded: the given width and height are used then)."""
    try:
        from diffusekit.pose.media import image_size
    except ImportError:  # no OpenCV
        return None
    for folder in path.parents:
        candidate = folder / file_name
        if candidate.is_file():
            try:
                return image_size(candidate)
            except DataError:
                return None
    return None


def _size(
    found: tuple[int, int] | None, width: int | None, height: int | None, path: Path, what: str
) -> tuple[int, int]:
    if found is not None:
        return found
    if width is not None and height is not None:
        return int(width), int(height)
    raise DataError(f"image size unknown ({what}); pass width and height", path)


def _read_posetrack(data: dict, path: Path, width: int | None, height: int | None) -> list[Keypoints2D]:
    video = video_from_json(data, path)
    tracks: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for i, frame in enumerate(video.frames):
        for person in frame.people:
            track = tracks.setdefault(person.track_id, {})
            if i in track:
                raise DataError(f"image {frame.image_id}: two people with track_id {person.track_id}", path)
            track[i] = (person.keypoints, person.keypoints[:, 2] > 0)  # visibility (GT) or score 0: missing
    first = video.frames[0].file_name if video.frames else ""
    size = _size(_image_size(path, first) if first else None, width, height, path, f"frame {first!r} not found")
    sequences = []
    for track_id, by_frame in tracks.items():
        span = range(min(by_frame), max(by_frame) + 1)
        rows = [by_frame.get(i) for i in span]
        ids = [video.frames[i].image_id for i in span]
        name = f"{video.name} track {track_id}"
        sequences.append(_track_sequence(name, rows, ids, _POSETRACK_WEIGHTS, POSETRACK_KEYPOINTS, size, path))
    return [s for s in sequences if s is not None]


def _read_coco(data: dict, path: Path, width: int | None, height: int | None) -> list[Keypoints2D]:
    images = data.get("images")
    annotations = data.get("annotations")
    if not isinstance(images, list) or not isinstance(annotations, list):
        raise DataError("a COCO keypoints file needs the lists 'images' and 'annotations'", path)
    order: dict[int, int] = {}
    for image in images:
        if not isinstance(image, dict) or "id" not in image:
            raise DataError(f"an entry of 'images' lacks 'id': {str(image)[:120]}", path)
        order[json_integer(image["id"], "an image's 'id'", path)] = len(order)
        for key in ("width", "height"):
            if key in image:
                json_integer(image[key], f"image {image['id']}: {key}", path, minimum=1)
    has_tracks = any("track_id" in a for a in annotations if isinstance(a, dict))
    tracks: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for ann in annotations:
        if not isinstance(ann, dict) or ann.get("image_id") not in order:
            raise DataError(f"annotation {str(ann)[:80]} refers to no image in 'images'", path)
        what = f"annotation {ann.get('id')}"
        keypoints = json_numbers(ann.get("keypoints", []), f"{what}: keypoints", path)
        if keypoints.size != 51:
            raise DataError(f"{what}: 'keypoints' must be 51 finite numbers (17 x (x, y, v))", path)
        track_id = json_integer(ann.get("track_id", 0), f"{what}: track_id", path)
        index = order[ann["image_id"]]
        track = tracks.setdefault(track_id, {})
        if index in track:
            hint = "" if has_tracks else "; give each person a 'track_id'"
            raise DataError(f"image {ann['image_id']}: two people with track_id {track_id}{hint}", path)
        keypoints = keypoints.reshape(17, 3)
        track[index] = (keypoints, keypoints[:, 2] > 0)  # COCO: v = 0 unlabelled (a score of 0 for predictions)
    sequences = []
    for track_id, by_frame in tracks.items():
        span = range(min(by_frame), max(by_frame) + 1)
        image = images[min(by_frame)]
        found = (int(image["width"]), int(image["height"])) if "width" in image and "height" in image else None
        size = _size(found, width, height, path, f"image {image['id']} has no width / height")
        name = f"{path.stem} track {track_id}" if has_tracks else path.stem
        rows = [by_frame.get(i) for i in span]
        ids = [int(images[i]["id"]) for i in span]
        sequences.append(_track_sequence(name, rows, ids, _COCO_WEIGHTS, COCO_KEYPOINTS, size, path))
    return [s for s in sequences if s is not None]


def _is_posetrack(data: dict) -> bool:
    if "annolist" in data:
        return True
    categories = data.get("categories")
    first = categories[0] if isinstance(categories, list) and categories else None
    names = first.get("keypoints") if isinstance(first, dict) else None
    if isinstance(names, (list, tuple)) and names:
        return "head_top" in names
    images = data.get("images")
    return isinstance(images, list) and any(
        isinstance(i, dict) and ({"vid_id", "frame_id", "nframes"} & set(i)) for i in images
    )


def _scalar(tree: dict[str, Any], key: str, fallback: int | None, path: Path) -> int | None:
    if key not in tree:
        return fallback
    value = np.asarray(tree[key])
    if value.size != 1 or value.dtype.kind not in "iuf" or not np.isfinite(value).all() or value.item() <= 0:
        raise DataError(f"key {key!r} must be one positive number, got {value.tolist()!r}", path)
    return int(value.item())


def _read_npz(path: Path, width: int | None, height: int | None) -> list[Keypoints2D]:
    tree = read_npz(path, allow_pickle=False)
    if "positions_2d" in tree:
        out = []
        for subject, actions in positions_2d_from_tree(tree, path).items():
            for action, views in actions.items():
                for index, points in enumerate(views):
                    # the image size depends only on the camera, so any calibrated subject gives it
                    camera = h36m_camera(subject if subject in H36M_SUBJECTS else H36M_SUBJECTS[0], index)
                    name = f"{subject} {action} {CAMERA_IDS[index]}"
                    out.append(Keypoints2D(name, points, camera.width, camera.height))
        return out
    if "keypoints" not in tree:
        raise DataError("expected key 'keypoints' (N, 17, 2) or a flat VideoPose3D 'positions_2d' layout", path)
    points = tree["keypoints"]
    if (
        not isinstance(points, np.ndarray)
        or points.dtype.kind not in "iuf"
        or points.ndim != 3
        or points.shape[1:] not in ((17, 2), (17, 3))
    ):
        shape = getattr(points, "shape", type(points).__name__)
        raise DataError(f"key 'keypoints': expected (N, 17, 2) or (N, 17, 3) numbers, got {shape}", path)
    if not np.isfinite(points).all():
        raise DataError("key 'keypoints': contains NaN or inf", path)
    if np.abs(points[..., :2]).max(initial=0) > MAX_PIXELS:
        peak = float(np.abs(points[..., :2]).max())
        raise DataError(f"key 'keypoints': a value of {peak:.3g} is beyond +-{MAX_PIXELS:.0e} pixels", path)
    size = _size(None, _scalar(tree, "width", width, path), _scalar(tree, "height", height, path), path, "no keys")
    return [Keypoints2D(path.stem, points[..., :2].astype(np.float32), *size)]


def read_keypoints_2d(path: str | Path, width: int | None = None, height: int | None = None) -> list[Keypoints2D]:
    """Every 2D sequence of an npz, PoseTrack or COCO JSON file, in the H36M order (pixels).

    ``width`` / ``height`` are used when the file does not give the image size (npz keys, COCO ``images``, or a
    PoseTrack frame readable next to the JSON file).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("keypoints file not found", path)
    if path.suffix.lower() == ".npz":
        return _read_npz(path, width, height)
    if path.suffix.lower() != ".json":
        raise DataError("unsupported keypoints file: expected .npz or .json (PoseTrack / COCO)", path)
    data = read_json(path)
    if not isinstance(data, dict) or not ({"images", "annotations"} <= set(data) or "annolist" in data):
        raise DataError("expected a COCO / PoseTrack object with 'images' and 'annotations'", path)
    categories = data.get("categories", [])
    if not isinstance(categories, list) or not all(isinstance(c, dict) for c in categories):
        raise DataError(f"'categories' must be a list of objects, got {str(categories)[:60]}", path)
    reader = _read_posetrack if _is_posetrack(data) else _read_coco
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackSkipped)
        sequences = reader(data, path, width, height)
    skipped = [str(w.message) for w in caught if issubclass(w.category, TrackSkipped)]
    if not sequences:
        reasons = "; ".join(skipped) if skipped else "no annotated people"
        raise DataError(f"no usable track: {reasons}", path)
    for reason in skipped:  # re-emitted so that callers see them once
        warnings.warn(f"{path}: skipped {reason}", TrackSkipped, stacklevel=2)
    return sequences
