"""PointPillars without compiled ops (Lang et al., CVPR 2019): voxelisation into pillars, the pillar feature net and
the scatter to the bird's-eye-view grid.

OpenCOOD voxelises with spconv (``SpVoxelPreprocessor``), which needs matching CUDA/cumm builds (OpenCOOD #16, #75);
its pure-numpy ``VoxelPreprocessor`` (``np.unique`` on integer coordinates) is the template here, vectorised so that
100k points take milliseconds. No library ships a CPU pillar voxeliser that keeps the per-voxel point lists.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

__all__ = ["Pillars", "PillarGrid", "PillarFeatureNet", "scatter_to_bev", "voxelize"]


@dataclass(frozen=True)
class PillarGrid:
    """The BEV grid: ``point_cloud_range`` (x0, y0, z0, x1, y1, z1) in metres and the pillar size (dx, dy, dz)."""

    point_cloud_range: tuple[float, float, float, float, float, float]
    voxel_size: tuple[float, float, float]

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.point_cloud_range[:3]), np.asarray(self.point_cloud_range[3:])
        size = np.asarray(self.voxel_size)
        if np.any(hi <= lo) or np.any(size <= 0):
            raise ValueError(f"empty point_cloud_range {self.point_cloud_range} or voxel_size {self.voxel_size}")

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx): rows along y, columns along x (704 x 200 for OPV2V's range at 0.4 m is (200, 704))."""
        x0, y0, _, x1, y1, _ = self.point_cloud_range
        return round((y1 - y0) / self.voxel_size[1]), round((x1 - x0) / self.voxel_size[0])


@dataclass
class Pillars:
    """Voxelised points of one cloud: ``voxels`` (V, P, 4) zero-padded, ``coords`` (V, 2) as (row y, column x),
    ``counts`` (V,) points per pillar."""

    voxels: np.ndarray
    coords: np.ndarray
    counts: np.ndarray


def voxelize(points: np.ndarray, grid: PillarGrid, max_points: int = 32, max_voxels: int | None = None) -> Pillars:
    """Points (N, 4) in the grid's frame -> pillars, as OpenCOOD's ``VoxelPreprocessor``: points outside the range
    dropped, at most ``max_points`` per pillar (the first ones in input order), at most ``max_voxels`` pillars (the
    first ones in order of first appearance, as spconv's generator keeps them)."""
    points = np.asarray(points, dtype=np.float32)
    lo = np.asarray(grid.point_cloud_range[:3], np.float32)
    hi = np.asarray(grid.point_cloud_range[3:], np.float32)
    inside = np.all((points[:, :3] >= lo) & (points[:, :3] < hi), axis=1)
    points = points[inside]
    ny, nx = grid.shape
    cells = np.floor((points[:, :2] - lo[:2]) / np.asarray(grid.voxel_size[:2], np.float32)).astype(np.int64)
    cells = np.minimum(cells, [nx - 1, ny - 1])  # float rounding at the upper edge
    keys = cells[:, 1] * nx + cells[:, 0]
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # pillars in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    pillar = rank[inverse]
    if max_voxels is not None and len(unique) > max_voxels:
        keep = pillar < max_voxels
        points, pillar = points[keep], pillar[keep]
        order = order[:max_voxels]
    num = len(order)
    # Slot of each point inside its pillar: its rank among the points of that pillar, in input order.
    by_pillar = np.argsort(pillar, kind="stable")
    starts = np.searchsorted(pillar[by_pillar], np.arange(num))
    slot = np.empty(len(pillar), np.int64)
    slot[by_pillar] = np.arange(len(pillar)) - np.repeat(starts, np.diff(np.append(starts, len(pillar))))
    keep = slot < max_points
    voxels = np.zeros((num, max_points, points.shape[1]), np.float32)
    voxels[pillar[keep], slot[keep]] = points[keep]
    counts = np.minimum(np.bincount(pillar, minlength=num), max_points).astype(np.int64)
    cell_keys = unique[order]
    coords = np.stack([cell_keys // nx, cell_keys % nx], axis=1).astype(np.int64)
    return Pillars(voxels, coords, counts)


class PillarFeatureNet(nn.Module):
    """PillarVFE: each point is decorated with its offset from the pillar's point mean (xc, yc, zc) and from the
    pillar centre (xp, yp, zp) (OpenCOOD ``use_absolute_xyz``: 4 + 3 + 3 = 10 inputs), then Linear-BN-ReLU and a max
    over the pillar's points (PointPillars Sec. 2.1). Padded slots are zeroed before the max."""

    def __init__(self, grid: PillarGrid, out_channels: int = 64, in_channels: int = 4):
        super().__init__()
        self.grid = grid
        self.linear = nn.Linear(in_channels + 6, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, voxels: Tensor, coords: Tensor, counts: Tensor) -> Tensor:
        """voxels (V, P, C), coords (V, >=2) with (row, col) last, counts (V,) -> pillar features (V, out)."""
        num_points = voxels.shape[1]
        valid = torch.arange(num_points, device=voxels.device)[None, :] < counts[:, None]
        valid_f = valid.unsqueeze(-1).to(voxels.dtype)
        xyz = voxels[..., :3]
        mean = (xyz * valid_f).sum(1, keepdim=True) / counts.clamp(min=1).view(-1, 1, 1).to(voxels.dtype)
        x0, y0, z0, _, _, z1 = self.grid.point_cloud_range
        dx, dy, _ = self.grid.voxel_size
        rows, cols = coords[:, -2].to(voxels.dtype), coords[:, -1].to(voxels.dtype)
        centre = torch.stack(
            [cols * dx + dx / 2 + x0, rows * dy + dy / 2 + y0, torch.full_like(rows, (z0 + z1) / 2)], 1
        )
        features = torch.cat([voxels, xyz - mean, xyz - centre[:, None, :]], dim=-1) * valid_f
        hidden = self.linear(features)
        hidden = self.norm(hidden.flatten(0, 1)).view_as(hidden).relu()
        hidden = hidden.masked_fill(~valid.unsqueeze(-1), 0.0)
        return hidden.max(dim=1).values


def scatter_to_bev(features: Tensor, coords: Tensor, num_maps: int, shape: tuple[int, int]) -> Tensor:
    """PointPillarScatter: pillar features (V, C) at coords (V, 3) = (map, row, col) -> (num_maps, C, ny, nx)."""
    ny, nx = shape
    channels = features.shape[1]
    canvas = features.new_zeros(num_maps * ny * nx, channels)
    flat = (coords[:, 0] * ny + coords[:, 1]) * nx + coords[:, 2]
    canvas = canvas.index_copy(0, flat, features)
    return canvas.view(num_maps, ny, nx, channels).permute(0, 3, 1, 2).contiguous()
