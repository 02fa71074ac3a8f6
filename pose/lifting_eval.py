"""Evaluation of a lifting model: per-sequence prediction, MPJPE / P-MPJPE (and 3DHP PCK / AUC) under the four
multi-hypothesis aggregations, per-action tables.

Protocol (VideoPose3D, D3DP, DDHPose): errors in mm on root-relative poses; per action (the action name without its
take number, e.g. "Walking 1" -> "Walking"; the sequence name TS1..TS6 for 3DHP) the mean over all frames of all
cameras, then the mean over actions. Aggregations of H hypotheses: J-Best and P-Best (oracles: the nearest
hypothesis per joint and frame, or the single hypothesis with the lowest error over a sequence), P-Agg (the mean
pose) and J-Agg (per joint and frame the hypothesis whose reprojection, with the ground-truth root trajectory and
the camera's distortion, is nearest to the input 2D keypoint; needs calibrated cameras). For the P-MPJPE of the
oracles every hypothesis is Procrustes-aligned first.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffusekit.core.progress import ProgressLine
from diffusekit.pose.h36m import LiftingSequence
from diffusekit.pose.lifting import eval_windows, joint_layout, load_sequences, normalized_2d, root_relative, window
from diffusekit.pose.metrics3d import AUC_THRESHOLDS, MPI3DHP_EVAL_JOINTS, procrustes_align, project_to_2d

__all__ = [
    "AGGREGATIONS",
    "action_group",
    "evaluate_ddhpose",
    "evaluate_lifting",
    "flat_result",
    "format_lifting_report",
    "lifting_figure",
    "lifting_settings",
    "predict_sequence",
    "test_sequences",
]

logger = logging.getLogger(__name__)

AGGREGATIONS = ("J-Best", "P-Best", "P-Agg", "J-Agg")


def action_group(sequence: LiftingSequence) -> str:
    """The per-action table's row: "Walking 1" -> "Walking"; 3DHP test sequences by their name."""
    return sequence.action.split(" ")[0] if sequence.action else sequence.subject


@torch.no_grad()
def predict_sequence(
    model,
    sequence: LiftingSequence,
    hypotheses: int = 1,
    steps: int = 1,
    flip: bool = True,
    batch_size: int = 16,
    generator: torch.Generator | None = None,
    all_steps: bool = False,
) -> np.ndarray:
    """Root-relative 3D poses in metres for every frame: (H, N, J, 3), or (K, H, N, J, 3) with ``all_steps``."""
    inputs = normalized_2d(sequence)
    frames = model.frames
    windows = eval_windows(len(inputs), frames)
    device = next(model.parameters()).device
    out: np.ndarray | None = None
    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        clips = torch.from_numpy(np.stack([window(inputs, start, frames) for start, _ in chunk])).to(device)
        poses = model.sample(clips, hypotheses, steps, flip=flip, generator=generator).cpu().numpy()
        if not all_steps:
            poses = poses[-1:]
        if out is None:
            out = np.zeros((poses.shape[0], poses.shape[1], len(inputs), *poses.shape[-2:]), dtype=np.float32)
        for b, (start, keep) in enumerate(chunk):
            stop = min(start + frames, len(inputs))
            out[:, :, keep:stop] = poses[:, :, b, keep - start : stop - start]
    assert out is not None
    return out if all_steps else out[0]


def _aggregate(name: str, hyps: np.ndarray, gt: np.ndarray, sequence: LiftingSequence, root: int):
    """(per-joint errors (N, J) for MPJPE, for P-MPJPE) in mm of one aggregation; None when not applicable."""
    if name == "J-Best":
        aligned = np.stack([procrustes_align(h, gt) for h in hyps])
        return np.linalg.norm(hyps - gt, axis=-1).min(0), np.linalg.norm(aligned - gt, axis=-1).min(0)
    if name == "P-Best":
        errors = np.linalg.norm(hyps - gt, axis=-1)
        aligned = np.linalg.norm(np.stack([procrustes_align(h, gt) for h in hyps]) - gt, axis=-1)
        return errors[errors.mean((1, 2)).argmin()], aligned[aligned.mean((1, 2)).argmin()]
    if name == "P-Agg":
        pose = hyps.mean(0)
    else:  # J-Agg
        if sequence.camera is None or sequence.pose_3d is None:
            return None
        trajectory = sequence.pose_3d[:, root : root + 1].astype(np.float64)
        projected = project_to_2d(hyps / 1000 + trajectory[None], sequence.camera.intrinsics)
        distance = np.linalg.norm(projected - sequence.keypoints_2d[None], axis=-1)
        pose = np.take_along_axis(hyps, distance.argmin(0)[None, ..., None], axis=0)[0]
    return np.linalg.norm(pose - gt, axis=-1), np.linalg.norm(procrustes_align(pose, gt) - gt, axis=-1)


def evaluate_lifting(
    model,
    sequences: Sequence[LiftingSequence],
    dataset: str = "h36m",
    hypotheses: Sequence[int] = (1,),
    steps: Sequence[int] = (1,),
    flip: bool = True,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = True,
    keep_hypotheses: Sequence[int] = (),
) -> dict:
    """Scores for every (steps K, hypotheses H, aggregation): ``rows`` [{steps, hypotheses, aggregation, mpjpe,
    p_mpjpe[, pck, auc]}] (mean over actions), ``per_action`` {(K, H, aggregation): {action: {metric: value}}},
    ``seconds`` per K and ``frames``. One sampling run per K with max(H) hypotheses; H < max(H) uses the first H.
    ``keep_hypotheses``: for these K also ``hypotheses`` {K: [(max(H) hypotheses (H, N, J, 3), truth (N, J, 3))
    per sequence]}, root-relative mm (float32), valid frames only."""
    root, _, _ = joint_layout(dataset)
    h_max = max(hypotheses)
    per_frame: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    kept: dict[int, list] = {k: [] for k in steps if k in keep_hypotheses}
    seconds: dict[int, float] = {}
    frames = sum(int(s.valid.sum()) if s.valid is not None else len(s.keypoints_2d) for s in sequences)
    line = ProgressLine(enabled=progress)
    for k in steps:
        generator = torch.Generator().manual_seed(seed)
        start = time.perf_counter()
        for n, sequence in enumerate(sequences):
            line.update(f"  K={k}, H={h_max}: sequence {n + 1}/{len(sequences)} {sequence.name}")
            pred = predict_sequence(model, sequence, h_max, k, flip, batch_size, generator).astype(np.float64) * 1000
            gt = root_relative(sequence.pose_3d, root).astype(np.float64) * 1000
            if sequence.valid is not None:
                keep = np.asarray(sequence.valid, bool)
                pred, gt = pred[:, keep], gt[keep]
                sequence = _subset(sequence, keep)
            if k in kept:
                kept[k].append((pred.astype(np.float32), gt.astype(np.float32)))
            for h in hypotheses:
                for name in AGGREGATIONS:
                    errors = _aggregate(name, pred[:h], gt, sequence, root)
                    if errors is None:
                        continue
                    bucket = per_frame[(k, h, name)][action_group(sequence)]
                    bucket["mpjpe"].append(errors[0].mean(-1))
                    bucket["p_mpjpe"].append(errors[1].mean(-1))
                    if dataset == "3dhp":
                        scored = errors[0][:, list(MPI3DHP_EVAL_JOINTS)]
                        bucket["pck"].append(100 * (scored < 150).mean(-1))
                        bucket["auc"].append(100 * np.mean([(scored < t).mean(-1) for t in AUC_THRESHOLDS], axis=0))
        seconds[k] = time.perf_counter() - start
        line.finish(f"  K={k}, H={h_max}: {len(sequences)} sequences, {frames / seconds[k]:.1f} frames/s")
    rows, per_action = [], {}
    for (k, h, name), groups in per_frame.items():
        table = {g: {m: float(np.concatenate(v).mean()) for m, v in metrics.items()} for g, metrics in groups.items()}
        per_action[(k, h, name)] = dict(sorted(table.items()))
        means = {m: float(np.mean([row[m] for row in table.values()])) for m in next(iter(table.values()))}
        rows.append({"steps": k, "hypotheses": h, "aggregation": name, **means})
    result = {"rows": rows, "per_action": per_action, "seconds": seconds, "frames": frames}
    return {**result, "hypotheses": kept} if kept else result


def _subset(sequence: LiftingSequence, keep: np.ndarray) -> LiftingSequence:
    from dataclasses import replace

    pose = None if sequence.pose_3d is None else sequence.pose_3d[keep]
    return replace(sequence, keypoints_2d=sequence.keypoints_2d[keep], pose_3d=pose, valid=None)


def format_lifting_report(result: dict, title: str, per_action_key: tuple | None = None) -> str:
    """Markdown: the (K, H, aggregation) table, then the per-action table of ``per_action_key`` (default: the
    largest K and H with P-Agg)."""
    metrics = [m for m in ("mpjpe", "p_mpjpe", "pck", "auc") if m in result["rows"][0]]
    names = {"mpjpe": "MPJPE", "p_mpjpe": "P-MPJPE", "pck": "PCK", "auc": "AUC"}
    lines = [f"**{title}**", "", "| K | H | aggregation | " + " | ".join(names[m] for m in metrics) + " |"]
    lines.append("|---:|---:|---|" + "---:|" * len(metrics))
    for row in sorted(
        result["rows"], key=lambda r: (r["steps"], r["hypotheses"], AGGREGATIONS.index(r["aggregation"]))
    ):
        values = " | ".join(f"{row[m]:.1f}" for m in metrics)
        lines.append(f"| {row['steps']} | {row['hypotheses']} | {row['aggregation']} | {values} |")
    keys = list(result["per_action"])
    key = per_action_key or max((k for k in keys if k[2] == "P-Agg"), default=keys[0], key=lambda k: (k[0], k[1]))
    table = result["per_action"][key]
    actions = list(table)
    lines += ["", f"Per action, K={key[0]}, H={key[1]}, {key[2]} (mm):", ""]
    lines.append("| metric | " + " | ".join(actions) + " | mean |")
    lines.append("|---|" + "---:|" * (len(actions) + 1))
    for m in metrics:
        values = [table[a][m] for a in actions]
        lines.append(f"| {names[m]} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {np.mean(values):.1f} |")
    seconds = ", ".join(f"K={k}: {result['frames'] / s:.1f}" for k, s in result["seconds"].items())
    lines += ["", f"Frames per second (all hypotheses, flip): {seconds}."]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ from a config
def lifting_settings(
    cfg, hypotheses: Sequence[int] | None = None, steps: Sequence[int] | None = None, flip: bool | None = None
) -> dict[str, Any]:
    """Keyword arguments of `evaluate_lifting` from the config's ``evaluate`` block (unknown keys: DataError),
    the given values overriding it."""
    from diffusekit.pose.workflow import evaluate_block

    block = evaluate_block(cfg, "ddhpose")
    return dict(
        hypotheses=tuple(hypotheses or block["hypotheses"]),
        steps=tuple(steps or block["steps"]),
        flip=bool(block["flip"] if flip is None else flip),
        batch_size=int(block["batch_size"]),
    )


def test_sequences(
    cfg, data: str | Path, split: str | None = None, allow_pickle: bool = False, max_frames: int | None = None
) -> tuple[str, list[LiftingSequence]]:
    """(dataset name, the sequences of the evaluation split of ``data``) with the config's dataset and 2D source;
    ``max_frames``: only the first frames of each sequence (a quick look, as the demo and benchmark take)."""
    from dataclasses import replace

    from diffusekit.pose.workflow import evaluate_block

    dataset_cfg = cfg.train_dataloader.dataset
    dataset = dataset_cfg.get("dataset", "h36m")
    split = split or evaluate_block(cfg, "ddhpose")["split"]
    allow = allow_pickle or dataset_cfg.get("allow_pickle", False)
    sequences = load_sequences(str(data), split, dataset, dataset_cfg.get("source", "cpn_ft_h36m_dbb"), allow)
    if max_frames:
        cut = slice(0, int(max_frames))
        sequences = [
            replace(s, keypoints_2d=s.keypoints_2d[cut], pose_3d=None if s.pose_3d is None else s.pose_3d[cut],
                    valid=None if s.valid is None else s.valid[cut])
            for s in sequences
        ]  # fmt: skip
    return dataset, sequences


def flat_result(result: dict) -> dict[str, Any]:
    """JSON-ready: rows as they are, per-action tables keyed "K<k>_H<h>_<aggregation>"."""
    per_action = {f"K{k}_H{h}_{a}": table for (k, h, a), table in result["per_action"].items()}
    return {"rows": result["rows"], "per_action": per_action, "seconds": result["seconds"], "frames": result["frames"]}


def lifting_figure(path: Path, sequence: LiftingSequence, hypotheses: np.ndarray, dataset: str, title: str,
                   truth: np.ndarray | None = None) -> Path:  # fmt: skip
    """Four evenly spaced frames of a sequence: the 2D input beside the 3D hypotheses (mm)."""
    from diffusekit.pose.ddhpose import SKELETONS
    from diffusekit.pose.visualize import plot_lifting

    tree = SKELETONS[dataset]()
    picks = np.linspace(0, len(sequence.keypoints_2d) - 1, 4).round().astype(int)
    return plot_lifting(path, sequence.keypoints_2d[picks], 1000 * hypotheses[:, picks], tree.parents, tree.left,
                        None if truth is None else 1000 * truth[picks], picks.tolist(), title)  # fmt: skip


def evaluate_ddhpose(
    cfg,
    model,
    data: str | Path,
    settings: dict[str, Any],
    split: str | None = None,
    out: str | Path | None = None,
    title: str = "",
    allow_pickle: bool = False,
    seed: int = 0,
    progress: bool = True,
    max_frames: int | None = None,
) -> tuple[dict, str]:
    """`evaluate_lifting` on the evaluation split of ``data`` (``max_frames``: see `test_sequences`); returns the
    result and its markdown report. With ``out``: ``report.md`` and ``poses.png`` (the first sequence, max(H)
    hypotheses, max(K) steps)."""
    dataset, sequences = test_sequences(cfg, data, split, allow_pickle, max_frames)
    result = evaluate_lifting(model, sequences, dataset, seed=seed, progress=progress, **settings)
    report = format_lifting_report(result, f"{title} ({len(sequences)} sequences, {result['frames']} frames)")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(report + "\n")
        sequence = sequences[0]
        generator = torch.Generator().manual_seed(seed)
        hyps = predict_sequence(model, sequence, max(settings["hypotheses"]), max(settings["steps"]),
                                settings["flip"], settings["batch_size"], generator)  # fmt: skip
        root = joint_layout(dataset)[0]
        truth = root_relative(sequence.pose_3d, root) if sequence.pose_3d is not None else None
        lifting_figure(out / "poses.png", sequence, hyps, dataset, f"{title}: {sequence.name}", truth)
        logger.info("report.md and poses.png written to %s", out)
    return result, report
