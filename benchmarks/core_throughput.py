"""Training and sampling throughput of the core U-Nets with GaussianDiffusion, on CPU or GPU.

Cases: a 2-D U-Net on images (ADM-like, attention at the lowest level) and a 1-D U-Net on action chunks (Diffusion
Policy size). Prints training steps/s (forward + backward + AdamW) and sampled items/s with dpmpp_2m at 20 steps.

    python benchmarks/core_throughput.py [--device cpu|cuda] [--amp] [--repeats N]
"""

from __future__ import annotations

import argparse
import time

import torch

from diffusekit.core import GaussianDiffusion, NoiseSchedule, UNet1D, UNet2D


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(name, net, shape, device, amp, repeats, cond_kwargs=None):
    cond_kwargs = cond_kwargs or {}
    diffusion = GaussianDiffusion(NoiseSchedule.named("cosine", 1000), prediction="v")
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x0 = torch.randn(shape, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def step():
        with autocast:
            loss = diffusion.training_loss(net, x0, **cond_kwargs)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    _sync(device)
    train_rate = repeats / (time.perf_counter() - start)

    net.eval()
    with autocast:
        diffusion.sample(net, torch.randn(shape, device=device), timesteps=2, sampler="dpmpp_2m", **cond_kwargs)
        _sync(device)
        start = time.perf_counter()
        out = diffusion.sample(net, torch.randn(shape, device=device), timesteps=20, sampler="dpmpp_2m", **cond_kwargs)
        _sync(device)
    sample_rate = shape[0] / (time.perf_counter() - start)
    params = sum(p.numel() for p in net.parameters()) / 1e6
    finite = bool(torch.isfinite(out).all())
    print(f"{name:<34}{params:>8.1f}M{str(tuple(shape)):>22}{train_rate:>12.2f}{sample_rate:>14.1f}  finite={finite}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast")
    parser.add_argument("--repeats", type=int, default=None, help="timed training steps (default 20 GPU / 3 CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    repeats = args.repeats or (20 if gpu else 3)
    torch.manual_seed(0)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name(device) if gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; amp={'bf16' if args.amp else 'off'}")
    print(f"{'case':<34}{'params':>9}{'batch shape':>22}{'train it/s':>12}{'samples/s':>14}")
    image = (64, 3, 64, 64) if gpu else (8, 3, 32, 32)
    measure(
        "UNet2D images (128,256,256) attn",
        UNet2D(3, channels=(128, 256, 256), attention_levels=(-1,)),
        image,
        device,
        args.amp,
        repeats,
    )
    actions = (256, 2, 16) if gpu else (32, 2, 16)
    net = UNet1D(2, channels=(256, 512, 1024), global_cond_dim=64)
    cond = {"global_cond": torch.randn(actions[0], 64, device=device)}
    measure("UNet1D action chunks (256,512,1024)", net, actions, device, args.amp, repeats, cond)


if __name__ == "__main__":
    main()
