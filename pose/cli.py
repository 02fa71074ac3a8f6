"""``diffusekit pose synth|train|evaluate|predict|demo --method diffpose``: DiffPose on PoseTrack18/21 (and 17)."""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.registry import MODELS
from torch import nn

from diffusekit.core.checkpoint import weights_path
from diffusekit.core.cli import DemoResult, Domain, add_demo_command, add_json_flag, add_train_flags, json_ready
from diffusekit.core.engine import load_config, load_weights, train_on_data
from diffusekit.core.errors import DataError
from diffusekit.pose.codec import HeatmapCodec
from diffusekit.pose.datasets import PoseTrackClips
from diffusekit.pose.inference import InferenceSettings, evaluate_dataset, format_report

PACKAGE = "diffusekit.pose"
METHODS = {"diffpose": "diffpose_posetrack18", "ddhpose": "ddhpose_h36m"}  # --method -> its default config
SHIPPED = (
    "diffpose_posetrack18, diffpose_tiny, heatmap_baseline_tiny, ddhpose_h36m, ddhpose_tiny, ddhpose_regressor_tiny"
)


def load_pose_config(config: str | Path | None, options: list[str] | None = None, method: str = "diffpose") -> Config:
    return load_config(config or METHODS[method], package=PACKAGE, cfg_options=options or [])


def build_model(cfg: Config) -> nn.Module:
    """The model of ``cfg`` with random weights (backbone weights from ``model.backbone.weights`` if set)."""
    import diffusekit.pose.baseline  # noqa: F401  (registers the models)
    import diffusekit.pose.ddhpose  # noqa: F401
    import diffusekit.pose.diffpose  # noqa: F401

    return MODELS.build(copy.deepcopy(cfg.model))


def load_model(cfg: Config, checkpoint: str | Path) -> nn.Module:
    """Build and load weights (EMA when the file has them); ``checkpoint`` may be a train work dir."""
    path = weights_path(checkpoint)
    cfg = copy.deepcopy(cfg)
    if "backbone" in cfg.model:
        cfg.model.backbone["weights"] = None  # the checkpoint holds the trained backbone
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_weights(build_model(cfg), path).to(device)


def inference_settings(cfg: Config, steps: int | None = None, samples: int | None = None, flip: bool | None = None):
    settings = InferenceSettings.from_dict(cfg.get("evaluate"))
    if steps is not None:
        settings.steps = steps
    if samples is not None:
        settings.samples = samples
    if flip is not None:
        settings.flip = flip
    return settings


def _one_step_count(steps: list[int] | None) -> int | None:
    """DiffPose samples with one step count (DDHPose evaluates several)."""
    if steps and len(steps) > 1:
        raise DataError(f"--steps takes one value with --method diffpose, got {steps}")
    return steps[0] if steps else None


def eval_crops(cfg: Config, data: str | Path, split: str | None = None, boxes: str | None = None) -> PoseTrackClips:
    """The evaluation split of ``data`` (config ``evaluate.split`` / ``evaluate.boxes``), without augmentation."""
    dataset = dict(cfg.train_dataloader.dataset)
    evaluate = cfg.get("evaluate", {})
    return PoseTrackClips(
        str(data),
        split or evaluate.get("split", "val"),
        dataset["input_size"],
        dataset["heatmap_size"],
        dataset.get("sigma", 2.0),
        dataset.get("frame_offsets", (-1, 0, 1)),
        boxes or evaluate.get("boxes", "gt"),
        evaluate.get("min_box_score", 0.0),
    )


def _crop_figure(path: Path, crops: PoseTrackClips, model: nn.Module, settings: InferenceSettings, title: str):
    from diffusekit.pose.datasets import IMAGENET_MEAN, IMAGENET_STD
    from diffusekit.pose.visualize import plot_crops

    picks = np.linspace(0, len(crops) - 1, min(12, len(crops))).round().astype(int)
    samples = [crops[int(i)] for i in picks]
    clip = torch.stack([s["clip"] for s in samples]).to(next(model.parameters()).device)
    heatmaps = model.predict_heatmaps(clip, steps=settings.steps, samples=settings.samples, flip=settings.flip)
    predicted, _ = crops.codec.decode(heatmaps)
    middle = crops.frame_offsets.index(0)
    images = [np.clip(s["clip"][middle].permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN, 0, 1) for s in samples]
    truth = [s["keypoints"].numpy()[s["weights"].numpy() > 0] for s in samples]
    return plot_crops(path, images, list(predicted), truth, title)


def cmd_synth(args: argparse.Namespace) -> int:
    if args.method == "ddhpose":
        from diffusekit.pose import lifting_cli

        return lifting_cli.cmd_synth(args)
    from diffusekit.pose.synthetic import write_posetrack

    print(f"PoseTrack18 layout (train + val): {write_posetrack(args.out, args.size, args.seed)}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from diffusekit.pose import lifting_cli

    return lifting_cli.cmd_convert(args)


def cmd_train(args: argparse.Namespace) -> int:
    if args.method == "ddhpose":
        from diffusekit.pose import lifting_cli

        return lifting_cli.cmd_train(args)
    cfg = load_pose_config(args.config, args.cfg_options, args.method)
    weights = train_on_data(cfg, args.data, args.work_dir, args.resume, args.launcher, args.seed)
    if is_main_process():
        print(f"trained: {weights} (raw and EMA weights; evaluate and predict use EMA)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    if args.method == "ddhpose":
        from diffusekit.pose import lifting_cli

        return lifting_cli.cmd_evaluate(args)
    cfg = load_pose_config(args.config, args.cfg_options, args.method)
    settings = inference_settings(cfg, _one_step_count(args.steps), args.samples, False if args.no_flip else None)
    model = load_model(cfg, args.checkpoint)
    crops = eval_crops(cfg, args.data, args.split, args.boxes)
    out = Path(args.out) if args.out else None
    result = evaluate_dataset(model, crops, settings, out / "predictions" if out else None)
    name = Path(str(args.config or METHODS[args.method])).stem
    print(format_report(result, f"{name}: {settings.steps} steps x {settings.samples} sample(s), flip {settings.flip}"))
    print(f"{result['frames_per_second']:.2f} labelled frames/s, {result['people_per_second']:.2f} people/s")
    if out:
        (out / "metrics.json").write_text(json.dumps(json_ready(result), indent=1))
        _crop_figure(out / "crops.png", crops, model, settings, name)
        print(f"predictions (PoseTrack18 JSON), metrics.json and crops.png: {out}")
    if args.json:
        print(json.dumps(json_ready(result), sort_keys=True))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.method == "ddhpose":
        from diffusekit.pose import lifting_cli

        return lifting_cli.cmd_predict(args)
    from diffusekit.pose.predict import predict_input

    cfg = load_pose_config(args.config, args.cfg_options, args.method)
    settings = inference_settings(cfg, _one_step_count(args.steps), args.samples, False if args.no_flip else None)
    model = load_model(cfg, args.checkpoint)
    dataset = cfg.train_dataloader.dataset
    codec = HeatmapCodec(tuple(dataset["input_size"]), tuple(dataset["heatmap_size"]), dataset.get("sigma", 2.0))
    box = None
    if args.box:
        try:
            box = [float(v) for v in args.box.split(",")]
        except ValueError:
            box = []
        if len(box) != 4:
            raise DataError(f"--box takes x,y,w,h (four numbers), got {args.box!r}")
    written = predict_input(
        model, codec, dataset.get("frame_offsets", (-1, 0, 1)), settings, args.input, args.out, args.detections, box
    )
    print(f"wrote {written[0]} and {len(written) - 1} overlay frames")
    return 0


def run_demo(out_dir: Path, quick: bool = False, method: str | None = None) -> DemoResult:
    """The pose demo: DiffPose and DDHPose (or the one ``method``) on synthetic data, as one report section."""
    from diffusekit.pose import lifting_cli

    out_dir = Path(out_dir)
    parts = []
    if method in (None, "diffpose"):
        parts.append(run_diffpose_demo(out_dir, quick))
    if method in (None, "ddhpose"):
        parts.append(lifting_cli.run_demo(out_dir / "ddhpose", quick))
    if len(parts) == 1:
        return parts[0]
    metrics = {**parts[0].metrics, **{f"ddhpose_{k}": v for k, v in parts[1].metrics.items()}}
    return DemoResult(
        "pose", "\n\n".join(["### DiffPose", parts[0].markdown, "### DDHPose", parts[1].markdown]), metrics
    )


def run_diffpose_demo(out_dir: Path, quick: bool = False) -> DemoResult:
    """Synthetic PoseTrack18 data, the tiny DiffPose trained briefly, evaluation with 5 DDIM steps, a figure."""
    from diffusekit.pose.synthetic import write_posetrack

    out_dir = Path(out_dir)
    data = write_posetrack(out_dir / "posetrack", "small", seed=0)
    iters = 40 if quick else 400
    cfg = load_pose_config("diffpose_tiny", [f"train_cfg.max_iters={iters}", "ema.decay=0.98"])
    settings = inference_settings(cfg, steps=2 if quick else 5, samples=1)
    threads = torch.get_num_threads()
    start = time.perf_counter()
    try:
        torch.set_num_threads(1)  # small tensors: one thread is faster on a shared CPU
        weights = train_on_data(cfg, data, out_dir / "work_dir", seed=0)
        train_seconds = time.perf_counter() - start
        model = load_model(cfg, weights)
        crops = eval_crops(cfg, data)
        result = evaluate_dataset(model, crops, settings, out_dir / "predictions", progress=False)
        figure = _crop_figure(out_dir / "crops.png", crops, model, settings, "diffpose_tiny, synthetic PoseTrack18 val")
    finally:
        torch.set_num_threads(threads)
    title = f"DiffPose tiny, {iters} iterations ({train_seconds:.0f} s), {settings.steps} DDIM steps, flip"
    markdown = "\n".join(
        [
            "DiffPose (config `diffpose_tiny`) trained on synthetic PoseTrack18-layout videos and evaluated on their "
            "val split (every 4th frame labelled, ground-truth boxes) with poseval's AP rules. A demo-length "
            "training: see docs/pose.md for the benchmark.",
            "",
            format_report(result, title),
            "",
            f"![crops]({figure.relative_to(out_dir.parent).as_posix()})",
        ]
    )
    metrics: dict[str, Any] = {f"ap_{k.lower()}": round(v, 2) for k, v in result["ap"].items()}
    metrics.update(
        train_seconds=round(train_seconds, 2), iterations=iters, frames_per_second=round(result["frames_per_second"], 2)
    )
    return DemoResult("pose", markdown, metrics)


def _method_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        choices=sorted(METHODS),
        default="diffpose",
        help="diffpose: video 2D pose (PoseTrack); ddhpose: 2D-to-3D lifting (Human3.6M, MPI-INF-3DHP); "
        "default diffpose",
    )


def _config_args(parser: argparse.ArgumentParser) -> None:
    _method_arg(parser)
    parser.add_argument("--config", help=f"a config file or a shipped name: {SHIPPED} (default: the method's)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")


def _pickle_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="ddhpose: read the published (pickled) VideoPose3D / D3DP npz files directly. A pickle can run code: "
        "only for files you trust; `diffusekit pose convert` makes pickle-free copies instead",
    )


def _sampling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, nargs="+", help="DDIM steps; ddhpose: one or more K (default: config)")
    parser.add_argument("--samples", type=int, help="diffpose: noise samples averaged per person (default: config)")
    parser.add_argument("--hypotheses", type=int, nargs="+", help="ddhpose: one or more H (default: config)")
    parser.add_argument("--no-flip", action="store_true", help="no flip averaging")


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``pose`` subcommands."""
    sub = parser.add_subparsers(dest="pose_command", metavar="COMMAND")
    synth = sub.add_parser(
        "synth",
        help="write synthetic data: PoseTrack18 videos (diffpose) or Human3.6M / 3DHP npz files (ddhpose)",
        description="diffpose: renders short videos of articulated figures (capsule limbs, occlusions, motion blur, "
        "an unannotated bystander under an ignore region) and writes images/<split>/<video>/*.jpg and "
        "annotations/<split>/<video>.json (train: every frame labelled; val: every 4th). ddhpose: simulates "
        "walking, reaching, sitting ... of a 17-joint kinematic body per subject, films it with the real Human3.6M "
        "cameras and writes data_3d_h36m.npz and data_2d_h36m_{gt,det}.npz in the VideoPose3D layout (det = "
        "noisy 2D detections), or with --dataset 3dhp the D3DP MPI-INF-3DHP npz files.",
    )
    _method_arg(synth)
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--size", choices=("small", "medium"), default="small", help="small (tests) or medium")
    synth.add_argument("--dataset", choices=("h36m", "3dhp"), default="h36m", help="ddhpose: which layout")
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.set_defaults(func=cmd_synth)

    convert = sub.add_parser(
        "convert",
        help="make pickle-free copies of VideoPose3D / D3DP npz files (ddhpose reads those by default)",
        description="The published data_3d_h36m.npz, data_2d_h36m_<source>.npz and D3DP 3DHP files store pickled "
        "dictionaries; loading a pickle can run code. This rewrites each FILE as FILE.flat.npz (plain arrays), "
        "which the loaders read without --allow-pickle. Only convert files you trust.",
    )
    convert.add_argument("files", nargs="+", metavar="FILE", help="the npz files to convert")
    convert.add_argument("--out", help="output folder (default: next to each file)")
    convert.set_defaults(func=cmd_convert)

    tr = sub.add_parser(
        "train",
        help="train DiffPose / DDHPose (or their baselines) through the mmengine engine",
        description="Trains into WORK_DIR (checkpoints, final_weights.pth with raw and EMA weights). --resume "
        "continues from the newest checkpoint; multi-GPU: torchrun ... --launcher pytorch. DiffPose backbone "
        "weights: --cfg-options model.backbone.weights=PATH.",
    )
    _config_args(tr)
    tr.add_argument("--data", required=True, help="diffpose: a PoseTrack18/21 folder; ddhpose: the npz folder")
    _pickle_arg(tr)
    add_train_flags(tr)
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate",
        help="diffpose: PoseTrack AP; ddhpose: MPJPE / P-MPJPE (PCK / AUC on 3DHP) per action and aggregation",
        description="diffpose: crops every person of every labelled frame (ground-truth boxes, or --boxes "
        "DETECTIONS.json), denoises the heatmaps (DDIM, --steps x --samples, flip averaging), decodes them (DARK) "
        "and scores Head/Shou/Elb/Wri/Hip/Knee/Ank/Total AP by poseval's rules. ddhpose: lifts every test "
        "sequence (clips of the config's length) with H hypotheses and K DDIM steps for every --hypotheses and "
        "--steps value and reports MPJPE and P-MPJPE (mm) under J-Best, P-Best, P-Agg and J-Agg, with a "
        "per-action table.",
    )
    _config_args(ev)
    ev.add_argument("--data", required=True, help="a PoseTrack18/21 folder (diffpose) or the npz folder (ddhpose)")
    ev.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    ev.add_argument("--split", help="the split (default: the config's: val for diffpose, test for ddhpose)")
    ev.add_argument("--boxes", help="diffpose: 'gt' or a COCO-style person detections JSON (default: the config's)")
    _pickle_arg(ev)
    _sampling_args(ev)
    ev.add_argument("--out", help="also write predictions (diffpose), metrics.json and a figure here")
    add_json_flag(ev)
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser(
        "predict",
        help="diffpose: 2D poses in a video; ddhpose: 3D poses from 2D keypoints (npz or PoseTrack/COCO JSON)",
        description="diffpose: writes OUT/<name>.json (PoseTrack18, one person per box) and OUT/overlays/<name>/"
        "*.jpg; boxes from --detections (COCO-style JSON, image_id = frame number from 0), --box x,y,w,h on "
        "every frame, or the whole frame. ddhpose: --input is an npz with `keypoints` (N, 17, 2) in the Human3.6M "
        "joint order (pixels; `width`, `height`), a PoseTrack18 or COCO keypoints JSON (mapped to the Human3.6M "
        "joints, one sequence per track) or a VideoPose3D 2D file; writes OUT/<sequence>.npz (pose_3d (N, 17, 3) "
        "metres, root-relative, camera axes; all hypotheses) and OUT/<sequence>.png.",
    )
    _config_args(pr)
    pr.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    pr.add_argument("--input", required=True, help="diffpose: a video or frame folder; ddhpose: 2D keypoints file")
    pr.add_argument("--out", required=True, help="output folder")
    pr.add_argument("--detections", help="diffpose: person detections JSON (COCO-style; image_id = frame number)")
    pr.add_argument("--box", help="diffpose: one person box x,y,w,h used on every frame")
    pr.add_argument("--width", type=int, help="ddhpose: image width when the input does not say it")
    pr.add_argument("--height", type=int, help="ddhpose: image height when the input does not say it")
    _sampling_args(pr)
    pr.set_defaults(func=cmd_predict)

    demo = add_demo_command(
        sub,
        "pose",
        run_demo,
        help="synthetic data, short trainings of the tiny DiffPose and DDHPose, their metrics and figures",
        description="Writes synthetic PoseTrack18-layout videos and Human3.6M-layout npz files, trains "
        "diffpose_tiny and ddhpose_tiny briefly, evaluates them (PoseTrack AP; MPJPE under the hypothesis "
        "aggregations) and writes OUT/report.md with figures. --method runs one of the two.",
        options=lambda args: {"method": args.method},
    )
    demo.add_argument("--method", choices=sorted(METHODS), help="only this method (default: both)")


def demo(out_dir: Path, quick: bool) -> DemoResult:
    """The ``diffusekit demo`` section of this domain."""
    return run_demo(Path(out_dir), quick)


DOMAIN = Domain(
    "pose",
    "DiffPose video 2D pose (PoseTrack18/21, 17) and DDHPose 3D lifting (Human3.6M, MPI-INF-3DHP)",
    add_commands,
    demo,
)
