"""``diffusekit medical`` end to end on small synthetic data (tiny config, a few iterations), predict in every input
format with the geometry kept, and bad input as one line on stderr with exit code 2."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from diffusekit.core import cli
from diffusekit.medical.cli import DOMAIN
from diffusekit.medical.io import read_image
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
    assert uncertainty.shape == (32, 112, 112) and (tmp_path / "video" / f"{video.stem}_mask.avi").is_file()
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
