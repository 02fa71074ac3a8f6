"""DiffPose (tiny) versus a plain heatmap-regression baseline with the same backbone and CPU time, on synthetic
PoseTrack18 videos: PoseTrack AP (poseval's rules) versus DDIM steps (1, 2, 5, 10) and samples (1, 5), and frames
per second.

1. Writes a synthetic PoseTrack18-layout dataset (``--size medium``: 40 train videos labelled on every frame, 8 val
   videos labelled every 4th frame).
2. Times a few iterations of each model, then trains ``diffpose_tiny`` and ``heatmap_baseline_tiny`` for the same
   wall-clock budget (``--minutes``): max_iters and the cosine schedule are set to what fits the budget, and the
   engine's ``time_limit`` stops training at the budget in any case.
3. Evaluates both on the val split with ground-truth boxes and flip averaging.

Target (issue 5): DiffPose beats the baseline's Total AP.

    python benchmarks/pose_diffpose.py [--minutes 10] [--size medium] [--out work_dirs/bench_pose] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffusekit.core.commands import json_ready
from diffusekit.core.engine import train_for_budget
from diffusekit.pose.inference import eval_crops, evaluate_dataset, inference_settings
from diffusekit.pose.synthetic import write_posetrack
from diffusekit.pose.workflow import load_pose_config, load_pose_model, with_data_root, without_validation

CONFIGS = ("diffpose_tiny", "heatmap_baseline_tiny")
GRID = [(steps, samples) for samples in (1, 5) for steps in (1, 2, 5, 10)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model (wall clock)")
    parser.add_argument("--size", choices=("small", "medium"), default="medium")
    parser.add_argument("--out", default="work_dirs/bench_pose")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one is fastest for the tiny models)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = write_posetrack(out / "data", args.size, seed=0)
    # no validation during training: equal budgets for both models, as measured before it existed
    configs = {c: with_data_root(without_validation(load_pose_config(c)), data) for c in CONFIGS}
    trained = {c: train_for_budget(configs[c], data, out / c, args.minutes) for c in CONFIGS}

    rows = []
    for config, (weights, iters, seconds) in trained.items():
        cfg = load_pose_config(config)
        model = load_pose_model(cfg, weights)
        crops = eval_crops(cfg, data)
        grid = GRID if config.startswith("diffpose") else [(0, 1)]
        for steps, samples in grid:
            settings = inference_settings(cfg, steps, samples, flip=True)
            result = evaluate_dataset(model, crops, settings, progress=False)
            rows.append({**result, "config": config, "iters": iters, "train_s": seconds, "steps": steps})
            ap = result["ap"]
            print(f"{config} steps {steps} samples {samples}: Total {ap['Total']:.1f}  "
                  f"({result['frames_per_second']:.2f} frames/s)", flush=True)  # fmt: skip

    people = rows[0]["people"]
    print(f"\nSynthetic PoseTrack18 ({args.size}), val split with ground-truth boxes: {rows[0]['frames']} labelled "
          f"frames, {people} people; {args.minutes:g} min of training each, {args.threads} thread(s); "
          "flip on")  # fmt: skip
    columns = list(rows[0]["ap"])
    head = f"{'model':<24}{'iters':>6}{'steps':>6}{'N':>3}" + "".join(f"{c:>7}" for c in columns) + f"{'fps':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        steps = str(r["steps"]) if r["config"].startswith("diffpose") else "-"
        print(f"{r['config']:<24}{r['iters']:>6}{steps:>6}{r['samples']:>3}"
              + "".join(f"{r['ap'][c]:>7.1f}" for c in columns) + f"{r['frames_per_second']:>7.2f}")  # fmt: skip
    best = max((r for r in rows if r["config"].startswith("diffpose")), key=lambda r: r["ap"]["Total"])
    baseline = next(r for r in rows if not r["config"].startswith("diffpose"))
    verdict = "beats" if best["ap"]["Total"] > baseline["ap"]["Total"] else "does NOT beat"
    print(f"DiffPose (best: {best['steps']} steps x {best['samples']}) Total {best['ap']['Total']:.1f} {verdict} the "
          f"baseline's {baseline['ap']['Total']:.1f}")  # fmt: skip
    (out / "results.json").write_text(json.dumps(json_ready(rows), indent=1))
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
