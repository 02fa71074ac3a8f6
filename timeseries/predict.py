"""Detection with a trained model on new data: a CSV (or Parquet) of features or a data folder, scored with the
scaler and thresholds that ``train`` stored in ``detector.json``; writes ``scores.csv``, ``intervals.csv`` and
``detection.png``."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.config import Config

from diffusekit.core.checkpoint import weights_path
from diffusekit.core.commands import output_dir
from diffusekit.core.errors import DataError
from diffusekit.timeseries.data import MinMaxScaling, fill_missing
from diffusekit.timeseries.datasets import csv_columns, read_entity
from diffusekit.timeseries.ensemble import VoteCalibration
from diffusekit.timeseries.pipeline import Interval, Settings, detect, find_intervals, score_series, top_features
from diffusekit.timeseries.workflow import DETECTOR_FILE, load_entity_model

log = logging.getLogger(__name__)


@dataclass
class SeriesInput:
    """A series to score: raw (T, K) values, the observed mask (None: all observed), timestamps, labels or None."""

    values: np.ndarray
    observed: np.ndarray | None
    timestamps: np.ndarray
    labels: np.ndarray | None


def read_detector(checkpoint: str | Path) -> tuple[Path, dict[str, Any]]:
    """The weights file that ``checkpoint`` names and the ``detector.json`` next to it."""
    weights = weights_path(checkpoint)
    record_path = weights.parent / DETECTOR_FILE
    if not record_path.is_file():
        raise DataError(f"no {DETECTOR_FILE} next to the checkpoint (train writes it: scaler and thresholds)", weights)
    return weights, json.loads(record_path.read_text())


def read_input(path: str | Path, record: dict[str, Any]) -> SeriesInput:
    """The test part of a data folder in the detector's layout, or a CSV/Parquet file whose feature columns are
    the training ones (by name when the header has them all, else by position)."""
    from diffusekit.timeseries.tabular import load_frame

    path = Path(path).expanduser()
    names = record["feature_names"]
    if path.is_dir():
        split = read_entity(path, record["layout"], record["name"] if record["layout"] == "smd" else None)
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

    weights, record = read_detector(checkpoint)
    series = read_input(input_path, record)
    scaler = MinMaxScaling(np.asarray(record["data_min"]), np.asarray(record["data_range"]), record["clip"])
    values = scaler.transform(series.values)
    names = record["feature_names"]
    settings = Settings.from_cfg(cfg)
    settings.steps = tuple(record["steps"])
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
