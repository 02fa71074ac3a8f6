"""The plain heatmap-regression baseline: DiffPose's STRL (same backbone, same clip) and a SimpleBaseline-style
head (Xiao et al. ECCV'18: two stride-2 deconvolutions and a 1 x 1 conv), trained by weighted MSE on the heatmaps.
It isolates what the diffusion decoder adds."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.model import BaseModel
from mmengine.registry import MODELS
from torch import nn

from diffusekit.pose.codec import flip_heatmaps
from diffusekit.pose.diffpose import STRL

__all__ = ["HeatmapBaseline", "heatmap_loss"]


def heatmap_loss(prediction: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the joints with weight 1 (MMPose's KeypointMSELoss with target weights)."""
    mask = weights[:, :, None, None].expand_as(target)
    return ((prediction - target) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)


@MODELS.register_module()
class HeatmapBaseline(BaseModel):
    """STRL -> deconv x2 -> deconv x2 -> 1 x 1 conv: heatmaps at 4x the feature grid."""

    def __init__(
        self,
        backbone: dict,
        input_size: Sequence[int] = (192, 256),
        heatmap_size: Sequence[int] = (48, 64),
        frames: int = 3,
        keypoints: int = 17,
        strl: dict | None = None,
        head_channels: int = 128,
        init_cfg: dict | None = None,
    ):
        super().__init__(init_cfg=init_cfg)
        self.strl = STRL(backbone, input_size, frames, **(strl or {}))
        self.strl.check_heatmap_size(heatmap_size)
        layers, previous = [], self.strl.dim
        for _ in range(2):
            layers += [
                nn.ConvTranspose2d(previous, head_channels, 4, 2, 1, bias=False),
                nn.BatchNorm2d(head_channels),
                nn.ReLU(inplace=True),
            ]
            previous = head_channels
        self.head = nn.Sequential(*layers, nn.Conv2d(head_channels, keypoints, 1))

    def loss(self, clip: torch.Tensor, heatmaps: torch.Tensor, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss_mse": heatmap_loss(self.head(self.strl(clip)), heatmaps, weights)}

    @torch.no_grad()
    def predict_heatmaps(self, clip: torch.Tensor, flip: bool = True, **_) -> torch.Tensor:
        """(B, K, h, w) heatmaps, averaged with those of the flipped clip when ``flip``."""
        maps = self.head(self.strl(clip))
        if flip:
            maps = (maps + flip_heatmaps(self.head(self.strl(clip.flip(-1))))) / 2
        return maps

    def forward(self, clip, heatmaps=None, weights=None, mode: str = "tensor", **kwargs):
        if mode == "loss":
            if heatmaps is None or weights is None:
                raise ValueError("mode='loss' needs the target heatmaps and weights")
            return self.loss(clip, heatmaps, weights)
        if mode == "predict":
            return self.predict_heatmaps(clip, flip=kwargs.get("flip", True))
        if mode == "tensor":
            return self.head(self.strl(clip))
        raise ValueError(f"unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")
