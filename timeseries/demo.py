"""The timeseries section of ``diffusekit demo``: a synthetic series as CSV files, a short training of
``imdiffusion_tiny`` (with validation curves), the deployable and oracle evaluation, and a detection figure."""

from __future__ import annotations

import csv
import logging
import shutil
import time
from pathlib import Path

import torch

from diffusekit.core.commands import DemoResult
from diffusekit.timeseries.pipeline import Settings
from diffusekit.timeseries.synthetic import generate_entity
from diffusekit.timeseries.workflow import (
    METRIC_KEYS,
    evaluate_entities,
    load_timeseries_config,
    plot_evaluation,
    train_entities,
)

log = logging.getLogger(__name__)

ENTITY = "series"
# the demo's data and budget: a few features, so that the tiny model learns them in seconds; FULL is what
# `diffusekit demo` runs, QUICK what the tests run
FULL = dict(features=6, length=1200, iters=450, stride=16, lr=3e-3)
QUICK = dict(features=6, length=800, iters=150, stride=32, lr=3e-3)


def write_demo_data(folder: str | Path, features: int, length: int, seed: int = 0) -> Path:
    """``folder/train.csv`` (normal data) and ``folder/test.csv`` (one anomaly of each synthetic kind, a ``label``
    column): the ``csv`` layout a user's own data takes, with a timestamp column and ``features`` features."""
    entity = generate_entity(length, features, seed, per_kind=1)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"feature_{k}" for k in range(features)]
    for part, values, labels in (("train", entity.train, None), ("test", entity.test, entity.labels)):
        with (folder / f"{part}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["timestamp", *names, *(["label"] if labels is not None else [])])
            for t, row in enumerate(values):
                writer.writerow([t, *(f"{v:.6g}" for v in row), *([labels[t]] if labels is not None else [])])
    return folder


def run_demo(
    out_dir: str | Path, quick: bool = False, seed: int = 0, options: list[str] | None = None, **budget
) -> DemoResult:
    """Write the data, train, evaluate and draw into ``out_dir``; return the report section. ``budget`` overrides
    ``features``, ``length``, ``iters``, ``stride`` (of the test windows) and ``lr`` of the preset; ``options`` are more
    ``--cfg-options`` for ``imdiffusion_tiny``."""
    budget = {**(QUICK if quick else FULL), **budget}
    out_dir = Path(out_dir)
    data = write_demo_data(out_dir / "data", budget["features"], budget["length"], seed)
    iters = budget["iters"]
    preset = [f"train_cfg.max_iters={iters}", f"train_cfg.val_interval={max(iters // 4, 1)}"]
    preset += [f"detect.test_stride={budget['stride']}", f"optim_wrapper.optimizer.lr={budget['lr']}"]
    cfg = load_timeseries_config("imdiffusion_tiny", [*preset, *(options or [])])
    settings = Settings.from_cfg(cfg)
    threads = torch.get_num_threads()
    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # the tiny model's tensors are small: extra CPU threads only add overhead
    work_dir = out_dir / "work_dir"
    if work_dir.is_dir():
        shutil.rmtree(work_dir)  # the demo's own run from an earlier call: a rerun trains afresh
    try:
        start = time.perf_counter()
        (entity_dir,) = train_entities(cfg, data, work_dir, layout="csv", seed=seed)
        train_seconds = time.perf_counter() - start
        (result,) = evaluate_entities(cfg, data, work_dir, layout="csv")
    finally:
        torch.set_num_threads(threads)
    figure = plot_evaluation(result, out_dir / "detection.png", "synthetic series")
    m = result.metrics
    label_rate = float(result.split.test_labels.mean())
    table = [
        "| metric | value |",
        "|---|---:|",
        f"| F1 (deployable threshold) | {m['f1']:.4f} |",
        f"| PA-F1 (deployable threshold) | {m['pa_f1']:.4f} |",
        f"| precision / recall (deployable) | {m['precision']:.4f} / {m['recall']:.4f} |",
        f"| VUS-PR (windows 0..{settings.metric_window}; a random score gets the label rate, {label_rate:.3f}) | "
        f"{m['vus_pr']:.4f} |",
        f"| R-AUC-PR (window {settings.metric_window}) | {m['r_auc_pr']:.4f} |",
        f"| ADD (steps) | {m['add']:.1f} |",
        f"| oracle PA-F1 (oracle protocol, test labels used) | {m['oracle_pa_f1']:.4f} |",
    ]
    relative = out_dir.parent
    markdown = "\n".join(
        [
            f"ImDiffusion (config `imdiffusion_tiny`, {iters} iterations, {train_seconds:.1f} s to train, validate "
            "and calibrate) on a synthetic series written as CSV (the `csv` layout: "
            f"{result.split.num_features} features, {len(result.split.train)} train and {len(result.split.test)} "
            "test steps with injected spikes, level shifts, contextual, collective and correlation-break "
            "anomalies). Deployable metrics use thresholds calibrated on the held-out train tail; the oracle row "
            "picks its thresholds on the test labels.",
            "",
            *table,
            "",
            f"![detection]({figure.relative_to(relative).as_posix()}) "
            f"![training curves]({(entity_dir / 'curves.png').relative_to(relative).as_posix()})",
        ]
    )
    metrics = {key: round(float(m[key]), 5) for key in METRIC_KEYS}
    metrics.update(
        train_seconds=round(train_seconds, 2), iterations=iters, eval_seconds=m["seconds"], label_rate=label_rate
    )
    log.info("timeseries demo: %s", metrics)
    return DemoResult("timeseries", markdown, metrics)
