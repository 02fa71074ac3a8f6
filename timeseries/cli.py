"""``diffusekit timeseries``: synth, train, evaluate, predict and demo for ImDiffusion anomaly detection.

One model per entity: every SMD machine, or the single PSM / MSL / SMAP / CSV series, trains into
``work-dir/<entity>/`` (``final_weights.pth`` and ``detector.json``: the train scaler and the deployable vote
thresholds calibrated on the held-out tail of the training series). Bad user input raises ``DataError``
(exit code 2, one line on stderr).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.registry import MODELS
from torch import nn

from diffusekit.core.checkpoint import weights_path
from diffusekit.core.cli import DemoResult, Domain, add_demo_command, add_json_flag, add_train_flags, json_ready
from diffusekit.core.engine import load_config, load_weights, train
from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import MinMaxScaling, SeriesSplit, WindowDataset, fill_missing
from diffusekit.timeseries.datasets import LAYOUTS, csv_columns, entity_names, read_entity, validation_length
from diffusekit.timeseries.ensemble import (
    DEFAULT_STEPS,
    SeriesScores,
    VoteCalibration,
    calibrate_votes,
    decision_scores,
    ensemble_votes,
    oracle_search,
    score_windows,
)
from diffusekit.timeseries.metrics import (
    average_detection_delay,
    f1_point,
    f1_point_adjusted,
    precision_recall_f1,
    range_auc_pr,
    vus_pr,
)

PACKAGE = "diffusekit.timeseries"
FINAL_WEIGHTS = "final_weights.pth"
DETECTOR_FILE = "detector.json"
METRIC_KEYS = ("oracle_pa_f1", "f1", "pa_f1", "precision", "recall", "vus_pr", "r_auc_pr", "add")
DEFAULT_DETECT = dict(reduce="max", steps=list(DEFAULT_STEPS), p0=0.02, xi=None, oracle_p0=[0.02])


# ------------------------------------------------------------------------------------------------ config helpers
def load_timeseries_config(config: str | Path, options: list[str] | None = None) -> Config:
    """A shipped config name or a file, with ``--cfg-options``; the LR milestones follow ``train_cfg.max_iters``
    (75% and 90%) unless the options set the scheduler themselves."""
    options = list(options or [])
    cfg = load_config(config, package=PACKAGE, cfg_options=options)
    for key in ("model", "train_dataloader"):
        if key not in cfg:
            raise DataError(f"the config has no {key!r}; is it an ImDiffusion config?", config)
    scheduler = cfg.get("param_scheduler")
    if isinstance(scheduler, dict) and scheduler.get("type") == "MultiStepLR":
        if not any(option.startswith("param_scheduler") for option in options):
            max_iters = int(cfg.train_cfg.max_iters)
            scheduler["milestones"] = [int(0.75 * max_iters), int(0.9 * max_iters)]
    return cfg


@dataclass
class Settings:
    """What scoring needs from a config."""

    window: int
    test_stride: int
    val_fraction: float
    reduce: str
    steps: tuple[int, ...]
    p0: float
    xi: int | None
    oracle_p0: list[float]
    metric_window: int

    @classmethod
    def from_cfg(cls, cfg: Config) -> Settings:
        dataset = cfg.train_dataloader.dataset
        detect = {**DEFAULT_DETECT, **dict(cfg.get("detect") or {})}
        window = int(dataset.get("window", 100))
        return cls(
            window=window,
            test_stride=int(detect.get("test_stride") or max(1, window // 2)),
            val_fraction=float(dataset.get("val_fraction", 0.1)),
            reduce=str(detect["reduce"]),
            steps=tuple(int(s) for s in detect["steps"]),
            p0=float(detect["p0"]),
            xi=None if detect["xi"] is None else int(detect["xi"]),
            oracle_p0=[float(p) for p in detect["oracle_p0"]],
            metric_window=int(detect.get("metric_window") or window),
        )


def _layout(cfg: Config, override: str | None) -> str:
    layout = override or cfg.train_dataloader.dataset.get("layout", "smd")
    if layout not in LAYOUTS:
        raise DataError(f"unknown data layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
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


def _entity_cfg(cfg: Config, data: str | Path, layout: str, name: str, num_features: int) -> Config:
    cfg = copy.deepcopy(cfg)
    dataset = cfg.train_dataloader.dataset
    dataset.update(data_root=str(Path(data).expanduser().absolute()), layout=layout)
    dataset["machine"] = name if layout == "smd" else None
    cfg.model.denoiser["num_features"] = int(num_features)
    return cfg


def build_model(cfg: Config, num_features: int) -> nn.Module:
    """The ImDiffusion model of ``cfg`` for ``num_features`` features (random weights)."""
    import diffusekit.timeseries.imdiffusion  # noqa: F401  (registers ImDiffusion)
    import diffusekit.timeseries.models  # noqa: F401

    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.denoiser["num_features"] = int(num_features)
    return MODELS.build(model_cfg)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


# ------------------------------------------------------------------------------------------------ scoring
def score_series(
    model: nn.Module,
    values: np.ndarray,
    settings: Settings,
    observed: np.ndarray | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> SeriesScores:
    """Impute a scaled (T, K) series in windows of ``window`` every ``test_stride`` (plus a tail window), stitch
    and score it (only the sampler's last ``max(steps) + 1`` states are kept)."""
    data = WindowDataset(values, settings.window, settings.test_stride, observed=observed, tail=True)
    keep = max(settings.steps) + 1
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    imputed, inputs = [], []
    for lo in range(0, len(data), batch_size):
        items = [data[i] for i in range(lo, min(lo + batch_size, len(data)))]
        x = torch.stack([item["values"] for item in items]).to(device)
        mask = torch.stack([item["observed_mask"] for item in items]).to(device)
        out = model(x, mode="predict", observed_mask=mask, generator=generator)
        if out.imputed.shape[1] < keep:
            raise DataError(
                f"voting steps {settings.steps} need {keep} sampler steps; the model has {out.imputed.shape[1]}"
            )
        imputed.append(out.imputed[:, -keep:].cpu().numpy())
        inputs.append(x.cpu().numpy())
    return score_windows(np.concatenate(imputed), np.concatenate(inputs), data.starts, len(values), settings.reduce)


def calibrate(model: nn.Module, split: SeriesSplit, settings: Settings) -> tuple[VoteCalibration, int]:
    """Deployable vote thresholds from the held-out tail of the training series (no test labels)."""
    n_val = validation_length(len(split.train), settings.val_fraction, settings.window)
    part = slice(len(split.train) - n_val, None) if n_val else slice(None)
    observed = None if split.train_observed is None else split.train_observed[part]
    val = score_series(model, split.train[part], settings, observed)
    return calibrate_votes(val.step_scores, val.step_errors, settings.p0, settings.steps, settings.xi), n_val


def detector_record(
    name: str, layout: str, split: SeriesSplit, settings: Settings, calibration: VoteCalibration, n_val: int
) -> dict[str, Any]:
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


def _thresholds(record: dict[str, Any]) -> np.ndarray:
    return np.array([np.inf if t is None else t for t in record["thresholds"]], dtype=np.float64)


# ------------------------------------------------------------------------------------------------ train
def train_entities(
    cfg: Config,
    data: str | Path,
    work_dir: str | Path,
    machines: str = "all",
    layout: str | None = None,
    resume: bool = False,
    launcher: str = "none",
    seed: int | None = None,
    progress: bool = True,
) -> list[Path]:
    """Train one model per entity into ``work_dir/<entity>/`` and write its ``detector.json``; returns the dirs."""
    layout = _layout(cfg, layout)
    settings = Settings.from_cfg(cfg)
    dirs = []
    for name in select_entities(data, layout, machines):
        split = read_entity(data, layout, name if layout == "smd" else None)
        entity_cfg = _entity_cfg(cfg, data, layout, name, split.num_features)
        entity_dir = Path(work_dir) / name
        if is_main_process():
            print(f"== {name}: {split.num_features} features, {len(split.train)} train steps", flush=True)
        start = time.perf_counter()
        model = train(entity_cfg, work_dir=entity_dir, resume=resume, launcher=launcher, seed=seed, progress=progress)
        if is_main_process():
            load_weights(model, entity_dir / FINAL_WEIGHTS)
            model.to(_device())
            calibration, n_val = calibrate(model, split, settings)
            record = detector_record(name, layout, split, settings, calibration, n_val)
            record["train_seconds"] = round(time.perf_counter() - start, 2)
            (entity_dir / DETECTOR_FILE).write_text(json.dumps(record, indent=1))
            print(f"   weights: {entity_dir / FINAL_WEIGHTS}", flush=True)
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
    decision: np.ndarray
    votes: np.ndarray
    predicted: np.ndarray
    calibration: VoteCalibration
    metrics: dict[str, float]


def _safe(fn, *args, **kwargs) -> float:
    try:
        return float(fn(*args, **kwargs))
    except ValueError:  # e.g. no anomalous segment: undefined
        return float("nan")


def evaluate_entity(model: nn.Module, split: SeriesSplit, settings: Settings) -> Evaluation:
    """Deployable and oracle metrics of one entity (see docs/timeseries.md for the protocols)."""
    labels = split.test_labels
    if labels is None:
        raise DataError(f"{split.name}: the test part has no labels; use `predict` for unlabelled data")
    start = time.perf_counter()
    calibration, n_val = calibrate(model, split, settings)
    scores = score_series(model, split.test, settings, split.test_observed)
    decision = decision_scores(scores.step_scores, calibration.thresholds, settings.steps)
    votes = ensemble_votes(scores.step_scores, calibration.thresholds, settings.steps)
    predicted = (votes > calibration.xi).astype(np.int64)
    oracle = oracle_search(scores.step_scores, scores.step_errors, labels, settings.steps, settings.oracle_p0)
    prf = precision_recall_f1(labels, predicted)
    metrics = {
        "oracle_pa_f1": oracle.f1,
        "oracle_p0": oracle.p0,
        "oracle_xi": oracle.xi,
        "f1": f1_point(labels, predicted),
        "pa_f1": f1_point_adjusted(labels, predicted),
        "precision": float(prf.precision),
        "recall": float(prf.recall),
        "vus_pr": _safe(vus_pr, labels, decision, settings.metric_window),
        "r_auc_pr": _safe(range_auc_pr, labels, decision, settings.metric_window),
        "add": _safe(average_detection_delay, labels, predicted),
        "xi": calibration.xi,
        "test_steps": len(split.test),
        "validation_steps": n_val,
        "seconds": round(time.perf_counter() - start, 2),
    }
    metrics = {
        key: float(value) if isinstance(value, (float, np.floating)) else value for key, value in metrics.items()
    }
    return Evaluation(split.name, split, scores, decision, votes, predicted, calibration, metrics)


def evaluate_entities(
    cfg: Config, data: str | Path, checkpoint: str | Path, machines: str = "all", layout: str | None = None
) -> list[Evaluation]:
    """Load each entity's weights and evaluate it."""
    layout = _layout(cfg, layout)
    settings = Settings.from_cfg(cfg)
    results = []
    for name in select_entities(data, layout, machines):
        weights = resolve_checkpoint(checkpoint, name)
        split = read_entity(data, layout, name if layout == "smd" else None)
        model = load_weights(build_model(cfg, split.num_features), weights).to(_device())
        results.append(evaluate_entity(model, split, settings))
    return results


def mean_metrics(results: list[Evaluation]) -> dict[str, float]:
    return {key: float(np.nanmean([r.metrics[key] for r in results])) for key in METRIC_KEYS}


def format_table(results: list[Evaluation], settings: Settings) -> str:
    header = f"{'entity':<16} {'oracle PA-F1*':>13} {'F1':>7} {'PA-F1':>7} {'VUS-PR':>7} {'R-AUC-PR':>8} {'ADD':>7}"
    rows = [header, "-" * len(header)]

    def line(name: str, m: dict[str, float]) -> str:
        return (
            f"{name:<16} {m['oracle_pa_f1']:>13.4f} {m['f1']:>7.4f} {m['pa_f1']:>7.4f} {m['vus_pr']:>7.4f} "
            f"{m['r_auc_pr']:>8.4f} {m['add']:>7.1f}"
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
    ]
    return "\n".join(rows)


# ------------------------------------------------------------------------------------------------ predict
def _detector_for(checkpoint: str | Path) -> tuple[Path, dict[str, Any]]:
    weights = weights_path(checkpoint)
    record_path = weights.parent / DETECTOR_FILE
    if not record_path.is_file():
        raise DataError(f"no {DETECTOR_FILE} next to the checkpoint (train writes it: scaler and thresholds)", weights)
    return weights, json.loads(record_path.read_text())


def _read_input(path: Path, record: dict[str, Any]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, Any]:
    """Raw (T, K) values, observed mask, timestamps and labels (or None) of a CSV or a data folder."""
    from diffusekit.timeseries.tabular import _load_frame

    names = record["feature_names"]
    if path.is_dir():
        split = read_entity(path, record["layout"], record["name"] if record["layout"] == "smd" else None)
        if split.num_features != len(names):
            raise DataError(f"{split.num_features} features but the model was trained on {len(names)}", path)
        stamps = split.test_timestamps if split.test_timestamps is not None else np.arange(len(split.test))
        return split.raw_test, split.test_observed, stamps, split.test_labels
    if not path.is_file():
        raise DataError("input not found (a CSV of features or a data folder)", path)
    stamp, label = csv_columns(path)
    frame = _load_frame(path, None, stamp, label)
    columns = names if all(name in frame.columns for name in names) else None
    if columns is not None and columns != frame.columns:
        frame = _load_frame(path, columns, stamp, label)
    if frame.features.shape[1] != len(names):
        raise DataError(f"{frame.features.shape[1]} feature columns but the model was trained on {len(names)}", path, 1)
    missing = np.isnan(frame.features)
    values = fill_missing(frame.features, "ffill_bfill", path, frame.columns)
    stamps = frame.timestamps if frame.timestamps is not None else np.arange(len(values))
    return values, (~missing if missing.any() else None), stamps, frame.labels


def predict_series(
    cfg: Config, checkpoint: str | Path, input_path: str | Path, out: str | Path, top_k: int = 3
) -> dict[str, Any]:
    """Score a series with a trained detector; write scores.csv, intervals.csv and detection.png into ``out``."""
    from diffusekit.timeseries.visualize import plot_detection

    weights, record = _detector_for(checkpoint)
    settings = Settings.from_cfg(cfg)
    raw, observed, stamps, labels = _read_input(Path(input_path).expanduser(), record)
    scaler = MinMaxScaling(np.asarray(record["data_min"]), np.asarray(record["data_range"]), record["clip"])
    values = scaler.transform(raw)
    names = record["feature_names"]
    model = load_weights(build_model(cfg, len(names)), weights).to(_device())
    settings.steps = tuple(record["steps"])
    scores = score_series(model, values, settings, observed)
    thresholds = _thresholds(record)
    decision = decision_scores(scores.step_scores, thresholds, settings.steps)
    votes = ensemble_votes(scores.step_scores, thresholds, settings.steps)
    predicted = (votes > record["xi"]).astype(np.int64)
    top = np.argsort(-scores.feature_scores, axis=0, kind="stable")[:top_k]  # (top_k, T)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "scores.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["timestamp", "score", "label", "votes", "top_features"])
        for t in range(len(values)):
            writer.writerow(
                [stamps[t], f"{decision[t]:.6g}", predicted[t], votes[t], ";".join(names[k] for k in top[:, t])]
            )
    edges = np.flatnonzero(np.diff(np.concatenate(([0], predicted, [0]))))
    intervals = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
    with (out / "intervals.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["start", "end", "start_timestamp", "end_timestamp", "max_score", "top_features"])
        for start, end in intervals:
            per_feature = scores.feature_scores[:, start:end].mean(axis=1)
            best = np.argsort(-per_feature, kind="stable")[:top_k]
            row = [start, end, stamps[start], stamps[end - 1], f"{decision[start:end].max():.6g}"]
            writer.writerow([*row, ";".join(names[k] for k in best)])
    figure = plot_detection(
        out / "detection.png",
        values,
        decision,
        votes,
        predicted,
        scores.feature_scores,
        labels=labels,
        feature_names=names,
        threshold=record["xi"] + 1,
        xi=record["xi"],
        title=f"{record['name']}: {Path(input_path).name}",
    )
    return {"timestamps": len(values), "intervals": len(intervals), "figure": str(figure)}


# ------------------------------------------------------------------------------------------------ commands
def cmd_synth(args: argparse.Namespace) -> int:
    from diffusekit.timeseries.synthetic import write_synthetic

    dataset = write_synthetic(args.out, args.layout, args.size, args.seed)
    print(
        f"wrote synthetic {args.layout} data ({args.size}, seed {args.seed}) to {dataset.root}: "
        f"{len(dataset.anomalies)} entities"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    cfg = load_timeseries_config(args.config, args.cfg_options)
    dirs = train_entities(
        cfg, args.data, args.work_dir, args.machines, args.layout, args.resume, args.launcher, args.seed
    )
    if is_main_process():
        print(f"trained {len(dirs)} model(s) into {args.work_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from diffusekit.timeseries.visualize import plot_detection

    cfg = load_timeseries_config(args.config, args.cfg_options)
    settings = Settings.from_cfg(cfg)
    start = time.perf_counter()
    results = evaluate_entities(cfg, args.data, args.checkpoint, args.machines, args.layout)
    print(format_table(results, settings))
    summary: dict[str, Any] = dict(mean_metrics(results))
    summary.update(
        per_entity={r.name: r.metrics for r in results},
        num_steps=int(cfg.model.get("num_steps", 50)),
        voting_steps=list(settings.steps),
        window=settings.window,
        test_stride=settings.test_stride,
        metric_window=settings.metric_window,
        seconds=round(time.perf_counter() - start, 2),
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(json_ready(summary), indent=1))
        for r in results:
            plot_detection(
                out / f"{r.name}.png",
                r.split.test,
                r.decision,
                r.votes,
                r.predicted,
                r.scores.feature_scores,
                labels=r.split.test_labels,
                feature_names=r.split.feature_names,
                threshold=r.calibration.xi + 1,
                xi=r.calibration.xi,
                title=r.name,
            )
        print(f"metrics and figures: {out}")
    if args.json:
        print(json.dumps(json_ready(summary), sort_keys=True))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    cfg = load_timeseries_config(args.config, args.cfg_options)
    info = predict_series(cfg, args.checkpoint, args.input, args.out)
    print(
        f"scored {info['timestamps']} timestamps, {info['intervals']} interval(s): {args.out}/scores.csv, intervals.csv"
    )
    return 0


def run_demo(out_dir: Path, quick: bool = False) -> DemoResult:
    """Synthetic SMD-layout data, the tiny config trained briefly on one machine, evaluation and a figure."""
    from diffusekit.timeseries.synthetic import write_synthetic
    from diffusekit.timeseries.visualize import plot_detection

    out_dir = Path(out_dir)
    data = out_dir / "data"
    write_synthetic(data, "smd", "small", seed=0)
    machine = "machine-1-1"
    iters = 150 if quick else 400
    options = [f"train_cfg.max_iters={iters}"] + (["detect.test_stride=32"] if quick else [])
    cfg = load_timeseries_config("imdiffusion_tiny", options)
    settings = Settings.from_cfg(cfg)
    threads = torch.get_num_threads()
    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # the tiny model's tensors are small: extra CPU threads only add overhead
    try:
        start = time.perf_counter()
        train_entities(cfg, data, out_dir / "work_dir", machine, seed=0)
        train_seconds = time.perf_counter() - start
        (result,) = evaluate_entities(cfg, data, out_dir / "work_dir", machine)
    finally:
        torch.set_num_threads(threads)
    figure = plot_detection(
        out_dir / "detection.png",
        result.split.test,
        result.decision,
        result.votes,
        result.predicted,
        result.scores.feature_scores,
        labels=result.split.test_labels,
        feature_names=result.split.feature_names,
        threshold=result.calibration.xi + 1,
        xi=result.calibration.xi,
        title=f"{machine} (synthetic)",
    )
    m = result.metrics
    table = [
        "| metric | value |",
        "|---|---:|",
        f"| oracle PA-F1 (oracle protocol, test labels used) | {m['oracle_pa_f1']:.4f} |",
        f"| F1 (deployable threshold) | {m['f1']:.4f} |",
        f"| PA-F1 (deployable threshold) | {m['pa_f1']:.4f} |",
        f"| VUS-PR (windows 0..{settings.metric_window}) | {m['vus_pr']:.4f} |",
        f"| R-AUC-PR (window {settings.metric_window}) | {m['r_auc_pr']:.4f} |",
        f"| ADD (steps) | {m['add']:.1f} |",
    ]
    markdown = "\n".join(
        [
            f"ImDiffusion (config `imdiffusion_tiny`, {iters} iterations, {train_seconds:.1f} s to train and "
            f"calibrate) on synthetic SMD-layout data ({machine}: 38 features, {len(result.split.train)} train and "
            f"{len(result.split.test)} test steps with injected spikes, level shifts, contextual, collective and "
            "correlation-break anomalies). Deployable metrics use thresholds calibrated on the held-out train tail; "
            "the oracle row picks its thresholds on the test labels.",
            "",
            *table,
            "",
            f"![detection]({figure.relative_to(out_dir.parent).as_posix()})",
        ]
    )
    metrics = {key: round(float(m[key]), 5) for key in METRIC_KEYS}
    metrics.update(train_seconds=round(train_seconds, 2), iterations=iters, eval_seconds=m["seconds"])
    return DemoResult("timeseries", markdown, metrics)


def _common(parser: argparse.ArgumentParser, data: bool = True) -> None:
    parser.add_argument(
        "--config", required=True, help="a config file or a shipped name: imdiffusion_smd, _psm, _msl, _smap, _tiny"
    )
    if data:
        parser.add_argument("--data", required=True, help="the data folder (or, for --layout csv, a CSV file)")
        parser.add_argument(
            "--machines", default="all", help="SMD machines to use: all (default) or a comma-separated list"
        )
        parser.add_argument("--layout", choices=LAYOUTS, help="data layout (default: the config's)")
    parser.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys")


def add_commands(parser: argparse.ArgumentParser) -> None:
    """The ``timeseries`` subcommands."""
    sub = parser.add_subparsers(dest="timeseries_command", metavar="COMMAND")
    synth = sub.add_parser(
        "synth",
        help="write a synthetic anomaly-detection dataset in an official layout",
        description="Writes correlated seasonal series with injected anomalies (spike, level shift, contextual, "
        "collective, correlation break) in the SMD, PSM or MSL/SMAP layout, read back by the real readers.",
    )
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument("--layout", choices=("smd", "psm", "msl", "smap"), default="smd", help="layout (default smd)")
    synth.add_argument("--size", choices=("small", "medium"), default="small", help="small: 3x2000, medium: 8x12000")
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.set_defaults(func=cmd_synth)

    tr = sub.add_parser(
        "train",
        help="train ImDiffusion, one model per entity (SMD machine)",
        description="Trains through the mmengine engine into WORK_DIR/<entity>/ (checkpoints, final_weights.pth) "
        "and writes detector.json there: the train scaler and the vote thresholds calibrated on the held-out "
        "tail of the training series, which predict uses.",
    )
    _common(tr)
    add_train_flags(
        tr, "output folder; one subfolder per entity", "continue from the newest checkpoint in each subfolder"
    )
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "evaluate",
        help="score the test series; oracle and deployable metrics per entity and their mean",
        description="Imputes the test series (stride window//2 plus a tail window), votes over the diffusion "
        "steps and reports: oracle PA-F1 (oracle protocol, test labels used), deployable F1 and PA-F1 "
        "(thresholds from validation scores of the train tail, no test labels), VUS-PR, R-AUC-PR and ADD.",
    )
    _common(ev)
    ev.add_argument("--checkpoint", required=True, help="a weights file, or a train work dir (<dir>/<entity>/...)")
    ev.add_argument("--out", help="also write metrics.json and one figure per entity here")
    add_json_flag(ev)
    ev.set_defaults(func=cmd_evaluate)

    pr = sub.add_parser(
        "predict",
        help="detect anomalies in a CSV or a data folder with a trained model",
        description="Writes OUT/scores.csv (timestamp, score, label, votes, top features), OUT/intervals.csv "
        "and OUT/detection.png, with the thresholds and scaler stored by train in detector.json.",
    )
    _common(pr, data=False)
    pr.add_argument("--checkpoint", required=True, help="final_weights.pth (detector.json next to it) or its folder")
    pr.add_argument("--input", required=True, help="a CSV with a header (feature columns as in training) or a folder")
    pr.add_argument("--out", required=True, help="output folder")
    pr.set_defaults(func=cmd_predict)

    add_demo_command(
        sub,
        "timeseries",
        run_demo,
        help="synthetic data, a short training of the tiny config, evaluation, a figure and a report",
        description="Writes synthetic SMD-layout data, trains imdiffusion_tiny on one machine (about a minute on "
        "2 CPU cores), evaluates it and writes OUT/report.md with the figure.",
    )


def demo(out_dir: Path, quick: bool) -> DemoResult:
    """The ``diffusekit demo`` section of this domain."""
    return run_demo(Path(out_dir), quick)


DOMAIN = Domain(
    "timeseries",
    "ImDiffusion anomaly detection on multivariate time series (SMD, PSM, MSL, SMAP, CSV)",
    add_commands,
    demo,
)
