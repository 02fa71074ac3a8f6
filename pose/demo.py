"""The pose demo: DiffPose and DDHPose trained briefly on synthetic data, evaluated, drawn, as one report section.

Sized for a newcomer's wait (``diffusekit demo`` covers every domain in a few minutes): the two methods train side
by side, one process and one thread each, when the machine has two cores. The long runs are the benchmarks
(``benchmarks/pose_diffpose.py``, ``benchmarks/pose_ddhpose.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffusekit.core.commands import DemoResult

__all__ = ["DDHPOSE_DEMO", "DIFFPOSE_DEMO", "mean_pose_mpjpe", "run_ddhpose_demo", "run_demo", "run_diffpose_demo"]

logger = logging.getLogger(__name__)

# The demo runs: config, options, iterations (full, --quick), evaluation settings. Chosen for a short training on
# CPU (measured in docs/pose.md, section 5): DiffPose at half width (backbone 8-16-32-48, STRL 48, decoder 32) on
# one-frame clips in batches of 8 without scale / rotation / flip augmentation, which at this length slows fitting
# more than it helps (3-frame clips, 400 iterations, the same CPU time: Total AP 40 without augmentation, 31 with,
# 36 with flips only; one frame, 550 iterations: 52); DDHPose at 3x the learning rate.
DIFFPOSE_DEMO: dict[str, Any] = dict(
    config="diffpose_tiny",
    options=[
        "model.backbone.channels=(8,16,32,48)",
        "model.strl.dim=48",
        "model.decoder.dim=32",
        "train_dataloader.batch_size=8",
        "train_dataloader.dataset.augment=None",
        "model.frames=1",
        "train_dataloader.dataset.frame_offsets=(0,)",
        "val_dataloader.dataset.frame_offsets=(0,)",
        "optim_wrapper.optimizer.lr=2e-3",
        "ema.decay=0.98",
    ],
    iterations=(550, 20),
    steps=(5, 2),
)
DDHPOSE_DEMO: dict[str, Any] = dict(
    config="ddhpose_tiny",
    options=["optim_wrapper.optimizer.lr=3e-3", "ema.decay=0.98"],
    iterations=(450, 40),
    hypotheses=(1, 5),
    steps=((1,), (1, 2)),
    max_frames=54,  # the first two clips of every test sequence
)


def _demo_config(spec: dict[str, Any], iterations: int):
    from diffusekit.pose.workflow import load_pose_config

    options = [
        f"train_cfg.max_iters={iterations}",
        f"train_cfg.val_interval={max(1, iterations // 2)}",
        f"param_scheduler.1.end={max(iterations, 51)}",  # the cosine decay ends with the training
        f"checkpoint_interval={iterations}",
    ]
    return load_pose_config(spec["config"], [*spec["options"], *options])


@contextmanager
def _one_thread():
    """Small tensors: one thread is faster, and leaves the other core to the other method."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _figure_link(path: Path, report_dir: Path) -> str:
    """``path`` relative to the folder of report.md."""
    return path.relative_to(report_dir).as_posix()


def run_diffpose_demo(
    out_dir: Path, quick: bool = False, progress: bool = True, report_dir: Path | None = None
) -> DemoResult:
    """Synthetic PoseTrack18 data, ``diffpose_tiny`` trained briefly, PoseTrack AP of the val split, a figure
    (linked relative to ``report_dir``, the folder of report.md: by default the parent of ``out_dir``)."""
    from diffusekit.pose.inference import eval_crops, evaluate_diffpose, format_report, inference_settings
    from diffusekit.pose.synthetic import write_posetrack
    from diffusekit.pose.workflow import load_pose_model, train_pose

    out_dir = Path(out_dir)
    report_dir = Path(report_dir) if report_dir else out_dir.parent
    iters = DIFFPOSE_DEMO["iterations"][quick]
    cfg = _demo_config(DIFFPOSE_DEMO, iters)
    settings = inference_settings(cfg, steps=DIFFPOSE_DEMO["steps"][quick], samples=1)
    with _one_thread():
        data = write_posetrack(out_dir / "posetrack", "small", seed=0)
        shutil.rmtree(out_dir / "work_dir", ignore_errors=True)  # the demo's own earlier run: reruns start anew
        start = time.perf_counter()
        weights = train_pose(cfg, data, out_dir / "work_dir", seed=0, progress=progress)
        train_seconds = time.perf_counter() - start
        model = load_pose_model(cfg, weights, "cpu")
        title = "diffpose_tiny, synthetic PoseTrack18 val"
        result = evaluate_diffpose(model, eval_crops(cfg, data), settings, out_dir, title, progress=False)
    heading = f"DiffPose tiny, {iters} iterations ({train_seconds:.0f} s), {settings.steps} DDIM steps, flip"
    markdown = "\n".join(
        [
            "DiffPose (config `diffpose_tiny` at half width, on one-frame clips without augmentation: a demo-length "
            "training, see docs/pose.md for the 3-frame benchmark) trained on synthetic PoseTrack18-layout videos and "
            "evaluated on their val split (every 4th frame labelled, ground-truth boxes) with poseval's AP rules.",
            "",
            format_report(result, heading),
            "",
            f"![crops]({_figure_link(out_dir / 'crops.png', report_dir)}) "
            f"![training curves]({_figure_link(out_dir / 'work_dir' / 'curves.png', report_dir)})",
        ]
    )
    metrics: dict[str, Any] = {f"ap_{k.lower()}": round(v, 2) for k, v in result["ap"].items()}
    speed = round(result["frames_per_second"], 2)
    metrics.update(train_seconds=round(train_seconds, 2), iterations=iters, frames_per_second=speed)
    return DemoResult("pose", markdown, metrics)


def mean_pose_mpjpe(train, test, root: int = 0) -> float:
    """MPJPE (mm) of the trivial baseline: the mean root-relative training pose predicted for every test frame."""
    from diffusekit.pose.lifting import root_relative

    mean = np.concatenate([root_relative(s.pose_3d, root) for s in train]).mean(0)
    errors = [np.linalg.norm(root_relative(s.pose_3d, root) - mean, axis=-1).mean(-1) for s in test]
    return float(1000 * np.concatenate(errors).mean())


def run_ddhpose_demo(
    out_dir: Path, quick: bool = False, progress: bool = True, report_dir: Path | None = None
) -> DemoResult:
    """Synthetic Human3.6M data, ``ddhpose_tiny`` trained briefly, MPJPE under the aggregations against the
    mean-pose baseline, a figure (linked relative to ``report_dir``, as in `run_diffpose_demo`)."""
    from diffusekit.pose.lifting import load_sequences
    from diffusekit.pose.lifting_eval import evaluate_ddhpose, lifting_settings, test_sequences
    from diffusekit.pose.synthetic3d import write_synthetic
    from diffusekit.pose.workflow import load_pose_model, train_pose

    out_dir = Path(out_dir)
    report_dir = Path(report_dir) if report_dir else out_dir.parent
    iters = DDHPOSE_DEMO["iterations"][quick]
    cfg = _demo_config(DDHPOSE_DEMO, iters)
    settings = lifting_settings(cfg, DDHPOSE_DEMO["hypotheses"], DDHPOSE_DEMO["steps"][quick])
    with _one_thread():
        data = write_synthetic(out_dir / "h36m", "h36m", "small", seed=0)
        shutil.rmtree(out_dir / "work_dir", ignore_errors=True)  # the demo's own earlier run: reruns start anew
        start = time.perf_counter()
        weights = train_pose(cfg, data, out_dir / "work_dir", seed=0, progress=progress)
        train_seconds = time.perf_counter() - start
        model = load_pose_model(cfg, weights, "cpu")
        title = f"DDHPose tiny, {iters} iterations ({train_seconds:.0f} s), flip averaging"
        frames = DDHPOSE_DEMO["max_frames"]
        result, report = evaluate_ddhpose(cfg, model, data, settings, out=out_dir, title=title, progress=False,
                                          max_frames=frames)  # fmt: skip
    train = load_sequences(str(data), "train", source=cfg.train_dataloader.dataset.source)
    baseline = mean_pose_mpjpe(train, test_sequences(cfg, data, max_frames=frames)[1])
    markdown = "\n".join(
        [
            "DDHPose (config `ddhpose_tiny`) trained on synthetic Human3.6M-layout data (noisy 2D detections, "
            f"S1/S5/S6/S7/S8) and evaluated on the first {DDHPOSE_DEMO['max_frames']} frames of every S9/S11 "
            "sequence, errors in mm. A demo-length training: see docs/pose3d.md for the benchmark.",
            "",
            report,
            "",
            f"Trivial baseline (the mean training pose for every frame): MPJPE {baseline:.1f} mm.",
            "",
            f"![poses]({_figure_link(out_dir / 'poses.png', report_dir)}) "
            f"![training curves]({_figure_link(out_dir / 'work_dir' / 'curves.png', report_dir)})",
        ]
    )
    metrics: dict[str, Any] = {
        f"{r['aggregation'].lower().replace('-', '_')}_mpjpe_k{r['steps']}_h{r['hypotheses']}": round(r["mpjpe"], 2)
        for r in result["rows"]
    }
    metrics.update(train_seconds=round(train_seconds, 2), iterations=iters, mean_pose_mpjpe=round(baseline, 2))
    return DemoResult("pose-3d", markdown, metrics)


def run_demo(out_dir: Path, quick: bool = False, method: str | None = None) -> DemoResult:
    """Both demos (or the one ``method``) as one section; with two or more CPUs DDHPose trains in a second
    process while DiffPose trains in this one."""
    out_dir = Path(out_dir)
    report_dir = out_dir.parent  # report.md is written beside the section's folder
    if method == "diffpose":
        return run_diffpose_demo(out_dir, quick)
    if method == "ddhpose":
        return run_ddhpose_demo(out_dir / "ddhpose", quick, report_dir=report_dir)
    if (os.cpu_count() or 1) >= 2:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            lifting = pool.submit(run_ddhpose_demo, out_dir / "ddhpose", quick, False, report_dir)
            parts = [run_diffpose_demo(out_dir, quick), lifting.result()]
    else:
        parts = [run_diffpose_demo(out_dir, quick), run_ddhpose_demo(out_dir / "ddhpose", quick, report_dir=report_dir)]
    metrics = {**parts[0].metrics, **{f"ddhpose_{k}": v for k, v in parts[1].metrics.items()}}
    markdown = "\n\n".join(["### DiffPose", parts[0].markdown, "### DDHPose", parts[1].markdown])
    return DemoResult("pose", markdown, metrics)
