"""DAIR-V2X-C (Yu et al., CVPR 2022), the real vehicle-infrastructure cooperative set, read as CoAlign reads it
(``CoAlign:opencood/data_utils/datasets/basedataset/dairv2x_basedataset.py``).

Layout under ``root`` (``cooperative-vehicle-infrastructure/``; DAIR-V2X ``data/README.md``)::

    cooperative/data_info.json                      list of frame pairs (below)
    cooperative/label_world/<vehicle id>.json        cooperative labels in the WORLD frame
    vehicle-side/velodyne/<vehicle id>.pcd           x y z intensity, vehicle LiDAR frame
    vehicle-side/calib/lidar_to_novatel/<id>.json    {"transform": {"rotation": 3x3, "translation": 3x1}}
    vehicle-side/calib/novatel_to_world/<id>.json    {"rotation": 3x3, "translation": 3x1}
    vehicle-side/data_info.json                      optional here: gives each frame's ``batch_id`` (the segment)
    infrastructure-side/velodyne/<inf id>.pcd        x y z intensity, infrastructure "virtual LiDAR" frame
    infrastructure-side/calib/virtuallidar_to_world/<inf id>.json   {"rotation": 3x3, "translation": 3x1}
    train.json, val.json                             CoAlign's splits: lists of vehicle frame ids

A ``cooperative/data_info.json`` entry holds ``vehicle_image_path``, ``vehicle_pointcloud_path``,
``infrastructure_image_path``, ``infrastructure_pointcloud_path``, ``cooperative_label_path`` (paths relative to
``root``) and ``system_error_offset`` ``{delta_x, delta_y}``. The frame ids are the file stems of the image paths (as
CoAlign derives them; the point cloud stem when no image path is given). A cooperative label is a list of objects
with ``type``, ``world_8_points`` (8 corners in the world frame, the first 4 the bottom face) and, as in every DAIR
label, ``3d_dimensions`` ``{h, w, l}``, ``3d_location`` ``{x, y, z}`` (box centre) and ``rotation`` (yaw, radians).

Poses (CoAlign ``transformation_utils``): the vehicle LiDAR-to-world matrix is ``novatel_to_world @
lidar_to_novatel`` (``veh_side_rot_and_trans_to_trasnformation_matrix``); the infrastructure one is
``virtuallidar_to_world`` with ``system_error_offset`` added to its x and y translation
(``inf_side_rot_and_trans_to_trasnformation_matrix``): the offset corrects a known calibration error, so the corrected
pose is the true one (``poses_clean``). Both become ``[x, y, z, roll, yaw, pitch]`` (degrees) through
`geometry.matrix_to_pose`, as CoAlign's ``tfm_to_pose`` does.

Boxes (CoAlign ``box_utils.project_world_objects_dairv2x``): the world corners go into the vehicle LiDAR frame with
the inverse of the (clean) pose matrix and become ``[x, y, z, l, w, h, yaw]`` as ``box_utils.corner_to_center`` does
(centre = corner mean, l / w / h = mean edge lengths); the heading here averages the four front-minus-back edge
VECTORS rather than their four angles, which agrees away from +-pi and does not break there. Without
``world_8_points`` the box comes from ``3d_location`` / ``3d_dimensions`` / ``rotation`` in the world frame (as
DAIR-V2X's own ``dataset_utils/label.py`` does). Only the vehicle classes Car, Van, Truck and Bus are kept (the four
the cooperative labels cover, DAIR-V2X ``data/README.md``; CoAlign's single-side loader keeps the same four), boxes
of zero size are skipped (CoAlign, DAIR-V2X), and the object id is the position in the label file (CoAlign).
Boxes are kept when their centre lies inside ``point_cloud_range`` in x and y, as for every reader of this package
(CoAlign requires all 8 corners inside, with z widened by 1 m).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mmengine.registry import DATASETS
from torch.utils.data import Dataset

from diffusekit.core.errors import DataError
from diffusekit.core.files import read_text
from diffusekit.perception3d.geometry import matrix_to_pose, pose_to_matrix
from diffusekit.perception3d.pcd import read_pcd, write_pcd

__all__ = [
    "DAIRV2X_RANGE",
    "VEHICLE_CLASSES",
    "DAIRV2XFrame",
    "DAIRV2XScenes",
    "corners_to_boxes",
    "dairv2x_frames",
    "write_sample_dataset",
]

VEHICLE_CLASSES = ("Car", "Van", "Truck", "Bus")
DAIRV2X_RANGE = (-100.8, -40.0, -3.5, 100.8, 40.0, 1.5)  # CoAlign / CoDiff DAIR-V2X cav_lidar_range
_DATA_INFO = "cooperative/data_info.json"
_ENTRY_KEYS = ("vehicle_pointcloud_path", "infrastructure_pointcloud_path", "cooperative_label_path")
# DAIR-V2X's corner order (v2x_utils.get_3d_8points): bottom face (+l,+w) (+l,-w) (-l,-w) (-l,+w), then the top face
_DAIR_CORNERS = np.array(
    [[1, 1, -1], [1, -1, -1], [-1, -1, -1], [-1, 1, -1], [1, 1, 1], [1, -1, 1], [-1, -1, 1], [-1, 1, 1]], np.float64
)


@dataclass(frozen=True)
class DAIRV2XFrame:
    """One cooperative frame pair of ``cooperative/data_info.json`` (paths absolute)."""

    vehicle_id: str
    infrastructure_id: str
    vehicle_pointcloud: Path
    infrastructure_pointcloud: Path
    label: Path
    system_error_offset: tuple[float, float]
    scenario: str = ""


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise DataError(f"{what} not found", path)
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON ({error.msg} at line {error.lineno})", path) from None


def _number(value, path: Path, what: str) -> float:
    """A finite float from a number or a numeric string (DAIR camera labels store strings)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{what} is not a number: {value!r}", path) from None
    if not np.isfinite(out):
        raise DataError(f"{what} is not finite: {value!r}", path)
    return out


def _stem(relative: str) -> str:
    return Path(str(relative)).stem


def dairv2x_frames(root: str | Path) -> list[DAIRV2XFrame]:
    """Every frame pair listed in ``root/cooperative/data_info.json``, in file order; DataError for a missing or
    malformed file (not a list, an entry without a point cloud or label path, a malformed ``system_error_offset``)."""
    root = Path(root)
    path = root / _DATA_INFO
    if not root.is_dir():
        raise DataError("DAIR-V2X-C folder not found (expected cooperative-vehicle-infrastructure/)", root)
    info = _read_json(path, "cooperative data_info.json (DAIR-V2X-C index)")
    if not isinstance(info, list):
        raise DataError(f"expected a list of frame pairs, got a JSON {type(info).__name__}", path)
    batches = _vehicle_batches(root)
    frames = []
    for k, entry in enumerate(info):
        if not isinstance(entry, dict):
            raise DataError(f"entry {k} is a JSON {type(entry).__name__}, expected an object", path)
        missing = [key for key in _ENTRY_KEYS if not isinstance(entry.get(key), str)]
        if missing:
            raise DataError(f"entry {k} has no {', '.join(missing)}", path)
        offset = entry.get("system_error_offset", {"delta_x": 0.0, "delta_y": 0.0})
        if not isinstance(offset, dict) or not {"delta_x", "delta_y"} <= offset.keys():
            raise DataError(f"entry {k}: system_error_offset must be {{delta_x, delta_y}}, got {offset!r}", path)
        veh_pcd, inf_pcd = entry["vehicle_pointcloud_path"], entry["infrastructure_pointcloud_path"]
        frames.append(
            DAIRV2XFrame(
                vehicle_id=_stem(entry.get("vehicle_image_path") or veh_pcd),
                infrastructure_id=_stem(entry.get("infrastructure_image_path") or inf_pcd),
                vehicle_pointcloud=root / veh_pcd,
                infrastructure_pointcloud=root / inf_pcd,
                label=root / entry["cooperative_label_path"],
                system_error_offset=(
                    _number(offset["delta_x"], path, f"entry {k} system_error_offset.delta_x"),
                    _number(offset["delta_y"], path, f"entry {k} system_error_offset.delta_y"),
                ),
                scenario=batches.get(_stem(veh_pcd), ""),
            )
        )
    return frames


def _vehicle_batches(root: Path) -> dict[str, str]:
    """Vehicle frame id -> ``batch_id`` from the optional ``vehicle-side/data_info.json`` (entries without the two
    keys are skipped: the file only names segments here)."""
    path = root / "vehicle-side" / "data_info.json"
    if not path.is_file():
        return {}
    info = _read_json(path, "vehicle-side data_info.json")
    if not isinstance(info, list):
        raise DataError(f"expected a list of vehicle frames, got a JSON {type(info).__name__}", path)
    return {
        _stem(e["pointcloud_path"]): str(e["batch_id"])
        for e in info
        if isinstance(e, dict) and isinstance(e.get("pointcloud_path"), str) and "batch_id" in e
    }


def _split_ids(root: Path, split: str, split_file: str | Path | None) -> list[str]:
    """Vehicle frame ids of ``split``: CoAlign's ``<split>.json`` (a list of ids) or DAIR-V2X's
    ``cooperative-split-data.json`` (``{"cooperative_split": {split: [...]}}``)."""
    path = Path(split_file) if split_file is not None else root / f"{split}.json"
    if not path.is_file():
        raise DataError(
            f"split file for {split!r} not found (CoAlign's {split}.json: a list of vehicle frame ids; or pass "
            "split_file=, or split=None for every frame)",
            path,
        )
    data = _read_json(path, "split file")
    if isinstance(data, dict):
        if "cooperative_split" in data:
            data = data["cooperative_split"]
        if split not in data:
            raise DataError(f"no {split!r} list in the split file (keys: {', '.join(map(str, data))})", path)
        data = data[split]
    if not isinstance(data, list) or not all(isinstance(i, (str, int)) for i in data):
        raise DataError("expected a list of vehicle frame ids", path)
    return [f"{i:06d}" if isinstance(i, int) else i for i in data]


def _matrix(calib, path: Path, nested: str | None = None) -> np.ndarray:
    """The 4x4 matrix of a DAIR calibration json: ``rotation`` (3x3) and ``translation`` (3x1 or 3), at the top
    level or under ``nested`` (``lidar_to_novatel`` keeps them under ``transform``)."""
    if nested is not None and isinstance(calib, dict) and isinstance(calib.get(nested), dict):
        calib = calib[nested]
    if not isinstance(calib, dict) or "rotation" not in calib or "translation" not in calib:
        raise DataError("calibration needs 'rotation' (3x3) and 'translation' (3x1)", path)
    try:
        rotation = np.asarray(calib["rotation"], dtype=np.float64)
        translation = np.asarray(calib["translation"], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("calibration rotation/translation must be numbers", path) from None
    if rotation.shape != (3, 3):
        raise DataError(f"rotation must be 3x3, got shape {rotation.shape}", path)
    if translation.size != 3:
        raise DataError(f"translation must have 3 numbers, got shape {translation.shape}", path)
    if not (np.isfinite(rotation).all() and np.isfinite(translation).all()):
        raise DataError("calibration has NaN or inf", path)
    matrix = np.eye(4)
    matrix[:3, :3], matrix[:3, 3] = rotation, translation.reshape(3)
    return matrix


def corners_to_boxes(corners) -> np.ndarray:
    """(M, 8, 3) corners (first 4 the bottom face, corners 0, 1, 4, 5 at the front: DAIR-V2X's and OpenCOOD's
    orders both) -> (M, 7) ``[x, y, z, l, w, h, yaw]`` (CoAlign ``box_utils.corner_to_center``, heading from the mean
    front-minus-back vector)."""
    c = np.asarray(corners, dtype=np.float64).reshape(-1, 8, 3)
    centre = c.mean(axis=1)
    front_back = c[:, [0, 1, 4, 5], :2] - c[:, [3, 2, 7, 6], :2]  # four edges along the heading
    side = c[:, [0, 2, 4, 6], :2] - c[:, [1, 3, 5, 7], :2]  # four edges across it
    length = np.linalg.norm(front_back, axis=-1).mean(axis=1)
    width = np.linalg.norm(side, axis=-1).mean(axis=1)
    height = np.abs(c[:, 4:, 2] - c[:, :4, 2]).mean(axis=1)
    heading = front_back.mean(axis=1)
    yaw = np.arctan2(heading[:, 1], heading[:, 0])
    return np.concatenate([centre, np.stack([length, width, height, yaw], axis=1)], axis=1)


def _box_corners(centre: np.ndarray, lwh: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """(M, 8, 3) corners in DAIR-V2X's order of boxes rotated by ``yaw`` about +z."""
    local = _DAIR_CORNERS[None] * (lwh[:, None, :] / 2)
    cos, sin = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = cos * local[..., 0] - sin * local[..., 1]
    y = sin * local[..., 0] + cos * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + centre[:, None, :]


def _world_corners(labels, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """World corners (M, 8, 3) of the vehicle-class objects of a cooperative label file and their positions in it."""
    if not isinstance(labels, list):
        raise DataError(f"a label file is a list of objects, got a JSON {type(labels).__name__}", path)
    corners, ids = [], []
    for k, obj in enumerate(labels):
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise DataError(f"object {k} has no 'type'", path)
        if obj["type"].lower() not in {c.lower() for c in VEHICLE_CLASSES}:
            continue
        if "world_8_points" in obj:
            try:
                box = np.asarray(obj["world_8_points"], dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"object {k}: world_8_points must be 8 [x, y, z] numbers", path) from None
            if box.shape != (8, 3) or not np.isfinite(box).all():
                raise DataError(f"object {k}: world_8_points must be 8 finite [x, y, z], got shape {box.shape}", path)
            size = np.linalg.norm(box[[0, 1, 0]] - box[[3, 0, 4]], axis=-1)  # l, w, h edges
        else:
            dims, loc = obj.get("3d_dimensions"), obj.get("3d_location")
            if not isinstance(dims, dict) or not isinstance(loc, dict) or "rotation" not in obj:
                raise DataError(
                    f"object {k} needs world_8_points or 3d_dimensions {{h, w, l}}, 3d_location {{x, y, z}} and "
                    "rotation",
                    path,
                )
            try:
                size = np.array([_number(dims[key], path, f"object {k} 3d_dimensions.{key}") for key in "lwh"])
                centre = np.array([_number(loc[key], path, f"object {k} 3d_location.{key}") for key in "xyz"])
            except KeyError as error:
                raise DataError(f"object {k}: missing {error.args[0]!r} in 3d_dimensions/3d_location", path) from None
            yaw = _number(obj["rotation"], path, f"object {k} rotation")
            box = _box_corners(centre[None], size[None], np.array([yaw]))[0]
        if np.any(size <= 0):  # zero-size boxes are skipped by CoAlign and DAIR-V2X
            continue
        corners.append(box)
        ids.append(k)
    return np.asarray(corners, dtype=np.float64).reshape(-1, 8, 3), np.asarray(ids, dtype=np.int64)


@DATASETS.register_module()
class DAIRV2XScenes(Dataset):
    """DAIR-V2X-C cooperative samples (the SAMPLE dicts of the perception3d readers): the vehicle is the ego (agent
    id 0), the infrastructure agent -1 (``infrastructure`` True) when within ``comm_range`` metres (xy distance of
    the clean poses; CoAlign's DAIR configs use 100).

    Args:
        root: the ``cooperative-vehicle-infrastructure`` folder.
        split: ``"train"`` / ``"val"`` (CoAlign's ``<root>/<split>.json``, or the ``split_file`` given), or None for
            every frame of ``cooperative/data_info.json``.
        split_file: a CoAlign split list or DAIR-V2X's ``cooperative-split-data.json``.
        noise: a ``PoseNoise`` (``noise.py``) applied to the poses with a generator seeded by (``seed``, index), so
            items are reproducible and differ; ``poses_clean`` keeps the true poses.
        point_cloud_range: GT boxes are kept when their centre is inside its x/y range.

    DAIR-V2X-C pairs each vehicle frame with the infrastructure frame nearest in time, so its real asynchrony is in
    the data; ``delays`` is 0 for both agents.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        split_file: str | Path | None = None,
        noise=None,
        seed: int = 0,
        point_cloud_range: Sequence[float] = DAIRV2X_RANGE,
        comm_range: float = 100.0,
    ):
        self.root = Path(root)
        frames = dairv2x_frames(self.root)
        if split is not None:
            by_id = {frame.vehicle_id: frame for frame in frames}
            ids = _split_ids(self.root, split, split_file)
            unknown = [i for i in ids if i not in by_id]
            if unknown:
                shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
                raise DataError(
                    f"{len(unknown)} vehicle frame id(s) of split {split!r} are not in {_DATA_INFO}: {shown}",
                    Path(split_file) if split_file is not None else self.root / f"{split}.json",
                )
            frames = [by_id[i] for i in ids]
        if len(point_cloud_range) != 6:
            raise ValueError(f"point_cloud_range has 6 numbers (x0, y0, z0, x1, y1, z1), got {point_cloud_range}")
        self.frames = frames
        self.split = split
        self.noise = noise
        self.seed = int(seed)
        self.point_cloud_range = tuple(float(v) for v in point_cloud_range)
        self.comm_range = float(comm_range)

    def __len__(self) -> int:
        return len(self.frames)

    def lidar_to_world(self, index: int) -> np.ndarray:
        """(2, 4, 4) LiDAR-to-world matrices of frame ``index`` (vehicle, infrastructure with the system error
        offset applied), straight from the calibration files."""
        frame = self.frames[index]
        veh_calib = self.root / "vehicle-side" / "calib"
        l2n_path = veh_calib / "lidar_to_novatel" / f"{frame.vehicle_id}.json"
        n2w_path = veh_calib / "novatel_to_world" / f"{frame.vehicle_id}.json"
        inf_path = self.root / "infrastructure-side/calib/virtuallidar_to_world" / f"{frame.infrastructure_id}.json"
        lidar_to_novatel = _matrix(_read_json(l2n_path, "vehicle lidar_to_novatel calibration"), l2n_path, "transform")
        novatel_to_world = _matrix(_read_json(n2w_path, "vehicle novatel_to_world calibration"), n2w_path)
        infrastructure = _matrix(_read_json(inf_path, "infrastructure virtuallidar_to_world calibration"), inf_path)
        infrastructure[:2, 3] += frame.system_error_offset
        return np.stack([novatel_to_world @ lidar_to_novatel, infrastructure])

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        index %= len(self)
        frame = self.frames[index]
        poses_clean = matrix_to_pose(self.lidar_to_world(index))
        use_infra = bool(np.hypot(*(poses_clean[1, :2] - poses_clean[0, :2])) <= self.comm_range)
        count = 2 if use_infra else 1
        poses_clean = poses_clean[:count]
        clouds = [frame.vehicle_pointcloud, frame.infrastructure_pointcloud][:count]
        for path in clouds:
            if not path.is_file():
                raise DataError(f"point cloud named in {_DATA_INFO} not found", path)
        points = [np.ascontiguousarray(read_pcd(path), dtype=np.float32) for path in clouds]

        corners, object_ids = _world_corners(_read_json(frame.label, "cooperative label"), frame.label)
        world_to_ego = np.linalg.inv(pose_to_matrix(poses_clean[0]))
        corners = corners @ world_to_ego[:3, :3].T + world_to_ego[:3, 3]
        boxes = corners_to_boxes(corners)
        x0, y0, _, x1, y1, _ = self.point_cloud_range
        keep = (boxes[:, 0] >= x0) & (boxes[:, 0] <= x1) & (boxes[:, 1] >= y0) & (boxes[:, 1] <= y1)

        poses = poses_clean.copy()
        if self.noise is not None:
            poses = np.asarray(self.noise.apply(poses, np.random.default_rng([self.seed, index])), dtype=np.float64)
        return {
            "scenario": frame.scenario,
            "frame": frame.vehicle_id,
            "ego_id": 0,
            "agent_ids": [0, -1][:count],
            "infrastructure": np.array([False, True][:count]),
            "points": points,
            "poses": poses,
            "poses_clean": poses_clean,
            "delays": np.zeros(count, dtype=np.int64),
            "gt_boxes": boxes[keep].astype(np.float32),
            "object_ids": object_ids[keep],
        }


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _calib(matrix: np.ndarray) -> dict:
    return {"rotation": matrix[:3, :3].tolist(), "translation": matrix[:3, 3:4].tolist()}


def write_sample_dataset(out: str | Path, frames: int = 3, seed: int = 0) -> Path:
    """Write a tiny DAIR-V2X-C layout under ``out`` and return it: ``frames`` frame pairs (data_info, cooperative
    labels in the world frame, vehicle lidar_to_novatel + novatel_to_world and infrastructure virtuallidar_to_world
    calibrations with a non-zero ``system_error_offset`` already subtracted from the infrastructure translation, so
    the corrected pose is the true one), binary PCD clouds holding a ground plane and points inside every object
    seen from both agents, CoAlign's ``train.json`` / ``val.json`` (the last frame for val) and a
    ``vehicle-side/data_info.json`` with batch ids. Images are not written (the reader does not use them). Four
    vehicles and one pedestrian (which the reader drops) per frame."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    root = Path(out)
    rng = np.random.default_rng(seed)
    lidar_to_novatel = np.eye(4)
    lidar_to_novatel[:3, :3] = _rot_z(-np.pi / 2)  # DAIR's vehicle LiDAR is turned about 90 degrees from the GNSS
    lidar_to_novatel[:3, 3] = (0.0, 1.3, 1.9)
    ground = 8.0  # world z of the road
    info, vehicle_info, ids = [], [], []
    for k in range(frames):
        vid, iid = f"{10 + k:06d}", f"{5000 + k:06d}"
        ids.append(vid)
        novatel_to_world = np.eye(4)
        novatel_to_world[:3, :3] = _rot_z(rng.uniform(-np.pi, np.pi))
        novatel_to_world[:3, 3] = (120.0 + 1.5 * k, -40.0 + 0.3 * k, ground + 0.4)
        vehicle = novatel_to_world @ lidar_to_novatel
        infra = np.eye(4)
        infra[:3, :3] = _rot_z(rng.uniform(-np.pi, np.pi))
        infra[:3, 3] = vehicle[:3, 3] + (rng.uniform(20, 35), rng.uniform(-15, 15), 0.0)
        infra[2, 3] = ground + 5.5  # pole height
        offset = rng.uniform(-0.5, 0.5, 2)
        written_infra = infra.copy()
        written_infra[:2, 3] -= offset

        kinds = ["Car", "Van", "Truck", "Bus", "Pedestrian"]
        lwh = np.array([[4.5, 1.9, 1.6], [5.0, 2.0, 2.0], [8.0, 2.5, 3.0], [11.0, 2.8, 3.2], [0.6, 0.6, 1.7]])
        local = np.stack([rng.uniform(-35, 35, 5), rng.uniform(-18, 18, 5)], axis=1)
        centres = np.concatenate([local, np.zeros((5, 1))], axis=1) @ vehicle[:3, :3].T + vehicle[:3, 3]
        centres[:, 2] = ground + lwh[:, 2] / 2
        yaws = rng.uniform(-np.pi, np.pi, 5)
        corners = _box_corners(centres, lwh, yaws)
        labels = [
            {
                "type": kind,
                "3d_dimensions": {"h": float(d[2]), "w": float(d[1]), "l": float(d[0])},
                "3d_location": {"x": float(c[0]), "y": float(c[1]), "z": float(c[2])},
                "rotation": float(yaw),
                "world_8_points": box.tolist(),
            }
            for kind, d, c, yaw, box in zip(kinds, lwh, centres, yaws, corners)
        ]
        # world points: the road around both agents and 150 points inside each object
        road = np.concatenate(
            [
                np.column_stack([a[:2, 3] + rng.uniform(-45, 45, (1200, 2)), np.full(1200, ground)])
                for a in (vehicle, infra)
            ]
        )
        inside = rng.uniform(-0.5, 0.5, (5, 150, 3)) * lwh[:, None, :]
        cos, sin = np.cos(yaws)[:, None], np.sin(yaws)[:, None]
        objects = (
            np.stack(
                [
                    cos * inside[..., 0] - sin * inside[..., 1],
                    sin * inside[..., 0] + cos * inside[..., 1],
                    inside[..., 2],
                ],
                axis=-1,
            )
            + centres[:, None, :]
        )
        world = np.concatenate([road, objects.reshape(-1, 3)])
        for pose, folder, name in ((vehicle, "vehicle-side", vid), (infra, "infrastructure-side", iid)):
            inv = np.linalg.inv(pose)
            xyz = world @ inv[:3, :3].T + inv[:3, 3]
            cloud = np.column_stack([xyz, rng.uniform(0, 1, len(xyz))]).astype(np.float32)
            (root / folder / "velodyne").mkdir(parents=True, exist_ok=True)
            write_pcd(root / folder / "velodyne" / f"{name}.pcd", cloud, data="binary", intensity="intensity")

        _write_json(root / "cooperative/label_world" / f"{vid}.json", labels)
        veh_calib = root / "vehicle-side/calib"
        _write_json(veh_calib / "novatel_to_world" / f"{vid}.json", _calib(novatel_to_world))
        _write_json(veh_calib / "lidar_to_novatel" / f"{vid}.json", {"transform": _calib(lidar_to_novatel)})
        _write_json(root / "infrastructure-side/calib/virtuallidar_to_world" / f"{iid}.json", _calib(written_infra))
        info.append(
            {
                "vehicle_image_path": f"vehicle-side/image/{vid}.jpg",
                "vehicle_pointcloud_path": f"vehicle-side/velodyne/{vid}.pcd",
                "infrastructure_image_path": f"infrastructure-side/image/{iid}.jpg",
                "infrastructure_pointcloud_path": f"infrastructure-side/velodyne/{iid}.pcd",
                "cooperative_label_path": f"cooperative/label_world/{vid}.json",
                "system_error_offset": {"delta_x": float(offset[0]), "delta_y": float(offset[1])},
            }
        )
        vehicle_info.append(
            {
                "image_path": f"image/{vid}.jpg",
                "pointcloud_path": f"velodyne/{vid}.pcd",
                "calib_lidar_to_novatel_path": f"calib/lidar_to_novatel/{vid}.json",
                "calib_novatel_to_world_path": f"calib/novatel_to_world/{vid}.json",
                "batch_id": "0",
            }
        )
    _write_json(root / _DATA_INFO, info)
    _write_json(root / "vehicle-side/data_info.json", vehicle_info)
    _write_json(root / "train.json", ids[:-1] if frames > 1 else ids)
    _write_json(root / "val.json", ids[-1:])
    return root
