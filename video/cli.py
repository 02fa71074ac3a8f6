"""``diffusekit video synth|train|evaluate|predict|demo``: DIVD video deblurring on GoPro, DVD, BSD or paired folders.

Argument parsing only; the work is done by `workflow`, `synthetic`, `visualize` and `demo`. Modules that need the
video extra (OpenCV, scikit-image) are imported inside the commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmengine.dist import is_main_process

from diffusekit.core import commands as cc
from diffusekit.core.cli import Domain

PACKAGE = "diffusekit.video"
DEMO = "diffusekit.video.demo:run_demo"
LAYOUTS = ("gopro", "dvd", "bsd")


def cmd_synth(args: argparse.Namespace) -> int:
    from diffusekit.video.synthetic import write_dataset

    out = cc.output_dir(args.out)
    frame_size = tuple(args.frame_size) if args.frame_size else None
    root = write_dataset(
        out, args.layout, size=args.size, seed=args.seed, frame_size=frame_size, overwrite=args.overwrite
    )
    print(f"{args.layout} layout: {root}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from diffusekit.video.workflow import load_video_config, train_model

    cfg = load_video_config(args.config, args.cfg_options)
    weights = train_model(cfg, args.data, args.work_dir, resume=args.resume, launcher=args.launcher, seed=args.seed)
    if is_main_process():
        print(f"trained: {weights} (raw and EMA weights; evaluate and predict use EMA); curves: {weights.parent}")
    return 0


def _model_and_settings(args: argparse.Namespace):
    from diffusekit.video.workflow import load_model, load_video_config, settings_from

    cfg = load_video_config(args.config, args.cfg_options)
    settings = settings_from(
        cfg, steps=args.steps, samples=args.samples, sampler=args.sampler, seed=args.seed, tile=args.tile
    )
    return cfg, settings, load_model(cfg, args.checkpoint, args.device)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.video.metrics import format_table
    from diffusekit.video.visualize import plot_restorations

    cfg, settings, model = _model_and_settings(args)
    from diffusekit.video.workflow import evaluate_model

    summary, records, examples = evaluate_model(
        cfg, model, args.data, settings, args.split, args.max_sequences, args.max_frames
    )
    name = Path(str(args.config)).stem
    table = format_table(records, {k: v for k, v in summary.items() if not k.startswith("input_")})
    table += (
        f"\nblurry input: PSNR {summary['input_psnr_frame_mean']:.2f} dB, SSIM {summary['input_ssim_frame_mean']:.4f}"
        f" (frame means)\n{summary['frames_per_second']:.2f} frames/s, {summary['evaluations_per_frame']:.1f} "
        f"network evaluations per frame ({settings.sampler}, {settings.steps} steps, {settings.samples} sample(s))"
    )
    out = cc.report(args, {"records": records, **summary} if args.out else summary, table)
    if out is not None:
        plot_restorations(out / "restorations.png", examples, title=name)
        if not args.json:
            print(f"metrics and figure: {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from diffusekit.video.workflow import predict_input

    _, settings, model = _model_and_settings(args)
    written = predict_input(model, settings, args.input, cc.output_dir(args.out), args.fps, args.uncertainty)
    print(f"wrote {len(written)} files to {args.out} (video: {written[-2 if args.uncertainty else -1]})")
    return 0


def _network_command(sub, name: str, func, help: str, description: str) -> argparse.ArgumentParser:
    """evaluate / predict: config, checkpoint, device and threads, sampling and tiling."""
    parser = cc.add_command(sub, name, func, help, description)
    cc.add_config_args(parser, PACKAGE)
    parser.add_argument("--checkpoint", required=True, help="final_weights.pth, a best_*.pth or the train work dir")
    cc.add_runtime_args(parser)
    cc.add_sampling_args(
        parser,
        steps="sampling steps per clip (default: the config's evaluate.steps)",
        samples="samples drawn per clip and averaged (default: the config's; the uncertainty is their spread)",
        sampler=cc.SAMPLERS,
    )
    cc.add_seed_arg(parser, default=None, help="seed of the sampling noise (default: the config's)")
    parser.add_argument(
        "--tile", type=cc.positive_int, help="tile side in pixels for bounded memory (default: the config's)"
    )
    return parser


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``video`` subcommands."""
    sub = parser.add_subparsers(dest="video_command", metavar="COMMAND")
    synth = cc.add_command(
        sub,
        "synth",
        cmd_synth,
        help="write synthetic blurry/sharp video in the GoPro, DVD or BSD layout from real photographs",
        description="Moves a virtual camera over scikit-image's photographs at a high frame rate; each sharp frame "
        "is one rendered frame, each blurry frame the average of K consecutive ones (K varies per frame, as GoPro "
        "was made from 240 fps footage). Written in the dataset's published layout, read back by the real readers.",
    )
    cc.add_output_args(synth, "output folder", json=False, required=True)
    synth.add_argument("--layout", choices=LAYOUTS, default="gopro", help="dataset layout (default gopro)")
    synth.add_argument("--size", choices=("small", "medium"), default="small", help="small: 6 short sequences")
    synth.add_argument(
        "--frame-size", type=cc.positive_int, nargs=2, metavar=("W", "H"), help="frame size (default: the size's)"
    )
    synth.add_argument("--overwrite", action="store_true", help="replace a synthetic dataset already in OUT")
    cc.add_seed_arg(synth)

    train = cc.add_command(
        sub,
        "train",
        cmd_train,
        help="train DIVD (or the regressor baseline) through the mmengine engine, validating on test clips",
        description="Trains on random crops of clips (flips and temporal reversal applied to blurry and sharp "
        "frames alike) into WORK_DIR: checkpoints, final_weights.pth (raw and EMA weights), curves.png / "
        "curves.json (loss and validation PSNR/SSIM) and best_video_psnr_iter_N.pth. --resume continues from the "
        "newest intact checkpoint; multi-GPU: torchrun ... --launcher pytorch.",
    )
    cc.add_config_args(train, PACKAGE)
    train.add_argument("--data", required=True, help="a GoPro, DVD or BSD folder, or paired folders (config: layout)")
    cc.add_train_args(train)

    evaluate = _network_command(
        sub,
        "evaluate",
        cmd_evaluate,
        help="restore every frame of the test sequences at full resolution; PSNR/SSIM (BasicSR), tOF, frames/s",
        description="Restores whole sequences in windows of frames and overlapping tiles (bounded memory) and "
        "scores them with BasicSR's conventions: RGB, crop border 0, MATLAB-style SSIM; both the mean over all "
        "frames (DSTNet) and the mean of per-sequence means (VRT/RVRT) are reported, beside the blurry input's.",
    )
    evaluate.add_argument("--data", required=True, help="a GoPro, DVD or BSD folder (the config picks the layout)")
    evaluate.add_argument("--split", help="split to evaluate (default: the config's evaluate.split, 'test')")
    evaluate.add_argument("--max-sequences", type=cc.positive_int, help="evaluate the first N sequences only")
    evaluate.add_argument("--max-frames", type=cc.positive_int, help="evaluate the first N frames of each sequence")
    cc.add_output_args(evaluate, "also write metrics.json (per sequence) and restorations.png here")

    predict = _network_command(
        sub,
        "predict",
        cmd_predict,
        help="deblur a video file or a folder of frames: an mp4, PNG frames and, if asked, an uncertainty video",
        description="Writes OUT/<name>_deblurred.mp4, OUT/<name>/<frame>.png (named as the input frames) and with "
        "--uncertainty OUT/<name>_uncertainty.mp4 (the spread of the samples; use --samples > 1).",
    )
    predict.add_argument("--input", required=True, help="a video file (.mp4, .avi, ...) or a folder of frames")
    predict.add_argument("--fps", type=cc.positive_float, help="frame rate of the written videos (default 30)")
    predict.add_argument("--uncertainty", action="store_true", help="also write the uncertainty as a video")
    cc.add_output_args(predict, "output folder", json=False, required=True)

    cc.add_demo_command(
        sub,
        "video",
        DEMO,
        help="synthetic GoPro, a short training of DIVD-tiny and the regressor, evaluation, figures, a report",
        description="Writes a small synthetic GoPro dataset, trains divd_tiny (predict-and-refine) and the same "
        "network as a deterministic regressor for a few hundred iterations each, evaluates both on every test "
        "frame and writes OUT/report.md with the restoration and training-curve figures.",
    )


DOMAIN = Domain(
    "video",
    "DIVD video deblurring with a video diffusion model (GoPro, DVD, BSD)",
    add_commands,
    DEMO,
    requires=("cv2", "skimage"),
)
