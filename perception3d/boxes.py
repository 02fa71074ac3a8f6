"""3D box geometry in the bird's-eye view: corners, rotated-polygon IoU, rotated NMS and range masks.

Conventions (shared by the whole ``perception3d`` domain):

- A box is ``[x, y, z, l, w, h, yaw]``: the centre of the box (z included), the length ``l`` along the heading, the
  width ``w`` across it, the height ``h``, and ``yaw`` in radians about +z (counter-clockwise seen from above), in the
  ego LiDAR frame. OpenCOOD stores the sizes in 'hwl' order internally; we always use 'lwh'.
- Corners follow OpenCOOD's ``box_utils.boxes_to_corners_3d``: corners 0-3 are the bottom face, 4-7 the top face in
  the same order, each face counter-clockwise seen from above starting at the front-right corner
  (+l/2, -w/2), (+l/2, +w/2), (-l/2, +w/2), (-l/2, -w/2) in the box frame. The front edge is corners 0-1, and the first
  4 corners' xy are the BEV polygon (``common_utils.convert_format``).
- IoU is OpenCOOD's BEV rotated-polygon IoU (``common_utils.compute_iou``: shapely intersection over union of those
  polygons), computed with shapely 2's vectorised functions on the candidate pairs whose axis-aligned envelopes
  overlap (found with a ``shapely.STRtree``), so that large M x K inputs cost what their overlapping pairs cost.
  IoU is computed in float64 (OpenCOOD returns float32); a pair whose union has zero area has IoU 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
import torch

__all__ = [
    "as_boxes",
    "bev_corners",
    "bev_iou",
    "box_corners",
    "boxes_to_bev_polygons",
    "in_range",
    "limit_period",
    "rotated_nms",
]

# unit corner template in the box frame, (l, w, h) signs / 2: bottom face then top face, counter-clockwise from above
_CORNER_SIGNS = np.array(
    [[1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, -1], [1, -1, 1], [1, 1, 1], [-1, 1, 1], [-1, -1, 1]],
    dtype=np.float64,
)


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def as_boxes(boxes: Any, name: str = "boxes") -> np.ndarray:
    """``boxes`` (numpy, torch or nested lists) as a float64 ``(M, 7)`` array; an empty input gives ``(0, 7)``.
    Anything but M rows of 7 finite numbers is a ``ValueError`` naming ``name``."""
    array = _numpy(boxes)
    if array.size == 0:
        return np.zeros((0, 7), dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 7:
        raise ValueError(f"{name} must be an (M, 7) array [x, y, z, l, w, h, yaw], got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return array


def limit_period(yaw: Any) -> np.ndarray:
    """Angles (radians, any shape) wrapped to (-pi, pi]: ``yaw - 2 pi ceil((yaw - pi) / (2 pi))``."""
    yaw = np.asarray(yaw, dtype=np.float64)
    return yaw - 2.0 * np.pi * np.ceil((yaw - np.pi) / (2.0 * np.pi))


def _rotate_xy(xy: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Rotate (M, K, 2) points counter-clockwise by (M,) angles (OpenCOOD ``common_utils.rotate_points_along_z``)."""
    cos, sin = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x, y = xy[..., 0], xy[..., 1]
    return np.stack([x * cos - y * sin, x * sin + y * cos], axis=-1)


def box_corners(boxes: Any) -> np.ndarray:
    """The 8 corners ``(M, 8, 3)`` of ``(M, 7)`` boxes in OpenCOOD's order (``box_utils.boxes_to_corners_3d``):
    0-3 the bottom face, 4-7 the top face, each counter-clockwise seen from above from the front-right corner."""
    b = as_boxes(boxes)
    local = b[:, None, 3:6] * (_CORNER_SIGNS[None] / 2.0)
    corners = np.empty_like(local)
    corners[..., :2] = _rotate_xy(local[..., :2], b[:, 6]) + b[:, None, :2]
    corners[..., 2] = local[..., 2] + b[:, None, 2]
    return corners


def bev_corners(boxes: Any) -> np.ndarray:
    """The bird's-eye-view rectangles ``(M, 4, 2)``: corners 0-3 of `box_corners`, xy only (counter-clockwise)."""
    b = as_boxes(boxes)
    local = b[:, None, 3:5] * (_CORNER_SIGNS[None, :4, :2] / 2.0)
    return _rotate_xy(local, b[:, 6]) + b[:, None, :2]


def boxes_to_bev_polygons(boxes: Any) -> np.ndarray:
    """The BEV rectangles as a ``(M,)`` object array of shapely Polygons (OpenCOOD ``convert_format``)."""
    return shapely.polygons(bev_corners(boxes))


def _pair_ious(polys_a: np.ndarray, polys_b: np.ndarray, index_a: np.ndarray, index_b: np.ndarray) -> np.ndarray:
    """IoU of the polygon pairs ``(polys_a[index_a[k]], polys_b[index_b[k]])``, vectorised over k."""
    if index_a.size == 0:
        return np.zeros(0, dtype=np.float64)
    pa, pb = polys_a[index_a], polys_b[index_b]
    inter = shapely.area(shapely.intersection(pa, pb))
    union = shapely.area(pa) + shapely.area(pb) - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return np.clip(iou, 0.0, 1.0)


def _envelope_pairs(polys_a: np.ndarray, polys_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (i, j) whose axis-aligned envelopes overlap (touching included), via an STRtree on ``polys_b``."""
    if polys_a.size == 0 or polys_b.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    pairs = shapely.STRtree(polys_b).query(polys_a)
    return pairs[0].astype(np.int64), pairs[1].astype(np.int64)


def bev_iou(boxes_a: Any, boxes_b: Any) -> np.ndarray:
    """BEV rotated-polygon IoU ``(M, K)`` float64 of ``(M, 7)`` and ``(K, 7)`` boxes (OpenCOOD
    ``common_utils.compute_iou`` over all pairs); only pairs with overlapping envelopes are intersected."""
    polys_a = boxes_to_bev_polygons(as_boxes(boxes_a, "boxes_a"))
    polys_b = boxes_to_bev_polygons(as_boxes(boxes_b, "boxes_b"))
    out = np.zeros((len(polys_a), len(polys_b)), dtype=np.float64)
    index_a, index_b = _envelope_pairs(polys_a, polys_b)
    out[index_a, index_b] = _pair_ious(polys_a, polys_b, index_a, index_b)
    return out


def rotated_nms(boxes: Any, scores: Any, threshold: float, top_k: int | None = None) -> np.ndarray:
    """Greedy rotated NMS (OpenCOOD ``box_utils.nms_rotated``): visit the boxes by descending score, keep a box
    unless a kept box has BEV IoU ``> threshold`` with it. Returns the kept indices (int64), highest score first.

    ``top_k`` keeps only the ``top_k`` highest-scoring boxes before suppression (OpenCOOD hard-codes 1000); the
    default keeps all. Equal scores keep their input order (stable sort)."""
    b = as_boxes(boxes)
    s = _numpy(scores).astype(np.float64).reshape(-1)
    if s.shape[0] != b.shape[0]:
        raise ValueError(f"{b.shape[0]} boxes but {s.shape[0]} scores")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf values")
    order = np.argsort(-s, kind="stable")
    if top_k is not None:
        order = order[: max(int(top_k), 0)]
    if order.size == 0:
        return np.zeros(0, dtype=np.int64)
    polys = boxes_to_bev_polygons(b[order])  # position k in this array is rank k
    rank_a, rank_b = _envelope_pairs(polys, polys)
    later = rank_b > rank_a  # a box is only suppressed by a higher-ranked one
    rank_a, rank_b = rank_a[later], rank_b[later]
    overlapping = _pair_ious(polys, polys, rank_a, rank_b) > threshold
    rank_a, rank_b = rank_a[overlapping], rank_b[overlapping]
    by_source = np.argsort(rank_a, kind="stable")
    rank_a, rank_b = rank_a[by_source], rank_b[by_source]
    starts = np.searchsorted(rank_a, np.arange(order.size + 1))
    suppressed = np.zeros(order.size, dtype=bool)
    kept = []
    for rank in range(order.size):
        if suppressed[rank]:
            continue
        kept.append(rank)
        suppressed[rank_b[starts[rank] : starts[rank + 1]]] = True
    return order[np.asarray(kept, dtype=np.int64)]


def in_range(boxes: Any, point_cloud_range: Any) -> np.ndarray:
    """``(M,)`` bool: the box centre lies inside the xy extent of ``point_cloud_range`` = [x_min, y_min, z_min,
    x_max, y_max, z_max] (bounds included; z is not tested)."""
    b = as_boxes(boxes)
    r = np.asarray(_numpy(point_cloud_range), dtype=np.float64).reshape(-1)
    if r.shape != (6,) or not np.isfinite(r).all() or not (r[:3] < r[3:]).all():
        raise ValueError(f"point_cloud_range must be [x_min, y_min, z_min, x_max, y_max, z_max], got {r.tolist()}")
    xy = b[:, :2]
    return np.all((xy >= r[:2]) & (xy <= r[3:5]), axis=1)
