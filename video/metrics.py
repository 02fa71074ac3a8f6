"""Video-restoration metrics: BasicSR-compatible PSNR/SSIM per frame, tOF, frame and sequence means, and their
mmengine ``BaseMetric`` twin.

Conventions (XPixelGroup/BasicSR ``basicsr/metrics/psnr_ssim.py`` and ``basicsr/utils/color_util.py``,
re-implemented here):

- Images are ``(H, W, C)`` arrays in [0, 255] (uint8 or float), RGB unless ``channel_order="bgr"``; ``(H, W)`` is
  one grey channel. They are cast to float64; ``crop_border`` pixels are cut from each side *before* the optional
  Y conversion, as BasicSR does.
- PSNR = 10 log10(255^2 / MSE) over all pixels and channels; ``inf`` when MSE = 0 (a mean that includes an ``inf``
  frame is ``inf``, as in BasicSR).
- SSIM is the MATLAB-equivalent SSIM of Wang et al. (2004): an 11x11 Gaussian window with sigma 1.5 (the outer
  product of ``cv2.getGaussianKernel(11, 1.5)``) applied with ``cv2.filter2D``, keeping the "valid" region (5 pixels
  dropped on each side), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, computed per channel and averaged over channels.
  This equals ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
  data_range=255)``, which also averages over the window-valid region only.
- Y channel: ITU-R BT.601 luma in [16, 235] from [0, 255] input, Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255
  (BasicSR's ``bgr2ycbcr(y_only=True)`` on [0, 1] input, times 255). BasicSR's ``to_y_channel`` expects **BGR**
  (OpenCV) input; our frames are **RGB**, so ``channel_order="rgb"`` is the default and ``"bgr"`` reproduces
  BasicSR on OpenCV-loaded arrays. BasicSR computes Y in float32, we in float64: PSNR agrees to < 1e-5 dB.
  A one-channel image is left as it is when ``test_y_channel`` is set (as BasicSR does).
- Per-sequence averaging differs between papers: DSTNet averages all frames of all sequences (``*_frame_mean``),
  VRT/RVRT average per sequence, then over sequences (``*_sequence_mean``). `summarize` reports both.

tOF (temporal consistency, lower is better) follows TecoGAN (Chu et al. 2020, ``thunil/TecoGAN`` ``metrics.py``):
for each pair of consecutive frames, OpenCV optical flow between the two predicted frames and between the two
reference frames, then the mean over pixels of the end-point error ||OF_pred - OF_ref||_2 (TecoGAN's code takes
this Euclidean norm, although its comment says "l1"), averaged over the pairs. Flow is
``cv2.calcOpticalFlowFarneback(prev, next, None, 0.5, 3, 15, 3, 5, 1.2, 0)`` on ``COLOR_RGB2GRAY`` grey frames,
TecoGAN's parameters (``method="dis"``: ``cv2.DISOpticalFlow_create(DISOPTICAL_FLOW_PRESET_MEDIUM)`` instead).
Unlike TecoGAN's script we use every frame (it skips two at each end) and, unless ``tecogan_crop=True``, the whole
flow field (it keeps a centred crop whose sides are multiples of 32 with at least 8 pixels of margin). A sequence of
fewer than two frames has no pair: `tof` raises ``ValueError`` rather than return NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, TypedDict

import cv2
import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

from diffusekit.core.errors import DataError

__all__ = [
    "SequenceScores",
    "VideoRestorationMetric",
    "format_table",
    "frames_to_uint8",
    "psnr",
    "psnr_ssim_video",
    "rgb_to_y",
    "sequence_scores",
    "ssim",
    "summarize",
    "tof",
]

ChannelOrder = Literal["rgb", "bgr"]
FRAME_KEYS = ("psnr", "ssim")  # per-frame metrics; tOF is one number per sequence
METRIC_KEYS = (*FRAME_KEYS, "tof")

_Y_WEIGHTS_RGB = np.array([65.481, 128.553, 24.966]) / 255.0  # BT.601 on [0, 255] input, R, G, B order
_SSIM_C1 = (0.01 * 255.0) ** 2
_SSIM_C2 = (0.03 * 255.0) ** 2
_SSIM_SIZE, _SSIM_SIGMA = 11, 1.5
_SSIM_PAD = _SSIM_SIZE // 2
_gaussian = cv2.getGaussianKernel(_SSIM_SIZE, _SSIM_SIGMA)
_SSIM_WINDOW = _gaussian @ _gaussian.T
_FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


class SequenceScores(TypedDict, total=False):
    """One sequence's result, the record `summarize` and `format_table` take."""

    sequence: str
    frames: int
    psnr: list[float]
    ssim: list[float]
    tof: float


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check_order(channel_order: str) -> str:
    if channel_order not in ("rgb", "bgr"):
        raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
    return channel_order


def _image(x: Any, name: str) -> np.ndarray:
    array = _numpy(x)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3:
        raise ValueError(f"{name} must be an (H, W) or (H, W, C) image, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return array


def rgb_to_y(img: Any, channel_order: ChannelOrder = "rgb") -> np.ndarray:
    """ITU-R BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 of [0, 255] input (last axis = 3 colour
    channels in ``channel_order``), float64 in [16, 235], shape ``img.shape[:-1]``: white gives 235, black 16."""
    array = _numpy(img).astype(np.float64)
    if array.ndim < 1 or array.shape[-1] != 3:
        raise ValueError(f"rgb_to_y needs 3 colour channels on the last axis, got shape {array.shape}")
    weights = _Y_WEIGHTS_RGB if _check_order(channel_order) == "rgb" else _Y_WEIGHTS_RGB[::-1]
    return 16.0 + array @ weights


def _prepare(img: Any, ref: Any, crop_border: int, test_y_channel: bool, channel_order: str):
    a, b = _image(img, "img"), _image(ref, "ref")
    if a.shape != b.shape:
        raise ValueError(f"image shape {a.shape} differs from reference shape {b.shape}")
    _check_order(channel_order)
    crop = int(crop_border)
    if crop < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if crop:
        if 2 * crop >= min(a.shape[:2]):
            raise ValueError(f"crop_border={crop} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
        a, b = a[crop:-crop, crop:-crop], b[crop:-crop, crop:-crop]
    if test_y_channel and a.shape[2] == 3:
        a, b = rgb_to_y(a, channel_order)[..., None], rgb_to_y(b, channel_order)[..., None]
    return a, b


def psnr(
    img: Any, ref: Any, crop_border: int = 0, test_y_channel: bool = False, channel_order: ChannelOrder = "rgb"
) -> float:
    """PSNR in dB of two [0, 255] images (BasicSR's ``calculate_psnr``; ``inf`` when they are equal)."""
    a, b = _prepare(img, ref, crop_border, test_y_channel, channel_order)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _ssim_channel(x: np.ndarray, y: np.ndarray) -> float:
    def local_mean(z: np.ndarray) -> np.ndarray:
        return cv2.filter2D(np.ascontiguousarray(z), -1, _SSIM_WINDOW)[_SSIM_PAD:-_SSIM_PAD, _SSIM_PAD:-_SSIM_PAD]

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x**2
    var_y = local_mean(y * y) - mu_y**2
    cov = local_mean(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return float(np.mean(numerator / denominator))


def ssim(
    img: Any, ref: Any, crop_border: int = 0, test_y_channel: bool = False, channel_order: ChannelOrder = "rgb"
) -> float:
    """MATLAB-style SSIM of two [0, 255] images, the mean over channels (BasicSR's ``calculate_ssim``)."""
    a, b = _prepare(img, ref, crop_border, test_y_channel, channel_order)
    if min(a.shape[:2]) < _SSIM_SIZE:
        raise ValueError(f"SSIM needs at least {_SSIM_SIZE}x{_SSIM_SIZE} pixels, got {a.shape[0]}x{a.shape[1]}")
    return float(np.mean([_ssim_channel(a[..., c], b[..., c]) for c in range(a.shape[2])]))


def _sequence(x: Any, name: str) -> np.ndarray:
    array = _numpy(x)
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must be a (T, H, W, 3) frame sequence, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError(f"{name} has no frames")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return array


def _sequence_pair(pred: Any, ref: Any) -> tuple[np.ndarray, np.ndarray]:
    p, r = _sequence(pred, "pred"), _sequence(ref, "ref")
    if p.shape != r.shape:
        raise ValueError(f"pred shape {p.shape} differs from ref shape {r.shape}")
    return p, r


def psnr_ssim_video(
    pred: Any, ref: Any, crop_border: int = 0, test_y_channel: bool = False, channel_order: ChannelOrder = "rgb"
) -> dict[str, Any]:
    """Per-frame PSNR and SSIM of two (T, H, W, 3) [0, 255] sequences: ``{"frames", "psnr", "ssim", "psnr_mean",
    "ssim_mean"}`` (lists of T floats and their means)."""
    p, r = _sequence_pair(pred, ref)
    options = dict(crop_border=crop_border, test_y_channel=test_y_channel, channel_order=channel_order)
    psnrs = [psnr(a, b, **options) for a, b in zip(p, r)]
    ssims = [ssim(a, b, **options) for a, b in zip(p, r)]
    return {
        "frames": len(p),
        "psnr": psnrs,
        "ssim": ssims,
        "psnr_mean": float(np.mean(psnrs)),
        "ssim_mean": float(np.mean(ssims)),
    }


def _grey(frame: np.ndarray, channel_order: str) -> np.ndarray:
    frame = np.clip(np.rint(frame), 0, 255).astype(np.uint8) if frame.dtype != np.uint8 else frame
    if frame.shape[-1] == 1:
        return np.ascontiguousarray(frame[..., 0])
    return cv2.cvtColor(
        np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY if channel_order == "rgb" else cv2.COLOR_BGR2GRAY
    )


def _tecogan_crop(flow: np.ndarray) -> np.ndarray:
    """TecoGAN's ``crop_8x8``: a centred crop whose sides are multiples of 32, at least 16 pixels shorter."""
    height, width = flow.shape[:2]
    h = (height - 16) // 32 * 32
    w = (width - 16) // 32 * 32
    if h <= 0 or w <= 0:
        raise ValueError(f"tecogan_crop needs frames of at least 48x48 pixels, got {height}x{width}")
    y, x = (height - h) // 2, (width - w) // 2
    return flow[y : y + h, x : x + w]


def tof(
    pred: Any,
    ref: Any,
    method: Literal["farneback", "dis"] = "farneback",
    tecogan_crop: bool = False,
    channel_order: ChannelOrder = "rgb",
) -> float:
    """TecoGAN's tOF of two (T, H, W, 3) [0, 255] sequences: the mean over consecutive frame pairs of the mean
    end-point error between the flow of the predicted pair and the flow of the reference pair (pixels; lower is
    better). Needs T >= 2 (``ValueError`` otherwise)."""
    p, r = _sequence_pair(pred, ref)
    _check_order(channel_order)
    if len(p) < 2:
        raise ValueError(f"tOF needs at least two frames (one consecutive pair), got {len(p)}")
    if method == "farneback":

        def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return cv2.calcOpticalFlowFarneback(a, b, None, **_FARNEBACK)

    elif method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

        def flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return dis.calc(a, b, None)

    else:
        raise ValueError(f"method must be 'farneback' or 'dis', got {method!r}")
    grey_p = [_grey(frame, channel_order) for frame in p]
    grey_r = [_grey(frame, channel_order) for frame in r]
    errors = []
    for t in range(1, len(p)):
        diff = flow(grey_p[t - 1], grey_p[t]).astype(np.float64) - flow(grey_r[t - 1], grey_r[t])
        if tecogan_crop:
            diff = _tecogan_crop(diff)
        errors.append(float(np.mean(np.sqrt(np.sum(diff * diff, axis=-1)))))
    return float(np.mean(errors))


def frames_to_uint8(frames: Any, name: str = "frames") -> np.ndarray:
    """(T, H, W, 3) uint8 RGB from a uint8 (T, H, W, C) array/tensor (unchanged) or a float (T, C, H, W) one in
    [0, 1]: clamped to [0, 1], times 255 and rounded in float32, as BasicSR's ``tensor2img`` (without its swap to
    BGR). NaN or inf is a ``ValueError`` naming ``name``; other dtypes and layouts are refused."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        frames = frames.numpy() if frames.dtype == torch.uint8 else frames.float().numpy()
    array = np.asarray(frames)
    if array.ndim != 4:
        raise ValueError(f"{name} must have 4 dimensions, (T, 3, H, W) float or (T, H, W, 3) uint8, got {array.shape}")
    if array.dtype == np.uint8:
        if array.shape[-1] not in (1, 3):
            raise ValueError(f"{name}: uint8 frames must be (T, H, W, 3), got shape {array.shape}")
        return array
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name} must be uint8 (T, H, W, 3) or float (T, 3, H, W) in [0, 1], got dtype {array.dtype}")
    if array.shape[1] not in (1, 3):
        raise ValueError(f"{name}: float frames must be (T, 3, H, W) in [0, 1], got shape {array.shape}")
    array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or inf values")
    scaled = np.round(np.clip(array, 0.0, 1.0) * np.float32(255.0))
    return scaled.astype(np.uint8).transpose(0, 2, 3, 1)


def sequence_scores(
    pred: Any,
    ref: Any,
    sequence: str = "sequence",
    keys: Sequence[str] = METRIC_KEYS,
    crop_border: int = 0,
    test_y_channel: bool = False,
    channel_order: ChannelOrder = "rgb",
    tof_method: Literal["farneback", "dis"] = "farneback",
) -> SequenceScores:
    """The `summarize` record of one sequence: per-frame PSNR/SSIM and tOF (those in ``keys``) of two (T, H, W, 3)
    [0, 255] sequences. Bad input (NaN, shape mismatch, tOF on one frame) is a ``DataError`` naming the sequence."""
    unknown = set(keys) - set(METRIC_KEYS)
    if unknown:
        raise ValueError(f"unknown video metrics {sorted(unknown)}; choose from {METRIC_KEYS}")
    try:
        p, r = _sequence_pair(pred, ref)
        record: SequenceScores = {"sequence": str(sequence), "frames": len(p)}
        options = dict(crop_border=crop_border, test_y_channel=test_y_channel, channel_order=channel_order)
        if "psnr" in keys:
            record["psnr"] = [psnr(a, b, **options) for a, b in zip(p, r)]
        if "ssim" in keys:
            record["ssim"] = [ssim(a, b, **options) for a, b in zip(p, r)]
        if "tof" in keys:
            record["tof"] = tof(p, r, method=tof_method, channel_order=channel_order)
    except DataError:
        raise
    except ValueError as error:
        raise DataError(str(error), sequence) from error
    return record


def summarize(records: Sequence[SequenceScores]) -> dict[str, float]:
    """Frame and sequence means of per-sequence records: for each per-frame metric present (psnr, ssim),
    ``<key>_frame_mean`` (every frame of every sequence weighted equally, DSTNet) and ``<key>_sequence_mean`` (the
    mean of per-sequence means, VRT/RVRT); ``tof``, the mean over sequences (when the records carry it); and the
    counts ``frames`` and ``sequences``. A metric must be present in all records or in none."""
    if not records:
        raise ValueError("no sequence records to summarize")
    out: dict[str, float] = {"sequences": len(records), "frames": int(sum(r["frames"] for r in records))}
    for key in (*FRAME_KEYS, "tof"):
        present = [key in r for r in records]
        if not any(present):
            continue
        if not all(present):
            missing = [r.get("sequence", "?") for r in records if key not in r]
            raise ValueError(f"{key!r} is missing from the records of sequences {missing}")
        if key == "tof":
            out["tof"] = float(np.mean([r["tof"] for r in records]))
            continue
        for r in records:
            if len(r[key]) != r["frames"]:
                raise ValueError(
                    f"sequence {r.get('sequence', '?')!r}: {len(r[key])} {key} values for {r['frames']} frames"
                )
        out[f"{key}_frame_mean"] = float(np.mean(np.concatenate([np.asarray(r[key], np.float64) for r in records])))
        out[f"{key}_sequence_mean"] = float(np.mean([np.mean(r[key]) for r in records]))
    return out


def format_table(records: Sequence[SequenceScores], summary: dict[str, float] | None = None) -> str:
    """A per-sequence text table (sequence, frames, PSNR, SSIM, tOF) followed by the frame mean and the sequence
    mean, each labelled with the convention it follows."""
    summary = summarize(records) if summary is None else summary
    name_width = max(len("mean over sequences"), *(len(str(r.get("sequence", ""))) for r in records))

    def cell(value: float | None, digits: int) -> str:
        return f"{'-':>8}" if value is None else f"{value:8.{digits}f}"

    def row(name: str, frames: int, p: float | None, s: float | None, t: float | None) -> str:
        return f"{name:<{name_width}}  {frames:>6d}  {cell(p, 2)}  {cell(s, 4)}  {cell(t, 3)}"

    lines = [f"{'sequence':<{name_width}}  {'frames':>6}  {'PSNR':>8}  {'SSIM':>8}  {'tOF':>8}"]
    for r in records:
        p = float(np.mean(r["psnr"])) if "psnr" in r else None
        s = float(np.mean(r["ssim"])) if "ssim" in r else None
        lines.append(row(str(r.get("sequence", "")), r["frames"], p, s, r.get("tof")))
    lines.append("-" * len(lines[0]))
    frames, sequences = int(summary["frames"]), int(summary["sequences"])
    lines.append(row("mean over frames", frames, summary.get("psnr_frame_mean"), summary.get("ssim_frame_mean"), None))
    lines.append(
        row(
            "mean over sequences",
            frames,
            summary.get("psnr_sequence_mean"),
            summary.get("ssim_sequence_mean"),
            summary.get("tof"),
        )
    )
    lines.append(
        f"mean over frames: all {frames} frames weighted equally (DSTNet's convention); mean over sequences: the "
        f"mean of the {sequences} per-sequence means (VRT/RVRT's); tOF is a per-sequence mean over frame pairs."
    )
    return "\n".join(lines)


@METRICS.register_module()
class VideoRestorationMetric(BaseMetric):
    """mmengine twin of `sequence_scores` + `summarize`. Each data sample is a dict with ``pred`` and ``gt``
    sequences, float (T, 3, H, W) in [0, 1] or uint8 (T, H, W, 3), and optionally ``sequence`` (its name); float
    frames become uint8 by `frames_to_uint8` (BasicSR's ``tensor2img`` rounding). Reports the frame means
    ``video/psnr`` and ``video/ssim`` and the sequence mean ``video/tof``, for the metrics in ``keys``. NaN or inf in
    a sample is a ``DataError`` naming its sequence."""

    default_prefix = "video"

    def __init__(
        self,
        keys: Sequence[str] = ("psnr", "ssim"),
        crop_border: int = 0,
        test_y_channel: bool = False,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ):
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = set(keys) - set(METRIC_KEYS)
        if unknown:
            raise ValueError(f"unknown video metrics {sorted(unknown)}; choose from {METRIC_KEYS}")
        self.keys = tuple(keys)
        self.crop_border, self.test_y_channel = int(crop_border), bool(test_y_channel)

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            name = str(sample.get("sequence", f"sample {len(self.results)}"))
            try:
                pred = frames_to_uint8(sample["pred"], "pred")
                gt = frames_to_uint8(sample["gt"], "gt")
            except ValueError as error:
                raise DataError(str(error), name) from error
            record = sequence_scores(
                pred, gt, name, self.keys, crop_border=self.crop_border, test_y_channel=self.test_y_channel
            )
            self.results.append(record)

    def compute_metrics(self, results: list) -> dict[str, float]:
        summary = summarize(results)
        return {key: summary["tof" if key == "tof" else f"{key}_frame_mean"] for key in self.keys}
