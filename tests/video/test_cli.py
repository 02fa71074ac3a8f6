"""``diffusekit video synth|train|evaluate|predict`` end to end on a tiny network, and the video bad-input table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diffusekit.core.cli import main
from tests.bad_input import check_case

# a 2-level network with 8 x 8 windows: 16-pixel crops, a few seconds of training
TINY = [
    "model.denoiser.channels=(8,16)",
    "model.predictor.channels=(8,16)",
    "model.denoiser.attention_levels=(1,)",
    "model.predictor.attention_levels=(1,)",
    "train_dataloader.dataset.crop=16",
    "val_dataloader.dataset.crop=16",
    "train_cfg.max_iters=4",
    "train_cfg.val_interval=2",
    "checkpoint_interval=2",
    "log_interval=2",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("video_cli")
    assert main(["video", "synth", "--out", str(root / "data"), "--seed", "1"]) == 0
    data = root / "data" / "GOPRO_Large"
    work = root / "work"
    argv = ["video", "train", "--config", "divd_tiny", "--data", str(data), "--work-dir", str(work)]
    assert main([*argv, "--cfg-options", *TINY]) == 0
    return {"root": root, "data": data, "work": work}


def _evaluate(trained, *extra: str) -> list[str]:
    return [
        "video", "evaluate", "--config", "divd_tiny", "--data", str(trained["data"]), "--checkpoint",
        str(trained["work"]), "--cfg-options", *TINY, "--steps", "2", "--max-sequences", "1", "--max-frames", "4",
        *extra,
    ]  # fmt: skip


def test_train_writes_weights_curves_and_validation(trained):
    work = trained["work"]
    assert (work / "final_weights.pth").is_file() and (work / "curves.png").is_file()
    curves = json.loads((work / "curves.json").read_text())
    assert any("video/psnr" in key for key in json.dumps(curves).split('"'))


def test_evaluate_reports_both_means_and_the_input(trained, capsys):
    out = trained["root"] / "eval"
    assert main(_evaluate(trained, "--json", "--out", str(out))) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("psnr_frame_mean", "psnr_sequence_mean", "ssim_frame_mean", "tof", "input_psnr_frame_mean"):
        assert np.isfinite(summary[key]), key
    assert summary["frames"] == 4 and summary["evaluations_per_frame"] > 0
    assert (out / "restorations.png").is_file()
    records = json.loads((out / "metrics.json").read_text())["records"]
    assert len(records[0]["psnr"]) == 4


def test_predict_a_video_file_and_a_frame_folder(trained, capsys):
    from diffusekit.video.frames import frame_paths, read_frames, read_video, write_video

    sequence = sorted((trained["data"] / "test").iterdir())[0] / "blur"
    frames = read_frames(frame_paths(sequence)[:4])
    video = write_video(trained["root"] / "clip.mp4", frames, fps=12)
    out = trained["root"] / "pred"
    base = ["video", "predict", "--config", "divd_tiny", "--checkpoint", str(trained["work"]), "--steps", "2"]
    assert main([*base, "--cfg-options", *TINY, "--input", str(video), "--out", str(out), "--uncertainty",
                 "--samples", "2"]) == 0  # fmt: skip
    assert read_video(out / "clip_deblurred.mp4").shape == frames.shape
    assert read_video(out / "clip_uncertainty.mp4").shape[0] == 4
    assert len(list((out / "clip").glob("*.png"))) == 4
    folder_out = trained["root"] / "pred_folder"
    assert main([*base, "--cfg-options", *TINY, "--input", str(sequence), "--out", str(folder_out)]) == 0
    names = sorted(p.name for p in (folder_out / "blur").iterdir())
    assert names == sorted(p.with_suffix(".png").name for p in frame_paths(sequence))


# ------------------------------------------------------------------------------------------- bad input
def _bad_inputs(root: Path, data: Path) -> dict[str, Path]:
    """Broken copies of a test sequence: name -> a folder or file to pass as --data or --input."""
    import shutil

    source = sorted((data / "test").iterdir())[0]
    made = {}

    def dataset(name: str) -> Path:
        target = root / name / "GOPRO_Large" / "test" / source.name
        shutil.copytree(source, target)
        return target

    seq = dataset("truncated_png")
    first = frame_paths_of(seq / "blur")[0]
    first.write_bytes(first.read_bytes()[:200])
    made["truncated_png"] = (root / "truncated_png" / "GOPRO_Large", first.name)
    seq = dataset("text_as_png")
    first = frame_paths_of(seq / "sharp")[0]
    first.write_text("not an image")
    made["text_as_png"] = (root / "text_as_png" / "GOPRO_Large", first.name)
    seq = dataset("unequal_counts")
    frame_paths_of(seq / "sharp")[-1].unlink()
    made["unequal_counts"] = (root / "unequal_counts" / "GOPRO_Large", "sharp")
    seq = dataset("different_sizes")
    import cv2

    last = frame_paths_of(seq / "blur")[1]
    cv2.imwrite(str(last), np.zeros((20, 30, 3), np.uint8))
    made["different_sizes"] = (root / "different_sizes" / "GOPRO_Large", last.name)
    made["missing_layout"] = (root / "missing_layout", "GOPRO_Large")
    (root / "missing_layout").mkdir()
    return made


def frame_paths_of(folder: Path) -> list[Path]:
    from diffusekit.video.frames import frame_paths

    return frame_paths(folder)


BAD_DATA = ["truncated_png", "text_as_png", "unequal_counts", "different_sizes", "missing_layout"]


@pytest.fixture(scope="module")
def bad(trained) -> dict:
    return _bad_inputs(trained["root"] / "bad", trained["data"])


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_evaluation_data_is_one_line(case, trained, bad, capfd):
    data, named = bad[case]
    argv = _evaluate(trained)
    argv[argv.index("--data") + 1] = str(data)
    out = trained["root"] / f"bad_out_{case}"
    check_case([*argv, "--out", str(out)], capfd, names=(named,))
    assert not out.exists()


@pytest.mark.parametrize(
    "case,make,named",
    [
        ("unopenable_video", lambda r: _write(r / "broken.mp4", b"\x00\x00\x00\x18ftypmp42 not really"), "broken.mp4"),
        ("empty_folder", lambda r: _mkdir(r / "empty_frames"), "empty_frames"),
        ("missing_input", lambda r: r / "nowhere.mp4", "nowhere.mp4"),
        ("unknown_suffix", lambda r: _write(r / "notes.txt", b"hello"), "notes.txt"),
    ],
)
def test_bad_prediction_input_is_one_line(case, make, named, trained, capfd):
    root = trained["root"] / "bad_predict" / case
    root.mkdir(parents=True, exist_ok=True)
    path = make(root)
    out = root / "out"
    argv = ["video", "predict", "--config", "divd_tiny", "--checkpoint", str(trained["work"]), "--input", str(path)]
    check_case([*argv, "--cfg-options", *TINY, "--out", str(out)], capfd, names=(named,))
    assert not any(out.rglob("*")) if out.exists() else True


def test_predict_never_reads_its_own_output(trained, capfd):
    sequence = sorted((trained["data"] / "test").iterdir())[0]
    argv = ["video", "predict", "--config", "divd_tiny", "--checkpoint", str(trained["work"])]
    check_case([*argv, "--cfg-options", *TINY, "--input", str(sequence / "blur"), "--out", str(sequence)], capfd,
               names=("output folder",), untouched=(sequence,))  # fmt: skip


@pytest.mark.parametrize(
    "flags,named",
    [
        (["--steps", "0"], "--steps"),
        (["--samples", "-1"], "--samples"),
        (["--tile", "0"], "--tile"),
        (["--seed", "-1"], "--seed"),
        (["--cfg-options", "evaluate.overlap=-1"], "overlap"),
        (["--cfg-options", "evaluate.tile_size=3"], "tile_size"),
        (["--sampler", "euler"], "--sampler"),
    ],
)
def test_bad_options_are_one_line(flags, named, trained, capfd):
    argv = _evaluate(trained)
    if flags[0] == "--cfg-options":
        argv = argv[: argv.index("--steps")] + flags[1:] + argv[argv.index("--steps") :]
    else:
        argv = argv + flags
    check_case(argv, capfd, names=(named,))


def test_synth_refuses_to_overwrite(trained, capfd):
    data = trained["root"] / "data"
    check_case(["video", "synth", "--out", str(data)], capfd, names=("GOPRO_Large",), untouched=(data,))


def test_bad_train_crop_is_one_line(trained, capfd):
    argv = ["video", "train", "--config", "divd_tiny", "--data", str(trained["data"])]
    work = trained["root"] / "bad_crop"
    check_case([*argv, "--work-dir", str(work), "--cfg-options", "train_dataloader.dataset.crop=40"], capfd,
               names=("crop",))  # fmt: skip
    assert not work.exists()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(exist_ok=True)
    return path
