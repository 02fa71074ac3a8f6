"""Torch datasets of echo frames for training and evaluation (CAMUS, EchoNet-Dynamic), registered for mmengine.

Both readers yield `EchoFrame` records at native size, with the pixel spacing and the file the frame came from (so
predictions can be written back on the same grid); `EchoSegmentation` turns them into network-size samples
``{"image": (1, S, S) in [0, 1], "mask": (1, S, S) in {0, 1}, "index": i}``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset

from diffusekit.core.errors import DataError
from diffusekit.core.progress import ProgressLine
from diffusekit.medical.camus import camus_patients, label_mask, load_camus_case
from diffusekit.medical.echonet import read_echonet_tracings, read_file_list, read_video
from diffusekit.medical.transforms import to_network

__all__ = ["EchoFrame", "EchoSegmentation", "camus_frames", "dataset_frames", "echonet_frames", "frames_read_first"]


@dataclass(frozen=True)
class EchoFrame:
    """One 2-D echo frame at native size: ``image`` (H, W), binary ``mask`` (H, W) or None, spacing (sy, sx)."""

    name: str
    image: np.ndarray
    mask: np.ndarray | None
    spacing: tuple[float, float]
    unit: str  # "mm" (CAMUS) or "px" (EchoNet, no spacing)
    patient: str
    view: str
    phase: str
    source: Path | None = None
    reference_ef: float | None = None  # the dataset's EF for this patient / video (Info_*.cfg, FileList.csv)


def camus_frames(
    root: str | Path,
    split: str | None = "training",
    views: Sequence[str] = ("2CH", "4CH"),
    phases: Sequence[str] = ("ED", "ES"),
    target: str = "lv",
    patients: Sequence[str] | None = None,
    require_gt: bool = True,
) -> list[EchoFrame]:
    """CAMUS frames of a split (or of ``patients``); ``phases`` from ED, ES and half_sequence."""
    names = list(patients) if patients is not None else camus_patients(root, split)
    frames = []
    progress = ProgressLine(enabled=len(names) >= 50)  # the official training split (400 patients) takes a while
    for count, patient in enumerate(names, start=1):
        progress.update(f"reading CAMUS {split or 'patients'}: {count}/{len(names)}")
        for view in views:
            for phase in phases:
                for case in load_camus_case(root, patient, view, phase, require_gt=require_gt):
                    mask = None if case.labels is None else label_mask(case.labels.array, target)
                    ef = case.info.get("EF")
                    frames.append(
                        EchoFrame(
                            case.name,
                            case.image.array,
                            mask,
                            case.image.pixel_spacing,
                            "mm",
                            patient,
                            view,
                            case.phase,
                            case.image.path,
                            float(ef) if isinstance(ef, (int, float)) else None,
                        )
                    )
    progress.finish()
    if not frames:
        raise DataError(f"no CAMUS frames for split {split!r}", root)
    return frames


def echonet_frames(root: str | Path, split: str | None = "TRAIN") -> list[EchoFrame]:
    """The traced ED and ES frames of every EchoNet video of ``split`` that has two tracings."""
    root = Path(root)
    files = read_file_list(root, split)
    tracings = read_echonet_tracings(root)
    listed = set(read_file_list(root)["FileName"].astype(str))
    orphans = sorted(set(tracings) - listed)
    if orphans:
        raise DataError(
            f"tracings for {len(orphans)} videos missing from FileList.csv, e.g. {orphans[0]}",
            root / "VolumeTracings.csv",
        )
    frames = []
    traced = [
        (name, ef) for name, ef in zip(files["FileName"].astype(str), files["EF"], strict=True) if name in tracings
    ]
    # (videos with fewer than two traced frames are dropped, as the official loader does)
    progress = ProgressLine(enabled=len(traced) >= 200)  # the full set takes minutes
    for count, (name, ef) in enumerate(traced, start=1):
        path = root / "Videos" / f"{name}.avi"
        video = read_video(path)
        progress.update(f"reading EchoNet videos: {count}/{len(traced)}")
        for phase, tracing in zip(("ED", "ES"), tracings[name], strict=True):
            if not 0 <= tracing.frame < len(video):
                raise DataError(f"traced frame {tracing.frame} beyond the video's {len(video)} frames", path)
            image = np.asarray(video[tracing.frame])
            mask = tracing.mask(image.shape)
            frames.append(
                EchoFrame(f"{name}_{phase}", image, mask, (1.0, 1.0), "px", name, "A4C", phase, path, float(ef))
            )
    progress.finish()
    if not frames:
        raise DataError(f"no traced videos in split {split!r}", root / "FileList.csv")
    return frames


_DEFAULTS = dict(layout="camus", split="training", views=("2CH", "4CH"), phases=("ED", "ES"), target="lv")
_READ_FIRST: dict[tuple, list[EchoFrame]] = {}  # frames read before a runner builds its datasets (frames_read_first)


def _key(data_root, layout, split, views, phases, target) -> tuple:
    return (str(Path(data_root).expanduser().absolute()), layout, split, tuple(views), tuple(phases), target)


def dataset_frames(
    data_root: str | Path,
    layout: str = "camus",
    split: str = "training",
    views: Sequence[str] = ("2CH", "4CH"),
    phases: Sequence[str] = ("ED", "ES"),
    target: str = "lv",
) -> list[EchoFrame]:
    """The frames an `EchoSegmentation` of these arguments holds (read once when `frames_read_first` is active)."""
    key = _key(data_root, layout, split, views, phases, target)
    if key in _READ_FIRST:
        return _READ_FIRST[key]
    if layout == "camus":
        return camus_frames(data_root, split, views, phases, target)
    if layout == "echonet":
        return echonet_frames(data_root, split)
    raise DataError(f"unknown layout {layout!r}; expected camus or echonet", data_root)


@contextmanager
def frames_read_first(specs: Sequence[Mapping]) -> Iterator[None]:
    """Read the frames of the `EchoSegmentation` dataset configs ``specs`` now, so that a bad file is a DataError
    before a training runner writes its logs, and let the datasets built inside the block reuse them."""
    keys = []
    try:
        for spec in specs:
            if spec.get("type") not in ("EchoSegmentation", EchoSegmentation):
                continue
            args = {k: spec[k] for k in ("layout", "split", "views", "phases", "target") if k in spec}
            frames = dataset_frames(spec["data_root"], **args)
            key = _key(spec["data_root"], **{**_DEFAULTS, **args})
            _READ_FIRST[key] = frames
            keys.append(key)
        yield
    finally:
        for key in keys:
            _READ_FIRST.pop(key, None)


@DATASETS.register_module()
class EchoSegmentation(Dataset):
    """Network-size samples of CAMUS or EchoNet frames (``layout`` ``camus`` or ``echonet``).

    Args:
        data_root: the dataset folder.
        layout: ``camus`` (NIfTI or legacy MHD, detected) or ``echonet``.
        split: CAMUS ``training``/``validation``/``testing``; EchoNet ``TRAIN``/``VAL``/``TEST``.
        size: network input size S.
        views, phases, target: CAMUS selection (see `camus_frames`).
        max_frames: keep only the first N frames (a cheap validation set); None keeps all.
    """

    def __init__(
        self,
        data_root: str,
        layout: str = "camus",
        split: str = "training",
        size: int = 256,
        views: Sequence[str] = ("2CH", "4CH"),
        phases: Sequence[str] = ("ED", "ES"),
        target: str = "lv",
        max_frames: int | None = None,
    ):
        frames = dataset_frames(data_root, layout, split, views, phases, target)
        self.frames = frames[:max_frames] if max_frames else frames
        self.size = int(size)
        # resized once and kept as uint8 (64 KiB per 256 x 256 frame), so an epoch costs no resizing
        self._images, self._masks = [], []
        for frame in self.frames:
            image, mask = to_network(frame.image, self.size, frame.mask)
            self._images.append((image * 255).round().to(torch.uint8))
            self._masks.append(mask.to(torch.uint8))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        image = self._images[index].float() / 255
        return {"image": image, "mask": self._masks[index].float(), "index": index}
