"""DIVD-tiny against its ablations, the same network as a regressor and the blurry input, on synthetic GoPro.

One run, equal wall-clock training budget per model (``--minutes``), every model evaluated on the same test frames
at full resolution with BasicSR's PSNR/SSIM (RGB, crop 0; frame and sequence means), tOF, frames per second and
network evaluations per frame. Then DIVD against sampling steps (1 to 50) and samples, tiled against untiled
restoration, and the peak memory of restoring a 1280 x 720, 7-frame clip (a fresh process, its maximum RSS).

Models: ``divd`` (divd_tiny: predict-and-refine, WTSA + MRPE), ``no_wtsa`` (attention within each frame only),
``no_mrpe`` (no relative-position bias), ``regressor`` (the same video U-Net, deterministic, L1). BasicSR's EDVR and
BasicVSR are tried too: ``basicsr`` imports torchvision, and where that import fails the row says why.

    python benchmarks/video_divd.py [--minutes 6] [--size medium] [--eval-frames 20] [--out work_dirs/bench_video]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffusekit.core.engine import train_for_budget
from diffusekit.video.workflow import evaluate_model, load_model, load_video_config, settings_from

MODELS = {
    "divd": ("divd_tiny", []),
    "no_wtsa": ("divd_tiny", ["model.denoiser.temporal=False", "model.predictor.temporal=False"]),
    "no_mrpe": ("divd_tiny", ["model.denoiser.relative_position=False", "model.predictor.relative_position=False"]),
    "regressor": ("regressor_tiny", []),
}
NO_VALIDATION = ["train_cfg.val_interval=1000000"]


def basicsr_status() -> str:
    """Whether BasicSR's video architectures import here (they need torchvision)."""
    try:
        from basicsr.archs.basicvsr_arch import BasicVSR  # noqa: F401
        from basicsr.archs.edvr_arch import EDVR  # noqa: F401
    except Exception as error:  # noqa: BLE001  any import failure is reported, not raised
        return f"unavailable ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    return "available"


def memory_probe(config: str, weights: str, steps: int, tile: int) -> None:
    """Restore one synthetic 1280 x 720, 7-frame clip; print seconds and the process's peak RSS (MiB) as JSON."""
    from diffusekit.video.inference import TileSettings, restore_sequence
    from diffusekit.video.synthetic import _photo, available_photos, render_sequence

    torch.set_num_threads(2)
    cfg = load_video_config(config)
    model = load_model(cfg, weights, "cpu")
    frames = render_sequence(_photo(available_photos()[0]), 7, (1280, 720), np.random.default_rng(0)).blur
    start = time.perf_counter()
    out = list(restore_sequence(model, frames, steps=steps, tiles=TileSettings(tile=tile, overlap=32)))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": len(out), "seconds": seconds, "peak_rss_mib": peak, "tile": tile}))


def row(name: str, s: dict) -> str:
    return (
        f"| {name} | {s['psnr_frame_mean']:.2f} | {s['psnr_sequence_mean']:.2f} | {s['ssim_frame_mean']:.4f} | "
        f"{s['ssim_sequence_mean']:.4f} | {s.get('tof', float('nan')):.3f} | {s['frames_per_second']:.2f} | "
        f"{s['evaluations_per_frame']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per model (wall clock)")
    parser.add_argument("--size", choices=("small", "medium"), default="medium")
    parser.add_argument("--eval-frames", type=int, default=20, help="frames per test sequence scored (0 = all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="work_dirs/bench_video")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset")
    parser.add_argument("--probe", nargs=4, metavar=("CONFIG", "WEIGHTS", "STEPS", "TILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        memory_probe(args.probe[0], args.probe[1], int(args.probe[2]), int(args.probe[3]))
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    from diffusekit.video.synthetic import write_gopro

    data = write_gopro(out / "data", args.size, seed=0, overwrite=True)
    frames = args.eval_frames or None
    results, trained = {}, {}
    for name in args.models.split(","):
        config, options = MODELS[name]
        cfg = load_video_config(config, options + NO_VALIDATION)
        weights, iters, seconds = train_for_budget(cfg, data, out / name, args.minutes, warmup=50)
        trained[name] = (config, options, weights, iters)
        model = load_model(cfg, weights, "cpu")
        settings = settings_from(cfg, steps=10, samples=1)
        summary, _, _ = evaluate_model(cfg, model, data, settings, max_frames=frames)
        summary.update(iterations=iters, train_seconds=seconds)
        results[name] = summary
        print(row(f"{name} ({iters} it)", summary), file=sys.stderr, flush=True)
    first = next(iter(results.values()))
    print(f"blurry input: PSNR {first['input_psnr_frame_mean']:.2f} dB", file=sys.stderr, flush=True)
    blurry = {
        "psnr_frame_mean": first["input_psnr_frame_mean"],
        "psnr_sequence_mean": first["input_psnr_sequence_mean"],
        "ssim_frame_mean": first["input_ssim_frame_mean"],
        "ssim_sequence_mean": first["input_ssim_sequence_mean"],
        "frames_per_second": float("inf"),
        "evaluations_per_frame": 0.0,
    }
    lines = [
        f"synthetic GoPro ({args.size}), {first['frames']} test frames in {first['sequences']} sequences, "
        f"{args.minutes:g} min of training per model, {args.threads} threads; 10 DDIM steps, 1 sample",
        "",
        "| model | PSNR frame | PSNR seq | SSIM frame | SSIM seq | tOF | frames/s | NFE/frame |",
        "|---|---|---|---|---|---|---|---|",
        row("blurry input", blurry),
        *[row(f"{name} ({results[name]['iterations']} it)", results[name]) for name in results],
        f"| BasicSR EDVR / BasicVSR | {basicsr_status()} | | | | | | |",
    ]
    sweep = {}
    if "divd" in trained:
        config, options, weights, _ = trained["divd"]
        cfg = load_video_config(config, options)
        model = load_model(cfg, weights, "cpu")
        lines += ["", "DIVD against sampling steps (DDIM, 1 sample) and samples (10 steps):", ""]
        lines += ["| steps | samples | PSNR frame | SSIM frame | frames/s | NFE/frame |", "|---|---|---|---|---|---|"]
        for steps, samples in [(1, 1), (2, 1), (5, 1), (10, 1), (20, 1), (50, 1), (10, 2), (10, 4)]:
            s, _, _ = evaluate_model(
                cfg, model, data, settings_from(cfg, steps=steps, samples=samples), max_frames=frames
            )
            sweep[f"{steps}x{samples}"] = s
            lines.append(
                f"| {steps} | {samples} | {s['psnr_frame_mean']:.3f} | {s['ssim_frame_mean']:.4f} | "
                f"{s['frames_per_second']:.2f} | {s['evaluations_per_frame']:.1f} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)  # results as they come: the sweep takes a while
        untiled = evaluate_model(cfg, model, data, settings_from(cfg, steps=10, tile=None), max_frames=frames)[0]
        tiled = evaluate_model(cfg, model, data, settings_from(cfg, steps=10, tile=32, overlap=16), max_frames=frames)[
            0
        ]
        lines += ["", f"tiled (32 px, overlap 16) vs untiled PSNR: {tiled['psnr_frame_mean']:.3f} vs "
                  f"{untiled['psnr_frame_mean']:.3f} dB"]  # fmt: skip
        for tile in (128, 256):
            probe = subprocess.run(
                [sys.executable, __file__, "--probe", config, str(weights), "10", str(tile)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            result = json.loads(probe.stdout.strip().splitlines()[-1])
            seconds, peak = result["seconds"], result["peak_rss_mib"]
            lines.append(f"1280 x 720 x 7 frames, tile {tile}: {seconds:.0f} s, peak RSS {peak:.0f} MiB")
    table = "\n".join(lines)
    print(table)
    (out / "results.md").write_text(table + "\n")
    (out / "results.json").write_text(json.dumps({"models": results, "sweep": sweep}, indent=1, default=str))


if __name__ == "__main__":
    main()
