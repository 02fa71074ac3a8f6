"""One model per entity, as the command line runs it: configs, training (with ``detector.json``), evaluation
with the oracle and deployable protocols, and the results table.

Every SMD machine (text or pickle layout) and every TSB-AD-M file, or the single PSM / MSL / SMAP / CSV series,
trains into ``work_dir/<entity>/`` (``final_weights.pth``, ``curves.png`` and ``detector.json``: the train scaler
and the deployable vote thresholds calibrated on the held-out tail of the training series). Scoring itself is
:mod:`diffusekit.timeseries.pipeline`.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.config import Config
from mmengine.dist import is_main_process
from torch import nn

from diffusekit.core import commands
from diffusekit.core.engine import load_config, load_weights, train
from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import MinMaxScaling, SeriesSplit
from diffusekit.timeseries.datasets import check_layout, entity_arg, entity_names, read_entity
from diffusekit.timeseries.ensemble import SeriesScores, VoteCalibration, oracle_search
from diffusekit.timeseries.metrics import (
    average_detection_delay,
    f1_point,
    f1_point_adjusted,
    precision_recall_f1,
    range_auc_pr,
    vus_pr,
)
from diffusekit.timeseries.pipeline import Detection, Settings, calibrate, calibrate_tail, detect, score_series
from diffusekit.timeseries.thresholds import deployable_metrics

log = logging.getLogger(__name__)

PACKAGE = "diffusekit.timeseries"
FINAL_WEIGHTS = "final_weights.pth"
DETECTOR_FILE = "detector.json"
METRIC_KEYS = (
    "oracle_pa_f1",
    "f1",
    "pa_f1",
    "precision",
    "recall",
    "vus_pr",
    "r_auc_pr",
    "add",
    "f1_pot",
    "pa_f1_pot",
    "f1_spot",
    "pa_f1_spot",
)
# POT/SPOT metrics of the decision score kept in Evaluation.metrics (diffusekit.timeseries.thresholds)
POT_KEYS = tuple(f"{m}_{kind}" for kind in ("pot", "spot") for m in ("f1", "pa_f1", "precision", "recall", "add"))
POT_KEYS += ("threshold_pot", "pot_gamma", "pot_peaks", "pot_fallback", "threshold_spot_final")
MODEL_MODULES = ("diffusekit.timeseries.imdiffusion", "diffusekit.timeseries.models")


# ------------------------------------------------------------------------------------------------ configs
def load_timeseries_config(config: str | Path, options: list[str] | None = None) -> Config:
    """A shipped config name or a file, with ``--cfg-options``; the LR milestones follow ``train_cfg.max_iters``
    (75% and 90%) unless the options set the scheduler themselves. The ``detect`` block is checked here."""
    options = list(options or [])
    cfg = load_config(config, package=PACKAGE, cfg_options=options)
    for key in ("model", "train_dataloader"):
        if key not in cfg:
            raise DataError(f"the config has no {key!r}; is it an ImDiffusion config?", cfg.filename)
    Settings.from_cfg(cfg)  # a misspelt detect key fails before any work
    scheduler = cfg.get("param_scheduler")
    if isinstance(scheduler, dict) and scheduler.get("type") == "MultiStepLR":
        if not any(option.startswith("param_scheduler") for option in options):
            max_iters = cfg.get("train_cfg", {}).get("max_iters")
            if isinstance(max_iters, bool) or not isinstance(max_iters, int) or max_iters < 1:
                raise DataError(f"train_cfg.max_iters must be an integer >= 1, got {max_iters!r}", cfg.filename)
            scheduler["milestones"] = [int(0.75 * max_iters), int(0.9 * max_iters)]
    return cfg


def check_output_dir(path: str | Path) -> Path:
    """``path`` when it can be an output folder (absent or a folder); a DataError when it names a file. Run before
    the work so that a bad ``--out`` fails at once; :func:`diffusekit.core.commands.output_dir` creates it later."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError("output folder names an existing file", path)
    return path


def config_layout(cfg: Config, override: str | None = None) -> str:
    layout = override or cfg.train_dataloader.dataset.get("layout", "smd")
    check_layout(layout)
    return layout


def select_entities(data: str | Path, layout: str, machines: str = "all") -> list[str]:
    """``all`` or a comma-separated list, checked against what the data folder holds."""
    if not Path(data).expanduser().exists():
        raise DataError("data folder not found", data)
    names = entity_names(data, layout)
    if machines in ("", "all"):
        return names
    wanted = [name.strip() for name in machines.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        listed = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
        raise DataError(f"unknown machine(s) {', '.join(unknown)} in {data}; found {listed}")
    return wanted


def entity_config(cfg: Config, data: str | Path, layout: str, name: str, num_features: int) -> Config:
    """``cfg`` for one entity: its data in the training (and validation) dataset, its feature count in the model.
    The validation dataset takes the training dataset's window and ``val_fraction``: one validation split."""
    cfg = copy.deepcopy(cfg)
    dataset = cfg.train_dataloader.dataset
    dataset.update(data_root=str(Path(data).expanduser().absolute()), layout=layout)
    dataset["machine"] = entity_arg(layout, name)
    if cfg.get("val_dataloader"):
        shared = ("data_root", "layout", "machine", "window", "val_fraction")
        cfg.val_dataloader.dataset.update({key: dataset[key] for key in shared if key in dataset})
    cfg.model.denoiser["num_features"] = int(num_features)
    return cfg


def build_model(cfg: Config, num_features: int) -> nn.Module:
    """The ImDiffusion model of ``cfg`` for ``num_features`` features (random weights); a value the model refuses
    (``model.num_steps=0``, a negative size) is a DataError naming the config file."""
    cfg = copy.deepcopy(cfg)
    cfg.model.denoiser["num_features"] = int(num_features)
    try:
        return commands.build_model(cfg, imports=MODEL_MODULES)
    except (ValueError, ZeroDivisionError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"the model config does not build: {error}", cfg.filename) from None


def check_finite_weights(model: nn.Module, path: str | Path) -> None:
    """A DataError naming the first tensor of ``model`` that holds NaN or infinity (a diverged run's weights)."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise DataError(
                f"the checkpoint holds NaN or infinite values (first: {name}): a diverged run or a damaged file", path
            )


def load_entity_model(cfg: Config, weights: str | Path, num_features: int, device: str = "auto") -> nn.Module:
    """``cfg``'s model for ``num_features`` features with the weights of ``weights``, on ``device``, in eval mode.
    Weights that hold NaN / infinity are a DataError naming the file."""
    model = load_weights(build_model(cfg, num_features), weights)
    check_finite_weights(model, weights)
    return model.to(commands.resolve_device(device)).eval()


def detector_record(
    name: str, layout: str, split: SeriesSplit, calibration: VoteCalibration, n_val: int
) -> dict[str, Any]:
    """What ``predict`` needs besides the weights: the train scaler, the feature names and the calibration."""
    scaler = split.scaler or MinMaxScaling.fit(split.train)
    return {
        "name": name,
        "layout": layout,
        "feature_names": split.feature_names,
        "data_min": scaler.data_min.tolist(),
        "data_range": scaler.data_range.tolist(),
        "clip": bool(scaler.clip),
        "thresholds": [float(t) if np.isfinite(t) else None for t in calibration.thresholds],
        "xi": int(calibration.xi),
        "p0": float(calibration.p0),
        "steps": list(calibration.steps),
        "validation_length": int(n_val),
    }


# ------------------------------------------------------------------------------------------------ train
def train_entities(
    cfg: Config,
    data: str | Path,
    work_dir: str | Path,
    machines: str = "all",
    layout: str | None = None,
    *,
    resume: bool = False,
    launcher: str = "none",
    seed: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Train one model per entity into ``work_dir/<entity>/``, calibrate it on ``device`` and write its
    ``detector.json``; returns the entity folders."""
    layout = config_layout(cfg, layout)
    settings = Settings.from_cfg(cfg)
    work_dir = Path(work_dir).expanduser()
    if work_dir.exists() and not work_dir.is_dir():
        raise DataError("the work dir names an existing file", work_dir)
    names, dirs = select_entities(data, layout, machines), []
    for name in names[1:]:  # every entity's files are checked before the first model trains (the first: below)
        read_entity(data, layout, entity_arg(layout, name))
    for name in names:
        split = read_entity(data, layout, entity_arg(layout, name))
        entity_dir = work_dir / name
        if entity_dir.exists() and not entity_dir.is_dir():
            raise DataError("the entity's work dir names an existing file", entity_dir)
        log.info("%s: %d features, %d train steps", name, split.num_features, len(split.train))
        start = time.perf_counter()
        entity_cfg = entity_config(cfg, data, layout, name, split.num_features)
        build_model(entity_cfg, split.num_features)  # a bad model config fails here, before the work dir is made
        model = train(entity_cfg, work_dir=entity_dir, resume=resume, launcher=launcher, seed=seed, progress=progress)
        if is_main_process():
            load_weights(model, entity_dir / FINAL_WEIGHTS)
            model.to(commands.resolve_device(device))
            calibration, n_val = calibrate(model, split.train, settings, split.train_observed, progress=progress)
            record = detector_record(name, layout, split, calibration, n_val)
            record["train_seconds"] = round(time.perf_counter() - start, 2)
            (entity_dir / DETECTOR_FILE).write_text(json.dumps(record, indent=1))
        dirs.append(entity_dir)
    return dirs


# ------------------------------------------------------------------------------------------------ evaluate
def resolve_checkpoint(checkpoint: str | Path, name: str) -> Path:
    """A weights file as given; in a folder: ``<folder>/<name>/final_weights.pth``, else the folder's own."""
    path = Path(checkpoint).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError("checkpoint or work dir not found", path)
    for candidate in (path / name / FINAL_WEIGHTS, path / FINAL_WEIGHTS):
        if candidate.is_file():
            return candidate
    raise DataError(f"no {FINAL_WEIGHTS} for {name!r} (looked in {name}/ and the folder itself)", path)


@dataclass
class Evaluation:
    """Scores, decisions and metrics of one entity."""

    name: str
    split: SeriesSplit
    scores: SeriesScores
    detection: Detection
    calibration: VoteCalibration
    metrics: dict[str, float]


def _safe(fn, *args) -> float:
    try:
        return float(fn(*args))
    except ValueError:  # e.g. no anomalous segment: undefined
        return float("nan")


def evaluate_entity(model: nn.Module, split: SeriesSplit, settings: Settings, progress: bool = True) -> Evaluation:
    """Deployable and oracle metrics of one entity (see docs/timeseries.md for the protocols).

    Besides the vote calibration (``f1``, ``pa_f1``, ...), the decision score is thresholded by POT and SPOT
    (:mod:`diffusekit.timeseries.thresholds`): POT fitted on the decision scores of the held-out train tail (the
    scores that calibrate the votes), a fixed threshold (``*_pot``); SPOT initialised on them and streamed over the
    test scores (``*_spot``), with the risk ``q`` and level of ``detect.pot_q`` / ``detect.pot_level``."""
    labels = split.test_labels
    if labels is None:
        raise DataError(f"{split.name}: the test part has no labels; use `predict` for unlabelled data")
    start = time.perf_counter()
    calibration, n_val, tail = calibrate_tail(model, split.train, settings, split.train_observed, progress)
    scores = score_series(model, split.test, settings, split.test_observed, progress=progress)
    found = detect(scores, calibration)
    pot = deployable_metrics(
        detect(tail, calibration).decision,
        found.decision,
        labels,
        q=settings.pot_q,
        level=settings.pot_level,
        kinds=("pot", "spot"),
    )
    oracle = oracle_search(scores.step_scores, scores.step_errors, labels, settings.steps, settings.oracle_p0)
    prf = precision_recall_f1(labels, found.predicted)
    metrics = {
        "oracle_pa_f1": oracle.f1,
        "oracle_p0": oracle.p0,
        "oracle_xi": oracle.xi,
        "f1": f1_point(labels, found.predicted),
        "pa_f1": f1_point_adjusted(labels, found.predicted),
        "precision": prf.precision,
        "recall": prf.recall,
        "vus_pr": _safe(vus_pr, labels, found.decision, settings.metric_window),
        "r_auc_pr": _safe(range_auc_pr, labels, found.decision, settings.metric_window),
        "add": _safe(average_detection_delay, labels, found.predicted),
        **{key: pot[key] for key in POT_KEYS},
        "xi": calibration.xi,
        "test_steps": len(split.test),
        "validation_steps": n_val,
        "seconds": round(time.perf_counter() - start, 2),
    }
    metrics = {key: float(v) if isinstance(v, (float, np.floating)) else v for key, v in metrics.items()}
    return Evaluation(split.name, split, scores, found, calibration, metrics)


def evaluate_entities(
    cfg: Config,
    data: str | Path,
    checkpoint: str | Path,
    machines: str = "all",
    layout: str | None = None,
    device: str = "auto",
    progress: bool = True,
) -> list[Evaluation]:
    """Load each entity's weights onto ``device`` and evaluate it."""
    layout = config_layout(cfg, layout)
    settings = Settings.from_cfg(cfg)
    results = []
    for name in select_entities(data, layout, machines):
        weights = resolve_checkpoint(checkpoint, name)
        split = read_entity(data, layout, entity_arg(layout, name))
        if split.test_labels is None:
            raise DataError(f"{split.name}: the test part has no labels; use `predict` for unlabelled data", data)
        model = load_entity_model(cfg, weights, split.num_features, device)
        results.append(evaluate_entity(model, split, settings, progress))
        log.info("%s evaluated in %.1f s", name, results[-1].metrics["seconds"])
    return results


def mean_metrics(results: list[Evaluation]) -> dict[str, float]:
    return {key: float(np.nanmean([r.metrics[key] for r in results])) for key in METRIC_KEYS}


def format_table(results: list[Evaluation], settings: Settings) -> str:
    """The per-entity table (and the mean of several) with the footnotes on the protocols."""
    header = f"{'entity':<16} {'oracle PA-F1*':>13} {'F1':>7} {'PA-F1':>7} {'VUS-PR':>7} {'R-AUC-PR':>8} {'ADD':>7}"
    header += f" {'F1 POT':>7} {'PA-F1 POT':>9} {'F1 SPOT':>7} {'PA-F1 SPOT':>10}"
    rows = [header, "-" * len(header)]

    def line(name: str, m: dict[str, float]) -> str:
        return (
            f"{name:<16} {m['oracle_pa_f1']:>13.4f} {m['f1']:>7.4f} {m['pa_f1']:>7.4f} {m['vus_pr']:>7.4f} "
            f"{m['r_auc_pr']:>8.4f} {m['add']:>7.1f} {m['f1_pot']:>7.4f} {m['pa_f1_pot']:>9.4f} "
            f"{m['f1_spot']:>7.4f} {m['pa_f1_spot']:>10.4f}"
        )

    rows += [line(r.name, r.metrics) for r in results]
    if len(results) > 1:
        rows += ["-" * len(header), line("mean", mean_metrics(results))]
    rows += [
        "* oracle protocol, test labels used: per-step thresholds and xi chosen on the test set for the best PA-F1 "
        "(the released protocol, for comparison with published numbers only).",
        f"F1, PA-F1, ADD: deployable, thresholds from validation scores of the train tail (p0={settings.p0}, "
        "majority vote), no test labels. VUS-PR (windows 0.."
        f"{settings.metric_window}) and R-AUC-PR (window {settings.metric_window}) rank the decision score.",
        f"POT / SPOT: deployable, the decision score above an extreme-value threshold (risk q={settings.pot_q:g}, "
        f"level {settings.pot_level:g}) fitted on the same train-tail scores; POT fixed, SPOT updated along the test "
        "series.",
    ]
    return "\n".join(rows)


def plot_evaluation(result: Evaluation, path: str | Path, title: str | None = None) -> Path:
    """The detection figure of one evaluated entity."""
    from diffusekit.timeseries.visualize import plot_detection

    found = result.detection
    return plot_detection(
        path,
        result.split.test,
        found.decision,
        found.votes,
        found.predicted,
        result.scores.feature_scores,
        labels=result.split.test_labels,
        feature_names=result.split.feature_names,
        threshold=result.calibration.xi + 1,
        xi=result.calibration.xi,
        title=title or result.name,
    )
