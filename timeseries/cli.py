"""``diffusekit timeseries``: synth, train, evaluate, predict and demo for ImDiffusion anomaly detection.

Argument parsing only; the work is done by :mod:`~diffusekit.timeseries.workflow` (train, evaluate),
:mod:`~diffusekit.timeseries.predict` and :mod:`~diffusekit.timeseries.demo`, imported when a command runs. Bad user
input raises ``DataError`` (exit code 2, one line on stderr).
"""

from __future__ import annotations

import argparse
import time

from diffusekit.core import commands
from diffusekit.core.cli import Domain
from diffusekit.core.commands import add_command, add_config_args
from diffusekit.timeseries.datasets import LAYOUTS

PACKAGE = "diffusekit.timeseries"
SYNTH_LAYOUTS = ("smd", "smd_pkl", "tsb_ad", "psm", "msl", "smap")
DEMO = "diffusekit.timeseries.demo:run_demo"  # the demo section, imported when it runs


def cmd_synth(args: argparse.Namespace) -> int:
    from diffusekit.timeseries.synthetic import write_synthetic

    out = commands.output_dir(args.out)
    dataset = write_synthetic(out, args.layout, args.size, args.seed, overwrite=args.overwrite)
    print(
        f"wrote synthetic {args.layout} data ({args.size}, seed {args.seed}) to {dataset.root}: "
        f"{len(dataset.anomalies)} entities"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from mmengine.dist import is_main_process

    from diffusekit.timeseries.workflow import load_timeseries_config, train_entities

    cfg = load_timeseries_config(args.config, args.cfg_options)
    dirs = train_entities(
        cfg,
        args.data,
        args.work_dir,
        args.machines,
        args.layout,
        resume=args.resume,
        launcher=args.launcher,
        seed=args.seed,
        device=args.device,
    )
    if is_main_process():
        for entity_dir in dirs:
            print(f"{entity_dir.name}: {entity_dir / 'final_weights.pth'}, detector.json, curves.png")
        print(f"trained {len(dirs)} model(s) into {args.work_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.timeseries.pipeline import Settings
    from diffusekit.timeseries.workflow import (
        check_output_dir,
        evaluate_entities,
        format_table,
        load_timeseries_config,
        mean_metrics,
        plot_evaluation,
    )

    cfg = load_timeseries_config(args.config, args.cfg_options)
    settings = Settings.from_cfg(cfg)
    if args.out:
        check_output_dir(args.out)  # before the work, not after it
    start = time.perf_counter()
    results = evaluate_entities(cfg, args.data, args.checkpoint, args.machines, args.layout, args.device)
    summary = dict(mean_metrics(results))
    summary.update(
        per_entity={r.name: r.metrics for r in results},
        num_steps=int(cfg.model.get("num_steps", 50)),
        voting_steps=list(settings.steps),
        window=settings.window,
        test_stride=settings.test_stride,
        metric_window=settings.metric_window,
        seconds=round(time.perf_counter() - start, 2),
    )
    table = format_table(results, settings)
    if args.out:
        out = commands.output_dir(args.out)
        for result in results:
            plot_evaluation(result, out / f"{result.name}.png")
        table += f"\nmetrics and figures: {out}"
    commands.report(args, summary, table)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from diffusekit.timeseries.predict import predict_series
    from diffusekit.timeseries.workflow import load_timeseries_config

    cfg = load_timeseries_config(args.config, args.cfg_options)
    info = predict_series(cfg, args.checkpoint, args.input, args.out, args.top_k, args.device)
    print(
        f"scored {info['timestamps']} timestamps, {info['intervals']} interval(s): {args.out}/scores.csv, "
        f"intervals.csv, detection.png"
    )
    return 0


def _data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="the data folder (or, for --layout csv or tsb_ad, one CSV file)")
    parser.add_argument(
        "--machines",
        default="all",
        help="entities to use (SMD machines, TSB-AD file names without .csv): all (default) or a comma-separated list",
    )
    parser.add_argument("--layout", choices=LAYOUTS, help="data layout (default: the config's)")


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``timeseries`` subcommands."""
    sub = parser.add_subparsers(dest="timeseries_command", metavar="COMMAND")
    synth = add_command(
        sub,
        "synth",
        cmd_synth,
        help="write a synthetic anomaly-detection dataset in an official layout",
        description="Writes correlated seasonal series with injected anomalies (spike, level shift, contextual, "
        "collective, correlation break) in the SMD (text or pickle), TSB-AD-M, PSM or MSL/SMAP layout, read back by "
        "the real readers.",
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument(
        "--layout", choices=SYNTH_LAYOUTS, default="smd", help="layout (default smd; smd_pkl and tsb_ad: SMD machines)"
    )
    synth.add_argument("--size", choices=("small", "medium"), default="small", help="small: 3x2000, medium: 8x12000")
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a dataset of the layout already in OUT (its files are removed first); default: refuse",
    )
    commands.add_seed_arg(synth)

    tr = add_command(
        sub,
        "train",
        cmd_train,
        help="train ImDiffusion, one model per entity (SMD machine)",
        description="Trains through the mmengine engine into WORK_DIR/<entity>/ (checkpoints, final_weights.pth, "
        "the best checkpoint by validation imputation error, curves.png) and writes detector.json there: the "
        "train scaler and the vote thresholds calibrated on the held-out tail of the training series, which "
        "predict uses.",
    )
    add_config_args(tr, PACKAGE)
    _data_args(tr)
    commands.add_train_args(
        tr, "output folder; one subfolder per entity", "continue from the newest checkpoint in each subfolder"
    )
    tr.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device of the calibration after training (auto: CUDA when available; mmengine picks the training one)",
    )

    ev = add_command(
        sub,
        "evaluate",
        cmd_evaluate,
        help="score the test series; oracle and deployable metrics per entity and their mean",
        description="Imputes the test series (stride window//2 plus a tail window), votes over the diffusion "
        "steps and reports: oracle PA-F1 (oracle protocol, test labels used), deployable F1 and PA-F1 "
        "(thresholds from validation scores of the train tail, no test labels), VUS-PR, R-AUC-PR and ADD.",
    )
    add_config_args(ev, PACKAGE)
    _data_args(ev)
    ev.add_argument("--checkpoint", required=True, help="a weights file, or a train work dir (<dir>/<entity>/...)")
    commands.add_runtime_args(ev)
    commands.add_output_args(ev, "also write metrics.json and one figure per entity here")

    pr = add_command(
        sub,
        "predict",
        cmd_predict,
        help="detect anomalies in a CSV or a data folder with a trained model",
        description="Writes OUT/scores.csv (timestamp, score, label, votes, top features), OUT/intervals.csv "
        "and OUT/detection.png, with the thresholds and scaler stored by train in detector.json.",
    )
    add_config_args(pr, PACKAGE)
    pr.add_argument("--checkpoint", required=True, help="final_weights.pth (detector.json next to it) or its folder")
    pr.add_argument("--input", required=True, help="a CSV with a header (feature columns as in training) or a folder")
    pr.add_argument("--top-k", type=commands.positive_int, default=3, help="features named per timestamp (default 3)")
    commands.add_runtime_args(pr)
    commands.add_output_args(pr, "output folder", json=False, required=True)

    commands.add_demo_command(
        sub,
        "timeseries",
        DEMO,
        help="synthetic data, a short training of the tiny config, evaluation, a figure and a report",
        description="Writes synthetic SMD-layout data, trains imdiffusion_tiny on one machine (about half a minute "
        "on 2 CPU cores), evaluates it and writes OUT/report.md with the detection figure and training curves.",
    )


DOMAIN = Domain(
    "timeseries",
    "ImDiffusion anomaly detection on multivariate time series (SMD, PSM, MSL, SMAP, TSB-AD-M, CSV)",
    add_commands,
    DEMO,
    requires=("pandas", "pyarrow"),
)
