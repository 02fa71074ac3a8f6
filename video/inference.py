"""Restoring whole sequences in bounded memory: windows of frames in time, overlapping tiles in space, blended.

A sequence of any length and size is cut into clips of ``clip`` frames (stride ``clip - clip_overlap``, the last
clip aligned to the end; a sequence shorter than a clip is one shorter clip, which MRPE handles) and each clip into
``tile x tile`` tiles overlapping by ``overlap`` pixels (the last tile aligned to the border). Each restored tile is
weighted by a ramp that falls towards its inner borders (in space and time), and the weighted sum is normalised,
so seams vanish. Frames are emitted as soon as no later clip covers them, so memory holds one clip's
accumulators, not the sequence (VRT's ``--tile``/``--tile_overlap`` test scheme, written for streaming).

Sampling noise is drawn per frame from a generator seeded by (seed, frame index) at full frame size and sliced per
tile, so a pixel gets the same initial noise however the sequence is tiled: with a deterministic sampler (DDIM,
eta = 0, or DPM-Solver++) tiled and untiled restorations differ only by the network's limited context at tile
borders.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["TileSettings", "restore_sequence", "spans"]


@dataclass(frozen=True)
class TileSettings:
    """``clip`` frames per window (None: the model's ``max_frames``), ``clip_overlap`` frames shared by neighbouring
    windows, ``tile`` pixels per side (None: whole frames), ``overlap`` pixels shared by neighbouring tiles."""

    clip: int | None = None
    clip_overlap: int = 2
    tile: int | None = 256
    overlap: int = 32


def spans(length: int, size: int | None, overlap: int) -> list[tuple[int, int]]:
    """Start/stop pairs of windows of ``size`` covering ``range(length)``, overlapping by ``overlap``; the last one
    ends at ``length``. One window when ``size`` is None or not smaller than ``length``."""
    if size is None or size >= length:
        return [(0, length)]
    if not 0 <= overlap < size:
        raise ValueError(f"overlap {overlap} must be smaller than the window {size}")
    starts = list(range(0, length - size, size - overlap)) + [length - size]
    return [(s, s + size) for s in sorted(set(starts))]


def _ramp(length: int, start: int, stop: int, total: int, overlap: int) -> torch.Tensor:
    """1-D blending weights of one window: rising over ``overlap`` at an inner start, falling at an inner stop."""
    weight = torch.ones(length)
    if overlap <= 0:
        return weight
    ramp = torch.arange(1, overlap + 1, dtype=torch.float32) / (overlap + 1)
    n = min(overlap, length)
    if start > 0:
        weight[:n] = torch.minimum(weight[:n], ramp[:n])
    if stop < total:
        weight[-n:] = torch.minimum(weight[-n:], ramp[:n].flip(0))
    return weight


def _frame_noise(seed: int, index: int, samples: int, height: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + index)
    return torch.randn((samples, 3, height, width), generator=generator)


def restore_sequence(
    model,
    frames: np.ndarray,
    *,
    steps: int | None = 10,
    samples: int = 1,
    sampler: str = "ddim",
    eta: float = 0.0,
    seed: int = 0,
    tiles: TileSettings = TileSettings(),
    device: torch.device | str = "cpu",
    on_clip=None,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(index, restored uint8 (H, W, 3), uncertainty float32 (H, W))`` for every frame of ``frames``
    (T, H, W, 3) uint8 RGB, in order, restored by ``model.restore`` (DIVD or DeterministicDeblur).
    ``on_clip(done, total)`` is called after each clip (progress)."""
    total, height, width, _ = frames.shape
    clip = min(tiles.clip or model.max_frames, model.max_frames)
    clip_overlap = min(tiles.clip_overlap, clip - 1)
    windows = spans(total, clip, clip_overlap)
    rows = spans(height, tiles.tile, tiles.overlap)
    cols = spans(width, tiles.tile, tiles.overlap)
    acc = {}  # frame index -> [weighted sum (3, H, W), weighted uncertainty (H, W), weight (H, W)]
    noise_cache: dict[int, torch.Tensor] = {}
    emitted = 0
    for number, (t0, t1) in enumerate(windows, start=1):
        blur = torch.from_numpy(np.ascontiguousarray(frames[t0:t1])).permute(0, 3, 1, 2).float().div(255)
        noise = torch.stack(
            [noise_cache.setdefault(i, _frame_noise(seed, i, samples, height, width)) for i in range(t0, t1)], 1
        )
        t_weight = _ramp(t1 - t0, t0, t1, total, clip_overlap)
        for i in range(t0, t1):
            acc.setdefault(i, [torch.zeros(3, height, width), torch.zeros(height, width), torch.zeros(height, width)])
        for y0, y1 in rows:
            for x0, x1 in cols:
                tile = blur[:, :, y0:y1, x0:x1].unsqueeze(0).to(device)
                result = model.restore(
                    tile,
                    steps=steps,
                    samples=samples,
                    sampler=sampler,
                    eta=eta,
                    noise=noise[:, :, :, y0:y1, x0:x1].unsqueeze(1).to(device),
                )
                weight = torch.outer(
                    _ramp(y1 - y0, y0, y1, height, tiles.overlap), _ramp(x1 - x0, x0, x1, width, tiles.overlap)
                )
                restored, spread = result.frames[0].float().cpu(), result.uncertainty[0].float().cpu()
                for k, i in enumerate(range(t0, t1)):
                    w = weight * t_weight[k]
                    acc[i][0][:, y0:y1, x0:x1] += restored[k] * w
                    acc[i][1][y0:y1, x0:x1] += spread[k] * w
                    acc[i][2][y0:y1, x0:x1] += w
        if on_clip is not None:
            on_clip(number, len(windows))
        next_start = windows[number][0] if number < len(windows) else total
        while emitted < next_start:
            total_sum, spread_sum, weight_sum = acc.pop(emitted)
            noise_cache.pop(emitted, None)
            image = (total_sum / weight_sum).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
            yield emitted, image, (spread_sum / weight_sum).numpy()
            emitted += 1
