"""Network-grid transforms: native image -> square network input, and network output -> native grid.

Echo images come at varying, non-square sizes and anisotropic spacing (CAMUS) or at 112 x 112 (EchoNet). The network
sees ``size x size`` (256 in the paper): the image is resized bilinearly and the label map with nearest neighbour
(the `vital` CAMUS preprocessing, MONAI ``Resize``). Predictions go back with `to_native`: probabilities are resized
bilinearly to the native shape before thresholding, so the native mask is not a blocky nearest-neighbour upsampling.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import Resize

__all__ = ["normalize_intensity", "to_native", "to_network"]


def normalize_intensity(image: np.ndarray) -> np.ndarray:
    """uint8 images -> [0, 1] by /255 (CAMUS, EchoNet); anything else by its own min-max range."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    image = image.astype(np.float32)
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


def to_network(
    image: np.ndarray, size: int, labels: np.ndarray | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(H, W) image (and optional (H, W) label map) -> ``(1, size, size)`` float image in [0, 1] and label map."""
    x = torch.from_numpy(normalize_intensity(image))[None]
    x = Resize((size, size), mode="bilinear", anti_aliasing=False)(x).as_tensor().clamp_(0.0, 1.0)
    if labels is None:
        return x, None
    y = torch.from_numpy(np.ascontiguousarray(labels).astype(np.float32))[None]
    y = Resize((size, size), mode="nearest")(y).as_tensor()
    return x, y


def to_native(prob: torch.Tensor | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(size, size)`` (or ``(1, size, size)``) probability map -> ``shape`` (H, W), bilinear, as float32 numpy."""
    p = torch.as_tensor(prob, dtype=torch.float32)
    if p.ndim == 2:
        p = p[None]
    out = Resize(tuple(int(s) for s in shape), mode="bilinear", anti_aliasing=False)(p).as_tensor()
    return out[0].clamp(0.0, 1.0).numpy()
