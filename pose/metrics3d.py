"""3D pose metrics (numpy, millimetres or any consistent unit) and multi-hypothesis aggregation.

- ``mpjpe``: Protocol #1, mean Euclidean joint error (poses root-relative beforehand).
- ``p_mpjpe``: Protocol #2, the error after the optimal similarity transform (scale, rotation without reflection,
  translation) of each predicted frame onto the ground truth (orthogonal Procrustes, Schoenemann 1966).
- ``n_mpjpe``: after the optimal per-frame scale only; ``mpjve``: mean error of the frame-to-frame velocities.
- ``pck3d`` / ``auc``: MPI-INF-3DHP's scorer (``mpii_compute_3d_pck.m``): a joint is correct when its error is
  strictly below the threshold (150 mm); AUC = mean PCK over thresholds 0:5:150 mm; on the 14 evaluation joints.
- Aggregating H hypotheses (D3DP, Shan et al. ICCV'23): J-Best (per joint and frame the nearest hypothesis, an
  oracle), P-Best (the hypothesis with the lowest mean error over the batch, an oracle), P-Agg (the mean pose), and
  J-Agg (per joint and frame the hypothesis whose reprojection is nearest to the input 2D keypoint).
- ``LiftingMPJPEMetric``: the mmengine twin for validation during training (P-Agg MPJPE and P-MPJPE in mm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

__all__ = [
    "LiftingMPJPEMetric",
    "MPI3DHP_EVAL_JOINTS",
    "MPI3DHP_GROUPS",
    "auc",
    "j_agg",
    "j_best",
    "mpjpe",
    "mpjve",
    "n_mpjpe",
    "p_agg",
    "p_best",
    "p_mpjpe",
    "pck3d",
    "procrustes_align",
    "project_to_2d",
]

# the 14 scored joints of the 17-joint 3DHP order (head_top, neck, R sho/elb/wri, L sho/elb/wri, R hip/knee/ank,
# L hip/knee/ank; pelvis, spine and head are not scored) and the scorer's joint groups
MPI3DHP_EVAL_JOINTS = tuple(range(14))
MPI3DHP_GROUPS = {
    "Head": (0,), "Neck": (1,), "Shou": (2, 5), "Elbow": (3, 6), "Wrist": (4, 7), "Hip": (8, 11), "Knee": (9, 12),
    "Ankle": (10, 13),
}  # fmt: skip
AUC_THRESHOLDS = np.arange(0, 151, 5)


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    return pred, gt


def joint_errors(pred, gt) -> np.ndarray:
    """(..., J) Euclidean errors of (..., J, D) poses."""
    pred, gt = _pair(pred, gt)
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred, gt) -> float:
    """Mean per-joint position error over all frames and joints."""
    return float(joint_errors(pred, gt).mean())


def procrustes_align(pred, gt) -> np.ndarray:
    """``pred`` (..., J, 3) moved by the similarity transform that best fits each frame to ``gt`` (no reflection)."""
    pred, gt = _pair(pred, gt)
    mu_p, mu_g = pred.mean(-2, keepdims=True), gt.mean(-2, keepdims=True)
    p0, g0 = pred - mu_p, gt - mu_g
    norm_p = np.linalg.norm(p0, axis=(-2, -1), keepdims=True)
    norm_g = np.linalg.norm(g0, axis=(-2, -1), keepdims=True)
    p0, g0 = p0 / np.maximum(norm_p, 1e-12), g0 / np.maximum(norm_g, 1e-12)
    u, s, vt = np.linalg.svd(np.swapaxes(g0, -1, -2) @ p0)  # H = G^T P
    v = np.swapaxes(vt, -1, -2)
    # a reflection (det < 0) is not a rotation: flip the weakest singular direction
    sign = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))
    sign = np.where(sign == 0, 1.0, sign)
    v[..., :, -1] *= sign[..., None]
    s[..., -1] *= sign
    rotation = v @ np.swapaxes(u, -1, -2)  # maps P's frame onto G's: p0 @ R
    scale = s.sum(-1)[..., None, None] * norm_g / np.maximum(norm_p, 1e-12)
    return scale * (pred - mu_p) @ rotation + mu_g


def p_mpjpe(pred, gt) -> float:
    """MPJPE after per-frame Procrustes alignment (Protocol #2)."""
    return mpjpe(procrustes_align(pred, gt), gt)


def n_mpjpe(pred, gt) -> float:
    """MPJPE after the per-frame scale s = <pred, gt> / <pred, pred> (Rhodin et al. 2018)."""
    pred, gt = _pair(pred, gt)
    scale = (pred * gt).sum((-2, -1), keepdims=True) / np.maximum((pred * pred).sum((-2, -1), keepdims=True), 1e-12)
    return mpjpe(scale * pred, gt)


def mpjve(pred, gt, axis: int = 0) -> float:
    """Mean per-joint velocity error: MPJPE of the first differences along the time ``axis``."""
    pred, gt = _pair(pred, gt)
    return mpjpe(np.diff(pred, axis=axis), np.diff(gt, axis=axis))


def pck3d(pred, gt, threshold: float = 150.0, joints=MPI3DHP_EVAL_JOINTS) -> float:
    """Percentage of the ``joints`` whose error is strictly below ``threshold``, x100."""
    errors = joint_errors(pred, gt)[..., list(joints)]
    return float(100 * (errors < threshold).mean())


def auc(pred, gt, joints=MPI3DHP_EVAL_JOINTS, thresholds=AUC_THRESHOLDS) -> float:
    """Area under the PCK curve: the mean PCK over ``thresholds`` (0, 5, ..., 150 mm), x100."""
    errors = joint_errors(pred, gt)[..., list(joints)]
    return float(100 * np.mean([(errors < t).mean() for t in thresholds]))


# --------------------------------------------------------------------------------------------- hypotheses
def j_best(hypotheses, gt) -> float:
    """Oracle: per joint and frame, the error of the nearest of the H hypotheses (axis 0)."""
    hypotheses = np.asarray(hypotheses, dtype=np.float64)
    return float(np.linalg.norm(hypotheses - np.asarray(gt)[None], axis=-1).min(0).mean())


def p_best(hypotheses, gt) -> float:
    """Oracle: the error of the one hypothesis with the lowest mean error over everything given."""
    hypotheses = np.asarray(hypotheses, dtype=np.float64)
    return float(min(mpjpe(h, gt) for h in hypotheses))


def p_agg(hypotheses) -> np.ndarray:
    """The mean pose of the H hypotheses (axis 0)."""
    return np.asarray(hypotheses, dtype=np.float64).mean(0)


def project_to_2d(points, intrinsics) -> np.ndarray:
    """Camera-space points (..., 3) to pixels with Human3.6M's 9 intrinsics [fx, fy, cx, cy, k1, k2, k3, p1, p2]:
    the normalised coordinates are clipped to [-1, 1], then radial (k) and tangential (p) distortion as
    VideoPose3D's ``project_to_2d`` applies them."""
    points = np.asarray(points, dtype=np.float64)
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    f, c, k, p = intrinsics[..., :2], intrinsics[..., 2:4], intrinsics[..., 4:7], intrinsics[..., 7:9]
    xy = np.clip(points[..., :2] / points[..., 2:3], -1, 1)
    r2 = (xy**2).sum(-1, keepdims=True)
    radial = 1 + (k * np.concatenate([r2, r2**2, r2**3], axis=-1)).sum(-1, keepdims=True)
    tangential = (p * xy).sum(-1, keepdims=True)
    return f * (xy * (radial + tangential) + p * r2) + c


def j_agg(hypotheses, keypoints_2d, root, intrinsics) -> np.ndarray:
    """Per joint and frame, the hypothesis whose reprojection (root-relative hypothesis + ``root`` trajectory,
    camera ``intrinsics``) lies nearest to the input 2D keypoint. ``hypotheses`` (H, ..., J, 3), ``keypoints_2d``
    (..., J, 2) in pixels, ``root`` (..., 1, 3) camera-space positions of the root."""
    hypotheses = np.asarray(hypotheses, dtype=np.float64)
    projected = project_to_2d(hypotheses + np.asarray(root)[None], intrinsics)
    distance = np.linalg.norm(projected - np.asarray(keypoints_2d)[None], axis=-1)  # (H, ..., J)
    best = distance.argmin(0)
    return np.take_along_axis(hypotheses, best[None, ..., None], axis=0)[0]


@METRICS.register_module()
class LiftingMPJPEMetric(BaseMetric):
    """MPJPE and P-MPJPE (mm) of the mean of the hypotheses (P-Agg), for mmengine's validation loop: keys
    ``lifting/MPJPE`` (the headline; lower is better) and ``lifting/P-MPJPE``.

    Each batch holds ``pose_3d`` (B, F, J, 3) root-relative metres and optionally ``valid`` (B, F) (the frames to
    score, from ``LiftingClips(tiling=True)``); the samples are DDHPose's ``mode="predict"`` output (K, H, B, F, J,
    3), which mmengine hands over one denoising step at a time: the last step is scored. The mean is over frames
    (not per action, as the evaluation protocol's tables are).
    """

    default_prefix = "lifting"

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        final = torch.as_tensor(data_samples[-1]).float().cpu()  # (H, B, F, J, 3) or (B, F, J, 3)
        pred = (final.mean(0) if final.ndim == 5 else final).numpy().astype(np.float64)
        truth = torch.as_tensor(data_batch["pose_3d"]).double().numpy()
        valid = data_batch.get("valid")
        keep = np.ones(pred.shape[:2], bool) if valid is None else torch.as_tensor(valid).numpy() > 0
        pred, truth = 1000 * pred[keep], 1000 * truth[keep]  # (N, J, 3) mm
        if len(pred):
            aligned = procrustes_align(pred, truth)
            errors = np.linalg.norm(pred - truth, axis=-1).mean(-1), np.linalg.norm(aligned - truth, axis=-1).mean(-1)
            self.results.append(errors)

    def compute_metrics(self, results: list) -> dict[str, float]:
        if not results:
            return {"MPJPE": float("nan"), "P-MPJPE": float("nan")}
        return {
            "MPJPE": float(np.concatenate([r[0] for r in results]).mean()),
            "P-MPJPE": float(np.concatenate([r[1] for r in results]).mean()),
        }
