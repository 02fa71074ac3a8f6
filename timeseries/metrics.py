"""Time-series anomaly-detection metrics: functional (numpy in, float out) and their mmengine ``BaseMetric`` twin.

Conventions shared by every function here:

- ``labels`` and ``pred`` are 1-D binary arrays (0/1 or bool; lists and torch tensors are accepted); ``scores`` are
  1-D real arrays where higher means more anomalous; a *segment* is a maximal run of 1s in ``labels``.
- Bad input raises ``ValueError`` with the reason: different lengths, non-binary labels, NaN scores, empty arrays.
- P/R/F1 with nothing to divide are 0 (sklearn's ``zero_division=0``).
- Thresholded predictions are ``scores >= threshold``.
- Cost: O(n) for prediction metrics, O(n log n) for threshold searches (exact, every distinct score), so they run
  on a whole SMD test set (~700k points) in well under a second.

Range-AUC and VUS live in :mod:`diffusekit.timeseries.range_metrics` and are re-exported here: ``range_auc*`` is the
stand-alone Range-AUC of published tables (``vus`` ``get_metrics(metric="range_auc")``), ``vus_window_auc*`` the
per-window term that VUS averages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from diffusekit.timeseries.data import Segment
from diffusekit.timeseries.range_metrics import (
    RocPr,
    as_binary,
    as_scores,
    check_same_length,
    label_segments,
    range_auc,
    range_auc_pr,
    range_auc_roc,
    to_numpy,
    vus,
    vus_pr,
    vus_roc,
    vus_window_auc,
    vus_window_auc_pr,
    vus_window_auc_roc,
)

__all__ = [
    "AnomalyDetectionMetric",
    "BestF1",
    "PRF",
    "RocPr",
    "average_detection_delay",
    "best_f1",
    "f1_point",
    "f1_point_adjusted",
    "hit_rate_at_p",
    "pa_k_auc",
    "pa_k_curve",
    "point_adjust",
    "precision_recall_f1",
    "range_auc",
    "range_auc_pr",
    "range_auc_roc",
    "vus",
    "vus_pr",
    "vus_roc",
    "vus_window_auc",
    "vus_window_auc_pr",
    "vus_window_auc_roc",
]

DEFAULT_KS = tuple(range(0, 101, 10))  # PA%K grid of Kim et al. (2022), K in percent


class PRF(NamedTuple):
    precision: float
    recall: float
    f1: float


class BestF1(NamedTuple):
    """The best F1 over thresholds; predictions are ``scores >= threshold``."""

    f1: float
    precision: float
    recall: float
    threshold: float


def _labels_and_pred(labels: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    labels, pred = as_binary(labels, "labels"), as_binary(pred, "pred")
    check_same_length(labels, pred, "labels and pred")
    return labels, pred


def _check_k(k: Any) -> float:
    k = float(k)
    if not 0.0 <= k <= 100.0:
        raise ValueError(f"PA%K percentage k must lie in [0, 100], got {k}")
    return k


def _needed_hits(lengths: np.ndarray, k: float) -> np.ndarray:
    """PA%K: a segment of length m is adjusted iff hits > k/100 * m, i.e. hits >= floor(k * m / 100) + 1."""
    return np.floor(k * lengths / 100.0).astype(np.int64) + 1


def precision_recall_f1(labels: Any, pred: Any) -> PRF:
    """Point-wise precision, recall and F1 of binary predictions."""
    labels, pred = _labels_and_pred(labels, pred)
    tp = int(np.count_nonzero(labels & pred))
    n_pred, n_pos = int(pred.sum()), int(labels.sum())
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_pos if n_pos else 0.0
    f1 = 2 * tp / (n_pred + n_pos) if n_pred + n_pos else 0.0
    return PRF(precision, recall, f1)


def f1_point(labels: Any, pred: Any) -> float:
    """Point-wise F1 (no adjustment)."""
    return precision_recall_f1(labels, pred).f1


def point_adjust(labels: Any, pred: Any, k: float = 0.0) -> np.ndarray:
    """Point adjustment: a segment with a detection becomes fully detected (Xu et al. 2018; OmniAnomaly
    ``adjust_predicts``). With ``k > 0`` this is PA%K (Kim et al., AAAI 2022): a segment is adjusted only if more
    than ``k`` percent of its points are predicted (``k=0``: classic PA; ``k=100``: never, predictions unchanged).
    Points outside segments are left as they are. Returns a new bool array."""
    labels, pred = _labels_and_pred(labels, pred)
    k = _check_k(k)
    starts, stops = label_segments(labels)
    lengths = stops - starts
    cumulative = np.concatenate(([0], np.cumsum(pred)))
    adjusted = cumulative[stops] - cumulative[starts] >= _needed_hits(lengths, k)
    out = pred.copy()
    out[labels] |= np.repeat(adjusted, lengths)
    return out


def f1_point_adjusted(labels: Any, pred: Any, k: float = 0.0) -> float:
    """PA-F1 (``k=0``) or F1 under PA%K: point-wise F1 of :func:`point_adjust`."""
    return f1_point(labels, point_adjust(labels, pred, k))


class _ThresholdSweep:
    """Exact F1 at every distinct score value as threshold, in O(n log n).

    Point adjustment only changes which anomalous points count as detected: a segment is adjusted at threshold t iff
    its ``m``-th largest score (``m = floor(k*len/100)+1``; the max for PA) is >= t. So each anomalous point behaves
    as if its score were ``max(score, key of its segment)`` and adjusted F1 is plain F1 on those effective scores;
    PA-F1 is not monotone in t, but every t is evaluated.
    """

    def __init__(self, labels: np.ndarray, scores: np.ndarray):
        self.positives = int(labels.sum())
        if self.positives == 0:
            raise ValueError("labels contain no anomalous point; F1 is undefined")
        self.thresholds = np.unique(scores)[::-1]
        normal = np.sort(scores[~labels])
        self.false_positives = normal.size - np.searchsorted(normal, self.thresholds, side="left")
        self.anomaly_scores = scores[labels]
        starts, stops = label_segments(labels)
        self.lengths = stops - starts
        segment_id = np.repeat(np.arange(self.lengths.size), self.lengths)
        self._descending_within = self.anomaly_scores[np.lexsort((-self.anomaly_scores, segment_id))]
        self._offsets = np.concatenate(([0], np.cumsum(self.lengths)[:-1]))

    def effective_scores(self, k: float | None) -> np.ndarray:
        if k is None:
            return self.anomaly_scores
        needed = _needed_hits(self.lengths, k)
        reachable = needed <= self.lengths
        key = np.full(self.lengths.size, -np.inf)
        key[reachable] = self._descending_within[self._offsets[reachable] + needed[reachable] - 1]
        return np.maximum(self.anomaly_scores, np.repeat(key, self.lengths))

    def best(self, k: float | None) -> BestF1:
        effective = np.sort(self.effective_scores(k))
        tp = effective.size - np.searchsorted(effective, self.thresholds, side="left")
        f1 = 2 * tp / (tp + self.false_positives + self.positives)
        j = int(np.argmax(f1))  # first maximum = highest threshold
        n_pred = tp[j] + self.false_positives[j]
        return BestF1(float(f1[j]), float(tp[j] / n_pred), float(tp[j] / self.positives), float(self.thresholds[j]))


def _labels_and_scores(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    labels, scores = as_binary(labels, "labels"), as_scores(scores, "scores")
    check_same_length(labels, scores)
    return labels, scores


def best_f1(labels: Any, scores: Any, *, adjust: bool = False, k: float = 0.0) -> BestF1:
    """Best F1 over all thresholds, an oracle on the test labels (OmniAnomaly ``bf_search``; TSB-AD Standard-F1).

    Searched thresholds: every distinct value of ``scores`` (predictions ``scores >= t``), so the result is the exact
    maximum, unlike fixed grids. ``adjust=True`` gives the best PA-F1 (Xu et al. 2018), or with ``k > 0`` the best
    F1 under PA%K (Kim et al. 2022). Ties go to the highest threshold. O(n log n).
    """
    labels, scores = _labels_and_scores(labels, scores)
    if k and not adjust:
        raise ValueError("best_f1: k (PA%K) only applies with adjust=True")
    return _ThresholdSweep(labels, scores).best(_check_k(k) if adjust else None)


def _check_ks(ks: Iterable[float]) -> np.ndarray:
    ks = np.asarray(list(ks), dtype=np.float64)
    if ks.ndim != 1 or ks.size == 0:
        raise ValueError("ks must be a non-empty 1-D sequence of percentages")
    for k in ks:
        _check_k(k)
    return ks


def pa_k_curve(
    labels: Any, scores_or_pred: Any, ks: Iterable[float] = DEFAULT_KS, *, threshold: float | None = None
) -> np.ndarray:
    """F1 under PA%K for each K in ``ks`` (percent; Kim et al., AAAI 2022). K=0 is PA-F1, K=100 is plain F1.

    The second argument is taken as predictions when it is bool or only 0/1 (and ``threshold`` is None); as scores
    thresholded at ``scores >= threshold`` when ``threshold`` is given; otherwise as scores with the best (oracle)
    threshold chosen separately for each K, as in ``best_f1(adjust=True, k=K)``.
    """
    ks = _check_ks(ks)
    values = to_numpy(scores_or_pred)
    binary = values.dtype == bool or (
        np.issubdtype(values.dtype, np.number) and values.size > 0 and bool(np.isin(values, (0, 1)).all())
    )
    if threshold is None and not binary:
        labels, scores = _labels_and_scores(labels, values)
        sweep = _ThresholdSweep(labels, scores)
        return np.array([sweep.best(k).f1 for k in ks])
    if threshold is not None:
        labels, scores = _labels_and_scores(labels, values)
        pred = scores >= threshold
    else:
        labels, pred = _labels_and_pred(labels, values)
    starts, stops = label_segments(labels)
    lengths = stops - starts
    cumulative = np.concatenate(([0], np.cumsum(pred)))
    hits = cumulative[stops] - cumulative[starts]
    adjusted = hits[None, :] >= _needed_hits(lengths[None, :], ks[:, None])  # (K, segments)
    tp = hits.sum() + (adjusted * (lengths - hits)).sum(axis=1)
    false_positives = np.count_nonzero(pred & ~labels)
    denominator = tp + false_positives + lengths.sum()
    return np.divide(2 * tp, denominator, out=np.zeros(ks.size), where=denominator > 0)


def pa_k_auc(
    labels: Any, scores_or_pred: Any, ks: Iterable[float] = DEFAULT_KS, *, threshold: float | None = None
) -> float:
    """Area under the PA%K F1 curve over K, normalised by the K range (so in [0, 1]; Kim et al. 2022).

    Trapezoid rule on ``ks`` (sorted, at least two values; default 0, 10, ..., 100); arguments as :func:`pa_k_curve`.
    """
    ks = _check_ks(ks)
    if ks.size < 2 or np.any(np.diff(ks) <= 0):
        raise ValueError("pa_k_auc needs at least two strictly increasing ks")
    f1 = pa_k_curve(labels, scores_or_pred, ks, threshold=threshold)
    return float(np.sum(np.diff(ks) * (f1[1:] + f1[:-1]) / 2.0) / (ks[-1] - ks[0]))


def average_detection_delay(labels: Any, pred: Any) -> float:
    """ADD (ImDiffusion ``compute_add``): mean over segments of the number of anomalous points before the first
    positive prediction inside the segment; a never-detected segment counts its full length. Use the final labels
    (after voting/thresholding), unadjusted. In time steps."""
    labels, pred = _labels_and_pred(labels, pred)
    starts, stops = label_segments(labels)
    if starts.size == 0:
        raise ValueError("labels contain no anomalous segment; ADD is undefined")
    positives = np.flatnonzero(pred)
    position = np.searchsorted(positives, starts, side="left")
    first = np.append(positives, labels.size)[position]
    delay = np.where(first < stops, first - starts, stops - starts)
    return float(delay.mean())


def hit_rate_at_p(
    interpretation: Sequence[Segment | tuple[int, int, Sequence[int]]],
    feature_scores: Any,
    p: float = 100,
    *,
    mask: Any = None,
) -> float:
    """HitRate@P% for anomaly interpretation (OmniAnomaly, KDD 2019; InterFusion ``get_hit_rate``).

    For each point t of each segment (``start <= t < end``) with ground-truth dims G, rank the dims by
    ``feature_scores[t]`` (higher = more anomalous; ties keep the lower dim first) and score
    ``|top-floor(P% * |G|) dims ∩ G| / |G|`` (floor as in InterFusion, capped at the number of dims); return the mean
    over points. ``mask`` (bool, length T) restricts to chosen points, e.g. the detected ones as OmniAnomaly does.
    Points at or beyond ``len(feature_scores)`` are ignored (ImDiffusion scores a prefix of the test set).
    """
    scores = to_numpy(feature_scores).astype(np.float64)
    if scores.ndim != 2:
        raise ValueError(f"feature_scores must be 2-D (time, dims), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("feature_scores contain NaN")
    length, n_dims = scores.shape
    if not p > 0:
        raise ValueError(f"p must be positive, got {p}")
    keep = None if mask is None else as_binary(mask, "mask")
    if keep is not None and keep.size != length:
        raise ValueError(f"mask must have length {length}, got {keep.size}")
    total, count = 0.0, 0
    for start, end, dims in interpretation:
        truth = np.zeros(n_dims, dtype=bool)
        dims = np.asarray(dims, dtype=np.int64)
        if dims.size == 0 or dims.min() < 0 or dims.max() >= n_dims:
            raise ValueError(f"segment {start}-{end}: dims {dims.tolist()} out of range for {n_dims} features")
        truth[dims] = True
        points = np.arange(max(start, 0), min(end, length))
        if keep is not None:
            points = points[keep[points]]
        if points.size == 0:
            continue
        top = min(int(np.floor(p * truth.sum() / 100.0)), n_dims)
        ranked = np.argsort(-scores[points], axis=1, kind="stable")[:, :top]
        total += float(truth[ranked].sum()) / truth.sum()
        count += points.size
    if count == 0:
        raise ValueError("no interpretation point to evaluate (empty segments, mask or feature_scores)")
    return total / count


@METRICS.register_module()
class AnomalyDetectionMetric(BaseMetric):
    """mmengine twin of the functional metrics: accumulates per-sample scores/labels, computes at the end.

    Each data sample (dict or data element) carries a contiguous chunk of per-point ``score`` and ``label`` (and
    optionally binary ``pred``) in time order; chunks are concatenated in evaluation order, or sorted by the
    ``index_key`` entry (the chunk's first time index) when it is set. Metrics, by name: ``best_f1``, ``best_f1_pa``,
    ``pa_k_auc``, ``range_auc_roc``, ``range_auc_pr`` (stand-alone, at ``range_window``), ``vus_window_auc_roc``,
    ``vus_window_auc_pr`` (the term inside VUS, at ``range_window``), ``vus_roc``, ``vus_pr`` (windows
    ``0..vus_max_window``) (scores); ``f1``, ``f1_pa``, ``add`` (need ``pred``). ``best_f1*`` also report
    ``_precision``, ``_recall`` and ``_threshold``.
    """

    default_prefix = "anomaly"
    SCORE_METRICS = (
        "best_f1",
        "best_f1_pa",
        "pa_k_auc",
        "range_auc_roc",
        "range_auc_pr",
        "vus_window_auc_roc",
        "vus_window_auc_pr",
        "vus_roc",
        "vus_pr",
    )
    PRED_METRICS = ("f1", "f1_pa", "add")
    AREAS = {"range_auc": range_auc, "vus_window_auc": vus_window_auc, "vus": vus}  # ROC and PR in one pass

    def __init__(
        self,
        metrics: Sequence[str] = ("best_f1", "best_f1_pa", "vus_pr", "vus_roc"),
        range_window: int = 100,
        vus_max_window: int = 100,
        pa_ks: Sequence[float] = DEFAULT_KS,
        score_key: str = "score",
        label_key: str = "label",
        pred_key: str = "pred",
        index_key: str | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = set(metrics) - set(self.SCORE_METRICS) - set(self.PRED_METRICS)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {self.SCORE_METRICS + self.PRED_METRICS}")
        self.metrics = tuple(metrics)
        self.range_window, self.vus_max_window, self.pa_ks = range_window, vus_max_window, tuple(pa_ks)
        self.score_key, self.label_key, self.pred_key, self.index_key = score_key, label_key, pred_key, index_key

    @staticmethod
    def _get(sample: Any, key: str) -> Any:
        return sample.get(key) if isinstance(sample, dict) else getattr(sample, key, None)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for sample in data_samples:
            entry = {key: self._get(sample, key) for key in (self.score_key, self.label_key, self.pred_key)}
            entry = {key: to_numpy(value).reshape(-1) for key, value in entry.items() if value is not None}
            if self.index_key is not None:
                entry["index"] = int(self._get(sample, self.index_key))
            self.results.append(entry)

    def compute_metrics(self, results: list) -> dict[str, float]:
        if self.index_key is not None:
            results = sorted(results, key=lambda entry: entry["index"])

        def gather(key: str) -> np.ndarray:
            if any(key not in entry for entry in results):
                raise ValueError(f"every data sample needs {key!r} for metrics {self.metrics}")
            return np.concatenate([entry[key] for entry in results])

        labels = gather(self.label_key)
        scores = gather(self.score_key) if set(self.metrics) & set(self.SCORE_METRICS) else None
        pred = gather(self.pred_key) if set(self.metrics) & set(self.PRED_METRICS) else None
        out: dict[str, float] = {}
        areas: dict[str, RocPr] = {}  # range-AUC / VUS give ROC and PR in one pass
        for name in self.metrics:
            family, _, kind = name.rpartition("_")
            if name in ("best_f1", "best_f1_pa"):
                result = best_f1(labels, scores, adjust=name == "best_f1_pa")
                out.update({name: result.f1, f"{name}_precision": result.precision})
                out.update({f"{name}_recall": result.recall, f"{name}_threshold": result.threshold})
            elif name == "pa_k_auc":
                out[name] = pa_k_auc(labels, scores, self.pa_ks)
            elif family in self.AREAS:
                if family not in areas:
                    window = self.vus_max_window if family == "vus" else self.range_window
                    areas[family] = self.AREAS[family](labels, scores, window)
                out[name] = getattr(areas[family], kind)
            elif name == "f1":
                out[name] = f1_point(labels, pred)
            elif name == "f1_pa":
                out[name] = f1_point_adjusted(labels, pred)
            else:
                out[name] = average_detection_delay(labels, pred)
        return out


@METRICS.register_module()
class ImputationMetric(BaseMetric):
    """Validation during training: the imputation error of the final diffusion sample on held-out normal windows
    (the tail of the training series, ``SeriesWindows(split="val")``), from ``ImDiffusion.val_step``'s per-window
    sums. Returns ``mse`` and ``mae`` over the observed points (keys ``imputation/mse``, ``imputation/mae``):
    lower is better, and an anomaly detector that imputes normal data well flags fewer of it."""

    default_prefix = "imputation"

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        self.results.extend((s["sq_error"], s["abs_error"], s["count"]) for s in data_samples)

    def compute_metrics(self, results: list) -> dict[str, float]:
        sq, ab, count = np.asarray(results, dtype=np.float64).sum(axis=0)
        return {"mse": float(sq / max(count, 1.0)), "mae": float(ab / max(count, 1.0))}
