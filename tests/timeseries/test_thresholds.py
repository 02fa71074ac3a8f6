"""POT / SPOT thresholds (Siffer et al., KDD 2017) against closed-form GPD quantiles, a plain re-implementation of
the streaming loop, and their use in the evaluation table."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from diffusekit.timeseries.data import FillReport, SeriesSplit
from diffusekit.timeseries.imdiffusion import WindowImputation
from diffusekit.timeseries.metrics import f1_point, f1_point_adjusted
from diffusekit.timeseries.pipeline import Settings, calibrate, detect, score_series
from diffusekit.timeseries.thresholds import (
    deployable_metrics,
    fit_gpd,
    gpd_log_likelihood,
    gpd_quantile,
    initial_threshold,
    pot_threshold,
    spot_thresholds,
)
from diffusekit.timeseries.workflow import METRIC_KEYS, evaluate_entity, format_table


def gpd_tail_quantile(gamma: float, sigma: float, q: float) -> float:
    """The score exceeded with probability q under GPD(gamma, sigma, loc 0): (1 + gamma x/sigma)^(-1/gamma) = q."""
    return -sigma * math.log(q) if gamma == 0 else sigma / gamma * (q**-gamma - 1.0)


# ------------------------------------------------------------------------------------------------ POT
@pytest.mark.parametrize("gamma, tolerance", [(0.3, 0.3), (-0.3, 0.05)])
def test_pot_recovers_the_gpd_and_its_quantile(gamma, tolerance):
    sigma, q = 2.0, 1e-4
    x = stats.genpareto.rvs(gamma, scale=sigma, size=50_000, random_state=np.random.default_rng(0))
    pot = pot_threshold(x, q=q, level=0.98)
    assert pot.fallback == "" and pot.n_peaks == 999 and pot.n == 50_000
    assert pot.t == np.sort(x)[49_000]
    assert abs(pot.gamma - gamma) < 0.1
    assert pot.sigma == pytest.approx(sigma + gamma * pot.t, rel=0.12)  # excesses over t: GPD(gamma, sigma + gamma t)
    assert pot.threshold == pytest.approx(gpd_tail_quantile(gamma, sigma, q), rel=tolerance)


def test_exponential_tail_and_the_gamma_zero_branch():
    rate, q = 0.5, 1e-4
    x = np.random.default_rng(1).exponential(1.0 / rate, 50_000)
    pot = pot_threshold(x, q=q, level=0.98)
    assert abs(pot.gamma) < 0.06 and pot.sigma == pytest.approx(1.0 / rate, rel=0.1)
    assert pot.threshold == pytest.approx(-math.log(q) / rate, rel=0.12)
    # gamma = 0 is t - sigma log(q n / N_t), the limit of the gamma != 0 formula
    assert gpd_quantile(3.0, 0.0, 2.0, 1e-3, 5000, 100) == pytest.approx(3.0 - 2.0 * math.log(0.05), rel=1e-14)
    assert gpd_quantile(3.0, 1e-9, 2.0, 1e-3, 5000, 100) == pytest.approx(3.0 - 2.0 * math.log(0.05), rel=1e-8)
    assert gpd_quantile(3.0, 0.5, 2.0, 1e-3, 5000, 100) == pytest.approx(3.0 + 4.0 * (0.05**-0.5 - 1.0), rel=1e-14)
    assert gpd_log_likelihood([1.0, 3.0], 0.0, 2.0) == pytest.approx(-2 * math.log(2.0) - 2.0)


@pytest.mark.parametrize("gamma", [0.4, 0.0, -0.4])
def test_grimshaw_reaches_the_scipy_likelihood_maximum(gamma):
    peaks = stats.genpareto.rvs(gamma, scale=1.5, size=300, random_state=np.random.default_rng(2))
    grimshaw, scipy_fit = fit_gpd(peaks, "grimshaw"), fit_gpd(peaks, "scipy")
    best = gpd_log_likelihood(peaks, *grimshaw)
    assert best >= gpd_log_likelihood(peaks, *scipy_fit) - 1e-6
    np.testing.assert_allclose(grimshaw, scipy_fit, rtol=2e-3, atol=2e-4)
    for dg, ds in ((0.01, 0), (-0.01, 0), (0, 0.01), (0, -0.01)):  # a local maximum
        assert gpd_log_likelihood(peaks, grimshaw[0] + dg, grimshaw[1] * (1 + ds)) < best


def test_bounded_tails():
    """Uniform scores: the excesses over t are uniform (GPD gamma = -1) and z_q is the true 1 - q quantile, where
    the exponential candidate would put it beyond every possible score. With few peaks only the gamma = -1 edge of
    the region gamma >= -1 fits (no interior maximum): uniform on [0, max Y]."""
    x = np.random.default_rng(3).random(20_000)
    pot = pot_threshold(x, q=1e-3, level=0.98)
    assert -1.0 <= pot.gamma < -0.8 and pot.threshold == pytest.approx(1.0 - 1e-3, abs=6e-4) and pot.threshold < 1.0
    peaks = x[x > pot.t] - pot.t
    assert gpd_quantile(pot.t, 0.0, peaks.mean(), 1e-3, x.size, peaks.size) > 1.0
    y = np.array([0.1, 0.5, 0.9, 0.95, 1.0, 1.0, 0.98, 0.99, 0.97, 0.96])  # piled up at a ceiling
    assert fit_gpd(y) == (-1.0, 1.0) and fit_gpd(y, "scipy")[0] < -1.0  # scipy: outside gamma >= -1


def test_too_few_peaks_fall_back_to_the_empirical_quantile():
    x = np.random.default_rng(4).normal(size=200)
    pot = pot_threshold(x, q=1e-3, level=0.98)  # 4 peaks
    assert pot.n_peaks == 3 and "3 peaks over t < 10" in pot.fallback
    assert pot.threshold == x.max() and math.isnan(pot.gamma)
    assert pot_threshold(x, q=0.01, level=0.95, min_peaks=10).threshold == np.sort(x)[-2]  # ceil(199 * 0.99)


def test_constant_scores_fall_back_to_their_value_and_alarm_above_it():
    pot = pot_threshold(np.full(500, 0.25))
    assert pot.threshold == 0.25 and pot.n_peaks == 0 and pot.fallback
    spot = spot_thresholds(np.full(500, 0.25), np.array([0.25, 0.25, 0.3, 0.25]))
    assert spot.alarms.tolist() == [0, 0, 1, 0] and spot.refits == 0


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(scores=[1.0, math.nan, 2.0]), "NaN or infinite"),
        (dict(scores=[1.0, math.inf]), "NaN or infinite"),
        (dict(scores=[]), "non-empty 1-D"),
        (dict(scores=np.ones((3, 3))), "non-empty 1-D"),
        (dict(scores=np.ones(10), q=0.05, level=0.98), r"q must be in \(0, 1 - level\)"),
        (dict(scores=np.ones(10), level=1.0), "level must be in"),
    ],
)
def test_bad_input_raises_value_error(bad, match):
    with pytest.raises(ValueError, match=match):
        pot_threshold(**bad)


def test_bad_stream_raises_value_error():
    with pytest.raises(ValueError, match="stream_scores holds NaN"):
        spot_thresholds(np.arange(100.0), [1.0, math.nan])
    with pytest.raises(ValueError, match="peaks must be positive"):
        fit_gpd([0.0, 1.0, 2.0])


# ------------------------------------------------------------------------------------------------ SPOT
def reference_spot(init, stream, q, level, min_peaks=10):
    """Algorithm 2 of Siffer et al. written point by point, refitting at every peak (the oracle for the loop that
    visits only the scores above t)."""
    t = initial_threshold(init, level)
    peaks = list(init[init > t] - t)
    n, z = init.size, pot_threshold(init, q, level, min_peaks=min_peaks).threshold
    thresholds, alarms = [], []
    for x in stream:
        thresholds.append(z)
        alarms.append(int(x > z))
        if x > z:
            continue
        n += 1
        if x > t:
            peaks.append(x - t)
            if len(peaks) >= min_peaks:
                gamma, sigma = fit_gpd(np.array(peaks))
                z = gpd_quantile(t, gamma, sigma, q, n, len(peaks))
    return np.array(thresholds), np.array(alarms)


def test_spot_matches_the_point_by_point_algorithm():
    rng = np.random.default_rng(5)
    init, stream = rng.exponential(1.0, 300), rng.exponential(1.0, 3000)
    stream[1500:1510] += 6.0
    spot = spot_thresholds(init, stream, q=1e-3, level=0.98)
    thresholds, alarms = reference_spot(init, stream, 1e-3, 0.98)
    np.testing.assert_allclose(spot.thresholds, thresholds, rtol=1e-12)
    np.testing.assert_array_equal(spot.alarms, alarms)
    assert spot.init.n_peaks == 5 and spot.init.fallback  # starts on the fallback, fits from the 10th peak
    assert spot.thresholds[0] == init.max() and len(np.unique(spot.thresholds)) > 10


def test_spot_alarm_rate_on_a_stationary_stream():
    """Stationary exponential scores, q = 1e-3 (30 expected alarms in 30k). POT's fixed threshold flags about q;
    SPOT about 1.5 q: alarms never enter the peaks, so the fitted tail is censored at z_q and drifts down (a bias
    of the published algorithm, measured 1.3-2x q over seeds; docs)."""
    rng = np.random.default_rng(6)
    init, stream = rng.exponential(1.0, 20_000), rng.exponential(1.0, 30_000)
    spot = spot_thresholds(init, stream, q=1e-3, level=0.98)
    pot_rate = float(np.mean(stream > spot.init.threshold))
    assert 0.6e-3 < pot_rate < 1.6e-3
    assert 0.6e-3 < spot.alarms.mean() < 2.5e-3
    assert spot.final.threshold == pytest.approx(-math.log(1e-3), rel=0.15)
    every_fifth = spot_thresholds(init, stream, q=1e-3, level=0.98, refit_every=5)
    assert every_fifth.refits < spot.refits / 4
    assert np.mean(every_fifth.alarms != spot.alarms) < 1e-4  # refitting every 5th peak: the same alarms
    assert every_fifth.final.threshold == pytest.approx(spot.final.threshold, rel=0.01)


def test_spot_alarms_on_a_level_shift_without_learning_it():
    rng = np.random.default_rng(7)
    init, stream = rng.normal(size=5000), rng.normal(size=8000)
    stream[4000:4500] += 5.0
    spot = spot_thresholds(init, stream, q=1e-3, level=0.98)
    assert spot.alarms[4000:4500].mean() > 0.9
    assert spot.alarms[:4000].mean() < 5e-3 and spot.alarms[4500:].mean() < 5e-3
    # alarms are not peaks: the threshold after the shift is what it was before it
    assert spot.thresholds[4600] == pytest.approx(spot.thresholds[3990], rel=0.05)


# ------------------------------------------------------------------------------------------------ metrics
def test_deployable_metrics_of_any_detector():
    rng = np.random.default_rng(8)
    val, test = rng.exponential(1.0, 5000), rng.exponential(1.0, 4000)
    labels = np.zeros(4000, dtype=np.int64)
    labels[1000:1050] = labels[3000:3020] = 1
    test[labels == 1] += rng.uniform(0.0, 12.0, 70)
    out = deployable_metrics(val, test, labels, quantile=0.99, q=1e-3, level=0.98)
    threshold = np.sort(val)[math.ceil(4999 * 0.99)]
    assert out["threshold_quantile"] == threshold
    assert out["f1_quantile"] == pytest.approx(f1_point(labels, test > threshold))
    pot = pot_threshold(val, 1e-3, 0.98)
    assert out["threshold_pot"] == pot.threshold and out["pot_peaks"] == pot.n_peaks and out["pot_fallback"] == 0.0
    assert out["pa_f1_pot"] == pytest.approx(f1_point_adjusted(labels, test > pot.threshold))
    assert out["alarm_rate_spot"] == spot_thresholds(val, test, 1e-3, 0.98).alarms.mean()
    assert out["pa_f1_pot"] > out["pa_f1_quantile"] and out["precision_pot"] > out["precision_quantile"] + 0.2
    only = deployable_metrics(val, test, labels, kinds=("pot",))
    assert set(only) == {k for k in out if k.endswith("_pot") or k.startswith("pot_")}
    with pytest.raises(ValueError, match="labels .* differ"):
        deployable_metrics(val, test, labels[:-1])


class ZeroImputer(nn.Module):
    """Imputes 0 at every sampler state: the error of every step is |x| (as in test_pipeline)."""

    def __init__(self, steps: int = 4):
        super().__init__()
        self.steps = steps
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x, mode="predict", observed_mask=None, generator=None):
        return WindowImputation(torch.zeros(x.shape[0], self.steps, *x.shape[1:]), x, list(range(self.steps)))


def test_evaluate_entity_reports_pot_and_spot_on_the_train_tail_decision_scores():
    rng = np.random.default_rng(9)
    train, test = rng.exponential(0.1, (6000, 2)), rng.exponential(0.1, (1500, 2))
    labels = np.zeros(1500, dtype=np.int64)
    labels[600:640] = labels[1200:1210] = 1
    test[labels == 1] += 2.0
    split = SeriesSplit("m", train, test, labels, ["a", "b"], train, test, None, FillReport("zero"))
    settings = Settings(window=20, steps=(0, 1, 2), p0=0.02)
    result = evaluate_entity(ZeroImputer(), split, settings, progress=False)
    calibration, n_val = calibrate(ZeroImputer(), train, settings, progress=False)
    assert n_val == 600 and np.array_equal(result.calibration.thresholds, calibration.thresholds)
    tail = detect(score_series(ZeroImputer(), train[-600:], settings, progress=False), calibration).decision
    expected = deployable_metrics(tail, result.detection.decision, labels, kinds=("pot", "spot"))
    for key in ("f1_pot", "pa_f1_pot", "f1_spot", "pa_f1_spot", "threshold_pot", "pot_peaks", "add_spot"):
        assert result.metrics[key] == expected[key], key
    assert result.metrics["pot_peaks"] == 11 and result.metrics["pot_fallback"] == 0.0  # 2% of 600 tail points
    m = result.metrics
    assert m["recall_pot"] == m["recall_spot"] == m["recall"] == 1.0  # the +2 shifts are far above every tail score
    # the stand-in's steps all agree, so the decision is 0 + soft or 3 + soft vote: a bounded tail (gamma = -1)
    # whose z_q lies inside the top vote count, just below the largest tail score
    assert m["pot_gamma"] == -1.0 and 3.0 < m["threshold_pot"] < 4.0 and m["threshold_pot"] <= tail.max()


def test_format_table_shows_both_threshold_kinds():
    metrics = {key: 0.5 for key in METRIC_KEYS} | {"f1_pot": 0.8125, "pa_f1_spot": 0.25, "add": 3.0}
    table = format_table([SimpleNamespace(name="machine-1-1", metrics=metrics)], Settings(window=20))
    header, _, row = table.splitlines()[:3]
    assert header.split()[-8:] == ["F1", "POT", "PA-F1", "POT", "F1", "SPOT", "PA-F1", "SPOT"]
    assert row.split()[-4:] == ["0.8125", "0.5000", "0.5000", "0.2500"] and row.split()[6] == "3.0"
    assert "POT / SPOT: deployable" in table and "q=0.001, level 0.98" in table
