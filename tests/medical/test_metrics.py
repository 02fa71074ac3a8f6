"""Segmentation metrics against hand-computed values, the empty-mask policy, pooled Dice, and Simpson's biplane
volumes against closed-form ellipsoids."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffusekit.medical.camus import camus_patients, label_mask, load_camus_case
from diffusekit.medical.cardiac import biplane_volume, disk_diameters, ejection_fraction
from diffusekit.medical.metrics import SegmentationMetric, pooled_dice, segmentation_metrics, summarize
from diffusekit.medical.synthetic import write_camus


def _square(shape=(40, 40), rows=(10, 30), cols=(10, 30)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = 1
    return mask


def test_dice_iou_and_distances_by_hand():
    gt, pred = _square(), _square(rows=(12, 30))
    m = segmentation_metrics(pred, gt, spacing=(0.5, 0.25))
    assert m["dice"] == pytest.approx(2 * 360 / 760, abs=1e-6)
    assert m["iou"] == pytest.approx(360 / 400, abs=1e-6)
    assert m["hd95"] == pytest.approx(2 * 0.5)  # the top edge moved 2 rows of 0.5 mm
    # single pixels: the distance uses (sy, sx) in that order
    a, b = np.zeros((10, 10)), np.zeros((10, 10))
    a[2, 3], b[5, 7] = 1, 1
    m = segmentation_metrics(a, b, spacing=(2.0, 0.5))
    assert m["hd95"] == pytest.approx(math.hypot(3 * 2.0, 4 * 0.5), rel=1e-6)
    assert m["msd"] == pytest.approx(math.hypot(3 * 2.0, 4 * 0.5), rel=1e-6)
    same = segmentation_metrics(gt, gt, spacing=(0.3, 0.3))
    assert same["dice"] == 1 and same["hd95"] == 0 and same["msd"] == 0


def test_distances_scale_with_spacing():
    gt, pred = _square(), _square(rows=(14, 33), cols=(8, 29))
    one, two = segmentation_metrics(pred, gt, (1.0, 1.0)), segmentation_metrics(pred, gt, (2.0, 2.0))
    assert two["hd95"] == pytest.approx(2 * one["hd95"]) and two["msd"] == pytest.approx(2 * one["msd"])
    assert two["dice"] == one["dice"]


def test_empty_mask_policy_is_explicit_and_counted():
    gt, empty = _square(), np.zeros((40, 40), np.uint8)
    missed = segmentation_metrics(empty, gt, (0.5, 0.25))
    diagonal = math.hypot(40 * 0.5, 40 * 0.25)
    assert missed == {"dice": 0.0, "iou": 0.0, "hd95": diagonal, "msd": diagonal, "empty_pred": 1.0, "empty_gt": 0.0}
    both = segmentation_metrics(empty, empty)
    assert both["dice"] == 1.0 and both["hd95"] == 0.0 and both["empty_gt"] == 1.0
    summary = summarize([missed, segmentation_metrics(gt, gt)])
    assert summary["hd95"] == pytest.approx(diagonal / 2)  # a missed image worsens the mean, never vanishes from it
    assert summary["empty_pred"] == 1 and summary["count"] == 2


def test_pooled_dice_weights_large_masks():
    big, small = _square(), _square(rows=(0, 2), cols=(0, 2))
    preds, gts = [big, np.zeros_like(small)], [big, small]
    assert pooled_dice(preds, gts) == pytest.approx(2 * 400 / (800 + 4))
    per_image = np.mean([segmentation_metrics(p, g)["dice"] for p, g in zip(preds, gts, strict=True)])
    assert per_image == pytest.approx(0.5)


def test_mmengine_metric_twin():
    metric = SegmentationMetric()
    gt, pred = _square(), _square(rows=(12, 30))
    metric.process({}, [{"pred": pred, "gt": gt, "spacing": (0.5, 0.25)}, {"pred": gt, "gt": gt}])
    out = metric.compute_metrics(metric.results)
    assert out["dice"] == pytest.approx((2 * 360 / 760 + 1) / 2, abs=1e-6)
    assert out["pooled_dice"] == pytest.approx(2 * 760 / 1560)
    assert set(out) == {"dice", "iou", "hd95", "msd", "pooled_dice"}  # what the validation curves plot
    chosen = SegmentationMetric(keys=("dice", "empty_pred"))
    chosen.process({}, [{"pred": np.zeros_like(gt), "gt": gt}])
    assert chosen.compute_metrics(chosen.results) == {"dice": 0.0, "empty_pred": 1.0, "pooled_dice": 0.0}


def _ellipse(shape, center, semi, spacing, angle=0.0):
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    y, x = (rows - center[0]) * spacing[0], (cols - center[1]) * spacing[1]
    t = math.radians(angle)
    u, v = x * math.cos(t) + y * math.sin(t), -x * math.sin(t) + y * math.cos(t)
    return ((v / semi[0]) ** 2 + (u / semi[1]) ** 2 <= 1).astype(np.uint8)


@pytest.mark.parametrize("angle", [0.0, 25.0])
def test_biplane_volume_of_an_ellipsoid(angle):
    # prolate ellipsoid, long semi-axis 40 mm, short 20 mm (2CH) and 24 mm (4CH): V = 4/3 pi 40 20 24 / 1000 mL
    spacing_2ch, spacing_4ch = (0.4, 0.3), (0.35, 0.45)
    m2 = _ellipse((260, 200), (130, 100), (40, 20), spacing_2ch, angle)
    m4 = _ellipse((260, 200), (130, 100), (40, 24), spacing_4ch, -angle)
    diameters, length = disk_diameters(m2, spacing_2ch)
    assert length == pytest.approx(80, rel=0.02) and diameters.max() == pytest.approx(40, rel=0.03)
    expected = 4 / 3 * math.pi * 40 * 20 * 24 / 1000
    assert biplane_volume(m2, spacing_2ch, m4, spacing_4ch) == pytest.approx(expected, rel=0.03)


def test_ejection_fraction_of_synthetic_camus_matches_its_info_file(tmp_path):
    root = write_camus(tmp_path, seed=4)
    errors = []
    for patient in camus_patients(root, "training")[:6]:
        volumes = {}
        for phase in ("ED", "ES"):
            c2, c4 = (load_camus_case(root, patient, view, phase)[0] for view in ("2CH", "4CH"))
            volumes[phase] = biplane_volume(
                label_mask(c2.labels.array),
                c2.labels.pixel_spacing,
                label_mask(c4.labels.array),
                c4.labels.pixel_spacing,
            )
        errors.append(ejection_fraction(volumes["ED"], volumes["ES"]) - c2.info["EF"])
    assert np.abs(errors).max() < 2.5  # the writer's EF is the exact ellipsoid EF
    assert math.isnan(ejection_fraction(0.0, 0.0))
