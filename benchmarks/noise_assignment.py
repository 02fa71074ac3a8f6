"""Immiscible diffusion: per-batch cost of the noise assignment (batch 256, 3x32x32), and on the 2-D task the
training steps needed to reach a fixed sample distance with and without assignment. Prints what it measures.

    python benchmarks/noise_assignment.py [--steps 3000] [--seeds 2] [--threshold 0.2]
"""

from __future__ import annotations

import argparse
import time

import torch

from diffusekit.core.noise_assignment import assign_noise
from diffusekit.core.toy import ToyDiffusion, sample_mixture, sliced_wasserstein


def assignment_cost(method: str, batch: int = 256, shape=(3, 32, 32), repeats: int = 20) -> tuple[float, float]:
    """Milliseconds per batch, and mean data-noise distance relative to random pairing."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(batch, *shape, generator=g) * 2 - 1  # image-like data in [-1, 1]
    noise = torch.randn(batch, *shape, generator=g)
    assign_noise(x0, noise, method, generator=g)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        assigned = assign_noise(x0, noise, method, generator=g)
    ms = (time.perf_counter() - start) / repeats * 1000
    ratio = (x0 - assigned).flatten(1).norm(dim=1).mean() / (x0 - noise).flatten(1).norm(dim=1).mean()
    return ms, ratio.item()


def steps_to_reach(method: str | None, threshold: float, max_steps: int, seed: int, every: int = 250):
    """Train the toy model with a plain loop; return (first step whose samples are within threshold, curve)."""
    torch.manual_seed(seed)
    model = ToyDiffusion(prediction="v", noise_assignment=method)  # as the toy2d config
    data = sample_mixture(20_000, torch.Generator().manual_seed(seed))
    held_out = sample_mixture(2000, torch.Generator().manual_seed(1001))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    curve, reached = [], None
    for step in range(1, max_steps + 1):
        batch = data[torch.randint(0, len(data), (512,), generator=g)]
        loss = model(batch, mode="loss")["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % every == 0:
            model.eval()
            samples = model.generate(2000, "dpmpp_2m", 20, "logsnr", torch.Generator().manual_seed(0))
            d = sliced_wasserstein(samples, held_out)
            model.train()
            curve.append((step, d))
            if reached is None and d <= threshold:
                reached = step
                break
    return reached, curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="training-step budget per run (default 3000)")
    parser.add_argument("--seeds", type=int, default=2, help="training seeds per method (default 2)")
    parser.add_argument("--threshold", type=float, default=0.2, help="target sliced W2 distance (default 0.2)")
    args = parser.parse_args()

    print("Assignment cost, batch 256 x 3x32x32 (CPU):")
    print(f"{'method':<10}{'ms/batch':>10}{'pair distance vs random':>26}")
    for method in ("hungarian", "knn"):
        ms, ratio = assignment_cost(method)
        print(f"{method:<10}{ms:>10.2f}{ratio:>25.3f}x")

    print(
        f"\n2-D task: training steps until dpmpp_2m@20 samples reach sliced W2 <= {args.threshold} "
        f"(budget {args.steps}, {args.seeds} seeds):"
    )
    print(f"{'method':<10}{'steps (per seed)':>24}{'wall s':>9}  final distances")
    for method in (None, "hungarian", "knn"):
        start = time.perf_counter()
        results = [steps_to_reach(method, args.threshold, args.steps, seed) for seed in range(args.seeds)]
        wall = time.perf_counter() - start
        steps = ", ".join(str(r) if r is not None else f">{args.steps}" for r, _ in results)
        finals = ", ".join(f"{c[-1][1]:.3f}" for _, c in results)
        print(f"{method or 'none':<10}{steps:>24}{wall:>9.1f}  {finals}")


if __name__ == "__main__":
    main()
