"""BEV box geometry: OpenCOOD's corner order, rotated IoU against closed forms and rasterised areas, greedy NMS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
import torch

from diffusekit.perception3d.boxes import (
    bev_corners,
    bev_iou,
    box_corners,
    boxes_to_bev_polygons,
    in_range,
    limit_period,
    rotated_nms,
)

RNG = np.random.default_rng(7)


def box(x=0.0, y=0.0, length=4.0, width=2.0, yaw=0.0, z=0.0, height=1.5) -> list[float]:
    return [x, y, z, length, width, height, yaw]


def random_boxes(count: int, extent: float = 10.0) -> np.ndarray:
    centres = RNG.uniform(-extent, extent, (count, 3))
    sizes = RNG.uniform([1.0, 0.5, 1.0], [5.0, 2.5, 2.0], (count, 3))
    yaws = RNG.uniform(-math.pi, math.pi, (count, 1))
    return np.concatenate([centres, sizes, yaws], axis=1)


# limit_period


def test_limit_period_wraps_to_the_half_open_interval():
    yaw = np.array([0.0, math.pi, -math.pi, 3 * math.pi, -1.5 * math.pi, 2 * math.pi, 0.25])
    expected = np.array([0.0, math.pi, math.pi, math.pi, 0.5 * math.pi, 0.0, 0.25])
    np.testing.assert_allclose(limit_period(yaw), expected, atol=1e-12)
    wrapped = limit_period(RNG.uniform(-50, 50, 1000))
    assert (wrapped > -math.pi).all() and (wrapped <= math.pi).all()
    original = RNG.uniform(-50, 50, 1000)
    np.testing.assert_allclose(np.cos(limit_period(original)), np.cos(original), atol=1e-9)
    np.testing.assert_allclose(np.sin(limit_period(original)), np.sin(original), atol=1e-9)


# corners


def test_corners_of_an_axis_aligned_box_follow_opencood_order():
    corners = box_corners([box(1.0, 2.0, 4.0, 2.0, 0.0, z=3.0, height=1.0)])
    assert corners.shape == (1, 8, 3)
    expected_xy = np.array([[3, 1], [3, 3], [-1, 3], [-1, 1]], dtype=float)  # front-right first, counter-clockwise
    np.testing.assert_allclose(corners[0, :4, :2], expected_xy)
    np.testing.assert_allclose(corners[0, 4:, :2], expected_xy)
    np.testing.assert_allclose(corners[0, :4, 2], 2.5)  # bottom face at z - h / 2
    np.testing.assert_allclose(corners[0, 4:, 2], 3.5)


def test_corners_rotate_counter_clockwise_with_yaw():
    corners = box_corners(torch.tensor([box(1.0, 2.0, 4.0, 2.0, math.pi / 2, z=3.0, height=1.0)]))
    # local (x, y) -> (-y, x) for a quarter turn: front-right (2, -1) -> (1, 2), front-left (2, 1) -> (-1, 2)
    expected_xy = np.array([[2, 4], [0, 4], [0, 0], [2, 0]], dtype=float)
    np.testing.assert_allclose(corners[0, :4, :2], expected_xy, atol=1e-6)  # float32 input


def test_bev_corners_are_counter_clockwise_rectangles_with_the_front_edge_first():
    boxes = random_boxes(50)
    corners = bev_corners(boxes.astype(np.float32))
    np.testing.assert_allclose(corners, box_corners(boxes)[:, :4, :2], atol=1e-5)
    x, y = corners[..., 0], corners[..., 1]
    signed_area = 0.5 * np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1)
    np.testing.assert_allclose(signed_area, boxes[:, 3] * boxes[:, 4], rtol=1e-5)  # positive = counter-clockwise
    front_middle = corners[:, :2].mean(axis=1)
    heading = np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6])], axis=1)
    np.testing.assert_allclose(front_middle, boxes[:, :2] + boxes[:, 3:4] / 2 * heading, atol=1e-5)
    polygons = boxes_to_bev_polygons(boxes)
    np.testing.assert_allclose(shapely.area(polygons), boxes[:, 3] * boxes[:, 4], rtol=1e-12)


# IoU


def test_iou_of_identical_and_disjoint_boxes():
    a = np.array([box(0, 0), box(30, 0, yaw=0.7)])
    iou = bev_iou(a, a)
    np.testing.assert_allclose(iou, np.eye(2), atol=1e-12)


def test_iou_of_two_axis_aligned_boxes_with_known_overlap():
    iou = bev_iou([box(0, 0, 4, 2)], [box(1, 0.5, 4, 2)])
    # overlap 3 x 1.5 = 4.5, union 8 + 8 - 4.5
    assert iou[0, 0] == pytest.approx(4.5 / 11.5, rel=1e-12)


def test_iou_ignores_height_and_z():
    iou = bev_iou([box(0, 0, 4, 2, z=0.0, height=1.0)], [box(1, 0.5, 4, 2, z=5.0, height=3.0)])
    assert iou[0, 0] == pytest.approx(4.5 / 11.5, rel=1e-12)


def test_iou_of_a_box_and_itself_turned_a_quarter():
    square = bev_iou([box(2, 1, 3, 3, 0.2)], [box(2, 1, 3, 3, 0.2 + math.pi / 2)])
    assert square[0, 0] == pytest.approx(1.0, abs=1e-12)
    rectangle = bev_iou([box(2, 1, 4, 2, 0.2)], [box(2, 1, 4, 2, 0.2 + math.pi / 2)])
    # intersection w x w, union 2 l w - w^2
    assert rectangle[0, 0] == pytest.approx(2 / (2 * 4 - 2), rel=1e-12)


def test_iou_of_a_square_and_itself_turned_45_degrees_is_the_octagon():
    side = 2.0
    iou = bev_iou([box(0, 0, side, side, 0.0)], [box(0, 0, side, side, math.pi / 4)])[0, 0]
    octagon = 8 * (side / 2) ** 2 * math.tan(math.pi / 8)  # regular octagon with inradius side / 2
    assert iou == pytest.approx(octagon / (2 * side**2 - octagon), rel=1e-12)
    assert iou == pytest.approx(1 / math.sqrt(2), rel=1e-12)


def test_iou_is_symmetric_and_invariant_to_a_common_rigid_motion():
    a, b = random_boxes(30, 4.0), random_boxes(20, 4.0)
    iou = bev_iou(a, b)
    assert (iou > 0).sum() > 20  # the check below is not vacuous
    np.testing.assert_allclose(bev_iou(b, a), iou.T, atol=1e-12)
    angle, shift = 1.1, np.array([40.0, -7.0])
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])

    def moved(boxes):
        out = boxes.copy()
        out[:, :2] = boxes[:, :2] @ rotation.T + shift
        out[:, 6] = limit_period(boxes[:, 6] + angle)
        return out

    np.testing.assert_allclose(bev_iou(moved(a), moved(b)), iou, atol=1e-9)


def rasterised_iou(a: np.ndarray, b: np.ndarray, step: float = 0.01) -> float:
    """IoU by counting grid cells whose centres lie in each box (a test in each box's own frame, no shapely)."""
    reach = max(a[3], a[4], b[3], b[4])
    lo = np.minimum(a[:2], b[:2]) - reach
    hi = np.maximum(a[:2], b[:2]) + reach
    xs = np.arange(lo[0], hi[0], step) + step / 2
    ys = np.arange(lo[1], hi[1], step) + step / 2
    gx, gy = np.meshgrid(xs, ys)

    def inside(bx):
        dx, dy = gx - bx[0], gy - bx[1]
        c, s = math.cos(bx[6]), math.sin(bx[6])
        u, v = dx * c + dy * s, -dx * s + dy * c
        return (np.abs(u) <= bx[3] / 2) & (np.abs(v) <= bx[4] / 2)

    ia, ib = inside(a), inside(b)
    return (ia & ib).sum() / (ia | ib).sum()


def test_iou_of_random_rotated_pairs_matches_a_rasterised_area():
    checked = 0
    while checked < 6:
        a, b = random_boxes(1, 1.0)[0], random_boxes(1, 1.0)[0]
        iou = bev_iou(a[None], b[None])[0, 0]
        if iou < 0.05:
            continue
        assert iou == pytest.approx(rasterised_iou(a, b), abs=0.01)
        checked += 1


def test_envelope_prefilter_misses_no_pair_on_large_inputs():
    a = random_boxes(1500, 60.0)
    b = random_boxes(1200, 60.0)
    iou = bev_iou(a, b)
    assert iou.shape == (1500, 1200)
    rows = np.arange(0, 1500, 25)
    pa = np.repeat(boxes_to_bev_polygons(a[rows]), len(b))
    pb = np.tile(boxes_to_bev_polygons(b), len(rows))
    inter = shapely.area(shapely.intersection(pa, pb))
    dense = (inter / shapely.area(shapely.union(pa, pb))).reshape(len(rows), len(b))
    assert (dense > 0).sum() > 10
    np.testing.assert_allclose(iou[rows], dense, atol=1e-12)


def test_iou_of_empty_inputs_and_bad_boxes():
    assert bev_iou(np.zeros((0, 7)), random_boxes(3)).shape == (0, 3)
    assert bev_iou(random_boxes(2), []).shape == (2, 0)
    with pytest.raises(ValueError, match=r"boxes_a must be an \(M, 7\) array"):
        bev_iou(np.zeros((2, 6)), random_boxes(1))
    bad = random_boxes(2)
    bad[1, 3] = np.nan
    with pytest.raises(ValueError, match="boxes_b contains NaN"):
        bev_iou(random_boxes(1), bad)


# NMS


def test_nms_keeps_the_higher_score_of_two_overlapping_boxes():
    boxes = np.array([box(0, 0), box(0.3, 0.1, yaw=0.05)])
    np.testing.assert_array_equal(rotated_nms(boxes, [0.4, 0.9], 0.15), [1])
    np.testing.assert_array_equal(rotated_nms(boxes, torch.tensor([0.9, 0.4]), 0.15), [0])


def test_nms_keeps_both_of_two_disjoint_boxes_highest_first():
    boxes = np.array([box(0, 0), box(10, 0)])
    np.testing.assert_array_equal(rotated_nms(boxes, [0.3, 0.8], 0.15), [1, 0])


def test_nms_suppresses_only_above_the_threshold():
    boxes = np.array([box(0, 0, 3, 2), box(1, 0, 3, 2)])  # IoU exactly 4 / 8
    assert bev_iou(boxes[:1], boxes[1:])[0, 0] == 0.5
    np.testing.assert_array_equal(rotated_nms(boxes, [0.9, 0.8], 0.5), [0, 1])  # OpenCOOD removes iou > threshold
    np.testing.assert_array_equal(rotated_nms(boxes, [0.9, 0.8], 0.49), [0])


def test_nms_is_greedy_a_suppressed_box_suppresses_nothing():
    boxes = np.array([box(0, 0, 3, 2), box(1, 0, 3, 2), box(2, 0, 3, 2)])  # A-B and B-C overlap at 0.5, A-C at 0.2
    np.testing.assert_array_equal(rotated_nms(boxes, [0.9, 0.8, 0.7], 0.3), [0, 2])
    np.testing.assert_array_equal(rotated_nms(boxes, [0.8, 0.9, 0.7], 0.3), [1])


def reference_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    iou = bev_iou(boxes, boxes)
    order = list(np.argsort(-scores, kind="stable"))
    kept = []
    while order:
        best = order.pop(0)
        kept.append(best)
        order = [i for i in order if iou[best, i] <= threshold]
    return kept


def test_nms_matches_a_plain_greedy_loop_on_random_boxes():
    boxes = random_boxes(300, 15.0)
    scores = RNG.uniform(0, 1, 300)
    kept = rotated_nms(boxes, scores, 0.15)
    assert 0 < len(kept) < 300
    np.testing.assert_array_equal(kept, reference_nms(boxes, scores, 0.15))
    top = np.argsort(-scores, kind="stable")[:50]
    expected_top = top[reference_nms(boxes[top], scores[top], 0.15)]
    np.testing.assert_array_equal(rotated_nms(boxes, scores, 0.15, top_k=50), expected_top)
    assert rotated_nms(np.zeros((0, 7)), [], 0.15).shape == (0,)
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        rotated_nms(random_boxes(2), [0.5], 0.15)


# range


def test_in_range_tests_the_centre_in_xy_with_bounds_included():
    pcr = [-140.8, -40, -3, 140.8, 40, 1]
    boxes = np.array([box(0, 0), box(140.8, 40), box(-140.8, -40), box(140.9, 0), box(0, -40.1), box(10, 10, z=50.0)])
    np.testing.assert_array_equal(in_range(boxes, pcr), [True, True, True, False, False, True])
    with pytest.raises(ValueError, match="point_cloud_range must be"):
        in_range(boxes, [1, 2, 3])
