"""Public checkpoints into the pose backbones (issue 19): each test writes a state dict in the source's key layout
(timm ViT, MAE, ViTPose/MMPose, torchvision/timm ResNet) with random tensors, computes the SOURCE network's features
with an independent functional forward written from its published code, loads the dict into our backbone and checks
that the features agree to 1e-5 (float64)."""

from __future__ import annotations

import logging
import math

import pytest
import torch
import torch.nn.functional as F

from diffusekit.core.errors import DataError
from diffusekit.pose.backbones import ResNetBackbone, ViTBackbone, build_backbone
from diffusekit.pose.pretrained import LoadReport, detect_format, load_pretrained, resize_pos_embed, unwrap

DIM, HEADS, DEPTH = 32, 4, 2
INPUT = (64, 48)  # (W, H): a 3 x 4 patch grid


def _random(seed: int):
    generator = torch.Generator().manual_seed(seed)
    return lambda *shape, scale=0.2: torch.randn(*shape, generator=generator, dtype=torch.float64) * scale


def timm_vit(grid=(3, 4), dim=DIM, depth=DEPTH, seed=0, cls_slot=True) -> dict[str, torch.Tensor]:
    """A timm VisionTransformer state dict (timm/models/vision_transformer.py names), with a 10-class head."""
    r = _random(seed)
    n = grid[0] * grid[1]
    state = {
        "patch_embed.proj.weight": r(dim, 3, 16, 16, scale=0.05),
        "patch_embed.proj.bias": r(dim),
        "cls_token": r(1, 1, dim, scale=0.5),
        "pos_embed": r(1, n + int(cls_slot), dim, scale=0.5),
    }
    for i in range(depth):
        block = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            state[f"{block}{norm}.weight"], state[f"{block}{norm}.bias"] = 1 + r(dim, scale=0.1), r(dim, scale=0.1)
        state[block + "attn.qkv.weight"], state[block + "attn.qkv.bias"] = r(3 * dim, dim), r(3 * dim)
        state[block + "attn.proj.weight"], state[block + "attn.proj.bias"] = r(dim, dim), r(dim)
        state[block + "mlp.fc1.weight"], state[block + "mlp.fc1.bias"] = r(4 * dim, dim), r(4 * dim)
        state[block + "mlp.fc2.weight"], state[block + "mlp.fc2.bias"] = r(dim, 4 * dim, scale=0.1), r(dim)
    state["norm.weight"], state["norm.bias"] = 1 + r(dim, scale=0.1), r(dim, scale=0.1)
    state["head.weight"], state["head.bias"] = r(10, dim), r(10)
    return state


def vitpose_backbone(grid=(4, 3), seed=1) -> dict[str, torch.Tensor]:
    """ViTPose's ViT (ViTPose mmpose/models/backbones/vit.py): no class token, ``last_norm``, no head."""
    state = timm_vit(grid, seed=seed)
    for key in ("cls_token", "head.weight", "head.bias"):
        del state[key]
    state["last_norm.weight"], state["last_norm.bias"] = state.pop("norm.weight"), state.pop("norm.bias")
    return state


def vit_features(state, image, *, vitpose=False, cls_slot=True, eps=1e-6) -> torch.Tensor:
    """The source ViT's patch features (B, D, h, w), written from timm's / ViTPose's forward with functionals."""
    padding = 2 if vitpose else 0  # ViTPose: Conv2d(kernel 16, stride 16, padding 4 + 2 * (ratio // 2 - 1))
    x = F.conv2d(image, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=16, padding=padding)
    b, d, h, w = x.shape
    x = x.flatten(2).transpose(1, 2)
    pos = state["pos_embed"]
    if vitpose:
        x = x + pos[:, 1:] + pos[:, :1]
    elif cls_slot:
        x = torch.cat([state["cls_token"].expand(b, -1, -1), x], dim=1) + pos
    else:  # timm's no_embed_class
        x = torch.cat([state["cls_token"].expand(b, -1, -1), x + pos], dim=1)
    n, head_dim = x.shape[1], d // HEADS
    depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
    for i in range(depth):
        p = f"blocks.{i}."
        y = F.layer_norm(x, (d,), state[p + "norm1.weight"], state[p + "norm1.bias"], eps)
        qkv = F.linear(y, state[p + "attn.qkv.weight"], state.get(p + "attn.qkv.bias"))
        q, k, v = qkv.reshape(b, n, 3, HEADS, head_dim).permute(2, 0, 3, 1, 4)
        attention = ((q * head_dim**-0.5) @ k.transpose(-2, -1)).softmax(dim=-1)
        y = (attention @ v).transpose(1, 2).reshape(b, n, d)
        x = x + F.linear(y, state[p + "attn.proj.weight"], state[p + "attn.proj.bias"])
        y = F.layer_norm(x, (d,), state[p + "norm2.weight"], state[p + "norm2.bias"], eps)
        y = F.gelu(F.linear(y, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"]))
        x = x + F.linear(y, state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])
    final = "last_norm" if vitpose else "norm"
    x = F.layer_norm(x, (d,), state[final + ".weight"], state[final + ".bias"], eps)
    x = x if vitpose else x[:, 1:]
    return x.transpose(1, 2).reshape(b, d, h, w)


def image(size=INPUT, seed=5) -> torch.Tensor:
    width, height = size
    return torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def ours(input_size=INPUT, **kwargs) -> ViTBackbone:
    return ViTBackbone(input_size, **{"dim": DIM, "depth": DEPTH, "heads": HEADS, **kwargs}).double().eval()


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


# ViT: timm, MAE, ViTPose


def test_timm_vit_features_are_reproduced_and_the_report_counts_them():
    state = timm_vit()
    backbone = ours(cls_token=True)
    report = load_pretrained(backbone, state)
    assert isinstance(report, LoadReport) and report.source == "timm ViT"
    assert len(report.loaded) == len(backbone.state_dict()) == 34 and report.random == []
    assert report.skipped == ["head.weight", "head.bias"] and report.notes == []
    with torch.no_grad():
        close(backbone(image()), vit_features(state, image()))
    # the class token takes part in attention: without it the features are not the source's
    plain = ours()
    report = load_pretrained(plain, state)
    assert "cls_token" in report.skipped and any("cls_token=True" in note for note in report.notes)
    with torch.no_grad():
        assert (plain(image()) - vit_features(state, image())).abs().max() > 1e-2


def test_timm_without_a_class_position_and_without_final_norm():
    state = timm_vit(grid=(2, 2), cls_slot=False)  # no_embed_class: the class token gets no position
    del state["norm.weight"], state["norm.bias"]  # a global-pool model keeps its norm in fc_norm instead
    backbone = ours((32, 32), cls_token=True)
    with torch.no_grad():
        backbone.norm.weight.fill_(1.0)
        backbone.norm.bias.zero_()
        report = load_pretrained(backbone, state)
        assert report.random == ["norm.weight", "norm.bias"]
        reference = vit_features(
            {
                **state,
                "norm.weight": torch.ones(DIM, dtype=torch.float64),
                "norm.bias": torch.zeros(DIM, dtype=torch.float64),
            },
            image((32, 32)),
            cls_slot=False,
        )
        close(backbone(image((32, 32))), reference)


def test_an_mae_checkpoint_loads_its_encoder_and_skips_the_decoder():
    r = _random(3)
    encoder = timm_vit(seed=2)
    del encoder["head.weight"], encoder["head.bias"]
    decoder = {
        "mask_token": r(1, 1, 16),
        "decoder_embed.weight": r(16, DIM),
        "decoder_pos_embed": r(1, 13, 16),
        "decoder_blocks.0.norm1.weight": r(16),
        "decoder_norm.weight": r(16),
        "decoder_pred.weight": r(768, 16),
    }
    checkpoint = {"model": {**encoder, **decoder}}
    state, wrapper = unwrap(checkpoint)
    assert wrapper == "model" and detect_format(state, wrapper) == "mae"
    backbone = ours(cls_token=True)
    report = load_pretrained(backbone, checkpoint)
    assert report.source == "mae ViT" and sorted(report.skipped) == sorted(decoder) and report.random == []
    with torch.no_grad():
        close(backbone(image()), vit_features(encoder, image()))


def test_a_vitpose_checkpoint_file_through_build_backbone(tmp_path, caplog):
    inner = {k: v.float() for k, v in vitpose_backbone().items()}  # float32 in the file, as published
    heads = {
        "keypoint_head.deconv_layers.0.weight": torch.zeros(DIM, 8, 4, 4),
        "keypoint_head.final_layer.bias": torch.zeros(17),
    }
    path = tmp_path / "vitpose_small.pth"
    torch.save(
        {"meta": {"epoch": 210}, "state_dict": {**{f"backbone.{k}": v for k, v in inner.items()}, **heads}}, path
    )
    caplog.set_level(logging.INFO, logger="diffusekit.pose.pretrained")
    cfg = dict(type="vit", dim=DIM, depth=DEPTH, heads=HEADS, patch_padding=2, weights=str(path))
    backbone = build_backbone(cfg, INPUT).double().eval()
    report = backbone.load_report
    assert report.source == "mmpose ViT" and report.random == [] and report.notes == []
    assert sorted(report.skipped) == sorted(heads) and len(report.loaded) == len(backbone.state_dict()) == 33
    assert f"{path}: mmpose ViT weights: loaded 33 tensors, skipped 2 (keypoint_head." in caplog.text
    reference = vit_features({k: v.double() for k, v in inner.items()}, image(), vitpose=True)
    with torch.no_grad():
        close(backbone(image()), reference)
        # without ViTPose's padding of 2 the patches are cut 2 pixels off
        cfg["patch_padding"] = 0
        unpadded = build_backbone(cfg, INPUT).double().eval()
        assert any("patch_padding=2" in note for note in unpadded.load_report.notes)
        assert (unpadded(image()) - reference).abs().max() > 1e-2


def test_qkv_without_bias_gives_zero_biases():
    state = timm_vit()
    for i in range(DEPTH):
        del state[f"blocks.{i}.attn.qkv.bias"]
    backbone = ours(cls_token=True)
    report = load_pretrained(backbone, state)
    assert report.random == [] and any("no bias" in note for note in report.notes)
    with torch.no_grad():
        close(backbone(image()), vit_features(state, image()))


def test_norm_eps_is_1e6_by_default_and_reported_when_set_otherwise():
    assert {m.eps for m in ours().modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-6}
    state = timm_vit()
    backbone = ours(cls_token=True, norm_eps=1e-5)
    assert {m.eps for m in backbone.modules() if isinstance(m, torch.nn.LayerNorm)} == {1e-5}
    assert any("norm_eps=1e-05" in note for note in load_pretrained(backbone, state).notes)
    with torch.no_grad():  # nn.LayerNorm's default 1e-5 alone moves the features past the 1e-5 tolerance
        assert (backbone(image()) - vit_features(state, image())).abs().max() > 1e-5


def test_our_own_layout_loads_exactly_as_before(tmp_path):
    source = ViTBackbone(INPUT, dim=DIM, depth=1, heads=HEADS, cls_token=True)
    torch.save({f"backbone.{k}": v for k, v in source.state_dict().items()}, tmp_path / "own.pth")
    cfg = dict(type="vit", dim=DIM, depth=1, heads=HEADS, cls_token=True, weights=str(tmp_path / "own.pth"))
    loaded = build_backbone(cfg, INPUT)
    assert loaded.load_report.source == "diffusekit" and loaded.load_report.skipped == []
    assert all(torch.equal(a, b) for a, b in zip(source.state_dict().values(), loaded.state_dict().values()))


# position embeddings


def test_resize_pos_embed_is_the_identity_on_the_same_grid_and_timms_bicubic_otherwise():
    pos = _random(7)(1, 6, 5)
    assert resize_pos_embed(pos, (2, 3), (2, 3)) is pos
    constant = torch.full((1, 6, 5), 0.75, dtype=torch.float64)
    torch.testing.assert_close(
        resize_pos_embed(constant, (2, 3), (5, 4)), torch.full((1, 20, 5), 0.75, dtype=torch.float64)
    )
    for new in ((5, 4), (1, 2)):  # up (plain bicubic) and down (antialiased)
        grid = pos.reshape(1, 2, 3, 5).permute(0, 3, 1, 2)
        expected = F.interpolate(grid, size=new, mode="bicubic", align_corners=False, antialias=True)
        torch.testing.assert_close(resize_pos_embed(pos, (2, 3), new), expected.permute(0, 2, 3, 1).reshape(1, -1, 5))


def test_a_square_timm_grid_is_resampled_to_ours():
    state = timm_vit(grid=(2, 2))
    backbone = ours(cls_token=True)  # a 3 x 4 grid
    report = load_pretrained(backbone, state)
    assert any("2x2 to a 3x4" in note for note in report.notes)
    expected = F.interpolate(
        state["pos_embed"][:, 1:].reshape(1, 2, 2, DIM).permute(0, 3, 1, 2),
        size=(3, 4),
        mode="bicubic",
        align_corners=False,
        antialias=True,
    )
    torch.testing.assert_close(backbone.pos_embed.data, expected.permute(0, 2, 3, 1).reshape(1, 12, DIM))
    torch.testing.assert_close(backbone.cls_token.data, state["cls_token"] + state["pos_embed"][:, :1])


def test_vitpose_16x12_grid_is_assumed_and_other_grids_need_pretrained_grid():
    state = {f"backbone.{k}": v for k, v in vitpose_backbone(grid=(16, 12)).items()}
    backbone = ours((96, 128))  # an 8 x 6 grid
    load_pretrained(backbone, {"state_dict": state})
    pos = state["backbone.pos_embed"]
    patches = pos[:, 1:] + pos[:, :1]

    def resampled(h, w):
        grid = patches.reshape(1, h, w, DIM).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(8, 6), mode="bicubic", align_corners=False, antialias=True)
        return grid.permute(0, 2, 3, 1).reshape(1, 48, DIM)

    torch.testing.assert_close(backbone.pos_embed.data, resampled(16, 12))
    assert not torch.allclose(backbone.pos_embed.data, resampled(12, 16), atol=1e-3)

    wide = timm_vit(grid=(2, 3))  # 6 positions: not a square, not our 3 x 4
    with pytest.raises(DataError, match=r"pretrained_grid=\(h, w\)"):
        load_pretrained(ours(cls_token=True), wide)
    with pytest.raises(DataError, match="has 4 positions"):
        load_pretrained(ours(cls_token=True), wide, pretrained_grid=(2, 2))
    backbone = ours(cls_token=True)
    load_pretrained(backbone, wide, pretrained_grid=(2, 3))
    torch.testing.assert_close(backbone.pos_embed.data, resize_pos_embed(wide["pos_embed"][:, 1:], (2, 3), (3, 4)))


# ResNet


def resnet(depth: int, seed=0) -> dict[str, torch.Tensor]:
    """A torchvision ResNet state dict (torchvision/models/resnet.py names); layer4 and fc as small stand-ins."""
    bottleneck = depth >= 50
    counts = {18: (2, 2, 2, 2), 50: (3, 4, 6, 3)}[depth]
    r = _random(seed)
    state = {}

    def conv(name, cout, cin, k):
        state[name + ".weight"] = r(cout, cin, k, k, scale=math.sqrt(1.0 / (cin * k * k)))

    def bn(name, c):
        state.update({
            name + ".weight": 1 + r(c, scale=0.1), name + ".bias": r(c, scale=0.1),
            name + ".running_mean": r(c, scale=0.1), name + ".running_var": 0.5 + r(c, scale=0.1).abs(),
            name + ".num_batches_tracked": torch.tensor(100),
        })  # fmt: skip

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    cin = 64
    for layer, (width, count) in enumerate(zip((64, 128, 256), counts[:3]), start=1):
        for j in range(count):
            p = f"layer{layer}.{j}."
            cout = width * (4 if bottleneck else 1)
            shapes = (
                [(width, cin, 1), (width, width, 3), (cout, width, 1)]
                if bottleneck
                else [(width, cin, 3), (width, width, 3)]
            )
            for index, (o, i, k) in enumerate(shapes, start=1):
                conv(f"{p}conv{index}", o, i, k)
                bn(f"{p}bn{index}", o)
            if j == 0 and (layer > 1 or cin != cout):
                conv(p + "downsample.0", cout, cin, 1)
                bn(p + "downsample.1", cout)
            cin = cout
    for j in range(counts[3]):
        state[f"layer4.{j}.conv1.weight"] = r(4)
    state["fc.weight"], state["fc.bias"] = r(10, 8), r(10)
    return state


def resnet_features(state, x, depth: int) -> torch.Tensor:
    """torchvision's ResNet forward up to layer3, in eval mode, with functionals."""
    bottleneck, counts = depth >= 50, {18: (2, 2, 2), 50: (3, 4, 6)}[depth]

    def bn(y, name):
        mean, var = state[name + ".running_mean"], state[name + ".running_var"]
        return F.batch_norm(y, mean, var, state[name + ".weight"], state[name + ".bias"], training=False, eps=1e-5)

    x = F.max_pool2d(F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1")), 3, 2, 1)
    for layer, count in enumerate(counts, start=1):
        for j in range(count):
            p, stride = f"layer{layer}.{j}.", 2 if layer > 1 and j == 0 else 1
            if bottleneck:
                y = F.relu(bn(F.conv2d(x, state[p + "conv1.weight"]), p + "bn1"))
                y = F.relu(bn(F.conv2d(y, state[p + "conv2.weight"], stride=stride, padding=1), p + "bn2"))
                y = bn(F.conv2d(y, state[p + "conv3.weight"]), p + "bn3")
            else:
                y = F.relu(bn(F.conv2d(x, state[p + "conv1.weight"], stride=stride, padding=1), p + "bn1"))
                y = bn(F.conv2d(y, state[p + "conv2.weight"], padding=1), p + "bn2")
            shortcut = x
            if p + "downsample.0.weight" in state:
                shortcut = bn(F.conv2d(x, state[p + "downsample.0.weight"], stride=stride), p + "downsample.1")
            x = F.relu(y + shortcut)
    return x


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_resnet_features_are_reproduced(depth):
    state = resnet(depth)
    backbone = ResNetBackbone(depth).double().eval()
    report = load_pretrained(backbone, state)
    assert report.source == "torchvision ResNet" and report.random == []
    assert len(report.loaded) == len(backbone.state_dict())
    assert report.skipped == [k for k in state if k.startswith(("layer4.", "fc."))]
    x = image((64, 64))
    with torch.no_grad():
        features = backbone(x)
        assert features.shape == (2, 1024 if depth == 50 else 256, 4, 4) == (2, backbone.out_channels, 4, 4)
        close(features, resnet_features(state, x, depth))


def test_an_mmpose_resnet_checkpoint_and_a_depth_mismatch():
    state = resnet(18, seed=1)
    checkpoint = {
        "state_dict": {
            **{f"backbone.{k}": v for k, v in state.items()},
            "keypoint_head.final_layer.weight": torch.zeros(17, 256, 1, 1),
        }
    }
    backbone = ResNetBackbone(18).double().eval()
    report = load_pretrained(backbone, checkpoint)
    assert report.source == "mmpose ResNet" and "keypoint_head.final_layer.weight" in report.skipped
    with torch.no_grad():
        close(backbone(image((32, 32))), resnet_features(state, image((32, 32)), 18))
    with pytest.raises(DataError, match="ResNet-18 .*depth=18"):
        load_pretrained(ResNetBackbone(50), checkpoint)


# bad files


def test_bad_files_are_data_errors_naming_the_file(tmp_path):
    def build(cfg, state, name="w.pth"):
        torch.save(state, tmp_path / name)
        return build_backbone({**cfg, "weights": str(tmp_path / name)}, INPUT)

    vit = dict(type="vit", dim=DIM, depth=DEPTH, heads=HEADS)
    with pytest.raises(DataError, match=r"unknown\.pth: backbone weights of an unknown layout.*expected a timm ViT"):
        build(vit, {"encoder.conv.weight": torch.zeros(3)}, "unknown.pth")
    mmpretrain = {"backbone.pos_embed": torch.zeros(1, 13, DIM), "backbone.layers.0.ln1.weight": torch.zeros(DIM)}
    mmpretrain["backbone.patch_embed.projection.weight"] = torch.zeros(DIM, 3, 16, 16)  # a pos_embed alone is not ours
    with pytest.raises(DataError, match=r"mmpretrain\.pth: backbone weights of an unknown layout"):
        build(vit, {"state_dict": mmpretrain}, "mmpretrain.pth")
    with pytest.raises(
        DataError, match=r"wide\.pth: 'patch_embed\.proj\.weight' .*\(48, 3, 16, 16\) in the file, \(32, 3, 16, 16\)"
    ):
        build(vit, timm_vit(dim=48), "wide.pth")
    with pytest.raises(DataError, match=r"hrnet\.pth: .*HRNet"):
        build(vit, {"conv1.weight": torch.zeros(1), "stage2.0.branches.0.0.conv1.weight": torch.zeros(1)}, "hrnet.pth")
    with pytest.raises(DataError, match=r"vit\.pth: the file holds a ViT .*type='vit'"):
        build(dict(type="conv", channels=(8, 8, 8, 8)), timm_vit(), "vit.pth")
    with pytest.raises(DataError, match="weights_format 'caffe'"):
        build({**vit, "weights_format": "caffe"}, timm_vit())
    with pytest.raises(DataError, match=r"rn\.pth: weights_format='mae' does not describe"):
        build(dict(type="resnet", depth=18, weights_format="mae"), resnet(18), "rn.pth")


def test_a_ddp_prefix_is_removed():
    state, wrapper = unwrap({f"module.{k}": v for k, v in timm_vit().items()})
    assert wrapper == "" and "cls_token" in state and detect_format(state) == "timm"
