"""DVD (DeepVideoDeblurring, Su et al. CVPR 2017): ``quantitative_datasets/<seq>/{input,GT}/NNNNN.jpg``.

71 videos (6708 pairs) of 1280x720 JPEG frames, except IMG_0049, which is portrait (720x1280): orientation is read per
sequence, never assumed. The official test split is the 10 videos of `DVD_TEST` (100 frames each); the other 61 are
the training split. The root may be ``DeepVideoDeblurring_Dataset``, its parent, or ``quantitative_datasets`` itself.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from diffusekit.core.errors import DataError
from diffusekit.video.frames import VideoSequence, frame_paths, sequence_folders

__all__ = ["DVD_LAYOUT", "DVD_SPLITS", "DVD_TEST", "dvd_root", "dvd_sequences"]

DVD_TEST = (
    "720p_240fps_2",
    "IMG_0003",
    "IMG_0021",
    "IMG_0030",
    "IMG_0031",
    "IMG_0032",
    "IMG_0033",
    "IMG_0037",
    "IMG_0039",
    "IMG_0049",
)
DVD_SPLITS = ("train", "test", "all")
DVD_LAYOUT = "DeepVideoDeblurring_Dataset/quantitative_datasets/<seq>/{input,GT}/NNNNN.jpg"


def _is_sequence(folder: Path) -> bool:
    return (folder / "input").is_dir() and (folder / "GT").is_dir()


def dvd_root(root: str | Path) -> Path:
    """The ``quantitative_datasets`` folder of a DVD root; DataError with the expected layout otherwise."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"DVD folder not found (expected {DVD_LAYOUT})", root)
    for candidate in (
        root / "DeepVideoDeblurring_Dataset" / "quantitative_datasets",
        root / "quantitative_datasets",
    ):
        if candidate.is_dir():
            return candidate
    if any(_is_sequence(folder) for folder in sequence_folders(root)):
        return root
    raise DataError(f"not a DVD folder: no quantitative_datasets/ (expected {DVD_LAYOUT})", root)


def dvd_sequences(root: str | Path, split: str = "test") -> list[VideoSequence]:
    """The DVD videos of ``split``: ``test`` (the official 10), ``train`` (the others) or ``all``.

    A test split with fewer than the 10 official videos present is read with a warning naming the missing ones.
    """
    if split not in DVD_SPLITS:
        raise DataError(f"unknown DVD split {split!r}; expected one of {', '.join(DVD_SPLITS)}", root)
    folder = dvd_root(root)
    sequences = []
    found = set()
    for seq in sequence_folders(folder):
        found.add(seq.name)
        if (split == "test") != (seq.name in DVD_TEST) and split != "all":
            continue
        if not _is_sequence(seq):
            raise DataError(f"expected input/ and GT/ frame folders in each video ({DVD_LAYOUT})", seq)
        sequences.append(VideoSequence(seq.name, frame_paths(seq / "input"), frame_paths(seq / "GT")))
    if not sequences:
        raise DataError(f"no {split} videos (expected {DVD_LAYOUT}; test = {', '.join(DVD_TEST)})", folder)
    missing = [name for name in DVD_TEST if name not in found]
    if split == "test" and missing:
        warnings.warn(
            f"{folder}: only {len(DVD_TEST) - len(missing)} of the 10 official DVD test videos found "
            f"(missing {', '.join(missing)})",
            stacklevel=2,
        )
    return sequences
