"""Official DDHPose checkpoints (``Andyen512/DDHPose``) into our HSTDenoiser: a state dict with the official names and
shapes (the table below, read off ``common/mixste_ddhpose.py`` and ``common/ddhpose.py``) saved as ``main.py`` saves
it; every tensor lands in its place; a functional re-implementation of the official forward pass (official names,
switchable quirks) equals ours when its three documented quirks are set to our semantics and differs with each
quirk; the CLI loads such a file; bad files and mismatching configs are one-line DataErrors."""

from __future__ import annotations

import argparse
import logging
import math
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from diffusekit.core.checkpoint import save_weights
from diffusekit.core.cli import main
from diffusekit.core.errors import DataError
from diffusekit.pose.ddhpose import DDHPose
from diffusekit.pose.ddhpose_checkpoint import (
    load_official_ddhpose,
    map_official_key,
    official_ddhpose_model,
    read_official_checkpoint,
)
from diffusekit.pose.workflow import MODEL_MODULES, load_pose_config, load_pose_model

# H36M tables of the official MixSTE2 (common/mixste_ddhpose.py: bonechain, lev*_list, bonedic)
CHAINS = [[0, 1, 2, 3], [0, 4, 5, 6], [0, 7, 8, 9, 10], [0, 7, 8, 11, 12, 13], [0, 7, 8, 14, 15, 16]]
LEVELS = [[0], [1, 4, 7], [2, 5, 8], [3, 6, 9, 11, 14], [10, 12, 15], [13, 16]]
CHILDREN = {0: [1, 4, 7], 1: [2], 2: [3], 4: [5], 5: [6], 7: [8], 8: [9, 11, 14], 9: [10], 11: [12], 12: [13],
            14: [15], 15: [16]}  # fmt: skip
SCHEDULE = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
            "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod",
            "posterior_variance", "posterior_log_variance_clipped", "posterior_mean_coef1",
            "posterior_mean_coef2")  # fmt: skip
DIM, DEPTH, FRAMES, HEADS = 32, 3, 5, 8  # small, but with the official 8 heads
SMALL = dict(frames=FRAMES, denoiser=dict(dim=DIM, depth=DEPTH, heads=HEADS, drop_path=0.0))


def official_shapes(dim: int, depth: int, frames: int, in_chans: int = 6, plain_blocks: bool = False) -> dict:
    """Name -> shape of ``MixSTE2(num_frame=frames, num_joints=17, embed_dim_ratio=dim, depth=depth, mlp_ratio=2)``
    in state_dict order (own parameters, then submodules in registration order)."""
    shapes = {"Spatial_pos_embed": (1, 17, dim), "Temporal_pos_embed": (1, frames, dim), "group": (1, 6, dim),
              "Spatial_patch_to_embedding.weight": (dim, in_chans), "Spatial_patch_to_embedding.bias": (dim,),
              "time_mlp.1.weight": (2 * dim, dim), "time_mlp.1.bias": (2 * dim,), "time_mlp.3.weight": (dim, 2 * dim),
              "time_mlp.3.bias": (dim,)}  # fmt: skip

    def block(prefix: str, hierarchical: bool) -> None:
        shapes.update({f"{prefix}.norm1.weight": (dim,), f"{prefix}.norm1.bias": (dim,),
                       f"{prefix}.attn.qkv.weight": (3 * dim, dim), f"{prefix}.attn.qkv.bias": (3 * dim,)})  # fmt: skip
        if hierarchical:
            shapes.update({f"{prefix}.attn.qkv_xc.weight": (dim, dim), f"{prefix}.attn.qkv_xc.bias": (dim,)})
        shapes.update({f"{prefix}.attn.proj.weight": (dim, dim), f"{prefix}.attn.proj.bias": (dim,),
                       f"{prefix}.norm2.weight": (dim,), f"{prefix}.norm2.bias": (dim,),
                       f"{prefix}.mlp.fc1.weight": (2 * dim, dim), f"{prefix}.mlp.fc1.bias": (2 * dim,),
                       f"{prefix}.mlp.fc2.weight": (dim, 2 * dim), f"{prefix}.mlp.fc2.bias": (dim,)})  # fmt: skip

    for kind in ("STEblocks", "TTEblocks"):
        if not plain_blocks:
            block(f"{kind}_0.0", False)
        for i in range(depth - 1 if not plain_blocks else depth):
            block(f"{kind}.{i}", not plain_blocks)
    for name in ("Spatial_norm", "Temporal_norm", "head_pose.0"):
        shapes.update({f"{name}.weight": (dim,), f"{name}.bias": (dim,)})
    shapes.update({"head_pose.1.weight": (3, dim), "head_pose.1.bias": (3,)})
    return shapes


def official_schedule(steps: int = 1000, s: float = 0.008) -> dict[str, torch.Tensor]:
    """The buffers of the official DDHPose wrapper (common/ddhpose.py: cosine_beta_schedule and what follows)."""
    x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
    ac = torch.cos(((x / steps) + s) / (1 + s) * math.pi * 0.5) ** 2
    ac = ac / ac[0]
    betas = torch.clip(1 - ac[1:] / ac[:-1], 0, 0.999)
    alphas_cumprod = torch.cumprod(1.0 - betas, 0)
    prev = F.pad(alphas_cumprod[:-1], (1, 0), value=1.0)
    variance = betas * (1 - prev) / (1 - alphas_cumprod)
    values = [betas, alphas_cumprod, prev, alphas_cumprod.sqrt(), (1 - alphas_cumprod).sqrt(),
              (1 - alphas_cumprod).log(), (1 / alphas_cumprod).sqrt(), (1 / alphas_cumprod - 1).sqrt(), variance,
              variance.clamp(min=1e-20).log(), betas * prev.sqrt() / (1 - alphas_cumprod),
              (1 - prev) * (1 - betas).sqrt() / (1 - alphas_cumprod)]  # fmt: skip
    return dict(zip(SCHEDULE, values))


def official_state(seed: int, dim: int = DIM, depth: int = DEPTH, frames: int = FRAMES, **kwargs) -> dict:
    """Random tensors under the official names (``dir_bone_estimator.`` + schedule buffers, as the wrapper has)."""
    g = torch.Generator().manual_seed(seed)
    state = {name: value for name, value in official_schedule(kwargs.pop("steps", 1000)).items()}
    for name, shape in official_shapes(dim, depth, frames, **kwargs).items():
        scale = 0.1 if name.endswith("bias") or "norm" in name or "head_pose.0" in name else 0.3
        value = torch.randn(shape, generator=g) * scale
        if name.endswith("weight") and len(shape) == 1:  # LayerNorm scales near 1
            value = value + 1
        state[f"dir_bone_estimator.{name}"] = value
    return state


def save_official(path, state: dict, epoch: int = 80) -> None:
    """As main.py saves: epoch, lr, the generator's RandomState, AdamW state, and the DataParallel state dict."""
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1)
    sum(p.sum() for p in params).backward()
    optimizer.step()
    random = np.random.RandomState(1234)
    random.permutation(10)
    torch.save({"epoch": epoch, "lr": 1e-4 * 0.993**epoch, "random_state": random, "optimizer": optimizer.state_dict(),
                "model_pos": {f"module.{k}": v for k, v in state.items()}}, path)  # fmt: skip


def denoiser_part(state: dict) -> dict:
    return {k.removeprefix("dir_bone_estimator."): v for k, v in state.items() if k.startswith("dir_bone_")}


# --------------------------------------------------------------------------------------------- reference forward
def official_forward(sd, x2d, directions, lengths, t, *, shift=1, hrst="chains", feature="reshape"):
    """MixSTE2.forward of the official code on a state dict with the official names (train-mode shapes, no dropout).
    The quirks: ``shift=1`` sinusoid frequencies 10000^(-i/(half-1)) (0: /half); ``hrst="chains"`` averages in place
    chain by chain ("once": each bone from the unmodified logits); ``feature="reshape"`` feeds the (B, F, J, C)
    hierarchical feature to the (B J, F, C) temporal blocks by reshaping ("rearrange": token by token)."""

    def linear(x, name):
        return F.linear(x, sd[f"{name}.weight"], sd[f"{name}.bias"])

    def norm(x, name, eps=1e-6):
        return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"], eps)

    def attention(x, name, chains=False, xc=None):
        b, n, c = x.shape
        q, k, v = linear(x, f"{name}.qkv").reshape(b, n, 3, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)
        scale = (c // HEADS) ** -0.5
        logits = q @ k.transpose(-2, -1) * scale
        if chains and hrst == "chains":
            for chain in CHAINS:
                for g, p, ch in zip(chain, chain[1:], chain[2:]):
                    logits[:, :, p, ch] = (logits[:, :, p, ch] + logits[:, :, g, p]) / 2
                    logits[:, :, ch, p] = (logits[:, :, ch, p] + logits[:, :, g, p]) / 2
        elif chains:
            original = logits.clone()
            for g, p, ch in {tuple(chain[i : i + 3]) for chain in CHAINS for i in range(len(chain) - 2)}:
                logits[:, :, p, ch] = (original[:, :, p, ch] + original[:, :, g, p]) / 2
                logits[:, :, ch, p] = (original[:, :, ch, p] + original[:, :, g, p]) / 2
        if xc is not None:
            k_xc = linear(xc, f"{name}.qkv_xc").reshape(b, n, 1, HEADS, c // HEADS).permute(2, 0, 3, 1, 4)[0]
            logits = logits + q @ k_xc.transpose(-2, -1) * scale
        out = (logits.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)
        return linear(out, f"{name}.proj")

    def block(x, name, chains=False, xc=None):
        x = x + attention(
            norm(x, f"{name}.norm1"), f"{name}.attn", chains, None if xc is None else norm(xc, f"{name}.norm1")
        )
        return x + linear(F.gelu(linear(norm(x, f"{name}.norm2"), f"{name}.mlp.fc1")), f"{name}.mlp.fc2")

    b, f, n, _ = x2d.shape
    dim = sd["Spatial_pos_embed"].shape[-1]
    half = dim // 2
    frequencies = torch.exp(torch.arange(half) * -(math.log(10000) / (half - shift)))
    angles = t.float()[:, None] * frequencies[None]
    time = linear(F.gelu(linear(torch.cat([angles.sin(), angles.cos()], -1), "time_mlp.1")), "time_mlp.3")
    x = linear(
        rearrange(torch.cat([x2d, directions, lengths], -1), "b f n c -> (b f) n c"), "Spatial_patch_to_embedding"
    )
    for level, joints in enumerate(LEVELS):
        x[:, joints] += sd["group"][0][level]
    x = x + sd["Spatial_pos_embed"] + time.repeat_interleave(f, 0)[:, None]
    x = norm(block(x, "STEblocks_0.0"), "Spatial_norm")
    x = rearrange(x, "(b f) n c -> (b n) f c", f=f) + sd["Temporal_pos_embed"]
    x = rearrange(norm(block(x, "TTEblocks_0.0"), "Temporal_norm"), "(b n) f c -> b f n c", n=n)
    xc = torch.stack([x[:, :, [j, *CHILDREN.get(j, [])]].mean(2) for j in range(n)], dim=2)
    if feature == "rearrange":
        xc = rearrange(xc, "b f n c -> (b n) f c")
    depth = 1 + len({k.split(".")[1] for k in sd if k.startswith("STEblocks.")})
    for i in range(depth - 1):
        x = norm(block(rearrange(x, "b f n c -> (b f) n c"), f"STEblocks.{i}", chains=True), "Spatial_norm")
        x = rearrange(x, "(b f) n c -> (b n) f c", f=f)
        x = rearrange(norm(block(x, f"TTEblocks.{i}", xc=xc), "Temporal_norm"), "(b n) f c -> b f n c", n=n)
    return linear(norm(x, "head_pose.0", eps=1e-5), "head_pose.1")


def inputs(batch: int = 2, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    x2d = torch.randn(batch, FRAMES, 17, 2, generator=g)
    directions = torch.randn(batch, FRAMES, 17, 3, generator=g).clamp(-1.1, 1.1)
    lengths = torch.randn(batch, FRAMES, 17, 1, generator=g).clamp(-1.1, 1.1)
    return x2d, directions, lengths, torch.tensor([999, 317])[:batch]


@pytest.fixture
def official_file(tmp_path):
    path = tmp_path / "best_epoch.bin"
    state = official_state(seed=0)
    save_official(path, state)
    return path, state


def small_model(**kwargs) -> DDHPose:
    torch.manual_seed(5)
    return DDHPose(**{**SMALL, **kwargs}).eval()


# --------------------------------------------------------------------------------------------------- the mapping
def test_the_name_map_follows_the_official_module_tree():
    assert map_official_key("Spatial_patch_to_embedding.weight") == ("embed.weight", "")
    assert map_official_key("group") == ("depth_table.weight", "")
    assert map_official_key("time_mlp.3.bias") == ("time.2.bias", "")
    assert map_official_key("STEblocks_0.0.attn.proj.weight") == ("spatial.0.attention.out.weight", "")
    assert map_official_key("STEblocks.0.mlp.fc1.bias") == ("spatial.1.mlp.0.bias", "")
    assert map_official_key("TTEblocks.6.attn.qkv_xc.weight") == ("temporal.7.attention.key_h.weight", "")
    assert map_official_key("TTEblocks_0.0.norm2.weight") == ("temporal.0.norm2.weight", "")
    assert map_official_key("head_pose.1.weight") == ("head.1.weight", "")
    assert map_official_key("STEblocks.2.attn.qkv_xc.weight")[0] is None  # built, never called
    assert map_official_key("STEblocks_0.1.norm1.weight")[0] is None
    # the shape table gives the official paper-size denoiser's 38,516,227 parameters (pose spec, from the code)
    assert sum(math.prod(shape) for shape in official_shapes(512, 8, 243).values()) == 38_516_227


def test_every_official_tensor_lands_in_its_place(official_file):
    path, state = official_file
    model = small_model()
    report = load_official_ddhpose(model, path)
    ours = model.state_dict()
    official = denoiser_part(state)
    expected_skips = {k for k in official if k.startswith("STEblocks.") and "qkv_xc" in k} | set(SCHEDULE)
    assert set(report.skipped) == expected_skips and report.left_random == [] and report.epoch == 80
    assert set(report.loaded.values()) == set(ours)  # every tensor of the model came from the file
    hand_written = {"Spatial_pos_embed": "denoiser.spatial_pos", "Temporal_pos_embed": "denoiser.temporal_pos",
                    "STEblocks.1.attn.qkv.weight": "denoiser.spatial.2.attention.qkv.weight",
                    "TTEblocks.1.attn.qkv_xc.bias": "denoiser.temporal.2.attention.key_h.bias",
                    "Temporal_norm.weight": "denoiser.temporal_norm.weight"}  # fmt: skip
    assert {k: report.loaded[k] for k in hand_written} == hand_written
    for key, target in report.loaded.items():
        value = official[key][0] if key == "group" else official[key]
        assert torch.equal(ours[target], value), key


def test_forward_equals_the_official_arithmetic_with_our_semantics(official_file):
    path, state = official_file
    model = small_model()
    load_official_ddhpose(model, path)
    x2d, directions, lengths, t = inputs()
    with torch.no_grad():
        ours = model.denoiser(x2d, directions, lengths, t)
        reference = official_forward(denoiser_part(state), x2d, directions, lengths, t, shift=0, hrst="once",
                                     feature="rearrange")  # fmt: skip
        official = official_forward(denoiser_part(state), x2d, directions, lengths, t)
    assert ours.abs().max() > 0.1
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    # each documented difference alone changes the output (why the docs warn that numbers will differ)
    for quirk in (dict(shift=1), dict(hrst="chains"), dict(feature="reshape")):
        semantics = {**dict(shift=0, hrst="once", feature="rearrange"), **quirk}
        with torch.no_grad():
            changed = official_forward(denoiser_part(state), x2d, directions, lengths, t, **semantics)
        assert (changed - ours).abs().max() > 1e-3, quirk
    assert (official - ours).abs().max() > 1e-3


def test_load_pose_model_detects_the_layout_and_the_weights_decide_the_output(tmp_path, official_file, caplog):
    path_a, state_a = official_file
    path_b = tmp_path / "other.bin"
    save_official(path_b, official_state(seed=1))
    sizes = [f"model.frames={FRAMES}", f"model.denoiser.dim={DIM}", f"model.denoiser.depth={DEPTH}"]
    cfg = load_pose_config("ddhpose_tiny", [*sizes, f"model.denoiser.heads={HEADS}"])
    x2d = inputs(batch=1)[0]

    def predict(path):
        with caplog.at_level(logging.WARNING):
            model = load_pose_model(cfg, path, "cpu")
        return model, model.sample(x2d, hypotheses=2, steps=2, generator=torch.Generator().manual_seed(0))

    model, first = predict(path_a)
    _, other = predict(path_b)
    _, again = predict(path_a)
    assert not model.training and torch.equal(first, again) and (first - other).abs().max() > 1e-3
    assert f"{path_a}: official DDHPose checkpoint (epoch 80): loaded" in caplog.text
    x2d, directions, lengths, t = inputs()
    with torch.no_grad():
        reference = official_forward(denoiser_part(state_a), x2d, directions, lengths, t, shift=0, hrst="once",
                                     feature="rearrange")  # fmt: skip
        torch.testing.assert_close(model.denoiser(x2d, directions, lengths, t), reference, atol=1e-5, rtol=1e-5)


def test_our_own_weights_are_not_taken_for_official_ones(tmp_path):
    cfg = load_pose_config("ddhpose_tiny")
    model = DDHPose(**{k: v for k, v in cfg.model.items() if k != "type"})
    save_weights(tmp_path / "final_weights.pth", model.state_dict())
    assert official_ddhpose_model(cfg, tmp_path / "final_weights.pth", "cpu", MODEL_MODULES) is None
    loaded = load_pose_model(cfg, tmp_path, "cpu")
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_numpy_1_pickles_and_bare_state_dicts_load(tmp_path, official_file):
    path, state = official_file
    with zipfile.ZipFile(path) as archive:  # numpy 1.x writes numpy.core.multiarray._reconstruct
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    name = next(n for n in members if n.endswith("data.pkl"))
    assert b"numpy._core.multiarray" in members[name]
    members[name] = members[name].replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    old = tmp_path / "numpy1.bin"
    with zipfile.ZipFile(old, "w", zipfile.ZIP_STORED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    assert read_official_checkpoint(old).epoch == 80
    bare = tmp_path / "mixste2.bin"  # the denoiser's own state dict, no wrapper and no model_pos
    torch.save(denoiser_part(state), bare)
    model = small_model()
    report = load_official_ddhpose(model, bare)
    assert report.epoch is None and len(report.skipped) == 2 * (DEPTH - 1) and "qkv_xc" in next(iter(report.skipped))


def test_the_cli_predicts_with_an_official_checkpoint(tmp_path, official_file, capsys, caplog):
    path, _ = official_file
    keypoints = (np.random.default_rng(0).random((12, 17, 2)) * 200 + 300).astype(np.float32)
    np.savez(tmp_path / "walk.npz", keypoints=keypoints, width=1000, height=1000)
    options = [f"model.frames={FRAMES}", f"model.denoiser.dim={DIM}", f"model.denoiser.depth={DEPTH}"]
    args = ["pose", "ddhpose", "predict", "--config", "ddhpose_tiny", "--checkpoint", str(path), "--input",
            str(tmp_path / "walk.npz"), "--out", str(tmp_path / "out"), "--samples", "1", "--steps", "1",
            "--device", "cpu", "--cfg-options", *options]  # fmt: skip
    assert main([*args, f"model.denoiser.heads={HEADS}"]) == 0
    with np.load(tmp_path / "out" / "walk.npz") as result:
        assert result["pose_3d"].shape == (12, 17, 3) and np.isfinite(result["pose_3d"]).all()
    assert "official DDHPose checkpoint (epoch 80): loaded 93 tensors" in caplog.text
    capsys.readouterr()
    assert main(args) == 2  # the tiny config's 4 heads
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "8 attention heads" in err


# ------------------------------------------------------------------------------------------------------ bad cases
def mismatch(tmp_path, state, **model) -> str:
    path = tmp_path / "official.bin"
    save_official(path, state)
    with pytest.raises(DataError) as error:
        load_official_ddhpose(small_model(**model), path)
    message = str(error.value)
    assert str(path) in message and "\n" not in message
    return message


def test_a_wider_or_longer_official_denoiser_names_the_first_tensor_and_both_shapes(tmp_path):
    message = mismatch(tmp_path, official_state(0, dim=48))
    assert "'Spatial_pos_embed' is (1, 17, 48) in the file, (1, 17, 32) in the model" in message
    assert "the file's denoiser: dim 48, depth 3, 5 frames" in message
    message = mismatch(tmp_path, official_state(0, frames=9))
    assert "'Temporal_pos_embed' is (1, 9, 32) in the file, (1, 5, 32) in the model" in message


def test_a_deeper_or_shallower_official_denoiser_is_refused(tmp_path):
    message = mismatch(tmp_path, official_state(0, depth=4))
    assert "'STEblocks.2.norm1.weight' (32,) has no place in the model" in message and "depth 4" in message
    message = mismatch(tmp_path, official_state(0, depth=2))
    assert "'denoiser.spatial.2.norm1.weight' (32,) is not in the file" in message


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (dict(denoiser=dict(SMALL["denoiser"], heads=4)), "have 8 attention heads"),
        (dict(denoiser=dict(SMALL["denoiser"], hrtt=False)), "turns hrtt off"),
        (dict(denoiser=dict(SMALL["denoiser"], hrst=False, depth_embedding=False)), "depth_embedding and hrst off"),
        (dict(num_steps=500), "T = 1000 steps (betas), the config's model.num_steps = 500"),
        (dict(schedule="linear"), "betas differ from the config's schedule"),
    ],
)
def test_a_config_unlike_the_official_model_is_refused(tmp_path, model, message):
    assert message in mismatch(tmp_path, official_state(0), **model)


def saved(tmp_path, obj) -> str:
    path = tmp_path / "file.bin"
    torch.save(obj, path)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: {"model_pos": {f"module.{k}": torch.zeros(v) for k, v in official_shapes(32, 2, 5, 2, True).items()}},
         "the original MixSTE is a regressor"),
        (lambda: {"model_pos": {"module.pose_estimator.Spatial_patch_to_embedding.weight": torch.zeros(32, 5)}},
         "a D3DP checkpoint"),
        (lambda: {"model_pos": [1, 2]}, "'model_pos' is not a state dict"),
        (lambda: {"model_pos": {"module.fc.weight": torch.zeros(2)}}, "holds no DDHPose denoiser"),
        (lambda: {"state_dict": {"denoiser.embed.weight": torch.zeros(2)}}, "not an official DDHPose checkpoint"),
    ],
)  # fmt: skip
def test_files_that_are_no_ddhpose_checkpoint_are_one_line_errors(tmp_path, make, message):
    path = saved(tmp_path, make())
    with pytest.raises(DataError) as error:
        load_official_ddhpose(small_model(), path)
    assert message in str(error.value) and str(path) in str(error.value) and "\n" not in str(error.value)


def test_an_unknown_official_tensor_is_refused_unless_not_strict(tmp_path):
    state = official_state(0)
    state["dir_bone_estimator.extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.bin"
    save_official(path, state)
    with pytest.raises(DataError, match="'extra.weight' .*not the official DDHPose layout"):
        load_official_ddhpose(small_model(), path)
    report = load_official_ddhpose(small_model(), path, strict=False)
    assert report.skipped["extra.weight"] == "not a part of the official MixSTE2"


def test_a_truncated_official_file_is_a_data_error(tmp_path, official_file):
    path, _ = official_file
    broken = tmp_path / "broken.bin"
    broken.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(DataError, match="broken.bin"):
        load_official_ddhpose(small_model(), broken)


def test_an_official_file_with_other_python_objects_is_refused_by_name(tmp_path, official_file):
    path, state = official_file
    pickled = tmp_path / "with_args.bin"
    torch.save({"args": argparse.Namespace(cs=32), "model_pos": {f"module.{k}": v for k, v in state.items()}}, pickled)
    cfg = load_pose_config("ddhpose_tiny", [f"model.frames={FRAMES}", f"model.denoiser.heads={HEADS}"])
    with pytest.raises(DataError, match=r"with_args.bin: an official-looking .*argparse.Namespace.*refusing"):
        load_pose_model(cfg, pickled, "cpu")
