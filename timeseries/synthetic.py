"""Synthetic anomaly-detection data WRITTEN in the official on-disk layouts (SMD as text or as OmniAnomaly/ImDiffusion
pickles, TSB-AD-M CSV, PSM, MSL/SMAP), so that the real readers are what the tests, the demo and a user's first run
exercise.

Each entity is a multivariate series driven by shared latent factors (so features are correlated), each factor a
seasonal wave (a fundamental and its harmonic, period 40-300 steps) plus a slow AR(1) wander; features add a linear
trend and their own noise, and are mapped into [0.15, 0.65] (SMD's files hold values in [0, 1]). Train is clean; the
test half (the series continues in time) receives anomalies of every kind in :data:`ANOMALY_KINDS`, one per slot:

- ``spike``: 1-3 points pushed up or down by 0.25-0.35;
- ``level_shift``: 30-80 points shifted by 0.12-0.2;
- ``contextual``: 30-80 points whose seasonal component is inverted (values stay in the normal range);
- ``collective``: 20-60 points with a fast oscillation burst (period 5-9 steps, amplitude 0.06-0.1);
- ``correlation_break``: 40-100 points where 2+ features reflect their shared-factor part, so they move against the
  features they normally follow, with unchanged ranges.

Written SMD values are clipped to [0, 1] and printed with 6 significant digits. Interpretation lines use the official
convention (0-based start, exclusive end, 1-based dims). The same SMD machines can also be written (``formats``) as
``<machine>_{train,test,test_label}.pkl`` (float32 arrays of the printed values, labels float32 0/1, as OmniAnomaly's
``data_preprocess.py`` writes them) and as one TSB-AD-M CSV per machine (``NNN_SMD_id_N_Facility_tr_<train
length>_1st_<first anomaly>.csv``: the train rows, then the test rows, then ``Label``), all holding the same numbers.
``synthetic_manifest.json`` records each anomaly's kind.
"""

from __future__ import annotations

import csv
import json
import pickle
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from diffusekit.core.errors import DataError

ANOMALY_KINDS = ("spike", "level_shift", "contextual", "collective", "correlation_break")
SIZES = {"small": {"entities": 3, "length": 2000}, "medium": {"entities": 8, "length": 12000}}
_LENGTHS = {"spike": (1, 3), "level_shift": (30, 80), "contextual": (30, 80), "collective": (20, 60)}
_LENGTHS["correlation_break"] = (40, 100)
_MARGIN = 10
MANIFEST = "synthetic_manifest.json"


@dataclass(frozen=True)
class InjectedAnomaly:
    """One injected anomaly: test indices ``[start, end)`` and the 0-based features it perturbs."""

    kind: str
    start: int
    end: int
    dims: tuple[int, ...]


@dataclass
class SyntheticEntity:
    """One generated entity: ``train``, ``clean_test`` (before injection), ``test``, ``labels`` and the anomalies."""

    train: np.ndarray
    clean_test: np.ndarray
    test: np.ndarray
    labels: np.ndarray
    anomalies: list[InjectedAnomaly]


@dataclass
class SyntheticDataset:
    """What a writer produced: the folder to give the reader, and the anomalies per entity (machine or channel)."""

    root: Path
    layout: str
    anomalies: dict[str, list[InjectedAnomaly]] = field(default_factory=dict)


def _normal_series(rng: np.random.Generator, total: int, features: int) -> tuple[np.ndarray, ...]:
    steps = np.arange(total)
    n_factors = max(2, min(6, features // 6))
    seasonal = np.empty((total, n_factors))
    wander = np.empty((total, n_factors))
    for j in range(n_factors):
        period = rng.uniform(40, 300)
        phase, phase2 = rng.uniform(0, 2 * np.pi, 2)
        seasonal[:, j] = np.sin(2 * np.pi * steps / period + phase) + 0.35 * np.sin(4 * np.pi * steps / period + phase2)
        wander[:, j] = lfilter([1.0], [1.0, -0.97], rng.normal(0, 0.08, total))
    loadings = rng.normal(0, 1, (features, n_factors))
    seasonal_part, factor_part = seasonal @ loadings.T, (seasonal + wander) @ loadings.T
    trend = rng.normal(0, 0.5, features) * (steps / total)[:, None]
    noise = rng.normal(0, 0.1, (total, features)) * rng.uniform(0.5, 1.5, features)
    series = factor_part + trend + noise
    low, high = series.min(axis=0), series.max(axis=0)
    gain = 0.5 / (high - low)
    return 0.15 + (series - low) * gain, seasonal_part * gain, factor_part * gain


def _inject(
    kind: str, test: np.ndarray, start: int, end: int, dims: list[int], parts: tuple[np.ndarray, np.ndarray], rng
) -> None:
    seasonal, factor = parts
    window = slice(start, end)
    if kind in ("spike", "level_shift"):
        size = (0.25, 0.35) if kind == "spike" else (0.12, 0.2)
        test[window, dims] += rng.choice([-1.0, 1.0], len(dims)) * rng.uniform(*size, len(dims))
    elif kind == "contextual":
        test[window, dims] -= 2 * seasonal[window][:, dims]
    elif kind == "collective":
        steps = np.arange(end - start)[:, None]
        wave = np.sin(2 * np.pi * steps / rng.uniform(5, 9, len(dims)) + rng.uniform(0, 2 * np.pi, len(dims)))
        test[window, dims] += rng.uniform(0.06, 0.1, len(dims)) * np.where(wave == 0, 1.0, wave)
    else:  # correlation_break: reflect the shared-factor part about its segment mean
        part = factor[window][:, dims]
        test[window, dims] -= 2 * (part - part.mean(axis=0))


def generate_entity(
    length: int,
    features: int,
    seed: int | Sequence[int] | np.random.Generator = 0,
    kinds: Sequence[str] = ANOMALY_KINDS,
    per_kind: int = 2,
    constant_features: int = 1,
    clip: bool = True,
) -> SyntheticEntity:
    """Generate ``length`` train and ``length`` test steps of ``features`` features with ``per_kind`` anomalies of
    each kind in the test half. The last ``constant_features`` features are constant 0 (like SMD's idle counters)
    and never perturbed."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    active = features - constant_features
    if active < (2 if "correlation_break" in kinds else 1):
        raise ValueError(f"{features} features with {constant_features} constant are too few for {list(kinds)}")
    series, seasonal, factor = _normal_series(rng, 2 * length, features)
    series[:, active:] = 0.0
    train, clean_test = series[:length].copy(), series[length:].copy()
    plan = [kind for kind in kinds for _ in range(per_kind)]
    rng.shuffle(plan)
    slot = length // max(1, len(plan))
    if plan and slot < max(_LENGTHS[k][1] for k in plan) + 2 * _MARGIN:
        raise ValueError(f"length {length} is too short for {len(plan)} anomalies; lower per_kind or raise length")
    test, anomalies = clean_test.copy(), []
    test_parts = (seasonal[length:], factor[length:])
    for index, kind in enumerate(plan):
        size = int(rng.integers(_LENGTHS[kind][0], _LENGTHS[kind][1] + 1))
        start = index * slot + int(rng.integers(_MARGIN, slot - size - _MARGIN + 1))
        count = int(rng.integers(2 if kind == "correlation_break" else 1, min(6, active) + 1))
        dims = sorted(int(d) for d in rng.choice(active, count, replace=False))
        _inject(kind, test, start, start + size, dims, test_parts, rng)
        anomalies.append(InjectedAnomaly(kind, start, start + size, tuple(dims)))
    if clip:
        np.clip(test, 0.0, 1.0, out=test)
    labels = np.zeros(length, dtype=np.int64)
    for anomaly in anomalies:
        labels[anomaly.start : anomaly.end] = 1
    return SyntheticEntity(train, clean_test, test, labels, sorted(anomalies, key=lambda a: a.start))


def _preset(size: str, entities: int | None, length: int | None) -> tuple[int, int]:
    if size not in SIZES:
        raise ValueError(f"size must be one of {list(SIZES)}, got {size!r}")
    return entities or SIZES[size]["entities"], length or SIZES[size]["length"]


def _write_manifest(dataset: SyntheticDataset, out: Path, seed: int) -> SyntheticDataset:
    entities = {name: [asdict(a) for a in items] for name, items in dataset.anomalies.items()}
    manifest = {"layout": dataset.layout, "seed": seed, "anomalies": entities}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return dataset


SMD_FORMATS = ("txt", "pkl", "tsb_ad")


def tsb_ad_file_name(index: int, dataset: str, domain: str, train_end: int, first_anomaly: int) -> str:
    """A TSB-AD file name: ``[idx]_[Dataset]_id_[n]_[Domain]_tr_[trainEnd]_1st_[firstAnomaly].csv``."""
    return f"{index:03d}_{dataset}_id_{index}_{domain}_tr_{train_end}_1st_{first_anomaly}.csv"


def _printed(values: np.ndarray) -> np.ndarray:
    """``values`` as written with 6 significant digits (what a reader of the text files gets back)."""
    return np.char.mod("%.6g", values).astype(np.float64)


def _write_smd_formats(out: Path, index: int, name: str, entity: SyntheticEntity, formats: Sequence[str]) -> None:
    train, test = _printed(entity.train), _printed(entity.test)
    if "txt" in formats:
        np.savetxt(out / "train" / f"{name}.txt", entity.train, fmt="%.6g", delimiter=",")
        np.savetxt(out / "test" / f"{name}.txt", entity.test, fmt="%.6g", delimiter=",")
        np.savetxt(out / "test_label" / f"{name}.txt", entity.labels, fmt="%d")
        lines = [f"{a.start}-{a.end}:{','.join(str(d + 1) for d in a.dims)}\n" for a in entity.anomalies]
        (out / "interpretation_label" / f"{name}.txt").write_text("".join(lines))
    if "pkl" in formats:  # OmniAnomaly's data_preprocess.py: pickle.dump of float32 arrays (Python 3's protocol 3)
        arrays = (train.astype(np.float32), test.astype(np.float32), entity.labels.astype(np.float32))
        for suffix, array in zip(("train", "test", "test_label"), arrays):
            with (out / f"{name}_{suffix}.pkl").open("wb") as handle:
                pickle.dump(array, handle, protocol=3)
    if "tsb_ad" in formats:
        first = len(train) + int(np.flatnonzero(entity.labels)[0]) if entity.labels.any() else 0
        path = out / tsb_ad_file_name(index + 1, "SMD", "Facility", len(train), first)
        labels = np.concatenate([np.zeros(len(train), dtype=np.int64), entity.labels])
        header = ",".join([*(f"feature_{k}" for k in range(train.shape[1])), "Label"])
        rows = [",".join(f"{v:.6g}" for v in row) + f",{y}" for row, y in zip(np.vstack([train, test]), labels)]
        path.write_text("\n".join([header, *rows]) + "\n")


def write_smd_dataset(
    out_dir: str | Path,
    machines: int | Sequence[str] | None = None,
    length: int | None = None,
    features: int = 38,
    seed: int = 0,
    size: str = "small",
    per_kind: int | None = None,
    formats: Sequence[str] = ("txt",),
) -> SyntheticDataset:
    """Write ``train/ test/ test_label/ interpretation_label/`` for each machine into ``out_dir``.

    ``machines`` is a count (names machine-1-1, machine-1-2, ...) or a list of names; ``length`` is the train and the
    test length each. Presets: small = 3 machines x 2000, medium = 8 x 12000; ``per_kind`` defaults to
    ``max(1, length // 3000)`` anomalies of each kind per machine (about 11% anomalous points for small, 7% for
    medium; SMD has 4%). ``formats`` (any of ``txt``, ``pkl``, ``tsb_ad``) also or instead writes the same machines
    as ``<machine>_{train,test,test_label}.pkl`` and as TSB-AD-M CSV files into ``out_dir`` (module docstring).
    """
    unknown = sorted(set(formats) - set(SMD_FORMATS))
    if unknown or not formats:
        raise ValueError(f"formats must be a non-empty subset of {SMD_FORMATS}, got {list(formats)}")
    count, length = _preset(size, machines if isinstance(machines, int) else None, length)
    names = list(machines) if machines is not None and not isinstance(machines, int) else []
    names = names or [f"machine-1-{i + 1}" for i in range(count)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if "txt" in formats:
        for folder in ("train", "test", "test_label", "interpretation_label"):
            (out / folder).mkdir(parents=True, exist_ok=True)
    dataset = SyntheticDataset(out, "smd" if "txt" in formats else "smd_pkl" if "pkl" in formats else "tsb_ad")
    for index, name in enumerate(names):
        entity = generate_entity(length, features, [seed, index], per_kind=per_kind or max(1, length // 3000))
        _write_smd_formats(out, index, name, entity, formats)
        dataset.anomalies[name] = entity.anomalies
    return _write_manifest(dataset, out, seed)


def _csv_lines(stamps: np.ndarray, values: np.ndarray) -> list[str]:
    return [
        f"{stamp:.1f}," + ",".join("" if np.isnan(v) else f"{v:.6g}" for v in row) for stamp, row in zip(stamps, values)
    ]


def write_psm_dataset(
    out_dir: str | Path,
    length: int | None = None,
    features: int = 25,
    seed: int = 0,
    size: str = "small",
    missing_fraction: float = 0.002,
) -> SyntheticDataset:
    """Write PSM's ``train.csv``, ``test.csv``, ``test_label.csv``; features get arbitrary units (PSM is unscaled),
    and train has empty fields (a ``missing_fraction`` of cells plus a leading gap in feature_0), as the real file."""
    _, length = _preset(size, None, length)
    rng = np.random.default_rng([seed, 7])
    entity = generate_entity(length, features, rng, per_kind=max(1, length // 3000), constant_features=0, clip=False)
    gain, offset = 10 ** rng.uniform(-1, 3, features), rng.normal(0, 50, features)
    train, test = entity.train * gain + offset, entity.test * gain + offset
    train[rng.random(train.shape) < missing_fraction] = np.nan
    train[:5, 0] = np.nan
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = "timestamp_(min)," + ",".join(f"feature_{k}" for k in range(features))
    train_stamps, test_stamps = np.arange(length), np.arange(length, 2 * length)
    (out / "train.csv").write_text("\n".join([header, *_csv_lines(train_stamps, train)]) + "\n")
    (out / "test.csv").write_text("\n".join([header, *_csv_lines(test_stamps, test)]) + "\n")
    labels = [f"{stamp:.1f},{label}" for stamp, label in zip(test_stamps, entity.labels)]
    (out / "test_label.csv").write_text("\n".join(["timestamp_(min),label", *labels]) + "\n")
    return _write_manifest(SyntheticDataset(out, "psm", {"PSM": entity.anomalies}), out, seed)


def write_msl_smap_dataset(
    out_dir: str | Path,
    spacecraft: str = "SMAP",
    channels: int | None = None,
    length: int | None = None,
    features: int | None = None,
    seed: int = 0,
    size: str = "small",
    duplicate_p2: bool = True,
) -> SyntheticDataset:
    """Write telemanom's ``data/{train,test}/<chan>.npy`` (column 0 telemetry in about [-1, 1], the rest one-hot
    command flags; 25 columns for SMAP, 55 for MSL) and ``labeled_anomalies.csv`` (inclusive sequences). For SMAP,
    ``duplicate_p2`` adds channel P-2 listed twice with conflicting sequences, as in the real file."""
    spacecraft = spacecraft.upper()
    count, length = _preset(size, channels, length)
    features = features or (25 if spacecraft == "SMAP" else 55)
    prefix = "ADEFGRST" if spacecraft == "SMAP" else "MSCTFDP"
    names = [f"{prefix[i % len(prefix)]}-{i // len(prefix) + 1}" for i in range(count)]
    if spacecraft == "SMAP" and duplicate_p2:
        names.append("P-2")
    out = Path(out_dir)
    for folder in ("train", "test"):
        (out / "data" / folder).mkdir(parents=True, exist_ok=True)
    kinds = ANOMALY_KINDS[:4]  # one telemetry value: no correlation to break
    rows, dataset = [], SyntheticDataset(out, spacecraft.lower())
    for index, name in enumerate(names):
        rng = np.random.default_rng([seed, 100 + index])
        entity = generate_entity(length, 1, rng, kinds, per_kind=1, constant_features=0, clip=False)
        for split, values in (("train", entity.train), ("test", entity.test)):
            commands = np.zeros((length, features - 1))
            events = np.flatnonzero(rng.random(length) < 0.01)
            commands[events, rng.integers(0, features - 1, len(events))] = 1.0
            np.save(out / "data" / split / f"{name}.npy", np.hstack([(values - 0.4) * 3.0, commands]))
        sequences = [[a.start, a.end - 1] for a in entity.anomalies]
        classes = "[" + ", ".join("point" if a.kind == "spike" else "contextual" for a in entity.anomalies) + "]"
        rows.append([name, spacecraft, json.dumps(sequences), classes, length])
        if name == "P-2":  # the real file lists P-2 twice with different sequences
            widened = [[max(0, s - 20), min(length - 1, e + 20)] for s, e in sequences]
            rows.append([name, spacecraft, json.dumps(widened), classes, length])
        dataset.anomalies[name] = entity.anomalies
    with (out / "labeled_anomalies.csv").open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["chan_id", "spacecraft", "anomaly_sequences", "class", "num_values"])
        writer.writerows(rows)
    return _write_manifest(dataset, out, seed)


# what each layout writes into its folder: (folder, pattern of its files) or a single file (pattern None)
_WRITES = {
    "smd": [(name, "*.txt") for name in ("train", "test", "test_label", "interpretation_label")] + [(MANIFEST, None)],
    "psm": [(name, None) for name in ("train.csv", "test.csv", "test_label.csv", MANIFEST)],
    "msl": [("data/train", "*.npy"), ("data/test", "*.npy"), ("labeled_anomalies.csv", None), (MANIFEST, None)],
}
_WRITES["smap"] = _WRITES["msl"]
_WRITES["smd_pkl"] = [(".", "machine-*_train.pkl"), (".", "machine-*_test.pkl"), (".", "machine-*_test_label.pkl")]
_WRITES["smd_pkl"].append((MANIFEST, None))
_WRITES["tsb_ad"] = [(".", "*_SMD_id_*_tr_*_1st_*.csv"), (MANIFEST, None)]


def dataset_files(out_dir: str | Path, layout: str) -> list[Path]:
    """The files of a ``layout`` dataset that ``out_dir`` holds already (what :func:`write_synthetic` would
    replace)."""
    found = []
    for name, pattern in _WRITES[layout]:
        path = Path(out_dir) / name
        if pattern is None:
            found += [path] if path.exists() else []
        elif path.is_dir():
            found += sorted(path.glob(pattern))
    return found


def write_synthetic(
    out_dir: str | Path, layout: str = "smd", size: str = "small", seed: int = 0, overwrite: bool = False
) -> SyntheticDataset:
    """Write a preset dataset in ``layout`` "smd" | "smd_pkl" | "tsb_ad" | "psm" | "msl" | "smap" (for
    ``diffusekit timeseries synth``; ``smd_pkl`` and ``tsb_ad`` are the SMD machines in those formats).

    A folder that already holds files of a ``layout`` dataset is a DataError unless ``overwrite``; then those files
    are removed first, so that no file of the old dataset (a machine the new one lacks) is left among the new."""
    if layout not in _WRITES:
        raise ValueError(f"layout must be one of {', '.join(_WRITES)}, got {layout!r}")
    existing = dataset_files(out_dir, layout)
    if existing and not overwrite:
        first = existing[0].relative_to(out_dir).as_posix()
        raise DataError(
            f"{layout.upper()} data exists in this folder ({first}, {len(existing)} file(s)); choose an empty "
            "folder or pass --overwrite",
            out_dir,
        )
    for path in existing:
        path.unlink()
    formats = {"smd": "txt", "smd_pkl": "pkl", "tsb_ad": "tsb_ad"}
    if layout in formats:
        return write_smd_dataset(out_dir, seed=seed, size=size, formats=(formats[layout],))
    if layout == "psm":
        return write_psm_dataset(out_dir, seed=seed, size=size)
    return write_msl_smap_dataset(out_dir, layout, seed=seed, size=size)
