"""Distance-to-data and wall time versus steps for ddpm (1000 steps), ddim and dpmpp_2m (5..50 steps) on the 2-D
toy model trained through the engine. Target: dpmpp_2m at 20 steps within 10% of the 1000-step ddpm distance and
at least 40x faster. Prints a table; it is not a test.

    python benchmarks/core_samplers.py [--samples 10000] [--iters N] [--seeds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from statistics import mean

import torch

from diffusekit.core.demo import SAMPLER_GRID, evaluate_samplers, train_toy
from diffusekit.core.toy import sample_mixture, sliced_wasserstein


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10_000, help="points per sampler (default 10000)")
    parser.add_argument("--iters", type=int, default=None, help="training iterations (default: the toy2d config)")
    parser.add_argument("--seeds", type=int, default=3, help="sampling seeds averaged (default 3)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = train_toy(Path(tmp), max_iters=args.iters, progress=False)
    held_out = sample_mixture(args.samples, torch.Generator().manual_seed(1001))
    floor = sliced_wasserstein(held_out, sample_mixture(args.samples, torch.Generator().manual_seed(1002)))
    runs = [evaluate_samplers(model, held_out, SAMPLER_GRID, seed=s) for s in range(args.seeds)]
    key = lambda r: (r.sampler, r.steps, r.spacing)  # noqa: E731
    dist = {key(r): mean(run[i].distance for run in runs) for i, r in enumerate(runs[0])}
    secs = {key(r): mean(run[i].seconds for run in runs) for i, r in enumerate(runs[0])}
    ref_d, ref_s = dist[("ddpm", 1000, "trailing")], secs[("ddpm", 1000, "trailing")]

    print(
        f"2-D mixture, {args.samples} samples x {args.seeds} seeds, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; data-vs-data floor {floor:.4f}"
    )
    print(f"{'sampler':<10}{'steps':>6}  {'spacing':<9}{'sliced W2':>10}{'vs ddpm':>9}{'seconds':>9}{'speed-up':>10}")
    for (sampler, steps, spacing), d in dist.items():
        s = secs[(sampler, steps, spacing)]
        print(f"{sampler:<10}{steps:>6}  {spacing:<9}{d:>10.4f}{d / ref_d - 1:>+9.1%}{s:>9.3f}{ref_s / s:>9.1f}x")
    for spacing in ("trailing", "logsnr"):
        d20, s20 = dist[("dpmpp_2m", 20, spacing)], secs[("dpmpp_2m", 20, spacing)]
        verdict = "met" if d20 <= 1.10 * ref_d else "MISSED"
        print(f"target dpmpp_2m@20 ({spacing}) within 10% of ddpm@1000: {d20:.4f} vs {ref_d:.4f} -> {verdict}")
        print(
            f"target dpmpp_2m@20 ({spacing}) at least 40x faster: {ref_s / s20:.1f}x -> "
            f"{'met' if ref_s / s20 >= 40 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
