"""PoseTrack18/17 files and poseval's AP: on the real PoseTrack18 samples in ../shared/data when present, and on
hand-built frames whose AP is known in closed form."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from diffusekit.core.errors import DataError
from diffusekit.pose.metrics import PoseTrackAPMetric, posetrack_ap, posetrack_ap_videos, voc_ap
from diffusekit.pose.posetrack import (
    KEYPOINTS,
    POSEVAL_JOINTS,
    PoseFrame,
    PosePerson,
    PoseVideo,
    convert_posetrack17,
    read_detections,
    read_split,
    read_video,
    video_from_json,
    write_video,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "posetrack18"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/posetrack18 not present")


def person(xy, head=(0.0, 0.0, 30.0, 40.0), scores=None, track=0) -> PosePerson:
    """A person with every poseval joint at ``xy`` (15, 2) in poseval order; head box diagonal 50 -> size 30."""
    keypoints = np.zeros((len(KEYPOINTS), 3))
    keypoints[list(POSEVAL_JOINTS), :2] = xy
    keypoints[list(POSEVAL_JOINTS), 2] = 1
    s = None if scores is None else np.full(len(KEYPOINTS), float(scores))
    return PosePerson(keypoints, track, None, np.asarray(head, float), s)


def video(frames_people, regions=None) -> PoseVideo:
    frames = [
        PoseFrame(i, f"images/val/000001_mpii_test/{i:06d}.jpg", bool(people), (regions or {}).get(i, []), people)
        for i, people in enumerate(frames_people)
    ]
    return PoseVideo("000001_mpii_test", None, len(frames), frames)


XY = np.stack([np.arange(15) * 10.0 + 100, np.full(15, 200.0)], axis=1)


@needs_shared
def test_reads_the_real_posetrack18_files():
    videos = read_split(SHARED, "val")
    assert [v.name for v in videos] == ["003418_mpii_test", "009473_mpii_test", "012834_mpii_test"]
    v = videos[0]
    assert v.nframes == 149 and len(v.frames) == 1 and v.frames[0].is_labeled
    frame = v.frames[0]
    assert frame.image_id == 10034180000 and frame.index == 0 and len(frame.ignore_regions) == 9
    p = frame.people[0]
    assert p.keypoints.shape == (17, 3) and tuple(p.head_box) == (346, 337, 296, 237)
    assert not p.annotated[3:5].any()  # the ears are never annotated
    assert p.annotated.sum() == 11  # num_keypoints in the file
    # support frames: clipped to the video
    assert v.frame_file(frame, -2) == "images/val/003418_mpii_test/000000.jpg"
    assert v.frame_file(frame, 3) == "images/val/003418_mpii_test/000003.jpg"
    detections = read_detections(SHARED / "annotations" / "test_posetrack18_human_detections.json")
    assert sum(len(b) for b in detections.values()) == 278 and 10128340000 in detections


@needs_shared
def test_ap_of_the_ground_truth_itself_is_100(tmp_path):
    gt_dir = SHARED / "annotations" / "val"
    for v in read_split(SHARED, "val"):
        people = [
            [PosePerson(p.keypoints, k, p.bbox, None, np.ones(17)) for k, p in enumerate(f.people)] for f in v.frames
        ]
        write_video(tmp_path / f"{v.name}.json", v, people)
    ap = posetrack_ap(gt_dir, tmp_path)
    assert ap.frames == 3 and ap.gt_joints > 0
    # every joint with ground truth outside the ignore regions is found at AP 100
    assert all(value in (0.0, 100.0) for value in ap.joints.values())
    assert ap.columns["Shou"] == 100.0
    shifted = tmp_path / "shifted"
    for v in read_split(SHARED, "val"):  # every joint moved far off the image: nothing matches
        people = []
        for f in v.frames:
            moved = []
            for k, p in enumerate(f.people):
                kp = p.keypoints.copy()
                kp[:, 0] += 10_000 * p.annotated
                moved.append(PosePerson(kp, k, None, None, np.ones(17)))
            people.append(moved)
        write_video(shifted / f"{v.name}.json", v, people)
    assert posetrack_ap(gt_dir, shifted).total == 0.0


def test_pckh_threshold_is_half_a_head_size_inclusive():
    gt = video([[person(XY)]])
    head = 0.6 * 50
    at = person(XY + [0.5 * head, 0], scores=1)
    beyond = person(XY + [0.5 * head + 1e-6, 0], scores=1)
    assert posetrack_ap_videos([(gt, [[at]])]).total == 100.0
    assert posetrack_ap_videos([(gt, [[beyond]])]).total == 0.0


def test_higher_scored_false_positive_halves_the_ap():
    gt = video([[person(XY)]])
    good, bad = person(XY, scores=0.8, track=0), person(XY + 500, scores=0.9, track=1)
    ap = posetrack_ap_videos([(gt, [[good, bad]])])
    # ranking: FP (0.9) then TP (0.8): precision [0, 1/2], recall [0, 1] -> AP = 1/2
    assert ap.total == pytest.approx(50.0)
    # a duplicate of the good prediction is also a false positive (1:1 matching), ranked below it: AP stays 1
    dup = person(XY + 1, scores=0.7, track=1)
    assert posetrack_ap_videos([(gt, [[good, dup]])]).total == pytest.approx(100.0)
    assert posetrack_ap_videos([(gt, [[good, dup]])]).precision["nose"] == pytest.approx(50.0)


def test_one_to_one_matching_with_two_people():
    other = XY + [0, 300]
    gt = video([[person(XY), person(other, track=1)]])
    # one prediction per person, swapped order: both match their own ground truth
    preds = [person(other, scores=0.6, track=0), person(XY, scores=0.5, track=1)]
    ap = posetrack_ap_videos([(gt, [preds])])
    assert ap.total == pytest.approx(100.0) and ap.gt_joints == 30
    # only one prediction: recall 1/2 at precision 1
    assert posetrack_ap_videos([(gt, [preds[:1]])]).total == pytest.approx(50.0)


def test_unlabelled_frames_and_ignore_regions():
    square = np.array([[60.0, 150], [125, 150], [125, 250], [60, 250]])  # holds poseval joints 0..2 (x 100..120)
    gt = video([[person(XY)], []], regions={0: [square]})
    wrong = XY.copy()
    wrong[:3] = (62, 152)  # wrong but inside the ignore region: removed, so neither TP nor FP
    preds = [[person(wrong, scores=1)], [person(XY, scores=1, track=0)]]  # frame 1 is unlabelled: its prediction drops
    ap = posetrack_ap_videos([(gt, preds)])
    assert ap.frames == 1 and ap.gt_joints == 12
    assert ap.joints["right_ankle"] == 0.0 and ap.joints["nose"] == 100.0
    assert ap.total == pytest.approx(100 * 12 / 15)  # a joint with neither ground truth nor predictions: AP 0
    # outside the region, a prediction of a joint that has no ground truth anywhere: recall 0/0, AP NaN (poseval),
    # left out of Total
    wrong[:3] = (400, 400)
    ap = posetrack_ap_videos([(gt, [[person(wrong, scores=1)], []])])
    assert np.isnan(ap.joints["right_ankle"]) and np.isnan(ap.columns["Ank"]) and ap.total == pytest.approx(100.0)


def test_voc_ap_closed_forms():
    assert voc_ap(np.array([0.5, 1.0]), np.array([1.0, 1.0])) == pytest.approx(1.0)
    # precision envelope: the dip at recall 0.5 is lifted to the later 2/3
    assert voc_ap(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3])) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_posetrack17_converts_to_the_same_frames():
    pt17 = {
        "annolist": [
            {
                "image": [{"name": "images/bonn/000042_bonn_train/000003.jpg"}],
                "imgnum": [4],
                "is_labeled": [1],
                "ignore_regions": [{"point": [{"x": [0], "y": [0]}, {"x": [5], "y": [0]}, {"x": [5], "y": [5]}]}],
                "annorect": [
                    {
                        "x1": [10], "y1": [20], "x2": [40], "y2": [60], "track_id": [3], "score": [0.9],
                        "annopoints": [{"point": [{"id": [13], "x": [25], "y": [30], "score": [0.7]},
                                                  {"id": [0], "x": [50], "y": [200], "score": [0.4]}]}],
                    }
                ],
            },
            {"image": [{"name": "images/bonn/000042_bonn_train/000004.jpg"}], "imgnum": [5], "annorect": []},
        ]
    }  # fmt: skip
    v = video_from_json(pt17, Path("x.json"))
    assert len(v.frames) == 2 and v.frames[0].image_id == 20000420003 and not v.frames[1].is_labeled
    p = v.frames[0].people[0]
    assert tuple(p.head_box) == (10, 20, 30, 40) and p.track_id == 3 and p.score == 0.9
    assert tuple(p.keypoints[KEYPOINTS.index("nose")]) == (25, 30, 1)
    assert tuple(p.keypoints[KEYPOINTS.index("right_ankle")]) == (50, 200, 1)
    assert p.annotated.sum() == 2 and p.scores[KEYPOINTS.index("nose")] == 0.7
    assert v.frames[0].ignore_regions[0].shape == (3, 2)
    assert convert_posetrack17(pt17)["images"][1]["is_labeled"] is False


def test_bad_files_raise_data_errors_naming_the_file(tmp_path):
    good = video([[person(XY, scores=1)]])
    write_video(tmp_path / "gt" / "a.json", good)
    data = json.loads((tmp_path / "gt" / "a.json").read_text())
    bad = dict(data, annotations=[dict(data["annotations"][0], keypoints=[1, 2, 3])])
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DataError, match=r"bad\.json.*3 keypoint values, expected 51"):
        read_video(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match=r"broken\.json: not valid JSON"):
        read_video(tmp_path / "broken.json")
    (tmp_path / "other.json").write_text(json.dumps({"foo": 1}))
    with pytest.raises(DataError, match="not a PoseTrack file"):
        read_video(tmp_path / "other.json")
    with pytest.raises(DataError, match="no prediction file"):
        posetrack_ap(tmp_path / "gt", tmp_path / "missing")
    write_video(tmp_path / "pred" / "a.json", video([[person(XY, scores=1)], []]))
    with pytest.raises(DataError, match="2 frames"):
        posetrack_ap(tmp_path / "gt", tmp_path / "pred")
    write_video(tmp_path / "pred" / "a.json", good, [[person(XY, scores=1), person(XY, scores=1)]])
    with pytest.raises(DataError, match="track ids are not unique"):
        posetrack_ap(tmp_path / "gt", tmp_path / "pred")
    with pytest.raises(DataError, match="annotations/val"):
        read_split(tmp_path, "val")


def test_metric_twin_matches_the_function(tmp_path):
    gt = video([[person(XY)], [person(XY + 3)]])
    preds = [[person(XY + 1, scores=0.5)], [person(XY + 40, scores=0.9)]]
    metric = PoseTrackAPMetric()
    metric.process({}, [{"video": gt, "frame": i, "people": p} for i, p in enumerate(preds)])
    result = metric.compute_metrics(metric.results)
    assert result["Total AP"] == pytest.approx(posetrack_ap_videos([(gt, preds)]).total)
    shutil.rmtree(tmp_path, ignore_errors=True)
