"""BSD (Beam-Splitter Deblurring, Zhong et al. ECCV 2020): ``BSD_<exp>/{train,valid,test}/<seq>/{Blur,Sharp}/RGB/``.

Frames are 640x480 PNG named ``%08d.png``. ``<exp>`` names the sharp and blurry exposure times, e.g. ``1ms8ms``,
``2ms16ms`` or ``3ms24ms``; the root may be the ``BSD`` folder holding several ``BSD_<exp>`` folders, its parent,
or one ``BSD_<exp>`` folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from diffusekit.core.errors import DataError
from diffusekit.video.frames import VideoSequence, frame_paths, sequence_folders

__all__ = ["BSD_EXPOSURES", "BSD_LAYOUT", "BSD_SPLITS", "bsd_root", "bsd_sequences"]

BSD_EXPOSURES = ("1ms8ms", "2ms16ms", "3ms24ms")
BSD_SPLITS = ("train", "valid", "test")
BSD_LAYOUT = "BSD/BSD_<exp>/{train,valid,test}/<seq>/{Blur,Sharp}/RGB/%08d.png"
_EXPOSURE = re.compile(r"^\d+ms\d+ms$")


def bsd_root(root: str | Path, exposure: str = "2ms16ms") -> Path:
    """The ``BSD_<exposure>`` folder: ``root`` itself or its child; DataError naming the exposures found."""
    root = Path(root)
    if not _EXPOSURE.match(exposure):
        raise DataError(f"invalid BSD exposure {exposure!r}; expected e.g. {', '.join(BSD_EXPOSURES)}", root)
    if not root.is_dir():
        raise DataError(f"BSD folder not found (expected {BSD_LAYOUT})", root)
    if root.name == f"BSD_{exposure}":
        return root
    for candidate in (root / f"BSD_{exposure}", root / "BSD" / f"BSD_{exposure}"):
        if candidate.is_dir():
            return candidate
    if root.name.startswith("BSD_") and any((root / split).is_dir() for split in BSD_SPLITS):
        raise DataError(f"this is {root.name}, not the requested exposure BSD_{exposure}", root)
    found = sorted(p.name for p in [*root.glob("BSD_*"), *root.glob("BSD/BSD_*")] if p.is_dir())
    if found:
        raise DataError(f"no BSD_{exposure} folder; found {', '.join(found)} (choose the exposure)", root)
    raise DataError(f"not a BSD folder: no BSD_<exp>/ (expected {BSD_LAYOUT})", root)


def bsd_sequences(root: str | Path, split: str = "test", exposure: str = "2ms16ms") -> list[VideoSequence]:
    """The sequences of a BSD split (``train``, ``valid`` (or ``val``) or ``test``) at one exposure setting."""
    split = "valid" if split == "val" else split
    if split not in BSD_SPLITS:
        raise DataError(f"unknown BSD split {split!r}; expected one of {', '.join(BSD_SPLITS)}", root)
    folder = bsd_root(root, exposure) / split
    if not folder.is_dir():
        raise DataError(f"BSD split folder not found (expected {BSD_LAYOUT})", folder)
    sequences = []
    for seq in sequence_folders(folder):
        blur, sharp = seq / "Blur" / "RGB", seq / "Sharp" / "RGB"
        if not blur.is_dir() or not sharp.is_dir():
            raise DataError(f"expected Blur/RGB/ and Sharp/RGB/ frame folders in each sequence ({BSD_LAYOUT})", seq)
        sequences.append(VideoSequence(seq.name, frame_paths(blur), frame_paths(sharp)))
    if not sequences:
        raise DataError(f"no sequence folders (expected {BSD_LAYOUT})", folder)
    return sequences
