"""The synthetic PoseTrack18 writer and the clip dataset: layout, labels, crops and their heatmaps."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from diffusekit.core.errors import DataError
from diffusekit.pose.datasets import PoseTrackClips
from diffusekit.pose.metrics import _inside
from diffusekit.pose.posetrack import KEYPOINTS, read_split

SHOULDERS = (KEYPOINTS.index("left_shoulder"), KEYPOINTS.index("right_shoulder"))


def test_synthetic_data_has_the_posetrack18_layout(posetrack_root):
    train, val = read_split(posetrack_root, "train"), read_split(posetrack_root, "val")
    assert len(train) == 8 and len(val) == 3
    assert all(f.is_labeled for v in train for f in v.frames)
    for video in val:  # labelled every 4th frame, as the real val set
        assert [f.index for f in video.labeled_frames] == list(range(0, video.nframes, 4))
        assert all(not f.people for f in video.frames if not f.is_labeled)
    for video in train + val:
        assert video.name.endswith(("_mpii_train", "_mpii_test")) and video.nframes == len(video.frames)
        for frame in video.labeled_frames:
            assert (posetrack_root / frame.file_name).is_file() and len(frame.ignore_regions) == 1
            region = frame.ignore_regions[0]  # the bystander's box: small
            assert np.ptp(region[:, 0]) * np.ptp(region[:, 1]) < 0.05 * 256 * 192
            assert str(frame.image_id).startswith("1") and frame.image_id % 10_000 == frame.index
            for person in frame.people:
                assert not person.annotated[3:5].any()  # ears: never annotated
                lo, hi = person.keypoints[person.annotated, :2].min(0), person.keypoints[person.annotated, :2].max(0)
                assert np.all(person.bbox[:2] <= lo) and np.all(person.bbox[:2] + person.bbox[2:] >= hi)
                assert person.bbox[2] < 0.5 * 256  # the box fits the body, not the frame
                assert person.head_box is not None and person.head_box[2:].min() > 0
                # the bystander's ignore region never covers an annotated figure's whole body
                inside = _inside(person.keypoints[person.annotated, :2], frame.ignore_regions)
                assert not inside.all()


def test_crops_carry_heatmaps_of_the_projected_joints(posetrack_root):
    crops = PoseTrackClips(posetrack_root, "val", (96, 128), (24, 32), 2.0, (-1, 0, 1))
    assert len(crops) == sum(len(f.people) for v in crops.videos for f in v.labeled_frames)
    item = crops[0]
    assert tuple(item["clip"].shape) == (3, 3, 128, 96) and tuple(item["heatmaps"].shape) == (17, 32, 24)
    decoded, _ = crops.codec.decode(item["heatmaps"].numpy())
    seen = item["weights"].numpy() > 0
    assert seen.sum() >= 10
    assert np.abs(decoded[seen] - item["keypoints"].numpy()[seen]).max() < 0.5
    # support frames are clipped at the video ends: frame 0 repeats itself as its predecessor
    first = crops.items[0]
    assert crops.frame_path(first, -1) == crops.frame_path(first, 0)
    assert crops.frame_path(first, 1).name == "000001.jpg"


def test_flip_augmentation_swaps_left_and_right(posetrack_root):
    plain = PoseTrackClips(posetrack_root, "train", (96, 128), (24, 32))
    flipped = PoseTrackClips(posetrack_root, "train", (96, 128), (24, 32), augment=dict(flip=1.0))
    a, b = plain[3]["keypoints"].numpy(), flipped[3]["keypoints"].numpy()
    left, right = SHOULDERS
    assert np.allclose(b[left, 0], 95 - a[right, 0], atol=1e-4) and np.allclose(b[left, 1], a[right, 1], atol=1e-4)
    # the crop itself is mirrored (up to OpenCV's 1/32-pixel fixed-point resampling)
    difference = np.abs(flipped[3]["clip"].numpy() - plain[3]["clip"].numpy()[..., ::-1])
    assert difference.mean() < 0.02


def test_missing_frames_and_bad_offsets_raise_data_errors(posetrack_root, tmp_path):
    copy = tmp_path / "pt"
    shutil.copytree(posetrack_root, copy)
    crops = PoseTrackClips(copy, "val", (96, 128), (24, 32))
    missing = crops.frame_path(crops.items[0], 1)
    missing.unlink()
    with pytest.raises(DataError, match=r"000001\.jpg: frame missing on disk"):
        crops[0]
    missing.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="not a readable image"):
        crops[0]
    with pytest.raises(DataError, match="must contain 0"):
        PoseTrackClips(copy, "val", (96, 128), (24, 32), frame_offsets=(-1, 1))
    with pytest.raises(DataError, match="annotations/test"):
        PoseTrackClips(copy, "test", (96, 128), (24, 32))
    frame = crops.videos[1].frames[0]
    (tmp_path / "det.json").write_text(json.dumps([{"image_id": frame.image_id, "bbox": [900, 900, 50, 80]}]))
    outside = PoseTrackClips(copy, "val", (96, 128), (24, 32), boxes=str(tmp_path / "det.json"))
    with pytest.raises(DataError, match=r"000000\.jpg: box \[900.*lies outside the 256x192 frame"):
        outside[0]
