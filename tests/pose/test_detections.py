"""Detection boxes: reading detection files, MMPose's rescoring and OKS NMS by hand-computed cases, and the whole
pipeline (evaluate and predict) with duplicated and overlapping boxes. The network is replaced by a stand-in that
puts one fixed pose into every crop (at heatmap grid points, with chosen joint scores), so that the poses, their
scores and the OKS between them follow from the boxes alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from diffusekit.core.errors import DataError
from diffusekit.pose.codec import HeatmapCodec
from diffusekit.pose.datasets import PoseTrackClips
from diffusekit.pose.detections import POSETRACK_SIGMAS, crop_area, oks, oks_nms, rescore, suppress_duplicates
from diffusekit.pose.inference import InferenceSettings, evaluate_dataset
from diffusekit.pose.metrics import PoseTrackAPMetric
from diffusekit.pose.posetrack import (
    PosePerson,
    assign_detections,
    posetrack_frame_id,
    read_detection_file,
    read_split,
    read_video,
)
from diffusekit.pose.predict import predict_input

INPUT, HEATMAP = (96, 128), (24, 32)  # diffpose_tiny's crop and heatmap sizes (W, H)
# the stand-in's joint scores: 8 joints at 0.9, 5 at 0.5, 4 at 0.1 (below MMPose's keypoint_score_thr 0.2)
JOINT_SCORES = np.array([0.9] * 8 + [0.5] * 5 + [0.1] * 4)
MEAN_ABOVE = (8 * 0.9 + 5 * 0.5) / 13  # the mean of the joint scores above 0.2


class FixedPose(torch.nn.Module):
    """Heatmaps of one fixed pose in crop coordinates for every crop, each joint's peak (= its score) on a grid
    point: the pose in the image is that pose mapped back through each box's crop."""

    def __init__(self, codec: HeatmapCodec):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # a device for predict_people
        grid = np.stack([np.linspace(5, 18, 17).round(), np.linspace(4, 27, 17).round()], axis=1)
        heatmaps, _ = codec.encode(grid * codec.stride, np.ones(17))
        self.heatmaps = torch.from_numpy(heatmaps * JOINT_SCORES[:, None, None].astype(np.float32))

    def predict_heatmaps(self, clip: torch.Tensor, **kwargs) -> torch.Tensor:
        return self.heatmaps.expand(len(clip), -1, -1, -1).clone()


def codec() -> HeatmapCodec:
    return HeatmapCodec(INPUT, HEATMAP, 2.0)


# ------------------------------------------------------------------------------------ hand-computed cases
def test_rescoring_is_the_box_score_times_the_mean_joint_score_above_the_threshold():
    assert rescore(0.8, np.array([0.1, 0.5, 0.9, 0.2])) == pytest.approx(0.8 * (0.5 + 0.9) / 2)  # 0.2 is not above
    assert rescore(0.8, JOINT_SCORES) == pytest.approx(0.8 * MEAN_ABOVE)
    assert rescore(0.8, np.full(17, 0.15)) == 0.0  # no joint above: MMPose's score is 0
    assert rescore(0.5, np.full(17, 0.15), threshold=0.1) == pytest.approx(0.075)


def test_oks_in_closed_form():
    pose = np.stack([np.arange(17) * 7.0, np.arange(17) * 3.0], axis=1)
    moved = pose.copy()
    moved[0] += (3.0, 4.0)  # the nose 5 px away
    areas = np.array([900.0, 1100.0])
    e = 25.0 / (2 * 0.026) ** 2 / (1000.0 + np.spacing(1)) / 2
    expected = (16 + np.exp(-e)) / 17
    assert oks(pose, moved[None], 900.0, areas[1:])[0] == pytest.approx(expected, rel=1e-12)
    assert oks(pose, pose[None], 900.0, areas[:1])[0] == pytest.approx(1.0)
    assert POSETRACK_SIGMAS[0] == 0.026 and POSETRACK_SIGMAS[-1] == 0.089


def test_oks_nms_keeps_the_best_of_duplicates_and_both_of_two_people():
    pose = np.stack([np.linspace(100, 140, 17), np.linspace(50, 200, 17)], axis=1)
    poses = np.stack([pose, pose + 1.0, pose + (60.0, 0.0), pose])  # a duplicate 1 px off, a neighbour, a copy
    areas = np.full(4, 60.0 * 150.0 * 1.5625)
    assert oks_nms(poses, [0.7, 0.9, 0.8, 0.6], areas) == [1, 2]  # the best duplicate, then the neighbour
    # equal scores: MMPose's reversed ascending sort takes the later pose first
    assert oks_nms(poses[[0, 3]], [0.5, 0.5], areas[:2]) == [1]
    assert oks_nms(poses, [0.7, 0.9, 0.8, 0.6], areas, threshold=1.0) == [1, 2, 0, 3]  # nothing is above 1
    people = [PosePerson(np.column_stack([p, np.ones(17)]), 7, score=s) for p, s in zip(poses, [0.7, 0.9, 0.8, 0.6])]
    kept = suppress_duplicates(people, areas)
    assert [p.score for p in kept] == [0.9, 0.8] and [p.track_id for p in kept] == [0, 1]


def test_crop_area_is_the_padded_box_at_the_crop_aspect_ratio():
    assert crop_area([10, 20, 30, 80], 0.75) == pytest.approx(60 * 80 * 1.25**2)  # grown in width to 60
    assert crop_area([10, 20, 90, 80], 0.75) == pytest.approx(90 * 120 * 1.25**2)  # grown in height to 120


# ----------------------------------------------------------------------------------------- reading files
def test_detection_files_name_frames_by_id_or_file_name(tmp_path):
    path = tmp_path / "detections.json"
    entries = [
        {"image_id": 3, "bbox": [1, 2, 30, 40], "score": 0.9, "category_id": 1},
        {"file_name": "frames/000005.jpg", "bbox": [1, 2, 30, 40], "score": 0.8},
        {"image_id": "000007", "bbox": [1, 2, 30, 40]},  # a stem; no score: 1
        {"image_id": 4, "bbox": [1, 2, 30, 40], "score": 0.9, "category_id": 2},  # not a person
        {"image_id": 4, "bbox": [1, 2, 30, 40], "score": 0.1},  # below the threshold
    ]
    path.write_text(json.dumps(entries))
    detections = read_detection_file(path)
    assert [d.image for d in detections] == [3, "frames/000005.jpg", "000007", 4, 4]
    assert detections[2].score == 1.0 and not detections[3].person
    ids = {i: i for i in range(10)}
    names = {f"{i:06d}.jpg": i for i in range(10)}
    assigned = assign_detections(detections, ids, names, path, "ten frames", min_score=0.3)
    assert [(frame, d.entry) for frame, d in assigned] == [(3, 0), (5, 1), (7, 2)]
    path.write_text(json.dumps([*entries, {"image_id": 12, "bbox": [1, 2, 3, 4], "score": 0.01}]))
    with pytest.raises(DataError, match=r"detection 5 \(image_id 12\) is not a frame of ten frames"):
        assign_detections(read_detection_file(path), ids, names, path, "ten frames", min_score=0.3)


def test_file_names_match_by_a_trailing_part_that_fits_one_frame(tmp_path):
    path = tmp_path / "detections.json"
    names = {f"images/val/{v}/{i:06d}.jpg": (v, i) for v in ("005001_mpii_test", "005002_mpii_test") for i in range(3)}
    asked = ["005002_mpii_test/000001.jpg", "images/val/005001_mpii_test/000002", "000001.jpg",
             "images/val/005003_mpii_test/000001.jpg"]  # fmt: skip
    found = []
    for name in asked:
        path.write_text(json.dumps([{"file_name": name, "bbox": [1, 2, 3, 4]}]))
        try:
            found.append(assign_detections(read_detection_file(path), {}, names, path, "two videos")[0][0])
        except DataError as error:
            found.append("not a frame of two videos" in str(error))
    assert found == [("005002_mpii_test", 1), ("005001_mpii_test", 2), True, True]  # ambiguous; another video
    frames = {f"{i:06d}.jpg": i for i in range(8)}  # a frame folder: the detector's paths may be longer
    path.write_text(json.dumps([{"image_id": "clips/run/000005.jpg", "bbox": [1, 2, 3, 4]}]))
    assert assign_detections(read_detection_file(path), {}, frames, path, "eight frames")[0][0] == 5


def test_posetrack_frame_ids_of_video_folders():
    assert posetrack_frame_id("images/val/003418_mpii_test/000012.jpg", 12) == 10034180012
    assert posetrack_frame_id("000001_mpiinew_test/000004.jpg", 4) == 30000010004
    assert posetrack_frame_id("my_clip/000004.jpg", 4) is None


# ------------------------------------------------------------------------------------------ the pipeline
def _detections(posetrack_root, tmp_path):
    """Frame 0 of the first val video: person 0's box twice, the same box moved by half its width (an
    overlapping second person), and a box scored under the 0.4 threshold."""
    video = read_split(posetrack_root, "val")[0]
    frame = video.labeled_frames[0]
    x, y, w, h = frame.people[0].bbox.tolist()
    entries = [
        {"image_id": frame.image_id, "bbox": [x, y, w, h], "score": 0.8, "category_id": 1},
        {"image_id": frame.image_id, "bbox": [x, y, w, h], "score": 0.8, "category_id": 1},
        {"image_id": frame.image_id, "bbox": [x + w / 2, y, w, h], "score": 0.6, "category_id": 1},
        {"image_id": frame.image_id, "bbox": [10.0, 10.0, 40.0, 80.0], "score": 0.3, "category_id": 1},
    ]
    path = tmp_path / "detections.json"
    path.write_text(json.dumps(entries))
    return video, path


def test_evaluation_with_duplicated_and_overlapping_boxes(posetrack_root, tmp_path):
    video, path = _detections(posetrack_root, tmp_path)
    crops = PoseTrackClips(str(posetrack_root), "val", INPUT, HEATMAP, frame_offsets=(0,), boxes=str(path),
                           min_box_score=0.4)  # fmt: skip
    assert len(crops) == 3  # the 0.3 box is dropped before pose estimation
    model = FixedPose(crops.codec)
    result = evaluate_dataset(model, crops, InferenceSettings(batch_size=4), tmp_path / "pred", progress=False)
    assert result["people"] == 3 and result["poses"] == 2  # the duplicate is gone, the overlapping person stays
    written = read_video(tmp_path / "pred" / f"{video.name}.json")
    people = written.frames[0].people
    assert [p.track_id for p in people] == [0, 1]  # in NMS order, renumbered
    assert [p.score for p in people] == pytest.approx([0.8 * MEAN_ABOVE, 0.6 * MEAN_ABOVE], abs=1e-4)
    assert people[0].scores == pytest.approx(JOINT_SCORES, abs=1e-4)
    assert all(not f.people for f in written.frames[1:])
    # the two kept poses are the fixed pose in the two boxes: half a box width apart
    assert np.median(people[1].keypoints[:, 0] - people[0].keypoints[:, 0]) == pytest.approx(
        video.labeled_frames[0].people[0].bbox[2] / 2, abs=0.5
    )
    # the mmengine twin does the same post-processing
    metric = PoseTrackAPMetric()
    metric.dataset_meta = crops.metainfo
    heatmaps = model.predict_heatmaps(torch.zeros(len(crops), 1))
    matrices = np.stack([crops[i]["matrix"].numpy() for i in range(len(crops))])
    metric.process({"index": list(range(len(crops))), "matrix": matrices}, list(heatmaps))
    twin = metric.compute_metrics(metric.results)
    assert twin["Total AP"] == pytest.approx(result["total"], nan_ok=True)
    assert sum(len(people) for _, _, people, _ in metric.results) == 3


def test_evaluation_refuses_detections_of_frames_that_do_not_exist(posetrack_root, tmp_path):
    path = tmp_path / "detections.json"
    path.write_text(json.dumps([{"image_id": 10059990000, "bbox": [1, 2, 30, 40], "score": 0.9}]))
    with pytest.raises(DataError, match=r"detection 0 \(image_id 10059990000\) is not a frame of split 'val'"):
        PoseTrackClips(str(posetrack_root), "val", INPUT, HEATMAP, boxes=str(path), max_videos=1)


def test_predict_with_detections_by_frame_number_file_name_and_posetrack_id(posetrack_root, tmp_path):
    video = read_split(posetrack_root, "val")[0]
    frames = posetrack_root / "images" / "val" / video.name  # a PoseTrack video folder
    box = [60.0, 40.0, 50.0, 120.0]
    entries = [
        {"image_id": 0, "bbox": box, "score": 0.9, "category_id": 1},
        {"image_id": 0, "bbox": [box[0] + 40, *box[1:]], "score": 0.5, "category_id": 1},
        {"file_name": "000003.jpg", "bbox": box, "score": 0.9, "category_id": 1},
        {"image_id": video.frames[5].image_id, "bbox": box, "score": 0.9, "category_id": 1},  # PoseTrack id
        {"image_id": 6, "bbox": box, "score": 0.2, "category_id": 1},  # under --det-score-thr 0.3
    ]
    path = tmp_path / "people.json"
    path.write_text(json.dumps(entries))
    settings = InferenceSettings(batch_size=4)
    summary = predict_input(FixedPose(codec()), codec(), (0,), settings, frames, tmp_path / "out", path,
                            progress=False)  # fmt: skip
    written = read_video(summary["json"])
    counts = [len(f.people) for f in written.frames]
    assert counts == [2, 0, 0, 1, 0, 1] + [0] * (video.nframes - 6) and summary["people"] == 4
    assert [p.track_id for p in written.frames[0].people] == [0, 1]  # each box's index in its frame
    assert written.frames[0].people[1].score == pytest.approx(0.5 * MEAN_ABOVE, abs=1e-4)
    with pytest.raises(DataError, match="needs a person detector's boxes; run any detector and pass --detections"):
        predict_input(FixedPose(codec()), codec(), (0,), settings, frames, tmp_path / "none", progress=False)
    whole = predict_input(FixedPose(codec()), codec(), (0,), settings, frames, tmp_path / "whole",
                          whole_frame=True, progress=False)  # fmt: skip
    assert whole["people"] == video.nframes
