"""Pillars, anchors and box coding, BEV warping, attention fusion, the detector and CoDiff: closed forms and
invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusekit.perception3d.anchors import (
    AnchorSettings,
    apply_direction,
    assign_targets,
    decode_boxes,
    direction_targets,
    encode_boxes,
    make_anchors,
    standup_iou,
)
from diffusekit.perception3d.codiff import CoDiff
from diffusekit.perception3d.datasets import cooperative_collate, model_inputs
from diffusekit.perception3d.detector import CooperativeDetector, planar_boxes_to_ego, sigmoid_focal_loss
from diffusekit.perception3d.geometry import pose_to_matrix, relative_transform
from diffusekit.perception3d.networks import AttentionFusion, warp_to_ego
from diffusekit.perception3d.pillars import PillarFeatureNet, PillarGrid, scatter_to_bev, voxelize

RANGE = (-16.0, -8.0, -3.0, 16.0, 8.0, 1.0)
GRID = PillarGrid(RANGE, (0.8, 0.8, 4.0))
TINY = dict(
    point_cloud_range=RANGE,
    voxel_size=(0.8, 0.8, 4.0),
    max_points=8,
    pillar_channels=8,
    backbone=dict(layers=(1, 1, 1), filters=(8, 16, 16), upsample_filters=8, out_channels=16),
)


def _cloud(rng, n=3000):
    xyz = rng.uniform([-18, -10, -3.5], [18, 10, 1.5], (n, 3))
    return np.c_[xyz, rng.uniform(0, 1, n)].astype(np.float32)


def test_voxelize_matches_a_brute_force_grouping():
    rng = np.random.default_rng(0)
    points = _cloud(rng)
    pillars = voxelize(points, GRID, max_points=4)
    lo, hi = np.array(RANGE[:3]), np.array(RANGE[3:])
    inside = points[np.all((points[:, :3] >= lo) & (points[:, :3] < hi), axis=1)]
    cells = np.floor((inside[:, :2] - lo[:2]) / 0.8).astype(int)
    expected = {}
    for point, (cx, cy) in zip(inside, cells):
        expected.setdefault((cy, cx), []).append(point)
    assert GRID.shape == (20, 40)
    assert len(pillars.coords) == len(expected)
    assert list(map(tuple, pillars.coords)) == list(dict.fromkeys(map(tuple, cells[:, ::-1])))  # first appearance
    for (row, col), voxel, count in zip(pillars.coords, pillars.voxels, pillars.counts):
        points_here = np.array(expected[(row, col)])
        assert count == min(4, len(points_here))
        np.testing.assert_array_equal(voxel[:count], points_here[:count])
        assert not voxel[count:].any()


def test_voxelize_limits_pillars_in_order_of_appearance():
    rng = np.random.default_rng(1)
    points = _cloud(rng)
    full, limited = voxelize(points, GRID), voxelize(points, GRID, max_voxels=10)
    np.testing.assert_array_equal(limited.coords, full.coords[:10])
    np.testing.assert_array_equal(limited.counts, full.counts[:10])


def test_pillar_net_ignores_padding_and_scatter_places_features():
    rng = np.random.default_rng(2)
    pillars = voxelize(_cloud(rng, 500), GRID, max_points=6)
    net = PillarFeatureNet(GRID, 5).eval()
    voxels = torch.from_numpy(pillars.voxels)
    coords, counts = torch.from_numpy(pillars.coords), torch.from_numpy(pillars.counts)
    out = net(voxels, coords, counts)
    garbage = voxels.clone()
    for i, c in enumerate(counts):
        garbage[i, c:] = 99.0  # padded slots must not matter
    torch.testing.assert_close(net(garbage, coords, counts), out)
    bev = scatter_to_bev(out, torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1), 1, GRID.shape)
    torch.testing.assert_close(bev[0, :, coords[3, 0], coords[3, 1]], out[3])
    assert int((bev[0].abs().sum(0) > 0).sum()) <= len(coords)


def test_box_coding_round_trip_and_direction_bins():
    anchors = make_anchors(RANGE, (10, 20), AnchorSettings())
    assert anchors.shape == (10, 20, 2, 7)
    np.testing.assert_allclose(anchors[0, 0, 0, :2].numpy(), [-16 + 0.8, -8 + 0.8])
    boxes = anchors.clone()
    boxes[..., 0] += 0.3
    boxes[..., 3] *= 1.2
    boxes[..., 6] += 0.4
    torch.testing.assert_close(decode_boxes(encode_boxes(boxes, anchors), anchors), boxes)
    settings = AnchorSettings()
    yaws = torch.tensor([0.0, math.pi / 2, math.pi, -math.pi / 2, 3.0])
    bins = direction_targets(yaws, settings)
    assert bins.tolist() == [1, 0, 0, 1, 0]  # (yaw - pi/4) mod 2 pi, in half turns
    # a decoded yaw off by pi is restored by its direction bin
    flipped = torch.zeros(5, 7)
    flipped[:, 6] = yaws + math.pi
    fixed = apply_direction(flipped, bins, settings)[:, 6]
    torch.testing.assert_close(torch.cos(fixed - yaws), torch.ones(5), atol=1e-5, rtol=0)


def test_standup_iou_closed_form_and_target_assignment():
    a = torch.tensor([[0.0, 0, 0, 4, 2, 1.5, 0]])
    b = torch.tensor([[2.0, 0, 0, 4, 2, 1.5, 0], [0.0, 0, 0, 4, 2, 1.5, math.pi / 2]])
    # shifted by half its length: 4 / 12; rotated 90 deg: standup square of 4 x 2 vs 2 x 4 -> 4 / 12
    torch.testing.assert_close(standup_iou(a, b), torch.tensor([[4 / 12, 4 / 12]]))
    settings = AnchorSettings(length=4.0, width=2.0)
    anchors = make_anchors(RANGE, (10, 20), settings)
    gt = torch.tensor([[anchors[4, 7, 0, 0], anchors[4, 7, 0, 1], -1.0, 4.0, 2.0, 1.56, 0.05]])
    labels, targets, yaws = assign_targets(anchors, gt, settings)
    assert labels[4, 7, 0] == 1 and yaws[4, 7, 0] == pytest.approx(0.05)
    torch.testing.assert_close(decode_boxes(targets[4, 7, 0], anchors[4, 7, 0]), gt[0])
    assert labels[0, 0, 0] == 0  # far away: negative
    assert (labels == 1).sum() >= 1
    far = torch.tensor([[100.0, 100.0, -1.0, 4.0, 2.0, 1.5, 0.0]])  # no overlap anywhere: no positive
    assert (assign_targets(anchors, far, settings)[0] == 1).sum() == 0


def test_focal_loss_closed_form():
    logits, targets = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    p = torch.sigmoid(logits)
    expected = torch.stack([0.25 * (1 - p[0]) ** 2 * -torch.log(p[0]), 0.75 * p[1] ** 2 * -torch.log(1 - p[1])])
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets), expected)


def test_warp_moves_features_by_the_relative_pose():
    # an agent 3.2 m ahead of the ego (4 cells of 0.8 m): its cell at x maps to the ego cell at x + 3.2
    maps = torch.zeros(1, 1, 20, 40)
    maps[0, 0, 10, 20] = 1.0  # agent frame: x = -16 + 20.5 * 0.8 = 0.4, y = 0.4
    to_ego = torch.from_numpy(relative_transform([3.2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0])).float()[None]
    out = warp_to_ego(maps, to_ego, RANGE)
    assert out[0, 0].argmax().item() == 10 * 40 + 24
    torch.testing.assert_close(out.sum(), torch.tensor(1.0))
    # 90 degrees of yaw: the agent's +x axis is the ego's +y axis
    maps = torch.zeros(1, 1, 20, 40)
    maps[0, 0, 9, 23] = 1.0  # agent (x, y) = (2.8, -0.4)  ->  ego (0.4, 2.8): row 13, column 20
    to_ego = torch.from_numpy(relative_transform([0, 0, 0, 0, 90, 0], [0, 0, 0, 0, 0, 0])).float()[None]
    out = warp_to_ego(maps, to_ego, RANGE)
    assert divmod(out[0, 0].argmax().item(), 40) == (13, 20)
    np.testing.assert_allclose(
        planar_boxes_to_ego(torch.tensor([[2.8, -0.4, 0, 4, 2, 1.5, 0.0]]), to_ego[0]).numpy(),
        [[0.4, 2.8, 0, 4, 2, 1.5, math.pi / 2]],
        atol=1e-5,
    )


def test_attention_fusion_single_agent_is_identity_and_padding_is_ignored():
    fuse = AttentionFusion()
    x = torch.randn(1, 6, 4, 5)
    torch.testing.assert_close(fuse(x), x[0])
    other = torch.randn(1, 6, 4, 5)
    both = torch.cat([x, other])
    torch.testing.assert_close(fuse(both, valid=torch.tensor([True, False])), x[0])
    fused = fuse(both)
    assert not torch.allclose(fused, x[0])
    # a convex combination per cell
    assert torch.all(fused <= torch.maximum(x[0], other[0]) + 1e-6)
    assert torch.all(fused >= torch.minimum(x[0], other[0]) - 1e-6)


def _batch(rng, agents=(3, 2)):
    items = []
    for index, count in enumerate(agents):
        poses = np.zeros((count, 6))
        poses[:, 0] = np.arange(count) * 4.0
        poses[:, 4] = np.arange(count) * 15.0
        sample = dict(
            points=[_cloud(rng, 2000) for _ in range(count)],
            poses=poses,
            poses_clean=poses + np.array([0.1, 0, 0, 0, 0.2, 0]),
            gt_boxes=np.array([[5, 3, -1, 4, 1.8, 1.5, 0.3], [-6, -2, -1, 4.5, 2, 1.6, 1.2]], np.float32),
        )
        item = model_inputs(sample, GRID, max_points=8)
        item["meta"] = {"index": index}
        items.append(item)
    return cooperative_collate(items)


def test_collate_and_levelling():
    rng = np.random.default_rng(3)
    batch = _batch(rng)
    inputs = batch["inputs"]
    assert inputs["agents"] == [3, 2] and inputs["to_ego"].shape == (5, 4, 4)
    assert set(inputs["coords"][:, 0].tolist()) == {0, 1, 2, 3, 4}
    expected = relative_transform(np.array([4.0, 0, 0, 0, 15, 0]), np.zeros(6))
    np.testing.assert_allclose(inputs["to_ego"][1].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(pose_to_matrix(np.zeros(6)), np.eye(4))
    # points of an agent mounted 4 m higher are moved up by 4 m (levelled to the ego's sensor height)
    points = np.array([[1.0, 1.0, -4.5, 0.5]], np.float32)
    sample = dict(
        points=[points, points],
        poses=np.array([[0, 0, 2, 0, 0, 0], [0, 0, 6, 0, 0, 0.0]]),
        poses_clean=np.zeros((2, 6)),
        gt_boxes=np.zeros((0, 7), np.float32),
    )
    item = model_inputs(sample, GRID)
    assert item["pillars"][0].counts.sum() == 0 and item["pillars"][1].voxels[0, 0, 2] == pytest.approx(-0.5)


@pytest.mark.parametrize("fusion", ["none", "late", "attention"])
def test_detector_trains_and_predicts(fusion):
    torch.manual_seed(0)
    rng = np.random.default_rng(4)
    batch = _batch(rng)
    model = CooperativeDetector(fusion=fusion, **TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(12):
        loss = sum(model(batch["inputs"], batch["data_samples"], mode="loss").values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    model.score_threshold = 0.0  # keep everything NMS leaves
    out = model(batch["inputs"], batch["data_samples"], mode="predict")
    assert len(out) == 2 and out[1]["index"] == 1
    for frame in out:
        assert frame["boxes"].shape[1] == 7 and len(frame["boxes"]) == len(frame["scores"]) > 0
        assert np.all(np.diff(frame["scores"]) <= 0)
        assert frame["gt_boxes"].shape == (2, 7)


def _codiff(stage):
    return CoDiff(
        stage=stage,
        latent_channels=2,
        agent_latent_channels=2,
        max_cav=3,
        denoiser=dict(channels=(8, 16), num_res_blocks=1, attention_levels=(), norm_groups=4),
        steps=4,
        start=0.3,
        **TINY,
    )


def test_codiff_warm_start_timesteps_and_stage_freezing():
    model = _codiff("diffusion")
    assert model.timesteps(8) == [299, 256, 214, 171, 128, 85, 43, 0]
    assert model.timesteps(1) == [299]
    frozen = [p.requires_grad for p in model.backbone.parameters()]
    assert not any(frozen) and all(p.requires_grad for p in model.denoiser.parameters())
    model.train()
    assert not model.backbone.training and model.denoiser.training
    assert all(p.requires_grad for p in _codiff("finetune").backbone.parameters())


def test_codiff_losses_gradients_and_deterministic_refinement():
    torch.manual_seed(0)
    rng = np.random.default_rng(5)
    batch = _batch(rng)
    model = _codiff("diffusion").train()
    before = model.head.cls.weight.clone()
    losses = model(batch["inputs"], batch["data_samples"], mode="loss")
    assert set(losses) == {"loss_recon", "loss_diffusion"}
    sum(losses.values()).backward()
    assert model.head.cls.weight.grad is None and model.denoiser.input_conv.weight.grad is not None
    torch.testing.assert_close(model.head.cls.weight, before)
    assert int(model.latent_batches) == 1 and not torch.allclose(model.latent_std, torch.ones(2))
    # the condition: [fused latent, 3 agent slots] with the missing third agent of sample 2 zero
    model.eval()
    fused, pillars = model.fused_features(batch["inputs"])
    cond = model.condition(model.encode(fused), pillars, batch["inputs"])
    assert cond.shape[1] == 2 + 3 * 2
    assert cond[1, 6:].abs().sum() == 0 and cond[0, 6:].abs().sum() > 0
    first = model.refine(fused, pillars, batch["inputs"])
    torch.testing.assert_close(model.refine(fused, pillars, batch["inputs"]), first)
    # blend 1 leaves the fused map untouched
    model.blend = 1.0
    torch.testing.assert_close(model.refine(fused, pillars, batch["inputs"]), fused)
    finetune = _codiff("finetune").train()
    losses = finetune(batch["inputs"], batch["data_samples"], mode="loss")
    assert {"loss_cls", "loss_reg", "loss_dir", "loss_diffusion", "loss_recon"} == set(losses)
    sum(losses.values()).backward()
    assert finetune.head.cls.weight.grad is not None and finetune.denoiser.input_conv.weight.grad is not None


def test_dairv2x_frames_feed_the_detector(tmp_path):
    from diffusekit.perception3d.dairv2x import write_sample_dataset
    from diffusekit.perception3d.datasets import CooperativeDetectionDataset

    root = write_sample_dataset(tmp_path / "dair", frames=2)
    dataset = CooperativeDetectionDataset(
        str(root), layout="dairv2x", split=None, point_cloud_range=RANGE, voxel_size=(0.8, 0.8, 4.0), max_frames=1
    )
    assert len(dataset) == 1
    batch = cooperative_collate([dataset[0]])
    assert batch["inputs"]["agents"] == [2] and batch["data_samples"][0]["agent_ids"] == [0, -1]
    model = CooperativeDetector(fusion="attention", **TINY)
    losses = model(batch["inputs"], batch["data_samples"], mode="loss")
    assert all(torch.isfinite(v) for v in losses.values())


def test_boxes_outside_the_range_are_dropped_after_decoding_and_late_fusion():
    model = CooperativeDetector(fusion="late", **TINY)
    boxes = torch.tensor([[0.0, 0, -1, 4, 2, 1.5, 0], [15.9, 7.9, -1, 4, 2, 1.5, 0], [16.5, 0, -1, 4, 2, 1.5, 0]])
    kept, scores = model._in_range(boxes, torch.tensor([0.9, 0.8, 0.7]))
    torch.testing.assert_close(kept, boxes[:2])
    torch.testing.assert_close(scores, torch.tensor([0.9, 0.8]))
