"""The BEV networks of the collaborative detector (CoAlign's ``point_pillar_baseline_multiscale``, which CoDiff builds
on): a ResNet BEV backbone with several scales, neighbours' feature maps warped to the ego frame, attention fusion
per scale (OpenCOOD ``AttFusion``), up-sampling to one resolution, and 1x1 anchor heads.

Warping is ``affine_grid`` + ``grid_sample`` on the BEV map (OpenCOOD ``warp_affine_simple`` with a normalised
pairwise matrix); only the planar part (x, y, yaw) of a relative pose moves a BEV map.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["AttentionFusion", "BEVBackbone", "DetectionHead", "NaiveCompressor", "warp_to_ego"]


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): two 3x3 conv-BN, identity or 1x1-conv shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        return (self.bn2(self.conv2(out)) + self.shortcut(x)).relu()


def _conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
        nn.ReLU(),
    )


class BEVBackbone(nn.Module):
    """ResNetBEVBackbone: stages of basic blocks (paper scale: [3, 5, 8] blocks, strides 2/2/2, 64/128/256 filters);
    `forward` returns one map per stage; `merge` up-samples each (strides 1/2/4 to 128 channels), concatenates and
    shrinks with a 3x3 conv (384 -> 256), as CoAlign's multiscale baseline does after fusing each scale."""

    def __init__(
        self,
        in_channels: int = 64,
        layers: Sequence[int] = (3, 5, 8),
        strides: Sequence[int] = (2, 2, 2),
        filters: Sequence[int] = (64, 128, 256),
        upsample_filters: int = 128,
        out_channels: int = 256,
    ):
        super().__init__()
        if not (len(layers) == len(strides) == len(filters)):
            raise ValueError("layers, strides and filters need one entry per stage")
        self.stages = nn.ModuleList()
        cin = in_channels
        for count, stride, cout in zip(layers, strides, filters):
            blocks = [BasicBlock(cin, cout, stride)] + [BasicBlock(cout, cout) for _ in range(count - 1)]
            self.stages.append(nn.Sequential(*blocks))
            cin = cout
        total = 1
        self.deblocks = nn.ModuleList()
        for stride, cout in zip(strides, filters):
            total = total * stride
            factor = total // strides[0]  # up-sample every stage to the first stage's resolution
            layer = (
                nn.ConvTranspose2d(cout, upsample_filters, factor, factor, bias=False)
                if factor > 1
                else nn.Conv2d(cout, upsample_filters, 1, bias=False)
            )
            self.deblocks.append(
                nn.Sequential(layer, nn.BatchNorm2d(upsample_filters, eps=1e-3, momentum=0.01), nn.ReLU())
            )
        self.shrink = _conv_bn_relu(upsample_filters * len(filters), out_channels)
        self.out_channels = out_channels
        self.stage_channels = tuple(filters)
        self.stride = strides[0]

    def forward(self, x: Tensor) -> list[Tensor]:
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def merge(self, maps: Sequence[Tensor]) -> Tensor:
        ups = [deblock(m) for deblock, m in zip(self.deblocks, maps)]
        height, width = ups[0].shape[-2:]
        ups = [u[..., :height, :width] for u in ups]
        return self.shrink(torch.cat(ups, dim=1))


def _planar(matrix: Tensor) -> Tensor:
    """The 3x3 homogeneous planar part (x, y, yaw) of 4x4 transforms (..., 4, 4)."""
    out = torch.zeros(*matrix.shape[:-2], 3, 3, dtype=matrix.dtype, device=matrix.device)
    out[..., :2, :2] = matrix[..., :2, :2]
    out[..., :2, 2] = matrix[..., :2, 3]
    out[..., 2, 2] = 1.0
    return out


def warp_to_ego(maps: Tensor, to_ego: Tensor, point_cloud_range: Sequence[float]) -> Tensor:
    """Resample BEV maps (L, C, H, W), each in its agent's frame over ``point_cloud_range``, into the ego frame.

    ``to_ego`` (L, 4, 4) maps agent coordinates to ego coordinates. An ego cell at metric p samples the agent map at
    ``inv(to_ego) p``; in ``affine_grid``'s normalised coordinates that is ``S^-1 inv(to_ego) S`` with S the
    normalised-to-metric scaling of the grid (cells outside the agent's map read zeros)."""
    x0, y0, _, x1, y1, _ = point_cloud_range
    scale = torch.tensor(
        [[(x1 - x0) / 2, 0, (x1 + x0) / 2], [0, (y1 - y0) / 2, (y1 + y0) / 2], [0, 0, 1]],
        dtype=torch.float64,
        device=maps.device,
    )
    planar = torch.linalg.inv(_planar(to_ego.to(torch.float64)))
    theta = torch.linalg.inv(scale) @ planar @ scale
    grid = F.affine_grid(theta[:, :2].to(maps.dtype), list(maps.shape), align_corners=False)
    return F.grid_sample(maps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class AttentionFusion(nn.Module):
    """Per-cell scaled dot-product self-attention across agents (OpenCOOD ``AttFusion``, from AttFuse / OPV2V):
    queries, keys and values are the agents' features at that cell; the ego's output is the fused feature.
    Padded agents (``valid`` False) are masked out."""

    def forward(self, maps: Tensor, valid: Tensor | None = None) -> Tensor:
        """maps (L, C, H, W) already in the ego frame, ego first -> fused (C, H, W)."""
        agents, channels, height, width = maps.shape
        x = maps.flatten(2).permute(2, 0, 1)  # (HW, L, C)
        scores = torch.einsum("plc,pc->pl", x, x[:, 0]) / channels**0.5
        if valid is not None:
            scores = scores.masked_fill(~valid.to(torch.bool)[None, :], float("-inf"))
        weights = scores.softmax(dim=-1)
        fused = torch.einsum("pl,plc->pc", weights, x)
        return fused.permute(1, 0).reshape(channels, height, width)


class DetectionHead(nn.Module):
    """1x1 conv heads: class score per anchor, 7 box residuals per anchor, direction bins per anchor."""

    def __init__(self, channels: int, anchors_per_cell: int = 2, dir_bins: int = 2):
        super().__init__()
        self.cls = nn.Conv2d(channels, anchors_per_cell, 1)
        self.reg = nn.Conv2d(channels, 7 * anchors_per_cell, 1)
        self.dir = nn.Conv2d(channels, dir_bins * anchors_per_cell, 1)
        nn.init.constant_(self.cls.bias, -4.595)  # prior 0.01 (RetinaNet focal-loss initialisation)
        self.anchors_per_cell, self.dir_bins = anchors_per_cell, dir_bins

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(B, C, H, W) -> logits (B, H, W, A), residuals (B, H, W, A, 7), direction logits (B, H, W, A, bins)."""
        b, _, h, w = x.shape
        a = self.anchors_per_cell
        cls = self.cls(x).permute(0, 2, 3, 1)
        reg = self.reg(x).permute(0, 2, 3, 1).reshape(b, h, w, a, 7)
        direction = self.dir(x).permute(0, 2, 3, 1).reshape(b, h, w, a, self.dir_bins)
        return cls, reg, direction


class NaiveCompressor(nn.Module):
    """OpenCOOD's ``NaiveCompressor``, CoDiff's autoencoder: encoder conv3x3-BN-ReLU to ``latent`` channels, decoder
    two conv3x3-BN-ReLU blocks back to ``channels``."""

    def __init__(self, channels: int, latent: int):
        super().__init__()
        self.encoder = _conv_bn_relu(channels, latent)
        self.decoder = nn.Sequential(_conv_bn_relu(latent, channels), _conv_bn_relu(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))
