"""Delimited text tables with line-accurate errors, and the generic reader for a user's own CSV or Parquet series.

Two parsers: the fixed numeric files of the official datasets (SMD, PSM; no quoting) go through ``np.loadtxt`` on
the file's lines (about 40 ms for one SMD file); a user's CSV goes through Python's ``csv`` module (RFC 4180:
quoted fields with commas, quotes or line breaks inside), as do all headers. pandas and pyarrow are needed only for
Parquet. Problems raise :class:`DataError` naming the file and, for text, the 1-based line: ragged rows,
non-numeric fields, infinite values, missing values where they are not allowed, an empty file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import SeriesSplit, make_split

_EMPTY_FIELD = re.compile(r"(?:^|,)\s*(?:,|$)")
_LABEL_LIKE = {"label", "labels", "is_anomaly", "anomaly", "attack"}
_TSB_AD_TRAIN_END = re.compile(r"_tr_(\d+)_")


@dataclass
class TextTable:
    """A parsed table: ``values`` (rows, columns) float64; ``first_line`` is the file line of row 0 (1-based)."""

    path: Path
    header: list[str] | None
    values: np.ndarray
    first_line: int


def read_lines(path: str | Path, header: bool) -> tuple[list[str] | None, list[str], int]:
    """Return (header names or None, data lines, file line number of the first data line)."""
    path = Path(path)
    lines = read_text(path).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError("empty file", path)
    if not header:
        return None, lines, 1
    names = header_names(next(csv.reader([lines[0]])), path)
    if len(lines) == 1:
        raise DataError("no data rows after the header", path)
    return names, lines[1:], 2


def read_text(path: Path) -> str:
    """A UTF-8 text file's content; a missing, unreadable or non-UTF-8 file is a DataError naming it."""
    if not path.exists():
        raise DataError("file not found", path)
    if path.is_dir():
        raise DataError("expected a file, found a folder", path)
    try:
        return path.read_text(encoding="utf-8-sig")  # strips a BOM; universal newlines: \r\n becomes \n
    except UnicodeDecodeError as err:
        raise DataError(f"not a UTF-8 text file ({err.reason} at byte {err.start})", path) from err
    except OSError as err:
        raise DataError(f"cannot read the file: {err.strerror}", path) from err


def header_names(fields: Sequence[str], path: Path) -> list[str]:
    """Column names of a header row (parsed by ``csv``: quotes removed); blank or duplicated names are errors."""
    names = [name.strip() for name in fields]
    if not any(names):
        raise DataError("blank first line; expected a header", path, line=1)
    duplicated = sorted({name for name in names if names.count(name) > 1})
    if duplicated:
        raise DataError(f"duplicated column names in the header: {duplicated}", path, line=1)
    return names


def read_header(path: str | Path) -> list[str]:
    """The column names of a CSV file's header row (the first record, parsed by ``csv``)."""
    path = Path(path)
    fields = next(csv.reader(io.StringIO(read_text(path))), None)
    if fields is None:
        raise DataError("empty file", path)
    return header_names(fields, path)


def read_csv_rows(path: str | Path) -> tuple[list[str], list[list[str]], list[int]]:
    """A CSV file with a header, parsed by Python's ``csv`` module: (column names, data rows, the 1-based file
    line where each row ends). Trailing blank lines are dropped; a row whose field count differs from the header's
    (a blank line inside the data included) is a DataError naming its line."""
    path = Path(path)
    reader = csv.reader(io.StringIO(read_text(path)))
    rows, ends = [], []
    try:
        for row in reader:
            rows.append(row)
            ends.append(reader.line_num)
    except csv.Error as err:
        raise DataError(f"not a valid CSV: {err}", path, line=reader.line_num) from None
    while rows and not any(field.strip() for field in rows[-1]):
        rows.pop(), ends.pop()
    if not rows:
        raise DataError("empty file", path)
    names = header_names(rows[0], path)
    if len(rows) == 1:
        raise DataError("no data rows after the header", path)
    for row, end in zip(rows[1:], ends[1:]):
        if len(row) != len(names):
            fields = "a blank line" if not row else "1 field" if len(row) == 1 else f"{len(row)} fields"
            raise DataError(f"ragged row: {fields}, expected {len(names)}", path, line=end)
    return names, rows[1:], ends[1:]


def parse_columns(
    rows: list[list[str]], index: Sequence[int], names: Sequence[str], path: Path, lines: Sequence[int], missing: bool
) -> np.ndarray:
    """The columns ``index`` of parsed CSV rows as float64 (rows, len(index)); an empty field is NaN when
    ``missing`` is allowed, else (like a non-number) a DataError naming the line and the column."""
    cells = np.char.strip(np.array([[row[i] for i in index] for row in rows], dtype=str).reshape(len(rows), -1))
    empty = cells == ""
    if missing or not empty.any():
        try:
            return np.where(empty, "nan", cells).astype(np.float64)
        except ValueError:
            pass
    for r, row in enumerate(cells):
        for c, token in enumerate(row):
            if not token and not missing:
                raise DataError(f"missing value (an empty field) in column {names[c]!r}", path, line=lines[r])
            try:
                float(token or "nan")
            except ValueError:
                raise DataError(f"column {names[c]!r}: {token[:30]!r} is not a number", path, line=lines[r]) from None
    raise DataError("could not parse the numbers", path)


def check_ragged(lines: Sequence[str], n_columns: int, path: Path, first_line: int) -> None:
    """Every line must have ``n_columns`` fields; a blank line inside the data is an error too (loadtxt skips it)."""
    counts = np.fromiter((line.count(",") for line in lines), dtype=np.int64, count=len(lines)) + 1
    ragged = np.flatnonzero(counts != n_columns)
    if ragged.size:
        row = int(ragged[0])
        fields = "1 field" if counts[row] == 1 else f"{counts[row]} fields"
        raise DataError(f"ragged row: {fields}, expected {n_columns}", path, line=first_line + row)
    if n_columns == 1:
        blank = next((row for row, line in enumerate(lines) if not line.strip()), None)
        if blank is not None:
            raise DataError("blank line inside the data", path, line=first_line + blank)


def _first_bad_field(
    lines: Sequence[str], path: Path, first_line: int, allow_missing: bool, names: Sequence[str] | None
) -> DataError:
    for row, line in enumerate(lines):
        for column, text in enumerate(line.split(",")):
            token = text.strip()
            if not token and allow_missing:
                continue
            try:
                float(token)
            except ValueError:
                where = repr(names[column]) if names is not None else str(column + 1)
                message = f"column {where}: {token[:30]!r} is not a number"
                if not token:
                    message = f"missing value (an empty field) in column {where}"
                return DataError(message, path, line=first_line + row)
    return DataError("could not parse the numbers", path)


def parse_numbers(
    lines: list[str], path: Path, first_line: int, allow_missing: bool, names: Sequence[str] | None = None
) -> np.ndarray:
    """``np.loadtxt`` on comma-separated lines (already checked for raggedness); empty fields -> NaN if allowed."""
    try:
        return np.loadtxt(lines, delimiter=",", dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        if not allow_missing:
            raise _first_bad_field(lines, path, first_line, allow_missing, names) from None
    fixed = [
        ",".join(text if text.strip() else "nan" for text in line.split(",")) if _EMPTY_FIELD.search(line) else line
        for line in lines
    ]
    try:
        return np.loadtxt(fixed, delimiter=",", dtype=np.float64, comments=None, ndmin=2)
    except ValueError:
        raise _first_bad_field(lines, path, first_line, allow_missing, names) from None


Lines = int | Sequence[int] | None  # the file line of row 0, or of every row (CSV rows may span lines), or unknown


def _line(lines: Lines, row: int) -> int | None:
    if lines is None or isinstance(lines, int):
        return None if lines is None else lines + row
    return lines[row]


FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_finite(
    values: np.ndarray, path: Path, first_line: Lines, names: Sequence[str] | None, allow_missing: bool
) -> None:
    """Raise at the first infinite value (always), NaN (unless ``allow_missing``) or value too large for float32
    (the models' type: 1e39 would become inf); rows map to lines if known."""
    with np.errstate(invalid="ignore"):
        bad = np.isinf(values) if allow_missing else ~np.isfinite(values)
        bad |= np.abs(values) > FLOAT32_MAX
    if not bad.any():
        return
    row, column = (int(i) for i in np.argwhere(bad)[0])
    value = values[row, column]
    if np.isinf(value):
        what = "infinite value"
    elif np.isnan(value):
        what = "missing value (NaN)"
    else:
        what = f"value {value:g} too large for float32 (at most {FLOAT32_MAX:.4g} in magnitude)"
    column_name = repr(names[column]) if names is not None else str(column + 1)
    if first_line is None:
        raise DataError(f"{what} at row {row}, column {column_name}", path)
    raise DataError(f"{what} in column {column_name}", path, line=_line(first_line, row))


def read_text_table(
    path: str | Path, *, header: bool = False, expected_columns: int | None = None, allow_missing: bool = False
) -> TextTable:
    """Parse a comma-separated numeric table. NaN (written or an empty field) is a DataError unless
    ``allow_missing``; infinity always is. ``expected_columns`` (default: the header's or the first row's count)."""
    path = Path(path)
    names, lines, first_line = read_lines(path, header)
    n_columns = expected_columns or (len(names) if names is not None else lines[0].count(",") + 1)
    if names is not None and len(names) != n_columns:
        raise DataError(f"header has {len(names)} columns, expected {n_columns}", path, line=1)
    check_ragged(lines, n_columns, path, first_line)
    values = parse_numbers(lines, path, first_line, allow_missing, names)
    check_finite(values, path, first_line, names, allow_missing)
    return TextTable(path, names, values, first_line)


def check_labels(
    values: np.ndarray, path: Path, first_line: Lines, expected_length: int, series_path: str | Path
) -> np.ndarray:
    """0/1 values of the series' length, as int64; otherwise a DataError naming the label file (and line)."""
    bad = np.flatnonzero((values != 0) & (values != 1))
    if bad.size:
        row = int(bad[0])
        message = f"label must be 0 or 1, got {values[row]:g}"
        if first_line is None:
            raise DataError(f"{message} at row {row}", path)
        raise DataError(message, path, line=_line(first_line, row))
    if values.shape[0] != expected_length:
        raise DataError(f"{values.shape[0]} labels but {Path(series_path).name} has {expected_length} rows", path)
    return values.astype(np.int64)


def read_label_file(path: str | Path, expected_length: int, series_path: str | Path) -> np.ndarray:
    """One 0/1 label per line (SMD ``test_label``); returns int64 (T,)."""
    table = read_text_table(path, expected_columns=1)
    return check_labels(table.values[:, 0], table.path, table.first_line, expected_length, series_path)


@dataclass
class Frame:
    path: Path
    header: list[str]  # every column of the file
    columns: list[str]  # the feature columns
    features: np.ndarray  # (T, K) float64, NaN where missing
    labels: np.ndarray | None
    timestamps: np.ndarray | None
    lines: list[int] | None  # the file line of every row; None for Parquet: errors name rows


def _timestamps(raw: Sequence[str]) -> np.ndarray:
    tokens = np.asarray([token.strip() for token in raw])
    try:
        return tokens.astype(np.float64)
    except ValueError:
        pass
    try:
        return tokens.astype("datetime64[ns]")
    except ValueError:
        return tokens


def _require_columns(path: Path, columns: list[str], wanted: Sequence[str], line: int | None) -> None:
    absent = [name for name in wanted if name not in columns]
    if absent:
        raise DataError(
            f"no column(s) {absent}; the file has {columns[:12]}{' ...' if len(columns) > 12 else ''}", path, line
        )


def load_frame(
    path: Path, features: Sequence[str] | None, timestamp_column: str | None, label_column: str | None
) -> Frame:
    """A user's CSV (parsed by the ``csv`` module) or Parquet file: the ``features`` columns (default: all but
    the timestamp and label columns; empty fields NaN), 0/1 labels and timestamps when those columns are named."""
    special = [name for name in (timestamp_column, label_column) if name is not None]
    if path.suffix.lower() in (".parquet", ".pq"):
        return _load_parquet(path, features, timestamp_column, label_column, special)
    names, rows, lines = read_csv_rows(path)
    _require_columns(path, names, list(features or []) + special, line=1)
    feature_names = list(features) if features is not None else [name for name in names if name not in special]
    index = [names.index(name) for name in feature_names]
    values = parse_columns(rows, index, feature_names, path, lines, missing=True)
    check_finite(values, path, lines, feature_names, allow_missing=True)
    labels = timestamps = None
    if label_column is not None:
        raw = parse_columns(rows, [names.index(label_column)], [label_column], path, lines, missing=False)
        check_finite(raw, path, lines, [label_column], allow_missing=False)
        labels = check_labels(raw[:, 0], path, lines, len(raw), path)
    if timestamp_column is not None:
        column = names.index(timestamp_column)
        timestamps = _timestamps([row[column] for row in rows])
    return Frame(path, names, feature_names, values, labels, timestamps, lines)


def _load_parquet(
    path: Path,
    features: Sequence[str] | None,
    timestamp_column: str | None,
    label_column: str | None,
    special: list[str],
) -> Frame:
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        import pandas as pd
    except ImportError:
        raise DataError("reading Parquet needs pandas and pyarrow: pip install pandas pyarrow", path) from None
    try:
        frame = pd.read_parquet(path)
    except ImportError as err:
        raise DataError(f"reading Parquet needs pyarrow: pip install pyarrow ({err})", path) from None
    except Exception as err:  # corrupt or not Parquet at all
        raise DataError(f"cannot read Parquet: {err}", path) from None
    names = [str(name) for name in frame.columns]
    if frame.empty:
        raise DataError("empty file", path)
    _require_columns(path, names, list(features or []) + special, line=None)
    feature_names = list(features) if features is not None else [name for name in names if name not in special]
    try:
        values = frame[feature_names].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"non-numeric feature column: {err}", path) from None
    check_finite(values, path, None, feature_names, allow_missing=True)
    labels = timestamps = None
    if label_column is not None:
        try:
            raw = frame[label_column].to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise DataError(f"non-numeric label column {label_column!r}: {err}", path) from None
        check_finite(raw[:, None], path, None, [label_column], allow_missing=False)
        labels = check_labels(raw, path, None, len(raw), path)
    if timestamp_column is not None:
        timestamps = frame[timestamp_column].to_numpy()
    return Frame(path, names, feature_names, values, labels, timestamps, None)


def read_csv_series(
    train_path: str | Path,
    test_path: str | Path | None = None,
    feature_columns: Sequence[str] | None = None,
    timestamp_column: str | None = None,
    label_column: str | None = None,
    train_fraction: float | None = None,
    *,
    train_end: int | None = None,
    missing: str = "ffill_bfill",
    scale: bool = True,
    clip: bool = False,
) -> SeriesSplit:
    """Read a user's series from CSV (header row) or Parquet (``.parquet``/``.pq``).

    Features are ``feature_columns`` or every column but the timestamp and label columns. The test part is
    ``test_path``, or the rows from ``train_end`` (or ``round(train_fraction * T)``) on; a TSB-AD file name
    ``..._tr_<trainEnd>_...`` gives ``train_end`` when neither is set. Labels (0/1) come from ``label_column`` and
    are split the same way. Missing feature values follow ``missing`` (see :mod:`diffusekit.timeseries.data`).
    """
    train_path = Path(train_path)
    train = load_frame(train_path, feature_columns, timestamp_column, label_column)
    notes = []
    if feature_columns is None:
        suspicious = [name for name in train.columns if name.strip().lower() in _LABEL_LIKE]
        if suspicious:
            notes.append(f"column(s) {suspicious} look like labels but are used as features; pass label_column")
    if test_path is not None:
        test = load_frame(Path(test_path), train.columns, timestamp_column, label_column)
        extra = [name for name in test.header if name not in train.header]
        if feature_columns is None and extra:
            raise DataError(f"test has columns that train lacks: {extra} (train: {train_path.name})", test_path)
        raw_train, raw_test = train.features, test.features
        labels = (train.labels, test.labels)
        stamps = (train.timestamps, test.timestamps)
    else:
        total = len(train.features)
        if train_end is None and train_fraction is not None:
            if not 0 < train_fraction < 1:
                raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
            train_end = round(train_fraction * total)
        if train_end is None:
            match = _TSB_AD_TRAIN_END.search(train_path.name)
            if match is None:
                raise DataError("no test part: pass test_path, train_fraction or train_end", train_path)
            train_end = int(match.group(1))
            notes.append(f"train/test split at row {train_end}, from the TSB-AD file name")
        if not 0 < train_end < total:
            raise DataError(f"train_end={train_end} leaves an empty train or test part ({total} rows)", train_path)
        raw_train, raw_test = train.features[:train_end], train.features[train_end:]
        labels = (None, None) if train.labels is None else (train.labels[:train_end], train.labels[train_end:])
        ts = train.timestamps
        stamps = (None, None) if ts is None else (ts[:train_end], ts[train_end:])
    return make_split(
        train_path.stem,
        raw_train,
        raw_test,
        train.columns,
        test_labels=labels[1],
        train_labels=labels[0],
        train_timestamps=stamps[0],
        test_timestamps=stamps[1],
        missing=missing,
        scale=scale,
        clip=clip,
        train_path=train_path,
        test_path=Path(test_path) if test_path is not None else train_path,
        notes=notes,
    )
