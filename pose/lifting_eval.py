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

import sys
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch

from diffusekit.core.progress import ProgressLine
from diffusekit.pose.h36m import LiftingSequence
from diffusekit.pose.lifting import eval_windows, joint_layout, normalized_2d, root_relative, window
from diffusekit.pose.metrics3d import AUC_THRESHOLDS, MPI3DHP_EVAL_JOINTS, procrustes_align, project_to_2d

__all__ = ["AGGREGATIONS", "action_group", "evaluate_lifting", "format_lifting_report", "predict_sequence"]

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
) -> dict:
    """Scores for every (steps K, hypotheses H, aggregation): ``rows`` [{steps, hypotheses, aggregation, mpjpe,
    p_mpjpe[, pck, auc]}] (mean over actions), ``per_action`` {(K, H, aggregation): {action: {metric: value}}},
    ``seconds`` per K and ``frames``. One sampling run per K with max(H) hypotheses; H < max(H) uses the first H."""
    root, _, _ = joint_layout(dataset)
    h_max = max(hypotheses)
    per_frame: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    seconds: dict[int, float] = {}
    frames = sum(int(s.valid.sum()) if s.valid is not None else len(s.keypoints_2d) for s in sequences)
    line = ProgressLine(sys.stdout, enabled=progress)
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
    return {"rows": rows, "per_action": per_action, "seconds": seconds, "frames": frames}


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
