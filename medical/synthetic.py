"""Synthetic echocardiograms written in the CAMUS (NIfTI 2023 and legacy MHD) and EchoNet-Dynamic layouts.

Each patient gets a heart model in millimetres: the LV cavity is a prolate ellipsoid (semi-axes ``a`` in the 2CH
plane, ``b`` in the 4CH plane, ``c`` along the long axis) hanging from a fixed apex, wrapped in a myocardium that is
open at the base, with the left atrium below the mitral plane. From ED to ES the cavity shortens and narrows, the wall
thickens and the atrium fills; the ground-truth EF written to ``Info_*.cfg`` / ``FileList.csv`` is the exact
ellipsoid EF, ``(V_ED - V_ES) / V_ED`` with ``V = 4/3 pi a b c``, so EF estimated from masks can be checked against it.

Each view is rendered in a fan-shaped sector (apex at the top centre) on its own pixel grid with anisotropic spacing:
tissue grey levels (blood dark, myocardium bright), multiplicative Rayleigh speckle smoothed to a grain of about one
pixel, depth attenuation, and a per-patient image quality (noise). Labels: 0 background, 1 LV cavity, 2 myocardium,
3 atrium (CAMUS). EchoNet videos are 112 x 112 A4C loops with two traced frames (ED, ES) written as the official
chords (row 0 the long axis, then 20 perpendicular chords), in random ED/ES order.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from diffusekit.medical.io import SpatialImage, write_image

__all__ = [
    "DATASET_ENTRIES",
    "Heart",
    "existing_dataset",
    "remove_dataset",
    "render_view",
    "write_camus",
    "write_echonet",
    "write_synthetic",
]

SIZES = {
    # patients (CAMUS; EchoNet videos = 2x), image rows range, half-sequence frames range
    "small": dict(patients=12, rows=(96, 128), frames=(5, 8)),
    "medium": dict(patients=60, rows=(192, 256), frames=(10, 16)),
}
DEPTH_MM = 160.0
HALF_ANGLE = math.radians(38.0)
QUALITY_NOISE = {"Good": 0.04, "Medium": 0.08, "Poor": 0.14}
# the top-level entries each layout writes into its folder (what ``synth`` refuses to overwrite)
DATASET_ENTRIES = {
    "camus": ("database_nifti", "database_split"),
    "camus-mhd": ("training", "testing"),
    "echonet": ("Videos", "FileList.csv", "VolumeTracings.csv"),
}


def existing_dataset(out: str | Path, layout: str) -> list[Path]:
    """The entries of a ``layout`` dataset (`DATASET_ENTRIES`) that already exist in folder ``out``."""
    return [Path(out) / name for name in DATASET_ENTRIES[layout] if (Path(out) / name).exists()]


def remove_dataset(out: str | Path, layout: str) -> None:
    """Remove the entries of a ``layout`` dataset from ``out`` (``synth --overwrite``), so that no file of the old
    dataset (a larger size, another seed) mixes with the new one."""
    for path in existing_dataset(out, layout):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@dataclass(frozen=True)
class Heart:
    """LV geometry in mm at ED and its ES scale factors (see the module docstring)."""

    a: float  # cavity semi-axis in the 2CH plane
    b: float  # ... in the 4CH plane
    c: float  # long semi-axis
    scale_es: tuple[float, float, float]
    wall: float
    apex_depth: float
    tilt_2ch: float  # degrees
    tilt_4ch: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> Heart:
        return cls(
            a=rng.uniform(20, 26),
            b=rng.uniform(21, 27),
            c=rng.uniform(34, 42),
            scale_es=(rng.uniform(0.70, 0.86), rng.uniform(0.70, 0.86), rng.uniform(0.86, 0.95)),
            wall=rng.uniform(8, 11),
            apex_depth=rng.uniform(28, 36),
            tilt_2ch=rng.uniform(-10, 10),
            tilt_4ch=rng.uniform(-10, 10),
        )

    def axes(self, f: float) -> tuple[float, float, float]:
        """(a, b, c) at cycle fraction f (0 = ED, 1 = ES), moving with a smooth cosine ramp."""
        w = 0.5 - 0.5 * math.cos(math.pi * f)
        sa, sb, sc = (1 + w * (s - 1) for s in self.scale_es)
        return self.a * sa, self.b * sb, self.c * sc

    def volume(self, f: float) -> float:
        a, b, c = self.axes(f)
        return 4.0 / 3.0 * math.pi * a * b * c / 1000.0  # mL

    @property
    def ef(self) -> float:
        return (self.volume(0.0) - self.volume(1.0)) / self.volume(0.0) * 100.0


def _view_coords(shape: tuple[int, int], spacing: tuple[float, float], tilt: float) -> tuple[np.ndarray, ...]:
    """Depth y and lateral x of every pixel centre in mm, and (u, v) rotated by ``tilt`` about the probe."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    y = (rows + 0.5) * spacing[0]
    x = (cols + 0.5 - shape[1] / 2) * spacing[1]
    t = math.radians(tilt)
    u = x * math.cos(t) - y * math.sin(t)
    v = x * math.sin(t) + y * math.cos(t)
    return y, x, u, v


def render_view(
    heart: Heart,
    view: str,
    f: float,
    shape: tuple[int, int],
    spacing: tuple[float, float],
    rng: np.random.Generator,
    noise: float = 0.06,
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image, uint8 label map) of the 2CH / 4CH / A4C view at cycle fraction ``f`` on a (H, W) grid."""
    a_all, b_all, c = heart.axes(f)
    a = a_all if view == "2CH" else b_all
    tilt = heart.tilt_2ch if view == "2CH" else heart.tilt_4ch
    y, x, u, v = _view_coords(shape, spacing, tilt)
    cy = heart.apex_depth + c
    wall = heart.wall * (1 + 0.35 * (0.5 - 0.5 * math.cos(math.pi * f)))
    cavity = (u / a) ** 2 + ((v - cy) / c) ** 2 <= 1
    outer = (u / (a + wall)) ** 2 + ((v - cy) / (c + wall)) ** 2 <= 1
    myocardium = outer & (v <= cy + 0.7 * c)
    ra_x, ra_y = 0.9 * heart.a * (1 + 0.15 * f), 0.55 * heart.c * (1 + 0.1 * f)
    atrium = (u / ra_x) ** 2 + ((v - (cy + c + 0.85 * ra_y)) / ra_y) ** 2 <= 1
    labels = np.zeros(shape, dtype=np.uint8)
    labels[atrium] = 3
    labels[myocardium] = 2
    labels[cavity] = 1

    import cv2

    tissue = np.full(shape, 0.32)
    tissue[labels == 1] = 0.05
    tissue[labels == 3] = 0.07
    tissue[labels == 2] = 0.72
    tissue = cv2.GaussianBlur(tissue, (0, 0), 0.8)  # soft boundaries, as the beam blurs them
    speckle = rng.rayleigh(math.sqrt(2 / math.pi), size=shape)  # mean 1
    speckle = cv2.GaussianBlur(speckle, (0, 0), 0.6)
    attenuation = np.exp(-y / (1.4 * DEPTH_MM))
    image = tissue * speckle * attenuation + rng.normal(0, noise, size=shape)
    sector = (np.abs(np.arctan2(x, y)) <= HALF_ANGLE) & (np.hypot(x, y) <= DEPTH_MM)
    image = np.where(sector, image, 0.0)
    labels[~sector] = 0
    return (np.clip(image, 0, 1) * 255).astype(np.uint8), labels


def _grid(rng: np.random.Generator, rows: tuple[int, int]) -> tuple[tuple[int, int], tuple[float, float]]:
    """A per-file (H, W) and anisotropic (sy, sx) covering the sector's depth and width."""
    h = int(rng.integers(rows[0], rows[1] + 1))
    w = int(round(h * rng.uniform(0.8, 1.0)))
    sy = DEPTH_MM / h
    sx = 2 * DEPTH_MM * math.sin(HALF_ANGLE) / w
    return (h, w), (sy, sx)


def write_camus(out: str | Path, size: str = "small", seed: int = 0, legacy: bool = False) -> Path:
    """Write a CAMUS dataset: the 2023 NIfTI layout (``database_nifti/``, ``database_split/``) or, with ``legacy``,
    the 2019 MHD layout (``training/`` with ground truth, ``testing/`` without). Returns ``out``."""
    spec = SIZES[size]
    rng = np.random.default_rng(seed)
    out = Path(out)
    n = spec["patients"]
    names = [f"patient{i:04d}" for i in range(1, n + 1)]
    n_val = n_test = max(1, n // 8)
    groups = {
        "training": names[: n - n_val - n_test],
        "validation": names[n - n_val - n_test : n - n_test],
        "testing": names[n - n_test :],
    }
    suffix = ".mhd" if legacy else ".nii.gz"
    for name in names:
        heart = Heart.random(rng)
        has_gt = not (legacy and name in groups["testing"])
        folder = out / ("database_nifti" if not legacy else ("training" if has_gt else "testing")) / name
        folder.mkdir(parents=True, exist_ok=True)
        quality = str(rng.choice(list(QUALITY_NOISE)))
        frames = int(rng.integers(spec["frames"][0], spec["frames"][1] + 1))
        for view in ("2CH", "4CH"):
            shape, spacing = _grid(rng, spec["rows"])
            rendered = [
                render_view(heart, view, i / (frames - 1), shape, spacing, rng, QUALITY_NOISE[quality])
                for i in range(frames)
            ]
            images = np.stack([r[0] for r in rendered])
            labels = np.stack([r[1] for r in rendered])
            stem = folder / f"{name}_{view}"
            for phase, index in (("ED", 0), ("ES", frames - 1)):
                write_image(f"{stem}_{phase}{suffix}", SpatialImage(images[index], spacing))
                if has_gt:
                    write_image(f"{stem}_{phase}_gt{suffix}", SpatialImage(labels[index], spacing))
            sequence_spacing = (1.0, *spacing)
            if legacy:
                write_image(f"{stem}_sequence{suffix}", SpatialImage(images, sequence_spacing))
            else:
                write_image(f"{stem}_half_sequence{suffix}", SpatialImage(images, sequence_spacing))
                write_image(f"{stem}_half_sequence_gt{suffix}", SpatialImage(labels, sequence_spacing))
            info = {
                "ED": 1,
                "ES": frames,
                "NbFrame": frames,
                "Sex": str(rng.choice(["M", "F"])),
                "Age": int(rng.integers(20, 90)),
                "ImageQuality": quality,
                "EF": round(heart.ef, 2),
                "FrameRate": 50,
            }
            (folder / f"Info_{view}.cfg").write_text("".join(f"{k}: {v}\n" for k, v in info.items()))
    if not legacy:
        split_dir = out / "database_split"
        split_dir.mkdir(parents=True, exist_ok=True)
        for group, members in groups.items():
            (split_dir / f"subgroup_{group}.txt").write_text("".join(m + "\n" for m in members))
    return out


def _tracing_rows(heart: Heart, f: float, tilt: float, spacing: float, chords: int = 20) -> list[tuple[float, ...]]:
    """EchoNet tracing rows (X1, Y1, X2, Y2) in pixels: the long axis, then ``chords`` perpendicular chords."""
    _, a, c = heart.axes(f)
    cy = heart.apex_depth + c
    t = math.radians(tilt)

    def to_pixels(u: float, v: float) -> tuple[float, float]:
        x = u * math.cos(t) + v * math.sin(t)  # inverse of the rotation in _view_coords
        y = -u * math.sin(t) + v * math.cos(t)
        return x / spacing + 56 - 0.5, y / spacing - 0.5

    rows = [(*to_pixels(0.0, cy - c), *to_pixels(0.0, cy + c))]
    for i in range(1, chords + 1):
        v = cy - c + 2 * c * i / (chords + 1)
        half = a * math.sqrt(max(0.0, 1 - ((v - cy) / c) ** 2))
        rows.append((*to_pixels(-half, v), *to_pixels(half, v)))
    return rows


def write_echonet(out: str | Path, size: str = "small", seed: int = 0) -> Path:
    """Write an EchoNet-Dynamic dataset (``Videos/*.avi``, ``FileList.csv``, ``VolumeTracings.csv``)."""
    import cv2

    spec = SIZES[size]
    rng = np.random.default_rng(seed + 1)
    out = Path(out)
    (out / "Videos").mkdir(parents=True, exist_ok=True)
    n = 2 * spec["patients"]
    spacing = DEPTH_MM / 112
    file_rows, tracing_rows = [], []
    for i in range(n):
        name = f"0X{i + 1:04X}SYNTH"
        heart = Heart.random(rng)
        sa, _, sc = heart.scale_es
        heart = replace(heart, b=heart.a, scale_es=(sa, sa, sc))  # A4C only: a circular cross-section
        frames, ed, es = 32, int(rng.integers(0, 4)), int(rng.integers(12, 18))
        quality = QUALITY_NOISE[str(rng.choice(list(QUALITY_NOISE)))]
        writer = cv2.VideoWriter(str(out / "Videos" / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 50, (112, 112))
        for k in range(frames):
            # ED at frame ed, ES at frame es, back towards ED by the end of the loop
            phase = (k - ed) / (es - ed) if k <= es else max(0.0, 1 - (k - es) / (frames - es))
            image, _ = render_view(
                heart, "4CH", min(max(phase, 0.0), 1.0), (112, 112), (spacing, spacing), rng, quality
            )
            writer.write(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        writer.release()
        split = "TRAIN" if i < n - 2 * max(1, n // 8) else ("VAL" if i < n - max(1, n // 8) else "TEST")
        file_rows.append(
            f"{name},{heart.ef:.4f},{heart.volume(1.0):.4f},{heart.volume(0.0):.4f},112,112,50,{frames},{split}"
        )
        order = [(ed, 0.0), (es, 1.0)] if rng.random() < 0.5 else [(es, 1.0), (ed, 0.0)]
        for frame, f in order:
            for row in _tracing_rows(heart, f, heart.tilt_4ch, spacing):
                tracing_rows.append(f"{name}.avi," + ",".join(f"{value:.4f}" for value in row) + f",{frame}")
    header = "FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split\n"
    (out / "FileList.csv").write_text(header + "".join(r + "\n" for r in file_rows))
    (out / "VolumeTracings.csv").write_text("FileName,X1,Y1,X2,Y2,Frame\n" + "".join(r + "\n" for r in tracing_rows))
    return out


def write_synthetic(out: str | Path, size: str = "small", seed: int = 0) -> dict[str, Path]:
    """Both datasets under ``out``: ``camus/`` (NIfTI layout) and ``echonet/``."""
    out = Path(out)
    return {"camus": write_camus(out / "camus", size, seed), "echonet": write_echonet(out / "echonet", size, seed)}
