"""DiffPose and the baseline: the x0 objective, STRL computed once per clip, step counts, exact flip averaging."""

from __future__ import annotations

import pytest
import torch

from diffusekit.pose.backbones import ConvBackbone, ViTBackbone, build_backbone
from diffusekit.pose.baseline import HeatmapBaseline
from diffusekit.pose.codec import flip_heatmaps
from diffusekit.pose.diffpose import DiffPose

TINY = dict(
    backbone=dict(type="conv", channels=(8, 16, 16, 32)),
    input_size=(64, 64),
    heatmap_size=(16, 16),
    frames=3,
    strl=dict(dim=32, depth=1, heads=4),
)


def clip(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn((batch, 3, 3, 64, 64), generator=torch.Generator().manual_seed(seed))


def test_backbones_give_stride_16_maps():
    x = torch.randn(2, 3, 64, 96)
    assert ViTBackbone((96, 64), dim=32, depth=1, heads=4)(x).shape == (2, 32, 4, 6)
    assert ConvBackbone((8, 8, 16, 24))(x).shape == (2, 24, 4, 6)
    with pytest.raises(ValueError, match="multiple of the patch"):
        ViTBackbone((100, 64))


def test_backbone_weights_load_from_a_user_file(tmp_path):
    source = build_backbone(dict(type="conv", channels=(8, 8, 16, 16)), (64, 64))
    torch.save({f"backbone.{k}": v for k, v in source.state_dict().items()}, tmp_path / "w.pth")
    loaded = build_backbone(dict(type="conv", channels=(8, 8, 16, 16), weights=str(tmp_path / "w.pth")), (64, 64))
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))


def test_the_loss_is_the_l2_of_the_x0_prediction():
    model = DiffPose(**TINY, decoder=dict(dim=16, heads=4))
    heatmaps = torch.rand(2, 17, 16, 16)
    weights = torch.ones(2, 17)
    weights[0, 3:5] = 0
    target = model.to_signal(heatmaps)
    assert torch.allclose(model.from_signal(target), heatmaps, atol=1e-6)
    model.decoder.forward = lambda x_t, t, condition: target  # a perfect x0 predictor
    assert model(clip(), heatmaps, weights, mode="loss")["loss_l2"].item() == pytest.approx(0.0, abs=1e-10)
    model.decoder.forward = lambda x_t, t, condition: target + 0.5 * (weights[:, :, None, None] == 0)
    # errors on joints with weight 0 do not count
    assert model(clip(), heatmaps, weights, mode="loss")["loss_l2"].item() == pytest.approx(0.0, abs=1e-10)


def test_training_backpropagates_into_every_part():
    model = DiffPose(**TINY, decoder=dict(dim=16, heads=4))
    loss = model(clip(), torch.rand(2, 17, 16, 16), torch.ones(2, 17), mode="loss")["loss_l2"]
    loss.backward()
    for part in (model.strl.backbone, model.strl.blocks, model.decoder.refine, model.decoder.conv_lookup):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_strl_runs_once_per_clip_and_the_decoder_once_per_step():
    model = DiffPose(**TINY, decoder=dict(dim=16, heads=4)).eval()
    calls = {"strl": 0, "decoder": 0}
    model.strl.register_forward_hook(lambda *_: calls.__setitem__("strl", calls["strl"] + 1))
    model.decoder.register_forward_hook(lambda *_: calls.__setitem__("decoder", calls["decoder"] + 1))
    maps = model.predict_heatmaps(clip(), steps=4, samples=3, flip=True)
    assert maps.shape == (2, 17, 16, 16) and torch.isfinite(maps).all()
    assert calls == {"strl": 1, "decoder": 4}  # samples and flip views share one batch


def test_flip_averaging_is_exactly_equivariant():
    model = HeatmapBaseline(**TINY, head_channels=16).eval()
    x = clip()
    assert torch.allclose(model.predict_heatmaps(x.flip(-1)), flip_heatmaps(model.predict_heatmaps(x)), atol=1e-5)


def test_wrong_heatmap_size_is_refused():
    with pytest.raises(ValueError, match="4x the feature grid"):
        DiffPose(**{**TINY, "heatmap_size": (32, 32)})
    with pytest.raises(ValueError, match="clip of 2 frames"):
        DiffPose(**TINY)(clip()[:, :2], mode="tensor")
