"""No fusion, late fusion, the attention-fusion detector and CoDiff on synthetic OPV2V, in one run.

Training at equal CPU time: the single-agent PointPillars (no / late fusion) and the attention-fusion detector get
``--minutes`` each; CoDiff is that attention-fusion detector plus its diffusion stage (``--diffusion-minutes``, the
detector frozen) and its fine-tuning stage (``--finetune-minutes``, everything trains), and a control, "attention
fusion, longer", trains the detector alone for CoDiff's total time. Every model is evaluated on the same test frames
at pose noise 0 / 0.2 / 0.4 / 0.6 (Gaussian std in m and degrees on x, y and yaw of every agent, CoAlign's sweep;
seed 303) and delays of 0 and 2 frames (the ground truth from the current frame): BEV AP@0.5 / AP@0.7 (OpenCOOD's
rules) in both detection sorts, frames per second and the process's peak resident memory while detecting. CoDiff's
refinement cost is its time per frame over the detector's, at 1, 2, 4 and 8 sampling steps; the same ratio in
floating-point operations is counted for the paper-scale OPV2V config.

OpenCOOD itself (the peer) needs spconv and compiled CUDA ops and does not install here; its fusion baselines are
reproduced in our code (docs/perception3d.md). Results print as they arrive and are written to OUT/results.json.

    python benchmarks/perception3d_codiff.py [--minutes 10] [--diffusion-minutes 4] [--finetune-minutes 6]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from diffusekit.core.engine import train_for_budget
from diffusekit.perception3d.workflow import evaluate_model, load_model, load_perception_config

NOISE = [0.0, 0.2, 0.4, 0.6]
DELAYS = [0, 2]
NO_VALIDATION = ["train_cfg.val_interval=1000000"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="training minutes per detector")
    parser.add_argument("--diffusion-minutes", type=float, default=4.0, help="CoDiff's diffusion stage")
    parser.add_argument("--finetune-minutes", type=float, default=6.0, help="CoDiff's fine-tuning stage")
    parser.add_argument("--skip-flops", action="store_true", help="leave out the paper-scale FLOP count")
    parser.add_argument(
        "--eval-only", action="store_true", help="evaluate the weights an earlier run left in OUT (no training)"
    )
    parser.add_argument("--size", choices=("small", "medium"), default="medium")
    parser.add_argument("--max-frames", type=int, help="evaluate the first N frames of each test scenario")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="work_dirs/bench_perception3d")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from diffusekit.perception3d.synthetic import write_dataset
    from diffusekit.perception3d.visualize import plot_ap_vs_noise

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / f"opv2v_{args.size}"
    if not (data / "test").is_dir():
        write_dataset(data, args.size, seed=0, overwrite=True)
    previous = json.loads((out / "results.json").read_text()) if args.eval_only else {}
    results = {"settings": vars(args), "training": previous.get("training", {}), "methods": {}}
    if not args.skip_flops:
        results["paper_scale_flops"] = previous.get("paper_scale_flops") or paper_scale_flops()
        log(f"paper scale (codiff_opv2v): {results['paper_scale_flops']}")
    extra_minutes = args.diffusion_minutes + args.finetune_minutes
    # (key, config, minutes, options); CoDiff's stages start from the previous stage's weights
    plan = [
        ("single", "pointpillar_tiny", args.minutes, []),
        ("attention", "attfuse_tiny", args.minutes, []),
        ("attention_longer", "attfuse_tiny", args.minutes + extra_minutes, []),
        ("codiff_stage2", "codiff_tiny", args.diffusion_minutes, ["model.stage=diffusion"]),
        ("codiff", "codiff_tiny", args.finetune_minutes, ["model.stage=finetune", "optim_wrapper.optimizer.lr=5e-4"]),
    ]
    start_from = {"codiff_stage2": "attention", "codiff": "codiff_stage2"}
    trained = {}
    for key, config, minutes, extra in plan:
        if key in start_from:
            extra = extra + [f"load_from={out / f'work_{start_from[key]}' / 'final_weights.pth'}"]
        cfg = load_perception_config(config, NO_VALIDATION + extra)
        if args.eval_only:
            trained[key] = (cfg, out / f"work_{key}" / "final_weights.pth")
            continue
        weights, iters, seconds = train_for_budget(cfg, data, out / f"work_{key}", minutes)
        trained[key] = (cfg, weights)
        results["training"][key] = {"iterations": iters, "seconds": round(seconds, 1)}
        log(f"trained {key}: {iters} iterations in {seconds:.0f} s")

    methods = {
        "no fusion": ("single", "none"),
        "late fusion": ("single", "late"),
        "attention fusion": ("attention", None),
        "attention fusion, longer": ("attention_longer", None),
        "CoDiff, diffusion stage only": ("codiff_stage2", None),
        "CoDiff": ("codiff", None),
    }
    for method, (key, fusion) in methods.items():
        cfg, weights = trained[key][:2]
        model = load_model(cfg, weights, "cpu")
        records, _ = evaluate_model(cfg, model, data, NOISE, DELAYS, fusion, max_frames=args.max_frames)
        results["methods"][method] = records
        for r in records:
            log(
                f"{method:26s} noise {r['noise']:.1f} delay {r['delay']}: AP@0.5 {r['ap_50']:.3f} / "
                f"{r['ap_50_global']:.3f} (frame / global sort), AP@0.7 {r['ap_70']:.3f} / {r['ap_70_global']:.3f}, "
                f"{r['frames_per_second']:.2f} frames/s, peak {r['peak_memory_mib']:.0f} MiB"
            )
        (out / "results.json").write_text(json.dumps(results, indent=1))
    detector_time = sum(r["seconds_per_frame"] for r in results["methods"]["attention fusion"])
    results["refinement_cost"] = {}
    cfg, weights = trained["codiff"][:2]
    model = load_model(cfg, weights, "cpu")
    for steps in (1, 2, 4, 8):
        model.steps = steps
        records, _ = evaluate_model(cfg, model, data, [0.0, 0.4], [0], max_frames=args.max_frames)
        cost = sum(r["seconds_per_frame"] for r in records) / (detector_time * len(records) / len(NOISE) / 2) - 1
        results["refinement_cost"][steps] = {
            "extra_time": cost,
            "ap_50": [r["ap_50"] for r in records],
            "ap_70": [r["ap_70"] for r in records],
        }
        log(
            f"CoDiff {steps} steps: +{100 * cost:.0f}% time per frame; AP@0.5 {records[0]['ap_50']:.3f} (noise 0), "
            f"{records[1]['ap_50']:.3f} (noise 0.4)"
        )
    (out / "results.json").write_text(json.dumps(results, indent=1))
    print(table(results))
    for delay in DELAYS:
        for metric in ("ap_50", "ap_70"):
            plot_ap_vs_noise(
                out / f"ap_vs_noise_{metric}_delay{delay}.png",
                {
                    m: [(r["noise"], r[metric]) for r in rows if r["delay"] == delay]
                    for m, rows in results["methods"].items()
                },
                f"AP@0.{metric[-2]}",
                title=f"synthetic OPV2V, delay {delay} frame(s), frame sort",
            )
    print(f"figures and results.json: {out}")


def table(results: dict) -> str:
    lines = [
        "| method | delay | " + " | ".join(f"AP@0.5 / 0.7, noise {n:g}" for n in NOISE) + " | frames/s |",
        "|---|---|" + "---|" * (len(NOISE) + 1),
    ]
    for sort in ("frame", "global"):
        suffix = "" if sort == "frame" else "_global"
        lines.append(f"| **{sort} sort** |" + " |" * (len(NOISE) + 2))
        for method, records in results["methods"].items():
            for delay in DELAYS:
                rows = [r for r in records if r["delay"] == delay]
                cells = " | ".join(f"{r['ap_50' + suffix]:.3f} / {r['ap_70' + suffix]:.3f}" for r in rows)
                fps = sum(r["frames_per_second"] for r in rows) / len(rows)
                lines.append(f"| {method} | {delay} | {cells} | {fps:.2f} |")
    lines.append("\n| CoDiff steps | extra time per frame over the detector | AP@0.5 noise 0 / 0.4 |\n|---|---|---|")
    for steps, row in results["refinement_cost"].items():
        lines.append(f"| {steps} | +{100 * row['extra_time']:.0f}% | {row['ap_50'][0]:.3f} / {row['ap_50'][1]:.3f} |")
    flops = results.get("paper_scale_flops")
    if flops:
        lines.append(
            f"\npaper scale (codiff_opv2v, 3 agents): detector {flops['detector_gflops']:.1f} GFLOP per frame, one "
            f"denoiser evaluation {flops['denoiser_gflops']:.1f} GFLOP; 8 steps = "
            f"{100 * 8 * flops['denoiser_gflops'] / flops['detector_gflops']:.0f}% of the detector"
        )
    return "\n".join(lines)


def paper_scale_flops(agents: int = 3, points: int = 60_000) -> dict[str, float]:
    """FLOPs of the paper-scale OPV2V detector (3 agents, uniform random points filling the range) and of one
    evaluation of the paper-scale denoiser at the latent's size (``core.flops.count_flops``)."""
    import numpy as np

    from diffusekit.core.flops import count_flops
    from diffusekit.perception3d.datasets import cooperative_collate, model_inputs
    from diffusekit.perception3d.workflow import build_model

    cfg = load_perception_config("codiff_opv2v")
    model = build_model(cfg).eval()
    rng = np.random.default_rng(0)
    lo, hi = np.array(cfg.model.point_cloud_range[:3]), np.array(cfg.model.point_cloud_range[3:])
    sample = dict(
        points=[np.c_[rng.uniform(lo, hi, (points, 3)), rng.uniform(0, 1, points)].astype(np.float32)] * agents,
        poses=np.zeros((agents, 6)),
        poses_clean=np.zeros((agents, 6)),
        gt_boxes=np.zeros((0, 7), np.float32),
    )
    inputs = cooperative_collate([{**model_inputs(sample, model.grid, 32, 70_000), "meta": {}}])["inputs"]
    with torch.no_grad():
        detector = count_flops(lambda: model.head(model.fused_features(inputs)[0]))
        fused, pillars = model.fused_features(inputs)
        latent = model.encode(fused)
        cond = model.condition(latent, pillars, inputs)
        t = torch.tensor([100])
        denoiser = count_flops(lambda: model.denoiser(latent, t, cond=cond))
    return {"detector_gflops": detector / 1e9, "denoiser_gflops": denoiser / 1e9, "latent_shape": list(latent.shape)}


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    log(f"benchmark: {time.perf_counter() - start:.0f} s")
