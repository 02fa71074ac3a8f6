"""Public pretrained checkpoints for the pose backbones: detect the layout, map the names, resize the position
embedding, load, and report what was loaded, skipped and left random.

Layouts (the key names of each source):

- ``timm``: timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``, ``pos_embed`` (1, 1 + N, D) with a
  class slot, ``blocks.i.{norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2}``, ``norm``; ``head`` is not used)
  and timm's ResNet (the torchvision names below).
- ``mae``: MAE pre-training checkpoints (He et al. 2022, facebookresearch/mae ``models_mae.py``), ``{"model": ...}``
  with timm's encoder names plus ``decoder_*`` and ``mask_token``, which are not used.
- ``mmpose``: ``{"state_dict": {"backbone.*", "keypoint_head.*"}}``. For ViTPose (Xu et al. 2022, ViTPose
  ``mmpose/models/backbones/vit.py``) the sequence has no class token, the slot 0 of ``pos_embed`` is added to every
  patch position (``x + pos_embed[:, 1:] + pos_embed[:, :1]``), the final norm is ``last_norm`` and the patch
  convolution pads by 2. MMPose's ResNet has torchvision's names.
- ``torchvision``: ``conv1``, ``bn1``, ``layer1..4.k.{conv1, bn1, conv2, bn2, conv3, bn3, downsample.0/1}``, ``fc``;
  ``layer4`` and ``fc`` are not used (the backbone stops at stride 16).
- ``diffusekit``: a state dict of the backbone module itself (keys may carry a ``backbone.`` prefix).

Position embeddings of another grid are resampled as timm's ``resample_abs_pos_embed``: bicubic, ``align_corners``
False, antialiased. HRNet checkpoints are recognised and refused (not supported).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from diffusekit.core.errors import DataError

logger = logging.getLogger(__name__)

__all__ = [
    "WEIGHT_FORMATS",
    "LoadReport",
    "detect_format",
    "load_pretrained",
    "map_resnet",
    "map_vit",
    "resize_pos_embed",
    "source_grid",
    "unwrap",
]

WEIGHT_FORMATS = ("auto", "diffusekit", "timm", "mae", "mmpose", "torchvision")
VITPOSE_GRID = (16, 12)  # ViTPose's 256 x 192 crops with 16 x 16 patches
VIT_EPS = 1e-6  # LayerNorm epsilon of timm's ViTs, MAE and ViTPose
EXPECTED = (
    "a timm ViT ('patch_embed.proj.weight', 'blocks.0.attn.qkv.weight'), an MAE checkpoint ({'model': ...}), a "
    "ViTPose/MMPose checkpoint ({'state_dict': {'backbone.*': ...}}), a torchvision/timm ResNet ('conv1.weight', "
    "'layer1.0.conv1.weight') or this backbone's own state dict"
)

# timm / MAE / ViTPose ViT names -> ours (the qkv projection, pos_embed and cls_token are handled apart)
_VIT_RENAMES = (
    (re.compile(r"patch_embed\.proj\.(weight|bias)"), r"patch_embed.\1"),
    (re.compile(r"blocks\.(\d+)\.norm1\.(weight|bias)"), r"blocks.\1.norm_self.\2"),
    (re.compile(r"blocks\.(\d+)\.attn\.proj\.(weight|bias)"), r"blocks.\1.self_attn.to_out.\2"),
    (re.compile(r"blocks\.(\d+)\.norm2\.(weight|bias)"), r"blocks.\1.norm_mlp.\2"),
    (re.compile(r"blocks\.(\d+)\.mlp\.fc1\.(weight|bias)"), r"blocks.\1.mlp.0.\2"),
    (re.compile(r"blocks\.(\d+)\.mlp\.fc2\.(weight|bias)"), r"blocks.\1.mlp.3.\2"),
    (re.compile(r"(?:norm|last_norm)\.(weight|bias)"), r"norm.\1"),
)
_QKV = re.compile(r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)")
_BLOCK = re.compile(r"blocks\.(\d+)\.")
_RESNET_KEPT = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.")


@dataclass
class LoadReport:
    """What a weights file gave a backbone: ``loaded`` (our tensors filled from the file), ``skipped`` (tensors of
    the file not used, under their names in the file), ``random`` (our tensors the file has nothing for, left as
    initialised), and ``notes`` (where the loaded network still differs from the source: class token, padding,
    LayerNorm epsilon, depth, a resized position embedding)."""

    path: str
    source: str
    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    random: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: counts and the first few names of each list."""

        def few(names: list[str]) -> str:
            if not names:
                return ""
            return " (" + ", ".join(names[:3]) + (", ..." if len(names) > 3 else "") + ")"

        return (
            f"{self.path}: {self.source} weights: loaded {len(self.loaded)} tensors, skipped "
            f"{len(self.skipped)}{few(self.skipped)}, left random {len(self.random)}{few(self.random)}"
        )


def unwrap(checkpoint: object, path: str | Path | None = None) -> tuple[dict[str, Tensor], str]:
    """The state dict inside a checkpoint and the key it sat under: ``"state_dict"`` (MMPose, mmengine, timm's
    training checkpoints), ``"model"`` (MAE, DeiT) or ``""`` (a plain state dict). A DDP ``module.`` prefix on every
    key is removed."""
    wrapper = ""
    if isinstance(checkpoint, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(checkpoint.get(key), Mapping):
                checkpoint, wrapper = checkpoint[key], key
                break
    if not isinstance(checkpoint, Mapping) or not checkpoint:
        raise DataError("backbone weights must be a state dict (names -> tensors)", path)
    if not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in checkpoint.items()):
        raise DataError("backbone weights must be a state dict (names -> tensors)", path)
    state = dict(checkpoint)
    if all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state, wrapper


def _strip_backbone(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """(the ``backbone.*`` tensors without the prefix, the other names) when any key has the prefix; else
    (everything, [])."""
    if not any(k.startswith("backbone.") for k in state):
        return dict(state), []
    inner = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return inner, [k for k in state if not k.startswith("backbone.")]


def detect_format(
    state: Mapping[str, Tensor], wrapper: str = "", own_keys: Sequence[str] = (), path: str | Path | None = None
) -> str:
    """The layout of ``state`` (see the module docstring) from its key names; ``own_keys`` are the backbone's own
    names, which identify the ``diffusekit`` layout. Unknown layouts and HRNet raise DataError."""
    bare, _ = _strip_backbone(state)
    prefixed = any(k.startswith("backbone.") for k in state)
    if any(k.startswith(("stage2.", "transition1.")) for k in bare):
        raise DataError("an HRNet checkpoint: HRNet backbones are not supported (use a ResNet or ViT one)", path)
    if "patch_embed.proj.weight" in bare and any(_QKV.fullmatch(k) for k in bare):
        if prefixed:
            return "mmpose"
        if wrapper == "model" or "mask_token" in bare or any(k.startswith("decoder_") for k in bare):
            return "mae"
        if "cls_token" not in bare and "last_norm.weight" in bare:
            return "mmpose"  # a ViTPose backbone saved without its prefix
        return "timm"
    if "conv1.weight" in bare and "layer1.0.conv1.weight" in bare:
        return "mmpose" if prefixed else "torchvision"
    own = set(own_keys)
    if own and 2 * sum(k in own for k in bare) >= len(bare):  # most names are ours (not just a pos_embed)
        return "diffusekit"
    names = ", ".join(repr(k) for k in list(state)[:3])
    raise DataError(f"backbone weights of an unknown layout (keys {names}, ...); expected {EXPECTED}", path)


def source_grid(
    positions: int,
    pretrained_grid: Sequence[int] | None = None,
    default: Sequence[int] | None = None,
    ours: Sequence[int] | None = None,
    path: str | Path | None = None,
) -> tuple[int, int]:
    """The (h, w) grid of ``positions`` patch positions in a file: ``pretrained_grid`` when given, else a square,
    else ``default`` (ViTPose's 16 x 12), else ``ours`` when the count fits; otherwise a DataError."""
    if pretrained_grid is not None:
        h, w = (int(v) for v in pretrained_grid)
        if h * w != positions:
            raise DataError(
                f"pretrained_grid={(h, w)} has {h * w} positions, the file's position embedding {positions}", path
            )
        return h, w
    side = math.isqrt(positions)
    if side * side == positions:
        return side, side
    for guess in (default, ours):
        if guess is not None and guess[0] * guess[1] == positions:
            return int(guess[0]), int(guess[1])
    raise DataError(
        f"cannot tell the grid of the file's {positions} patch positions (not a square); pass the backbone option "
        "pretrained_grid=(h, w)",
        path,
    )


def resize_pos_embed(pos: Tensor, old_grid: Sequence[int], new_grid: Sequence[int]) -> Tensor:
    """Patch position embeddings (1, h0 * w0, D) on the ``old_grid`` resampled to ``new_grid`` (1, h * w, D):
    bicubic, ``align_corners=False``, antialiased, as timm's ``resample_abs_pos_embed``; the same grid is returned
    unchanged."""
    (h0, w0), (h, w) = tuple(old_grid), tuple(new_grid)
    if (h0, w0) == (h, w):
        return pos
    dim = pos.shape[-1]
    work = pos if pos.dtype == torch.float64 else pos.float()
    grid = work.reshape(1, h0, w0, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
    return grid.permute(0, 2, 3, 1).reshape(1, h * w, dim).to(pos.dtype)


def _is_square(n: int) -> bool:
    return n >= 0 and math.isqrt(n) ** 2 == n


def map_vit(
    state: Mapping[str, Tensor],
    fmt: str,
    grid: Sequence[int],
    cls_token: bool,
    pretrained_grid: Sequence[int] | None = None,
    path: str | Path | None = None,
) -> tuple[dict[str, Tensor], dict[str, str], list[str]]:
    """A timm / MAE / ViTPose ViT state dict in our names.

    Returns ``(mapped, origin, notes)``: our name -> tensor (``pos_embed`` already resampled to ``grid``),
    our name -> the file's names it came from (none for zero biases), and remarks on differences from the source
    network.
    ``cls_token``: whether our ViT has a class token (ours holds the token plus its position embedding).
    """
    inner, _ = _strip_backbone(state)
    prefix = "backbone." if any(k.startswith("backbone.") for k in state) else ""
    mapped: dict[str, Tensor] = {}
    origin: dict[str, tuple[str, ...]] = {}
    notes: list[str] = []
    dim = inner["patch_embed.proj.weight"].shape[0]
    for name, tensor in inner.items():
        qkv = _QKV.fullmatch(name)
        if qkv:
            block, kind = qkv.groups()
            ours = f"blocks.{block}.self_attn"
            mapped[f"{ours}.to_q.{kind}"], mapped[f"{ours}.to_kv.{kind}"] = tensor[:dim], tensor[dim:]
            origin[f"{ours}.to_q.{kind}"] = origin[f"{ours}.to_kv.{kind}"] = (prefix + name,)
            continue
        for pattern, target in _VIT_RENAMES:
            if pattern.fullmatch(name):
                mapped[pattern.sub(target, name)] = tensor
                origin[pattern.sub(target, name)] = (prefix + name,)
                break
    for block in sorted({int(_QKV.fullmatch(k).group(1)) for k in inner if _QKV.fullmatch(k)}):
        if f"blocks.{block}.attn.qkv.bias" not in inner:  # a ViT built with qkv_bias=False
            for part, rows in (("to_q", dim), ("to_kv", 2 * dim)):
                key = f"blocks.{block}.self_attn.{part}.bias"
                mapped[key] = inner[f"blocks.{block}.attn.qkv.weight"].new_zeros(rows)
                origin[key] = ()
    if any(not names for names in origin.values()):
        notes.append("the file's qkv projections have no bias: ours are set to 0")

    pos = inner.get("pos_embed")
    has_cls = "cls_token" in inner
    if pos is not None:
        length = pos.shape[1]
        if fmt == "mmpose":
            slots, default = 1, VITPOSE_GRID
            patches = pos[:, 1:] + pos[:, :1]  # ViTPose adds the class slot to every patch position
        else:
            default = None
            slots = 1 if has_cls else 0
            if has_cls and pretrained_grid is not None and pretrained_grid[0] * pretrained_grid[1] == length:
                slots = 0  # timm's no_embed_class: the class token has no position
            elif has_cls and pretrained_grid is None and _is_square(length) and not _is_square(length - 1):
                slots = 0
            patches = pos[:, slots:]
        old = source_grid(patches.shape[1], pretrained_grid, default, grid, path)
        if tuple(old) != tuple(grid):
            notes.append(f"position embedding resampled from a {old[0]}x{old[1]} to a {grid[0]}x{grid[1]} grid")
        mapped["pos_embed"] = resize_pos_embed(patches, old, grid)
        origin["pos_embed"] = (prefix + "pos_embed",)
        if has_cls and cls_token:
            token = inner["cls_token"] + (pos[:, :1] if slots else 0)
            mapped["cls_token"] = token
            origin["cls_token"] = (prefix + "cls_token", prefix + "pos_embed")
    elif has_cls and cls_token:
        mapped["cls_token"] = inner["cls_token"]
        origin["cls_token"] = (prefix + "cls_token",)
    if has_cls and not cls_token:
        notes.append("the file's class token is not used (this ViT has none): set cls_token=True for its features")
    if cls_token and not has_cls:
        notes.append("the file has no class token: ours is left random (set cls_token=False for ViTPose)")
    return mapped, origin, notes


def map_resnet(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str], tuple[bool, tuple[int, ...]]]:
    """A torchvision / timm / MMPose ResNet state dict in our names (the same names; ``layer4`` and ``fc`` are left
    out). Returns ``(mapped, origin, (bottleneck, blocks per layer))``, the last describing the file's network."""
    inner, _ = _strip_backbone(state)
    prefix = "backbone." if any(k.startswith("backbone.") for k in state) else ""
    mapped = {k: v for k, v in inner.items() if k.startswith(_RESNET_KEPT)}
    origin = {k: (prefix + k,) for k in mapped}
    counts = []
    for layer in range(1, 5):
        indices = {int(m.group(1)) for k in inner if (m := re.match(rf"layer{layer}\.(\d+)\.", k))}
        counts.append(max(indices) + 1 if indices else 0)
    return mapped, origin, ("layer1.0.conv3.weight" in inner, tuple(counts))


def load_pretrained(
    backbone: nn.Module,
    weights: str | Path | Mapping,
    weights_format: str = "auto",
    pretrained_grid: Sequence[int] | None = None,
) -> LoadReport:
    """Load ``weights`` (a file path, read with ``weights_only=True``, or an already loaded checkpoint) into a
    `ViTBackbone`, `ResNetBackbone` or `ConvBackbone` and return the `LoadReport` (its summary is logged).

    ``weights_format``: ``"auto"`` (detected from the key names) or one of ``"diffusekit"``, ``"timm"``,
    ``"mae"``, ``"mmpose"``, ``"torchvision"``. ``pretrained_grid``: the (h, w) patch grid of the file's position
    embedding when it is not square (ViTPose's 16 x 12 is assumed for ViTPose files). Bad files, layouts that do
    not fit the backbone and shape mismatches raise DataError naming the file.
    """
    from diffusekit.core.checkpoint import load_checkpoint_file
    from diffusekit.pose.backbones import RESNET_LAYOUTS, ResNetBackbone, ViTBackbone

    if weights_format not in WEIGHT_FORMATS:
        raise DataError(f"unknown backbone weights_format {weights_format!r}; expected one of {WEIGHT_FORMATS}")
    path = str(weights) if isinstance(weights, (str, Path)) else "<state dict>"
    checkpoint = load_checkpoint_file(weights) if isinstance(weights, (str, Path)) else weights
    state, wrapper = unwrap(checkpoint, path)
    own = backbone.state_dict()
    fmt = detect_format(state, wrapper, list(own), path) if weights_format == "auto" else weights_format

    if fmt == "diffusekit":
        return _load_own(backbone, state, path)
    is_vit, is_resnet = isinstance(backbone, ViTBackbone), isinstance(backbone, ResNetBackbone)
    bare, _ = _strip_backbone(state)
    file_is_vit = "patch_embed.proj.weight" in bare
    file_is_resnet = "conv1.weight" in bare and "layer1.0.conv1.weight" in bare
    fits = {"torchvision": file_is_resnet, "mae": file_is_vit}.get(fmt, file_is_vit or file_is_resnet)
    if not fits:
        raise DataError(f"weights_format={fmt!r} does not describe this file; expected {EXPECTED}", path)
    if (file_is_vit and not is_vit) or (file_is_resnet and not file_is_vit and not is_resnet):
        held = "a ViT" if file_is_vit else "a ResNet"
        wanted = "type='vit'" if file_is_vit else "type='resnet'"
        raise DataError(f"the file holds {held} ({fmt} layout) but the backbone is a {type(backbone).__name__}; "
                        f"use {wanted}", path)  # fmt: skip

    source = f"{fmt} {'ViT' if file_is_vit else 'ResNet'}"
    if file_is_vit:
        mapped, origin, notes = map_vit(
            state, fmt, backbone.grid, backbone.cls_token is not None, pretrained_grid, path
        )
        notes += _vit_structure_notes(backbone, bare, fmt)
        file_dim, file_depth = bare["patch_embed.proj.weight"].shape[0], _vit_depth(bare)
        hint = f"; the file holds a ViT with dim={file_dim}, depth={file_depth}: set the backbone's dim/depth/heads"
    else:
        mapped, origin, (bottleneck, counts) = map_resnet(state)
        ours_bottleneck = hasattr(backbone.layer1[0], "conv3")
        ours_counts = tuple(len(getattr(backbone, f"layer{i}")) for i in (1, 2, 3))
        if (bottleneck, counts[:3]) != (ours_bottleneck, ours_counts):
            kind = "bottleneck" if bottleneck else "basic"
            named = [
                d for d, (block, c) in RESNET_LAYOUTS.items() if c == counts and (block.expansion == 4) == bottleneck
            ]
            raise DataError(
                f"the file holds {f'ResNet-{named[0]}' if named else 'a ResNet'} ({kind} blocks "
                f"{'-'.join(map(str, counts))}); the backbone is ResNet-{backbone.depth}: set the backbone's depth"
                + (f"={named[0]}" if named else ""),
                path,
            )
        notes, hint = [], ""
    for name, tensor in mapped.items():
        if name in own and tuple(tensor.shape) != tuple(own[name].shape):
            where = (origin[name] or (name,))[0]
            raise DataError(
                f"{where!r} (ours {name!r}) is {tuple(tensor.shape)} in the file, {tuple(own[name].shape)} in the "
                f"backbone{hint}",
                path,
            )
    usable = {k: v for k, v in mapped.items() if k in own}
    with torch.no_grad():
        backbone.load_state_dict(usable, strict=False)
    used = {source for k in usable for source in origin[k]}
    report = LoadReport(
        path=path,
        source=source,
        loaded=[k for k in own if k in usable],
        skipped=[k for k in state if k not in used],
        random=[k for k in own if k not in usable and not k.endswith("num_batches_tracked")],
        notes=notes,
    )
    logger.info("%s", report.summary())
    for note in report.notes:  # a resampled grid is expected at another input size; the rest changes the features
        expected = note.startswith("position embedding resampled")
        logger.log(logging.INFO if expected else logging.WARNING, "%s: %s", path, note)
    return report


def _vit_depth(bare: Mapping[str, Tensor]) -> int:
    blocks = {int(m.group(1)) for k in bare if (m := _BLOCK.match(k))}
    return max(blocks) + 1 if blocks else 0


def _vit_structure_notes(backbone: nn.Module, bare: Mapping[str, Tensor], fmt: str) -> list[str]:
    """Where our ViT's settings differ from the source network's (the features then differ from the source's)."""
    notes = []
    padding = backbone.patch_embed.padding[0]
    wanted = 2 if fmt == "mmpose" else 0
    if padding != wanted:
        source = "ViTPose pads" if fmt == "mmpose" else f"{fmt} does not pad"
        notes.append(f"{source} its patch convolution: set patch_padding={wanted} for the source's features")
    if backbone.norm_eps != VIT_EPS:
        notes.append(f"norm_eps={backbone.norm_eps:g}; the source's LayerNorms use {VIT_EPS:g}")
    depth = _vit_depth(bare)
    if depth != len(backbone.blocks):
        notes.append(f"the file has {depth} blocks, the backbone {len(backbone.blocks)}")
    dim = backbone.out_channels
    if dim % 64 == 0 and backbone.heads != dim // 64:
        notes.append(f"heads={backbone.heads}: checkpoints do not store it; the standard ViTs of width {dim} use "
                     f"{dim // 64}")  # fmt: skip
    extra = sorted(
        {
            k
            for k in bare
            if _BLOCK.match(k) and not _QKV.fullmatch(k) and not any(p.fullmatch(k) for p, _ in _VIT_RENAMES)
        }
    )
    if extra:
        notes.append(f"block tensors this ViT has no place for (e.g. {extra[0]!r}): the source's features differ")
    return notes


def _load_own(backbone: nn.Module, state: Mapping[str, Tensor], path: str) -> LoadReport:
    """Our own layout, exactly as before: every tensor of the backbone must be there with its shape."""
    from diffusekit.core.checkpoint import describe_mismatch

    state = {k.removeprefix("backbone."): v for k, v in state.items()}
    own = backbone.state_dict()
    mismatch = describe_mismatch(state, own, strict=False)
    if mismatch:
        raise DataError(f"backbone weights do not fit the {type(backbone).__name__}: {mismatch}", path)
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing:
        raise DataError(f"backbone weights lack {len(missing)} tensors, e.g. {missing[0]!r}", path)
    if unexpected:
        logger.warning(
            "backbone weights %s: ignored %d unexpected tensors, e.g. %r", path, len(unexpected), unexpected[0]
        )
    report = LoadReport(path=path, source="diffusekit", loaded=[k for k in own if k in state], skipped=list(unexpected))
    logger.info("%s", report.summary())
    return report
