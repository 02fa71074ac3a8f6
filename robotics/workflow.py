"""The steps behind ``diffusekit robotics train|evaluate|rollout``, for scripts and notebooks as well as the CLI:
configs, a replay buffer's widths and normaliser into a config, a trained policy from a checkpoint, the inference
modes of an evaluation and its results table.

The ``evaluate`` block of a config (read through :func:`evaluate_settings`, unknown keys are a `DataError`):
``episodes`` (50), ``seed`` (100000, DP's Push-T test seeds), ``modes`` (ddpm, ddim, rti), ``ddim_steps`` (10),
``rti_steps`` ((2, 1, 0)), ``rti_mode`` (consistent | official | both) and ``gripper`` (clip | scale).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path

from mmengine.config import Config

from diffusekit.core.checkpoint import load_checkpoint_file, select_state_dict, weights_path
from diffusekit.core.commands import build_model, resolve_device
from diffusekit.core.config_checks import config_block, registry_errors
from diffusekit.core.engine import load_config, load_weights
from diffusekit.core.errors import DataError

logger = logging.getLogger(__name__)

PACKAGE = "diffusekit.robotics"
DEFAULT_CONFIG = {"pusht": "dp_pusht_tiny", "pointmass": "dp_pointmass_tiny"}
MODEL_IMPORTS = ("diffusekit.robotics.policy", "diffusekit.robotics.dataset", "diffusekit.robotics.metrics")
EVALUATE = dict(
    episodes=50,
    seed=100000,
    modes=("ddpm", "ddim", "rti"),
    ddim_steps=10,
    rti_steps=(2, 1, 0),
    rti_mode="consistent",
    gripper="clip",
)

__all__ = [
    "build_policy",
    "check_steps",
    "evaluate_modes",
    "evaluate_settings",
    "format_table",
    "load_policy",
    "load_robotics_config",
    "mode_settings",
    "require_dims",
    "with_data",
]


def load_robotics_config(config: str | Path | None, options: Sequence[str] | None = None, task: str = "pusht"):
    """A config file or shipped name (default: ``task``'s tiny config) with ``options`` (``key=value``) applied."""
    return load_config(config or DEFAULT_CONFIG[task], package=PACKAGE, cfg_options=list(options or []))


def evaluate_settings(cfg: Config) -> dict:
    """The config's ``evaluate`` block over the defaults (module docstring); an unknown key or a bad value (a count
    below 1, an unknown mode, RTI steps that do not descend) is a `DataError` naming the key and the config file."""
    ev = config_block(cfg, "evaluate", EVALUATE)
    path = getattr(cfg, "filename", None)

    def fail(key: str, expected: str) -> DataError:
        return DataError(f"evaluate.{key} must be {expected}, got {ev[key]!r}", path)

    for key, minimum in (("episodes", 1), ("seed", 0), ("ddim_steps", 1)):
        if not _is_int(ev[key], minimum):
            raise fail(key, f"an integer >= {minimum}")
    modes = ev["modes"]
    if not isinstance(modes, (list, tuple)) or not modes or any(m not in ("ddpm", "ddim", "rti") for m in modes):
        raise fail("modes", "a non-empty list of ddpm, ddim and rti")
    steps = ev["rti_steps"]
    if not isinstance(steps, (list, tuple)) or not steps or not all(_is_int(t, 0) for t in steps):
        raise fail("rti_steps", "a non-empty list of integers >= 0")
    if any(b >= a for a, b in zip(steps, steps[1:])):
        raise fail("rti_steps", "strictly descending (e.g. [2, 1, 0])")
    if ev["rti_mode"] not in ("consistent", "official", "both"):
        raise fail("rti_mode", "consistent, official or both")
    if ev["gripper"] not in ("clip", "scale"):
        raise fail("gripper", "clip or scale")
    return {**ev, "modes": tuple(modes), "rti_steps": tuple(int(t) for t in steps)}


def _is_int(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def build_policy(cfg: Config):
    """``cfg``'s policy with random weights; a bad model config (a misspelt key, a negative size) is a `DataError`
    naming the config file. ``train`` builds it once before training, so that such a config fails before the work
    dir is written."""
    try:
        return build_model(cfg, MODEL_IMPORTS)
    except ValueError as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"the model config does not build: {error}", getattr(cfg, "filename", None)) from None


def check_steps(settings: Sequence, num_steps: int) -> None:
    """A `DataError` when a mode asks for more denoising steps than the policy's schedule has (DDPM / DDIM
    ``steps`` above ``num_steps``, RTI levels outside 0..num_steps-1), before any episode runs."""
    for s in settings:
        if s.mode == "rti" and not 0 <= s.rti_steps[-1] <= s.rti_steps[0] < num_steps:
            raise DataError(f"RTI steps {list(s.rti_steps)} (--rti-steps or evaluate.rti_steps) must lie in "
                            f"0..{num_steps - 1}: the policy has {num_steps} diffusion steps")  # fmt: skip
        if s.mode != "rti" and s.steps is not None and not 1 <= s.steps <= num_steps:
            raise DataError(f"{s.mode.upper()} steps {s.steps} (--steps or evaluate.ddim_steps) must lie in "
                            f"1..{num_steps}: the policy has {num_steps} diffusion steps")  # fmt: skip


def with_data(cfg: Config, data: str | Path) -> Config:
    """``cfg`` with the observation / action widths and the normaliser statistics of the replay buffer at ``data``
    (checked against the config's task and gripper dims), and ``data`` as the training and validation data."""
    from diffusekit.robotics.dataset import ActionWindows

    cfg = copy.deepcopy(cfg)
    root = str(Path(data).expanduser().absolute())
    spec = dict(cfg.train_dataloader.dataset)
    spec.pop("type")
    spec["data_root"] = root
    path = getattr(cfg, "filename", None)
    try:
        with registry_errors(path):
            windows = ActionWindows(**spec)
    except ValueError as error:  # a value of the dataset block that the windows refuse (horizon, gripper_scale)
        if isinstance(error, DataError):
            raise
        raise DataError(f"train_dataloader.dataset: {error}", path) from None
    buffer = windows.buffer
    if buffer.task and buffer.task != cfg.get("task", buffer.task):
        raise DataError(f"replay buffer of task {buffer.task!r}, config for {cfg.task!r}", windows.path)
    if tuple(buffer.gripper_dims) != tuple(cfg.model.get("gripper_dims", ())):
        raise DataError(f"gripper dims {tuple(buffer.gripper_dims)} differ from the config's "
                        f"{tuple(cfg.model.get('gripper_dims', ()))}", windows.path)  # fmt: skip
    cfg.model.obs_dim, cfg.model.action_dim = int(buffer.obs.shape[1]), int(buffer.action.shape[1])
    cfg.model.normalizer = windows.normalizer_stats
    cfg.train_dataloader.dataset["data_root"] = root
    if cfg.get("val_dataloader"):
        cfg.val_dataloader.dataset["data_root"] = root
    logger.info("%s: %d episodes, %d training windows", windows.path, buffer.n_episodes, len(windows))
    return cfg


def require_dims(obs_dim: int, action_dim: int, env, path) -> None:
    """A `DataError` naming the checkpoint when its policy's observation / action widths are not ``env``'s."""
    if (obs_dim, action_dim) != (env.obs_dim, env.action_dim):
        raise DataError(f"the checkpoint's policy has observation / action dims {obs_dim} / {action_dim}, the "
                        f"{env.name} environment {env.obs_dim} / {env.action_dim}", path)  # fmt: skip


def load_policy(cfg: Config, checkpoint: str | Path, env=None, device: str = "auto"):
    """The trained policy (EMA weights) on ``device``, in eval mode: widths and normaliser statistics are read back
    from the checkpoint (and checked against ``env``'s observation and action widths before the weights load)."""
    from diffusekit.robotics.normalizer import STAT_KEYS, LinearNormalizer

    path = weights_path(checkpoint)
    state = select_state_dict(load_checkpoint_file(path), use_ema=True)
    try:
        stats = {k: state[f"normalizer.{k}"].tolist() for k in STAT_KEYS}
    except KeyError as missing:
        raise DataError(f"not a Diffusion Policy checkpoint (no {missing})", path) from None
    bad = next((k for k, v in state.items() if v.is_floating_point() and not bool(v.isfinite().all())), None)
    if bad is not None:
        raise DataError(f"the checkpoint holds NaN or infinite values (first: {bad}): a diverged run or a damaged "
                        "file", path)  # fmt: skip
    obs_dim, action_dim = len(stats["obs_low"]), len(stats["action_low"])
    try:
        LinearNormalizer(obs_dim, action_dim, stats)
    except ValueError as error:
        raise DataError(f"invalid normaliser statistics in the checkpoint: {error}", path) from None
    if env is not None:
        require_dims(obs_dim, action_dim, env, path)
    cfg = copy.deepcopy(cfg)
    cfg.model.update(obs_dim=obs_dim, action_dim=action_dim, normalizer=stats)
    policy = load_weights(build_policy(cfg), path)
    policy.checkpoint_path = path
    return policy.to(resolve_device(device)).eval()


def mode_settings(
    ev: dict,
    modes: Sequence[str] | None = None,
    steps: int | None = None,
    rti_steps: Sequence[int] | None = None,
    rti_mode: str | None = None,
    gripper: str | None = None,
) -> list:
    """One `ControlSettings` per mode (RTI twice, consistent and official, with ``rti_mode="both"``); arguments left
    None take the ``evaluate`` block's values ``ev`` (:func:`evaluate_settings`). ``steps``: DDIM's step count."""
    from diffusekit.robotics.control import ControlSettings

    rti_steps = tuple(rti_steps or ev["rti_steps"])
    rti_mode = rti_mode or ev["rti_mode"]
    gripper = gripper or ev["gripper"]
    out = []
    for mode in modes or ev["modes"]:
        if mode == "ddpm":
            out.append(ControlSettings("ddpm"))
        elif mode == "ddim":
            out.append(ControlSettings("ddim", steps=steps or ev["ddim_steps"]))
        else:
            for m in ("consistent", "official") if rti_mode == "both" else (rti_mode,):
                out.append(ControlSettings("rti", rti_steps=rti_steps, rti_mode=m, gripper=gripper))
    return out


def evaluate_modes(policy, task: str, settings: list, episodes: int, seed: int, progress: bool = True) -> list[dict]:
    """One row of :func:`~diffusekit.robotics.control.evaluate_policy` per inference mode, on ``task``'s env."""
    from diffusekit.robotics.control import evaluate_policy
    from diffusekit.robotics.envs import make_env

    env = make_env(task)
    require_dims(policy.obs_dim, policy.action_dim, env, getattr(policy, "checkpoint_path", None))
    check_steps(settings, policy.num_steps)
    return [evaluate_policy(policy, env, s, episodes, seed, progress) for s in settings]


def format_table(rows: list[dict], title: str) -> str:
    """A markdown table of evaluation rows, with each mode's speed-up in ms per control step against DDPM."""
    lines = [f"**{title}**", "", "| inference | success | mean score | NFE / step | ms / step | first call ms |"]
    lines.append("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        lines.append(f"| {r['label']} | {r['success_rate']:.2f} | {r['mean_score']:.3f} | {r['nfe_per_step']:.2f} | "
                     f"{r['ms_per_step']:.1f} | {r['first_call_ms']:.0f} |")  # fmt: skip
    base = next((r for r in rows if r["label"].startswith("DDPM")), None)
    if base:
        ratios = ", ".join(f"{r['label']} {base['ms_per_step'] / max(r['ms_per_step'], 1e-9):.1f}x"
                           for r in rows if r is not base)  # fmt: skip
        lines += ["", f"Speed-up in ms per control step against {base['label']}: {ratios}."]
    return "\n".join(lines)
