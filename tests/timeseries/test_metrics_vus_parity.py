"""Dev-only parity of range-AUC/VUS with the reference implementation in the ``vus`` package (TheDatumOrg/VUS).

Skipped unless ``vus`` is importable. ``vus`` 0.0.6 requires tensorflow, so it is not a dev dependency; to run this
check, install it without its dependencies next to what ``vus.utils.metrics`` imports:
``pip install --no-deps vus==0.0.6 pandas scikit-learn tqdm`` (or put an unpacked wheel on ``PYTHONPATH``).
``RangeAUC_volume_opt`` is the same code in TSB-AD's ``basic_metrics.py``; ``RangeAUC`` is the stand-alone
Range-AUC that ``vus.metrics.get_metrics(metric="range_auc")`` reports.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from diffusekit.timeseries.range_metrics import range_auc, vus, vus_window_auc

reference = pytest.importorskip("vus.utils.metrics", exc_type=ImportError)


def random_fixture(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(30, 500))
    labels = np.zeros(n, dtype=int)
    for _ in range(int(rng.integers(1, 8))):
        start = int(rng.integers(0, n - 1))
        labels[start : start + int(rng.integers(1, 40))] = 1
    scores = rng.random(n) + 0.8 * labels * rng.random(n)
    if rng.random() < 0.3:
        scores = np.round(scores, 1)  # ties
    if labels.all():
        labels[-1] = 0
    return labels, scores


def reference_range_auc(labels: np.ndarray, scores: np.ndarray, window: int) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warnings of the reference code (an empty border at window 0)
        roc, pr, *_ = reference.metricor().RangeAUC(labels, scores, window=window, plot_ROC=True)
    return roc, pr


@pytest.mark.parametrize("seed", range(12))
def test_vus_and_vus_window_auc_match_reference(seed):
    rng = np.random.default_rng(seed)
    labels, scores = random_fixture(rng)
    max_window = int(rng.integers(0, 40))
    tpr, fpr, precision, _, vus_roc, vus_pr = reference.metricor().RangeAUC_volume_opt(labels, scores, max_window, 250)
    assert vus(labels, scores, max_window) == pytest.approx((vus_roc, vus_pr), abs=1e-12)
    for window in range(max_window + 1):
        roc = np.dot(np.diff(fpr[window]), (tpr[window][1:] + tpr[window][:-1]) / 2)
        pr = np.dot(tpr[window][1:-1] - tpr[window][:-2], precision[window][1:])
        assert vus_window_auc(labels, scores, window) == pytest.approx((roc, pr), abs=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_stand_alone_range_auc_matches_reference(seed):
    rng = np.random.default_rng(100 + seed)
    labels, scores = random_fixture(rng)
    for window in (0, 1, 2, 3, int(rng.integers(4, 20)), int(rng.integers(20, 120))):
        assert range_auc(labels, scores, window) == pytest.approx(
            reference_range_auc(labels, scores, window), abs=1e-12
        )


@pytest.mark.parametrize("gap", [3, 4, 5])
def test_stand_alone_range_auc_merges_touching_borders_as_the_reference(gap):
    """Two segments whose widened ranges (window 4, h = 2) overlap (gap 3), touch (gap 4) or stay apart (gap 5)."""
    labels = np.zeros(40, dtype=int)
    labels[[10, 11, 11 + gap + 1]] = 1
    scores = np.random.default_rng(gap).random(40) + 0.3 * labels
    assert range_auc(labels, scores, 4) == pytest.approx(reference_range_auc(labels, scores, 4), abs=1e-12)
