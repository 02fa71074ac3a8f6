"""Validation during training: the metric twins score what mmengine's validation loop hands them, evaluation
clips cover every frame once, and the configs that pose reads itself reject unknown keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from diffusekit.core.errors import DataError
from diffusekit.pose.datasets import PoseTrackClips
from diffusekit.pose.h36m import LiftingSequence
from diffusekit.pose.metrics import PoseTrackAPMetric
from diffusekit.pose.metrics3d import LiftingMPJPEMetric
from diffusekit.pose.workflow import check_config, load_pose_config


def test_posetrack_metric_scores_heatmaps_of_the_truth_near_100(posetrack_root):
    """Heatmaps encoding the ground truth, decoded through the dataset's metainfo, give an AP close to 100; the same
    heatmaps with the joints shifted off by half the crop give a low one."""
    crops = PoseTrackClips(posetrack_root, "val", (96, 128), (24, 32), max_videos=2)
    assert len({item.video for item in crops.items}) == 2
    metric, shifted = PoseTrackAPMetric(), PoseTrackAPMetric()
    metric.dataset_meta = shifted.dataset_meta = crops.metainfo
    for batch in DataLoader(crops, batch_size=8, collate_fn=default_collate):
        metric.process(batch, list(batch["heatmaps"]))
        shifted.process(batch, list(torch.roll(batch["heatmaps"], 12, dims=-2)))
    result, bad = metric.evaluate(len(crops)), shifted.evaluate(len(crops))
    assert result["posetrack/Total AP"] > 90 and bad["posetrack/Total AP"] < 30


def test_lifting_metric_is_p_agg_mpjpe_over_valid_frames():
    truth = torch.randn(2, 5, 17, 3) * 0.2
    truth[..., 0, :] = 0
    prediction = truth + torch.tensor([0.01, 0.0, 0.0])  # 10 mm off everywhere
    hypotheses = torch.stack([prediction + 0.05, prediction - 0.05])  # their mean is the prediction
    valid = torch.ones(2, 5)
    valid[1, 3:] = 0
    metric = LiftingMPJPEMetric()
    batch = {"pose_3d": truth, "valid": valid}
    hypotheses[:, 1, 3:] += 1.0  # frames outside the valid mask do not count
    metric.process(batch, [torch.zeros_like(hypotheses), hypotheses])  # K = 2 steps: the last one is scored
    result = metric.evaluate(1)
    assert result["lifting/MPJPE"] == pytest.approx(10.0, abs=1e-4)
    assert result["lifting/P-MPJPE"] == pytest.approx(0.0, abs=1e-4)


def test_evaluation_clips_predict_every_frame_once(tmp_path):
    from diffusekit.pose.lifting import LiftingClips

    sequences = [
        LiftingSequence(
            "S9",
            f"Walk {n}",
            np.random.rand(n, 17, 2).astype(np.float32) * 100,
            np.random.rand(n, 17, 3).astype(np.float32),
            None,
            100,
            100,
        )  # fmt: skip
        for n in (5, 27, 40, 81)
    ]
    clips = LiftingClips.__new__(LiftingClips)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("diffusekit.pose.lifting.load_sequences", lambda *args, **kwargs: sequences)
        clips.__init__("unused", "test", frames=27, flip=0.0, tiling=True)
    counts = [np.zeros(len(s.keypoints_2d)) for s in sequences]
    for n in range(len(clips)):
        i, start, _ = clips.index[n]
        valid = clips[n]["valid"].numpy()
        positions = np.clip(np.arange(start, start + 27), 0, len(counts[i]) - 1)
        np.add.at(counts[i], positions[valid > 0], 1)
    assert all((c == 1).all() for c in counts)


def test_check_config_validates_blocks_and_the_method():
    cfg = load_pose_config("diffpose_tiny")
    assert check_config(cfg, "diffpose") is cfg
    with pytest.raises(DataError, match="a diffpose config; use `diffusekit pose diffpose"):
        check_config(cfg, "ddhpose")
    cfg.evaluate["batchsize"] = 4
    with pytest.raises(DataError, match="'batchsize' in the 'evaluate' block; did you mean 'batch_size'"):
        check_config(cfg, "diffpose")
    lifting = load_pose_config("ddhpose_tiny")
    lifting.model.val_sampling["hypothesis"] = 2
    with pytest.raises(DataError, match="'hypothesis' in model.val_sampling; did you mean 'hypotheses'") as error:
        check_config(lifting, "ddhpose")
    assert "ddhpose_tiny.py" in str(error.value)
