"""`diffusekit pose diffpose ...` end to end on synthetic data: train (with validation, curves and a best
checkpoint), evaluate (JSON, predictions that poseval's rules score the same), predict on frames and on a video
(JSON and a readable overlay video), flags that do not apply rejected, one-line errors with exit code 2."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from diffusekit.core.cli import main
from diffusekit.pose.metrics import posetrack_ap
from diffusekit.pose.posetrack import read_split, read_video

TINY = ["train_cfg.max_iters=4", "checkpoint_interval=2", "train_dataloader.batch_size=4", "train_cfg.val_interval=2"]


@pytest.fixture(scope="module")
def trained(posetrack_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("pose_work")
    args = ["pose", "diffpose", "train", "--config", "diffpose_tiny", "--data", str(posetrack_root)]
    assert main([*args, "--work-dir", str(work), "--cfg-options", *TINY]) == 0
    return work


def test_training_validates_and_keeps_the_best_checkpoint(trained):
    curves = json.loads((trained / "curves.json").read_text())
    assert [iteration for iteration, _ in curves["val"]] == [2, 4]
    assert all(0 <= metrics["posetrack/Total AP"] <= 100 for _, metrics in curves["val"])
    assert (trained / "curves.png").stat().st_size > 1000
    assert len(list(trained.glob("best_posetrack_Total AP_iter_*.pth"))) == 1


def test_evaluate_writes_poseval_predictions_and_json(posetrack_root, trained, tmp_path, capsys):
    out = tmp_path / "eval"
    args = ["pose", "diffpose", "evaluate", "--config", "diffpose_tiny", "--data", str(posetrack_root)]
    code = main([*args, "--checkpoint", str(trained), "--steps", "2", "--device", "cpu", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["ap"]) == {"Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ank", "Total"}
    assert result["steps"] == 2 and result["frames"] == 12
    # the written files are valid PoseTrack18 predictions, and scoring them again gives the same AP
    again = posetrack_ap(posetrack_root / "annotations" / "val", out / "predictions")
    assert again.total == pytest.approx(result["total"], nan_ok=True)
    assert (out / "crops.png").is_file() and json.loads((out / "metrics.json").read_text())["steps"] == 2


def _frames(path) -> int:
    capture, count = cv2.VideoCapture(str(path)), 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_predict_on_frames_and_on_a_video(posetrack_root, trained, tmp_path, capsys):
    video = read_split(posetrack_root, "val")[0]
    frames = posetrack_root / "images" / "val" / video.name
    out = tmp_path / "pred"
    base = ["pose", "diffpose", "predict", "--config", "diffpose_tiny", "--checkpoint", str(trained), "--steps", "1"]
    assert main([*base, "--input", str(frames), "--out", str(out), "--box", "40,20,120,160", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    predicted = read_video(out / f"{video.name}.json")
    assert len(predicted.frames) == video.nframes and all(len(f.people) == 1 for f in predicted.frames)
    assert len(list((out / "overlays" / video.name).glob("*.jpg"))) == video.nframes
    assert summary["frames"] == video.nframes and _frames(summary["video"]) == video.nframes
    # the overlay video shows the drawn frames, not the raw ones
    first = cv2.VideoCapture(summary["video"]).read()[1].astype(float)
    raw = cv2.imread(str(sorted(frames.glob("*.jpg"))[0])).astype(float)
    assert first.shape == raw.shape and np.abs(first - raw).mean() > 0.5
    # a video file: frames decoded with OpenCV
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 192))
    for file in sorted(frames.glob("*.jpg"))[:5]:
        writer.write(cv2.imread(str(file)))
    writer.release()
    assert main([*base, "--input", str(path), "--out", str(tmp_path / "vid"), "--whole-frame"]) == 0
    assert len(read_video(tmp_path / "vid" / "clip.json").frames) == 5
    assert _frames(next((tmp_path / "vid").glob("clip.mp4"), tmp_path / "vid" / "clip.avi")) == 5


def test_detections_json_as_boxes(posetrack_root, trained, tmp_path, capsys):
    detections = []
    for video in read_split(posetrack_root, "val"):
        for frame in video.labeled_frames:
            for person in frame.people:
                detections.append(dict(image_id=frame.image_id, bbox=person.bbox.tolist(), score=0.9, category_id=1))
    path = tmp_path / "detections.json"
    path.write_text(json.dumps(detections))
    code = main(["pose", "diffpose", "evaluate", "--config", "diffpose_tiny", "--data", str(posetrack_root),
                 "--checkpoint", str(trained), "--steps", "1", "--boxes", str(path), "--json"])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["people"] == len(detections)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input", "{tmp}/nowhere", "--whole-frame"], "input not found"),
        (["--input", "{tmp}/broken.avi", "--whole-frame"], "OpenCV cannot open this video"),
        (["--input", "{frames}", "--box", "5000,5000,10,10"], "lies outside"),
        (["--input", "{frames}"], "needs a person detector's boxes; run any detector and pass --detections"),
    ],
)
def test_bad_predict_input_exits_2_with_one_line(posetrack_root, trained, tmp_path, capsys, extra, message):
    (tmp_path / "broken.avi").write_bytes(b"\x00" * 64)
    frames = posetrack_root / "images" / "val" / read_split(posetrack_root, "val")[0].name
    extra = [e.format(tmp=tmp_path, frames=frames) for e in extra]
    args = ["pose", "diffpose", "predict", "--config", "diffpose_tiny", "--checkpoint", str(trained)]
    assert main([*args, "--out", str(tmp_path / "o"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize(
    "command, extra, message",
    [
        ("predict", ["--box", "1,2"], "expected 4 comma-separated numbers"),
        ("predict", ["--box", "1,2,30,-4"], "width and height must be positive"),
        ("predict", ["--box", "1,2,nan,4"], "finite"),
        ("predict", ["--box", "1,2,3,4", "--detections", "d.json"], "not allowed with argument"),
        ("predict", ["--whole-frame", "--detections", "d.json"], "not allowed with argument"),
        ("predict", ["--det-score-thr", "nan"], "--det-score-thr"),
        ("predict", ["--width", "640"], "unrecognized arguments: --width"),
        ("predict", ["--steps", "1", "2"], "unrecognized arguments: 2"),
        ("evaluate", ["--data", "d", "--samples", "0"], "expected a positive integer"),
        ("evaluate", ["--data", "d", "--hypotheses", "2"], "unrecognized arguments: --hypotheses"),
        ("evaluate", ["--data", "d", "--allow-pickle"], "unrecognized arguments: --allow-pickle"),
        ("evaluate", ["--data", "d", "--method", "ddhpose"], "unrecognized arguments: --method"),
        ("evaluate", ["--data", "d", "--device", "tpu"], "invalid choice: 'tpu'"),
    ],
)
def test_flags_that_do_not_apply_are_errors(tmp_path, capsys, command, extra, message):
    args = ["pose", "diffpose", command, "--checkpoint", "w.pth", "--input", "x", "--out", str(tmp_path)]
    if command == "evaluate":
        args = ["pose", "diffpose", command, "--checkpoint", "w.pth"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, *extra])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_a_ddhpose_config_is_refused(posetrack_root, tmp_path, capsys):
    args = ["pose", "diffpose", "evaluate", "--config", "ddhpose_tiny", "--data", str(posetrack_root)]
    assert main([*args, "--checkpoint", str(tmp_path / "w.pth")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a ddhpose config; use `diffusekit pose ddhpose" in err[0]


@pytest.mark.parametrize(
    "block, message",
    [
        ("evaluate = dict(stpes=2)", "unknown key 'stpes' in the 'evaluate' block; did you mean 'steps'?"),
        ("model = dict(val_sampling=dict(step=1))", "unknown key 'step' in model.val_sampling; did you mean 'steps'?"),
    ],
)
def test_a_misspelt_config_key_names_the_key_the_file_and_the_closest(posetrack_root, tmp_path, capsys, block, message):
    from diffusekit.core.engine import shipped_configs

    config = tmp_path / "my_diffpose.py"
    config.write_text(f"_base_ = [{str(shipped_configs('diffusekit.pose')['diffpose_tiny'])!r}]\n{block}\n")
    args = ["pose", "diffpose", "evaluate", "--config", str(config), "--data", str(posetrack_root)]
    assert main([*args, "--checkpoint", str(tmp_path / "w.pth")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(config) in err[0]


def test_evaluate_with_a_missing_checkpoint_exits_2(posetrack_root, tmp_path, capsys):
    args = ["pose", "diffpose", "evaluate", "--config", "diffpose_tiny", "--data", str(posetrack_root)]
    assert main([*args, "--checkpoint", str(tmp_path / "none.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_demo_quick(tmp_path, capsys):
    assert main(["pose", "demo", "--out", str(tmp_path), "--quick", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["iterations"] == 20 and "ap_total" in metrics
    report = (tmp_path / "report.md").read_text()
    assert "PoseTrack AP" in report and "### DDHPose" in report and "mean training pose" in report
    assert np.isfinite(metrics["frames_per_second"])
    assert metrics["ddhpose_iterations"] == 40 and np.isfinite(metrics["ddhpose_p_agg_mpjpe_k2_h5"])
    assert metrics["ddhpose_mean_pose_mpjpe"] > 0
    assert (tmp_path / "pose" / "work_dir" / "curves.png").is_file()
