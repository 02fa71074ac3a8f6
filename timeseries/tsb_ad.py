"""TSB-AD-M (Liu & Paparrizos, NeurIPS 2024 Datasets & Benchmarks) multivariate CSV files.

Each series is one CSV named ``[idx]_[Dataset]_id_[n]_[Domain]_tr_[trainEnd]_1st_[firstAnomaly].csv`` (the synthetic
data writes e.g. ``001_SMD_id_1_Facility_tr_2000_1st_2317.csv``): a header row, the feature columns, then ``Label``
(0/1). Every column but ``Label`` is a feature, as in TSB-AD's loader (``df.iloc[:, 0:-1]``). The rows before
``trainEnd`` are the train part, the rest the test part; ``firstAnomaly`` is the row of the first label 1 (checked;
a mismatch is a note, not an error). One :class:`SeriesSplit` per file, named by the file stem; a folder holds any
number of them.

Two differences from TSB-AD's own runs, both kept on purpose: TSB-AD fits its semi-supervised detectors on
``data[:trainEnd]`` but scores and evaluates the **whole** file (train rows included), while here the test part is
the rows from ``trainEnd`` on (the split every other reader makes); and TSB-AD drops rows with a missing value
(``dropna``), which moves the boundary, while here missing values follow the fill policy ``missing`` (see
:mod:`diffusekit.timeseries.data`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import SeriesSplit, make_split
from diffusekit.timeseries.tabular import load_frame

LABEL_COLUMN = "Label"
NAME_PATTERN = "[idx]_[Dataset]_id_[n]_[Domain]_tr_[trainEnd]_1st_[firstAnomaly].csv"
_NAME = re.compile(
    r"^(?P<index>\d+)_(?P<dataset>.+?)_id_(?P<series>\d+)_(?P<domain>.+?)_tr_(?P<train_end>\d+)"
    r"_1st_(?P<first_anomaly>\d+)$"
)


@dataclass(frozen=True)
class TsbAdName:
    """The parts of a TSB-AD file name."""

    index: int
    dataset: str
    series: int
    domain: str
    train_end: int
    first_anomaly: int


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def parse_tsb_ad_name(path: str | Path) -> TsbAdName:
    """The parts of ``path``'s name; a DataError naming the file when it is not a TSB-AD name (no train length)."""
    path = Path(path)
    match = _NAME.match(path.stem) if path.suffix.lower() == ".csv" else None
    if match is None:
        if re.search(r"_tr_\d+(_|$)", path.stem) is None:
            raise DataError(f"no train length (_tr_<trainEnd>_) in the file name ({NAME_PATTERN})", path)
        raise DataError(f"the file name is not a TSB-AD name ({NAME_PATTERN})", path)
    return TsbAdName(
        int(match["index"]),
        match["dataset"],
        int(match["series"]),
        match["domain"],
        int(match["train_end"]),
        int(match["first_anomaly"]),
    )


def list_tsb_ad_files(root: str | Path) -> list[Path]:
    """``root`` itself when it is a file, else the ``*.csv`` files of the folder in natural order; every one must
    carry a TSB-AD name (a DataError naming the first that does not)."""
    root = Path(root)
    if root.is_file():
        parse_tsb_ad_name(root)
        return [root]
    if not root.is_dir():
        raise DataError("TSB-AD file or folder not found", root)
    files = sorted((path for path in root.glob("*.csv") if path.is_file()), key=lambda p: _natural_key(p.name))
    if not files:
        raise DataError(f"no .csv files (the TSB-AD layout: files named {NAME_PATTERN})", root)
    for path in files:
        parse_tsb_ad_name(path)
    return files


def read_tsb_ad_file(
    path: str | Path, *, missing: str = "ffill_bfill", scale: bool = True, clip: bool = False
) -> SeriesSplit:
    """Read one TSB-AD-M CSV into a :class:`SeriesSplit` named by the file stem (train = rows before ``trainEnd``,
    scaled on train only). Bad input is a DataError naming the file: a name without a train length, no ``Label``
    column, a label other than 0/1 (with its line), a train length of 0 or not below the row count."""
    path = Path(path)
    name = parse_tsb_ad_name(path)
    frame = load_frame(path, None, None, LABEL_COLUMN)
    labels = frame.labels
    assert labels is not None
    total = len(labels)
    if name.train_end == 0:
        raise DataError("train length 0 (_tr_0_ in the file name) leaves no train part", path)
    if name.train_end >= total:
        raise DataError(
            f"train length {name.train_end} (_tr_{name.train_end}_ in the file name) is beyond the file's {total} "
            "data rows: no test part",
            path,
        )
    notes = [f"train/test split at row {name.train_end}, from the file name"]
    anomalous = np.flatnonzero(labels)
    first = int(anomalous[0]) if anomalous.size else None
    if first != name.first_anomaly:
        notes.append(f"the file name says the first anomaly is at row {name.first_anomaly}; the labels say {first}")
    if first is not None and first < name.train_end:
        notes.append(f"the train part holds {int(labels[: name.train_end].sum())} anomalous point(s)")
    cut = name.train_end
    return make_split(
        path.stem,
        frame.features[:cut],
        frame.features[cut:],
        frame.columns,
        test_labels=labels[cut:],
        train_labels=labels[:cut],
        missing=missing,
        scale=scale,
        clip=clip,
        train_path=path,
        test_path=path,
        notes=notes,
    )


def read_tsb_ad(root: str | Path, files: str | Sequence[str] = "all", **options: object) -> dict[str, SeriesSplit]:
    """Read a TSB-AD file, or a folder of them: ``"all"``, one file stem or a list of stems; {stem: SeriesSplit}
    in natural order. ``options`` go to :func:`read_tsb_ad_file` (``missing``, ``scale``, ``clip``)."""
    paths = {path.stem: path for path in list_tsb_ad_files(root)}
    wanted = list(paths) if files == "all" else [files] if isinstance(files, str) else list(files)
    unknown = [stem for stem in wanted if stem not in paths]
    if unknown:
        raise DataError(f"no TSB-AD file {unknown[0]}.csv", root)
    return {stem: read_tsb_ad_file(paths[stem], **options) for stem in wanted}
