"""LV volumes and ejection fraction from ED/ES masks of the apical 2CH and 4CH views (Simpson's biplane method).

Simpson's biplane method of disks (ASE/EACVI chamber quantification, Lang et al. 2015): the LV long axis L is cut
into 20 disks of height L/20; disk i is an elliptical cylinder whose diameters a_i and b_i are the cavity widths in
the 2CH and 4CH views at the same level, so ``V = pi/4 * sum_i a_i b_i * L/20`` with L the longer of the two views'
axes. ``EF = (EDV - ESV) / EDV * 100``.

The long axis of each mask is found as its principal axis (eigenvector of the pixel-coordinate covariance, in mm so
anisotropic spacing is respected), its length is the extent of the mask along that axis, and each disk diameter is
the mask's width on the line through that disk's mid-level. This is the usual automatic approximation of the
apex-to-mitral-midpoint axis a sonographer draws; the CAMUS EF in ``Info_*.cfg`` comes from the clinicians' own
contours, so expect a few EF points of disagreement even from the ground-truth masks.
"""

from __future__ import annotations

import numpy as np

__all__ = ["biplane_volume", "disk_diameters", "ejection_fraction"]


def disk_diameters(mask: np.ndarray, spacing: tuple[float, float], disks: int = 20) -> tuple[np.ndarray, float]:
    """(diameters (disks,) in mm, long-axis length in mm) of one binary (H, W) mask with spacing (sy, sx)."""
    rows, cols = np.nonzero(mask)
    if rows.size < 3:
        return np.zeros(disks), 0.0
    # pixel centres in mm; a pixel is a (sy x sx) cell, so points spread half a pixel beyond the centres
    points = np.stack([rows * spacing[0], cols * spacing[1]], axis=1).astype(np.float64)
    points -= points.mean(axis=0)
    _, vectors = np.linalg.eigh(np.cov(points.T))
    axis, across = vectors[:, 1], vectors[:, 0]
    along, side = points @ axis, points @ across
    # half-pixel extension along each direction (the footprint of a pixel projected on the direction)
    half_along = 0.5 * (abs(axis[0]) * spacing[0] + abs(axis[1]) * spacing[1])
    half_side = 0.5 * (abs(across[0]) * spacing[0] + abs(across[1]) * spacing[1])
    low, high = along.min() - half_along, along.max() + half_along
    length = float(high - low)
    # the diameter of disk i is the mask's width on the line through the disk's mid-level (midpoint rule): the
    # pixels whose footprint meets that line, across the axis
    levels = low + (np.arange(disks) + 0.5) * length / disks
    diameters = np.zeros(disks)
    for i, level in enumerate(levels):
        inside = side[np.abs(along - level) <= half_along]
        if inside.size:
            diameters[i] = inside.max() - inside.min() + 2 * half_side
    return diameters, length


def biplane_volume(
    mask_2ch: np.ndarray, spacing_2ch: tuple[float, float], mask_4ch: np.ndarray, spacing_4ch: tuple[float, float]
) -> float:
    """LV volume in mL (= cm^3) by Simpson's biplane method of 20 disks (see the module docstring)."""
    a, length_2ch = disk_diameters(mask_2ch, spacing_2ch)
    b, length_4ch = disk_diameters(mask_4ch, spacing_4ch)
    length = max(length_2ch, length_4ch)
    return float(np.pi / 4 * np.sum(a * b) * length / len(a) / 1000.0)


def ejection_fraction(edv: float, esv: float) -> float:
    """EF in percent; NaN when the ED volume is not positive."""
    return float((edv - esv) / edv * 100.0) if edv > 0 else float("nan")
