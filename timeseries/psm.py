"""PSM (Pooled Server Metrics, eBay/RANSynCoders): ``train.csv``, ``test.csv``, ``test_label.csv``.

Header ``timestamp_(min),feature_0,...,feature_24``; the label file has ``timestamp_(min),label``. The real train file
has empty fields: they are filled by the policy ``missing`` (default forward-fill then back-fill per feature, counted
in the :class:`FillReport`; the RANSynCoders notebook fills with 0, available as ``missing="zero"``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import SeriesSplit, make_split
from diffusekit.timeseries.tabular import TextTable, check_labels, read_text_table

PSM_TIMESTAMP = "timestamp_(min)"
PSM_FILES = ("train.csv", "test.csv", "test_label.csv")


def find_psm_root(root: str | Path) -> Path:
    """The folder with the three CSV files; ``root`` may also be its parent holding ``PSM/``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("PSM folder not found", root)
    if not (root / "train.csv").exists() and (root / "PSM").is_dir():
        root = root / "PSM"
    return root


def _timestamps(table: TextTable) -> np.ndarray:
    stamps = table.values[:, 0]
    missing = np.flatnonzero(np.isnan(stamps))
    if missing.size:
        raise DataError(f"missing {PSM_TIMESTAMP}", table.path, line=table.first_line + int(missing[0]))
    return stamps


def _read_series(path: Path, allow_missing: bool) -> TextTable:
    table = read_text_table(path, header=True, allow_missing=allow_missing)
    if table.header[0] != PSM_TIMESTAMP:
        raise DataError(f"the first column must be {PSM_TIMESTAMP!r}, found {table.header[0]!r}", path, line=1)
    return table


def read_psm(root: str | Path, *, missing: str = "ffill_bfill", scale: bool = True, clip: bool = False) -> SeriesSplit:
    """Read PSM into one :class:`SeriesSplit` (scaled on train only; timestamps kept)."""
    root = find_psm_root(root)
    train_path, test_path, label_path = (root / name for name in PSM_FILES)
    allow_missing = missing != "error"
    train = _read_series(train_path, allow_missing)
    test = _read_series(test_path, allow_missing)
    if len(test.header) != len(train.header):
        raise DataError(f"{len(test.header)} columns but train.csv has {len(train.header)}", test_path, line=1)
    if test.header != train.header:
        differ = [(a, b) for a, b in zip(test.header, train.header) if a != b][:3]
        raise DataError(f"column names differ from train.csv (test, train): {differ}", test_path, line=1)
    label_table = read_text_table(label_path, header=True, expected_columns=2)
    if label_table.header != [PSM_TIMESTAMP, "label"]:
        raise DataError(f"expected the header {PSM_TIMESTAMP},label; got {label_table.header}", label_path, line=1)
    labels = check_labels(label_table.values[:, 1], label_path, label_table.first_line, len(test.values), test_path)
    test_stamps = _timestamps(test)
    mismatch = np.flatnonzero(label_table.values[:, 0] != test_stamps)
    if mismatch.size:
        row = int(mismatch[0])
        raise DataError(
            f"timestamp {label_table.values[row, 0]:g} differs from test.csv line {test.first_line + row} "
            f"({test_stamps[row]:g})",
            label_path,
            line=label_table.first_line + row,
        )
    return make_split(
        "PSM",
        train.values[:, 1:],
        test.values[:, 1:],
        train.header[1:],
        test_labels=labels,
        train_timestamps=_timestamps(train),
        test_timestamps=test_stamps,
        missing=missing,
        scale=scale,
        clip=clip,
        train_path=train_path,
        test_path=test_path,
    )
