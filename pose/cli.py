"""``diffusekit pose diffpose ...``, ``diffusekit pose ddhpose ...`` and ``diffusekit pose demo``.

Each method has its own command set (diffpose_cli.py, ddhpose_cli.py), so a command takes only the flags that mean
something for it. This module holds the group, the demo and the argument helpers both sets share; everything that
needs the pose extra (OpenCV, shapely) is imported inside the command functions.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

from diffusekit.core.cli import Domain
from diffusekit.core.commands import (
    DemoResult,
    add_command,
    add_config_args,
    add_demo_command,
    add_runtime_args,
    add_seed_arg,
    add_train_args,
    config_from_args,
)
from diffusekit.core.errors import DataError

PACKAGE = "diffusekit.pose"
METHODS = {"diffpose": "diffpose_posetrack18", "ddhpose": "ddhpose_h36m"}  # method -> its default config


# ------------------------------------------------------------------------------------- shared arguments
def add_method_config(parser: argparse.ArgumentParser, method: str) -> None:
    """``--config`` (default: the method's paper-scale config) and ``--cfg-options``."""
    add_config_args(parser, PACKAGE, default=METHODS[method])
    parser.set_defaults(method=method)


def add_model_args(parser: argparse.ArgumentParser, method: str) -> None:
    """What every command that runs a trained model takes: config, --checkpoint, --no-flip, --device, --threads,
    --seed."""
    add_method_config(parser, method)
    parser.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    parser.add_argument("--no-flip", action="store_true", help="no flip averaging (default: the config's)")
    add_runtime_args(parser)
    add_seed_arg(parser, help="seed of the sampling noise (default: 0)")


def add_synth_command(sub, func, help: str, description: str, size_help: str = "small (tests) or medium"):
    """``synth``: --out, --size small|medium, --seed."""
    synth = add_command(sub, "synth", func, help, description)
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--size", choices=("small", "medium"), default="small", help=size_help)
    add_seed_arg(synth)
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the files of a dataset of the same layout already in --out (default: refuse to touch them)",
    )
    return synth


def synth_target(args: argparse.Namespace, patterns: Sequence[str]) -> Path:
    """``--out`` for a synth command whose dataset consists of the entries matching ``patterns``: a DataError when
    it is a file, or holds such entries already (unless ``--overwrite``, which removes them first, so that no file
    of an older dataset mixes with the new one)."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError("output folder names an existing file", out)
    found = sorted({path for pattern in patterns for path in out.glob(pattern)}) if out.is_dir() else []
    if found and not args.overwrite:
        raise DataError(
            f"already holds a dataset of this layout ({found[0].name} exists); choose an empty folder or pass "
            "--overwrite",
            out,
        )
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    return out


def add_run_command(sub, name: str, method: str, func, help: str, description: str, data_help: str):
    """An ``evaluate`` (``data_help`` names the dataset folder: --data, --split) or ``predict`` (``data_help`` names
    the input: --input, --out) command of ``method`` with `add_model_args`."""
    parser = add_command(sub, name, func, help, description)
    add_model_args(parser, method)
    if name == "evaluate":
        parser.add_argument("--data", required=True, help=data_help)
        parser.add_argument("--split", help="the split (default: the config's evaluate.split)")
    else:
        parser.add_argument("--input", required=True, help=data_help)
        parser.add_argument("--out", required=True, help="output folder")
    return parser


def method_config(args: argparse.Namespace):
    """The config named by the arguments, checked to be one of ``args.method`` (its blocks validated)."""
    from diffusekit.pose.workflow import check_config

    return check_config(config_from_args(args, PACKAGE), args.method)


def prepare(args: argparse.Namespace, settings_for):
    """(config, ``settings_for(config)``, the trained model on ``--device``) of an evaluate or predict command."""
    cfg = method_config(args)
    settings = settings_for(cfg)
    return cfg, settings, trained_model(args, cfg)


def trained_model(args: argparse.Namespace, cfg):
    from diffusekit.pose.workflow import load_pose_model

    return load_pose_model(cfg, args.checkpoint, args.device)


def config_name(args: argparse.Namespace) -> str:
    return Path(str(args.config)).stem


def flip_arg(args: argparse.Namespace) -> bool | None:
    return False if args.no_flip else None


def cmd_train(args: argparse.Namespace) -> int:
    from mmengine.dist import is_main_process

    from diffusekit.pose.workflow import train_pose

    cfg = method_config(args)
    allow_pickle = getattr(args, "allow_pickle", False)
    weights = train_pose(cfg, args.data, args.work_dir, allow_pickle=allow_pickle, resume=args.resume,
                         launcher=args.launcher, seed=args.seed)  # fmt: skip
    if is_main_process():
        print(f"trained: {weights} (raw and EMA weights; evaluate and predict use EMA; curves.png beside them)")
    return 0


def add_train_command(sub, method: str, description: str, data_help: str) -> argparse.ArgumentParser:
    train = sub.add_parser("train", help=f"train {method} (or its baseline) through the mmengine engine",
                           description=description)  # fmt: skip
    add_method_config(train, method)
    train.add_argument("--data", required=True, help=data_help)
    add_train_args(train)
    train.set_defaults(func=cmd_train)
    return train


# ------------------------------------------------------------------------------------------ the group
def _demo(out_dir: Path, quick: bool = False, method: str | None = None) -> DemoResult:
    from diffusekit.pose.demo import run_demo

    return run_demo(Path(out_dir), quick, method)


def add_commands(parser: argparse.ArgumentParser) -> None:
    """``pose diffpose ...``, ``pose ddhpose ...`` and ``pose demo``."""
    from diffusekit.pose import ddhpose_cli, diffpose_cli

    sub = parser.add_subparsers(dest="pose_method", metavar="METHOD")
    diffpose_cli.add_commands(
        sub.add_parser(
            "diffpose",
            help="DiffPose: video 2D pose (PoseTrack18/21, 17): synth, train, evaluate, predict",
            description="DiffPose (Feng et al., ICCV 2023) on PoseTrack: docs/pose.md.",
        )
    )
    ddhpose_cli.add_commands(
        sub.add_parser(
            "ddhpose",
            help="DDHPose: 2D-to-3D lifting (Human3.6M, MPI-INF-3DHP): synth, convert, train, evaluate, predict",
            description="DDHPose (Cai et al., AAAI 2024) on Human3.6M / MPI-INF-3DHP: docs/pose3d.md.",
        )
    )
    demo = add_demo_command(
        sub,
        "pose",
        _demo,
        help="synthetic data, short trainings of the tiny DiffPose and DDHPose, their metrics and figures",
        description="Writes synthetic PoseTrack18-layout videos and Human3.6M-layout npz files, trains "
        "diffpose_tiny and ddhpose_tiny briefly (side by side on two cores), evaluates them (PoseTrack AP; MPJPE "
        "under the hypothesis aggregations, against the mean-pose baseline) and writes OUT/report.md with figures.",
        options=lambda args: {"method": args.method},
    )
    demo.add_argument("--method", choices=sorted(METHODS), help="only this method (default: both)")


def demo(out_dir: Path, quick: bool) -> DemoResult:
    """The ``diffusekit demo`` section of this domain."""
    return _demo(Path(out_dir), quick)


DOMAIN = Domain(
    "pose",
    "DiffPose video 2D pose (PoseTrack18/21, 17) and DDHPose 3D lifting (Human3.6M, MPI-INF-3DHP)",
    add_commands,
    demo,
    requires=("cv2", "shapely"),
)
