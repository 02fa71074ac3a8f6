"""DIVD's video U-Net (WTSA, MRPE), the diffusion model, and tiled sequence inference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusekit.video.divd import DIVD, DeterministicDeblur, pad_to_multiple
from diffusekit.video.inference import TileSettings, restore_sequence, spans
from diffusekit.video.networks import VideoUNet, WindowTemporalAttention, relative_position_index

NET = dict(channels=(8, 16), num_res_blocks=1, attention_levels=(1,), attention_heads=2, window=4, max_frames=3)


def test_relative_position_index_is_the_offset_table():
    frames, window, max_frames = 2, 3, 3
    index = relative_position_index(frames, window, max_frames)
    span = 2 * window - 1
    n = frames * window * window
    assert index.shape == (n, n)
    centre = (max_frames - 1) * span * span + (window - 1) * span + window - 1  # offset (0, 0, 0)
    assert torch.equal(index.diagonal(), torch.full((n,), centre))
    assert torch.equal(index + index.T, torch.full((n, n), 2 * centre))  # (a - b) = -(b - a)
    # token 0 = (t0, y0, x0), last token = (t1, y2, x2): offset (-1, -2, -2) from the last to the first
    assert index[0, n - 1] == ((-1 + max_frames - 1) * span + (-2 + window - 1)) * span + (-2 + window - 1)
    assert index.max() < (2 * max_frames - 1) * span * span and index.min() >= 0


def _block(temporal: bool, relative: bool) -> WindowTemporalAttention:
    torch.manual_seed(0)
    block = WindowTemporalAttention(8, 2, window=4, max_frames=3, temporal=temporal, relative_position=relative)
    if relative:
        torch.nn.init.normal_(block.bias, std=1.0)
    block.norm = torch.nn.Identity()  # GroupNorm couples all windows of a frame; test the attention's reach alone
    return block.eval()


def test_wtsa_mixes_frames_within_a_window_only():
    x = torch.randn(3, 8, 8, 8)  # one clip of 3 frames, 2 x 2 windows of 4 x 4
    changed = x.clone()
    changed[1, :, :4, :4] += 1.0  # frame 1, top-left window
    for temporal in (True, False):
        block = _block(temporal, True)
        diff = (block(changed, 3) - block(x, 3)).abs()
        assert diff[0, :, :4, :4].max() > 1e-4 if temporal else diff[0].max() == 0  # frame 0, same window
        assert diff[:, :, 4:, :].max() == 0 and diff[:, :, :, 4:].max() == 0  # other windows untouched


def test_mrpe_makes_attention_aware_of_frame_order():
    x = torch.randn(3, 8, 4, 4)
    order = torch.tensor([2, 0, 1])
    without = _block(True, False)
    # no positional information: permuting the frames permutes the outputs exactly
    torch.testing.assert_close(without(x[order], 3), without(x, 3)[order], atol=1e-5, rtol=1e-5)
    with_mrpe = _block(True, True)
    assert (with_mrpe(x[order], 3) - with_mrpe(x, 3)[order]).abs().max() > 1e-3


def test_video_unet_checks_sizes_and_clip_length():
    net = VideoUNet(3, 3, cond_channels=3, **NET)
    assert net.size_multiple == 8
    with pytest.raises(ValueError, match="multiples of 8"):
        net(torch.zeros(1, 2, 3, 12, 16), torch.zeros(1, dtype=torch.long), cond=torch.zeros(1, 2, 3, 12, 16))
    with pytest.raises(ValueError, match="exceeds"):
        net(torch.zeros(1, 4, 3, 8, 8), torch.zeros(1, dtype=torch.long), cond=torch.zeros(1, 4, 3, 8, 8))


@pytest.mark.parametrize("predictor", [None, NET], ids=["divd", "predict_and_refine"])
def test_divd_trains_and_restores(predictor):
    torch.manual_seed(0)
    model = DIVD(denoiser=NET, predictor=predictor)
    blur, sharp = torch.rand(2, 3, 3, 16, 16), torch.rand(2, 3, 3, 16, 16)
    losses = model.loss(blur, sharp)
    assert set(losses) == ({"loss_diffusion", "loss_predictor"} if predictor else {"loss_diffusion"})
    sum(losses.values()).backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    odd = torch.rand(1, 2, 3, 13, 19)  # padded to multiples of 8 inside, cropped back
    noise = torch.randn(2, 1, 2, 3, 13, 19)
    first = model.restore(odd, steps=3, samples=2, noise=noise)
    again = model.restore(odd, steps=3, samples=2, noise=noise)
    assert first.frames.shape == odd.shape and first.uncertainty.shape == (1, 2, 13, 19)
    assert torch.equal(first.frames, again.frames)  # DDIM (eta 0) is deterministic given the noise
    assert 0 <= first.frames.min() and first.frames.max() <= 1
    assert first.evaluations == 2 * 3 + (1 if predictor else 0)
    assert model.restore(odd, steps=None, samples=1).evaluations == 1000 + (1 if predictor else 0)


def test_untrained_predict_and_refine_returns_the_predictor_estimate():
    """Zero-initialised output layers: the predictor returns the blurry clip, the denoiser predicts eps = 0, so
    DDIM's x0 estimate from pure noise is noise / sqrt(alpha-bar_T) scaled by the residual scale; with the
    residual scale tiny the restoration is the blurry clip itself."""
    model = DIVD(denoiser=NET, predictor=NET, residual_scale=1e-9)
    blur = torch.rand(1, 3, 3, 8, 8)
    torch.testing.assert_close(model.restore(blur, steps=2).frames, blur, atol=1e-6, rtol=0)


def test_pad_to_multiple_reflects_and_keeps_size():
    clip = torch.arange(2 * 1 * 3 * 5, dtype=torch.float32).reshape(1, 2, 1, 3, 5)
    padded, (h, w) = pad_to_multiple(clip, 4)
    assert padded.shape[-2:] == (4, 8) and (h, w) == (3, 5)
    assert torch.equal(padded[..., :3, :5], clip)
    assert torch.equal(padded[..., 3, :5], clip[..., 1, :])  # reflection about the last row


def test_spans_cover_with_overlap():
    assert spans(10, None, 2) == [(0, 10)]
    assert spans(3, 5, 2) == [(0, 3)]
    assert spans(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    covered = set()
    for start, stop in spans(101, 32, 8):
        assert stop - start == 32
        covered.update(range(start, stop))
    assert covered == set(range(101))


def _perturbed(model, local: bool = False):
    """Random output layers (the zero-initialised ones make every network the identity); ``local``: GroupNorm
    replaced by the identity, so that a pixel's output depends on its receptive field only (GroupNorm statistics
    are per tile when tiled, per frame otherwise)."""
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if name.endswith("out.2.weight"):
            torch.nn.init.normal_(p, std=0.05)
    if local:
        for parent in list(model.modules()):
            for child_name, child in parent.named_children():
                if isinstance(child, torch.nn.GroupNorm):
                    setattr(parent, child_name, torch.nn.Identity())
    return model.eval()


@pytest.mark.parametrize("kind", ["divd", "regressor"])
def test_tiled_and_untiled_restorations_agree(kind):
    model = DIVD(denoiser=NET, predictor=NET) if kind == "divd" else DeterministicDeblur(network=NET)
    model = _perturbed(model, local=True)
    from skimage.data import astronaut

    photo = astronaut()[::4, ::4]  # 128 x 128, natural image statistics
    frames = np.stack([photo[10 + 2 * i : 50 + 2 * i, 20 + 3 * i : 76 + 3 * i] for i in range(5)])
    whole = TileSettings(clip=3, clip_overlap=1, tile=None)
    tiled = TileSettings(clip=3, clip_overlap=1, tile=24, overlap=8)
    options = dict(steps=2, samples=1, seed=3)
    full = np.stack([f for _, f, _ in restore_sequence(model, frames, tiles=whole, **options)])
    parts = np.stack([f for _, f, _ in restore_sequence(model, frames, tiles=tiled, **options)])
    assert full.shape == parts.shape == frames.shape
    mse = np.mean((full.astype(float) - parts.astype(float)) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 30  # only the network's context at tile borders differs
    again = np.stack([f for _, f, _ in restore_sequence(model, frames, tiles=tiled, **options)])
    assert np.array_equal(parts, again)


def test_a_single_clip_sequence_equals_one_restore_call():
    model = _perturbed(DIVD(denoiser=NET, predictor=NET))
    frames = (np.random.default_rng(1).random((3, 16, 24, 3)) * 255).astype(np.uint8)
    out = [f for _, f, _ in restore_sequence(model, frames, steps=2, tiles=TileSettings(clip=3, tile=None), seed=0)]
    from diffusekit.video.inference import _frame_noise

    noise = torch.stack([_frame_noise(0, i, 1, 16, 24) for i in range(3)], 1).unsqueeze(1)
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div(255).unsqueeze(0)
    direct = model.restore(clip, steps=2, noise=noise).frames[0]
    expected = direct.mul(255).round().byte().permute(0, 2, 3, 1).numpy()
    assert np.array_equal(np.stack(out), expected)
