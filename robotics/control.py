"""Closed-loop control with a trained `DiffusionPolicy`: LeRobot-style queues, receding-horizon DDPM / DDIM and the
RTI-DP scheme, rollouts and the success / score / cost figures of an evaluation.

- ``ddpm`` / ``ddim`` (Chi et al. 2023): when the action queue is empty, sample a chunk from N(0, I) and queue its
  actions ``[n_obs - 1, n_obs - 1 + n_action)``; every control step pops one.
- ``rti`` (Duan et al. 2025, Alg. 1): the first call runs the full DDPM; every later step shifts the kept chunk by
  one (repeating its last action), refines it with the listed steps only and executes its current action (one
  action per prediction). Gripper dims of the kept chunk: ``clip`` resets them to sign / factor (pre-trained
  models); ``scale`` keeps them (models trained on the gripper column divided by 10). Executed grippers are sign(.).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from diffusekit.core.progress import ProgressLine
from diffusekit.robotics.policy import DiffusionPolicy, shift_chunk

__all__ = ["ControlSettings", "PolicyRunner", "choose_start_step", "evaluate_policy", "rollout"]


@dataclass
class ControlSettings:
    """How the policy is queried. ``steps``: DDPM / DDIM step count (None: all 100 for DDPM, 10 for DDIM)."""

    mode: str = "ddpm"
    steps: int | None = None
    rti_steps: tuple[int, ...] = (2, 1, 0)
    rti_mode: str = "consistent"
    gripper: str = "clip"
    gripper_factor: float = 1.0
    n_action: int | None = None

    def __post_init__(self):
        if self.mode not in ("ddpm", "ddim", "rti"):
            raise ValueError(f"unknown control mode {self.mode!r}; expected ddpm, ddim or rti")
        if self.gripper not in ("clip", "scale"):
            raise ValueError(f"unknown gripper handling {self.gripper!r}; expected clip or scale")
        self.rti_steps = tuple(int(s) for s in self.rti_steps)

    @property
    def label(self) -> str:
        if self.mode == "rti":
            return f"RTI {list(self.rti_steps)} {self.rti_mode}"
        return f"{self.mode.upper()}-{self.steps or (100 if self.mode == 'ddpm' else 10)}"


@dataclass
class RunStats:
    control_steps: int = 0
    network_evals: int = 0
    seconds: float = 0.0
    first_evals: int = 0  # RTI's initial full inference, reported apart as the paper does
    first_seconds: float = 0.0
    predictions: int = 0
    step_seconds: list[float] = field(default_factory=list)


class PolicyRunner:
    """``reset()`` then ``select_action(obs)`` once per control step (LeRobot's policy API)."""

    def __init__(self, policy: DiffusionPolicy, settings: ControlSettings, generator: torch.Generator | None = None):
        self.policy = policy.eval()
        self.settings = settings
        self.generator = generator
        self.device = next(policy.parameters()).device
        self.stats = RunStats()
        self.reset()

    def reset(self) -> None:
        self.observations: deque[np.ndarray] = deque(maxlen=self.policy.n_obs)
        self.actions: deque[np.ndarray] = deque()
        self.guess: torch.Tensor | None = None

    def _obs(self) -> torch.Tensor:
        history = list(self.observations)
        history = [history[0]] * (self.policy.n_obs - len(history)) + history  # pad with the first
        obs = torch.from_numpy(np.stack(history).astype(np.float32))[None].to(self.device)
        return self.policy.normalizer.normalize_obs(obs)

    def _execute(self, chunk: torch.Tensor) -> np.ndarray:
        actions = self.policy.normalizer.unnormalize_action(chunk)[0].cpu().numpy()
        for g in self.policy.gripper_dims:
            actions[:, g] = np.where(actions[:, g] >= 0, 1.0, -1.0)
        return actions

    def select_action(self, obs: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        self.observations.append(np.asarray(obs, dtype=np.float32))
        s, p = self.settings, self.policy
        first = False
        if s.mode == "rti":
            if self.guess is None:
                chunk = p.predict_chunk(self._obs(), "ddpm", None, self.generator)
                evals, first = p.num_steps, True
            else:
                chunk = p.rti_refine(self._obs(), shift_chunk(self.guess), s.rti_steps, s.rti_mode, self.generator)
                evals = len(s.rti_steps)
            self.guess = chunk.clone()
            if s.gripper == "clip" and p.gripper_dims:
                dims = list(p.gripper_dims)
                self.guess[..., dims] = torch.where(self.guess[..., dims] >= 0, 1.0, -1.0) / s.gripper_factor
            action = self._execute(chunk)[p.n_obs - 1]
            self._count(evals, start, first)
            return action
        evals = 0
        if not self.actions:
            steps = s.steps or (p.num_steps if s.mode == "ddpm" else 10)
            chunk = p.predict_chunk(self._obs(), s.mode, steps, self.generator)
            begin = p.n_obs - 1
            self.actions.extend(self._execute(chunk)[begin : begin + (s.n_action or p.n_action)])
            evals = steps
        action = self.actions.popleft()
        self._count(evals, start, False)
        return action

    def _count(self, evals: int, start: float, first: bool) -> None:
        seconds = time.perf_counter() - start
        self.stats.predictions += evals > 0
        if first:
            self.stats.first_evals += evals
            self.stats.first_seconds += seconds
            return
        self.stats.control_steps += 1
        self.stats.network_evals += evals
        self.stats.seconds += seconds
        self.stats.step_seconds.append(seconds)


def rollout(env, runner: PolicyRunner, seed: int, record: bool = False) -> dict:
    """One episode: score = max reward, success = any step's info["success"]; ``frames`` when ``record``."""
    obs = env.reset(seed=seed)
    runner.reset()
    score, success, frames, steps = 0.0, False, [], 0
    if record:
        frames.append(env.render())
    while steps < env.max_steps:
        steps += 1
        obs, reward, done, info = env.step(runner.select_action(obs))
        score, success = max(score, float(reward)), success or bool(info.get("success", False))
        if record:
            frames.append(env.render())
        if done:
            break
    return {"score": score, "success": success, "steps": steps, "frames": frames}


def evaluate_policy(
    policy: DiffusionPolicy, env, settings: ControlSettings, episodes: int = 50, seed: int = 100000,
    progress: bool = True,
) -> dict:  # fmt: skip
    """Seeded episodes ``seed, seed + 1, ...``: success rate, mean score, network evaluations and milliseconds per
    control step (RTI's first full inference excluded and reported apart)."""
    runner = PolicyRunner(policy, settings, torch.Generator().manual_seed(seed))
    results, line = [], ProgressLine(enabled=progress)
    for i in range(episodes):
        results.append(rollout(env, runner, seed + i))
        successes = sum(r["success"] for r in results)
        line.update(f"  {settings.label}: episode {i + 1}/{episodes}, success {successes}/{i + 1}")
    line.finish()
    st = runner.stats
    return {
        "label": settings.label,
        "success_rate": float(np.mean([r["success"] for r in results])),
        "mean_score": float(np.mean([r["score"] for r in results])),
        "nfe_per_step": st.network_evals / max(st.control_steps, 1),
        "ms_per_step": 1000 * st.seconds / max(st.control_steps, 1),
        "first_call_ms": 1000 * st.first_seconds / max(episodes, 1) if st.first_evals else 0.0,
        "first_call_nfe": st.first_evals / max(episodes, 1),
        "episodes": episodes,
        "mean_steps": float(np.mean([r["steps"] for r in results])),
    }


@torch.no_grad()
def choose_start_step(
    policy: DiffusionPolicy, env, episodes: int = 3, seed: int = 0, max_steps: int | None = None
) -> tuple[int, list[int]]:
    """RTI-DP's offline K': run DDPM-100 closed loop (one action per step, at most ``max_steps`` steps per episode)
    and, at every step, compare the shifted previous chunk with the forward-diffusion means of the new fully
    denoised chunk (`select_start_step`); returns the median choice and all of them."""
    from diffusekit.robotics.policy import select_start_step

    runner = PolicyRunner(policy, ControlSettings("ddpm", n_action=1), torch.Generator().manual_seed(seed))
    choices: list[int] = []
    for i in range(episodes):
        obs = env.reset(seed=seed + i)
        runner.reset()
        previous = None
        for _ in range(min(env.max_steps, max_steps or env.max_steps)):
            runner.observations.append(np.asarray(obs, dtype=np.float32))
            chunk = policy.predict_chunk(runner._obs(), "ddpm", None, runner.generator)
            if previous is not None:
                choices.append(select_start_step(policy.diffusion, chunk, shift_chunk(previous)))
            previous = chunk
            obs, _, done, _ = env.step(runner._execute(chunk)[policy.n_obs - 1])
            if done:
                break
    return int(np.median(choices)) if choices else 0, choices
