"""OpenCOOD AP: greedy matching, VOC-2010 all-point AP computed by hand, frame vs global sort, the mmengine twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmengine.registry import METRICS

from diffusekit.core.errors import DataError
from diffusekit.perception3d.boxes import bev_iou
from diffusekit.perception3d.metrics import (
    CooperativeDetectionMetric,
    average_precision,
    evaluate_detections,
    format_table,
    frame_tp_fp,
    threshold_key,
    voc_ap,
)

RNG = np.random.default_rng(11)


def box(x=0.0, y=0.0, length=4.0, width=2.0, yaw=0.0) -> list[float]:
    return [x, y, -1.0, length, width, 1.5, yaw]


def frame(dets, scores, gt, **names) -> dict:
    return {
        "boxes": np.asarray(dets, dtype=np.float32).reshape(-1, 7),
        "scores": np.asarray(scores, dtype=np.float32),
        "gt_boxes": np.asarray(gt, dtype=np.float32).reshape(-1, 7),
        **names,
    }


# VOC AP


def test_voc_ap_is_the_area_under_the_precision_envelope():
    # points (r, p): (0.5, 1), (0.5, 0.5), (1, 2/3): envelope 1 up to recall 0.5, then 2/3
    assert voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx(0.5 + 0.5 * 2 / 3, rel=1e-12)
    # a dip that the envelope fills: (0.25, 1), (0.25, 0.5), (0.5, 2/3), (0.5, 0.5), (0.75, 0.6)
    recall, precision = [0.25, 0.25, 0.5, 0.5, 0.75], [1.0, 0.5, 2 / 3, 0.5, 0.6]
    assert voc_ap(recall, precision) == pytest.approx(0.25 * 1 + 0.25 * 2 / 3 + 0.25 * 0.6, rel=1e-12)
    assert voc_ap([], []) == 0.0
    with pytest.raises(ValueError, match="recall has 2 values but precision has 1"):
        voc_ap([0.1, 0.2], [1.0])


# matching


def test_frame_tp_fp_sorts_by_score_and_matches_greedily():
    gt = [box(0, 0), box(10, 0)]
    dets = [box(10.1, 0), box(30, 0), box(0.1, 0)]
    scores, tp, fp = frame_tp_fp(dets, [0.7, 0.8, 0.9], gt, 0.5)
    np.testing.assert_allclose(scores, [0.9, 0.8, 0.7])
    np.testing.assert_array_equal(tp, [1, 0, 1])
    np.testing.assert_array_equal(fp, [0, 1, 0])
    assert tp.dtype == np.int64


def test_duplicates_of_one_object_are_false_positives():
    gt = [box(0, 0), box(10, 0)]
    dets = [box(0, 0), box(0.05, 0), box(10, 0)]
    _, tp, fp = frame_tp_fp(dets, [0.9, 0.8, 0.7], gt, 0.5)
    np.testing.assert_array_equal(tp, [1, 0, 1])
    np.testing.assert_array_equal(fp, [0, 1, 0])
    # recall 1/2, 1/2, 1; precision 1, 1/2, 2/3 -> AP = 0.5 * 1 + 0.5 * 2/3
    assert average_precision([frame(dets, [0.9, 0.8, 0.7], gt)], 0.5) == pytest.approx(5 / 6, rel=1e-12)


def test_a_detection_takes_the_best_unmatched_gt_not_only_its_best_gt():
    gt = [box(0, 0), box(1.4, 0)]  # the second detection, between them, overlaps both
    dets = [box(0.1, 0), box(0.6, 0)]  # the first takes gt 0; the second still reaches gt 1
    iou = bev_iou(dets, gt)
    assert iou[1, 0] > iou[1, 1] > 0.5
    _, tp, _ = frame_tp_fp(dets, [0.9, 0.8], gt, 0.5)
    np.testing.assert_array_equal(tp, [1, 1])


def test_iou_at_the_threshold_counts_as_a_true_positive():
    gt, det = [box(0, 0, 3, 2)], [box(1, 0, 3, 2)]  # IoU exactly 4 / 8
    assert bev_iou(det, gt)[0, 0] == 0.5
    assert frame_tp_fp(det, [0.5], gt, 0.5)[1].tolist() == [1]  # OpenCOOD: fp only when max IoU < threshold
    assert frame_tp_fp(det, [0.5], gt, 0.51)[1].tolist() == [0]


def test_a_detection_at_055_iou_counts_at_03_and_05_but_not_07():
    shift = 4 * 0.45 / 1.55  # (4 - s) / (4 + s) = 0.55 for 4 x 2 boxes shifted along their length
    gt, det = [box(5, 3, yaw=0.3)], [box(5 + shift * math.cos(0.3), 3 + shift * math.sin(0.3), yaw=0.3)]
    assert bev_iou(det, gt)[0, 0] == pytest.approx(0.55, abs=1e-6)
    result = evaluate_detections([frame(det, [0.8], gt)])
    assert (result["ap_30"], result["ap_50"], result["ap_70"]) == (1.0, 1.0, 0.0)


# AP over frames


def test_three_detections_two_gt_by_hand():
    gt = [box(0, 0), box(10, 0)]
    dets = [box(0, 0.1), box(-20, 5), box(10, -0.1)]
    # tp, fp, tp: recall 1/2, 1/2, 1; precision 1, 1/2, 2/3; AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision([frame(dets, [0.9, 0.8, 0.7], gt)], 0.5) == pytest.approx(5 / 6, rel=1e-12)
    # the same detections ranked fp, tp, tp: precision 0, 1/2, 2/3 -> envelope 2/3 everywhere
    assert average_precision([frame(dets, [0.8, 0.9, 0.7], gt)], 0.5) == pytest.approx(2 / 3, rel=1e-12)


def test_frame_order_and_global_order_give_the_hand_computed_values():
    frames = [
        frame([box(0, 0), box(20, 0)], [0.6, 0.5], [box(0, 0)]),  # tp 0.6, fp 0.5
        frame([box(-20, 0), box(5, 5)], [0.9, 0.4], [box(5, 5)]),  # fp 0.9, tp 0.4
    ]
    # frame order T F F T: recall .5 .5 .5 1, precision 1 .5 1/3 .5 -> 0.5 * 1 + 0.5 * 0.5
    # global order (0.9 F, 0.6 T, 0.5 F, 0.4 T): precision 0 .5 1/3 .5 -> 0.5 * 0.5 + 0.5 * 0.5
    assert average_precision(frames, 0.5, sort="frame") == pytest.approx(0.75, rel=1e-12)
    assert average_precision(frames, 0.5, sort="global") == pytest.approx(0.5, rel=1e-12)
    both = evaluate_detections(frames, sort="global", both_sorts=True)
    assert both["sort"] == "global"
    assert both["ap_50"] == pytest.approx(0.5) and both["ap_50_frame"] == pytest.approx(0.75)
    assert (both["frames"], both["detections"], both["gt"]) == (2, 4, 2)


def test_global_sort_does_not_depend_on_frame_order_but_frame_sort_does():
    frames = [
        frame([box(0, 0), box(20, 0)], [0.6, 0.5], [box(0, 0)]),
        frame([box(-20, 0), box(5, 5)], [0.9, 0.4], [box(5, 5)]),
    ]
    assert average_precision(frames[::-1], sort="global") == average_precision(frames, sort="global")
    # reversed frame order F T T F: precision 0 .5 2/3 .5 -> envelope 2/3 up to recall 1
    assert average_precision(frames[::-1], sort="frame") == pytest.approx(2 / 3, rel=1e-12)


def test_perfect_detections_give_ap_1_and_false_positives_only_give_0():
    gt = np.array([box(0, 0), box(10, 0, yaw=0.4), box(-8, 6, yaw=-1.0)])
    frames = [frame(gt, [0.9, 0.5, 0.7], gt), frame(gt[:1], [0.3], gt[:1]), frame([], [], [])]
    result = evaluate_detections(frames, sort="frame", both_sorts=True)
    assert [result[k] for k in ("ap_30", "ap_50", "ap_70", "ap_30_global", "ap_50_global", "ap_70_global")] == [1.0] * 6
    wrong = [frame(gt + [30, 0, 0, 0, 0, 0, 0], [0.9, 0.5, 0.7], gt)]
    assert evaluate_detections(wrong)["ap_30"] == 0.0


def test_empty_cases_follow_opencood():
    gt = [box(0, 0)]
    assert average_precision([frame([], [], gt)]) == 0.0  # GT but no detection: AP 0
    assert math.isnan(average_precision([frame([box(0, 0)], [0.9], [])]))  # no GT at all: AP undefined
    assert math.isnan(average_precision([]))
    # a frame without GT makes its detections false positives; one without detections adds its GT
    frames = [frame([box(0, 0)], [0.9], gt), frame([box(3, 3)], [0.95], []), frame([], [], [box(50, 0)])]
    # global: F(0.95) T(0.9), 2 GT -> recall 0, 1/2; precision 0, 1/2 -> AP 1/4
    assert average_precision(frames, sort="global") == pytest.approx(0.25, rel=1e-12)
    result = evaluate_detections(frames)
    assert (result["frames"], result["detections"], result["gt"]) == (3, 2, 2)


def test_matches_a_plain_reimplementation_on_random_scenes():
    frames = []
    for _ in range(8):
        gt = np.array([box(*RNG.uniform(-30, 30, 2), yaw=RNG.uniform(-3, 3)) for _ in range(RNG.integers(0, 6))])
        noisy = gt + RNG.normal(0, [0.4, 0.4, 0, 0.2, 0.1, 0, 0.1], gt.shape) if len(gt) else np.zeros((0, 7))
        clutter = np.array([box(*RNG.uniform(-30, 30, 2)) for _ in range(RNG.integers(0, 4))]).reshape(-1, 7)
        dets = np.concatenate([noisy, clutter, noisy[:1]])
        frames.append(frame(dets, RNG.uniform(0, 1, len(dets)), gt.reshape(-1, 7)))
    for threshold in (0.3, 0.5, 0.7):
        for sort in ("frame", "global"):
            scores, tps, num_gt = [], [], 0
            for f in frames:
                order = np.argsort(-f["scores"], kind="stable")
                remaining = list(range(len(f["gt_boxes"])))
                for d in order:
                    ious = [bev_iou(f["boxes"][d : d + 1], f["gt_boxes"][g : g + 1])[0, 0] for g in remaining]
                    hit = bool(ious) and max(ious) >= threshold
                    tps.append(hit)
                    scores.append(f["scores"][d])
                    if hit:
                        remaining.pop(int(np.argmax(ious)))
                num_gt += len(f["gt_boxes"])
            tps = np.array(tps)
            if sort == "global":
                tps = tps[np.argsort(-np.array(scores), kind="stable")]
            recall = list(np.cumsum(tps) / num_gt)
            precision = list(np.cumsum(tps) / np.arange(1, len(tps) + 1))
            # OpenCOOD's voc_ap loop, written out
            mrec, mpre = [0.0, *recall, 1.0], [0.0, *precision, 0.0]
            for i in range(len(mpre) - 2, -1, -1):
                mpre[i] = max(mpre[i], mpre[i + 1])
            expected = sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])
            assert 0 < expected < 1
            assert average_precision(frames, threshold, sort) == pytest.approx(expected, rel=1e-12)


def test_bad_frames_are_data_errors_naming_the_frame():
    good = frame([box(0, 0)], [0.9], [box(0, 0)])
    with pytest.raises(DataError, match="2020_01_01/000068: 1 detection boxes but 2 scores"):
        evaluate_detections([good, frame([box(0, 0)], [0.9, 0.1], [], scenario="2020_01_01", frame="000068")])
    with pytest.raises(DataError, match="frame 1: a detection frame needs 'boxes', 'scores' and 'gt_boxes'"):
        evaluate_detections([good, {"boxes": np.zeros((0, 7)), "scores": np.zeros(0)}])
    nan = frame([box(0, 0)], [0.9], [box(0, 0)])
    nan["gt_boxes"][0, 0] = np.nan
    with pytest.raises(DataError, match="gt_boxes contains NaN"):
        evaluate_detections([nan])
    with pytest.raises(ValueError, match="sort must be 'frame' or 'global'"):
        evaluate_detections([good], sort="local")
    with pytest.raises(ValueError, match=r"IoU thresholds must lie in \(0, 1\]"):
        evaluate_detections([good], thresholds=(0.0, 0.5))


def test_threshold_keys_and_custom_thresholds():
    assert [threshold_key(t) for t in (0.3, 0.5, 0.7, 0.55, 0.05)] == ["ap_30", "ap_50", "ap_70", "ap_55", "ap_05"]
    result = evaluate_detections([frame([box(0, 0)], [0.9], [box(0, 0)])], thresholds=(0.55,))
    assert result["ap_55"] == 1.0 and "ap_50" not in result


# table


def test_format_table_states_the_sort_modes():
    frames = [
        frame([box(0, 0), box(20, 0)], [0.6, 0.5], [box(0, 0)]),
        frame([box(-20, 0), box(5, 5)], [0.9, 0.4], [box(5, 5)]),
    ]
    table = format_table(
        {"CoDiff": evaluate_detections(frames, both_sorts=True), "late": evaluate_detections(frames, sort="global")}
    )
    lines = table.splitlines()
    assert lines[0] == "| method | sort | AP@0.30 | AP@0.50 | AP@0.70 | frames | detections | GT |"
    assert "| CoDiff | frame | 0.750 | 0.750 | 0.750 | 2 | 4 | 2 |" in lines
    assert "| CoDiff | global | 0.500 | 0.500 | 0.500 | 2 | 4 | 2 |" in lines
    assert "| late | global | 0.500 | 0.500 | 0.500 | 2 | 4 | 2 |" in lines
    assert "OpenCOOD's default" in lines[-1] and "--global_sort_detections" in lines[-1]
    only_frame = format_table({"x": evaluate_detections(frames)})
    assert "global =" not in only_frame and "frame =" in only_frame
    assert "n/a" in format_table({"empty": evaluate_detections([])})


# mmengine twin


def test_base_metric_gives_the_same_numbers_as_the_function():
    frames = [
        frame([box(0, 0), box(20, 0)], [0.6, 0.5], [box(0, 0)]),
        frame([box(-20, 0), box(5, 5)], [0.9, 0.4], [box(5, 5)]),
        frame([box(1, 0.2), box(40, 0)], [0.7, 0.2], [box(1, 0), box(40, 0.3, yaw=0.2)]),
    ]
    metric = METRICS.build(dict(type="CooperativeDetectionMetric", sort="global", both_sorts=True))
    assert isinstance(metric, CooperativeDetectionMetric)
    as_torch = [{key: torch.as_tensor(value) for key, value in f.items()} for f in frames]
    metric.process({}, as_torch[:2])
    metric.process({}, as_torch[2:])
    results = metric.evaluate(3)
    expected = evaluate_detections(frames, sort="global", both_sorts=True)
    assert results == {f"det/{key}": value for key, value in expected.items()}
    assert results["det/ap_50"] == pytest.approx(average_precision(frames, 0.5, "global"))
    assert results["det/ap_50"] != results["det/ap_50_frame"]


def test_base_metric_options_and_errors():
    metric = CooperativeDetectionMetric(iou_thresholds=(0.5,), prefix="v2x")
    metric.process({}, [frame([box(0, 0)], [0.9], [box(0, 0)])])
    assert metric.evaluate(1) == {
        "v2x/ap_50": 1.0,
        "v2x/sort": "frame",
        "v2x/frames": 1,
        "v2x/detections": 1,
        "v2x/gt": 1,
    }
    with pytest.raises(DataError, match="000070: 1 detection boxes but 0 scores"):
        metric.process({}, [frame([box(0, 0)], [], [], frame="000070")])
    with pytest.raises(ValueError, match="sort must be"):
        CooperativeDetectionMetric(sort="per_frame")
