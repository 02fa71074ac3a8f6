"""Mask post-processing of Echo-DND's inference script, with MONAI and scipy: threshold, keep the largest connected
component (8-connectivity), fill holes, morphological opening with a disk of radius 3."""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import FillHoles, KeepLargestConnectedComponent
from scipy.ndimage import binary_opening
from skimage.morphology import disk

__all__ = ["postprocess_mask"]


def postprocess_mask(
    probability: np.ndarray, threshold: float = 0.5, opening_radius: int = 3, fill_holes: bool = True
) -> np.ndarray:
    """(H, W) probability map -> uint8 mask. The opening runs before the component selection so that a thin
    bridge it cuts cannot leave a second component; an empty mask stays empty."""
    mask = np.asarray(probability) >= threshold
    if opening_radius > 0 and mask.any():
        opened = binary_opening(mask, structure=disk(opening_radius))
        mask = opened if opened.any() else mask  # never erase a small but real structure entirely
    if not mask.any():
        return mask.astype(np.uint8)
    tensor = torch.from_numpy(mask)[None]
    tensor = KeepLargestConnectedComponent(applied_labels=[1], is_onehot=False, connectivity=2)(tensor.to(torch.uint8))
    if fill_holes:
        tensor = FillHoles(applied_labels=[1])(tensor)
    return np.asarray(tensor[0]).astype(np.uint8)
