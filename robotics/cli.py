"""``diffusekit robotics collect|import|train|evaluate|rollout|demo``: argument parsing only; the work is done by
:mod:`~diffusekit.robotics.workflow`, :mod:`~diffusekit.robotics.synthetic`, :mod:`~diffusekit.robotics.importers`,
:mod:`~diffusekit.robotics.control` and :mod:`~diffusekit.robotics.demo` (imported inside the commands: this module
loads without the robotics extra)."""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusekit.core.checkpoint import weights_path
from diffusekit.core.cli import Domain
from diffusekit.core.commands import (
    add_command,
    add_config_args,
    add_demo_command,
    add_output_args,
    add_runtime_args,
    add_sampling_args,
    add_seed_arg,
    add_train_args,
    nonnegative_int,
    output_dir,
    positive_int,
    report,
)
from diffusekit.core.errors import DataError

DEMO = "diffusekit.robotics.demo:run_demo"  # the demo section, imported when it runs

PACKAGE = "diffusekit.robotics"
TASKS = ("pointmass", "pusht")


def _task_config(args: argparse.Namespace):
    from diffusekit.robotics.workflow import load_robotics_config

    return load_robotics_config(args.config, args.cfg_options, args.task)


def _rti_steps(args: argparse.Namespace) -> tuple[int, ...] | None:
    steps = args.rti_steps
    if steps and any(b >= a for a, b in zip(steps, steps[1:])):
        raise DataError(f"--rti-steps must strictly descend (e.g. 2 1 0), got {' '.join(map(str, steps))}")
    return tuple(steps) if steps else None


def _new_buffer(out: str, task: str, overwrite: bool) -> Path:
    """The output folder of collect / import; a DataError when it names a file, or holds ``<task>_replay.npz``
    already and ``overwrite`` is not set (checked before any work)."""
    folder = output_dir(out)
    path = folder / f"{task}_replay.npz"
    if path.exists() and not overwrite:
        raise DataError("exists; choose an empty folder or pass --overwrite", path)
    return folder


def cmd_collect(args: argparse.Namespace) -> int:
    from diffusekit.robotics.synthetic import collect

    out = _new_buffer(args.out, args.task, args.overwrite)
    path, stats = collect(args.task, args.episodes, out, args.seed)
    print(f"{path}: {stats['episodes']} episodes, {stats['steps']} steps; expert success rate "
          f"{stats['expert_success_rate']:.2f}, mean score {stats['mean_score']:.3f}")  # fmt: skip
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from diffusekit.robotics.importers import DEFAULT_OBS_KEYS, import_replay
    from diffusekit.robotics.replay import ReplayBuffer

    keys = args.obs_keys or DEFAULT_OBS_KEYS[args.source]
    out = _new_buffer(args.out, args.task, args.overwrite)
    path = import_replay(args.source, args.data, out, args.task, obs_keys=keys,
                         action_key=args.action_key, gripper_dims=args.gripper_dims)  # fmt: skip
    print(f"{path}: {ReplayBuffer.load(path)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mmengine.dist import is_main_process

    from diffusekit.core.engine import train_on_data
    from diffusekit.robotics.workflow import build_policy, with_data

    cfg = with_data(_task_config(args), args.data)
    build_policy(cfg)  # a bad model config fails before the work dir is written
    weights = train_on_data(cfg, args.data, args.work_dir, args.resume, args.launcher, args.seed)
    if is_main_process():
        print(
            f"trained: {weights} (raw and EMA weights; evaluate uses EMA); curves: {Path(args.work_dir) / 'curves.png'}"
        )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.robotics import workflow as wf
    from diffusekit.robotics.envs import make_env
    from diffusekit.robotics.visualize import evaluation_figure

    rti_steps, cfg = _rti_steps(args), _task_config(args)
    ev, task = wf.evaluate_settings(cfg), cfg.get("task", "pusht")
    out = _output_folder(args.out or weights_path(args.checkpoint).parent / "evaluate")  # before the work
    policy = wf.load_policy(cfg, args.checkpoint, make_env(task), args.device)
    episodes, seed = args.episodes or ev["episodes"], ev["seed"] if args.seed is None else args.seed
    wf.check_steps(wf.mode_settings(ev, args.modes, args.steps, rti_steps), policy.num_steps)  # before any rollout
    if args.choose_k:
        from diffusekit.robotics.control import choose_start_step
        from diffusekit.robotics.policy import rti_step_list

        k, _ = choose_start_step(policy, make_env(task), episodes=2, seed=seed)
        rti_steps = rti_step_list(k, len(rti_steps or ev["rti_steps"]))
        print(f"offline K' (forward-diffusion mean nearest the shifted guess; median over 2 rollouts): {k}; "
              f"RTI steps {list(rti_steps)}")  # fmt: skip
    settings = wf.mode_settings(ev, args.modes, args.steps, rti_steps, args.rti_mode, args.gripper)
    rows = wf.evaluate_modes(policy, task, settings, episodes, seed)
    title = f"{task}: {episodes} episodes from seed {seed}, checkpoint {args.checkpoint}"
    table = wf.format_table(rows, title)
    args.out = str(output_dir(out))
    (Path(args.out) / "report.md").write_text(table + "\n")
    figure = evaluation_figure(rows, Path(args.out) / "evaluation.png", title)
    print(table)
    print(f"metrics.json, report.md and {figure.name}: {args.out}")
    report(args, rows)
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    import torch

    from diffusekit.robotics.control import ControlSettings, PolicyRunner, rollout
    from diffusekit.robotics.envs import make_env
    from diffusekit.robotics.visualize import save_animation
    from diffusekit.robotics.workflow import check_steps, load_policy

    rti_steps, cfg = _rti_steps(args) or (2, 1, 0), _task_config(args)
    out = Path(args.out).expanduser()
    if out.suffix.lower() == ".gif" and out.is_dir():
        raise DataError("names a folder; the GIF would go inside it: give a file name", out)
    if out.suffix.lower() != ".gif":
        _output_folder(out)
    env = make_env(cfg.get("task", "pusht"))
    policy = load_policy(cfg, args.checkpoint, env, args.device)
    settings = ControlSettings(args.sampler or "rti", steps=args.steps, rti_steps=rti_steps)
    check_steps([settings], policy.num_steps)
    result = rollout(env, PolicyRunner(policy, settings, torch.Generator().manual_seed(args.seed)), args.seed, True)
    path = save_animation(result["frames"], args.out)
    print(f"{path}: {result['steps']} steps, score {result['score']:.3f}, success {result['success']}")
    return 0


def _output_folder(path: str | Path) -> Path:
    """``path`` when it can be an output folder (absent, or a folder); a DataError when it names a file."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError("output folder names an existing file", path)
    return path


def _task_args(parser: argparse.ArgumentParser, config: bool = True) -> None:
    parser.add_argument("--task", choices=TASKS, default="pusht", help="the task (default pusht)")
    if config:  # default "": the task's tiny config (dp_pusht_tiny, dp_pointmass_tiny)
        add_config_args(parser, PACKAGE, default="")


def _overwrite_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT/<task>_replay.npz if it exists (default: refuse)")  # fmt: skip


def _rti_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rti-steps", type=nonnegative_int, nargs="+", help="RTI's denoising steps (default 2 1 0)")


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``robotics`` subcommands."""
    sub = parser.add_subparsers(dest="robotics_command", metavar="COMMAND")
    co = add_command(sub, "collect", cmd_collect, "record scripted-expert demonstrations into a replay buffer (npz)",
                     "Runs the task's scripted expert for seeded episodes and writes OUT/<task>_replay.npz in "
                     "Diffusion Policy's replay-buffer layout (data/obs, data/action, meta/episode_ends). Only "
                     "successful episodes are kept; the expert's success rate is printed.")  # fmt: skip
    _task_args(co, config=False)
    co.add_argument("--episodes", type=positive_int, default=100, help="demonstrations to record (default 100)")
    add_output_args(co, "output folder", json=False, required=True)
    _overwrite_arg(co)
    add_seed_arg(co, 0, "seed of the first episode (default 0)")

    im = add_command(sub, "import", cmd_import, "convert a Diffusion Policy zarr or a LeRobot v2.x dataset into a "
                     "replay buffer", "Reads DATA (--from zarr: a DP replay buffer such as pusht_cchi_v7_replay.zarr, "
                     "data/<key> + meta/episode_ends; --from lerobot: meta/info.json, meta/episodes.jsonl, "
                     "data/chunk-*/episode_*.parquet), applies the replay-buffer checks and writes "
                     "OUT/<task>_replay.npz for `train`.")  # fmt: skip
    im.add_argument("--from", dest="source", choices=("zarr", "lerobot"), required=True, help="the source layout")
    im.add_argument("--data", required=True, help="the zarr folder / .zip, or the LeRobot dataset folder")
    im.add_argument("--task", default="pusht", help="task name stored in the buffer (default pusht)")
    im.add_argument("--obs-keys", nargs="+", help="observation keys, concatenated per step (default: zarr state, "
                    "lerobot observation.state)")  # fmt: skip
    im.add_argument("--action-key", default="action", help="the action key (default action)")
    im.add_argument("--gripper-dims", type=nonnegative_int, nargs="+", default=(), help="binary gripper action dims")
    add_output_args(im, "output folder", json=False, required=True)
    _overwrite_arg(im)

    tr = add_command(sub, "train", cmd_train, "train a Diffusion Policy on a replay buffer through the mmengine engine",
                     "Reads the replay buffer at DATA (a folder with <task>_replay.npz or the file), fits the min-max "
                     "normaliser on the training episodes, trains into WORK_DIR (checkpoints, final_weights.pth with "
                     "raw and EMA weights, the best checkpoint by validation action error, curves.png). --resume "
                     "continues from the newest checkpoint; multi-GPU: torchrun ... --launcher pytorch.")  # fmt: skip
    _task_args(tr)
    tr.add_argument("--data", required=True, help="the replay buffer (folder or npz)")
    add_train_args(tr)

    ev = add_command(sub, "evaluate", cmd_evaluate, "success rate, score, network evaluations and ms per control "
                     "step for DDPM, DDIM and RTI", "Runs seeded episodes with the same checkpoint under each "
                     "inference mode: DDPM-100 and DDIM-K (receding horizon, n_action actions per chunk) and RTI "
                     "(warm start from the shifted previous chunk, only the listed steps, one action per step; its "
                     "first full inference is reported apart). Writes report.md, metrics.json and evaluation.png to "
                     "OUT (default: CHECKPOINT's folder/evaluate).")  # fmt: skip
    _task_args(ev)
    ev.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    ev.add_argument("--episodes", type=positive_int, help="episodes per mode (default: the config's)")
    add_seed_arg(ev, None, "seed of the first episode (default: the config's, 100000 for Push-T)")
    ev.add_argument("--modes", nargs="+", choices=("ddpm", "ddim", "rti"), help="inference modes (default: all)")
    add_sampling_args(ev, steps="DDIM steps (default: the config's, 10)", samples=None)
    _rti_args(ev)
    ev.add_argument("--rti-mode", choices=("consistent", "official", "both"),
                    help="how a step list with gaps is run: the core's stepping between listed levels "
                    "(consistent, default) or one t -> t-1 update per listed t (official RTI-DP code)")  # fmt: skip
    ev.add_argument("--gripper", choices=("clip", "scale"), help="RTI's gripper handling (default: the config's)")
    ev.add_argument("--choose-k", action="store_true", help="choose K' offline (RTI-DP: the level whose "
                    "forward-diffusion mean is nearest the shifted guess, over 2 DDPM rollouts) and run RTI from K' "
                    "down to 0 with as many steps as --rti-steps")  # fmt: skip
    add_output_args(ev, "folder for metrics.json, report.md and evaluation.png (default: beside the checkpoint)")
    add_runtime_args(ev)

    ro = add_command(sub, "rollout", cmd_rollout, "one episode saved as an animated GIF (or a folder of frames)",
                     "Runs one seeded episode and writes OUT (.gif, or a folder of PNG frames).")  # fmt: skip
    _task_args(ro)
    ro.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    add_output_args(ro, "output: a .gif path or a folder for PNG frames", json=False, required=True)
    add_sampling_args(ro, steps="DDIM steps (default 10)", samples=None, sampler=("ddpm", "ddim", "rti"))
    _rti_args(ro)
    add_seed_arg(ro, 100000, "episode seed (default 100000)")
    add_runtime_args(ro)

    add_demo_command(sub, "robotics", DEMO, help="point-mass demonstrations, a short training, DDPM / DDIM / RTI "
                     "evaluation, a figure and a rollout GIF", description="Collects scripted point-mass "
                     "demonstrations, trains dp_pointmass_tiny briefly (validating on held-out episodes), evaluates "
                     "it with DDPM-100, DDIM-10 and RTI and writes OUT/report.md with the evaluation figure and an "
                     "animated rollout.")  # fmt: skip


DOMAIN = Domain("robotics", "Diffusion Policy with Real-Time Iteration (Push-T, a point-mass task)", add_commands, DEMO,
                requires=("gymnasium", "gym_pusht", "pymunk", "PIL", "zarr", "pyarrow"))  # fmt: skip
