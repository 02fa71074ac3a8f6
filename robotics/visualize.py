"""Rollout animations: frames (H, W, 3) uint8 written as an animated GIF (Pillow) or as a folder of PNG frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["evaluation_figure", "save_animation"]


def save_animation(frames: Sequence[np.ndarray], out: str | Path, fps: float = 10.0) -> Path:
    """``out`` ending in .gif: one animated GIF at ``fps`` (Push-T's control rate is 10 Hz); else a folder of
    ``000000.png`` ...; returns the path written."""
    if not frames:
        raise ValueError("no frames to save")
    out = Path(out)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    if out.suffix.lower() == ".gif":
        out.parent.mkdir(parents=True, exist_ok=True)
        images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        image.save(out / f"{i:06d}.png")
    return out


def evaluation_figure(rows: Sequence[dict], out: str | Path, title: str = "") -> Path:
    """Success rate (o) and mean score (x) of each inference mode (one colour per row of ``evaluate_policy``)
    against its network evaluations per action (left) and its milliseconds per control step (right), log x axes."""
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from diffusekit.core.figures import save_figure, subplots

    fig, axes = subplots(1, 2, figsize=(10.0, 4.2), sharey=True)
    for ax, key, xlabel in zip(
        axes, ("nfe_per_step", "ms_per_step"), ("network evaluations per action", "ms per step")
    ):
        for i, row in enumerate(rows):
            x = max(float(row[key]), 1e-3)
            ax.scatter([x], [row["success_rate"]], color=f"C{i}", marker="o")
            ax.scatter([x], [row["mean_score"]], color=f"C{i}", marker="x")
            ax.annotate(row["label"], (x, row["success_rate"]), textcoords="offset points", xytext=(4, 4), fontsize=7)
        values = [max(float(row[key]), 1e-3) for row in rows]
        low, high = min(values) / 1.6, max(values) * 1.6
        ax.set_xscale("log")
        ax.set_xlim(low, high)
        ax.set_xticks([t * 10**e for e in range(-1, 5) for t in (1, 2, 5) if low <= t * 10**e <= high])
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.set_ylim(-0.05, 1.1)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("success rate (o), mean score (x)")
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, out)
