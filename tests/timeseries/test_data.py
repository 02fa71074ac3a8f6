"""Readers, scaling, fill policy and windows: on the real SMD/MSL-SMAP samples in ../shared/data when present, and on
synthetic files corrupted one way at a time (every bad input must be a DataError naming the file, and the line)."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import MinMaxScaling, WindowDataset, fill_missing, window_starts
from diffusekit.timeseries.metrics import hit_rate_at_p
from diffusekit.timeseries.msl_smap import read_labeled_anomalies, read_msl_smap
from diffusekit.timeseries.psm import read_psm
from diffusekit.timeseries.safe_pickle import load_array_pickle
from diffusekit.timeseries.smd import (
    NO_INTERPRETATION_NOTE,
    list_smd_machines,
    list_smd_pkl_machines,
    read_smd,
    read_smd_machine,
    read_smd_pkl,
    read_smd_pkl_machine,
)
from diffusekit.timeseries.synthetic import write_msl_smap_dataset, write_psm_dataset, write_smd_dataset
from diffusekit.timeseries.tabular import read_csv_series
from diffusekit.timeseries.tsb_ad import list_tsb_ad_files, parse_tsb_ad_name, read_tsb_ad, read_tsb_ad_file

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SMD_REAL = SHARED / "smd" / "ServerMachineDataset"
MSL_SMAP_CSV = SHARED / "msl_smap" / "labeled_anomalies.csv"
REAL_MACHINES = ["machine-1-2", "machine-2-1", "machine-3-2"]


@pytest.fixture(scope="module")
def real_smd():
    if not SMD_REAL.is_dir():
        pytest.skip(f"real SMD sample not found at {SMD_REAL}")
    return read_smd(SMD_REAL)


def _line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


# ---------------------------------------------------------------- real SMD sample


def test_real_smd_shapes_and_labels(real_smd):
    assert list(real_smd) == REAL_MACHINES == list_smd_machines(SMD_REAL.parent)
    expected_anomalies = {"machine-1-2": 542, "machine-2-1": 1170, "machine-3-2": 1109}
    for name, split in real_smd.items():
        assert split.train.shape == (_line_count(SMD_REAL / "train" / f"{name}.txt"), 38)
        assert split.test.shape == (_line_count(SMD_REAL / "test" / f"{name}.txt"), 38)
        label_lines = (SMD_REAL / "test_label" / f"{name}.txt").read_text().split()
        assert len(split.test_labels) == len(label_lines) == len(split.test)
        assert split.test_labels.sum() == label_lines.count("1") == expected_anomalies[name] > 0
        assert split.fill_report.total == 0 and split.train_observed is None


def test_real_smd_interpretation(real_smd):
    for name, split in real_smd.items():
        raw_lines = (SMD_REAL / "interpretation_label" / f"{name}.txt").read_text().split()
        assert len(split.interpretation) == len(raw_lines) > 0
        for segment in split.interpretation:
            assert 0 <= segment.start < segment.end <= len(split.test)
            assert all(0 <= dim <= 37 for dim in segment.dims)
            # the official ranges are 0-based and end-exclusive: exactly the labeled stretch
            assert split.test_labels[segment.start : segment.end].all()
            assert split.test_labels[segment.start - 1] == 0 and split.test_labels[segment.end] == 0
        first = raw_lines[0].split(":")
        seg = next(s for s in split.interpretation if f"{s.start}-{s.end}" == first[0])
        assert [d + 1 for d in seg.dims] == sorted(int(d) for d in first[1].split(","))
    assert any("no interpretation line" in note for note in real_smd["machine-3-2"].notes)


def test_real_smd_scaling_is_fitted_on_train_only(real_smd):
    split = real_smd["machine-2-1"]
    np.testing.assert_allclose(split.scaler.data_min, split.raw_train.min(axis=0), atol=1e-6)
    assert split.train.min() >= 0 and split.train.max() <= 1 + 1e-6
    above = split.raw_test > split.raw_train.max(axis=0) + 1e-6
    assert above.any()
    assert (split.test[above] > 1).all()  # no clipping by default: beyond-train values stay visible
    expected = (split.raw_test.astype(np.float64) - split.scaler.data_min) / split.scaler.data_range
    np.testing.assert_allclose(split.test, expected, rtol=1e-5, atol=1e-6)
    clipped = read_smd_machine(SMD_REAL, "machine-2-1", clip=True)
    assert clipped.test.max() <= 1 and clipped.test.min() >= 0
    unscaled = read_smd_machine(SMD_REAL.parent, "machine-2-1", scale=False)
    assert unscaled.scaler is None and np.array_equal(unscaled.test, split.raw_test)


def test_real_smd_windows_cover_every_step(real_smd):
    split = real_smd["machine-3-2"]
    windows = split.test_windows(window=100)  # stride 50, as ImDiffusion's test windows
    covered = np.zeros(len(split.test), dtype=int)
    for start in windows.starts:
        covered[start : start + 100] += 1
    assert covered.min() >= 1 and windows.starts[-1] == len(split.test) - 100
    item = windows[len(windows) - 1]
    assert item["values"].shape == (38, 100) and item["labels"].shape == (100,)
    assert torch.equal(item["values"], torch.from_numpy(split.test[-100:].T.copy()))


def test_real_msl_smap_labels_and_the_p2_duplicate(tmp_path):
    if not MSL_SMAP_CSV.is_file():
        pytest.skip(f"labeled_anomalies.csv not found at {MSL_SMAP_CSV}")
    rows = read_labeled_anomalies(MSL_SMAP_CSV)
    assert len(rows) == 82
    p2 = [row for row in rows if row.chan_id == "P-2"]
    assert [row.line for row in p2] == [19, 53] and p2[0].sequences != p2[1].sequences
    totals = {"SMAP": (53, 427_617, 54_696), "MSL": (27, 73_729, 7_766)}
    for craft, (channels, points, anomalous) in totals.items():
        mine = [row for row in rows if row.spacecraft == craft and row.chan_id != "P-2"]
        assert len(mine) == len({row.chan_id for row in mine}) == channels
        assert sum(r.num_values for r in mine) == points and sum(r.labels().sum() for r in mine) == anomalous
    # read two real channels through the reader (telemetry arrays are zeros of the labeled lengths)
    shutil.copy(MSL_SMAP_CSV, tmp_path / "labeled_anomalies.csv")
    for split in ("train", "test"):
        (tmp_path / "data" / split).mkdir(parents=True)
        for row in rows:
            if row.chan_id in ("A-1", "P-1"):
                np.save(tmp_path / "data" / split / f"{row.chan_id}.npy", np.zeros((row.num_values, 25)))
    smap = read_msl_smap(tmp_path, "SMAP", channels=["P-1", "A-1"])
    assert list(smap.parts) == ["A-1", "P-1"]
    a1 = next(row for row in rows if row.chan_id == "A-1")
    assert smap.test_labels[smap.parts["A-1"][1]].tolist() == a1.labels().tolist()
    assert any("P-2" in note and "lines 19, 53" in note for note in smap.notes)


# ---------------------------------------------------------------- pieces


def test_fill_policies():
    values = np.array([[np.nan, 1.0], [2.0, np.nan], [np.nan, np.nan], [4.0, 5.0]])
    filled = fill_missing(values, "ffill_bfill", None, ["a", "b"])
    np.testing.assert_array_equal(filled, [[2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [4.0, 5.0]])
    np.testing.assert_array_equal(fill_missing(values, "zero", None, ["a", "b"])[:, 0], [0, 2, 0, 4])
    with pytest.raises(DataError, match="row 0, feature 'a'"):
        fill_missing(values, "error", Path("x.csv"), ["a", "b"])
    with pytest.raises(DataError, match="no values at all"):
        fill_missing(np.array([[np.nan, 1.0]]), "ffill_bfill", None, ["a", "b"])


def test_minmax_scaling_constant_feature_and_inverse():
    train = np.array([[0.0, 3.0], [2.0, 3.0]])
    scaler = MinMaxScaling.fit(train)
    test = np.array([[4.0, 3.5]])
    np.testing.assert_allclose(scaler.transform(test), [[2.0, 0.5]])  # constant feature: shifted, not divided
    np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(test)), test, rtol=1e-6)
    np.testing.assert_allclose(MinMaxScaling.fit(train, clip=True).transform(test), [[1.0, 0.5]])


def test_window_dataset_tail_shapes_and_collate():
    series = np.arange(23 * 3, dtype=np.float32).reshape(23, 3)
    labels = np.zeros(23, dtype=int)
    observed = np.ones((23, 3), dtype=bool)
    observed[4, 1] = False
    dataset = WindowDataset(series, window=10, stride=4, labels=labels, observed=observed)
    assert dataset.starts.tolist() == [0, 4, 8, 12, 13]  # the tail window ends exactly at T
    assert WindowDataset(series, 10, 4, tail=False).starts.tolist() == [0, 4, 8, 12]
    assert window_starts(20, 10, 5).tolist() == [0, 5, 10]  # already ends at T: nothing added
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=5)))
    assert batch["values"].shape == (5, 3, 10) and batch["labels"].shape == (5, 10)
    assert batch["start"].tolist() == [0, 4, 8, 12, 13] and batch["timepoints"].shape == (5, 10)
    assert batch["values"][4, :, -1].tolist() == series[-1].tolist()
    assert batch["observed_mask"][1, 1, 0] == 0 and batch["observed_mask"].sum() == 5 * 30 - 2
    with pytest.raises(DataError, match="fewer than the window"):
        WindowDataset(series[:5], window=10)


# ---------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def pristine_smd(tmp_path_factory):
    root = tmp_path_factory.mktemp("smd_pristine")
    write_smd_dataset(root, machines=["machine-1-1"], length=1000, seed=3)
    return root


@pytest.fixture
def smd(pristine_smd, tmp_path):
    root = tmp_path / "ServerMachineDataset"
    shutil.copytree(pristine_smd, root)
    return root


def _edit_line(path: Path, line: int, new: str | None) -> None:
    lines = path.read_text().splitlines()
    if new is None:
        del lines[line - 1]
    else:
        lines[line - 1] = new
    path.write_text("\n".join(lines) + "\n")


def _drop_column(path: Path) -> None:
    path.write_text("".join(line.rsplit(",", 1)[0] + "\n" for line in path.read_text().splitlines()))


M = "machine-1-1.txt"
INTERP = "interpretation_label"
SMD_CASES = {
    "ragged train row": (lambda r: _edit_line(r / "train" / M, 7, "0.1,0.2,0.3"), "train", 7, "ragged row: 3 fields"),
    "ragged test row": (lambda r: _edit_line(r / "test" / M, 3, "0," * 38 + "0"), "test", 3, "39 fields"),
    "test column count": (lambda r: _drop_column(r / "test" / M), "test", 1, "37 columns but train"),
    "nan value": (lambda r: _edit_line(r / "train" / M, 5, ",".join(["nan"] * 38)), "train", 5, r"NaN"),
    "inf value": (lambda r: _edit_line(r / "test" / M, 6, ",".join(["inf"] * 38)), "test", 6, "infinite"),
    "not a number": (lambda r: _edit_line(r / "train" / M, 9, ",".join(["abc"] * 38)), "train", 9, "'abc'"),
    "empty train": (lambda r: (r / "train" / M).write_text(""), "train", None, "empty file"),
    "short labels": (lambda r: _edit_line(r / "test_label" / M, 1000, None), "test_label", None, "999 labels"),
    "label not 0/1": (lambda r: _edit_line(r / "test_label" / M, 10, "2"), "test_label", 10, "0 or 1, got 2"),
    "blank label line": (lambda r: _edit_line(r / "test_label" / M, 4, ""), "test_label", 4, "blank line"),
    "bad interpretation": (lambda r: _edit_line(r / INTERP / M, 2, "12:3"), INTERP, 2, "expected 'start-end"),
    "dim out of range": (lambda r: _edit_line(r / INTERP / M, 1, "5-9:39"), INTERP, 1, r"1\.\.38"),
    "range past end": (lambda r: _edit_line(r / INTERP / M, 1, "5-1001:1"), INTERP, 1, "ends past"),
    "missing labels folder": (lambda r: shutil.rmtree(r / "test_label"), "test_label", None, "missing folder"),
    "missing test file": (lambda r: (r / "test" / M).unlink(), "test", None, "file not found"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(SMD_CASES))
def test_smd_bad_input_names_the_file(smd, case):
    corrupt, folder, line, message = SMD_CASES[case]
    corrupt(smd)
    with pytest.raises(DataError, match=message) as caught:
        read_smd(smd, "machine-1-1")
    error = caught.value
    expected = smd / folder if case == "missing labels folder" else smd / folder / M
    assert error.path == expected and error.line == line
    assert str(error).startswith(f"{expected}:{line}: " if line else f"{expected}: ")


def test_smd_missing_root_and_unknown_machine(smd, tmp_path):
    with pytest.raises(DataError, match="SMD folder not found"):
        read_smd(tmp_path / "nowhere")
    with pytest.raises(DataError, match="file not found") as caught:
        read_smd(smd, ["machine-9-9"])
    assert caught.value.path == smd / "train" / "machine-9-9.txt"


def test_psm_reader_fill_report_and_bad_input(tmp_path):
    root = write_psm_dataset(tmp_path / "PSM", length=1000, features=6, seed=1).root
    split = read_psm(tmp_path)  # the parent of PSM/ works too
    empty_cells = sum(line.split(",").count("") for line in (root / "train.csv").read_text().splitlines())
    assert split.fill_report.missing_train == empty_cells > 0 and split.fill_report.missing_test == 0
    assert (~split.train_observed).sum() == empty_cells and "filled" in split.notes[0]
    assert split.raw_train[0, 0] == split.raw_train[5, 0]  # the leading gap is back-filled
    assert split.train.min() == 0 and split.train.max() == 1 and split.test_timestamps[0] == 1000
    with pytest.raises(DataError, match="missing value") as caught:
        read_psm(root, missing="error")
    assert caught.value.path == root / "train.csv" and caught.value.line is not None
    _drop_column(root / "test.csv")
    with pytest.raises(DataError, match="6 columns but train.csv has 7") as caught:
        read_psm(root)
    assert (caught.value.path, caught.value.line) == (root / "test.csv", 1)
    root = write_psm_dataset(tmp_path / "again", length=1000, features=6, seed=1).root
    _edit_line(root / "test_label.csv", 4, "9999.0,0")
    with pytest.raises(DataError, match="timestamp 9999 differs") as caught:
        read_psm(root)
    assert (caught.value.path, caught.value.line) == (root / "test_label.csv", 4)
    _edit_line(root / "test_label.csv", 1001, None)
    with pytest.raises(DataError, match="999 labels but test.csv has 1000 rows"):
        read_psm(root)


def test_msl_smap_bad_input(tmp_path):
    root = write_msl_smap_dataset(tmp_path, "SMAP", channels=2, length=1000, seed=2).root
    csv_path = root / "labeled_anomalies.csv"
    with pytest.raises(DataError, match="listed twice") as caught:
        read_msl_smap(root, "SMAP", drop_channels=())
    assert (caught.value.path, caught.value.line) == (csv_path, 5)
    np.save(root / "data" / "test" / "A-1.npy", np.zeros((900, 25)))
    with pytest.raises(DataError, match="num_values is 1000") as caught:
        read_msl_smap(root, "SMAP")
    assert (caught.value.path, caught.value.line) == (csv_path, 2)
    (root / "data" / "test" / "A-1.npy").unlink()
    with pytest.raises(DataError, match="file not found"):
        read_msl_smap(root, "SMAP")
    _edit_line(csv_path, 3, 'D-1,SMAP,"[[5, 2000]]",[point],1000')
    with pytest.raises(DataError, match="outside 0..999") as caught:
        read_labeled_anomalies(csv_path)
    assert caught.value.line == 3


def test_generic_csv_reader(tmp_path):
    stamps = [f"2024-01-01T00:{m // 60:02d}:{m % 60:02d}" for m in range(300)]
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 3))
    labels = (np.arange(300) > 280).astype(int)
    rows = [f"{s},{a:.5f},{b:.5f},{c:.5f},{y}" for s, (a, b, c), y in zip(stamps, values, labels)]
    rows[10] = rows[10].replace(f"{values[10, 1]:.5f}", "")
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(["time,cpu,mem,disk,is_anomaly", *rows]) + "\n")
    split = read_csv_series(path, timestamp_column="time", label_column="is_anomaly", train_fraction=0.5)
    assert split.feature_names == ["cpu", "mem", "disk"] and split.train.shape == (150, 3)
    assert split.test_labels.sum() == 19 and split.train_labels.sum() == 0
    assert split.fill_report.by_feature == {"mem": (1, 0)} and split.train_timestamps.dtype.kind == "M"
    only = read_csv_series(path, feature_columns=["disk"], timestamp_column="time", train_end=100)
    assert only.train.shape == (100, 1) and only.test.shape == (200, 1)
    unlabeled = read_csv_series(path, timestamp_column="time", train_end=100)
    assert "is_anomaly" in unlabeled.feature_names and "look like labels" in unlabeled.notes[0]
    tsb = tmp_path / "001_SMD_id_1_Facility_tr_120_1st_281.csv"
    shutil.copy(path, tsb)
    assert read_csv_series(tsb, timestamp_column="time", label_column="is_anomaly").train.shape == (120, 3)
    with pytest.raises(DataError, match="no test part"):
        read_csv_series(path, timestamp_column="time")
    with pytest.raises(DataError, match=r"no column\(s\) \['cpu2'\]") as caught:
        read_csv_series(path, feature_columns=["cpu2"], train_end=5)
    assert caught.value.line == 1
    test_path = tmp_path / "test.csv"
    test_path.write_text("time,cpu,mem,disk,is_anomaly,extra\n" + "t,1,2,3,0,9\n")
    with pytest.raises(DataError, match="columns that train lacks") as caught:
        read_csv_series(path, test_path, timestamp_column="time", label_column="is_anomaly")
    assert caught.value.path == test_path
    _edit_line(path, 8, "x,1,2")
    with pytest.raises(DataError, match="ragged row") as caught:
        read_csv_series(path, timestamp_column="time", train_end=5)
    assert (caught.value.path, caught.value.line) == (path, 8)


def test_parquet_needs_pandas_and_pyarrow(tmp_path):
    path = tmp_path / "series.parquet"
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(DataError, match="pyarrow") as caught:
            read_csv_series(path, train_end=2)
        assert caught.value.path == path
        return
    pd.DataFrame({"a": np.arange(10.0), "b": np.ones(10), "label": [0] * 9 + [1]}).to_parquet(path)
    split = read_csv_series(path, label_column="label", train_end=6)
    assert split.train.shape == (6, 2) and split.test_labels.tolist() == [0, 0, 0, 1]


def test_user_csv_with_quoted_fields(tmp_path):
    """Quoted header names and fields with commas (and a quoted number) go through a real CSV parser."""
    path = tmp_path / "quoted.csv"
    rows = ['"time, UTC","cpu, total",mem,label']
    rows += [f'"2024-01-0{1 + t // 5}, 00:0{t % 5}",{t / 10:.1f},"{2 * t}",{int(t == 7)}' for t in range(10)]
    path.write_text("\n".join(rows) + "\n")
    split = read_csv_series(path, timestamp_column="time, UTC", label_column="label", train_end=6)
    assert split.feature_names == ["cpu, total", "mem"]
    assert split.raw_train[:, 1].tolist() == [0, 2, 4, 6, 8, 10]
    assert split.test_timestamps[0] == "2024-01-02, 00:01" and split.test_labels.tolist() == [0, 1, 0, 0]
    path.write_text(rows[0] + "\n" + rows[1] + "\n" + '"2024-01-01, 00:01",0.1,"x,y",0\n')
    with pytest.raises(DataError, match="column 'mem': 'x,y' is not a number") as caught:
        read_csv_series(path, timestamp_column="time, UTC", label_column="label", train_end=1)
    assert caught.value.line == 3


# ---------------------------------------------------------------- SMD without interpretation_label/


def test_smd_without_interpretation_folder_reads_and_says_so(smd):
    with_it = read_smd_machine(smd, "machine-1-1")
    assert with_it.interpretation and NO_INTERPRETATION_NOTE not in with_it.notes
    shutil.rmtree(smd / "interpretation_label")
    split = read_smd_machine(smd, "machine-1-1")
    assert split.interpretation == [] and split.notes == [NO_INTERPRETATION_NOTE]  # said once, on the split
    np.testing.assert_array_equal(split.test, with_it.test)
    assert list(read_smd(smd)) == ["machine-1-1"] and read_smd(smd, interpretation=False)["machine-1-1"].notes
    with pytest.raises(DataError, match="missing folder") as caught:
        read_smd_machine(smd, "machine-1-1", interpretation=True)  # asked for explicitly: still required
    assert caught.value.path == smd / "interpretation_label"
    with pytest.raises(ValueError, match="no interpretation point"):  # where interpretation scores are computed
        hit_rate_at_p(split.interpretation, np.zeros((len(split.test), 38)))


# ---------------------------------------------------------------- SMD pickle layout (OmniAnomaly / ImDiffusion)


def _dump(path: Path, obj: object, protocol: int = 3) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def _numpy1_names(data: bytes) -> bytes:
    """A protocol 2/3 pickle as numpy 1.x writes it: ``numpy.core.multiarray`` instead of ``numpy._core...``."""
    assert b"numpy._core.multiarray" in data
    return data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_array_pickles_of_every_protocol_load(tmp_path, protocol):
    arrays = {
        "float32": np.arange(12, dtype=np.float32).reshape(4, 3) / 7,
        "float64": np.random.default_rng(protocol).random((5, 38)),
        "int labels": np.array([0, 1, 1, 0], dtype=np.int64),
        "float32 labels": np.array([0.0, 1.0, 0.0], dtype=np.float32),
        "bool labels": np.array([True, False]),
        "fortran order": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided view": np.arange(24.0).reshape(4, 6)[:, ::2],
    }
    for name, array in arrays.items():
        loaded = load_array_pickle(_dump(tmp_path / "a.pkl", array, protocol))
        assert loaded.dtype == array.dtype and np.array_equal(loaded, array), name
    if protocol <= 3:  # text GLOBAL opcodes: the numpy 1.x spelling can be written byte for byte
        path = tmp_path / "numpy1.pkl"
        path.write_bytes(_numpy1_names(pickle.dumps(arrays["float32"], protocol=protocol)))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy.core is never imported (numpy 2 warns on it)
            assert np.array_equal(load_array_pickle(path), arrays["float32"])


def test_a_pickle_that_runs_code_is_refused_before_it_runs(tmp_path):
    marker = tmp_path / "ran"
    for protocol in (2, 5):
        for payload in (_RunsCode(marker), np.array([_RunsCode(marker)], dtype=object), [1, _RunsCode(marker)]):
            path = _dump(tmp_path / "machine-1-1_train.pkl", payload, protocol)
            with pytest.raises(DataError, match=r"refused to unpickle the global (posix|nt)\.system") as caught:
                load_array_pickle(path)
            assert caught.value.path == path
    assert not marker.exists()
    pickle.loads(path.read_bytes())  # the control: the last file, unpickled plainly, does run its payload
    assert marker.exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"train": [1, 2]}, "holds a dict"),
        ([0.1, 0.2], "holds a list"),
        (np.array(["a", "b"]), "dtype <U1"),
        (np.array([1.0, None], dtype=object), "dtype object"),
        (np.array([1 + 2j]), "dtype complex128"),
        (np.zeros((0, 38), dtype=np.float32), "empty array"),
        (np.float32(1.0), "refused to unpickle the global numpy._core.multiarray.scalar"),
    ],
)
def test_a_pickle_of_anything_but_a_numeric_array_is_a_data_error(tmp_path, payload, message):
    path = _dump(tmp_path / "x.pkl", payload)
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        load_array_pickle(path)
    assert caught.value.path == path


@pytest.fixture(scope="module")
def pristine_formats(tmp_path_factory):
    """Two machines written as text, pickles and TSB-AD-M CSV: the same numbers in every format."""
    root = tmp_path_factory.mktemp("smd_formats")
    write_smd_dataset(root, machines=2, length=700, per_kind=1, seed=4, formats=("txt", "pkl", "tsb_ad"))
    return root


@pytest.fixture
def formats(pristine_formats, tmp_path):
    root = tmp_path / "formats"
    shutil.copytree(pristine_formats, root)
    return root


def test_smd_pkl_reads_what_the_text_layout_holds(formats):
    text, pkl = read_smd(formats), read_smd_pkl(formats)
    assert list(pkl) == list(text) == list_smd_pkl_machines(formats) == ["machine-1-1", "machine-1-2"]
    for name, split in pkl.items():
        reference = text[name]
        assert split.train.shape == reference.train.shape == (700, 38) and split.test.dtype == np.float32
        np.testing.assert_array_equal(split.raw_train, reference.raw_train)  # float32 of the same printed numbers
        np.testing.assert_allclose(split.test, reference.test, atol=1e-6)
        assert split.test_labels.dtype == np.int64 and np.array_equal(split.test_labels, reference.test_labels)
        assert split.interpretation == reference.interpretation  # interpretation_label/ next to the pickles
    for folder in ("train", "test", "test_label", "interpretation_label"):
        shutil.rmtree(formats / folder)
    nested = formats.parent / "ImDiffusion" / "data"
    shutil.move(formats, nested / "Machine")
    split = read_smd_pkl_machine(nested, "machine-1-2")  # data/, the parent of Machine/, works too
    assert split.interpretation == [] and split.notes == [NO_INTERPRETATION_NOTE]


PKL_CASES = {
    "dict in train": (lambda r: _dump(r / "machine-1-1_train.pkl", {"a": 1}), "train", "holds a dict"),
    "3-D test": (lambda r: _dump(r / "machine-1-1_test.pkl", np.zeros((700, 38, 2))), "test", "2-D"),
    "37 test columns": (lambda r: _dump(r / "machine-1-1_test.pkl", np.zeros((700, 37))), "test",
                        "37 columns but machine-1-1_train.pkl has 38"),
    "39 train columns": (lambda r: _dump(r / "machine-1-1_train.pkl", np.zeros((700, 39))), "train",
                         "39 columns, expected 38"),
    "nan in train": (lambda r: _dump(r / "machine-1-1_train.pkl", np.full((700, 38), np.nan)), "train",
                     "missing value \\(NaN\\) at row 0"),
    "inf in test": (lambda r: _dump(r / "machine-1-1_test.pkl", np.full((700, 38), np.inf)), "test",
                    "infinite value at row 0"),
    "label 2": (lambda r: _dump(r / "machine-1-1_test_label.pkl", np.full(700, 2.0)), "test_label",
                "label must be 0 or 1, got 2 at row 0"),
    "short labels": (lambda r: _dump(r / "machine-1-1_test_label.pkl", np.zeros(699)), "test_label",
                     "699 labels but machine-1-1_test.pkl has 700 rows"),
    "truncated": (lambda r: (r / "machine-1-1_test.pkl").write_bytes((r / "machine-1-1_test.pkl").read_bytes()[:99]),
                  "test", "not a readable pickle"),
    "text file": (lambda r: (r / "machine-1-1_test_label.pkl").write_text("0\n1\n"), "test_label",
                  "not a readable pickle"),
    "no labels": (lambda r: (r / "machine-1-1_test_label.pkl").unlink(), "test_label", "file not found"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PKL_CASES))
def test_smd_pkl_bad_input_names_the_file(formats, case):
    corrupt, part, message = PKL_CASES[case]
    corrupt(formats)
    with pytest.raises(DataError, match=message) as caught:
        read_smd_pkl(formats, "machine-1-1")
    assert caught.value.path == formats / f"machine-1-1_{part}.pkl"


def test_smd_pkl_folder_errors(tmp_path):
    with pytest.raises(DataError, match="SMD pkl folder not found"):
        read_smd_pkl(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no machine-\\*_train.pkl") as caught:
        read_smd_pkl(tmp_path)
    assert caught.value.path == tmp_path
    with pytest.raises(ValueError, match="formats must be"):
        write_smd_dataset(tmp_path, machines=1, length=700, formats=("csv",))


def test_real_smd_as_pickles(tmp_path):
    """The real sample converted as OmniAnomaly's data_preprocess.py does (np.genfromtxt float32, pickle.dump)."""
    if not SMD_REAL.is_dir():
        pytest.skip(f"real SMD sample not found at {SMD_REAL}")
    machine = "machine-1-2"
    for folder, suffix in (("train", "train"), ("test", "test"), ("test_label", "test_label")):
        values = np.loadtxt(SMD_REAL / folder / f"{machine}.txt", delimiter=",", dtype=np.float32)
        _dump(tmp_path / f"{machine}_{suffix}.pkl", values)
    split, text = read_smd_pkl_machine(tmp_path, machine), read_smd_machine(SMD_REAL, machine)
    np.testing.assert_array_equal(split.raw_train, text.raw_train)
    np.testing.assert_array_equal(split.raw_test, text.raw_test)
    np.testing.assert_allclose(split.test, text.test, atol=1e-5)
    assert split.test_labels.sum() == text.test_labels.sum() == 542
    assert split.notes == [NO_INTERPRETATION_NOTE] and text.interpretation


# ---------------------------------------------------------------- TSB-AD-M CSV


def test_tsb_ad_reads_what_the_text_layout_holds(formats):
    text, tsb = read_smd(formats), read_tsb_ad(formats)
    files = list_tsb_ad_files(formats)
    assert list(tsb) == [path.stem for path in files] and len(files) == 2
    for split, reference, path in zip(tsb.values(), text.values(), files):
        name = parse_tsb_ad_name(path)
        assert (name.dataset, name.domain, name.train_end) == ("SMD", "Facility", 700)
        assert name.first_anomaly == 700 + int(np.flatnonzero(reference.test_labels)[0])
        np.testing.assert_array_equal(split.test, reference.test)  # the same printed numbers, parsed the same way
        np.testing.assert_array_equal(split.test_labels, reference.test_labels)
        assert split.train_labels.sum() == 0 and split.feature_names == reference.feature_names
        assert split.notes == ["train/test split at row 700, from the file name"]
    one = read_tsb_ad_file(files[1])
    assert one.name == files[1].stem and read_tsb_ad(files[1]).keys() == {files[1].stem}


def _tsb_file(root: Path, name: str, rows: list[str], header: str = "a,b,Label") -> Path:
    path = root / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_tsb_ad_notes_and_bad_input(tmp_path):
    rows = [f"{t},{t % 3},{int(t in (2, 7))}" for t in range(10)]
    path = _tsb_file(tmp_path, "005_Toy_id_3_Sensor_tr_4_1st_5.csv", rows)
    split = read_tsb_ad_file(path)
    assert split.train.shape == (4, 2) and split.test_labels.tolist() == [0, 0, 0, 1, 0, 0]
    assert any("first anomaly is at row 5; the labels say 2" in note for note in split.notes)
    assert any("train part holds 1 anomalous" in note for note in split.notes)
    cases = [
        ("001_Toy_id_1_Sensor.csv", rows, "a,b,Label", "no train length", None),
        ("001_Toy_id_1_Sensor_tr_x_1st_2.csv", rows, "a,b,Label", "no train length", None),
        ("001_Toy_tr_4_1st_2.csv", rows, "a,b,Label", "not a TSB-AD name", None),
        ("001_Toy_id_1_Sensor_tr_10_1st_2.csv", rows, "a,b,Label", "train length 10 .* beyond the file's 10", None),
        ("001_Toy_id_1_Sensor_tr_0_1st_2.csv", rows, "a,b,Label", "no train part", None),
        ("001_Toy_id_1_Sensor_tr_4_1st_2.csv", [*rows[:3], "3,0,2", *rows[4:]], "a,b,Label", "0 or 1, got 2", 5),
        ("001_Toy_id_1_Sensor_tr_4_1st_2.csv", rows, "a,b,label", r"no column\(s\) \['Label'\]", 1),
    ]
    for name, lines, header, message, line in cases:
        path = _tsb_file(tmp_path, name, lines, header)
        with pytest.raises(DataError, match=message) as caught:
            read_tsb_ad_file(path)
        assert (caught.value.path, caught.value.line) == (path, line), name
        path.unlink()
    (tmp_path / "notes.csv").write_text("x\n1\n")
    with pytest.raises(DataError, match="no train length") as caught:
        read_tsb_ad(tmp_path)  # every CSV of a TSB-AD folder must carry a TSB-AD name
    assert caught.value.path == tmp_path / "notes.csv"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .csv files"):
        list_tsb_ad_files(tmp_path / "empty")
