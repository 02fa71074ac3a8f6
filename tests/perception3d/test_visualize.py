"""BEV figures: what is drawn (boxes, headings, point subsampling, panels), and the PNGs written."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection

from diffusekit.core.figures import new_figure
from diffusekit.perception3d.visualize import (
    ap_vs_noise_figure,
    cooperative_scene_figure,
    plot_ap_vs_noise,
    plot_bev,
    plot_cooperative_scene,
)

RNG = np.random.default_rng(3)
PCR = [-140.8, -40.0, -3.0, 140.8, 40.0, 1.0]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def cloud(count: int, centre=(0.0, 0.0)) -> np.ndarray:
    points = np.zeros((count, 4), dtype=np.float32)
    points[:, :2] = RNG.normal(centre, 6.0, (count, 2))
    points[:, 3] = RNG.uniform(0, 1, count)
    return points


GT = np.array([[10.0, 2.0, -1.0, 4.0, 2.0, 1.5, 0.0], [-20.0, -5.0, -1.0, 4.5, 1.9, 1.6, math.pi / 2]])


def line_collections(ax) -> list[LineCollection]:
    return [c for c in ax.collections if isinstance(c, LineCollection)]


def test_plot_bev_draws_outlines_and_headings_with_score_alphas():
    ax = new_figure().subplots()
    det = GT + [0.3, 0.1, 0, 0, 0, 0, 0.05]
    plot_bev(ax, cloud(500), GT, det, torch.tensor([0.9, 0.05]), point_cloud_range=PCR, title="ego")
    gt_outline, gt_heading, det_outline, det_heading = line_collections(ax)
    assert len(gt_outline.get_segments()) == 2 and len(det_heading.get_segments()) == 2
    # the heading of the first GT box goes from its centre (10, 2) to the middle of its front edge (12, 2)
    np.testing.assert_allclose(gt_heading.get_segments()[0], [[10, 2], [12, 2]], atol=1e-9)
    # the quarter-turned box heads along +y: centre (-20, -5) to (-20, -2.75)
    np.testing.assert_allclose(gt_heading.get_segments()[1], [[-20, -5], [-20, -2.75]], atol=1e-9)
    np.testing.assert_allclose(det_outline.get_colors()[:, 3], [0.9, 0.15])  # alpha = score clipped to [0.15, 1]
    np.testing.assert_allclose(gt_outline.get_colors()[:, 3], 1.0)
    assert ax.get_xlim() == (PCR[0], PCR[3]) and ax.get_ylim() == (PCR[1], PCR[4])
    assert ax.get_aspect() == 1.0
    assert ax.get_xlabel() == "x (m)" and ax.get_title() == "ego"
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels == ["ground truth (2)", "detections (2)"]


def test_plot_bev_crops_to_the_range_and_subsamples_the_points():
    ax = new_figure().subplots()
    points = cloud(10_000)
    points[:100, 0] = 500.0  # outside the range
    plot_bev(ax, points, GT, point_cloud_range=PCR, max_points=1000)
    (scatter,) = [c for c in ax.collections if isinstance(c, PathCollection)]
    drawn = scatter.get_offsets()
    assert 900 <= len(drawn) <= 1000
    assert (np.asarray(drawn)[:, 0] < 200).all()


def test_plot_bev_without_points_or_range_autoscales_to_the_boxes():
    ax = new_figure().subplots()
    plot_bev(ax, None, GT)
    x0, x1 = ax.get_xlim()
    assert x0 <= -22 and x1 >= 12
    with pytest.raises(ValueError, match="2 detection boxes but 1 scores"):
        plot_bev(ax, None, GT, GT, [0.5])


def test_cooperative_scene_has_one_panel_per_agent_plus_fused(tmp_path):
    clouds = [cloud(800), cloud(600, (30, 5)), cloud(400, (-40, 0))]
    names = ["cav 641", "cav 650", "infra -1"]
    positions = np.array([[0.0, 0.0], [30.0, 5.0], [-40.0, 0.0]])
    detections = {"fused": (GT, np.array([0.9, 0.8])), "cav 650": (GT[:1], np.array([0.4]))}
    fig = cooperative_scene_figure(clouds, names, positions, GT, detections, PCR, title="scene")
    assert len(fig.axes) == 4  # wide OPV2V range: one column, no empty panels
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["cav 641: own LiDAR", "cav 650: own LiDAR", "infra -1: own LiDAR", "fused (3 agents)"]
    fused_points = [c for c in fig.axes[3].collections if isinstance(c, PathCollection)][0]
    assert len(fused_points.get_offsets()) == 1800
    assert len(line_collections(fig.axes[0])) == 2 and len(line_collections(fig.axes[1])) == 4
    path = plot_cooperative_scene(tmp_path / "figs" / "scene.png", clouds, names, positions, GT, detections, PCR)
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5000


def test_cooperative_scene_on_a_square_range_drops_unused_panels():
    square = [-32.0, -32.0, -3.0, 32.0, 32.0, 2.0]  # V2X-Sim: three panels abreast
    fig = cooperative_scene_figure([cloud(100)] * 4, list("abcd"), np.zeros((4, 2)), GT, None, square)
    assert len(fig.axes) == 5
    with pytest.raises(ValueError, match="detections for unknown panels"):
        cooperative_scene_figure([cloud(10)], ["a"], np.zeros((1, 2)), GT, {"b": (GT, [1, 1])}, square)
    with pytest.raises(ValueError, match="one of each per agent"):
        cooperative_scene_figure([cloud(10)] * 2, ["a"], np.zeros((2, 2)), GT, None, square)


def test_ap_vs_noise_draws_one_sorted_line_per_method(tmp_path):
    results = {"CoDiff": [(0.4, 0.61), (0.0, 0.8), (0.2, 0.72)], "late fusion": [(0.0, 0.7), (0.4, math.nan)]}
    fig = ap_vs_noise_figure(results, "AP@0.7")
    (ax,) = fig.axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["CoDiff", "late fusion"]
    np.testing.assert_allclose(lines[0].get_xdata(), [0.0, 0.2, 0.4])
    np.testing.assert_allclose(lines[0].get_ydata(), [0.8, 0.72, 0.61])
    assert ax.get_ylabel() == "AP@0.7" and ax.get_ylim() == pytest.approx((0.0, 0.92))  # 1.15 x the highest AP
    path = plot_ap_vs_noise(tmp_path / "ap.png", results, "AP@0.7")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5000
