"""``diffusekit robotics collect|train|evaluate|demo``: Diffusion Policy with RTI on Push-T and the point-mass task."""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.registry import MODELS

from diffusekit.core.checkpoint import load_checkpoint_file, select_state_dict, weights_path
from diffusekit.core.cli import DemoResult, Domain, add_demo_command, add_json_flag, add_train_flags, json_ready
from diffusekit.core.engine import load_config, load_weights, train_on_data
from diffusekit.core.errors import DataError

PACKAGE = "diffusekit.robotics"
SHIPPED = "dp_pusht, dp_pusht_tiny, dp_pointmass_tiny, dp_pointmass_scale_tiny"
DEFAULT_CONFIG = {"pusht": "dp_pusht_tiny", "pointmass": "dp_pointmass_tiny"}


def load_robotics_config(config: str | Path | None, options: list[str] | None = None, task: str = "pusht") -> Config:
    return load_config(config or DEFAULT_CONFIG[task], package=PACKAGE, cfg_options=options or [])


def with_data(cfg: Config, data: str | Path) -> Config:
    """``cfg`` with the observation / action widths and the normaliser statistics of the replay buffer at ``data``
    (checked against the config's task and gripper dims)."""
    from diffusekit.robotics.dataset import ActionWindows

    cfg = copy.deepcopy(cfg)
    spec = dict(cfg.train_dataloader.dataset)
    spec.pop("type")
    spec["data_root"] = str(data)
    windows = ActionWindows(**spec)
    buffer = windows.buffer
    if buffer.task and buffer.task != cfg.get("task", buffer.task):
        raise DataError(f"replay buffer of task {buffer.task!r}, config for {cfg.task!r}", windows.path)
    if tuple(buffer.gripper_dims) != tuple(cfg.model.get("gripper_dims", ())):
        raise DataError(f"gripper dims {tuple(buffer.gripper_dims)} differ from the config's "
                        f"{tuple(cfg.model.get('gripper_dims', ()))}", windows.path)  # fmt: skip
    cfg.model.obs_dim, cfg.model.action_dim = int(buffer.obs.shape[1]), int(buffer.action.shape[1])
    cfg.model.normalizer = windows.normalizer_stats
    return cfg


def load_policy(cfg: Config, checkpoint: str | Path, env=None):
    """The trained policy: widths and normaliser statistics are read back from the checkpoint (and checked against
    ``env``'s observation and action widths before the weights are loaded)."""
    import diffusekit.robotics.policy  # noqa: F401  (registers the model)
    from diffusekit.robotics.normalizer import STAT_KEYS

    path = weights_path(checkpoint)
    state = select_state_dict(load_checkpoint_file(path), use_ema=True)
    try:
        stats = {k: state[f"normalizer.{k}"].tolist() for k in STAT_KEYS}
    except KeyError as missing:
        raise DataError(f"not a Diffusion Policy checkpoint (no {missing})", path) from None
    obs_dim, action_dim = len(stats["obs_low"]), len(stats["action_low"])
    if env is not None:
        require_dims(obs_dim, action_dim, env, path)
    spec = copy.deepcopy(cfg.model)
    spec.update(obs_dim=obs_dim, action_dim=action_dim, normalizer=stats)
    policy = load_weights(MODELS.build(spec), path)
    policy.checkpoint_path = path
    return policy.to("cuda" if torch.cuda.is_available() else "cpu").eval()


def require_dims(obs_dim: int, action_dim: int, env, path) -> None:
    """A `DataError` naming the checkpoint when its policy's observation / action widths are not ``env``'s."""
    if (obs_dim, action_dim) != (env.obs_dim, env.action_dim):
        raise DataError(f"the checkpoint's policy has observation / action dims {obs_dim} / {action_dim}, the "
                        f"{env.name} environment {env.obs_dim} / {env.action_dim}", path)  # fmt: skip


def settings_from(cfg: Config, args: argparse.Namespace, rti_steps: tuple[int, ...] | None = None) -> list:
    """One `ControlSettings` per requested mode (RTI twice, consistent and official, with ``--rti-mode both``);
    ``rti_steps`` (the offline choice) overrides ``--rti-steps`` and the config."""
    from diffusekit.robotics.control import ControlSettings

    ev = dict(cfg.get("evaluate", {}))
    rti_steps = tuple(rti_steps or args.rti_steps or ev.get("rti_steps", (2, 1, 0)))
    rti_mode = args.rti_mode or ev.get("rti_mode", "consistent")
    gripper = args.gripper or ev.get("gripper", "clip")
    out = []
    for mode in args.modes or ev.get("modes", ("ddpm", "ddim", "rti")):
        if mode == "ddpm":
            out.append(ControlSettings("ddpm"))
        elif mode == "ddim":
            out.append(ControlSettings("ddim", steps=args.ddim_steps or ev.get("ddim_steps", 10)))
        else:
            for m in ("consistent", "official") if rti_mode == "both" else (rti_mode,):
                out.append(ControlSettings("rti", rti_steps=rti_steps, rti_mode=m, gripper=gripper))
    return out


def format_table(rows: list[dict], title: str) -> str:
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


def cmd_collect(args: argparse.Namespace) -> int:
    from diffusekit.robotics.synthetic import collect

    path, stats = collect(args.task, args.episodes, args.out, args.seed)
    print(f"{path}: {stats['episodes']} episodes, {stats['steps']} steps; expert success rate "
          f"{stats['expert_success_rate']:.2f}, mean score {stats['mean_score']:.3f}")  # fmt: skip
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = with_data(load_robotics_config(args.config, args.cfg_options, args.task), args.data)
    weights = train_on_data(cfg, args.data, args.work_dir, args.resume, args.launcher, args.seed)
    if is_main_process():
        print(f"trained: {weights} (raw and EMA weights; evaluate uses EMA)")
    return 0


def evaluate_modes(policy, cfg: Config, settings: list, episodes: int, seed: int, progress: bool = True) -> list:
    from diffusekit.robotics.control import evaluate_policy
    from diffusekit.robotics.envs import make_env

    env = make_env(cfg.get("task", "pusht"))
    require_dims(policy.obs_dim, policy.action_dim, env, getattr(policy, "checkpoint_path", None))
    return [evaluate_policy(policy, env, s, episodes, seed, progress) for s in settings]


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.robotics.envs import make_env

    cfg = load_robotics_config(args.config, args.cfg_options, args.task)
    ev = dict(cfg.get("evaluate", {}))
    policy = load_policy(cfg, args.checkpoint, make_env(cfg.get("task", "pusht")))
    episodes = args.episodes or ev.get("episodes", 50)
    seed = ev.get("seed", 100000) if args.seed is None else args.seed
    chosen = None
    if args.choose_k:
        from diffusekit.robotics.control import choose_start_step
        from diffusekit.robotics.policy import rti_step_list

        k, _ = choose_start_step(policy, make_env(cfg.get("task", "pusht")), episodes=2, seed=seed)
        chosen = rti_step_list(k, len(args.rti_steps or ev.get("rti_steps", (2, 1, 0))))
        print(f"offline K' (forward-diffusion mean nearest the shifted guess; median over 2 rollouts): {k}; "
              f"RTI steps {list(chosen)}")  # fmt: skip
    rows = evaluate_modes(policy, cfg, settings_from(cfg, args, chosen), episodes, seed)
    title = f"{cfg.get('task')}: {episodes} episodes from seed {seed}, checkpoint {args.checkpoint}"
    report = format_table(rows, title)
    print(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(json_ready(rows), indent=1))
        (out / "report.md").write_text(report + "\n")
        print(f"metrics.json and report.md: {out}")
    if args.json:
        print(json.dumps(json_ready(rows), sort_keys=True))
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    from diffusekit.robotics.control import ControlSettings, PolicyRunner, rollout
    from diffusekit.robotics.envs import make_env
    from diffusekit.robotics.visualize import save_animation

    cfg = load_robotics_config(args.config, args.cfg_options, args.task)
    env = make_env(cfg.get("task", "pusht"))
    policy = load_policy(cfg, args.checkpoint, env)
    settings = ControlSettings(args.mode, rti_steps=tuple(args.rti_steps or (2, 1, 0)))
    result = rollout(env, PolicyRunner(policy, settings, torch.Generator().manual_seed(args.seed)), args.seed, True)
    path = save_animation(result["frames"], args.out)
    print(f"{path}: {result['steps']} steps, score {result['score']:.3f}, success {result['success']}")
    return 0


def run_demo(out_dir: Path, quick: bool = False) -> DemoResult:
    """Point-mass demonstrations, a short Diffusion Policy training, DDPM-100 / DDIM-10 / RTI evaluation, a GIF."""
    from diffusekit.robotics.control import ControlSettings, PolicyRunner, choose_start_step, rollout
    from diffusekit.robotics.envs import make_env
    from diffusekit.robotics.policy import rti_step_list
    from diffusekit.robotics.synthetic import collect
    from diffusekit.robotics.visualize import save_animation

    out_dir = Path(out_dir)
    data, stats = collect("pointmass", 20 if quick else 100, out_dir / "data", seed=0, progress=False)
    iters = 60 if quick else 1500
    cfg = with_data(load_robotics_config("dp_pointmass_tiny", [f"train_cfg.max_iters={iters}"], "pointmass"), data)
    threads = torch.get_num_threads()
    start = time.perf_counter()
    try:
        torch.set_num_threads(1)
        weights = train_on_data(cfg, data, out_dir / "work_dir", seed=0)
        train_seconds = time.perf_counter() - start
        policy = load_policy(cfg, weights)
        episodes = 4 if quick else 20
        env = make_env("pointmass")
        k_prime, _ = choose_start_step(policy, env, episodes=1, seed=1000)
        chosen = ControlSettings("rti", rti_steps=rti_step_list(k_prime, 3))
        args = argparse.Namespace(modes=None, ddim_steps=None, rti_steps=None, rti_mode=None, gripper=None)
        rows = evaluate_modes(policy, cfg, [*settings_from(cfg, args), chosen], episodes, 1000, progress=False)
        runner = PolicyRunner(policy, chosen, torch.Generator().manual_seed(0))
        gif = save_animation(rollout(env, runner, 1000, record=True)["frames"], out_dir / "rollout_rti.gif")
    finally:
        torch.set_num_threads(threads)
    title = f"Diffusion Policy (tiny), point mass, {iters} iterations ({train_seconds:.0f} s), {episodes} episodes"
    markdown = "\n".join(
        [
            f"Scripted demonstrations ({stats['episodes']} episodes, bimodal: left or right of the obstacle), a short "
            "training of `dp_pointmass_tiny`, then the same checkpoint driven by DDPM-100, DDIM-10, RTI [2, 1, 0] and "
            f"RTI from the offline K' = {k_prime} (one action per step, gripper clip; the GIF shows the latter). See "
            "docs/robotics.md for the benchmark.",
            "",
            format_table(rows, title),
            "",
            f"![RTI rollout]({gif.relative_to(out_dir.parent).as_posix()})",
        ]
    )
    metrics: dict[str, Any] = {}
    for r in rows:
        key = r["label"].lower().replace(" ", "_").replace("[", "").replace("]", "").replace(",", "")
        metrics[f"{key}_success"] = r["success_rate"]
        metrics[f"{key}_nfe_per_step"] = round(r["nfe_per_step"], 2)
    metrics.update(train_seconds=round(train_seconds, 1), iterations=iters)
    return DemoResult("robotics", markdown, metrics)


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", choices=sorted(DEFAULT_CONFIG), default="pusht", help="the task (default pusht)")
    parser.add_argument("--config", help=f"a config file or a shipped name: {SHIPPED} (default: the task's tiny one)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``robotics`` subcommands."""
    sub = parser.add_subparsers(dest="robotics_command", metavar="COMMAND")
    co = sub.add_parser(
        "collect",
        help="record scripted-expert demonstrations into a replay buffer (npz)",
        description="Runs the task's scripted expert for seeded episodes and writes OUT/<task>_replay.npz in "
        "Diffusion Policy's replay-buffer layout (data/obs, data/action, meta/episode_ends). Only successful "
        "episodes are kept; the expert's success rate is printed.",
    )
    co.add_argument("--task", choices=sorted(DEFAULT_CONFIG), default="pusht", help="the task (default pusht)")
    co.add_argument("--episodes", type=int, default=100, help="episodes to run (default 100)")
    co.add_argument("--out", required=True, help="output folder")
    co.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    co.set_defaults(func=cmd_collect)

    tr = sub.add_parser(
        "train",
        help="train a Diffusion Policy on a replay buffer through the mmengine engine",
        description="Reads the replay buffer at DATA (a folder with <task>_replay.npz or the file), fits the "
        "min-max normaliser, trains into WORK_DIR (checkpoints, final_weights.pth with raw and EMA weights). "
        "--resume continues from the newest checkpoint; multi-GPU: torchrun ... --launcher pytorch.",
    )
    _config_args(tr)
    tr.add_argument("--data", required=True, help="the replay buffer (folder or npz)")
    add_train_flags(tr)
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate",
        help="success rate, score, network evaluations and ms per control step for DDPM, DDIM and RTI",
        description="Runs seeded episodes with the same checkpoint under each inference mode: DDPM-100 and "
        "DDIM-K (receding horizon, n_action actions per chunk) and RTI (warm start from the shifted previous "
        "chunk, only the listed steps, one action per step; its first full inference is reported apart).",
    )
    _config_args(ev)
    ev.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    ev.add_argument("--episodes", type=int, help="episodes per mode (default: the config's)")
    ev.add_argument("--seed", type=int, help="seed of the first episode (default: the config's, 100000 for Push-T)")
    ev.add_argument("--modes", nargs="+", choices=("ddpm", "ddim", "rti"), help="inference modes (default: all)")
    ev.add_argument("--ddim-steps", type=int, help="DDIM steps (default 10)")
    ev.add_argument("--rti-steps", type=int, nargs="+", help="RTI's denoising steps (default 2 1 0)")
    ev.add_argument("--rti-mode", choices=("consistent", "official", "both"),
                    help="how a step list with gaps is run: the core's stepping between listed levels "
                    "(consistent, default) or one t -> t-1 update per listed t (official RTI-DP code)")  # fmt: skip
    ev.add_argument("--gripper", choices=("clip", "scale"), help="RTI's gripper handling (default: the config's)")
    ev.add_argument(
        "--choose-k",
        action="store_true",
        help="choose K' offline (RTI-DP: the level whose forward-diffusion mean is nearest the shifted guess, over 2 "
        "DDPM rollouts) and run RTI from K' down to 0 with as many steps as --rti-steps",
    )
    ev.add_argument("--out", help="also write metrics.json and report.md here")
    add_json_flag(ev)
    ev.set_defaults(func=cmd_evaluate)

    ro = sub.add_parser(
        "rollout",
        help="one episode saved as an animated GIF (or a folder of frames)",
        description="Runs one seeded episode and writes OUT (.gif, or a folder of PNG frames).",
    )
    _config_args(ro)
    ro.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    ro.add_argument("--out", required=True, help="a .gif path or a folder for PNG frames")
    ro.add_argument("--mode", choices=("ddpm", "ddim", "rti"), default="rti", help="inference mode (default rti)")
    ro.add_argument("--rti-steps", type=int, nargs="+", help="RTI's denoising steps (default 2 1 0)")
    ro.add_argument("--seed", type=int, default=100000, help="episode seed")
    ro.set_defaults(func=cmd_rollout)

    add_demo_command(
        sub,
        "robotics",
        run_demo,
        help="point-mass demonstrations, a short training, DDPM / DDIM / RTI evaluation and a rollout GIF",
        description="Collects scripted point-mass demonstrations, trains dp_pointmass_tiny briefly, evaluates it "
        "with DDPM-100, DDIM-10 and RTI and writes OUT/report.md with an animated rollout.",
    )


def demo(out_dir: Path, quick: bool) -> DemoResult:
    """The ``diffusekit demo`` section of this domain."""
    return run_demo(Path(out_dir), quick)


DOMAIN = Domain("robotics", "Diffusion Policy with Real-Time Iteration (Push-T, a point-mass task)", add_commands, demo)
