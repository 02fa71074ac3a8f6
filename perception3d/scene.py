"""Synthetic street scenes for the OPV2V-layout writer (synthetic.py): vehicles, occluders and recording agents.

Scene (road frame first, then turned and moved to a random place of the world; flat ground at a random height):
- a straight road or a crossing, 1-2 lanes of 3.5 m per direction, parking strips of 2.4 m, pavements; right-hand
  traffic. Parked cars line the kerbs; moving vehicles drive in the lanes at a constant speed and heading (per
  scenario 9-16 m/s per direction, a few percent per lane and vehicle, headings within 1 degree of the lane), so a
  delay of 2 frames (0.2 s) moves them 1.7-3.4 m. At a crossing the main road has the green light: the cross road's
  approaching traffic queues at the stop lines and its departing traffic drives away. Vehicles are cars, vans and
  trucks (l 3.8-5.5, w 1.7-2.2, h 1.4-2.2 m), each shaped as a lower body and a cabin (two boxes inside its
  annotated box); buildings, walls and lamp posts beside the road occlude but are not annotated.
- 2-4 connected vehicles (CAVs, positive CARLA-like actor ids) are cars moving on the main road that stay within
  `AGENT_SPREAD` metres of each other for the whole scenario; some scenarios also have one infrastructure unit
  (id -1, as in V2XSet) on a street corner with its LiDAR on a 5.5 m pole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from diffusekit.perception3d.lidar import FPS, INFRA_LIDAR, VEHICLE_LIDAR, LidarSpec

__all__ = [
    "AGENT_SPREAD",
    "FPS",
    "VEHICLE_KINDS",
    "Agent",
    "Scene",
    "make_scene",
]

# FPS (saved frames per second) comes from lidar.py: one LiDAR rotation per saved frame
CARLA_STEP = 2  # CARLA frame numbers between two saved frames (20 Hz simulation, fixed_delta_seconds 0.05)
LANE = 3.5  # lane width (m)
PARKING = 2.4  # parking strip width (m)
AGENT_SPREAD = 45.0  # every pair of agents stays this close (m) in every frame: OPV2V's 70 m range includes them

# kind: (probability, (l range), (w range), (h range)) in metres
VEHICLE_KINDS = {
    "car": (0.55, (3.8, 4.9), (1.70, 1.95), (1.40, 1.60)),
    "van": (0.30, (4.5, 5.3), (1.85, 2.10), (1.65, 2.00)),
    "truck": (0.15, (5.0, 5.5), (2.00, 2.20), (1.90, 2.20)),
}
# kind: body from clearance to beltline (fractions of h), cabin length and x offset (fractions of l), cabin width (of w)
_SHAPES = {
    "car": (0.13, 0.58, 0.55, -0.08, 0.90),
    "van": (0.12, 0.50, 0.78, -0.08, 0.95),
    "truck": (0.14, 0.45, 0.97, 0.00, 1.00),
}
_KIND_NAMES = tuple(VEHICLE_KINDS)
# surface reflectivities (intensity model); vehicle paint is drawn per vehicle
_ASPHALT, _PAVEMENT, _BUILDING, _WALL, _POLE = 0.15, 0.30, 0.45, 0.35, 0.50


@dataclass(frozen=True)
class Agent:
    """A recording agent: a CAV (``vehicle`` = its index in the scene's vehicles) or infrastructure (``vehicle`` =
    -1, fixed ``pose`` [x, y, z, roll, yaw, pitch] of its LiDAR, degrees)."""

    id: int
    vehicle: int
    lidar: LidarSpec
    pose: tuple[float, ...] | None = None

    @property
    def infrastructure(self) -> bool:
        return self.vehicle < 0


@dataclass
class Scene:
    """One scenario in the world frame (metres, radians; flat ground at ``ground_z``).

    Vehicles: ``ids`` (V,), ``kinds`` (V,) indices into `VEHICLE_KINDS`, ``sizes`` (V, 3) l, w, h, ``paint`` (V,)
    reflectivity, ``xy`` (F, V, 2) ground positions per frame, ``yaw`` (V,) headings, ``speed`` (V,) m/s.
    Static occluders: ``statics`` (S, 7) boxes [x, y, z, l, w, h, yaw] (z = box centre) with ``static_reflectivity``.
    ``road_to_world`` (3, 3) maps road-frame xy (homogeneous) to the world; ``carriageways`` holds per road
    (road-frame axis, half width of the carriageway) for the ground reflectivity."""

    name: str
    road: str
    ground_z: float
    ids: np.ndarray
    kinds: np.ndarray
    sizes: np.ndarray
    paint: np.ndarray
    xy: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    statics: np.ndarray
    static_reflectivity: np.ndarray
    agents: list[Agent]
    road_to_world: np.ndarray
    carriageways: list[tuple[int, float]]
    gps_sigma: float
    info: dict = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return self.xy.shape[0]

    def boxes(self, frame: int) -> np.ndarray:
        """The vehicles' annotated boxes (V, 7) [x, y, z, l, w, h, yaw] in the world at ``frame`` (z = centre)."""
        z = self.ground_z + self.sizes[:, 2] / 2
        return np.column_stack([self.xy[frame], z, self.sizes, self.yaw])

    def pose(self, agent: Agent, frame: int) -> np.ndarray:
        """The agent's LiDAR pose [x, y, z, roll, yaw, pitch] (degrees) at ``frame``."""
        if agent.infrastructure:
            return np.asarray(agent.pose, dtype=np.float64)
        x, y = self.xy[frame, agent.vehicle]
        return np.array([x, y, self.ground_z + agent.lidar.height, 0.0, math.degrees(self.yaw[agent.vehicle]), 0.0])

    def occluders(self, frame: int, exclude: int = -1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Everything a LiDAR can hit besides the ground at ``frame``: boxes (B, 7), owner (B,) (vehicle index, or
        -1 for static occluders) and reflectivity (B,). Each vehicle is two boxes (body and cabin, `_SHAPES`);
        vehicle ``exclude`` (the scanning agent's own) is left out."""
        keep = np.flatnonzero(np.arange(len(self.ids)) != exclude)
        shape = np.array([_SHAPES[_KIND_NAMES[k]] for k in self.kinds[keep]]).reshape(-1, 5)
        l, w, h = self.sizes[keep].T
        clearance, belt, cabin_l, cabin_x, cabin_w = (shape[:, i] for i in range(5))
        yaw = self.yaw[keep]
        x, y = self.xy[frame, keep].T
        body = np.column_stack([x, y, self.ground_z + h * (clearance + belt) / 2, l, w, h * (belt - clearance), yaw])
        shift = cabin_x * l
        cabin = np.column_stack(
            [
                x + shift * np.cos(yaw),
                y + shift * np.sin(yaw),
                self.ground_z + h * (belt + 1) / 2,
                cabin_l * l,
                cabin_w * w,
                h * (1 - belt),
                yaw,
            ]
        )
        boxes = np.concatenate([body, cabin, self.statics])
        owner = np.concatenate([keep, keep, np.full(len(self.statics), -1)])
        reflect = np.concatenate([self.paint[keep], 0.6 * self.paint[keep], self.static_reflectivity])
        return boxes, owner, reflect

    def ground_reflectivity(self, xy: np.ndarray) -> np.ndarray:
        """Asphalt on the carriageways, pavement elsewhere, for world points (N, 2)."""
        inverse = np.linalg.inv(self.road_to_world)
        road = xy @ inverse[:2, :2].T + inverse[:2, 2]
        on_road = np.zeros(len(xy), dtype=bool)
        for axis, half in self.carriageways:
            on_road |= np.abs(road[:, 1 - axis]) <= half
        return np.where(on_road, _ASPHALT, _PAVEMENT)


# ---------------------------------------------------------------------------------------------------------------------
# scene building (road frame: main road along x, crossing road along y, right-hand traffic)


def _draw_vehicle(rng: np.random.Generator) -> tuple[int, float, float, float]:
    """(kind index, l, w, h) of a random vehicle."""
    probs = np.array([v[0] for v in VEHICLE_KINDS.values()])
    kind = int(rng.choice(len(probs), p=probs / probs.sum()))
    _, ls, ws, hs = VEHICLE_KINDS[_KIND_NAMES[kind]]
    return kind, float(rng.uniform(*ls)), float(rng.uniform(*ws)), float(rng.uniform(*hs))


class _Traffic:
    """Vehicles collected in the road frame: position at the middle frame, heading, speed."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.rows: list[tuple] = []  # (kind, l, w, h, x, y, heading, speed, group)

    def line(
        self,
        start: tuple[float, float],
        heading: float,
        span: tuple[float, float],
        gap: tuple[float, float],
        speed: float = 0.0,
        jitter: float = 0.0,
        skip: float = 0.0,
        backwards: bool = False,
        group: str = "",
        lateral: float = 0.0,
    ) -> None:
        """Vehicles along the line ``start + s * (cos heading, sin heading)``, s in ``span``, bumper gaps drawn from
        ``gap`` (exponential above its minimum when ``gap[1]`` is the mean), from the lower end (or the upper end
        when ``backwards``, a queue at a stop line); each slot is left empty with probability ``skip``."""
        rng, (lo, hi) = self.rng, span
        u = np.array([math.cos(heading), math.sin(heading)])
        normal = np.array([-u[1], u[0]])
        s = hi if backwards else lo + rng.uniform(0.0, gap[1])
        while lo <= s <= hi:
            kind, length, width, height = _draw_vehicle(rng)
            half = length / 2 * (-1 if backwards else 1)
            centre = s + half
            if not lo <= centre + half <= hi:
                break
            if rng.random() >= skip:
                pos = np.array(start) + centre * u + normal * rng.uniform(-lateral, lateral)
                yaw = heading + math.radians(rng.uniform(-jitter, jitter))
                v = speed * rng.uniform(0.98, 1.02) if speed > 0 else 0.0
                self.rows.append((kind, length, width, height, pos[0], pos[1], yaw, v, group))
            step = gap[0] + rng.exponential(max(gap[1] - gap[0], 0.5))
            s = centre + half + (-step if backwards else step)


def _buildings(
    rng: np.random.Generator, axis: int, edge: float, span: float, blocked: tuple[float, float] | None
) -> list[tuple]:
    """Static boxes (box7, reflectivity) along both sides of a road along ``axis`` (0: x, 1: y) whose pavement ends
    at ``edge``: buildings with gaps and empty lots, some lots walled; none in the ``blocked`` interval of the
    road's own coordinate (the other road's corridor)."""
    out = []
    for side in (-1.0, 1.0):
        s = -span + rng.uniform(0.0, 10.0)
        while s < span:
            length = rng.uniform(12.0, 45.0)
            a, b = s, s + length
            s = b + rng.uniform(3.0, 18.0)
            if blocked is not None and b > blocked[0] and a < blocked[1]:
                continue
            roll = rng.random()
            if roll < 0.15:
                continue  # an empty lot
            if roll < 0.30:
                depth, height, setback, reflect = 0.3, rng.uniform(1.5, 2.5), 0.3, _WALL
            else:
                depth, height, setback, reflect = rng.uniform(10.0, 25.0), rng.uniform(6.0, 30.0), 0.0, _BUILDING
            along, across = (a + b) / 2, side * (edge + setback + depth / 2)
            x, y = (along, across) if axis == 0 else (across, along)
            l, w = (length, depth) if axis == 0 else (depth, length)
            out.append(((x, y, height / 2, l, w, height, 0.0), reflect))
    return out


def _poles(rng: np.random.Generator, axis: int, at: float, span: float, blocked) -> list[tuple]:
    """Lamp posts (0.3 m square, 6-9 m tall) every 18-30 m on both pavements of a road along ``axis``."""
    out = []
    for side in (-1.0, 1.0):
        s = -span + rng.uniform(0.0, 20.0)
        while s < span:
            if blocked is None or not blocked[0] - 1 < s < blocked[1] + 1:
                height = rng.uniform(6.0, 9.0)
                x, y = (s, side * at) if axis == 0 else (side * at, s)
                out.append(((x, y, height / 2, 0.3, 0.3, height, 0.0), _POLE))
            s += rng.uniform(18.0, 30.0)
    return out


def _choose_cavs(
    rng: np.random.Generator, xy: np.ndarray, candidates: np.ndarray, count: int, fixed: np.ndarray | None
) -> list[int]:
    """Up to ``count`` vehicles, in random order among the ``candidates`` within 30 m of the road frame's origin
    along the road in the middle frame, whose pairwise distances (6 m at least) and distance to the ``fixed``
    infrastructure position stay within `AGENT_SPREAD` in every frame."""
    mid = xy.shape[0] // 2
    near = candidates[np.abs(xy[mid, candidates, 0]) < 30.0]
    if len(near) == 0:
        return []
    chosen: list[int] = []
    for index in rng.permutation(near):
        track = xy[:, index]
        ok = fixed is None or np.linalg.norm(track - fixed, axis=1).max() <= AGENT_SPREAD
        for other in chosen:
            gap = np.linalg.norm(track - xy[:, other], axis=1)
            ok = ok and gap.max() <= AGENT_SPREAD and gap.min() >= 6.0
        if ok:
            chosen.append(int(index))
        if len(chosen) == count:
            break
    return chosen


def make_scene(
    seed=0,
    frames: int = 6,
    road: str | None = None,
    infrastructure: bool | None = None,
    cavs: int | None = None,
    name: str = "scenario",
    lidar: LidarSpec = VEHICLE_LIDAR,
    infra_lidar: LidarSpec = INFRA_LIDAR,
) -> Scene:
    """A random street scene (module docstring) for ``seed`` (an int or a sequence of ints for
    ``np.random.default_rng``): ``road`` "straight" or "crossing", ``infrastructure`` whether an infrastructure unit
    records, ``cavs`` 2-4 connected vehicles; None draws them. Vehicles move for ``frames`` frames at `FPS`."""
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    if road not in (None, "straight", "crossing"):
        raise ValueError(f"road must be 'straight' or 'crossing', got {road!r}")
    if cavs is not None and not 1 <= cavs <= 6:
        raise ValueError(f"cavs must be 1 to 6, got {cavs}")
    for attempt in range(50):
        rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), attempt])
        scene = _try_scene(rng, frames, road, infrastructure, cavs, name, lidar, infra_lidar)
        if scene is not None:
            return scene
    raise RuntimeError(f"no scene with the requested agents found for seed {seed}")


def _try_scene(rng, frames, road, infrastructure, cavs, name, lidar, infra_lidar) -> Scene | None:
    road = road or ("crossing" if rng.random() < 0.5 else "straight")
    crossing = road == "crossing"
    if infrastructure is None:
        infrastructure = rng.random() < (0.7 if crossing else 0.25)
    cavs = cavs or int(rng.integers(2, 5))
    times = (np.arange(frames) - (frames - 1) / 2) / FPS
    duration = times[-1] - times[0]
    span = 115.0

    lanes_main = int(rng.integers(1, 3))
    half_main = lanes_main * LANE
    pave_main = rng.uniform(2.5, 5.0)
    edge_main = half_main + PARKING + pave_main
    lanes_cross = int(rng.integers(1, 3))
    half_cross = lanes_cross * LANE
    pave_cross = rng.uniform(2.5, 5.0)
    edge_cross = half_cross + PARKING + pave_cross

    traffic = _Traffic(rng)
    density = rng.uniform(12.0, 30.0)  # mean bumper gap of moving traffic (m)
    for direction in (1.0, -1.0):  # +x traffic keeps to y < 0
        base = rng.uniform(9.0, 16.0)
        for k in range(lanes_main):
            speed = base * rng.uniform(0.95, 1.05)
            start = (0.0, -direction * (k + 0.5) * LANE)
            heading = 0.0 if direction > 0 else math.pi
            traffic.line(
                start, heading, (-span, span), (4.0 + 0.05 * speed * duration, density), speed, 1.0, group="main"
            )
    no_parking = (-edge_cross - 6.0, edge_cross + 6.0) if crossing else None
    for side in (1.0, -1.0):
        occupancy = rng.uniform(0.25, 0.75)
        heading = 0.0 if side < 0 else math.pi
        for lo, hi in [(-span, span)] if no_parking is None else [(-span, no_parking[0]), (no_parking[1], span)]:
            traffic.line(
                (0.0, side * (half_main + PARKING / 2)),
                heading,
                (lo, hi) if side < 0 else (-hi, -lo),
                (0.8, 2.5),
                jitter=2.0,
                skip=1 - occupancy,
                lateral=0.15,
                group="parked",
            )
    if crossing:
        for direction in (1.0, -1.0):  # +y traffic keeps to x > 0
            base = rng.uniform(9.0, 16.0)
            heading = math.pi / 2 if direction > 0 else -math.pi / 2
            for k in range(lanes_cross):
                start = (direction * (k + 0.5) * LANE, 0.0)
                stop = half_main + 1.5  # stop line 1.5 m before the main road's carriageway
                # a queue of 0-60 m on the approach (s < 0 along the heading), departing traffic beyond the junction
                queue = (-stop - rng.uniform(0.0, 60.0), -stop)
                traffic.line(start, heading, queue, (1.5, 3.0), backwards=True, jitter=1.0, group="queue")
                speed = base * rng.uniform(0.95, 1.05)
                first = edge_main + 3.0 + speed * duration / 2 + 5.0
                traffic.line(start, heading, (first, span), (4.0, density), speed, 1.0, group="cross")
            side = direction
            park_heading = math.pi / 2 if side > 0 else -math.pi / 2  # parked with the traffic of that side
            occupancy = rng.uniform(0.25, 0.75)
            for lo, hi in ((-span, -edge_main - 6.0), (edge_main + 6.0, span)):
                s_span = (lo, hi) if park_heading > 0 else (-hi, -lo)
                traffic.line(
                    (side * (half_cross + PARKING / 2), 0.0),
                    park_heading,
                    s_span,
                    (0.8, 2.5),
                    jitter=2.0,
                    skip=1 - occupancy,
                    lateral=0.15,
                    group="parked",
                )

    rows = traffic.rows
    kinds = np.array([r[0] for r in rows], dtype=np.int64)
    sizes = np.array([r[1:4] for r in rows], dtype=np.float64)
    pos = np.array([r[4:6] for r in rows], dtype=np.float64)
    heading = np.array([r[6] for r in rows], dtype=np.float64)
    speed = np.array([r[7] for r in rows], dtype=np.float64)
    group = np.array([r[8] for r in rows])
    velocity = speed[:, None] * np.column_stack([np.cos(heading), np.sin(heading)])
    xy = pos[None] + times[:, None, None] * velocity[None]  # (F, V, 2) road frame

    statics = _buildings(rng, 0, edge_main, span + 10, (-edge_cross, edge_cross) if crossing else None)
    statics += _poles(rng, 0, half_main + PARKING + 0.5, span, (-edge_cross, edge_cross) if crossing else None)
    if crossing:
        statics += _buildings(rng, 1, edge_cross, span + 10, (-edge_main, edge_main))
        statics += _poles(rng, 1, half_cross + PARKING + 0.5, span, (-edge_main, edge_main))

    infra_xy = None
    if infrastructure:
        sx, sy = rng.choice([-1.0, 1.0], size=2)
        if crossing:
            infra_xy = np.array([sx * (half_cross + PARKING + 1.0), sy * (half_main + PARKING + 1.0)])
            infra_heading = math.atan2(-sy, -sx)  # looking across the junction
        else:
            infra_xy = np.array([rng.uniform(-15.0, 15.0), sy * (half_main + PARKING + 1.0)])
            infra_heading = 0.0 if rng.random() < 0.5 else math.pi
        statics = [s for s in statics if np.hypot(s[0][0] - infra_xy[0], s[0][1] - infra_xy[1]) > 2.0]
    # CAVs are cars (their LiDAR, 1.9 m up, sits above the roof) moving on the main road
    cav_index = _choose_cavs(rng, xy, np.flatnonzero((group == "main") & (kinds == 0)), cavs, infra_xy)
    if len(cav_index) < cavs:
        return None

    # world placement: turn and move the road frame, ground at a random height
    theta = rng.uniform(-math.pi, math.pi)
    c, s = math.cos(theta), math.sin(theta)
    road_to_world = np.array([[c, -s, rng.uniform(-300, 300)], [s, c, rng.uniform(-300, 300)], [0.0, 0.0, 1.0]])
    ground_z = float(rng.uniform(0.0, 2.0))

    def to_world(p: np.ndarray) -> np.ndarray:
        return p @ road_to_world[:2, :2].T + road_to_world[:2, 2]

    wrap = lambda a: (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi  # noqa: E731
    static_boxes = np.array([b for b, _ in statics], dtype=np.float64).reshape(-1, 7)
    static_boxes[:, :2] = to_world(static_boxes[:, :2])
    static_boxes[:, 2] += ground_z
    static_boxes[:, 6] = wrap(static_boxes[:, 6] + theta)

    ids = rng.choice(np.arange(100, 3000), size=len(rows), replace=False).astype(np.int64)
    agents = [Agent(int(ids[i]), int(i), lidar) for i in cav_index]
    if infrastructure:
        w = to_world(infra_xy[None])[0]
        pose = (float(w[0]), float(w[1]), ground_z + infra_lidar.height, 0.0, math.degrees(wrap(infra_heading + theta)))
        agents.append(Agent(-1, -1, infra_lidar, (*pose, 0.0)))
    carriageways = [(0, half_main + PARKING)] + ([(1, half_cross + PARKING)] if crossing else [])
    info = dict(
        road=road,
        lanes=[lanes_main, lanes_cross] if crossing else [lanes_main],
        vehicles=len(rows),
        moving=int((speed > 0).sum()),
        parked=int((group == "parked").sum()),
        statics=len(statics),
    )
    return Scene(
        name=name,
        road=road,
        ground_z=ground_z,
        ids=ids,
        kinds=kinds,
        sizes=sizes,
        paint=rng.uniform(0.35, 0.95, len(rows)),
        xy=to_world(xy),
        yaw=wrap(heading + theta),
        speed=speed,
        statics=static_boxes,
        static_reflectivity=np.array([r for _, r in statics], dtype=np.float64),
        agents=agents,
        road_to_world=road_to_world,
        carriageways=carriageways,
        gps_sigma=float(rng.uniform(0.5, 1.0)),
        info=info,
    )
