"""Rollout animations: frames (H, W, 3) uint8 written as an animated GIF (Pillow) or as a folder of PNG frames."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["save_animation"]


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
