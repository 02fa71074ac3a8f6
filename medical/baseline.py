"""The comparison baseline: a MONAI U-Net trained with Dice + cross-entropy (``DiceCELoss``) on the same data."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from diffusekit.medical.validation import SegmentationValidation

__all__ = ["UNetBaseline"]


@MODELS.register_module()
class UNetBaseline(SegmentationValidation, BaseModel):
    """``monai.networks.nets.UNet`` (residual units) with one logit channel, trained with
    ``DiceCELoss(sigmoid=True)``; ``predict`` returns the sigmoid probability map (B, 1, H, W)."""

    def __init__(
        self,
        image_channels: int = 1,
        channels: Sequence[int] = (16, 32, 64, 128, 256),
        num_res_units: int = 2,
        dropout: float = 0.0,
        data_preprocessor: dict | None = None,
        init_cfg: dict | None = None,
    ):
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.net = UNet(
            spatial_dims=2,
            in_channels=image_channels,
            out_channels=1,
            channels=tuple(channels),
            strides=(2,) * (len(channels) - 1),
            num_res_units=num_res_units,
            dropout=dropout,
        )
        self.criterion = DiceCELoss(sigmoid=True)

    @torch.no_grad()
    def validation_probability(self, image: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(image))

    def forward(self, image: torch.Tensor, mask: torch.Tensor | None = None, mode: str = "tensor", index=None, **_):
        """``loss`` -> {"loss"}; ``predict`` -> probabilities; ``tensor`` -> logits."""
        logits = self.net(image)
        if mode == "loss":
            if mask is None:
                raise ValueError("mode='loss' needs the ground-truth mask")
            return {"loss": self.criterion(logits, mask)}
        if mode == "predict":
            return torch.sigmoid(logits)
        if mode == "tensor":
            return logits
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")
