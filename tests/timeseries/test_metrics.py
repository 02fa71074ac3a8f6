"""Metrics of diffusekit.timeseries: hand-computed cases, brute-force oracles, invariants and reference values."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from scipy.stats import rankdata

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import Segment
from diffusekit.timeseries.metrics import (
    AnomalyDetectionMetric,
    average_detection_delay,
    best_f1,
    f1_point,
    f1_point_adjusted,
    hit_rate_at_p,
    pa_k_auc,
    pa_k_curve,
    point_adjust,
    precision_recall_f1,
    range_auc,
    range_auc_pr,
    range_auc_roc,
    vus,
    vus_pr,
    vus_roc,
    vus_window_auc,
    vus_window_auc_pr,
    vus_window_auc_roc,
)
from diffusekit.timeseries.smd import parse_interpretation_file

# segments [1, 4) (one hit of 3), [6, 8) (missed), [9, 10) (hit); one false positive at 0
LABELS = [0, 1, 1, 1, 0, 0, 1, 1, 0, 1]
PRED = [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]


def random_case(rng: np.random.Generator, n: int = 300, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros(n, dtype=int)
    for _ in range(6):
        start = rng.integers(0, n - 1)
        labels[start : start + rng.integers(1, 25)] = 1
    scores = rng.random(n) + 0.5 * labels * rng.random(n)
    return labels, (np.round(scores, 1) if ties else scores)


# ----------------------------------------------------------------------------------------------- input validation
SCORE_FUNCTIONS = [
    lambda l, s: best_f1(l, s),
    lambda l, s: best_f1(l, s, adjust=True),
    lambda l, s: pa_k_curve(l, s),
    lambda l, s: range_auc(l, s, 4),
    lambda l, s: vus_window_auc(l, s, 4),
    lambda l, s: vus(l, s, 4),
]
PRED_FUNCTIONS = [f1_point, f1_point_adjusted, point_adjust, average_detection_delay, precision_recall_f1]


@pytest.mark.parametrize("function", SCORE_FUNCTIONS)
def test_score_metrics_reject_bad_input(function):
    labels, scores = np.array([0, 1, 1, 0, 0]), np.array([0.1, 0.9, 0.8, 0.2, 0.3])
    with pytest.raises(ValueError, match="same length"):
        function(labels, scores[:-1])
    with pytest.raises(ValueError, match="binary"):
        function(np.array([0, 2, 1, 0, 0]), scores)
    with pytest.raises(ValueError, match="binary"):
        function(np.array([0, 0.5, 1, 0, 0]), scores)
    with pytest.raises(ValueError, match="NaN"):
        function(labels, np.array([0.1, np.nan, 0.8, 0.2, 0.3]))
    with pytest.raises(ValueError, match="1-D"):
        function(labels[None], scores[None])
    with pytest.raises(ValueError, match="empty"):
        function(np.array([]), np.array([]))


@pytest.mark.parametrize("function", PRED_FUNCTIONS)
def test_prediction_metrics_reject_bad_input(function):
    with pytest.raises(ValueError, match="same length"):
        function(LABELS, PRED[:-1])
    with pytest.raises(ValueError, match="pred must be binary"):
        function(LABELS, [0.5] * len(LABELS))
    with pytest.raises(ValueError, match="labels must be binary"):
        function([2] * len(PRED), PRED)


def test_undefined_cases_and_parameters_raise():
    with pytest.raises(ValueError, match="no anomalous"):
        best_f1([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="no anomalous segment"):
        average_detection_delay([0, 0, 0], [1, 0, 0])
    with pytest.raises(ValueError, match="at least one anomalous and one normal"):
        vus([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="at least one anomalous and one normal"):
        range_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="non-negative integer"):
        range_auc(LABELS, PRED, -1)
    with pytest.raises(ValueError, match="at least one anomalous and one normal"):
        vus_window_auc([0, 0], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        point_adjust(LABELS, PRED, k=101)
    with pytest.raises(ValueError, match="adjust=True"):
        best_f1(LABELS, PRED, k=50)
    with pytest.raises(ValueError, match="two strictly increasing"):
        pa_k_auc(LABELS, PRED, ks=[0])


def test_lists_and_torch_tensors_are_accepted():
    assert f1_point(torch.tensor(LABELS), torch.tensor(PRED, dtype=torch.bool)) == f1_point(LABELS, PRED)
    scores = torch.linspace(0, 1, len(LABELS))
    assert vus(torch.tensor(LABELS), scores, 3) == vus(np.array(LABELS), scores.numpy(), 3)


# ----------------------------------------------------------------------------------------------- point metrics and PA
def test_precision_recall_f1_by_hand():
    # tp = 2 (indices 3, 9), 3 predictions, 6 anomalies: P = 2/3, R = 1/3, F1 = 2*2/(3+6) = 4/9
    assert precision_recall_f1(LABELS, PRED) == pytest.approx((2 / 3, 1 / 3, 4 / 9))
    assert precision_recall_f1([0, 0], [0, 0]) == (0.0, 0.0, 0.0)


def test_point_adjust_by_hand():
    adjusted = point_adjust(LABELS, PRED)
    assert adjusted.tolist() == [True, True, True, True, False, False, False, False, False, True]
    # PA: tp = 4, 5 predictions, 6 anomalies -> F1 = 8/11
    assert f1_point_adjusted(LABELS, PRED) == pytest.approx(8 / 11)
    # a segment starting at index 0 is adjusted too (OmniAnomaly's backward loop never reaches index 0)
    assert point_adjust([1, 1, 1, 0], [0, 0, 1, 0]).tolist() == [True, True, True, False]


def test_pa_k_edges_by_hand():
    # segment [1, 4) has 1 hit of 3: adjusted iff 1 > 3K/100, i.e. K < 33.3; the others are all-or-nothing
    assert f1_point_adjusted(LABELS, PRED, k=0) == pytest.approx(8 / 11)  # K=0 is PA
    assert f1_point_adjusted(LABELS, PRED, k=30) == pytest.approx(8 / 11)
    assert f1_point_adjusted(LABELS, PRED, k=40) == pytest.approx(4 / 9)
    assert f1_point_adjusted(LABELS, PRED, k=100) == pytest.approx(f1_point(LABELS, PRED))  # K=100: no adjustment
    # exactly K percent is not enough ("more than K%"): 2 of 4 at K=50
    assert point_adjust([1, 1, 1, 1], [1, 1, 0, 0], k=50).tolist() == [True, True, False, False]
    assert point_adjust([1, 1, 1, 1], [1, 1, 0, 0], k=49).all()


def test_pa_k_curve_and_area_by_hand():
    curve = pa_k_curve(LABELS, PRED, ks=range(0, 101, 10))
    np.testing.assert_allclose(curve, [8 / 11] * 4 + [4 / 9] * 7)
    expected_area = (30 * 8 / 11 + 10 * (8 / 11 + 4 / 9) / 2 + 60 * 4 / 9) / 100
    assert pa_k_auc(LABELS, PRED) == pytest.approx(expected_area)
    assert pa_k_auc(np.array(LABELS), np.array(PRED, dtype=bool), ks=[0, 100]) == pytest.approx((8 / 11 + 4 / 9) / 2)


def test_pa_k_curve_modes_agree():
    labels, scores = random_case(np.random.default_rng(3))
    ks = [0, 5, 20, 50, 80, 100]
    threshold = float(np.quantile(scores, 0.8))
    pred = scores >= threshold
    by_pred = pa_k_curve(labels, pred, ks)
    np.testing.assert_allclose(by_pred, [f1_point_adjusted(labels, pred, k) for k in ks])
    np.testing.assert_allclose(pa_k_curve(labels, scores, ks, threshold=threshold), by_pred)
    oracle = pa_k_curve(labels, scores, ks)
    assert oracle[0] == pytest.approx(best_f1(labels, scores, adjust=True).f1)
    assert oracle[-1] == pytest.approx(best_f1(labels, scores).f1)
    assert np.all(np.diff(oracle) <= 1e-12) and np.all(oracle >= by_pred - 1e-12)


# ----------------------------------------------------------------------------------------------- best F1
def test_best_f1_by_hand_pa_is_not_monotone():
    labels = [0, 1, 1, 1, 0, 0]
    scores = [0.9, 0.1, 0.8, 0.2, 0.3, 0.0]
    # PA: t=0.9 -> F1 0; t=0.8 -> the segment is hit: tp 3, fp 1 -> 6/7; lower t only adds false positives
    assert best_f1(labels, scores, adjust=True) == pytest.approx((6 / 7, 3 / 4, 1.0, 0.8))
    # plain: t=0.1 -> tp 3 of 5 predictions -> F1 = 6/8 (t=0.8: 2/5, t=0.2: 4/7, t=0.0: 6/9)
    assert best_f1(labels, scores) == pytest.approx((0.75, 0.6, 1.0, 0.1))


@pytest.mark.parametrize("ties", [False, True])
def test_best_f1_matches_brute_force(ties):
    rng = np.random.default_rng(11 + ties)
    for _ in range(4):
        labels, scores = random_case(rng, n=200, ties=ties)
        for adjust, k in [(False, 0), (True, 0), (True, 20), (True, 60), (True, 100)]:
            result = best_f1(labels, scores, adjust=adjust, k=k)
            brute = max(
                f1_point_adjusted(labels, scores >= t, k) if adjust else f1_point(labels, scores >= t)
                for t in np.unique(scores)
            )
            assert result.f1 == pytest.approx(brute, abs=1e-12)
            pred = scores >= result.threshold
            achieved = precision_recall_f1(labels, point_adjust(labels, pred, k) if adjust else pred)
            assert achieved == pytest.approx((result.precision, result.recall, result.f1))


# ----------------------------------------------------------------------------------------------- ADD
def test_average_detection_delay_by_hand():
    labels = np.zeros(16, dtype=int)
    labels[2:5] = labels[7:9] = labels[11:15] = 1
    pred = np.zeros(16, dtype=int)
    pred[[0, 3, 4, 7, 10]] = 1  # before-segment predictions (0, 10) do not count
    # delays: [2,5) first hit at 3 -> 1; [7,9) at 7 -> 0; [11,15) never -> its length 4
    assert average_detection_delay(labels, pred) == pytest.approx(5 / 3)
    assert average_detection_delay(labels, labels) == 0.0
    assert average_detection_delay(labels, np.zeros(16)) == pytest.approx((3 + 2 + 4) / 3)


# ----------------------------------------------------------------------------------------------- interpretation
def test_interpretation_file_parses_to_segments(tmp_path):
    path = tmp_path / "machine-1-1.txt"
    path.write_text("15849-16368:1,9,10,12\n\n24679-24682:9,13\n")
    assert parse_interpretation_file(path, test_length=30_000, num_features=38) == [
        Segment(15849, 16368, (0, 8, 9, 11)),
        Segment(24679, 24682, (8, 12)),
    ]
    for text, message in (("1-2:1\n3-x:1\n", "expected"), ("5-2:1\n", "empty range"), ("1-2:0\n", "dims")):
        path.write_text(text)
        with pytest.raises(DataError, match=message) as error:
            parse_interpretation_file(path, test_length=100, num_features=38)
        assert error.value.path == path and error.value.line is not None


def test_hit_rate_by_hand():
    segments = [Segment(0, 2, (0, 2)), (3, 4, (1,))]
    scores = np.zeros((5, 5))
    scores[0] = [5, 1, 4, 0, 0]  # top2 {0, 2}: 2/2; top3 {0, 2, 1}: 2/2
    scores[1] = [2, 1, 4, 3, 0]  # top2 {2, 3}: 1/2; top3 {2, 3, 0}: 2/2
    scores[3] = [0, 2, 3, 0, 0]  # |G| = 1: top1 and top floor(1.5) = 1 -> {2}: 0
    assert hit_rate_at_p(segments, scores, p=100) == pytest.approx((1 + 0.5 + 0) / 3)
    assert hit_rate_at_p(segments, scores, p=150) == pytest.approx((1 + 1 + 0) / 3)
    assert hit_rate_at_p(segments, torch.tensor(scores), mask=[1, 0, 0, 0, 0]) == 1.0
    assert hit_rate_at_p([(3, 9, (1,))], scores[:4] + np.eye(5)[1]) == 1.0  # rows >= T are ignored
    assert hit_rate_at_p([(0, 1, (1, 2))], np.zeros((1, 5))) == 0.5  # ties keep the lower dim first: top2 = {0, 1}
    with pytest.raises(ValueError, match="out of range"):
        hit_rate_at_p([(0, 1, (7,))], scores)
    with pytest.raises(ValueError, match="NaN"):
        hit_rate_at_p(segments, np.full((5, 5), np.nan))
    with pytest.raises(ValueError, match="no interpretation point"):
        hit_rate_at_p([(7, 9, (1,))], scores)


# ----------------------------------------------------------------------------------------------- range-AUC and VUS
R = math.sqrt(0.5)  # the soft label sqrt(1 - d / w) at distance d = 1 for window w = 2


def test_vus_window_auc_by_hand():
    # segment [2, 4); window 2 -> h = 1: soft labels r = sqrt(1 - 1/2) at 1 and 4; one extended segment [1, 4].
    # 8 thresholds = every score; order flagged: 2 (anomaly), 4 (r), 1 (r), 6, 3 (anomaly), 5, 0, 7.
    labels = [0, 0, 1, 1, 0, 0, 0, 0]
    scores = [0.1, 0.6, 0.9, 0.3, 0.7, 0.2, 0.5, 0.0]
    r = R
    tp = [1, 1 + r, 1 + 2 * r, 1 + 2 * r, 2 + 2 * r, 2 + 2 * r, 2 + 2 * r, 2 + 2 * r]
    soft = [0, r, 2 * r, 2 * r, 2 * r, 2 * r, 2 * r, 2 * r]  # predicted soft mass outside the segment
    p_new = [2 + m / 2 for m in soft]  # P' = (P + P + S) / 2, P = 2
    tpr = [min(t / p, 1.0) for t, p in zip(tp, p_new)]  # every extended segment is hit from the first threshold on
    fpr = [(k + 1 - t) / (8 - p) for k, (t, p) in enumerate(zip(tp, p_new))]
    precision = [t / (k + 1) for k, t in enumerate(tp)]
    tpr_curve, fpr_curve = [0.0, *tpr, 1.0], [0.0, *fpr, 1.0]
    roc = sum((fpr_curve[i + 1] - fpr_curve[i]) * (tpr_curve[i + 1] + tpr_curve[i]) / 2 for i in range(9))
    pr = sum((tpr_curve[i + 1] - tpr_curve[i]) * precision[i] for i in range(8))
    assert vus_window_auc(labels, scores, 2, n_thresholds=8) == pytest.approx((roc, pr), abs=1e-12)
    # the stand-alone definition on the same case: P' = P + (all soft mass) / 2 = 2 + r at every threshold, and the
    # PR area is a trapezoid that starts at (TPR, precision) = (0, 1)
    tpr = [min(t / (2 + r), 1.0) for t in tp]
    fpr = [(k + 1 - t) / (8 - 2 - r) for k, t in enumerate(tp)]
    tpr_curve, fpr_curve, precision_curve = [0.0, *tpr, 1.0], [0.0, *fpr, 1.0], [1.0, *precision]
    roc = sum((fpr_curve[i + 1] - fpr_curve[i]) * (tpr_curve[i + 1] + tpr_curve[i]) / 2 for i in range(9))
    pr = sum((tpr_curve[i + 1] - tpr_curve[i]) * (precision_curve[i + 1] + precision_curve[i]) / 2 for i in range(8))
    assert range_auc(labels, scores, 2, n_thresholds=8) == pytest.approx((roc, pr), abs=1e-12)


def test_stand_alone_range_auc_closed_forms_where_the_definitions_differ():
    """Tiny cases in closed form; each also gives the value inside VUS (``vus_window_auc``) to show the difference.
    Every case has n <= n_thresholds, so the thresholds are all the scores (with repeats for ties)."""
    r = R
    # (1) window 0, one anomaly ranked second: the ROC areas agree (sklearn's AUC, 2/3); the stand-alone PR is the
    # trapezoid 1 * (0 + 1/2) / 2 = 1/4 (precision 0 at the first threshold), the VUS one the step 1 * 1/2 (= AP).
    assert range_auc([0, 1, 0, 0], [0.9, 0.8, 0.1, 0.0], 0) == pytest.approx((2 / 3, 1 / 4), abs=1e-12)
    assert vus_window_auc([0, 1, 0, 0], [0.9, 0.8, 0.1, 0.0], 0) == pytest.approx((2 / 3, 1 / 2), abs=1e-12)
    # (2) perfect scores, window 2: soft labels r at 1 and 4 are never flagged before the zeros. Stand-alone: P' =
    # 2 + r, so the first point is TPR a = 2 / (2 + r) at FPR 0, then (f, 1) with f = (4 - 2r) / (4 - r) and
    # precision (2 + 2r) / 6: ROC = 1 - f (1 - a) / 2, PR = a + (1 - a) (1 + (1 + r) / 3) / 2 (0.8974, 0.9437).
    # Inside VUS only predicted soft labels count (P' = 2 at the first threshold): TPR 1 at once, (1, 1).
    labels = [0, 0, 1, 1, 0, 0]
    a, f = 2 / (2 + r), (4 - 2 * r) / (4 - r)
    expected = (1 - f * (1 - a) / 2, a + (1 - a) * (1 + (1 + r) / 3) / 2)
    assert expected == pytest.approx((0.8974431613, 0.9437152136), abs=1e-10)
    assert range_auc(labels, labels, 2) == pytest.approx(expected, abs=1e-12)
    assert vus_window_auc(labels, labels, 2) == pytest.approx((1.0, 1.0), abs=1e-12)
    # (3) two one-point segments at 1 and 4, window 2: widened ranges [0, 2] and [3, 5] touch. Stand-alone: one
    # extended segment, P' = 2 + 4r / 2; inside VUS: two, and P' = 2 while no soft label is flagged. Scores flag
    # point 1 alone, then everything (precision q = (2 + 4r) / 7, FPR f = (5 - 4r) / (5 - 2r)).
    labels, scores = [0, 1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0, 0]
    t, f, q = 1 / (2 + 2 * r), (5 - 4 * r) / (5 - 2 * r), (2 + 4 * r) / 7
    assert range_auc(labels, scores, 2) == pytest.approx(
        (f * (1 + t) / 2 + 1 - f, t + (1 - t) * (1 + q) / 2), abs=1e-12
    )  # (0.7859, 0.8903): TPR t = 1 / (2 + 2r) with the whole (single) extended segment hit
    assert vus_window_auc(labels, scores, 2) == pytest.approx(
        (f * (1 + 1 / 4) / 2 + 1 - f, 1 / 4 + 3 / 4 * q), abs=1e-12
    )  # (0.7729, 0.7673): TPR 1/2 (recall) * 1/2 (one of two extended segments) = 1/4


def mann_whitney_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    ranks = rankdata(scores)  # ties count 1/2
    n_pos, n_neg = labels.sum(), (1 - labels).sum()
    return (ranks[labels == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def test_window_zero_with_one_segment_is_plain_auc_and_average_precision():
    rng = np.random.default_rng(5)
    for ties in (False, True):
        labels = np.zeros(200, dtype=int)
        labels[60:90] = 1
        scores = rng.random(200) + 0.4 * labels
        scores = np.round(scores, 1) if ties else scores
        average_precision, trapezoid, previous_recall, previous_precision = 0.0, 0.0, 0.0, 1.0
        for t in np.unique(scores)[::-1]:
            pred = scores >= t
            recall = (pred & (labels == 1)).sum() / labels.sum()
            precision = (pred & (labels == 1)).sum() / pred.sum()
            average_precision += (recall - previous_recall) * precision
            trapezoid += (recall - previous_recall) * (precision + previous_precision) / 2
            previous_recall, previous_precision = recall, precision
        auc = mann_whitney_auc(labels, scores)
        assert vus_window_auc(labels, scores, 0) == pytest.approx((auc, average_precision), abs=1e-12)
        assert vus_window_auc(labels, scores, 1) == vus_window_auc(labels, scores, 0)  # h = 1 // 2 = 0: no border
        assert range_auc(labels, scores, 0) == pytest.approx((auc, trapezoid), abs=1e-12)
        assert range_auc(labels, scores, 1) == range_auc(labels, scores, 0)
    # with several segments TPR is scaled by the share of segments hit, so it is no longer sklearn's AUC
    labels = np.zeros(100, dtype=int)
    labels[10:20] = labels[60:62] = 1
    scores = (np.arange(100) < 50) + 0.001 * np.arange(100)  # finds the first segment early, the second late
    assert vus_window_auc_roc(labels, scores, 0) < mann_whitney_auc(labels, scores) - 0.05
    assert range_auc_roc(labels, scores, 0) == vus_window_auc_roc(labels, scores, 0)


@pytest.mark.parametrize("area", [range_auc, vus_window_auc])
def test_range_auc_invariants(area):
    rng = np.random.default_rng(2)
    labels, scores = random_case(rng)
    for window in (0, 5, 40):
        assert area(labels, np.exp(3 * scores) + 7, window) == area(labels, scores, window)  # rank-based
    # perfect scores: 1 inside VUS; the stand-alone definition counts the never-flagged soft border in P', so it
    # reaches 1 only without a border (window 0 or 1; see the closed forms above)
    assert vus_window_auc(labels, labels.astype(float), 40) == pytest.approx((1.0, 1.0))
    assert range_auc(labels, labels.astype(float), 0) == pytest.approx((1.0, 1.0))
    assert max(range_auc(labels, labels.astype(float), 40)) < 0.99
    perfect, random, reversed_ = (
        vus(labels, labels, 100),
        vus(labels, rng.random(labels.size), 100),
        vus(labels, 1 - labels, 100),
    )
    assert perfect == pytest.approx((1.0, 1.0))
    assert reversed_.roc < random.roc < 1.0 and reversed_.pr < random.pr < 1.0
    assert area(labels, 1 - labels, 0).roc == 0.0
    # a detector that fires on the 4 points before each segment gains as the soft borders widen to cover them
    labels = np.zeros(300, dtype=int)
    early = rng.random(300) * 0.5
    for start in (40, 120, 210):
        labels[start : start + 10] = 1
        early[start - 4 : start] += 1.0
    for name in ("roc", "pr"):
        curve = [getattr(area(labels, early, w), name) for w in range(10)]
        assert np.all(np.diff(curve) >= 0) and curve[-1] > curve[0] + 0.2


def test_vus_is_the_mean_of_vus_window_auc_over_windows():
    labels, scores = random_case(np.random.default_rng(8), ties=True)
    for max_window in (0, 7, 30):
        areas = np.array([vus_window_auc(labels, scores, w) for w in range(max_window + 1)])
        assert vus(labels, scores, max_window) == pytest.approx(tuple(areas.mean(axis=0)), abs=1e-12)
        standalone = np.array([range_auc(labels, scores, w) for w in range(max_window + 1)])
        if max_window:
            assert not np.allclose(standalone.mean(axis=0), areas.mean(axis=0))  # not the stand-alone definition
    assert (
        vus_roc(labels, scores, 7) == vus(labels, scores, 7).roc
        and vus_pr(labels, scores, 7) == vus(labels, scores, 7).pr
    )
    assert range_auc_pr(labels, scores, 7) == range_auc(labels, scores, 7).pr
    assert range_auc_roc(labels, scores, 7) == range_auc(labels, scores, 7).roc
    assert vus_window_auc_pr(labels, scores, 7) == vus_window_auc(labels, scores, 7).pr
    assert vus_window_auc_roc(labels, scores, 7) == vus_window_auc(labels, scores, 7).roc


# Reference values (run once offline; vus is not a test dependency because it requires tensorflow): TSB-AD / vus
# 0.0.6 ``metricor().RangeAUC_volume_opt(labels, scores, L, 250)`` for VUS and its per-window term, and vus 0.0.6
# ``metricor().RangeAUC(labels, scores, window=w, plot_ROC=True)[:2]`` for the stand-alone Range-AUC. Segments touch
# both ends of the series.
REFERENCE_LABELS = np.zeros(48, dtype=int)
REFERENCE_LABELS[[0, 1, 14, 15, 16, 17, 21, 40, 41, 42, 43, 44, 45]] = 1
REFERENCE_SCORES = [
    0.79, 0.98, 0.74, 0.36, 0.21, 0.61, 0.0, 0.57, 0.56, 0.33, 0.21, 0.19, 0.18, 0.31, 0.7, 0.74, 1.25, 1.1, 0.64, 0.89,
    0.15, 0.46, 0.43, 0.23, 0.02, 0.36, 0.33, 0.64, 0.44, 0.36, 0.35, 0.17, 0.01, 0.13, 0.48, 0.14, 0.26, 0.0, 0.58,
    0.11, 0.54, 0.97, 0.91, 1.14, 1.0, 1.07, 0.26, 0.58,
]  # fmt: skip
REFERENCE_VUS = {
    0: (0.8898351648351648, 0.8172351060310925),
    3: (0.9026053668179783, 0.8386502801001123),
    10: (0.9625505978656487, 0.9359086333217136),
    30: (0.9864990501140113, 0.9765321582862314),
}
REFERENCE_VUS_WINDOW_AUC = {0: (0.8898351648351648, 0.8172351060310925), 5: (0.9958605048423395, 0.9895122238867082)}
REFERENCE_RANGE_AUC = {
    0: (0.8898351648351648, 0.8148092779572713),
    3: (0.8808519494194519, 0.8240849499589309),
    5: (0.9569338495654326, 0.9406666615728381),
    10: (0.9146218304797614, 0.919051199696399),
    25: (0.9958544896689036, 0.9969895707453783),
}


def test_matches_reference_values():
    for max_window, expected in REFERENCE_VUS.items():
        assert vus(REFERENCE_LABELS, REFERENCE_SCORES, max_window) == pytest.approx(expected, abs=1e-12)
    for window, expected in REFERENCE_VUS_WINDOW_AUC.items():
        assert vus_window_auc(REFERENCE_LABELS, REFERENCE_SCORES, window) == pytest.approx(expected, abs=1e-12)
    assert vus_window_auc(REFERENCE_LABELS, REFERENCE_SCORES, 30) == pytest.approx((1.0, 1.0))
    for window, expected in REFERENCE_RANGE_AUC.items():
        assert range_auc(REFERENCE_LABELS, REFERENCE_SCORES, window) == pytest.approx(expected, abs=1e-12)


def test_vus_is_fast():
    rng = np.random.default_rng(0)
    labels = np.zeros(30_000, dtype=int)
    for start in rng.integers(0, 29_500, 30):
        labels[start : start + rng.integers(5, 400)] = 1
    scores = rng.random(labels.size) + 0.3 * labels
    began = time.perf_counter()
    vus(labels, scores, 100)
    assert time.perf_counter() - began < 2.0


# ----------------------------------------------------------------------------------------------- mmengine twin
def test_mmengine_metric_matches_functions():
    from mmengine.registry import METRICS

    labels, scores = random_case(np.random.default_rng(4), n=240)
    pred = scores >= np.quantile(scores, 0.85)
    names = [
        "best_f1",
        "best_f1_pa",
        "pa_k_auc",
        "range_auc_roc",
        "range_auc_pr",
        "vus_window_auc_roc",
        "vus_window_auc_pr",
        "vus_roc",
        "vus_pr",
        "f1",
        "f1_pa",
        "add",
    ]
    metric = METRICS.build(
        dict(type="AnomalyDetectionMetric", metrics=names, range_window=10, vus_max_window=20, index_key="start")
    )
    chunks = [(start, slice(start, start + 60)) for start in (120, 0, 180, 60)]  # arrive out of order
    for start, chunk in chunks:
        sample = dict(
            score=torch.tensor(scores[chunk]), label=torch.tensor(labels[chunk]), pred=pred[chunk], start=start
        )
        metric.process({}, [sample])
    result = metric.evaluate(size=4)
    best, best_pa = best_f1(labels, scores), best_f1(labels, scores, adjust=True)
    expected = {
        "best_f1": best.f1,
        "best_f1_threshold": best.threshold,
        "best_f1_pa": best_pa.f1,
        "best_f1_pa_recall": best_pa.recall,
        "pa_k_auc": pa_k_auc(labels, scores),
        "range_auc_roc": range_auc_roc(labels, scores, 10),
        "range_auc_pr": range_auc_pr(labels, scores, 10),
        "vus_window_auc_roc": vus_window_auc_roc(labels, scores, 10),
        "vus_window_auc_pr": vus_window_auc_pr(labels, scores, 10),
        "vus_roc": vus_roc(labels, scores, 20),
        "vus_pr": vus_pr(labels, scores, 20),
        "f1": f1_point(labels, pred),
        "f1_pa": f1_point_adjusted(labels, pred),
        "add": average_detection_delay(labels, pred),
    }
    for name, value in expected.items():
        assert result[f"anomaly/{name}"] == pytest.approx(value), name
    assert result["anomaly/range_auc_pr"] != pytest.approx(result["anomaly/vus_window_auc_pr"])  # two definitions
    with pytest.raises(ValueError, match="unknown metrics"):
        AnomalyDetectionMetric(metrics=["auc"])
    metric = AnomalyDetectionMetric(metrics=["f1"])
    metric.process({}, [dict(score=scores, label=labels)])
    with pytest.raises(ValueError, match="'pred'"):
        metric.evaluate(size=1)
