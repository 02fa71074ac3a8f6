"""Ray-cast LiDAR for the synthetic OPV2V scenes: the sensor model, the ray caster and one sweep of a scene.

LiDAR (like CARLA's ``sensor.lidar.ray_cast``, `LidarSpec`): a rotating scan of ``channels`` beams evenly
spread between ``lower_fov`` and ``upper_fov`` and one column every ``azimuth_resolution`` degrees (random phase per
sweep); each ray returns its nearest hit on the ground plane or on an oriented box (slab test, `cast_rays`), so
vehicles hide what lies behind them. Range noise N(0, ``range_noise``), CARLA's drop-off model (a
``dropout`` fraction of all points, and half of the points weaker than intensity 0.05), and intensity
``reflectivity * (0.3 + 0.7 cos(incidence)) * exp(-0.004 r)`` (CARLA's atmospheric attenuation; car paint, walls and
pavement brighter than asphalt). Points are in the sensor frame (x forward, y left, z up), so ground
points of a vehicle's LiDAR lie at z = -1.9 m.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diffusekit.perception3d.geometry import pose_to_matrix

__all__ = [
    "FPS",
    "INFRA_LIDAR",
    "VEHICLE_LIDAR",
    "LidarSpec",
    "cast_rays",
    "scan",
]

FPS = 10  # saved frames per second (OPV2V: 10 Hz), one LiDAR rotation per frame
_GROUND, _NOTHING = -1, -2  # `cast_rays` surface codes besides box indices


@dataclass(frozen=True)
class LidarSpec:
    """A rotating LiDAR like CARLA's ``sensor.lidar.ray_cast`` (angles in degrees, lengths in metres).

    ``height`` is the sensor's height above the ground; ``dropout`` CARLA's ``dropoff_general_rate``; points weaker
    than ``intensity_limit`` are dropped with probability ``zero_intensity_drop`` (``dropoff_intensity_limit`` and
    ``dropoff_zero_intensity``); ``attenuation`` is ``atmosphere_attenuation_rate``."""

    channels: int = 32
    lower_fov: float = -25.0
    upper_fov: float = 5.0
    azimuth_resolution: float = 0.5
    max_range: float = 100.0
    height: float = 1.9
    range_noise: float = 0.02
    dropout: float = 0.04
    intensity_limit: float = 0.05
    zero_intensity_drop: float = 0.5
    attenuation: float = 0.004

    def __post_init__(self):
        if self.channels < 1 or not 0 < self.azimuth_resolution <= 90:
            raise ValueError(f"a LiDAR needs channels >= 1 and 0 < azimuth_resolution <= 90, got {self}")
        if not (self.lower_fov < self.upper_fov or self.channels == 1) or self.max_range <= 0 or self.height <= 0:
            raise ValueError(f"a LiDAR needs lower_fov < upper_fov, max_range > 0 and height > 0, got {self}")

    def directions(self, phase: float = 0.0) -> np.ndarray:
        """Unit ray directions (channels * columns, 3) in the sensor frame, beam-major (ray = beam * columns +
        column), column j at azimuth ``phase + j * azimuth_resolution`` (radians for ``phase``)."""
        elevation = np.radians(np.linspace(self.lower_fov, self.upper_fov, self.channels))
        azimuth = phase + np.arange(self.columns) * math.radians(self.azimuth_resolution)
        ce = np.cos(elevation)[:, None]
        d = np.stack(
            np.broadcast_arrays(ce * np.cos(azimuth), ce * np.sin(azimuth), np.sin(elevation)[:, None]), axis=-1
        )
        return d.reshape(-1, 3)

    @property
    def columns(self) -> int:
        return int(round(360.0 / self.azimuth_resolution))

    def protocol(self) -> dict:
        """CARLA-style sensor settings for ``data_protocol.yaml``."""
        return {
            "channels": self.channels,
            "range": float(self.max_range),
            "upper_fov": float(self.upper_fov),
            "lower_fov": float(self.lower_fov),
            "rotation_frequency": FPS,
            "points_per_second": self.channels * self.columns * FPS,
            "height": float(self.height),
            "noise_stddev": float(self.range_noise),
            "dropoff_general_rate": float(self.dropout),
            "dropoff_intensity_limit": float(self.intensity_limit),
            "dropoff_zero_intensity": float(self.zero_intensity_drop),
            "atmosphere_attenuation_rate": float(self.attenuation),
        }


VEHICLE_LIDAR = LidarSpec()
INFRA_LIDAR = LidarSpec(lower_fov=-40.0, upper_fov=0.0, height=5.5)


def cast_rays(
    origin,
    directions,
    boxes,
    ground_z: float = 0.0,
    max_range: float = 100.0,
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of each ray from ``origin`` (3,) along unit ``directions`` (R, 3) on the ground plane
    ``z = ground_z`` or on oriented ``boxes`` (B, 7) [x, y, z, l, w, h, yaw] (z = centre, yaw about +z).

    Boxes use the slab test (Kay and Kajiya 1986) in each box's frame: the ray enters the box at the largest of the
    three per-axis entry distances if that is below the smallest exit distance. ``pairs`` (ray indices, box
    indices) restricts the test to candidate pairs (`scan` culls by azimuth and elevation); by default every ray
    meets every box. A ray starting inside a box does not hit that box. Returns distance (R,) (inf where nothing
    lies within ``max_range``), surface (R,) (box index, -1 ground, -2 nothing) and the cosine of the incidence
    angle (R,)."""
    origin = np.asarray(origin, dtype=np.float64)
    d = np.asarray(directions, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    n = len(d)
    distance = np.full(n, np.inf)
    surface = np.full(n, _NOTHING, dtype=np.int64)
    cosine = np.zeros(n)

    down = d[:, 2] < -1e-9
    t_ground = np.where(down, (ground_z - origin[2]) / np.where(down, d[:, 2], -1.0), np.inf)
    ground = down & (t_ground > 0) & (t_ground <= max_range)
    distance[ground] = t_ground[ground]
    surface[ground] = _GROUND
    cosine[ground] = -d[ground, 2]

    if len(boxes) == 0 or n == 0:
        return distance, surface, cosine
    if pairs is None:
        ray, box = np.divmod(np.arange(n * len(boxes)), len(boxes))
    else:
        ray, box = (np.asarray(p, dtype=np.int64) for p in pairs)
    if ray.size == 0:
        return distance, surface, cosine
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    rel = origin - boxes[:, :3]  # the origin relative to each box centre, then turned into the box's frame
    o_box = (c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2])
    cb, sb = c[box], s[box]
    dx, dy = d[ray, 0], d[ray, 1]
    enter = np.full(len(ray), -np.inf)
    exit_ = np.full(len(ray), np.inf)
    face_cos = np.zeros(len(ray))
    for axis, direction in enumerate((cb * dx + sb * dy, cb * dy - sb * dx, d[ray, 2])):
        direction[np.abs(direction) < 1e-12] = 1e-12  # parallel to the slabs: infinite entry/exit of the right sign
        inverse = 1.0 / direction
        half = boxes[box, 3 + axis] / 2
        o = o_box[axis][box]
        t1 = (-half - o) * inverse
        t2 = (half - o) * inverse
        near = np.minimum(t1, t2)
        later = near > enter
        enter[later] = near[later]
        face_cos[later] = np.abs(direction[later])  # |cos| between the ray and the entry face's normal
        np.minimum(exit_, np.maximum(t1, t2), out=exit_)
    hit = (enter <= exit_) & (enter > 1e-6) & (enter <= max_range)
    if not hit.any():
        return distance, surface, cosine
    ray, box, enter, face_cos = ray[hit], box[hit], enter[hit], face_cos[hit]
    nearest = distance.copy()  # ground distance or inf
    np.minimum.at(nearest, ray, enter)
    win = enter == nearest[ray]  # the nearest box of each ray that beats the ground
    r = ray[win]
    distance[r] = enter[win]
    surface[r] = box[win]
    cosine[r] = face_cos[win]
    return distance, surface, cosine


def _corners(boxes: np.ndarray) -> np.ndarray:
    """The 8 corners (B, 8, 3) of boxes (B, 7) turned by their yaw about +z (any order)."""
    signs = np.array(np.meshgrid([-0.5, 0.5], [-0.5, 0.5], [-0.5, 0.5], indexing="ij")).reshape(3, 8).T
    local = boxes[:, None, 3:6] * signs[None]
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = c * local[..., 0] - s * local[..., 1] + boxes[:, None, 0]
    y = s * local[..., 0] + c * local[..., 1] + boxes[:, None, 1]
    return np.stack([x, y, local[..., 2] + boxes[:, None, 2]], axis=-1)


def _candidate_pairs(
    boxes: np.ndarray, world_to_sensor: np.ndarray, lidar: LidarSpec, phase: float
) -> tuple[np.ndarray, np.ndarray]:
    """(ray, box) candidate pairs of a `LidarSpec.directions` grid: per box, only the columns within its azimuth
    interval seen from the sensor (spanned by its 8 corners) and the beams within a bound on its elevation interval
    (corner heights over the nearest and farthest horizontal distance of any of its points), one beam and one column
    of margin. Boxes beyond the range are dropped; boxes around the sensor's vertical axis get every column."""
    columns, channels = lidar.columns, lidar.channels
    res = math.radians(lidar.azimuth_resolution)
    corners = _corners(boxes) @ world_to_sensor[:3, :3].T + world_to_sensor[:3, 3]  # (B, 8, 3)
    centre = boxes[:, :3] @ world_to_sensor[:3, :3].T + world_to_sensor[:3, 3]
    reach = np.linalg.norm(boxes[:, 3:6], axis=1) / 2  # every point of the box lies this close to its centre
    distance_xy = np.hypot(centre[:, 0], centre[:, 1])
    keep = distance_xy - reach <= lidar.max_range
    around = distance_xy <= reach + 0.1  # the box may surround the sensor's vertical: azimuth interval undefined
    mid = np.arctan2(centre[:, 1], centre[:, 0])
    offset = np.arctan2(corners[..., 1], corners[..., 0]) - mid[:, None]
    offset = (offset + np.pi) % (2 * np.pi) - np.pi
    col_lo = np.floor((mid + offset.min(axis=1) - phase) / res).astype(np.int64) - 1
    col_hi = np.ceil((mid + offset.max(axis=1) - phase) / res).astype(np.int64) + 1
    n_col = np.where(around, columns, np.minimum(col_hi - col_lo + 1, columns))

    near = np.maximum(distance_xy - reach, 1e-3)
    far = distance_xy + reach
    z_lo, z_hi = corners[..., 2].min(axis=1), corners[..., 2].max(axis=1)
    e_lo = np.arctan2(z_lo, np.where(z_lo > 0, far, near))
    e_hi = np.arctan2(z_hi, np.where(z_hi > 0, near, far))
    first = math.radians(lidar.lower_fov)
    step = math.radians(lidar.upper_fov - lidar.lower_fov) / max(channels - 1, 1)
    beam_lo = np.clip(np.floor((e_lo - first) / step).astype(np.int64) - 1, 0, channels)
    beam_hi = np.clip(np.ceil((e_hi - first) / step).astype(np.int64) + 1, -1, channels - 1)
    n_beam = np.maximum(beam_hi - beam_lo + 1, 0)
    count = np.where(keep, n_beam * n_col, 0)

    box = np.repeat(np.arange(len(boxes)), count)
    q = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count)  # index within the box's block
    width = n_col[box]
    beam = beam_lo[box] + q // width
    column = (col_lo[box] + q % width) % columns
    return beam * columns + column, box


def scan(scene, frame: int, agent, rng: np.random.Generator, noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One LiDAR sweep of ``agent`` at ``frame``: points (N, 4) float32 x, y, z, intensity in the agent's LiDAR frame
    and, per point, the index of the vehicle it hit (-1 static occluder, -2 ground). ``noise=False`` gives the
    noise-free, complete sweep (no range noise, no drop-off, no intensity jitter).

    ``scene`` is a `scene.Scene` and ``agent`` one of its agents (`scene.Agent`); this module does not import scene.py
    (scene.py builds on it) and uses only their ``pose``, ``occluders``, ``ground_reflectivity``, ``ground_z``,
    ``lidar`` and ``vehicle``."""
    lidar = agent.lidar
    pose = scene.pose(agent, frame)
    to_world = pose_to_matrix(pose)
    phase = float(rng.uniform(0.0, math.radians(lidar.azimuth_resolution)))
    local = lidar.directions(phase)
    world = local @ to_world[:3, :3].T
    boxes, owner, reflect = scene.occluders(frame, exclude=agent.vehicle)
    pairs = _candidate_pairs(boxes, np.linalg.inv(to_world), lidar, phase)
    distance, surface, cosine = cast_rays(to_world[:3, 3], world, boxes, scene.ground_z, lidar.max_range, pairs)
    hit = np.flatnonzero(surface != _NOTHING)
    distance, surface, cosine, local = distance[hit], surface[hit], cosine[hit], local[hit]
    on_ground = surface == _GROUND
    reflectivity = np.empty(len(hit))
    reflectivity[~on_ground] = reflect[surface[~on_ground]]
    ground_xy = to_world[:2, 3] + distance[on_ground, None] * world[hit[on_ground], :2]
    reflectivity[on_ground] = scene.ground_reflectivity(ground_xy)
    label = np.where(on_ground, -2, owner[np.maximum(surface, 0)])
    intensity = reflectivity * (0.3 + 0.7 * cosine) * np.exp(-lidar.attenuation * distance)
    if noise:
        distance = distance + rng.normal(0.0, lidar.range_noise, len(distance))
        intensity = intensity + rng.normal(0.0, 0.01, len(intensity))
    intensity = np.clip(intensity, 0.0, 1.0)
    if noise:
        kept = rng.random(len(distance)) >= lidar.dropout
        weak = intensity < lidar.intensity_limit
        kept &= ~weak | (rng.random(len(distance)) >= lidar.zero_intensity_drop)
        distance, local, intensity, label = distance[kept], local[kept], intensity[kept], label[kept]
    points = np.column_stack([distance[:, None] * local, intensity]).astype(np.float32)
    return points, label
