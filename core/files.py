"""Reading user files so that every failure is one `DataError` naming the file: bytes and UTF-8 text, image
completeness from the bytes, and the warnings C libraries print on stderr kept off the terminal.

Image decoders (libpng, libjpeg, OpenCV's FFmpeg readers, SimpleITK's MetaIO) fill a truncated file with grey and
only print a warning to file descriptor 2, before Python could raise anything; the readers of every domain check
the bytes first and decode inside `native_stderr_captured`, so the user sees one line, not library noise.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import DataError

__all__ = ["image_truncation", "native_stderr_captured", "read_bytes", "read_text"]

logger = logging.getLogger(__name__)
_STDERR_LOCK = threading.Lock()  # one redirection of descriptor 2 at a time


@contextmanager
def native_stderr_captured() -> Iterator[list[str]]:
    """Collect what C libraries write to file descriptor 2 inside the block; yields a list that holds those lines
    afterwards (for the one-line error message; they also go to the debug log). Other threads' stderr output during
    the block is captured too, so keep the block short (one decode)."""
    lines: list[str] = []
    with _STDERR_LOCK:
        try:
            if sys.stderr is not None:
                sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no usable descriptor 2 (an embedded interpreter): nothing to capture
            yield lines
            return
        try:
            with tempfile.TemporaryFile() as sink:
                os.dup2(sink.fileno(), 2)
                try:
                    yield lines
                finally:
                    if sys.stderr is not None:
                        sys.stderr.flush()
                    os.dup2(saved, 2)
                    sink.seek(0)
                    text = sink.read().decode(errors="replace")
                    # FFmpeg prefixes "[demuxer @ 0x55d0...] "; the address means nothing to a reader
                    lines.extend(
                        re.sub(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*", "", line.strip())
                        for line in text.splitlines()
                        if line.strip()
                    )
                    for line in lines:
                        logger.debug("library message: %s", line)
        finally:
            os.close(saved)


def read_bytes(path: str | Path) -> bytes:
    """The bytes of a file; a missing, unreadable or folder path is a DataError naming it."""
    path = Path(path)
    try:
        return path.read_bytes()
    except OSError as error:
        raise DataError(f"cannot read the file ({error.strerror or error})", path) from None


def read_text(path: str | Path) -> str:
    """A UTF-8 text file (ASCII included); other bytes are a DataError saying where."""
    data = read_bytes(path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); expected a plain text file",
            path,
        ) from None


def image_truncation(data: bytes) -> str | None:
    """Why ``data`` (an image file's bytes) is incomplete, or None: empty, a PNG without its IEND chunk, or a JPEG
    without an end-of-image marker after its last scan."""
    if not data:
        return "the file is empty"
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data.rfind(b"IEND\xaeB`\x82") < 0:
        return "truncated PNG (no IEND chunk: the file ends early)"
    if data.startswith(b"\xff\xd8") and data.rfind(b"\xff\xd9") < max(data.rfind(b"\xff\xda"), 2):
        return "truncated JPEG (no end-of-image marker after the image data: the file ends early)"
    return None
