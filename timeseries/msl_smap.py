"""NASA MSL and SMAP telemetry (khundman/telemanom): ``data/{train,test}/<chan>.npy`` + ``labeled_anomalies.csv``.

Each ``.npy`` is a 2-D array per channel: column 0 is the telemetry value, the others are one-hot command flags
(SMAP 25 columns, MSL 55). ``anomaly_sequences`` are inclusive ``[start, end]`` test indices; ``num_values`` is the
test length. As in OmniAnomaly, a spacecraft's channels are concatenated in ``chan_id`` order and **P-2 is dropped
for SMAP**: ``labeled_anomalies.csv`` lists P-2 twice (lines 19 and 53 of the telemanom file) with different
anomaly sequences ([[5350, 6575]] and [[5300, 6420]]) for the same 8,209 test points, so its labels are ambiguous.
OmniAnomaly drops it without saying why; the duplicate is the reason that can be checked. The drop is recorded in
``SeriesSplit.notes``. With it, SMAP has 53 channels and 427,617 test points, 54,696 (12.79%) anomalous; MSL 27
channels, 73,729 points, 7,766 (10.53%) anomalous (OmniAnomaly's README says 13.13% and 10.72%; see its issue #72).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import Segment, SeriesSplit, make_split
from diffusekit.timeseries.tabular import check_finite, read_text

SPACECRAFT = ("MSL", "SMAP")
DEFAULT_DROPPED = {"SMAP": ("P-2",), "MSL": ()}
_COLUMNS = ("chan_id", "spacecraft", "anomaly_sequences", "num_values")
NPY_MAGIC = b"\x93NUMPY"


@dataclass(frozen=True)
class ChannelAnomalies:
    """One row of ``labeled_anomalies.csv``; ``sequences`` are inclusive (start, end) pairs; ``line`` is 1-based."""

    chan_id: str
    spacecraft: str
    sequences: tuple[tuple[int, int], ...]
    classes: tuple[str, ...]
    num_values: int
    line: int

    def labels(self) -> np.ndarray:
        labels = np.zeros(self.num_values, dtype=np.int64)
        for start, end in self.sequences:
            labels[start : end + 1] = 1
        return labels


def read_labeled_anomalies(path: str | Path) -> list[ChannelAnomalies]:
    """Parse telemanom's ``labeled_anomalies.csv`` (every spacecraft, file order)."""
    path = Path(path)
    rows = []
    with io.StringIO(read_text(path), newline="") as handle:
        reader = csv.DictReader(handle)
        absent = [name for name in _COLUMNS if name not in (reader.fieldnames or [])]
        if absent:
            raise DataError(f"missing column(s) {absent}", path, line=1)
        for line, row in _rows(reader, path):
            if any(row.get(name) is None for name in _COLUMNS):
                raise DataError(f"too few fields: expected {', '.join(_COLUMNS)}", path, line=line)
            try:
                num_values = int(row["num_values"])
                pairs = json.loads(row["anomaly_sequences"])
                sequences = tuple((int(start), int(end)) for start, end in pairs)
            except (ValueError, TypeError) as err:
                raise DataError(
                    f"bad num_values or anomaly_sequences (expected an integer and a JSON list of [start, end] "
                    f"pairs: {err})",
                    path,
                    line=line,
                ) from None
            if num_values < 1:
                raise DataError(f"num_values must be a positive count, got {num_values}", path, line=line)
            for start, end in sequences:
                if not 0 <= start <= end < num_values:
                    raise DataError(f"sequence [{start}, {end}] outside 0..{num_values - 1}", path, line=line)
            classes = tuple(c.strip() for c in (row.get("class") or "").strip("[]").split(",") if c.strip())
            rows.append(
                ChannelAnomalies(
                    row["chan_id"].strip(), row["spacecraft"].strip(), sequences, classes, num_values, line
                )
            )
    if not rows:
        raise DataError("empty file", path)
    return rows


def _rows(reader: csv.DictReader, path: Path) -> list[tuple[int, dict]]:
    """(file line, row) of every record; a malformed CSV is a DataError naming the line."""
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as err:
        raise DataError(f"not a valid CSV: {err}", path, line=reader.line_num) from None
    return rows


def _find_files(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise DataError("MSL/SMAP folder not found", root)
    csv_path = next(
        (p for p in (root / "labeled_anomalies.csv", root / "data" / "labeled_anomalies.csv") if p.is_file()), None
    )
    if csv_path is None:
        raise DataError("labeled_anomalies.csv not found", root / "labeled_anomalies.csv")
    data = root / "data" if (root / "data" / "train").is_dir() else root
    for folder in ("train", "test"):
        if not (data / folder).is_dir():
            raise DataError("missing folder (expected data/train/ and data/test/ with <chan>.npy)", data / folder)
    return csv_path, data


def _load_npy(path: Path, allow_missing: bool) -> np.ndarray:
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        with path.open("rb") as handle:
            magic = handle.read(len(NPY_MAGIC))
        if magic != NPY_MAGIC:
            raise DataError("not a .npy file (it does not start with numpy's \\x93NUMPY header)", path)
        array = np.load(path, allow_pickle=False)
    except OSError as err:
        raise DataError(f"cannot read the file: {err.strerror or err}", path) from None
    except (ValueError, EOFError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"cannot read .npy (truncated or corrupt?): {err}", path) from None
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0 or array.dtype.kind not in "iuf":
        raise DataError(f"expected a non-empty 2-D array of real numbers, got {array.dtype} {array.shape}", path)
    array = array.astype(np.float64)
    check_finite(array, path, None, None, allow_missing)
    return array


def _select(
    rows: list[ChannelAnomalies],
    csv_path: Path,
    spacecraft: str,
    channels: Sequence[str] | None,
    dropped: Sequence[str],
) -> tuple[list[ChannelAnomalies], list[str]]:
    mine = [row for row in rows if row.spacecraft.upper() == spacecraft]
    notes = []
    for chan in dropped:
        hits = [row for row in mine if row.chan_id == chan]
        if not hits:
            continue
        why = "as OmniAnomaly does"
        if len({row.sequences for row in hits}) > 1:
            lines = ", ".join(str(row.line) for row in hits)
            seqs = " vs ".join(str([list(s) for s in row.sequences]) for row in hits)
            times = "twice" if len(hits) == 2 else f"{len(hits)} times"
            why += f": {csv_path.name} lists it {times} (lines {lines}) with different sequences {seqs}"
        notes.append(f"dropped channel {chan} {why}")
    kept = [row for row in mine if row.chan_id not in dropped]
    seen: dict[str, int] = {}
    for row in kept:
        if row.chan_id in seen:
            raise DataError(
                f"channel {row.chan_id} is listed twice (also line {seen[row.chan_id]}); drop it with drop_channels",
                csv_path,
                line=row.line,
            )
        seen[row.chan_id] = row.line
    if channels is not None:
        unknown = [chan for chan in channels if chan not in seen]
        if unknown:
            hint = f" (dropped: {list(dropped)})" if any(chan in dropped for chan in unknown) else ""
            raise DataError(f"no {spacecraft} channel(s) {unknown}{hint}", csv_path)
        kept = [row for row in kept if row.chan_id in set(channels)]
    if not kept:
        raise DataError(f"no {spacecraft} channels", csv_path)
    return sorted(kept, key=lambda row: row.chan_id), notes


def read_msl_smap(
    root: str | Path,
    spacecraft: str = "MSL",
    channels: Sequence[str] | None = None,
    concatenate: bool = True,
    *,
    drop_channels: Sequence[str] | None = None,
    missing: str = "error",
    scale: bool = True,
    clip: bool = False,
) -> SeriesSplit | dict[str, SeriesSplit]:
    """Read one spacecraft. ``concatenate=True``: one SeriesSplit named after the spacecraft, channels stacked in
    chan_id order (``parts`` gives each channel's slices); otherwise {chan_id: SeriesSplit}, each scaled on its own
    train. ``drop_channels`` defaults to ("P-2",) for SMAP and () for MSL. Interpretation segments have no dims.
    """
    spacecraft = spacecraft.upper()
    if spacecraft not in SPACECRAFT:
        raise ValueError(f"spacecraft must be one of {SPACECRAFT}, got {spacecraft!r}")
    csv_path, data = _find_files(Path(root))
    dropped = DEFAULT_DROPPED[spacecraft] if drop_channels is None else tuple(drop_channels)
    selected, notes = _select(read_labeled_anomalies(csv_path), csv_path, spacecraft, channels, dropped)
    allow_missing = missing != "error"
    loaded = []
    for row in selected:
        train_path, test_path = data / "train" / f"{row.chan_id}.npy", data / "test" / f"{row.chan_id}.npy"
        train, test = _load_npy(train_path, allow_missing), _load_npy(test_path, allow_missing)
        if test.shape[1] != train.shape[1]:
            raise DataError(f"{test.shape[1]} columns but {train_path.name} in train/ has {train.shape[1]}", test_path)
        if len(test) != row.num_values:
            raise DataError(
                f"num_values is {row.num_values} but {test_path} has {len(test)} rows", csv_path, line=row.line
            )
        if loaded and train.shape[1] != loaded[0][1].shape[1]:
            first = loaded[0][0].chan_id
            raise DataError(f"{train.shape[1]} columns but channel {first} has {loaded[0][1].shape[1]}", train_path)
        loaded.append((row, train, test, train_path, test_path))
    names = ["telemetry"] + [f"command_{k}" for k in range(1, loaded[0][1].shape[1])]
    options = dict(missing=missing, scale=scale, clip=clip)
    if not concatenate:
        return {
            row.chan_id: make_split(
                row.chan_id,
                train,
                test,
                names,
                test_labels=row.labels(),
                interpretation=[Segment(s, e + 1) for s, e in row.sequences],
                train_path=train_path,
                test_path=test_path,
                notes=notes,
                **options,
            )
            for row, train, test, train_path, test_path in loaded
        }
    parts, segments, train_offset, test_offset = {}, [], 0, 0
    for row, train, test, _, _ in loaded:
        parts[row.chan_id] = (
            slice(train_offset, train_offset + len(train)),
            slice(test_offset, test_offset + len(test)),
        )
        segments += [Segment(test_offset + s, test_offset + e + 1) for s, e in row.sequences]
        train_offset, test_offset = train_offset + len(train), test_offset + len(test)
    return make_split(
        spacecraft,
        np.concatenate([item[1] for item in loaded]),
        np.concatenate([item[2] for item in loaded]),
        names,
        test_labels=np.concatenate([item[0].labels() for item in loaded]),
        interpretation=sorted(segments),
        parts=parts,
        train_path=data / "train",
        test_path=data / "test",
        notes=notes,
        **options,
    )
