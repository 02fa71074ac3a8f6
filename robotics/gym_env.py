"""The point-mass task as a registered ``gymnasium.Env``: ``diffusekit/PointMass-v0``.

Importing this module registers the id; ``gymnasium.make("diffusekit.robotics.gym_env:diffusekit/PointMass-v0")``
imports and makes it in one call. The rules are :class:`~diffusekit.robotics.pointmass.PointMassEnv`'s:
``terminated`` on a successful grasp, ``truncated`` after ``max_steps`` (80) steps without one, ``info["success"]``
as in our own control loop, ``render_mode="rgb_array"`` for frames. ``reset(seed=s)`` starts the same scene as
``PointMassEnv().reset(seed=s)`` (both draw from a PCG64 generator seeded with ``s``), so seeds mean the same in
both APIs.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

from diffusekit.robotics.pointmass import PointMassEnv

ENV_ID = "diffusekit/PointMass-v0"

__all__ = ["ENV_ID", "PointMassGymEnv"]


class PointMassGymEnv(gymnasium.Env):
    """Observation ``(x, y, vx, vy, gripper)``: position in [0, 1]^2, velocity in [-5, 5]^2 (the PD controller
    keeps each component within 2.5, sliding along the obstacle within 2.5 * sqrt(2)), gripper +-1 (executed
    state). Action ``(target_x, target_y, gripper)`` in [0, 1]^2 x [-1, 1]; the gripper closes when >= 0."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, max_steps: int = 80, hold_steps: int = 3, render_size: int = 96):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        self.core = PointMassEnv(max_steps=max_steps, hold_steps=hold_steps, render_size=render_size)
        self.observation_space = spaces.Box(
            np.array([0, 0, -5, -5, -1], np.float32), np.array([1, 1, 5, 5, 1], np.float32), dtype=np.float32
        )
        self.action_space = spaces.Box(np.array([0, 0, -1], np.float32), np.array([1, 1, 1], np.float32))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        return self.core.reset(generator=self.np_random), {}

    def step(self, action):
        obs, reward, done, info = self.core.step(action)
        terminated = bool(info["success"])
        return obs, reward, terminated, bool(done and not terminated), info

    def render(self) -> np.ndarray | None:
        return self.core.render() if self.render_mode == "rgb_array" else None


if ENV_ID not in gymnasium.registry:
    gymnasium.register(ENV_ID, entry_point=PointMassGymEnv, max_episode_steps=None)
