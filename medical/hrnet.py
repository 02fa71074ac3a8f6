"""Echo-DND's multi-scale fusion conditioning module (MFCM): a full-resolution HRNet with a calibration head.

HRNet (Wang et al., TPAMI 2020) as Echo-DND takes it from UTRNet (arXiv 2306.15782; Echo-DND ``hrnet.py``):

- stem: two 1x1 conv-BN-ReLU to ``stem`` channels at full resolution (no stride), then ``bottlenecks`` ResNet
  bottleneck blocks to ``4 * stem`` channels;
- a transition to two branches (``w`` channels at full resolution, ``2w`` at 1/2), then three high-resolution stages
  with 2, 3 and 4 branches (``w, 2w, 4w, 8w`` channels at 1, 1/2, 1/4, 1/8), ``blocks`` BasicBlocks per branch;
  each stage ends with HRNet's exchange: a lower-resolution branch reaches a higher one by a 1x1 conv-BN and bilinear
  upsampling, a higher one reaches a lower one by stride-2 3x3 conv-BN(-ReLU) steps; the sum is ReLU'd;
- head: all branches upsampled to full resolution and concatenated (``15w`` channels), 1x1 conv-BN-ReLU, 1x1 conv
  to the one-channel calibration map ``cal`` (no sigmoid: the SCC loss is an MSE to the binary mask);
- conditioning features for the denoisers: ``[b0, b0, up(b1)]`` = ``4w`` channels at full resolution (Echo-DND's
  [32, 32, 64] = 128 for w = 32, matched to the U-Nets' first width).

Written here: no library in the dependency set ships an HRNet of this shape (timm's HRNet strides its stem by 4).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HRNetMFCM"]


def _conv_bn(cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3, 1x1 with expansion 4) with a projected shortcut when the width changes."""

    def __init__(self, cin: int, planes: int):
        super().__init__()
        cout = 4 * planes
        self.body = nn.Sequential(
            _conv_bn(cin, planes, 1), _conv_bn(planes, planes, 3), _conv_bn(planes, cout, 1, relu=False)
        )
        self.shortcut = nn.Identity() if cin == cout else _conv_bn(cin, cout, 1, relu=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class _BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 conv-BN) at constant width."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(channels, channels), _conv_bn(channels, channels, relu=False))

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + x)


class _Stage(nn.Module):
    """One high-resolution module: ``blocks`` BasicBlocks per branch, then the multi-resolution exchange."""

    def __init__(self, widths: list[int], blocks: int):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*(_BasicBlock(w) for _ in range(blocks))) for w in widths)
        self.exchange = nn.ModuleList()
        for i, wi in enumerate(widths):
            row = nn.ModuleList()
            for j, wj in enumerate(widths):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:  # lower resolution -> higher: 1x1 conv-BN, then upsample in forward
                    row.append(_conv_bn(wj, wi, 1, relu=False))
                else:  # higher resolution -> lower: (i - j) stride-2 3x3 convs, ReLU on all but the last
                    steps = [_conv_bn(wj, wj, 3, 2) for _ in range(i - j - 1)]
                    steps.append(_conv_bn(wj, wi, 3, 2, relu=False))
                    row.append(nn.Sequential(*steps))
            self.exchange.append(row)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        out = []
        for i, row in enumerate(self.exchange):
            total = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                y = layer(xs[j])
                if j > i:
                    y = F.interpolate(y, size=xs[i].shape[-2:], mode="bilinear", align_corners=False)
                total = total + y
            out.append(F.relu(total))
        return out


class HRNetMFCM(nn.Module):
    """The MFCM: ``forward(image) -> (features (B, 4w, H, W), cal (B, 1, H, W))`` (see the module docstring).

    Args:
        in_channels: image channels (1 for echo).
        width: ``w``, the full-resolution branch width (32 in Echo-DND).
        blocks: BasicBlocks per branch in each stage (4).
        stem: stem width (64); the bottlenecks output ``4 * stem``.
        bottlenecks: bottleneck blocks after the stem (4).
    """

    def __init__(self, in_channels: int = 1, width: int = 32, blocks: int = 4, stem: int = 64, bottlenecks: int = 4):
        super().__init__()
        self.width = width
        self.stem = nn.Sequential(_conv_bn(in_channels, stem, 1), _conv_bn(stem, stem, 1))
        layers, cin = [], stem
        for _ in range(bottlenecks):
            layers.append(_Bottleneck(cin, stem))
            cin = 4 * stem
        self.layer1 = nn.Sequential(*layers)
        widths = [width * 2**i for i in range(4)]
        self.transition1 = nn.ModuleList([_conv_bn(cin, widths[0]), _conv_bn(cin, widths[1], 3, 2)])
        self.stage2 = _Stage(widths[:2], blocks)
        self.transition2 = _conv_bn(widths[1], widths[2], 3, 2)
        self.stage3 = _Stage(widths[:3], blocks)
        self.transition3 = _conv_bn(widths[2], widths[3], 3, 2)
        self.stage4 = _Stage(widths, blocks)
        total = sum(widths)
        self.head = nn.Sequential(_conv_bn(total, total, 1), nn.Conv2d(total, 1, 1))

    @property
    def feature_channels(self) -> int:
        return 4 * self.width

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        size = image.shape[-2:]
        x = self.layer1(self.stem(image))
        xs = self.stage2([t(x) for t in self.transition1])
        xs = self.stage3([*xs, self.transition2(xs[-1])])
        xs = self.stage4([*xs, self.transition3(xs[-1])])
        up = [xs[0]] + [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in xs[1:]]
        cal = self.head(torch.cat(up, dim=1))
        features = torch.cat([up[0], up[0], up[1]], dim=1)
        return features, cal
