"""Validation during training: the ``val_step`` / ``test_step`` that mmengine's ``ValLoop`` calls on a medical model.

A model that mixes in `SegmentationValidation` and defines ``validation_probability(image)`` hands each validation
batch to ``metrics.SegmentationMetric`` as one ``{"pred", "gt"}`` pair of binary (H, W) masks per image, on the
network grid (distances in network pixels; `evaluation.evaluate_model` scores at native size in mm).
"""

from __future__ import annotations

import torch

__all__ = ["SegmentationValidation", "metric_samples"]


def metric_samples(probability: torch.Tensor, mask: torch.Tensor, threshold: float = 0.5) -> list[dict]:
    """One ``{"pred": bool (H, W), "gt": bool (H, W)}`` per image of (B, 1, H, W) probability and mask."""
    pred = (probability[:, 0] >= threshold).cpu()
    gt = (mask[:, 0] > 0.5).cpu()
    return [{"pred": p, "gt": g} for p, g in zip(pred, gt, strict=True)]


class SegmentationValidation:
    """Mixin for an mmengine ``BaseModel`` (put it first among the bases)."""

    def validation_probability(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) foreground probability of a batch of images."""
        raise NotImplementedError

    @torch.no_grad()
    def val_step(self, data: dict) -> list[dict]:
        data = self.data_preprocessor(data, False)
        return metric_samples(self.validation_probability(data["image"]), data["mask"])

    def test_step(self, data: dict) -> list[dict]:
        return self.val_step(data)
