"""The shared detection pipeline: settings from configs, the window scorer, calibration on the held-out tail and
the interval finder, with a stand-in model whose imputations are known."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from mmengine.config import Config
from torch import nn

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import VAL_FRACTION, validation_slice
from diffusekit.timeseries.datasets import SeriesWindows
from diffusekit.timeseries.imdiffusion import ImDiffusionDetector, WindowImputation
from diffusekit.timeseries.pipeline import Settings, calibrate, detect, find_intervals, score_series


class ZeroImputer(nn.Module):
    """Imputes every point as 0 at every one of ``steps`` sampler states: the error is |x| itself."""

    def __init__(self, steps: int = 12):
        super().__init__()
        self.steps = steps
        self.weight = nn.Parameter(torch.zeros(()))  # a device for the scorer

    def forward(self, x, mode="predict", observed_mask=None, generator=None):
        return WindowImputation(torch.zeros(x.shape[0], self.steps, *x.shape[1:]), x, list(range(self.steps)))


def test_one_validation_default_everywhere():
    defaults = [
        Settings().val_fraction,
        inspect.signature(SeriesWindows).parameters["val_fraction"].default,
        inspect.signature(ImDiffusionDetector).parameters["val_fraction"].default,
    ]
    assert defaults == [VAL_FRACTION] * 3
    assert validation_slice(1000, 0.1, 32) == slice(900, None)
    assert validation_slice(200, 0.1, 32) == slice(168, None)  # at least one window
    assert validation_slice(200, 0.0, 32) == slice(None)


def test_settings_from_a_config_check_every_detect_key():
    cfg = Config(dict(train_dataloader=dict(dataset=dict(window=40)), detect=dict(p0=0.05, steps=[0, 2])))
    settings = Settings.from_cfg(cfg)
    assert (settings.window, settings.test_stride, settings.metric_window) == (40, 20, 40)
    assert settings.p0 == 0.05 and settings.steps == (0, 2) and settings.keep == 3
    cfg.detect["stpes"] = [1]
    with pytest.raises(DataError, match="unknown key 'stpes' in the 'detect' block; did you mean 'steps'"):
        Settings.from_cfg(cfg)


def test_score_series_stitches_windows_and_keeps_the_voting_steps():
    rng = np.random.default_rng(0)
    values = rng.random((150, 3)).astype(np.float32)
    settings = Settings(window=20, steps=(0, 3, 6))
    scores = score_series(ZeroImputer(), values, settings, progress=False)
    assert scores.step_scores.shape == (settings.keep, 150)
    np.testing.assert_allclose(scores.step_scores[0], values.max(axis=1), rtol=1e-6)  # every timestamp, once
    np.testing.assert_allclose(scores.feature_scores, values.T, rtol=1e-6)
    assert score_series(ZeroImputer(), values, settings, all_steps=True, progress=False).step_scores.shape[0] == 12
    with pytest.raises(DataError, match="need 7 sampler steps; the model has 5"):
        score_series(ZeroImputer(steps=5), values, settings, progress=False)


def test_calibration_reads_only_the_held_out_tail():
    values = np.full((400, 2), 0.1, dtype=np.float32)
    values[:300:7] = 5.0  # large "errors" in the trained-on head must not raise the thresholds
    values[370, 1] = 0.4
    settings = Settings(window=20, steps=(0, 1), p0=0.01)
    calibration, n_val = calibrate(ZeroImputer(), values, settings, progress=False)
    assert n_val == 40 and calibration.xi == 1
    np.testing.assert_allclose(calibration.thresholds, [0.4, 0.4], rtol=1e-6)  # round(0.01 * 40) = 0 -> the top one
    found = detect(score_series(ZeroImputer(), values, settings, progress=False), calibration)
    assert found.predicted[:300:7].all() and found.predicted.sum() == len(range(0, 300, 7))


def test_find_intervals():
    predicted = np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1])
    decision = np.arange(10, dtype=float)
    feature_scores = np.zeros((3, 10))
    feature_scores[2, 1:3] = 1.0
    feature_scores[0, 7:] = 2.0
    feature_scores[1, 9] = 9.0
    intervals = find_intervals(predicted, decision, feature_scores, top_k=2)
    assert [(iv.start, iv.end, iv.max_score) for iv in intervals] == [(1, 3, 2.0), (5, 6, 5.0), (7, 10, 9.0)]
    assert [iv.top_features for iv in intervals] == [[2, 0], [0, 1], [1, 0]]
    assert find_intervals(np.zeros(5, dtype=int), decision[:5], feature_scores[:, :5]) == []


def test_imputation_metric_pools_the_windows():
    from diffusekit.timeseries.metrics import ImputationMetric

    metric = ImputationMetric()
    metric.process({}, [dict(sq_error=2.0, abs_error=3.0, count=4.0), dict(sq_error=6.0, abs_error=1.0, count=4.0)])
    assert metric.evaluate(2) == {"imputation/mse": 1.0, "imputation/mae": 0.5}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("batch_size", 0, "detect.batch_size must be an integer >= 1"),
        ("precision", "fp16", "detect.precision must be one of fp32, bf16"),
        ("pot_q", 1.5, r"detect.pot_q must be a number in \(0, 1\)"),
        ("pot_level", "high", r"detect.pot_level must be a number in \(0, 1\)"),
    ],
)
def test_scoring_settings_are_checked(key, value, message):
    cfg = Config(dict(train_dataloader=dict(dataset=dict(window=40)), detect={key: value}))
    with pytest.raises(DataError, match=message):
        Settings.from_cfg(cfg)


def test_the_batch_size_only_groups_windows():
    values = np.random.default_rng(1).random((150, 3)).astype(np.float32)
    settings = Settings(window=20, steps=(0, 3), batch_size=1)
    one = score_series(ZeroImputer(), values, settings, progress=False)
    many = score_series(ZeroImputer(), values, settings, batch_size=64, progress=False)
    np.testing.assert_array_equal(one.step_scores, many.step_scores)
