"""`diffusekit pose ddhpose ...` end to end on synthetic Human3.6M data: synth (with the pickle-free copies), train
(with validation by MPJPE and a best checkpoint), evaluate (JSON rows for every K, H and aggregation), predict from
an npz and from a COCO JSON, convert, flags that do not apply rejected, one-line errors with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffusekit.core.cli import main

TINY = ["train_cfg.max_iters=4", "checkpoint_interval=2", "train_dataloader.batch_size=4", "train_cfg.val_interval=2"]


def ddhpose(command: str, *args: str) -> list[str]:
    return ["pose", "ddhpose", command, "--config", "ddhpose_tiny", *args]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("h36m")
    assert main(["pose", "ddhpose", "synth", "--out", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    work = tmp_path_factory.mktemp("ddhpose_work")
    assert main([*ddhpose("train", "--data", str(data), "--work-dir", str(work)), "--cfg-options", *TINY]) == 0
    return work


def test_training_validates_by_mpjpe_and_keeps_the_best_checkpoint(trained):
    curves = json.loads((trained / "curves.json").read_text())
    assert [iteration for iteration, _ in curves["val"]] == [2, 4]
    assert all(metrics["lifting/P-MPJPE"] <= metrics["lifting/MPJPE"] for _, metrics in curves["val"])
    best = min(curves["val"], key=lambda point: point[1]["lifting/MPJPE"])[0]
    assert [p.name for p in trained.glob("best_lifting_MPJPE_iter_*.pth")] == [f"best_lifting_MPJPE_iter_{best}.pth"]
    assert (trained / "curves.png").is_file()


def test_synth_writes_the_published_files_and_flat_copies(data):
    names = {p.name for p in data.glob("*.npz")}
    for stem in ("data_3d_h36m", "data_2d_h36m_gt", "data_2d_h36m_det"):
        assert {f"{stem}.npz", f"{stem}.flat.npz"} <= names
    with np.load(data / "data_3d_h36m.flat.npz", allow_pickle=False) as flat:
        assert any(key.startswith("positions_3d/S9/") for key in flat.files)


def test_evaluate_reports_every_setting(data, trained, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ddhpose("evaluate", "--data", str(data), "--checkpoint", str(trained), "--device", "cpu")
    assert main([*args, "--samples", "1", "2", "--steps", "1", "2", "--out", str(out), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    settings = {(r["steps"], r["hypotheses"], r["aggregation"]) for r in result["rows"]}
    assert settings == {(k, h, a) for k in (1, 2) for h in (1, 2) for a in ("J-Best", "P-Best", "P-Agg", "J-Agg")}
    assert all(np.isfinite(r["mpjpe"]) and r["p_mpjpe"] <= r["mpjpe"] + 1e-6 for r in result["rows"])
    oracle = {(r["hypotheses"], r["aggregation"]): r["mpjpe"] for r in result["rows"] if r["steps"] == 2}
    assert oracle[(2, "J-Best")] <= oracle[(2, "P-Best")] + 1e-6  # per-joint choice is never worse
    assert set(result["per_action"]["K2_H2_P-Agg"]) == {"Directions", "Greeting", "Sitting", "Walking"}
    assert (out / "poses.png").is_file() and (out / "report.md").is_file() and (out / "metrics.json").is_file()


def test_predict_from_npz_and_coco_json(trained, tmp_path):
    rng = np.random.default_rng(0)
    keypoints = (rng.random((30, 17, 2)) * 200 + 300).astype(np.float32)
    np.savez(tmp_path / "walk.npz", keypoints=keypoints, width=1000, height=1000)
    base = ddhpose("predict", "--checkpoint", str(trained), "--samples", "2", "--steps", "1")
    assert main([*base, "--input", str(tmp_path / "walk.npz"), "--out", str(tmp_path / "out")]) == 0
    with np.load(tmp_path / "out" / "walk.npz") as result:
        assert result["pose_3d"].shape == (30, 17, 3) and result["hypotheses"].shape == (2, 30, 17, 3)
        np.testing.assert_allclose(result["pose_3d"][:, 0], 0)
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(5)]
    person = np.concatenate([rng.random((17, 2)) * 100 + 200, np.full((17, 1), 2.0)], axis=1)
    annotations = [{"id": i, "image_id": i, "keypoints": person.ravel().tolist()} for i in range(5)]
    (tmp_path / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    assert main([*base, "--input", str(tmp_path / "coco.json"), "--out", str(tmp_path / "coco")]) == 0
    assert (tmp_path / "coco" / "coco.npz").is_file() and (tmp_path / "coco" / "coco.png").is_file()


def test_convert_then_read_without_pickles(data, tmp_path, capsys):
    assert main(["pose", "ddhpose", "convert", str(data / "data_3d_h36m.npz"), "--out", str(tmp_path)]) == 0
    with np.load(tmp_path / "data_3d_h36m.flat.npz", allow_pickle=False) as flat:
        assert "positions_3d/S1/Walking" in flat.files


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: np.savez(p, other=np.zeros(3)), "expected key 'keypoints'"),
        (lambda p: np.savez(p, keypoints=np.full((4, 17, 2), np.nan), width=10, height=10), "NaN"),
        (lambda p: p.write_text("not an npz"), "npz"),
    ],
)
def test_bad_predict_input_exits_2_with_one_line(trained, tmp_path, capsys, make, message):
    path = tmp_path / "bad.npz"
    make(path)
    args = ddhpose("predict", "--checkpoint", str(trained), "--input", str(path), "--out", str(tmp_path))
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "bad.npz" in err and len(err.splitlines()) == 1


def test_training_on_pickled_files_needs_the_opt_in(data, tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name in ("data_3d_h36m.npz", "data_2d_h36m_det.npz"):
        (raw / name).write_bytes((data / name).read_bytes())
    args = [*ddhpose("train", "--data", str(raw), "--work-dir", str(tmp_path / "w")), "--cfg-options", *TINY]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pickled" in err and "diffusekit pose ddhpose convert" in err and "data_3d_h36m.npz" in err
    assert main([*args, "--allow-pickle"]) == 0


@pytest.mark.parametrize(
    "command, extra, message",
    [
        ("predict", ["--box", "1,2,3,4"], "unrecognized arguments: --box"),
        ("predict", ["--detections", "d.json"], "unrecognized arguments: --detections"),
        ("predict", ["--width", "0"], "expected a positive integer"),
        ("predict", ["--height", "1.5"], "expected a positive integer"),
        ("predict", ["--hypotheses", "2"], "unrecognized arguments: --hypotheses"),
        ("evaluate", ["--data", "d", "--boxes", "gt"], "unrecognized arguments: --boxes"),
        ("evaluate", ["--data", "d", "--steps", "1", "0"], "expected a positive integer"),
        ("evaluate", ["--data", "d", "--method", "ddhpose"], "unrecognized arguments: --method"),
        ("train", ["--data", "d", "--work-dir", "w", "--steps", "2"], "unrecognized arguments: --steps"),
    ],
)
def test_flags_that_do_not_apply_are_errors(tmp_path, capsys, command, extra, message):
    args = ddhpose(command) if command == "train" else ddhpose(command, "--checkpoint", "w.pth")
    if command == "predict":
        args += ["--input", "x.npz", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_misspelt_evaluate_key_exits_2_with_one_line(data, tmp_path, capsys):
    args = ddhpose("evaluate", "--data", str(data), "--checkpoint", str(tmp_path / "w.pth"))
    assert main([*args, "--cfg-options", "evaluate.hypothesis=[1,5]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown key 'hypothesis'" in err[0] and "did you mean 'hypotheses'?" in err[0]
    assert "ddhpose_tiny.py" in err[0]
