"""The synthetic OPV2V writer: the exact layout, yaml content, ray casting against closed forms, LiDAR points inside
the annotated boxes (and only there), occlusion that makes collaboration matter, the reader reading it back,
determinism, and overwrite refusal."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from diffusekit.core.errors import DataError
from diffusekit.perception3d.boxes import bev_iou
from diffusekit.perception3d.geometry import pose_to_matrix, relative_transform, transform_points
from diffusekit.perception3d.lidar import INFRA_LIDAR, VEHICLE_LIDAR, LidarSpec, cast_rays, scan
from diffusekit.perception3d.opv2v import CooperativeScenes
from diffusekit.perception3d.pcd import read_pcd
from diffusekit.perception3d.scene import AGENT_SPREAD, VEHICLE_KINDS, make_scene
from diffusekit.perception3d.synthetic import write_dataset, write_scenario

SPLITS = ("train", "validate", "test")
NOISE = 0.1  # five times the range noise (m)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    start = time.perf_counter()
    root = write_dataset(tmp_path_factory.mktemp("opv2v") / "data", "small", seed=0)
    return root, time.perf_counter() - start


def _scenarios(root: Path) -> list[Path]:
    return sorted(p for split in SPLITS for p in (root / split).iterdir())


def _agents(scenario: Path) -> list[Path]:
    return sorted(p for p in scenario.iterdir() if p.is_dir())


def _load(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _world_boxes(vehicles: dict) -> tuple[np.ndarray, np.ndarray]:
    """(M, 7) world boxes and ids from a yaml ``vehicles`` map (location + center, 2 * extent, yaw)."""
    ids = np.array(sorted(vehicles), dtype=np.int64)
    rows = [
        [*(np.add(vehicles[i]["location"], vehicles[i]["center"])), *(2 * np.array(vehicles[i]["extent"]))]
        + [math.radians(vehicles[i]["angle"][1])]
        for i in ids
    ]
    return np.array(rows, dtype=np.float64).reshape(-1, 7), ids


def _world_points(pcd: Path, lidar_pose) -> np.ndarray:
    """A .pcd's points moved from its LiDAR frame into the world with the yaml's ``lidar_pose``."""
    return transform_points(read_pcd(pcd), pose_to_matrix(lidar_pose))


def _inside(points: np.ndarray, boxes: np.ndarray, margin: float, bottom: float = 0.0) -> np.ndarray:
    """How many of ``points`` (N, >=3) lie in each box (M, 7), grown by ``margin`` (shrunk when negative), the
    bottom face raised by ``bottom``."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    rel = points[None, :, :3].astype(np.float64) - boxes[:, None, :3]
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x, y = c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1]
    half = boxes[:, None, 3:6] / 2
    inside = (np.abs(x) <= half[..., 0] + margin) & (np.abs(y) <= half[..., 1] + margin)
    inside &= (rel[..., 2] <= half[..., 2] + margin) & (rel[..., 2] >= -half[..., 2] + bottom)
    return inside.sum(axis=1)


def test_layout_is_opv2v(small):
    root, seconds = small
    assert seconds < 20
    assert sorted(p.name for p in root.iterdir()) == ["synthetic.json", "test", "train", "validate"]
    scenarios = _scenarios(root)
    assert [len(list((root / s).iterdir())) for s in SPLITS] == [2, 1, 1]
    digits, kinds, ids = set(), set(), set()
    for scenario in scenarios:
        assert re.fullmatch(r"20\d\d_\d\d_\d\d_\d\d_\d\d_\d\d", scenario.name)
        entries = sorted(p.name for p in scenario.iterdir())
        assert "data_protocol.yaml" in entries
        protocol = _load(scenario / "data_protocol.yaml")
        assert protocol["fps"] == 10 and protocol["sensors"]["lidar"]["channels"] == 32
        agents = _agents(scenario)
        assert len(agents) == len(entries) - 1
        names = [int(a.name) for a in agents]
        assert 2 <= sum(n > 0 for n in names) <= 4 and all(n > 0 or n == -1 for n in names)
        ids |= set(names)
        stems = None
        for agent in agents:
            files = sorted(p.name for p in agent.iterdir())
            pcd = [f[:-4] for f in files if f.endswith(".pcd")]
            assert [f"{s}.pcd" for s in pcd] + [f"{s}.yaml" for s in pcd] == sorted(files, key=lambda f: f[-4:])
            stems = stems or pcd
            assert pcd == stems  # every agent records every frame
            for stem in pcd:
                header = (agent / f"{stem}.pcd").read_bytes()[:400].decode("ascii", "replace")
                assert "FIELDS x y z rgb" in header
                kinds.add(re.search(r"DATA (\w+)", header).group(1))
        numbers = [int(s) for s in stems]
        assert numbers[0] > 0 and np.all(np.diff(numbers) == 2) and len(numbers) == 6
        assert len({len(s) for s in stems}) == 1
        digits.add(len(stems[0]))
    assert digits == {5, 6} and kinds == {"binary", "binary_compressed"} and -1 in ids


def test_yaml_content(small):
    root, _ = small
    gps_errors, moved = [], []
    for scenario in _scenarios(root):
        for agent in _agents(scenario):
            docs = [_load(p) for p in sorted(agent.glob("*.yaml"))]
            ground = docs[0]["true_ego_pos"][2]
            for doc in docs:
                pose = doc["lidar_pose"]
                assert len(pose) == 6 and all(isinstance(v, float) for v in pose)
                assert pose[3] == pose[5] == 0.0  # flat ground: no roll, no pitch
                height = INFRA_LIDAR.height if int(agent.name) < 0 else VEHICLE_LIDAR.height
                assert pose[2] - ground == pytest.approx(height, abs=1e-5)
                assert int(agent.name) not in doc["vehicles"]  # an agent never lists itself
                for entry in doc["vehicles"].values():
                    assert sorted(entry) == ["angle", "center", "extent", "location", "speed"]
                    l, w, h = 2 * np.array(entry["extent"])
                    assert 3.8 <= l <= 5.5 and 1.7 <= w <= 2.2 and 1.4 <= h <= 2.2
                    assert entry["center"] == [0.0, 0.0, pytest.approx(h / 2, abs=1e-5)]
                    assert entry["location"][2] == ground and entry["angle"][0] == entry["angle"][2] == 0.0
            if int(agent.name) < 0:
                assert all(d["ego_speed"] == 0.0 and "plan_trajectory" not in d for d in docs)
                continue
            for a, b in zip(docs, docs[2:]):  # a delay of 2 frames moves a CAV 2-3.5 m
                step = np.hypot(*np.subtract(b["true_ego_pos"][:2], a["true_ego_pos"][:2]))
                assert step == pytest.approx(0.2 * a["ego_speed"] / 3.6, rel=1e-4)
                moved.append(step)
                heading = math.radians(a["true_ego_pos"][4])
                plan = np.array(a["plan_trajectory"])
                ahead = (plan[:, :2] - a["true_ego_pos"][:2]) @ [math.cos(heading), math.sin(heading)]
                assert np.all(np.diff(ahead) > 0) and ahead[0] > 0
            for d in docs:
                gps_errors.append(np.hypot(*np.subtract(d["predicted_ego_pos"][:2], d["true_ego_pos"][:2])))
    assert 1.6 <= min(moved) and max(moved) <= 3.6
    assert 0.3 < np.mean(gps_errors) < 1.5


def test_lidar_points_lie_in_the_boxes_of_the_listed_vehicles(small):
    """A vehicle is listed by an agent exactly when some of that agent's points fall inside its box (OPV2V's label
    rule), every point above the ground lies on a box or an unannotated occluder, and no point lies below the
    ground."""
    root, _ = small
    checked = 0
    for scenario in _scenarios(root)[:2]:
        agents = _agents(scenario)
        for stem in [p.stem for p in sorted(agents[0].glob("*.yaml"))][::2]:
            docs = {a.name: _load(a / f"{stem}.yaml") for a in agents}
            everyone = {k: v for d in docs.values() for k, v in d["vehicles"].items()}
            boxes, ids = _world_boxes(everyone)
            ground = boxes[0, 2] - boxes[0, 5] / 2
            for agent in agents:
                points = _world_points(agent / f"{stem}.pcd", docs[agent.name]["lidar_pose"])
                assert points[:, 2].min() > ground - NOISE
                listed = np.isin(ids, list(docs[agent.name]["vehicles"]))
                assert np.all(_inside(points, boxes[listed], NOISE, bottom=0.15) >= 1)
                above = points[points[:, 2] > ground + 0.15]
                assert np.all(_inside(above, boxes[~listed], -NOISE, bottom=0.15) == 0)
                checked += int(listed.sum())
    assert checked > 200


def test_ground_points_at_sensor_height(small):
    root, _ = small
    for scenario in _scenarios(root)[-1:]:
        for agent in _agents(scenario):
            z = read_pcd(sorted(agent.glob("*.pcd"))[0])[:, 2]
            height = INFRA_LIDAR.height if int(agent.name) < 0 else VEHICLE_LIDAR.height
            on_ground = np.abs(z + height) < NOISE
            assert on_ground.mean() > 0.3 and z.min() > -height - NOISE
            assert abs(np.median(z[on_ground]) + height) < 0.005


def test_reader_reads_it_back_and_collaboration_matters(small):
    """The OPV2V reader reads the dataset; ground-truth objects that the ego's LiDAR does not see but another
    agent's does are common, and every object is seen by some agent."""
    root, _ = small
    total = only_others = 0
    per_scenario = {}
    for split in SPLITS:
        scenes = CooperativeScenes(root, split)
        assert len(scenes) == 6 * len(list((root / split).iterdir()))
        for index in range(0, len(scenes), 2):
            sample = scenes[index]
            ego = root / split / sample["scenario"] / str(sample["ego_id"]) / f"{sample['frame']}.pcd"
            np.testing.assert_array_equal(sample["points"][0], read_pcd(ego))
            boxes = sample["gt_boxes"].astype(np.float64)
            assert len(boxes) >= 15
            by_ego = _inside(sample["points"][0], boxes, NOISE)
            by_others = sum(
                _inside(transform_points(p, relative_transform(pose, sample["poses_clean"][0])), boxes, NOISE)
                for p, pose in zip(sample["points"][1:], sample["poses_clean"][1:])
            )
            assert np.all(by_ego + by_others >= 1)
            itself = sample["object_ids"] == sample["ego_id"]  # other agents see the ego; it knows where it is
            hidden = int(((by_ego == 0) & (by_others >= 1) & ~itself).sum())
            total, only_others = total + len(boxes), only_others + hidden
            per_scenario[sample["scenario"]] = per_scenario.get(sample["scenario"], 0) + hidden
    assert only_others > 0.15 * total and min(per_scenario.values()) > 0 and len(per_scenario) == 4


def test_agents_stay_together_and_vehicles_never_overlap():
    for seed, road in ((1, "crossing"), (2, "straight"), (3, "crossing")):
        scene = make_scene(seed, frames=20, road=road, infrastructure=True)
        poses = np.array([[scene.pose(a, f)[:2] for a in scene.agents] for f in range(scene.frames)])
        gaps = np.linalg.norm(poses[:, :, None] - poses[:, None], axis=-1)
        assert gaps.max() <= AGENT_SPREAD and len(scene.agents) >= 3 and scene.agents[-1].id == -1
        for frame in (0, scene.frames - 1):
            boxes = scene.boxes(frame)
            overlap = bev_iou(boxes, boxes) - np.eye(len(boxes))
            assert np.abs(overlap).max() < 1e-9
            assert np.abs(bev_iou(boxes, scene.statics)).max() < 1e-9
        cars = [a.vehicle for a in scene.agents if not a.infrastructure]
        assert np.all(scene.speed[cars] > 8) and np.all(scene.kinds[cars] == 0)
        for kind, (_, ls, ws, hs) in enumerate(VEHICLE_KINDS.values()):
            size = scene.sizes[scene.kinds == kind]
            assert np.all((size >= [ls[0], ws[0], hs[0]]) & (size <= [ls[1], ws[1], hs[1]]))


def test_cast_rays_closed_forms():
    origin = np.array([0.0, 0.0, 2.0])
    e = math.radians(-10.0)
    rays = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [math.cos(e), 0.0, math.sin(e)], [0.0, 0.0, 1.0], [-1, 0, 0]])
    boxes = np.array(
        [
            [10.0, 0.0, 2.0, 4.0, 2.0, 1.5, 0.0],  # ahead: face at x = 8
            [20.0, 0.0, 2.0, 4.0, 2.0, 3.0, 0.0],  # behind the first: hidden
            [0.0, 6.0, 2.0, 4.0, 2.0, 1.5, math.pi / 2],  # to the left, turned: its length along y, face at y = 4
            [-5.0, 0.0, 2.0, 2.0, 2.0, 2.0, math.pi / 4],  # behind, turned 45 degrees: corner edge at x = -5 + sqrt(2)
        ]
    )
    distance, surface, cosine = cast_rays(origin, rays, boxes, ground_z=0.0, max_range=100.0)
    np.testing.assert_allclose(distance[[0, 1, 4]], [8.0, 4.0, 5 - math.sqrt(2)])
    assert list(surface) == [0, 2, -1, -2, 3]
    assert distance[2] == pytest.approx(2.0 / math.sin(-e)) and cosine[2] == pytest.approx(math.sin(-e))
    np.testing.assert_allclose(cosine[[0, 1]], 1.0)
    assert cosine[4] == pytest.approx(math.cos(math.pi / 4))
    # the first box removed, the second one is hit; out of range, nothing; from inside a box, that box is not hit
    assert cast_rays(origin, rays[:1], boxes[1:2])[0][0] == pytest.approx(18.0)
    assert cast_rays(origin, rays[:1], boxes[:1], max_range=7.9)[1][0] == -2
    assert cast_rays(boxes[0, :3], rays[:1], boxes[:2])[1][0] == 1


def test_scan_culling_is_exact_and_surfaces_differ():
    """`scan`'s azimuth/elevation culling gives the same sweep as testing every ray against every box; vehicles
    return brighter points than the road; drop-off removes a few percent."""
    from diffusekit.perception3d.lidar import _candidate_pairs

    coarse = LidarSpec(azimuth_resolution=2.0)
    scene = make_scene(4, frames=2, road="crossing", infrastructure=True, lidar=coarse, infra_lidar=coarse)
    for agent in scene.agents[:1] + scene.agents[-1:]:
        to_world = pose_to_matrix(scene.pose(agent, 1))
        directions = agent.lidar.directions(0.003) @ to_world[:3, :3].T
        boxes, _, _ = scene.occluders(1, exclude=agent.vehicle)
        full = cast_rays(to_world[:3, 3], directions, boxes, scene.ground_z)
        pairs = _candidate_pairs(boxes, np.linalg.inv(to_world), agent.lidar, 0.003)
        culled = cast_rays(to_world[:3, 3], directions, boxes, scene.ground_z, pairs=pairs)
        assert len(pairs[0]) < 0.02 * len(directions) * len(boxes)
        np.testing.assert_array_equal(full[1], culled[1])
        np.testing.assert_array_equal(full[0], culled[0])
    scene = make_scene(4, frames=2, road="crossing", infrastructure=True)
    agent = scene.agents[0]
    points, label = scan(scene, 0, agent, np.random.default_rng(0))
    clean, clean_label = scan(scene, 0, agent, np.random.default_rng(0), noise=False)
    assert 0.90 < len(points) / len(clean) < 0.98 and 10_000 < len(points) < 30_000
    intensity = points[:, 3]
    assert intensity[label >= 0].mean() > 2 * intensity[label == -2].mean()
    assert set(np.unique(label)) >= {-2, -1} and (label >= 0).sum() > 500
    distance = np.linalg.norm(clean[:, :3], axis=1)
    assert distance.max() <= VEHICLE_LIDAR.max_range and distance.min() > 1.0


def test_deterministic_and_label_rules(tmp_path):
    kwargs = dict(seed=[5, 1], frames=2, road="straight", infrastructure=True, azimuth_resolution=2.0)
    a = write_scenario(tmp_path / "a", **kwargs)
    b = write_scenario(tmp_path / "b", **kwargs)
    c = write_scenario(tmp_path / "c", **{**kwargs, "seed": [5, 2]})
    files = sorted(p.relative_to(a.path) for p in a.path.rglob("*") if p.is_file())
    assert len(files) == 1 + 2 * 2 * len(a.agent_ids)
    for name in files:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes()
    assert a.agent_ids != c.agent_ids
    wide = write_scenario(tmp_path / "d", **kwargs, label_rule="range")
    occluded = 0
    for agent in a.agent_ids:
        stem = a.stems[1]
        hit = _load(a.path / str(agent) / f"{stem}.yaml")
        near = _load(wide.path / str(agent) / f"{stem}.yaml")
        assert set(hit["vehicles"]) < set(near["vehicles"])
        boxes, ids = _world_boxes(near["vehicles"])
        assert np.all(np.hypot(*(boxes[:, :2] - near["lidar_pose"][:2]).T) <= 100.0 + 3.0)
        points = _world_points(wide.path / str(agent) / f"{stem}.pcd", near["lidar_pose"])
        seen = _inside(points, boxes, NOISE, bottom=0.15) > 0
        np.testing.assert_array_equal(seen, np.isin(ids, list(hit["vehicles"])))
        occluded += int((~seen).sum())
    assert occluded > 0


def test_refuses_to_overwrite(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="already holds a dataset"):
        write_dataset(root, "small")
    with pytest.raises(DataError, match="already holds a scenario"):
        write_scenario(tmp_path, name="data")
    with pytest.raises(ValueError, match="unknown size"):
        write_dataset(tmp_path / "other", "large")
    assert (root / "keep.txt").exists()
    write_dataset(root, "small", overwrite=True, azimuth_resolution=4.0)
    assert not (root / "keep.txt").exists() and len(_scenarios(root)) == 4
