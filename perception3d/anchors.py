"""Anchors, target assignment and box coding of the PointPillars head, as OpenCOOD's ``VoxelPostprocessor`` and
CoAlign's direction classifier define them (SECOND / PointPillars residual coding).

Boxes are (..., 7) = (x, y, z, l, w, h, yaw) (OpenCOOD stores 'hwl'; the coding is the same). Anchors sit at the
centres of the head's feature cells, two yaws (0 and 90 degrees) per cell, with a fixed size and height.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["AnchorSettings", "assign_targets", "decode_boxes", "direction_targets", "encode_boxes", "make_anchors"]


@dataclass(frozen=True)
class AnchorSettings:
    """Anchor size (OPV2V: l 3.9, w 1.6, h 1.56; DAIR-V2X: l 4.5, w 2.0), centre height, yaws in degrees, IoU
    thresholds for positives and negatives (0.6 / 0.45), direction bins and offset (CoAlign: 2 bins, pi/4)."""

    length: float = 3.9
    width: float = 1.6
    height: float = 1.56
    z: float = -1.0
    yaws: tuple[float, ...] = (0.0, 90.0)
    pos_threshold: float = 0.6
    neg_threshold: float = 0.45
    dir_bins: int = 2
    dir_offset: float = math.pi / 4

    @property
    def per_cell(self) -> int:
        return len(self.yaws)


def make_anchors(point_cloud_range, shape: tuple[int, int], settings: AnchorSettings) -> Tensor:
    """Anchors (H, W, A, 7) centred on the cells of an (H, W) map that covers ``point_cloud_range``."""
    x0, y0, _, x1, y1, _ = point_cloud_range
    height, width = shape
    xs = x0 + (torch.arange(width, dtype=torch.float64) + 0.5) * (x1 - x0) / width
    ys = y0 + (torch.arange(height, dtype=torch.float64) + 0.5) * (y1 - y0) / height
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    count = settings.per_cell
    anchors = torch.zeros(height, width, count, 7, dtype=torch.float64)
    anchors[..., 0], anchors[..., 1] = xx[..., None], yy[..., None]
    anchors[..., 2] = settings.z
    anchors[..., 3], anchors[..., 4], anchors[..., 5] = settings.length, settings.width, settings.height
    anchors[..., 6] = torch.deg2rad(torch.tensor(settings.yaws, dtype=torch.float64))
    return anchors.float()


def _standup(boxes: Tensor) -> Tensor:
    """Axis-aligned BEV bounds (N, 4) = (xmin, ymin, xmax, ymax) of rotated boxes, in closed form."""
    cos, sin = boxes[:, 6].cos().abs(), boxes[:, 6].sin().abs()
    half_x = (boxes[:, 3] * cos + boxes[:, 4] * sin) / 2
    half_y = (boxes[:, 3] * sin + boxes[:, 4] * cos) / 2
    return torch.stack([boxes[:, 0] - half_x, boxes[:, 1] - half_y, boxes[:, 0] + half_x, boxes[:, 1] + half_y], 1)


def standup_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU (N, M) of the axis-aligned BEV bounds of two box sets; OpenCOOD assigns targets with it (its Cython
    ``bbox_overlaps``), which is why it is not the rotated IoU used for evaluation."""
    sa, sb = _standup(a), _standup(b)
    lo = torch.maximum(sa[:, None, :2], sb[None, :, :2])
    hi = torch.minimum(sa[:, None, 2:], sb[None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    area_a = (sa[:, 2:] - sa[:, :2]).prod(-1)
    area_b = (sb[:, 2:] - sb[:, :2]).prod(-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-9)


def encode_boxes(boxes: Tensor, anchors: Tensor) -> Tensor:
    """Residuals of boxes against anchors (SECOND Eq. 1): centre offsets over the anchor diagonal (z over its height),
    log size ratios, yaw difference."""
    diagonal = torch.sqrt(anchors[..., 3] ** 2 + anchors[..., 4] ** 2)
    return torch.stack(
        [
            (boxes[..., 0] - anchors[..., 0]) / diagonal,
            (boxes[..., 1] - anchors[..., 1]) / diagonal,
            (boxes[..., 2] - anchors[..., 2]) / anchors[..., 5],
            torch.log(boxes[..., 3] / anchors[..., 3]),
            torch.log(boxes[..., 4] / anchors[..., 4]),
            torch.log(boxes[..., 5] / anchors[..., 5]),
            boxes[..., 6] - anchors[..., 6],
        ],
        dim=-1,
    )


def decode_boxes(deltas: Tensor, anchors: Tensor) -> Tensor:
    """Inverse of :func:`encode_boxes`."""
    diagonal = torch.sqrt(anchors[..., 3] ** 2 + anchors[..., 4] ** 2)
    return torch.stack(
        [
            deltas[..., 0] * diagonal + anchors[..., 0],
            deltas[..., 1] * diagonal + anchors[..., 1],
            deltas[..., 2] * anchors[..., 5] + anchors[..., 2],
            deltas[..., 3].exp() * anchors[..., 3],
            deltas[..., 4].exp() * anchors[..., 4],
            deltas[..., 5].exp() * anchors[..., 5],
            deltas[..., 6] + anchors[..., 6],
        ],
        dim=-1,
    )


def direction_targets(yaw: Tensor, settings: AnchorSettings) -> Tensor:
    """Direction bin of a yaw (CoAlign ``get_direction_target``): (yaw - offset) wrapped to [0, 2 pi), binned."""
    period = 2 * math.pi / settings.dir_bins
    shifted = torch.remainder(yaw - settings.dir_offset, 2 * math.pi)
    return torch.div(shifted, period, rounding_mode="floor").long().clamp(0, settings.dir_bins - 1)


def apply_direction(boxes: Tensor, bins: Tensor, settings: AnchorSettings) -> Tensor:
    """Resolve the 180-degree ambiguity of a decoded yaw with the predicted direction bin (CoAlign post-process)."""
    period = 2 * math.pi / settings.dir_bins
    base = torch.remainder(boxes[..., 6] - settings.dir_offset, period)
    boxes = boxes.clone()
    boxes[..., 6] = base + settings.dir_offset + period * bins.to(boxes.dtype)
    return boxes


def assign_targets(anchors: Tensor, gt_boxes: Tensor, settings: AnchorSettings) -> tuple[Tensor, Tensor, Tensor]:
    """Targets of one map (OpenCOOD ``generate_label``): anchors (..., 7) and ground truth (M, 7) ->
    (labels (...,) 1 positive / 0 negative / -1 ignored, box targets (..., 7), matched gt yaw (...,)).

    Positive: standup IoU > pos_threshold with some box, or the best anchor of a box (when that IoU > 0);
    negative: IoU < neg_threshold with every box."""
    shape = anchors.shape[:-1]
    flat = anchors.reshape(-1, 7)
    labels = torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
    targets = torch.zeros_like(flat)
    yaw = torch.zeros(flat.shape[0], dtype=flat.dtype, device=flat.device)
    if gt_boxes.numel() == 0:
        return labels.view(shape), targets.view(*shape, 7), yaw.view(shape)
    gt = gt_boxes.to(flat)
    iou = standup_iou(flat, gt)
    best_iou, best_gt = iou.max(dim=1)
    positive = best_iou > settings.pos_threshold
    best_anchor = iou.argmax(dim=0)
    has_overlap = iou[best_anchor, torch.arange(gt.shape[0], device=gt.device)] > 0
    positive[best_anchor[has_overlap]] = True
    best_gt[best_anchor[has_overlap]] = torch.arange(gt.shape[0], device=gt.device)[has_overlap]
    labels[(best_iou >= settings.neg_threshold) & ~positive] = -1
    labels[positive] = 1
    matched = gt[best_gt[positive]]
    targets[positive] = encode_boxes(matched, flat[positive])
    yaw[positive] = matched[:, 6]
    return labels.view(shape), targets.view(*shape, 7), yaw.view(shape)
