"""Configs, models, training and evaluation of the medical domain as library calls (the CLI, the demo, the
benchmark and notebooks use them alike).

`load_medical_config` loads a shipped or user config and checks every block the domain reads itself (``evaluate``
and the model's ``val_sampling``): a misspelt key is a ``DataError`` naming the key, the file and the closest valid
key. `train_model` trains with the validation split read from the same dataset folder; `evaluate_model` segments
the evaluation split at native size and scores it (`inference.evaluate_predictions`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from pathlib import Path
from typing import Any

from mmengine.config import Config
from torch import nn

from diffusekit.core import commands
from diffusekit.core.config_checks import check_kwargs, config_block
from diffusekit.core.engine import load_config, train_on_data

__all__ = [
    "build_model",
    "check_config",
    "eval_frames",
    "evaluate_block",
    "evaluate_model",
    "inference_settings",
    "load_medical_config",
    "load_model",
    "train_model",
]

PACKAGE = "diffusekit.medical"
MODEL_IMPORTS = ("diffusekit.medical.baseline", "diffusekit.medical.echo_dnd", "diffusekit.medical.datasets")
logger = logging.getLogger(__name__)


def evaluate_block(cfg: Config) -> dict[str, Any]:
    """The config's ``evaluate`` block over its defaults: ``split`` (None: the layout's test split) and every
    `inference.InferenceSettings` field; an unknown key is a DataError."""
    from diffusekit.medical.inference import InferenceSettings

    defaults = {"split": None, **{f.name: f.default for f in dataclasses.fields(InferenceSettings)}}
    return config_block(cfg, "evaluate", defaults)


def check_config(cfg: Config) -> Config:
    """DataError for an unknown key in ``evaluate`` or in the EchoDND model's ``val_sampling`` (kwargs of
    ``EchoDND.segment``); returns ``cfg``."""
    evaluate_block(cfg)
    model = cfg.get("model") or {}
    if model.get("type") == "EchoDND" and model.get("val_sampling"):
        from diffusekit.medical.echo_dnd import EchoDND

        check_kwargs(EchoDND.segment, model["val_sampling"], "model.val_sampling", cfg.filename)
    return cfg


def load_medical_config(config: str | Path, options: list[str] | None = None) -> Config:
    """A config file or shipped name with ``key=value`` overrides applied, checked by `check_config`."""
    return check_config(load_config(config, package=PACKAGE, cfg_options=options or []))


def build_model(cfg: Config) -> nn.Module:
    """The model of ``cfg`` with random weights."""
    return commands.build_model(cfg, imports=MODEL_IMPORTS)


def load_model(cfg: Config, checkpoint: str | Path, device: str = "auto") -> nn.Module:
    """The model of ``cfg`` with the weights ``checkpoint`` names (EMA when present; a file or a train work dir),
    on ``device`` (auto, cpu, cuda), in eval mode."""
    return commands.load_model(cfg, checkpoint, device, imports=MODEL_IMPORTS)


def train_model(cfg: Config, data: str | Path, work_dir: str | Path, **options) -> Path:
    """Train ``cfg`` on the dataset folder ``data`` (its validation split too, when the config validates);
    returns the final weights path. The work dir also gets ``curves.png`` and, with validation, the best
    checkpoint by validation Dice. ``options``: ``resume``, ``launcher``, ``seed``, ``progress`` of
    ``core.engine.train_on_data``."""
    from diffusekit.medical.datasets import frames_read_first

    cfg = copy.deepcopy(cfg)
    root = str(Path(data).expanduser().absolute())
    specs = [{**cfg.train_dataloader.dataset, "data_root": root}]
    if cfg.get("val_dataloader"):
        cfg.val_dataloader.dataset["data_root"] = root
        specs.append(dict(cfg.val_dataloader.dataset))
    with frames_read_first(specs):  # a bad file fails here, before the runner writes into the work dir
        return train_on_data(cfg, data, work_dir, **options)


def _layout(cfg: Config) -> str:
    return str(cfg.train_dataloader.dataset.get("layout", "camus"))


def eval_frames(cfg: Config, data: str | Path, split: str | None = None) -> list:
    """The labelled `datasets.EchoFrame` records of the evaluation split (``--split``, else config
    ``evaluate.split``, else CAMUS ``testing`` / EchoNet ``TEST``) of ``data``."""
    from diffusekit.medical.datasets import camus_frames, echonet_frames

    dataset = cfg.train_dataloader.dataset
    split = split or evaluate_block(cfg)["split"] or ("testing" if _layout(cfg) == "camus" else "TEST")
    if _layout(cfg) == "echonet":
        return echonet_frames(data, split)
    views, phases = dataset.get("views", ("2CH", "4CH")), dataset.get("phases", ("ED", "ES"))
    return camus_frames(data, split, views, phases, dataset.get("target", "lv"))


def inference_settings(cfg: Config, steps: int | None = None, samples: int | None = None, sampler: str | None = None):
    """`inference.InferenceSettings` from the config's ``evaluate`` block; ``steps``, ``samples`` and ``sampler``
    (the Gaussian branch's) override it when given."""
    from diffusekit.medical.inference import InferenceSettings

    block = evaluate_block(cfg)
    block.pop("split")
    settings = InferenceSettings(**block)
    if steps is not None:
        settings.steps = steps
    if samples is not None:
        settings.samples = samples
    if sampler is not None:
        settings.gaussian_sampler = sampler
    return settings


def evaluate_model(
    cfg: Config, model: nn.Module, data: str | Path, settings, split: str | None = None, frames: list | None = None
) -> tuple[dict[str, Any], list]:
    """Segment the evaluation split (or ``frames``) and score it: (`inference.evaluate_predictions` result with
    timing, steps and samples; the per-frame predictions)."""
    from diffusekit.medical.inference import evaluate_predictions, predict_frames

    frames = eval_frames(cfg, data, split) if frames is None else frames
    logger.info("segmenting %d frames (%s steps x %d samples)", len(frames), settings.steps, settings.samples)
    predictions, timing = predict_frames(model, frames, int(cfg.size), settings, progress=True)
    result = evaluate_predictions(predictions)
    result.update(timing, steps=settings.steps, samples=settings.samples)
    return result, predictions
