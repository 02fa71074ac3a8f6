"""Configs, models, training, evaluation and prediction of the video domain as library calls (the CLI, the demo,
the benchmark and notebooks use them alike).

`load_video_config` checks every block the domain reads itself (``evaluate``, the model's ``val_sampling``);
`train_model` trains through the engine with validation clips read from the same dataset folder;
`evaluate_model` restores every frame of every evaluation sequence at full resolution (`inference.restore_sequence`)
and scores it with BasicSR's PSNR/SSIM conventions and tOF; `predict_input` restores a video file or frame folder.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.config import Config
from torch import nn

from diffusekit.core import commands
from diffusekit.core.config_checks import check_kwargs, config_block
from diffusekit.core.engine import load_config, train_on_data
from diffusekit.core.errors import DataError
from diffusekit.core.progress import ProgressLine

__all__ = [
    "EVALUATE_DEFAULTS",
    "Settings",
    "evaluate_model",
    "load_model",
    "load_video_config",
    "predict_input",
    "settings_from",
    "train_model",
]

PACKAGE = "diffusekit.video"
MODEL_IMPORTS = ("diffusekit.video.divd", "diffusekit.video.datasets", "diffusekit.video.metrics")
EVALUATE_DEFAULTS = dict(
    layout=None,  # None: the training layout
    split="test",
    steps=10,
    samples=1,
    sampler="ddim",
    eta=0.0,
    clip=None,  # None: the model's max_frames
    clip_overlap=2,
    tile=256,
    overlap=32,
    seed=0,
    metrics=("psnr", "ssim", "tof"),
    crop_border=0,
    test_y_channel=False,
)


@dataclass(frozen=True)
class Settings:
    """How whole sequences are restored and scored (the ``evaluate`` block after command-line overrides)."""

    steps: int | None
    samples: int
    sampler: str
    eta: float
    seed: int
    clip: int | None
    clip_overlap: int
    tile: int | None
    overlap: int


def _check_counts(block: dict, path) -> None:
    for key in ("samples", "clip_overlap", "overlap", "seed", "crop_border"):
        value = block[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < (1 if key == "samples" else 0):
            raise DataError(
                f"evaluate.{key} must be a {'positive' if key == 'samples' else 'non-negative'} integer, got {value!r}",
                path,
            )
    for key in ("steps", "clip", "tile"):
        value = block[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise DataError(f"evaluate.{key} must be a positive integer or None, got {value!r}", path)
    if block["tile"] is not None and block["overlap"] >= block["tile"]:
        raise DataError(
            f"evaluate.overlap ({block['overlap']}) must be smaller than evaluate.tile ({block['tile']})", path
        )


def load_video_config(config: str | Path, options: list[str] | None = None) -> Config:
    """A config file or shipped name with ``key=value`` overrides; unknown ``evaluate`` / ``val_sampling`` keys
    and bad counts are DataErrors naming the key and the file."""
    cfg = load_config(config, package=PACKAGE, cfg_options=options or [])
    if "model" not in cfg:
        raise DataError(f"the config has no 'model'; is it a config of {PACKAGE}?", cfg.filename)
    _check_counts(config_block(cfg, "evaluate", EVALUATE_DEFAULTS), cfg.filename)
    model = cfg.model
    if model.get("type") == "DIVD" and model.get("val_sampling"):
        from diffusekit.video.divd import DIVD

        check_kwargs(DIVD.restore, model["val_sampling"], "model.val_sampling", cfg.filename)
    crop = cfg.get("train_dataloader", {}).get("dataset", {}).get("crop")
    if crop is not None:
        multiple = _size_multiple(cfg)
        if not isinstance(crop, int) or crop < multiple or crop % multiple:
            raise DataError(
                f"train crop {crop!r} must be a positive multiple of {multiple} (the network's size multiple)",
                cfg.filename,
            )
    return cfg


def _size_multiple(cfg: Config) -> int:
    nets = [cfg.model.get(key) for key in ("denoiser", "predictor", "network")]
    multiples = []
    for net in nets:
        if net:
            levels = len(net.get("channels", (64, 128, 256)))
            window = net.get("window", 8) if net.get("attention_levels", (1, 2)) else 1
            multiples.append(2 ** (levels - 1) * window)
    return max(multiples or [1])


def settings_from(cfg: Config, **overrides: Any) -> Settings:
    """The ``evaluate`` block with the non-None ``overrides`` (steps, samples, sampler, seed, tile, ...) applied."""
    block = config_block(cfg, "evaluate", EVALUATE_DEFAULTS)
    block.update({k: v for k, v in overrides.items() if v is not None})
    _check_counts(block, cfg.filename)
    return Settings(**{k: block[k] for k in Settings.__dataclass_fields__})


def load_model(cfg: Config, checkpoint: str | Path, device: str = "auto") -> nn.Module:
    """The model of ``cfg`` with the weights ``checkpoint`` names (EMA when present), on ``device``, in eval mode."""
    return commands.load_model(cfg, checkpoint, device, imports=MODEL_IMPORTS)


def build_model(cfg: Config) -> nn.Module:
    return commands.build_model(cfg, imports=MODEL_IMPORTS)


def train_model(cfg: Config, data: str | Path, work_dir: str | Path, **options) -> Path:
    """Train ``cfg`` on ``data`` (validation clips from the same folder); returns the final weights path.
    ``options``: ``resume``, ``launcher``, ``seed``, ``progress``, ``overwrite`` of ``core.engine.train_on_data``."""
    return train_on_data(copy.deepcopy(cfg), data, work_dir, **options)


def _restore(model, frames: np.ndarray, settings: Settings, device, progress: ProgressLine | None, label: str):
    from diffusekit.video.inference import TileSettings, restore_sequence

    tiles = TileSettings(settings.clip, settings.clip_overlap, settings.tile, settings.overlap)

    def on_clip(done: int, total: int) -> None:
        if progress is not None:
            progress.update(f"{label}: clip {done}/{total}")

    restored = np.empty_like(frames)
    spread = np.empty(frames.shape[:3], np.float32)
    for index, image, uncertainty in restore_sequence(
        model,
        frames,
        steps=settings.steps,
        samples=settings.samples,
        sampler=settings.sampler,
        eta=settings.eta,
        seed=settings.seed,
        tiles=tiles,
        device=device,
        on_clip=on_clip,
    ):
        restored[index], spread[index] = image, uncertainty
    return restored, spread


def evaluation_sequences(cfg: Config, data: str | Path, split: str | None = None, max_sequences=None, max_frames=None):
    """The `VideoSequence` list of the evaluation split (``split`` or the config's), first N sequences / frames."""
    from diffusekit.video.datasets import find_sequences
    from diffusekit.video.frames import VideoSequence

    dataset = cfg.train_dataloader.dataset
    block = config_block(cfg, "evaluate", EVALUATE_DEFAULTS)
    layout = block["layout"] or dataset.get("layout", "gopro")
    options = {k: dataset[k] for k in ("blur", "exposure") if k in dataset}
    sequences = find_sequences(data, layout, split or block["split"], **options)
    sequences = sequences[:max_sequences] if max_sequences else sequences
    if max_frames:
        sequences = [VideoSequence(s.name, s.blur[:max_frames], s.sharp and s.sharp[:max_frames]) for s in sequences]
    missing = [s.name for s in sequences if s.sharp is None]
    if missing:
        raise DataError(
            f"sequence {missing[0]!r} has no sharp frames; evaluation needs ground truth (use predict)", data
        )
    return sequences


def evaluate_model(
    cfg: Config,
    model: nn.Module,
    data: str | Path,
    settings: Settings,
    split: str | None = None,
    max_sequences: int | None = None,
    max_frames: int | None = None,
    keep: int = 3,
) -> tuple[dict[str, Any], list[dict], dict[str, np.ndarray]]:
    """Restore and score every frame of the evaluation sequences.

    Returns (summary: frame and sequence means of PSNR/SSIM, tOF, the blurry input's scores, frames per second,
    network evaluations per frame; per-sequence records; the first ``keep`` sequences' middle frames as
    ``{"blur", "restored", "sharp"}`` stacks for the figure)."""
    from diffusekit.video.frames import read_frames
    from diffusekit.video.metrics import sequence_scores, summarize

    block = config_block(cfg, "evaluate", EVALUATE_DEFAULTS)
    keys, options = (
        tuple(block["metrics"]),
        dict(crop_border=block["crop_border"], test_y_channel=block["test_y_channel"]),
    )
    device = next(model.parameters()).device
    sequences = evaluation_sequences(cfg, data, split, max_sequences, max_frames)
    records, inputs, examples = [], [], {"blur": [], "restored": [], "sharp": [], "uncertainty": []}
    progress = ProgressLine()
    seconds = 0.0
    for number, seq in enumerate(sequences, start=1):
        blur, sharp = read_frames(seq.blur), read_frames(seq.sharp)
        if sharp.shape != blur.shape:
            raise DataError(
                f"sharp frames {sharp.shape[1:3]} differ in size from the blurry ones {blur.shape[1:3]}", seq.sharp[0]
            )
        start = time.perf_counter()
        restored, spread = _restore(model, blur, settings, device, progress, f"{seq.name} ({number}/{len(sequences)})")
        seconds += time.perf_counter() - start
        keys_here = keys if len(seq) > 1 else tuple(k for k in keys if k != "tof")
        records.append(sequence_scores(restored, sharp, seq.name, keys_here, **options))
        inputs.append(sequence_scores(blur, sharp, seq.name, tuple(k for k in keys_here if k != "tof"), **options))
        if len(examples["blur"]) < keep:
            middle = len(seq) // 2
            for name, stack in (("blur", blur), ("restored", restored), ("sharp", sharp)):
                examples[name].append(stack[middle])
            examples["uncertainty"].append(spread[middle])
    progress.finish()
    frames = sum(r["frames"] for r in records)
    summary = summarize(records)
    summary.update({f"input_{k}": v for k, v in summarize(inputs).items() if k not in ("frames", "sequences")})
    windows_per_frame = _windows_per_frame(model, settings, [len(s) for s in sequences])
    per_clip = _evaluations_per_clip(model, settings)
    summary.update(
        frames_per_second=frames / seconds if seconds else float("nan"),
        seconds=seconds,
        evaluations_per_frame=per_clip * windows_per_frame,
        steps=settings.steps,
        samples=settings.samples,
        sampler=settings.sampler,
    )
    return summary, records, examples


def _evaluations_per_clip(model, settings: Settings) -> int:
    if not hasattr(model, "diffusion"):
        return 1
    steps = model.num_steps if settings.steps is None or settings.steps >= model.num_steps else settings.steps
    return settings.samples * steps + int(model.refine)


def _windows_per_frame(model, settings: Settings, lengths: list[int]) -> float:
    """How many temporal windows restore each frame on average (1 without temporal overlap)."""
    from diffusekit.video.inference import spans

    clip = min(settings.clip or model.max_frames, model.max_frames)
    covered = sum(len(spans(n, clip, min(settings.clip_overlap, clip - 1))) * min(clip, n) for n in lengths)
    return covered / max(1, sum(lengths))


def predict_input(
    model: nn.Module,
    settings: Settings,
    path: str | Path,
    out: Path,
    fps: float | None = None,
    uncertainty: bool = False,
) -> list[Path]:
    """Restore a blurry video file or frame folder: ``out/<name>_deblurred.mp4``, ``out/<name>/`` PNG frames named
    as the input's, and with ``uncertainty`` ``out/<name>_uncertainty.mp4`` (the per-pixel standard deviation over
    samples, scaled so that the largest value is white). Never reads from ``out``."""
    from diffusekit.video.folders import input_sequence
    from diffusekit.video.frames import write_frames, write_video

    path = Path(path).expanduser()
    if path.resolve() == out.resolve() or out.resolve() in path.resolve().parents:
        raise DataError("the input lies inside the output folder; choose another --out", path)
    name, frames, names = input_sequence(path)
    device = next(model.parameters()).device
    progress = ProgressLine()
    restored, spread = _restore(model, frames, settings, device, progress, f"restoring {name}")
    progress.finish()
    rate = fps or 30.0
    folder = out / name
    written = write_frames(folder, restored, [Path(n).with_suffix(".png").name for n in names])
    written.append(write_video(out / f"{name}_deblurred.mp4", restored, rate))
    if uncertainty:
        scale = float(spread.max()) or 1.0
        grey = np.clip(spread / scale * 255.0, 0, 255).astype(np.uint8)
        written.append(write_video(out / f"{name}_uncertainty.mp4", np.repeat(grey[..., None], 3, axis=-1), rate))
    return written
