"""PoseTrack mAP by the rules of poseval (``evaluateAP.py`` / ``eval_helpers.py``), plus its mmengine twin.

Ported rather than called: poseval is not on PyPI (git only) and needs the 2017 format round trip. The rules, in
the order poseval applies them:

1. Per video, the ground-truth and prediction files are aligned frame by frame; frames whose ground truth has no
   person (unlabelled frames) are dropped from both.
2. Joints inside an ignore polygon (strictly inside, shapely ``contains``) are removed from ground truth and
   predictions; a person left without joints is removed.
3. Per frame: head size = 0.6 x the diagonal of the ground-truth head box; a predicted joint matches when its
   distance to the ground-truth joint is <= 0.5 head sizes (PCKh@0.5). PCKh(pred, gt) = matches / annotated gt
   joints; each prediction keeps its best ground truth, then each ground truth its best prediction (1:1).
4. Joints of a matched prediction are true positives where they match, false positives elsewhere; joints of an
   unmatched prediction are false positives. nGT = the annotated ground-truth joints.
5. Per joint over the whole dataset: sort the joint scores (descending), precision/recall, VOC all-point AP (x100).
   Head = mean(head_top, neck, nose); Shou ... Ank = left/right means; Total = mean of the 15 joint APs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from diffusekit.core.errors import DataError
from diffusekit.pose.posetrack import KEYPOINTS, POSEVAL_JOINTS, PoseFrame, PosePerson, read_video

__all__ = ["COLUMNS", "PoseTrackAP", "PoseTrackAPMetric", "posetrack_ap", "posetrack_ap_videos", "voc_ap"]

JOINT_NAMES = tuple(KEYPOINTS[i] for i in POSEVAL_JOINTS)  # poseval's 15 joints, in its order
# poseval's table columns as indices into its 15 joints (getCum)
COLUMNS = {
    "Head": (14, 12, 13),
    "Shou": (8, 9),
    "Elb": (7, 10),
    "Wri": (6, 11),
    "Hip": (2, 3),
    "Knee": (1, 4),
    "Ank": (0, 5),
}
MIN_SCORE = -9999.0  # poseval's score for a predicted joint without one
MAX_TRACK_ID = 10000


@dataclass
class PoseTrackAP:
    """Per-joint AP, precision and recall (percent, poseval's 15 joints) and the table columns incl. Total."""

    joints: dict[str, float]
    precision: dict[str, float]
    recall: dict[str, float]
    columns: dict[str, float]
    frames: int
    gt_joints: int

    @property
    def total(self) -> float:
        return self.columns["Total"]

    def table(self) -> str:
        names = list(self.columns)
        return (
            "| " + " | ".join(names) + " |\n|" + "---:|" * len(names) + "\n| "
            + " | ".join(f"{self.columns[n]:.1f}" for n in names) + " |"
        )  # fmt: skip


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point average precision (``eval_helpers.VOCap``): area under the monotone precision envelope."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[steps] - mrec[steps - 1]) * mpre[steps]))


def _inside(points: np.ndarray, polygons: list[np.ndarray]) -> np.ndarray:
    """(N,) bool: strictly inside any polygon (shapely ``contains``, as poseval)."""
    import shapely

    inside = np.zeros(len(points), dtype=bool)
    geometry = [shapely.Polygon(p) for p in polygons if len(p) >= 3]
    if not geometry or not len(points):
        return inside
    pts = shapely.points(points)
    for polygon in geometry:
        inside |= shapely.contains(polygon, pts)
    return inside


def _joints(person: PosePerson, polygons: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(15, 2) positions, (15,) annotated-and-not-ignored, (15,) scores in poseval's joint order."""
    keypoints = person.keypoints[list(POSEVAL_JOINTS)]
    has = person.annotated[list(POSEVAL_JOINTS)]
    if polygons:
        has &= ~_inside(keypoints[:, :2], polygons)
    scores = np.full(len(POSEVAL_JOINTS), MIN_SCORE) if person.scores is None else person.scores[list(POSEVAL_JOINTS)]
    return keypoints[:, :2], has, scores


def _frame_people(frame_people: Sequence[PosePerson], polygons: list[np.ndarray]):
    people = [_joints(p, polygons) for p in frame_people]
    if polygons:  # poseval drops a person left without joints only in frames that have ignore regions
        keep = [i for i, (_, has, _) in enumerate(people) if has.any()]
        return [people[i] for i in keep], keep
    return people, list(range(len(people)))


def _match_frame(gt: PoseFrame, pred_people: Sequence[PosePerson], threshold: float, path: Path | None):
    """poseval ``assignGTmulti`` for one frame: (scores, labels) per joint and the annotated GT joint counts."""
    gts, kept = _frame_people(gt.people, gt.ignore_regions)
    preds, _ = _frame_people(pred_people, gt.ignore_regions)
    n_joints = len(POSEVAL_JOINTS)
    has_gt = np.array([h for _, h, _ in gts], dtype=bool).reshape(len(gts), n_joints)
    has_pr = np.array([h for _, h, _ in preds], dtype=bool).reshape(len(preds), n_joints)
    score = np.array([s for _, _, s in preds], dtype=np.float64).reshape(len(preds), n_joints)
    labels = np.zeros((len(preds), n_joints), dtype=bool)
    if preds and gts:
        heads = []
        for i, person in zip(kept, gts):
            box = gt.people[i].head_box
            if box is None:
                if person[1].any():
                    raise DataError(f"frame {gt.file_name}: a ground-truth person has joints but no bbox_head", path)
                box = np.array([0.0, 0.0, 1.0, 1.0])  # no joints: never matched, the size is irrelevant
            heads.append(0.6 * np.hypot(box[2], box[3]))
        gt_xy = np.stack([p[0] for p in gts])  # (G, 15, 2)
        pr_xy = np.stack([p[0] for p in preds])  # (P, 15, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.linalg.norm(pr_xy[:, None] - gt_xy[None], axis=-1) / np.asarray(heads)[None, :, None]
        dist[~(has_pr[:, None] & has_gt[None])] = np.inf
        match = dist <= threshold  # (P, G, 15)
        n_gt = has_gt.sum(1)
        pck = match.sum(2).astype(np.float64)
        pck = np.where(n_gt[None] > 0, pck / np.maximum(n_gt[None], 1), pck)
        best_gt = pck.argmax(1)  # each prediction keeps its best ground truth ...
        pck = np.where(np.arange(len(gts))[None] == best_gt[:, None], pck, 0.0)
        pred_for_gt = pck.argmax(0)  # ... then each ground truth its best prediction
        pred_for_gt[pck.max(0) == 0] = -1
        for g, p in enumerate(pred_for_gt):
            if p >= 0:
                labels[p] = match[p, g]
    return score, labels, has_pr, has_gt.sum(0)


def posetrack_ap_videos(pairs, threshold: float = 0.5) -> PoseTrackAP:
    """AP over ``pairs`` of (ground-truth `PoseVideo`, per-frame predicted people), poseval's rules."""
    n_joints = len(POSEVAL_JOINTS)
    scores: list[list[np.ndarray]] = [[] for _ in range(n_joints)]
    labels: list[list[np.ndarray]] = [[] for _ in range(n_joints)]
    n_gt = np.zeros(n_joints)
    frames = 0
    for gt, predicted in pairs:
        if len(predicted) != len(gt.frames):
            raise DataError(f"{len(predicted)} prediction frames for {len(gt.frames)} ground-truth frames", gt.path)
        for frame, people in zip(gt.frames, predicted):
            if not frame.people:  # unlabelled frame: dropped from both sides
                continue
            frames += 1
            s, lab, has_pr, gt_count = _match_frame(frame, people, threshold, gt.path)
            n_gt += gt_count
            for j in range(n_joints):
                scores[j].append(s[has_pr[:, j], j])
                labels[j].append(lab[has_pr[:, j], j])
    ap, precision, recall = np.zeros(n_joints), np.zeros(n_joints), np.zeros(n_joints)
    for j in range(n_joints):
        s, lab = np.concatenate(scores[j] or [[]]), np.concatenate(labels[j] or [[]])
        if not len(s):
            continue  # poseval leaves a joint without predictions at AP 0
        order = s.argsort()[::-1]  # the same call as poseval's computeRPC (its tie order included)
        true_pos = np.cumsum(lab[order])
        with np.errstate(divide="ignore", invalid="ignore"):
            rec = true_pos / n_gt[j]
        prec = true_pos / np.arange(1, len(s) + 1)
        ap[j], precision[j], recall[j] = 100 * voc_ap(rec, prec), 100 * prec[-1], 100 * rec[-1]
    columns = {name: float(np.mean(ap[list(idx)])) for name, idx in COLUMNS.items()}
    columns["Total"] = float(np.nanmean(ap)) if not np.isnan(ap).all() else float("nan")
    return PoseTrackAP(
        dict(zip(JOINT_NAMES, ap.tolist())),
        dict(zip(JOINT_NAMES, precision.tolist())),
        dict(zip(JOINT_NAMES, recall.tolist())),
        columns,
        frames,
        int(n_gt.sum()),
    )


def _check_track_ids(people: Sequence[PosePerson], frame: PoseFrame, path: Path) -> None:
    ids = [p.track_id for p in people]
    if len(set(ids)) != len(ids):
        raise DataError(f"frame {frame.file_name}: track ids are not unique ({ids})", path)
    if ids and max(ids) >= MAX_TRACK_ID:
        raise DataError(f"frame {frame.file_name}: track id {max(ids)} >= {MAX_TRACK_ID}", path)


def posetrack_ap(gt_dir: str | Path, pred_dir: str | Path, threshold: float = 0.5) -> PoseTrackAP:
    """PoseTrack mAP of the per-video PoseTrack18 (or 17) JSON files in ``pred_dir`` against ``gt_dir``.

    Every ground-truth file needs a prediction file of the same name listing the same frames in the same order
    (what `write_video` writes); a predicted joint without a score counts with poseval's -9999.
    """
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    files = sorted(gt_dir.glob("*.json"))
    if not files:
        raise DataError("no ground-truth JSON files", gt_dir)
    pairs = []
    for file in files:
        gt = read_video(file)
        pred_file = pred_dir / file.name
        if not pred_file.is_file():
            raise DataError(f"no prediction file for ground-truth video {file.name}", pred_file)
        pred = read_video(pred_file)
        if len(pred.frames) != len(gt.frames):
            raise DataError(f"{len(pred.frames)} frames, the ground truth {file} has {len(gt.frames)}", pred_file)
        for g, p in zip(gt.frames, pred.frames):
            if g.image_id != p.image_id:
                message = f"frame {p.file_name} (id {p.image_id}) where the ground truth has id {g.image_id}"
                raise DataError(message, pred_file)
            _check_track_ids(p.people, p, pred_file)
        pairs.append((gt, [f.people for f in pred.frames]))
    return posetrack_ap_videos(pairs, threshold)


@METRICS.register_module()
class PoseTrackAPMetric(BaseMetric):
    """mmengine twin of `posetrack_ap_videos`: ``process`` takes per-frame predictions, ``compute_metrics`` the AP
    as ``"<column> AP"`` (prefix ``posetrack/``; the headline is ``posetrack/Total AP``).

    Two kinds of samples: dicts with ``video`` (the ground-truth `PoseVideo`), ``frame`` (its frame index) and
    ``people`` (the predicted `PosePerson` list of that frame); or, in mmengine's validation loop, the heatmaps
    (K, h, w) that a model predicts for each crop of a `PoseTrackClips` batch, decoded through the dataset's
    ``metainfo`` (videos, items, codec, padding) and the batch's ``index`` and ``matrix``. Poses of detected boxes
    are rescored (``keypoint_score_thr``) and go through OKS NMS per frame (``nms_thr``), as MMPose's
    ``PoseTrack18Metric`` does (`diffusekit.pose.detections`).
    """

    default_prefix = "posetrack"

    def __init__(self, keypoint_score_thr: float = 0.2, nms_thr: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.keypoint_score_thr = float(keypoint_score_thr)
        self.nms_thr = float(nms_thr)

    def process(self, data_batch: Any, data_samples: Sequence) -> None:
        if not len(data_samples) or isinstance(data_samples[0], dict):
            for sample in data_samples:
                self.results.append((sample["video"], sample["frame"], list(sample["people"]), None))
            return
        from diffusekit.pose.detections import crop_area
        from diffusekit.pose.inference import decode_people

        meta = self.dataset_meta or {}
        if "items" not in meta:
            raise ValueError("heatmap samples need the dataset's metainfo (videos, items, codec): use PoseTrackClips")
        heatmaps = torch.stack([torch.as_tensor(sample) for sample in data_samples]).float().cpu()
        indices, matrices = data_batch["index"], np.asarray(data_batch["matrix"])
        width, height = meta["codec"].input_size
        decoded = decode_people(meta["videos"], meta["items"], meta["codec"], heatmaps, indices, matrices,
                                self.keypoint_score_thr)  # fmt: skip
        for item, person in decoded:
            area = None if item.person is not None else crop_area(item.box, width / height, meta.get("padding", 1.25))
            self.results.append((meta["videos"][item.video], item.frame, [person], area))

    def compute_metrics(self, results: list) -> dict[str, float]:
        from diffusekit.pose.detections import suppress_duplicates

        videos: dict[str, tuple] = {}
        areas: dict[tuple[str, int], list[float]] = {}
        for video, frame, people, area in results:
            entry = videos.setdefault(video.name, (video, [[] for _ in video.frames]))
            entry[1][frame].extend(people)
            if area is not None:  # people of detected boxes (one per sample)
                areas.setdefault((video.name, frame), []).append(area)
        for (name, frame), frame_areas in areas.items():
            frames = videos[name][1]
            frames[frame] = suppress_duplicates(frames[frame], frame_areas, self.nms_thr)
        ap = posetrack_ap_videos(list(videos.values()))
        return {f"{name} AP": value for name, value in ap.columns.items()}
