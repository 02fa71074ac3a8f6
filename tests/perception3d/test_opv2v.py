"""OPV2V/V2XSet reader on hand-written scenarios: agent selection (comm range, max_cav, infrastructure, ego choice),
ground-truth boxes against hand-computed values, delay, noise, yaml quirks, and every bad input as a DataError."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from diffusekit.core.errors import DataError
from diffusekit.perception3d.noise import Delay, PoseNoise
from diffusekit.perception3d.opv2v import (
    CooperativeScenes,
    list_scenarios,
    load_yaml,
    read_frame_params,
)
from diffusekit.perception3d.pcd import write_pcd

STEMS = ("00068", "00070", "00072")


def _vehicle(location, yaw, center, extent):
    return {"location": list(location), "center": list(center), "angle": [0.0, float(yaw), 0.0], "extent": list(extent)}


def _objects(k: int) -> dict[int, dict[int, dict]]:
    """The vehicles each agent's yaml lists at frame k (world frame)."""
    o7001 = _vehicle([100.0 + k, 60, 0], 90, [0.5, 0, 0.8], [2.25, 1.0, 0.8])  # 10 m ahead of the ego
    o7002 = _vehicle([95.0 + 2 * k, 70, 0], 0, [0, 0, 0.7], [2.0, 1.0, 0.75])  # moves faster than the ego
    ego_car = _vehicle([100.0 + k, 50, 0], 90, [0, 0, 0.9], [2.4, 1.05, 0.9])
    return {
        641: {7001: o7001},
        650: {7001: o7001, 7002: o7002, 641: ego_car},
        -1: {7003: _vehicle([150.0 + k, 50, 0], 0, [0, 0, 0.8], [2, 1, 0.8]),  # 50 m to the right: outside y +-40
             7005: _vehicle([110.0 + k, 45, 0], 180, [0, 0, 0.8], [2, 1, 0.8])},
        659: {7006: _vehicle([100.0 + k, 20, 0], 90, [0, 0, 0.8], [2, 1, 0.8])},
        9999: {7004: _vehicle([100.0 + k, 80, 0], 90, [0, 0, 0.8], [2, 1, 0.8])},
    }  # fmt: skip


def _pose(agent: int, k: int) -> list[float]:
    return {
        641: [100.0 + k, 50, 1.9, 0, 90, 0],  # the ego, facing world +y
        650: [100.0 + k, 70, 1.9, 0, 90, 0],  # 20 m
        -1: [130.0, 50, 5.0, 0, 0, 0],  # infrastructure, 30 - k m
        659: [100.0 + k, 10, 1.9, 0, 90, 0],  # 40 m
        9999: [100.0 + k, 130, 1.9, 0, 90, 0],  # 80 m: beyond comm range
    }[agent]


def _cloud(agent: int, k: int) -> np.ndarray:
    rng = np.random.default_rng(abs(agent) * 10 + k)
    points = np.column_stack([rng.normal(size=(5, 3)) * 10, rng.integers(0, 256, 5) / 255]).astype(np.float32)
    points[0, :2] = agent, k  # which agent and frame the cloud came from
    return points


def _write_frame(folder: Path, stem: str, pose, vehicles, points, data: str = "binary") -> None:
    write_pcd(folder / f"{stem}.pcd", points, data=data)
    (folder / f"{stem}.yaml").write_text(yaml.safe_dump({"lidar_pose": pose, "vehicles": vehicles, "ego_speed": 1e-05}))


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("opv2v")
    scene = root / "test" / "2021_08_23_15_19_19"
    for agent in (641, 650, -1, 659, 9999):
        for k, stem in enumerate(STEMS):
            if agent == 659 and k == 0:
                continue  # joins the scenario one frame late
            data = ("binary", "ascii", "binary_compressed")[k]
            _write_frame(scene / str(agent), stem, _pose(agent, k), _objects(k)[agent], _cloud(agent, k), data)
        (scene / str(agent) / f"{STEMS[0]}_camera0.png").write_bytes(b"ignored")
    (scene / "data_protocol.yaml").write_text("world:\n  seed: 25\n")
    # a second split: 6- and 5-digit stems mixed, ids whose string order differs from their numerical order
    other = root / "validate" / "b_scene"
    for agent, pose in ((1006, [0.0, 0, 1.9, 0, -90, 0]), (988, [0.0, -30, 1.9, 0, 0, 0])):
        for stem in ("100000", "99998"):
            _write_frame(other / str(agent), stem, pose, {}, _cloud(agent, int(stem)))
    return root


def _box(x, y, z, l, w, h, yaw):
    return [x, y, z, l, w, h, yaw]


def test_list_scenarios(root):
    (scene,) = list_scenarios(root, "test")
    assert scene.name == "2021_08_23_15_19_19" and scene.protocol == {"world": {"seed": 25}}
    assert [a.agent_id for a in scene.agents] == [641, 650, 659, 9999, -1]  # infrastructure last
    assert scene.frames == STEMS and scene.agents[2].stems == STEMS[1:]
    assert [a.infrastructure for a in scene.agents] == [False] * 4 + [True]
    (other,) = list_scenarios(root, "validate")
    # OpenCOOD's sorted(os.listdir): "1006" < "988"; frames in numerical order
    assert [a.agent_id for a in other.agents] == [1006, 988]
    assert other.frames == ("99998", "100000") and other.protocol is None


def test_sample_agents_and_ground_truth(root):
    scenes = CooperativeScenes(root, "test")
    assert len(scenes) == 3
    sample = scenes[0]
    assert sample["scenario"] == "2021_08_23_15_19_19" and sample["frame"] == "00068" and sample["ego_id"] == 641
    # nearest first within 70 m: 650 (20 m), infrastructure (30 m); 659 has no frame 00068; 9999 is 80 m away
    assert sample["agent_ids"] == [641, 650, -1]
    np.testing.assert_array_equal(sample["infrastructure"], [False, False, True])
    for agent, points in zip(sample["agent_ids"], sample["points"]):
        assert points.dtype == np.float32 and points.shape == (5, 4)
        np.testing.assert_array_equal(points, _cloud(agent, 0))
    np.testing.assert_array_equal(sample["poses_clean"], [_pose(a, 0) for a in (641, 650, -1)])
    np.testing.assert_array_equal(sample["poses"], sample["poses_clean"])
    assert sample["poses"].dtype == np.float64 and sample["poses"].shape == (3, 6)
    np.testing.assert_array_equal(sample["delays"], [0, 0, 0])
    # ego at (100, 50) facing world +y: world +y is ego +x, world -x is ego +y; z relative to the 1.9 m sensor
    assert sample["object_ids"].dtype == np.int64 and sample["gt_boxes"].dtype == np.float32
    np.testing.assert_array_equal(sample["object_ids"], [641, 7001, 7002, 7005])  # 7003 outside y, 7004 not shared
    expected = [
        _box(0, 0, -1.0, 4.8, 2.1, 1.8, 0),  # the ego car as 650 lists it
        _box(10, -0.5, -1.1, 4.5, 2.0, 1.6, 0),  # 10 m ahead; OpenCOOD adds the 0.5 m offset along WORLD +x (ego -y)
        _box(20, 5, -1.2, 4.0, 2.0, 1.5, -np.pi / 2),  # 20 m ahead, 5 m left, heading world +x
        _box(-5, -10, -1.1, 4.0, 2.0, 1.6, np.pi / 2),  # seen by the infrastructure, heading world -x
    ]
    np.testing.assert_allclose(sample["gt_boxes"], expected, atol=1e-5)


def test_later_frame_includes_late_agent(root):
    sample = CooperativeScenes(root, "test")[1]
    assert sample["frame"] == "00070"
    assert sample["agent_ids"] == [641, 650, -1, 659]  # -1 now 29 m away
    np.testing.assert_array_equal(sample["object_ids"], [641, 7001, 7002, 7005, 7006])
    np.testing.assert_allclose(sample["gt_boxes"][1], _box(10, -0.5, -1.1, 4.5, 2, 1.6, 0), atol=1e-5)
    np.testing.assert_allclose(sample["gt_boxes"][2], _box(20, 4, -1.2, 4, 2, 1.5, -np.pi / 2), atol=1e-5)
    np.testing.assert_allclose(sample["gt_boxes"][4], _box(-30, 0, -1.1, 4, 2, 1.6, 0), atol=1e-5)


def test_comm_range_and_max_cav(root):
    assert CooperativeScenes(root, "test", max_cav=2)[1]["agent_ids"] == [641, 650]
    solo = CooperativeScenes(root, "test", max_cav=1)[1]
    assert solo["agent_ids"] == [641] and len(solo["points"]) == 1 and solo["poses"].shape == (1, 6)
    np.testing.assert_array_equal(solo["object_ids"], [7001])  # only what the ego's yaml lists
    near = CooperativeScenes(root, "test", comm_range=25.0)[1]
    assert near["agent_ids"] == [641, 650]
    np.testing.assert_array_equal(near["object_ids"], [641, 7001, 7002])
    far = CooperativeScenes(root, "test", comm_range=100.0, max_cav=7)[1]
    assert far["agent_ids"] == [641, 650, -1, 659, 9999]
    assert 7004 in far["object_ids"]
    narrow = CooperativeScenes(root, "test", point_cloud_range=(-15, -15, -3, 15, 15, 1))[0]
    np.testing.assert_array_equal(narrow["object_ids"], [641, 7001, 7005])


def test_delay_uses_older_points_and_poses_but_current_ground_truth(root):
    plain = CooperativeScenes(root, "test")
    lagged = CooperativeScenes(root, "test", delay=Delay("frames", num_frames=1))
    sample = lagged[2]
    assert sample["agent_ids"] == [641, 650, -1, 659]
    np.testing.assert_array_equal(sample["delays"], [0, 1, 1, 1])
    frames_used = [int(p[0, 1]) for p in sample["points"]]
    assert frames_used == [2, 1, 1, 1]
    np.testing.assert_array_equal(sample["poses_clean"][1], _pose(650, 1))
    np.testing.assert_array_equal(sample["poses_clean"][0], _pose(641, 2))
    np.testing.assert_array_equal(sample["gt_boxes"], plain[2]["gt_boxes"])  # ground truth of frame 2
    np.testing.assert_allclose(sample["gt_boxes"][2, :2], [20, 3], atol=1e-5)
    # clamped to each agent's first frame: 659's first frame is 00070
    late = CooperativeScenes(root, "test", delay=Delay("frames", num_frames=2))[2]
    np.testing.assert_array_equal(late["delays"], [0, 2, 2, 1])
    assert [int(p[0, 1]) for p in late["points"]] == [2, 0, 0, 1]
    first = lagged[0]
    np.testing.assert_array_equal(first["delays"], [0, 0, 0])


def test_noise_keeps_clean_poses_and_is_reproducible(root):
    noisy = CooperativeScenes(root, "test", noise=PoseNoise(0.5, 0.5), seed=7)
    sample = noisy[1]
    clean = np.array([_pose(a, 1) for a in sample["agent_ids"]])
    np.testing.assert_array_equal(sample["poses_clean"], clean)
    changed = sample["poses"] - clean
    assert np.all(changed[:, [0, 1, 4]] != 0) and np.all(changed[:, [2, 3, 5]] == 0)
    np.testing.assert_array_equal(sample["gt_boxes"], CooperativeScenes(root, "test")[1]["gt_boxes"])
    again = CooperativeScenes(root, "test", noise=PoseNoise(0.5, 0.5), seed=7)[1]
    np.testing.assert_array_equal(again["poses"], sample["poses"])
    np.testing.assert_array_equal(noisy[1]["poses"], sample["poses"])
    other_item = noisy[0]["poses"] - np.array([_pose(a, 0) for a in noisy[0]["agent_ids"]])
    assert not np.allclose(other_item[:2], changed[:2])
    other_seed = CooperativeScenes(root, "test", noise=PoseNoise(0.5, 0.5), seed=8)[1]
    assert not np.allclose(other_seed["poses"], sample["poses"])
    ego_clean = CooperativeScenes(root, "test", noise=PoseNoise(0.5, 0.5, ego=False))[1]
    np.testing.assert_array_equal(ego_clean["poses"][0], clean[0])


def test_split_selection_limits_and_indexing(root):
    other = CooperativeScenes(root, "validate")
    assert len(other) == 2 and [other[i]["frame"] for i in range(2)] == ["99998", "100000"]
    assert other[0]["ego_id"] == 1006 and other[0]["agent_ids"] == [1006, 988]
    np.testing.assert_array_equal(other[-1]["points"][0], _cloud(1006, 100000))
    assert other[0]["gt_boxes"].shape == (0, 7) and other[0]["object_ids"].shape == (0,)
    with pytest.raises(IndexError):
        other[2]
    assert len(CooperativeScenes(root, "test", max_frames=2)) == 2
    assert len(CooperativeScenes(root, "test", scenario="2021_08_23_15_19_19")) == 3
    for bad in (dict(max_cav=0), dict(comm_range=0), dict(max_frames=0), dict(point_cloud_range=(1, 2))):
        with pytest.raises(ValueError):
            CooperativeScenes(root, "test", **bad)


def test_yaml_quirks_and_cache(tmp_path):
    path = tmp_path / "00001.yaml"
    path.write_text(
        "lidar_pose: [1e-05, -2.5E+1, 1.9, 0, 7e2, 0.5]\n"
        "ego_speed: 3e-3\n"
        "vehicles:\n  12:\n    location: [1, 2, 3]\n    center: [0, 0, 0.5]\n    angle: [0, 1e1, 0]\n"
        "    extent: !!python/tuple [2.0, 1.0, 0.75]\n"
    )
    data = load_yaml(path)
    assert data["ego_speed"] == pytest.approx(0.003) and isinstance(data["lidar_pose"][0], float)
    assert yaml.safe_load(path.read_text().split("\nvehicles")[0])["ego_speed"] == "3e-3"  # PyYAML's own reading
    params = read_frame_params(path)
    np.testing.assert_array_equal(params.lidar_pose, [1e-05, -25, 1.9, 0, 700, 0.5])
    np.testing.assert_array_equal(params.object_ids, [12])
    np.testing.assert_array_equal(params.extent, [[2.0, 1.0, 0.75]])
    np.testing.assert_array_equal(params.angle, [[0, 10, 0]])
    assert read_frame_params(path) is params  # cached
    with pytest.raises(ValueError):
        params.lidar_pose[0] = 5.0  # the cached arrays are read-only
    path.write_text("lidar_pose: [1, 2, 3, 4, 5, 6.5]\n")
    np.testing.assert_array_equal(read_frame_params(path).lidar_pose, [1, 2, 3, 4, 5, 6.5])  # re-read on change
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("x: !!python/object/apply:os.system ['echo hacked']\n")
    assert load_yaml(tagged) == {"x": ["echo hacked"]}  # read as data, never executed


# ----------------------------------------------------------------------------------------------- bad input
def _minimal(root: Path) -> Path:
    """ROOT/train/s1/5/00001.{pcd,yaml}: one valid agent; returns the agent folder."""
    agent = root / "train" / "s1" / "5"
    _write_frame(agent, "00001", [0.0, 0, 1.9, 0, 0, 0], {}, _cloud(5, 1))
    return agent


def _yaml(text: str):
    def mutate(agent: Path) -> Path:
        (agent / "00001.yaml").write_text(text)
        return agent / "00001.yaml"

    return mutate


def _remove(name: str):
    def mutate(agent: Path) -> Path:
        (agent / name).unlink()
        return agent / ("00001.pcd" if name.endswith("yaml") else "00001.yaml")

    return mutate


def _empty_agent(agent: Path) -> Path:
    (agent.parent / "6").mkdir()
    (agent.parent / "6" / "00001_camera0.png").write_bytes(b"png")
    return agent.parent / "6"


def _no_agents(agent: Path) -> Path:
    folder = agent.parent.parent / "s2"
    (folder / "notes").mkdir(parents=True)
    return folder


def _bad_protocol(agent: Path) -> Path:
    (agent.parent / "data_protocol.yaml").write_text("world: [1, 2\n")
    return agent.parent / "data_protocol.yaml"


def _binary_yaml(agent: Path) -> Path:
    (agent / "00001.yaml").write_bytes(b"\xff\xfe\x00garbage")
    return agent / "00001.yaml"


BAD = {
    "pcd without yaml": (_remove("00001.yaml"), "without its 00001.yaml"),
    "yaml without pcd": (_remove("00001.pcd"), "without its 00001.pcd"),
    "agent folder without frames": (_empty_agent, "no frames"),
    "scenario without agents": (_no_agents, "no agent folders"),
    "unreadable data protocol": (_bad_protocol, "unreadable yaml"),
    "no lidar_pose": (_yaml("vehicles: {}\n"), "no lidar_pose"),
    "short lidar_pose": (_yaml("lidar_pose: [1, 2, 3]\n"), "lidar_pose"),
    "text lidar_pose": (_yaml("lidar_pose: [a, b, c, d, e, f]\n"), "lidar_pose"),
    "nan lidar_pose": (_yaml("lidar_pose: [.nan, 0, 0, 0, 0, 0]\n"), "NaN"),
    "yaml syntax error": (_yaml("lidar_pose: [1, 2\n"), "unreadable yaml"),
    "yaml not a mapping": (_yaml("- 1\n- 2\n"), "mapping"),
    "yaml not utf8": (_binary_yaml, "not UTF-8"),
    "vehicle without extent": (
        _yaml(
            "lidar_pose: [0, 0, 0, 0, 0, 0]\nvehicles: {3: {location: [0, 0, 0], center: [0, 0, 0], angle: [0, 0, 0]}}"
        ),
        "extent",
    ),
    "vehicle nan": (
        _yaml(
            "lidar_pose: [0, 0, 0, 0, 0, 0]\nvehicles: {3: {location: [0, .nan, 0], center: [0, 0, 0], "
            "angle: [0, 0, 0], extent: [1, 1, 1]}}"
        ),
        "NaN",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_data_error_naming_the_file(tmp_path, case):
    mutate, reason = BAD[case]
    agent = _minimal(tmp_path)
    culprit = mutate(agent)
    with pytest.raises(DataError) as info:
        CooperativeScenes(tmp_path, "train")[0]
    assert str(culprit) in str(info.value), str(info.value)
    assert reason in str(info.value), str(info.value)


def test_missing_root_split_and_scenario(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        CooperativeScenes(tmp_path / "absent", "train")
    assert str(tmp_path / "absent") in str(info.value)
    _minimal(tmp_path)
    with pytest.raises(DataError, match="split folder 'test' not found") as info:
        list_scenarios(tmp_path, "test")
    assert str(tmp_path / "test") in str(info.value) and "train" in str(info.value)
    with pytest.raises(DataError, match="scenario folder not found"):
        list_scenarios(tmp_path, "train", scenario="s9")
    (tmp_path / "validate").mkdir()
    with pytest.raises(DataError, match="no scenario folders") as info:
        list_scenarios(tmp_path, "validate")
    assert str(tmp_path / "validate") in str(info.value)
    shutil.rmtree(tmp_path / "train" / "s1" / "5")
    with pytest.raises(DataError, match="no agent folders"):
        list_scenarios(tmp_path, "train")
