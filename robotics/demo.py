"""``diffusekit robotics demo``: point-mass demonstrations, a short Diffusion Policy training (with validation on
held-out episodes), DDPM-100 / DDIM-10 / RTI evaluation from one checkpoint, the evaluation figure and a GIF."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import torch

from diffusekit.core.commands import DemoResult
from diffusekit.core.engine import train_on_data
from diffusekit.robotics.workflow import (
    evaluate_modes,
    evaluate_settings,
    format_table,
    load_policy,
    load_robotics_config,
    mode_settings,
    with_data,
)

logger = logging.getLogger(__name__)

# full / quick (tests): demonstrations, training iterations, evaluation episodes per mode, control steps of the
# offline K' search (DDPM-100 at every step: the costliest part of the evaluation)
BUDGET = {False: (100, 600, 5, 8), True: (12, 60, 2, 3)}
# dp_pointmass_tiny with two U-Net levels instead of three (about 40% less time per iteration and per network call)
# and three times its learning rate: measured on 5 episodes, 600 iterations give DDPM-100 1.0, DDIM-10 0.8 and RTI
# from K' 0.6 (the config's U-Net and learning rate after 400 iterations: 0.83, 0.0 and 0.5)
DEMO_OPTIONS = ["model.unet.down_dims=(32,64)", "optim_wrapper.optimizer.lr=3e-3"]
EVAL_SEED = 1000


def metric_key(label: str) -> str:
    """``"RTI [2, 1, 0] consistent"`` -> ``"rti_2_1_0_consistent"``, ``"DDPM-100"`` -> ``"ddpm-100"``."""
    return label.lower().replace(" ", "_").replace("[", "").replace("]", "").replace(",", "")


def run_demo(out_dir: Path, quick: bool = False) -> DemoResult:
    """The demo section (see the module docstring); figures are linked relative to ``out_dir``'s parent."""
    from diffusekit.robotics.control import ControlSettings, PolicyRunner, choose_start_step, rollout
    from diffusekit.robotics.envs import make_env
    from diffusekit.robotics.policy import rti_step_list
    from diffusekit.robotics.synthetic import collect
    from diffusekit.robotics.visualize import evaluation_figure, save_animation

    out_dir = Path(out_dir)
    demos, iters, episodes, search_steps = BUDGET[quick]
    data, stats = collect("pointmass", demos, out_dir / "data", seed=0, progress=False)
    options = [f"train_cfg.max_iters={iters}", f"train_cfg.val_interval={max(iters // 3, 1)}",
               f"param_scheduler.1.end={iters}", f"checkpoint_interval={iters}", *DEMO_OPTIONS]  # fmt: skip
    cfg = with_data(load_robotics_config("dp_pointmass_tiny", options, "pointmass"), data)
    work_dir = out_dir / "work_dir"
    if work_dir.is_dir():
        shutil.rmtree(work_dir)  # the demo's own run from an earlier call: a rerun trains afresh
    start = time.perf_counter()
    weights = train_on_data(cfg, data, work_dir, seed=0)
    train_seconds = time.perf_counter() - start
    policy = load_policy(cfg, weights)
    env = make_env("pointmass")
    k_prime, _ = choose_start_step(policy, env, episodes=1, seed=EVAL_SEED, max_steps=search_steps)
    chosen = ControlSettings("rti", rti_steps=rti_step_list(k_prime, 3))
    settings = [*mode_settings(evaluate_settings(cfg), modes=("ddpm", "ddim")), chosen]
    start = time.perf_counter()
    rows = evaluate_modes(policy, "pointmass", settings, episodes, EVAL_SEED, progress=False)
    eval_seconds = time.perf_counter() - start
    figure = evaluation_figure(rows, out_dir / "evaluation.png", f"point mass, {episodes} episodes per mode")
    runner = PolicyRunner(policy, chosen, torch.Generator().manual_seed(0))
    gif = save_animation(rollout(env, runner, EVAL_SEED, record=True)["frames"], out_dir / "rollout_rti.gif")
    title = f"Diffusion Policy (tiny), point mass, {iters} iterations ({train_seconds:.0f} s), {episodes} episodes"
    rel = out_dir.parent
    markdown = "\n".join(
        [
            f"Scripted demonstrations ({stats['episodes']} episodes, bimodal: left or right of the obstacle), "
            f"a short training of `dp_pointmass_tiny` ({iters} iterations, U-Net 32-64, learning rate 3e-3; "
            "validation on held-out episodes: `work_dir/curves.png`), then the same checkpoint driven by DDPM-100, "
            f"DDIM-10 and RTI from the offline K' = {k_prime} (chosen over {search_steps} DDPM-100 control steps; "
            "one action per step, gripper clip; the GIF shows it). Low fixed RTI lists such as [2, 1, 0] fail on "
            "this task (docs/robotics.md, section 6); the benchmark runs every variant on 50 episodes.",
            "",
            format_table(rows, title),
            "",
            f"![success and score against cost]({figure.relative_to(rel).as_posix()})",
            f"![RTI rollout]({gif.relative_to(rel).as_posix()})",
        ]
    )
    metrics: dict = {}
    for r in rows:
        metrics[f"{metric_key(r['label'])}_success"] = r["success_rate"]
        metrics[f"{metric_key(r['label'])}_nfe_per_step"] = round(r["nfe_per_step"], 2)
    metrics.update(train_seconds=round(train_seconds, 1), eval_seconds=round(eval_seconds, 1), iterations=iters)
    logger.info("robotics demo: %s", metrics)
    return DemoResult("robotics", markdown, metrics)
