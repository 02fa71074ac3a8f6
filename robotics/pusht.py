"""Push-T on gym-pusht: a low-dimensional environment wrapper and a scripted pushing expert.

The task follows Diffusion Policy's Push-T (Chi et al., RSS 2023; ``real-stanford/diffusion_policy:
diffusion_policy/env/pusht/pusht_env.py``) as re-packaged by ``huggingface/gym-pusht`` (``gym_pusht/envs/pusht.py``):
pymunk physics at 100 Hz, 10 Hz control, the action is a 2-D target in [0, 512]^2 tracked by a PD controller
(kp 100, kv 20), the goal pose is (256, 256, pi/4), coverage = intersection / goal area, success = coverage > 0.95,
reward = clip(coverage / 0.95, 0, 1), and an episode's score is its maximum reward. gym-pusht needs ``pymunk<7``
(gym-pusht issue #19); install both with ``pip install "diffusekit[robotics]"``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from diffusekit.core.errors import DataError

__all__ = [
    "EVAL_SEED",
    "GOAL_POSE",
    "SUCCESS_COVERAGE",
    "PushTEnv",
    "PushTExpert",
    "expert_stats",
]

INSTALL_HINT = 'pip install "diffusekit[robotics]"'
GOAL_POSE = (256.0, 256.0, math.pi / 4)  # block x, y, angle (gym-pusht `_setup`)
SUCCESS_COVERAGE = 0.95  # gym-pusht `success_threshold`
# DP's Push-T test seeds start here (task configs, env_runner.test_start_seed). gym-pusht seeds gymnasium's generator
# where DP used np.random.RandomState, so the same seed gives a different initial scene than in DP.
EVAL_SEED = 100000

# Block geometry from gym-pusht `add_tee` (scale 30, length 4), in the block's local frame: a 120x30 bar on
# y in [0, 30] and a 30x90 stem on y in [30, 120]; mass 1, moment 2 * moment_for_poly(bar) = 3000, centre of gravity
# (0, 45). The agent is a kinematic circle of radius 15 (`add_circle`). All contacts are frictionless because
# gym-pusht sets `friction` on the bodies, not on the shapes, and space damping 0 zeroes the block's velocity every
# physics step, so the block only moves while it is pushed (quasi-static pushing).
_RECTS = np.array([[-60.0, 60.0, 0.0, 30.0], [-15.0, 15.0, 30.0, 120.0]])  # xmin, xmax, ymin, ymax
_OUTLINE = np.array([[-60, 0], [60, 0], [60, 30], [15, 30], [15, 120], [-15, 120], [-15, 30], [-60, 30]], float)
_HULL = np.array([[-60, 0], [60, 0], [60, 30], [15, 120], [-15, 120], [-60, 30]], float)  # counter-clockwise
_COG = np.array([0.0, 45.0])
_MASS, _MOMENT, _AGENT_RADIUS = 1.0, 3000.0, 15.0
_ARENA = (22.0, 490.0)  # where the agent's centre fits inside gym-pusht's walls (segments at 5 and 506, radius 2)


def _require_gym_pusht() -> Any:
    """Import gymnasium + gym_pusht (registers ``gym_pusht/PushT-v0``), with the install hint on failure."""
    try:
        import gym_pusht  # noqa: F401  (importing it registers the environment id)
        import gymnasium
        import pymunk
    except ImportError as exc:
        raise ImportError(f"Push-T needs gym-pusht and pymunk<7: {INSTALL_HINT}") from exc
    if int(pymunk.version.split(".")[0]) >= 7:  # gym-pusht calls add_collision_handler, removed in pymunk 7
        raise ImportError(f"gym-pusht breaks on pymunk {pymunk.version} (gym-pusht issue #19): {INSTALL_HINT}")
    return gymnasium


def _rot(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _wrap(angle: float | np.ndarray) -> Any:
    """Wrap to [-pi, pi)."""
    return (angle + np.pi) % (2 * np.pi) - np.pi


class PushTEnv:
    """Push-T with DP-lowdim-style observations: ``[8 block keypoints (x, y), agent (x, y)]``, 18-D float32.

    Wraps ``gym_pusht/PushT-v0`` with ``obs_type="environment_state_agent_pos"``, whose ``environment_state`` is the
    8 corners of the T's two rectangles (gym-pusht ``get_keypoints``), followed by ``agent_pos``; Diffusion Policy's
    lowdim Push-T uses the same layout with 9 keypoints (``pusht_keypoints_env.py``: keypoints then agent, 20-D).
    ``step`` returns gym-pusht's reward (clip(coverage / 0.95, 0, 1)), ``info["success"]`` (coverage > 0.95, which
    also ends the episode) and ``info["coverage"]``; ``done`` is also set after ``max_steps`` steps.
    """

    name = "pusht"
    obs_dim = 18
    action_dim = 2
    gripper_dims: tuple[int, ...] = ()

    def __init__(self, max_steps: int = 300, render_size: int = 512):
        if max_steps < 1 or render_size < 1:
            raise DataError(f"PushTEnv needs max_steps >= 1 and render_size >= 1, got {max_steps}, {render_size}")
        gym = _require_gym_pusht()
        self.max_steps = int(max_steps)
        self._env = gym.make(
            "gym_pusht/PushT-v0",
            obs_type="environment_state_agent_pos",
            render_mode="rgb_array",
            visualization_width=render_size,
            visualization_height=render_size,
            max_episode_steps=self.max_steps,
            disable_env_checker=True,
        )
        self._sim = self._env.unwrapped
        self._steps = 0
        self._needs_reset = True

    @staticmethod
    def _flatten(obs: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([obs["environment_state"], obs["agent_pos"]]).astype(np.float32)

    def reset(self, seed: int | None = None, state: np.ndarray | None = None) -> np.ndarray:
        """Seeded reset (gym-pusht draws agent U[50,450]^2, block U[100,400]^2, angle U[-pi,pi]).

        ``state`` = [agent x, agent y, block x, block y, block angle] places the scene exactly there instead.
        """
        obs, _ = self._env.reset(seed=seed)
        self._steps = 0
        self._needs_reset = False
        if state is not None:
            return self.set_state(state)
        return self._flatten(obs)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, dict]:
        if self._needs_reset:
            raise RuntimeError("PushTEnv.step() called before reset()")
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (2,) or not np.all(np.isfinite(action)):
            raise DataError(f"Push-T action must be a finite (2,) target position, got shape {action.shape}")
        obs, reward, terminated, truncated, info = self._env.step(action)
        self._steps += 1
        coverage = float(info["coverage"])
        info = dict(info, coverage=coverage, success=bool(coverage > SUCCESS_COVERAGE))
        done = bool(terminated or truncated or self._steps >= self.max_steps)
        return self._flatten(obs), float(reward), done, info

    def render(self) -> np.ndarray:
        """RGB uint8 (render_size, render_size, 3) frame from gym-pusht's ``rgb_array`` renderer."""
        return np.ascontiguousarray(self._env.render(), dtype=np.uint8)

    def state(self) -> np.ndarray:
        """[agent x, agent y, block x, block y, block angle] (float64; angle not wrapped)."""
        agent, block = self._sim.agent.position, self._sim.block.position
        return np.array([agent[0], agent[1], block[0], block[1], self._sim.block.angle])

    def set_state(self, state: np.ndarray) -> np.ndarray:
        """Place agent and block exactly at ``state`` (agent at rest) via gym-pusht's ``_set_state``; returns obs.

        gym-pusht sets the position before the angle, and the angle turns the block about its centre of gravity
        (gym-pusht's "legacy" warning); setting the angle first makes the pose exact.
        """
        state = np.asarray(state, dtype=np.float64)
        if state.shape != (5,) or not np.all(np.isfinite(state)):
            raise DataError(f"Push-T state must be finite [ax, ay, bx, by, angle], got shape {state.shape}")
        if self._needs_reset:
            self.reset()
        self._sim.agent.velocity = (0.0, 0.0)
        self._sim.block.velocity, self._sim.block.angular_velocity = (0.0, 0.0), 0.0
        self._sim.block.angle = float(state[4])
        self._sim._set_state(state)
        return self._flatten(self._sim.get_obs())

    def coverage(self) -> float:
        """Fraction of the goal T covered by the block (gym-pusht ``_get_coverage``)."""
        return float(self._sim._get_coverage())

    def close(self) -> None:
        self._env.close()


def _dist_to_tee(points: np.ndarray) -> np.ndarray:
    """Euclidean distance from local-frame points (..., 2) to the T (0 inside)."""
    x, y = points[..., 0, None], points[..., 1, None]
    dx = np.maximum(np.maximum(_RECTS[:, 0] - x, x - _RECTS[:, 1]), 0.0)
    dy = np.maximum(np.maximum(_RECTS[:, 2] - y, y - _RECTS[:, 3]), 0.0)
    return np.hypot(dx, dy).min(axis=-1)


def _nearest_on_tee(point: np.ndarray) -> np.ndarray:
    """Closest point of the T to a local-frame point outside it."""
    cand = np.stack([np.clip(point, r[[0, 2]], r[[1, 3]]) for r in _RECTS])
    return cand[np.argmin(np.linalg.norm(cand - point, axis=1))]


def _hull_nearest(point: np.ndarray) -> tuple[np.ndarray, float]:
    """Closest point on the T's convex hull boundary and the signed distance (negative inside), local frame."""
    a, b = _HULL, np.roll(_HULL, -1, axis=0)
    ab = b - a
    t = np.clip(((point - a) * ab).sum(1) / (ab * ab).sum(1), 0.0, 1.0)
    proj = a + t[:, None] * ab
    dist = np.linalg.norm(point - proj, axis=1)
    i = int(np.argmin(dist))
    normals = np.stack([ab[:, 1], -ab[:, 0]], axis=1)  # outward for a counter-clockwise polygon
    inside = bool(np.all(((point - a) * normals).sum(1) <= 0.0))
    return proj[i], -dist[i] if inside else dist[i]


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v * (limit / norm) if norm > limit else v


def _contact_candidates(spacing: float = 6.0) -> tuple[np.ndarray, np.ndarray]:
    """Pushable contacts (local points, outward normals): samples along the T's edges and fans at convex corners.

    A contact is kept only if the agent fits in front of it, i.e. its pre-contact position (5 px off the surface)
    is at least the agent radius + 4.5 px from every part of the T (this trims the concave corners under the bar).
    """
    pts, nrm = [], []
    for i in range(len(_OUTLINE)):
        a, b = _OUTLINE[i], _OUTLINE[(i + 1) % len(_OUTLINE)]
        length = float(np.linalg.norm(b - a))
        n = np.array([b[1] - a[1], a[0] - b[0]]) / length
        k = max(int(length // spacing), 1)
        for t in (np.arange(k) + 0.5) / k:
            pts.append(a + t * (b - a))
            nrm.append(n)
    for v in _HULL:  # the hull's corners are the T's convex corners; fan between the normals of its two edges
        j = int(np.argmin(np.linalg.norm(_OUTLINE - v, axis=1)))
        p, q = _OUTLINE[j - 1], _OUTLINE[(j + 1) % len(_OUTLINE)]
        n0 = np.array([v[1] - p[1], p[0] - v[0]]) / np.linalg.norm(v - p)
        n1 = np.array([q[1] - v[1], v[0] - q[0]]) / np.linalg.norm(q - v)
        a0, a1 = math.atan2(n0[1], n0[0]), math.atan2(n1[1], n1[0])
        span = _wrap(a1 - a0)
        for f in (0.25, 0.5, 0.75):
            ang = a0 + f * span
            pts.append(v.copy())
            nrm.append(np.array([math.cos(ang), math.sin(ang)]))
    pts_arr, nrm_arr = np.array(pts), np.array(nrm)
    ok = _dist_to_tee(pts_arr + nrm_arr * (_AGENT_RADIUS + 5.0)) >= _AGENT_RADIUS + 4.5
    return pts_arr[ok], nrm_arr[ok]


class PushTExpert:
    """Scripted quasi-static pushing demonstrator for Push-T (our design; no human demos are downloadable).

    It reads the scene from ``env.state()`` (``obs`` is not used) and re-plans every control step:

    1. **Contact choice.** Contacts are sampled on the T's boundary (edges, and normal fans at convex corners).
       Contacts are frictionless and damping 0 zeroes the block's velocity every physics step (gym-pusht), so an
       impulse J at contact c with inward normal n moves the centre of gravity by J n / m and turns the block by
       J (r x n) / I, r = c - cog. For the pose error e = (goal cog - cog, goal angle - angle) and the cost
       |e_p|^2 + rho^2 e_theta^2, the best impulse at one contact is J* = a / b with
       a = e_p . n + rho^2 e_theta (r x n) / I and b = 1 + rho^2 (r x n)^2 / I^2; it lowers the cost by a^2 / b.
       Contacts are ranked by that gain per path length (travel + ``travel_offset``); the current contact gets a
       1.5x bonus against dithering, and contacts whose approach point lies outside the walls are dropped.
    2. **Approach.** If the straight segment to the pre-contact point (5 px off the surface) clears the T by the
       agent radius + 3 px, go straight; otherwise leave the T's concavity (if inside its convex hull) and orbit the
       hull 15 px off in the shorter angular direction, so the block is not knocked on the way.
    3. **Push.** In front of the contact, aim at the depth that delivers J* (contact compliance 1/m + (r x n)^2 / I),
       so pushes shrink as the block nears the goal: this is the final fine alignment.

    Smoothness: each target is at most ``max_step`` px from the agent and at most ``max_jump`` px from the previous
    target (before noise). Variety: Gaussian noise of ``noise`` px on every action, and ``rho`` (x U[0.85, 1.15])
    and ``max_step`` (x U[0.8, 1]) drawn per episode from the ``rng`` given to ``reset``.
    """

    def __init__(
        self,
        rho: float = 60.0,
        max_step: float = 30.0,
        max_jump: float = 15.0,
        noise: float = 0.5,
        travel_offset: float = 60.0,
    ):
        if min(rho, max_step, max_jump, travel_offset) <= 0 or noise < 0:
            raise DataError("PushTExpert needs rho, max_step, max_jump, travel_offset > 0 and noise >= 0")
        self.base_rho, self.base_max_step = float(rho), float(max_step)
        self.max_jump, self.noise, self.travel_offset = float(max_jump), float(noise), float(travel_offset)
        self._pts, self._nrm = _contact_candidates()
        self._env: Any = None
        self._rng = np.random.default_rng()
        self.rho, self.max_step = self.base_rho, self.base_max_step
        self.phase = "idle"  # last decision, for inspection: "push", "approach", "detour" or "hold"
        self._current, self._orbit_dir, self._last = -1, 0.0, None

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        if not callable(getattr(env, "state", None)):
            raise DataError("PushTExpert needs an environment with state(), i.e. diffusekit.robotics.pusht.PushTEnv")
        self._env, self._rng = env, rng
        self.rho = self.base_rho * float(rng.uniform(0.85, 1.15))
        self.max_step = self.base_max_step * float(rng.uniform(0.8, 1.0))
        self.phase = "idle"
        self._current, self._orbit_dir, self._last = -1, 0.0, None

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self._env is None:
            raise RuntimeError("PushTExpert.act() called before reset(env, rng)")
        ax, ay, bx, by, theta = self._env.state()
        agent, origin = np.array([ax, ay]), np.array([bx, by])
        rot = _rot(theta)
        agent_local = rot.T @ (agent - origin)  # plan in the block's frame
        goal_cog = np.array(GOAL_POSE[:2]) + _rot(GOAL_POSE[2]) @ _COG
        e_pos = rot.T @ (goal_cog - (origin + rot @ _COG))
        e_ang = float(_wrap(GOAL_POSE[2] - theta))

        # 1. Cost decrease a^2 / b of the best push at each contact, per path length to reach it.
        rho2 = self.rho**2
        n_in = -self._nrm
        lever = self._pts - _COG
        torque = lever[:, 0] * n_in[:, 1] - lever[:, 1] * n_in[:, 0]
        a = n_in @ e_pos + rho2 * e_ang * torque / _MOMENT
        b = 1.0 + rho2 * torque**2 / _MOMENT**2
        gain = np.where(a > 0, a * a / b, 0.0)
        pre = self._pts + self._nrm * (_AGENT_RADIUS + 5.0)
        pre_world = origin + pre @ rot.T
        in_arena = np.all((pre_world >= _ARENA[0]) & (pre_world <= _ARENA[1]), axis=1)
        clear = self._segment_clear(agent_local, pre)
        straight = np.linalg.norm(pre - agent_local, axis=1)
        ang_agent = math.atan2(agent_local[1] - _COG[1], agent_local[0] - _COG[0])
        ang_pre = np.arctan2(pre[:, 1] - _COG[1], pre[:, 0] - _COG[0])
        around = np.abs(_wrap(ang_pre - ang_agent)) * 80.0 + 0.5 * straight  # rough length of a detour
        travel = np.where(clear, straight, around)
        score = np.where(in_arena, gain / (travel + self.travel_offset), 0.0)
        if self._current >= 0:
            score[self._current] *= 1.5
        k = int(np.argmax(score))
        if score[k] <= 0.0:
            self.phase = "hold"
            return self._finish(agent, agent)
        if k != self._current:
            self._current, self._orbit_dir = k, 0.0

        # 2./3. Push when in front of the contact (agent touching or about to), else approach it.
        c, n = self._pts[k], self._nrm[k]
        rel = agent_local - (c + n * _AGENT_RADIUS)
        if abs(rel @ np.array([-n[1], n[0]])) < 5.0 and -6.0 < rel @ n < 8.0:
            depth = min(a[k] / b[k] * (1.0 / _MASS + torque[k] ** 2 / _MOMENT), 40.0)
            target, self.phase = c + n * (_AGENT_RADIUS - depth), "push"
        elif clear[k]:
            target, self.phase = pre[k], "approach"
        else:
            target, self.phase = self._detour(agent_local, pre[k]), "detour"
        return self._finish(agent, origin + rot @ target)

    def _finish(self, agent: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Rate-limit the target (distance to the agent and to the previous target), then add noise."""
        target = agent + _clip_norm(target - agent, self.max_step)
        if self._last is not None:
            target = self._last + _clip_norm(target - self._last, self.max_jump)
        self._last = target
        return np.clip(target + self._rng.normal(0.0, self.noise, size=2), 0.0, 512.0)

    @staticmethod
    def _segment_clear(start: np.ndarray, ends: np.ndarray, samples: int = 12) -> np.ndarray:
        """Whether the agent moving start -> ends[i] stays 3 px clear of the T (local frame, sampled)."""
        t = np.linspace(0.0, 1.0, samples)[None, :, None]
        pts = start[None, None, :] + t * (ends[:, None, :] - start[None, None, :])
        return _dist_to_tee(pts).min(axis=1) >= _AGENT_RADIUS + 3.0

    def _detour(self, agent_local: np.ndarray, pre: np.ndarray) -> np.ndarray:
        """Next waypoint around the T's convex hull toward ``pre`` (local frame)."""
        near, signed = _hull_nearest(agent_local)
        if signed < 0.0:  # inside the hull's concavity: back out, away from the T and from its centre
            away = agent_local - _nearest_on_tee(agent_local)
            out = agent_local - _COG
            direction = away / (np.linalg.norm(away) + 1e-9) + out / (np.linalg.norm(out) + 1e-9)
            return agent_local + 20.0 * direction / (np.linalg.norm(direction) + 1e-9)
        if self._orbit_dir == 0.0:  # chosen once per contact, so it does not flip near the half-way angle
            ang_agent = math.atan2(agent_local[1] - _COG[1], agent_local[0] - _COG[0])
            ang_pre = math.atan2(pre[1] - _COG[1], pre[0] - _COG[0])
            self._orbit_dir = 1.0 if _wrap(ang_pre - ang_agent) >= 0 else -1.0
        normal = (agent_local - near) / max(signed, 1e-9)
        tangent = self._orbit_dir * np.array([-normal[1], normal[0]])
        return near + normal * (_AGENT_RADIUS + 15.0) + tangent * 25.0


def expert_stats(episodes: int = 20, seed: int = EVAL_SEED, expert: PushTExpert | None = None) -> dict[str, float]:
    """Roll the expert on seeds ``seed, seed + 1, ...``.

    Returns the success rate, the mean score (max reward per episode, DP's Push-T score), the mean episode length
    in steps and the CPU seconds (``time.process_time``) per episode, environment included.
    """
    if episodes < 1:
        raise DataError(f"expert_stats needs episodes >= 1, got {episodes}")
    env, expert = PushTEnv(), expert or PushTExpert()
    successes, scores, lengths = [], [], []
    start = time.process_time()
    for i in range(episodes):
        obs = env.reset(seed=seed + i)
        expert.reset(env, np.random.default_rng(seed + i))
        best, done, info, steps = 0.0, False, {"success": False}, 0
        while not done:
            obs, reward, done, info = env.step(expert.act(obs))
            best, steps = max(best, reward), steps + 1
        successes.append(bool(info["success"]))
        scores.append(best)
        lengths.append(steps)
    seconds = (time.process_time() - start) / episodes
    env.close()
    return {
        "success_rate": float(np.mean(successes)),
        "mean_score": float(np.mean(scores)),
        "mean_length": float(np.mean(lengths)),
        "seconds_per_episode": float(seconds),
    }
