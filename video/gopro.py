"""GoPro (GOPRO_Large, Nah et al. CVPR 2017): ``GOPRO_Large/{train,test}/<seq>/{blur,blur_gamma,sharp}/NNNNNN.png``.

22 training sequences (2103 frames) and 11 test sequences (1111 frames) of 1280x720 PNG frames whose 6-digit names
do not start at 0 (e.g. ``GOPR0372_07_00/blur/000047.png``). ``blur`` averages the gamma-encoded 240 fps frames and is
what video deblurring papers use; ``blur_gamma`` averages in linear space (the original paper's choice).
"""

from __future__ import annotations

from pathlib import Path

from diffusekit.core.errors import DataError
from diffusekit.video.frames import VideoSequence, frame_paths, sequence_folders

__all__ = ["GOPRO_BLUR", "GOPRO_LAYOUT", "GOPRO_SPLITS", "gopro_root", "gopro_sequences"]

GOPRO_SPLITS = ("train", "test")
GOPRO_BLUR = ("blur", "blur_gamma")
GOPRO_LAYOUT = "GOPRO_Large/{train,test}/<seq>/{blur,blur_gamma,sharp}/NNNNNN.png"


def gopro_root(root: str | Path) -> Path:
    """The ``GOPRO_Large`` folder: ``root`` itself or its child; DataError with the expected layout otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"GoPro folder not found (expected {GOPRO_LAYOUT})", root)
    for candidate in (root, root / "GOPRO_Large"):
        if any((candidate / split).is_dir() for split in GOPRO_SPLITS):
            return candidate
    raise DataError(f"not a GoPro folder: no train/ or test/ (expected {GOPRO_LAYOUT})", root)


def gopro_sequences(root: str | Path, split: str = "test", blur: str = "blur") -> list[VideoSequence]:
    """The sequences of a GoPro split (``train`` or ``test``), blurry frames from ``blur`` or ``blur_gamma``."""
    if split not in GOPRO_SPLITS:
        raise DataError(f"unknown GoPro split {split!r}; expected one of {', '.join(GOPRO_SPLITS)}", root)
    if blur not in GOPRO_BLUR:
        raise DataError(f"unknown GoPro blur folder {blur!r}; expected one of {', '.join(GOPRO_BLUR)}", root)
    folder = gopro_root(root) / split
    if not folder.is_dir():
        raise DataError(f"GoPro split folder not found (expected {GOPRO_LAYOUT})", folder)
    sequences = []
    for seq in sequence_folders(folder):
        if not (seq / blur).is_dir() or not (seq / "sharp").is_dir():
            raise DataError(f"expected {blur}/ and sharp/ frame folders in each sequence ({GOPRO_LAYOUT})", seq)
        sequences.append(VideoSequence(seq.name, frame_paths(seq / blur), frame_paths(seq / "sharp")))
    if not sequences:
        raise DataError(f"no sequence folders (expected {GOPRO_LAYOUT})", folder)
    return sequences
