"""Bad input to every ``diffusekit medical`` command: each case is one line on stderr naming the file or option,
exit code 2, no traceback and nothing written (tests/bad_input.py).

The cases corrupt copies of one synthetic dataset per layout (CAMUS NIfTI and legacy MHD, EchoNet-Dynamic), written
once per module; the network is a freshly built ``echo_dnd_tiny`` whose weights are saved once (nothing is trained).
Configs, checkpoints and work dirs shared by every domain are covered by tests/test_bad_input.py.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch

from diffusekit.core import cli
from diffusekit.core.checkpoint import save_weights
from diffusekit.medical.cli import DOMAIN
from diffusekit.medical.evaluation import build_model, load_medical_config
from diffusekit.medical.synthetic import write_camus, write_echonet
from tests.bad_input import check_case, run_cli

CONFIG = ["--config", "echo_dnd_tiny"]
SMALL = ["--cfg-options", "size=32"]
ECHONET = ["--cfg-options", "size=32", "train_dataloader.dataset.layout=echonet", "evaluate.split=TEST"]
TEST_PATIENT = "patient0012"  # the synthetic CAMUS testing split (small: one patient)
VAL_PATIENT = "patient0011"  # the legacy release's validation patient (the sorted training patients' tail)


@dataclass
class Base:
    """The pristine inputs every case copies: datasets, a predict input and saved weights."""

    root: Path
    camus: Path  # the NIfTI layout: database_split/ and the testing patient only
    camus_full: Path
    mhd: Path
    echonet: Path
    weights: Path


@pytest.fixture(autouse=True)
def _domain(monkeypatch):
    monkeypatch.setattr(cli, "installed_domains", lambda: [DOMAIN])


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("medical_bad_input")
    full = write_camus(root / "camus_full", "small", seed=3)
    camus = root / "camus"
    shutil.copytree(full / "database_split", camus / "database_split")
    shutil.copytree(full / "database_nifti" / TEST_PATIENT, camus / "database_nifti" / TEST_PATIENT)
    mhd = write_camus(root / "mhd", "small", seed=3, legacy=True)
    echonet = write_echonet(root / "echonet", "small", seed=3)
    model = build_model(load_medical_config("echo_dnd_tiny", ["size=32"]))
    save_weights(root / "weights.pth", model.state_dict())
    torch.set_num_threads(threads)
    return Base(root, camus, full, mhd, echonet, root / "weights.pth")


# ------------------------------------------------------------------------------------------ corruptions
def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def rewrite_nifti(path: Path, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replace the array of a NIfTI file by ``change(array)`` on the same grid (affine and header kept)."""
    image = nib.load(str(path))
    array = change(np.asarray(image.dataobj))
    header = image.header.copy()
    header.set_data_dtype(array.dtype)
    nib.save(nib.Nifti1Image(array, image.affine, header), str(path))


def set_pixdim(path: Path, index: int, value: float) -> None:
    """Write ``pixdim[index]`` straight into the (gzipped) NIfTI-1 header, as a broken writer would leave it."""
    raw = bytearray(gzip.decompress(path.read_bytes()))
    struct.pack_into("<f", raw, 76 + 4 * index, value)
    path.write_bytes(gzip.compress(bytes(raw)))


def nifti(base: Path, name: str) -> Path:
    return base / "database_nifti" / TEST_PATIENT / f"{TEST_PATIENT}_{name}.nii.gz"


def mhd(base: Path, name: str) -> Path:
    return base / "training" / VAL_PATIENT / f"{VAL_PATIENT}_{name}"


def set_header(path: Path, key: str, value: str) -> None:
    """Set ``key = value`` in a MetaImage (.mhd) header."""
    lines = path.read_text().splitlines()
    lines = [f"{key} = {value}" if line.split("=")[0].strip() == key else line for line in lines]
    path.write_text("\n".join(lines) + "\n")


def edit_text(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# ----------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    """``make(base, tmp)`` corrupts a copy under ``tmp`` and returns (argv, what the line names, untouched paths)."""

    make: Callable[[Base, Path], tuple[list[str], tuple[str, ...], tuple[Path, ...]]]
    needs_user: bool = False  # chmod 000 means nothing to root


CASES: dict[str, Case] = {}


def case(name: str, needs_user: bool = False):
    def register(make):
        CASES[name] = Case(make, needs_user)
        return make

    return register


def evaluate(base: Base, data: Path, *extra: str, options: list[str] = SMALL) -> list[str]:
    args = ["medical", "evaluate", *CONFIG, "--data", str(data), "--checkpoint", str(base.weights)]
    return [*args, "--steps", "1", "--samples", "1", "--device", "cpu", *extra, *options]


def predict(base: Base, source: Path, out: Path, *extra: str) -> list[str]:
    args = ["medical", "predict", *CONFIG, "--input", str(source), "--out", str(out), "--checkpoint", str(base.weights)]
    return [*args, "--steps", "1", "--samples", "1", "--device", "cpu", *extra, *SMALL]


def camus_copy(base: Base, tmp: Path) -> Path:
    return Path(shutil.copytree(base.camus, tmp / "camus"))


def mhd_copy(base: Base, tmp: Path) -> Path:
    return Path(shutil.copytree(base.mhd, tmp / "mhd"))


def echonet_copy(base: Base, tmp: Path) -> Path:
    return Path(shutil.copytree(base.echonet, tmp / "echonet"))


def nifti_case(change: Callable[[Path], None], target: str = "2CH_ED"):
    """An evaluate case on a CAMUS copy whose file ``target`` went through ``change`` (a half sequence: evaluated
    on every frame of the half sequences)."""

    def make(base: Base, tmp: Path):
        data = camus_copy(base, tmp)
        path = nifti(data, target)
        change(path)
        options = [*SMALL, "train_dataloader.dataset.phases=[half_sequence]"] if "sequence" in target else SMALL
        return evaluate(base, data, options=options), (str(path),), (data,)

    return make


case("nifti_truncated")(nifti_case(truncate))
case("nifti_is_text")(nifti_case(lambda p: p.write_text("not an image\n")))
case("nifti_nan")(nifti_case(lambda p: rewrite_nifti(p, lambda a: np.where(a > 100, np.nan, a).astype(np.float32))))
case("nifti_1e39_float64")(nifti_case(lambda p: rewrite_nifti(p, lambda a: np.where(a > 100, 1e39, a * 1.0))))
case("nifti_zero_spacing")(nifti_case(lambda p: set_pixdim(p, 1, 0.0)))
case("nifti_negative_spacing")(nifti_case(lambda p: set_pixdim(p, 2, -0.3)))
case("nifti_4d")(nifti_case(lambda p: rewrite_nifti(p, lambda a: np.stack([a, a], -1)[..., None, :])))
case("gt_labels_255")(nifti_case(lambda p: rewrite_nifti(p, lambda a: (a > 0).astype(np.uint8) * 255), "2CH_ED_gt"))
case("gt_labels_fractional")(nifti_case(lambda p: rewrite_nifti(p, lambda a: a * 0.5), "4CH_ES_gt"))
case("gt_sequence_labels_7")(nifti_case(lambda p: rewrite_nifti(p, lambda a: a + 4 * (a > 0)), "2CH_half_sequence_gt"))
case("gt_other_grid")(nifti_case(lambda p: rewrite_nifti(p, lambda a: a[:-3]), "2CH_ES_gt"))


@case("info_not_utf8")
def _(base, tmp):
    data = camus_copy(base, tmp)
    info = data / "database_nifti" / TEST_PATIENT / "Info_2CH.cfg"
    info.write_bytes(info.read_bytes().replace(b"Sex: ", b"Sex: \xe9\xff"))
    return evaluate(base, data), (str(info),), (data,)


@case("info_without_es")
def _(base, tmp):
    data = camus_copy(base, tmp)
    info = data / "database_nifti" / TEST_PATIENT / "Info_4CH.cfg"
    info.write_text("\n".join(line for line in info.read_text().splitlines() if not line.startswith("ES:")))
    return evaluate(base, data), (str(info), "ES"), (data,)


@case("info_unreadable", needs_user=True)
def _(base, tmp):
    data = camus_copy(base, tmp)
    info = data / "database_nifti" / TEST_PATIENT / "Info_2CH.cfg"
    info.chmod(0)
    return evaluate(base, data), (str(info),), (data,)


@case("image_unreadable", needs_user=True)
def _(base, tmp):
    data = camus_copy(base, tmp)
    path = nifti(data, "4CH_ED")
    path.chmod(0)
    return evaluate(base, data), (str(path),), (data,)


@case("split_file_not_utf8")
def _(base, tmp):
    data = camus_copy(base, tmp)
    split = data / "database_split" / "subgroup_testing.txt"
    split.write_bytes(b"patient\xff\xfe12\n")
    return evaluate(base, data), (str(split),), (data,)


@case("split_file_garbage")
def _(base, tmp):
    data = camus_copy(base, tmp)
    split = data / "database_split" / "subgroup_testing.txt"
    split.write_text("patient0012\n../../etc\n")
    return evaluate(base, data), (str(split), "../../etc"), (data,)


@case("unknown_split")
def _(base, tmp):
    return evaluate(base, base.camus, "--split", "holdout"), ("holdout",), (base.camus,)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncated(path: Path, keep: float) -> Path:
    truncate(path, keep)
    return path


def _replace_test_ef(data: Path, value: str) -> Path:
    path = data / "FileList.csv"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(",TEST"):
            cells = line.split(",")
            cells[1] = value
            lines[i] = ",".join(cells)
            break
    path.write_text("\n".join(lines) + "\n")
    return path


def _tracing_value(data: Path, column: int, value: str) -> Path:
    """Set ``column`` of the first tracing row of a TEST video to ``value``."""
    video = first_test_video(data).stem
    path = data / "VolumeTracings.csv"
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{video}.avi,"):
            cells = line.split(",")
            cells[column] = value
            lines[i] = ",".join(cells)
            break
    path.write_text("\n".join(lines) + "\n")
    return path


def mhd_case(change: Callable[[Path], None]):
    """An evaluate case (legacy layout, validation split) on a copy whose ``2CH_ED`` image went through ``change``
    (given the .mhd path); the line names the .mhd or the .raw file."""

    def make(base: Base, tmp: Path):
        data = mhd_copy(base, tmp)
        path = mhd(data, "2CH_ED.mhd")
        change(path)
        return evaluate(base, data, "--split", "validation"), (str(path.with_suffix("")),), (data,)

    return make


case("mhd_raw_truncated")(mhd_case(lambda p: truncate(p.with_suffix(".raw"))))
case("mhd_raw_missing")(mhd_case(lambda p: p.with_suffix(".raw").unlink()))
case("mhd_header_garbage")(mhd_case(lambda p: p.write_bytes(bytes(range(256)) * 4)))
case("mhd_header_not_utf8")(mhd_case(lambda p: _write(p, p.read_bytes().replace(b"ObjectType", b"Obj\xff\xfeType"))))
case("mhd_zero_spacing")(mhd_case(lambda p: set_header(p, "ElementSpacing", "0 1.6")))
case("mhd_nan_spacing")(mhd_case(lambda p: set_header(p, "ElementSpacing", "nan 1.6")))
case("mhd_negative_size")(mhd_case(lambda p: set_header(p, "DimSize", "-93 107")))
case("mhd_unknown_element_type")(mhd_case(lambda p: set_header(p, "ElementType", "MET_QUATERNION")))


@case("mhd_raw_unreadable", needs_user=True)
def _(base, tmp):
    data = mhd_copy(base, tmp)
    raw = mhd(data, "4CH_ES.raw")
    raw.chmod(0)
    return evaluate(base, data, "--split", "validation"), (str(raw.with_suffix("")),), (data,)


@case("mhd_gt_labels_255")
def _(base, tmp):
    data = mhd_copy(base, tmp)
    raw = mhd(data, "2CH_ED_gt.raw")
    raw.write_bytes(b"\xff" * raw.stat().st_size)
    return evaluate(base, data, "--split", "validation"), (str(raw.with_suffix("")),), (data,)


def echonet_case(change: Callable[[Path], Path], named: str = ""):
    """An evaluate case on an EchoNet copy: ``change(folder)`` corrupts it and returns the file the line names."""

    def make(base: Base, tmp: Path):
        data = echonet_copy(base, tmp)
        path = change(data)
        return evaluate(base, data, options=ECHONET), tuple(n for n in (str(path), named) if n), (data,)

    return make


def csv_edit(name: str, old: str, new: str, named: str = ""):
    def change(data: Path) -> Path:
        edit_text(data / name, old, new)
        return data / name

    return echonet_case(change, named)


def first_test_video(data: Path) -> Path:
    for line in (data / "FileList.csv").read_text().splitlines():
        if line.endswith(",TEST"):
            return data / "Videos" / f"{line.split(',')[0]}.avi"
    raise AssertionError("no TEST video")


case("filelist_ef_text")(echonet_case(lambda d: _replace_test_ef(d, "lots"), "EF"))
case("filelist_ef_huge")(echonet_case(lambda d: _replace_test_ef(d, "1e308"), "EF"))
case("filelist_no_split_column")(csv_edit("FileList.csv", ",Split", ",Subset", "Split"))
case("filelist_not_utf8")(echonet_case(lambda d: _write(d / "FileList.csv", b"FileName,EF\n\xff\xfe\x00bad\n")))
case("tracings_text_coordinate")(echonet_case(lambda d: _tracing_value(d, 1, "left"), "X1"))
case("tracings_extra_field")(csv_edit("VolumeTracings.csv", ".avi,", ".avi,7,"))
case("tracings_huge_coordinate")(echonet_case(lambda d: _tracing_value(d, 1, "1e308"), "X1"))
case("tracings_fractional_frame")(echonet_case(lambda d: _tracing_value(d, 5, "16.5"), "Frame"))
case("tracings_text_frame")(echonet_case(lambda d: _tracing_value(d, 5, "ED"), "Frame"))
case("tracings_short_header")(csv_edit("VolumeTracings.csv", "FileName,X1,Y1,X2,Y2,Frame", "FileName,X1,Y1,Frame"))
case("tracings_missing_column")(
    echonet_case(
        lambda d: _write(d / "VolumeTracings.csv", b"FileName,X1,Y1,X2,Frame\n0X0001SYNTH.avi,1,2,3,0\n"), "Y2"
    )
)
case("video_header_only")(echonet_case(lambda d: _truncated(first_test_video(d), 0.02)))
case("video_truncated")(echonet_case(lambda d: _truncated(first_test_video(d), 0.5)))
case("video_is_text")(echonet_case(lambda d: _write(first_test_video(d), b"this is not a video\n" * 50)))


# ---- predict
def png_input(base: Base, tmp: Path) -> Path:
    image = np.asarray(nib.load(str(nifti(base.camus, "2CH_ED"))).dataobj).T
    folder = tmp / "inputs"
    folder.mkdir()
    cv2.imwrite(str(folder / "frame.png"), image.astype(np.uint8))
    return folder / "frame.png"


@case("predict_png_truncated")
def _(base, tmp):
    path = png_input(base, tmp)
    truncate(path, 0.4)
    return predict(base, path, tmp / "out"), (str(path),), (path.parent, tmp / "out")


@case("predict_png_is_text")
def _(base, tmp):
    path = png_input(base, tmp)
    path.write_text("hello\n")
    return predict(base, path.parent, tmp / "out"), (str(path),), (path.parent, tmp / "out")


@case("predict_jpeg_named_png")
def _(base, tmp):
    path = png_input(base, tmp)
    ok, encoded = cv2.imencode(".jpg", cv2.imread(str(path)))
    path.write_bytes(encoded.tobytes()[: len(encoded) // 3])
    return predict(base, path, tmp / "out"), (str(path),), (path.parent, tmp / "out")


@case("predict_video_is_text")
def _(base, tmp):
    path = tmp / "clip.avi"
    path.write_text("not a video\n" * 100)
    return predict(base, path, tmp / "out"), (str(path),), (path, tmp / "out")


@case("predict_mhd_raw_truncated")
def _(base, tmp):
    data = mhd_copy(base, tmp)
    path = mhd(data, "4CH_ES.mhd")
    truncate(path.with_suffix(".raw"))
    return predict(base, path, tmp / "out"), (str(path.with_suffix("")),), (data, tmp / "out")


@case("predict_out_is_file")
def _(base, tmp):
    path = png_input(base, tmp)
    out = tmp / "out.txt"
    out.write_text("mine\n")
    return predict(base, path, out), (str(out),), (path.parent, out)


@case("predict_unsupported_suffix")
def _(base, tmp):
    path = tmp / "frame.jpg"
    path.write_bytes(b"\xff\xd8\xff")
    return predict(base, path, tmp / "out"), (str(path),), (path, tmp / "out")


@case("predict_empty_folder")
def _(base, tmp):
    (tmp / "empty").mkdir()
    return predict(base, tmp / "empty", tmp / "out"), (str(tmp / "empty"),), (tmp / "empty", tmp / "out")


# ---- counts, options and outputs of the other commands
@case("evaluate_steps_zero")
def _(base, tmp):
    return evaluate(base, base.camus, "--steps", "0"), ("--steps",), (base.camus,)


@case("evaluate_samples_negative")
def _(base, tmp):
    return evaluate(base, base.camus, "--samples=-2"), ("--samples",), (base.camus,)


@case("evaluate_threads_zero")
def _(base, tmp):
    return evaluate(base, base.camus, "--threads", "0"), ("--threads",), (base.camus,)


@case("evaluate_out_is_file")
def _(base, tmp):
    out = tmp / "metrics.txt"
    out.write_text("mine\n")
    return evaluate(base, base.camus, "--out", str(out)), (str(out),), (out, base.camus)


@case("evaluate_misspelt_evaluate_key")
def _(base, tmp):
    return evaluate(base, base.camus, options=[*SMALL, "evaluate.treshold=0.4"]), ("treshold",), (base.camus,)


@case("evaluate_data_is_file")
def _(base, tmp):
    path = tmp / "data.csv"
    path.write_text("a,b\n")
    return evaluate(base, path), (str(path),), (path,)


@case("synth_out_is_file")
def _(base, tmp):
    out = tmp / "data"
    out.write_text("mine\n")
    return ["medical", "synth", "--out", str(out)], (str(out),), (out,)


@case("synth_over_existing_dataset")
def _(base, tmp):
    data = camus_copy(base, tmp)
    return ["medical", "synth", "--out", str(data), "--layout", "camus"], (str(data), "--overwrite"), (data,)


@case("synth_over_existing_echonet")
def _(base, tmp):
    out = tmp / "mixed"
    (out / "echonet").mkdir(parents=True)
    (out / "echonet" / "FileList.csv").write_text("mine\n")
    return ["medical", "synth", "--out", str(out)], (str(out / "echonet"), "--overwrite"), (out,)


@case("synth_seed_negative")
def _(base, tmp):
    return ["medical", "synth", "--out", str(tmp / "s"), "--seed=-1"], ("--seed",), (tmp,)


@case("train_truncated_image")
def _(base, tmp):
    data = Path(shutil.copytree(base.camus_full, tmp / "camus"))
    path = data / "database_nifti" / "patient0001" / "patient0001_4CH_ES_gt.nii.gz"
    truncate(path)
    argv = [
        "medical",
        "train",
        *CONFIG,
        "--data",
        str(data),
        "--work-dir",
        str(tmp / "work"),
        *SMALL,
        "train_cfg.max_iters=1",
    ]
    return argv, (str(path),), (data, tmp / "work")


@case("train_gt_labels_255")
def _(base, tmp):
    data = Path(shutil.copytree(base.camus_full, tmp / "camus"))
    path = data / "database_nifti" / "patient0002" / "patient0002_2CH_ED_gt.nii.gz"
    rewrite_nifti(path, lambda a: a * 255)
    argv = [
        "medical",
        "train",
        *CONFIG,
        "--data",
        str(data),
        "--work-dir",
        str(tmp / "work"),
        *SMALL,
        "train_cfg.max_iters=1",
    ]
    return argv, (str(path),), (data, tmp / "work")


@case("train_missing_data")
def _(base, tmp):
    argv = [
        "medical",
        "train",
        *CONFIG,
        "--data",
        str(tmp / "nowhere"),
        "--work-dir",
        str(tmp / "work"),
        *SMALL,
        "train_cfg.max_iters=1",
    ]
    return argv, (str(tmp / "nowhere"),), (tmp,)


@case("demo_out_is_file")
def _(base, tmp):
    out = tmp / "report"
    out.write_text("mine\n")
    return ["medical", "demo", "--out", str(out), "--quick"], (str(out),), (out,)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, base, tmp_path, capfd):
    entry = CASES[name]
    if entry.needs_user and os.geteuid() == 0:
        pytest.skip("root reads any file")
    argv, names, untouched = entry.make(base, tmp_path)
    check_case(argv, capfd, names=names, untouched=untouched)


def test_predict_never_reads_its_own_outputs(base, tmp_path, capfd):
    """Predict twice from the same folder into another: the second run sees the one input, not the first outputs;
    outputs that land beside their inputs (a file input, --out its folder) are not inputs of a later folder run."""
    source = png_input(base, tmp_path)
    outcome = run_cli(predict(base, source.parent, tmp_path / "out"), capfd)
    assert outcome.code == 0, outcome.err
    first = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert run_cli(predict(base, source, source.parent), capfd).code == 0  # outputs beside the input
    outcome = run_cli(predict(base, source.parent, tmp_path / "out"), capfd)
    assert outcome.code == 0, outcome.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == first
    assert "wrote 3 files" in outcome.out


def test_synth_overwrite_replaces_only_its_own_dataset(tmp_path, capfd):
    """``--overwrite`` removes the old dataset of that layout (a stale patient folder included) and nothing else."""
    out = tmp_path / "camus"
    stale = out / "database_nifti" / "patient0999"
    stale.mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    assert run_cli(["medical", "synth", "--out", str(out), "--layout", "camus"], capfd).code == 2
    outcome = run_cli(["medical", "synth", "--out", str(out), "--layout", "camus", "--overwrite"], capfd)
    assert outcome.code == 0, outcome.err
    assert not stale.exists() and (out / "notes.txt").read_text() == "mine\n"
    assert (out / "database_split" / "subgroup_testing.txt").is_file()
