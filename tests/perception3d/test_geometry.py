"""CARLA/OpenCOOD pose matrices, relative transforms, point and box transforms against closed forms."""

from __future__ import annotations

import numpy as np
import pytest

from diffusekit.core.errors import DataError
from diffusekit.perception3d.geometry import (
    matrix_to_pose,
    pose_to_matrix,
    relative_transform,
    transform_boxes,
    transform_points,
    yaw_of,
)


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _random_poses(rng, count):
    xyz = rng.uniform(-100, 100, (count, 3))
    roll, yaw, pitch = rng.uniform(-30, 30, count), rng.uniform(-180, 180, count), rng.uniform(-30, 30, count)
    return np.column_stack([xyz, roll, yaw, pitch])


def _corners(boxes):
    """(M, 8, 3) corners: the +-l/2, +-w/2, +-h/2 cube rotated by yaw about z and moved to the centre."""
    signs = np.array([[sx, sy, sz] for sz in (-1, 1) for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1))]) / 2
    local = signs[None] * boxes[:, None, 3:6]
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    rot = np.stack([np.stack([c, -s, 0 * c], -1), np.stack([s, c, 0 * c], -1), np.tile([0.0, 0, 1], (len(c), 1))], 1)
    return np.einsum("mij,mkj->mki", rot, local) + boxes[:, None, :3]


def test_pure_yaw_and_translation_closed_form():
    m = pose_to_matrix([1.0, 2.0, 3.0, 0.0, 90.0, 0.0])
    assert m.dtype == np.float64 and m.shape == (4, 4)
    np.testing.assert_allclose(m[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(m[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(m[3], [0, 0, 0, 1])
    # the LiDAR's x axis (forward) points along world +y; a point 5 m ahead sits at (1, 7, 3)
    np.testing.assert_allclose(transform_points(np.array([[5.0, 0, 0]]), m), [[1, 7, 3]], atol=1e-12)
    expected = np.eye(4)
    expected[:3, 3] = [4, -5, 6]
    np.testing.assert_allclose(pose_to_matrix([4.0, -5, 6, 0, 0, 0]), expected)


def test_roll_and_pitch_follow_carla_signs():
    # OpenCOOD x_to_world: R = Rz(yaw) Ry(-pitch) Rx(-roll) (CARLA's left-handed angles)
    r = np.radians(20.0)
    np.testing.assert_allclose(pose_to_matrix([0, 0, 0, 20.0, 0, 0])[:3, :3], _rx(-r), atol=1e-12)
    np.testing.assert_allclose(pose_to_matrix([0, 0, 0, 0, 0, 20.0])[:3, :3], _ry(-r), atol=1e-12)
    assert pose_to_matrix([0, 0, 0, 0, 0, 20.0])[2, 0] == pytest.approx(np.sin(r))
    rng = np.random.default_rng(0)
    for pose in _random_poses(rng, 5):
        roll, yaw, pitch = np.radians(pose[3:])
        m = pose_to_matrix(pose)
        np.testing.assert_allclose(m[:3, :3], _rz(yaw) @ _ry(-pitch) @ _rx(-roll), atol=1e-12)
        np.testing.assert_allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(m[:3, :3]) == pytest.approx(1.0)


def test_batch_and_matrix_to_pose_inverse():
    rng = np.random.default_rng(1)
    poses = _random_poses(rng, 16)
    stack = pose_to_matrix(poses)
    assert stack.shape == (16, 4, 4)
    for pose, m in zip(poses, stack):
        np.testing.assert_allclose(pose_to_matrix(pose), m)
    back = matrix_to_pose(stack)
    assert back.shape == (16, 6)
    np.testing.assert_allclose(back, poses, atol=1e-9)
    np.testing.assert_allclose(matrix_to_pose(stack[3]), poses[3], atol=1e-9)
    np.testing.assert_allclose(yaw_of(stack), np.radians(poses[:, 4]), atol=1e-12)
    assert isinstance(yaw_of(stack[0]), float)
    with pytest.raises(DataError):
        pose_to_matrix([1.0, 2.0, 3.0])


def test_relative_transform_identities():
    rng = np.random.default_rng(2)
    a, b, c = _random_poses(rng, 3)
    np.testing.assert_allclose(relative_transform(a, a), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(relative_transform(b, c) @ relative_transform(a, b), relative_transform(a, c), atol=1e-9)
    np.testing.assert_allclose(relative_transform(b, a), np.linalg.inv(relative_transform(a, b)), atol=1e-9)
    # a point in a's frame, through the world, into b's frame
    p = rng.normal(size=(7, 3)) * 10
    world = transform_points(p, pose_to_matrix(a))
    expected = transform_points(world, np.linalg.inv(pose_to_matrix(b)))
    np.testing.assert_allclose(transform_points(p, relative_transform(a, b)), expected, atol=1e-9)
    # stacks broadcast against one target
    stacked = relative_transform(np.stack([a, b]), c)
    np.testing.assert_allclose(stacked[1], relative_transform(b, c), atol=1e-12)


def test_relative_transform_closed_form():
    # ego at (10, 0) facing world +y; the other agent at the origin facing +x: its origin is 10 m to the ego's left
    ego, other = [10.0, 0, 0, 0, 90.0, 0], [0.0, 0, 0, 0, 0, 0]
    m = relative_transform(other, ego)
    np.testing.assert_allclose(transform_points(np.zeros((1, 3)), m), [[0, 10, 0]], atol=1e-12)
    np.testing.assert_allclose(yaw_of(m), -np.pi / 2)


def test_transform_points_keeps_extra_columns_and_dtype():
    pts = np.array([[1, 2, 3, 0.5], [-1, 0, 4, 0.25]], np.float32)
    m = pose_to_matrix([1.0, 1, 1, 0, 180.0, 0])
    out = transform_points(pts, m)
    assert out.dtype == np.float32 and out.shape == pts.shape
    np.testing.assert_allclose(out[:, :3], [[0, -1, 4], [2, 1, 5]], atol=1e-6)
    np.testing.assert_array_equal(out[:, 3], pts[:, 3])
    np.testing.assert_array_equal(pts[0], [1, 2, 3, 0.5])  # input untouched
    assert transform_points(np.zeros((0, 4), np.float32), m).shape == (0, 4)


def test_transform_boxes_matches_transformed_corners():
    rng = np.random.default_rng(3)
    boxes = np.column_stack(
        [rng.normal(size=(6, 3)) * 20, rng.uniform(1, 5, (6, 3)), rng.uniform(-np.pi, np.pi, 6)]
    ).astype(np.float64)
    for yaw_deg in (0.0, 37.0, 90.0, -135.0, 179.0):
        m = relative_transform([3.0, -4, 1, 0, yaw_deg, 0], [-2.0, 5, 0.5, 0, 20.0, 0])
        out = transform_boxes(boxes, m)
        np.testing.assert_allclose(out[:, 3:6], boxes[:, 3:6])
        assert np.all((out[:, 6] >= -np.pi) & (out[:, 6] < np.pi))
        moved = np.stack([transform_points(c, m) for c in _corners(boxes)])
        np.testing.assert_allclose(_corners(out), moved, atol=1e-9)
    # closed form: a box 10 m ahead of a yaw-90 agent is 10 m along world +y, heading turned by 90 degrees
    box = np.array([[10.0, 0, 0, 4, 2, 1.5, 0.0]])
    out = transform_boxes(box, pose_to_matrix([0.0, 0, 0, 0, 90.0, 0]))
    np.testing.assert_allclose(out, [[0, 10, 0, 4, 2, 1.5, np.pi / 2]], atol=1e-12)
    assert transform_boxes(np.zeros((0, 7), np.float32), np.eye(4)).shape == (0, 7)
