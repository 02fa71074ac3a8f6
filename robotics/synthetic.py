"""Scripted demonstrations written to disk as a replay buffer, standing in for datasets that cannot be downloaded.

Diffusion Policy (Chi et al., RSS 2023) trains on human demonstrations (Push-T: ``pusht_cchi_v7_replay.zarr``,
unreachable offline; :mod:`diffusekit.robotics.importers` converts a downloaded copy). :func:`collect` instead runs
a task's scripted expert (:func:`~diffusekit.robotics.envs.make_expert`) and writes ``<out>/<task>_replay.npz`` in
DP's replay layout (:mod:`diffusekit.robotics.replay`), which is what
:class:`~diffusekit.robotics.dataset.ActionWindows` reads. Each step records the observation before the action and
the expert's action. Only successful episodes are kept; failed ones are counted and replaced by further seeds. With
``progress``, a progress line goes to stderr (:class:`~diffusekit.core.progress.ProgressLine`)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from diffusekit.core.progress import ProgressLine
from diffusekit.robotics.envs import episode_outcome, make_env, make_expert
from diffusekit.robotics.replay import ReplayBuffer

logger = logging.getLogger(__name__)


def run_expert_episode(env, expert, seed: int) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """One expert episode from ``env.reset(seed)``: ``(obs, action, score, success)``.

    The expert's random stream is seeded by ``(seed, 1)``, independent of the environment's. An expert with a
    ``perturb(action)`` method gets its executed actions perturbed while the recorded labels stay its own (DART,
    Laskey et al. CoRL 2017): the demonstrations then show how to recover from the perturbed states.
    """
    obs = env.reset(seed=seed)
    expert.reset(env, np.random.default_rng((seed, 1)))
    observations, actions, rewards, successes = [], [], [], []
    for _ in range(env.max_steps):
        action = np.asarray(expert.act(obs), dtype=np.float32)
        observations.append(obs)
        actions.append(action)  # the expert's label; the executed action may be perturbed (DART)
        executed = expert.perturb(action) if hasattr(expert, "perturb") else action
        obs, reward, done, info = env.step(executed)
        rewards.append(reward)
        successes.append(bool(info.get("success", False)))
        if done:
            break
    score, success = episode_outcome(rewards, successes)
    return np.stack(observations), np.stack(actions), score, success


def collect(
    task: str, episodes: int, out: str | Path, seed: int = 0, progress: bool = True
) -> tuple[Path, dict[str, float]]:
    """Record ``episodes`` successful expert demonstrations of ``task`` into ``<out>/<task>_replay.npz``.

    Environment seeds run ``seed, seed + 1, ...`` until ``episodes`` successes (at most ``2 * episodes + 10``
    attempts, else RuntimeError). Returns the file and ``{episodes, steps, attempts, failed, expert_success_rate,
    mean_score}`` (the rate and mean score over all attempts).
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env, expert = make_env(task), make_expert(task)
    buffer = ReplayBuffer(task, env.obs_dim, env.action_dim, env.gripper_dims)
    max_attempts = 2 * episodes + 10
    scores: list[float] = []
    line = ProgressLine(enabled=progress)
    attempt = 0
    while buffer.n_episodes < episodes:
        if attempt >= max_attempts:
            raise RuntimeError(
                f"the {task} expert succeeded in only {buffer.n_episodes} of {attempt} episodes; "
                f"{episodes} demonstrations were asked for"
            )
        obs, action, score, success = run_expert_episode(env, expert, seed + attempt)
        attempt += 1
        scores.append(score)
        if success:
            buffer.add_episode(obs, action)
        kept = buffer.n_episodes
        line.update(
            f"[collect {task}] {kept}/{episodes} demonstrations, {attempt - kept} failed, {buffer.n_steps} steps"
        )
    line.finish()
    path = buffer.save(Path(out).expanduser() / f"{task}_replay.npz")
    logger.info("%s: %d demonstrations in %d attempts", path, buffer.n_episodes, attempt)
    stats = {
        "episodes": buffer.n_episodes,
        "steps": buffer.n_steps,
        "attempts": attempt,
        "failed": attempt - buffer.n_episodes,
        "expert_success_rate": buffer.n_episodes / attempt,
        "mean_score": float(np.mean(scores)),
    }
    return path, stats
