"""Rigid transforms between CARLA world, agent LiDAR frames and boxes (OpenCOOD ``utils/transformation_utils.py``).

A pose is OPV2V's ``lidar_pose`` ``[x, y, z, roll, yaw, pitch]`` in the CARLA world frame with the angles in
DEGREES. `pose_to_matrix` builds the same 4x4 matrix as OpenCOOD's ``x_to_world`` (and CARLA's
``Transform.get_matrix``): ``R = Rz(yaw) @ Ry(-pitch) @ Rx(-roll)``, the signs of roll and pitch coming from CARLA's
left-handed convention, so that ``R[2, 0] = sin(pitch)`` and ``R[2, 1] = -cos(pitch) sin(roll)``.
`relative_transform(a, b)` is OpenCOOD's ``x1_to_x2``: ``inv(T_b) @ T_a`` maps points in frame ``a`` to frame ``b``.

Boxes are ``(M, 7)`` ``[x, y, z, l, w, h, yaw]`` (centre, l along the heading, yaw in radians about +z). A box keeps
its size under a rigid transform; only the centre moves and the heading turns by the rotation's yaw, which is exact
when the rotation is about z alone (roll = pitch = 0 between the two frames) and OpenCOOD's approximation otherwise.
"""

from __future__ import annotations

import numpy as np

from diffusekit.core.errors import DataError

__all__ = [
    "matrix_to_pose",
    "pose_to_matrix",
    "relative_transform",
    "transform_boxes",
    "transform_points",
    "yaw_of",
]


def _as_poses(pose) -> tuple[np.ndarray, bool]:
    """``pose`` as float64 (A, 6) and whether a single (6,) pose came in."""
    arr = np.asarray(pose, dtype=np.float64)
    single = arr.ndim == 1
    arr = np.atleast_2d(arr)
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise DataError(f"a pose is [x, y, z, roll, yaw, pitch] (6 numbers); got shape {np.shape(pose)}")
    return arr, single


def pose_to_matrix(pose) -> np.ndarray:
    """The (4, 4) LiDAR-to-world matrix of a ``[x, y, z, roll, yaw, pitch]`` pose in degrees (OpenCOOD
    ``transformation_utils.x_to_world``); a (A, 6) stack of poses gives (A, 4, 4)."""
    poses, single = _as_poses(pose)
    x, y, z = poses[:, 0], poses[:, 1], poses[:, 2]
    roll, yaw, pitch = np.radians(poses[:, 3]), np.radians(poses[:, 4]), np.radians(poses[:, 5])
    cr, sr, cy, sy, cp, sp = np.cos(roll), np.sin(roll), np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    m = np.zeros((len(poses), 4, 4))
    m[:, 0, 0] = cp * cy
    m[:, 0, 1] = cy * sp * sr - sy * cr
    m[:, 0, 2] = -cy * sp * cr - sy * sr
    m[:, 1, 0] = sy * cp
    m[:, 1, 1] = sy * sp * sr + cy * cr
    m[:, 1, 2] = -sy * sp * cr + cy * sr
    m[:, 2, 0] = sp
    m[:, 2, 1] = -cp * sr
    m[:, 2, 2] = cp * cr
    m[:, 0, 3], m[:, 1, 3], m[:, 2, 3], m[:, 3, 3] = x, y, z, 1.0
    return m[0] if single else m


def matrix_to_pose(matrix) -> np.ndarray:
    """The ``[x, y, z, roll, yaw, pitch]`` pose (degrees) of a rigid (4, 4) matrix, the inverse of `pose_to_matrix`
    for pitch in (-90, 90) degrees; (A, 4, 4) gives (A, 6)."""
    m = np.asarray(matrix, dtype=np.float64)
    single = m.ndim == 2
    m = m.reshape(-1, 4, 4)
    pitch = np.arcsin(np.clip(m[:, 2, 0], -1.0, 1.0))
    yaw = np.arctan2(m[:, 1, 0], m[:, 0, 0])
    roll = np.arctan2(-m[:, 2, 1], m[:, 2, 2])
    pose = np.stack([m[:, 0, 3], m[:, 1, 3], m[:, 2, 3], *np.degrees([roll, yaw, pitch])], axis=-1)
    return pose[0] if single else pose


def yaw_of(matrix) -> np.ndarray | float:
    """The heading (radians) a rotation gives the x axis in the xy plane: ``atan2(R[1, 0], R[0, 0])``."""
    m = np.asarray(matrix, dtype=np.float64)
    yaw = np.arctan2(m[..., 1, 0], m[..., 0, 0])
    return float(yaw) if m.ndim == 2 else yaw


def relative_transform(pose_from, pose_to) -> np.ndarray:
    """The (4, 4) matrix mapping points in the ``pose_from`` LiDAR frame to the ``pose_to`` frame:
    ``inv(x_to_world(to)) @ x_to_world(from)`` (OpenCOOD ``transformation_utils.x1_to_x2``). Either side may be a
    (A, 6) stack (broadcast)."""
    to_world = pose_to_matrix(pose_from)
    world_to = np.linalg.inv(pose_to_matrix(pose_to))
    return world_to @ to_world


def transform_points(points, matrix) -> np.ndarray:
    """``points`` (N, >=3) with xyz mapped by the (4, 4) ``matrix``; extra columns (intensity) kept, dtype kept."""
    pts = np.asarray(points)
    m = np.asarray(matrix, dtype=np.float64)
    out = pts.copy()
    xyz = pts[:, :3].astype(np.float64) @ m[:3, :3].T + m[:3, 3]
    out[:, :3] = xyz.astype(out.dtype, copy=False)
    return out


def transform_boxes(boxes, matrix) -> np.ndarray:
    """``boxes`` (M, 7) ``[x, y, z, l, w, h, yaw]`` moved by the (4, 4) ``matrix``: centre transformed, size kept,
    yaw turned by `yaw_of` the rotation and wrapped to [-pi, pi) (OpenCOOD projects the corners instead; the two
    agree for rotations about z)."""
    b = np.asarray(boxes)
    out = transform_points(b, matrix)
    heading = b[:, 6].astype(np.float64) + yaw_of(np.asarray(matrix, dtype=np.float64))
    out[:, 6] = ((heading + np.pi) % (2 * np.pi) - np.pi).astype(out.dtype, copy=False)
    return out
