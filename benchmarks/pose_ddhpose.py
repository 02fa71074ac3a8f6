"""DDHPose (tiny) versus the same transformer trained as a deterministic regressor with equal CPU time, on synthetic
Human3.6M-layout data: MPJPE / P-MPJPE (mm) versus hypotheses H (1, 5, 20) and DDIM steps K (1, 5, 10) under
J-Best, P-Agg and J-Agg (and P-Best), per-action tables, frames per second.

1. Writes the synthetic Human3.6M layout (``--size medium``: 7 subjects, real camera calibration, noisy "det" 2D).
2. Times a few iterations of each model, then trains ``ddhpose_tiny`` and ``ddhpose_regressor_tiny`` for the same
   wall-clock budget (``--minutes``): max_iters and the cosine schedule are set to what fits the budget, and the
   engine's ``time_limit`` stops training at the budget in any case. ``--parallel`` trains both at once, one
   process each (use it with ``--threads 1`` on a machine with two or more cores: equal CPU time, half the wall
   clock).
3. Evaluates both on S9 / S11 (every frame of ``--eval-frames`` per sequence, all four cameras), flip averaging.

Target (issue 6): DDHPose's P-Agg MPJPE beats the deterministic baseline.

    python benchmarks/pose_ddhpose.py [--minutes 40] [--size medium] [--out work_dirs/bench_ddhpose] [--threads 1]
                                      [--parallel] [--ddhpose-options model.timestep_power=2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from dataclasses import replace
from pathlib import Path

import torch

from diffusekit.core.commands import json_ready
from diffusekit.core.engine import train_for_budget
from diffusekit.pose.lifting import load_sequences
from diffusekit.pose.lifting_eval import evaluate_lifting, format_lifting_report
from diffusekit.pose.synthetic3d import write_synthetic
from diffusekit.pose.workflow import load_pose_config, load_pose_model, with_data_root, without_validation

CONFIGS = ("ddhpose_tiny", "ddhpose_regressor_tiny")


def train(config: str, options: list[str], data: Path, work_dir: Path, minutes: float, threads: int):
    torch.set_num_threads(threads)
    # no validation during training: equal budgets for both models, as measured before it existed
    cfg = with_data_root(without_validation(load_pose_config(config, options, method="ddhpose")), data)
    return train_for_budget(cfg, data, work_dir, minutes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=40.0, help="training budget per model (wall clock)")
    parser.add_argument("--size", choices=("small", "medium"), default="medium")
    parser.add_argument("--eval-frames", type=int, default=81, help="frames per test sequence scored (0 = all)")
    parser.add_argument("--out", default="work_dirs/bench_ddhpose")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one is fastest for the tiny models)")
    parser.add_argument("--parallel", action="store_true", help="train the two models at once, one process each")
    parser.add_argument(
        "--ddhpose-options", nargs="+", default=[], metavar="KEY=VALUE",
        help="config overrides for DDHPose only, e.g. model.timestep_power=2 (an ablation)",
    )  # fmt: skip
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = write_synthetic(out / "data", "h36m", args.size, seed=0)
    options = {"ddhpose_tiny": args.ddhpose_options, "ddhpose_regressor_tiny": []}
    jobs = [(c, options[c], data, out / c, args.minutes, args.threads) for c in CONFIGS]
    if args.parallel:
        with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
            trained = dict(zip(CONFIGS, pool.starmap(train, jobs), strict=True))
    else:
        trained = {job[0]: train(*job) for job in jobs}

    sequences = load_sequences(str(data), "test", "h36m", "det")
    if args.eval_frames:
        sequences = [
            replace(s, keypoints_2d=s.keypoints_2d[: args.eval_frames], pose_3d=s.pose_3d[: args.eval_frames])
            for s in sequences
        ]
    results, reports = {}, []
    for config, (weights, iters, seconds) in trained.items():
        cfg = load_pose_config(config, options[config], method="ddhpose")
        model = load_pose_model(cfg, weights)
        grid = dict(hypotheses=(1, 5, 20), steps=(1, 5, 10)) if not cfg.model.get("deterministic") else {}
        result = evaluate_lifting(model, sequences, "h36m", flip=True, batch_size=32, **grid)
        results[config] = {**result, "iters": iters, "train_s": seconds}
        reports.append(format_lifting_report(result, f"{config}: {iters} iterations in {seconds:.0f} s"))
        print(reports[-1], flush=True)

    baseline = results["ddhpose_regressor_tiny"]["rows"][0]
    ours = [r for r in results["ddhpose_tiny"]["rows"] if r["aggregation"] == "P-Agg"]
    best = min(ours, key=lambda r: r["mpjpe"])
    print(
        f"\nSynthetic Human3.6M ({args.size}), S9 + S11, {sum(len(s.keypoints_2d) for s in sequences)} frames "
        f"({len(sequences)} camera views); {args.minutes:g} min of training each, {args.threads} thread(s)"
        f"{' (trained in parallel)' if args.parallel else ''}; flip on"
    )
    print(f"{'aggregation':<10}{'K':>4}{'H':>4}{'MPJPE':>8}{'P-MPJPE':>9}")
    for r in sorted(results["ddhpose_tiny"]["rows"], key=lambda r: (r["aggregation"], r["steps"], r["hypotheses"])):
        print(f"{r['aggregation']:<10}{r['steps']:>4}{r['hypotheses']:>4}{r['mpjpe']:>8.1f}{r['p_mpjpe']:>9.1f}")
    print(f"{'regressor':<10}{'-':>4}{'-':>4}{baseline['mpjpe']:>8.1f}{baseline['p_mpjpe']:>9.1f}")
    verdict = "beats" if best["mpjpe"] < baseline["mpjpe"] else "does NOT beat"
    print(f"DDHPose P-Agg (best: K={best['steps']}, H={best['hypotheses']}) MPJPE {best['mpjpe']:.1f} mm {verdict} "
          f"the deterministic regressor's {baseline['mpjpe']:.1f} mm")  # fmt: skip
    flat = {
        c: {**r, "per_action": {f"K{k}_H{h}_{a}": t for (k, h, a), t in r["per_action"].items()}}
        for c, r in results.items()
    }
    (out / "results.json").write_text(json.dumps(json_ready(flat), indent=1))
    (out / "report.md").write_text("\n\n".join(reports) + "\n")
    print(f"results: {out / 'results.json'}, {out / 'report.md'}")


if __name__ == "__main__":
    main()
