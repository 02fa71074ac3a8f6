"""The ImDiffusion detection pipeline, shared by the command line, the benchmarks and :class:`~diffusekit.timeseries.
imdiffusion.ImDiffusionDetector`: scoring settings from a config, the one window scorer (impute, stitch, score), the
deployable calibration on the held-out train tail, vote decisions and the interval finder.

The numpy parts (stitching, per-step thresholds, voting) live in :mod:`diffusekit.timeseries.ensemble`; this module
runs a model over a series and puts them together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from diffusekit.core.config_checks import config_block
from diffusekit.core.errors import DataError
from diffusekit.core.progress import ProgressLine
from diffusekit.timeseries.data import VAL_FRACTION, WindowDataset, validation_length, validation_slice
from diffusekit.timeseries.ensemble import (
    DEFAULT_STEPS,
    SeriesScores,
    VoteCalibration,
    calibrate_votes,
    decision_scores,
    ensemble_votes,
    score_windows,
    vote_labels,
)
from diffusekit.timeseries.thresholds import POT_LEVEL, POT_Q

log = logging.getLogger(__name__)

# every key of a config's ``detect`` block, with its default (None: derived from the window)
DETECT_DEFAULTS: dict[str, Any] = dict(
    reduce="max",
    steps=list(DEFAULT_STEPS),
    p0=0.02,
    xi=None,
    oracle_p0=[0.02],
    test_stride=None,
    metric_window=None,
    batch_size=8,
    precision="fp32",
    pot_q=POT_Q,
    pot_level=POT_LEVEL,
)
PRECISIONS = ("fp32", "bf16")


@dataclass
class Settings:
    """What scoring and calibration need: the window, the test stride (default ``window // 2``), the validation
    share of the train series, the feature reduction, the voting steps, the deployable p0 and ξ (None: majority),
    the oracle's p0 grid, the R-AUC/VUS window (default: the window), the windows imputed per batch (each runs both
    grating masks, so the network sees twice as many; small batches keep the CPU's caches warm: see
    docs/timeseries.md) and the network's precision (``"bf16"``: ``torch.autocast`` of the denoiser, for CPUs with
    bfloat16 units or GPUs; the sampler's update stays in float32), and the POT/SPOT risk and initial level
    (:mod:`~diffusekit.timeseries.thresholds`)."""

    window: int = 100
    test_stride: int | None = None
    val_fraction: float = VAL_FRACTION
    reduce: str = "max"
    steps: tuple[int, ...] = DEFAULT_STEPS
    p0: float = 0.02
    xi: int | None = None
    oracle_p0: tuple[float, ...] = (0.02,)
    metric_window: int | None = None
    batch_size: int = 8
    precision: str = "fp32"
    pot_q: float = POT_Q
    pot_level: float = POT_LEVEL

    def __post_init__(self) -> None:
        """Check every value (a DataError naming the key: a count below 1, a share outside its range, a string
        where a number belongs) and convert it to its type."""
        self.window = _count("train_dataloader.dataset.window", self.window)
        stride, metric_window = self.test_stride, self.metric_window
        self.test_stride = _count("detect.test_stride", max(1, self.window // 2) if stride is None else stride)
        self.metric_window = _count("detect.metric_window", self.window if metric_window is None else metric_window)
        self.steps = tuple(_count("detect.steps", s, 0) for s in _sequence("detect.steps", self.steps))
        self.oracle_p0 = tuple(_share("detect.oracle_p0", p) for p in _sequence("detect.oracle_p0", self.oracle_p0))
        self.p0 = _share("detect.p0", self.p0)
        self.val_fraction = _share("train_dataloader.dataset.val_fraction", self.val_fraction, zero=True)
        self.xi = None if self.xi is None else _count("detect.xi", self.xi, 0)
        self.batch_size = _count("detect.batch_size", self.batch_size)
        self.pot_q, self.pot_level = _share("detect.pot_q", self.pot_q), _share("detect.pot_level", self.pot_level)
        if self.precision not in PRECISIONS:
            raise DataError(f"detect.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.reduce not in ("max", "sum"):
            raise DataError(f"detect.reduce must be 'max' or 'sum', got {self.reduce!r}")

    @classmethod
    def from_cfg(cls, cfg: Mapping[str, Any]) -> Settings:
        """From a config's ``detect`` block (every key checked: a misspelt one is a DataError) and its training
        dataset's ``window`` and ``val_fraction``; a bad value is a DataError naming the config file."""
        detect = config_block(cfg, "detect", DETECT_DEFAULTS)
        dataset = cfg["train_dataloader"]["dataset"]
        try:
            window, val_fraction = dataset.get("window", 100), dataset.get("val_fraction", VAL_FRACTION)
            return cls(window=window, val_fraction=val_fraction, **detect)
        except DataError as error:
            if error.path is not None:
                raise
            raise DataError(error.reason, getattr(cfg, "filename", None)) from None

    @property
    def keep(self) -> int:
        """Sampler states the voting steps need (the last ``max(steps) + 1``)."""
        return max(self.steps) + 1


def _count(key: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, else a DataError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _share(key: str, value: Any, zero: bool = False) -> float:
    """``value`` as a float in (0, 1) (``zero``: [0, 1)), else a DataError naming ``key``."""
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
    if not ok or not (0 <= value < 1 if zero else 0 < value < 1):
        raise DataError(f"{key} must be a number in {'[0' if zero else '(0'}, 1), got {value!r}")
    return float(value)


def _sequence(key: str, value: Any) -> tuple:
    """A non-empty list or tuple (a single number is taken as one item)."""
    items = tuple(value) if isinstance(value, (list, tuple)) else (value,)
    if not items:
        raise DataError(f"{key} must list at least one value")
    return items


class Detection(NamedTuple):
    """Decisions over a series: ``decision`` d(t) = votes + soft vote, ``votes`` V(t), ``predicted`` V > ξ (0/1)."""

    decision: np.ndarray
    votes: np.ndarray
    predicted: np.ndarray


class Interval(NamedTuple):
    """A predicted anomalous interval ``[start, end)``, its largest decision score and its top features (indices,
    by mean final-step imputation error inside the interval)."""

    start: int
    end: int
    max_score: float
    top_features: list[int]


def score_series(
    model: nn.Module,
    values: np.ndarray,
    settings: Settings,
    observed: np.ndarray | None = None,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    all_steps: bool = False,
    progress: bool = True,
) -> SeriesScores:
    """Impute a scaled (T, K) series in windows of ``window`` every ``test_stride`` (plus a tail window), stitch and
    score it. Only the sampler's last ``settings.keep`` states are scored unless ``all_steps``; ``batch_size``
    (default ``settings.batch_size``) windows per batch, the denoiser in ``settings.precision``."""
    batch_size = settings.batch_size if batch_size is None else batch_size
    data = WindowDataset(values, settings.window, settings.test_stride, observed=observed, tail=True)
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    line = ProgressLine(enabled=progress)
    imputed, inputs = [], []
    for lo in range(0, len(data), batch_size):
        items = [data[i] for i in range(lo, min(lo + batch_size, len(data)))]
        x = torch.stack([item["values"] for item in items]).to(device)
        mask = torch.stack([item["observed_mask"] for item in items]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.precision == "bf16"):
            states = model(x, mode="predict", observed_mask=mask, generator=generator).imputed
        if not all_steps:
            if states.shape[1] < settings.keep:
                raise DataError(
                    f"voting steps {settings.steps} need {settings.keep} sampler steps; the model has {states.shape[1]}"
                )
            states = states[:, -settings.keep :]
        imputed.append(states.cpu().numpy())
        inputs.append(x.cpu().numpy())
        line.update(f"scoring: {lo + len(items)}/{len(data)} windows of {settings.window} steps")
    line.finish()
    return score_windows(np.concatenate(imputed), np.concatenate(inputs), data.starts, len(values), settings.reduce)


def calibrate_scores(scores: SeriesScores, settings: Settings) -> VoteCalibration:
    """Deployable vote thresholds from scores of normal (held-out) data: ``ensemble.calibrate_votes``."""
    return calibrate_votes(scores.step_scores, scores.step_errors, settings.p0, settings.steps, settings.xi)


def calibrate_tail(
    model: nn.Module,
    train: np.ndarray,
    settings: Settings,
    observed: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[VoteCalibration, int, SeriesScores]:
    """Score the held-out tail of a scaled training series and calibrate the votes on it (no test labels);
    returns the calibration, the tail's length (0: no hold-out, the whole series is used) and the tail's scores
    (POT/SPOT thresholds start from them)."""
    part = validation_slice(len(train), settings.val_fraction, settings.window)
    log.info("calibrating on the last %d of %d training steps", len(train[part]), len(train))
    tail_observed = None if observed is None else observed[part]
    scores = score_series(model, train[part], settings, tail_observed, progress=progress)
    n_val = validation_length(len(train), settings.val_fraction, settings.window)
    return calibrate_scores(scores, settings), n_val, scores


def calibrate(
    model: nn.Module,
    train: np.ndarray,
    settings: Settings,
    observed: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[VoteCalibration, int]:
    """:func:`calibrate_tail` without the tail's scores."""
    calibration, n_val, _ = calibrate_tail(model, train, settings, observed, progress)
    return calibration, n_val


def detect(scores: SeriesScores, calibration: VoteCalibration) -> Detection:
    """Votes, decision score and 0/1 labels (V > ξ) of scored series with calibrated thresholds."""
    decision = decision_scores(scores.step_scores, calibration.thresholds, calibration.steps)
    votes = ensemble_votes(scores.step_scores, calibration.thresholds, calibration.steps)
    return Detection(decision, votes, vote_labels(votes, calibration.xi))


def find_intervals(predicted: np.ndarray, decision: np.ndarray, feature_scores: np.ndarray, top_k: int = 3):
    """The runs of 1s in ``predicted`` as :class:`Interval` s; features ranked by their mean |x̂₀ − x| inside
    (``feature_scores`` (K, T)), ``top_k`` of them."""
    flags = np.concatenate(([0], np.asarray(predicted, dtype=np.int8), [0]))
    edges = np.flatnonzero(np.diff(flags))
    intervals = []
    for start, end in zip(edges[::2].tolist(), edges[1::2].tolist()):
        per_feature = feature_scores[:, start:end].mean(axis=1)
        top = [int(k) for k in np.argsort(-per_feature, kind="stable")[:top_k]]
        intervals.append(Interval(start, end, float(decision[start:end].max()), top))
    return intervals


def top_features(feature_scores: np.ndarray, top_k: int = 3) -> np.ndarray:
    """Indices (top_k, T) of the features with the largest final-step error at every timestamp."""
    return np.argsort(-feature_scores, axis=0, kind="stable")[:top_k]
