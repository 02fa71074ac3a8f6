"""The collaborative PointPillars detector CoDiff builds on, as an mmengine ``BaseModel``: pillars per agent, a
multi-scale BEV backbone, neighbours warped to the ego frame and fused by attention per scale (CoAlign's
``point_pillar_baseline_multiscale``), anchor heads, focal + smooth-L1 + direction losses, rotated BEV NMS.

``fusion`` selects the collaboration: ``"none"`` (the ego's own LiDAR only), ``"late"`` (every agent detects in its
own frame with the single-agent weights; boxes moved to the ego with the shared poses and merged by NMS) or
``"attention"`` (intermediate fusion).

Inputs (built by `datasets.collate`): ``voxels`` (V, P, 4), ``coords`` (V, 3) = (map, row, col), ``counts`` (V,),
``agents`` (agent maps per sample, ego first), ``to_ego`` (maps, 4, 4) from the shared (noisy) poses and
``gt_boxes`` (a list of (M, 7)). Points are levelled to the ego's sensor height by the dataset, so only the planar
part of a pose moves maps and boxes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import Tensor

from .anchors import AnchorSettings, apply_direction, assign_targets, decode_boxes, direction_targets, make_anchors
from .boxes import in_range, rotated_nms
from .networks import AttentionFusion, BEVBackbone, DetectionHead, warp_to_ego
from .pillars import PillarFeatureNet, PillarGrid, scatter_to_bev

__all__ = ["CooperativeDetector", "detection_loss"]

FUSIONS = ("none", "late", "attention")


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise focal loss (Lin et al. 2017, Eq. 5) on sigmoid logits."""
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_t * (1 - p_t) ** gamma * ce


def _sin_difference(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """SECOND's sin-difference yaw coding: sin(a - b) = sin a cos b - cos a sin b, split over the two tensors."""
    pred_yaw, target_yaw = pred[..., 6:7], target[..., 6:7]
    pred = torch.cat([pred[..., :6], torch.sin(pred_yaw) * torch.cos(target_yaw)], dim=-1)
    target = torch.cat([target[..., :6], torch.cos(pred_yaw) * torch.sin(target_yaw)], dim=-1)
    return pred, target


def detection_loss(
    cls: Tensor,
    reg: Tensor,
    direction: Tensor,
    anchors: Tensor,
    gt_boxes: list[Tensor],
    settings: AnchorSettings,
    weights: dict[str, float],
) -> dict[str, Tensor]:
    """OpenCOOD/CoAlign PointPillar loss over a batch: focal classification on positives and negatives, smooth-L1
    (sigma 3) on sin-coded residuals of positives, direction cross-entropy on positives; each normalised by the
    number of positives."""
    labels, targets, yaws = zip(*(assign_targets(anchors, gt, settings) for gt in gt_boxes))
    labels, targets, yaws = torch.stack(labels), torch.stack(targets), torch.stack(yaws)
    positive = labels == 1
    cared = (labels >= 0).to(cls.dtype)
    num_pos = positive.sum().clamp(min=1).to(cls.dtype)
    cls_loss = (sigmoid_focal_loss(cls, positive.to(cls.dtype)) * cared).sum() / num_pos
    sigma2 = 9.0
    pred_s, target_s = _sin_difference(reg[positive], targets[positive].to(reg.dtype))
    diff = (pred_s - target_s).abs()
    smooth = torch.where(diff < 1 / sigma2, 0.5 * sigma2 * diff**2, diff - 0.5 / sigma2)
    reg_loss = smooth.sum() / num_pos
    dir_target = direction_targets(yaws[positive], settings)
    dir_loss = F.cross_entropy(direction[positive], dir_target, reduction="sum") / num_pos
    return {
        "loss_cls": weights.get("cls", 1.0) * cls_loss,
        "loss_reg": weights.get("reg", 2.0) * reg_loss,
        "loss_dir": weights.get("dir", 0.2) * dir_loss,
    }


def planar_boxes_to_ego(boxes: Tensor, to_ego: Tensor) -> Tensor:
    """Move boxes (N, 7) with the planar part of a 4x4 transform (z is levelled already)."""
    rotation = to_ego[:2, :2].to(boxes.dtype)
    out = boxes.clone()
    out[:, :2] = boxes[:, :2] @ rotation.T + to_ego[:2, 3].to(boxes.dtype)
    out[:, 6] = boxes[:, 6] + torch.atan2(to_ego[1, 0], to_ego[0, 0]).to(boxes.dtype)
    return out


@MODELS.register_module()
class CooperativeDetector(BaseModel):
    """PointPillars with no, late or attention fusion (see the module docstring).

    Args:
        point_cloud_range, voxel_size: the pillar grid (OPV2V: (-140.8, -40, -3, 140.8, 40, 1), (0.4, 0.4, 4)).
        max_points: points kept per pillar (32). pillar_channels: PillarVFE width (64).
        backbone: `BEVBackbone` kwargs. anchors: `AnchorSettings` kwargs. fusion: "none" | "late" | "attention".
        loss_weights: {"cls", "reg", "dir"}. score_threshold, nms_threshold, max_detections: post-processing
        (OpenCOOD: 0.2, 0.15).
    """

    def __init__(
        self,
        point_cloud_range=(-140.8, -40.0, -3.0, 140.8, 40.0, 1.0),
        voxel_size=(0.4, 0.4, 4.0),
        max_points: int = 32,
        pillar_channels: int = 64,
        backbone: dict | None = None,
        anchors: dict | None = None,
        fusion: str = "attention",
        loss_weights: dict | None = None,
        score_threshold: float = 0.2,
        nms_threshold: float = 0.15,
        max_detections: int = 100,
        data_preprocessor: dict | None = None,
    ):
        super().__init__(data_preprocessor=data_preprocessor)
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        self.grid = PillarGrid(tuple(point_cloud_range), tuple(voxel_size))
        self.max_points = max_points
        self.fusion = fusion
        self.pillar_net = PillarFeatureNet(self.grid, pillar_channels)
        self.backbone = BEVBackbone(in_channels=pillar_channels, **(backbone or {}))
        self.fuse = AttentionFusion()
        self.anchor_settings = AnchorSettings(**{k: tuple(v) if k == "yaws" else v for k, v in (anchors or {}).items()})
        self.head = DetectionHead(
            self.backbone.out_channels, self.anchor_settings.per_cell, self.anchor_settings.dir_bins
        )
        ny, nx = self.grid.shape
        stride = self.backbone.stride
        self.register_buffer(
            "anchors", make_anchors(point_cloud_range, (ny // stride, nx // stride), self.anchor_settings), False
        )
        self.loss_weights = dict(loss_weights or {})
        self.score_threshold, self.nms_threshold, self.max_detections = score_threshold, nms_threshold, max_detections

    # ------------------------------------------------------------------ features
    def pillar_maps(self, inputs: dict[str, Any], maps: list[int] | None = None) -> Tensor:
        """Pillar BEV maps (N, C, ny, nx) of all agent maps of the batch (or only those listed in ``maps``)."""
        coords, voxels, counts = inputs["coords"], inputs["voxels"], inputs["counts"]
        total = int(sum(inputs["agents"]))
        if maps is not None:
            index = torch.full((total,), -1, dtype=torch.long, device=coords.device)
            index[torch.as_tensor(maps, device=coords.device)] = torch.arange(len(maps), device=coords.device)
            new = index[coords[:, 0]]
            keep = new >= 0
            coords = torch.cat([new[keep, None], coords[keep, 1:]], dim=1)
            voxels, counts, total = voxels[keep], counts[keep], len(maps)
        features = self.pillar_net(voxels, coords, counts)
        return scatter_to_bev(features, coords, total, self.grid.shape)

    def _ego_maps(self, inputs: dict[str, Any]) -> list[int]:
        starts = np.cumsum([0, *inputs["agents"]])[:-1]
        return [int(s) for s in starts]

    def fused_features(self, inputs: dict[str, Any], to_ego: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(B, C, H, W) fused BEV features at the head's resolution, and the pillar maps they came from (for
        CoDiff's conditions; None without fusion). ``to_ego`` defaults to the shared (noisy) poses."""
        if self.fusion != "attention":
            pillars = self.pillar_maps(inputs, self._ego_maps(inputs))
            return self.backbone.merge(self.backbone(pillars)), None
        pillars, scales = self.agent_features(inputs)
        return self.fuse_scales(scales, inputs, inputs["to_ego"] if to_ego is None else to_ego), pillars

    def agent_features(self, inputs: dict[str, Any]) -> tuple[Tensor, list[Tensor]]:
        """Every agent's pillar map and its backbone scales, each in the agent's own frame."""
        pillars = self.pillar_maps(inputs)
        return pillars, self.backbone(pillars)

    def fuse_scales(self, scales: list[Tensor], inputs: dict[str, Any], to_ego: Tensor) -> Tensor:
        """Warp every agent's map of every scale to its ego and fuse by attention, then merge the scales."""
        fused_scales = []
        for level in scales:
            per_sample, start = [], 0
            for count in inputs["agents"]:
                maps = level[start : start + count]
                if count > 1:
                    warped = warp_to_ego(maps[1:], to_ego[start + 1 : start + count], self.grid.point_cloud_range)
                    maps = torch.cat([maps[:1], warped], dim=0)
                per_sample.append(self.fuse(maps))
                start += count
            fused_scales.append(torch.stack(per_sample))
        return self.backbone.merge(fused_scales)

    # ------------------------------------------------------------------ heads
    def loss_from_features(self, features: Tensor, gt_boxes: list[Tensor]) -> dict[str, Tensor]:
        cls, reg, direction = self.head(features)
        return detection_loss(cls, reg, direction, self.anchors, gt_boxes, self.anchor_settings, self.loss_weights)

    def decode(self, features: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Boxes and scores per map after the score threshold, direction correction and rotated NMS."""
        cls, reg, direction = self.head(features)
        results = []
        for logits, deltas, dirs in zip(cls, reg, direction):
            scores = logits.sigmoid().flatten()
            keep = scores > self.score_threshold
            anchors = self.anchors.reshape(-1, 7)[keep]
            boxes = decode_boxes(deltas.reshape(-1, 7)[keep].float(), anchors)
            boxes = apply_direction(boxes, dirs.reshape(-1, dirs.shape[-1])[keep].argmax(-1), self.anchor_settings)
            results.append(self._in_range(*self._nms(boxes, scores[keep].float())))
        return results

    def _nms(self, boxes: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        """Rotated BEV NMS at ``nms_threshold``, then the ``max_detections`` best."""
        if not len(scores):
            return boxes, scores
        kept = rotated_nms(boxes.detach().cpu().numpy(), scores.detach().cpu().numpy(), self.nms_threshold)
        kept = torch.as_tensor(np.asarray(kept, dtype=np.int64), device=boxes.device)[: self.max_detections]
        return boxes[kept], scores[kept]

    def _in_range(self, boxes: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
        """Drop boxes whose centre lies outside the point-cloud range (OpenCOOD's post-processing drops predictions
        outside the evaluation range; the centre test is the rule the ground truth is cut with)."""
        keep = torch.as_tensor(in_range(boxes.detach().cpu().numpy(), self.grid.point_cloud_range))
        return boxes[keep.to(boxes.device)], scores[keep.to(scores.device)]

    def late_fusion(self, inputs: dict[str, Any]) -> list[tuple[Tensor, Tensor]]:
        """Every agent detects with the single-agent network; boxes moved to the ego by the shared poses, merged by
        rotated NMS (OpenCOOD's late fusion)."""
        pillars = self.pillar_maps(inputs)
        per_map = self.decode(self.backbone.merge(self.backbone(pillars)))
        results, start = [], 0
        for count in inputs["agents"]:
            boxes = [
                planar_boxes_to_ego(b, inputs["to_ego"][start + i])
                for i, (b, _) in enumerate(per_map[start : start + count])
            ]
            scores = [s for _, s in per_map[start : start + count]]
            results.append(self._nms(*self._in_range(torch.cat(boxes), torch.cat(scores))))
            start += count
        return results

    # ------------------------------------------------------------------ BaseModel
    def forward(self, inputs: dict[str, Any], data_samples: list[dict] | None = None, mode: str = "tensor"):
        if mode == "loss":
            features, _ = self.fused_features(inputs)
            return self.loss_from_features(features, inputs["gt_boxes"])
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            return self.fused_features(inputs)[0]
        raise ValueError(f"unknown mode {mode!r}")

    @torch.no_grad()
    def predict(self, inputs: dict[str, Any], data_samples: list[dict] | None = None) -> list[dict]:
        """Detections per sample, in the ego frame, with the sample's ground truth and metadata, as numpy."""
        if self.fusion == "late":
            detections = self.late_fusion(inputs)
        else:
            detections = self.decode(self.detection_features(inputs))
        outputs = []
        for index, (boxes, scores) in enumerate(detections):
            meta = dict(data_samples[index]) if data_samples else {}
            meta.update(
                boxes=boxes.cpu().numpy().astype(np.float32),
                scores=scores.cpu().numpy().astype(np.float32),
                gt_boxes=inputs["gt_boxes"][index].cpu().numpy().astype(np.float32),
            )
            outputs.append(meta)
        return outputs

    def detection_features(self, inputs: dict[str, Any]) -> Tensor:
        """The map the heads read at inference (CoDiff overrides this with its refinement)."""
        return self.fused_features(inputs)[0]
