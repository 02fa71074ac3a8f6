"""Detection with a trained model on new data: a CSV (or Parquet) of features or a data folder, scored with the
scaler and thresholds that ``train`` stored in ``detector.json``; writes ``scores.csv``, ``intervals.csv`` and
``detection.png``."""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.config import Config

from diffusekit.core.checkpoint import weights_path
from diffusekit.core.commands import output_dir
from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import MinMaxScaling, check_scaled, fill_missing
from diffusekit.timeseries.datasets import csv_columns, entity_arg, read_entity
from diffusekit.timeseries.ensemble import VoteCalibration
from diffusekit.timeseries.pipeline import Interval, Settings, detect, find_intervals, score_series, top_features
from diffusekit.timeseries.tabular import read_text
from diffusekit.timeseries.workflow import DETECTOR_FILE, check_output_dir, load_entity_model

log = logging.getLogger(__name__)


@dataclass
class SeriesInput:
    """A series to score: raw (T, K) values, the observed mask (None: all observed), timestamps, labels or None."""

    values: np.ndarray
    observed: np.ndarray | None
    timestamps: np.ndarray
    labels: np.ndarray | None


OUTPUTS = ("scores.csv", "intervals.csv", "detection.png")


def read_detector(checkpoint: str | Path) -> tuple[Path, dict[str, Any]]:
    """The weights file that ``checkpoint`` names and the ``detector.json`` next to it, checked
    (:func:`check_detector`)."""
    weights = weights_path(checkpoint)
    record_path = weights.parent / DETECTOR_FILE
    if not record_path.is_file():
        raise DataError(f"no {DETECTOR_FILE} next to the checkpoint (train writes it: scaler and thresholds)", weights)
    try:
        record = json.loads(read_text(record_path))
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON ({error.msg}); train writes this file", record_path, error.lineno) from None
    return weights, check_detector(record, record_path)


def _numbers(record: dict, key: str, path: Path, length: int | None, allow_none: bool = False) -> list:
    value = record[key]
    ok = isinstance(value, list) and all(
        (v is None and allow_none) or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
        for v in value
    )
    if not ok:
        raise DataError(f"{key} must be a list of finite numbers{' or null' if allow_none else ''}", path)
    if length is not None and len(value) != length:
        raise DataError(f"{key} has {len(value)} values, expected {length} (one per feature or voting step)", path)
    return value


def check_detector(record: Any, path: Path) -> dict[str, Any]:
    """``record`` (a parsed ``detector.json``) if every key holds what ``train`` writes; a DataError naming the
    file and the first wrong key otherwise (a hand-edited or foreign file must not score garbage)."""
    from diffusekit.timeseries.datasets import LAYOUTS

    keys = ("name", "layout", "feature_names", "data_min", "data_range", "clip", "thresholds", "xi", "p0", "steps")
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object with {', '.join(keys)}, got a {type(record).__name__}", path)
    missing = [key for key in keys if key not in record]
    if missing:
        raise DataError(f"missing key(s) {', '.join(missing)}; train writes this file", path)
    if not isinstance(record["name"], str) or record["layout"] not in LAYOUTS:
        raise DataError(f"name must be a string and layout one of {', '.join(LAYOUTS)}", path)
    names = record["feature_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DataError(f"feature_names must be a non-empty list of strings, got {names!r:.60}", path)
    _numbers(record, "data_min", path, len(names))
    if any(r <= 0 for r in _numbers(record, "data_range", path, len(names))):
        raise DataError("data_range must be positive for every feature (the scaler divides by it)", path)
    steps = record["steps"]
    if not isinstance(steps, list) or not steps or not all(isinstance(t, int) and t >= 0 for t in steps):
        raise DataError(f"steps must be a non-empty list of non-negative integers, got {steps!r:.60}", path)
    _numbers(record, "thresholds", path, len(steps), allow_none=True)
    if not isinstance(record["clip"], bool):
        raise DataError(f"clip must be true or false, got {record['clip']!r}", path)
    xi, p0 = record["xi"], record["p0"]
    if isinstance(xi, bool) or not isinstance(xi, int) or not 0 <= xi <= len(steps):
        raise DataError(f"xi must be an integer in 0..{len(steps)}, got {xi!r}", path)
    if isinstance(p0, bool) or not isinstance(p0, (int, float)) or not 0 < p0 < 1:
        raise DataError(f"p0 must be a number in (0, 1), got {p0!r}", path)
    return record


def read_input(path: str | Path, record: dict[str, Any]) -> SeriesInput:
    """The test part of a data folder in the detector's layout, or a CSV/Parquet file whose feature columns are
    the training ones (by name when the header has them all, else by position)."""
    from diffusekit.timeseries.tabular import load_frame

    path = Path(path).expanduser()
    names = record["feature_names"]
    if path.is_dir():
        split = read_entity(path, record["layout"], entity_arg(record["layout"], record["name"]))
        if split.num_features != len(names):
            raise DataError(f"{split.num_features} features but the model was trained on {len(names)}", path)
        stamps = split.test_timestamps if split.test_timestamps is not None else np.arange(len(split.test))
        return SeriesInput(split.raw_test, split.test_observed, stamps, split.test_labels)
    if not path.is_file():
        raise DataError("input not found (a CSV of features or a data folder)", path)
    stamp, label = csv_columns(path)
    frame = load_frame(path, None, stamp, label)
    if all(name in frame.columns for name in names) and names != frame.columns:
        frame = load_frame(path, names, stamp, label)
    if frame.features.shape[1] != len(names):
        raise DataError(f"{frame.features.shape[1]} feature columns but the model was trained on {len(names)}", path, 1)
    missing = np.isnan(frame.features)
    values = fill_missing(frame.features, "ffill_bfill", path, frame.columns)
    stamps = frame.timestamps if frame.timestamps is not None else np.arange(len(values))
    return SeriesInput(values, ~missing if missing.any() else None, stamps, frame.labels)


def write_scores_csv(path: Path, stamps, decision, predicted, votes, top: np.ndarray, names: list[str]) -> None:
    """One row per timestamp: timestamp, score, label, votes, top features (``;``-joined)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["timestamp", "score", "label", "votes", "top_features"])
        for t in range(len(decision)):
            features = ";".join(names[k] for k in top[:, t])
            writer.writerow([stamps[t], f"{decision[t]:.6g}", predicted[t], votes[t], features])


def write_intervals_csv(path: Path, intervals: list[Interval], stamps, names: list[str]) -> None:
    """One row per interval: start, end (exclusive), their timestamps (end: the last one inside), max score."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["start", "end", "start_timestamp", "end_timestamp", "max_score", "top_features"])
        for iv in intervals:
            row = [iv.start, iv.end, stamps[iv.start], stamps[iv.end - 1], f"{iv.max_score:.6g}"]
            writer.writerow([*row, ";".join(names[k] for k in iv.top_features)])


def predict_series(
    cfg: Config,
    checkpoint: str | Path,
    input_path: str | Path,
    out: str | Path,
    top_k: int = 3,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Score a series with a trained detector on ``device``; write scores.csv, intervals.csv and detection.png
    into ``out``. Returns the counts and the figure's path."""
    from diffusekit.timeseries.visualize import plot_detection

    out = check_output_dir(out)
    weights, record = read_detector(checkpoint)
    written = {(out / name).resolve() for name in OUTPUTS}
    if Path(input_path).expanduser().resolve() in written:
        raise DataError(f"the input is an output of predict into {out}; choose another --out", input_path)
    series = read_input(input_path, record)
    scaler = MinMaxScaling(np.asarray(record["data_min"]), np.asarray(record["data_range"]), record["clip"])
    names = record["feature_names"]
    values = check_scaled(series.values, scaler, Path(input_path), names, "input")
    settings = Settings.from_cfg(cfg)
    settings.steps = tuple(record["steps"])
    if len(values) < settings.window:
        raise DataError(f"{len(values)} time steps, fewer than the model's window of {settings.window}", input_path)
    thresholds = np.array([np.inf if t is None else t for t in record["thresholds"]], dtype=np.float64)
    calibration = VoteCalibration(thresholds, int(record["xi"]), float(record["p0"]), settings.steps)
    model = load_entity_model(cfg, weights, len(names), device)
    scores = score_series(model, values, settings, series.observed, progress=progress)
    found = detect(scores, calibration)
    intervals = find_intervals(found.predicted, found.decision, scores.feature_scores, top_k)
    out = output_dir(out)
    top = top_features(scores.feature_scores, top_k)
    write_scores_csv(out / "scores.csv", series.timestamps, found.decision, found.predicted, found.votes, top, names)
    write_intervals_csv(out / "intervals.csv", intervals, series.timestamps, names)
    figure = plot_detection(
        out / "detection.png",
        values,
        found.decision,
        found.votes,
        found.predicted,
        scores.feature_scores,
        labels=series.labels,
        feature_names=names,
        threshold=calibration.xi + 1,
        xi=calibration.xi,
        title=f"{record['name']}: {Path(input_path).name}",
    )
    log.info("%d timestamps scored, %d interval(s)", len(values), len(intervals))
    return {"timestamps": len(values), "intervals": len(intervals), "figure": str(figure)}
