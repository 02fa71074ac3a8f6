"""The registered training dataset of the ImDiffusion configs, and the one place that maps a data layout
(``smd``, ``smd_pkl``, ``psm``, ``msl``, ``smap``, ``csv``, ``tsb_ad``) to the real readers.

``SeriesWindows`` reads one entity (an SMD machine, PSM, a spacecraft, a TSB-AD file, a user CSV) with the official
reader and serves :class:`~diffusekit.timeseries.data.WindowDataset` items over its training part, without the last
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
from diffusekit.timeseries.smd import list_smd_machines, list_smd_pkl_machines, read_smd_machine, read_smd_pkl_machine
from diffusekit.timeseries.tabular import load_frame, read_csv_series, read_header
from diffusekit.timeseries.tsb_ad import list_tsb_ad_files, read_tsb_ad_file

LAYOUTS = ("smd", "smd_pkl", "psm", "msl", "smap", "csv", "tsb_ad")
MULTI_ENTITY = ("smd", "smd_pkl", "tsb_ad")  # layouts whose folder holds several entities, chosen by name
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
    """The entities a layout holds: SMD machine names, TSB-AD file stems; one name for the single-entity layouts."""
    check_layout(layout)
    if layout == "smd":
        return list_smd_machines(data_root)
    if layout == "smd_pkl":
        return list_smd_pkl_machines(data_root)
    if layout == "tsb_ad":
        return [path.stem for path in list_tsb_ad_files(data_root)]
    return {"psm": ["PSM"], "msl": ["MSL"], "smap": ["SMAP"], "csv": ["series"]}[layout]


def entity_arg(layout: str, name: str) -> str | None:
    """What :func:`read_entity` takes as ``machine`` for the entity ``name``: the name in a multi-entity layout."""
    return name if layout in MULTI_ENTITY else None


def check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise DataError(f"unknown data layout {layout!r}; choose one of {', '.join(LAYOUTS)}")


def _choose(names: list[str], name: str | None, what: str) -> str:
    name = name or names[0]
    if name not in names:
        raise DataError(f"unknown {what} {name!r}; found {', '.join(names[:8])}{' ...' * (len(names) > 8)}")
    return name


def read_entity(data_root: str | Path, layout: str, machine: str | None = None) -> SeriesSplit:
    """Read one entity with the official reader of ``layout`` (``machine`` names the SMD machine or the TSB-AD
    file stem; default: the first)."""
    check_layout(layout)
    root = Path(data_root).expanduser()
    if not root.exists():
        raise DataError("data folder not found", root)
    if layout == "smd":
        return read_smd_machine(root, _choose(list_smd_machines(root), machine, "machine"))
    if layout == "smd_pkl":
        return read_smd_pkl_machine(root, _choose(list_smd_pkl_machines(root), machine, "machine"))
    if layout == "tsb_ad":
        files = {path.stem: path for path in list_tsb_ad_files(root)}
        return read_tsb_ad_file(files[_choose(list(files), machine, "TSB-AD file")])
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
        data_root: the data folder (SMD/PSM/MSL-SMAP layouts); for ``csv``, a folder with train.csv/test.csv or one
            CSV file; for ``tsb_ad``, a folder of TSB-AD-M CSV files or one of them.
        layout: ``smd`` | ``smd_pkl`` | ``psm`` | ``msl`` | ``smap`` | ``csv`` | ``tsb_ad``.
        machine: the SMD machine or TSB-AD file stem (default: the first one).
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
