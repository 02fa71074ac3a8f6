"""Speed of the ImDiffusion denoiser (`diffusekit.timeseries.models.ImDiffusionNet`) on CPU.

Paper configuration (17000cyh/IMDiffusion ``config/base.yaml`` / ``exe_machine.py``): SMD K=38 features, windows of
L=100, batch 12, 64 channels, 4 residual layers, 8 heads, T=50. Prints the forward+backward training-step time,
training and imputation (forward-only 50-step chain) windows/s, the achieved GFLOP/s counted by
``torch.utils.flop_counter.FlopCounterMode`` (plus the CPU flash-attention kernels, which its table lacks), the
fp32 matmul peak measured with a 2048x2048 matmul at the same thread
count, and the ratio. Timings are the minimum over repeats (the machine may be shared).

    python benchmarks/timeseries_model_speed.py [--threads 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from diffusekit.core.flops import count_flops
from diffusekit.timeseries.models import ImDiffusionNet


def _min_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of an n x n matmul (2 n^3 flops)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / _min_time(lambda: a @ b, repeats) / 1e9


def attention_gflops(shape: tuple[int, int, int, int], repeats: int) -> float:
    """Forward GFLOP/s of ``scaled_dot_product_attention`` on q, k, v of ``shape`` (N, heads, S, d)."""
    q, k, v = (torch.randn(shape) for _ in range(3))
    n, h, s, d = shape
    return 4 * n * h * s * s * d / _min_time(lambda: F.scaled_dot_product_attention(q, k, v), repeats) / 1e9


def report(batch: int = 12, features: int = 38, length: int = 100, chain: int = 50, repeats: int = 5) -> None:
    """Print the paper configuration's training/imputation throughput and achieved GFLOP/s at the current threads."""
    torch.manual_seed(0)
    b, k = batch, features
    threads = torch.get_num_threads()
    omp = os.environ.get("OMP_NUM_THREADS")
    print(f"torch {torch.__version__}, torch threads {threads}, OMP_NUM_THREADS={omp}")
    print(f"paper configuration: batch {b}, K={k}, L={length}, channels 64, 4 layers, 8 heads, FFN 64")

    model = ImDiffusionNet(k)
    x = torch.randn(b, k, length)
    t = torch.randint(0, 50, (b,))
    mask_type = torch.randint(0, 2, (b,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def train_step() -> None:
        loss = model(x, t, mask_type).square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def forward() -> None:
        with torch.no_grad():
            model(x, t, mask_type)

    peak = matmul_peak()
    train_flops = count_flops(lambda: model(x, t, mask_type).square().mean().backward())
    train_s = _min_time(train_step, repeats)
    model.eval()
    fwd_flops = count_flops(forward)
    fwd_s = _min_time(forward, repeats)
    peak = max(peak, matmul_peak())

    train_gflops = train_flops / train_s / 1e9
    fwd_gflops = fwd_flops / fwd_s / 1e9
    print(f"fp32 matmul peak (2048^2, {threads} threads): {peak:.1f} GFLOP/s")
    print(
        f"training step (fwd+bwd+Adam): {train_s * 1e3:.0f} ms, {b / train_s:.1f} windows/s, "
        f"{train_flops / 1e9:.1f} GFLOP -> {train_gflops:.1f} GFLOP/s = {100 * train_gflops / peak:.0f}% of peak"
    )
    print(
        f"forward: {fwd_s * 1e3:.0f} ms, {fwd_flops / 1e9:.1f} GFLOP -> {fwd_gflops:.1f} GFLOP/s "
        f"= {100 * fwd_gflops / peak:.0f}% of peak"
    )
    print(f"imputation ({chain}-step chain, forward only): {b / (fwd_s * chain):.2f} windows/s")
    heads, d = 8, 64 // 8
    time_axis = attention_gflops((b, k * heads, length, d), repeats)
    feature_axis = attention_gflops((b * length, heads, k, d), repeats)
    print(
        f"attention core alone (head width {d}): time axis {time_axis:.1f} GFLOP/s, feature axis "
        f"{feature_axis:.1f} GFLOP/s = {100 * time_axis / peak:.0f}% / {100 * feature_axis / peak:.0f}% of peak"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--features", type=int, default=38)
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--chain", type=int, default=50, help="denoising steps of one imputation chain")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report(args.batch, args.features, args.length, args.chain, args.repeats)


if __name__ == "__main__":
    main()
