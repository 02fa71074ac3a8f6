"""EchoNet-Dynamic (Ouyang et al., Nature 580, 2020; code ``echonet/dynamic``): A4C videos with two traced frames.

On disk: ``<root>/FileList.csv`` (FileName without extension, EF, ESV, EDV, FrameHeight, FrameWidth, FPS,
NumberOfFrames, Split in TRAIN/VAL/TEST, matched case-sensitively as the official loader does), ``VolumeTracings.csv``
(header ``FileName,X1,Y1,X2,Y2,Frame``; FileName with ``.avi``) and ``Videos/<FileName>.avi`` (112 x 112, grey in 3
channels).

Masks follow the official rule (``echonet/datasets/echo.py``): per traced frame, drop the first row (the long axis),
take the polygon ``x = X1[1:] + reversed(X2[1:])`` (y likewise), round to integers, fill it with
``skimage.draw.polygon`` (the same rasterisation rule, hence the dependency). ED/ES are chosen by traced area (the
larger is ED) rather than by row order, which is only a convention of the CSV. Videos with fewer than two traced
frames are dropped, as officially. EchoNet has no pixel spacing: distances are in pixels.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.core.files import native_stderr_captured
from diffusekit.medical.io import check_readable

__all__ = ["EchoNetTracing", "read_echonet_tracings", "read_file_list", "read_video", "tracing_mask"]

SPLITS = ("TRAIN", "VAL", "TEST")
FILELIST_COLUMNS = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split")
TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")
MAX_COORDINATE = 1e4  # pixels; the frames are 112 x 112, so a larger tracing coordinate is a broken file


@dataclass(frozen=True)
class EchoNetTracing:
    """The traced chords of one frame: ``chords`` (N, 4) rows X1, Y1, X2, Y2 in CSV order (row 0 = long axis)."""

    video: str  # FileName without .avi
    frame: int
    chords: np.ndarray

    def mask(self, shape: tuple[int, int] = (112, 112)) -> np.ndarray:
        return tracing_mask(self.chords, shape)


def tracing_mask(chords: np.ndarray, shape: tuple[int, int] = (112, 112)) -> np.ndarray:
    """uint8 (H, W) mask from one frame's chords by the official polygon rule (see the module docstring)."""
    from skimage.draw import polygon

    x1, y1, x2, y2 = (np.asarray(chords, dtype=np.float64)[1:, i] for i in range(4))
    x = np.rint(np.concatenate([x1, x2[::-1]])).astype(np.int64)
    y = np.rint(np.concatenate([y1, y2[::-1]])).astype(np.int64)
    rows, cols = polygon(y, x, shape)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[rows, cols] = 1
    return mask


def _read_csv(path: Path, columns: tuple[str, ...]):
    import pandas as pd

    if not path.is_file():
        raise DataError("file not found", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a row longer than the header
            table = pd.read_csv(path, index_col=False)
    except pd.errors.ParserWarning:
        raise DataError("cannot parse CSV (rows hold more fields than the header names)", path) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"cannot parse CSV ({str(err).strip().splitlines()[0]})", path) from None
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(f"missing columns {missing}; expected {list(columns)}", path)
    return table


def _numbers(table, column: str, path: Path, low: float, high: float, integer: bool = False, what: str = "") -> None:
    """Replace ``table[column]`` by its numbers; a missing or non-numeric cell, a value outside [low, high] or (with
    ``integer``) a fraction is a DataError naming the file, its line and the column."""
    import pandas as pd

    values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if integer:
        bad |= np.isfinite(values) & (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a number"
        cell = table[column].iloc[row]
        shown = f"{cell:g}" if isinstance(cell, (int, float, np.number)) else repr(cell)
        raise DataError(f"column {column}: {shown} is not {kind} in [{low:g}, {high:g}]{what}", path, row + 2)
    table[column] = values.astype(np.int64) if integer else values


def _names(table, path: Path) -> None:
    empty = table["FileName"].isna().to_numpy()
    if empty.any():
        raise DataError("column FileName: an empty name", path, int(np.flatnonzero(empty)[0]) + 2)


def read_file_list(root: str | Path, split: str | None = None):
    """``FileList.csv`` as a DataFrame (optionally one split, matched case-sensitively like the official code)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("EchoNet-Dynamic folder not found", root)
    table = _read_csv(root / "FileList.csv", FILELIST_COLUMNS)
    _names(table, root / "FileList.csv")
    _numbers(table, "EF", root / "FileList.csv", 0.0, 100.0, what=" (an ejection fraction in percent)")
    if split is not None:
        if split not in SPLITS:
            raise DataError(f"unknown split {split!r}; expected TRAIN, VAL or TEST", root / "FileList.csv")
        table = table[table["Split"] == split]
    return table.reset_index(drop=True)


def read_echonet_tracings(root: str | Path) -> dict[str, tuple[EchoNetTracing, EchoNetTracing]]:
    """``VolumeTracings.csv`` -> {video: (ED tracing, ES tracing)}, ED = the larger traced area; videos with fewer
    than two traced frames are dropped; more than two keeps the first and last listed (the official choice)."""
    path = Path(root) / "VolumeTracings.csv"
    table = _read_csv(path, TRACING_COLUMNS)
    _names(table, path)
    for column in TRACING_COLUMNS[1:5]:
        _numbers(table, column, path, -MAX_COORDINATE, MAX_COORDINATE, what=" (pixels)")
    _numbers(table, "Frame", path, 0, 1e9, integer=True, what=" (a frame index)")
    out = {}
    for file_name, rows in table.groupby("FileName", sort=False):
        video = str(file_name)[:-4] if str(file_name).lower().endswith(".avi") else str(file_name)
        frames = list(dict.fromkeys(rows["Frame"].tolist()))  # CSV order
        if len(frames) < 2:
            continue
        traced = []
        for frame in (frames[0], frames[-1]):
            chords = rows.loc[rows["Frame"] == frame, list(TRACING_COLUMNS[1:5])].to_numpy(dtype=np.float64)
            if len(chords) < 3:
                raise DataError(f"{file_name} frame {frame}: {len(chords)} rows, a tracing needs at least 3", path)
            traced.append(EchoNetTracing(video, int(frame), chords))
        areas = [t.mask().sum() for t in traced]
        ed, es = (traced[0], traced[1]) if areas[0] >= areas[1] else (traced[1], traced[0])
        out[video] = (ed, es)
    return out


@lru_cache(maxsize=8)
def read_video(path: str | Path) -> np.ndarray:
    """All frames of an AVI as uint8 (F, H, W) grey (channel 0 of OpenCV's BGR, as the videos are grey). A video
    that decodes to fewer frames than its header lists is truncated: a DataError, as is one with none."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise DataError("video file not found", path)
    check_readable(path)
    frames = []
    with native_stderr_captured() as noise:  # OpenCV's and FFmpeg's demuxers print their complaints
        capture = cv2.VideoCapture(str(path))
        try:
            listed = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                frames.append(frame[..., 0] if frame.ndim == 3 else frame)
        finally:
            capture.release()
    if not frames:
        reason = f": {noise[-1]}" if noise else ""
        raise DataError(f"OpenCV cannot decode this video (no frames read){reason}", path)
    if len(frames) < listed:
        raise DataError(f"truncated or corrupt: {len(frames)} of the {listed} frames its header lists decode", path)
    video = np.stack(frames)
    video.flags.writeable = False
    return video
