"""BasicSR-convention PSNR/SSIM, BT.601 Y, tOF, frame vs sequence means, and the mmengine metric twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from mmengine.registry import METRICS
from skimage import data
from skimage.metrics import structural_similarity

from diffusekit.core.errors import DataError
from diffusekit.video.metrics import (
    VideoRestorationMetric,
    format_table,
    frames_to_uint8,
    psnr,
    psnr_ssim_video,
    rgb_to_y,
    sequence_scores,
    ssim,
    summarize,
    tof,
)

RNG = np.random.default_rng(17)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A real, coloured 96x128 RGB photograph (uint8)."""
    return np.ascontiguousarray(data.astronaut()[40:136, 180:308])


def moving_clip(photo: np.ndarray, frames: int = 5, size: int = 64, step: int = 2) -> np.ndarray:
    """(T, size, size, 3) crops of the photo sliding right by ``step`` pixels per frame: a clip with real motion."""
    return np.stack([photo[16 : 16 + size, t * step : t * step + size] for t in range(frames)])


# PSNR


@pytest.mark.parametrize("offset", [1.0, 2.5, 10.0])
def test_psnr_of_a_constant_offset_is_the_closed_form(offset):
    ref = RNG.integers(20, 230, (24, 32, 3)).astype(np.uint8)
    assert psnr(ref.astype(np.float64) + offset, ref) == pytest.approx(10 * math.log10(255**2 / offset**2), abs=1e-9)


def test_psnr_is_inf_on_identical_images_and_symmetric(photo):
    assert psnr(photo, photo) == math.inf
    noisy = np.clip(photo + RNG.normal(0, 8, photo.shape), 0, 255).astype(np.uint8)
    assert psnr(noisy, photo) == psnr(photo, noisy)
    assert math.isfinite(psnr(noisy, photo))


def test_psnr_crops_the_border_before_comparing(photo):
    damaged = photo.copy()
    damaged[:3] = 0
    damaged[:, -3:] = 255
    assert psnr(damaged, photo) < 30
    assert psnr(damaged, photo, crop_border=3) == math.inf
    assert psnr(damaged, photo, crop_border=3, test_y_channel=True) == math.inf


def test_psnr_on_the_y_channel_is_the_psnr_of_the_luma(photo):
    noisy = np.clip(photo + RNG.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
    y_noisy, y_ref = rgb_to_y(noisy[2:-2, 2:-2]), rgb_to_y(photo[2:-2, 2:-2])
    expected = 10 * math.log10(255**2 / np.mean((y_noisy - y_ref) ** 2))
    assert psnr(noisy, photo, crop_border=2, test_y_channel=True) == pytest.approx(expected, rel=1e-12)


def test_bad_images_raise_value_errors(photo):
    with pytest.raises(ValueError, match="differs from reference"):
        psnr(photo, photo[:-1])
    with pytest.raises(ValueError, match="differs from reference"):
        ssim(photo, photo[..., :1])
    nan = photo.astype(np.float64)
    nan[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        psnr(nan, photo)
    with pytest.raises(ValueError, match="NaN"):
        ssim(photo, nan)
    with pytest.raises(ValueError, match="crop_border"):
        psnr(photo, photo, crop_border=48)
    with pytest.raises(ValueError, match="channel_order"):
        psnr(photo, photo, test_y_channel=True, channel_order="yuv")


# SSIM


def test_ssim_is_one_on_identical_images(photo):
    assert ssim(photo, photo) == pytest.approx(1.0, abs=1e-12)
    assert ssim(photo[..., 0], photo[..., 0]) == pytest.approx(1.0, abs=1e-12)
    assert ssim(photo, photo, crop_border=4, test_y_channel=True) == pytest.approx(1.0, abs=1e-12)


def test_ssim_is_symmetric_and_below_one_on_noise(photo):
    noisy = np.clip(photo + RNG.normal(0, 15, photo.shape), 0, 255).astype(np.uint8)
    forward, backward = ssim(noisy, photo), ssim(photo, noisy)
    assert forward == pytest.approx(backward, abs=1e-12)
    assert 0.0 < forward < 0.95


@pytest.mark.parametrize("sigma", [3.0, 25.0])
def test_ssim_matches_scikit_image_gaussian_ssim(photo, sigma):
    """skimage's Gaussian SSIM (truncate 3.5 -> the same 11-tap sigma-1.5 window) also averages only the region
    where the window fits (it crops (11 - 1) // 2 = 5 pixels, BasicSR's [5:-5, 5:-5]), and uses population
    covariances and C1, C2 of data_range 255: the two agree to rounding, so the tolerance is 1e-10."""
    noisy = np.clip(photo + RNG.normal(0, sigma, photo.shape), 0, 255).astype(np.uint8)
    reference = structural_similarity(
        noisy, photo, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1
    )
    assert ssim(noisy, photo) == pytest.approx(reference, abs=1e-10)
    grey = structural_similarity(
        noisy[..., 1], photo[..., 1], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert ssim(noisy[..., 1], photo[..., 1]) == pytest.approx(grey, abs=1e-10)


def test_ssim_refuses_images_smaller_than_its_window(photo):
    with pytest.raises(ValueError, match="11x11"):
        ssim(photo[:10, :10], photo[:10, :10])


# Y channel


def test_y_channel_closed_forms():
    assert rgb_to_y(np.array([255, 255, 255])) == pytest.approx(235.0, abs=1e-9)
    assert rgb_to_y(np.array([0, 0, 0])) == pytest.approx(16.0, abs=1e-12)
    assert rgb_to_y(np.array([255, 0, 0])) == pytest.approx(16 + 65.481, abs=1e-9)
    assert rgb_to_y(np.array([0, 255, 0])) == pytest.approx(16 + 128.553, abs=1e-9)
    assert rgb_to_y(np.array([0, 0, 255])) == pytest.approx(16 + 24.966, abs=1e-9)
    grey = np.array([[v, v, v] for v in (0, 51, 128, 255)], dtype=np.uint8)
    assert rgb_to_y(grey) == pytest.approx(16 + 219 * np.array([0, 51, 128, 255]) / 255, abs=1e-9)
    assert rgb_to_y(np.zeros((2, 4, 5, 3))).shape == (2, 4, 5)


def test_y_channel_order_matters_for_a_coloured_image(photo):
    assert rgb_to_y(photo, "bgr") == pytest.approx(rgb_to_y(photo[..., ::-1]), abs=1e-9)
    assert not np.allclose(rgb_to_y(photo, "bgr"), rgb_to_y(photo))
    noisy = np.clip(photo + RNG.normal(0, 6, photo.shape), 0, 255).astype(np.uint8)
    right = psnr(noisy, photo, test_y_channel=True)
    assert psnr(noisy[..., ::-1], photo[..., ::-1], test_y_channel=True, channel_order="bgr") == pytest.approx(right)
    assert psnr(noisy, photo, test_y_channel=True, channel_order="bgr") != pytest.approx(right, abs=1e-3)


# sequences, tOF and averaging


def test_psnr_ssim_video_gives_per_frame_lists_and_means(photo):
    clip = moving_clip(photo, frames=3)
    noisy = np.clip(clip + RNG.normal(0, 5, clip.shape), 0, 255).astype(np.uint8)
    result = psnr_ssim_video(noisy, clip)
    assert result["frames"] == 3 and len(result["psnr"]) == len(result["ssim"]) == 3
    assert result["psnr"][1] == pytest.approx(psnr(noisy[1], clip[1]))
    assert result["ssim"][2] == pytest.approx(ssim(noisy[2], clip[2]))
    assert result["psnr_mean"] == pytest.approx(np.mean(result["psnr"]))
    assert result["ssim_mean"] == pytest.approx(np.mean(result["ssim"]))
    with pytest.raises(ValueError, match="differs"):
        psnr_ssim_video(noisy[:2], clip)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        psnr_ssim_video(noisy[0], clip[0])


def test_tof_is_zero_for_identical_sequences_and_positive_when_jittered(photo):
    clip = moving_clip(photo)
    assert tof(clip, clip) == 0.0
    assert tof(clip, clip, method="dis") == 0.0
    jittered = clip.copy()
    jittered[2] = np.roll(clip[2], 3, axis=1)
    farneback = tof(jittered, clip)
    assert farneback > 0.1
    assert tof(jittered, clip, method="dis") > 0.1
    assert tof(jittered, clip, tecogan_crop=True) > 0.0
    assert tof(clip, jittered) == pytest.approx(farneback, rel=0.05)  # EPE is symmetric; the flows nearly so


def test_tof_refuses_a_single_frame_and_an_unknown_method(photo):
    clip = moving_clip(photo, frames=2)
    with pytest.raises(ValueError, match="at least two frames"):
        tof(clip[:1], clip[:1])
    with pytest.raises(ValueError, match="method"):
        tof(clip, clip, method="raft")


def test_frame_and_sequence_means_differ_on_unequal_lengths():
    records = [
        {"sequence": "short", "frames": 2, "psnr": [30.0, 32.0], "ssim": [0.9, 0.8], "tof": 1.0},
        {"sequence": "long", "frames": 4, "psnr": [20.0, 20.0, 20.0, 20.0], "ssim": [0.5] * 4, "tof": 3.0},
    ]
    summary = summarize(records)
    assert summary["psnr_frame_mean"] == pytest.approx((30 + 32 + 4 * 20) / 6)  # 23.667: DSTNet
    assert summary["psnr_sequence_mean"] == pytest.approx((31 + 20) / 2)  # 25.5: VRT/RVRT
    assert summary["ssim_frame_mean"] == pytest.approx((0.9 + 0.8 + 4 * 0.5) / 6)
    assert summary["ssim_sequence_mean"] == pytest.approx((0.85 + 0.5) / 2)
    assert summary["tof"] == pytest.approx(2.0)
    assert summary["frames"] == 6 and summary["sequences"] == 2
    table = format_table(records, summary)
    assert "short" in table and "long" in table and "23.67" in table and "25.50" in table
    assert "DSTNet" in table and "VRT/RVRT" in table


def test_summarize_refuses_inconsistent_records():
    with pytest.raises(ValueError, match="no sequence"):
        summarize([])
    with pytest.raises(ValueError, match="missing"):
        summarize([{"sequence": "a", "frames": 1, "psnr": [30.0]}, {"sequence": "b", "frames": 1, "ssim": [0.5]}])
    with pytest.raises(ValueError, match="3 frames"):
        summarize([{"sequence": "a", "frames": 3, "psnr": [30.0]}])
    only_psnr = summarize([{"sequence": "a", "frames": 1, "psnr": [30.0]}])
    assert "ssim_frame_mean" not in only_psnr and "tof" not in only_psnr
    assert "-" in format_table([{"sequence": "a", "frames": 1, "psnr": [30.0]}])


def test_sequence_scores_names_the_sequence_on_bad_input(photo):
    clip = moving_clip(photo, frames=2)
    record = sequence_scores(clip, clip, "GOPR0384_11_00")
    assert record["frames"] == 2 and record["psnr"] == [math.inf, math.inf] and record["tof"] == 0.0
    with pytest.raises(DataError, match="GOPR0862_11_00: .*at least two frames"):
        sequence_scores(clip[:1], clip[:1], "GOPR0862_11_00")
    with pytest.raises(DataError, match="IMG_0049: .*differs"):
        sequence_scores(clip, clip.transpose(0, 2, 1, 3)[:, :, :-1], "IMG_0049")


# the mmengine twin


def test_frames_to_uint8_rounds_and_clamps_like_tensor2img():
    values = torch.tensor([-0.5, 0.0, 0.49 / 255, 0.51 / 255, 127.4 / 255, 127.6 / 255, 1.0, 2.0])
    frames = values.reshape(1, 1, 1, -1).expand(1, 3, 1, 8)
    out = frames_to_uint8(frames)
    assert out.shape == (1, 1, 8, 3) and out.dtype == np.uint8
    assert out[0, 0, :, 0].tolist() == [0, 0, 0, 1, 127, 128, 255, 255]
    uint8 = RNG.integers(0, 256, (2, 5, 6, 3)).astype(np.uint8)
    assert frames_to_uint8(uint8) is uint8
    with pytest.raises(ValueError, match="dtype"):
        frames_to_uint8(uint8.astype(np.uint16))
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        frames_to_uint8(uint8.astype(np.float32) / 255)


def test_metric_twin_on_tensors_and_uint8_agrees_with_the_functions(photo):
    clip = moving_clip(photo, frames=3)
    noisy = np.clip(clip + RNG.normal(0, 5, clip.shape), 0, 255).astype(np.uint8)
    short = moving_clip(photo, frames=2, step=3)
    metric = METRICS.build(dict(type="VideoRestorationMetric", keys=("psnr", "ssim", "tof")))
    assert isinstance(metric, VideoRestorationMetric)
    as_tensor = torch.from_numpy(noisy).permute(0, 3, 1, 2).float() / 255  # float (T, 3, H, W) in [0, 1]
    gt_tensor = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
    metric.process({}, [{"pred": as_tensor, "gt": gt_tensor, "sequence": "a"}])
    metric.process({}, [{"pred": np.roll(short, 1, axis=2), "gt": short, "sequence": "b"}])
    results = metric.evaluate(2)
    records = [sequence_scores(noisy, clip, "a"), sequence_scores(np.roll(short, 1, axis=2), short, "b")]
    expected = summarize(records)
    assert set(results) == {"video/psnr", "video/ssim", "video/tof"}
    assert results["video/psnr"] == pytest.approx(expected["psnr_frame_mean"], rel=1e-12)
    assert results["video/ssim"] == pytest.approx(expected["ssim_frame_mean"], rel=1e-12)
    assert results["video/tof"] == pytest.approx(expected["tof"], rel=1e-12)
    assert results["video/psnr"] != pytest.approx(expected["psnr_sequence_mean"])  # 3 vs 2 frames


def test_metric_twin_defaults_and_y_channel(photo):
    clip = moving_clip(photo, frames=2)
    noisy = np.clip(clip + RNG.normal(0, 5, clip.shape), 0, 255).astype(np.uint8)
    metric = VideoRestorationMetric(crop_border=4, test_y_channel=True)
    metric.process({}, [{"pred": noisy, "gt": clip}])
    results = metric.evaluate(1)
    assert set(results) == {"video/psnr", "video/ssim"}
    expected = np.mean([psnr(a, b, crop_border=4, test_y_channel=True) for a, b in zip(noisy, clip)])
    assert results["video/psnr"] == pytest.approx(expected)
    with pytest.raises(ValueError, match="unknown video metrics"):
        VideoRestorationMetric(keys=("psnr", "lpips"))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_metric_twin_rejects_non_finite_frames_naming_the_sequence(photo, bad):
    gt = torch.from_numpy(moving_clip(photo, frames=2)).permute(0, 3, 1, 2).float() / 255
    pred = gt.clone()
    pred[1, 0, 3, 3] = bad
    metric = VideoRestorationMetric()
    with pytest.raises(DataError, match="GOPR0410_11_00: pred contains NaN or inf"):
        metric.process({}, [{"pred": pred, "gt": gt, "sequence": "GOPR0410_11_00"}])
    with pytest.raises(DataError, match="GOPR0410_11_00: gt contains NaN or inf"):
        metric.process({}, [{"pred": gt, "gt": pred, "sequence": "GOPR0410_11_00"}])
    assert metric.results == []
