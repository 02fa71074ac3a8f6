"""``predict`` on user files: NIfTI / MHD images or sequences, PNG frames, AVI videos, or a folder of them.

Each input gets, in ``out``: the mask in the input's own format and geometry, always lossless
(``<stem>_mask.nii.gz`` with the input's affine and header, ``<stem>_mask.mhd`` with its origin / spacing /
direction, ``<stem>_mask.png`` (0/255), or for an AVI video ``<stem>_mask.avi``: grey 0/255 frames in the lossless
FFV1 codec, read back after writing and compared bit for bit; ``<stem>_mask.npz`` (``mask``: uint8 (F, H, W) 0/1)
where this OpenCV cannot write FFV1 exactly), the uncertainty map (``<stem>_uncertainty`` as float NIfTI / MHD, or
``.npy`` for PNG and AVI), ``<stem>_overlay.png`` (the middle frame with the predicted contour) and, for a video,
``<stem>_overlay.avi`` (every frame with its contour; MJPG, a normal lossy video for viewing, not a mask).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from torch import nn

from diffusekit.core.errors import DataError
from diffusekit.core.progress import ProgressLine
from diffusekit.medical.datasets import EchoFrame
from diffusekit.medical.echonet import read_video
from diffusekit.medical.inference import InferenceSettings, predict_frames
from diffusekit.medical.io import NIFTI_SUFFIXES, SpatialImage, image_format, read_image, write_image
from diffusekit.medical.visualize import overlay_png

__all__ = ["predict_path", "read_mask_video", "supported_inputs", "write_mask_video"]

VIDEO_SUFFIXES = (".avi",)
OUTPUT_TAGS = ("_mask", "_uncertainty", "_overlay")  # <stem><tag><suffix>: what predict writes per input
LOSSLESS_FOURCC = "FFV1"  # in OpenCV's FFmpeg backend (the opencv-python wheels); checked after every write
logger = logging.getLogger(__name__)


def _stem(path: Path) -> tuple[str, str]:
    name = path.name
    for suffix in (*NIFTI_SUFFIXES, ".mhd", ".png", ".avi"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], suffix
    raise DataError("unsupported input (expected .nii, .nii.gz, .mhd, .png or .avi)", path)


def _is_output(path: Path, stems: set[str]) -> bool:
    """Whether ``path`` is what predict wrote for an input of the same folder (``x_mask.png`` beside ``x.png``)."""
    stem, _ = _stem(path)
    return any(stem.endswith(tag) and stem[: -len(tag)] in stems for tag in OUTPUT_TAGS)


def supported_inputs(path: str | Path) -> list[Path]:
    """The file itself, or every supported file in a folder (sorted), leaving out ground truths (``*_gt.*``) and
    predict's own outputs for the folder's other inputs (so a rerun never segments its earlier outputs)."""
    path = Path(path)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and _is_supported(p) and "_gt." not in p.name]
        stems = {_stem(p)[0] for p in files}
        files = [p for p in files if not _is_output(p, stems)]
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


def _write_video(path: Path, frames: np.ndarray, fourcc: str, fps: float = 50.0) -> bool:
    """Write (F, H, W) grey or (F, H, W, 3) BGR uint8 frames; False when OpenCV cannot open that codec."""
    import cv2

    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h), isColor=frames.ndim == 4)
    if not writer.isOpened():
        return False
    for frame in frames:
        writer.write(np.ascontiguousarray(frame))
    writer.release()
    return True


def write_mask_video(path: Path, masks: np.ndarray) -> Path:
    """(F, H, W) 0/1 masks as a lossless FFV1 AVI of 0/255 frames at ``path``, verified by reading it back; where
    that fails, ``<path stem>.npz`` holding ``mask`` (uint8 0/1). Returns the file written."""
    masks = np.asarray(masks, dtype=np.uint8)
    if _write_video(path, masks * 255, LOSSLESS_FOURCC):
        try:
            if np.array_equal(read_mask_video(path), masks):
                return path
        except DataError:
            pass
        path.unlink(missing_ok=True)
    fallback = path.with_suffix(".npz")
    logger.warning("OpenCV cannot write %s losslessly with %s; writing %s instead", path, LOSSLESS_FOURCC, fallback)
    np.savez_compressed(fallback, mask=masks)
    return fallback


def read_mask_video(path: str | Path) -> np.ndarray:
    """A mask written by `write_mask_video` (.avi or .npz) as uint8 (F, H, W) 0/1."""
    from diffusekit.medical.echonet import read_video

    path = Path(path)
    if path.suffix.lower() == ".npz":
        with np.load(path) as saved:
            return saved["mask"]
    read_video.cache_clear()  # the cached decoder may hold an earlier file of the same name
    return (read_video(path) > 127).astype(np.uint8)


def predict_path(
    model: nn.Module, size: int, settings: InferenceSettings, input_path: str | Path, out: str | Path
) -> list[Path]:
    """Segment every frame of every input under ``input_path`` and write the outputs (module docstring)."""
    import cv2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    inputs = supported_inputs(input_path)
    progress = ProgressLine(enabled=len(inputs) > 1)
    for count, path in enumerate(inputs, start=1):
        progress.update(f"predicting {count}/{len(inputs)}: {path.name}")
        stem, suffix = _stem(path)
        frames, reference = _frames_of(path)
        predictions, _ = predict_frames(model, frames, size, settings, progress=len(frames) > 1 and len(inputs) == 1)
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
            written.append(write_mask_video(out / f"{stem}_mask.avi", masks))
            np.save(out / f"{stem}_uncertainty.npy", uncertainty)
            written.append(out / f"{stem}_uncertainty.npy")
            overlays = np.stack([overlay_png(p.frame.image, p.mask) for p in predictions])
            if _write_video(out / f"{stem}_overlay.avi", overlays, "MJPG"):
                written.append(out / f"{stem}_overlay.avi")
        middle = predictions[len(predictions) // 2]
        overlay = out / f"{stem}_overlay.png"
        cv2.imwrite(str(overlay), overlay_png(middle.frame.image, middle.mask))
        written.append(overlay)
        logger.info("%s: %d frame(s) -> %s", path, len(predictions), out)
    progress.finish()
    return written
