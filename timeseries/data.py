"""Shared data pieces: the :class:`SeriesSplit` container, train-only min-max scaling, the fill policy for missing
values, and the windowed torch Dataset the models train on.

Conventions (every reader follows them):

- Arrays are time-major ``(T, K)`` float32 (K features), the raw (unscaled) copies too, as in ImDiffusion's pkl
  files; windows handed to models are ``(K, L)``, as in CSDI and ImDiffusion.
- Scaling is fitted on **train only** and applied to test (:class:`MinMaxScaling`). Fitting test on its own min/max
  (OmniAnomaly's ``preprocess``) leaks test statistics and is not offered. Test values outside the train range map
  outside [0, 1] by default (clip=False): a value above anything seen in train is exactly what a detector should
  see; ``clip=True`` clips to [0, 1]. A feature that is constant in train gets range 1 (it is only shifted), so a
  test deviation stays visible instead of dividing by zero.
- Missing values (NaN or an empty CSV field) follow an explicit policy, counted per feature in a
  :class:`FillReport`: ``"ffill_bfill"`` (forward-fill along time per feature, then back-fill a leading gap),
  ``"zero"`` (the PSM notebook's choice, for reproducing it), ``"error"`` (a DataError at the first missing value).
  Forward-fill is the default for formats that have gaps (PSM, user CSV): it keeps the last observed value, uses no
  future data except for a leading gap, and creates no artificial drops; a 0 after scaling is an in-range value
  that looks like a level shift to the model. Filled entries are marked in ``train_observed``/``test_observed``
  so that imputation models can treat them as unobserved. Infinity is never "missing": it is always a DataError,
  as is a value that overflows float32 as read or after the scaling (the models compute in float32).
- Labels are int64 0/1 of length T. ``interpretation`` is a list of :class:`Segment` ``(start, end, dims)``:
  0-based time indices, ``end`` exclusive, ``dims`` 0-based feature indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from diffusekit.core.errors import DataError

FILL_POLICIES = ("ffill_bfill", "zero", "error")
VAL_FRACTION = 0.1  # the share of a training series held out (its tail) for validation and calibration


class Segment(NamedTuple):
    """An anomalous stretch ``[start, end)`` of the test series (0-based) and the 0-based features involved."""

    start: int
    end: int
    dims: tuple[int, ...] = ()


@dataclass(frozen=True)
class FillReport:
    """How many values were missing and filled, per split and per feature (features without gaps are omitted)."""

    policy: str
    missing_train: int = 0
    missing_test: int = 0
    by_feature: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.missing_train + self.missing_test

    def summary(self) -> str:
        if self.total == 0:
            return "no missing values"
        how = {"ffill_bfill": "forward-fill then back-fill per feature", "zero": "zeros"}[self.policy]
        worst = sorted(self.by_feature.items(), key=lambda item: -sum(item[1]))[:5]
        listed = ", ".join(f"{name} ({train}/{test})" for name, (train, test) in worst)
        more = f" and {len(self.by_feature) - len(worst)} more" if len(self.by_feature) > len(worst) else ""
        return (
            f"filled {self.total} missing values (train {self.missing_train}, test {self.missing_test}) with {how}; "
            f"features (train/test): {listed}{more}"
        )


def fill_missing(values: np.ndarray, policy: str, path: Path | None, feature_names: Sequence[str]) -> np.ndarray:
    """Return ``values`` (T, K) with NaNs filled by ``policy`` (see the module docstring); a new array if any."""
    if policy not in FILL_POLICIES:
        raise ValueError(f"unknown fill policy {policy!r}; choose one of {FILL_POLICIES}")
    missing = np.isnan(values)
    if not missing.any():
        return values
    if policy == "error":
        row, column = (int(i) for i in np.argwhere(missing)[0])
        raise DataError(f"missing value (NaN) at row {row}, feature {feature_names[column]!r}", path)
    if policy == "zero":
        return np.where(missing, 0.0, values)
    empty = np.flatnonzero(missing.all(axis=0))
    if empty.size:
        raise DataError(f"feature {feature_names[empty[0]]!r} has no values at all; nothing to fill from", path)
    rows = np.where(missing, 0, np.arange(values.shape[0])[:, None])
    np.maximum.accumulate(rows, axis=0, out=rows)
    columns = np.arange(values.shape[1])
    filled = values[rows, columns]
    first_valid = values[np.argmax(~missing, axis=0), columns]
    return np.where(np.isnan(filled), first_valid[None, :], filled)


@dataclass(frozen=True)
class MinMaxScaling:
    """Per-feature min-max scaling fitted on train: ``(x - data_min) / data_range``, optionally clipped to [0, 1]."""

    data_min: np.ndarray
    data_range: np.ndarray
    clip: bool = False

    @classmethod
    def fit(cls, train: np.ndarray, clip: bool = False) -> MinMaxScaling:
        data_min = train.min(axis=0).astype(np.float64)
        data_range = train.max(axis=0).astype(np.float64) - data_min
        data_range[data_range <= 0] = 1.0  # constant in train: shift only
        return cls(data_min, data_range, clip)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scaled float32 values; one that overflows float32 becomes inf (see :func:`check_scaled`)."""
        with np.errstate(over="ignore", invalid="ignore"):
            scaled = (values - self.data_min) / self.data_range
            if self.clip:
                np.clip(scaled, 0.0, 1.0, out=scaled)
            return scaled.astype(np.float32)

    def inverse_transform(self, scaled: np.ndarray) -> np.ndarray:
        return np.asarray(scaled, dtype=np.float64) * self.data_range + self.data_min


@dataclass
class SeriesSplit:
    """One entity (an SMD machine, a concatenated spacecraft, a user series): train/test arrays and their labels.

    ``train``/``test`` are the model inputs (scaled when ``scaler`` is set); ``raw_train``/``raw_test`` are the values
    as read, after filling. ``parts`` maps sub-entity names to their (train, test) slices when series were
    concatenated (MSL/SMAP channels). ``notes`` records decisions a user should know (dropped channels, fills).
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray | None
    feature_names: list[str]
    raw_train: np.ndarray
    raw_test: np.ndarray
    scaler: MinMaxScaling | None
    fill_report: FillReport
    interpretation: list[Segment] = field(default_factory=list)
    train_labels: np.ndarray | None = None
    train_observed: np.ndarray | None = None
    test_observed: np.ndarray | None = None
    train_timestamps: np.ndarray | None = None
    test_timestamps: np.ndarray | None = None
    parts: dict[str, tuple[slice, slice]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def num_features(self) -> int:
        return self.train.shape[1]

    def train_windows(self, window: int = 100, stride: int = 1, tail: bool = True) -> WindowDataset:
        """Training windows (ImDiffusion: L=100, stride 1)."""
        return WindowDataset(
            self.train, window, stride, labels=self.train_labels, observed=self.train_observed, tail=tail
        )

    def test_windows(self, window: int = 100, stride: int | None = None, tail: bool = True) -> WindowDataset:
        """Test windows; ``stride`` defaults to ``window // 2`` (ImDiffusion: 50 for L=100)."""
        stride = stride or max(1, window // 2)
        return WindowDataset(self.test, window, stride, labels=self.test_labels, observed=self.test_observed, tail=tail)


def make_split(
    name: str,
    raw_train: np.ndarray,
    raw_test: np.ndarray,
    feature_names: Sequence[str],
    *,
    test_labels: np.ndarray | None = None,
    missing: str = "error",
    scale: bool = True,
    clip: bool = False,
    train_path: Path | None = None,
    test_path: Path | None = None,
    interpretation: Sequence[Segment] = (),
    train_labels: np.ndarray | None = None,
    train_timestamps: np.ndarray | None = None,
    test_timestamps: np.ndarray | None = None,
    parts: dict[str, tuple[slice, slice]] | None = None,
    notes: Sequence[str] = (),
) -> SeriesSplit:
    """Check shapes, fill missing values, fit the scaler on train and build the :class:`SeriesSplit`."""
    if raw_test.shape[1] != raw_train.shape[1]:
        where = f" ({train_path.name})" if train_path is not None else ""
        raise DataError(f"test has {raw_test.shape[1]} columns but train has {raw_train.shape[1]}{where}", test_path)
    if test_labels is not None and len(test_labels) != len(raw_test):
        raise DataError(f"{len(test_labels)} test labels for {len(raw_test)} test rows", test_path)
    names = list(feature_names)
    train_missing, test_missing = np.isnan(raw_train), np.isnan(raw_test)
    filled_train = fill_missing(raw_train, missing, train_path, names)
    filled_test = fill_missing(raw_test, missing, test_path, names)
    per_train, per_test = train_missing.sum(axis=0), test_missing.sum(axis=0)
    report = FillReport(
        missing,
        int(per_train.sum()),
        int(per_test.sum()),
        {names[k]: (int(per_train[k]), int(per_test[k])) for k in np.flatnonzero(per_train + per_test)},
    )
    notes = list(notes)
    if report.total:
        notes.append(report.summary())
    scaler = MinMaxScaling.fit(filled_train, clip) if scale else None
    train = check_scaled(filled_train, scaler, train_path, names, "train")
    test = check_scaled(filled_test, scaler, test_path, names, "test")
    return SeriesSplit(
        name=name,
        train=train,
        test=test,
        test_labels=test_labels,
        feature_names=names,
        raw_train=filled_train.astype(np.float32),
        raw_test=filled_test.astype(np.float32),
        scaler=scaler,
        fill_report=report,
        train_observed=~train_missing if train_missing.any() else None,
        test_observed=~test_missing if test_missing.any() else None,
        interpretation=list(interpretation),
        train_labels=train_labels,
        train_timestamps=train_timestamps,
        test_timestamps=test_timestamps,
        parts=dict(parts or {}),
        notes=notes,
    )


def check_scaled(
    values: np.ndarray, scaler: MinMaxScaling | None, path: Path | None, names: Sequence[str], part: str
) -> np.ndarray:
    """``values`` scaled by ``scaler`` (as float32 when None); a DataError at the first value that is not a finite
    float32 afterwards (e.g. 3e38 in test where train spans 0.5: x2 after the min-max scaling)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = scaler.transform(values) if scaler is not None else values.astype(np.float32)
    limit = np.finfo(np.float32).max
    with np.errstate(invalid="ignore"):
        too_big = np.abs(values) > limit
    bad = (~np.isfinite(out) | too_big) & np.isfinite(values)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        after = scaler is not None and not too_big[row, column]
        how = "after the min-max scaling fitted on train" if after else "as float32"
        raise DataError(
            f"{part} value {values[row, column]:g} at row {row}, feature {names[column]!r} overflows {how} "
            "(the models compute in float32)",
            path,
        )
    return out


def validation_length(train_length: int, val_fraction: float = VAL_FRACTION, window: int = 100) -> int:
    """Length of the held-out train tail: ``val_fraction`` of it, at least one window (0 when the fraction is 0).
    The one validation split of the domain: training (``SeriesWindows``), calibration and the detector use it."""
    if val_fraction <= 0:
        return 0
    n_val = max(int(round(train_length * val_fraction)), window)
    if train_length - n_val < window:
        raise DataError(f"{train_length} training steps leave no training window of {window} after validation")
    return n_val


def validation_slice(train_length: int, val_fraction: float = VAL_FRACTION, window: int = 100) -> slice:
    """The held-out tail of a training series (:func:`validation_length`); all of it when the fraction is 0."""
    n_val = validation_length(train_length, val_fraction, window)
    return slice(train_length - n_val, None) if n_val else slice(None)


def window_starts(length: int, window: int, stride: int, tail: bool = True) -> np.ndarray:
    """Start indices of windows of ``window`` steps every ``stride``; with ``tail`` the last one ends at ``length``."""
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window} and {stride}")
    if length < window:
        raise DataError(f"the series has {length} time steps, fewer than the window length {window}")
    starts = np.arange(0, length - window + 1, stride)
    if tail and starts[-1] + window < length:
        starts = np.append(starts, length - window)
    return starts


class WindowDataset(Dataset):
    """Sliding windows over a (T, K) series; item ``i`` is a dict of tensors:

    ``values`` (K, L) float32, ``observed_mask`` (K, L) float32 (0 where a value was filled), ``timepoints`` (L,)
    float32 (0..L-1, CSDI's time-embedding input), ``start`` () int64 (window start in the series), and ``labels``
    (L,) int64 when labels are given. With ``tail=True`` a last window ending exactly at T is added when the stride
    does not land there, so every time step is covered whenever ``stride <= window``.
    """

    def __init__(
        self,
        series: np.ndarray | torch.Tensor,
        window: int = 100,
        stride: int = 1,
        *,
        labels: np.ndarray | None = None,
        observed: np.ndarray | None = None,
        tail: bool = True,
    ):
        values = torch.as_tensor(np.asarray(series, dtype=np.float32))
        if values.ndim != 2:
            raise ValueError(f"series must be (T, K), got shape {tuple(values.shape)}")
        self.values = values
        self.window, self.stride = window, stride
        self.starts = window_starts(values.shape[0], window, stride, tail)
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if self.labels is not None and self.labels.shape[0] != values.shape[0]:
            raise ValueError(f"{self.labels.shape[0]} labels for a series of length {values.shape[0]}")
        self.observed = None if observed is None else torch.as_tensor(np.asarray(observed, dtype=np.float32))
        self.timepoints = torch.arange(window, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        start = int(self.starts[index])
        stop = start + self.window
        values = self.values[start:stop].T.contiguous()
        observed = torch.ones_like(values) if self.observed is None else self.observed[start:stop].T.contiguous()
        item = {
            "values": values,
            "observed_mask": observed,
            "timepoints": self.timepoints,
            "start": torch.tensor(start, dtype=torch.int64),
        }
        if self.labels is not None:
            item["labels"] = self.labels[start:stop]
        return item
