"""Synthetic cooperative-driving datasets in the exact OPV2V / V2XSet layout, with ray-cast LiDAR.

Each scenario is a street scene built from a seed and written in OPV2V's layout (OpenCOOD
``docs/md_files/data_intro.md``): ``<split>/<scenario>/<agent id>/<stem>.pcd + <stem>.yaml`` per agent and frame, and
a ``data_protocol.yaml`` per scenario. Camera images are not rendered (no ``_camera{0..3}.png`` files).

The street scene comes from scene.py (`make_scene`: roads, traffic, buildings, the recording agents) and each agent's
sweep from lidar.py (`LidarSpec`, `scan`: a CARLA-like ray-cast LiDAR); this module writes them to disk.

Annotations: ``vehicles`` lists, per agent and frame, the vehicles that at least one of the agent's LiDAR points hit
(``label_rule="hit"``, OPV2V's rule, data_intro.md §3.3: "each surrounding human driving vehicle that has at least one
point hit by the agent's LiDAR sensor"; other CAVs are listed too), or every vehicle within `ANNOTATION_RANGE` of the
LiDAR, hit or not, and every vehicle hit (``label_rule="range"``). A reader that merges the agents' lists by id
(OpenCOOD's intermediate fusion) gets objects the ego cannot see: that is what makes collaboration matter here.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from diffusekit.core.errors import DataError
from diffusekit.perception3d.geometry import pose_to_matrix
from diffusekit.perception3d.lidar import INFRA_LIDAR, VEHICLE_LIDAR, LidarSpec, scan
from diffusekit.perception3d.pcd import write_pcd
from diffusekit.perception3d.scene import CARLA_STEP, FPS, Agent, Scene, make_scene

__all__ = [
    "ANNOTATION_RANGE",
    "SIZES",
    "ScenarioSummary",
    "write_dataset",
    "write_scenario",
]

ANNOTATION_RANGE = 100.0  # label_rule="range": vehicles within this distance of the agent (m)
OPV2V_RANGE = (-140.8, -40.0, -3.0, 140.8, 40.0, 1.0)  # OpenCOOD's point_cloud_range (for the summary statistics)
COMM_RANGE = 70.0  # OpenCOOD's COM_RANGE (for the summary statistics)

SIZES = {
    # scenarios per split (train, validate, test), frames per scenario
    "small": dict(scenarios=(2, 1, 1), frames=6),
    "medium": dict(scenarios=(8, 2, 3), frames=20),
}
SPLITS = ("train", "validate", "test")
# yaml.safe_dump's SafeDumper, in libyaml's C emitter where PyYAML has it (the same text, 3x faster)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _f(value, digits: int = 6) -> float:
    return round(float(value), digits)


def _vehicle_entry(scene: Scene, frame: int, index: int) -> dict:
    """OPV2V's per-object annotation: CARLA actor location (ground contact), bounding-box centre offset, angle
    [roll, yaw, pitch] and half extent, speed in km/h."""
    l, w, h = scene.sizes[index]
    x, y = scene.xy[frame, index]
    return {
        "angle": [0.0, _f(math.degrees(scene.yaw[index])), 0.0],
        "center": [0.0, 0.0, _f(h / 2)],
        "extent": [_f(l / 2), _f(w / 2), _f(h / 2)],
        "location": [_f(x), _f(y), _f(scene.ground_z)],
        "speed": _f(scene.speed[index] * 3.6, 3),
    }


def _gps_noise(rng: np.random.Generator, frames: int, sigma: float) -> np.ndarray:
    """(F, 3) GNSS errors on x, y (m) and yaw (degrees): AR(1) with correlation 0.9 per frame, stationary std
    ``sigma`` for x, y and 1 degree for yaw."""
    out = np.zeros((frames, 3))
    scale = np.array([sigma, sigma, 1.0])
    out[0] = rng.normal(0.0, scale)
    for f in range(1, frames):
        out[f] = 0.9 * out[f - 1] + math.sqrt(1 - 0.81) * rng.normal(0.0, scale)
    return out


def _agent_yaml(scene: Scene, agent: Agent, frame: int, listed: np.ndarray, gps: np.ndarray) -> dict:
    pose = scene.pose(agent, frame)
    doc: dict = {"lidar_pose": [_f(v) for v in pose]}
    if agent.infrastructure:
        base = [pose[0], pose[1], scene.ground_z, 0.0, pose[4], 0.0]
        doc.update(ego_speed=0.0, true_ego_pos=[_f(v) for v in base], predicted_ego_pos=[_f(v) for v in base])
    else:
        v = agent.vehicle
        x, y = scene.xy[frame, v]
        yaw = math.degrees(scene.yaw[v])
        true = [x, y, scene.ground_z, 0.0, yaw, 0.0]
        noisy = [x + gps[0], y + gps[1], scene.ground_z, 0.0, yaw + gps[2], 0.0]
        heading = np.array([math.cos(scene.yaw[v]), math.sin(scene.yaw[v])])
        ahead = [scene.xy[frame, v] + heading * scene.speed[v] * k * 0.2 for k in range(1, 6)]
        doc.update(
            ego_speed=_f(scene.speed[v] * 3.6, 3),
            true_ego_pos=[_f(t) for t in true],
            predicted_ego_pos=[_f(t) for t in noisy],
            plan_trajectory=[[_f(p[0]), _f(p[1]), _f(scene.speed[v] * 3.6, 3)] for p in ahead],
        )
    doc["vehicles"] = {int(scene.ids[i]): _vehicle_entry(scene, frame, int(i)) for i in listed}
    return doc


def _protocol(scene: Scene, seed) -> dict:
    """CARLA-like recording settings for ``data_protocol.yaml``."""
    agents = scene.agents
    sensors = {"lidar": next(a.lidar for a in agents if not a.infrastructure).protocol()}
    for a in agents:
        if a.infrastructure:
            sensors["infrastructure_lidar"] = a.lidar.protocol()
    return {
        "description": "diffusekit.perception3d.synthetic: ray-cast LiDAR street scene in the OPV2V layout",
        "world": {
            "sync_mode": True,
            "fixed_delta_seconds": 1.0 / (FPS * CARLA_STEP),
            "seed": [int(s) for s in np.atleast_1d(seed)],
            "road": scene.road,
            "weather": {"cloudiness": 0.0, "precipitation": 0.0, "fog_density": 0.0, "sun_altitude_angle": 45.0},
        },
        "fps": FPS,
        "frame_step": CARLA_STEP,
        "cav_ids": [a.id for a in agents if not a.infrastructure],
        "infrastructure_ids": [a.id for a in agents if a.infrastructure],
        "sensors": sensors,
    }


@dataclass(frozen=True)
class ScenarioSummary:
    """What `write_scenario` wrote: the folder, agent ids in OpenCOOD's order (folder names sorted as strings,
    infrastructure last; the first is the ego), stems, mean points per sweep (vehicles, infrastructure), and per
    frame the ground-truth objects a cooperative reader gathers (union of the agents' lists within `COMM_RANGE` of
    the ego, centres in OpenCOOD's OPV2V point_cloud_range), how many of them the ego's LiDAR hit, and how many
    only other agents hit."""

    path: Path
    agent_ids: list[int]
    stems: list[str]
    points_vehicle: float
    points_infrastructure: float | None
    objects: list[int]
    seen_by_ego: list[int]
    only_others: list[int]
    scene: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "path": str(self.path),
            "scene": self.scene,
            "agent_ids": self.agent_ids,
            "stems": self.stems,
            "points_vehicle": self.points_vehicle,
            "points_infrastructure": self.points_infrastructure,
            "objects": self.objects,
            "seen_by_ego": self.seen_by_ego,
            "only_others": self.only_others,
        }


def write_scenario(
    out: str | Path,
    seed=0,
    frames: int = 6,
    *,
    road: str | None = None,
    infrastructure: bool | None = None,
    cavs: int | None = None,
    name: str = "2021_08_16_22_26_54",
    first_frame: int | None = None,
    digits: int = 6,
    label_rule: str = "hit",
    azimuth_resolution: float | None = None,
    compressed_files: int = 1,
) -> ScenarioSummary:
    """Write one scenario to ``out/<name>/`` (OPV2V layout, module docstring) and return its `ScenarioSummary`.

    The scene is `make_scene(seed, frames, road, infrastructure, cavs)`. Stems have ``digits`` (5 or 6) digits,
    start at ``first_frame`` (odd, drawn when None) and step by 2 (CARLA frame numbers). ``label_rule`` "hit" or
    "range" (module docstring). ``azimuth_resolution`` (degrees) overrides both LiDARs' (coarser is faster: 1.0
    gives half the default points). The last ``compressed_files`` files (frame, agent) are written ``binary_compressed``
    (LZF: slower to write), the rest ``binary``. Refuses an existing non-empty ``out/<name>`` (DataError)."""
    if digits not in (5, 6):
        raise ValueError(f"digits must be 5 or 6, got {digits}")
    if label_rule not in ("hit", "range"):
        raise ValueError(f"label_rule must be 'hit' or 'range', got {label_rule!r}")
    lidar, infra_lidar = VEHICLE_LIDAR, INFRA_LIDAR
    if azimuth_resolution is not None:
        lidar = LidarSpec(**{**lidar.__dict__, "azimuth_resolution": float(azimuth_resolution)})
        infra_lidar = LidarSpec(**{**infra_lidar.__dict__, "azimuth_resolution": float(azimuth_resolution)})
    scene = make_scene(seed, frames, road, infrastructure, cavs, name, lidar, infra_lidar)
    folder = Path(out) / name
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise DataError("already holds a scenario (write into an empty folder)", folder)
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 7919])
    if first_frame is None:
        first_frame = 2 * int(rng.integers(10, 200)) + 1
    if first_frame <= 0 or first_frame + CARLA_STEP * (frames - 1) >= 10**digits:
        raise ValueError(f"first_frame {first_frame} does not fit {frames} frames in {digits} digits")
    stems = [f"{first_frame + CARLA_STEP * f:0{digits}d}" for f in range(frames)]
    agents = sorted(scene.agents, key=lambda a: (a.id < 0, str(a.id)))  # OpenCOOD's order: sorted names, ego first
    gps = {a.id: _gps_noise(rng, frames, scene.gps_sigma) for a in agents}
    for a in agents:
        (folder / str(a.id)).mkdir(parents=True, exist_ok=True)
    compressed = {(f, k) for f in range(frames) for k in range(len(agents))}
    compressed = set(sorted(compressed)[len(compressed) - max(int(compressed_files), 0) :])
    (folder / "data_protocol.yaml").write_text(yaml.dump(_protocol(scene, seed), Dumper=_DUMPER, sort_keys=False))

    counts = {"vehicle": [], "infrastructure": []}
    objects, seen_by_ego, only_others = [], [], []
    for f, stem in enumerate(stems):
        hits: dict[int, np.ndarray] = {}
        listed: dict[int, np.ndarray] = {}
        for k, agent in enumerate(agents):
            sweep_rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), f, k])
            points, label = scan(scene, f, agent, sweep_rng)
            hits[agent.id] = np.unique(label[label >= 0])
            if label_rule == "hit":
                listed[agent.id] = hits[agent.id]
            else:
                sensor = scene.pose(agent, f)[:2]
                near = np.linalg.norm(scene.xy[f] - sensor, axis=1) <= ANNOTATION_RANGE
                near[hits[agent.id]] = True  # a hit vehicle's centre may lie a little beyond the range
                if not agent.infrastructure:
                    near[agent.vehicle] = False  # never the agent itself
                listed[agent.id] = np.flatnonzero(near)
            counts["infrastructure" if agent.infrastructure else "vehicle"].append(len(points))
            base = folder / str(agent.id) / stem
            kind = "binary_compressed" if (f, k) in compressed else "binary"
            write_pcd(base.with_suffix(".pcd"), points, data=kind, intensity="rgb")
            doc = _agent_yaml(scene, agent, f, listed[agent.id], gps[agent.id][f])
            base.with_suffix(".yaml").write_text(yaml.dump(doc, Dumper=_DUMPER))
        ego = agents[0]
        ego_pose = scene.pose(ego, f)
        members = [a for a in agents if np.linalg.norm(scene.pose(a, f)[:2] - ego_pose[:2]) <= COMM_RANGE]
        gt = np.unique(np.concatenate([listed[a.id] for a in members]))
        centre = np.column_stack([scene.xy[f, gt], np.full(len(gt), scene.ground_z)])
        local = (centre - ego_pose[:3]) @ pose_to_matrix(ego_pose)[:3, :3]
        r = OPV2V_RANGE
        gt = gt[(local[:, 0] >= r[0]) & (local[:, 0] <= r[3]) & (local[:, 1] >= r[1]) & (local[:, 1] <= r[4])]
        others = np.unique(np.concatenate([hits[a.id] for a in members[1:]] or [np.zeros(0, np.int64)]))
        ego_seen = np.isin(gt, hits[ego.id]) | (gt == ego.vehicle)  # the ego knows where it is itself
        objects.append(len(gt))
        seen_by_ego.append(int(ego_seen.sum()))
        only_others.append(int((~ego_seen & np.isin(gt, others)).sum()))
    return ScenarioSummary(
        path=folder,
        agent_ids=[a.id for a in agents],
        stems=stems,
        points_vehicle=float(np.mean(counts["vehicle"])),
        points_infrastructure=float(np.mean(counts["infrastructure"])) if counts["infrastructure"] else None,
        objects=objects,
        seen_by_ego=seen_by_ego,
        only_others=only_others,
        scene=scene.info,
    )


def _scenario_names(seed: int, count: int) -> list[str]:
    """``count`` distinct, increasing OPV2V-style scenario names (the date and time of recording)."""
    rng = np.random.default_rng([seed, 4099])
    base = np.datetime64("2021-08-16T09:00:00")
    offsets = np.sort(rng.choice(np.arange(0, 40 * 24 * 3600, 97), size=count, replace=False))
    stamps = [str(base + np.timedelta64(int(o), "s")) for o in offsets]  # 2021-08-16T09:00:00
    return [stamp.replace("-", "_").replace("T", "_").replace(":", "_") for stamp in stamps]


def write_dataset(
    out: str | Path,
    size: str = "small",
    seed: int = 0,
    overwrite: bool = False,
    label_rule: str = "hit",
    azimuth_resolution: float | None = None,
) -> Path:
    """Write ``out/{train,validate,test}/<scenario>/<agent id>/<stem>.pcd + .yaml`` and each scenario's
    ``data_protocol.yaml``, plus ``out/synthetic.json`` (settings and per-scenario statistics); return ``out``.

    ``size`` "small" (2/1/1 scenarios of 6 frames) or "medium" (8/2/3 of 20 frames). Scenario k (counted over the
    splits in order) is a crossing when k is even, has an infrastructure unit when k % 4 is 0 or 3, and 5-digit
    stems when k % 3 == 1 (6-digit otherwise); everything else comes from ``seed``. Refuses a non-empty ``out``
    (DataError) unless ``overwrite``, which deletes it first."""
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
    if label_rule not in ("hit", "range"):
        raise ValueError(f"label_rule must be 'hit' or 'range', got {label_rule!r}")
    spec = SIZES[size]
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        if not overwrite:
            raise DataError("already holds a dataset (pass overwrite=True to replace it)", root)
        if root.is_dir():
            shutil.rmtree(root)
        else:
            root.unlink()
    root.mkdir(parents=True, exist_ok=True)
    names = _scenario_names(seed, sum(spec["scenarios"]))
    resolution = {} if azimuth_resolution is None else {"azimuth_resolution": float(azimuth_resolution)}
    meta = {
        "generator": "diffusekit.perception3d.synthetic",
        "size": size,
        "seed": seed,
        "label_rule": label_rule,
        "fps": FPS,
        "lidar": LidarSpec(**{**VEHICLE_LIDAR.__dict__, **resolution}).protocol(),
        "infrastructure_lidar": LidarSpec(**{**INFRA_LIDAR.__dict__, **resolution}).protocol(),
        "scenarios": {},
    }
    k = 0
    for split, count in zip(SPLITS, spec["scenarios"]):
        (root / split).mkdir()
        for _ in range(count):
            summary = write_scenario(
                root / split,
                seed=[seed, k],
                frames=spec["frames"],
                road="crossing" if k % 2 == 0 else "straight",
                infrastructure=k % 4 in (0, 3),
                name=names[k],
                digits=5 if k % 3 == 1 else 6,
                label_rule=label_rule,
                azimuth_resolution=azimuth_resolution,
            )
            entry = summary.as_dict()
            entry["path"] = str(summary.path.relative_to(root))
            meta["scenarios"][names[k]] = {"split": split, **entry}
            k += 1
    (root / "synthetic.json").write_text(json.dumps(meta, indent=1) + "\n")
    return root
