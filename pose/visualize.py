"""Skeleton overlays on frames (OpenCV, written as images) and a grid figure of crops with predicted joints."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from diffusekit.core.figures import new_figure, save_figure, subplots
from diffusekit.pose.posetrack import KEYPOINTS, SKELETON, PosePerson

__all__ = ["draw_people", "plot_crops", "plot_lifting"]

_LEFT = {i for i, name in enumerate(KEYPOINTS) if name.startswith("left")}
_RIGHT = {i for i, name in enumerate(KEYPOINTS) if name.startswith("right")}


def _color(i: int) -> tuple[int, int, int]:
    """BGR: left joints blue, right joints orange, centre joints green."""
    return (230, 120, 30) if i in _LEFT else (20, 140, 255) if i in _RIGHT else (60, 200, 60)


def draw_people(image: np.ndarray, people: Sequence[PosePerson], min_score: float = 0.2) -> np.ndarray:
    """A copy of ``image`` (BGR) with each person's skeleton, joints (score >= ``min_score``) and track id."""
    out = image.copy()
    scale = max(1, round(max(image.shape[:2]) / 400))
    for person in people:
        k = person.keypoints
        scores = person.scores if person.scores is not None else k[:, 2]
        shown = person.annotated & (scores >= min_score)
        for a, b in SKELETON:
            if shown[a] and shown[b]:
                pa, pb = tuple(np.round(k[a, :2]).astype(int)), tuple(np.round(k[b, :2]).astype(int))
                cv2.line(out, pa, pb, _color(b), 2 * scale, cv2.LINE_AA)
        for i in np.flatnonzero(shown):
            cv2.circle(out, tuple(np.round(k[i, :2]).astype(int)), 2 * scale, _color(i), -1, cv2.LINE_AA)
        if shown.any():
            top = k[shown, :2].min(0).astype(int)
            cv2.putText(out, str(person.track_id), (int(top[0]), max(10, int(top[1]) - 4)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale, (255, 255, 255), scale, cv2.LINE_AA)  # fmt: skip
    return out


def plot_crops(
    path: str | Path,
    crops: Sequence[np.ndarray],
    predicted: Sequence[np.ndarray],
    truth: Sequence[np.ndarray] | None = None,
    title: str = "",
    columns: int = 6,
) -> Path:
    """A grid of RGB crops with predicted joints (filled) and ground truth (rings); returns the saved path."""
    n = len(crops)
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = subplots(rows, columns, figsize=(2 * columns, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:n]):
        ax.imshow(crops[i])
        p = predicted[i]
        for a, b in SKELETON:
            ax.plot(p[[a, b], 0], p[[a, b], 1], "-", lw=1.2, color="tab:blue" if b in _LEFT else "tab:orange")
        ax.scatter(p[:, 0], p[:, 1], s=6, c="yellow", zorder=3)
        if truth is not None:
            ax.scatter(truth[i][:, 0], truth[i][:, 1], s=14, facecolors="none", edgecolors="white", lw=0.8, zorder=4)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_lifting(
    path: str | Path,
    keypoints_2d: np.ndarray,
    hypotheses: np.ndarray,
    parents: Sequence[int],
    left: Sequence[int],
    truth: np.ndarray | None = None,
    frame_ids: Sequence[int] | None = None,
    title: str = "",
) -> Path:
    """One row per frame: the 2D input (pixels, zoomed on the person) beside the 3D pose (mm, root-relative;
    camera axes drawn with depth as the second axis and -y up). ``hypotheses`` (H, F, J, 3): each drawn faint, their
    mean bold; ``truth`` (F, J, 3) dashed black. Left limbs blue, right orange."""
    frames = len(keypoints_2d)
    fig = new_figure(figsize=(7, 3.2 * frames))
    left = set(left)
    mean = hypotheses.mean(0)
    span = max(float(np.abs(mean).max()), 1e-6) * 1.1

    def color(j: int) -> str:
        return "tab:blue" if j in left else "tab:orange"

    for row in range(frames):
        ax = fig.add_subplot(frames, 2, 2 * row + 1)
        k = keypoints_2d[row]
        for j, p in enumerate(parents):
            if p >= 0:
                ax.plot(k[[p, j], 0], k[[p, j], 1], "-", lw=2, color=color(j))
        low, high = k.min(0), k.max(0)
        pad = 0.25 * float((high - low).max()) + 1
        centre = (low + high) / 2
        half = float((high - low).max()) / 2 + pad
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] + half, centre[1] - half)  # image y grows downwards
        ax.set_aspect("equal")
        ax.set_title(f"2D input, frame {frame_ids[row] if frame_ids is not None else row}", fontsize=9)
        ax3 = fig.add_subplot(frames, 2, 2 * row + 2, projection="3d")
        for h in hypotheses[:, row]:
            for j, p in enumerate(parents):
                if p >= 0:
                    ax3.plot(h[[p, j], 0], h[[p, j], 2], -h[[p, j], 1], "-", lw=0.6, alpha=0.35, color=color(j))
        for j, p in enumerate(parents):
            if p >= 0:
                m = mean[row]
                ax3.plot(m[[p, j], 0], m[[p, j], 2], -m[[p, j], 1], "-", lw=2.2, color=color(j))
                if truth is not None:
                    g = truth[row]
                    ax3.plot(g[[p, j], 0], g[[p, j], 2], -g[[p, j], 1], "--", lw=1, color="black")
        for setter in (ax3.set_xlim, ax3.set_ylim, ax3.set_zlim):
            setter(-span, span)
        ax3.set_xlabel("x")
        ax3.set_ylabel("depth")
        ax3.set_zlabel("up")
        caption = f"3D: {len(hypotheses)} hypotheses (faint), mean (bold)"
        ax3.set_title(caption + (", truth dashed" if truth is not None else ""), fontsize=9)
    fig.suptitle(title)
    return save_figure(fig, path)
