"""``diffusekit medical synth|train|evaluate|predict|demo``: Echo-DND on CAMUS and EchoNet-Dynamic."""

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
from torch import nn

from diffusekit.core.checkpoint import weights_path
from diffusekit.core.cli import DemoResult, Domain, add_demo_command, add_json_flag, add_train_flags, json_ready
from diffusekit.core.engine import load_config, load_weights, train_on_data
from diffusekit.medical.datasets import EchoFrame, camus_frames, echonet_frames
from diffusekit.medical.inference import InferenceSettings, evaluate_predictions, format_report, predict_frames

PACKAGE = "diffusekit.medical"
SHIPPED = "echo_dnd_camus, echo_dnd_echonet, echo_dnd_tiny, unet_baseline_camus, unet_baseline_tiny"


def load_medical_config(config: str | Path, options: list[str] | None = None) -> Config:
    return load_config(config, package=PACKAGE, cfg_options=options or [])


def build_model(cfg: Config) -> nn.Module:
    """The model of ``cfg`` with random weights."""
    import diffusekit.medical.baseline  # noqa: F401  (registers the models)
    import diffusekit.medical.echo_dnd  # noqa: F401

    return MODELS.build(copy.deepcopy(cfg.model))


def load_model(cfg: Config, checkpoint: str | Path) -> nn.Module:
    """Build and load weights (EMA when the file has them); ``checkpoint`` may be a train work dir."""
    path = weights_path(checkpoint)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return load_weights(build_model(cfg), path).to(device)


def _layout(cfg: Config) -> str:
    return str(cfg.train_dataloader.dataset.get("layout", "camus"))


def eval_frames(cfg: Config, data: str | Path, split: str | None = None) -> list[EchoFrame]:
    """The labelled frames of the evaluation split (config ``evaluate.split``) of ``data``."""
    dataset = cfg.train_dataloader.dataset
    split = split or cfg.get("evaluate", {}).get("split") or ("testing" if _layout(cfg) == "camus" else "TEST")
    if _layout(cfg) == "echonet":
        return echonet_frames(data, split)
    views, phases = dataset.get("views", ("2CH", "4CH")), dataset.get("phases", ("ED", "ES"))
    return camus_frames(data, split, views, phases, dataset.get("target", "lv"))


def inference_settings(cfg: Config, steps: int | None = None, samples: int | None = None) -> InferenceSettings:
    settings = InferenceSettings.from_dict(cfg.get("evaluate"))
    settings.extra.pop("split", None)
    if steps is not None:
        settings.steps = None if steps <= 0 else steps
    if samples is not None:
        settings.samples = samples
    return settings


def evaluate_model(
    cfg: Config, model: nn.Module, data: str | Path, settings: InferenceSettings, split: str | None = None
) -> tuple[dict[str, Any], list]:
    frames = eval_frames(cfg, data, split)
    predictions, timing = predict_frames(model, frames, int(cfg.size), settings, progress=True)
    result = evaluate_predictions(predictions)
    result.update(timing, steps=settings.steps, samples=settings.samples)
    return result, predictions


def cmd_synth(args: argparse.Namespace) -> int:
    from diffusekit.medical.synthetic import write_camus, write_echonet

    out = Path(args.out)
    both = args.layout == "all"
    if args.layout in ("camus", "all"):
        print(f"CAMUS (NIfTI layout): {write_camus(out / 'camus' if both else out, args.size, args.seed)}")
    if args.layout == "camus-mhd":
        print(f"CAMUS (legacy MHD layout): {write_camus(out, args.size, args.seed, legacy=True)}")
    if args.layout in ("echonet", "all"):
        print(f"EchoNet-Dynamic layout: {write_echonet(out / 'echonet' if both else out, args.size, args.seed)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = load_medical_config(args.config, args.cfg_options)
    weights = train_on_data(cfg, args.data, args.work_dir, args.resume, args.launcher, args.seed)
    if is_main_process():
        print(f"trained: {weights} (raw and EMA weights; evaluate and predict use EMA)")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.medical.visualize import plot_segmentations

    cfg = load_medical_config(args.config, args.cfg_options)
    settings = inference_settings(cfg, args.steps, args.samples)
    model = load_model(cfg, args.checkpoint)
    result, predictions = evaluate_model(cfg, model, args.data, settings, args.split)
    steps = "all" if settings.steps is None else settings.steps
    print(format_report(result, f"{Path(str(args.config)).stem}: {steps} steps, {settings.samples} sample(s)"))
    print(f"{result['seconds_per_image']:.2f} s per image, {result['evaluations']} U-Net evaluations per image")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(json_ready(result), indent=1))
        plot_segmentations(out / "segmentations.png", predictions, title=Path(str(args.config)).stem)
        print(f"metrics and figure: {out}")
    if args.json:
        print(json.dumps(json_ready(result), sort_keys=True))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from diffusekit.medical.predict import predict_path

    cfg = load_medical_config(args.config, args.cfg_options)
    settings = inference_settings(cfg, args.steps, args.samples)
    model = load_model(cfg, args.checkpoint)
    written = predict_path(model, int(cfg.size), settings, args.input, args.out)
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def run_demo(out_dir: Path, quick: bool = False) -> DemoResult:
    """Synthetic CAMUS, the tiny Echo-DND trained briefly, evaluation with a fast sampler, a figure."""
    from diffusekit.medical.synthetic import write_camus
    from diffusekit.medical.visualize import plot_segmentations

    out_dir = Path(out_dir)
    data = write_camus(out_dir / "camus", "small", seed=0)
    iters = 30 if quick else 200
    # a short run: an EMA of horizon ~50 iterations (the config's 0.995 would still be 37% initial weights at 200)
    cfg = load_medical_config("echo_dnd_tiny", [f"train_cfg.max_iters={iters}", "ema.decay=0.98"])
    settings = inference_settings(cfg, steps=5 if quick else 10, samples=1 if quick else 3)
    threads = torch.get_num_threads()
    start = time.perf_counter()
    try:
        weights = train_on_data(cfg, data, out_dir / "work_dir", seed=0)
        train_seconds = time.perf_counter() - start
        result, predictions = evaluate_model(cfg, load_model(cfg, weights), data, settings)
    finally:
        torch.set_num_threads(threads)
    figure = plot_segmentations(out_dir / "segmentations.png", predictions, title="echo_dnd_tiny, synthetic CAMUS")
    title = (
        f"Echo-DND tiny, {iters} iterations ({train_seconds:.0f} s), "
        f"{settings.steps} DDIM steps x {settings.samples} samples"
    )
    markdown = "\n".join(
        [
            "Echo-DND (config `echo_dnd_tiny`) trained on synthetic CAMUS-layout data (NIfTI release layout, "
            "anisotropic spacing from the headers) and evaluated on its test split at native resolution; distances "
            "in mm. A demo-length training: see docs/medical.md for the benchmark.",
            "",
            format_report(result, title),
            "",
            f"![segmentations]({figure.relative_to(out_dir.parent).as_posix()})",
        ]
    )
    overall = result["overall"]
    metrics = {k: round(float(overall[k]), 5) for k in ("dice", "iou", "hd95", "msd")}
    metrics.update(
        pooled_dice=round(result["pooled_dice"], 5),
        train_seconds=round(train_seconds, 2),
        iterations=iters,
        seconds_per_image=round(result["seconds_per_image"], 3),
    )
    return DemoResult("medical", markdown, metrics)


def _config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help=f"a config file or a shipped name: {SHIPPED}")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")


def _sampling_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, help="sampling steps (default: the config's; 0 = all T, the paper)")
    parser.add_argument("--samples", type=int, help="ensemble size per image (default: the config's)")


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``medical`` subcommands."""
    sub = parser.add_subparsers(dest="medical_command", metavar="COMMAND")
    synth = sub.add_parser(
        "synth",
        help="write synthetic echocardiograms in the CAMUS and/or EchoNet-Dynamic layout",
        description="Renders fan-shaped, speckled apical views of an ellipsoid LV with myocardium and atrium "
        "moving from ED to ES, and writes them in the official layouts (CAMUS NIfTI with split files and Info "
        "cfgs, or the legacy MHD release; EchoNet AVI videos with FileList.csv and VolumeTracings.csv).",
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--layout", choices=("camus", "camus-mhd", "echonet", "all"), default="all")
    synth.add_argument("--size", choices=("small", "medium"), default="small", help="small: 12 patients, medium: 60")
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.set_defaults(func=cmd_synth)

    tr = sub.add_parser(
        "train",
        help="train Echo-DND (or the U-Net baseline) through the mmengine engine",
        description="Trains into WORK_DIR (checkpoints with a manifest, final_weights.pth with raw and EMA weights). "
        "--resume continues from the newest checkpoint; multi-GPU: torchrun ... --launcher pytorch.",
    )
    _config_args(tr)
    tr.add_argument("--data", required=True, help="a CAMUS or EchoNet-Dynamic folder (the config picks the layout)")
    add_train_flags(tr)
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate",
        help="segment the evaluation split; Dice, IoU, HD95, MSD (mm), pooled Dice, ED/ES table, EF error",
        description="Samples each image at the config's step count and ensemble size (fast DDIM by default), "
        "fuses the Gaussian, Bernoulli and calibration maps, post-processes at native resolution and scores with "
        "MONAI in millimetres from the header spacing. Empty masks: Dice 0 and distances = image diagonal.",
    )
    _config_args(ev)
    ev.add_argument("--data", required=True, help="a CAMUS or EchoNet-Dynamic folder")
    ev.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    ev.add_argument("--split", help="CAMUS training/validation/testing, EchoNet TRAIN/VAL/TEST (default: config)")
    _sampling_args(ev)
    ev.add_argument("--out", help="also write metrics.json and segmentations.png here")
    add_json_flag(ev)
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser(
        "predict",
        help="segment NIfTI / MHD / PNG / AVI files or a folder; masks in the input's format and geometry",
        description="Writes <stem>_mask (same format, affine/spacing copied from the input), <stem>_uncertainty "
        "and <stem>_overlay.png per input file.",
    )
    _config_args(pr)
    pr.add_argument("--checkpoint", required=True, help="final_weights.pth or the train work dir")
    pr.add_argument("--input", required=True, help="a .nii/.nii.gz/.mhd/.png/.avi file or a folder of them")
    pr.add_argument("--out", required=True, help="output folder")
    _sampling_args(pr)
    pr.set_defaults(func=cmd_predict)

    add_demo_command(
        sub,
        "medical",
        run_demo,
        help="synthetic CAMUS, a short training of the tiny config, evaluation, a figure and a report",
        description="Writes synthetic CAMUS-layout data, trains echo_dnd_tiny briefly, evaluates it with 10 DDIM "
        "steps and writes OUT/report.md with the overlay figure.",
    )


def demo(out_dir: Path, quick: bool) -> DemoResult:
    """The ``diffusekit demo`` section of this domain."""
    return run_demo(Path(out_dir), quick)


DOMAIN = Domain(
    "medical",
    "Echo-DND left-ventricle segmentation on echocardiography (CAMUS, EchoNet-Dynamic)",
    add_commands,
    demo,
)
