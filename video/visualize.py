"""Figures of the video domain: blurry / restored / sharp crops side by side, with the uncertainty map."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffusekit.core.figures import save_figure, subplots

__all__ = ["plot_restorations", "sharpest_crop"]


def sharpest_crop(sharp: np.ndarray, size: int) -> tuple[slice, slice]:
    """The ``size`` x ``size`` window of (H, W, 3) ``sharp`` with the most detail (the largest sum of absolute
    Laplacian), so that the crops show what deblurring changed rather than sky."""
    import cv2

    h, w = sharp.shape[:2]
    size = min(size, h, w)
    detail = np.abs(cv2.Laplacian(cv2.cvtColor(sharp, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F))
    box = cv2.boxFilter(detail, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    half = size // 2
    inner = box[half : h - size + half + 1, half : w - size + half + 1]
    y, x = np.unravel_index(int(np.argmax(inner)), inner.shape)
    return slice(y, y + size), slice(x, x + size)


def plot_restorations(path: str | Path, examples: dict[str, list], title: str = "", crop: int = 96) -> Path:
    """One row per example: blurry, restored and sharp crops (PSNR of the crop in the titles) and the uncertainty
    (per-pixel standard deviation over samples)."""
    from diffusekit.video.metrics import psnr

    rows = len(examples["blur"])
    fig, axes = subplots(rows, 4, figsize=(10, 2.6 * rows + 0.4), squeeze=False)
    for row in range(rows):
        sharp = examples["sharp"][row]
        ys, xs = sharpest_crop(sharp, crop)
        panels = [("blurry", examples["blur"][row]), ("restored", examples["restored"][row]), ("sharp", sharp)]
        for col, (name, image) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(image[ys, xs])
            label = name if name == "sharp" else f"{name}: {psnr(image[ys, xs], sharp[ys, xs]):.1f} dB"
            ax.set_title(label, fontsize=9)
            ax.axis("off")
        ax = axes[row, 3]
        im = ax.imshow(examples["uncertainty"][row][ys, xs], cmap="magma")
        ax.set_title("uncertainty (std over samples)", fontsize=9)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=100)
