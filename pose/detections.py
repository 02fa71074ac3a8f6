"""What MMPose does to top-down poses estimated in detected person boxes before poseval scores them.

MMPose's ``PoseTrack18Metric`` is its ``CocoMetric`` with ``score_mode='bbox_keypoint'``, ``keypoint_score_thr=0.2``,
``nms_mode='oks_nms'`` and ``nms_thr=0.9`` (``mmpose/evaluation/metrics/coco_metric.py``,
``posetrack18_metric.py``, ``mmpose/evaluation/functional/nms.py``), fed by a dataset that drops detections scored
below ``bbox_score_thr`` (0.4 in its PoseTrack18 configs) before any crop is made. Per frame:

1. **Rescoring**: a pose's score = its box score x the mean of its joint scores above ``keypoint_score_thr`` (0 when
   no joint is above it).
2. **OKS NMS**: poses in descending score order; each kept pose removes the remaining ones whose OKS with it is
   above ``nms_thr``. OKS uses the PoseTrack18 (= COCO) sigmas over all 17 joints and, as the area, the product of
   the crop's size in image pixels (the box grown to the crop's aspect ratio and padded, MMPose's ``bbox_scale``):
   ``OKS = mean_k exp(-d_k^2 / (2 sigma_k)^2 / ((area_a + area_b) / 2 + eps) / 2)``.
3. The kept poses are written in that order, track id = position (what ``PoseTrack18Metric.results2json`` writes).

Two identical detections of one person give the same pose twice (OKS 1) and leave one; two people side by side
have poses far apart (OKS near 0) and both stay.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diffusekit.pose.codec import box_to_center_size
from diffusekit.pose.posetrack import PosePerson

__all__ = [
    "KEYPOINT_SCORE_THR",
    "NMS_THR",
    "POSETRACK_SIGMAS",
    "crop_area",
    "oks",
    "oks_nms",
    "rescore",
    "suppress_duplicates",
]

# per-joint OKS sigmas of PoseTrack18 in KEYPOINTS order (MMPose configs/_base_/datasets/posetrack18.py; the COCO
# values with the eyes' 0.025 for head_bottom / head_top)
POSETRACK_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087,
     0.089, 0.089]
)  # fmt: skip
KEYPOINT_SCORE_THR = 0.2  # MMPose CocoMetric keypoint_score_thr
NMS_THR = 0.9  # MMPose CocoMetric nms_thr


def rescore(box_score: float, joint_scores: np.ndarray, threshold: float = KEYPOINT_SCORE_THR) -> float:
    """MMPose's ``bbox_keypoint`` score: ``box_score`` x the mean of the joint scores above ``threshold``
    (strictly), or 0 when none is above it."""
    joint_scores = np.asarray(joint_scores, dtype=np.float64)
    confident = joint_scores[joint_scores > threshold]
    return float(box_score * confident.mean()) if len(confident) else 0.0


def crop_area(box: Sequence[float], aspect: float, padding: float = 1.25) -> float:
    """The area (image pixels) of the crop made for ``box`` [x, y, w, h]: grown to the crop's aspect ratio (w / h),
    then by ``padding``, as MMPose's ``bbox_scale`` after ``TopdownAffine``."""
    _, size = box_to_center_size(box, aspect, padding)
    return float(size[0] * size[1])


def oks(
    keypoints: np.ndarray,
    others: np.ndarray,
    area: float,
    other_areas: np.ndarray,
    sigmas: np.ndarray = POSETRACK_SIGMAS,
) -> np.ndarray:
    """(N,) object keypoint similarity of one pose ``keypoints`` (K, 2) with each of ``others`` (N, K, 2), over all
    K joints; the scale is the mean of the two areas (MMPose ``oks_iou`` without a visibility threshold)."""
    others = np.asarray(others, dtype=np.float64).reshape(-1, *np.shape(keypoints))
    squared = ((others - np.asarray(keypoints, dtype=np.float64)[None]) ** 2).sum(-1)  # (N, K)
    scale = (area + np.asarray(other_areas, dtype=np.float64)) / 2 + np.spacing(1)  # (N,)
    error = squared / (2 * np.asarray(sigmas)) ** 2 / scale[:, None] / 2
    return np.exp(-error).mean(1)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float = NMS_THR,
    sigmas: np.ndarray = POSETRACK_SIGMAS,
) -> list[int]:
    """Indices of the poses ``keypoints`` (N, K, 2) that OKS NMS keeps, highest ``scores`` first: each kept pose
    removes the remaining ones whose OKS with it is above ``threshold`` (MMPose ``oks_nms``; of equal scores the
    later pose comes first, as MMPose's reversed ascending sort gives)."""
    keypoints = np.asarray(keypoints, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    order = np.argsort(np.asarray(scores, dtype=np.float64), kind="stable")[::-1]
    keep = []
    while len(order):
        first, rest = order[0], order[1:]
        keep.append(int(first))
        overlap = oks(keypoints[first], keypoints[rest], areas[first], areas[rest], sigmas)
        order = rest[overlap <= threshold]
    return keep


def suppress_duplicates(
    people: Sequence[PosePerson], areas: Sequence[float], threshold: float = NMS_THR
) -> list[PosePerson]:
    """One frame's people after OKS NMS on their ``score`` (the rescored one), in the order NMS keeps them, with
    track ids renumbered 0, 1, ... in that order."""
    if not people:
        return []
    keypoints = np.stack([person.keypoints[:, :2] for person in people])
    scores = np.array([0.0 if person.score is None else person.score for person in people])
    kept = [people[i] for i in oks_nms(keypoints, scores, np.asarray(areas, dtype=np.float64), threshold)]
    for track, person in enumerate(kept):
        person.track_id = track
    return kept
