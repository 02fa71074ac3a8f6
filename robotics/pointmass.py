"""A 2-D point-mass reach-and-grasp task with a bimodal obstacle and a binary gripper, for seconds-long tests.

It is the toy task of the robotics spec (section 3, "Toy env"): small enough for CI, yet it
exercises what Diffusion Policy (Chi et al., RSS 2023) and RTI-DP (Duan et al. 2025) care about: multimodal
demonstrations (the obstacle is passed on the left or on the right, 50/50) and a discrete gripper action.

Scene, in the unit box [0, 1]^2 (y up): the agent starts at rest in the start region x in [0.3, 0.7],
y in [0.05, 0.15]; a round obstacle (centre (0.5, 0.5), radius 0.15) sits in the middle; the goal is a disc
(centre (0.5, 0.9), radius 0.05).

- **Action** ``(target_x, target_y, gripper)``: as in Push-T, the target (clipped to the box) is tracked by a PD
  controller (kp 25, kv 10, unit mass; critically damped) integrated with 5 semi-implicit Euler substeps of 0.02 s per
  0.1 s control step. The gripper (``gripper_dims = (2,)``) is executed as its sign: closed (+1) if >= 0, else open
  (-1), the same rule as the policy runner (:mod:`diffusekit.robotics.control`).
- **Observation** ``(x, y, vx, vy, gripper)`` float32, gripper the executed state (+-1; open at reset).
- **Obstacle and walls**: the agent is a point that cannot enter the obstacle; a substep that ends inside it is
  pushed back onto the rim and the inward velocity is removed (it slides along the rim). This is not a failure;
  ``info["collision"]`` reports it. The walls stop the agent the same way.
- **Success** is a grasp at the goal: the gripper must be open at some step inside the goal disc and then stay
  closed inside it for ``hold_steps`` (3) consecutive steps; leaving the disc disarms the grasp. A gripper that is
  closed all along never succeeds. ``done`` on success or after ``max_steps`` (80) steps.
- **Reward**: 1 on success, else ``0.5 * clip(1 - d / d0, 0, 1)`` with ``d`` the distance to the goal centre and
  ``d0`` that distance at reset, so reaching the goal without the grasp scores at most 0.5.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

OBSTACLE = (0.5, 0.5)
OBSTACLE_RADIUS = 0.15
GOAL = (0.5, 0.9)
GOAL_RADIUS = 0.05
START_LOW = (0.3, 0.05)
START_HIGH = (0.7, 0.15)
KP, KV = 25.0, 10.0
DT, SUBSTEPS = 0.1, 5

_COLOURS = {
    "background": (246, 246, 240),
    "start": (222, 222, 214),
    "goal": (150, 215, 150),
    "obstacle": (95, 95, 105),
    "open": (60, 100, 220),
    "closed": (220, 60, 60),
}


class PointMassEnv:
    """The point-mass grasp task; see the module docstring for the rules. ``seed`` seeds resets without a seed."""

    name = "pointmass"
    obs_dim = 5
    action_dim = 3
    gripper_dims = (2,)

    def __init__(self, max_steps: int = 80, hold_steps: int = 3, render_size: int = 96, seed: int | None = None):
        if max_steps < 1 or hold_steps < 1 or render_size < 8:
            raise ValueError("max_steps and hold_steps must be >= 1 and render_size >= 8")
        self.max_steps = int(max_steps)
        self.hold_steps = int(hold_steps)
        self.render_size = int(render_size)
        self._rng = np.random.default_rng(seed)
        self._state: list[float] | None = None  # x, y, vx, vy, gripper
        self._t = 0
        self._armed = False
        self._hold = 0
        self._start_dist = 1.0
        self._grid: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ state
    @property
    def position(self) -> np.ndarray:
        """The agent's current (x, y)."""
        self._require_reset()
        return np.array(self._state[:2], dtype=np.float64)

    @property
    def t(self) -> int:
        """Control steps taken in this episode."""
        return self._t

    def _require_reset(self) -> None:
        if self._state is None:
            raise RuntimeError("call reset() before using the environment")

    def _obs(self) -> np.ndarray:
        return np.array(self._state, dtype=np.float32)

    def reset(self, seed: int | None = None, generator: np.random.Generator | None = None) -> np.ndarray:
        """A new episode; ``seed`` reseeds the start draw, ``generator`` replaces the env's own (gymnasium's)."""
        if generator is not None:
            self._rng = generator
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        x, y = self._rng.uniform(START_LOW, START_HIGH)
        self._state = [float(x), float(y), 0.0, 0.0, -1.0]
        self._t = 0
        self._armed = False
        self._hold = 0
        self._start_dist = math.hypot(x - GOAL[0], y - GOAL[1])
        return self._obs()

    # ------------------------------------------------------------------ dynamics
    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
        self._require_reset()
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (3,):
            raise ValueError(f"action must have 3 values (target x, target y, gripper), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError(f"action must be finite, got {a.tolist()}")
        tx, ty = min(max(float(a[0]), 0.0), 1.0), min(max(float(a[1]), 0.0), 1.0)
        gripper = 1.0 if a[2] >= 0 else -1.0
        x, y, vx, vy, _ = self._state
        ox, oy = OBSTACLE
        h = DT / SUBSTEPS
        collision = False
        for _ in range(SUBSTEPS):
            vx += (KP * (tx - x) - KV * vx) * h
            vy += (KP * (ty - y) - KV * vy) * h
            x += vx * h
            y += vy * h
            if x < 0.0 or x > 1.0:
                x = min(max(x, 0.0), 1.0)
                vx = 0.0
            if y < 0.0 or y > 1.0:
                y = min(max(y, 0.0), 1.0)
                vy = 0.0
            dx, dy = x - ox, y - oy
            dist = math.hypot(dx, dy)
            if dist < OBSTACLE_RADIUS:
                collision = True
                nx, ny = (dx / dist, dy / dist) if dist > 1e-12 else (0.0, -1.0)
                x, y = ox + OBSTACLE_RADIUS * nx, oy + OBSTACLE_RADIUS * ny
                inward = vx * nx + vy * ny
                if inward < 0.0:
                    vx -= inward * nx
                    vy -= inward * ny
        self._state = [x, y, vx, vy, gripper]
        self._t += 1

        goal_dist = math.hypot(x - GOAL[0], y - GOAL[1])
        in_goal = goal_dist <= GOAL_RADIUS
        if not in_goal:
            self._armed, self._hold = False, 0
        elif gripper < 0:
            self._armed, self._hold = True, 0
        elif self._armed:
            self._hold += 1
        success = self._hold >= self.hold_steps
        if success:
            reward = 1.0
        else:
            reward = 0.5 * min(max(1.0 - goal_dist / max(self._start_dist, 1e-6), 0.0), 1.0)
        done = success or self._t >= self.max_steps
        info = {"success": success, "collision": collision, "in_goal": in_goal, "hold": self._hold, "t": self._t}
        return self._obs(), float(reward), bool(done), info

    # ------------------------------------------------------------------ drawing
    def render(self) -> np.ndarray:
        """A ``render_size``-square RGB frame: start band, goal disc, obstacle, agent (blue open, red closed)."""
        self._require_reset()
        n = self.render_size
        if self._grid is None:
            centres = (np.arange(n) + 0.5) / n
            self._grid = (centres[None, :], 1.0 - centres[:, None])  # x per column, y per row (y up)
        gx, gy = self._grid
        frame = np.empty((n, n, 3), dtype=np.uint8)
        frame[:] = _COLOURS["background"]
        band = (gx >= START_LOW[0]) & (gx <= START_HIGH[0]) & (gy >= START_LOW[1]) & (gy <= START_HIGH[1])
        frame[band] = _COLOURS["start"]
        frame[(gx - GOAL[0]) ** 2 + (gy - GOAL[1]) ** 2 <= GOAL_RADIUS**2] = _COLOURS["goal"]
        frame[(gx - OBSTACLE[0]) ** 2 + (gy - OBSTACLE[1]) ** 2 <= OBSTACLE_RADIUS**2] = _COLOURS["obstacle"]
        x, y, _, _, gripper = self._state
        agent_radius = max(0.03, 1.5 / n)
        colour = _COLOURS["closed" if gripper > 0 else "open"]
        frame[(gx - x) ** 2 + (gy - y) ** 2 <= agent_radius**2] = colour
        return frame


class PointMassExpert:
    """Scripted demonstrator: passes the obstacle on a random side (50/50 per episode, or ``side`` -1 left/+1 right).

    It moves a carrot along a cubic Bezier curve from the start through two control points beside the obstacle to
    the goal, at a constant speed drawn per episode (0.026-0.034 per step), plus Gaussian noise (``noise``) on the
    target. The gripper stays open until the agent is within 0.6 goal radii of the goal centre; then it closes and
    stays closed. The rule depends on the observed position only, so a policy that sees the observations can learn
    exactly when to close (a hidden trigger, such as the carrot's arrival, makes closed-loop policies that replan
    every step postpone the grasp indefinitely). `perturb` delays the executed grasp by 1-4 steps in half of the
    episodes (the recorded label still closes): the demonstrations then contain the state "open inside the goal",
    which a policy that replans every step reaches, labelled with what to do there.
    """

    def __init__(self, noise: float = 0.004, side: int | None = None):
        if side not in (None, -1, 1):
            raise ValueError("side must be None (random), -1 (left) or +1 (right)")
        self.noise = float(noise)
        self.fixed_side = side
        self.side = 1
        self._path = np.zeros((1, 2))
        self._arc = np.zeros(1)
        self._speed = 0.03
        self._k = 0
        self._closed = False
        self._delay = 0
        self._rng = np.random.default_rng(0)

    def reset(self, env: PointMassEnv, rng: np.random.Generator) -> None:
        self._rng = rng
        self.side = self.fixed_side if self.fixed_side is not None else (1 if rng.random() < 0.5 else -1)
        offset = rng.uniform(0.30, 0.36)
        p0 = env.position
        p1 = np.array([OBSTACLE[0] + self.side * offset, rng.uniform(0.28, 0.34)])
        p2 = np.array([OBSTACLE[0] + self.side * offset, rng.uniform(0.66, 0.72)])
        p3 = np.array(GOAL)
        u = np.linspace(0.0, 1.0, 256)[:, None]
        self._path = (1 - u) ** 3 * p0 + 3 * (1 - u) ** 2 * u * p1 + 3 * (1 - u) * u**2 * p2 + u**3 * p3
        self._arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(self._path, axis=0), axis=1))])
        self._speed = rng.uniform(0.026, 0.034)
        self._k = 0
        self._closed = False
        self._delay = int(rng.integers(1, 5)) if rng.random() < 0.5 else 0

    def perturb(self, action: np.ndarray) -> np.ndarray:
        """The executed action: the first ``delay`` closing commands are executed open (DART-style recovery data)."""
        if action[2] > 0 and self._delay > 0:
            self._delay -= 1
            action = action.copy()
            action[2] = -1.0
        return action

    def act(self, obs: np.ndarray) -> np.ndarray:
        self._k += 1
        along = min(self._speed * self._k, self._arc[-1])
        target = np.array([np.interp(along, self._arc, self._path[:, i]) for i in range(2)])
        target += self._rng.normal(0.0, self.noise, size=2)
        if math.hypot(obs[0] - GOAL[0], obs[1] - GOAL[1]) < 0.6 * GOAL_RADIUS:
            self._closed = True
        return np.array([target[0], target[1], 1.0 if self._closed else -1.0], dtype=np.float32)
