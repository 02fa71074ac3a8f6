"""Synthetic human motion: a 17-joint kinematic body (Human3.6M order) driven by smooth joint-angle trajectories.

The body is a tree of rigid bones in the Human3.6M / VideoPose3D order (`diffusekit.pose.skeleton`): each joint holds
a rest offset from its parent (metres, in the parent's frame: x forward, y left, z up) and a local rotation
``Ry(pitch) Rx(roll) Rz(yaw)`` (the twist about the bone innermost). Forward kinematics composes the rotations down
the tree, so every bone keeps its length exactly in every frame. The rest skeleton is a 1.75 m adult with Human3.6M's
proportions (pelvis->hip 0.13 m, thigh 0.45, shank 0.44, pelvis->spine 0.23, spine->thorax 0.25, thorax->neck/nose
0.11, neck->head 0.12, thorax->shoulder 0.15, upper arm 0.28, forearm 0.25), scaled to a per-subject stature of
1.55-1.90 m with ~3% independent, left/right symmetric variation per segment.

Motions are joint-angle trajectories built from low-frequency sinusoids and quintic smoothstep transitions with
random per-sequence parameters:

- ``walking``: a gait cycle shaped like normal-gait joint-angle curves (Winter, *Biomechanics and Motor Control of
  Human Movement*: hip +-22-26 degrees about 9 degrees of flexion, knee peak ~60 degrees in early swing and a small
  loading-response flexion, toes up at heel strike and heel up at push-off), counter-rotating pelvis and thorax,
  arm swing opposite to the legs, the root moving along an ellipse (so it turns) at 0.9-1.35 m/s, slowing in tight
  turns, cadence from speed / stride length.
- ``reaching``: standing; one or both arms reach high, forward or down to the floor (then the hips and knees flex and
  the trunk bends), with trunk twist, slow turns and small steps.
- ``sitting``: standing, sitting down (hips and knees flex to 77-86 degrees, the trunk leans forward during the
  transition and the pelvis lowers and moves back), seated hand-to-mouth movements, standing up again when the
  sequence is long enough.
- ``waving``: standing; an arm is raised to the side with the forearm up and waves (elbow oscillation at 1.5-2.5 Hz),
  with occasional small bows.

The feet are kept on the floor (z = 0): the root height is set each frame so the lowest sole point (heel or toes of
either foot, the feet held flat or with the gait's foot pitch) touches it. Standing motions keep the midpoint of the
ankles at a slowly drifting anchor, so the pelvis moves as the legs flex; walking moves the pelvis along its path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diffusekit.pose.skeleton import H36M_PARENTS

__all__ = ["EXTREMITIES", "MOTIONS", "REFERENCE_HEIGHT", "Body", "random_body", "simulate", "simulate_with_extremities"]

MOTIONS = ("walking", "reaching", "sitting", "waving")
REFERENCE_HEIGHT = 1.75  # stature (m) of the rest skeleton below
PELVIS, RHIP, RKNEE, RANKLE, LHIP, LKNEE, LANKLE, SPINE, THORAX, NECK, HEAD = range(11)
LSHO, LELB, LWRI, RSHO, RELB, RWRI = range(11, 17)
# rest offsets joint <- parent (m) of a 1.75 m adult, in the parent's frame (x forward, y left, z up); the head joint
# stands ~1.69 m above the floor (the ankles 0.08 m)
_REST = np.array([
    [0.0, 0.0, 0.0],
    [0.0, -0.128, -0.022], [0.0, 0.0, -0.45], [0.0, 0.0, -0.44],  # right hip, knee, ankle
    [0.0, 0.128, -0.022], [0.0, 0.0, -0.45], [0.0, 0.0, -0.44],  # left hip, knee, ankle
    [-0.01, 0.0, 0.23], [0.02, 0.0, 0.25], [0.05, 0.0, 0.10], [-0.03, 0.0, 0.115],  # spine, thorax, neck/nose, head
    [-0.01, 0.145, -0.03], [0.0, 0.0, -0.28], [0.0, 0.0, -0.25],  # left shoulder, elbow, wrist
    [-0.01, -0.145, -0.03], [0.0, 0.0, -0.28], [0.0, 0.0, -0.25],  # right shoulder, elbow, wrist
])  # fmt: skip
# segments varied together (left and right alike): pelvis width, thigh, shank, lower and upper trunk, neck, head,
# shoulder width, upper arm, forearm
_SEGMENT = (0, 0, 1, 2, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 7, 8, 9)
# points on the hands and feet (rigid in the frame of the ankle or wrist they hang from): rest offsets (m, 1.75 m)
EXTREMITIES = (
    "right_toe_base", "right_toe_tip", "left_toe_base", "left_toe_tip",
    "left_thumb", "left_hand_tip", "right_thumb", "right_hand_tip",
)  # fmt: skip
_EXTREMITY_JOINT = (RANKLE, RANKLE, LANKLE, LANKLE, LWRI, LWRI, RWRI, RWRI)
_EXTREMITY_REST = np.array([
    [0.13, 0.0, -0.06], [0.19, 0.0, -0.07], [0.13, 0.0, -0.06], [0.19, 0.0, -0.07],
    [0.03, 0.01, -0.045], [0.0, 0.0, -0.09], [0.03, -0.01, -0.045], [0.0, 0.0, -0.09],
])  # fmt: skip
_SOLE = np.array([[-0.05, 0.0, -0.08], [0.19, 0.0, -0.08]])  # heel and toes (under the tip), from the ankle
_CONTACT_SOFTNESS = 0.004  # m, the log-sum-exp temperature of the lowest sole point (smooth where feet swap)


@dataclass(frozen=True)
class Body:
    """A subject's skeleton: ``offsets`` (17, 3) rest vectors parent -> joint in metres (row 0 unused), ``height``
    its stature (m) and ``scale`` = height / `REFERENCE_HEIGHT` (sizes the hands and feet)."""

    height: float
    scale: float
    offsets: np.ndarray

    @property
    def bone_lengths(self) -> np.ndarray:
        """(17,) length of the bone parent -> joint (0 for the root), constant over every simulated frame."""
        return np.linalg.norm(self.offsets, axis=-1)


def random_body(rng: np.random.Generator, height: float | None = None) -> Body:
    """A random adult: stature uniform in 1.55-1.90 m (or ``height``), segments varied by ~3% (s.d.) each."""
    height = float(rng.uniform(1.55, 1.90)) if height is None else float(height)
    scale = height / REFERENCE_HEIGHT
    factor = 1 + np.clip(rng.normal(0, 0.03, size=max(_SEGMENT) + 1), -0.07, 0.07)
    return Body(height, scale, _REST * scale * factor[list(_SEGMENT), None])


def simulate(
    motion: str,
    frames: int,
    rng: np.random.Generator,
    body: Body | None = None,
    fps: float = 50.0,
    extent: float = 0.8,
) -> np.ndarray:
    """(frames, 17, 3) world joint positions (metres, z up, floor at z = 0) of one random ``motion`` sequence (one
    of `MOTIONS`) around the origin: standing motions start at the origin, walking paths stay within ``extent``
    metres of it. ``body`` defaults to `random_body(rng)`."""
    return simulate_with_extremities(motion, frames, rng, body, fps, extent)[0]


def simulate_with_extremities(
    motion: str,
    frames: int,
    rng: np.random.Generator,
    body: Body | None = None,
    fps: float = 50.0,
    extent: float = 0.8,
) -> tuple[np.ndarray, np.ndarray]:
    """`simulate`, also returning the (frames, 8, 3) `EXTREMITIES` (toes, thumbs, hand tips) of the same bodies."""
    if motion not in _DRIVERS:
        raise ValueError(f"unknown motion {motion!r}; expected one of {', '.join(MOTIONS)}")
    if frames < 1:
        raise ValueError(f"frames must be positive, got {frames}")
    body = random_body(rng) if body is None else body
    t = np.arange(frames) / float(fps)
    drive = _DRIVERS[motion](rng, t, body, extent)
    return _assemble(body, drive)


# --- rotations and forward kinematics ------------------------------------------------------------------------------


def _axis(axis: int, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about the x (0), y (1) or z (2) axis."""
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros((*np.shape(angle), 3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1
    out[..., i, i], out[..., j, j] = c, c
    out[..., i, j], out[..., j, i] = -s, s
    return out


def _local(angles: np.ndarray) -> np.ndarray:
    """(..., 3) [pitch, roll, yaw] -> Ry(pitch) Rx(roll) Rz(yaw): the twist about the bone (z) innermost."""
    return _axis(1, angles[..., 0]) @ _axis(0, angles[..., 1]) @ _axis(2, angles[..., 2])


@dataclass
class _Drive:
    """One sequence's controls: local joint angles (F, 17, 3) [pitch, roll, yaw] (row 0 tilts the pelvis under the
    heading), heading (F,) about z, foot pitch (F, 2) [right, left] relative to flat, and the root placement:
    ``xy`` (F, 2) is the pelvis path (``anchored`` False) or where the midpoint of the ankles stays (True)."""

    angles: np.ndarray
    heading: np.ndarray
    foot_pitch: np.ndarray
    xy: np.ndarray
    anchored: bool


def _assemble(body: Body, drive: _Drive) -> tuple[np.ndarray, np.ndarray]:
    """Forward kinematics of a drive: joints (F, 17, 3) and extremities (F, 8, 3), feet on the floor."""
    n = len(drive.heading)
    local = _local(drive.angles)
    frames = np.empty((n, 17, 3, 3))
    joints = np.zeros((n, 17, 3))
    frames[:, 0] = _axis(2, drive.heading) @ local[:, 0]
    for j in range(1, 17):  # parents precede their children in the H36M order
        p = H36M_PARENTS[j]
        joints[:, j] = joints[:, p] + frames[:, p] @ body.offsets[j]
        frames[:, j] = frames[:, p] @ local[:, j]
    # the feet: flat on the floor, facing where the shank faces, tilted by the drive's foot pitch
    for side, (knee, ankle) in enumerate(((RKNEE, RANKLE), (LKNEE, LANKLE))):
        forward = frames[:, knee, :, 0]
        yaw = np.arctan2(forward[:, 1], forward[:, 0])
        frames[:, ankle] = _axis(2, yaw) @ _axis(1, drive.foot_pitch[:, side])
    extremities = np.stack(
        [joints[:, j] + frames[:, j] @ (offset * body.scale) for j, offset in zip(_EXTREMITY_JOINT, _EXTREMITY_REST)],
        axis=1,
    )
    sole = np.concatenate(
        [joints[:, a, None] + np.einsum("nij,kj->nki", frames[:, a], _SOLE * body.scale) for a in (RANKLE, LANKLE)],
        axis=1,
    )[..., 2]
    lowest = sole.min(1)  # a smooth minimum: -tau log sum exp(-z / tau), shifted by the hard minimum for stability
    lowest = lowest - _CONTACT_SOFTNESS * np.log(np.exp(-(sole - lowest[:, None]) / _CONTACT_SOFTNESS).sum(1))
    root = np.zeros((n, 3))
    root[:, 2] = -lowest
    if drive.anchored:
        root[:, :2] = drive.xy - 0.5 * (joints[:, RANKLE, :2] + joints[:, LANKLE, :2])
    else:
        root[:, :2] = drive.xy
    return joints + root[:, None], extremities + root[:, None]


# --- trajectory building blocks ------------------------------------------------------------------------------------


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """Quintic smoothstep (C2): 0 below 0, 1 above 1."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (6 * x - 15) + 10)


def _pulse(t: np.ndarray, start: float, rise: float, hold: float, fall: float) -> np.ndarray:
    """0 -> 1 over ``rise`` seconds from ``start``, held, then back to 0 over ``fall``."""
    return _smoothstep((t - start) / rise) - _smoothstep((t - start - rise - hold) / fall)


def _bump(x: np.ndarray, concentration: float) -> np.ndarray:
    """A periodic bump (von Mises shape) of height 1 at phase 0."""
    return np.exp(concentration * (np.cos(x) - 1))


def _wobble(rng: np.random.Generator, t: np.ndarray, amplitude, shape=(), terms: int = 3, fmax: float = 0.5):
    """Sums of ``terms`` random low-frequency sinusoids (0.05-``fmax`` Hz), (F, *shape), peak ~``amplitude``."""
    freq = rng.uniform(0.05, fmax, size=(terms, *shape))
    phase = rng.uniform(0, 2 * np.pi, size=(terms, *shape))
    weight = rng.uniform(0.3, 1.0, size=(terms, *shape)) / terms
    wave = np.sin(2 * np.pi * freq * t.reshape(-1, *([1] * (len(shape) + 1))) + phase)
    return np.asarray(amplitude) * (weight * wave).sum(1)


# per-joint amplitude (rad) of the slow idiosyncratic sway added to every motion
_SWAY = np.array([0.02, 0.02, 0.02, 0.0, 0.02, 0.02, 0.0, 0.03, 0.03, 0.05, 0.04, 0.06, 0.08, 0.08, 0.06, 0.08, 0.08])


def _posture(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """(F, 17, 3) relaxed standing angles plus slow sway: arms slightly out and bent, toes out, head level."""
    a = np.zeros((len(t), 17, 3))
    a[:, RHIP] = [-0.02, -0.04, -0.07]
    a[:, LHIP] = [-0.02, 0.04, 0.07]
    a[:, [RKNEE, LKNEE], 0] = 0.04
    a[:, RSHO, 1], a[:, LSHO, 1] = -rng.uniform(0.06, 0.14), rng.uniform(0.06, 0.14)
    a[:, [RELB, LELB], 0] = -rng.uniform(0.15, 0.35)
    a[:, [RWRI, LWRI], 0] = -0.1
    a[:, NECK, 0], a[:, HEAD, 0] = 0.08, -0.05
    return a + _wobble(rng, t, _SWAY[:, None], shape=(17, 3))


def _turns(rng: np.random.Generator, t: np.ndarray, every: float, size: float) -> np.ndarray:
    """Heading (F,): a random start plus smooth turns of up to ``size`` rad about every ``every`` seconds."""
    heading = np.full(len(t), rng.uniform(-np.pi, np.pi))
    start = rng.uniform(0.3, every)
    while start < t[-1]:
        duration = rng.uniform(0.8, 1.6)
        heading += rng.uniform(-size, size) * _smoothstep((t - start) / duration)
        start += duration + rng.uniform(0.5, 1.0) * every
    return heading


def _anchor(rng: np.random.Generator, t: np.ndarray) -> np.ndarray:
    """Where a standing subject's feet are (F, 2): the origin plus a few smooth steps of 0.1-0.3 m."""
    xy = np.zeros((len(t), 2))
    start = rng.uniform(1.0, 4.0)
    while start < t[-1]:
        step = rng.uniform(0.1, 0.3) * np.array([np.cos(a := rng.uniform(0, 2 * np.pi)), np.sin(a)])
        xy += step * _smoothstep((t[:, None] - start) / rng.uniform(0.6, 1.0))
        start += rng.uniform(2.5, 6.0)
    return np.clip(xy, -0.35, 0.35)


def _legs(a: np.ndarray, pelvis_tilt: np.ndarray, thigh: np.ndarray, shank: np.ndarray, sides=(RHIP, LHIP)) -> None:
    """Set hip and knee pitch so the thighs point ``thigh`` rad forward of straight down and the shanks lean
    ``shank`` rad (knee ahead of the ankle), whatever the pelvis tilt (pitches add along the chain)."""
    for hip in sides:
        a[:, hip, 0] = -thigh - pelvis_tilt
        a[:, hip + 1, 0] = thigh + shank


# --- motions -------------------------------------------------------------------------------------------------------


def _walking(rng: np.random.Generator, t: np.ndarray, body: Body, extent: float) -> _Drive:
    n, dt = len(t), (t[1] - t[0]) if len(t) > 1 else 0.02
    speed = rng.uniform(0.9, 1.35) * np.sqrt(body.scale)
    stride = 1.4 * body.scale * rng.uniform(0.92, 1.08) * speed / 1.15  # one gait cycle (two steps), m
    # the path: an ellipse of semi-axes (ax, bx) turned by rot, walked at ~speed, slower in tight turns
    ax = extent * rng.uniform(0.75, 1.0)
    bx = ax * rng.uniform(0.55, 0.85)
    rot, sense = rng.uniform(0, 2 * np.pi), rng.choice([-1.0, 1.0])
    phi, theta = rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
    varying = 1 + _wobble(rng, t, 0.08, terms=2, fmax=0.3)
    path, velocity, gait = np.empty((n, 2)), np.empty((n, 2)), np.empty(n)
    for i in range(n):
        tangent = sense * np.array([-ax * np.sin(phi), bx * np.cos(phi)])
        norm = np.hypot(*tangent)
        curvature = ax * bx / norm**3
        v = speed * varying[i] / (1 + 0.3 * curvature)
        path[i], velocity[i], gait[i] = [ax * np.cos(phi), bx * np.sin(phi)], tangent / norm * v, theta
        phi += sense * v / norm * dt
        theta += 2 * np.pi * v / stride * dt
    c, s = np.cos(rot), np.sin(rot)
    turn = np.array([[c, -s], [s, c]])
    path, velocity = path @ turn.T, velocity @ turn.T
    heading = np.unwrap(np.arctan2(velocity[:, 1], velocity[:, 0]))
    pace = np.linalg.norm(velocity, axis=1) / 1.2  # amplitudes grow with speed

    a = _posture(rng, t)
    hip_amp, knee_amp = rng.uniform(0.38, 0.45) * np.sqrt(pace), rng.uniform(0.9, 1.1)
    arm_amp = rng.uniform(0.15, 0.4) * pace
    foot = np.empty((n, 2))
    for side, (hip, phase) in enumerate(((RHIP, gait), (LHIP, gait + np.pi))):
        # phase 0: the hip passes its mean flexing; pi / 2: heel strike (hip most flexed); -pi / 2: most extended
        a[:, hip, 0] = -(0.15 + hip_amp * np.sin(phase))
        a[:, hip + 1, 0] = 0.07 + knee_amp * _bump(phase - 0.2, 3.0) + 0.2 * _bump(phase - 2.1, 4.0)
        foot[:, side] = 0.35 * _bump(phase + 0.9, 6.0) - 0.25 * _bump(phase - 1.45, 5.0)
    a[:, PELVIS] += np.stack([0.06 + 0.02 * np.sin(2 * gait), 0.04 * np.sin(gait), 0.08 * np.sin(gait)], -1)
    a[:, SPINE, 2] -= 0.04 * np.sin(gait)
    a[:, THORAX, 2] -= 0.06 * np.sin(gait)
    a[:, RSHO, 0] += arm_amp * np.sin(gait)  # arms swing against the legs of their side
    a[:, LSHO, 0] -= arm_amp * np.sin(gait)
    a[:, RELB, 0] -= 0.1 * (1 - np.sin(gait))
    a[:, LELB, 0] -= 0.1 * (1 + np.sin(gait))
    if rng.random() < 0.3:  # one arm carries something (a leash, a bag): bent, barely swinging
        shoulder = rng.choice([RSHO, LSHO])
        a[:, shoulder, 0] = -rng.uniform(0.2, 0.5) + 0.2 * (a[:, shoulder, 0] - a[:, shoulder, 0].mean())
        a[:, shoulder + 1, 0] = -rng.uniform(0.9, 1.4)
    return _Drive(a, heading, foot, path, anchored=False)


def _reaching(rng: np.random.Generator, t: np.ndarray, body: Body, extent: float) -> _Drive:
    a = _posture(rng, t)
    n = len(t)
    tilt, thigh, shank = np.zeros(n), np.full(n, 0.02), np.full(n, 0.02)
    start = rng.uniform(0.1, 0.8)
    while start < t[-1]:
        rise, hold, fall = rng.uniform(0.5, 1.0), rng.uniform(0.3, 1.2), rng.uniform(0.5, 1.0)
        w = _pulse(t, start, rise, hold, fall)
        kind = rng.choice(["high", "forward", "low"], p=[0.3, 0.5, 0.2])
        sides = [(RSHO,), (LSHO,), (RSHO, LSHO)][rng.choice(3, p=[0.4, 0.4, 0.2])]
        if kind == "low":  # pick something up: pelvis tips, hips and knees flex, the trunk bends
            dt, dg, ds = rng.uniform(0.4, 0.7), rng.uniform(1.0, 1.6), rng.uniform(0.4, 0.7)
            tilt, thigh, shank = tilt + dt * w, thigh + dg * w, shank + ds * w
            trunk = rng.uniform(0.3, 0.5)
            a[:, SPINE, 0] += trunk * w
            a[:, THORAX, 0] += 0.15 * w
            a[:, NECK, 0] -= 0.2 * w
            arm = -(rng.uniform(0.1, 0.4) + dt + trunk + 0.15)  # arms hang forward of straight down
        else:
            a[:, SPINE, 0] += rng.uniform(0.0, 0.2) * w
            a[:, THORAX, 0] += rng.uniform(0.0, 0.15) * w
            arm = -(rng.uniform(1.8, 2.5) if kind == "high" else rng.uniform(0.8, 1.5))
            a[:, NECK, 0] -= (0.25 if kind == "high" else 0.05) * w
        twist = rng.uniform(-0.4, 0.4)
        a[:, SPINE, 2] += 0.4 * twist * w
        a[:, THORAX, 2] += 0.6 * twist * w
        for shoulder in sides:
            sign = 1 if shoulder == LSHO else -1
            a[:, shoulder, 0] += (arm + rng.uniform(-0.15, 0.15)) * w
            a[:, shoulder, 1] += sign * rng.uniform(0.0, 0.4) * w
            a[:, shoulder, 2] += rng.uniform(-0.3, 0.3) * w
            a[:, shoulder + 1, 0] += (rng.uniform(-0.05, 0.15) - a[:, shoulder + 1, 0].mean()) * w
        start += rise + hold + fall + rng.uniform(0.3, 1.5)
    a[:, PELVIS, 0] += tilt
    _legs(a, a[:, PELVIS, 0], thigh, shank)
    return _Drive(a, _turns(rng, t, 5.0, 1.2), np.zeros((n, 2)), _anchor(rng, t), anchored=True)


def _sitting(rng: np.random.Generator, t: np.ndarray, body: Body, extent: float) -> _Drive:
    a = _posture(rng, t)
    n, duration = len(t), t[-1] + (t[1] - t[0] if len(t) > 1 else 0.02)
    down_start = rng.uniform(0.1, 0.25) * min(duration, 8.0)
    move = min(rng.uniform(1.2, 2.0), 0.45 * duration)
    down = _smoothstep((t - down_start) / move)
    lean = 4 * down * (1 - down)  # 1 halfway through a transition: the trunk leans forward over the feet
    seated = down.copy()
    if duration - (down_start + move) > 5.0 + move:  # long enough to stand up again
        up_start = rng.uniform(down_start + move + 3.0, duration - move - 0.5)
        up = _smoothstep((t - up_start) / move)
        seated -= up
        lean += 4 * up * (1 - up)
    seat = rng.uniform(1.35, 1.5)
    tilt = 0.35 * lean - 0.12 * seated
    a[:, PELVIS, 0] += tilt
    a[:, SPINE, 0] += 0.25 * lean
    a[:, THORAX, 0] += 0.1 * lean
    thigh = 0.02 + seat * seated + _wobble(rng, t, 0.05, fmax=0.3) * seated
    shank = 0.02 + 0.35 * lean + rng.uniform(-0.15, 0.2) * seated + _wobble(rng, t, 0.1, fmax=0.3) * seated
    _legs(a, a[:, PELVIS, 0], thigh, shank)
    a[:, RHIP, 1] -= 0.1 * seated
    a[:, LHIP, 1] += 0.1 * seated
    for shoulder in (RSHO, LSHO):  # hands to the lap
        a[:, shoulder, 0] -= 0.3 * seated
        a[:, shoulder + 1, 0] -= 0.7 * seated
    # seated activity (eating, smoking, phoning): a hand to the face now and then
    start = down_start + move + rng.uniform(0.5, 2.0)
    while start < t[-1]:
        rise, hold, fall = rng.uniform(0.6, 1.0), rng.uniform(0.5, 2.0), rng.uniform(0.6, 1.0)
        w = _pulse(t, start, rise, hold, fall) * seated
        shoulder = rng.choice([RSHO, LSHO])
        a[:, shoulder, 0] -= rng.uniform(0.3, 0.6) * w
        a[:, shoulder, 1] += (1 if shoulder == LSHO else -1) * rng.uniform(0.1, 0.35) * w
        a[:, shoulder + 1, 0] -= rng.uniform(1.1, 1.4) * w
        a[:, NECK, 0] += 0.15 * w
        start += rise + hold + fall + rng.uniform(1.0, 3.0)
    return _Drive(a, _turns(rng, t, 12.0, 0.3), np.zeros((n, 2)), np.zeros((n, 2)), anchored=True)  # feet stay


def _waving(rng: np.random.Generator, t: np.ndarray, body: Body, extent: float) -> _Drive:
    a = _posture(rng, t)
    n = len(t)
    start = rng.uniform(0.1, 0.6)
    while start < t[-1]:
        rise, hold, fall = rng.uniform(0.6, 0.9), rng.uniform(1.0, 2.5), rng.uniform(0.6, 0.9)
        w = _pulse(t, start, rise, hold, fall)
        sides = [(RSHO,), (LSHO,), (RSHO, LSHO)][rng.choice(3, p=[0.6, 0.3, 0.1])]
        freq, phase = rng.uniform(1.5, 2.5), rng.uniform(0, 2 * np.pi)
        for shoulder in sides:
            sign = 1 if shoulder == LSHO else -1
            a[:, shoulder, 0] -= rng.uniform(0.1, 0.5) * w  # a little forward
            a[:, shoulder, 1] += sign * rng.uniform(1.1, 1.45) * w  # out to the side
            a[:, shoulder, 2] += sign * np.pi / 2 * w  # turned so the bent forearm points up
            wave = rng.uniform(0.25, 0.4) * np.sin(2 * np.pi * freq * (t - start) + phase)
            elbow = a[:, shoulder + 1, 0].copy()
            a[:, shoulder + 1, 0] += (-(rng.uniform(1.2, 1.6) + wave) - elbow) * w
        if rng.random() < 0.3:  # a small bow
            a[:, SPINE, 0] += rng.uniform(0.1, 0.3) * _pulse(t, start + rise + hold, 0.5, 0.3, 0.6)
        start += rise + hold + fall + rng.uniform(0.5, 2.0)
    return _Drive(a, _turns(rng, t, 4.0, 1.0), np.zeros((n, 2)), _anchor(rng, t), anchored=True)


_DRIVERS = {"walking": _walking, "reaching": _reaching, "sitting": _sitting, "waving": _waving}
