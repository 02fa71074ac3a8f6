"""Segment echo frames at native size and evaluate them: per-frame metrics, ED/ES tables, pooled Dice, EF.

`predict_frames` runs a model (Echo-DND or the U-Net baseline) on network-size inputs in batches, resizes the fused
probability and uncertainty maps back to each frame's native grid and post-processes the mask there.
`evaluate_predictions` measures every frame (``metrics.segmentation_metrics`` with the frame's spacing), summarises
overall and per phase (the CAMUS-style ED/ES table), adds EchoNet's pooled Dice and, for every patient with ED and ES
masks, the ejection fraction by the method of disks (biplane for CAMUS 2CH+4CH, single plane for EchoNet A4C) against
the dataset's EF.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from diffusekit.core.progress import ProgressLine
from diffusekit.medical.cardiac import biplane_volume, ejection_fraction
from diffusekit.medical.datasets import EchoFrame
from diffusekit.medical.echo_dnd import EchoDND
from diffusekit.medical.metrics import pooled_dice, segmentation_metrics, summarize
from diffusekit.medical.postprocess import postprocess_mask
from diffusekit.medical.transforms import to_native, to_network

__all__ = ["FramePrediction", "InferenceSettings", "evaluate_predictions", "predict_frames"]


@dataclass
class InferenceSettings:
    """Sampling and post-processing: the config's ``evaluate`` block (`evaluation.inference_settings`; CLI
    ``--steps``, ``--samples`` and ``--sampler`` override it). ``steps`` None: all T steps."""

    steps: int | None = 20
    samples: int = 5
    gaussian_sampler: str = "ddim"
    bernoulli_sampler: str = "ddim"
    aggregation: str = "mean"
    threshold: float = 0.5
    opening_radius: int = 3
    batch_size: int = 8
    seed: int = 10  # the released inference seed


@dataclass
class FramePrediction:
    """A frame's native-size probability, post-processed mask and uncertainty."""

    frame: EchoFrame
    probability: np.ndarray
    mask: np.ndarray
    uncertainty: np.ndarray


def predict_frames(
    model: nn.Module,
    frames: Sequence[EchoFrame],
    size: int,
    settings: InferenceSettings,
    progress: bool = False,
) -> tuple[list[FramePrediction], dict[str, float]]:
    """Predict every frame; returns the predictions and timing {seconds, seconds_per_image, evaluations}."""
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(settings.seed)
    out, start, evaluations = [], time.perf_counter(), 0
    line = ProgressLine(enabled=progress)
    for first in range(0, len(frames), settings.batch_size):
        batch = frames[first : first + settings.batch_size]
        images = torch.stack([to_network(f.image, size)[0] for f in batch]).to(device)
        if isinstance(model, EchoDND):
            seg = model.segment(
                images,
                steps=settings.steps,
                samples=settings.samples,
                gaussian_sampler=settings.gaussian_sampler,
                bernoulli_sampler=settings.bernoulli_sampler,
                aggregation=settings.aggregation,
                generator=generator,
            )
            probability, uncertainty = seg.probability, seg.uncertainty
            evaluations = seg.evaluations
        else:
            with torch.no_grad():
                probability = model(images, mode="predict")
            uncertainty, evaluations = torch.zeros_like(probability), 1
        for i, frame in enumerate(batch):
            shape = frame.image.shape
            prob = to_native(probability[i, 0].cpu(), shape)
            mask = postprocess_mask(prob, settings.threshold, settings.opening_radius)
            out.append(FramePrediction(frame, prob, mask, to_native(uncertainty[i, 0].cpu(), shape)))
        rate = len(out) / (time.perf_counter() - start)
        line.update(f"segmented {len(out)}/{len(frames)} frames, {rate:.2f} frames/s")
    line.finish()
    seconds = time.perf_counter() - start
    return out, {"seconds": seconds, "seconds_per_image": seconds / max(1, len(frames)), "evaluations": evaluations}


def _patient_ef(views: dict[tuple[str, str], FramePrediction], use_gt: bool) -> float:
    """EF of one patient from its (view, phase) frames: biplane with two views, single plane with one."""
    names = sorted({view for view, _ in views})
    first, second = names[0], names[-1]
    volumes = {}
    for phase in ("ED", "ES"):
        a, b = views[(first, phase)], views[(second, phase)]
        mask_a, mask_b = (a.frame.mask, b.frame.mask) if use_gt else (a.mask, b.mask)
        volumes[phase] = biplane_volume(mask_a, a.frame.spacing, mask_b, b.frame.spacing)
    return ejection_fraction(volumes["ED"], volumes["ES"])


def _ef_table(predictions: Sequence[FramePrediction]) -> dict[str, float]:
    """EF from predicted and from ground-truth masks per patient, against the dataset's EF."""
    by_patient: dict[str, dict[tuple[str, str], FramePrediction]] = defaultdict(dict)
    for p in predictions:
        if p.frame.phase in ("ED", "ES"):
            by_patient[p.frame.patient][(p.frame.view, p.frame.phase)] = p
    errors, gt_errors = [], []
    for views in by_patient.values():
        names = sorted({view for view, _ in views})
        complete = len(names) <= 2 and all((v, ph) in views for v in names for ph in ("ED", "ES"))
        reference = views[(names[0], "ED")].frame.reference_ef if complete else None
        if reference is None:
            continue
        errors.append(abs(_patient_ef(views, use_gt=False) - reference))
        gt_errors.append(abs(_patient_ef(views, use_gt=True) - reference))
    if not errors:
        return {}
    return {
        "ef_mae": _finite_mean(errors),
        "ef_mae_from_gt_masks": _finite_mean(gt_errors),
        "ef_patients": float(len(errors)),
        "ef_undefined": float(len(errors) - np.isfinite(errors).sum()),  # an empty ED mask: EF has no value
    }


def _finite_mean(values: Sequence[float]) -> float:
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else float("nan")


def evaluate_predictions(predictions: Sequence[FramePrediction]) -> dict:
    """{"overall", "by_phase", "by_view" summaries, "pooled_dice", EF errors, "unit", "records" per frame}."""
    labelled = [p for p in predictions if p.frame.mask is not None]
    if not labelled:
        raise ValueError("no ground truth to evaluate against")
    records = []
    line = ProgressLine(enabled=len(labelled) >= 200)  # MONAI's surface distances: ~10 ms per frame
    for p in labelled:
        record = segmentation_metrics(p.mask, p.frame.mask, p.frame.spacing)
        record.update(name=p.frame.name, patient=p.frame.patient, view=p.frame.view, phase=p.frame.phase)
        records.append(record)
        line.update(f"scoring {len(records)}/{len(labelled)} frames")
    line.finish()
    grouped = {key: defaultdict(list) for key in ("phase", "view")}
    for r in records:
        for key in grouped:
            grouped[key][r[key]].append(r)
    return {
        "overall": summarize(records),
        "by_phase": {k: summarize(v) for k, v in sorted(grouped["phase"].items())},
        "by_view": {k: summarize(v) for k, v in sorted(grouped["view"].items())},
        "pooled_dice": pooled_dice([p.mask for p in labelled], [p.frame.mask for p in labelled]),
        **_ef_table(labelled),
        "unit": labelled[0].frame.unit,
        "records": records,
    }


def format_report(result: dict, title: str) -> str:
    """A markdown table in the CAMUS style: rows ED / ES / all, Dice, IoU, HD95, MSD as mean +- std."""
    unit = result["unit"]
    lines = [
        f"**{title}**",
        "",
        f"| phase | frames | Dice | IoU | HD95 ({unit}) | MSD ({unit}) |",
        "|---|---|---|---|---|---|",
    ]
    rows = list(result["by_phase"].items()) if len(result["by_phase"]) <= 4 else []
    for name, s in [*rows, ("all", result["overall"])]:
        cells = [f"{s[k]:.3f} ± {s[k + '_std']:.3f}" for k in ("dice", "iou")]
        cells += [f"{s[k]:.2f} ± {s[k + '_std']:.2f}" for k in ("hd95", "msd")]
        lines.append(f"| {name} | {int(s['count'])} | " + " | ".join(cells) + " |")
    overall = result["overall"]
    lines += ["", f"Pooled Dice (EchoNet style): {result['pooled_dice']:.4f}."]
    if overall["empty_pred"] or overall["empty_gt"]:
        lines.append(
            f"Empty predictions: {int(overall['empty_pred'])}, empty ground truths: {int(overall['empty_gt'])} "
            "(scored by the documented policy: Dice 0, distances = image diagonal)."
        )
    if "ef_mae" in result:
        lines.append(
            f"EF mean absolute error over {int(result['ef_patients'])} patients: {result['ef_mae']:.2f} points "
            f"(from ground-truth masks: {result['ef_mae_from_gt_masks']:.2f})"
            + (f"; undefined for {int(result['ef_undefined'])} (empty ED mask)." if result["ef_undefined"] else ".")
        )
    return "\n".join(lines)
