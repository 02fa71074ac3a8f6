"""Human3.6M (VideoPose3D npz), MPI-INF-3DHP (D3DP npz) and 2D keypoint readers, on tiny files written here."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from diffusekit.core.errors import DataError
from diffusekit.pose.camera import CAMERA_IDS, camera_to_world, h36m_camera
from diffusekit.pose.h36m import (
    H36M_TEST_SUBJECTS,
    canonical_action,
    convert_videopose3d,
    load_h36m,
    load_split,
)
from diffusekit.pose.keypoints2d import (
    coco_to_h36m,
    interpolate_missing,
    posetrack_to_h36m,
    read_keypoints_2d,
)
from diffusekit.pose.mpi3dhp import convert_3dhp, load_3dhp
from diffusekit.pose.npz_tree import read_npz
from diffusekit.pose.posetrack import KEYPOINTS
from diffusekit.pose.skeleton import (
    H36M_KEEP,
    MPI3DHP_FLIP_LEFT,
    MPI3DHP_FLIP_RIGHT,
    MPI3DHP_JOINTS,
    MPI3DHP_PARENTS,
)

METADATA = {
    "layout_name": "h36m",
    "num_joints": 17,
    "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
}


def world_poses(n: int, seed: int, joints: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.array([0.0, 0.0, 1.0]) + 0.3 * rng.standard_normal((n, joints, 3))).astype(np.float32)


def keypoints(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [(500 + 100 * rng.standard_normal((n, 17, 2))).astype(np.float32) for _ in CAMERA_IDS]


@pytest.fixture
def h36m(tmp_path):
    """Pickled files as published: S1 (2 actions, raw names), S9, S11 (1 action); 2D 2 frames longer than the mocap."""
    poses = {
        "S1": {"Walking 1": world_poses(6, 0), "TakingPhoto": world_poses(5, 1)},
        "S9": {"Sitting": world_poses(4, 2)},
        "S11": {"Directions": world_poses(3, 3)},
    }
    points = {
        s: {a: keypoints(len(p) + 2, 10 + i) for i, (a, p) in enumerate(acts.items())} for s, acts in poses.items()
    }
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=poses)
    np.savez(tmp_path / "data_2d_h36m_gt.npz", positions_2d=points, metadata=METADATA)
    return tmp_path, poses, points


def rewrite(tmp_path, poses=None, points=None) -> None:
    if poses is not None:
        np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=poses)
    if points is not None:
        np.savez(tmp_path / "data_2d_h36m_gt.npz", positions_2d=points, metadata=METADATA)


def test_pickled_file_needs_opt_in(h36m):
    root, _, _ = h36m
    with pytest.raises(DataError, match="convert") as err:
        load_h36m(root, "gt")
    assert err.value.path == root / "data_3d_h36m.npz"
    assert "data_3d_h36m.npz" in str(err.value) and "allow_pickle=True" in str(err.value)


def test_allow_pickle_loads(h36m):
    root, poses, points = h36m
    seqs = load_h36m(root, "gt", allow_pickle=True)
    assert len(seqs) == 4 * 4
    assert [s.name for s in seqs[:5]] == [f"S1 Walking 1 {c}" for c in CAMERA_IDS] + [f"S1 Photo {CAMERA_IDS[0]}"]
    seq = seqs[4]  # S1 Photo, camera 0: 2D cut to the 5 mocap frames
    assert seq.action == "Photo" and seq.keypoints_2d.shape == (5, 17, 2) and seq.pose_3d.shape == (5, 17, 3)
    assert seq.keypoints_2d.dtype == np.float32 and seq.pose_3d.dtype == np.float32
    np.testing.assert_array_equal(seq.keypoints_2d, points["S1"]["TakingPhoto"][0][:5])
    assert (seq.width, seq.height, seq.camera.id, seq.dataset, seq.valid) == (1000, 1002, CAMERA_IDS[0], "h36m", None)
    assert canonical_action("WalkingDog 1") == "WalkDog 1"
    # filters: subjects, actions by base name, cameras by index or id
    some = load_h36m(root, "gt", subjects=["S1"], actions=["Walking"], cameras=[1, CAMERA_IDS[3]], allow_pickle=True)
    assert [s.name for s in some] == [f"S1 Walking 1 {CAMERA_IDS[1]}", f"S1 Walking 1 {CAMERA_IDS[3]}"]
    assert {s.subject for s in load_split(root, "test", "gt", allow_pickle=True)} == set(H36M_TEST_SUBJECTS)
    with pytest.raises(DataError, match="positions_3d/S5"):
        load_split(root, "train", "gt", allow_pickle=True)


def test_world_to_camera(h36m):
    root, poses, _ = h36m
    assert [s.name for s in load_h36m(root, "gt", subjects="S9", cameras=0, allow_pickle=True)] == [
        f"S9 Sitting {CAMERA_IDS[0]}"
    ]
    for seq in load_h36m(root, "gt", subjects=["S9"], allow_pickle=True):
        world = poses["S9"]["Sitting"][:, list(H36M_KEEP)]
        camera = h36m_camera("S9", CAMERA_IDS.index(seq.camera.id))
        np.testing.assert_array_equal(seq.camera.translation, camera.translation)
        np.testing.assert_allclose(camera_to_world(seq.pose_3d, seq.camera), world, atol=1e-5)
        # a rigid motion: root-relative shapes keep their joint distances
        rel, rel_world = seq.pose_3d - seq.pose_3d[:, :1], world - world[:, :1]
        np.testing.assert_allclose(np.linalg.norm(rel, axis=-1), np.linalg.norm(rel_world, axis=-1), atol=1e-5)
        assert not np.allclose(seq.pose_3d, world, atol=1e-2)


def test_convert_round_trip(h36m):
    root, _, _ = h36m
    reference = load_h36m(root, "gt", allow_pickle=True)
    flat_3d = convert_videopose3d(root / "data_3d_h36m.npz")
    flat_2d = convert_videopose3d(root / "data_2d_h36m_gt.npz")
    assert flat_3d.name == "data_3d_h36m.flat.npz" and flat_2d.name == "data_2d_h36m_gt.flat.npz"
    assert not list(root.glob("*.tmp"))
    with np.load(flat_2d, allow_pickle=False) as archive:
        assert "positions_2d/S1/TakingPhoto/3" in archive.files
        assert json.loads(str(archive["metadata"])) == METADATA
    with np.load(flat_3d, allow_pickle=False) as archive:
        assert archive["positions_3d/S1/Walking 1"].shape == (6, 32, 3)
    loaded = load_h36m(root, "gt")  # the flat files are preferred; no pickle needed
    assert [s.name for s in loaded] == [s.name for s in reference]
    for a, b in zip(loaded, reference):
        np.testing.assert_array_equal(a.keypoints_2d, b.keypoints_2d)
        np.testing.assert_array_equal(a.pose_3d, b.pose_3d)
    assert read_npz(flat_2d)["metadata"] == METADATA


def test_17_joint_3d_accepted(h36m):
    root, poses, _ = h36m
    short = {s: {a: p[:, list(H36M_KEEP)] for a, p in acts.items()} for s, acts in poses.items()}
    rewrite(root, poses=short)
    reference = load_h36m(root, "gt", subjects=["S9"], allow_pickle=True)
    np.testing.assert_allclose(
        camera_to_world(reference[0].pose_3d, reference[0].camera), short["S9"]["Sitting"], atol=1e-5
    )


def test_2d_shorter_than_mocap(h36m):
    root, _, points = h36m
    points["S9"]["Sitting"][2] = points["S9"]["Sitting"][2][:3]
    rewrite(root, points=points)
    with pytest.raises(DataError, match=r"positions_2d/S9/Sitting/2.*fewer") as err:
        load_h36m(root, "gt", allow_pickle=True)
    assert err.value.path.name == "data_2d_h36m_gt.npz"


@pytest.mark.parametrize("missing", ["subject", "action"])
def test_missing_2d_key(h36m, missing):
    root, _, points = h36m
    if missing == "subject":
        del points["S9"]
    else:
        del points["S1"]["TakingPhoto"]
    rewrite(root, points=points)
    key = "positions_2d/S9" if missing == "subject" else "positions_2d/S1/Photo"
    with pytest.raises(DataError, match=key) as err:
        load_h36m(root, "gt", allow_pickle=True)
    assert "data_2d_h36m_gt.npz" in str(err.value)
    with pytest.raises(DataError, match="positions_3d/S5"):
        load_h36m(root, "gt", subjects=["S5"], allow_pickle=True)


def test_bad_values_and_shapes(h36m):
    root, poses, points = h36m
    poses["S1"]["Walking 1"][3, 4, 1] = np.nan
    rewrite(root, poses=poses)
    with pytest.raises(DataError, match="positions_3d/S1/Walking 1.*NaN") as err:
        load_h36m(root, "gt", allow_pickle=True)
    assert err.value.path.name == "data_3d_h36m.npz"
    poses["S1"]["Walking 1"] = world_poses(6, 0)[:, :20]
    rewrite(root, poses=poses)
    with pytest.raises(DataError, match=r"positions_3d/S1/Walking 1.*shape"):
        load_h36m(root, "gt", allow_pickle=True)
    points["S1"]["Walking 1"] = points["S1"]["Walking 1"][:3]
    rewrite(root, poses={"S1": {"Walking 1": world_poses(6, 0)}}, points=points)
    with pytest.raises(DataError, match="3 camera views"):
        load_h36m(root, "gt", allow_pickle=True)


def test_not_an_npz(tmp_path):
    (tmp_path / "data_3d_h36m.npz").write_bytes(b"\x80\x04 not a zip at all")
    (tmp_path / "data_2d_h36m_gt.npz").write_bytes(b"")
    for allow in (False, True):
        with pytest.raises(DataError, match="not an .npz") as err:
            load_h36m(tmp_path, "gt", allow_pickle=allow)
        assert err.value.path.name == "data_3d_h36m.npz"
    np.savez(tmp_path / "data_3d_h36m.npz", something=np.zeros(3))
    with pytest.raises(DataError, match="missing key 'positions_3d'"):
        load_h36m(tmp_path, "gt")
    with pytest.raises(DataError, match="data_2d_h36m_cpn_ft_h36m_dbb"):
        load_h36m(tmp_path)


# --- MPI-INF-3DHP ----------------------------------------------------------------------------------------------


def test_3dhp_skeleton():
    # DDHPose's default -bi_3dhp bone list (parent, child pairs, common/arguments.py)
    bones = [1, 0, 15, 1, 1, 2, 2, 3, 3, 4, 1, 5, 5, 6, 6, 7, 14, 8, 8, 9, 9, 10, 14, 11, 11, 12, 12, 13, 14, 15, 1, 16]
    assert {(MPI3DHP_PARENTS[c], c) for c in range(17) if MPI3DHP_PARENTS[c] >= 0} == set(zip(bones[::2], bones[1::2]))
    assert len(MPI3DHP_JOINTS) == len(MPI3DHP_PARENTS) == 17 and MPI3DHP_PARENTS.index(-1) == 14
    assert MPI3DHP_JOINTS[14] == "pelvis" and MPI3DHP_JOINTS[MPI3DHP_PARENTS[0]] == "neck"
    for left, right in zip(MPI3DHP_FLIP_LEFT, MPI3DHP_FLIP_RIGHT):
        assert MPI3DHP_JOINTS[left].replace("left", "right") == MPI3DHP_JOINTS[right]


def test_3dhp_round_trip(tmp_path):
    rng = np.random.default_rng(0)

    def record(n):
        return {"data_3d": 1000 * rng.standard_normal((n, 17, 3)), "data_2d": 1000 * rng.random((n, 17, 2))}

    train = {"S1 Seq1": [{0: record(5), 1: record(5)}], "S2 Seq2": [{4: record(3)}]}
    test = {"TS1": {**record(6), "valid": np.array([1, 1, 0, 1, 0, 1.0])}, "TS5": {**record(4), "valid": np.ones(4)}}
    np.savez(tmp_path / "data_train_3dhp_ori.npz", data=train)
    np.savez(tmp_path / "data_test_3dhp_ori.npz", data=test)
    with pytest.raises(DataError, match="convert") as err:
        load_3dhp(tmp_path, "test")
    assert err.value.path.name == "data_test_3dhp_ori.npz"

    pickled = {split: load_3dhp(tmp_path, split, allow_pickle=True) for split in ("train", "test")}
    convert_3dhp(tmp_path / "data_train_3dhp_ori.npz")
    convert_3dhp(tmp_path / "data_test_3dhp_ori.npz")
    for split in ("train", "test"):
        flat = load_3dhp(tmp_path, split)
        assert [s.name for s in flat] == [s.name for s in pickled[split]]
        for a, b in zip(flat, pickled[split]):
            np.testing.assert_array_equal(a.pose_3d, b.pose_3d)
            np.testing.assert_array_equal(a.keypoints_2d, b.keypoints_2d)

    seqs = load_3dhp(tmp_path, "train")
    assert [s.name for s in seqs] == ["S1 Seq1 cam0", "S1 Seq1 cam1", "S2 Seq2 cam4"]
    assert seqs[0].camera is None and (seqs[0].width, seqs[0].height, seqs[0].dataset) == (2048, 2048, "3dhp")
    np.testing.assert_allclose(seqs[1].pose_3d, train["S1 Seq1"][0][1]["data_3d"] / 1000, rtol=1e-6)
    ts1, ts5 = load_3dhp(tmp_path, "test")
    assert (ts1.name, ts1.subject, ts1.action) == ("TS1", "TS1", "")
    np.testing.assert_array_equal(ts1.valid, [True, True, False, True, False, True])
    assert (ts5.width, ts5.height, ts5.camera.width) == (1920, 1080, 1920)
    np.testing.assert_allclose(ts1.camera.intrinsics[:4], [7.32506 * 204.8, 7.32506 * 204.8, 1024 - 0.0322884 * 204.8,
                                                           1024 + 0.0929296 * 204.8])  # fmt: skip
    np.testing.assert_allclose(ts1.pose_3d, test["TS1"]["data_3d"] / 1000, rtol=1e-6)

    test["TS1"]["valid"] = np.ones(5)
    np.savez(tmp_path / "data_test_3dhp_ori.flat.npz", data=test)  # pickled under the flat name: still refused
    with pytest.raises(DataError, match="convert"):
        load_3dhp(tmp_path, "test")
    with pytest.raises(DataError, match="data/TS1/valid"):
        load_3dhp(tmp_path, "test", allow_pickle=True)


# --- 2D keypoints ----------------------------------------------------------------------------------------------


def coco_person(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(0, 100, (17, 2)), np.full((17, 1), 2.0)], axis=1)


def test_coco_and_posetrack_mapping():
    kp = coco_person(0)
    h = coco_to_h36m(kp)
    pelvis = (kp[11, :2] + kp[12, :2]) / 2
    thorax = (kp[5, :2] + kp[6, :2]) / 2
    np.testing.assert_allclose(h[0, :2], pelvis)
    np.testing.assert_allclose(h[8, :2], thorax)
    np.testing.assert_allclose(h[7, :2], (pelvis + thorax) / 2)
    np.testing.assert_allclose(h[9, :2], kp[0, :2])
    np.testing.assert_allclose(h[10, :2], (kp[1, :2] + kp[2, :2]) / 2)
    np.testing.assert_allclose(h[[1, 2, 3, 4, 5, 6], :2], kp[[12, 14, 16, 11, 13, 15], :2])
    np.testing.assert_allclose(h[[11, 12, 13, 14, 15, 16], :2], kp[[5, 7, 9, 6, 8, 10], :2])
    np.testing.assert_allclose(posetrack_to_h36m(kp)[10, :2], kp[2, :2])  # head_top
    kp[11, 2] = 0.25  # a derived joint's score is its sources' lowest
    assert coco_to_h36m(kp)[0, 2] == 0.25 and coco_to_h36m(kp)[7, 2] == 0.25 and coco_to_h36m(kp)[8, 2] == 2
    assert coco_to_h36m(np.stack([kp[:, :2]] * 3)).shape == (3, 17, 2)


def test_interpolate_missing():
    points = np.zeros((5, 2, 2))
    points[:, 0, 0] = [0, 99, 4, 99, 99]
    points[:, 1] = 7
    observed = np.array([[1, 1], [0, 1], [1, 1], [0, 1], [0, 1]], bool)
    out = interpolate_missing(points, observed)
    np.testing.assert_allclose(out[:, 0, 0], [0, 2, 4, 4, 4])
    np.testing.assert_allclose(out[:, 1], 7)
    with pytest.raises(ValueError, match=r"\[1\]"):
        interpolate_missing(points, observed & np.array([True, False]))


def coco_file(tmp_path, people):
    images = [{"id": 10 + i, "file_name": f"{i:06d}.jpg", "width": 640, "height": 480} for i in range(len(people))]
    annotations = [
        {"id": i, "image_id": 10 + i, "track_id": 3, "keypoints": kp.reshape(-1).tolist()}
        for i, kp in enumerate(people)
        if kp is not None
    ]
    path = tmp_path / "clip.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    return path


def test_coco_json(tmp_path):
    people = [coco_person(i) for i in range(4)]
    people[1][9] = 0  # left wrist unlabelled in frame 1
    people[2] = None  # person absent from frame 2
    (seq,) = read_keypoints_2d(coco_file(tmp_path, people))
    assert (seq.name, seq.width, seq.height, seq.keypoints.shape) == ("clip track 3", 640, 480, (4, 17, 2))
    np.testing.assert_array_equal(seq.frames, [10, 11, 12, 13])
    np.testing.assert_allclose(seq.keypoints[1, 13], (people[0][9, :2] * 2 + people[3][9, :2]) / 3, rtol=1e-5)
    np.testing.assert_allclose(
        seq.keypoints[2, 0], (coco_to_h36m(people[1])[0, :2] + coco_to_h36m(people[3])[0, :2]) / 2
    )
    np.testing.assert_allclose(seq.keypoints[0], coco_to_h36m(people[0])[:, :2], rtol=1e-6)
    assert not seq.observed[1, 13] and not seq.observed[2].any() and seq.observed[0].all()
    for kp in people:
        if kp is not None:
            kp[1, 2] = 0  # the left eye is never visible -> the head cannot be built
    with pytest.raises(DataError, match="no usable track.*left_eye") as err:
        read_keypoints_2d(coco_file(tmp_path, people))
    assert err.value.path.name == "clip.json"


def test_a_track_without_a_needed_joint_is_skipped_with_a_warning(tmp_path):
    from diffusekit.pose.keypoints2d import TrackSkipped

    path = coco_file(tmp_path, [coco_person(i) for i in range(3)])
    data = json.loads(path.read_text())
    for ann in list(data["annotations"]):
        blind = dict(ann, id=ann["id"] + 100, track_id=7, keypoints=list(ann["keypoints"]))
        blind["keypoints"][3 * 15 + 2] = 0  # left ankle never visible for track 7
        data["annotations"].append(blind)
    path.write_text(json.dumps(data))
    with pytest.warns(TrackSkipped, match="track 7.*left_ankle"):
        sequences = read_keypoints_2d(path)
    assert [s.name for s in sequences] == ["clip track 3"]


def posetrack_file(tmp_path, people):
    images = [
        {"file_name": f"images/val/000001_mpii_test/{i:06d}.jpg", "id": 10000010000 + i, "vid_id": "000001",
         "nframes": len(people), "is_labeled": kp is not None}
        for i, kp in enumerate(people)
    ]  # fmt: skip
    annotations = [
        {"id": i, "image_id": 10000010000 + i, "track_id": 0, "keypoints": kp.reshape(-1).tolist()}
        for i, kp in enumerate(people)
        if kp is not None
    ]
    folder = tmp_path / "annotations" / "val"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "000001_mpii_test.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": [{"keypoints": KEYPOINTS}]})
    )
    return path


def test_posetrack_json(tmp_path):
    people = [coco_person(i) for i in range(3)]
    for kp in people:
        kp[[3, 4]] = 0  # ears are never annotated in PoseTrack; unused
    people[1] = None
    path = posetrack_file(tmp_path, people)
    with pytest.raises(DataError, match="width and height"):
        read_keypoints_2d(path)
    (seq,) = read_keypoints_2d(path, width=320, height=240)
    assert (seq.name, seq.width, seq.height, len(seq)) == ("000001_mpii_test track 0", 320, 240, 3)
    np.testing.assert_allclose(seq.keypoints[0], posetrack_to_h36m(people[0])[:, :2], rtol=1e-6)
    np.testing.assert_allclose(seq.keypoints[1], (seq.keypoints[0] + seq.keypoints[2]) / 2, rtol=1e-5)
    frame = tmp_path / "images" / "val" / "000001_mpii_test" / "000000.jpg"
    frame.parent.mkdir(parents=True)
    cv2.imwrite(str(frame), np.zeros((36, 52, 3), np.uint8))
    assert (read_keypoints_2d(path)[0].width, read_keypoints_2d(path)[0].height) == (52, 36)


def test_keypoints_npz(tmp_path, h36m):
    path = tmp_path / "dets.npz"
    points = np.random.default_rng(0).random((7, 17, 3)).astype(np.float32)
    np.savez(path, keypoints=points, width=1280, height=720)
    (seq,) = read_keypoints_2d(path)
    assert (seq.name, seq.width, seq.height) == ("dets", 1280, 720)
    np.testing.assert_array_equal(seq.keypoints, points[..., :2])
    np.savez(path, keypoints=points)
    with pytest.raises(DataError, match="width and height"):
        read_keypoints_2d(path)
    assert read_keypoints_2d(path, width=10, height=20)[0].height == 20
    root, _, source = h36m
    with pytest.raises(DataError, match="convert"):
        read_keypoints_2d(root / "data_2d_h36m_gt.npz")
    seqs = read_keypoints_2d(convert_videopose3d(root / "data_2d_h36m_gt.npz"))
    assert len(seqs) == 16 and seqs[0].name == f"S1 Walking 1 {CAMERA_IDS[0]}" and seqs[0].height == 1002
    np.testing.assert_array_equal(seqs[-1].keypoints, source["S11"]["Directions"][3])  # not truncated: no mocap here
