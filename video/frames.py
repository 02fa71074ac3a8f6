"""Frame and video I/O for video deblurring: RGB uint8 frames in, float tensors out, every bad file a DataError.

Frames are read with OpenCV (PNG, JPEG, BMP, TIFF) and always come back as ``(H, W, 3)`` uint8 RGB: grey-scale is
replicated to three channels, 16-bit is scaled to 8-bit (``round(x / 257)``), an alpha channel is dropped. Frame
folders are listed in natural numerical order (``9.png`` before ``10.png``, ``000047.png`` before ``000100.png``),
never assuming that numbering starts at 0. Videos are read with ``cv2.VideoCapture`` and written as mp4v ``.mp4``.

libjpeg, libpng, libtiff and FFmpeg print their complaints straight to file descriptor 2; reads run with that
descriptor redirected, so a corrupt file gives one DataError (carrying the library's first line) and no noise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from diffusekit.core.errors import DataError
from diffusekit.core.files import native_stderr_captured

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "VideoSequence",
    "frame_paths",
    "frame_size",
    "natural_key",
    "read_frame",
    "read_frames",
    "read_video",
    "sequence_folders",
    "to_tensor",
    "to_uint8",
    "write_frames",
    "write_video",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}


def _first_line(text: str) -> str:
    """The first message a C library printed, without OpenCV's log prefix and source location."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return ""
    line = re.sub(r"^\[[^\]]*\]\s*(global \S+\s*)?", "", lines[0])
    match = re.search(r"error: \(-?\d+:[^)]*\)\s*(.+)", line)
    return (match.group(1) if match else line)[:200]


def _read_bytes(path: Path, what: str = "image") -> bytes:
    if not path.exists():
        raise DataError(f"{what} file not found", path)
    if not path.is_file():
        raise DataError(f"expected an {what} file, found a folder or special file", path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read this file ({error.strerror or error})", path) from None
    if not data:
        raise DataError(f"empty file (0 bytes), not an {what}", path)
    return data


def _to_rgb8(image: np.ndarray, path: Path) -> np.ndarray:
    """OpenCV's decoded array (grey, BGR or BGRA; 8- or 16-bit) as (H, W, 3) uint8 RGB."""
    if image.dtype == np.uint16:
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(x / 257) for x in [0, 65535]
    elif image.dtype != np.uint8:
        raise DataError(f"unsupported pixel type {image.dtype} (expected 8- or 16-bit integers)", path)
    if image.ndim == 3 and image.shape[2] in (1, 2):  # grey or grey + alpha
        image = image[..., 0]
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise DataError(f"unsupported image shape {image.shape}", path)
    return np.ascontiguousarray(image[..., 2::-1])  # BGR(A) -> RGB, alpha dropped


def read_frame(path: str | Path) -> np.ndarray:
    """One image as (H, W, 3) uint8 RGB; DataError naming the file when it is missing, unreadable, empty, not a
    PNG/JPEG/BMP/TIFF, truncated or undecodable."""
    import cv2

    path = Path(path)
    data = _read_bytes(path)
    kind = next((name for magic, name in _SIGNATURES.items() if data.startswith(magic)), None)
    if kind is None:
        raise DataError("not an image (no PNG, JPEG, BMP or TIFF signature)", path)
    with native_stderr_captured() as messages:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    reason = _first_line("\n".join(messages))
    if image is None:
        raise DataError(f"OpenCV cannot decode this {kind} file" + (f" ({reason})" if reason else ""), path)
    if kind == "JPEG" and "premature end" in reason.lower():
        raise DataError(f"truncated JPEG file ({reason})", path)
    return _to_rgb8(image, path)


def frame_size(path: str | Path) -> tuple[int, int]:
    """(W, H) of an image from its header (Pillow, no decoding); falls back to `read_frame` for odd files."""
    path = Path(path)
    try:
        from PIL import Image

        with Image.open(path) as image:
            return tuple(image.size)  # type: ignore[return-value]
    except Exception:  # Pillow missing or the file odd: a full read gives the size or the proper DataError
        h, w = read_frame(path).shape[:2]
        return w, h


def read_frames(paths: Sequence[str | Path]) -> np.ndarray:
    """Frames as (T, H, W, 3) uint8 RGB; all must share one size (DataError naming the first odd file)."""
    paths = [Path(p) for p in paths]
    if not paths:
        raise DataError("no frames to read")
    frames = [read_frame(paths[0])]
    h, w = frames[0].shape[:2]
    for path in paths[1:]:
        frame = read_frame(path)
        if frame.shape[:2] != (h, w):
            raise DataError(
                f"frame size {frame.shape[1]}x{frame.shape[0]} differs from {w}x{h} of {paths[0].name}", path
            )
        frames.append(frame)
    return np.stack(frames)


def natural_key(name: str) -> tuple:
    """Sort key comparing the runs of digits of a file name as numbers (``9.png`` < ``10.png``)."""
    stem = Path(name).stem
    parts = re.split(r"(\d+)", stem)
    return (tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts)), name)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")  # hidden files, macOS "._" resource forks


def frame_paths(folder: str | Path) -> list[Path]:
    """The image files of a folder in numerical order; DataError for a missing folder or one without frames."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("frame folder not found", folder)
    files = [p for p in folder.iterdir() if _visible(p) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(f"no frames ({', '.join(IMAGE_SUFFIXES)}) in this folder", folder)
    files.sort(key=lambda p: natural_key(p.name))
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise DataError(f"two frames with the same name: {stems[path.stem].name} and {path.name}", folder)
        stems[path.stem] = path
    return files


def sequence_folders(folder: str | Path) -> list[Path]:
    """The visible sub-folders of ``folder`` in natural order (one per sequence)."""
    folder = Path(folder)
    return sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class VideoSequence:
    """One sequence: the blurry frame files in order and, when known, the sharp ones (the same count).

    A sequence of one frame is valid (prediction works on it); training clips of N frames need N frames.
    """

    name: str
    blur: list[Path]
    sharp: list[Path] | None = None

    def __post_init__(self):
        if not self.blur:
            raise DataError(f"sequence {self.name!r} has no blurry frames")
        if self.sharp is not None and len(self.sharp) != len(self.blur):
            raise DataError(
                f"sequence {self.name!r}: {len(self.blur)} blurry frames in {self.blur[0].parent} but "
                f"{len(self.sharp)} sharp frames in {self.sharp[0].parent if self.sharp else '(none)'}",
                self.blur[0].parent,
            )

    def __len__(self) -> int:
        return len(self.blur)

    @property
    def frame_names(self) -> list[str]:
        """The blurry frames' file names (what predictions are written as)."""
        return [p.name for p in self.blur]


def read_video(path: str | Path) -> np.ndarray:
    """Every frame of a video file as (T, H, W, 3) uint8 RGB; DataError when OpenCV cannot open it or reads no
    frame."""
    import cv2

    path = Path(path)
    _check_readable(path)
    frames = []
    with native_stderr_captured() as messages:
        capture = cv2.VideoCapture(str(path))
        try:
            opened = capture.isOpened()
            while opened:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(frame)
        finally:
            capture.release()
    reason = _first_line("\n".join(messages))
    detail = f" ({reason})" if reason else ""
    if not opened:
        raise DataError("OpenCV cannot open this video" + detail, path)
    if not frames:
        raise DataError("no frame could be decoded from this video" + detail, path)
    first = frames[0].shape
    for index, frame in enumerate(frames):
        if frame.shape != first:
            raise DataError(f"frame {index} is {frame.shape[1]}x{frame.shape[0]}, not {first[1]}x{first[0]}", path)
    return np.stack([_to_rgb8(frame, path) for frame in frames])


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise DataError("video file not found", path)
    if not path.is_file():
        raise DataError("expected a video file, found a folder or special file", path)
    try:
        with path.open("rb") as handle:
            if not handle.read(1):
                raise DataError("empty file (0 bytes), not a video", path)
    except OSError as error:
        raise DataError(f"cannot read this file ({error.strerror or error})", path) from None


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames of shape (T, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


def write_frames(folder: str | Path, frames: np.ndarray, names: Sequence[str]) -> list[Path]:
    """Write (T, H, W, 3) uint8 RGB frames as PNG files named ``names`` (suffix replaced by .png) in ``folder``."""
    import cv2

    frames = _check_frames(frames)
    if len(names) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(names)} names")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for frame, name in zip(frames, names):
        path = folder / Path(name).with_suffix(".png").name
        if not cv2.imwrite(str(path), np.ascontiguousarray(frame[..., ::-1])):
            raise DataError("OpenCV could not write this PNG file", path)
        written.append(path)
    return written


def write_video(path: str | Path, frames: np.ndarray, fps: float = 10.0) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames as an mp4v video.

    The MPEG-4 encoder needs even sizes: an odd width or height is padded by one replicated column or row (OpenCV
    would silently crop it instead).
    """
    import cv2

    frames = _check_frames(frames)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _, h, w, _ = frames.shape
    pad_h, pad_w = h % 2, w % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    size = (w + pad_w, h + pad_h)
    with native_stderr_captured() as messages:
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
        try:
            if not writer.isOpened():
                reason = _first_line("\n".join(messages))
                raise DataError("OpenCV cannot write an mp4v video here" + (f" ({reason})" if reason else ""), path)
            for frame in frames:
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
        finally:
            writer.release()
    return path


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 frames as a float32 (T, 3, H, W) tensor in [0, 1]."""
    frames = _check_frames(frames)
    if not frames.flags.c_contiguous or min(frames.strides) < 0:  # flipped views (negative strides, even on size 1)
        frames = frames.copy()
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255)


def to_uint8(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """A (T, 3, H, W) (or (3, H, W)) tensor in [0, 1] as (T, H, W, 3) uint8, rounded and clamped; NaN or inf is a
    DataError, never silently cast."""
    array = frames.detach().float().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    array = array.astype(np.float32, copy=False)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[1] != 3:
        raise ValueError(f"expected frames of shape (T, 3, H, W), got {array.shape}")
    bad = ~np.isfinite(array)
    if bad.any():
        raise DataError(f"{int(bad.sum())} NaN or infinite values in the frames")
    return np.clip(np.rint(array * 255), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1).copy()
