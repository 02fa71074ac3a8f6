"""Figures for echo segmentation (matplotlib, Agg backend): overlays of image, ground truth, prediction and
uncertainty, drawn with the frame's physical aspect ratio (CAMUS pixels are not square)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffusekit.core.figures import save_figure, subplots


def overlay_png(image: np.ndarray, mask: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """A BGR uint8 (H, W, 3) picture at native size: the image in grey, the predicted contour in red and the
    ground-truth contour (when given) in green, for ``predict``'s per-file overlay."""
    import cv2

    grey = image if image.dtype == np.uint8 else np.clip(255 * image / max(float(image.max()), 1e-8), 0, 255)
    picture = cv2.cvtColor(np.asarray(grey, dtype=np.uint8), cv2.COLOR_GRAY2BGR)
    for m, colour in ((truth, (0, 200, 0)), (mask, (0, 0, 255))):
        if m is not None and np.any(m):
            contours, _ = cv2.findContours(np.asarray(m, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(picture, contours, -1, colour, 1)
    return picture


def plot_segmentations(path: str | Path, predictions: Sequence, title: str = "", columns: int = 4) -> Path:
    """Up to ``columns`` frames, one column each: the image with the ground truth (green) and the prediction (red)
    contours, and the uncertainty map beneath. ``predictions`` are `inference.FramePrediction` objects."""
    chosen = list(predictions)[:columns]
    fig, axes = subplots(2, len(chosen), figsize=(3.2 * len(chosen), 6.4), squeeze=False)
    for j, p in enumerate(chosen):
        frame = p.frame
        sy, sx = frame.spacing
        aspect = sy / sx  # imshow aspect = height of a pixel / its width
        ax = axes[0, j]
        ax.imshow(frame.image, cmap="gray", aspect=aspect)
        if frame.mask is not None and frame.mask.any():
            ax.contour(frame.mask, levels=[0.5], colors="lime", linewidths=1.0)
        if p.mask.any():
            ax.contour(p.mask, levels=[0.5], colors="red", linewidths=1.0)
        ax.set_title(frame.name, fontsize=8)
        ax = axes[1, j]
        shown = ax.imshow(p.uncertainty, cmap="magma", aspect=aspect, vmin=0)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.02)
        ax.set_title("uncertainty (sample std)", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    legend = "green: ground truth, red: prediction"
    fig.suptitle(f"{title} ({legend})" if title else legend, fontsize=9)
    return save_figure(fig, path)


def plot_steps_tradeoff(path: str | Path, rows: Sequence[dict], title: str = "") -> Path:
    """Dice (left axis) and seconds per image (right axis, log) versus sampling steps, one line per sample count;
    ``rows`` hold ``steps``, ``samples``, ``dice``, ``seconds_per_image``."""
    fig, ax = subplots(figsize=(6, 3.6))
    right = ax.twinx()
    for samples in sorted({r["samples"] for r in rows}):
        sub = sorted((r for r in rows if r["samples"] == samples), key=lambda r: r["steps"])
        steps = [r["steps"] for r in sub]
        ax.plot(steps, [r["dice"] for r in sub], marker="o", label=f"Dice, {samples} sample(s)")
        right.plot(steps, [r["seconds_per_image"] for r in sub], ls="--", marker="x", label=f"s/image, {samples}")
    ax.set_xscale("log")
    right.set_yscale("log")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("Dice")
    right.set_ylabel("seconds per image")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower right")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path)
