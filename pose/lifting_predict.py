"""3D poses from a 2D keypoints file (npz, PoseTrack18 or COCO JSON, VideoPose3D 2D): one npz and one figure per
sequence (track)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from diffusekit.core.errors import DataError
from diffusekit.core.progress import ProgressLine
from diffusekit.pose.h36m import LiftingSequence
from diffusekit.pose.lifting_eval import lifting_figure, predict_sequence

__all__ = ["lift_keypoints_file"]

logger = logging.getLogger(__name__)


def _stem(name: str, input_path: str | Path) -> str:
    """The output file stem of a sequence: its name with spaces and slashes replaced."""
    return name.replace(" ", "_").replace("/", "_") or Path(input_path).stem


def lift_keypoints_file(
    model,
    input_path: str | Path,
    out: str | Path,
    dataset: str = "h36m",
    hypotheses: int = 1,
    steps: int = 1,
    flip: bool = True,
    batch_size: int = 16,
    width: int | None = None,
    height: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[dict]:
    """Lift every sequence of ``input_path`` (see `read_keypoints_2d`; ``width``/``height`` when the file does not
    give the image size) with ``hypotheses`` samples of ``steps`` DDIM steps. Writes ``out/<sequence>.npz``
    (``pose_3d`` (N, 17, 3) = the mean of the hypotheses, metres, root-relative, camera axes; ``hypotheses``; the 2D
    input) and ``out/<sequence>.png``; returns one summary per sequence. Skipped tracks are logged as warnings."""
    from diffusekit.pose.keypoints2d import TrackSkipped, read_keypoints_2d

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackSkipped)
        inputs = read_keypoints_2d(input_path, width=width, height=height)
    for warning in caught:
        logger.warning("%s", warning.message)
    stems = [_stem(keypoints.name, input_path) for keypoints in inputs]
    source = Path(input_path).resolve()
    for stem in stems:
        for suffix in (".npz", ".png"):
            if (out / f"{stem}{suffix}").resolve() == source:
                raise DataError(f"predict would overwrite its input {source.name} here; choose another --out", out)
    generator = torch.Generator().manual_seed(seed)
    line = ProgressLine(enabled=progress)
    written = []
    for n, keypoints in enumerate(inputs):
        line.update(f"lifting: sequence {n + 1}/{len(inputs)} ({len(keypoints.keypoints)} frames)")
        sequence = LiftingSequence(
            keypoints.name, "", keypoints.keypoints, None, None, keypoints.width, keypoints.height
        )
        hyps = predict_sequence(model, sequence, hypotheses, steps, flip, batch_size, generator)
        stem = stems[n]
        arrays = dict(pose_3d=hyps.mean(0), hypotheses=hyps, keypoints_2d=sequence.keypoints_2d)
        np.savez_compressed(out / f"{stem}.npz", **arrays, width=sequence.width, height=sequence.height)
        figure = lifting_figure(out / f"{stem}.png", sequence, hyps, dataset, f"{stem}: H={hypotheses}, K={steps}")
        written.append(dict(sequence=stem, frames=len(sequence.keypoints_2d), npz=str(out / f"{stem}.npz"),
                            figure=str(figure)))  # fmt: skip
    line.finish(f"lifting: {len(inputs)} sequences")
    return written
