"""``predict`` on user files: NIfTI / MHD images or sequences, PNG frames, AVI videos, or a folder of them.

Each input gets, in ``out``: the mask in the input's own format and geometry (``<stem>_mask.nii.gz`` with the input's
affine and header, ``<stem>_mask.mhd`` with its origin / spacing / direction, ``<stem>_mask.png`` (0/255) or
``<stem>_mask.avi``), the uncertainty map (``<stem>_uncertainty`` as float NIfTI / MHD, or ``.npy`` for PNG and
AVI), and ``<stem>_overlay.png`` (the middle frame with the predicted contour).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import nn

from diffusekit.core.errors import DataError
from diffusekit.medical.datasets import EchoFrame
from diffusekit.medical.echonet import read_video
from diffusekit.medical.inference import InferenceSettings, predict_frames
from diffusekit.medical.io import NIFTI_SUFFIXES, SpatialImage, image_format, read_image, write_image
from diffusekit.medical.visualize import overlay_png

__all__ = ["predict_path", "supported_inputs"]

VIDEO_SUFFIXES = (".avi",)


def _stem(path: Path) -> tuple[str, str]:
    name = path.name
    for suffix in (*NIFTI_SUFFIXES, ".mhd", ".png", ".avi"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], suffix
    raise DataError("unsupported input (expected .nii, .nii.gz, .mhd, .png or .avi)", path)


def supported_inputs(path: str | Path) -> list[Path]:
    """The file itself, or every supported file in a folder (sorted)."""
    path = Path(path)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and _is_supported(p) and "_gt." not in p.name]
        if not files:
            raise DataError("no .nii/.nii.gz/.mhd/.png/.avi files in this folder", path)
        return files
    if not path.exists():
        raise DataError("input not found", path)
    _stem(path)
    return [path]


def _is_supported(path: Path) -> bool:
    try:
        _stem(path)
    except DataError:
        return False
    return True


def _frames_of(path: Path) -> tuple[list[EchoFrame], SpatialImage | None]:
    """The 2-D frames of one input, and the image (None for video) whose geometry the outputs copy."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        frames, spacing, unit, reference = read_video(path), (1.0, 1.0), "px", None
    else:
        reference = read_image(path)
        frames = reference.array[None] if reference.array.ndim == 2 else reference.array
        spacing, unit = reference.pixel_spacing, reference.unit
    return [
        EchoFrame(f"{path.name}[{i}]", frame, None, spacing, unit, path.stem, "", str(i), path)
        for i, frame in enumerate(frames)
    ], reference


def _write_video(path: Path, frames: np.ndarray, fps: float = 50.0) -> None:
    import cv2

    h, w = frames.shape[1:]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
    writer.release()


def predict_path(
    model: nn.Module, size: int, settings: InferenceSettings, input_path: str | Path, out: str | Path
) -> list[Path]:
    """Segment every frame of every input under ``input_path`` and write the outputs (module docstring)."""
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in supported_inputs(input_path):
        stem, suffix = _stem(path)
        frames, reference = _frames_of(path)
        predictions, _ = predict_frames(model, frames, size, settings, progress=len(frames) > 1)
        masks = np.stack([p.mask for p in predictions]).astype(np.uint8)
        uncertainty = np.stack([p.uncertainty for p in predictions]).astype(np.float32)
        if reference is not None and reference.array.ndim == 2:
            masks, uncertainty = masks[0], uncertainty[0]
        fmt = "video" if reference is None else image_format(path)
        if fmt in ("nifti", "mhd"):
            ext = suffix if fmt == "mhd" else ".nii.gz"
            written.append(write_image(out / f"{stem}_mask{ext}", SpatialImage(masks, reference.spacing), path))
            written.append(
                write_image(out / f"{stem}_uncertainty{ext}", SpatialImage(uncertainty, reference.spacing), path)
            )
        elif fmt == "png":
            written.append(write_image(out / f"{stem}_mask.png", SpatialImage(masks * 255, (1.0, 1.0), unit="px")))
            np.save(out / f"{stem}_uncertainty.npy", uncertainty)
            written.append(out / f"{stem}_uncertainty.npy")
        else:
            _write_video(out / f"{stem}_mask.avi", masks * 255)
            np.save(out / f"{stem}_uncertainty.npy", uncertainty)
            written += [out / f"{stem}_mask.avi", out / f"{stem}_uncertainty.npy"]
        middle = predictions[len(predictions) // 2]
        overlay = out / f"{stem}_overlay.png"
        cv2.imwrite(str(overlay), overlay_png(middle.frame.image, middle.mask))
        written.append(overlay)
    return written
