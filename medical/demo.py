"""``diffusekit medical demo`` (and the medical section of ``diffusekit demo``): synthetic CAMUS, a short training of
the tiny Echo-DND at 32 x 32 with validation, evaluation on the test split against a trivial baseline, figures.

Sized to take about half a minute on two idle CPU cores: the network grid is 32 x 32 instead of the tiny config's
64, 100 iterations at batch 4 with lr 3e-3 and an EMA of horizon ~10 iterations, validation every 25 iterations (no
best checkpoint), 5 DDIM steps x 2 samples at evaluation. The
baseline is the training split's mean mask (thresholded at 0.5, resized to each test frame): the Dice a model gets
from the typical LV position and shape alone; an empty mask scores 0.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from diffusekit.core.commands import DemoResult
from diffusekit.medical.evaluation import (
    evaluate_model,
    inference_settings,
    load_medical_config,
    load_model,
    train_model,
)

__all__ = ["run_demo"]

logger = logging.getLogger(__name__)
SIZE = 32


def demo_overrides(iters: int) -> list[str]:
    """``--cfg-options`` that turn ``echo_dnd_tiny`` into the demo's model and schedule."""
    return [
        f"size={SIZE}",
        f"train_dataloader.dataset.size={SIZE}",
        f"val_dataloader.dataset.size={SIZE}",
        f"train_cfg.max_iters={iters}",
        "train_dataloader.batch_size=4",  # as good as 8 after 100 iterations here, at 3/4 of the time
        f"train_cfg.val_interval={max(1, iters // 4)}",
        f"checkpoint_interval={iters}",
        "optim_wrapper.optimizer.lr=3e-3",
        "ema.decay=0.9",
        "log_interval=25",
    ]


def mean_shape_dice(cfg, data: Path, frames) -> float:
    """Dice of the training split's mean mask (thresholded at 0.5, resized to each frame) on ``frames``."""
    from diffusekit.medical.datasets import EchoSegmentation
    from diffusekit.medical.metrics import segmentation_metrics
    from diffusekit.medical.transforms import to_native

    spec = dict(cfg.train_dataloader.dataset)
    spec.pop("type")
    spec["data_root"] = str(data)
    train = EchoSegmentation(**spec)
    mean = torch.stack([train[i]["mask"] for i in range(len(train))]).mean(0)[0]
    scores = [segmentation_metrics(to_native(mean, f.image.shape) >= 0.5, f.mask, f.spacing)["dice"] for f in frames]
    return float(np.mean(scores))


def run_demo(out_dir: Path, quick: bool = False) -> DemoResult:
    """Write the data, train, evaluate; returns the report section (markdown with figures, flat metrics)."""
    from diffusekit.medical.inference import format_report
    from diffusekit.medical.synthetic import write_camus
    from diffusekit.medical.visualize import plot_segmentations

    out_dir = Path(out_dir)
    start = time.perf_counter()
    data = write_camus(out_dir / "camus", "small", seed=0)
    iters = 20 if quick else 100
    cfg = load_medical_config("echo_dnd_tiny", demo_overrides(iters))
    cfg.best_metric = None  # no best-checkpoint writes in so short a run (the curves still show validation)
    settings = inference_settings(cfg, steps=5, samples=1 if quick else 2)
    threads = torch.get_num_threads()
    work_dir = out_dir / "work_dir"
    shutil.rmtree(work_dir, ignore_errors=True)  # the demo's own earlier run: a rerun into the same --out starts anew
    try:
        train_start = time.perf_counter()
        weights = train_model(cfg, data, work_dir, seed=0)
        train_seconds = time.perf_counter() - train_start
        result, predictions = evaluate_model(cfg, load_model(cfg, weights, "cpu"), data, settings)
    finally:
        torch.set_num_threads(threads)  # the engine may change the thread count
    baseline = mean_shape_dice(cfg, data, [p.frame for p in predictions])
    figure = plot_segmentations(out_dir / "segmentations.png", predictions, title="echo_dnd_tiny, synthetic CAMUS")
    seconds = time.perf_counter() - start
    overall = result["overall"]
    logger.info("medical demo: Dice %.3f (mean-shape baseline %.3f) in %.0f s", overall["dice"], baseline, seconds)
    title = (
        f"Echo-DND tiny at {SIZE} x {SIZE}, {iters} iterations ({train_seconds:.0f} s), "
        f"{settings.steps} DDIM steps x {settings.samples} samples"
    )
    rel = out_dir.name
    markdown = "\n".join(
        [
            "Echo-DND (config `echo_dnd_tiny` on a 32 x 32 grid) trained on synthetic CAMUS-layout data (NIfTI release "
            "layout, anisotropic spacing from the headers), validated on the validation split during training "
            "(curves below) and evaluated on the test split at native resolution; distances in mm. A demo-length "
            "training: see docs/medical.md for the benchmark.",
            "",
            format_report(result, title),
            "",
            f"Trivial baselines on the same frames: an empty mask scores Dice 0; the training split's mean mask "
            f"scores Dice {baseline:.3f}. Echo-DND: {overall['dice']:.3f}.",
            "",
            f"![segmentations]({rel}/{figure.name})",
            "",
            f"![training curves]({rel}/work_dir/curves.png)",
        ]
    )
    metrics = {k: round(float(overall[k]), 5) for k in ("dice", "iou", "hd95", "msd")}
    metrics.update(
        pooled_dice=round(result["pooled_dice"], 5),
        mean_shape_dice=round(baseline, 5),
        train_seconds=round(train_seconds, 2),
        seconds=round(seconds, 2),
        iterations=iters,
        seconds_per_image=round(result["seconds_per_image"], 3),
    )
    return DemoResult("medical", markdown, metrics)
