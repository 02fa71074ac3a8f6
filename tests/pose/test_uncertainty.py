"""Uncertainty of multi-hypothesis poses: spread and error against hand computations, calibration of an ideal
sampler against its closed form (scale sqrt((H + 1) / (H - 1))), a spread independent of the error, and the
regressor ensemble behind `evaluate_lifting` with its hypotheses kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusekit.core.errors import DataError
from diffusekit.pose.h36m import LiftingSequence
from diffusekit.pose.lifting_eval import evaluate_lifting
from diffusekit.pose.uncertainty import (
    EnsembleLifter,
    calibration,
    hypotheses_calibration,
    hypothesis_spread,
    mean_error,
    reliability_curve,
    reliability_figure,
)


def test_spread_and_error_by_hand():
    hyps = np.zeros((3, 1, 2, 3))
    hyps[:, 0, 0] = [[0, 0, 0], [0, 3, 0], [0, 0, 3]]  # mean (0, 1, 1)
    hyps[:, 0, 1] = [[0, 0, 0], [2, 0, 0], [4, 0, 0]]  # mean (2, 0, 0)
    truth = np.array([[[0, 1, 5], [2, 0, 0]]], float)
    spread = hypothesis_spread(hyps)
    np.testing.assert_allclose(spread, [[(np.sqrt(2) + 2 * np.sqrt(5)) / 3, 4 / 3]])
    np.testing.assert_allclose(mean_error(hyps, truth), [[4.0, 0.0]])
    with pytest.raises(DataError, match="at least 2 hypotheses"):
        hypothesis_spread(hyps[:1])
    with pytest.raises(DataError, match="does not match"):
        mean_error(hyps, truth[:, :1])


def test_reliability_curve_and_a_proportional_spread():
    rng = np.random.default_rng(0)
    spread = rng.permutation(20).astype(float)
    curve = reliability_curve(spread, 2 * spread + 1, bins=10)
    np.testing.assert_allclose(curve["spread"], np.arange(10) * 2 + 0.5)
    np.testing.assert_allclose(curve["error"], 2 * curve["spread"] + 1)
    assert curve["count"].tolist() == [2] * 10
    result = calibration(spread + 1, 3 * (spread + 1), bins=10)  # error exactly proportional
    assert result["spearman"] == pytest.approx(1.0)
    assert result["scale"] == pytest.approx(3.0)
    assert result["calibration_error"] == pytest.approx(0.0, abs=1e-12)
    assert result["mean_error"] == pytest.approx(3 * 10.5)
    assert sum(b["count"] for b in result["bins"]) == 20
    with pytest.raises(DataError, match="differ in size"):
        reliability_curve(spread, spread[:5])


def test_spearman_matches_a_rank_computation():
    rng = np.random.default_rng(1)
    spread, error = rng.random(500), rng.random(500)
    error = error + spread  # correlated, no ties
    ranks = [np.argsort(np.argsort(v)) for v in (spread, error)]
    assert calibration(spread, error)["spearman"] == pytest.approx(np.corrcoef(*ranks)[0, 1], abs=1e-12)


def ideal_sampler(hypotheses: int, frames: int = 1500, joints: int = 17, seed: int = 0):
    """Truth and H hypotheses drawn independently from one isotropic Gaussian per (frame, joint), its sigma
    log-uniform between 1 and 100 mm: the hypotheses' distribution is the right one."""
    rng = np.random.default_rng(seed)
    sigma = np.exp(rng.uniform(0, np.log(100), size=(frames, joints, 1)))
    centre = rng.normal(size=(frames, joints, 3)) * 200
    truth = centre + sigma * rng.normal(size=(frames, joints, 3))
    hyps = centre + sigma * rng.normal(size=(hypotheses, frames, joints, 3))
    return hyps, truth, sigma[..., 0]


def test_an_ideal_sampler_is_calibrated_up_to_the_closed_form_scale():
    hyps, truth, _ = ideal_sampler(20)
    # two "sequences": the pooled result is the same as one
    pairs = [(hyps[:, :700], truth[:700]), (hyps[:, 700:], truth[700:])]
    result = hypotheses_calibration(pairs)
    assert result["hypotheses"] == 20 and result["pairs"] == 1500 * 17
    assert result["scale"] == pytest.approx(np.sqrt(21 / 19), rel=0.02)  # 1.051
    assert result["spearman"] > 0.9
    assert result["calibration_error"] < 0.04
    for b in result["bins"]:  # every decile: error / spread near the scale
        assert b["error"] / b["spread"] == pytest.approx(np.sqrt(21 / 19), rel=0.08)
    # the mean spread itself: sigma sqrt(1 - 1/H) E|chi_3|, E|chi_3| = 2 sqrt(2 / pi)
    chi3 = 2 * np.sqrt(2 / np.pi)
    assert result["mean_spread"] == pytest.approx(np.mean(ideal_sampler(20)[2]) * np.sqrt(19 / 20) * chi3, rel=0.02)
    few = hypotheses_calibration(pairs, hypotheses=4)  # the first 4 only: a noisier spread, scale sqrt(5 / 3)
    assert few["hypotheses"] == 4
    assert few["scale"] == pytest.approx(np.sqrt(5 / 3), rel=0.03)
    assert 0.5 < few["spearman"] < result["spearman"]


def test_a_spread_independent_of_the_error_is_uninformative():
    hyps, _, _ = ideal_sampler(20, seed=2)
    _, _, other = ideal_sampler(20, seed=3)  # another sigma per (frame, joint), independent of the hypotheses'
    rng = np.random.default_rng(4)
    truth = hyps.mean(0) + other[..., None] * rng.normal(size=hyps.shape[1:])
    result = hypotheses_calibration([(hyps, truth)])
    assert abs(result["spearman"]) < 0.03
    assert result["calibration_error"] > 0.5  # a flat curve against a spread spanning two decades
    errors = np.array([b["error"] for b in result["bins"]])
    assert errors.max() / errors.min() < 1.2


class Shifted(torch.nn.Module):
    """A deterministic "regressor": the ground truth (looked up by the normalised 2D) plus a fixed offset on every
    joint but the root."""

    def __init__(self, keypoints: np.ndarray, poses: np.ndarray, offset: tuple[float, float, float]):
        super().__init__()
        self.frames = 9
        self.lookup = {np.round(k, 5).tobytes(): p for k, p in zip(keypoints, poses)}
        self.offset = np.asarray(offset)
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def sample(self, clips, hypotheses, steps, flip=True, generator=None):
        truth = np.stack([[self.lookup[np.round(k, 5).tobytes()] for k in clip] for clip in clips.numpy()])
        pose = truth + self.offset
        pose[..., 0, :] = 0
        return torch.from_numpy(pose[None, None]).float()


def test_an_ensemble_of_regressors_gives_its_members_as_hypotheses(tmp_path):
    from diffusekit.pose.camera import h36m_camera, normalize_screen_coordinates, project

    rng = np.random.default_rng(0)
    camera = h36m_camera("S9", 0)
    poses = rng.normal(size=(14, 17, 3)) * 0.3 + np.array([0.0, 0.0, 5.0])
    poses[:, 0] = [0.0, 0.0, 5.0]
    keypoints = project(poses, camera).astype(np.float32)
    sequence = LiftingSequence("S9", "Walking 1", keypoints, poses.astype(np.float32), camera, 1000, 1002)
    relative = (poses - poses[:, :1]).astype(np.float32)
    norm = normalize_screen_coordinates(keypoints, 1000, 1002).astype(np.float32)
    offsets = [(0.01, 0.0, 0.0), (0.03, 0.0, 0.0), (0.01, 0.02, 0.0), (0.03, 0.02, 0.0)]  # metres; mean (20, 10, 0) mm
    ensemble = EnsembleLifter([Shifted(norm, relative, o) for o in offsets])
    result = evaluate_lifting(ensemble, [sequence], hypotheses=(1, 4), steps=(1,), progress=False, keep_hypotheses=(1,))
    rows = {(r["hypotheses"], r["aggregation"]): r["mpjpe"] for r in result["rows"]}
    # 16 of 17 joints shifted; the root stays at 0
    assert rows[(4, "P-Agg")] == pytest.approx(16 / 17 * np.hypot(20, 10), rel=1e-4)
    assert rows[(1, "P-Agg")] == pytest.approx(16 / 17 * 10, rel=1e-4)
    ((hyps, truth),) = result["hypotheses"][1]
    assert hyps.shape == (4, 14, 17, 3)
    np.testing.assert_allclose(truth, 1000 * relative, atol=1e-3)
    np.testing.assert_allclose(hyps[2, :, 5] - truth[:, 5], np.tile([10, 20, 0], (14, 1)), atol=1e-2)
    scored = hypotheses_calibration(result["hypotheses"][1], bins=2)
    # every shifted joint: each member is sqrt(10^2 + 10^2) mm from the mean; the root has no spread, no error
    assert scored["mean_spread"] == pytest.approx(16 / 17 * np.sqrt(200), rel=1e-4)
    assert scored["mean_error"] == pytest.approx(16 / 17 * np.sqrt(500), rel=1e-4)
    path = reliability_figure(tmp_path / "reliability.png", {"ensemble": scored})
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="gives 4 hypotheses"):
        ensemble.sample(torch.zeros(1, 9, 17, 2), hypotheses=5)
