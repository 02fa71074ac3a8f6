"""3D metrics against closed forms and invariances; DDHPose's bone decomposition round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from diffusekit.pose.metrics3d import (
    auc,
    j_agg,
    j_best,
    mpjpe,
    mpjve,
    n_mpjpe,
    p_agg,
    p_best,
    p_mpjpe,
    pck3d,
    project_to_2d,
)
from diffusekit.pose.skeleton import H36M_KEEP, H36M_PARENTS, bones_from_pose, flip_pose, pose_from_bones

RNG = np.random.default_rng(0)
POSES = RNG.normal(size=(10, 17, 3)) * 200  # mm


def test_mpjpe_by_hand():
    assert mpjpe(POSES + [3.0, 4.0, 0.0], POSES) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="differ in shape"):
        mpjpe(POSES[:, :16], POSES)


def test_p_mpjpe_is_invariant_to_similarity_transforms_but_not_reflections():
    rotations = Rotation.random(10, random_state=1).as_matrix()
    moved = 1.7 * np.einsum("fjc,fdc->fjd", POSES, rotations) + RNG.normal(size=(10, 1, 3)) * 500
    assert p_mpjpe(moved, POSES) == pytest.approx(0.0, abs=1e-8)
    assert mpjpe(moved, POSES) > 100
    mirrored = POSES * [-1.0, 1.0, 1.0]  # a reflection cannot be undone by a rotation
    assert p_mpjpe(mirrored, POSES) > 10
    noisy = POSES + RNG.normal(size=POSES.shape) * 10
    assert p_mpjpe(noisy, POSES) <= mpjpe(noisy, POSES)


def test_n_mpjpe_and_mpjve_closed_forms():
    assert n_mpjpe(0.5 * POSES, POSES) == pytest.approx(0.0, abs=1e-9)
    assert mpjve(POSES + [10.0, 0.0, 0.0], POSES) == pytest.approx(0.0, abs=1e-9)
    drift = POSES + np.arange(10)[:, None, None] * np.array([0.0, 3.0, 4.0])  # 5 mm per frame
    assert mpjve(drift, POSES) == pytest.approx(5.0)


def test_pck_and_auc_follow_the_3dhp_scorer():
    gt = np.zeros((1, 14, 3))
    errors = np.array([0, 10, 50, 100, 149, 150, 151, 200, 0, 0, 0, 0, 0, 0], float)
    pred = gt + errors[None, :, None] * np.array([1.0, 0.0, 0.0])
    assert pck3d(pred, gt) == pytest.approx(100 * 11 / 14)  # 150 itself is not below 150
    # AUC: mean over t = 0, 5, ..., 150 of the fraction strictly below t
    expected = np.mean([(errors < t).mean() for t in range(0, 151, 5)]) * 100
    assert auc(pred, gt) == pytest.approx(expected)
    assert auc(gt, gt) == pytest.approx(100 * 30 / 31)  # at t = 0 nothing is strictly below


def test_hypothesis_aggregation():
    gt = POSES[:2]
    good, bad = gt + 1.0, gt + 50.0
    mixed = good.copy()
    mixed[:, :8] = bad[:, :8]  # good on half the joints
    hypotheses = np.stack([bad, mixed])
    assert j_best(hypotheses, gt) == pytest.approx(mpjpe(np.where(np.arange(17)[:, None] < 8, bad, good), gt))
    assert p_best(hypotheses, gt) == pytest.approx(mpjpe(mixed, gt))
    assert np.allclose(p_agg(hypotheses), (bad + mixed) / 2)
    assert j_best(hypotheses, gt) <= p_best(hypotheses, gt) <= mpjpe(p_agg(hypotheses), gt) + 50


def test_projection_and_j_agg_pick_the_hypothesis_that_reprojects():
    intrinsics = np.array([1145.0, 1144.0, 512.0, 515.0, 0, 0, 0, 0, 0])
    root = np.array([[[100.0, -50.0, 4500.0]]])
    pose = POSES[:1] * 0.5
    uv = project_to_2d(pose + root, intrinsics)
    expected = intrinsics[:2] * (pose + root)[..., :2] / (pose + root)[..., 2:] + intrinsics[2:4]
    assert np.allclose(uv, expected)
    wrong = pose + RNG.normal(size=pose.shape) * 80
    chosen = j_agg(np.stack([wrong, pose]), uv, root, intrinsics)
    assert np.allclose(chosen, pose)
    distorted = project_to_2d(pose + root, np.concatenate([intrinsics[:4], [0.1, 0, 0, 0, 0]]))
    assert not np.allclose(distorted, uv)


def test_bone_decomposition_round_trip_and_flip():
    pose = torch.from_numpy(POSES)
    directions, lengths = bones_from_pose(pose)
    assert torch.allclose(directions[..., 1:, :].norm(dim=-1), torch.ones(10, 16, dtype=torch.float64))
    assert torch.all(directions[..., 0, :] == 0) and torch.all(lengths[..., 0, :] == 0)
    assert torch.allclose(pose_from_bones(directions, lengths, root=pose[..., 0, :]), pose)
    assert torch.allclose(flip_pose(flip_pose(pose)), pose)
    assert len(H36M_KEEP) == 17 and len(H36M_PARENTS) == 17
