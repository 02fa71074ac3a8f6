"""Generic paired folders (one sub-folder per sequence, or one folder of frames = one sequence) and unpaired
prediction input (a frame folder, a video file or a single image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.video.frames import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    VideoSequence,
    frame_paths,
    read_frame,
    read_frames,
    read_video,
    sequence_folders,
)

__all__ = ["FOLDERS_LAYOUT", "input_sequence", "paired_sequences"]

FOLDERS_LAYOUT = "<blur_root>/<seq>/*.png and <sharp_root>/<seq>/*.png (or frames directly in both roots)"


def _has_frames(folder: Path) -> bool:
    return any(
        p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()
    )


def paired_sequences(blur_root: str | Path, sharp_root: str | Path | None = None) -> list[VideoSequence]:
    """Sequences from a blurry and a sharp folder of the same shape; without ``sharp_root``, blurry frames only.

    Each root holds either one sub-folder of frames per sequence (the names must match) or frames directly (one
    sequence, named after the blurry folder).
    """
    blur_root = Path(blur_root)
    sharp_root = None if sharp_root is None else Path(sharp_root)
    for root in (blur_root, sharp_root):
        if root is not None and not root.is_dir():
            raise DataError(f"folder not found (expected {FOLDERS_LAYOUT})", root)
    if _has_frames(blur_root):
        sharp = None if sharp_root is None else frame_paths(sharp_root)
        return [VideoSequence(blur_root.name, frame_paths(blur_root), sharp)]
    blur_dirs = sequence_folders(blur_root)
    if not blur_dirs:
        raise DataError(f"no frames and no sequence folders (expected {FOLDERS_LAYOUT})", blur_root)
    if sharp_root is not None:
        extra = sorted({p.name for p in sequence_folders(sharp_root)} - {p.name for p in blur_dirs})
        if extra:
            raise DataError(f"{len(extra)} sharp sequences have no blurry folder, e.g. {extra[0]}", sharp_root)
    sequences = []
    for folder in blur_dirs:
        sharp = None
        if sharp_root is not None:
            if not (sharp_root / folder.name).is_dir():
                raise DataError(f"no sharp folder for the blurry sequence {folder}", sharp_root / folder.name)
            sharp = frame_paths(sharp_root / folder.name)
        sequences.append(VideoSequence(folder.name, frame_paths(folder), sharp))
    return sequences


def input_sequence(path: str | Path) -> tuple[str, np.ndarray, list[str]]:
    """(name, (T, H, W, 3) uint8 RGB frames, frame file names) of a prediction input: a folder of frames, a video
    file (frames named ``00000.png``, ``00001.png``, ...) or a single image (a one-frame sequence)."""
    path = Path(path)
    if not path.exists():
        raise DataError("input not found (expected a frame folder or a video file)", path)
    if path.is_dir():
        files = frame_paths(path)
        return path.name, read_frames(files), [p.name for p in files]
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        frames = read_video(path)
        return path.stem, frames, [f"{i:05d}.png" for i in range(len(frames))]
    if suffix in IMAGE_SUFFIXES:
        return path.stem, read_frame(path)[None], [path.name]
    raise DataError(
        f"expected a frame folder, a video ({', '.join(VIDEO_SUFFIXES)}) or an image ({', '.join(IMAGE_SUFFIXES)})",
        path,
    )
