"""The hand-written point metrics against scikit-learn on random cases (scikit-learn is a dev dependency)."""

from __future__ import annotations

import numpy as np
import pytest

from diffusekit.timeseries.metrics import best_f1, f1_point, f1_point_adjusted, point_adjust, precision_recall_f1
from diffusekit.timeseries.range_metrics import range_auc, vus_window_auc

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _case(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels with a few segments, predictions of varying density (none at all sometimes), and scores."""
    labels = np.zeros(n, dtype=int)
    for _ in range(rng.integers(1, 6)):
        start = rng.integers(0, n - 1)
        labels[start : start + rng.integers(1, 30)] = 1
    density = rng.choice([0.0, 0.02, 0.1, 0.4])
    pred = (rng.random(n) < density).astype(int)
    scores = rng.random(n) + rng.uniform(0, 1) * labels * rng.random(n)
    return labels, pred, scores


def _adjust_by_loop(labels: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Point adjustment written out segment by segment: a segment with any hit becomes fully predicted."""
    out = pred.copy()
    t = 0
    while t < len(labels):
        if labels[t]:
            end = t
            while end < len(labels) and labels[end]:
                end += 1
            if pred[t:end].any():
                out[t:end] = 1
            t = end
        else:
            t += 1
    return out


@pytest.mark.parametrize("seed", range(20))
def test_point_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    labels, pred, _ = _case(rng, int(rng.integers(20, 400)))
    precision, recall, f1, _ = sklearn_metrics.precision_recall_fscore_support(
        labels, pred, average="binary", zero_division=0
    )
    assert precision_recall_f1(labels, pred) == pytest.approx((precision, recall, f1), abs=1e-12)
    assert f1_point(labels, pred) == pytest.approx(sklearn_metrics.f1_score(labels, pred, zero_division=0))
    adjusted = _adjust_by_loop(labels, pred)
    assert np.array_equal(point_adjust(labels, pred).astype(int), adjusted)
    expected = sklearn_metrics.f1_score(labels, adjusted, zero_division=0)
    assert f1_point_adjusted(labels, pred) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_best_f1_is_the_top_of_sklearns_pr_curve(seed):
    rng = np.random.default_rng(100 + seed)
    labels, _, scores = _case(rng, 300)
    scores = np.round(scores, 2) if seed % 2 else scores  # ties too
    precision, recall, _ = sklearn_metrics.precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    assert best_f1(labels, scores).f1 == pytest.approx(f1.max(), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_binary_vus_window_auc_of_one_segment_is_sklearns_auc_and_average_precision(seed):
    rng = np.random.default_rng(200 + seed)
    labels = np.zeros(200, dtype=int)
    start = int(rng.integers(0, 150))
    labels[start : start + int(rng.integers(5, 50))] = 1
    scores = rng.random(200) + rng.uniform(0.1, 1) * labels
    expected = (
        sklearn_metrics.roc_auc_score(labels, scores),
        sklearn_metrics.average_precision_score(labels, scores),
    )
    assert tuple(vus_window_auc(labels, scores, 0)) == pytest.approx(expected, abs=1e-12)
    # the stand-alone Range-AUC shares the ROC area; its PR area is a trapezoid, not average precision
    assert range_auc(labels, scores, 0).roc == pytest.approx(expected[0], abs=1e-12)
