"""Segmentation metrics on binary 2-D masks through MONAI, in millimetres, with an explicit empty-mask policy.

`segmentation_metrics` computes, for one predicted and one ground-truth mask with the pixel spacing (sy, sx):

- Dice and IoU (``monai.metrics.compute_dice`` / ``compute_iou``),
- HD95: the 95th percentile symmetric Hausdorff distance (``compute_hausdorff_distance(percentile=95)``),
- MSD: the symmetric mean surface distance, CAMUS's d_m (``compute_average_surface_distance(symmetric=True)``),

always with ``include_background=True`` (MONAI's distance metrics otherwise drop the only channel of a binary mask)
and the spacing passed explicitly. MONAI returns NaN or inf when a mask is empty, and its reductions then silently
drop those cases (an all-missed image would *improve* the mean HD95, MONAI #9095). This module never lets that
happen; the policy, applied before MONAI is called:

======================  =====  =====  =====================================
case                    Dice   IoU    HD95 and MSD
======================  =====  =====  =====================================
both masks empty        1      1      0
exactly one empty       0      0      the image diagonal in mm (worst case)
======================  =====  =====  =====================================

and every record carries ``empty_pred`` / ``empty_gt`` flags so the counts are reported. `pooled_dice` is
EchoNet-Dynamic's split-level Dice, sum(2|A n B|) / sum(|A| + |B|) (``echonet/utils/segmentation.py``), which
weights large masks more than the per-image mean.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS
from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance, compute_iou

__all__ = ["SegmentationMetric", "pooled_dice", "segmentation_metrics", "summarize"]

METRIC_NAMES = ("dice", "iou", "hd95", "msd")


def _binary(mask: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    array = np.asarray(mask.detach().cpu() if isinstance(mask, torch.Tensor) else mask)
    array = np.squeeze(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be one 2-D mask, got shape {array.shape}")
    return array > 0.5 if np.issubdtype(array.dtype, np.floating) else array > 0


def segmentation_metrics(
    pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, spacing: Sequence[float] = (1.0, 1.0)
) -> dict[str, float]:
    """Dice, IoU, HD95 and MSD (distances in the unit of ``spacing``, (sy, sx)) of one (H, W) mask pair."""
    p, g = _binary(pred, "pred"), _binary(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {p.shape} differs from ground truth {g.shape}")
    sy, sx = (float(s) for s in spacing)
    empty_pred, empty_gt = not p.any(), not g.any()
    record = {"empty_pred": float(empty_pred), "empty_gt": float(empty_gt)}
    if empty_pred and empty_gt:
        return {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "msd": 0.0, **record}
    if empty_pred or empty_gt:
        diagonal = math.hypot(p.shape[0] * sy, p.shape[1] * sx)
        return {"dice": 0.0, "iou": 0.0, "hd95": diagonal, "msd": diagonal, **record}
    yp = torch.from_numpy(p)[None, None].float()
    yg = torch.from_numpy(g)[None, None].float()
    with warnings.catch_warnings():
        # MONAI 1.5+ calls its own deprecated get_mask_edges(always_return_as_numpy=...) internally
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        hd95 = compute_hausdorff_distance(yp, yg, include_background=True, percentile=95, spacing=(sy, sx))
        msd = compute_average_surface_distance(yp, yg, include_background=True, symmetric=True, spacing=(sy, sx))
    return {
        "dice": float(compute_dice(yp, yg, include_background=True)),
        "iou": float(compute_iou(yp, yg, include_background=True)),
        "hd95": float(hd95),
        "msd": float(msd),
        **record,
    }


def pooled_dice(preds: Iterable[np.ndarray], gts: Iterable[np.ndarray]) -> float:
    """EchoNet's pooled Dice over a set of mask pairs: sum(2 |A n B|) / sum(|A| + |B|) (1 when all are empty)."""
    inter = total = 0
    for pred, gt in zip(preds, gts, strict=True):
        p, g = _binary(pred, "pred"), _binary(gt, "gt")
        inter += int(np.logical_and(p, g).sum())
        total += int(p.sum() + g.sum())
    return 2.0 * inter / total if total else 1.0


def summarize(records: Sequence[dict[str, float]], keys: Sequence[str] = METRIC_NAMES) -> dict[str, float]:
    """Mean and standard deviation of each metric over records, plus the counts of empty predictions / truths."""
    out: dict[str, float] = {"count": float(len(records))}
    for key in keys:
        values = np.array([r[key] for r in records], dtype=np.float64)
        out[key] = float(values.mean()) if len(values) else float("nan")
        out[f"{key}_std"] = float(values.std()) if len(values) else float("nan")
    out["empty_pred"] = float(sum(r.get("empty_pred", 0.0) for r in records))
    out["empty_gt"] = float(sum(r.get("empty_gt", 0.0) for r in records))
    return out


@METRICS.register_module()
class SegmentationMetric(BaseMetric):
    """mmengine twin of `segmentation_metrics`: each data sample is a dict with ``pred`` and ``gt`` (H, W) masks and
    optionally ``spacing`` (sy, sx); reports the per-image means of ``keys`` (any of `summarize`'s: dice, iou, hd95,
    msd, their ``_std``, count, empty_pred, empty_gt) and the pooled Dice, as ``seg/<key>`` (the validation
    curves plot every key reported)."""

    default_prefix = "seg"

    def __init__(self, keys: Sequence[str] = METRIC_NAMES, **kwargs):
        super().__init__(**kwargs)
        self.keys = tuple(keys)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            spacing = sample.get("spacing", (1.0, 1.0))
            record = segmentation_metrics(sample["pred"], sample["gt"], spacing)
            p, g = _binary(sample["pred"], "pred"), _binary(sample["gt"], "gt")
            record["inter"], record["total"] = float(np.logical_and(p, g).sum()), float(p.sum() + g.sum())
            self.results.append(record)

    def compute_metrics(self, results: list) -> dict[str, float]:
        summary = summarize(results)
        out = {key: summary[key] for key in self.keys}
        total = sum(r["total"] for r in results)
        out["pooled_dice"] = 2.0 * sum(r["inter"] for r in results) / total if total else 1.0
        return out
