"""Optional perceptual metrics, LPIPS, FID and KID (DIVD reports all three), from user-supplied weights only.

Each needs an ImageNet-trained backbone that its package would download at first use; nothing here downloads:

- LPIPS (Zhang et al. 2018) through the ``lpips`` package (0.1.4), version 0.1. Its wheel ships the linear heads
  (``lpips/weights/v0.1/<net>.pth``); the backbone comes from torchvision, which would download it. We build
  ``lpips.LPIPS(pnet_rand=True)`` (random backbone, no download) and load the user's torchvision state dict into it:
  ``alexnet-owt-7be5be79.pth`` (``AlexNet_Weights.IMAGENET1K_V1``, the default ``net="alex"``),
  ``vgg16-397923af.pth`` or ``squeezenet1_1-b8a52dc0.pth``; their ``features.<i>.*`` tensors are lpips's
  ``slice<k>.<i>.*``. Frames are compared as [0, 1] RGB (``normalize=True``), after the same uint8 rounding as
  PSNR/SSIM, and the result is the mean over frames.
- FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) through torchmetrics' ``FrechetInceptionDistance`` and
  ``KernelInceptionDistance`` on the 2048-d pool features of torch-fidelity's Inception-v3 port of the TensorFlow
  FID graph (torchmetrics' ``NoTrainInceptionV3``, built with ``feature_extractor_weights_path``), from the file
  ``weights-inception-2015-12-05-6726825d.pth`` (torch-fidelity's GitHub release v0.2.0; pytorch-fid's
  ``pt_inception-2015-12-05-6726825d.pth`` has the same tensors under the same names). torchmetrics 1.9's KID has no
  weights-path argument, so features are extracted once by that network and both metrics are fed the features (an
  identity feature module). Resizing to 299x299 is torch-fidelity's TensorFlow-1 compatible bilinear
  (``antialias=False``), as in the reference FID; torchmetrics' own default (``antialias=True``) gives different
  numbers. Frames from all sequences are pooled; KID uses ``kid_subsets`` random subsets of
  ``min(kid_subset_size, frames)`` frames, seeded.

A missing package or weights file raises `PerceptualUnavailable`, a ``DataError`` whose one sentence says what to
install (``pip install 'diffusekit[video-perceptual]'``) or which file is needed and where it comes from. A
torchvision build that does not match the installed torch (PyPI's CUDA wheel beside a CPU torch fails with
"operator torchvision::nms does not exist") counts as missing too.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from diffusekit.core.errors import DataError
from diffusekit.video.metrics import frames_to_uint8

__all__ = [
    "INCEPTION_WEIGHTS",
    "LPIPS_BACKBONES",
    "PerceptualUnavailable",
    "fid_kid",
    "lpips_distance",
    "lpips_per_frame",
]

INSTALL = "pip install 'diffusekit[video-perceptual]'"
# net -> (torchvision's file name, its weights enum)
LPIPS_BACKBONES = {
    "alex": ("alexnet-owt-7be5be79.pth", "AlexNet_Weights.IMAGENET1K_V1"),
    "vgg": ("vgg16-397923af.pth", "VGG16_Weights.IMAGENET1K_V1"),
    "squeeze": ("squeezenet1_1-b8a52dc0.pth", "SqueezeNet1_1_Weights.IMAGENET1K_V1"),
}
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_FEATURES = (64, 192, 768, 2048)


class PerceptualUnavailable(DataError):
    """An optional perceptual metric cannot run here: a package or a weights file is missing."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _import(what: str, packages: str, *modules: str) -> list[Any]:
    try:
        return [importlib.import_module(name) for name in modules]
    except Exception as error:  # ImportError, or RuntimeError from a torchvision build that does not match torch
        raise PerceptualUnavailable(
            f"{what} needs the packages {packages}, which cannot be imported here ({_first_line(error)}); install "
            f"them with {INSTALL}"
        ) from error


def _weights_file(path: str | Path | None, needed: str) -> Path:
    if path is None:
        raise PerceptualUnavailable(f"{needed}; pass its local path (nothing is downloaded)")
    path = Path(path).expanduser()
    if not path.is_file():
        raise PerceptualUnavailable(f"no such weights file: {needed}", path)
    return path


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise DataError(f"cannot be read as a PyTorch state dict ({_first_line(error)})", path) from error
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError("is not a state dict of tensors", path)
    return state


@functools.lru_cache(maxsize=2)
def _lpips_model(path: str, modified_ns: int, net: str) -> torch.nn.Module:
    (lpips,) = _import("LPIPS", "lpips and torchvision", "lpips")
    file_name, _ = LPIPS_BACKBONES[net]
    with warnings.catch_warnings():  # torchvision's deprecation notice for lpips's pretrained=False
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    state = _state_dict(Path(path))
    mapped, missing = {}, []
    for key, value in model.net.state_dict().items():  # slice<k>.<i>.<param> <- features.<i>.<param>
        source = "features." + key.split(".", 1)[1]
        if source not in state:
            missing.append(source)
        elif state[source].shape != value.shape:
            raise DataError(
                f"{source} has shape {tuple(state[source].shape)}, torchvision's {net} backbone ({file_name}) "
                f"has {tuple(value.shape)}",
                path,
            )
        else:
            mapped[key] = state[source]
    if missing:
        raise DataError(
            f"is not a torchvision {net} state dict like {file_name}: {len(missing)} backbone tensors are missing "
            f"(e.g. {', '.join(missing[:3])})",
            path,
        )
    model.net.load_state_dict(mapped, strict=True)
    return model.eval().requires_grad_(False)


def _unit_frames(frames: Any, name: str) -> torch.Tensor:
    """Float (T, 3, H, W) in [0, 1] from uint8 (T, H, W, 3) / (H, W, 3) or float (T, 3, H, W) / (3, H, W)."""
    if getattr(frames, "ndim", None) == 3:
        frames = frames[None]
    uint8 = frames_to_uint8(frames, name)
    if uint8.shape[-1] != 3:
        raise ValueError(f"{name}: LPIPS needs RGB frames, got shape {uint8.shape}")
    return torch.from_numpy(np.ascontiguousarray(uint8)).permute(0, 3, 1, 2).float() / 255.0


def lpips_per_frame(
    pred: Any, ref: Any, backbone_weights: str | Path | None, net: str = "alex", batch_size: int = 8
) -> list[float]:
    """LPIPS v0.1 of each frame pair of two sequences (uint8 (T, H, W, 3) or float (T, 3, H, W) in [0, 1]; a single
    frame is accepted) with the backbone loaded from ``backbone_weights`` (torchvision's state dict for ``net``)."""
    if net not in LPIPS_BACKBONES:
        raise ValueError(f"net must be one of {sorted(LPIPS_BACKBONES)}, got {net!r}")
    file_name, enum = LPIPS_BACKBONES[net]
    path = _weights_file(
        backbone_weights,
        f"LPIPS-{net} needs torchvision's ImageNet {net} backbone {file_name} ({enum}: "
        f"download.pytorch.org/models/{file_name}, or $TORCH_HOME/hub/checkpoints where torchvision fetched it)",
    )
    p, r = _unit_frames(pred, "pred"), _unit_frames(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"pred frames {tuple(p.shape)} differ from ref frames {tuple(r.shape)}")
    model = _lpips_model(str(path.resolve()), path.stat().st_mtime_ns, net)
    values = []
    with torch.no_grad():
        for start in range(0, len(p), batch_size):
            batch = slice(start, start + batch_size)
            values.append(model(p[batch], r[batch], normalize=True).reshape(-1).double())
    return torch.cat(values).tolist()


def lpips_distance(
    pred: Any, ref: Any, backbone_weights: str | Path | None, net: str = "alex", batch_size: int = 8
) -> float:
    """The mean over frames of `lpips_per_frame` (lower is more similar)."""
    return float(np.mean(lpips_per_frame(pred, ref, backbone_weights, net, batch_size)))


class _GivenFeatures(torch.nn.Module):
    """Feature 'extractor' for torchmetrics that returns its input: the Inception features are computed once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


@functools.lru_cache(maxsize=2)
def _inception(path: str, modified_ns: int, feature: int, antialias: bool) -> torch.nn.Module:
    (fid_module,) = _import("FID/KID", "torchmetrics and torch-fidelity", "torchmetrics.image.fid")
    try:
        return fid_module.NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=[str(feature)],
            feature_extractor_weights_path=path,
            antialias=antialias,
        )
    except (RuntimeError, OSError, ValueError, KeyError, TypeError, EOFError) as error:
        reason = _first_line(error)
        raise DataError(f"is not an Inception-v3 FID weights file like {INCEPTION_WEIGHTS} ({reason})", path) from error


def _chunks(frames: Any, name: str, batch_size: int) -> Iterable[torch.Tensor]:
    """uint8 (B, 3, H, W) batches from one sequence or an iterable of sequences (uint8 (T, H, W, 3) or float
    (T, 3, H, W) in [0, 1])."""
    sequences = [frames] if isinstance(frames, (np.ndarray, torch.Tensor)) else list(frames)
    for index, sequence in enumerate(sequences):
        uint8 = frames_to_uint8(sequence, f"{name}[{index}]" if len(sequences) > 1 else name)
        if uint8.shape[-1] != 3:
            raise ValueError(f"{name}: FID/KID need RGB frames, got shape {uint8.shape}")
        for start in range(0, len(uint8), batch_size):
            yield torch.from_numpy(np.ascontiguousarray(uint8[start : start + batch_size])).permute(0, 3, 1, 2)


def fid_kid(
    pred_frames: Any,
    ref_frames: Any,
    inception_weights: str | Path | None,
    feature: int = 2048,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    batch_size: int = 16,
    seed: int = 0,
    antialias: bool = False,
) -> dict[str, float]:
    """FID and KID between the pooled frames of ``pred_frames`` and ``ref_frames`` (each one sequence or an
    iterable of sequences, uint8 (T, H, W, 3) or float (T, 3, H, W) in [0, 1]): ``{"fid", "kid_mean", "kid_std"}``.
    Needs at least two frames per side."""
    if feature not in INCEPTION_FEATURES:
        raise ValueError(f"feature must be one of {INCEPTION_FEATURES}, got {feature}")
    path = _weights_file(
        inception_weights,
        f"FID/KID need torch-fidelity's Inception-v3 weights {INCEPTION_WEIGHTS} (GitHub release v0.2.0 of "
        "toshas/torch-fidelity; pytorch-fid's pt_inception-2015-12-05-6726825d.pth holds the same tensors)",
    )
    fid_module, kid_module = _import(
        "FID/KID", "torchmetrics and torch-fidelity", "torchmetrics.image.fid", "torchmetrics.image.kid"
    )
    extractor = _inception(str(path.resolve()), path.stat().st_mtime_ns, feature, antialias)
    with torch.no_grad():
        pred = torch.cat([extractor(batch).double() for batch in _chunks(pred_frames, "pred_frames", batch_size)])
        ref = torch.cat([extractor(batch).double() for batch in _chunks(ref_frames, "ref_frames", batch_size)])
    if min(len(pred), len(ref)) < 2:
        raise ValueError(f"FID/KID need at least two frames on each side, got {len(pred)} and {len(ref)}")
    with warnings.catch_warnings():  # KID's notice that it keeps every feature in memory
        warnings.simplefilter("ignore", UserWarning)
        fid = fid_module.FrechetInceptionDistance(feature=_GivenFeatures(feature))
        kid = kid_module.KernelInceptionDistance(
            feature=_GivenFeatures(feature), subsets=kid_subsets, subset_size=min(kid_subset_size, len(pred), len(ref))
        )
    for metric in (fid, kid):
        metric.update(ref, real=True)
        metric.update(pred, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std)}
