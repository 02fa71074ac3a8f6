"""The ``--method ddhpose`` side of ``diffusekit pose``: 3D lifting on Human3.6M / MPI-INF-3DHP (and 2D input)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import is_main_process

from diffusekit.core.cli import DemoResult, json_ready
from diffusekit.core.engine import train_on_data
from diffusekit.pose.lifting import joint_layout, load_sequences, root_relative

__all__ = ["cmd_convert", "cmd_evaluate", "cmd_predict", "cmd_synth", "cmd_train", "run_demo"]


def _config(args: argparse.Namespace) -> Config:
    from diffusekit.pose.cli import load_pose_config

    cfg = load_pose_config(args.config, args.cfg_options, "ddhpose")
    if getattr(args, "allow_pickle", False):
        cfg.train_dataloader.dataset["allow_pickle"] = True
    return cfg


def _load(cfg: Config, checkpoint: str):
    from diffusekit.pose.cli import load_model

    model = load_model(cfg, checkpoint)
    model.eval()
    return model


def _settings(cfg: Config, args: argparse.Namespace) -> dict:
    evaluate = dict(cfg.get("evaluate", {}))
    return dict(
        hypotheses=tuple(args.hypotheses or evaluate.get("hypotheses", (1,))),
        steps=tuple(args.steps or evaluate.get("steps", (1,))),
        flip=not args.no_flip and evaluate.get("flip", True),
        batch_size=int(evaluate.get("batch_size", 16)),
    )


def _figure(path: Path, sequence, hypotheses: np.ndarray, dataset: str, title: str, truth: np.ndarray | None = None):
    """Four evenly spaced frames of a sequence: the 2D input beside the 3D hypotheses (mm)."""
    from diffusekit.pose.ddhpose import SKELETONS
    from diffusekit.pose.visualize import plot_lifting

    tree = SKELETONS[dataset]()
    picks = np.linspace(0, len(sequence.keypoints_2d) - 1, 4).round().astype(int)
    return plot_lifting(path, sequence.keypoints_2d[picks], 1000 * hypotheses[:, picks], tree.parents, tree.left,
                        None if truth is None else 1000 * truth[picks], picks.tolist(), title)  # fmt: skip


def write_synthetic(out: str | Path, dataset: str = "h36m", size: str = "small", seed: int = 0) -> Path:
    """Synthetic data in the published (pickled) layout plus the pickle-free copies the loaders read."""
    from diffusekit.pose.npz_tree import convert_npz
    from diffusekit.pose.synthetic3d import write_3dhp, write_h36m

    root = write_3dhp(out, seed=seed) if dataset == "3dhp" else write_h36m(out, size, seed)
    for path in sorted(Path(root).glob("*.npz")):
        if not path.name.endswith(".flat.npz"):
            convert_npz(path)
    return Path(root)


def cmd_synth(args: argparse.Namespace) -> int:
    root = write_synthetic(args.out, args.dataset, args.size, args.seed)
    layout = "MPI-INF-3DHP (D3DP npz)" if args.dataset == "3dhp" else "Human3.6M (VideoPose3D npz; 2D: gt and det)"
    print(f"{layout} written, with the pickle-free *.flat.npz copies the loaders read: {root}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from diffusekit.pose.npz_tree import convert_npz, flat_path

    for path in args.files:
        target = Path(args.out) / flat_path(path).name if args.out else None
        print(f"{path} -> {convert_npz(path, target)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    weights = train_on_data(_config(args), args.data, args.work_dir, args.resume, args.launcher, args.seed)
    if is_main_process():
        print(f"trained: {weights} (raw and EMA weights; evaluate and predict use EMA)")
    return 0


def evaluate_data(cfg: Config, model, data: str, split: str | None, settings: dict, allow_pickle: bool = False,
                  progress: bool = True) -> tuple[dict, list]:  # fmt: skip
    """Evaluate ``model`` on a split of ``data`` (the config's dataset and 2D source)."""
    from diffusekit.pose.lifting_eval import evaluate_lifting

    dataset_cfg = cfg.train_dataloader.dataset
    dataset = dataset_cfg.get("dataset", "h36m")
    split = split or cfg.get("evaluate", {}).get("split", "test")
    source = dataset_cfg.get("source", "cpn_ft_h36m_dbb")
    allow = allow_pickle or dataset_cfg.get("allow_pickle", False)
    sequences = load_sequences(data, split, dataset, source, allow)
    result = evaluate_lifting(model, sequences, dataset, progress=progress, **settings)
    return result, sequences


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.pose.lifting_eval import format_lifting_report, predict_sequence

    cfg = _config(args)
    settings = _settings(cfg, args)
    model = _load(cfg, args.checkpoint)
    result, sequences = evaluate_data(cfg, model, args.data, args.split, settings, args.allow_pickle)
    name = Path(str(args.config or "ddhpose_h36m")).stem
    report = format_lifting_report(
        result, f"{name} on {args.data} ({len(sequences)} sequences, {result['frames']} frames)"
    )
    print(report)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(json_ready(_flat(result)), indent=1))
        (out / "report.md").write_text(report + "\n")
        dataset = cfg.train_dataloader.dataset.get("dataset", "h36m")
        root, _, _ = joint_layout(dataset)
        sequence = sequences[0]
        hyps = predict_sequence(model, sequence, max(settings["hypotheses"]), max(settings["steps"]), settings["flip"])
        truth = root_relative(sequence.pose_3d, root) if sequence.pose_3d is not None else None
        _figure(out / "poses.png", sequence, hyps, dataset, f"{name}: {sequence.name}", truth)
        print(f"metrics.json, report.md and poses.png: {out}")
    if args.json:
        print(json.dumps(json_ready(_flat(result)), sort_keys=True))
    return 0


def _flat(result: dict) -> dict[str, Any]:
    """JSON-ready: rows as they are, per-action tables keyed "K<k>_H<h>_<aggregation>"."""
    per_action = {f"K{k}_H{h}_{a}": table for (k, h, a), table in result["per_action"].items()}
    return {"rows": result["rows"], "per_action": per_action, "seconds": result["seconds"], "frames": result["frames"]}


def cmd_predict(args: argparse.Namespace) -> int:
    from diffusekit.pose.h36m import LiftingSequence
    from diffusekit.pose.keypoints2d import TrackSkipped, read_keypoints_2d
    from diffusekit.pose.lifting_eval import predict_sequence

    cfg = _config(args)
    settings = _settings(cfg, args)
    model = _load(cfg, args.checkpoint)
    dataset = cfg.train_dataloader.dataset.get("dataset", "h36m")
    hypotheses, steps = max(settings["hypotheses"]), max(settings["steps"])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TrackSkipped)
        inputs = read_keypoints_2d(args.input, width=args.width, height=args.height)
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    for keypoints in inputs:
        sequence = LiftingSequence(
            keypoints.name, "", keypoints.keypoints, None, None, keypoints.width, keypoints.height
        )
        hyps = predict_sequence(model, sequence, hypotheses, steps, settings["flip"], settings["batch_size"])
        stem = sequence.name.replace(" ", "_").replace("/", "_") or Path(args.input).stem
        arrays = dict(pose_3d=hyps.mean(0), hypotheses=hyps, keypoints_2d=sequence.keypoints_2d)
        np.savez_compressed(out / f"{stem}.npz", **arrays, width=sequence.width, height=sequence.height)
        _figure(out / f"{stem}.png", sequence, hyps, dataset, f"{stem}: H={hypotheses}, K={steps}")
        print(f"{stem}: {len(sequence.keypoints_2d)} frames -> {out / stem}.npz (pose_3d = the mean of {hypotheses} "
              f"hypotheses, metres, root-relative, camera axes) and {stem}.png")  # fmt: skip
    return 0


def run_demo(out_dir: Path, quick: bool = False) -> DemoResult:
    """Synthetic Human3.6M-layout data, the tiny DDHPose trained briefly, MPJPE under the aggregations, a figure."""
    from diffusekit.pose.cli import load_model, load_pose_config
    from diffusekit.pose.lifting_eval import format_lifting_report, predict_sequence

    out_dir = Path(out_dir)
    data = write_synthetic(out_dir / "h36m", "h36m", "small", seed=0)
    iters = 60 if quick else 3000  # batches of 4 clips: ~3.5 minutes on one core
    cfg = load_pose_config("ddhpose_tiny", [f"train_cfg.max_iters={iters}", "ema.decay=0.98"], "ddhpose")
    settings = dict(hypotheses=(1, 5), steps=(1, 5) if not quick else (1, 2), flip=True, batch_size=32)
    threads = torch.get_num_threads()
    start = time.perf_counter()
    try:
        torch.set_num_threads(1)  # small tensors: one thread is faster on a shared CPU
        weights = train_on_data(cfg, data, out_dir / "work_dir", seed=0)
        train_seconds = time.perf_counter() - start
        model = load_model(cfg, weights).eval()
        result, sequences = evaluate_data(cfg, model, data, "test", settings, progress=False)
        sequence = sequences[0]
        hyps = predict_sequence(model, sequence, 5, max(settings["steps"]))
        figure = _figure(out_dir / "poses.png", sequence, hyps, "h36m", f"DDHPose tiny: {sequence.name}",
                         root_relative(sequence.pose_3d, 0))  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    title = f"DDHPose tiny, {iters} iterations ({train_seconds:.0f} s), flip averaging"
    markdown = "\n".join(
        [
            "DDHPose (config `ddhpose_tiny`) trained on synthetic Human3.6M-layout data (noisy 2D detections, "
            "S1/S5/S6/S7/S8) and evaluated on S9/S11, errors in mm. A demo-length training: see docs/pose.md for "
            "the benchmark.",
            "",
            format_lifting_report(result, title),
            "",
            f"![poses]({figure.relative_to(out_dir.parent).as_posix()})",
        ]
    )
    metrics: dict[str, Any] = {
        f"{r['aggregation'].lower().replace('-', '_')}_mpjpe_k{r['steps']}_h{r['hypotheses']}": round(r["mpjpe"], 2)
        for r in result["rows"]
    }
    metrics.update(train_seconds=round(train_seconds, 2), iterations=iters)
    return DemoResult("pose-3d", markdown, metrics)
