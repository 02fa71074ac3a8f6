"""MPI-INF-3DHP in the D3DP / DDHPose npz layout (``data_train_3dhp_ori.npz``, ``data_test_3dhp_ori.npz``).

Both files hold one pickled dict under ``data`` (read as in DDHPose ``main_3dhp.py``):

- train: {"S1 Seq1": [{camera: {"data_3d": (N, 17, 3), "data_2d": (N, 17, 2)}}]}, images 2048 x 2048;
- test: {"TS1" .. "TS6": {"data_3d", "data_2d", "valid" (N,)}}, 2048 x 2048 except TS5 / TS6 (1920 x 1080).

3D is ``annot3`` (camera coordinates, mm), 2D pixels, in the 17-joint order of `skeleton.MPI3DHP_JOINTS` (root 14,
pelvis). As for Human3.6M, the loaders read the flat pickle-free copy (``convert_3dhp``) unless ``allow_pickle``.

Cameras: the training files carry no intrinsics, so training sequences have ``camera=None``. The test sequences get
the pinhole intrinsics DDHPose hard-codes for its reprojection-based J-Agg (``main_3dhp.py``, converted from mm on
the sensor to pixels, no distortion): TS1-4 f = 7.32506 mm on a 10 x 10 mm sensor, principal-point offset
(-0.0322884, 0.0929296) mm; TS5/6 f = 8.770747185 mm on 10 x 5.625 mm, offset (-0.104908645, 0.104899704) mm. These
cameras have no extrinsics (the poses are already in camera space).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.pose.camera import Camera
from diffusekit.pose.h36m import LiftingSequence
from diffusekit.pose.npz_tree import convert_npz, numeric_array, pick_file, read_npz, top_key, tree_items

__all__ = ["MPI3DHP_SIZES", "convert_3dhp", "load_3dhp", "mpi3dhp_camera", "mpi3dhp_file"]

TRAIN_SIZE = (2048, 2048)
# test sequence -> (width, height)
MPI3DHP_SIZES = {f"TS{i}": (2048, 2048) if i <= 4 else (1920, 1080) for i in range(1, 7)}
# (focal mm, principal-point offset x, y mm, sensor width, height mm) of the studio (TS1-4) and outdoor (TS5-6) cameras
_TEST_OPTICS = {
    (2048, 2048): (7.32506, -0.0322884, 0.0929296, 10.0, 10.0),
    (1920, 1080): (8.770747185, -0.104908645, 0.104899704, 10.0, 5.625),
}


def mpi3dhp_camera(sequence: str) -> Camera | None:
    """The intrinsics-only `Camera` of test sequence ``TS1`` .. ``TS6`` (None for any other name)."""
    if sequence not in MPI3DHP_SIZES:
        return None
    width, height = MPI3DHP_SIZES[sequence]
    focal, dx, dy, sensor_w, sensor_h = _TEST_OPTICS[(width, height)]
    sx, sy = width / sensor_w, height / sensor_h  # pixels per mm
    intrinsics = np.array([focal * sx, focal * sy, dx * sx + width / 2, dy * sy + height / 2, 0, 0, 0, 0, 0], float)
    return Camera(sequence, width, height, intrinsics)


def convert_3dhp(src: str | Path, dst: str | Path | None = None) -> Path:
    """Convert a pickled D3DP 3DHP file to the flat pickle-free layout (default ``<stem>.flat.npz``)."""
    return convert_npz(src, dst)


def mpi3dhp_file(root: str | Path, split: str = "test") -> Path:
    """``data_<split>_3dhp_ori.flat.npz`` in ``root`` when present, else the published ``.npz``."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: 'train' or 'test'", root)
    root = Path(root)
    if not root.is_dir():
        raise DataError("MPI-INF-3DHP data folder not found", root)
    return pick_file(root, f"data_{split}_3dhp_ori")


def _pair(node: Any, key: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(2D pixels float32 (N, 17, 2), 3D metres float32 (N, 17, 3)) of one record, lengths checked."""
    fields = dict(tree_items(node))
    for name in ("data_3d", "data_2d"):
        if name not in fields:
            raise DataError(f"missing key {key + '/' + name!r}", path)
    pose = numeric_array(fields["data_3d"], f"{key}/data_3d", path, (17,), (3,))
    points = numeric_array(fields["data_2d"], f"{key}/data_2d", path, (17,), (2, 3))
    if len(points) != len(pose):
        raise DataError(f"key {key + '/data_2d'!r}: {len(points)} frames but data_3d has {len(pose)}", path)
    return points[..., :2].astype(np.float32), (pose / 1000.0).astype(np.float32)


def _views(node: Any, key: str, path: Path) -> tuple[list[tuple[str, Any]], str]:
    """The camera dict of a training sequence, unwrapping D3DP's one-element list."""
    items = tree_items(node)
    if not items:
        raise DataError(f"key {key!r}: no camera views", path)
    first = dict(tree_items(items[0][1]))
    if "data_3d" not in first:  # [ {camera: record} ]
        return tree_items(items[0][1]), f"{key}/{items[0][0]}"
    return items, key


def load_3dhp(root: str | Path, split: str = "test", allow_pickle: bool = False) -> list[LiftingSequence]:
    """MPI-INF-3DHP sequences from the D3DP files in folder ``root`` (3D in metres, ``dataset="3dhp"``).

    Training: one sequence per (subject, sequence, camera), ``subject`` "S1", ``action`` "Seq1", ``view``
    "cam<k>", no camera. Test: one per TS1-TS6 with its ``valid`` frame mask and intrinsics (`mpi3dhp_camera`).
    """
    path = mpi3dhp_file(root, split)
    data = top_key(read_npz(path, allow_pickle), "data", path, f"3DHP {split}")
    sequences = []
    for name, node in tree_items(data):
        key = f"data/{name}"
        if split == "test":
            points, pose = _pair(node, key, path)
            fields = dict(tree_items(node))
            if "valid" not in fields:
                raise DataError(f"missing key {key + '/valid'!r}", path)
            valid = np.asarray(fields["valid"])
            if valid.dtype.kind not in "biuf" or valid.size != len(pose) or not np.isfinite(valid).all():
                raise DataError(f"key {key + '/valid'!r}: expected {len(pose)} finite flags, got {valid.shape}", path)
            width, height = MPI3DHP_SIZES.get(name, TRAIN_SIZE)
            sequences.append(
                LiftingSequence(
                    name, "", points, pose, mpi3dhp_camera(name), width, height, valid.reshape(-1) != 0, "3dhp"
                )
            )
            continue
        subject, _, action = name.partition(" ")
        views, prefix = _views(node, key, path)
        for cam, record in views:
            points, pose = _pair(record, f"{prefix}/{cam}", path)
            sequences.append(
                LiftingSequence(subject, action, points, pose, None, *TRAIN_SIZE, None, "3dhp", f"cam{cam}")
            )
    return sequences
