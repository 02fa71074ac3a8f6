"""Configs, models and training for both pose methods: what the CLI, the demos, the benchmarks and notebooks share.

A config belongs to one method: DiffPose (``DiffPose`` or ``HeatmapBaseline`` models, PoseTrack clips) or DDHPose
(``DDHPose``, lifting clips). :func:`check_config` says so when a config is used with the other method's commands,
and checks every block that the pose code reads itself (``evaluate``, ``model.val_sampling``) for unknown keys.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from mmengine.config import Config

from diffusekit.core.commands import build_model, load_model
from diffusekit.core.config_checks import check_kwargs, config_block
from diffusekit.core.engine import load_config, train_on_data
from diffusekit.core.errors import DataError
from diffusekit.pose.ddhpose_checkpoint import official_ddhpose_model

__all__ = [
    "DEFAULT_CONFIGS",
    "EVALUATE_DEFAULTS",
    "METHOD_MODELS",
    "MODEL_MODULES",
    "PACKAGE",
    "build_pose_model",
    "check_config",
    "evaluate_block",
    "load_pose_config",
    "load_pose_model",
    "method_of",
    "train_pose",
    "with_data_root",
    "without_validation",
]

logger = logging.getLogger(__name__)

PACKAGE = "diffusekit.pose"
DEFAULT_CONFIGS = {"diffpose": "diffpose_posetrack18", "ddhpose": "ddhpose_h36m"}
METHOD_MODELS = {"diffpose": ("DiffPose", "HeatmapBaseline"), "ddhpose": ("DDHPose",)}
MODEL_MODULES = ("diffusekit.pose.diffpose", "diffusekit.pose.baseline", "diffusekit.pose.ddhpose")
# the ``evaluate`` block of each method: every key it may hold, with its default
EVALUATE_DEFAULTS: dict[str, dict[str, Any]] = {
    "diffpose": dict(
        split="val",
        boxes="gt",
        min_box_score=0.4,  # MMPose's PoseTrack18 configs: filter_cfg=dict(bbox_score_thr=0.4)
        steps=5,
        samples=1,
        flip=True,
        sampler="ddim",
        batch_size=32,
        draw_threshold=0.2,
        keypoint_score_thr=0.2,  # MMPose PoseTrack18Metric: rescoring and OKS NMS of poses in detected boxes
        nms_thr=0.9,
    ),  # fmt: skip
    "ddhpose": dict(split="test", hypotheses=(1,), steps=(1,), flip=True, batch_size=16),
}


def method_of(cfg: Config) -> str:
    """``diffpose`` or ``ddhpose``: the method whose model ``cfg`` builds (DataError for another model)."""
    kind = cfg.get("model", {}).get("type")
    for method, types in METHOD_MODELS.items():
        if kind in types:
            return method
    raise DataError(f"model type {kind!r} is not a pose model ({', '.join(sum(METHOD_MODELS.values(), ()))})",
                    getattr(cfg, "filename", None))  # fmt: skip


def _sampler_signature(method: str):
    """The function whose keywords ``model.val_sampling`` may set (the sampler that validation calls)."""
    if method == "diffpose":
        from diffusekit.pose.diffpose import DiffPose

        return DiffPose.predict_heatmaps
    from diffusekit.pose.ddhpose import DDHPose

    return DDHPose.sample


def check_config(cfg: Config, method: str) -> Config:
    """``cfg`` when it is a config of ``method`` whose ``evaluate`` block and ``model.val_sampling`` hold only known
    keys; else a DataError naming the config file (and, for a misspelt key, the closest valid one)."""
    found = method_of(cfg)
    path = getattr(cfg, "filename", None)
    if found != method:
        raise DataError(f"a {found} config; use `diffusekit pose {found} ...` (or a {method} config)", path)
    evaluate_block(cfg, method)
    sampling = cfg.model.get("val_sampling")
    if sampling:
        check_kwargs(_sampler_signature(method), sampling, "model.val_sampling", path)
    return cfg


def evaluate_block(cfg: Config, method: str) -> dict[str, Any]:
    """The config's ``evaluate`` block over the method's defaults (unknown keys: DataError)."""
    return config_block(cfg, "evaluate", EVALUATE_DEFAULTS[method])


def load_pose_config(name: str | Path, options: list[str] | None = None, method: str | None = None) -> Config:
    """A shipped config name or file with ``key=value`` options, checked (:func:`check_config`)."""
    cfg = load_config(name, package=PACKAGE, cfg_options=options or [])
    return check_config(cfg, method or method_of(cfg))


def build_pose_model(cfg: Config):
    """The model of ``cfg`` with random weights (a DiffPose backbone loads ``model.backbone.weights`` if set)."""
    return build_model(cfg, imports=MODEL_MODULES)


def load_pose_model(cfg: Config, checkpoint: str | Path, device: str = "auto"):
    """The trained model (EMA weights when present) on ``device`` in eval mode; ``checkpoint`` may be a work dir, or
    for DDHPose an official checkpoint file (``diffusekit.pose.ddhpose_checkpoint``)."""
    cfg = copy.deepcopy(cfg)
    if "backbone" in cfg.model:
        cfg.model.backbone["weights"] = None  # the checkpoint holds the trained backbone
    official = official_ddhpose_model(cfg, checkpoint, device, imports=MODEL_MODULES)
    return official if official is not None else load_model(cfg, checkpoint, device, imports=MODEL_MODULES)


def with_data_root(cfg: Config, data: str | Path, allow_pickle: bool = False) -> Config:
    """A copy of ``cfg`` whose training and validation datasets read ``data`` (``allow_pickle``: DDHPose may read
    the published pickled npz files)."""
    cfg = copy.deepcopy(cfg)
    root = str(Path(data).expanduser().absolute())
    for key in ("train_dataloader", "val_dataloader"):
        if cfg.get(key):
            cfg[key].dataset["data_root"] = root
            if allow_pickle:
                cfg[key].dataset["allow_pickle"] = True
    return cfg


def without_validation(cfg: Config) -> Config:
    """A copy of ``cfg`` without validation during training (as the benchmarks train, for equal budgets)."""
    cfg = copy.deepcopy(cfg)
    for key in ("val_dataloader", "val_evaluator", "val_cfg", "best_metric"):
        cfg.pop(key, None)
    return cfg


def train_pose(
    cfg: Config, data: str | Path, work_dir: str | Path, *, allow_pickle: bool = False, validate: bool = True, **kwargs
) -> Path:
    """Train ``cfg`` on ``data`` through the engine (`train_on_data`'s ``resume``, ``launcher``, ``seed``,
    ``progress``); validation every ``train_cfg.val_interval`` iterations when the config has a ``val_dataloader``
    and ``validate``. Returns the final weights path."""
    from mmengine.registry import DATASETS
    from mmengine.utils import import_modules_from_strings

    from diffusekit.pose.readfirst import read_first

    cfg = with_data_root(cfg, data, allow_pickle)
    if not validate:
        cfg = without_validation(cfg)
    logger.info("training %s on %s into %s", Path(str(cfg.filename)).stem, data, work_dir)
    backbone = cfg.model.get("backbone")
    if isinstance(backbone, dict) and backbone.get("weights"):  # a bad weights file fails before the runner starts
        from diffusekit.pose.backbones import build_backbone

        build_backbone(backbone, cfg.model.get("input_size", (192, 256)))
    with read_first():  # a bad file fails here, before the runner writes into the work dir
        if cfg.get("custom_imports"):
            import_modules_from_strings(**cfg.custom_imports)  # the modules that register the datasets
        for key in ("train_dataloader", "val_dataloader"):
            if cfg.get(key) and isinstance(cfg[key].get("dataset"), dict):
                DATASETS.build(copy.deepcopy(cfg[key].dataset))
        return train_on_data(cfg, data, work_dir, **kwargs)
