"""Crops and the heatmap codec: sub-pixel round trips, exact flips, box geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusekit.pose.codec import (
    HeatmapCodec,
    box_to_center_size,
    crop_matrix,
    flip_heatmaps,
    flip_keypoints,
    invert,
    transform_points,
    warp,
)


def test_encode_decode_round_trip_is_sub_pixel():
    codec = HeatmapCodec((192, 256), (48, 64), sigma=2.0)
    rng = np.random.default_rng(0)
    keypoints = rng.uniform([20, 20], [172, 236], size=(17, 2))
    heatmaps, weights = codec.encode(keypoints, np.ones(17))
    assert heatmaps.shape == (17, 64, 48) and weights.all()
    decoded, scores = codec.decode(heatmaps[None])
    error = np.abs(decoded[0] - keypoints) / codec.stride
    assert error.max() < 0.02  # heatmap pixels; plain argmax is off by up to 0.5
    assert scores.shape == (1, 17) and (scores > 0.88).all()


def test_invisible_and_far_outside_joints_get_zero_weight():
    codec = HeatmapCodec((64, 64), (16, 16), sigma=1.0)
    heatmaps, weights = codec.encode(np.array([[30.0, 30], [30, 30], [-100, 30]]), np.array([1, 0, 1]))
    assert weights.tolist() == [1, 0, 0] and heatmaps[1:].max() == 0


def test_flip_is_exact_in_crop_and_heatmap():
    codec = HeatmapCodec((192, 256), (48, 64), sigma=2.0)
    keypoints = np.random.default_rng(1).uniform(10, 180, size=(17, 2))
    heatmaps, _ = codec.encode(keypoints, np.ones(17))
    flipped, _ = codec.encode(flip_keypoints(keypoints, 192), np.ones(17))
    back = flip_heatmaps(torch.from_numpy(flipped))
    assert torch.allclose(back, torch.from_numpy(heatmaps), atol=1e-6)


def test_crop_matrix_maps_the_padded_box_onto_the_crop():
    center, size = box_to_center_size([100, 50, 60, 160], aspect=192 / 256, padding=1.25)
    assert np.allclose(center, [130, 130]) and np.allclose(size / 1.25, [120, 160])
    m = crop_matrix(center, size, (192, 256))
    corners = np.array([center - size / 2, center + size / 2])
    # one isotropic scale, (W - 1) / box width: the height lands within a fraction of a pixel (191/150 vs 255/200)
    assert np.allclose(transform_points(corners, m), [[0, 0], [191, 255]], atol=0.2)
    # flip: the crop mirrored; rotation keeps the centre
    mf = crop_matrix(center, size, (192, 256), flip=True)
    assert np.allclose(transform_points(corners, mf), [[191, 0], [0, 255]], atol=0.2)
    mr = crop_matrix(center, size, (192, 256), rotation=30)
    assert np.allclose(transform_points(center, mr), [95.5, 127.5])
    assert np.allclose(transform_points(transform_points(corners, mr), invert(mr)), corners)


def test_warp_moves_a_bright_pixel_where_the_matrix_says():
    image = np.zeros((300, 400, 3), np.uint8)
    image[118:123, 248:253] = 255  # a 5-pixel blob: the crop downsamples 2.4x
    center, size = box_to_center_size([200, 60, 100, 120], aspect=1.0)
    m = crop_matrix(center, size, (64, 64))
    crop = warp(image, m, (64, 64))
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert np.allclose([x, y], transform_points(np.array([250.0, 120]), m), atol=1.0)


@pytest.mark.parametrize("border", [(0.2, 30.0), (47.0, 30.0)])
def test_decode_at_the_border_falls_back_to_argmax(border):
    codec = HeatmapCodec((192, 256), (48, 64), sigma=2.0)
    heatmaps, _ = codec.encode(np.array([border]) * codec.stride, np.ones(1))
    decoded, _ = codec.decode(heatmaps)
    assert np.all(np.abs(decoded / codec.stride - np.round(border)) <= 0.5)
