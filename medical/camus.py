"""CAMUS (Leclerc et al., IEEE TMI 38(9), 2019): apical 2CH/4CH echocardiograms with ED/ES and half-sequence labels.

Two on-disk releases are read:

- **NIfTI (2023 CAMUS_public)**: ``<root>/database_nifti/patientXXXX/patientXXXX_{2CH,4CH}_{ED,ES}[_gt].nii.gz``,
  ``..._half_sequence[_gt].nii.gz`` (every frame from ED to ES labelled), ``Info_{2CH,4CH}.cfg``, and the official
  split ``<root>/database_split/subgroup_{training,validation,testing}.txt`` (400/50/50 patients).
- **Legacy MHD (2019 challenge)**: ``<root>/training/patientXXXX/patientXXXX_{2CH,4CH}_{ED,ES}[_gt].mhd`` (+ ``.raw``),
  ``..._sequence.mhd`` and ``Info_{2CH,4CH}.cfg``; ``<root>/testing/`` has no ground truth. Its usual split (and
  Echo-DND's) is the sorted training patients ``[:400]`` / ``[400:450]``; ``testing`` means the ``testing/`` folder.

Labels: 0 background, 1 LV cavity (endocardium), 2 myocardium, 3 left atrium; the epicardium is 1 | 2. Spacing is
read from every file's header (it varies per patient and is anisotropic).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.core.files import read_text
from diffusekit.medical.io import SpatialImage, read_image

__all__ = [
    "CAMUS_LABELS",
    "CAMUS_TARGETS",
    "CamusCase",
    "camus_layout",
    "camus_patients",
    "check_labels",
    "label_mask",
    "load_camus_case",
    "parse_info_cfg",
]

CAMUS_LABELS = {"background": 0, "lv": 1, "myocardium": 2, "atrium": 3}
CAMUS_TARGETS = {"lv": (1,), "myocardium": (2,), "atrium": (3,), "epicardium": (1, 2)}
VIEWS = ("2CH", "4CH")
PHASES = ("ED", "ES")
SPLITS = ("training", "validation", "testing")
_PATIENT = re.compile(r"^patient\d{4}$")


def label_mask(labels: np.ndarray, target: str = "lv") -> np.ndarray:
    """Binary uint8 mask of ``target`` (``lv``, ``myocardium``, ``atrium`` or ``epicardium`` = lv | myocardium)."""
    if target not in CAMUS_TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {sorted(CAMUS_TARGETS)}")
    return np.isin(labels, CAMUS_TARGETS[target]).astype(np.uint8)


def check_labels(labels: SpatialImage) -> SpatialImage:
    """``labels`` when every value is a CAMUS label (0 background, 1 LV, 2 myocardium, 3 atrium); any other value
    (255 masks, fractions from a lossy resize) is a DataError, as it would silently change what is scored."""
    values = np.unique(labels.array)
    wrong = values[~np.isin(values, list(CAMUS_LABELS.values()))]
    if wrong.size:
        shown = ", ".join(f"{v:g}" for v in wrong[:4].tolist()) + (", ..." if wrong.size > 4 else "")
        raise DataError(
            f"label values {shown} are not CAMUS labels (expected 0 background, 1 LV, 2 myocardium, 3 atrium)",
            labels.path,
        )
    return labels


def parse_info_cfg(path: str | Path) -> dict[str, object]:
    """Parse an ``Info_{view}.cfg`` ("Key: value" lines): ED and ES (1-based frame indices into the half sequence,
    required), NbFrame, EF, FrameRate, Age as numbers, the rest (Sex, ImageQuality) as strings."""
    path = Path(path)
    if not path.is_file():
        raise DataError("Info file not found", path)
    info: dict[str, object] = {}
    for number, raw in enumerate(read_text(path).splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise DataError(f"expected 'Key: value', got {line!r}", path, number)
        key, value = key.strip(), value.strip()
        try:
            info[key] = int(value) if re.fullmatch(r"[+-]?\d+", value) else float(value)
        except ValueError:
            info[key] = value
    for key in ("ED", "ES"):
        if not isinstance(info.get(key), int) or info[key] < 1:
            raise DataError(f"missing or invalid {key} (a 1-based frame index)", path)
    return info


def camus_layout(root: str | Path) -> tuple[str, Path]:
    """(``"nifti"`` | ``"mhd"``, the folder holding the patient folders) for a CAMUS root folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError("CAMUS folder not found", root)
    if (root / "database_nifti").is_dir():
        return "nifti", root / "database_nifti"
    if (root / "training").is_dir():
        return "mhd", root / "training"
    if any(_PATIENT.match(p.name) for p in root.iterdir() if p.is_dir()):
        return ("mhd" if any(root.glob("patient*/*.mhd")) else "nifti"), root
    raise DataError("not a CAMUS folder (expected database_nifti/ or training/ with patientXXXX folders)", root)


def _patient_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and _PATIENT.match(p.name))


def camus_patients(root: str | Path, split: str | None = None) -> list[str]:
    """Patients of ``split`` (``training``/``validation``/``testing``; None = every patient folder with data)."""
    root = Path(root)
    layout, folder = camus_layout(root)
    if split is None:
        return _patient_dirs(folder)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}", root)
    if layout == "nifti":
        split_file = root / "database_split" / f"subgroup_{split}.txt"
        if not split_file.is_file():
            raise DataError("split file not found (CAMUS_public ships database_split/)", split_file)
        names = [line.strip() for line in read_text(split_file).splitlines() if line.strip()]
        for number, name in enumerate(names, start=1):
            if not _PATIENT.match(name):
                raise DataError(f"expected a patientXXXX name, got {name!r}", split_file, number)
        missing = [n for n in names if not (folder / n).is_dir()]
        if missing:
            raise DataError(f"{len(missing)} listed patients have no folder, e.g. {missing[0]}", split_file)
        return names
    if split == "testing":
        testing = root / "testing"
        if not testing.is_dir():
            raise DataError("the legacy release keeps its test patients in testing/", testing)
        return _patient_dirs(testing)
    names = _patient_dirs(folder)
    # Echo-DND's legacy split: sorted training patients, first 400 train, next 50 validation (scaled for fewer)
    n_train = 400 if len(names) >= 450 else int(round(len(names) * 400 / 450))
    return names[:n_train] if split == "training" else names[n_train:]


@dataclass(frozen=True)
class CamusCase:
    """One labelled (or unlabelled) 2-D frame: the image, its label map (None without ground truth) and metadata."""

    patient: str
    view: str
    phase: str  # "ED", "ES" or "frameNN" (0-based index into the half sequence)
    image: SpatialImage
    labels: SpatialImage | None
    info: dict[str, object]

    @property
    def name(self) -> str:
        return f"{self.patient}_{self.view}_{self.phase}"


def _find(folder: Path, stem: str, layout: str) -> Path:
    suffixes = (".nii.gz", ".nii") if layout == "nifti" else (".mhd",)
    for suffix in suffixes:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return folder / f"{stem}{suffixes[0]}"


def _patient_folder(root: Path, patient: str) -> tuple[str, Path]:
    layout, folder = camus_layout(root)
    for candidate in (folder / patient, root / "testing" / patient):
        if candidate.is_dir():
            return layout, candidate
    raise DataError(f"patient {patient} not found", folder / patient)


def _check_pair(image: SpatialImage, labels: SpatialImage) -> None:
    if image.array.shape != labels.array.shape:
        raise DataError(
            f"ground truth shape {labels.array.shape} differs from the image {image.array.shape}", labels.path
        )
    if not np.allclose(image.spacing, labels.spacing, rtol=1e-4, atol=1e-6):
        raise DataError(f"ground truth spacing {labels.spacing} differs from the image {image.spacing}", labels.path)


def load_camus_case(root: str | Path, patient: str, view: str, phase: str, require_gt: bool = True) -> list[CamusCase]:
    """Frames of one patient and view: ``phase`` ``ED`` or ``ES`` (one frame) or ``half_sequence`` (every frame of
    the NIfTI half sequence from ED to ES, with its per-frame labels). ``require_gt=False`` allows missing labels."""
    root = Path(root)
    if view not in VIEWS:
        raise DataError(f"unknown view {view!r}; expected 2CH or 4CH", root)
    layout, folder = _patient_folder(root, patient)
    info = parse_info_cfg(folder / f"Info_{view}.cfg")
    stem = f"{patient}_{view}"
    if phase in PHASES:
        image = read_image(_find(folder, f"{stem}_{phase}", layout))
        gt_path = _find(folder, f"{stem}_{phase}_gt", layout)
        labels = None
        if gt_path.is_file():
            labels = check_labels(read_image(gt_path))
            _check_pair(image, labels)
        elif require_gt:
            raise DataError("ground-truth file not found", gt_path)
        return [CamusCase(patient, view, phase, image, labels, info)]
    if phase != "half_sequence":
        raise DataError(f"unknown phase {phase!r}; expected ED, ES or half_sequence", folder)
    if layout != "nifti":
        raise DataError("only the NIfTI release labels the half sequence", folder)
    sequence = read_image(_find(folder, f"{stem}_half_sequence", layout))
    gt_path = _find(folder, f"{stem}_half_sequence_gt", layout)
    gt = check_labels(read_image(gt_path)) if gt_path.is_file() else None
    if gt is None and require_gt:
        raise DataError("ground-truth file not found", gt_path)
    if sequence.array.ndim != 3:
        raise DataError(f"expected a (T, H, W) sequence, got shape {sequence.array.shape}", sequence.path)
    if gt is not None:
        _check_pair(sequence, gt)
    cases = []
    for index in range(sequence.array.shape[0]):
        labels = gt.frame(index) if gt is not None else None
        cases.append(CamusCase(patient, view, f"frame{index:02d}", sequence.frame(index), labels, info))
    return cases
