"""OPV2V and V2XSet (OpenCOOD layout) as cooperative samples: every agent's LiDAR, poses, delays and the ground truth.

Layout (OpenCOOD ``docs/md_files/data_intro.md``)::

    ROOT/<split>/<scenario>/data_protocol.yaml            CARLA settings (read when present, not required)
    ROOT/<split>/<scenario>/<agent id>/<frame>.pcd        the agent's LiDAR in its own frame (Open3D, intensity in red)
    ROOT/<split>/<scenario>/<agent id>/<frame>.yaml       lidar_pose [x, y, z, roll, yaw, pitch] (degrees), vehicles
    ROOT/<split>/<scenario>/<agent id>/<frame>_camera{0..3}.png   (ignored)

Splits are ``train``, ``validate``, ``test`` and ``test_culvercity`` (any folder name is accepted). Frame stems have
5 or 6 digits: files are globbed on the suffix and sorted numerically. Agent folders are named by integer actor id,
negative for V2XSet's infrastructure. As OpenCOOD's test-time ``basedataset.py`` does (``sorted(os.listdir)``, then a
negative first id moved to the end), the ego is the first non-negative id in lexicographic folder-name order (OpenCOOD
shuffles the agents in training; here the ego is always the same). A frame of the scenario is a frame of the ego.

Per sample (OpenCOOD ``basedataset.retrieve_base_data`` and CoAlign's intermediate-fusion datasets):
- agents take part when the xy distance of their clean current pose to the ego's is at most ``comm_range``; the
  ego and then the nearest others, ``max_cav`` at most;
- agent i's points and pose come from its frame ``t - d_i`` (clamped to its first frame), ``d_i`` from `Delay`
  (0 for the ego); the ground truth always comes from the current frame ``t``;
- pose noise (`PoseNoise`) perturbs the (delayed) poses into ``poses``; ``poses_clean`` keeps the true ones. Delay and
  noise draw from a Generator seeded with ``(seed, index)``: each item is reproducible and items differ;
- ground truth (OpenCOOD ``box_utils.project_world_objects``): the union of the ``vehicles`` of every agent taking
  part, de-duplicated by id (CAVs listing each other stay: they are objects), each box built from ``location``,
  ``angle`` [roll, yaw, pitch] degrees, ``center`` (offset of the box centre in the vehicle's frame, rotated with the
  vehicle; OpenCOOD adds it unrotated, a difference of |offset_xy| (a few cm) for turned vehicles) and ``extent``
  (half sizes: l, w, h = 2 extent), moved into the ego LiDAR frame with the CLEAN ego pose, kept when the centre lies in
  the xy ``point_cloud_range``, sorted by object id.

OPV2V yaml files write floats such as ``1e-05`` without a dot, which YAML 1.1 (PyYAML's SafeLoader) reads as strings;
`load_yaml` uses a SafeLoader subclass that also resolves them as floats (OpenCOOD's ``load_yaml`` adds the same
resolver on the unsafe loader). Python-specific tags are read as plain lists/maps/strings, never executed.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch.utils.data import Dataset

from diffusekit.core.errors import DataError
from diffusekit.core.files import read_text
from diffusekit.perception3d.geometry import pose_to_matrix, yaw_of
from diffusekit.perception3d.noise import Delay, PoseNoise
from diffusekit.perception3d.pcd import read_pcd

__all__ = [
    "OPV2V_LAYOUT",
    "OPV2V_RANGE",
    "OPV2V_SPLITS",
    "YAML_CACHE_SIZE",
    "AgentFrames",
    "CooperativeScenes",
    "Frame",
    "FrameParams",
    "Scenario",
    "ground_truth",
    "list_scenarios",
    "load_yaml",
    "object_boxes",
    "read_frame_params",
]

OPV2V_SPLITS = ("train", "validate", "test", "test_culvercity")
OPV2V_RANGE = (-140.8, -40.0, -3.0, 140.8, 40.0, 1.0)  # OpenCOOD point_pillar_*.yaml lidar range
OPV2V_LAYOUT = "ROOT/<split>/<scenario>/<agent id>/<frame>.pcd + <frame>.yaml"
YAML_CACHE_SIZE = 4096  # parsed frame yaml files kept per process (each a few kB)
_VEHICLE_KEYS = ("location", "center", "angle", "extent")


# ---------------------------------------------------------------------------------------------------------- yaml
class _OpenCOODLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader that also reads exponent floats without a dot (``1e-05``) and reads unknown tags as plain data."""


# YAML 1.1 wants a dot in floats; numbers such as 1e-05 or -2E3 resolve as strings without this resolver
_OpenCOODLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _plain(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    """An unknown tag (``!!python/tuple`` ...) read as the plain sequence, mapping or string it tags."""
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)


_OpenCOODLoader.add_constructor(None, _plain)


def load_yaml(path: str | Path) -> Any:
    """A yaml file read safely (see the module docstring); unreadable files and syntax errors are a DataError."""
    path = Path(path)
    text = read_text(path)
    try:
        return yaml.load(text, Loader=_OpenCOODLoader)  # a SafeLoader subclass: nothing is executed
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise DataError(f"unreadable yaml ({problem})", path, None if mark is None else mark.line + 1) from None


@dataclass(frozen=True, eq=False)
class FrameParams:
    """What one agent's ``<frame>.yaml`` says: its LiDAR pose and the vehicles around it (arrays read-only).

    ``object_ids`` (M,) int64; ``location``, ``center``, ``angle`` (roll, yaw, pitch degrees) and ``extent`` (half
    sizes) are (M, 3) float64.
    """

    lidar_pose: np.ndarray
    object_ids: np.ndarray
    location: np.ndarray
    center: np.ndarray
    angle: np.ndarray
    extent: np.ndarray


def _vector(value, size: int, what: str, path: Path) -> np.ndarray:
    numbers = isinstance(value, (list, tuple)) and all(isinstance(v, Real) and not isinstance(v, bool) for v in value)
    if not numbers or len(value) != size:
        raise DataError(f"{what} must be a list of {size} numbers, got {value!r}"[:200], path)
    out = np.array(value, dtype=np.float64)
    if not np.isfinite(out).all():
        raise DataError(f"{what} holds NaN or infinite values: {value!r}", path)
    return out


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _parse_frame(path: Path) -> FrameParams:
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise DataError(f"expected a yaml mapping with lidar_pose, got {type(data).__name__}", path)
    if "lidar_pose" not in data:
        raise DataError("no lidar_pose in the frame yaml (expected [x, y, z, roll, yaw, pitch] in degrees)", path)
    pose = _vector(data["lidar_pose"], 6, "lidar_pose [x, y, z, roll, yaw, pitch]", path)
    vehicles = data.get("vehicles") or {}
    if not isinstance(vehicles, dict):
        raise DataError(f"vehicles must be a mapping of id -> object, got {type(vehicles).__name__}", path)
    ids, rows = [], []
    for key, content in vehicles.items():
        try:
            object_id = int(key)
        except (TypeError, ValueError):
            raise DataError(f"vehicle id {key!r} is not an integer", path) from None
        if not isinstance(content, dict):
            raise DataError(f"vehicle {object_id} must be a mapping with location/center/angle/extent", path)
        missing = [k for k in _VEHICLE_KEYS if k not in content]
        if missing:
            raise DataError(f"vehicle {object_id} has no {', '.join(missing)}", path)
        rows.append([_vector(content[k], 3, f"vehicle {object_id} {k}", path) for k in _VEHICLE_KEYS])
        ids.append(object_id)
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 4, 3)
    return FrameParams(
        lidar_pose=_readonly(pose),
        object_ids=_readonly(np.array(ids, dtype=np.int64)),
        location=_readonly(table[:, 0].copy()),
        center=_readonly(table[:, 1].copy()),
        angle=_readonly(table[:, 2].copy()),
        extent=_readonly(table[:, 3].copy()),
    )


@functools.lru_cache(maxsize=YAML_CACHE_SIZE)
def _cached_frame(path: str, mtime_ns: int, size: int) -> FrameParams:
    return _parse_frame(Path(path))


def read_frame_params(path: str | Path) -> FrameParams:
    """The parsed frame yaml, cached per process (bounded LRU keyed by path, modification time and size)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as error:
        raise DataError(f"cannot read the frame yaml ({error.strerror or error})", path) from None
    return _cached_frame(str(path), stat.st_mtime_ns, stat.st_size)


# ------------------------------------------------------------------------------------------------------- boxes
def object_boxes(params: FrameParams, ego_pose) -> tuple[np.ndarray, np.ndarray]:
    """The vehicles of one frame yaml as (M, 7) ``[x, y, z, l, w, h, yaw]`` boxes in the LiDAR frame of ``ego_pose``
    (OpenCOOD ``box_utils.project_world_objects``), and their ids. As OpenCOOD does, the ``center`` offset is added
    to ``location`` in the world frame (not rotated with the vehicle); l, w, h are twice ``extent``."""
    count = len(params.object_ids)
    if count == 0:
        return np.zeros((0, 7), np.float64), np.zeros(0, np.int64)
    vehicle_to_world = pose_to_matrix(np.column_stack([params.location, params.angle]))
    world_to_ego = np.linalg.inv(pose_to_matrix(ego_pose))
    centre_world = params.location + params.center
    centre = centre_world @ world_to_ego[:3, :3].T + world_to_ego[:3, 3]
    yaw = np.asarray(yaw_of(world_to_ego @ vehicle_to_world)).reshape(count)
    yaw = (yaw + np.pi) % (2 * np.pi) - np.pi
    boxes = np.column_stack([centre, 2.0 * params.extent, yaw])
    return boxes, params.object_ids.copy()


def ground_truth(frames: list[FrameParams], ego_pose, point_cloud_range=OPV2V_RANGE) -> tuple[np.ndarray, np.ndarray]:
    """Union of the vehicles of ``frames`` (one per agent, the first listing of an id wins) in the ``ego_pose``
    LiDAR frame, centres inside the xy ``point_cloud_range``, sorted by id: float32 (M, 7) boxes and int64 ids."""
    boxes, ids = [np.zeros((0, 7))], [np.zeros(0, np.int64)]
    for params in frames:
        b, i = object_boxes(params, ego_pose)
        boxes.append(b)
        ids.append(i)
    boxes, ids = np.concatenate(boxes), np.concatenate(ids)
    ids, first = np.unique(ids, return_index=True)
    boxes = boxes[first]
    lo, hi = np.asarray(point_cloud_range, np.float64)[:2], np.asarray(point_cloud_range, np.float64)[3:5]
    keep = np.all((boxes[:, :2] >= lo) & (boxes[:, :2] <= hi), axis=1)
    return boxes[keep].astype(np.float32), ids[keep]


# ---------------------------------------------------------------------------------------------------- scenarios
@dataclass(frozen=True)
class AgentFrames:
    """One agent folder: its id and frame stems in numerical order."""

    agent_id: int
    folder: Path
    stems: tuple[str, ...]
    position: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "position", {stem: k for k, stem in enumerate(self.stems)})

    @property
    def infrastructure(self) -> bool:
        return self.agent_id < 0

    def pcd(self, k: int) -> Path:
        return self.folder / f"{self.stems[k]}.pcd"

    def yaml(self, k: int) -> Path:
        return self.folder / f"{self.stems[k]}.yaml"


@dataclass(frozen=True)
class Scenario:
    """One scenario folder: agents with the ego first (see the module docstring), the parsed ``data_protocol.yaml``
    (None without one)."""

    name: str
    folder: Path
    agents: tuple[AgentFrames, ...]
    protocol: dict | None = None

    @property
    def ego(self) -> AgentFrames:
        return self.agents[0]

    @property
    def frames(self) -> tuple[str, ...]:
        """The scenario's frames: the ego's stems."""
        return self.ego.stems


@dataclass(frozen=True)
class Frame:
    """Frame ``position`` (index into the ego's stems) of a scenario."""

    scenario: Scenario
    position: int

    @property
    def stem(self) -> str:
        return self.scenario.frames[self.position]


def _agent_frames(folder: Path, agent_id: int) -> AgentFrames:
    pcds = {p.stem for p in folder.glob("*.pcd") if p.stem.isdigit()}
    yamls = {p.stem for p in folder.glob("*.yaml") if p.stem.isdigit()}
    lone_pcd, lone_yaml = sorted(pcds - yamls), sorted(yamls - pcds)
    if lone_pcd:
        raise DataError(f"point cloud without its {lone_pcd[0]}.yaml (pose and objects)", folder / f"{lone_pcd[0]}.pcd")
    if lone_yaml:
        raise DataError(f"frame yaml without its {lone_yaml[0]}.pcd point cloud", folder / f"{lone_yaml[0]}.yaml")
    if not pcds:
        raise DataError(f"agent folder with no frames (expected <frame>.pcd + <frame>.yaml; {OPV2V_LAYOUT})", folder)
    return AgentFrames(agent_id, folder, tuple(sorted(pcds, key=lambda s: (int(s), s))))


def _agent_id(name: str) -> int | None:
    return int(name) if re.fullmatch(r"-?\d+", name) else None


def _scenario(folder: Path) -> Scenario:
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and _agent_id(p.name) is not None)
    if not names:
        raise DataError(f"scenario with no agent folders (expected one folder per agent id; {OPV2V_LAYOUT})", folder)
    # OpenCOOD: sorted folder names, infrastructure (negative) ids after the vehicles
    ordered = [n for n in names if _agent_id(n) >= 0] + [n for n in names if _agent_id(n) < 0]
    agents = tuple(_agent_frames(folder / name, _agent_id(name)) for name in ordered)
    protocol_path = folder / "data_protocol.yaml"
    protocol = load_yaml(protocol_path) if protocol_path.is_file() else None
    if protocol is not None and not isinstance(protocol, dict):
        raise DataError(f"data_protocol.yaml must be a yaml mapping, got {type(protocol).__name__}", protocol_path)
    return Scenario(folder.name, folder, agents, protocol)


def list_scenarios(root: str | Path, split: str = "train", scenario: str | None = None) -> list[Scenario]:
    """The scenarios of ``ROOT/<split>`` in name order (only ``scenario`` when given); DataError for a missing root,
    split or scenario folder and for every malformed scenario."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"OPV2V/V2XSet folder not found (expected {OPV2V_LAYOUT})", root)
    folder = root / split
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise DataError(f"split folder {split!r} not found (found: {', '.join(found) or 'nothing'})", folder)
    if scenario is not None:
        if not (folder / scenario).is_dir():
            raise DataError("scenario folder not found", folder / scenario)
        return [_scenario(folder / scenario)]
    scenarios = [_scenario(p) for p in sorted(folder.iterdir()) if p.is_dir()]
    if not scenarios:
        raise DataError(f"no scenario folders in the split (expected {OPV2V_LAYOUT})", folder)
    return scenarios


# ------------------------------------------------------------------------------------------------------ dataset
class CooperativeScenes(Dataset):
    """Cooperative samples of an OPV2V/V2XSet split (the SAMPLE dicts of the perception3d conventions).

    Args:
        root: the folder holding the split folders. split: ``train``, ``validate``, ``test``, ``test_culvercity``
            (or any split folder name). comm_range: metres (xy) within which agents share data (OPV2V 70).
        max_cav: the most agents per sample, ego included (nearest first). point_cloud_range: (6,) range whose xy
            part filters the ground truth. noise: a `PoseNoise` or None. delay: a `Delay` or None. seed: seed of the
            per-item generator (with the item index). max_frames: only the first N frames of each scenario.
        scenario: only this scenario folder of the split.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        comm_range: float = 70.0,
        max_cav: int = 5,
        point_cloud_range=OPV2V_RANGE,
        noise: PoseNoise | None = None,
        delay: Delay | None = None,
        seed: int = 0,
        max_frames: int | None = None,
        scenario: str | None = None,
    ):
        if not comm_range > 0:
            raise ValueError(f"comm_range must be positive, got {comm_range}")
        if int(max_cav) != max_cav or max_cav < 1:
            raise ValueError(f"max_cav must be an integer >= 1, got {max_cav}")
        if len(point_cloud_range) != 6:
            raise ValueError(f"point_cloud_range must have 6 numbers, got {point_cloud_range}")
        if max_frames is not None and (int(max_frames) != max_frames or max_frames < 1):
            raise ValueError(f"max_frames must be a positive integer or None, got {max_frames}")
        self.root, self.split = Path(root), split
        self.comm_range, self.max_cav = float(comm_range), int(max_cav)
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)
        self.noise, self.delay, self.seed = noise, delay, int(seed)
        self.scenarios = list_scenarios(root, split, scenario)
        limit = math.inf if max_frames is None else int(max_frames)
        self.frames = [Frame(s, k) for s in self.scenarios for k in range(int(min(len(s.frames), limit)))]

    def __len__(self) -> int:
        return len(self.frames)

    def _chosen(self, frame: Frame) -> tuple[list[AgentFrames], dict[int, FrameParams]]:
        """The agents taking part at the frame (ego, then the nearest in range) and their current-frame params."""
        stem = frame.stem
        present = [a for a in frame.scenario.agents if stem in a.position]
        current = {a.agent_id: read_frame_params(a.yaml(a.position[stem])) for a in present}
        ego_xy = current[present[0].agent_id].lidar_pose[:2]
        distances = [float(np.hypot(*(current[a.agent_id].lidar_pose[:2] - ego_xy))) for a in present[1:]]
        order = sorted((d, k) for k, d in enumerate(distances) if d <= self.comm_range)
        others = [present[1 + k] for _, k in order[: self.max_cav - 1]]
        return [present[0], *others], current

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        index = int(index) % len(self)
        frame = self.frames[index]
        agents, current = self._chosen(frame)
        rng = np.random.default_rng([self.seed, index])
        points, clean, delays = [], [], []
        for k, agent in enumerate(agents):
            now = agent.position[frame.stem]
            lag = self.delay.frames(rng, ego=k == 0) if self.delay is not None else 0
            used = max(now - lag, 0)
            points.append(read_pcd(agent.pcd(used)))
            clean.append(read_frame_params(agent.yaml(used)).lidar_pose)
            delays.append(now - used)
        poses_clean = np.stack(clean).astype(np.float64)
        poses = self.noise.apply(poses_clean, rng) if self.noise is not None else poses_clean.copy()
        ego_pose = current[agents[0].agent_id].lidar_pose
        boxes, ids = ground_truth([current[a.agent_id] for a in agents], ego_pose, self.point_cloud_range)
        return {
            "scenario": frame.scenario.name,
            "frame": frame.stem,
            "ego_id": agents[0].agent_id,
            "agent_ids": [a.agent_id for a in agents],
            "infrastructure": np.array([a.infrastructure for a in agents], dtype=bool),
            "points": points,
            "poses": poses,
            "poses_clean": poses_clean,
            "delays": np.array(delays, dtype=np.int64),
            "gt_boxes": boxes,
            "object_ids": ids,
        }
