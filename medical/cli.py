"""``diffusekit medical synth|train|evaluate|predict|demo``: Echo-DND on CAMUS and EchoNet-Dynamic.

Argument parsing only; the work is done by `evaluation`, `predict`, `synthetic` and `demo`. Modules that need the
medical extra (MONAI, nibabel, SimpleITK, scikit-image, pandas, OpenCV) are imported inside the commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmengine.dist import is_main_process

from diffusekit.core import commands as cc
from diffusekit.core.cli import Domain
from diffusekit.core.errors import DataError
from diffusekit.medical import evaluation

PACKAGE = evaluation.PACKAGE
DEMO = "diffusekit.medical.demo:run_demo"  # the demo section, imported when it runs
# the Gaussian branch's samplers (--sampler); the Bernoulli branch keeps the config's
SAMPLERS = cc.SAMPLERS


def _not_a_file(folder: str | None) -> None:
    """An output folder named by the user must not be an existing file (checked before any work is done)."""
    if folder and Path(folder).exists() and not Path(folder).is_dir():
        raise DataError("output folder names an existing file", folder)


def cmd_synth(args: argparse.Namespace) -> int:
    from diffusekit.medical.synthetic import existing_dataset, remove_dataset, write_camus, write_echonet

    both = args.layout == "all"
    layouts = ("camus", "echonet") if both else (args.layout,)
    targets = [(Path(args.out) / layout if both else Path(args.out), layout) for layout in layouts]
    _not_a_file(args.out)
    for folder, layout in targets:  # every layout checked before anything is removed or written
        found = existing_dataset(folder, layout)
        if found and not args.overwrite:
            raise DataError(
                f"already holds a dataset of the {layout} layout ({found[0].name} exists); choose an empty folder "
                "or pass --overwrite",
                folder,
            )
    if args.overwrite:
        for folder, layout in targets:
            remove_dataset(folder, layout)
    out = cc.output_dir(args.out)
    if args.layout in ("camus", "all"):
        print(f"CAMUS (NIfTI layout): {write_camus(out / 'camus' if both else out, args.size, args.seed)}")
    if args.layout == "camus-mhd":
        print(f"CAMUS (legacy MHD layout): {write_camus(out, args.size, args.seed, legacy=True)}")
    if args.layout in ("echonet", "all"):
        print(f"EchoNet-Dynamic layout: {write_echonet(out / 'echonet' if both else out, args.size, args.seed)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = evaluation.load_medical_config(args.config, args.cfg_options)
    weights = evaluation.train_model(
        cfg, args.data, args.work_dir, resume=args.resume, launcher=args.launcher, seed=args.seed
    )
    if is_main_process():
        print(f"trained: {weights} (raw and EMA weights; evaluate and predict use EMA); curves: {weights.parent}")
    return 0


def _model_and_settings(args: argparse.Namespace):
    cfg = evaluation.load_medical_config(args.config, args.cfg_options)
    settings = evaluation.inference_settings(cfg, args.steps, args.samples, args.sampler)
    return cfg, settings, evaluation.load_model(cfg, args.checkpoint, args.device)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.medical.inference import format_report
    from diffusekit.medical.visualize import plot_segmentations

    _not_a_file(args.out)
    cfg, settings, model = _model_and_settings(args)
    result, predictions = evaluation.evaluate_model(cfg, model, args.data, settings, args.split)
    name = Path(str(args.config)).stem
    steps = "all" if settings.steps is None else settings.steps
    table = format_report(result, f"{name}: {steps} steps, {settings.samples} sample(s)")
    table += f"\n{result['seconds_per_image']:.2f} s per image, {result['evaluations']} U-Net evaluations per image"
    out = cc.report(args, result, table)
    if out is not None:
        plot_segmentations(out / "segmentations.png", predictions, title=name)
        if not args.json:
            print(f"metrics and figure: {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from diffusekit.medical.predict import predict_path, supported_inputs

    _not_a_file(args.out)
    supported_inputs(args.input)  # a missing or unsupported input fails before the model is built
    cfg, settings, model = _model_and_settings(args)
    written = predict_path(model, int(cfg.size), settings, args.input, cc.output_dir(args.out))
    print(f"wrote {len(written)} files to {args.out}")
    return 0


def _network_command(sub, name: str, func, help: str, description: str, data: bool) -> argparse.ArgumentParser:
    """evaluate / predict: config, checkpoint, device and threads, --steps/--samples/--sampler."""
    parser = cc.add_command(sub, name, func, help, description)
    cc.add_config_args(parser, PACKAGE)
    if data:
        parser.add_argument("--data", required=True, help="a CAMUS or EchoNet-Dynamic folder")
    parser.add_argument("--checkpoint", required=True, help="final_weights.pth, a best_*.pth or the train work dir")
    cc.add_runtime_args(parser)
    cc.add_sampling_args(
        parser,
        steps="sampling steps (default: the config's; >= 1000 runs all T steps, the paper's chain)",
        samples="samples per image and branch, fused (default: the config's)",
        sampler=SAMPLERS,
    )
    return parser


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``medical`` subcommands."""
    sub = parser.add_subparsers(dest="medical_command", metavar="COMMAND")
    synth = cc.add_command(
        sub,
        "synth",
        cmd_synth,
        help="write synthetic echocardiograms in the CAMUS and/or EchoNet-Dynamic layout",
        description="Renders fan-shaped, speckled apical views of an ellipsoid LV with myocardium and atrium "
        "moving from ED to ES, and writes them in the official layouts (CAMUS NIfTI with split files and Info "
        "cfgs, or the legacy MHD release; EchoNet AVI videos with FileList.csv and VolumeTracings.csv).",
    )
    cc.add_output_args(synth, "output folder", json=False, required=True)
    synth.add_argument("--layout", choices=("camus", "camus-mhd", "echonet", "all"), default="all")
    synth.add_argument("--size", choices=("small", "medium"), default="small", help="small: 12 patients, medium: 60")
    cc.add_seed_arg(synth)
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a dataset of the same layout already in --out (default: refuse to touch existing files)",
    )

    train = cc.add_command(
        sub,
        "train",
        cmd_train,
        help="train Echo-DND (or the U-Net baseline) through the mmengine engine, validating on the val split",
        description="Trains into WORK_DIR: checkpoints with a manifest, final_weights.pth (raw and EMA weights), "
        "curves.png / curves.json (loss and validation Dice, IoU, HD95) and best_seg_dice_iter_N.pth (the best "
        "validation Dice). --resume continues from the newest checkpoint; multi-GPU: torchrun ... --launcher pytorch.",
    )
    cc.add_config_args(train, PACKAGE)
    train.add_argument("--data", required=True, help="a CAMUS or EchoNet-Dynamic folder (the config picks the layout)")
    cc.add_train_args(train)

    evaluate = _network_command(
        sub,
        "evaluate",
        cmd_evaluate,
        help="segment the evaluation split; Dice, IoU, HD95, MSD (mm), pooled Dice, ED/ES table, EF error",
        description="Samples each image at the config's step count and ensemble size (fast DDIM by default), "
        "fuses the Gaussian, Bernoulli and calibration maps, post-processes at native resolution and scores with "
        "MONAI in millimetres from the header spacing. Empty masks: Dice 0 and distances = image diagonal.",
        data=True,
    )
    evaluate.add_argument("--split", help="CAMUS training/validation/testing, EchoNet TRAIN/VAL/TEST (default: config)")
    cc.add_output_args(evaluate, "also write metrics.json and segmentations.png here")

    predict = _network_command(
        sub,
        "predict",
        cmd_predict,
        help="segment NIfTI / MHD / PNG / AVI files or a folder; lossless masks in the input's geometry",
        description="Writes per input file <stem>_mask (NIfTI / MHD with the input's affine or spacing, PNG, or "
        "for AVI a lossless FFV1 AVI, verified bit-exact after writing), <stem>_uncertainty and <stem>_overlay.png "
        "(for AVI also <stem>_overlay.avi, a normal video).",
        data=False,
    )
    predict.add_argument("--input", required=True, help="a .nii/.nii.gz/.mhd/.png/.avi file or a folder of them")
    cc.add_output_args(predict, "output folder", json=False, required=True)

    cc.add_demo_command(
        sub,
        "medical",
        DEMO,
        help="synthetic CAMUS, a short training of the tiny config with validation, evaluation, figures, a report",
        description="Writes synthetic CAMUS-layout data, trains a 32 x 32 echo_dnd_tiny for 100 iterations "
        "(validating on the validation split), evaluates it with a few DDIM steps and writes OUT/report.md with "
        "the segmentation and training-curve figures.",
    )


DOMAIN = Domain(
    "medical",
    "Echo-DND left-ventricle segmentation on echocardiography (CAMUS, EchoNet-Dynamic)",
    add_commands,
    DEMO,
    requires=("monai", "nibabel", "SimpleITK", "skimage", "pandas", "cv2"),
)
