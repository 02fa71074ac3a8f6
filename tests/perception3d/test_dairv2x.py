"""DAIR-V2X-C reader: poses composed from the calibration files (with CoAlign's system_error_offset), world labels
projected into the vehicle LiDAR frame (checked against hand-computed boxes), class/range/comm-range filters, splits,
noise, the sample-dataset writer, and every bad input as a DataError naming the file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from mmengine.registry import DATASETS

from diffusekit.core.errors import DataError
from diffusekit.perception3d.dairv2x import (
    DAIRV2XScenes,
    corners_to_boxes,
    dairv2x_frames,
    write_sample_dataset,
)
from diffusekit.perception3d.pcd import write_pcd


def _rz(deg: float) -> list[list[float]]:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]


def _calib(deg: float = 0.0, t=(0.0, 0.0, 0.0)) -> dict:
    return {"rotation": _rz(deg), "translation": [[t[0]], [t[1]], [t[2]]]}


def _corners(x, y, z, length, width, height, yaw) -> list[list[float]]:
    """DAIR-V2X's corner order, written out by hand: bottom (+l,+w) (+l,-w) (-l,-w) (-l,+w), then the top."""
    c, s = math.cos(yaw), math.sin(yaw)
    out = []
    for dz in (-height / 2, height / 2):
        for dl, dw in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
            lx, ly = dl * length / 2, dw * width / 2
            out.append([x + c * lx - s * ly, y + s * lx + c * ly, z + dz])
    return out


def _write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _layout(
    root: Path,
    labels: list[dict],
    *,
    l2n=None,
    n2w=None,
    inf=None,
    offset=(0.0, 0.0),
    vid="000010",
    iid="000500",
    split=("000010",),
) -> Path:
    """One frame pair written by hand (identity vehicle calibrations unless given)."""
    l2n = _calib() if l2n is None else l2n
    n2w = _calib() if n2w is None else n2w
    inf = _calib(0.0, (30.0, 0.0, 5.0)) if inf is None else inf
    veh_points = np.array([[1, 2, 3, 0.5], [4, 5, 6, 0.25]], np.float32)
    inf_points = np.array([[-1, -2, -3, 0.75]], np.float32)
    write_pcd(root / f"vehicle-side/velodyne/{vid}.pcd", veh_points, data="binary", intensity="intensity")
    write_pcd(root / f"infrastructure-side/velodyne/{iid}.pcd", inf_points, data="ascii", intensity="intensity")
    _write(root / f"vehicle-side/calib/lidar_to_novatel/{vid}.json", {"transform": l2n})
    _write(root / f"vehicle-side/calib/novatel_to_world/{vid}.json", n2w)
    _write(root / f"infrastructure-side/calib/virtuallidar_to_world/{iid}.json", inf)
    _write(root / f"cooperative/label_world/{vid}.json", labels)
    entry = {
        "vehicle_image_path": f"vehicle-side/image/{vid}.jpg",
        "vehicle_pointcloud_path": f"vehicle-side/velodyne/{vid}.pcd",
        "infrastructure_image_path": f"infrastructure-side/image/{iid}.jpg",
        "infrastructure_pointcloud_path": f"infrastructure-side/velodyne/{iid}.pcd",
        "cooperative_label_path": f"cooperative/label_world/{vid}.json",
        "system_error_offset": {"delta_x": offset[0], "delta_y": offset[1]},
    }
    _write(root / "cooperative/data_info.json", [entry])
    _write(root / "train.json", list(split))
    return root


def _car(x, y, z, length=4.0, width=2.0, height=1.5, yaw=0.0, kind="Car") -> dict:
    return {
        "type": kind,
        "3d_dimensions": {"h": height, "w": width, "l": length},
        "3d_location": {"x": x, "y": y, "z": z},
        "rotation": yaw,
        "world_8_points": _corners(x, y, z, length, width, height, yaw),
    }


def test_identity_calibration_keeps_world_boxes(tmp_path):
    root = _layout(tmp_path, [_car(10.0, 5.0, -1.0, 4.0, 2.0, 1.5, 0.3), _car(-20.0, 3.0, -0.5, 5.0, 2.2, 2.0, 3.0)])
    sample = DAIRV2XScenes(root, "train")[0]
    np.testing.assert_allclose(sample["gt_boxes"][0], [10, 5, -1, 4, 2, 1.5, 0.3], atol=1e-5)
    np.testing.assert_allclose(sample["gt_boxes"][1], [-20, 3, -0.5, 5, 2.2, 2.0, 3.0], atol=1e-5)
    assert sample["gt_boxes"].dtype == np.float32 and sample["object_ids"].tolist() == [0, 1]
    np.testing.assert_allclose(sample["poses_clean"][0], np.zeros(6), atol=1e-12)
    assert sample["frame"] == "000010" and sample["ego_id"] == 0


def test_label_without_world_corners_uses_location_dimensions_rotation(tmp_path):
    car = _car(12.0, -4.0, 0.2, 4.5, 1.8, 1.6, -1.2)
    del car["world_8_points"]
    car["3d_location"] = {"x": "12.0", "y": "-4.0", "z": "0.2"}  # DAIR camera labels store strings
    sample = DAIRV2XScenes(_layout(tmp_path, [car]), "train")[0]
    np.testing.assert_allclose(sample["gt_boxes"][0], [12, -4, 0.2, 4.5, 1.8, 1.6, -1.2], atol=1e-5)


def test_vehicle_pose_composes_lidar_to_novatel_and_novatel_to_world(tmp_path):
    # lidar->novatel: yaw 90 deg, t = (1, 0, 0); novatel->world: yaw 30 deg, t = (100, 50, 2)
    # lidar->world: yaw 120 deg, t = Rz(30) (1, 0, 0) + (100, 50, 2) = (100 + cos 30, 50 + sin 30, 2)
    tx, ty = 100 + math.cos(math.radians(30)), 50 + math.sin(math.radians(30))
    # an object 10 m ahead of the vehicle LiDAR, heading 15 deg left of it: world centre t + Rz(120) (10, 0, 0)
    wx, wy = tx + 10 * math.cos(math.radians(120)), ty + 10 * math.sin(math.radians(120))
    car = _car(wx, wy, 2.0 - 1.0, 4.0, 2.0, 1.5, math.radians(135))
    root = _layout(tmp_path, [car], l2n=_calib(90, (1, 0, 0)), n2w=_calib(30, (100, 50, 2)))
    sample = DAIRV2XScenes(root, "train")[0]
    np.testing.assert_allclose(sample["poses_clean"][0], [tx, ty, 2, 0, 120, 0], atol=1e-9)
    np.testing.assert_allclose(sample["gt_boxes"][0], [10, 0, -1, 4, 2, 1.5, math.radians(15)], atol=1e-4)


def test_infrastructure_pose_gets_the_system_error_offset(tmp_path):
    root = _layout(tmp_path, [], inf=_calib(-90, (20.0, 10.0, 5.0)), offset=(0.5, -0.25))
    dataset = DAIRV2XScenes(root, "train")
    sample = dataset[0]
    np.testing.assert_allclose(sample["poses_clean"][1], [20.5, 9.75, 5, 0, -90, 0], atol=1e-9)
    np.testing.assert_array_equal(sample["poses"], sample["poses_clean"])
    assert sample["agent_ids"] == [0, -1] and sample["infrastructure"].tolist() == [False, True]
    assert sample["delays"].tolist() == [0, 0] and sample["gt_boxes"].shape == (0, 7)
    np.testing.assert_allclose(sample["points"][0], [[1, 2, 3, 0.5], [4, 5, 6, 0.25]])
    np.testing.assert_allclose(sample["points"][1], [[-1, -2, -3, 0.75]])
    assert all(p.dtype == np.float32 for p in sample["points"])
    matrices = dataset.lidar_to_world(0)
    np.testing.assert_allclose(matrices[1][:3, 3], [20.5, 9.75, 5.0])


def test_comm_range_drops_a_far_infrastructure(tmp_path):
    root = _layout(tmp_path, [], inf=_calib(0, (30.0, 40.0, 5.0)))  # 50 m away
    assert len(DAIRV2XScenes(root, "train", comm_range=50.0)[0]["points"]) == 2
    sample = DAIRV2XScenes(root, "train", comm_range=49.9)[0]
    assert sample["agent_ids"] == [0] and sample["poses"].shape == (1, 6) and len(sample["points"]) == 1
    assert sample["infrastructure"].tolist() == [False] and sample["delays"].shape == (1,)


def test_vehicle_classes_zero_sizes_and_range(tmp_path):
    labels = [
        _car(5, 0, 0, kind="Pedestrian"),
        _car(6, 0, 0, kind="car"),  # case-insensitive, as DAIR-V2X's name2id lower-cases
        _car(7, 0, 0, kind="Truck"),
        _car(8, 0, 0, kind="Cyclist"),
        _car(9, 0, 0, kind="Bus"),
        _car(10, 0, 0, kind="Van", width=0.0),  # zero size: skipped
        _car(150, 0, 0, kind="Van"),  # outside x range
        _car(20, -39.5, 0, kind="Van"),  # inside y range
    ]
    sample = DAIRV2XScenes(_layout(tmp_path, labels), "train")[0]
    assert sample["object_ids"].tolist() == [1, 2, 4, 7]
    np.testing.assert_allclose(sample["gt_boxes"][:, 0], [6, 7, 9, 20], atol=1e-5)
    narrow = DAIRV2XScenes(tmp_path, "train", point_cloud_range=(-10, -10, -3, 8, 10, 1))[0]
    assert narrow["object_ids"].tolist() == [1, 2]


def test_corners_to_boxes_matches_closed_form_in_both_corner_orders():
    dair = np.array(_corners(1.0, 2.0, 3.0, 4.0, 2.0, 1.0, 3.1))  # near +pi: averaging angles would break here
    opencood = dair[[1, 0, 3, 2, 5, 4, 7, 6]]  # OpenCOOD: bottom (+l,-w) (+l,+w) (-l,+w) (-l,-w)
    for corners in (dair, opencood):
        np.testing.assert_allclose(corners_to_boxes(corners[None])[0], [1, 2, 3, 4, 2, 1, 3.1], atol=1e-12)
    flipped = np.array(_corners(0.0, 0.0, 0.0, 4.0, 2.0, 1.0, -3.1))
    assert corners_to_boxes(flipped[None])[0, 6] == pytest.approx(-3.1)


def _noise_stub():
    class Jitter:
        def apply(self, poses, rng):
            out = np.array(poses, dtype=np.float64)
            out[:, [0, 1, 4]] += rng.normal(0.0, 1.0, (len(out), 3))
            return out

    return Jitter()


def test_noise_is_reproducible_per_item_and_keeps_clean_poses(tmp_path):
    root = write_sample_dataset(tmp_path / "dair", frames=3, seed=1)
    clean = DAIRV2XScenes(root, None)
    noisy = DAIRV2XScenes(root, None, noise=_noise_stub(), seed=7)
    deltas = []
    for i in range(3):
        a, b = noisy[i], noisy[i]
        np.testing.assert_array_equal(a["poses"], b["poses"])
        np.testing.assert_array_equal(a["poses_clean"], clean[i]["poses_clean"])
        np.testing.assert_array_equal(a["gt_boxes"], clean[i]["gt_boxes"])  # GT never uses the noisy poses
        delta = a["poses"] - a["poses_clean"]
        assert np.all(np.abs(delta[:, [0, 1, 4]]) > 0) and np.all(delta[:, [2, 3, 5]] == 0)
        deltas.append(delta)
    assert not np.allclose(deltas[0], deltas[1])
    other_seed = DAIRV2XScenes(root, None, noise=_noise_stub(), seed=8)[0]
    assert not np.allclose(other_seed["poses"], noisy[0]["poses"])


def test_noise_module_pose_noise(tmp_path):
    noise = pytest.importorskip("diffusekit.perception3d.noise")
    root = write_sample_dataset(tmp_path / "dair", frames=2, seed=1)
    sample = DAIRV2XScenes(root, None, noise=noise.PoseNoise(0.4, 0.4), seed=3)[1]
    delta = sample["poses"] - sample["poses_clean"]
    assert np.any(delta != 0) and np.all(delta[:, [2, 3, 5]] == 0)


def _inside(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    d = points[:, :3] - box[:3]
    c, s = math.cos(box[6]), math.sin(box[6])
    local = np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1], d[:, 2]], axis=1)
    return np.all(np.abs(local) <= box[3:6] / 2 + 1e-3, axis=1)


def test_sample_dataset_is_consistent_across_agents(tmp_path):
    """Both agents' object points, moved into the ego frame with the offset-corrected poses, fall inside the GT
    boxes: the writer, the pose composition and the box projection agree."""
    root = write_sample_dataset(tmp_path / "dair", frames=3, seed=0)
    dataset = DAIRV2XScenes(root, None)
    assert len(dataset) == 3 and len(DAIRV2XScenes(root, "train")) == 2 and len(DAIRV2XScenes(root, "val")) == 1
    for i in range(3):
        sample = dataset[i]
        assert sample["scenario"] == "0" and len(sample["gt_boxes"]) == 4  # the pedestrian is dropped
        assert sample["object_ids"].tolist() == [0, 1, 2, 3]
        matrices = np.linalg.inv(dataset.lidar_to_world(i)[0]) @ dataset.lidar_to_world(i)
        for agent, points in enumerate(sample["points"]):
            ego = points[:, :3].astype(np.float64) @ matrices[agent][:3, :3].T + matrices[agent][:3, 3]
            counts = [int(_inside(ego, box).sum()) for box in sample["gt_boxes"].astype(np.float64)]
            assert all(n >= 150 for n in counts), (i, agent, counts)
    infos = dairv2x_frames(root)
    assert [f.vehicle_id for f in infos] == ["000010", "000011", "000012"]
    assert all(f.system_error_offset != (0.0, 0.0) for f in infos)


def test_splits_coalign_list_dair_dict_and_none(tmp_path):
    root = write_sample_dataset(tmp_path / "dair", frames=3, seed=0)
    dair_split = tmp_path / "cooperative-split-data.json"
    _write(dair_split, {"cooperative_split": {"train": ["000012", "000010"], "val": [], "test": []}})
    assert [s["frame"] for s in DAIRV2XScenes(root, "train", split_file=dair_split)] == ["000012", "000010"]
    assert [f.vehicle_id for f in DAIRV2XScenes(root, "val").frames] == ["000012"]
    built = DATASETS.build(dict(type="DAIRV2XScenes", root=str(root), split="train"))
    assert len(built) == 2
    with pytest.raises(IndexError):
        built[2]


@pytest.mark.parametrize(
    "case",
    [
        "no_data_info",
        "data_info_not_list",
        "data_info_bad_json",
        "entry_without_pcd",
        "bad_offset",
        "missing_vehicle_pcd",
        "missing_infrastructure_pcd",
        "missing_lidar_to_novatel",
        "missing_novatel_to_world",
        "missing_virtuallidar_to_world",
        "calib_without_rotation",
        "calib_rotation_2x3",
        "calib_translation_size",
        "calib_nan",
        "missing_label",
        "label_not_list",
        "label_without_type",
        "label_without_geometry",
        "label_without_z",
        "label_bad_world_points",
        "split_missing",
        "split_unknown_id",
        "split_not_list",
    ],
)
def test_bad_input_is_a_data_error_naming_the_file(tmp_path, case):
    root = _layout(tmp_path, [_car(5, 0, 0)])
    info_path = root / "cooperative/data_info.json"
    info = json.loads(info_path.read_text())
    veh_calib = root / "vehicle-side/calib"
    inf_calib = root / "infrastructure-side/calib/virtuallidar_to_world/000500.json"
    label = root / "cooperative/label_world/000010.json"
    split = None
    if case == "no_data_info":
        info_path.unlink()
        culprit = info_path
    elif case == "data_info_not_list":
        _write(info_path, {"frames": info})
        culprit = info_path
    elif case == "data_info_bad_json":
        info_path.write_text("[{")
        culprit = info_path
    elif case == "entry_without_pcd":
        del info[0]["vehicle_pointcloud_path"]
        _write(info_path, info)
        culprit = info_path
    elif case == "bad_offset":
        info[0]["system_error_offset"] = {"delta_x": 1.0}
        _write(info_path, info)
        culprit = info_path
    elif case == "missing_vehicle_pcd":
        culprit = root / "vehicle-side/velodyne/000010.pcd"
        culprit.unlink()
    elif case == "missing_infrastructure_pcd":
        culprit = root / "infrastructure-side/velodyne/000500.pcd"
        culprit.unlink()
    elif case == "missing_lidar_to_novatel":
        culprit = veh_calib / "lidar_to_novatel/000010.json"
        culprit.unlink()
    elif case == "missing_novatel_to_world":
        culprit = veh_calib / "novatel_to_world/000010.json"
        culprit.unlink()
    elif case == "missing_virtuallidar_to_world":
        culprit = inf_calib
        culprit.unlink()
    elif case == "calib_without_rotation":
        culprit = veh_calib / "novatel_to_world/000010.json"
        _write(culprit, {"translation": [[0], [0], [0]]})
    elif case == "calib_rotation_2x3":
        culprit = inf_calib
        _write(culprit, {"rotation": [[1, 0, 0], [0, 1, 0]], "translation": [[0], [0], [0]]})
    elif case == "calib_translation_size":
        culprit = veh_calib / "lidar_to_novatel/000010.json"
        _write(culprit, {"transform": {"rotation": _rz(0), "translation": [[0], [0]]}})
    elif case == "calib_nan":
        culprit = inf_calib
        culprit.write_text('{"rotation": [[1, 0, 0], [0, 1, 0], [0, 0, 1]], "translation": [[NaN], [0], [0]]}')
    elif case == "missing_label":
        culprit = label
        culprit.unlink()
    elif case == "label_not_list":
        culprit = label
        _write(culprit, {"objects": []})
    elif case == "label_without_type":
        culprit = label
        obj = _car(5, 0, 0)
        del obj["type"]
        _write(culprit, [obj])
    elif case == "label_without_geometry":
        culprit = label
        _write(culprit, [{"type": "Car", "rotation": 0.0}])
    elif case == "label_without_z":
        culprit = label
        obj = _car(5, 0, 0)
        del obj["world_8_points"], obj["3d_location"]["z"]
        _write(culprit, [obj])
    elif case == "label_bad_world_points":
        culprit = label
        obj = _car(5, 0, 0)
        obj["world_8_points"] = obj["world_8_points"][:7]
        _write(culprit, [obj])
    elif case == "split_missing":
        culprit = root / "val.json"
        split = "val"
    elif case == "split_unknown_id":
        culprit = root / "train.json"
        _write(culprit, ["000010", "999999"])
    else:
        culprit = root / "train.json"
        _write(culprit, {"train": "000010"})
    with pytest.raises(DataError) as error:
        DAIRV2XScenes(root, split or "train")[0]
    assert error.value.path == culprit
    assert str(culprit) in str(error.value)


def test_write_sample_dataset_rejects_no_frames(tmp_path):
    with pytest.raises(ValueError):
        write_sample_dataset(tmp_path, frames=0)
