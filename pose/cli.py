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

from diffusekit.core.cli import DemoResult, Domain, add_demo_command, add_json_flag, add_train_flags, json_ready
from diffusekit.core.engine import load_config, load_weights, train_on_data
from diffusekit.core.errors import DataError
from diffusekit.pose.codec import HeatmapCodec
from diffusekit.pose.datasets import PoseTrackClips
from diffusekit.pose.inference import InferenceSettings, evaluate_dataset, format_report

PACKAGE = "diffusekit.pose"
FINAL_WEIGHTS = "final_weights.pth"
METHODS = {"diffpose": "diffpose_posetrack18"}  # --method -> its default config
SHIPPED = "diffpose_posetrack18, diffpose_tiny, heatmap_baseline_tiny"


def load_pose_config(config: str | Path | None, options: list[str] | None = None, method: str = "diffpose") -> Config:
    return load_config(config or METHODS[method], package=PACKAGE, cfg_options=options or [])


def build_model(cfg: Config) -> nn.Module:
    """The model of ``cfg`` with random weights (backbone weights from ``model.backbone.weights`` if set)."""
    import diffusekit.pose.baseline  # noqa: F401  (registers the models)
    import diffusekit.pose.diffpose  # noqa: F401

    return MODELS.build(copy.deepcopy(cfg.model))


def load_model(cfg: Config, checkpoint: str | Path) -> nn.Module:
    """Build and load weights (EMA when the file has them); ``checkpoint`` may be a train work dir."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / FINAL_WEIGHTS
    if not path.is_file():
        raise DataError("checkpoint not found (a weights file or a train work dir with final_weights.pth)", path)
    cfg = copy.deepcopy(cfg)
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
    from diffusekit.pose.synthetic import write_posetrack

    print(f"PoseTrack18 layout (train + val): {write_posetrack(args.out, args.size, args.seed)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = load_pose_config(args.config, args.cfg_options, args.method)
    weights = train_on_data(cfg, args.data, args.work_dir, args.resume, args.launcher, args.seed)
    if is_main_process():
        print(f"trained: {weights} (raw and EMA weights; evaluate and predict use EMA)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    cfg = load_pose_config(args.config, args.cfg_options, args.method)
    settings = inference_settings(cfg, args.steps, args.samples, False if args.no_flip else None)
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
    from diffusekit.pose.predict import predict_input

    cfg = load_pose_config(args.config, args.cfg_options, args.method)
    settings = inference_settings(cfg, args.steps, args.samples, False if args.no_flip else None)
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


def run_demo(out_dir: Path, quick: bool = False) -> DemoResult:
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


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=sorted(METHODS), default="diffpose", help="the method (default diffpose)")
    parser.add_argument("--config", help=f"a config file or a shipped name: {SHIPPED} (default: the method's)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")


def _sampling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, help="DDIM steps (default: the config's evaluate.steps)")
    parser.add_argument("--samples", type=int, help="noise samples averaged per person (default: the config's)")
    parser.add_argument("--no-flip", action="store_true", help="no flip averaging")


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``pose`` subcommands."""
    sub = parser.add_subparsers(dest="pose_command", metavar="COMMAND")
    synth = sub.add_parser(
        "synth",
        help="write synthetic videos of walking figures in the PoseTrack18 layout",
        description="Renders short videos of articulated figures (capsule limbs, occlusions, motion blur, an "
        "unannotated bystander under an ignore region) and writes images/<split>/<video>/*.jpg and "
        "annotations/<split>/<video>.json (train: every frame labelled; val: every 4th).",
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--size", choices=("small", "medium"), default="small", help="small: 8+3 videos, medium: 40+8")
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.set_defaults(func=cmd_synth)

    tr = sub.add_parser(
        "train",
        help="train DiffPose (or the heatmap baseline) through the mmengine engine",
        description="Trains into WORK_DIR (checkpoints, final_weights.pth with raw and EMA weights). --resume "
        "continues from the newest checkpoint; multi-GPU: torchrun ... --launcher pytorch. Backbone weights: "
        "--cfg-options model.backbone.weights=PATH.",
    )
    _config_args(tr)
    tr.add_argument("--data", required=True, help="a PoseTrack18/21 folder (annotations/train/*.json, images/)")
    add_train_flags(tr)
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate",
        help="PoseTrack AP (poseval's rules) on a split; predictions written as PoseTrack18 JSON",
        description="Crops every person of every labelled frame (ground-truth boxes, or --boxes DETECTIONS.json), "
        "denoises the heatmaps (DDIM, --steps x --samples, flip averaging), decodes them (DARK) and scores "
        "Head/Shou/Elb/Wri/Hip/Knee/Ank/Total AP by poseval's rules.",
    )
    _config_args(ev)
    ev.add_argument("--data", required=True, help="a PoseTrack18/21 folder")
    ev.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    ev.add_argument("--split", help="the split (default: the config's, val)")
    ev.add_argument("--boxes", help="'gt' or a COCO-style person detections JSON (default: the config's)")
    _sampling_args(ev)
    ev.add_argument("--out", help="also write predictions/<video>.json, metrics.json and crops.png here")
    add_json_flag(ev)
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser(
        "predict",
        help="poses in a video file or a folder of frames: PoseTrack18 JSON and skeleton overlays",
        description="Writes OUT/<name>.json (PoseTrack18, one person per box) and OUT/overlays/<name>/*.jpg. "
        "Boxes: --detections (COCO-style JSON, image_id = frame number from 0), --box x,y,w,h on every frame, "
        "or the whole frame.",
    )
    _config_args(pr)
    pr.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    pr.add_argument("--input", required=True, help="a video file (anything OpenCV reads) or a folder of frames")
    pr.add_argument("--out", required=True, help="output folder")
    pr.add_argument("--detections", help="person detections JSON (COCO-style; image_id = frame number)")
    pr.add_argument("--box", help="one person box x,y,w,h used on every frame")
    _sampling_args(pr)
    pr.set_defaults(func=cmd_predict)

    add_demo_command(
        sub,
        "pose",
        run_demo,
        help="synthetic PoseTrack18 videos, a short training of the tiny DiffPose, PoseTrack AP and a figure",
        description="Writes synthetic PoseTrack18-layout data, trains diffpose_tiny briefly, evaluates it with 5 "
        "DDIM steps and flip averaging, and writes OUT/report.md with a crop figure.",
    )


def demo(out_dir: Path, quick: bool) -> DemoResult:
    """The ``diffusekit demo`` section of this domain."""
    return run_demo(Path(out_dir), quick)


DOMAIN = Domain("pose", "DiffPose video 2D pose estimation (PoseTrack18/21, PoseTrack17)", add_commands, demo)
