"""Training clips and evaluation sequences of paired blurry/sharp video, registered for mmengine.

`find_sequences` reads any supported layout as a list of `VideoSequence` (file lists only; nothing is decoded).
`VideoDeblurClips` gives random training clips ``{"blur": (T, 3, c, c), "sharp": (T, 3, c, c), "index": i}`` in
[0, 1] with the same crop, flips and temporal reversal applied to both; frames are decoded on demand through a small
LRU cache, so a 2103-frame GoPro split never sits in memory. `VideoDeblurSequences` gives whole full-resolution
sequences for evaluation, and `temporal_indices` the frame window around a centre frame with the sequence edges
handled (reflection or replication: no frame is dropped).

Layouts (``layout=``): ``gopro``, ``dvd``, ``bsd`` (see their modules) and ``folders``:
``<root>/<split>/blur/<seq>/*.png`` with ``<root>/<split>/sharp/<seq>/*.png`` (``sharp/`` optional: blurry frames only,
for prediction; ``split=None`` reads ``<root>/blur`` and ``<root>/sharp``; frames directly in ``blur/`` and ``sharp/``
form one sequence).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset

from diffusekit.core.errors import DataError
from diffusekit.video.bsd import bsd_sequences
from diffusekit.video.dvd import dvd_sequences
from diffusekit.video.folders import paired_sequences
from diffusekit.video.frames import VideoSequence, frame_size, read_frame, read_frames, to_tensor
from diffusekit.video.gopro import gopro_sequences

__all__ = [
    "LAYOUTS",
    "PADDINGS",
    "VideoDeblurClips",
    "VideoDeblurSequences",
    "find_sequences",
    "temporal_indices",
]

LAYOUTS = ("gopro", "dvd", "bsd", "folders")
PADDINGS = ("reflection", "replicate")
_LAYOUT_OPTIONS = {"gopro": ("blur",), "dvd": (), "bsd": ("exposure",), "folders": ()}


def find_sequences(
    root: str | Path, layout: str = "gopro", split: str | None = "test", **kwargs
) -> list[VideoSequence]:
    """The sequences of ``split`` in a dataset of ``layout`` (gopro, dvd, bsd or folders; see the module docstring).

    Options: ``blur`` (gopro: ``blur`` or ``blur_gamma``), ``exposure`` (bsd, e.g. ``2ms16ms``).
    """
    if layout not in LAYOUTS:
        raise DataError(f"unknown video layout {layout!r}; expected one of {', '.join(LAYOUTS)}", root)
    unknown = sorted(set(kwargs) - set(_LAYOUT_OPTIONS[layout]))
    if unknown:
        allowed = ", ".join(_LAYOUT_OPTIONS[layout]) or "none"
        raise DataError(f"layout {layout!r} takes no option {unknown[0]!r} (its options: {allowed})", root)
    if layout == "gopro":
        return gopro_sequences(root, split, **kwargs)
    if layout == "dvd":
        return dvd_sequences(root, split, **kwargs)
    if layout == "bsd":
        return bsd_sequences(root, split, **kwargs)
    base = Path(root) if not split else Path(root) / split
    if not (base / "blur").is_dir():
        raise DataError("expected <root>/<split>/blur/<seq>/ frame folders (and sharp/ beside blur/)", base / "blur")
    sharp = base / "sharp"
    return paired_sequences(base / "blur", sharp if sharp.is_dir() else None)


def temporal_indices(center: int, length: int, num_frames: int, padding: str = "reflection") -> list[int]:
    """Indices of the ``num_frames`` window around ``center`` in a sequence of ``length`` frames.

    Out-of-range positions are mirrored about the edge frame (``reflection``: [2, 1, 0, 1, 2] at 0 for 5 frames,
    repeated as often as needed for sequences shorter than the window) or clamped (``replicate``: [0, 0, 0, 1, 2]).
    An even window has one more frame before the centre than after it.
    """
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding {padding!r}; expected one of {', '.join(PADDINGS)}")
    if length < 1 or num_frames < 1:
        raise ValueError(f"need length >= 1 and num_frames >= 1, got {length} and {num_frames}")
    if not 0 <= center < length:
        raise ValueError(f"center {center} outside a sequence of {length} frames")
    positions = range(center - num_frames // 2, center - num_frames // 2 + num_frames)
    if padding == "replicate" or length == 1:
        return [min(max(i, 0), length - 1) for i in positions]
    period = 2 * (length - 1)
    return [i % period if i % period < length else period - i % period for i in positions]


class _FrameCache:
    """Decoded frames by path, least recently used dropped first."""

    def __init__(self, capacity: int):
        self.capacity = max(0, int(capacity))
        self._frames: OrderedDict[Path, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._frames)

    def get(self, path: Path) -> np.ndarray:
        frame = self._frames.get(path)
        if frame is not None:
            self._frames.move_to_end(path)
            return frame
        frame = read_frame(path)
        if self.capacity:
            self._frames[path] = frame
            while len(self._frames) > self.capacity:
                self._frames.popitem(last=False)
        return frame


def _checked_sizes(sequences: list[VideoSequence]) -> list[tuple[int, int]]:
    """(W, H) of each sequence from its first frames' headers; DataError when blur and sharp sizes differ."""
    sizes = []
    for seq in sequences:
        size = frame_size(seq.blur[0])
        if seq.sharp is not None:
            sharp = frame_size(seq.sharp[0])
            if sharp != size:
                raise DataError(
                    f"sharp frame is {sharp[0]}x{sharp[1]} but blurry frame {seq.blur[0].name} is {size[0]}x{size[1]}",
                    seq.sharp[0],
                )
        sizes.append(size)
    return sizes


@DATASETS.register_module()
class VideoDeblurClips(Dataset):
    """Clips of ``num_frames`` paired blurry/sharp frames for training.

    With ``augment`` (training) item i is a random clip: a sequence drawn in proportion to its number of clip starts,
    a random start, a random ``crop`` x ``crop`` window, and horizontal flip, vertical flip and temporal reversal
    (each with probability 1/2), all applied identically to blur and sharp. The draws come from numpy's global RNG
    (seeded by mmengine's ``randomness`` and its worker_init_fn, and saved with checkpoints) mixed with ``seed`` and
    the index. Without ``augment`` (cheap validation) item i is fixed: sequence ``i % n``, the middle clip, the centre
    crop. ``crop=None`` keeps full frames (then batch only sequences of one size).

    Args:
        data_root, layout, split, reader_kwargs: passed to `find_sequences`.
        num_frames: frames per clip; every sequence needs at least this many (DataError naming it otherwise).
        crop: square crop side in pixels (frames smaller than it are a DataError naming the sequence), or None.
        length: items per epoch; default the total frame count with ``augment``, the number of sequences without.
        max_sequences: keep the first N sequences.
        cache_frames: decoded frames kept in the LRU cache (per worker; 32 frames of 1280x720 take 88 MB).
    """

    def __init__(
        self,
        data_root: str,
        layout: str = "gopro",
        split: str | None = "train",
        num_frames: int = 5,
        crop: int | None = 64,
        augment: bool = True,
        length: int | None = None,
        max_sequences: int | None = None,
        seed: int = 0,
        cache_frames: int = 32,
        **reader_kwargs,
    ):
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if crop is not None and crop < 1:
            raise ValueError(f"crop must be a positive size or None, got {crop}")
        sequences = find_sequences(data_root, layout, split, **reader_kwargs)
        self.sequences = sequences[:max_sequences] if max_sequences else sequences
        for seq in self.sequences:
            if seq.sharp is None:
                raise DataError(f"sequence {seq.name!r} has no sharp frames (training needs pairs)", seq.blur[0].parent)
            if len(seq) < num_frames:
                raise DataError(
                    f"sequence {seq.name!r} has {len(seq)} frames, fewer than num_frames={num_frames}",
                    seq.blur[0].parent,
                )
        self.sizes = _checked_sizes(self.sequences)
        if crop is not None:
            for seq, (w, h) in zip(self.sequences, self.sizes):
                if min(w, h) < crop:
                    raise DataError(
                        f"sequence {seq.name!r}: frames of {w}x{h} are smaller than the {crop}x{crop} crop",
                        seq.blur[0].parent,
                    )
        self.num_frames = int(num_frames)
        self.crop = None if crop is None else int(crop)
        self.augment = bool(augment)
        self.seed = int(seed)
        default = sum(len(s) for s in self.sequences) if augment else len(self.sequences)
        self.length = int(length) if length is not None else default
        starts = np.array([len(s) - self.num_frames + 1 for s in self.sequences], dtype=np.float64)
        self._weights = starts / starts.sum()
        self._cache = _FrameCache(cache_frames)

    def __len__(self) -> int:
        return self.length

    def _window(self, index: int) -> tuple[int, int, int, int, bool, bool, bool]:
        """(sequence, start, top, left, hflip, vflip, reverse) of item ``index``."""
        if not self.augment:
            k = index % len(self.sequences)
            w, h = self.sizes[k]
            start = (len(self.sequences[k]) - self.num_frames) // 2
            top, left = (0, 0) if self.crop is None else ((h - self.crop) // 2, (w - self.crop) // 2)
            return k, start, top, left, False, False, False
        rng = np.random.default_rng([self.seed, index, np.random.randint(2**31)])
        k = int(rng.choice(len(self.sequences), p=self._weights))
        w, h = self.sizes[k]
        start = int(rng.integers(0, len(self.sequences[k]) - self.num_frames + 1))
        top = left = 0
        if self.crop is not None:
            top, left = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        hflip, vflip, reverse = (bool(b) for b in rng.random(3) < 0.5)
        return k, start, top, left, hflip, vflip, reverse

    def _load(self, path: Path, size: tuple[int, int], other: Path | None = None) -> np.ndarray:
        frame = self._cache.get(path)
        if frame.shape[1::-1] != size:
            beside = f"the blurry frame {other.name}" if other is not None else f"{size[0]}x{size[1]} (the sequence)"
            raise DataError(f"frame is {frame.shape[1]}x{frame.shape[0]}, unlike {beside}", path)
        return frame

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        k, start, top, left, hflip, vflip, reverse = self._window(index)
        seq, size = self.sequences[k], self.sizes[k]
        picks = range(start, start + self.num_frames)
        blur = np.stack([self._load(seq.blur[i], size) for i in picks])
        sharp = np.stack([self._load(seq.sharp[i], size, seq.blur[i]) for i in picks])
        clips = []
        for frames in (blur, sharp):
            if self.crop is not None:
                frames = frames[:, top : top + self.crop, left : left + self.crop]
            if hflip:
                frames = frames[:, :, ::-1]
            if vflip:
                frames = frames[:, ::-1]
            if reverse:
                frames = frames[::-1]
            clips.append(to_tensor(frames))
        return {"blur": clips[0], "sharp": clips[1], "index": index}


@DATASETS.register_module()
class VideoDeblurSequences(Dataset):
    """Whole sequences at full resolution for evaluation (iterate it directly; no collate needed).

    Item i: ``{"blur": (T, 3, H, W), "sharp": (T, 3, H, W) (absent without ground truth), "name": sequence name,
    "frames": blurry frame file names}``, float32 in [0, 1] (uint8 0..255 with ``as_uint8``, a quarter of the memory:
    a 100-frame 1280x720 sequence takes 1.1 GB as float32). Sizes may differ between sequences (DVD's portrait
    IMG_0049); within one, blurry and sharp frames must share a size (DataError naming the file otherwise).

    Args:
        data_root, layout, split, kwargs: passed to `find_sequences`.
        max_sequences: keep the first N sequences; max_frames: keep the first N frames of each.
    """

    def __init__(
        self,
        data_root: str,
        layout: str = "gopro",
        split: str | None = "test",
        max_sequences: int | None = None,
        max_frames: int | None = None,
        as_uint8: bool = False,
        **kwargs,
    ):
        sequences = find_sequences(data_root, layout, split, **kwargs)
        sequences = sequences[:max_sequences] if max_sequences else sequences
        if max_frames:
            sequences = [
                VideoSequence(s.name, s.blur[:max_frames], None if s.sharp is None else s.sharp[:max_frames])
                for s in sequences
            ]
        self.sequences = sequences
        self.as_uint8 = bool(as_uint8)

    def __len__(self) -> int:
        return len(self.sequences)

    def _tensor(self, frames: np.ndarray) -> torch.Tensor:
        if self.as_uint8:
            return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
        return to_tensor(frames)

    def __getitem__(self, index: int) -> dict[str, object]:
        if not 0 <= index < len(self.sequences):
            raise IndexError(index)
        seq = self.sequences[index]
        blur = read_frames(seq.blur)
        item: dict[str, object] = {"blur": self._tensor(blur), "name": seq.name, "frames": seq.frame_names}
        if seq.sharp is not None:
            sharp = read_frames(seq.sharp)
            if sharp.shape[1:3] != blur.shape[1:3]:
                raise DataError(
                    f"sharp frames are {sharp.shape[2]}x{sharp.shape[1]} but blurry frames are "
                    f"{blur.shape[2]}x{blur.shape[1]} ({seq.blur[0]})",
                    seq.sharp[0],
                )
            item["sharp"] = self._tensor(sharp)
        return item
