"""SMD (Server Machine Dataset, NetManAIOps/OmniAnomaly) in its two on-disk layouts.

**Text layout** (the official folders): ``<root>/{train,test,test_label,interpretation_label}/machine-x-y.txt``:
train/test are comma-separated floats, one row per minute, 38 columns, no header; ``test_label`` holds one 0/1 per
line; ``interpretation_label`` lines read ``start-end:d1,d2,...``. On the official files ``start-end`` is a 0-based,
end-exclusive range of test indices (``test_label[start:end]`` is all 1 on every line of the three real machines
checked) and the dims are 1-based; the parser returns :class:`~diffusekit.timeseries.data.Segment` with 0-based dims.
``interpretation_label/`` is optional: without it the splits have no interpretation segments, and a note on each
split says that interpretation scores (HitRate@P%) cannot be computed for it.

**Pickle layout** (OmniAnomaly's ``data_preprocess.py`` output, as ImDiffusion ships it in ``data/Machine/``):
``<root>/<machine>_train.pkl``, ``<machine>_test.pkl`` (float32 ``(T, 38)``) and ``<machine>_test_label.pkl``
(``(T,)``, float32, int or bool 0/1). The files are read by
:func:`~diffusekit.timeseries.safe_pickle.load_array_pickle`, which unpickles plain numpy arrays and nothing else (a
pickle that names any other global, such as ``os.system``, is refused before anything runs). An
``interpretation_label/`` folder next to the files is used when present.

One model per machine is the usual protocol (OmniAnomaly, ImDiffusion), hence one :class:`SeriesSplit` per machine,
each scaled on its own train part.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import Segment, SeriesSplit, make_split
from diffusekit.timeseries.safe_pickle import load_array_pickle
from diffusekit.timeseries.tabular import check_finite, check_labels, read_label_file, read_lines, read_text_table

SMD_NUM_FEATURES = 38
SMD_FOLDERS = ("train", "test", "test_label", "interpretation_label")
INTERPRETATION = "interpretation_label"
PKL_SUFFIXES = ("_train.pkl", "_test.pkl", "_test_label.pkl")
PKL_SUBFOLDERS = ("Machine", "SMD", "processed")  # ImDiffusion's data/Machine/, OmniAnomaly's processed/
NO_INTERPRETATION_NOTE = (
    "no interpretation_label/ folder: no interpretation segments, so interpretation scores (HitRate@P%) "
    "cannot be computed for this machine"
)
_INTERPRETATION_LINE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*:\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*$")


def _natural_key(name: str) -> list[int | str]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def find_smd_root(root: str | Path, interpretation: bool | None = None) -> Path:
    """The folder holding ``train/``, ``test/``...; ``root`` may also be the parent of ``ServerMachineDataset/``.
    ``interpretation_label/`` is required only when ``interpretation`` is True."""
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


def _use_interpretation(root: Path, interpretation: bool | None) -> bool:
    """``interpretation`` None: use ``interpretation_label/`` when it is there."""
    return (root / INTERPRETATION).is_dir() if interpretation is None else interpretation


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


def _interpretation(root: Path, machine: str, labels: np.ndarray, columns: int, use: bool) -> tuple[list, list]:
    """(segments, notes) of ``root/interpretation_label/<machine>.txt`` when ``use``; else none and the note."""
    if not use:
        return [], [NO_INTERPRETATION_NOTE]
    path = root / INTERPRETATION / f"{machine}.txt"
    segments = parse_interpretation_file(path, len(labels), columns)
    return segments, _consistency_notes(labels, segments, path)


def read_smd_machine(
    root: str | Path,
    machine: str,
    *,
    num_features: int | None = SMD_NUM_FEATURES,
    interpretation: bool | None = None,
    missing: str = "error",
    scale: bool = True,
    clip: bool = False,
) -> SeriesSplit:
    """Read one machine. ``num_features=None`` accepts any column count (train and test must still agree).
    ``interpretation``: None (default) reads ``interpretation_label/`` when the folder exists; True requires it;
    False skips it.

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
    segments, notes = _interpretation(root, machine, labels, columns, _use_interpretation(root, interpretation))
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


def _machine_names(machines: str | Sequence[str], listed: Callable[[], list[str]]) -> list[str]:
    if isinstance(machines, str):
        return listed() if machines == "all" else [machines]
    return list(machines)


def read_smd(root: str | Path, machines: str | Sequence[str] = "all", **options: object) -> dict[str, SeriesSplit]:
    """Read SMD machines (text layout): ``"all"``, one name or a list; returns {machine: SeriesSplit} in natural
    order. ``options`` go to :func:`read_smd_machine` (``num_features``, ``interpretation``, ``missing``, ``scale``,
    ``clip``).
    """
    root = find_smd_root(root, options.get("interpretation"))  # type: ignore[arg-type]
    names = _machine_names(machines, lambda: list_smd_machines(root))
    return {name: read_smd_machine(root, name, **options) for name in names}


# ------------------------------------------------------------------------------------------------ pickle layout
def find_smd_pkl_root(root: str | Path) -> Path:
    """The folder holding ``machine-*_train.pkl``...; ``root`` may also be its parent (``Machine/``, ``SMD/`` or
    ``processed/`` inside)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("SMD pkl folder not found", root)
    for candidate in (root, *(root / name for name in PKL_SUBFOLDERS)):
        if candidate.is_dir() and any(candidate.glob(f"machine-*{PKL_SUFFIXES[0]}")):
            return candidate
    raise DataError(
        "no machine-*_train.pkl file (the SMD pkl layout holds <machine>_train.pkl, <machine>_test.pkl and "
        "<machine>_test_label.pkl)",
        root,
    )


def list_smd_pkl_machines(root: str | Path) -> list[str]:
    """Machine names of the ``machine-*_train.pkl`` files, in natural order (OmniAnomaly's ``processed/`` also holds
    SMAP/MSL pickles; they are not SMD machines)."""
    root = find_smd_pkl_root(root)
    suffix = PKL_SUFFIXES[0]
    return sorted((path.name[: -len(suffix)] for path in root.glob(f"machine-*{suffix}")), key=_natural_key)


def _pkl_values(path: Path, num_features: int | None, allow_missing: bool, train: Path | None = None) -> np.ndarray:
    """A (T, K) feature array from a pickle, as float64; a DataError naming the file otherwise. ``train``: the train
    file whose column count ``num_features`` is."""
    values = load_array_pickle(path, "a (time, features) array of numbers")
    if values.ndim != 2:
        raise DataError(f"expected a 2-D (time, features) array, got shape {values.shape}", path)
    if num_features is not None and values.shape[1] != num_features:
        against = f" but {train.name} has {num_features}" if train else f", expected {num_features}"
        raise DataError(f"{values.shape[1]} columns{against}", path)
    values = values.astype(np.float64)
    check_finite(values, path, None, None, allow_missing)
    return values


def _pkl_labels(path: Path, test_length: int, test_path: Path) -> np.ndarray:
    labels = load_array_pickle(path, "a (time,) array of 0/1 labels")
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataError(f"expected a 1-D array of 0/1 labels, got shape {labels.shape}", path)
    return check_labels(labels.astype(np.float64), path, None, test_length, test_path)


def read_smd_pkl_machine(
    root: str | Path,
    machine: str,
    *,
    num_features: int | None = SMD_NUM_FEATURES,
    interpretation: bool | None = None,
    missing: str = "error",
    scale: bool = True,
    clip: bool = False,
) -> SeriesSplit:
    """Read one machine of the pickle layout (see the module docstring); options as :func:`read_smd_machine`
    (``interpretation`` refers to an ``interpretation_label/`` folder next to the pickles)."""
    root = find_smd_pkl_root(root)
    train_path, test_path, label_path = (root / f"{machine}{suffix}" for suffix in PKL_SUFFIXES)
    allow_missing = missing != "error"
    train = _pkl_values(train_path, num_features, allow_missing)
    test = _pkl_values(test_path, train.shape[1], allow_missing, train_path)
    labels = _pkl_labels(label_path, len(test), test_path)
    if interpretation and not (root / INTERPRETATION).is_dir():
        raise DataError("missing folder (interpretation=True needs interpretation_label/)", root / INTERPRETATION)
    segments, notes = _interpretation(root, machine, labels, train.shape[1], _use_interpretation(root, interpretation))
    return make_split(
        machine,
        train,
        test,
        [f"feature_{k}" for k in range(train.shape[1])],
        test_labels=labels,
        interpretation=segments,
        missing=missing,
        scale=scale,
        clip=clip,
        train_path=train_path,
        test_path=test_path,
        notes=notes,
    )


def read_smd_pkl(root: str | Path, machines: str | Sequence[str] = "all", **options: object) -> dict[str, SeriesSplit]:
    """Read SMD machines of the pickle layout: ``"all"``, one name or a list; {machine: SeriesSplit} in natural
    order. ``options`` as :func:`read_smd_pkl_machine`."""
    root = find_smd_pkl_root(root)
    names = _machine_names(machines, lambda: list_smd_pkl_machines(root))
    return {name: read_smd_pkl_machine(root, name, **options) for name in names}
