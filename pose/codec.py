"""Top-down crops and the keypoint heatmap codec.

Coordinates follow the unbiased (UDP, Huang et al. CVPR'20) convention: a crop of W x H pixels maps to a heatmap of
w x h with stride (W - 1) / (w - 1), so pixel centres line up at both ends and a horizontal flip is exact
(x -> W - 1 - x in the crop is hx -> w - 1 - hx in the heatmap; no one-pixel shift hack needed).

- Encoding: a Gaussian of ``sigma`` heatmap pixels centred at the sub-pixel keypoint (DARK's unbiased encoding).
- Decoding: argmax, then DARK's refinement (Zhang et al. CVPR'20): blur the map with a Gaussian kernel, take the
  log, and step by -H^-1 g (second-order Taylor expansion at the maximum).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from diffusekit.pose.posetrack import FLIP_PAIRS

__all__ = [
    "HeatmapCodec",
    "box_to_center_size",
    "crop_matrix",
    "flip_heatmaps",
    "flip_keypoints",
    "transform_points",
    "warp",
]


def box_to_center_size(box: Sequence[float], aspect: float, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """Centre and (w, h) of an [x, y, w, h] box grown to the crop's aspect ratio (w / h), then by ``padding``."""
    x, y, w, h = (float(v) for v in box)
    center = np.array([x + w / 2, y + h / 2])
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return center, np.array([w, h]) * padding


def crop_matrix(
    center: np.ndarray, size: np.ndarray, output: tuple[int, int], rotation: float = 0.0, flip: bool = False
) -> np.ndarray:
    """The 2 x 3 affine map from image pixels to the crop (``output`` = (W, H)): the region of ``size`` around
    ``center`` onto [0, W - 1] x [0, H - 1], rotated by ``rotation`` degrees (counter-clockwise), mirrored if
    ``flip``."""
    width, height = output
    scale = (width - 1) / size[0]
    angle = np.deg2rad(rotation)
    cos, sin = np.cos(angle), np.sin(angle)
    linear = scale * np.array([[cos, sin], [-sin, cos]])
    if flip:
        linear = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ linear
    offset = np.array([(width - 1) / 2, (height - 1) / 2]) - linear @ center
    return np.concatenate([linear, offset[:, None]], axis=1)


def warp(image: np.ndarray, matrix: np.ndarray, output: tuple[int, int]) -> np.ndarray:
    """``image`` (H, W, C) resampled into the crop (bilinear, zero border)."""
    return cv2.warpAffine(image, matrix, output, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(..., 2) points through a 2 x 3 affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(matrix)


def flip_keypoints(keypoints: np.ndarray, width: int, pairs: Sequence[tuple[int, int]] = FLIP_PAIRS) -> np.ndarray:
    """(..., K, D) keypoints of a crop of ``width`` mirrored: x -> width - 1 - x, left/right joints swapped."""
    out = keypoints.copy()
    out[..., 0] = width - 1 - out[..., 0]
    for a, b in pairs:
        out[..., [a, b], :] = out[..., [b, a], :]
    return out


def flip_heatmaps(heatmaps: torch.Tensor, pairs: Sequence[tuple[int, int]] = FLIP_PAIRS) -> torch.Tensor:
    """(..., K, h, w) heatmaps of a mirrored crop back to the original: mirror x, swap left/right channels."""
    order = list(range(heatmaps.shape[-3]))
    for a, b in pairs:
        order[a], order[b] = b, a
    return heatmaps.flip(-1)[..., order, :, :]


@dataclass
class HeatmapCodec:
    """Gaussian heatmaps for a crop of ``input_size`` = (W, H) at ``heatmap_size`` = (w, h)."""

    input_size: tuple[int, int] = (192, 256)
    heatmap_size: tuple[int, int] = (48, 64)
    sigma: float = 2.0
    blur_kernel: int = 11  # DARK's decoding blur (its 11 for sigma 2)

    @property
    def stride(self) -> np.ndarray:
        return (np.asarray(self.input_size, float) - 1) / (np.asarray(self.heatmap_size, float) - 1)

    def encode(self, keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(K, 2) crop-pixel keypoints and (K,) visibility -> (K, h, w) float32 heatmaps in [0, 1] and (K,)
        weights (0 for invisible joints and joints whose Gaussian lies outside the map)."""
        w, h = self.heatmap_size
        centres = keypoints / self.stride
        xs, ys = np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64)
        gx = np.exp(-((xs[None] - centres[:, :1]) ** 2) / (2 * self.sigma**2))  # (K, w)
        gy = np.exp(-((ys[None] - centres[:, 1:]) ** 2) / (2 * self.sigma**2))  # (K, h)
        heatmaps = gy[:, :, None] * gx[:, None, :]
        radius = 3 * self.sigma
        inside = (
            (centres[:, 0] >= -radius) & (centres[:, 0] <= w - 1 + radius)
            & (centres[:, 1] >= -radius) & (centres[:, 1] <= h - 1 + radius)
        )  # fmt: skip
        weights = (np.asarray(visible) > 0) & inside & np.isfinite(centres).all(1)
        heatmaps[~weights] = 0
        return heatmaps.astype(np.float32), weights.astype(np.float32)

    def decode(self, heatmaps: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(..., K, h, w) heatmaps -> (..., K, 2) crop-pixel keypoints and (..., K) scores (the maxima)."""
        maps = heatmaps.detach().float().cpu().numpy() if isinstance(heatmaps, torch.Tensor) else heatmaps
        maps = np.asarray(maps, dtype=np.float32)
        lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
        flat = maps.reshape(-1, h, w)
        index = flat.reshape(len(flat), -1).argmax(1)
        scores = flat.reshape(len(flat), -1).max(1)
        coords = np.stack([index % w, index // w], axis=1).astype(np.float64)
        coords += self._dark_offsets(flat, coords.astype(int))
        return (coords * self.stride).reshape(*lead, 2), scores.reshape(lead)

    def _dark_offsets(self, maps: np.ndarray, peaks: np.ndarray) -> np.ndarray:
        """DARK: offset = -H^-1 g of the log of the blurred map at each peak (zero where H is not negative definite
        or the peak touches the border)."""
        k = self.blur_kernel
        offsets = np.zeros((len(maps), 2))
        for i, (m, (x, y)) in enumerate(zip(maps, peaks)):
            peak = m.max()
            if peak <= 0 or not (1 <= x < m.shape[1] - 1 and 1 <= y < m.shape[0] - 1):
                continue
            blurred = cv2.GaussianBlur(m, (k, k), 0)
            blurred *= peak / max(blurred.max(), 1e-12)  # keep the original peak height (as DARK does)
            log = np.log(np.maximum(blurred, 1e-10))
            dx = 0.5 * (log[y, x + 1] - log[y, x - 1])
            dy = 0.5 * (log[y + 1, x] - log[y - 1, x])
            dxx = log[y, x + 1] - 2 * log[y, x] + log[y, x - 1]
            dyy = log[y + 1, x] - 2 * log[y, x] + log[y - 1, x]
            dxy = 0.25 * (log[y + 1, x + 1] - log[y + 1, x - 1] - log[y - 1, x + 1] + log[y - 1, x - 1])
            det = dxx * dyy - dxy**2
            if dxx < 0 and det > 1e-12:
                step = -np.array([dyy * dx - dxy * dy, dxx * dy - dxy * dx]) / det
                offsets[i] = np.clip(step, -1, 1)
        return offsets
