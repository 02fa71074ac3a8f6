"""Dev-only parity of range-AUC/VUS with the reference implementation in the ``vus`` package (TheDatumOrg/VUS).

Skipped unless ``vus`` is importable. ``vus`` 0.0.6 requires tensorflow, so it is not a dev dependency; to run this
check, install it without its dependencies next to what ``vus.utils.metrics`` imports:
``pip install --no-deps vus==0.0.6 pandas scikit-learn tqdm``. The same code is in TSB-AD's ``basic_metrics.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from diffusekit.timeseries.range_metrics import range_auc, vus

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


@pytest.mark.parametrize("seed", range(12))
def test_vus_and_range_auc_match_reference(seed):
    rng = np.random.default_rng(seed)
    labels, scores = random_fixture(rng)
    max_window = int(rng.integers(0, 40))
    tpr, fpr, precision, _, vus_roc, vus_pr = reference.metricor().RangeAUC_volume_opt(labels, scores, max_window, 250)
    assert vus(labels, scores, max_window) == pytest.approx((vus_roc, vus_pr), abs=1e-12)
    for window in range(max_window + 1):
        roc = np.dot(np.diff(fpr[window]), (tpr[window][1:] + tpr[window][:-1]) / 2)
        pr = np.dot(tpr[window][1:-1] - tpr[window][:-2], precision[window][1:])
        assert range_auc(labels, scores, window) == pytest.approx((roc, pr), abs=1e-12)
