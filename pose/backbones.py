"""Per-frame backbones for the pose models, each returning a (B, C, H/16, W/16) feature map: a plain ViT (patch 16),
a small stride-16 conv net, or a ResNet truncated after ``layer3``; weights from a user-given file (``weights=``,
our own layout or a public checkpoint, see `diffusekit.pose.pretrained`) or trained from scratch."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from diffusekit.core import TransformerBlock
from diffusekit.core.errors import DataError
from diffusekit.pose.pretrained import WEIGHT_FORMATS, load_pretrained

logger = logging.getLogger(__name__)

__all__ = ["ConvBackbone", "ResNetBackbone", "ViTBackbone", "build_backbone"]


class ViTBackbone(nn.Module):
    """ViT (Dosovitskiy et al. 2021): 16 x 16 patches, learned position embedding, pre-LN blocks, final LayerNorm;
    the patch tokens are returned as a feature map (DiffPose's per-frame features).

    Args:
        input_size: (W, H) of the crops; both multiples of ``patch``.
        dim, depth, heads, mlp_ratio, patch: the usual ViT sizes (ViT-S: 384/12/6, ViT-B: 768/12/12).
        norm_eps: epsilon of every LayerNorm. 1e-6, the value of timm's ViTs, MAE and ViTPose, so that their
            weights give their features (nn.LayerNorm's 1e-5 differs by ~1e-5 relative on unit-variance tokens).
        cls_token: prepend a learned class token that takes part in attention and is dropped from the output,
            as timm's and MAE's ViTs do (needed to reproduce their features; ViTPose has none). Its parameter holds
            the token plus its position embedding.
        patch_padding: zero padding of the patch convolution; ViTPose's patch embedding pads by 2.
    """

    stride = 16

    def __init__(
        self,
        input_size: Sequence[int] = (192, 256),
        dim: int = 384,
        depth: int = 12,
        heads: int = 6,
        mlp_ratio: float = 4.0,
        patch: int = 16,
        norm_eps: float = 1e-6,
        cls_token: bool = False,
        patch_padding: int = 0,
    ):
        super().__init__()
        width, height = input_size
        if width % patch or height % patch:
            raise ValueError(f"input size {tuple(input_size)} is not a multiple of the patch size {patch}")
        if not 0 <= 2 * patch_padding < patch:
            raise ValueError(f"patch_padding={patch_padding} must be in [0, patch/2)")
        self.grid = (height // patch, width // patch)  # unchanged by a padding below patch / 2
        self.out_channels = dim
        self.heads = heads
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch, padding=patch_padding)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.cls_token = None
        if cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        for module in self.modules():
            if isinstance(module, nn.LayerNorm):
                module.eps = norm_eps

    @property
    def norm_eps(self) -> float:
        return self.norm.eps

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(image)
        b, c, h, w = x.shape
        if (h, w) != self.grid:
            raise ValueError(f"input {tuple(image.shape[-2:])} does not give the {self.grid} patch grid")
        x = x.flatten(2).transpose(1, 2) + self.pos_embed
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(b, -1, -1), x], dim=1)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)[:, -h * w :]
        return x.transpose(1, 2).reshape(b, c, h, w)


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


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False), nn.BatchNorm2d(cout)


class _BasicBlock(nn.Module):
    """Two 3 x 3 convolutions (He et al. 2016, Fig. 2 left), torchvision's names."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, width, 3, stride)
        self.conv2, self.bn2 = _conv_bn(width, width, 3)
        self.downsample = None
        if stride != 1 or cin != width:
            self.downsample = nn.Sequential(*_conv_bn(cin, width, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + shortcut)


class _Bottleneck(nn.Module):
    """1 x 1 -> 3 x 3 -> 1 x 1 (x4 channels) (He et al. 2016, Fig. 5 right), the stride on the 3 x 3 convolution
    as torchvision's and timm's ResNet ("v1.5")."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = _conv_bn(cin, width, 1)
        self.conv2, self.bn2 = _conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = _conv_bn(width, cout, 1)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(*_conv_bn(cin, cout, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(self.bn3(self.conv3(out)) + shortcut)


RESNET_LAYOUTS = {
    18: (_BasicBlock, (2, 2, 2, 2)),
    34: (_BasicBlock, (3, 4, 6, 3)),
    50: (_Bottleneck, (3, 4, 6, 3)),
    101: (_Bottleneck, (3, 4, 23, 3)),
    152: (_Bottleneck, (3, 8, 36, 3)),
}


class ResNetBackbone(nn.Module):
    """ResNet (He et al. 2016) in torchvision's layout and names (``conv1``, ``bn1``, ``layer1..3``), cut after
    ``layer3``: stride 16 (stem 4, layer2 and layer3 2 each), 256 channels (18/34) or 1024 (50/101/152).
    ``layer4`` and ``fc`` of a checkpoint are not used. It expects ImageNet-normalised images (mean and std), which
    is what the pose datasets give and what the public checkpoints were trained on."""

    stride = 16

    def __init__(self, depth: int = 50, input_size: Sequence[int] | None = None):
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise DataError(f"ResNet depth {depth} is not one of {sorted(RESNET_LAYOUTS)}")
        block, counts = RESNET_LAYOUTS[depth]
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for index, (width, count, stride) in enumerate(zip((64, 128, 256), counts[:3], (1, 2, 2)), start=1):
            blocks = []
            for j in range(count):
                blocks.append(block(cin, width, stride if j == 0 else 1))
                cin = width * block.expansion
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.out_channels = cin

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(image))))
        return self.layer3(self.layer2(self.layer1(x)))


def build_backbone(cfg: dict, input_size: Sequence[int]) -> nn.Module:
    """``dict(type="vit" | "conv" | "resnet", weights=None | path, weights_format="auto", pretrained_grid=None,
    **kwargs)``. ``weights`` is our own state dict (keys may carry a ``backbone.`` prefix) or a public checkpoint
    (timm, MAE, ViTPose/MMPose, torchvision), read with ``weights_only=True`` and mapped by
    `diffusekit.pose.pretrained.load_pretrained`; its `LoadReport` is kept as ``backbone.load_report``."""
    cfg = dict(cfg)
    kind, weights = cfg.pop("type", "conv"), cfg.pop("weights", None)
    weights_format = cfg.pop("weights_format", "auto")
    pretrained_grid = cfg.pop("pretrained_grid", None)
    if weights_format not in WEIGHT_FORMATS:
        raise DataError(f"unknown backbone weights_format {weights_format!r}; expected one of {WEIGHT_FORMATS}")
    if kind == "vit":
        backbone = ViTBackbone(input_size, **cfg)
    elif kind == "conv":
        backbone = ConvBackbone(**cfg)
    elif kind == "resnet":
        backbone = ResNetBackbone(**cfg)
    elif kind == "hrnet":
        raise DataError(
            "HRNet backbones are not supported; use type='resnet' (torchvision/timm/MMPose ResNet) or 'vit'"
        )
    else:
        raise DataError(f"unknown backbone type {kind!r}; expected 'vit', 'conv' or 'resnet'")
    backbone.load_report = None
    if weights:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise DataError("backbone weights not found", path)
        backbone.load_report = load_pretrained(backbone, path, weights_format, pretrained_grid)
    return backbone
