"""SMD (Server Machine Dataset, NetManAIOps/OmniAnomaly) in its official folder layout.

``<root>/{train,test,test_label,interpretation_label}/machine-x-y.txt``: train/test are comma-separated floats, one
row per minute, 38 columns, no header; ``test_label`` holds one 0/1 per line; ``interpretation_label`` lines read
``start-end:d1,d2,...``. On the official files ``start-end`` is a 0-based, end-exclusive range of test indices
(``test_label[start:end]`` is all 1 on every line of the three real machines checked) and the dims are 1-based; the
parser returns :class:`~diffusekit.timeseries.data.Segment` with 0-based dims. One model per machine is the usual
protocol (OmniAnomaly, ImDiffusion), hence one :class:`SeriesSplit` per machine, each scaled on its own train part.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import Segment, SeriesSplit, make_split
from diffusekit.timeseries.tabular import read_label_file, read_lines, read_text_table

SMD_NUM_FEATURES = 38
SMD_FOLDERS = ("train", "test", "test_label", "interpretation_label")
_INTERPRETATION_LINE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*:\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*$")


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def find_smd_root(root: str | Path, interpretation: bool = True) -> Path:
    """The folder holding ``train/``, ``test/``...; ``root`` may also be the parent of ``ServerMachineDataset/``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("SMD folder not found", root)
    if not (root / "train").is_dir() and (root / "ServerMachineDataset").is_dir():
        root = root / "ServerMachineDataset"
    needed = SMD_FOLDERS if interpretation else SMD_FOLDERS[:3]
    for folder in needed:
        if not (root / folder).is_dir():
            raise DataError(f"missing folder (the SMD layout has {', '.join(f + '/' for f in needed)})", root / folder)
    return root


def list_smd_machines(root: str | Path) -> list[str]:
    """Machine names found in ``train/``, in natural order (machine-1-2 before machine-1-10)."""
    train = find_smd_root(root, interpretation=False) / "train"
    names = sorted((path.stem for path in train.glob("*.txt")), key=_natural_key)
    if not names:
        raise DataError("no machine files (*.txt)", train)
    return names


def parse_interpretation_file(path: str | Path, test_length: int, num_features: int) -> list[Segment]:
    """Parse ``interpretation_label/<machine>.txt`` into segments sorted by start (0-based dims, end exclusive)."""
    path = Path(path)
    _, lines, _ = read_lines(path, header=False)
    segments = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        match = _INTERPRETATION_LINE.match(line)
        if match is None:
            raise DataError(f"expected 'start-end:dim,dim,...', got {line.strip()[:40]!r}", path, line=number)
        start, end = int(match.group(1)), int(match.group(2))
        dims = sorted({int(dim) for dim in match.group(3).split(",")})
        if start >= end:
            raise DataError(f"empty range {start}-{end}", path, line=number)
        if end > test_length:
            raise DataError(f"range {start}-{end} ends past the test series ({test_length} rows)", path, line=number)
        if dims[0] < 1 or dims[-1] > num_features:
            raise DataError(f"dims must be in 1..{num_features} (1-based), got {dims}", path, line=number)
        segments.append(Segment(start, end, tuple(dim - 1 for dim in dims)))
    return sorted(segments)


def _consistency_notes(labels: np.ndarray, segments: list[Segment], path: Path) -> list[str]:
    notes = []
    partial = sum(not labels[s.start : s.end].all() for s in segments)
    if partial:
        notes.append(f"{path.name}: {partial} interpretation range(s) not fully labeled 1 in test_label")
    edges = np.diff(np.concatenate([[0], labels, [0]]))
    label_starts, label_ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    uncovered = sum(
        not any(s.start < end and start < s.end for s in segments) for start, end in zip(label_starts, label_ends)
    )
    if uncovered:
        notes.append(f"{path.name}: {uncovered} labeled segment(s) have no interpretation line")
    return notes


def read_smd_machine(
    root: str | Path,
    machine: str,
    *,
    num_features: int | None = SMD_NUM_FEATURES,
    interpretation: bool = True,
    missing: str = "error",
    scale: bool = True,
    clip: bool = False,
) -> SeriesSplit:
    """Read one machine. ``num_features=None`` accepts any column count (train and test must still agree).

    SMD has no missing values, so NaN is a DataError by default (``missing``: see the data module).
    """
    root = find_smd_root(root, interpretation)
    train_path, test_path = root / "train" / f"{machine}.txt", root / "test" / f"{machine}.txt"
    allow_missing = missing != "error"
    train = read_text_table(train_path, expected_columns=num_features, allow_missing=allow_missing)
    columns = train.values.shape[1]
    test = read_text_table(test_path, allow_missing=allow_missing)  # ragged rows are checked against its line 1
    if test.values.shape[1] != columns:
        raise DataError(f"{test.values.shape[1]} columns but train/{machine}.txt has {columns}", test_path, line=1)
    label_path = root / "test_label" / f"{machine}.txt"
    labels = read_label_file(label_path, len(test.values), test_path)
    segments, notes = [], []
    if interpretation:
        interpretation_path = root / "interpretation_label" / f"{machine}.txt"
        segments = parse_interpretation_file(interpretation_path, len(test.values), columns)
        notes = _consistency_notes(labels, segments, interpretation_path)
    return make_split(
        machine,
        train.values,
        test.values,
        [f"feature_{k}" for k in range(columns)],
        test_labels=labels,
        interpretation=segments,
        missing=missing,
        scale=scale,
        clip=clip,
        train_path=train_path,
        test_path=test_path,
        notes=notes,
    )


def read_smd(root: str | Path, machines: str | Sequence[str] = "all", **options: object) -> dict[str, SeriesSplit]:
    """Read SMD machines: ``"all"``, one name or a list; returns {machine: SeriesSplit} in natural order.

    ``options`` go to :func:`read_smd_machine` (``num_features``, ``interpretation``, ``missing``, ``scale``,
    ``clip``).
    """
    interpretation = bool(options.get("interpretation", True))
    root = find_smd_root(root, interpretation)
    if isinstance(machines, str):
        names = list_smd_machines(root) if machines == "all" else [machines]
    else:
        names = list(machines)
    return {name: read_smd_machine(root, name, **options) for name in names}
