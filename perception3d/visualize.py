"""Bird's-eye-view figures of cooperative perception: LiDAR points, ground-truth and detected boxes per agent and
fused, and AP against pose noise (the CoAlign-style robustness curve).

Boxes are ``[x, y, z, l, w, h, yaw]`` in the ego LiDAR frame (see `diffusekit.perception3d.boxes`); each is drawn as
its BEV rectangle with a line from the centre to the middle of its front edge (corners 0-1), so the heading shows.
Figures are built on stand-alone matplotlib ``Figure`` objects (`diffusekit.core.figures`), never through pyplot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diffusekit.core.figures import new_figure, save_figure
from diffusekit.perception3d.boxes import as_boxes, bev_corners

__all__ = [
    "ap_vs_noise_figure",
    "cooperative_scene_figure",
    "plot_ap_vs_noise",
    "plot_bev",
    "plot_cooperative_scene",
]

MAX_POINTS = 60_000  # points drawn per panel; more only slows the drawing down
GT_COLOR = "#2ca02c"
DET_COLOR = "#d62728"
POINT_COLOR = "0.55"
FUSED = "fused"


def _numpy(x: Any) -> np.ndarray:
    import torch

    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _range(point_cloud_range: Any) -> np.ndarray | None:
    if point_cloud_range is None:
        return None
    r = np.asarray(_numpy(point_cloud_range), dtype=np.float64).reshape(-1)
    if r.shape != (6,) or not (r[:3] < r[3:]).all():
        raise ValueError(f"point_cloud_range must be [x_min, y_min, z_min, x_max, y_max, z_max], got {r.tolist()}")
    return r


def _agent_colors(count: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(count)]


def _draw_boxes(ax, boxes: np.ndarray, color: str, alphas: np.ndarray, linewidth: float, zorder: int) -> None:
    """BEV outlines plus heading lines (centre -> middle of the front edge) of (M, 7) boxes, one alpha per box."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba

    if boxes.shape[0] == 0:
        return
    corners = bev_corners(boxes)
    outlines = np.concatenate([corners, corners[:, :1]], axis=1)
    headings = np.stack([boxes[:, :2], corners[:, :2].mean(axis=1)], axis=1)
    rgba = np.tile(to_rgba(color), (boxes.shape[0], 1))
    rgba[:, 3] = alphas
    for segments in (outlines, headings):
        ax.add_collection(LineCollection(segments, colors=rgba, linewidths=linewidth, zorder=zorder))


def plot_bev(
    ax,
    points: Any = None,
    gt_boxes: Any = None,
    det_boxes: Any = None,
    det_scores: Any = None,
    point_cloud_range: Any = None,
    title: str = "",
    point_colors: Any = None,
    max_points: int = MAX_POINTS,
) -> None:
    """Draw a bird's-eye view on ``ax``: ``points`` (N, >=2) as small grey dots (or ``point_colors``: one colour,
    or an (N, 3|4) RGB(A) array; cropped to the range, then at most ``max_points`` of them by a regular stride),
    ``gt_boxes`` as green outlines, ``det_boxes`` as red outlines whose opacity follows ``det_scores`` (clipped to
    [0.15, 1]), each box with its heading line; equal aspect, metres on the axes, limits from ``point_cloud_range``
    when given."""
    from matplotlib.lines import Line2D

    r = _range(point_cloud_range)
    if points is not None:
        xy = _numpy(points)
        if xy.ndim != 2 or xy.shape[1] < 2:
            raise ValueError(f"points must be an (N, >=2) array, got shape {xy.shape}")
        xy = xy[:, :2].astype(np.float64)
        colors = POINT_COLOR if point_colors is None else point_colors
        per_point = isinstance(colors, np.ndarray) and colors.ndim == 2
        if per_point and colors.shape[0] != xy.shape[0]:
            raise ValueError(f"{colors.shape[0]} point colours for {xy.shape[0]} points")
        keep = np.isfinite(xy).all(axis=1)
        if r is not None:
            keep &= np.all((xy >= r[:2]) & (xy <= r[3:5]), axis=1)
        index = np.flatnonzero(keep)
        index = index[:: max(1, math.ceil(index.size / max(int(max_points), 1)))]
        ax.scatter(
            xy[index, 0],
            xy[index, 1],
            s=0.6,
            **({"c": colors[index]} if per_point else {"color": colors}),
            marker=".",
            linewidths=0,
            rasterized=True,
            zorder=1,
        )
    handles = []
    if gt_boxes is not None:
        gt = as_boxes(gt_boxes, "gt_boxes")
        _draw_boxes(ax, gt, GT_COLOR, np.ones(gt.shape[0]), linewidth=1.2, zorder=3)
        handles.append(Line2D([], [], color=GT_COLOR, label=f"ground truth ({gt.shape[0]})"))
    if det_boxes is not None:
        det = as_boxes(det_boxes, "det_boxes")
        if det_scores is None:
            alphas = np.ones(det.shape[0])
        else:
            alphas = np.clip(_numpy(det_scores).astype(np.float64).reshape(-1), 0.15, 1.0)
            if alphas.shape[0] != det.shape[0]:
                raise ValueError(f"{det.shape[0]} detection boxes but {alphas.shape[0]} scores")
        _draw_boxes(ax, det, DET_COLOR, alphas, linewidth=1.0, zorder=4)
        handles.append(Line2D([], [], color=DET_COLOR, label=f"detections ({det.shape[0]})"))
    if r is not None:
        ax.set_xlim(r[0], r[3])
        ax.set_ylim(r[1], r[4])
    else:
        ax.autoscale_view()
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x (m)", fontsize=8)
    ax.set_ylabel("y (m)", fontsize=8)
    ax.tick_params(labelsize=7)
    if handles:
        ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
    if title:
        ax.set_title(title, fontsize=9)


def _layout(count: int, extent: tuple[float, float]) -> tuple[int, int, tuple[float, float]]:
    """(rows, cols, figsize) for ``count`` panels of width/height ``extent``: wide ranges (OPV2V's 281.6 x 80 m)
    stack in one column, square ones go three abreast."""
    aspect = max(extent[0], 1e-6) / max(extent[1], 1e-6)
    cols = 1 if aspect >= 2.5 else 2 if aspect >= 1.2 else 3
    cols = max(1, min(cols, count))
    rows = math.ceil(count / cols)
    panel_width = {1: 11.0, 2: 6.5, 3: 4.6}[cols]
    panel_height = panel_width / aspect + 0.8
    return rows, cols, (panel_width * cols, min(panel_height * rows + 0.5, 60.0))


def cooperative_scene_figure(
    sample_points_in_ego_frame: Sequence[Any],
    agent_names: Sequence[str],
    agent_positions: Any,
    gt_boxes: Any,
    detections_per_panel: Mapping[str, tuple[Any, Any]] | None = None,
    point_cloud_range: Any = None,
    title: str = "",
):
    """The figure of `plot_cooperative_scene` (a matplotlib ``Figure`` with one axes per agent plus "fused")."""
    count = len(sample_points_in_ego_frame)
    positions = np.asarray(_numpy(agent_positions), dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] < 2:
        raise ValueError(f"agent_positions must be an (A, 2) array of ego-frame xy, got shape {positions.shape}")
    positions = positions[:, :2]
    if count == 0:
        raise ValueError("a cooperative scene needs at least one agent's points")
    if len(agent_names) != count or positions.shape[0] != count:
        raise ValueError(
            f"{count} point clouds, {len(agent_names)} agent names and {positions.shape[0]} positions: "
            "one of each per agent"
        )
    panels = [*map(str, agent_names), FUSED]
    detections = dict(detections_per_panel or {})
    unknown = set(detections) - set(panels)
    if unknown:
        raise ValueError(f"detections for unknown panels {sorted(unknown)}; panels are {panels}")
    clouds = [_numpy(p) for p in sample_points_in_ego_frame]
    clouds = [cloud if cloud.size else np.zeros((0, 2)) for cloud in clouds]
    for name, cloud in zip(agent_names, clouds):
        if cloud.ndim != 2 or cloud.shape[1] < 2:
            raise ValueError(f"the points of agent {name} must be an (N, >=2) array, got shape {cloud.shape}")
    r = _range(point_cloud_range)
    if r is not None:
        extent = (r[3] - r[0], r[4] - r[1])
    else:
        xy = np.concatenate([c[:, :2] for c in clouds] + [positions]) if any(c.size for c in clouds) else positions
        extent = tuple(np.ptp(xy, axis=0)) if xy.shape[0] > 1 else (1.0, 1.0)
    rows, cols, figsize = _layout(len(panels), extent)
    fig = new_figure(figsize)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).reshape(-1)
    for extra in axes[len(panels) :]:
        fig.delaxes(extra)
    colors = _agent_colors(count)
    fused_points = np.concatenate([c[:, :2] for c in clouds])
    fused_colors = np.concatenate([np.tile(np.asarray(colors[i])[None], (c.shape[0], 1)) for i, c in enumerate(clouds)])
    fused_colors[:, 3] = 0.8
    for k, (ax, name) in enumerate(zip(axes, panels)):
        is_fused = name == FUSED
        det_boxes, det_scores = detections.get(name, (None, None))
        plot_bev(
            ax,
            fused_points if is_fused else clouds[k],
            gt_boxes,
            det_boxes,
            det_scores,
            point_cloud_range=r,
            title=f"fused ({count} agents)" if is_fused else f"{name}: own LiDAR",
            point_colors=fused_colors if is_fused else None,
        )
        for i, (position, agent) in enumerate(zip(positions, agent_names)):
            own = is_fused or i == k
            ax.scatter(
                [position[0]],
                [position[1]],
                marker="*" if i == 0 else "^",
                s=120 if own else 45,
                color=colors[i] if own else "0.35",
                edgecolors="black",
                linewidths=0.6,
                zorder=5,
            )
            ax.annotate(str(agent), position, textcoords="offset points", xytext=(5, 5), fontsize=7, zorder=6)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_cooperative_scene(
    path: str | Path,
    sample_points_in_ego_frame: Sequence[Any],
    agent_names: Sequence[str],
    agent_positions: Any,
    gt_boxes: Any,
    detections_per_panel: Mapping[str, tuple[Any, Any]] | None = None,
    point_cloud_range: Any = None,
    title: str = "",
    dpi: int = 100,
) -> Path:
    """One BEV panel per agent (its own points, already in the ego frame) and a "fused" panel (all points, coloured
    by agent), the GT boxes on each, the detections of ``detections_per_panel[panel name] = (boxes, scores)``, and
    every agent's position (ego = star; the panel's own agent highlighted). Writes a PNG; returns its path."""
    fig = cooperative_scene_figure(
        sample_points_in_ego_frame,
        agent_names,
        agent_positions,
        gt_boxes,
        detections_per_panel,
        point_cloud_range,
        title,
    )
    return save_figure(fig, path, dpi=dpi)


def ap_vs_noise_figure(
    results: Mapping[str, Sequence[tuple[float, float]]],
    metric_name: str = "AP@0.5",
    x_label: str = "pose noise std (m / deg)",
    title: str = "",
):
    """The figure of `plot_ap_vs_noise` (one matplotlib ``Figure``, one axes)."""
    if not results:
        raise ValueError("no results to plot")
    fig = new_figure((6.0, 4.0))
    ax = fig.subplots()
    highest = 0.0
    for method, pairs in results.items():
        curve = np.asarray(pairs, dtype=np.float64).reshape(-1, 2)
        curve = curve[np.argsort(curve[:, 0], kind="stable")]
        ax.plot(curve[:, 0], curve[:, 1], marker="o", linewidth=1.5, markersize=4, label=str(method))
        if np.isfinite(curve[:, 1]).any():
            highest = max(highest, float(np.nanmax(curve[:, 1])))
    if highest <= 1.0:  # APs: from 0, and tight enough above that small differences between methods show
        ax.set_ylim(0.0, min(1.02, max(0.05, 1.15 * highest)))
    ax.set_xlabel(x_label)
    ax.set_ylabel(metric_name)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{metric_name} against pose noise", fontsize=10)
    return fig


def plot_ap_vs_noise(
    path: str | Path,
    results: Mapping[str, Sequence[tuple[float, float]]],
    metric_name: str = "AP@0.5",
    x_label: str = "pose noise std (m / deg)",
    title: str = "",
    dpi: int = 100,
) -> Path:
    """AP against pose-noise level, one line per method (``results[method] = [(noise_std, ap), ...]``, e.g. the
    CoAlign sweep 0 / 0.2 / 0.4 / 0.6); NaN APs leave gaps. Writes a PNG; returns its path."""
    return save_figure(ap_vs_noise_figure(results, metric_name, x_label, title), path, dpi=dpi)
