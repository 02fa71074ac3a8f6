"""Human3.6M in the VideoPose3D npz layout, the pickle-free "flat" npz layout, and the shared `LiftingSequence`.

Published files (VideoPose3D ``DATASETS.md``): ``data_3d_h36m.npz`` holds ``positions_3d`` = {subject: {action:
float32 (N, 32, 3)}} in world coordinates (metres); ``data_2d_h36m_<source>.npz`` holds ``positions_2d`` =
{subject: {action: [4 arrays (N, 17, 2), pixels, one per camera in `CAMERA_IDS` order]}} and ``metadata`` =
{"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": [...]}. Both store those dicts as *pickled* object
arrays, and unpickling a file can run arbitrary code. So the loaders read, by default, only the flat layout written
by `npz_tree.convert_npz` (``<stem>.flat.npz`` next to the original), which ``np.load(..., allow_pickle=False)`` reads:

- every array leaf of the nested dicts / lists under its ``/``-joined path, e.g. ``positions_3d/S1/Walking 1`` and
  ``positions_2d/S1/Walking 1/0`` .. ``/3`` (list items by index, dict keys as ``str(key)``);
- a container holding no arrays (``metadata``) as a JSON string in a 0-d unicode array, its key listed in
  ``__json__``; ``__format__`` = ``"diffusekit-flat-npz/1"``.

Opening a pickled file takes ``allow_pickle=True`` (only for files you trust) or one
``diffusekit pose ddhpose convert FILE``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.pose.camera import CAMERA_IDS, Camera, h36m_camera, world_to_camera
from diffusekit.pose.npz_tree import (
    convert_npz,
    numeric_array,
    pick_file,
    read_npz,
    top_key,
    tree_items,
    tree_mapping,
)
from diffusekit.pose.skeleton import H36M_KEEP

__all__ = [
    "ACTION_ALIASES",
    "H36M_TEST_SUBJECTS",
    "H36M_TRAIN_SUBJECTS",
    "LiftingSequence",
    "canonical_action",
    "convert_videopose3d",
    "h36m_files",
    "load_h36m",
    "load_split",
    "positions_2d_from_tree",
    "read_positions_2d",
    "read_positions_3d",
]

H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
# raw Human3.6M action names -> VideoPose3D's canonical ones (any suffix such as " 1" is kept)
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}


@dataclass
class LiftingSequence:
    """One camera view of one recording: 2D input, 3D target and the camera that links them.

    ``pose_3d`` is in camera coordinates, metres, absolute (the root keeps its position). ``camera`` carries the
    intrinsics (and, for Human3.6M, the extrinsics); it is None where the intrinsics are unknown (MPI-INF-3DHP
    training views), while ``width`` / ``height`` are always known. ``view`` names the camera in `name`.
    """

    subject: str
    action: str
    keypoints_2d: np.ndarray
    pose_3d: np.ndarray | None
    camera: Camera | None
    width: int
    height: int
    valid: np.ndarray | None = None
    dataset: str = "h36m"
    view: str = ""

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.subject, self.action, self.view) if part)

    def __len__(self) -> int:
        return len(self.keypoints_2d)


def canonical_action(name: str) -> str:
    """VideoPose3D's action name: ``TakingPhoto 1`` -> ``Photo 1``, ``WalkingDog`` -> ``WalkDog``."""
    base, sep, suffix = str(name).partition(" ")
    return ACTION_ALIASES.get(base, base) + sep + suffix


def convert_videopose3d(src: str | Path, dst: str | Path | None = None) -> Path:
    """Convert a published VideoPose3D file (``data_3d_h36m.npz``, ``data_2d_h36m_*.npz``) to the flat layout."""
    return convert_npz(src, dst)


def read_positions_3d(path: str | Path, allow_pickle: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """``positions_3d`` of a 3D file: {subject: {canonical action: float32 (N, 17, 3)}}, world metres."""
    path = Path(path)
    root = top_key(read_npz(path, allow_pickle), "positions_3d", path, "VideoPose3D 3D")
    out: dict[str, dict[str, np.ndarray]] = {}
    for subject, actions in tree_items(root):
        tree_mapping(actions, f"positions_3d/{subject}", path)
        for action, value in tree_items(actions):
            key = f"positions_3d/{subject}/{action}"
            pose = numeric_array(value, key, path, (32, 17), (3,))
            if pose.shape[1] == 32:
                pose = pose[:, list(H36M_KEEP)]
            out.setdefault(subject, {})[canonical_action(action)] = pose.astype(np.float32)
    return out


def read_positions_2d(path: str | Path, allow_pickle: bool = False) -> dict[str, dict[str, list[np.ndarray]]]:
    """``positions_2d`` of a 2D file: {subject: {canonical action: 4 float32 (N, 17, 2) arrays, pixels}}.

    A third (score) column is dropped. The file's ``metadata`` must describe the h36m layout with 17 joints.
    """
    path = Path(path)
    return positions_2d_from_tree(read_npz(path, allow_pickle), path)


def positions_2d_from_tree(tree: dict[str, Any], path: Path) -> dict[str, dict[str, list[np.ndarray]]]:
    """`read_positions_2d` on a tree already read with `read_npz` (``path`` names the file in errors)."""
    root = top_key(tree, "positions_2d", path, "VideoPose3D 2D")
    metadata = tree.get("metadata", {})
    if isinstance(metadata, np.ndarray):  # a plain string (e.g. written by hand)
        try:
            metadata = json.loads(str(metadata))
        except json.JSONDecodeError:
            raise DataError("key 'metadata' is not a JSON object", path) from None
    if not isinstance(metadata, dict):
        raise DataError("key 'metadata' is not a dict", path)
    layout = metadata.get("layout_name", "h36m")
    if str(np.asarray(layout)) != "h36m":
        raise DataError(f"key 'metadata/layout_name' is {layout!r}; only the 'h36m' joint order is supported", path)
    num_joints = metadata.get("num_joints", 17)
    if int(np.asarray(num_joints)) != 17:
        raise DataError(f"key 'metadata/num_joints' is {num_joints}, expected 17", path)
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for subject, actions in tree_items(root):
        tree_mapping(actions, f"positions_2d/{subject}", path)
        for action, views in tree_items(actions):
            key = f"positions_2d/{subject}/{action}"
            views = tree_items(tree_mapping(views, key, path))
            if len(views) != len(CAMERA_IDS):
                raise DataError(f"key {key!r}: {len(views)} camera views, expected {len(CAMERA_IDS)}", path)
            arrays = [numeric_array(v, f"{key}/{i}", path, (17,), (2, 3))[..., :2].astype(np.float32) for i, v in views]
            out.setdefault(subject, {})[canonical_action(action)] = arrays
    return out


# ---------------------------------------------------------------------------------------------------------------
# Human3.6M


def h36m_files(root: str | Path, source: str = "cpn_ft_h36m_dbb") -> tuple[Path, Path]:
    """The 3D and 2D files of ``root``, preferring the flat copies (``*.flat.npz``) over the published ones."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("Human3.6M data folder not found", root)
    return pick_file(root, "data_3d_h36m"), pick_file(root, f"data_2d_h36m_{source}")


def _camera_indices(cameras: Iterable[int | str] | None) -> list[int]:
    if cameras is None:
        return list(range(len(CAMERA_IDS)))
    indices = []
    for cam in cameras:
        if isinstance(cam, str) and cam in CAMERA_IDS:
            indices.append(CAMERA_IDS.index(cam))
        elif isinstance(cam, (int, np.integer)) and 0 <= int(cam) < len(CAMERA_IDS):
            indices.append(int(cam))
        else:
            raise DataError(f"unknown camera {cam!r}: give an index 0-3 or one of {', '.join(CAMERA_IDS)}")
    return indices


def _wanted(action: str, actions: Iterable[str] | None) -> bool:
    """``actions`` entries match exactly or by base name ("Walking" selects "Walking" and "Walking 1")."""
    if actions is None:
        return True
    base = action.partition(" ")[0]
    return any(canonical_action(a) in (action, base) for a in actions)


def load_h36m(
    root: str | Path,
    source: str = "cpn_ft_h36m_dbb",
    subjects: Iterable[str] | None = None,
    actions: Iterable[str] | None = None,
    allow_pickle: bool = False,
    cameras: Iterable[int | str] | None = None,
) -> list[LiftingSequence]:
    """Human3.6M sequences (one per subject, action and camera) from the VideoPose3D files in folder ``root``.

    The 3D poses (32 or 17 joints) keep the 17 `H36M_KEEP` joints and go to each camera's coordinates (metres); the
    2D keypoints of ``source`` are cut to the mocap length when longer (as VideoPose3D does). ``subjects`` defaults
    to every subject of the 3D file; ``actions`` filters by name (see `_wanted`); ``cameras`` are indices or ids.
    """
    path_3d, path_2d = h36m_files(root, source)
    poses = read_positions_3d(path_3d, allow_pickle)
    keypoints = read_positions_2d(path_2d, allow_pickle)
    subjects, actions = ([x] if isinstance(x, str) else x for x in (subjects, actions))
    views = _camera_indices([cameras] if isinstance(cameras, (str, int)) else cameras)
    actions = None if actions is None else list(actions)
    sequences = []
    for subject in list(poses) if subjects is None else list(subjects):
        if subject not in poses:
            raise DataError(f"missing key 'positions_3d/{subject}'", path_3d)
        if subject not in keypoints:
            raise DataError(f"missing key 'positions_2d/{subject}'", path_2d)
        for action, world in poses[subject].items():
            if not _wanted(action, actions):
                continue
            if action not in keypoints[subject]:
                raise DataError(f"missing key 'positions_2d/{subject}/{action}'", path_2d)
            for index in views:
                key = f"positions_2d/{subject}/{action}/{index}"
                points = keypoints[subject][action][index]
                if len(points) < len(world):
                    raise DataError(
                        f"key {key!r}: {len(points)} frames, fewer than the {len(world)} of the mocap", path_2d
                    )
                try:
                    camera = h36m_camera(subject, index)
                except KeyError:
                    raise DataError(f"no camera calibration for subject {subject!r}", path_3d) from None
                pose = world_to_camera(world, camera).astype(np.float32)
                sequences.append(
                    LiftingSequence(
                        subject, action, points[: len(world)], pose, camera, camera.width, camera.height, view=camera.id
                    )
                )
    return sequences


def load_split(
    root: str | Path, split: str = "test", source: str = "cpn_ft_h36m_dbb", **kwargs: Any
) -> list[LiftingSequence]:
    """The standard Human3.6M split: ``train`` = S1, S5, S6, S7, S8; ``test`` = S9, S11."""
    subjects = {"train": H36M_TRAIN_SUBJECTS, "test": H36M_TEST_SUBJECTS}.get(split)
    if subjects is None:
        raise DataError(f"unknown split {split!r}: 'train' or 'test'", root)
    return load_h36m(root, source, subjects=subjects, **kwargs)
