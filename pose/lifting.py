"""Clips of 2D keypoint sequences and their 3D poses for 2D-to-3D lifting (DDHPose), registered for mmengine.

Conventions of VideoPose3D / MixSTE / DDHPose: the 2D keypoints are normalised by the image width
(`camera.normalize_screen_coordinates`), the 3D poses are camera-space metres made root-relative (root joint = 0),
a clip is F consecutive frames (243 in the paper) and frames outside a sequence repeat its first or last frame
(replicate padding). Training clips start every ``stride`` frames; evaluation tiles a sequence with
non-overlapping clips, the last one right-aligned, so that every frame is predicted exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset

from diffusekit.core.errors import DataError
from diffusekit.pose.camera import normalize_screen_coordinates
from diffusekit.pose.h36m import LiftingSequence

__all__ = ["LiftingClips", "eval_windows", "joint_layout", "load_sequences", "normalized_2d", "root_relative", "window"]


def window(array: np.ndarray, start: int, frames: int) -> np.ndarray:
    """``frames`` consecutive entries of ``array`` from ``start`` (may be negative or run past the end): indices
    outside the sequence repeat its first / last entry."""
    index = np.clip(np.arange(start, start + frames), 0, len(array) - 1)
    return array[index]


def eval_windows(length: int, frames: int) -> list[tuple[int, int]]:
    """(start, first new frame) of the clips tiling a sequence of ``length``: starts 0, F, 2F, ...; the last clip
    ends at the sequence's end (it overlaps its predecessor, whose frames it does not predict again); a sequence
    shorter than F is one padded clip."""
    if length <= frames:
        return [(0, 0)]
    starts = list(range(0, length - frames + 1, frames))
    out = [(s, s) for s in starts]
    end = starts[-1] + frames
    if end < length:
        out.append((length - frames, end))
    return out


def normalized_2d(sequence: LiftingSequence) -> np.ndarray:
    return normalize_screen_coordinates(sequence.keypoints_2d, sequence.width, sequence.height).astype(np.float32)


def root_relative(pose: np.ndarray, root: int) -> np.ndarray:
    return (pose - pose[..., root : root + 1, :]).astype(np.float32)


def joint_layout(dataset: str) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
    """(root joint, left joints, right joints) of a dataset's 17-joint order."""
    from diffusekit.pose import skeleton

    if dataset == "h36m":
        return 0, skeleton.H36M_FLIP_LEFT, skeleton.H36M_FLIP_RIGHT
    if dataset == "3dhp":
        return skeleton.MPI3DHP_PARENTS.index(-1), skeleton.MPI3DHP_FLIP_LEFT, skeleton.MPI3DHP_FLIP_RIGHT
    raise DataError(f"unknown dataset {dataset!r}; expected h36m or 3dhp")


def load_sequences(
    data_root: str,
    split: str,
    dataset: str = "h36m",
    source: str = "cpn_ft_h36m_dbb",
    allow_pickle: bool = False,
    subjects: Sequence[str] | None = None,
) -> list[LiftingSequence]:
    """The sequences of a split: Human3.6M train (S1, S5-S8) / test (S9, S11) or the given ``subjects``, or
    MPI-INF-3DHP train / test (read once inside `readfirst.read_first`)."""
    from pathlib import Path

    from diffusekit.pose.readfirst import remembered

    key = ("lifting", str(Path(data_root).absolute()), split, dataset, source, bool(allow_pickle),
           tuple(subjects or ()))  # fmt: skip
    return remembered(key, lambda: _read_sequences(data_root, split, dataset, source, allow_pickle, subjects))


def _read_sequences(data_root, split, dataset, source, allow_pickle, subjects) -> list[LiftingSequence]:
    if dataset == "h36m":
        from diffusekit.pose.h36m import load_h36m, load_split

        if subjects:
            return load_h36m(data_root, source, subjects=subjects, allow_pickle=allow_pickle)
        return load_split(data_root, split, source=source, allow_pickle=allow_pickle)
    if dataset == "3dhp":
        from diffusekit.pose.mpi3dhp import load_3dhp

        return load_3dhp(data_root, split, allow_pickle=allow_pickle)
    raise DataError(f"unknown dataset {dataset!r}; expected h36m or 3dhp")


@DATASETS.register_module()
class LiftingClips(Dataset):
    """Training clips: ``{"keypoints_2d": (F, J, 2) normalised, "pose_3d": (F, J, 3) root-relative metres}``.

    Args:
        data_root, split, dataset, source, allow_pickle, subjects: see `load_sequences`.
        frames: clip length F.
        stride: frames between clip starts (default F // 3).
        flip: probability of the horizontal flip augmentation (x negated, left and right joints swapped, in 2D
            and 3D alike).
        tiling: evaluation clips instead (validation during training): each sequence tiled as `eval_windows` does,
            and each item also has ``valid`` (F,), 1 for the frames this clip predicts (new in it, inside the
            sequence and, on 3DHP test data, valid).
    The root joint and the left / right pairs come from the dataset's skeleton (`joint_layout`).
    """

    def __init__(
        self,
        data_root: str,
        split: str = "train",
        frames: int = 243,
        stride: int | None = None,
        dataset: str = "h36m",
        source: str = "cpn_ft_h36m_dbb",
        flip: float = 0.5,
        allow_pickle: bool = False,
        subjects: Sequence[str] | None = None,
        tiling: bool = False,
    ):
        self.frames = int(frames)
        self.tiling = bool(tiling)
        self.flip = float(flip)
        sequences = load_sequences(data_root, split, dataset, source, allow_pickle, subjects)
        root, left, right = joint_layout(dataset)
        self.inputs = [normalized_2d(s) for s in sequences]
        self.targets = [root_relative(s.pose_3d, root) for s in sequences if s.pose_3d is not None]
        if len(self.targets) != len(sequences):
            raise DataError(f"the {split} split has sequences without 3D poses", data_root)
        stride = max(1, int(stride or self.frames // 3))
        self.index = [
            (i, start, keep)
            for i, keypoints in enumerate(self.inputs)
            for start, keep in (
                eval_windows(len(keypoints), self.frames)
                if self.tiling
                else [(s, s) for s in range(0, max(1, len(keypoints) - self.frames + stride), stride)]
            )
        ]
        self.valid = [np.ones(len(s.keypoints_2d), bool) if s.valid is None else np.asarray(s.valid, bool)
                      for s in sequences]  # fmt: skip
        self.flip_index = np.arange(self.inputs[0].shape[1])
        self.flip_index[list(left) + list(right)] = list(right) + list(left)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> dict:
        i, start, keep = self.index[item]
        keypoints = window(self.inputs[i], start, self.frames)
        pose = window(self.targets[i], start, self.frames)
        if self.flip and float(torch.rand(())) < self.flip:  # torch: seeded per worker by the engine
            keypoints, pose = keypoints[:, self.flip_index].copy(), pose[:, self.flip_index].copy()
            keypoints[..., 0] *= -1
            pose[..., 0] *= -1
        out = {"keypoints_2d": torch.from_numpy(np.ascontiguousarray(keypoints)), "pose_3d": torch.from_numpy(pose)}
        if self.tiling:
            positions = np.arange(start, start + self.frames)
            new = (positions >= keep) & (positions < len(self.inputs[i]))
            out["valid"] = torch.from_numpy((new & window(self.valid[i], start, self.frames)).astype(np.float32))
        return out
