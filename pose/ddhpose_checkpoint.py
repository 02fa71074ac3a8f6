"""Official DDHPose checkpoints (Cai et al., AAAI'24; code ``Andyen512/DDHPose``) loaded into our `HSTDenoiser`.

The official ``main.py`` / ``main_3dhp.py`` save ``{'epoch', 'lr', 'random_state', 'optimizer', 'model_pos'}`` with
``torch.save``; ``model_pos`` is the state dict of an ``nn.DataParallel(DDHPose)``: every key starts with ``module.``,
the wrapper's schedule buffers (``betas``, ``alphas_cumprod``, ...) sit beside the denoiser (a ``MixSTE2`` of
``common/mixste_ddhpose.py``) under ``dir_bone_estimator.``. Names, official -> ours (``denoiser.`` in `DDHPose`):

- ``Spatial_patch_to_embedding`` -> ``embed``; ``Spatial_pos_embed`` / ``Temporal_pos_embed`` -> ``spatial_pos`` /
  ``temporal_pos``; ``time_mlp.1`` / ``time_mlp.3`` -> ``time.0`` / ``time.2``; ``group`` (1, levels, dim) ->
  ``depth_table.weight`` (levels, dim);
- ``STEblocks_0.0`` / ``TTEblocks_0.0`` -> ``spatial.0`` / ``temporal.0``; ``STEblocks.i`` / ``TTEblocks.i`` ->
  ``spatial.{i+1}`` / ``temporal.{i+1}``; inside a block ``attn.qkv`` / ``attn.proj`` / ``attn.qkv_xc`` (temporal)
  -> ``attention.qkv`` / ``attention.out`` / ``attention.key_h``, ``mlp.fc1`` / ``mlp.fc2`` -> ``mlp.0`` / ``mlp.2``;
- ``Spatial_norm`` / ``Temporal_norm`` / ``head_pose`` -> ``spatial_norm`` / ``temporal_norm`` / ``head``.

Skipped on purpose: ``STEblocks.i.attn.qkv_xc`` (the official spatial blocks are built with it but never call it)
and the wrapper's schedule buffers (checked against the config's schedule, which our core recomputes). The heads
(8, hard-coded in ``common/ddhpose.py``) are not in the weights and are checked against the config.

The official forward pass differs from ours in three places, so loaded weights do not reproduce the official
outputs exactly (docs/pose3d.md, "Loading official DDHPose checkpoints"): the timestep sinusoid uses frequencies
``10000^(-i/(half-1))`` (ours ``10000^(-i/half)``); HRST averages the logits in place chain by chain (a bone's
update reads the already updated parent logit, bones shared by chains are averaged repeatedly; ours averages each
bone once from the unmodified logits); HRTT's hierarchical feature (B, F, J, C) is reshaped, not permuted, to the
(B J, F, C) token layout, so a token's k_h comes from another joint and frame (ours pairs each token with its own).
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from diffusekit.core.errors import DataError

__all__ = [
    "OFFICIAL_HEADS",
    "LoadReport",
    "OfficialCheckpoint",
    "load_official_ddhpose",
    "map_official_key",
    "official_ddhpose_model",
    "official_state",
    "read_official_checkpoint",
]

logger = logging.getLogger(__name__)

OFFICIAL_HEADS = 8  # common/ddhpose.py builds MixSTE2(num_heads=8) whatever the arguments
WRAPPER_PREFIX = "dir_bone_estimator."
# the buffers that the official DDHPose wrapper registers (common/ddhpose.py); recomputed by our core
SCHEDULE_BUFFERS = frozenset({
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
    "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod", "posterior_variance",
    "posterior_log_variance_clipped", "posterior_mean_coef1", "posterior_mean_coef2",
})  # fmt: skip
DIFFERENCES = (
    "its forward pass differs from ours in the timestep sinusoid's frequencies, HRST's in-place averaging order and "
    "HRTT's hierarchical-feature layout, so outputs will not match the official code's exactly (docs/pose3d.md, "
    "'Loading official DDHPose checkpoints')"
)

_SPATIAL_XC = "HRST key projection of the official spatial blocks: built, never called"
_BLOCK_PARTS = {"norm1": "norm1", "norm2": "norm2", "attn.qkv": "attention.qkv", "attn.proj": "attention.out",
                "attn.qkv_xc": "attention.key_h", "mlp.fc1": "mlp.0", "mlp.fc2": "mlp.2"}  # fmt: skip
_TOP_LEVEL = {"Spatial_patch_to_embedding": "embed", "time_mlp.1": "time.0", "time_mlp.3": "time.2",
              "Spatial_norm": "spatial_norm", "Temporal_norm": "temporal_norm", "head_pose.0": "head.0",
              "head_pose.1": "head.1"}  # fmt: skip
_BLOCK = re.compile(r"(STEblocks|TTEblocks)(_0)?\.(\d+)\.(.+)\.(weight|bias)")


def _numpy_globals() -> list:
    """What ``torch.load(weights_only=True)`` must be allowed to rebuild in an official file: numpy arrays and the
    training generator's ``np.random.RandomState`` (``random_state``), under numpy 1.x and 2.x names. Pure data:
    no callable here runs code taken from the file."""
    core = getattr(np, "_core", None) or np.core
    from numpy.random import _pickle as random_pickle
    from numpy.random import mtrand

    reconstruct = core.multiarray._reconstruct
    allowed = [np.ndarray, np.dtype, mtrand.RandomState, np.random.MT19937, reconstruct]
    allowed += [
        (reconstruct, "numpy.core.multiarray._reconstruct"),
        (reconstruct, "numpy._core.multiarray._reconstruct"),
    ]
    allowed += [getattr(random_pickle, name) for name in ("__randomstate_ctor", "__bit_generator_ctor")
                if hasattr(random_pickle, name)]  # fmt: skip
    kinds = ("u4", "i4", "i8", "f4", "f8", "?")  # numpy >= 1.25 rebuilds a dtype as its class (numpy.dtypes.*)
    return allowed + list({type(np.dtype(kind)) for kind in kinds} - {np.dtype})


def _load(path: Path, mmap: bool) -> Any:
    from diffusekit.core.checkpoint import load_checkpoint_file

    with torch.serialization.safe_globals(_numpy_globals()):
        if mmap:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return load_checkpoint_file(path)


@dataclass
class OfficialCheckpoint:
    """An official DDHPose checkpoint: the denoiser's tensors under their official names (``module.`` and
    ``dir_bone_estimator.`` removed), the wrapper's other tensors, and the training epoch when saved."""

    path: Path | None
    denoiser: dict[str, torch.Tensor]
    wrapper: dict[str, torch.Tensor]
    epoch: int | None = None

    def config(self) -> dict[str, int]:
        """The denoiser's sizes read from its tensors: dim, depth, frames, joints, levels, MLP width."""
        embed = self.denoiser["Spatial_patch_to_embedding.weight"]
        matches = [_BLOCK.fullmatch(key) for key in self.denoiser]
        blocks = {m.group(3) for m in matches if m and m.group(1) == "STEblocks" and not m.group(2)}
        fc1 = self.denoiser.get("STEblocks_0.0.mlp.fc1.weight")
        return {
            "dim": int(embed.shape[0]),
            "depth": 1 + len(blocks),
            "frames": int(self.denoiser["Temporal_pos_embed"].shape[1]) if "Temporal_pos_embed" in self.denoiser else 0,
            "joints": int(self.denoiser["Spatial_pos_embed"].shape[1]) if "Spatial_pos_embed" in self.denoiser else 0,
            "levels": int(self.denoiser["group"].shape[1]) if "group" in self.denoiser else 0,
            "mlp": int(fc1.shape[0]) if fc1 is not None else 0,
        }


def official_state(checkpoint: Any, path: str | Path | None = None) -> OfficialCheckpoint | None:
    """The official DDHPose layout in a loaded checkpoint (a ``main.py`` dict with ``model_pos``, or a bare state
    dict of the wrapper or of its ``MixSTE2``), else None. Another MixSTE-family file (the original MixSTE regressor,
    D3DP) or a ``model_pos`` that is no DDHPose denoiser is a DataError naming ``path``."""
    if not isinstance(checkpoint, Mapping):
        return None
    epoch = checkpoint.get("epoch") if "model_pos" in checkpoint else None
    state = checkpoint.get("model_pos", checkpoint)
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        if "model_pos" in checkpoint:
            raise DataError("'model_pos' is not a state dict (names -> tensors)", path)
        return None
    state = {k.removeprefix("module."): v for k, v in state.items()}
    embed_names = ("Spatial_patch_to_embedding.weight", WRAPPER_PREFIX + "Spatial_patch_to_embedding.weight",
                   "pose_estimator.Spatial_patch_to_embedding.weight")  # fmt: skip
    if "model_pos" not in checkpoint and not any(name in state for name in embed_names):
        return None  # not this family: let the caller try its own layouts
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError("'model_pos' is not a state dict (names -> tensors)", path)
    if any(k.startswith("pose_estimator.") for k in state):
        raise DataError("a D3DP checkpoint (pose_estimator.*): D3DP diffuses joint positions, DDHPose bones; "
                        "its denoiser cannot be loaded into DDHPose's", path)  # fmt: skip
    wrapped = any(k.startswith(WRAPPER_PREFIX) for k in state)
    denoiser = {
        k.removeprefix(WRAPPER_PREFIX): v for k, v in state.items() if not wrapped or k.startswith(WRAPPER_PREFIX)
    }
    wrapper = {k: v for k, v in state.items() if wrapped and not k.startswith(WRAPPER_PREFIX)}
    embed = denoiser.get("Spatial_patch_to_embedding.weight")
    if embed is None:
        first = next(iter(state), "nothing")
        raise DataError(f"'model_pos' holds no DDHPose denoiser (no Spatial_patch_to_embedding; first tensor "
                        f"{first!r}): not an official DDHPose / MixSTE checkpoint", path)  # fmt: skip
    if "STEblocks_0.0.norm1.weight" not in denoiser or embed.ndim != 2 or embed.shape[1] != 2 + 3 + 1:
        width = tuple(embed.shape)
        raise DataError(f"a MixSTE-style checkpoint but not DDHPose's denoiser (Spatial_patch_to_embedding {width}, "
                        f"DDHPose's takes 2D + bone direction + length = 6 inputs and has STEblocks_0): the original "
                        f"MixSTE is a regressor and cannot be loaded into DDHPose", path)  # fmt: skip
    epoch = int(epoch) if isinstance(epoch, (int, float)) else None
    return OfficialCheckpoint(None if path is None else Path(path), denoiser, wrapper, epoch)


def read_official_checkpoint(path: str | Path) -> OfficialCheckpoint | None:
    """Read ``path`` (``weights_only=True``; numpy arrays and the data generator's RandomState allowed) and return
    its official DDHPose content, or None when the file has another layout. Unreadable files are DataErrors."""
    path = Path(path).expanduser()
    return official_state(_load(path, mmap=False), path)


def map_official_key(key: str) -> tuple[str | None, str]:
    """(our `HSTDenoiser` name, "") for an official ``MixSTE2`` tensor name, or (None, why it is not loaded)."""
    match = _BLOCK.fullmatch(key)
    if match:
        kind, first, index, part, leaf = match.groups()
        if first and (index != "0" or part == "attn.qkv_xc") or part not in _BLOCK_PARTS:
            return None, "not a part of the official MixSTE2"  # the first pair is plain attention
        if kind == "STEblocks" and part == "attn.qkv_xc":
            return None, _SPATIAL_XC
        ours = "spatial" if kind == "STEblocks" else "temporal"
        return f"{ours}.{0 if first else int(index) + 1}.{_BLOCK_PARTS[part]}.{leaf}", ""
    if key in ("Spatial_pos_embed", "Temporal_pos_embed"):
        return ("spatial_pos" if key[0] == "S" else "temporal_pos"), ""
    if key == "group":
        return "depth_table.weight", ""
    head, _, leaf = key.rpartition(".")
    if head in _TOP_LEVEL and leaf in ("weight", "bias"):
        return f"{_TOP_LEVEL[head]}.{leaf}", ""
    return None, "not a part of the official MixSTE2"


@dataclass
class LoadReport:
    """What `load_official_ddhpose` did: ``loaded`` official name -> ours (full model names), ``skipped`` official
    name -> reason, ``left_random`` our tensors that the file did not set (empty unless ``strict=False``)."""

    path: Path | None
    epoch: int | None
    loaded: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    left_random: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One paragraph for the log: counts, skipped groups with their reasons, and the forward differences."""
        reasons: dict[str, int] = {}
        for reason in self.skipped.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        skipped = "; ".join(f"{count} ({reason})" for reason, count in reasons.items()) or "none"
        epoch = f" (epoch {self.epoch})" if self.epoch is not None else ""
        random = f"; left at their initialisation: {len(self.left_random)}" if self.left_random else ""
        where = f"{self.path}: " if self.path else ""
        return (f"{where}official DDHPose checkpoint{epoch}: loaded {len(self.loaded)} tensors, skipped {skipped}"
                f"{random}. Note: {DIFFERENCES}")  # fmt: skip


def _describe(sizes: Mapping[str, int]) -> str:
    return f"dim {sizes['dim']}, depth {sizes['depth']}, {sizes['frames']} frames, MLP {sizes['mlp']}"


def _our_sizes(denoiser: nn.Module) -> dict[str, int]:
    return {"dim": denoiser.dim, "depth": len(denoiser.spatial), "frames": denoiser.frames,
            "mlp": denoiser.spatial[0].mlp[0].out_features}  # fmt: skip


def _check_parts(denoiser: nn.Module, path: Path | None) -> None:
    """The official denoiser always has the depth embedding, HRST and HRTT; a config without one would load (HRST
    has no tensors of its own) but compute something else."""
    off = [name for name, on in (("depth_embedding", denoiser.depth_table is not None), ("hrtt", denoiser.hrtt),
           ("hrst", len(denoiser.spatial) < 2 or denoiser.spatial[1].attention.hierarchical)) if not on]  # fmt: skip
    if off:
        flags = ", ".join(f"model.denoiser.{name}=True" for name in off)
        raise DataError(f"official DDHPose denoisers use the depth embedding, HRST and HRTT; the config turns "
                        f"{' and '.join(off)} off (set {flags})", path)  # fmt: skip


def _check_schedule(model: nn.Module, wrapper: Mapping[str, torch.Tensor], path: Path | None) -> None:
    betas = wrapper.get("betas")
    diffusion = getattr(model, "diffusion", None)
    if betas is None or diffusion is None:
        return
    ours = diffusion.schedule.betas.to(torch.float64)
    if betas.shape != ours.shape:
        raise DataError(f"the file's diffusion has T = {betas.numel()} steps (betas), the config's model.num_steps "
                        f"= {ours.numel()}", path)  # fmt: skip
    gap = float((betas.to(torch.float64) - ours).abs().max())
    if gap > 1e-6:
        raise DataError(f"the file's betas differ from the config's schedule by up to {gap:.2g} (the official code "
                        f"uses the cosine schedule: model.schedule='cosine')", path)  # fmt: skip


def load_official_ddhpose(
    model: nn.Module, checkpoint: str | Path | OfficialCheckpoint, strict: bool = True
) -> LoadReport:
    """Load an official DDHPose checkpoint into ``model`` (a `DDHPose`, or an `HSTDenoiser`) and report.

    DataError (one line naming the file) when the file is no official DDHPose checkpoint, when its denoiser differs
    from the config's (the first mismatching tensor with both shapes, and both sizes), when the config's heads are
    not the official 8 or its schedule not the file's, and, with ``strict``, when a tensor of ``model`` would stay
    at its initialisation.
    """
    if not isinstance(checkpoint, OfficialCheckpoint):
        path = Path(checkpoint).expanduser()
        found = read_official_checkpoint(path)
        if found is None:
            raise DataError("not an official DDHPose checkpoint (no 'model_pos' and no MixSTE2 tensor names)", path)
        checkpoint = found
    path = checkpoint.path
    denoiser = getattr(model, "denoiser", model)
    prefix = "denoiser." if denoiser is not model else ""
    heads = denoiser.spatial[0].attention.heads
    if heads != OFFICIAL_HEADS:
        raise DataError(f"official DDHPose denoisers have {OFFICIAL_HEADS} attention heads (not stored in the file), "
                        f"the config's has {heads}: set model.denoiser.heads={OFFICIAL_HEADS}", path)  # fmt: skip
    _check_parts(denoiser, path)
    _check_schedule(model, checkpoint.wrapper, path)
    ours = model.state_dict()
    sizes = f"the file's denoiser: {_describe(checkpoint.config())}; the config's: {_describe(_our_sizes(denoiser))}"
    report = LoadReport(path, checkpoint.epoch)
    values: dict[str, torch.Tensor] = {}
    for key, tensor in checkpoint.denoiser.items():
        name, reason = map_official_key(key)
        if name is None:
            if reason != _SPATIAL_XC and strict:
                raise DataError(f"{key!r} ({reason}): not the official DDHPose layout", path)
            report.skipped[key] = reason
            continue
        target = prefix + name
        if key == "group" and tensor.ndim == 3 and tensor.shape[0] == 1:
            tensor = tensor[0]  # (1, levels, dim) -> the embedding table (levels, dim)
        if target not in ours:
            raise DataError(f"{key!r} {tuple(tensor.shape)} has no place in the model (no {target!r}); {sizes}", path)
        if tuple(tensor.shape) != tuple(ours[target].shape):
            raise DataError(f"{key!r} is {tuple(tensor.shape)} in the file, {tuple(ours[target].shape)} in the model "
                            f"({target!r}); {sizes}", path)  # fmt: skip
        values[target] = tensor.to(ours[target].dtype)
        report.loaded[key] = target
    for key in checkpoint.wrapper:
        if key not in SCHEDULE_BUFFERS and strict:
            raise DataError(f"{key!r} is not a tensor of the official DDHPose model", path)
        known = key in SCHEDULE_BUFFERS
        report.skipped[key] = (
            "diffusion schedule buffers: recomputed, checked against the config" if known else "unknown"
        )
    report.left_random = [k for k in ours if k not in values]
    if report.left_random and strict:
        first = report.left_random[0]
        raise DataError(f"{first!r} {tuple(ours[first].shape)} is not in the file ({len(report.left_random)} tensors "
                        f"of the model would stay random); {sizes}", path)  # fmt: skip
    model.load_state_dict(values, strict=False)
    return report


def _mentions_model_pos(path: Path) -> bool:
    """Whether the pickle inside the torch zip archive ``path`` names a ``model_pos`` entry."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("data.pkl")), None)
            return name is not None and b"model_pos" in archive.read(name)
    except (OSError, zipfile.BadZipFile):
        return False


def official_ddhpose_model(cfg, checkpoint: str | Path, device: str = "auto", imports: Iterable[str] = ()):
    """The config's DDHPose with the weights of an official DDHPose checkpoint file, on ``device`` in eval mode,
    or None when ``checkpoint`` is not one (then the usual loader reads it). Logs the `LoadReport` summary."""
    from diffusekit.core.commands import build_model, resolve_device

    path = Path(checkpoint).expanduser()
    if cfg.get("model", {}).get("type") != "DDHPose" or not path.is_file() or not zipfile.is_zipfile(path):
        return None
    try:
        loaded = _load(path, mmap=True)  # cheap: tensors stay on disk until copied
    except pickle.UnpicklingError as error:
        if not _mentions_model_pos(path):
            return None  # another tool's file: the usual loader reports it
        refused = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f" ({refused.group(1)})" if refused else ""
        message = f"an official-looking checkpoint ('model_pos') holding Python objects{what} beyond tensors, "
        raise DataError(message + "numpy arrays and a RandomState: refusing to unpickle it", path) from error
    except Exception:  # noqa: BLE001  not readable this way: the usual loader reports it
        return None
    found = official_state(loaded, path)
    if found is None:
        return None
    model = build_model(cfg, imports)
    report = load_official_ddhpose(model, found)
    logger.warning("%s", report.summary())
    return model.to(resolve_device(device)).eval()
