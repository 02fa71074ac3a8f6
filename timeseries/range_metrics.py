"""Range-AUC and VUS (Paparrizos et al., "Volume Under the Surface", PVLDB 15(11), 2022), plus input checks.

Two range-AUC definitions exist in the reference code, and both are here under their own names:

- :func:`range_auc` / :func:`range_auc_roc` / :func:`range_auc_pr`: the **stand-alone** Range-AUC, what published
  R-AUC-ROC / R-AUC-PR columns mean: ``vus`` 0.0.6 ``metricor().RangeAUC(labels, score, window)``, which
  ``vus.metrics.get_metrics(score, labels, metric="range_auc", slidingWindow=window)`` reports;
- :func:`vus_window_auc` / :func:`vus_window_auc_roc` / :func:`vus_window_auc_pr`: the per-window term **inside** VUS
  (``RangeAUC_volume_opt``, the same code in TSB-AD ``TSB_AD/evaluation/basic_metrics.py`` and ``vus.utils.metrics``),
  so that ``vus_pr(l, s, L) == mean(vus_window_auc_pr(l, s, w) for w in 0..L)`` exactly.

Shared by both, for a window ``w`` (``h = w // 2``) and label segments ``[s, e]`` (inclusive):

- soft labels ``y_w``: 1 on the segments; ``sqrt(1 - d / w)`` at distance ``d = 1..h`` before ``s`` and after ``e``
  (clipped to the series); overlapping contributions are summed and capped at 1, and an anomalous point stays 1;
- 250 thresholds ``tau_k = sorted_desc(scores)[linspace(0, n - 1, 250).astype(int)]``, ``pred_k = scores >= tau_k``;
- ``TP_k = sum(y_w * pred_k)``; ``TPR_k = min(TP_k / P', 1) * (share of extended segments with a prediction)``;
  ``FPR_k = (#pred_k - TP_k) / (n - P')``; ``Precision_k = TP_k / #pred_k``;
- ROC area: trapezoid area of ``(0,0), (FPR_k, TPR_k)..., (1,1)`` in threshold order.

Where they differ (stand-alone first, then inside VUS):

- ``P'`` (``P`` = the anomalous points): ``P + S / 2`` with ``S`` the whole soft-label mass outside the segments (as
  the paper says), against ``P + S_k / 2`` with ``S_k`` only the soft-label mass *predicted* at threshold k;
- extended segments (for the share hit): runs of non-zero ``y_w``, i.e. widened ranges ``[s - h, e + h]`` merged when
  they overlap *or touch* (``e_i + h + 1 >= s_j - h``), against merged only when they overlap (``e_i + h >= s_j - h``);
- PR area: trapezoid ``sum_k (TPR_k - TPR_{k-1}) * (Precision_k + Precision_{k-1}) / 2`` from ``TPR_0 = 0``,
  ``Precision_0 = 1``, against the step sum ``sum_k (TPR_k - TPR_{k-1}) * Precision_k`` from ``TPR_0 = 0``.

At ``w`` = 0 or 1 (no soft border) the ROC areas agree and only the PR rule differs. TSB-AD ships a third variant
of the stand-alone method (``basic_metricor.RangeAUC``, read at commit 16e14dd) that neither package reports: its soft
border after a segment is one point shorter, ``P'`` counts only the predicted soft labels, its PR area is a step sum,
and its segment finder looks for jumps of exactly 1, which a soft border removes. TSB-AD's ``get_metrics`` reports
VUS, not that method.

Note that TSB-AD's ``get_metrics(..., slidingWindow=W)`` calls the volume with ``2 * W`` (windows 0..2W), while
``vus.metrics.get_metrics`` uses ``W``; pass ``max_window`` explicitly to match either.

Cost: one sort, O(n log n), then O(Z + A + T) per window (Z soft-label points, A points of the extended segments,
T = 250 thresholds): VUS over windows 0..100 on 700k points takes well under a second.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "RocPr",
    "as_binary",
    "as_scores",
    "check_same_length",
    "label_segments",
    "range_auc",
    "range_auc_pr",
    "range_auc_roc",
    "to_numpy",
    "vus",
    "vus_pr",
    "vus_roc",
    "vus_window_auc",
    "vus_window_auc_pr",
    "vus_window_auc_roc",
]

N_THRESHOLDS = 250  # TSB-AD / vus default ``thre``


class RocPr(NamedTuple):
    """A ROC-type and a PR-type area computed together."""

    roc: float
    pr: float


def to_numpy(x: Any) -> np.ndarray:
    """``np.asarray`` that also takes torch tensors (on any device)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _one_dimensional(x: Any, name: str) -> np.ndarray:
    """``x`` as a non-empty 1-D array; ValueError naming ``name`` otherwise."""
    arr = to_numpy(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    return arr


def as_binary(x: Any, name: str = "labels") -> np.ndarray:
    """A 1-D 0/1 (or bool) array as bool; ValueError naming ``name`` otherwise."""
    arr = _one_dimensional(x, name)
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.complexfloating)):
        raise ValueError(f"{name} must be numeric 0/1 or bool, got dtype {arr.dtype}")
    bad = np.flatnonzero((arr != 0) & (arr != 1))
    if bad.size:
        raise ValueError(f"{name} must be binary (0/1 or bool): {name}[{bad[0]}] = {arr[bad[0]]!r}")
    return arr != 0


def as_scores(x: Any, name: str = "scores") -> np.ndarray:
    """A 1-D real array as float64; ValueError on NaN, wrong rank or non-numeric input."""
    arr = _one_dimensional(x, name)
    if not (arr.dtype == bool or np.issubdtype(arr.dtype, np.number)) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    nan = np.flatnonzero(np.isnan(arr))
    if nan.size:
        raise ValueError(f"{name} contains {nan.size} NaN value(s), first at index {nan[0]}")
    return arr


def check_same_length(a: np.ndarray, b: np.ndarray, names: str = "labels and scores") -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{names} must have the same length, got {a.shape[0]} and {b.shape[0]}")


def label_segments(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts (inclusive) and stops (exclusive) of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate(([0], labels.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _check_window(window: Any, name: str) -> int:
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {window!r}")
    return int(window)


def _range_curves(
    labels: Any, scores: Any, windows: np.ndarray, n_thresholds: int, standalone: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """ROC and PR range areas for each window in ``windows``: the stand-alone definition when ``standalone``, else
    the one inside VUS (see the module docstring)."""
    labels = as_binary(labels)
    scores = as_scores(scores)
    check_same_length(labels, scores)
    n = labels.size
    positives = int(labels.sum())
    if positives == 0 or positives == n:
        raise ValueError("range-AUC/VUS need at least one anomalous and one normal point in labels")
    if isinstance(n_thresholds, bool) or not isinstance(n_thresholds, (int, np.integer)) or n_thresholds < 1:
        raise ValueError(f"n_thresholds must be a positive integer, got {n_thresholds!r}")

    thresholds = np.sort(scores)[::-1][np.linspace(0, n - 1, n_thresholds).astype(int)]
    # first_flag[i]: index of the first threshold with scores[i] >= tau_k (n_thresholds: never flagged)
    first_flag = np.searchsorted(-thresholds, -scores, side="left")

    def flagged(idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        """Cumulative (weighted) count of the points ``idx`` flagged at each threshold."""
        return np.cumsum(np.bincount(first_flag[idx], weights=weights, minlength=n_thresholds + 1)[:n_thresholds])

    n_pred = flagged(np.arange(n)).astype(np.float64)
    tp_in_segments = flagged(np.flatnonzero(labels)).astype(np.float64)
    starts, stops = label_segments(labels)
    ends = stops - 1
    n_segments = starts.size
    padded_flag = np.append(first_flag, n_thresholds)  # sentinel for reduceat at index n

    roc = np.empty(len(windows))
    pr = np.empty(len(windows))
    for i, window in enumerate(windows):
        half = int(window) // 2
        soft_mass, soft_total = np.zeros(n_thresholds), 0.0
        if half > 0:
            distance = np.arange(1, half + 1)
            value = np.sqrt(1.0 - distance / window)
            position = np.concatenate([(starts[:, None] - distance).ravel(), (ends[:, None] + distance).ravel()])
            weight = np.tile(value, 2 * n_segments)
            keep = (position >= 0) & (position < n)
            position, weight = position[keep], weight[keep]
            keep = ~labels[position]  # a neighbour's anomaly keeps its label 1
            position, weight = position[keep], weight[keep]
            if position.size:
                unique_position, inverse = np.unique(position, return_inverse=True)
                summed = np.minimum(np.bincount(inverse, weights=weight), 1.0)
                soft_mass = flagged(unique_position, summed)
                soft_total = float(summed.sum())
        tp = tp_in_segments + soft_mass
        # P': the stand-alone method counts all soft labels, the volume only the predicted ones
        positives_new = positives + (soft_total if standalone else soft_mass) / 2.0

        # extended segments: the stand-alone method merges widened ranges that touch, the volume only overlapping ones
        gap = ends[:-1] + half + (1 if standalone else 0) < starts[1:] - half
        new_group = np.concatenate(([True], gap))
        group_first = np.flatnonzero(new_group)
        group_last = np.append(group_first[1:] - 1, n_segments - 1)
        lo = np.maximum(starts[group_first] - half, 0)
        hi = np.minimum(ends[group_last] + half, n - 1) + 1
        first_hit = np.minimum.reduceat(padded_flag, np.column_stack([lo, hi]).ravel())[::2]
        existence = np.cumsum(np.bincount(first_hit, minlength=n_thresholds + 1)[:n_thresholds]) / group_first.size

        tpr = np.minimum(tp / positives_new, 1.0) * existence
        fpr = (n_pred - tp) / (n - positives_new)
        precision = tp / n_pred
        tpr_curve = np.concatenate(([0.0], tpr, [1.0]))
        fpr_curve = np.concatenate(([0.0], fpr, [1.0]))
        roc[i] = np.sum(np.diff(fpr_curve) * (tpr_curve[1:] + tpr_curve[:-1]) / 2.0)
        if standalone:  # trapezoid from (TPR, precision) = (0, 1)
            precision_curve = np.concatenate(([1.0], precision))
            pr[i] = np.sum(np.diff(tpr_curve[:-1]) * (precision_curve[1:] + precision_curve[:-1]) / 2.0)
        else:
            pr[i] = np.sum(np.diff(tpr_curve[:-1]) * precision)
    return roc, pr


def range_auc(labels: Any, scores: Any, window: int = 100, *, n_thresholds: int = N_THRESHOLDS) -> RocPr:
    """The stand-alone R-AUC-ROC and R-AUC-PR with soft label borders of ``window // 2`` points per side
    (Paparrizos et al. 2022): ``vus.metrics.get_metrics(score, labels, metric="range_auc", slidingWindow=window)``,
    i.e. ``vus`` 0.0.6 ``metricor().RangeAUC``. The R-AUC columns of published tables (ImDiffusion's among them).

    For the per-window term inside VUS use :func:`vus_window_auc` (the module docstring lists the differences).
    ``window=0`` (or 1) uses the binary labels: the ROC area is then sklearn's AUC when there is one segment and
    ``n <= 250`` points (all thresholds), while the PR area is a trapezoid that starts at precision 1.
    """
    roc, pr = _range_curves(labels, scores, np.array([_check_window(window, "window")]), n_thresholds, True)
    return RocPr(float(roc[0]), float(pr[0]))


def range_auc_roc(labels: Any, scores: Any, window: int = 100, *, n_thresholds: int = N_THRESHOLDS) -> float:
    """Stand-alone R-AUC-ROC (see :func:`range_auc`)."""
    return range_auc(labels, scores, window, n_thresholds=n_thresholds).roc


def range_auc_pr(labels: Any, scores: Any, window: int = 100, *, n_thresholds: int = N_THRESHOLDS) -> float:
    """Stand-alone R-AUC-PR (see :func:`range_auc`); the R-AUC-PR column of ImDiffusion's tables."""
    return range_auc(labels, scores, window, n_thresholds=n_thresholds).pr


def vus_window_auc(labels: Any, scores: Any, window: int = 100, *, n_thresholds: int = N_THRESHOLDS) -> RocPr:
    """The range-AUC-ROC and -PR that VUS averages, at one ``window`` (``RangeAUC_volume_opt``'s per-window term):
    ``vus(l, s, L) == mean(vus_window_auc(l, s, w) for w in 0..L)``. Not the stand-alone :func:`range_auc`.

    ``window=0`` (or 1) uses the binary labels; it is not sklearn's AUC in general because TPR is multiplied by the
    share of segments hit and only 250 score quantiles are thresholds (with one segment and ``n <= 250`` points the
    ROC area is sklearn's AUC and the PR area its average precision).
    """
    roc, pr = _range_curves(labels, scores, np.array([_check_window(window, "window")]), n_thresholds)
    return RocPr(float(roc[0]), float(pr[0]))


def vus_window_auc_roc(labels: Any, scores: Any, window: int = 100, *, n_thresholds: int = N_THRESHOLDS) -> float:
    """The ROC area inside VUS at one window (see :func:`vus_window_auc`)."""
    return vus_window_auc(labels, scores, window, n_thresholds=n_thresholds).roc


def vus_window_auc_pr(labels: Any, scores: Any, window: int = 100, *, n_thresholds: int = N_THRESHOLDS) -> float:
    """The PR area inside VUS at one window (see :func:`vus_window_auc`)."""
    return vus_window_auc(labels, scores, window, n_thresholds=n_thresholds).pr


def vus(labels: Any, scores: Any, max_window: int = 100, *, n_thresholds: int = N_THRESHOLDS) -> RocPr:
    """VUS-ROC and VUS-PR: the mean of :func:`vus_window_auc` over windows ``0..max_window`` (Paparrizos et al.
    2022).

    ``max_window`` is explicit and deterministic (TSB-AD issues #38/#41): ``max_window=100`` matches
    ``vus.metrics.get_metrics(slidingWindow=100)``; TSB-AD's ``get_metrics(slidingWindow=100)`` is
    ``max_window=200``.
    """
    windows = np.arange(_check_window(max_window, "max_window") + 1)
    roc, pr = _range_curves(labels, scores, windows, n_thresholds)
    return RocPr(float(roc.mean()), float(pr.mean()))


def vus_roc(labels: Any, scores: Any, max_window: int = 100, *, n_thresholds: int = N_THRESHOLDS) -> float:
    """VUS-ROC (see :func:`vus`)."""
    return vus(labels, scores, max_window, n_thresholds=n_thresholds).roc


def vus_pr(labels: Any, scores: Any, max_window: int = 100, *, n_thresholds: int = N_THRESHOLDS) -> float:
    """VUS-PR (see :func:`vus`); TSB-AD's most reliable single measure."""
    return vus(labels, scores, max_window, n_thresholds=n_thresholds).pr
