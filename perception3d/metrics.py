"""Cooperative 3D detection AP as OpenCOOD computes it (``opencood/utils/eval_utils.py``), and its mmengine
``BaseMetric`` twin.

Conventions, each checked against OpenCOOD's ``caluclate_tp_fp``, ``calculate_ap`` and ``voc_ap``:

- IoU is the BEV rotated-polygon IoU of `diffusekit.perception3d.boxes.bev_iou` (OpenCOOD: shapely polygons of the
  first 4 corners), at the thresholds 0.3 / 0.5 / 0.7.
- Matching, per frame: detections are visited by descending score; each takes the not-yet-matched GT box with the
  highest IoU. It is a true positive when that IoU is ``>= threshold`` (OpenCOOD counts a false positive when
  ``max(ious) < iou_thresh``), otherwise a false positive; a matched GT box is removed, so duplicates of one object
  are false positives. The GT count of a frame is its number of GT boxes.
- AP is VOC-2010 all-point AP: recall = cumulative TP / total GT, precision = cumulative TP / detections so far, the
  precision envelope (running maximum from the right), summed over the recall changes, with the sentinels
  recall 0 and 1 / precision 0 that ``voc_ap`` adds.
- Sort order (``sort``): ``"frame"`` is OpenCOOD's default: the TP/FP lists are concatenated frame by frame, sorted
  by score only inside each frame, so a confident false positive in a late frame lowers precision less than it
  should. ``"global"`` sorts all detections by score before accumulating (OpenCOOD PR #105
  ``--global_sort_detections``; CoAlign always does this). The two differ a lot on real data (DAIR-V2X AP@0.5 of
  CoAlign: 0.598 frame vs 0.746 global, CoAlign issue #4), so every result states its mode.
- Empty cases: with GT but no detection at all, AP is 0 (OpenCOOD: empty recall list, AP 0). With no GT at all,
  recall is undefined: AP is NaN (OpenCOOD divides by zero, ZeroDivisionError, when there are detections; some
  forks return 0). A frame without GT makes all its detections false positives; a frame without detections only
  adds its GT count.
- Equal scores keep their order (stable sorts; OpenCOOD's ``np.argsort`` leaves ties in an unspecified order), and
  IoU is compared in float64 (OpenCOOD casts it to float32 first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from diffusekit.core.errors import DataError
from diffusekit.perception3d.boxes import as_boxes, bev_iou

__all__ = [
    "DEFAULT_THRESHOLDS",
    "SORT_MODES",
    "CooperativeDetectionMetric",
    "average_precision",
    "evaluate_detections",
    "format_table",
    "frame_tp_fp",
    "threshold_key",
    "voc_ap",
]

SortMode = Literal["frame", "global"]
SORT_MODES = ("frame", "global")
DEFAULT_THRESHOLDS = (0.3, 0.5, 0.7)
_SORT_NOTES = {
    "frame": "frame = sorted by score within each frame, accumulated frame by frame (OpenCOOD's default)",
    "global": "global = all detections sorted by score (OpenCOOD --global_sort_detections, CoAlign)",
}


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check_sort(sort: str) -> str:
    if sort not in SORT_MODES:
        raise ValueError(f"sort must be 'frame' or 'global', got {sort!r}")
    return sort


def _check_thresholds(thresholds: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(t) for t in thresholds)
    if not values:
        raise ValueError("at least one IoU threshold is needed")
    for t in values:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"IoU thresholds must lie in (0, 1], got {t}")
    keys = [threshold_key(t) for t in values]
    if len(set(keys)) != len(keys):
        raise ValueError(f"IoU thresholds {values} give duplicate result keys {keys}")
    return values


def threshold_key(threshold: float) -> str:
    """The result key of an IoU threshold: 0.5 -> ``"ap_50"`` (OpenCOOD's names, in percent)."""
    return f"ap_{round(float(threshold) * 100):02d}"


def voc_ap(recall: Any, precision: Any) -> float:
    """VOC-2010 all-point AP of a precision/recall curve (OpenCOOD ``eval_utils.voc_ap``): with sentinels
    recall [0, r..., 1] and precision [0, p..., 0], the precision envelope p_i <- max_{j >= i} p_j, then
    sum_i (r_i - r_{i-1}) p_i. An empty curve gives 0."""
    r = np.asarray(recall, dtype=np.float64).reshape(-1)
    p = np.asarray(precision, dtype=np.float64).reshape(-1)
    if r.shape != p.shape:
        raise ValueError(f"recall has {r.size} values but precision has {p.size}")
    mrec = np.concatenate([[0.0], r, [1.0]])
    mpre = np.concatenate([[0.0], p, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    return float(np.sum((mrec[1:] - mrec[:-1]) * mpre[1:]))


def _greedy_match(iou: np.ndarray, threshold: float) -> np.ndarray:
    """TP flags (N,) of score-sorted detections against GT given their IoU (N, M) (OpenCOOD ``caluclate_tp_fp``):
    each detection takes the highest-IoU unmatched GT; TP when that IoU >= threshold."""
    tp = np.zeros(iou.shape[0], dtype=bool)
    if iou.shape[1] == 0:
        return tp
    available = np.ones(iou.shape[1], dtype=bool)
    for d in np.flatnonzero(iou.max(axis=1) >= threshold):  # the others cannot match any GT
        candidates = np.where(available, iou[d], -1.0)
        g = int(np.argmax(candidates))  # first of equal IoUs, as OpenCOOD's argmax over the remaining list
        if candidates[g] >= threshold:
            tp[d] = True
            available[g] = False
            if not available.any():
                break
    return tp


def _frame_arrays(det_boxes: Any, det_scores: Any, gt_boxes: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = as_boxes(det_boxes, "detection boxes")
    gt = as_boxes(gt_boxes, "gt_boxes")
    scores = _numpy(det_scores).astype(np.float64).reshape(-1)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"{boxes.shape[0]} detection boxes but {scores.shape[0]} scores")
    if not np.isfinite(scores).all():
        raise ValueError("detection scores contain NaN or inf values")
    order = np.argsort(-scores, kind="stable")
    return boxes[order], scores[order], gt


def frame_tp_fp(
    det_boxes: Any, det_scores: Any, gt_boxes: Any, iou_threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One frame's matching (OpenCOOD ``eval_utils.caluclate_tp_fp``): ``(scores, tp, fp)``, the detection scores
    sorted in descending order and int64 0/1 flags in that order. The frame's GT count is ``len(gt_boxes)``."""
    threshold = _check_thresholds([iou_threshold])[0]
    boxes, scores, gt = _frame_arrays(det_boxes, det_scores, gt_boxes)
    tp = _greedy_match(bev_iou(boxes, gt), threshold)
    return scores, tp.astype(np.int64), (~tp).astype(np.int64)


def _frame_name(frame: Any, index: int) -> str:
    if isinstance(frame, Mapping) and "frame" in frame:
        return f"{frame['scenario']}/{frame['frame']}" if "scenario" in frame else str(frame["frame"])
    return f"frame {index}"


def _field(frame: Any, key: str) -> Any:
    if isinstance(frame, Mapping):
        if key not in frame:
            raise KeyError(key)
        return frame[key]
    return getattr(frame, key)


def _frame_record(frame: Any, thresholds: tuple[float, ...], index: int) -> dict[str, Any]:
    """The compact per-frame result kept for accumulation: sorted scores, TP flags per threshold, GT count."""
    name = _frame_name(frame, index)
    try:
        boxes, scores, gt = _frame_arrays(_field(frame, "boxes"), _field(frame, "scores"), _field(frame, "gt_boxes"))
    except (KeyError, AttributeError) as error:
        raise DataError(f"a detection frame needs 'boxes', 'scores' and 'gt_boxes'; {error} is missing", name) from None
    except ValueError as error:
        raise DataError(str(error), name) from error
    iou = bev_iou(boxes, gt)
    return {
        "scores": scores,
        "tp": {threshold_key(t): _greedy_match(iou, t) for t in thresholds},
        "gt": int(gt.shape[0]),
    }


def _ap_from_records(records: Sequence[dict[str, Any]], key: str, sort: str) -> float:
    num_gt = sum(r["gt"] for r in records)
    if num_gt == 0:
        return math.nan
    scores = np.concatenate([r["scores"] for r in records])
    tp = np.concatenate([r["tp"][key] for r in records])
    if sort == "global":
        tp = tp[np.argsort(-scores, kind="stable")]
    cum_tp = np.cumsum(tp)
    precision = cum_tp / np.arange(1, tp.size + 1)
    return voc_ap(cum_tp / num_gt, precision)


def _summarize(
    records: Sequence[dict[str, Any]], thresholds: tuple[float, ...], sort: str, both_sorts: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {threshold_key(t): _ap_from_records(records, threshold_key(t), sort) for t in thresholds}
    if both_sorts:
        other = SORT_MODES[1 - SORT_MODES.index(sort)]
        for t in thresholds:
            out[f"{threshold_key(t)}_{other}"] = _ap_from_records(records, threshold_key(t), other)
    out["sort"] = sort
    out["frames"] = len(records)
    out["detections"] = int(sum(r["scores"].size for r in records))
    out["gt"] = int(sum(r["gt"] for r in records))
    return out


def evaluate_detections(
    frames: Sequence[Any],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    sort: SortMode = "frame",
    both_sorts: bool = False,
) -> dict[str, Any]:
    """AP at each IoU threshold over ``frames`` (OpenCOOD ``eval_utils``), each a dict ``{"boxes": (N, 7),
    "scores": (N,), "gt_boxes": (M, 7)}`` (numpy or torch; ``"scenario"``/``"frame"`` name it in errors).

    Returns ``{"ap_30", "ap_50", "ap_70"}`` (one key per threshold, see `threshold_key`), ``"sort"`` (the mode
    used), the counts ``"frames"``, ``"detections"``, ``"gt"``, and with ``both_sorts`` the other mode's APs as
    ``"ap_50_global"`` (or ``"ap_50_frame"``). Bad input is a ``DataError`` naming the frame."""
    thresholds = _check_thresholds(thresholds)
    sort = _check_sort(sort)
    records = [_frame_record(frame, thresholds, i) for i, frame in enumerate(frames)]
    return _summarize(records, thresholds, sort, both_sorts)


def average_precision(frames: Sequence[Any], iou_threshold: float = 0.5, sort: SortMode = "frame") -> float:
    """AP at one IoU threshold over ``frames`` (see `evaluate_detections`); NaN when there is no GT at all."""
    result = evaluate_detections(frames, thresholds=(iou_threshold,), sort=sort)
    return result[threshold_key(iou_threshold)]


def format_table(results_by_method: Mapping[str, Mapping[str, Any]], digits: int = 3) -> str:
    """A markdown table of `evaluate_detections` results, one row per method and sort mode it holds (its own mode,
    and the other one when computed with ``both_sorts``), followed by a line defining the sort modes shown."""
    if not results_by_method:
        raise ValueError("no results to tabulate")
    keys: list[str] = []
    for result in results_by_method.values():
        for key in result:
            if key.startswith("ap_") and key[3:].isdigit() and key not in keys:
                keys.append(key)
    keys.sort()

    def cell(value: Any) -> str:
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"

    header = ["method", "sort", *(f"AP@{int(k[3:]) / 100:.2f}" for k in keys), "frames", "detections", "GT"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([" --- "] * 2 + [" ---: "] * (len(header) - 2)) + "|"]
    modes_shown: list[str] = []
    for method, result in results_by_method.items():
        own = _check_sort(str(result.get("sort", "frame")))
        for mode in SORT_MODES if own == "frame" else SORT_MODES[::-1]:
            suffix = "" if mode == own else f"_{mode}"
            if not any(f"{k}{suffix}" in result for k in keys):
                continue
            if mode not in modes_shown:
                modes_shown.append(mode)
            counts = [str(result.get(name, "")) for name in ("frames", "detections", "gt")]
            row = [method, mode, *(cell(result.get(f"{k}{suffix}")) for k in keys), *counts]
            lines.append("| " + " | ".join(row) + " |")
    notes = "; ".join(_SORT_NOTES[mode] for mode in SORT_MODES if mode in modes_shown)
    lines.append("")
    lines.append(f"BEV rotated IoU, VOC-2010 all-point AP. Sort: {notes}.")
    return "\n".join(lines)


@METRICS.register_module()
class CooperativeDetectionMetric(BaseMetric):
    """mmengine twin of `evaluate_detections`. Each data sample is a dict with ``boxes`` (N, 7), ``scores`` (N,)
    and ``gt_boxes`` (M, 7), numpy or torch (optionally ``scenario`` and ``frame`` to name it in errors).
    ``process`` keeps only the sorted scores, the TP flags per threshold and the GT count of each frame, so the
    state is small and gathers across ranks; ``compute_metrics`` returns `evaluate_detections`' dict (under the
    ``det/`` prefix)."""

    default_prefix = "det"

    def __init__(
        self,
        iou_thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
        sort: SortMode = "frame",
        both_sorts: bool = False,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.iou_thresholds = _check_thresholds(iou_thresholds)
        self.sort = _check_sort(sort)
        self.both_sorts = bool(both_sorts)

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        for sample in data_samples:
            self.results.append(_frame_record(sample, self.iou_thresholds, len(self.results)))

    def compute_metrics(self, results: list) -> dict[str, Any]:
        return _summarize(results, self.iou_thresholds, self.sort, self.both_sorts)
