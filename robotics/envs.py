"""The environment and scripted-expert interfaces shared by every robotics task, and the task registry.

An environment follows the Push-T conventions of Diffusion Policy (Chi et al., RSS 2023;
``real-stanford/diffusion_policy:env/pusht/pusht_env.py``): the action is a target position tracked by a PD
controller, ``step`` returns ``(obs, reward, done, info)`` with ``info["success"]``, an episode's **score** is the
maximum reward over its steps and it **succeeds** when ``info["success"]`` is true at any step (see
:func:`episode_outcome`). Discrete gripper action dimensions (``gripper_dims``) are trained as continuous values and
executed as their sign (RTI-DP, Duan et al. 2025, §III-C).

Tasks: ``pointmass`` (:mod:`diffusekit.robotics.pointmass`, built in, seconds per hundred episodes) and ``pusht``
(:mod:`diffusekit.robotics.pusht`, imported only when asked for).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

import numpy as np

TASKS = ("pointmass", "pusht")


@runtime_checkable
class Env(Protocol):
    """A control task. ``reset``/``step`` return float32 observations of shape ``(obs_dim,)``."""

    name: str
    obs_dim: int
    action_dim: int
    max_steps: int
    gripper_dims: tuple[int, ...]  # action dims that are a binary gripper (+-1), executed as sign(a)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start an episode (deterministic for a given seed) and return the first observation."""
        ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, dict[str, Any]]:
        """Apply one action; return ``(obs, reward, done, info)`` with ``info["success"]`` a bool."""
        ...

    def render(self) -> np.ndarray:
        """The current scene as an ``(H, W, 3)`` uint8 frame."""
        ...


@runtime_checkable
class Expert(Protocol):
    """A scripted demonstrator. ``reset`` is called after ``env.reset`` (it may read the env's initial state)."""

    def reset(self, env: Env, rng: np.random.Generator) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")


def make_env(task: str, **kwargs: Any) -> Env:
    """Build the environment of ``task`` (one of :data:`TASKS`); ``kwargs`` go to its constructor."""
    _check_task(task)
    if task == "pointmass":
        from diffusekit.robotics.pointmass import PointMassEnv

        return PointMassEnv(**kwargs)
    from diffusekit.robotics.pusht import PushTEnv

    return PushTEnv(**kwargs)


def make_expert(task: str) -> Expert:
    """Build the scripted expert of ``task`` (one of :data:`TASKS`)."""
    _check_task(task)
    if task == "pointmass":
        from diffusekit.robotics.pointmass import PointMassExpert

        return PointMassExpert()
    from diffusekit.robotics.pusht import PushTExpert

    return PushTExpert()


def episode_outcome(rewards: Iterable[float], successes: Iterable[bool]) -> tuple[float, bool]:
    """``(score, success)`` of one episode: the max reward over its steps and whether any step succeeded.

    This is Diffusion Policy's Push-T rule (``env_runner/pusht_keypoints_runner.py`` reports the max reward).
    An episode without steps scores 0 and fails.
    """
    rewards = [float(r) for r in rewards]
    return (max(rewards) if rewards else 0.0), any(bool(s) for s in successes)


def execute_gripper(action: np.ndarray, gripper_dims: Iterable[int]) -> np.ndarray:
    """A copy of ``action`` with the gripper dims replaced by their executed value: +1 if >= 0, else -1.

    RTI-DP executes sign(a) for the discrete gripper; a value of exactly 0 counts as closed (+1), as in the policy
    runner (:mod:`diffusekit.robotics.control`).
    """
    out = np.array(action, dtype=np.float32, copy=True)
    dims = list(gripper_dims)
    if dims:
        out[..., dims] = np.where(out[..., dims] >= 0, 1.0, -1.0)
    return out
