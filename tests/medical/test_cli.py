"""``diffusekit medical`` end to end on small synthetic data (tiny config, a few iterations, validation included),
predict in every input format with the geometry kept and lossless masks, and bad input (misspelt config keys
included) as one line on stderr with exit code 2."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from diffusekit.core import cli
from diffusekit.core.engine import shipped_configs
from diffusekit.medical import predict
from diffusekit.medical.cli import DOMAIN
from diffusekit.medical.io import read_image
from diffusekit.medical.predict import read_mask_video, write_mask_video
from diffusekit.medical.synthetic import write_camus, write_echonet

FAST = ["--config", "echo_dnd_tiny", "--cfg-options", "train_cfg.max_iters=3", "size=32"]


@pytest.fixture(autouse=True)
def _domain(monkeypatch):
    monkeypatch.setattr(cli, "installed_domains", lambda: [DOMAIN])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("medical")
    camus, echonet = write_camus(root / "camus", seed=2), write_echonet(root / "echonet", seed=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "installed_domains", lambda: [DOMAIN])
        code = cli.main(["medical", "train", *FAST[:2], "--data", str(camus), "--work-dir", str(root / "w"), *FAST[2:]])
    assert code == 0
    yield root, camus, echonet
    torch.set_num_threads(threads)


def test_synth_layouts(tmp_path, capsys):
    assert cli.main(["medical", "synth", "--out", str(tmp_path / "all")]) == 0
    assert (tmp_path / "all" / "camus" / "database_split" / "subgroup_testing.txt").is_file()
    assert (tmp_path / "all" / "echonet" / "VolumeTracings.csv").is_file()
    assert cli.main(["medical", "synth", "--out", str(tmp_path / "mhd"), "--layout", "camus-mhd"]) == 0
    assert any((tmp_path / "mhd" / "training").glob("patient*/*_ED_gt.mhd"))


def test_evaluate_json_has_every_metric(trained, capsys, tmp_path):
    root, camus, _ = trained
    args = ["medical", "evaluate", *FAST[:2], "--data", str(camus), "--checkpoint", str(root / "w")]
    args += ["--steps", "2", "--samples", "1", "--out", str(tmp_path), "--json", *FAST[2:]]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("dice", "iou", "hd95", "msd", "empty_pred"):
        assert key in result["overall"]
    assert set(result["by_phase"]) == {"ED", "ES"} and "pooled_dice" in result and result["unit"] == "mm"
    assert result["steps"] == 2 and result["samples"] == 1 and "ef_patients" in result
    assert "| ED |" in out and (tmp_path / "segmentations.png").is_file()
    assert json.loads((tmp_path / "metrics.json").read_text())["overall"]["dice"] == result["overall"]["dice"]


def test_training_validates_and_keeps_curves_and_the_best_checkpoint(trained):
    work = trained[0] / "w"
    curves = json.loads((work / "curves.json").read_text())
    (iteration, metrics), *_ = curves["val"]  # the tiny config validates every 200 iterations and at the end
    assert iteration == 3 and 0.0 <= metrics["seg/dice"] <= 1.0
    assert set(metrics) == {"seg/dice", "seg/iou", "seg/pooled_dice"}  # the tiny config's overlap metrics
    assert (work / "curves.png").stat().st_size > 1000
    (best,) = work.glob("best_seg_dice_iter_*.pth")
    args = ["medical", "evaluate", *FAST[:2], "--data", str(trained[1]), "--checkpoint", str(best)]
    assert (
        cli.main([*args, "--steps", "1", "--samples", "1", "--sampler", "dpmpp_2m", "--device", "cpu", *FAST[2:]]) == 0
    )


def test_misspelt_config_keys_name_the_key_the_file_and_the_closest_key(trained, tmp_path, capsys):
    root, camus, _ = trained
    config = tmp_path / "mine.py"
    config.write_text(f"_base_ = [{str(shipped_configs('diffusekit.medical')['echo_dnd_tiny'])!r}]\n")
    config.write_text(config.read_text() + "evaluate = dict(stpes=3)\n")
    args = ["medical", "evaluate", "--config", str(config), "--data", str(camus), "--checkpoint", str(root / "w")]
    assert cli.main(args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "'stpes'" in line and "mine.py" in line and "'steps'" in line
    train = ["medical", "train", *FAST[:2], "--data", str(camus), "--work-dir", str(tmp_path / "w")]
    assert cli.main([*train, "--cfg-options", "model.val_sampling.sample=2"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "'sample'" in line and "echo_dnd_tiny.py" in line and "'samples'" in line


def test_predict_keeps_format_and_geometry(trained, tmp_path):
    root, camus, echonet = trained
    inputs = tmp_path / "in"
    inputs.mkdir()
    patient = camus / "database_nifti" / "patient0012"
    shutil.copy(patient / "patient0012_4CH_ES.nii.gz", inputs)
    video = next((echonet / "Videos").glob("*.avi"))
    args = ["medical", "predict", *FAST[:2], "--checkpoint", str(root / "w" / "final_weights.pth")]
    args += ["--steps", "1", "--samples", "1", *FAST[2:]]
    assert cli.main([*args, "--input", str(inputs), "--out", str(tmp_path / "out")]) == 0
    source, mask = (
        nib.load(inputs / "patient0012_4CH_ES.nii.gz"),
        nib.load(tmp_path / "out" / "patient0012_4CH_ES_mask.nii.gz"),
    )
    assert mask.shape == source.shape and np.allclose(mask.affine, source.affine)
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    assert (tmp_path / "out" / "patient0012_4CH_ES_overlay.png").is_file()
    assert cli.main([*args, "--input", str(video), "--out", str(tmp_path / "video")]) == 0
    uncertainty = np.load(tmp_path / "video" / f"{video.stem}_uncertainty.npy")
    mask_video = read_mask_video(tmp_path / "video" / f"{video.stem}_mask.avi")
    assert uncertainty.shape == mask_video.shape == (32, 112, 112) and set(np.unique(mask_video)) <= {0, 1}
    assert (tmp_path / "video" / f"{video.stem}_overlay.avi").stat().st_size > 1000
    assert read_image(tmp_path / "out" / "patient0012_4CH_ES_uncertainty.nii.gz").array.shape == mask.shape[::-1]


def test_bad_input_is_one_line_and_exit_code_2(trained, tmp_path, capsys):
    root, camus, _ = trained
    missing = ["medical", "evaluate", *FAST[:2], "--data", str(tmp_path / "nope"), "--checkpoint", str(root / "w")]
    assert cli.main(missing) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0] and "Traceback" not in err[0]
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"\x1f\x8b not a gzip stream")
    args = ["medical", "predict", *FAST[:2], "--checkpoint", str(root / "w"), "--input", str(bad)]
    assert cli.main([*args, "--out", str(tmp_path / "o")]) == 2
    assert "bad.nii.gz" in capsys.readouterr().err
    args = ["medical", "predict", *FAST[:2], "--checkpoint", str(tmp_path / "none.pth"), "--input", str(bad)]
    assert cli.main([*args, "--out", str(tmp_path / "o")]) == 2
    assert "none.pth: checkpoint not found" in capsys.readouterr().err


def test_video_masks_are_lossless(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    masks = (rng.random((6, 40, 56)) < 0.3).astype(np.uint8)  # speckle: what a lossy codec smears first
    written = write_mask_video(tmp_path / "m_mask.avi", masks)
    assert written.suffix == ".avi" and np.array_equal(read_mask_video(written), masks)
    monkeypatch.setattr(predict, "LOSSLESS_FOURCC", "XXXX")  # a codec this OpenCV cannot open
    fallback = write_mask_video(tmp_path / "n_mask.avi", masks)
    assert fallback.suffix == ".npz" and not (tmp_path / "n_mask.avi").exists()
    assert np.array_equal(read_mask_video(fallback), masks)


def test_quick_demo_writes_the_report_curves_and_metrics(tmp_path, capsys):
    threads = torch.get_num_threads()
    try:
        assert cli.main(["medical", "demo", "--quick", "--json", "--out", str(tmp_path), "--threads", "1"]) == 0
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["iterations"] == 20 and 0.0 <= metrics["dice"] <= 1.0 and 0.5 < metrics["mean_shape_dice"] < 1.0
    report = (tmp_path / "report.md").read_text()
    assert "mean mask scores Dice" in report and "medical/work_dir/curves.png" in report
    assert (tmp_path / "medical" / "work_dir" / "curves.png").is_file()
    assert (tmp_path / "medical" / "segmentations.png").is_file()
