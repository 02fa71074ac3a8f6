"""`diffusekit pose ...` end to end on synthetic data: train, evaluate (JSON, predictions that poseval's rules
score the same), predict on frames and on a video, and one-line errors with exit code 2 on bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from diffusekit.core.cli import main
from diffusekit.pose.metrics import posetrack_ap
from diffusekit.pose.posetrack import read_split, read_video

TINY = ["train_cfg.max_iters=4", "checkpoint_interval=2", "train_dataloader.batch_size=4"]


@pytest.fixture(scope="module")
def trained(posetrack_root, tmp_path_factory):
    work = tmp_path_factory.mktemp("pose_work")
    args = ["pose", "train", "--config", "diffpose_tiny", "--data", str(posetrack_root), "--work-dir", str(work)]
    assert main([*args, "--cfg-options", *TINY]) == 0
    return work


def test_evaluate_writes_poseval_predictions_and_json(posetrack_root, trained, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(["pose", "evaluate", "--config", "diffpose_tiny", "--data", str(posetrack_root), "--checkpoint",
                 str(trained), "--steps", "2", "--out", str(out), "--json"])  # fmt: skip
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["ap"]) == {"Head", "Shou", "Elb", "Wri", "Hip", "Knee", "Ank", "Total"}
    assert result["steps"] == 2 and result["frames"] == 12
    # the written files are valid PoseTrack18 predictions, and scoring them again gives the same AP
    again = posetrack_ap(posetrack_root / "annotations" / "val", out / "predictions")
    assert again.total == pytest.approx(result["total"], nan_ok=True)
    assert (out / "crops.png").is_file() and (out / "metrics.json").is_file()


def test_predict_on_frames_and_on_a_video(posetrack_root, trained, tmp_path):
    video = read_split(posetrack_root, "val")[0]
    frames = posetrack_root / "images" / "val" / video.name
    out = tmp_path / "pred"
    base = ["pose", "predict", "--config", "diffpose_tiny", "--checkpoint", str(trained), "--steps", "1"]
    assert main([*base, "--input", str(frames), "--out", str(out), "--box", "40,20,120,160"]) == 0
    predicted = read_video(out / f"{video.name}.json")
    assert len(predicted.frames) == video.nframes and all(len(f.people) == 1 for f in predicted.frames)
    assert len(list((out / "overlays" / video.name).glob("*.jpg"))) == video.nframes
    # a video file: frames decoded with OpenCV
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (256, 192))
    for file in sorted(frames.glob("*.jpg"))[:5]:
        writer.write(cv2.imread(str(file)))
    writer.release()
    assert main([*base, "--input", str(path), "--out", str(tmp_path / "vid")]) == 0
    assert len(read_video(tmp_path / "vid" / "clip.json").frames) == 5


def test_detections_json_as_boxes(posetrack_root, trained, tmp_path, capsys):
    detections = []
    for video in read_split(posetrack_root, "val"):
        for frame in video.labeled_frames:
            for person in frame.people:
                detections.append(dict(image_id=frame.image_id, bbox=person.bbox.tolist(), score=0.9, category_id=1))
    path = tmp_path / "detections.json"
    path.write_text(json.dumps(detections))
    code = main(["pose", "evaluate", "--config", "diffpose_tiny", "--data", str(posetrack_root), "--checkpoint",
                 str(trained), "--steps", "1", "--boxes", str(path), "--json"])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["people"] == len(detections)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--input", "{tmp}/nowhere"], "input not found"),
        (["--input", "{tmp}/broken.avi"], "OpenCV cannot open this video"),
        (["--input", "{frames}", "--box", "5000,5000,10,10"], "lies outside"),
        (["--input", "{frames}", "--box", "1,2"], "four numbers"),
    ],
)
def test_bad_predict_input_exits_2_with_one_line(posetrack_root, trained, tmp_path, capsys, extra, message):
    (tmp_path / "broken.avi").write_bytes(b"\x00" * 64)
    frames = posetrack_root / "images" / "val" / read_split(posetrack_root, "val")[0].name
    extra = [e.format(tmp=tmp_path, frames=frames) for e in extra]
    args = ["pose", "predict", "--config", "diffpose_tiny", "--checkpoint", str(trained), "--out", str(tmp_path / "o")]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


def test_evaluate_with_a_missing_checkpoint_exits_2(posetrack_root, tmp_path, capsys):
    args = ["pose", "evaluate", "--config", "diffpose_tiny", "--data", str(posetrack_root)]
    assert main([*args, "--checkpoint", str(tmp_path / "none.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_demo_quick(tmp_path, capsys):
    assert main(["pose", "demo", "--out", str(tmp_path), "--quick", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["iterations"] == 40 and "ap_total" in metrics
    report = (tmp_path / "report.md").read_text()
    assert "PoseTrack AP" in report and "### DDHPose" in report
    assert np.isfinite(metrics["frames_per_second"])
    assert metrics["ddhpose_iterations"] == 60 and np.isfinite(metrics["ddhpose_p_agg_mpjpe_k2_h5"])
