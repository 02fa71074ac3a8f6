"""Echo-DND (tiny) versus a MONAI U-Net on synthetic CAMUS, with equal CPU training time, and Dice / HD95 versus
sampling steps and ensemble size, with seconds per image.

1. Writes a synthetic CAMUS-layout dataset (NIfTI release layout; ``--size medium``: 60 patients, ED/ES of 2CH and
   4CH, plus the labelled half-sequence frames for training).
2. Trains ``echo_dnd_tiny`` and ``unet_baseline_tiny`` for the same wall-clock budget each (``--minutes``, the
   engine's ``time_limit``).
3. Evaluates both on the test split at native resolution (Echo-DND with 20 DDIM steps x 5 samples, the config's
   default), then Echo-DND on ``--subset`` test frames at 1000 (ancestral DDPM, the paper's sampler), 100, 20 and
   10 steps with 1 and 5 samples (1000 x 5 only with ``--full``: about 5x the 1000 x 1 time).

Targets (issue 4): Dice >= 0.90 within 15 minutes of CPU training and not worse than the baseline by more than 1
point; 20 steps within 1 Dice point of 1000 steps and at least 40x faster.

    python benchmarks/medical_echo.py [--minutes 15] [--out work_dirs/bench_medical] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from diffusekit.core.commands import json_ready
from diffusekit.medical.evaluation import (
    build_model,
    eval_frames,
    evaluate_model,
    inference_settings,
    load_medical_config,
    load_model,
    train_model,
)
from diffusekit.medical.synthetic import write_camus
from diffusekit.medical.visualize import plot_segmentations, plot_steps_tradeoff

TRAIN_PHASES = "train_dataloader.dataset.phases=[ED,ES,half_sequence]"
# equal training time for both models: no validation inside the budget (the U-Net would validate 100+ times)
NO_VALIDATION = f"train_cfg.val_interval={10**9}"


def train_for(config: str, data: Path, work_dir: Path, minutes: float) -> tuple[Path, int, float]:
    """Train for ``minutes`` of wall-clock time (the engine's ``time_limit``); returns weights, iterations, seconds."""
    cfg = load_medical_config(
        config, [f"train_cfg.max_iters={10**6}", f"time_limit={minutes * 60}", TRAIN_PHASES, NO_VALIDATION]
    )
    start = time.perf_counter()
    weights = train_model(cfg, data, work_dir / config, seed=0)
    seconds = time.perf_counter() - start
    iters = int(torch.load(weights, weights_only=True)["meta"]["iter"])
    print(f"{config}: {iters} iterations in {seconds:.0f} s", flush=True)
    return weights, iters, seconds


def evaluate(config: str, weights: Path, data: Path, steps: int | None, samples: int, frames=None, sampler=None):
    cfg = load_medical_config(config)
    settings = inference_settings(cfg, steps, samples, sampler)
    return evaluate_model(cfg, load_model(cfg, weights), data, settings, frames=frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget per model (wall clock)")
    parser.add_argument("--size", choices=("small", "medium"), default="medium", help="synthetic dataset size")
    parser.add_argument("--subset", type=int, default=8, help="test frames for the steps x samples sweep")
    parser.add_argument("--full", action="store_true", help="also 1000 steps x 5 samples")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="work_dirs/bench_medical")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = write_camus(out / "camus", args.size, seed=0)
    cfg = load_medical_config("echo_dnd_tiny")
    print(f"synthetic CAMUS ({args.size}) at {data}; {sum(p.numel() for p in build_model(cfg).parameters())} params")

    runs = {}
    for config in ("echo_dnd_tiny", "unet_baseline_tiny"):
        runs[config] = train_for(config, data, out / "work", args.minutes)
    main_rows = {}
    for config, (weights, iters, seconds) in runs.items():
        result, predictions = evaluate(config, weights, data, 20, 5)
        main_rows[config] = dict(iterations=iters, train_seconds=seconds, **result)
        plot_segmentations(out / f"{config}.png", predictions, title=config)

    frames = eval_frames(cfg, data)[: args.subset]
    sweep = []
    grid = [(1000, 1), (100, 1), (100, 5), (20, 1), (20, 5), (10, 1), (10, 5)] + ([(1000, 5)] if args.full else [])
    for steps, samples in grid:
        sampler = "ddpm" if steps == 1000 else None  # the paper's full ancestral chain
        result, _ = evaluate("echo_dnd_tiny", runs["echo_dnd_tiny"][0], data, steps, samples, frames, sampler)
        row = {**result, "steps": steps, "samples": samples, "sampler": sampler or "ddim"}
        sweep.append(row)
        print(
            f"steps {steps:>4} x {samples} samples: Dice {row['overall']['dice']:.4f}, "
            f"HD95 {row['overall']['hd95']:.2f} mm, {row['seconds_per_image']:.2f} s/image",
            flush=True,
        )

    print(f"\nEqual training time ({args.minutes:g} min each), test split, Echo-DND at 20 DDIM steps x 5 samples:")
    print(f"{'method':<22}{'iters':>7}{'train s':>9}{'Dice':>8}{'IoU':>8}{'HD95 mm':>9}{'MSD mm':>8}{'pooled':>8}")
    for config, row in main_rows.items():
        o = row["overall"]
        print(
            f"{config:<22}{row['iterations']:>7}{row['train_seconds']:>9.0f}{o['dice']:>8.4f}{o['iou']:>8.4f}"
            f"{o['hd95']:>9.2f}{o['msd']:>8.2f}{row['pooled_dice']:>8.4f}"
        )
    print(f"\nEcho-DND on {len(frames)} test frames, steps x samples:")
    print(f"{'steps':>6}{'samples':>8}{'sampler':>9}{'Dice':>8}{'HD95 mm':>9}{'s/image':>9}{'evals':>7}")
    for row in sweep:
        o = row["overall"]
        print(
            f"{row['steps']:>6}{row['samples']:>8}{row['sampler']:>9}{o['dice']:>8.4f}{o['hd95']:>9.2f}"
            f"{row['seconds_per_image']:>9.2f}{row['evaluations']:>7}"
        )
    full = next(r for r in sweep if r["steps"] == 1000 and r["samples"] == 1)
    fast = next(r for r in sweep if r["steps"] == 20 and r["samples"] == 1)
    print(
        f"20 vs 1000 steps (1 sample): Dice {fast['overall']['dice'] - full['overall']['dice']:+.4f}, "
        f"{full['seconds_per_image'] / fast['seconds_per_image']:.1f}x faster"
    )
    flat = [dict(steps=r["steps"], samples=r["samples"], dice=r["overall"]["dice"], **{
        "seconds_per_image": r["seconds_per_image"]}) for r in sweep]  # fmt: skip
    plot_steps_tradeoff(out / "steps_tradeoff.png", flat, title="Echo-DND tiny, synthetic CAMUS")
    for row in [*main_rows.values(), *sweep]:
        row.pop("records", None)
    (out / "results.json").write_text(json.dumps(json_ready({"main": main_rows, "sweep": sweep}), indent=1))
    print(f"figures and results.json: {out}")


if __name__ == "__main__":
    main()
