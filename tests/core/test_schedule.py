"""Schedules and timestep lists against their formulas, and the pitfalls of core.md §1.4."""

import math

import numpy as np
import pytest
import torch

from diffusekit.core import NoiseSchedule, make_timesteps
from diffusekit.core.schedule import cosine_betas, validate_timesteps


def test_linear_matches_formula_and_is_float64():
    s = NoiseSchedule.named("linear", 1000)
    assert s.betas.dtype == torch.float64 and s.alphas_cumprod.dtype == torch.float64
    np.testing.assert_allclose(s.betas.numpy(), np.linspace(1e-4, 0.02, 1000), rtol=0, atol=1e-15)
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), np.cumprod(1 - np.linspace(1e-4, 0.02, 1000)), rtol=1e-12)


@pytest.mark.parametrize("name,b0,b1,T", [("scaled_linear", 0.00085, 0.012, 1000), ("quad", 1e-4, 0.5, 50)])
def test_squared_linspace_schedules(name, b0, b1, T):
    s = NoiseSchedule.named(name, T)
    expected = np.linspace(math.sqrt(b0), math.sqrt(b1), T) ** 2
    np.testing.assert_allclose(s.betas.numpy(), expected, rtol=1e-13)
    assert s.betas[0].item() == pytest.approx(b0) and s.betas[-1].item() == pytest.approx(b1)


def test_quad_is_the_imdiffusion_schedule():
    # CSDI/ImDiffusion: betas = linspace(1e-4 ** 0.5, 0.5 ** 0.5, 50) ** 2
    s = NoiseSchedule.named("quad", 50)
    assert s.betas[1].item() == pytest.approx((0.01 + (math.sqrt(0.5) - 0.01) / 49) ** 2, rel=1e-12)


def test_cosine_alpha_bar_follows_the_cosine_law_and_caps_beta():
    T, s_ = 1000, 0.008
    s = NoiseSchedule.named("cosine", T)
    f = lambda u: math.cos((u + s_) / (1 + s_) * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 500, 900):
        assert s.alphas_cumprod[t].item() == pytest.approx(f((t + 1) / T) / f(0), rel=1e-10)
    assert s.betas.max().item() == pytest.approx(0.999)
    assert (cosine_betas(T) > 0).all()  # alpha-bar_0 < 1: no NaN at t=0 (MONAI PR #8427)


def test_zero_terminal_snr_rescaling():
    base = NoiseSchedule.named("scaled_linear", 1000)
    s = NoiseSchedule.named("scaled_linear", 1000, zero_terminal_snr=True)
    assert s.alphas_cumprod[-1].item() == 0.0
    assert s.alphas_cumprod[0].item() == pytest.approx(base.alphas_cumprod[0].item(), rel=1e-12)
    # sqrt(alpha-bar) is an affine map of the original one (Lin et al. Alg. 1)
    a, b = base.alphas_cumprod.sqrt(), s.alphas_cumprod.sqrt()
    slope = (b[0] - b[-1]) / (a[0] - a[-1])
    torch.testing.assert_close(b, slope * (a - a[-1]), rtol=0, atol=1e-12)


def test_custom_betas_and_validation():
    s = NoiseSchedule([0.1, 0.2, 0.3])
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), [0.9, 0.72, 0.504])
    for bad in ([], [0.1, -0.1], [0.1, float("nan")], [[0.1, 0.2]], [1.0, 0.5]):
        with pytest.raises(ValueError):
            NoiseSchedule(bad)
    with pytest.raises(ValueError):
        NoiseSchedule.named("sigmoid", 10)


def test_schedule_that_does_not_reach_noise_warns():
    with pytest.warns(UserWarning, match="far from pure noise"):
        NoiseSchedule.named("linear", 20)


def test_alpha_bar_of_clean_level_is_one():
    s = NoiseSchedule.named("linear", 10, beta_end=0.5)
    assert s.alpha_bar(-1).item() == 1.0
    torch.testing.assert_close(
        s.alpha_bar(torch.tensor([-1, 0, 9])), torch.cat([torch.ones(1), s.alphas_cumprod[[0, 9]]])
    )


def test_timestep_spacings_follow_table_2_of_lin_et_al():
    assert make_timesteps(1000, 10, "trailing") == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert make_timesteps(1000, 10, "leading") == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert make_timesteps(1000, 10, "linspace") == [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]
    assert make_timesteps(1000, 50, "leading")[0] == 980  # never T-1 (diffusers #2585)
    for spacing in ("trailing", "leading", "linspace"):
        for n in (1, 3, 7, 50, 999, 1000):
            ts = make_timesteps(1000, n, spacing)
            assert len(ts) == n and all(isinstance(t, int) for t in ts)
            assert all(a > b for a, b in zip(ts, ts[1:])) and 0 <= ts[-1] and ts[0] <= 999
        assert make_timesteps(1000, 1000, spacing) == list(range(999, -1, -1))
    with pytest.raises(ValueError):
        make_timesteps(10, 11)


def test_validate_timesteps_rejects_unsorted_duplicates_and_out_of_range():
    assert validate_timesteps(torch.tensor([5, 3, 0]), 10) == [5, 3, 0]
    for bad in ([3, 5], [5, 5, 0], [10, 0], [3, -1], []):
        with pytest.raises(ValueError):
            validate_timesteps(bad, 10)


def test_logsnr_spacing_is_uniform_in_lambda():
    s = NoiseSchedule.named("linear", 1000)
    ts = make_timesteps(1000, 10, "logsnr", s)
    assert ts[0] == 999 and ts[-1] == 0
    ab = s.alphas_cumprod[ts]
    lam = 0.5 * torch.log(ab / (1 - ab))
    steps = lam.diff()
    assert (steps > 0).all()
    # equal lambda steps up to the rounding of t to integers (largest relative at small t)
    assert (steps / steps.mean() - 1).abs().max() < 0.15
    for n in (1, 2, 37, 500, 1000):
        ts = make_timesteps(1000, n, "logsnr", s)
        assert len(ts) == n and ts[0] == 999 and all(a > b >= 0 for a, b in zip(ts, ts[1:]))
    assert make_timesteps(1000, 1000, "logsnr", s) == list(range(999, -1, -1))
    zero_snr = NoiseSchedule.named("linear", 1000, zero_terminal_snr=True)
    assert make_timesteps(1000, 5, "logsnr", zero_snr)[0] == 999
    with pytest.raises(ValueError, match="schedule"):
        make_timesteps(1000, 10, "logsnr")
