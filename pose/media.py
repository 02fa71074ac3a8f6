"""Reading frames and videos through OpenCV with checks first: a truncated JPEG / PNG is a `DataError` (decoders fill
the missing part with grey and only warn), a video that decodes fewer frames than its header lists is truncated, and
what libjpeg, libpng and FFmpeg print on stderr while decoding is kept off the terminal (in the debug log, and in the
error message when decoding fails)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.core.files import image_truncation, native_stderr_captured

__all__ = [
    "count_video_frames",
    "image_file_problem",
    "image_size",
    "read_image",
    "read_video_frames",
]

logger = logging.getLogger(__name__)


def image_file_problem(path: str | Path, tail: int = 4096) -> str | None:
    """A cheap completeness check of an image file from its first and last bytes (no decoding): what is wrong with
    it (missing, unreadable, empty, a PNG or JPEG that ends early), or None. In a JPEG's entropy-coded data 0xFF is
    always followed by 0x00 or a restart marker, so a file cut short has no end-of-image marker in its last bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as stream:
            head = stream.read(8)
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - tail))
            end = stream.read()
    except FileNotFoundError:
        return "frame missing on disk"
    except OSError as err:
        return f"cannot read the file ({err.strerror or err})"
    if not size:
        return "the file is empty"
    if head.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND\xaeB`\x82" not in end:
        return "truncated PNG (no IEND chunk: the file ends early)"
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in end:
        return "truncated JPEG (no end-of-image marker: the file ends early)"
    return None


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """An image file decoded by OpenCV (BGR for the default ``flags``), checked to be complete first; a missing,
    unreadable, truncated or undecodable file is a DataError naming it."""
    path = Path(path)
    if not path.is_file():
        raise DataError("frame missing on disk", path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path) from None
    problem = image_truncation(data)
    if problem:
        raise DataError(problem, path)
    with native_stderr_captured() as noise:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if image is None:
        raise DataError(f"not a readable image ({noise[-1] if noise else 'not a format OpenCV decodes'})", path)
    if any("premature end" in line.lower() or "corrupt" in line.lower() for line in noise):
        raise DataError(f"corrupt image data ({noise[0]})", path)
    return image


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file (decoded and checked by `read_image`)."""
    image = read_image(path, cv2.IMREAD_UNCHANGED)
    return int(image.shape[1]), int(image.shape[0])


def _open_video(path: Path):
    """(an opened cv2.VideoCapture, the frame count its header lists); DataError when it cannot be opened."""
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path) from None
    with native_stderr_captured() as noise:
        capture = cv2.VideoCapture(str(path))
        opened = capture.isOpened()
        listed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if opened else 0
    if not opened:
        capture.release()
        raise DataError(f"OpenCV cannot open this video{': ' + noise[-1] if noise else ''}", path)
    return capture, listed


def count_video_frames(path: str | Path) -> int:
    """The number of frames of a video, checked without decoding them (``grab``): DataError when OpenCV cannot open
    it, finds no frame, or finds fewer frames than its header lists (a truncated file)."""
    path = Path(path)
    capture, listed = _open_video(path)
    count = 0
    try:
        with native_stderr_captured() as noise:
            while capture.grab():
                count += 1
    finally:
        capture.release()
    if not count:
        raise DataError(f"OpenCV read no frames from this video{': ' + noise[-1] if noise else ''}", path)
    if count < listed:
        raise DataError(f"truncated or corrupt: {count} of the {listed} frames its header lists are there", path)
    return count


def read_video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """The BGR frames of a video file, one at a time. DataError when OpenCV cannot open it, decodes no frame, or
    decodes fewer frames than the file's header lists (a truncated file); raised after the last decodable frame."""
    path = Path(path)
    capture, listed = _open_video(path)
    noise: list[str] = []
    count = 0
    try:
        while True:
            with native_stderr_captured() as noise:
                ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield frame
    finally:
        capture.release()
    if not count:
        raise DataError(f"OpenCV read no frames from this video{': ' + noise[-1] if noise else ''}", path)
    if count < listed:
        raise DataError(f"truncated or corrupt: {count} of the {listed} frames its header lists decode", path)
