"""Pose noise statistics (Gaussian vs Laplace), untouched components, seeding and ego handling; delay modes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from diffusekit.perception3d.noise import NOISE_SWEEP, TRAIN_NOISE, Delay, PoseNoise, sweep_presets

POSES = np.array([[10.0, -5, 1.9, 0.5, 30, -1.0], [-40, 22, 2.1, -0.3, 170, 0.7], [3, 3, 1.8, 0, -90, 0]])


def _kurtosis(x: np.ndarray) -> float:
    centred = x - x.mean()
    return float((centred**4).mean() / (centred**2).mean() ** 2)


def _draws(noise: PoseNoise, count: int = 20000, seed: int = 0) -> np.ndarray:
    return noise.apply(np.zeros((count, 6)), np.random.default_rng(seed))


def test_gaussian_statistics():
    d = _draws(PoseNoise(0.4, 0.6, pos_mean=0.1, rot_mean=-0.2))
    np.testing.assert_allclose(d[:, :2].mean(0), 0.1, atol=0.015)
    np.testing.assert_allclose(d[:, :2].std(0), 0.4, rtol=0.03)
    assert d[:, 4].mean() == pytest.approx(-0.2, abs=0.02)
    assert d[:, 4].std() == pytest.approx(0.6, rel=0.03)
    assert abs(np.corrcoef(d[:, 0], d[:, 1])[0, 1]) < 0.03  # x and y drawn independently
    assert _kurtosis(d[:, 0]) == pytest.approx(3.0, abs=0.2)


def test_laplace_statistics():
    # scale b = std, as CoAlign: the standard deviation is sqrt(2) b and the kurtosis 6
    d = _draws(PoseNoise(0.4, 0.6, laplace=True))
    np.testing.assert_allclose(d[:, :2].std(0), 0.4 * np.sqrt(2), rtol=0.04)
    np.testing.assert_allclose(np.abs(d[:, :2]).mean(0), 0.4, rtol=0.03)  # E|X| = b
    assert d[:, 4].std() == pytest.approx(0.6 * np.sqrt(2), rel=0.04)
    assert _kurtosis(d[:, 0]) == pytest.approx(6.0, abs=0.8)
    assert _kurtosis(d[:, 4]) > 4.5


def test_only_x_y_yaw_change():
    rng = np.random.default_rng(3)
    noisy = PoseNoise(0.6, 0.6).apply(POSES, rng)
    assert noisy.shape == POSES.shape and noisy.dtype == np.float64
    np.testing.assert_array_equal(noisy[:, [2, 3, 5]], POSES[:, [2, 3, 5]])
    assert np.all(noisy[:, [0, 1, 4]] != POSES[:, [0, 1, 4]])
    np.testing.assert_array_equal(POSES[0], [10.0, -5, 1.9, 0.5, 30, -1.0])  # input untouched
    single = PoseNoise(0.6, 0.6).apply(POSES[1], rng)
    assert single.shape == (6,) and single[2] == POSES[1, 2]


def test_reproducible_and_different_per_call():
    noise = PoseNoise(0.2, 0.2)
    a = noise.apply(POSES, np.random.default_rng(303))
    b = noise.apply(POSES, np.random.default_rng(303))
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(303)
    first, second = noise.apply(POSES, rng), noise.apply(POSES, rng)
    np.testing.assert_array_equal(first, a)
    assert not np.allclose(first, second)  # the generator advances; nothing re-seeds it
    with pytest.raises(TypeError, match="Generator"):
        noise.apply(POSES, 303)


def test_ego_handling():
    coalign = PoseNoise(0.5, 0.5).apply(POSES, np.random.default_rng(1))
    opencood = PoseNoise(0.5, 0.5, ego=False).apply(POSES, np.random.default_rng(1))
    assert not np.allclose(coalign[0], POSES[0])
    np.testing.assert_array_equal(opencood[0], POSES[0])
    np.testing.assert_array_equal(opencood[1:], coalign[1:])  # same draws for the other agents


def test_presets_and_zero_noise():
    assert NOISE_SWEEP == (0.0, 0.2, 0.4, 0.6)
    presets = sweep_presets()
    assert [(p.pos_std, p.rot_std) for p in presets] == [(s, s) for s in NOISE_SWEEP]
    assert all(p.ego and not p.laplace for p in presets)
    assert all(p.laplace and not p.ego for p in sweep_presets(laplace=True, ego=False))
    assert TRAIN_NOISE == PoseNoise(0.2, 0.2)
    assert not presets[0].enabled and presets[1].enabled
    for laplace in (False, True):
        zero = PoseNoise(0.0, 0.0, laplace=laplace)
        np.testing.assert_array_equal(zero.apply(POSES, np.random.default_rng(0)), POSES)
    with pytest.raises(dataclasses.FrozenInstanceError):
        TRAIN_NOISE.pos_std = 1.0
    with pytest.raises(ValueError):
        PoseNoise(-0.1, 0.2)
    with pytest.raises(ValueError):
        PoseNoise(0.1, 0.2).apply(np.zeros((3, 4)), np.random.default_rng(0))


def test_delay_modes():
    rng = np.random.default_rng(0)
    assert Delay().frames(rng) == 0
    assert Delay("frames", num_frames=2).frames(rng) == 2
    assert Delay("frames", num_frames=2).frames(rng, ego=True) == 0
    assert Delay("sim", async_overhead=250).milliseconds(rng) == 250.0
    assert Delay("sim", async_overhead=250).frames(rng) == 2
    assert Delay("sim", async_overhead=99).frames(rng) == 0
    assert Delay("sim", async_overhead=250).frames(rng, ego=True) == 0
    real = Delay("real")
    ms = np.array([real.milliseconds(rng) for _ in range(4000)])
    transmission = 1.06 / 27 * 1000  # 39.26 ms
    assert ms.min() >= transmission + 10 and ms.max() <= transmission + 10 + 100
    assert ms.mean() == pytest.approx(transmission + 10 + 50, abs=1.5)  # U(0, 100) has mean 50
    frames = np.array([real.frames(rng) for _ in range(4000)])
    assert set(frames) == {0, 1}
    # P(frame 1) = P(U > 100 - 49.26) = 49.26 / 100
    assert frames.mean() == pytest.approx((transmission + 10) / 100, abs=0.03)
    assert real.frames(rng, ego=True) == 0
    slow = Delay("real", async_overhead=0.0, data_size=8.0, transmission_speed=4.0, backbone_delay=30.0)
    assert slow.milliseconds(rng) == pytest.approx(2030.0) and slow.frames(rng) == 20
    a = [real.frames(np.random.default_rng(9)) for _ in range(3)]
    assert len(set(a)) == 1  # same seed, same delay
    for bad in (dict(mode="later"), dict(mode="frames", num_frames=-1), dict(mode="real", transmission_speed=0)):
        with pytest.raises(ValueError):
            Delay(**bad)
