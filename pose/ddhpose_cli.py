"""``diffusekit pose ddhpose synth|convert|train|evaluate|predict``: DDHPose 3D lifting on Human3.6M and
MPI-INF-3DHP (and 2D keypoints from any source)."""

from __future__ import annotations

import argparse

from diffusekit.core.commands import (
    add_output_args,
    add_sampling_args,
    output_dir,
    positive_int,
    report,
)
from diffusekit.pose import cli as shared

STEPS = "DDIM steps K (default: the config's evaluate.steps)"
SAMPLES = "hypotheses H drawn per clip (default: the config's evaluate.hypotheses)"


def _pickle_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="read the published (pickled) VideoPose3D / D3DP npz files directly. A pickle can run code: only for "
        "files you trust; `diffusekit pose ddhpose convert` makes pickle-free copies instead",
    )


def cmd_synth(args: argparse.Namespace) -> int:
    from diffusekit.pose.synthetic3d import write_synthetic

    patterns = ("data_*_3dhp_ori*.npz",) if args.dataset == "3dhp" else ("data_3d_h36m*.npz", "data_2d_h36m_*.npz")
    root = write_synthetic(shared.synth_target(args, patterns), args.dataset, args.size, args.seed)
    layout = "MPI-INF-3DHP (D3DP npz)" if args.dataset == "3dhp" else "Human3.6M (VideoPose3D npz; 2D: gt and det)"
    print(f"{layout} written, with the pickle-free *.flat.npz copies the loaders read: {root}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from diffusekit.pose.npz_tree import convert_npz, flat_path

    folder = output_dir(args.out) if args.out else None
    for path in args.files:
        print(f"{path} -> {convert_npz(path, folder / flat_path(path).name if folder else None)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.pose.lifting_eval import evaluate_ddhpose, flat_result, lifting_settings

    cfg, settings, model = shared.prepare(
        args, lambda c: lifting_settings(c, args.samples, args.steps, shared.flip_arg(args))
    )
    out = output_dir(args.out) if args.out else None
    title = f"{shared.config_name(args)} on {args.data}"
    result, table = evaluate_ddhpose(cfg, model, args.data, settings, args.split, out, title, args.allow_pickle,
                                     args.seed)  # fmt: skip
    written = f"\nmetrics.json, report.md and poses.png: {out}" if out else ""
    report(args, flat_result(result), table + written)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from diffusekit.pose.lifting_eval import lifting_settings
    from diffusekit.pose.lifting_predict import lift_keypoints_file

    one = {"hypotheses": [args.samples] if args.samples else None, "steps": [args.steps] if args.steps else None}
    cfg, settings, model = shared.prepare(args, lambda c: lifting_settings(c, **one, flip=shared.flip_arg(args)))
    hypotheses, steps = max(settings["hypotheses"]), max(settings["steps"])
    written = lift_keypoints_file(
        model, args.input, output_dir(args.out), cfg.train_dataloader.dataset.get("dataset", "h36m"), hypotheses,
        steps, settings["flip"], settings["batch_size"], args.width, args.height, args.seed,
    )  # fmt: skip
    lines = [f"{w['sequence']}: {w['frames']} frames -> {w['npz']} and {w['figure']}" for w in written]
    lines.append(
        f"pose_3d = the mean of {hypotheses} hypotheses of {steps} step(s): metres, root-relative, camera axes"
    )
    # --out is the prediction folder here: no metrics.json in it
    report(argparse.Namespace(json=args.json), {"sequences": written}, "\n".join(lines))
    return 0


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The DDHPose commands."""
    sub = parser.add_subparsers(dest="ddhpose_command", metavar="COMMAND")
    synth = shared.add_synth_command(
        sub,
        cmd_synth,
        "write synthetic Human3.6M (VideoPose3D npz) or MPI-INF-3DHP (D3DP npz) files",
        "Simulates walking, reaching, sitting ... of a 17-joint kinematic body per subject, films it with the real "
        "Human3.6M cameras and writes data_3d_h36m.npz and data_2d_h36m_{gt,det}.npz in the VideoPose3D layout "
        "(det = noisy 2D detections), or with --dataset 3dhp the D3DP MPI-INF-3DHP files; plus their pickle-free "
        "*.flat.npz copies.",
        "h36m: small (tests) or medium",
    )
    synth.add_argument("--dataset", choices=("h36m", "3dhp"), default="h36m", help="which layout (default: h36m)")

    convert = sub.add_parser(
        "convert",
        help="make pickle-free copies of VideoPose3D / D3DP npz files (read by default)",
        description="The published data_3d_h36m.npz, data_2d_h36m_<source>.npz and D3DP 3DHP files store pickled "
        "dictionaries; loading a pickle can run code. This rewrites each FILE as FILE.flat.npz (plain arrays), "
        "which the loaders read without --allow-pickle. Only convert files you trust.",
    )
    convert.add_argument("files", nargs="+", metavar="FILE", help="the npz files to convert")
    convert.add_argument("--out", help="output folder (default: next to each file)")
    convert.set_defaults(func=cmd_convert)

    train = shared.add_train_command(
        sub,
        "ddhpose",
        "Trains into WORK_DIR (checkpoints, final_weights.pth with raw and EMA weights, curves.png; with the "
        "config's val_dataloader a best checkpoint by validation MPJPE). --resume continues from the newest "
        "checkpoint; multi-GPU: torchrun ... --launcher pytorch.",
        "the folder of the npz files (data_3d_h36m(.flat).npz, data_2d_h36m_<source>(.flat).npz or the 3DHP files)",
    )
    _pickle_arg(train)

    evaluate = shared.add_run_command(
        sub,
        "evaluate",
        "ddhpose",
        cmd_evaluate,
        "MPJPE / P-MPJPE (PCK / AUC on 3DHP) per K, H and aggregation, and per action",
        "Lifts every test sequence (clips of the config's length) with H hypotheses and K DDIM steps for every "
        "--samples and --steps value and reports MPJPE and P-MPJPE (mm) under J-Best, P-Best, P-Agg and J-Agg, with "
        "a per-action table.",
        "the folder of the npz files",
    )
    _pickle_arg(evaluate)
    add_sampling_args(evaluate, steps=f"one or more {STEPS}", samples=f"one or more: {SAMPLES}", many=True)
    add_output_args(evaluate, "also write metrics.json, report.md and poses.png here")

    predict = shared.add_run_command(
        sub,
        "predict",
        "ddhpose",
        cmd_predict,
        "3D poses from 2D keypoints (npz, PoseTrack18 or COCO JSON, VideoPose3D 2D file)",
        "--input is an npz with `keypoints` (N, 17, 2) in the Human3.6M joint order (pixels; `width`, `height`), a "
        "PoseTrack18 or COCO keypoints JSON (mapped to the Human3.6M joints, one sequence per track) or a "
        "VideoPose3D 2D file; writes OUT/<sequence>.npz (pose_3d (N, 17, 3) metres, root-relative, camera axes; "
        "all hypotheses) and OUT/<sequence>.png.",
        "the 2D keypoints file",
    )
    predict.add_argument("--width", type=positive_int, help="image width (pixels) when the input does not say it")
    predict.add_argument("--height", type=positive_int, help="image height (pixels) when the input does not say it")
    add_sampling_args(predict, steps=f"{STEPS}; the largest when it lists several", samples=SAMPLES)
    add_output_args(predict, None)
