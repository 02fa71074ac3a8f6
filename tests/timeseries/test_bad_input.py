"""Bad inputs to ``diffusekit timeseries``: each case exits 2 with one stderr line naming the file or option, prints
no traceback and writes nothing (issue 16). The inputs are corrupted copies of synthetic data in each layout (SMD as
text and as pickles, TSB-AD-M, PSM, MSL, CSV) and of one tiny model trained once per module."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusekit.core import cli
from diffusekit.core.checkpoint import save_weights
from diffusekit.timeseries.cli import DOMAIN
from diffusekit.timeseries.demo import write_demo_data
from diffusekit.timeseries.synthetic import write_msl_smap_dataset, write_psm_dataset, write_smd_dataset
from tests.bad_input import check_case, run_cli

MACHINE = "machine-1-1"
FAST = ["train_cfg.max_iters=2", "train_cfg.val_interval=2", "model.num_steps=30", "detect.test_stride=32"]
CONFIG = ["--config", "imdiffusion_tiny"]
ROOT = os.geteuid() == 0


@dataclass
class Base:
    """The module's clean inputs: one dataset per layout, a trained work dir and its entity folder."""

    smd: Path
    psm: Path
    msl: Path
    csv: Path
    work: Path
    smd_pkl: Path
    tsb_ad: Path

    @property
    def entity(self) -> Path:
        return self.work / MACHINE


@pytest.fixture(autouse=True)
def _only_this_domain(monkeypatch):
    monkeypatch.setattr(cli, "installed_domains", lambda: [DOMAIN])


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ts_bad_input")
    write_smd_dataset(root / "smd", machines=1, length=600, per_kind=1)
    write_psm_dataset(root / "psm", length=600, features=4)
    write_msl_smap_dataset(root / "msl", "MSL", channels=1, length=600, features=3)
    write_demo_data(root / "csv", features=38, length=600)  # timestamp, feature_0..37 (the SMD names), label in test
    write_smd_dataset(root / "smd_pkl", machines=1, length=600, per_kind=1, formats=("pkl",))
    write_smd_dataset(root / "tsb_ad", machines=1, length=600, per_kind=1, formats=("tsb_ad",))
    work = root / "work"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "installed_domains", lambda: [DOMAIN])
        argv = ["timeseries", "train", *CONFIG, "--data", root / "smd", "--work-dir", work, "--cfg-options", *FAST]
        assert cli.main([str(a) for a in argv]) == 0
    yield Base(root / "smd", root / "psm", root / "msl", root / "csv", work, root / "smd_pkl", root / "tsb_ad")
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ helpers
def copy(source: Path, tmp: Path, name: str = "data") -> Path:
    target = tmp / name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copy(source, target)
    return target


def set_field(path: Path, line: int, column: int, text: str) -> None:
    """Replace field ``column`` of the 1-based ``line`` of a comma-separated file."""
    lines = path.read_text().split("\n")
    fields = lines[line - 1].split(",")
    fields[column] = text
    lines[line - 1] = ",".join(fields)
    path.write_text("\n".join(lines))


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def train_args(data: Path, tmp: Path, *extra: str) -> list:
    return ["timeseries", "train", *CONFIG, "--data", data, "--work-dir", tmp / "work", *extra, "--cfg-options", *FAST]


def evaluate_args(data: Path, checkpoint: Path, *extra: str) -> list:
    return ["timeseries", "evaluate", *CONFIG, "--data", data, "--checkpoint", checkpoint, *extra, "--cfg-options",
            *FAST]  # fmt: skip


def predict_args(checkpoint: Path, input_: Path, out: Path, *extra: str) -> list:
    return ["timeseries", "predict", *CONFIG, "--checkpoint", checkpoint, "--input", input_, "--out", out, *extra,
            "--cfg-options", *FAST]  # fmt: skip


def smd_file(data: Path, folder: str) -> Path:
    return data / folder / f"{MACHINE}.txt"


def pkl_file(data: Path, part: str) -> Path:
    return data / f"{MACHINE}_{part}.pkl"


def tsb_ad_file(data: Path) -> Path:
    (path,) = data.glob("*.csv")
    return path


def entity_copy(b: Base, tmp: Path) -> Path:
    """A copy of the trained entity folder (weights and detector.json) to corrupt."""
    target = tmp / "model"
    target.mkdir()
    for name in ("final_weights.pth", "detector.json"):
        shutil.copy(b.entity / name, target / name)
    return target


def predict_on(b: Base, tmp: Path, entity: Path | None = None, input_: Path | None = None) -> tuple:
    """predict with a (possibly corrupted) model folder and input; out: a fresh folder."""
    entity = entity or b.entity
    input_ = input_ or b.csv / "test.csv"
    return predict_args(entity, input_, tmp / "out"), (entity, input_, tmp / "out")


Case = Callable[[Base, Path], tuple]  # -> (argv, names the line must hold, paths that must stay untouched)
CASES: list = []


def case(name: str, needs_non_root: bool = False):
    def register(build: Case) -> Case:
        marks = [pytest.mark.skipif(ROOT, reason="root reads any file")] if needs_non_root else []
        CASES.append(pytest.param(build, id=name, marks=marks))
        return build

    return register


# ------------------------------------------------------------------------------------------------ synth
@case("synth-out-is-a-file")
def _(b, tmp):
    (tmp / "taken").write_text("mine")
    return ["timeseries", "synth", "--out", tmp / "taken"], (tmp / "taken",), (tmp,)


@case("synth-into-a-folder-holding-a-dataset")
def _(b, tmp):
    data = copy(b.smd, tmp)
    return ["timeseries", "synth", "--out", data], (data, "--overwrite"), (tmp,)


@case("synth-msl-into-a-folder-holding-msl")
def _(b, tmp):
    data = copy(b.msl, tmp)
    return ["timeseries", "synth", "--layout", "msl", "--out", data], (data, "--overwrite"), (tmp,)


@case("synth-negative-seed")
def _(b, tmp):
    return ["timeseries", "synth", "--out", tmp / "d", "--seed", "-1"], ("--seed",), (tmp,)


@case("synth-unknown-size")
def _(b, tmp):
    return ["timeseries", "synth", "--out", tmp / "d", "--size", "huge"], ("--size",), (tmp,)


# ------------------------------------------------------------------------------- SMD text files (train)
@case("smd-data-folder-missing")
def _(b, tmp):
    return train_args(tmp / "nowhere", tmp), (tmp / "nowhere",), (tmp,)


@case("smd-train-not-utf8")
def _(b, tmp):
    data = copy(b.smd, tmp)
    path = smd_file(data, "train")
    path.write_bytes(b"\xff\xfe" + path.read_bytes()[2:])
    return train_args(data, tmp), (path, "UTF-8"), (tmp,)


@case("smd-train-unreadable", needs_non_root=True)
def _(b, tmp):
    data = copy(b.smd, tmp)
    smd_file(data, "train").chmod(0)
    return train_args(data, tmp), (smd_file(data, "train"),), (tmp,)


@case("smd-string-where-a-number-belongs")
def _(b, tmp):
    data = copy(b.smd, tmp)
    set_field(smd_file(data, "train"), 7, 3, "abc")
    return train_args(data, tmp), (f"{smd_file(data, 'train')}:7", "'abc'"), (tmp,)


@case("smd-missing-column")
def _(b, tmp):
    data = copy(b.smd, tmp)
    path = smd_file(data, "test")
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in path.read_text().splitlines()) + "\n")
    return train_args(data, tmp), (path, "37"), (tmp,)


@case("smd-ragged-row")
def _(b, tmp):
    data = copy(b.smd, tmp)
    path = smd_file(data, "train")
    set_field(path, 12, 5, "1,2")
    return train_args(data, tmp), (f"{path}:12",), (tmp,)


@case("smd-truncated-test-file")
def _(b, tmp):
    data = copy(b.smd, tmp)
    truncate(smd_file(data, "test"), 0.6013)
    return train_args(data, tmp), (smd_file(data, "test"),), (tmp,)


@case("smd-empty-train-file")
def _(b, tmp):
    data = copy(b.smd, tmp)
    smd_file(data, "train").write_text("")
    return train_args(data, tmp), (smd_file(data, "train"), "empty"), (tmp,)


@case("smd-infinite-value")
def _(b, tmp):
    data = copy(b.smd, tmp)
    set_field(smd_file(data, "train"), 3, 0, "inf")
    return train_args(data, tmp), (f"{smd_file(data, 'train')}:3", "infinite"), (tmp,)


@case("smd-nan-value")
def _(b, tmp):
    data = copy(b.smd, tmp)
    set_field(smd_file(data, "test"), 5, 2, "nan")
    return train_args(data, tmp), (f"{smd_file(data, 'test')}:5", "NaN"), (tmp,)


@case("smd-1e308-overflows-after-scaling")
def _(b, tmp):
    data = copy(b.smd, tmp)
    set_field(smd_file(data, "train"), 4, 1, "1e308")
    return train_args(data, tmp), (f"{smd_file(data, 'train')}:4", "1e+308"), (tmp,)


@case("smd-1e39-overflows-float32")
def _(b, tmp):
    data = copy(b.smd, tmp)
    set_field(smd_file(data, "test"), 9, 0, "-1e39")
    return train_args(data, tmp), (f"{smd_file(data, 'test')}:9", "float32"), (tmp,)


@case("smd-test-outside-train-range-overflows")
def _(b, tmp):
    data = copy(b.smd, tmp)
    set_field(smd_file(data, "test"), 2, 0, "3e38")  # float32-sized, but x1e3 after the train scaling
    return train_args(data, tmp), (smd_file(data, "test"), "scaling"), (tmp,)


@case("smd-label-not-0-or-1")
def _(b, tmp):
    data = copy(b.smd, tmp)
    set_field(smd_file(data, "test_label"), 6, 0, "255")
    return train_args(data, tmp), (f"{smd_file(data, 'test_label')}:6", "0 or 1"), (tmp,)


@case("smd-fewer-labels-than-rows")
def _(b, tmp):
    data = copy(b.smd, tmp)
    path = smd_file(data, "test_label")
    path.write_text("\n".join(path.read_text().splitlines()[:100]) + "\n")
    return train_args(data, tmp), (path,), (tmp,)


@case("smd-interpretation-garbage")
def _(b, tmp):
    data = copy(b.smd, tmp)
    path = smd_file(data, "interpretation_label")
    path.write_text("start-end:dims\n")
    return train_args(data, tmp), (f"{path}:1",), (tmp,)


@case("smd-interpretation-dim-out-of-range")
def _(b, tmp):
    data = copy(b.smd, tmp)
    path = smd_file(data, "interpretation_label")
    path.write_text("10-20:1,39\n")
    return train_args(data, tmp), (f"{path}:1", "1..38"), (tmp,)


@case("smd-second-machine-corrupt-trains-nothing")
def _(b, tmp):
    data = copy(b.smd, tmp)
    for folder in ("train", "test", "test_label", "interpretation_label"):
        shutil.copy(smd_file(data, folder), data / folder / "machine-1-2.txt")
    set_field(data / "test" / "machine-1-2.txt", 20, 1, "x")
    return train_args(data, tmp), (f"{data / 'test' / 'machine-1-2.txt'}:20",), (tmp,)


@case("smd-unknown-machine")
def _(b, tmp):
    return train_args(b.smd, tmp, "--machines", "machine-9-9"), ("machine-9-9",), (tmp, b.smd)


@case("work-dir-is-a-file")
def _(b, tmp):
    (tmp / "work").write_text("mine")
    return train_args(b.smd, tmp), (tmp / "work",), (tmp, b.smd)


# ------------------------------------------------------------------------------- SMD pickles, TSB-AD-M
@case("smd-pkl-runs-no-code")
def _(b, tmp):
    data = copy(b.smd_pkl, tmp)
    pkl_file(data, "train").write_bytes(pickle.dumps(_Payload(tmp / "ran"), protocol=2))
    return train_args(data, tmp, "--layout", "smd_pkl"), (pkl_file(data, "train"), "system"), (tmp,)


@case("smd-pkl-array-holding-code")
def _(b, tmp):
    data = copy(b.smd_pkl, tmp)
    pkl_file(data, "test").write_bytes(pickle.dumps(np.array([_Payload(tmp / "ran")], dtype=object)))
    return train_args(data, tmp, "--layout", "smd_pkl"), (pkl_file(data, "test"), "system"), (tmp,)


@case("smd-pkl-holds-a-dict")
def _(b, tmp):
    data = copy(b.smd_pkl, tmp)
    pkl_file(data, "train").write_bytes(pickle.dumps({"train": np.zeros((600, 38))}))
    return train_args(data, tmp, "--layout", "smd_pkl"), (pkl_file(data, "train"), "dict"), (tmp,)


@case("smd-pkl-label-not-0-or-1")
def _(b, tmp):
    data = copy(b.smd_pkl, tmp)
    labels = np.zeros(600, dtype=np.float32)
    labels[7] = 3
    pkl_file(data, "test_label").write_bytes(pickle.dumps(labels))
    return train_args(data, tmp, "--layout", "smd_pkl"), (pkl_file(data, "test_label"), "row 7"), (tmp,)


@case("smd-pkl-truncated")
def _(b, tmp):
    data = copy(b.smd_pkl, tmp)
    truncate(pkl_file(data, "test"))
    return train_args(data, tmp, "--layout", "smd_pkl"), (pkl_file(data, "test"),), (tmp,)


@case("tsb-ad-name-without-train-length")
def _(b, tmp):
    data = copy(b.tsb_ad, tmp)
    path = tsb_ad_file(data).rename(data / "001_SMD_id_1_Facility.csv")
    return train_args(data, tmp, "--layout", "tsb_ad"), (path, "train length"), (tmp,)


@case("tsb-ad-label-not-0-or-1")
def _(b, tmp):
    data = copy(b.tsb_ad, tmp)
    set_field(tsb_ad_file(data), 650, -1, "2")
    return train_args(data, tmp, "--layout", "tsb_ad"), (f"{tsb_ad_file(data)}:650", "0 or 1"), (tmp,)


@case("tsb-ad-train-length-beyond-the-file")
def _(b, tmp):
    data = copy(b.tsb_ad, tmp)
    path = tsb_ad_file(data).rename(data / "001_SMD_id_1_Facility_tr_1200_1st_1300.csv")
    return train_args(data, tmp, "--layout", "tsb_ad"), (path, "beyond"), (tmp,)


# ------------------------------------------------------------------------------------- PSM, MSL, CSV
@case("psm-timestamp-not-a-number")
def _(b, tmp):
    data = copy(b.psm, tmp)
    set_field(data / "test.csv", 4, 0, "yesterday")
    return train_args(data, tmp, "--layout", "psm"), (f"{data / 'test.csv'}:4", "yesterday"), (tmp,)


@case("psm-label-header-wrong")
def _(b, tmp):
    data = copy(b.psm, tmp)
    set_field(data / "test_label.csv", 1, 1, "labels")
    return train_args(data, tmp, "--layout", "psm"), (data / "test_label.csv",), (tmp,)


@case("psm-1e308")
def _(b, tmp):
    data = copy(b.psm, tmp)
    set_field(data / "train.csv", 30, 2, "1e308")
    return train_args(data, tmp, "--layout", "psm"), (f"{data / 'train.csv'}:30",), (tmp,)


@case("msl-labels-not-utf8")
def _(b, tmp):
    data = copy(b.msl, tmp)
    path = data / "labeled_anomalies.csv"
    path.write_bytes(path.read_bytes().replace(b"MSL", b"M\xe9L"))
    return train_args(data, tmp, "--layout", "msl"), (path, "UTF-8"), (tmp,)


@case("msl-labels-unreadable", needs_non_root=True)
def _(b, tmp):
    data = copy(b.msl, tmp)
    (data / "labeled_anomalies.csv").chmod(0)
    return train_args(data, tmp, "--layout", "msl"), (data / "labeled_anomalies.csv",), (tmp,)


@case("msl-sequences-a-number-not-a-list")
def _(b, tmp):
    data = copy(b.msl, tmp)
    path = data / "labeled_anomalies.csv"
    header, row = path.read_text().splitlines()[:2]
    fields = row.split(",")
    path.write_text(f"{header}\n{fields[0]},{fields[1]},5,[point],{fields[-1]}\n")
    return train_args(data, tmp, "--layout", "msl"), (f"{path}:2",), (tmp,)


@case("msl-labels-missing-column")
def _(b, tmp):
    data = copy(b.msl, tmp)
    path = data / "labeled_anomalies.csv"
    path.write_text(path.read_text().replace("num_values", "values"))
    return train_args(data, tmp, "--layout", "msl"), (path, "num_values"), (tmp,)


@case("msl-npy-truncated")
def _(b, tmp):
    data = copy(b.msl, tmp)
    path = next((data / "data" / "train").glob("*.npy"))
    truncate(path)
    return train_args(data, tmp, "--layout", "msl"), (path,), (tmp,)


@case("msl-text-file-named-npy")
def _(b, tmp):
    data = copy(b.msl, tmp)
    path = next((data / "data" / "test").glob("*.npy"))
    path.write_text("1,2,3\n4,5,6\n")
    return train_args(data, tmp, "--layout", "msl"), (path, "not a .npy"), (tmp,)


@case("msl-npy-pickled-objects")
def _(b, tmp):
    data = copy(b.msl, tmp)
    path = next((data / "data" / "train").glob("*.npy"))
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return train_args(data, tmp, "--layout", "msl"), (path,), (tmp,)


@case("msl-npy-1e39-in-float64")
def _(b, tmp):
    data = copy(b.msl, tmp)
    path = next((data / "data" / "train").glob("*.npy"))
    array = np.load(path)
    array[10, 0] = 1e39
    np.save(path, array)
    return train_args(data, tmp, "--layout", "msl"), (path, "float32"), (tmp,)


@case("msl-npy-3d")
def _(b, tmp):
    data = copy(b.msl, tmp)
    path = next((data / "data" / "test").glob("*.npy"))
    np.save(path, np.zeros((600, 3, 2)))
    return train_args(data, tmp, "--layout", "msl"), (path, "2-D"), (tmp,)


@case("csv-label-not-0-or-1")
def _(b, tmp):
    data = copy(b.csv, tmp)
    set_field(data / "test.csv", 3, -1, "2")
    return train_args(data, tmp, "--layout", "csv"), (f"{data / 'test.csv'}:3", "0 or 1"), (tmp,)


@case("csv-test-lacks-a-column")
def _(b, tmp):
    data = copy(b.csv, tmp)
    path = data / "test.csv"
    path.write_text(path.read_text().replace("feature_5,", "feature_x,"))
    return train_args(data, tmp, "--layout", "csv"), (path, "feature_5"), (tmp,)


@case("csv-parquet-corrupt")
def _(b, tmp):
    (tmp / "series.parquet").write_bytes(b"PAR1 not really parquet")
    return train_args(tmp / "series.parquet", tmp, "--layout", "csv"), (tmp / "series.parquet",), (tmp,)


# ----------------------------------------------------------------------------------- configs and options
@case("cfg-option-not-a-number")
def _(b, tmp):
    argv = train_args(b.smd, tmp)
    return [*argv, "train_cfg.max_iters=many"], ("max_iters",), (tmp, b.smd)


@case("cfg-misspelt-detect-key")
def _(b, tmp):
    return [*train_args(b.smd, tmp), "detect.test_strid=8"], ("test_strid",), (tmp, b.smd)


@case("cfg-negative-test-stride")
def _(b, tmp):
    return [*evaluate_args(b.smd, b.work), "detect.test_stride=-4"], ("test_stride",), (b.work, b.smd)


@case("cfg-p0-not-a-number")
def _(b, tmp):
    return [*evaluate_args(b.smd, b.work), "detect.p0=often"], ("p0",), (b.work, b.smd)


@case("cfg-negative-window")
def _(b, tmp):
    argv = [*train_args(b.smd, tmp), "train_dataloader.dataset.window=-8"]
    return argv, ("window",), (tmp, b.smd)


@case("cfg-misspelt-model-key")
def _(b, tmp):
    return [*train_args(b.smd, tmp), "model.denoiser.chanels=8"], ("chanels",), (tmp, b.smd)


@case("cfg-zero-diffusion-steps")
def _(b, tmp):
    return [*evaluate_args(b.smd, b.work), "model.num_steps=0"], ("num_steps",), (b.work, b.smd)


@case("config-txt-file")
def _(b, tmp):
    (tmp / "cfg.txt").write_text("model = dict()\n")
    argv = ["timeseries", "train", "--config", tmp / "cfg.txt", "--data", b.smd, "--work-dir", tmp / "work"]
    return argv, (tmp / "cfg.txt",), (tmp, b.smd)


@case("config-yaml-runs-no-code")
def _(b, tmp):
    marker = tmp / "ran"
    (tmp / "cfg.yaml").write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n")
    argv = ["timeseries", "train", "--config", tmp / "cfg.yaml", "--data", b.smd, "--work-dir", tmp / "work"]
    return argv, (tmp / "cfg.yaml",), (tmp, b.smd)


@case("load-from-url-is-refused")
def _(b, tmp):
    return [*train_args(b.smd, tmp), "load_from=http://127.0.0.1:9/x.pth"], ("load_from",), (tmp, b.smd)


@case("threads-zero")
def _(b, tmp):
    return [*train_args(b.smd, tmp, "--threads", "0")], ("--threads",), (tmp, b.smd)


@case("launcher-pytorch-without-torchrun")
def _(b, tmp):
    return [*train_args(b.smd, tmp, "--launcher", "pytorch")], ("torchrun",), (tmp, b.smd)


# ------------------------------------------------------------------------------------------ checkpoints
@case("checkpoint-missing")
def _(b, tmp):
    return evaluate_args(b.smd, tmp / "none.pth"), (tmp / "none.pth",), (tmp, b.smd)


@case("checkpoint-truncated")
def _(b, tmp):
    model = entity_copy(b, tmp)
    truncate(model / "final_weights.pth")
    return evaluate_args(b.smd, model / "final_weights.pth"), (model / "final_weights.pth",), (tmp, b.smd)


@case("checkpoint-is-a-text-file")
def _(b, tmp):
    (tmp / "w.pth").write_text("these are not weights\n")
    return evaluate_args(b.smd, tmp / "w.pth"), (tmp / "w.pth",), (tmp, b.smd)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@case("checkpoint-pickle-runs-no-code")
def _(b, tmp):
    path = tmp / "w.pth"
    torch.save({"state_dict": _Payload(tmp / "ran")}, path)
    return evaluate_args(b.smd, path), (path, "unpickle"), (tmp, b.smd)


@case("checkpoint-nan-weights")
def _(b, tmp):
    model = entity_copy(b, tmp)
    state = torch.load(model / "final_weights.pth", weights_only=True)
    for weights in (state["state_dict"], state.get("ema_state_dict") or {}):
        for value in weights.values():
            if value.is_floating_point():
                value.view(-1)[0] = float("nan")
    save_weights(model / "final_weights.pth", state["state_dict"], state.get("ema_state_dict"), **state["meta"])
    return evaluate_args(b.smd, model / "final_weights.pth"), (model / "final_weights.pth", "NaN"), (tmp, b.smd)


@case("checkpoint-of-another-config")
def _(b, tmp):
    argv = [*evaluate_args(b.smd, b.work), "model.denoiser.channels=8"]
    return argv, (b.entity / "final_weights.pth",), (b.work, b.smd)


@case("evaluate-out-is-a-file")
def _(b, tmp):
    (tmp / "out").write_text("mine")
    return evaluate_args(b.smd, b.work, "--out", tmp / "out"), (tmp / "out",), (tmp, b.work, b.smd)


@case("evaluate-data-without-labels")
def _(b, tmp):
    data = copy(b.csv, tmp)
    path = data / "test.csv"
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in path.read_text().splitlines()) + "\n")
    argv = evaluate_args(data, b.entity / "final_weights.pth", "--layout", "csv")
    return argv, (data, "labels"), (tmp, b.work)


@case("evaluate-cuda-without-a-gpu")
def _(b, tmp):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    return evaluate_args(b.smd, b.work, "--device", "cuda"), ("cuda",), (b.work, b.smd)


# ---------------------------------------------------------------------------------------------- predict
@case("predict-input-missing")
def _(b, tmp):
    argv, untouched = predict_on(b, tmp, input_=tmp / "none.csv")
    return argv, (tmp / "none.csv",), (*untouched, tmp)


@case("predict-input-not-utf8")
def _(b, tmp):
    path = copy(b.csv / "test.csv", tmp, "in.csv")
    path.write_bytes(path.read_bytes().replace(b"feature_3", b"feature_\xb3", 1))
    argv, untouched = predict_on(b, tmp, input_=path)
    return argv, (path, "UTF-8"), (*untouched, tmp)


@case("predict-input-unreadable", needs_non_root=True)
def _(b, tmp):
    path = copy(b.csv / "test.csv", tmp, "in.csv")
    path.chmod(0)
    argv, untouched = predict_on(b, tmp, input_=path)
    return argv, (path,), untouched


@case("predict-input-string-in-a-number")
def _(b, tmp):
    path = copy(b.csv / "test.csv", tmp, "in.csv")
    set_field(path, 8, 4, "n/a")
    argv, untouched = predict_on(b, tmp, input_=path)
    return argv, (f"{path}:8", "n/a"), (*untouched, tmp)


@case("predict-input-1e308")
def _(b, tmp):
    path = copy(b.csv / "test.csv", tmp, "in.csv")
    set_field(path, 8, 4, "1e308")
    argv, untouched = predict_on(b, tmp, input_=path)
    return argv, (f"{path}:8",), (*untouched, tmp)


@case("predict-input-infinite")
def _(b, tmp):
    path = copy(b.csv / "test.csv", tmp, "in.csv")
    set_field(path, 8, 4, "-inf")
    argv, untouched = predict_on(b, tmp, input_=path)
    return argv, (f"{path}:8", "infinite"), (*untouched, tmp)


@case("predict-input-missing-a-feature")
def _(b, tmp):
    path = tmp / "in.csv"
    lines = (b.csv / "test.csv").read_text().splitlines()
    path.write_text("\n".join(",".join(line.split(",")[:-2]) for line in lines) + "\n")  # no feature_37, no label
    argv, untouched = predict_on(b, tmp, input_=path)
    return argv, (path, "37"), (*untouched, tmp)


@case("predict-input-header-only")
def _(b, tmp):
    path = tmp / "in.csv"
    path.write_text((b.csv / "test.csv").read_text().splitlines()[0] + "\n")
    argv, untouched = predict_on(b, tmp, input_=path)
    return argv, (path,), (*untouched, tmp)


@case("predict-input-shorter-than-a-window")
def _(b, tmp):
    path = tmp / "in.csv"
    path.write_text("\n".join((b.csv / "test.csv").read_text().splitlines()[:11]) + "\n")
    argv, untouched = predict_on(b, tmp, input_=path)
    return argv, (path, "window"), (*untouched, tmp)


@case("predict-detector-missing")
def _(b, tmp):
    model = entity_copy(b, tmp)
    (model / "detector.json").unlink()
    argv, untouched = predict_on(b, tmp, entity=model)
    return argv, ("detector.json",), (*untouched, tmp)


@case("predict-detector-truncated")
def _(b, tmp):
    model = entity_copy(b, tmp)
    truncate(model / "detector.json")
    argv, untouched = predict_on(b, tmp, entity=model)
    return argv, (model / "detector.json",), (*untouched, tmp)


@case("predict-detector-not-utf8")
def _(b, tmp):
    model = entity_copy(b, tmp)
    (model / "detector.json").write_bytes(b'{"name": "\xff"}')
    argv, untouched = predict_on(b, tmp, entity=model)
    return argv, (model / "detector.json", "UTF-8"), (*untouched, tmp)


@case("predict-detector-a-list")
def _(b, tmp):
    model = entity_copy(b, tmp)
    (model / "detector.json").write_text("[1, 2, 3]")
    argv, untouched = predict_on(b, tmp, entity=model)
    return argv, (model / "detector.json",), (*untouched, tmp)


@case("predict-detector-number-where-a-list-belongs")
def _(b, tmp):
    model = entity_copy(b, tmp)
    record = json.loads((model / "detector.json").read_text())
    record["feature_names"] = 5
    (model / "detector.json").write_text(json.dumps(record))
    argv, untouched = predict_on(b, tmp, entity=model)
    return argv, (model / "detector.json", "feature_names"), (*untouched, tmp)


@case("predict-detector-string-thresholds")
def _(b, tmp):
    model = entity_copy(b, tmp)
    record = json.loads((model / "detector.json").read_text())
    record["thresholds"] = ["high"] * len(record["thresholds"])
    (model / "detector.json").write_text(json.dumps(record))
    argv, untouched = predict_on(b, tmp, entity=model)
    return argv, (model / "detector.json", "thresholds"), (*untouched, tmp)


@case("predict-detector-zero-range")
def _(b, tmp):
    model = entity_copy(b, tmp)
    record = json.loads((model / "detector.json").read_text())
    record["data_range"][0] = 0.0
    (model / "detector.json").write_text(json.dumps(record))
    argv, untouched = predict_on(b, tmp, entity=model)
    return argv, (model / "detector.json", "data_range"), (*untouched, tmp)


@case("predict-detector-lengths-differ")
def _(b, tmp):
    model = entity_copy(b, tmp)
    record = json.loads((model / "detector.json").read_text())
    record["data_min"] = record["data_min"][:3]
    (model / "detector.json").write_text(json.dumps(record))
    argv, untouched = predict_on(b, tmp, entity=model)
    return argv, (model / "detector.json", "data_min"), (*untouched, tmp)


@case("predict-out-is-a-file")
def _(b, tmp):
    (tmp / "out").write_text("mine")
    argv, untouched = predict_on(b, tmp)
    return argv, (tmp / "out",), (*untouched, tmp)


@case("predict-reads-its-own-output")
def _(b, tmp):
    out = tmp / "out"
    out.mkdir()
    scores = copy(b.csv / "test.csv", out, "scores.csv")
    argv = predict_args(b.entity, scores, out)
    return argv, (scores,), (tmp, b.entity)


@case("predict-top-k-zero")
def _(b, tmp):
    argv, untouched = predict_on(b, tmp)
    return [*argv, "--top-k", "0"], ("--top-k",), (*untouched, tmp)


@case("demo-out-is-a-file")
def _(b, tmp):
    (tmp / "out").write_text("mine")
    return ["timeseries", "demo", "--out", tmp / "out", "--quick"], (tmp / "out",), (tmp,)


# ------------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("build", CASES)
def test_bad_input_is_one_line_and_writes_nothing(build: Case, base: Base, tmp_path: Path, capfd):
    argv, names, untouched = build(base, tmp_path)
    try:
        check_case(argv, capfd, names=tuple(str(n) for n in names), untouched=untouched)
    finally:
        for path in tmp_path.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() else 0o644)
    assert not (tmp_path / "ran").exists(), "a file's code ran"


def test_the_clean_inputs_work(base: Base, tmp_path: Path, capfd):
    """The cases fail because of what they corrupt: the same inputs, clean, are read and scored."""
    from diffusekit.timeseries.datasets import read_entity

    layouts = [(base.smd, "smd"), (base.psm, "psm"), (base.msl, "msl"), (base.csv, "csv")]
    for root, layout in [*layouts, (base.smd_pkl, "smd_pkl"), (base.tsb_ad, "tsb_ad")]:
        assert read_entity(root, layout).num_features > 0
    argv, _ = predict_on(base, tmp_path)
    outcome = run_cli(argv, capfd)
    assert outcome.code == 0, outcome.err
    assert (tmp_path / "out" / "scores.csv").is_file()
