"""Synthetic 3D motion and the Human3.6M / MPI-INF-3DHP writers: rigid bones, smooth motion, the published npz
layouts, exact reprojection of the ground-truth 2D, a realistic detector and determinism."""

from __future__ import annotations

import numpy as np
import pytest

from diffusekit.pose.camera import CAMERA_IDS, H36M_SUBJECTS, h36m_camera, project, world_to_camera
from diffusekit.pose.motion import MOTIONS, random_body, simulate, simulate_with_extremities
from diffusekit.pose.skeleton import H36M_KEEP, H36M_PARENTS
from diffusekit.pose.synthetic3d import (
    H36M_METADATA,
    H36M_TO_3DHP,
    MPI3DHP_TRAIN_CAMERAS,
    MPI3DHP_TRAIN_FPS,
    mpi3dhp_test_camera,
    mpi3dhp_train_cameras,
    write_3dhp,
    write_h36m,
)

FPS = 50
PARENTS_3DHP = [H36M_TO_3DHP.index(H36M_PARENTS[j]) if H36M_PARENTS[j] >= 0 else -1 for j in H36M_TO_3DHP]


def _load(path):
    return np.load(path, allow_pickle=True)


def _bones(joints, parents=H36M_PARENTS):
    child = [j for j, p in enumerate(parents) if p >= 0]
    return np.linalg.norm(joints[..., child, :] - joints[..., [parents[j] for j in child], :], axis=-1)


@pytest.fixture(scope="module")
def h36m(tmp_path_factory):
    root = write_h36m(tmp_path_factory.mktemp("h36m"), "small", seed=0)
    return {
        "root": root,
        "3d": _load(root / "data_3d_h36m.npz")["positions_3d"].item(),
        "gt": _load(root / "data_2d_h36m_gt.npz")["positions_2d"].item(),
        "det": _load(root / "data_2d_h36m_det.npz")["positions_2d"].item(),
    }


@pytest.fixture(scope="module")
def mpi3dhp(tmp_path_factory):
    root = write_3dhp(tmp_path_factory.mktemp("3dhp"), seed=0, frames=60)
    return {
        "root": root,
        "train": _load(root / "data_train_3dhp_ori.npz")["data"].item(),
        "test": _load(root / "data_test_3dhp_ori.npz")["data"].item(),
    }


# --- motion --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("motion", MOTIONS)
def test_bones_keep_their_length_and_the_motion_is_smooth(motion):
    rng = np.random.default_rng(1)
    body = random_body(rng)
    joints, extremities = simulate_with_extremities(motion, 400, rng, body, fps=FPS)
    assert joints.shape == (400, 17, 3) and extremities.shape == (400, 8, 3)
    np.testing.assert_allclose(_bones(joints), np.broadcast_to(body.bone_lengths[1:], (400, 16)), atol=1e-9)
    assert 1.55 <= body.height <= 1.90 and 0.40 < body.bone_lengths[2] < 0.52  # a thigh
    speed = np.linalg.norm(np.diff(joints, axis=0), axis=-1) * FPS
    acceleration = np.linalg.norm(np.diff(joints, 2, axis=0), axis=-1) * FPS**2
    assert speed.max() < 6.0 and acceleration.max() < 80.0  # m/s, m/s^2: no jumps
    everything = np.concatenate([joints, extremities], axis=1)
    lowest = everything[..., 2].min(1)
    assert lowest.min() > -1e-9 and lowest.max() < 0.03  # standing on the floor every frame
    assert np.ptp(joints[..., :2], axis=(0, 1)).max() < 3.5


def test_motions_do_what_they_are_named_after():
    rng = np.random.default_rng(2)
    walk = simulate("walking", 500, rng)  # 10 s
    path = np.linalg.norm(np.diff(walk[:, 0, :2], axis=0), axis=-1).sum()
    assert 6.0 < path < 15.0  # 0.9-1.35 m/s, slower in turns
    left, right = walk[:, 6] - walk[:, 0], walk[:, 3] - walk[:, 0]
    assert np.corrcoef(left[:, 2], right[:, 2])[0, 1] < 0.5  # the feet alternate
    sit = simulate("sitting", 250, rng)
    assert sit[0, 0, 2] - sit[-1, 0, 2] > 0.25  # the pelvis lowers onto the chair
    assert np.linalg.norm(sit[-1, 3] - sit[0, 3]) < 0.1  # while the feet stay put
    wave = simulate("waving", 400, rng)
    assert wave[:, [13, 16], 2].max() > wave[:, 10, 2].max() - 0.3  # a hand raised near the head
    reach = simulate("reaching", 600, rng)
    assert np.ptp(reach[:, [13, 16]], axis=0).max() > 0.4
    a, b = simulate("walking", 50, np.random.default_rng(3)), simulate("walking", 50, np.random.default_rng(4))
    assert np.abs(a - b).max() > 0.1  # random per-sequence parameters
    with pytest.raises(ValueError, match="unknown motion"):
        simulate("juggling", 10, rng)


# --- Human3.6M -----------------------------------------------------------------------------------------------------


def test_h36m_files_have_the_videopose3d_layout(h36m):
    names = sorted(p.name for p in h36m["root"].iterdir())
    assert names == ["data_2d_h36m_det.npz", "data_2d_h36m_gt.npz", "data_3d_h36m.npz"]
    raw = _load(h36m["root"] / "data_3d_h36m.npz")
    assert raw.files == ["positions_3d"] and raw["positions_3d"].dtype == object and raw["positions_3d"].shape == ()
    for source in ("gt", "det"):
        raw = _load(h36m["root"] / f"data_2d_h36m_{source}.npz")
        assert sorted(raw.files) == ["metadata", "positions_2d"]
        assert raw["metadata"].item() == H36M_METADATA
        assert raw["metadata"].item()["keypoints_symmetry"] == [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    positions = h36m["3d"]
    assert list(positions) == list(H36M_SUBJECTS) == ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]
    assert "Directions" not in positions["S11"] and "Directions" in positions["S9"]  # dropped as in the real file
    assert len({a.split(" ")[0] for s in positions for a in positions[s]}) >= 4
    longer = 0
    for subject, actions in positions.items():
        assert set(h36m["gt"][subject]) == set(h36m["det"][subject]) == set(actions)
        for action, mocap in actions.items():
            assert mocap.dtype == np.float32 and mocap.ndim == 3 and mocap.shape[1:] == (32, 3)
            for source in ("gt", "det"):
                views = h36m[source][subject][action]
                assert isinstance(views, list) and len(views) == len(CAMERA_IDS)
                for view in views:
                    assert view.dtype == np.float32 and view.shape[1:] == (17, 2)
                    extra = len(view) - len(mocap)
                    assert extra == 0 if source == "gt" else 0 <= extra <= 5
                    longer += extra > 0
    assert longer > 0  # some 2D detections outlast the mocap: loaders truncate them


def test_h36m_bodies_are_rigid_and_the_removed_joints_plausible(h36m):
    for actions in h36m["3d"].values():
        lengths = [_bones(mocap[:, list(H36M_KEEP)].astype(np.float64)) for mocap in actions.values()]
        reference = lengths[0][0]
        for per_frame in lengths:
            np.testing.assert_allclose(per_frame, np.broadcast_to(reference, per_frame.shape), atol=2e-6)
        for mocap in actions.values():
            np.testing.assert_array_equal(mocap[:, 11], mocap[:, 0])  # duplicates of kept joints
            np.testing.assert_array_equal(mocap[:, [16, 24]], mocap[:, [13, 13]])
            np.testing.assert_array_equal(mocap[:, [20, 22, 28, 30]], mocap[:, [19, 19, 27, 27]])
            toes = np.linalg.norm(mocap[:, [4, 5, 9, 10]] - mocap[:, [3, 3, 8, 8]], axis=-1)
            hands = np.linalg.norm(mocap[:, [21, 23, 29, 31]] - mocap[:, [19, 19, 27, 27]], axis=-1)
            assert 0.08 < toes.min() and toes.max() < 0.25 and 0.03 < hands.min() and hands.max() < 0.12
            assert mocap[..., 2].min() > -1e-4 and np.abs(mocap[..., :2]).max() < 3.0  # on the floor, in the room


def test_h36m_gt_2d_is_the_exact_projection_inside_every_image(h36m):
    for subject, actions in h36m["3d"].items():
        for action, mocap in actions.items():
            joints = mocap[:, list(H36M_KEEP)].astype(np.float64)
            for index, view in enumerate(h36m["gt"][subject][action]):
                camera = h36m_camera(subject, index)
                expected = project(world_to_camera(joints, camera), camera)
                np.testing.assert_allclose(view, expected, atol=1e-3)
                assert view.min() > 0 and np.all(view < [camera.width, camera.height])
                assert world_to_camera(joints, camera)[..., 2].min() > 1.5  # in front of the camera


def test_h36m_detections_are_a_few_pixels_off(h36m):
    errors = []
    for subject, actions in h36m["gt"].items():
        for action, views in actions.items():
            for gt, det in zip(views, h36m["det"][subject][action]):
                errors.append(np.linalg.norm(det[: len(gt)] - gt, axis=-1))
    errors = np.concatenate(errors)  # (frames, 17)
    assert 2.0 < errors.mean() < 10.0 and np.median(errors) < 8.0
    assert errors[:, [13, 16]].mean() > 1.3 * errors[:, [11, 14]].mean()  # wrists worse than shoulders
    assert errors.max() > 15.0  # occasional outliers and left/right confusions


def test_h36m_writer_is_deterministic(h36m, tmp_path):
    again = write_h36m(tmp_path / "again", "small", seed=0, sources=("det",))
    det = _load(again / "data_2d_h36m_det.npz")["positions_2d"].item()
    positions = _load(again / "data_3d_h36m.npz")["positions_3d"].item()
    assert not (again / "data_2d_h36m_gt.npz").exists()
    for subject, actions in h36m["3d"].items():
        for action, mocap in actions.items():
            np.testing.assert_array_equal(positions[subject][action], mocap)
            for a, b in zip(det[subject][action], h36m["det"][subject][action]):
                np.testing.assert_array_equal(a, b)
    other = write_h36m(tmp_path / "other", "small", seed=1, sources=())
    positions = _load(other / "data_3d_h36m.npz")["positions_3d"].item()
    assert not np.array_equal(positions["S1"]["Walking"][:50], h36m["3d"]["S1"]["Walking"][:50])
    with pytest.raises(ValueError, match="size"):
        write_h36m(tmp_path / "bad", "huge")


# --- MPI-INF-3DHP --------------------------------------------------------------------------------------------------


def test_3dhp_files_have_the_d3dp_layout(mpi3dhp):
    train, test = mpi3dhp["train"], mpi3dhp["test"]
    assert list(train) == list(MPI3DHP_TRAIN_FPS) and len(train) == 16 and "S8 Seq2" in train
    for name, entry in train.items():
        assert isinstance(entry, list) and len(entry) == 2 and entry[1] == MPI3DHP_TRAIN_FPS[name] in (25, 50)
        views = entry[0]
        assert list(views) == list(MPI3DHP_TRAIN_CAMERAS) and all(isinstance(k, str) for k in views)
        for view in views.values():
            assert set(view) == {"data_3d", "data_2d"}
            assert view["data_3d"].shape == (60, 17, 3) and view["data_2d"].shape == (60, 17, 2)
            assert view["data_3d"].dtype == view["data_2d"].dtype == np.float32
    assert list(test) == ["TS1", "TS2", "TS3", "TS4", "TS5", "TS6"]
    for seq in test.values():
        assert set(seq) == {"data_3d", "data_2d", "valid"}
        n = len(seq["valid"])
        assert seq["data_3d"].shape == (n, 17, 3) and seq["data_2d"].shape == (n, 17, 2) and seq["valid"].shape == (n,)
        assert set(np.unique(seq["valid"])) <= {0.0, 1.0} and 0.5 < seq["valid"].mean() < 1.0
    assert len(test["TS5"]["valid"]) < len(test["TS1"]["valid"])  # the outdoor sequences are short


def test_3dhp_2d_reprojects_and_the_3d_is_a_rigid_body_in_mm(mpi3dhp):
    rig = mpi3dhp_train_cameras(0)
    for entry in mpi3dhp["train"].values():
        lengths = []
        for key, view in entry[0].items():
            np.testing.assert_allclose(
                view["data_2d"], project(view["data_3d"].astype(np.float64), rig[key]), atol=1e-3
            )
            assert view["data_2d"].min() > 0 and view["data_2d"].max() < 2048
            assert 2500 < view["data_3d"][:, 14, 2].min() and view["data_3d"][:, 14, 2].max() < 6500  # mm in front
            lengths.append(_bones(view["data_3d"].astype(np.float64), PARENTS_3DHP))
        lengths = np.stack(lengths)  # (cameras, frames, bones): one body seen from every camera
        assert np.abs(lengths - lengths[0, 0]).max() < 0.05 and 380 < lengths[0, 0].max() < 520  # mm; thigh
    for name, seq in mpi3dhp["test"].items():
        camera = mpi3dhp_test_camera(name)
        assert (camera.width, camera.height) == ((1920, 1080) if name in ("TS5", "TS6") else (2048, 2048))
        np.testing.assert_allclose(seq["data_2d"], project(seq["data_3d"].astype(np.float64), camera), atol=1e-3)
        assert seq["data_2d"].min() > 0 and np.all(seq["data_2d"] < [camera.width, camera.height])
        head_top, pelvis = seq["data_3d"][:, 0], seq["data_3d"][:, 14]
        assert np.median(head_top[:, 1] - pelvis[:, 1]) < -400  # y points down in camera space
    np.testing.assert_allclose(
        mpi3dhp_test_camera("TS1").intrinsics[:4], [1500.17, 1500.17, 1017.39, 1043.03], atol=0.01
    )
    np.testing.assert_allclose(mpi3dhp_test_camera("TS6").intrinsics[:4], [1683.98, 1683.98, 939.86, 560.14], atol=0.01)


def test_3dhp_writer_is_deterministic(mpi3dhp, tmp_path):
    again = write_3dhp(tmp_path, seed=0, frames=60)
    test = _load(again / "data_test_3dhp_ori.npz")["data"].item()
    train = _load(again / "data_train_3dhp_ori.npz")["data"].item()
    for name, seq in test.items():
        for key, value in seq.items():
            np.testing.assert_array_equal(value, mpi3dhp["test"][name][key])
    np.testing.assert_array_equal(train["S3 Seq1"][0]["4"]["data_2d"], mpi3dhp["train"]["S3 Seq1"][0]["4"]["data_2d"])
