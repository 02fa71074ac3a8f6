"""The core demo: train the 2-D toy model through the engine, sample it with every sampler at several step
counts, score the samples against held-out data, and draw them. Also the markdown report writer."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .cli import package_version
from .commands import DemoResult
from .figures import new_figure, save_figure
from .toy import ToyDiffusion, sample_mixture, sliced_wasserstein

# (sampler, steps, spacing): the full ancestral chain, then the fast samplers on t-uniform ("trailing") and
# logSNR-uniform timesteps
SAMPLER_GRID: list[tuple[str, int, str]] = [("ddpm", 1000, "trailing")] + [
    (sampler, steps, spacing)
    for sampler in ("ddim", "dpmpp_2m")
    for spacing in ("trailing", "logsnr")
    for steps in (5, 10, 20, 50)
]
QUICK_GRID = [("ddpm", 1000, "trailing"), ("ddim", 10, "logsnr"), ("dpmpp_2m", 5, "logsnr"), ("dpmpp_2m", 20, "logsnr")]


@dataclass
class SamplerRow:
    sampler: str
    steps: int
    spacing: str
    distance: float
    seconds: float
    samples: torch.Tensor


def evaluate_samplers(
    model: ToyDiffusion, held_out: torch.Tensor, grid: list[tuple[str, int, str]] = SAMPLER_GRID, seed: int = 0
) -> list[SamplerRow]:
    """Sliced Wasserstein distance to ``held_out`` and wall time of each (sampler, steps, spacing), same noise
    for all."""
    model.eval()
    rows = []
    for sampler, steps, spacing in grid:
        start = time.perf_counter()
        x = model.generate(len(held_out), sampler, steps, spacing, torch.Generator().manual_seed(seed))
        seconds = time.perf_counter() - start
        rows.append(SamplerRow(sampler, steps, spacing, sliced_wasserstein(x.cpu(), held_out), seconds, x.cpu()))
    return rows


def plot_samplers(rows: list[SamplerRow], held_out: torch.Tensor, floor: float, path: Path) -> Path:
    """Scatter plots of the data and of a few samplers, and distance versus steps."""
    shown = [r for r in rows if (r.sampler, r.steps, r.spacing) in set(QUICK_GRID)]
    panels = [("held-out data", held_out, None)]
    panels += [(f"{r.sampler}, {r.steps} {r.spacing} steps", r.samples, r) for r in shown]
    fig = new_figure(figsize=(3.2 * len(panels), 7.0))
    grid = fig.add_gridspec(2, len(panels), height_ratios=(1, 1.1))
    for i, (title, pts, row) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.5)
        ax.set_title(title if row is None else f"{title}\nSW={row.distance:.3f}", fontsize=9)
        ax.set_xlim(-3, 3), ax.set_ylim(-3, 3), ax.set_aspect("equal"), ax.set_xticks([]), ax.set_yticks([])
    ax = fig.add_subplot(grid[1, :])
    steps = sorted({r.steps for r in rows if r.sampler != "ddpm"})
    for sampler in ("ddim", "dpmpp_2m"):
        for spacing, style in (("trailing", "--"), ("logsnr", "-")):
            pts = [(r.steps, r.distance) for r in rows if r.sampler == sampler and r.spacing == spacing]
            if len(pts) > 1:
                ax.plot(*zip(*pts), marker="o", ls=style, label=f"{sampler} {spacing}")
    for r in rows:
        if r.sampler == "ddpm":
            ax.axhline(r.distance, color="k", ls="--", lw=1, label=f"ddpm {r.steps} steps")
    ax.axhline(floor, color="grey", ls=":", lw=1, label="data vs data (floor)")
    ax.set_xscale("log"), ax.set_xticks(steps, [str(k) for k in steps]), ax.minorticks_off()
    ax.set_xlabel("sampling steps"), ax.set_ylabel("sliced W2 to held-out data"), ax.legend(fontsize=8)
    ax.set_title("distance vs steps", fontsize=9)
    return save_figure(fig, path, dpi=110)


def train_toy(
    work_dir: Path, max_iters: int | None = None, seed: int = 0, progress: bool = True, batch_size: int | None = None
) -> ToyDiffusion:
    """Train the shipped ``toy2d`` config through the engine (mmengine runner, checkpoints, EMA); return the model
    with its EMA weights."""
    from .engine import load_config, load_weights, train

    options = {} if max_iters is None else {"train_cfg.max_iters": max_iters, "param_scheduler.T_max": max_iters}
    if batch_size:
        options["train_dataloader.batch_size"] = batch_size
    cfg = load_config("toy2d", package="diffusekit.core", cfg_options=options)
    model = train(cfg, work_dir=work_dir, seed=seed, progress=progress, overwrite=True)  # the demo's own folder
    return load_weights(model, Path(work_dir) / "final_weights.pth", use_ema=True)


def run_core_demo(out: Path, quick: bool = False) -> DemoResult:
    """Train (seconds), sample, score and draw the 2-D toy model; return the report section."""
    start = time.perf_counter()
    # 1,500 iterations of 256 points (the config trains 3,000 of 512 for the benchmark): a demo-length run
    model = train_toy(out / "core" / "work_dir", max_iters=1000 if quick else 1500, batch_size=256)
    train_seconds = time.perf_counter() - start
    n = 500 if quick else 1000
    held_out = sample_mixture(n, torch.Generator().manual_seed(1001))
    floor = sliced_wasserstein(held_out, sample_mixture(n, torch.Generator().manual_seed(1002)))
    grid = QUICK_GRID if quick else SAMPLER_GRID
    rows = evaluate_samplers(model, held_out, grid)
    figure = plot_samplers(rows, held_out, floor, out / "core" / "samplers.png")
    table = ["| sampler | steps | spacing | sliced W2 | seconds |", "|---|---:|---|---:|---:|"]
    table += [f"| {r.sampler} | {r.steps} | {r.spacing} | {r.distance:.4f} | {r.seconds:.2f} |" for r in rows]
    markdown = "\n".join(
        [
            f"A {sum(p.numel() for p in model.parameters()):,}-parameter MLP denoiser trained for "
            f"{train_seconds:.1f} s on an 8-mode Gaussian mixture (config `toy2d`), sampled with {n} points per "
            f"sampler from the same noise. Distance: sliced 2-Wasserstein to {n} held-out points; two independent "
            f"draws of the data are {floor:.4f} apart (the floor).",
            "",
            *table,
            "",
            f"![samples]({figure.relative_to(out).as_posix()})",
        ]
    )
    metrics = {"train_seconds": round(train_seconds, 2), "samples": n, "floor": round(floor, 5)}
    for r in rows:
        metrics[f"{r.sampler}_{r.steps}_{r.spacing}_sw"] = round(r.distance, 5)
        metrics[f"{r.sampler}_{r.steps}_{r.spacing}_seconds"] = round(r.seconds, 4)
    return DemoResult("core", markdown, metrics)


def write_report(out: Path, sections: list[DemoResult]) -> Path:
    """``out/report.md``: one section per demo."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = ["# diffusekit demo report", "", f"diffusekit {package_version()}, torch {torch.__version__}, {stamp}.", ""]
    for section in sections:
        lines += [f"## {section.title}", "", section.markdown, ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
