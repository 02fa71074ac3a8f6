"""DDHPose: the skeleton-derived structure, HRST / HRTT against explicit formulas, mirroring, the loss, sampling
shapes and determinism, a short overfit, and the lifting evaluation's stitching and aggregations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusekit.pose.ddhpose import DDHPose, SpatialAttention, TemporalAttention, disentanglement_loss
from diffusekit.pose.h36m import LiftingSequence
from diffusekit.pose.lifting import eval_windows, window
from diffusekit.pose.lifting_eval import evaluate_lifting, predict_sequence
from diffusekit.pose.skeleton import DEPTH_LEVELS, H36M_PARENTS, bones_from_pose


def tiny(**kwargs) -> DDHPose:
    torch.manual_seed(0)
    return DDHPose(frames=9, denoiser=dict(dim=32, depth=2, heads=4, drop_path=0.0), **kwargs)


def random_poses(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, 17, 3, generator=torch.Generator().manual_seed(1)) * 0.3


def test_tree_gives_the_official_depth_levels_and_chains():
    tree = tiny().tree
    levels = [tuple(j for j in range(17) if tree.depth[j] == d) for d in range(6)]
    assert tuple(levels) == DEPTH_LEVELS
    assert sorted(tree.chains) == sorted([[0, 1, 2, 3], [0, 4, 5, 6], [0, 7, 8, 9, 10], [0, 7, 8, 11, 12, 13],
                                          [0, 7, 8, 14, 15, 16]])  # fmt: skip


def test_hrst_averages_parent_child_logits_with_the_grandparent_logit():
    torch.manual_seed(0)
    attention = SpatialAttention(8, heads=1, tree=tiny().tree)
    x = torch.randn(2, 17, 8)
    q, k, v = attention.qkv(x).chunk(3, dim=-1)
    logits = q @ k.transpose(-1, -2) / 8**0.5
    expected = logits.clone()
    for c, p in enumerate(H36M_PARENTS):
        if p >= 0 and H36M_PARENTS[p] >= 0:
            g = H36M_PARENTS[p]
            expected[:, p, c] = (logits[:, p, c] + logits[:, g, p]) / 2
            expected[:, c, p] = (logits[:, c, p] + logits[:, g, p]) / 2
    assert not torch.allclose(expected, logits)
    reference = attention.out(expected.softmax(-1) @ v)
    torch.testing.assert_close(attention(x), reference, atol=1e-5, rtol=1e-5)


def test_hrtt_adds_the_hierarchical_key_logits():
    torch.manual_seed(0)
    attention = TemporalAttention(8, heads=1, hierarchical=True)
    x, h = torch.randn(3, 5, 8), torch.randn(3, 5, 8)
    q, k, v = attention.qkv(x).chunk(3, dim=-1)
    logits = (q @ k.transpose(-1, -2) + q @ attention.key_h(h).transpose(-1, -2)) / 8**0.5
    torch.testing.assert_close(attention(x, h), attention.out(logits.softmax(-1) @ v), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="hierarchical feature"):
        attention(x)


def test_mirroring_commutes_with_the_bone_decomposition():
    model = tiny()
    pose = random_poses(2, 9)
    torch.testing.assert_close(model.mirror(model.mirror(pose)), pose)
    torch.testing.assert_close(model.to_state(model.mirror(pose)), model.mirror(model.to_state(pose)))


def test_paper_config_has_the_official_parameter_count():
    """38,516,227 in the official code, minus its 7 unused 512 x 512 projections in the HRST blocks."""
    model = DDHPose(frames=243, denoiser=dict(dim=512, depth=8))
    assert sum(p.numel() for p in model.parameters()) == 38_516_227 - 7 * (512 * 512 + 512)


def test_disentanglement_loss_terms():
    target = random_poses(2, 9)
    zero = disentanglement_loss(target, target, H36M_PARENTS, 1.0, 1.0)
    assert float(zero["loss"]) == pytest.approx(0.0, abs=1e-6)
    shifted = target + torch.tensor([0.03, 0.04, 0.0])  # a rigid shift: MPJPE 0.05, bones unchanged
    terms = disentanglement_loss(shifted, target, H36M_PARENTS, 1.0, 1.0)
    assert float(terms["mpjpe"]) == pytest.approx(0.05, abs=1e-6)
    assert float(terms["length"]) == pytest.approx(0.0, abs=1e-10)
    assert float(terms["direction"]) == pytest.approx(0.0, abs=1e-10)
    scaled = target * 1.1  # same directions, lengths x 1.1
    terms = disentanglement_loss(scaled, target, H36M_PARENTS, 1.0, 1.0)
    _, lengths = bones_from_pose(target)
    expected = float(((0.1 * lengths.mean(1)) ** 2)[:, 1:].mean())
    assert float(terms["length"]) == pytest.approx(expected, rel=1e-4)
    assert float(terms["direction"]) == pytest.approx(0.0, abs=1e-8)


def test_sampling_shapes_root_and_determinism():
    model = tiny().eval()
    keypoints = torch.randn(3, 9, 17, 2) * 0.3
    out = model.sample(keypoints, hypotheses=4, steps=3, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 4, 3, 9, 17, 3)
    assert torch.all(out[..., 0, :] == 0)
    again = model.sample(keypoints, hypotheses=4, steps=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)
    assert not torch.allclose(out[-1, 0], out[-1, 1])  # hypotheses differ
    baseline = tiny(deterministic=True).eval()
    assert baseline.sample(keypoints, hypotheses=4, steps=3).shape == (1, 1, 3, 9, 17, 3)


@pytest.mark.parametrize("power", [1.0, 2.0, 3.0])
def test_training_timesteps_follow_the_power_law(power):
    """P(t < x T) = x^p: uniform for p = 1 (the paper), more high-noise training for p > 1 (the ablation)."""
    torch.manual_seed(0)
    t = tiny(timestep_power=power).training_timesteps(200_000).double()
    assert 0 <= t.min() and t.max() <= 999
    for x in (0.25, 0.5, 0.9):
        assert abs((t < x * 1000).double().mean().item() - x**power) < 0.005
    assert abs(t.mean().item() - (1000 * power / (power + 1) - 0.5)) < 3  # E[floor(T u^(1/p))]
    with pytest.raises(ValueError, match="timestep_power"):
        tiny(timestep_power=0.0)


def test_a_short_training_fits_a_fixed_batch():
    model = tiny()
    poses = random_poses(4, 9)
    poses[..., 0, :] = 0
    keypoints = poses[..., :2] / (poses[..., 2:] + 3.0)  # a perspective view
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    first = None
    for _ in range(150):
        loss = model(keypoints, poses, mode="loss")
        optimizer.zero_grad()
        loss["loss"].backward()
        optimizer.step()
        first = first if first is not None else float(loss["mpjpe"])
    model.eval()
    pred = model.sample(keypoints, hypotheses=1, steps=2, generator=torch.Generator().manual_seed(0))[-1, 0]
    error = float((pred - poses).norm(dim=-1).mean())
    assert error < 0.5 * first, (first, error)


def test_eval_windows_predict_every_frame_once():
    for length in (1, 5, 9, 10, 26, 27, 28):
        covered = np.zeros(length, int)
        for start, keep in eval_windows(length, 9):
            covered[keep : min(start + 9, length)] += 1
        assert (covered == 1).all(), length
    sequence = np.arange(5)[:, None]
    assert window(sequence, -2, 4).ravel().tolist() == [0, 0, 0, 1]
    assert window(sequence, 3, 4).ravel().tolist() == [3, 4, 4, 4]


class OracleModel(torch.nn.Module):
    """Hypotheses = the ground truth (looked up by the normalised 2D) plus known offsets; hypothesis 0 is exact."""

    def __init__(self, keypoints: np.ndarray, poses: np.ndarray, frames: int = 9):
        super().__init__()
        self.frames = frames
        self.lookup = {np.round(k, 5).tobytes(): p for k, p in zip(keypoints, poses)}
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def sample(self, clips, hypotheses, steps, flip=True, generator=None):
        truth = np.stack([[self.lookup[np.round(k, 5).tobytes()] for k in clip] for clip in clips.numpy()])
        offsets = np.array([[0.0, 0.0, 0.0], [0.01, 0.0, 0.0], [-0.01, 0.0, 0.0], [0.0, 0.02, 0.0]])[:hypotheses]
        hyps = truth[None] + offsets[:, None, None, None, :]
        hyps[..., 0, :] = 0
        return torch.from_numpy(np.repeat(hyps[None], steps, axis=0)).float()


def test_lifting_evaluation_stitches_windows_and_aggregates():
    from diffusekit.pose.camera import h36m_camera, normalize_screen_coordinates, project

    rng = np.random.default_rng(0)
    camera = h36m_camera("S9", 0)
    poses = rng.normal(size=(23, 17, 3)) * 0.3 + np.array([0.0, 0.0, 5.0])
    poses[:, 0] = [0.0, 0.0, 5.0]
    keypoints = project(poses, camera).astype(np.float32)
    sequence = LiftingSequence("S9", "Walking 1", keypoints, poses.astype(np.float32), camera, 1000, 1002)
    relative = (poses - poses[:, :1]).astype(np.float32)
    norm = normalize_screen_coordinates(keypoints, 1000, 1002).astype(np.float32)
    model = OracleModel(norm, relative)
    pred = predict_sequence(model, sequence, hypotheses=1, steps=2, batch_size=2)
    np.testing.assert_allclose(pred[0], relative, atol=1e-6)
    result = evaluate_lifting(model, [sequence], hypotheses=(1, 3), steps=(1,), progress=False)
    rows = {(r["hypotheses"], r["aggregation"]): r for r in result["rows"]}
    assert rows[(3, "J-Best")]["mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert rows[(3, "P-Best")]["mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert rows[(3, "J-Agg")]["mpjpe"] == pytest.approx(0.0, abs=1e-3)  # the exact one reprojects exactly
    assert rows[(3, "P-Agg")]["mpjpe"] == pytest.approx(0.0, abs=1e-3)  # +-10 mm cancel in the mean
    assert rows[(1, "P-Agg")]["p_mpjpe"] == pytest.approx(0.0, abs=1e-3)
    assert list(result["per_action"][(1, 3, "P-Agg")]) == ["Walking"]
