"""``diffusekit perception3d synth|train|evaluate|predict|demo``: CoDiff collaborative 3D detection on OPV2V,
V2XSet or DAIR-V2X-C.

Argument parsing only; the work is done by `workflow`, `synthetic`, `visualize` and `demo`. Modules that need the
perception3d extra (shapely, PyYAML) are imported inside the commands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmengine.dist import is_main_process

from diffusekit.core import commands as cc
from diffusekit.core.cli import Domain
from diffusekit.core.errors import DataError

PACKAGE = "diffusekit.perception3d"
DEMO = "diffusekit.perception3d.demo:run_demo"
FUSIONS = ("none", "late", "attention")


def cmd_synth(args: argparse.Namespace) -> int:
    from diffusekit.perception3d.synthetic import write_dataset

    root = write_dataset(cc.output_dir(args.out), size=args.size, seed=args.seed, overwrite=args.overwrite)
    print(f"OPV2V layout: {root}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from diffusekit.perception3d.workflow import load_perception_config, train_model

    cfg = load_perception_config(args.config, args.cfg_options)
    weights = train_model(cfg, args.data, args.work_dir, resume=args.resume, launcher=args.launcher, seed=args.seed)
    if is_main_process():
        print(f"trained: {weights}; curves and best checkpoint: {weights.parent}")
    return 0


def _model(args: argparse.Namespace):
    from diffusekit.perception3d.workflow import load_model, load_perception_config

    cfg = load_perception_config(args.config, args.cfg_options)
    model = load_model(cfg, args.checkpoint, args.device)
    if args.steps is not None:
        if not hasattr(model, "refine"):
            raise DataError("--steps applies to CoDiff only (this config is a plain detector)", cfg.filename)
        model.steps = args.steps
    return cfg, model


def result_table(records: list[dict], sort: str) -> str:
    """One row per (pose noise, delay): AP at 0.3 / 0.5 / 0.7 in the config's sort, AP@0.5 / 0.7 in the other."""
    other = "global" if sort == "frame" else "frame"
    head = (
        "| noise (m / deg) | delay (frames) | AP@0.3 | AP@0.5 | AP@0.7 | "
        f"AP@0.5 {other} | AP@0.7 {other} | frames/s |\n"
        "|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r['noise']:g} | {r['delay']} | {r['ap_30']:.3f} | {r['ap_50']:.3f} | {r['ap_70']:.3f} | "
        f"{r[f'ap_50_{other}']:.3f} | {r[f'ap_70_{other}']:.3f} | {r['frames_per_second']:.2f} |"
        for r in records
    ]
    return "\n".join([f"detection sort: {sort} (AP@ columns); {other} in the marked columns", head, *rows])


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.core.config_checks import config_block
    from diffusekit.perception3d.workflow import EVALUATE_DEFAULTS, evaluate_model

    cfg, model = _model(args)
    if args.sort:
        cfg.evaluate = dict(cfg.get("evaluate") or {}, sort=args.sort)
    records, examples = evaluate_model(
        cfg, model, args.data, args.noise, args.delay, args.fusion, args.split, args.max_frames, keep=2
    )
    sort = config_block(cfg, "evaluate", EVALUATE_DEFAULTS)["sort"]
    name = Path(str(args.config)).stem
    summary = {"config": name, "sort": sort, "results": records}
    out = cc.report(args, summary, result_table(records, sort))
    if out is not None:
        from diffusekit.perception3d.visualize import plot_ap_vs_noise

        for delay in sorted({r["delay"] for r in records}):
            rows = [r for r in records if r["delay"] == delay]
            plot_ap_vs_noise(
                out / f"ap_vs_noise_delay{delay}.png",
                {
                    f"{name} AP@0.5": [(r["noise"], r["ap_50"]) for r in rows],
                    f"{name} AP@0.7": [(r["noise"], r["ap_70"]) for r in rows],
                },
                "AP",
                title=f"{name}, delay {delay} frame(s), {sort} sort",
            )
        if not args.json:
            print(f"metrics and figures: {out}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from diffusekit.perception3d.workflow import predict_scenario

    cfg, model = _model(args)
    written = predict_scenario(cfg, model, args.input, Path(args.out), args.figures, args.noise, args.export)
    print(f"wrote {len(written)} files to {Path(args.out) / Path(args.input).name}")
    return 0


def _network_command(sub, name: str, func, help: str, description: str) -> argparse.ArgumentParser:
    parser = cc.add_command(sub, name, func, help, description)
    cc.add_config_args(parser, PACKAGE)
    parser.add_argument("--checkpoint", required=True, help="final_weights.pth, a best_*.pth or the train work dir")
    cc.add_runtime_args(parser)
    cc.add_sampling_args(parser, steps="CoDiff sampling steps (default: the config's model.steps)", samples=None)
    return parser


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``perception3d`` subcommands."""
    sub = parser.add_subparsers(dest="perception3d_command", metavar="COMMAND")
    synth = cc.add_command(
        sub,
        "synth",
        cmd_synth,
        help="write a synthetic OPV2V-layout dataset: ray-cast LiDAR from several agents on a road scene",
        description="Parked and moving vehicles, buildings that occlude, 2-4 connected vehicles and sometimes a "
        "roadside unit (negative id); every agent's LiDAR is ray-cast (occlusion included, so collaboration "
        "matters) and written as .pcd + .yaml per frame in OPV2V's layout, with true and GPS-noisy poses.",
    )
    cc.add_output_args(synth, "output folder", json=False, required=True)
    synth.add_argument("--size", choices=("small", "medium"), default="small", help="small: a few short scenarios")
    synth.add_argument("--overwrite", action="store_true", help="replace a synthetic dataset already in OUT")
    cc.add_seed_arg(synth)

    train = cc.add_command(
        sub,
        "train",
        cmd_train,
        help="train a detector (no or attention fusion) or CoDiff's diffusion stage through the mmengine engine",
        description="Trains into WORK_DIR: checkpoints, final_weights.pth, curves.png / curves.json and "
        "best_det_ap_50_iter_N.pth (validation AP@0.5). CoDiff trains in stages: first the attention-fusion "
        "detector (attfuse_*), then the diffusion stage with --cfg-options load_from=<stage 1>/final_weights.pth "
        "(codiff_*), optionally model.stage=finetune. --resume continues from the newest intact checkpoint; "
        "multi-GPU: torchrun ... --launcher pytorch.",
    )
    cc.add_config_args(train, PACKAGE)
    train.add_argument(
        "--data", required=True, help="an OPV2V / V2XSet folder (train/, validate/, test/) or DAIR-V2X-C"
    )
    cc.add_train_args(train)

    evaluate = _network_command(
        sub,
        "evaluate",
        cmd_evaluate,
        help="BEV AP at IoU 0.3 / 0.5 / 0.7 (OpenCOOD's rules) over a pose-noise and delay sweep",
        description="Detects on every test frame at each pose-noise level (Gaussian std in m and degrees on x, y "
        "and yaw of every agent, CoAlign's sweep 0 / 0.2 / 0.4 / 0.6 by default) and each delay (whole frames; the "
        "ground truth always from the current frame), and scores with BEV rotated IoU, greedy matching by score and "
        "VOC all-point AP. Both detection sorts are computed (per frame, OpenCOOD's default, and global, CoAlign's); "
        "the table names which is which.",
    )
    evaluate.add_argument("--data", required=True, help="the dataset folder (the config picks the layout)")
    evaluate.add_argument("--split", help="split to evaluate (default: the config's evaluate.split)")
    evaluate.add_argument("--noise", type=cc.nonnegative_float, nargs="+", help="pose noise std levels (m and degrees)")
    evaluate.add_argument("--delay", type=cc.nonnegative_int, nargs="+", help="delays in frames (default: 0)")
    evaluate.add_argument(
        "--fusion", choices=FUSIONS, help="override: 'late' runs a single-agent model on every agent and merges"
    )
    evaluate.add_argument("--sort", choices=("frame", "global"), help="the detection sort the AP@ columns use")
    evaluate.add_argument("--max-frames", type=cc.positive_int, help="evaluate the first N frames of each scenario")
    cc.add_output_args(evaluate, "also write metrics.json and AP-against-noise figures here")

    predict = _network_command(
        sub,
        "predict",
        cmd_predict,
        help="detect in every frame of one scenario folder: boxes as JSON and BEV figures",
        description="Reads an OPV2V/V2XSet scenario folder (one folder per agent, .pcd + .yaml per frame; the ego "
        "is the first non-negative agent id) and writes OUT/<scenario>/<frame>.json (boxes in the ego LiDAR frame) "
        "and <frame>_bev.png for the first --figures frames; --export adds <frame>_3d/ with PLY point clouds "
        "(every agent, in the ego frame) and box line sets (ground truth green, detections red) for Open3D, MeshLab "
        "or CloudCompare.",
    )
    predict.add_argument("--input", required=True, help="a scenario folder")
    predict.add_argument("--figures", type=cc.nonnegative_int, default=3, help="BEV figures for the first N frames")
    predict.add_argument(
        "--export", action="store_true", help="also write PLY point clouds and boxes per frame for a 3-D viewer"
    )
    predict.add_argument("--noise", type=cc.nonnegative_float, default=0.0, help="simulate pose noise (default 0)")
    cc.add_output_args(predict, "output folder", json=False, required=True)

    cc.add_demo_command(
        sub,
        "perception3d",
        DEMO,
        help="synthetic OPV2V, short training of the detectors and CoDiff, the noise sweep, figures, a report",
        description="Writes a small synthetic OPV2V dataset, trains the single-agent and attention-fusion tiny "
        "detectors and CoDiff's diffusion and fine-tuning stages for a few hundred iterations, evaluates no / late / "
        "attention fusion and CoDiff at pose noise 0 and 0.4 and writes OUT/report.md with BEV figures.",
    )


DOMAIN = Domain(
    "perception3d",
    "CoDiff collaborative 3D object detection with a conditional diffusion model (OPV2V, V2XSet, DAIR-V2X)",
    add_commands,
    DEMO,
    requires=("shapely",),
)
