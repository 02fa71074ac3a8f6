"""The registered training dataset of the ImDiffusion configs, and the one place that maps a data layout
(``smd``, ``psm``, ``msl``, ``smap``, ``csv``) to the real readers.

``SeriesWindows`` reads one entity (an SMD machine, PSM, a spacecraft, a user CSV) with the official reader and
serves :class:`~diffusekit.timeseries.data.WindowDataset` items over its training part, without the last
``val_fraction`` of it: that tail is held out for the deployable (label-free) threshold calibration.
"""

from __future__ import annotations

from pathlib import Path

from mmengine.registry import DATASETS
from torch.utils.data import Dataset

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import VAL_FRACTION, SeriesSplit, WindowDataset, validation_length
from diffusekit.timeseries.msl_smap import read_msl_smap
from diffusekit.timeseries.psm import read_psm
from diffusekit.timeseries.smd import list_smd_machines, read_smd_machine
from diffusekit.timeseries.tabular import load_frame, read_csv_series, read_header

LAYOUTS = ("smd", "psm", "msl", "smap", "csv")
_TIMESTAMP_NAMES = ("timestamp", "timestamp_(min)", "time", "date", "datetime")


def csv_columns(path: str | Path) -> tuple[str | None, str | None]:
    """The timestamp and label columns of a user CSV (or Parquet) file, recognised by name (``timestamp``/``time``/
    ``date``..., ``label``); None when absent."""
    path = Path(path)
    names = (
        load_frame(path, None, None, None).header if path.suffix.lower() in (".parquet", ".pq") else read_header(path)
    )
    stamp = next((name for name in names if name.strip().lower() in _TIMESTAMP_NAMES), None)
    label = next((name for name in names if name.strip().lower() == "label"), None)
    return stamp, label


def _read_csv_folder(root: Path) -> SeriesSplit:
    """``root/train.csv`` (+ ``root/test.csv``), or a single CSV file split in half."""
    if root.is_file():
        stamp, label = csv_columns(root)
        return read_csv_series(root, timestamp_column=stamp, label_column=label, train_fraction=0.5)
    train = root / "train.csv"
    if not train.is_file():
        raise DataError("no train.csv (the csv layout is a folder with train.csv and test.csv, or one CSV)", root)
    test = root / "test.csv"
    stamp, label = csv_columns(train)
    test_label = csv_columns(test)[1] if test.is_file() else None
    if label is None and test_label is not None:  # the usual case: labels only in test.csv
        names = read_header(train)
        features = [name for name in names if name != stamp]
        split = read_csv_series(train, test, feature_columns=features, timestamp_column=stamp)
        split.test_labels = load_frame(test, features, stamp, test_label).labels
        return split
    return read_csv_series(
        train,
        test if test.is_file() else None,
        timestamp_column=stamp,
        label_column=label,
        train_fraction=None if test.is_file() else 0.5,
    )


def entity_names(data_root: str | Path, layout: str) -> list[str]:
    """The entities a layout holds: SMD machine names; one name for the single-entity layouts."""
    check_layout(layout)
    if layout == "smd":
        return list_smd_machines(data_root)
    return {"psm": ["PSM"], "msl": ["MSL"], "smap": ["SMAP"], "csv": ["series"]}[layout]


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise DataError(f"unknown data layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


def read_entity(data_root: str | Path, layout: str, machine: str | None = None) -> SeriesSplit:
    """Read one entity with the official reader of ``layout`` (``machine`` names the SMD machine)."""
    check_layout(layout)
    root = Path(data_root).expanduser()
    if not root.exists():
        raise DataError("data folder not found", root)
    if layout == "smd":
        machines = list_smd_machines(root)
        machine = machine or machines[0]
        if machine not in machines:
            raise DataError(
                f"unknown machine {machine!r}; found {', '.join(machines[:8])}{' ...' * (len(machines) > 8)}"
            )
        return read_smd_machine(root, machine)
    if layout == "psm":
        return read_psm(root)
    if layout in ("msl", "smap"):
        split = read_msl_smap(root, layout.upper())
        assert isinstance(split, SeriesSplit)
        return split
    return _read_csv_folder(root)


@DATASETS.register_module()
class SeriesWindows(Dataset):
    """Training windows ``(K, L)`` of one entity, read with the real reader of ``layout``.

    Args:
        data_root: the data folder (SMD/PSM/MSL-SMAP layouts) or, for ``csv``, a folder with train.csv/test.csv
            or one CSV file.
        layout: ``smd`` | ``psm`` | ``msl`` | ``smap`` | ``csv``.
        machine: the SMD machine (default: the first one).
        window, stride: window length and training stride (ImDiffusion: 100, 1).
        split: ``train`` (the train part minus the validation tail), ``val`` (the tail) or ``test``.
        val_fraction: share of the train part held out for threshold calibration.
    """

    def __init__(
        self,
        data_root: str,
        layout: str = "smd",
        machine: str | None = None,
        window: int = 100,
        stride: int = 1,
        split: str = "train",
        val_fraction: float = VAL_FRACTION,
    ):
        self.series = read_entity(data_root, layout, machine)
        train = self.series.train
        n_val = validation_length(len(train), val_fraction, window)
        observed = self.series.train_observed
        if split == "train":
            stop = len(train) - n_val
            obs = None if observed is None else observed[:stop]
            self.windows = WindowDataset(train[:stop], window, stride, observed=obs)
        elif split == "val":
            obs = None if observed is None else observed[len(train) - n_val :]
            self.windows = WindowDataset(train[len(train) - n_val :], window, stride, observed=obs)
        elif split == "test":
            self.windows = self.series.test_windows(window, stride)
        else:
            raise DataError(f"split must be train, val or test, got {split!r}")

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict:
        return self.windows[index]
