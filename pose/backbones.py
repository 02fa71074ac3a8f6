"""Per-frame backbones for the pose models: a plain ViT (patch 16) or a small stride-16 conv net, both returning a
(B, C, H/16, W/16) feature map; weights from a user-given file (``weights=``) or trained from scratch."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from diffusekit.core import TransformerBlock
from diffusekit.core.errors import DataError

logger = logging.getLogger(__name__)

__all__ = ["ConvBackbone", "ViTBackbone", "build_backbone"]


class ViTBackbone(nn.Module):
    """ViT (Dosovitskiy et al. 2021): 16 x 16 patches, learned position embedding, pre-LN blocks, final LayerNorm;
    the tokens are returned as a feature map (DiffPose's per-frame features)."""

    stride = 16

    def __init__(
        self,
        input_size: Sequence[int] = (192, 256),
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        patch: int = 16,
    ):
        super().__init__()
        width, height = input_size
        if width % patch or height % patch:
            raise ValueError(f"input size {tuple(input_size)} is not a multiple of the patch size {patch}")
        self.grid = (height // patch, width // patch)
        self.out_channels = dim
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(image)
        b, c, h, w = x.shape
        if (h, w) != self.grid:
            raise ValueError(f"input {tuple(image.shape[-2:])} does not give the {self.grid} patch grid")
        x = x.flatten(2).transpose(1, 2) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x).transpose(1, 2).reshape(b, c, h, w)


class _Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.body(x))


class ConvBackbone(nn.Module):
    """A small ResNet-style net: four stride-2 stages (widths ``channels``), one residual block each: stride 16."""

    stride = 16

    def __init__(self, channels: Sequence[int] = (32, 64, 96, 128), input_size: Sequence[int] | None = None):
        super().__init__()
        layers, previous = [], 3
        for width in channels:
            layers += [
                nn.Conv2d(previous, width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                _Residual(width),
            ]
            previous = width
        self.body = nn.Sequential(*layers)
        self.out_channels = previous

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.body(image)


def build_backbone(cfg: dict, input_size: Sequence[int]) -> nn.Module:
    """``dict(type="vit" | "conv", weights=None | path, **kwargs)``; weights are a state dict of this module
    (keys may carry a ``backbone.`` prefix), loaded with ``weights_only=True``."""
    cfg = dict(cfg)
    kind, weights = cfg.pop("type", "conv"), cfg.pop("weights", None)
    if kind == "vit":
        backbone = ViTBackbone(input_size, **cfg)
    elif kind == "conv":
        backbone = ConvBackbone(**cfg)
    else:
        raise DataError(f"unknown backbone type {kind!r}; expected 'vit' or 'conv'")
    if weights:
        from diffusekit.core.checkpoint import describe_mismatch, load_checkpoint_file

        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataError("backbone weights not found", path)
        state = load_checkpoint_file(path)  # weights_only=True; a corrupt or pickled file is a DataError
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise DataError("backbone weights must be a state dict (names -> tensors)", path)
        state = {k.removeprefix("backbone."): v for k, v in state.items()}
        mismatch = describe_mismatch(state, backbone.state_dict(), strict=False)
        if mismatch:
            raise DataError(f"backbone weights do not fit the {kind} backbone: {mismatch}", path)
        missing, unexpected = backbone.load_state_dict(state, strict=False)
        if missing:
            raise DataError(f"backbone weights lack {len(missing)} tensors, e.g. {missing[0]!r}", path)
        if unexpected:
            logger.warning(
                "backbone weights %s: ignored %d unexpected tensors, e.g. %r", path, len(unexpected), unexpected[0]
            )
    return backbone
