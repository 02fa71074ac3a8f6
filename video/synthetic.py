"""Synthetic blurry/sharp video in the GoPro, DVD and BSD layouts, made the way GoPro was made.

Each sequence flies a virtual camera over one real photograph shipped with scikit-image (astronaut, coffee, chelsea,
rocket, camera, ...): a smooth random path (translation whose direction and speed drift, plus a small rotation and
zoom) rendered at a high frame rate (`STRIDE` high-rate frames per video frame, as 240 fps is to ~22 fps) with
``cv2.warpAffine`` (bilinear, reflected border) straight into the output frame size, 8-bit as a camera records them.
Every sharp frame is one high-rate frame; its blurry twin is the mean of the K high-rate frames centred on it, K
drawn per frame from `KERNELS` (3 to 11), so neighbouring frames differ in blur and a video model can borrow sharper
detail from them.

Blur spaces: GoPro's ``blur`` (and the DVD and BSD frames) average the gamma-encoded (sRGB, 8-bit) frames, as the
GoPro ``blur`` folder does; ``blur_gamma`` averages in linear light, ``((x / 255) ** 2.2).mean() ** (1 / 2.2)``.
Mild Gaussian sensor noise (sigma 0.5 to 2 grey levels per sequence) is added to the blurry frames before rounding to
uint8. Everything is deterministic for a seed. Each dataset folder gets a ``synthetic.json`` with, per sequence, the
photo, per frame K and the blur path length in pixels (``extent_px``), and for GoPro the first frame number.

At large frame sizes (``frame_size=(1280, 720)``) the photos (at most 1000 pixels wide) are upsampled, so the sharp
frames are softer than real 720p footage; the blur is real motion blur all the same.
"""

from __future__ import annotations

import functools
import json
import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.video.dvd import DVD_TEST

__all__ = [
    "KERNELS",
    "PHOTOS",
    "SIZES",
    "STRIDE",
    "SyntheticSequence",
    "available_photos",
    "render_sequence",
    "write_bsd",
    "write_dataset",
    "write_dvd",
    "write_gopro",
]

STRIDE = 11  # high-rate frames per video frame
KERNELS = (3, 5, 7, 9, 11)  # high-rate frames averaged per blurry frame (odd, so the sharp frame is the centre)
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "immunohistochemistry",
    "hubble_deep_field",
    "stereo_motorcycle",
)
SIZES = {
    # sequences (GoPro train, test; DVD train, test; BSD train, valid, test), frames per sequence, (W, H)
    "small": dict(gopro=(4, 2), dvd=(3, 10), bsd=(2, 1, 1), frames=(12, 16), frame_size=(96, 64)),
    "medium": dict(gopro=(8, 3), dvd=(6, 10), bsd=(4, 2, 2), frames=(24, 40), frame_size=(160, 96)),
}
GOPRO_TRAIN_NAMES = (
    "GOPR0372_07_00",
    "GOPR0372_07_01",
    "GOPR0374_11_00",
    "GOPR0374_11_01",
    "GOPR0374_11_02",
    "GOPR0374_11_03",
    "GOPR0378_13_00",
    "GOPR0379_11_00",
    "GOPR0380_11_00",
    "GOPR0384_11_01",
    "GOPR0384_11_02",
)
GOPRO_TEST_NAMES = (
    "GOPR0384_11_00",
    "GOPR0384_11_05",
    "GOPR0385_11_01",
    "GOPR0396_11_00",
    "GOPR0410_11_00",
    "GOPR0854_11_00",
    "GOPR0862_11_00",
    "GOPR0868_11_00",
    "GOPR0869_11_00",
    "GOPR0871_11_00",
    "GOPR0881_11_01",
)
_GAMMA = 2.2


def available_photos() -> list[str]:
    """The names of `PHOTOS` that the installed scikit-image ships."""
    import skimage.data

    return [name for name in PHOTOS if hasattr(skimage.data, name)]


@functools.cache
def _photo(name: str) -> np.ndarray:
    """A scikit-image photograph as read-only (H, W, 3) uint8 RGB."""
    import skimage.data

    image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle: (left, right, disparity)
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3]).astype(np.uint8)
    image.flags.writeable = False
    return image


@dataclass(frozen=True)
class SyntheticSequence:
    """One rendered sequence: (T, H, W, 3) uint8 RGB frames, per frame K and blur path length in pixels."""

    sharp: np.ndarray
    blur: np.ndarray  # mean of gamma-encoded frames (GoPro "blur")
    blur_gamma: np.ndarray  # mean in linear light (GoPro "blur_gamma")
    kernels: list[int]
    extent_px: list[float]


def _smooth(rng: np.random.Generator, n: int, points: int, scale: float) -> np.ndarray:
    """A smooth random curve of n samples through ``points`` normal(0, scale) control values (cubic spline)."""
    from scipy.interpolate import CubicSpline

    knots = np.linspace(0, n - 1, points)
    return CubicSpline(knots, rng.normal(0.0, scale, points))(np.arange(n))


def render_sequence(
    photo: np.ndarray,
    num_frames: int,
    frame_size: tuple[int, int],
    rng: np.random.Generator,
    kernels: tuple[int, ...] = KERNELS,
    noise: tuple[float, float] = (0.5, 2.0),
) -> SyntheticSequence:
    """Fly a camera over ``photo`` and return ``num_frames`` sharp frames and their blurry twins (module docstring).

    ``kernels``: the K values drawn from per frame (odd, at most ``2 * STRIDE - 1``); ``noise``: the range of the
    per-sequence noise sigma in grey levels.
    """
    import cv2

    w, h = frame_size
    pad = max(kernels) // 2
    n = 2 * pad + STRIDE * num_frames
    points = max(4, n // 24 + 2)
    base = rng.uniform(0.45, 0.9) * (w / 96) ** 0.75  # pixels per high-rate frame at the output size
    heading = rng.uniform(0, 2 * math.pi) + np.cumsum(_smooth(rng, n, points, 0.5)) / 24
    speed = base * np.clip(np.exp(_smooth(rng, n, points, 0.5)), 0.2, 2.5)
    velocity = speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    path = np.cumsum(velocity, axis=0)
    angle = np.radians(_smooth(rng, n, points, 1.5))
    zoom = np.exp(_smooth(rng, n, points, 0.03))

    span = path.max(axis=0) - path.min(axis=0)
    need_w, need_h = span[0] + 1.25 * max(w, h) + 8, span[1] + 1.25 * max(w, h) + 8
    ph, pw = photo.shape[:2]
    scale = max(need_w / pw, need_h / ph) * rng.uniform(1.0, 1.3)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    canvas = cv2.resize(np.ascontiguousarray(photo), None, fx=scale, fy=scale, interpolation=interpolation)
    centre = np.array([canvas.shape[1], canvas.shape[0]]) / 2 - (path.max(axis=0) + path.min(axis=0)) / 2

    def high_rate(j: int) -> np.ndarray:
        """High-rate frame j, 8-bit as the camera records it."""
        c, s = zoom[j] * math.cos(angle[j]), zoom[j] * math.sin(angle[j])
        a = np.array([[c, -s], [s, c]])
        offset = centre + path[j] - a @ np.array([w / 2, h / 2])
        matrix = np.hstack([a, offset[:, None]])
        return cv2.warpAffine(
            canvas,
            matrix,
            (w, h),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )

    def quantise(frame: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(frame), 0, 255).astype(np.uint8)

    linear = ((np.arange(256) / 255) ** _GAMMA).astype(np.float32)  # sRGB-ish code value -> linear light
    sigma = rng.uniform(*noise)
    sharp, blur, blur_gamma, ks, extents = [], [], [], [], []
    for i in range(num_frames):
        centre_index = pad + STRIDE * i + STRIDE // 2
        k = int(rng.choice(kernels))
        window = range(centre_index - k // 2, centre_index + k // 2 + 1)
        encoded = np.zeros((h, w, 3), np.float32)
        light = np.zeros((h, w, 3), np.float32)
        for j in window:
            frame = high_rate(j)
            if j == centre_index:
                sharp.append(frame)
            encoded += frame
            light += linear[frame]
        blur.append(quantise(encoded / k + sigma * rng.standard_normal((h, w, 3), dtype=np.float32)))
        gamma = (light / k) ** (1 / _GAMMA) * 255
        blur_gamma.append(quantise(gamma + sigma * rng.standard_normal((h, w, 3), dtype=np.float32)))
        ks.append(k)
        steps = np.diff(path[window.start : window.stop], axis=0)
        extents.append(round(float(np.linalg.norm(steps, axis=1).sum()), 3))
    return SyntheticSequence(np.stack(sharp), np.stack(blur), np.stack(blur_gamma), ks, extents)


def _frame_size(frame_size: tuple[int, int] | None, spec: dict) -> tuple[int, int]:
    w, h = frame_size if frame_size is not None else spec["frame_size"]
    if int(w) < 8 or int(h) < 8:
        raise ValueError(f"frame_size must be at least 8x8, got {w}x{h}")
    return int(w), int(h)


def _spec(size: str) -> dict:
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; expected one of {', '.join(SIZES)}")
    return SIZES[size]


def _fresh(folder: Path, what: str, overwrite: bool) -> None:
    """Refuse to write into an existing dataset folder unless ``overwrite`` (which removes it first)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        if not overwrite:
            raise DataError(f"already holds a {what} dataset (pass overwrite=True to replace it)", folder)
        if folder.is_dir():
            shutil.rmtree(folder)
        else:
            folder.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def _frame_counts(rng: np.random.Generator, count: int, frames: tuple[int, int]) -> list[int]:
    lo, hi = int(frames[0]), int(frames[1])
    if not 1 <= lo <= hi:
        raise ValueError(f"frames must be (lo, hi) with 1 <= lo <= hi, got {frames}")
    return [int(rng.integers(lo, hi + 1)) for _ in range(count)]


def _write_png(path: Path, frame: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(frame[..., ::-1])):
        raise DataError("OpenCV could not write this file", path)


def _write_jpeg(path: Path, frame: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95]):
        raise DataError("OpenCV could not write this file", path)


def _render(seed: int, salt: int, index: int, photos: list[str], count: int, size, kernels=KERNELS):
    """(photo name, rendered sequence) of sequence ``index`` in group ``salt``: its own RNG, so sequences are
    independent of each other and of the sizes of other groups."""
    rng = np.random.default_rng([seed, salt, index])
    name = photos[int(rng.integers(len(photos)))]
    return name, rng, render_sequence(_photo(name), count, size, rng, kernels)


def _write_meta(folder: Path, meta: dict) -> None:
    (folder / "synthetic.json").write_text(json.dumps(meta, indent=1) + "\n")


def _photos() -> list[str]:
    photos = available_photos()
    if not photos:
        raise RuntimeError("the installed scikit-image ships none of the photographs " + ", ".join(PHOTOS))
    return photos


def write_gopro(
    out: str | Path,
    size: str = "small",
    seed: int = 0,
    frame_size: tuple[int, int] | None = None,
    sequences: tuple[int, int] | None = None,
    frames: tuple[int, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out/GOPRO_Large/{train,test}/<seq>/{blur,blur_gamma,sharp}/NNNNNN.png`` and return that folder.

    ``size`` ``small`` (4 train + 2 test sequences of 12-16 frames at 96x64) or ``medium`` (8 + 3 of 24-40 frames
    at 160x96); ``frame_size=(W, H)``, ``sequences=(train, test)`` and ``frames=(lo, hi)`` override it. Sequence
    names are GoPro's; 6-digit frame numbers start at a random non-zero number.
    """
    spec = _spec(size)
    wh = _frame_size(frame_size, spec)
    counts = sequences if sequences is not None else spec["gopro"]
    root = Path(out) / "GOPRO_Large"
    _fresh(root, "GoPro", overwrite)
    photos = _photos()
    meta = {"generator": "diffusekit.video.synthetic", "size": size, "seed": seed, "frame_size": wh, "sequences": {}}
    for salt, (split, names, count) in enumerate(
        (("train", GOPRO_TRAIN_NAMES, counts[0]), ("test", GOPRO_TEST_NAMES, counts[1]))
    ):
        lengths = _frame_counts(np.random.default_rng([seed, 100 + salt]), count, frames or spec["frames"])
        for index, length in enumerate(lengths):
            name = names[index] if index < len(names) else f"GOPR{900 + index:04d}_11_{salt:02d}"
            photo, rng, seq = _render(seed, salt, index, photos, length, wh)
            first = int(rng.integers(1, 400))
            for folder, stack in (("blur", seq.blur), ("blur_gamma", seq.blur_gamma), ("sharp", seq.sharp)):
                path = root / split / name / folder
                path.mkdir(parents=True)
                for offset, frame in enumerate(stack):
                    _write_png(path / f"{first + offset:06d}.png", frame)
            meta["sequences"][name] = {
                "split": split,
                "photo": photo,
                "first_frame": first,
                "kernels": seq.kernels,
                "extent_px": seq.extent_px,
            }
    _write_meta(root, meta)
    return root


def write_dvd(
    out: str | Path,
    size: str = "small",
    seed: int = 0,
    frame_size: tuple[int, int] | None = None,
    sequences: tuple[int, int] | None = None,
    frames: tuple[int, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out/DeepVideoDeblurring_Dataset/quantitative_datasets/<seq>/{input,GT}/NNNNN.jpg`` (JPEG quality 95,
    5-digit names from 00000) and return ``out/DeepVideoDeblurring_Dataset``.

    The test videos take the official test names (all 10 by default; IMG_0049 always among them, portrait: W and H
    swapped); the training videos other names. ``sequences=(train, test)`` with test <= 10.
    """
    spec = _spec(size)
    wh = _frame_size(frame_size, spec)
    n_train, n_test = sequences if sequences is not None else spec["dvd"]
    if not 1 <= n_test <= len(DVD_TEST):
        raise ValueError(f"DVD test videos must number 1 to {len(DVD_TEST)}, got {n_test}")
    test_names = [*[n for n in DVD_TEST if n != "IMG_0049"][: n_test - 1], "IMG_0049"]
    train_names = ["720p_240fps_1", *[f"IMG_{i:04d}" for i in range(1, 200) if f"IMG_{i:04d}" not in DVD_TEST]]
    root = Path(out) / "DeepVideoDeblurring_Dataset"
    _fresh(root, "DVD", overwrite)
    photos = _photos()
    meta = {"generator": "diffusekit.video.synthetic", "size": size, "seed": seed, "frame_size": wh, "sequences": {}}
    for salt, names in ((10, train_names[:n_train]), (11, test_names)):
        lengths = _frame_counts(np.random.default_rng([seed, 100 + salt]), len(names), frames or spec["frames"])
        for index, (name, length) in enumerate(zip(names, lengths)):
            size_here = (wh[1], wh[0]) if name == "IMG_0049" else wh
            photo, _, seq = _render(seed, salt, index, photos, length, size_here)
            for folder, stack in (("input", seq.blur), ("GT", seq.sharp)):
                path = root / "quantitative_datasets" / name / folder
                path.mkdir(parents=True)
                for number, frame in enumerate(stack):
                    _write_jpeg(path / f"{number:05d}.jpg", frame)
            meta["sequences"][name] = {
                "split": "test" if name in DVD_TEST else "train",
                "photo": photo,
                "frame_size": size_here,
                "kernels": seq.kernels,
                "extent_px": seq.extent_px,
            }
    _write_meta(root, meta)
    return root


def write_bsd(
    out: str | Path,
    size: str = "small",
    seed: int = 0,
    exposure: str = "2ms16ms",
    frame_size: tuple[int, int] | None = None,
    sequences: tuple[int, int, int] | None = None,
    frames: tuple[int, int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``out/BSD/BSD_<exposure>/{train,valid,test}/<seq>/{Blur,Sharp}/RGB/%08d.png`` and return ``out/BSD``.

    The blurry exposure is fixed, as a beam-splitter camera's is: K is the odd number nearest to the exposure ratio
    (16 ms / 2 ms = 8 -> 9 high-rate frames); blur still varies from frame to frame with the camera's speed.
    ``sequences=(train, valid, test)``; sequence names are 3-digit numbers, unique across splits.
    """
    match = re.fullmatch(r"(\d+)ms(\d+)ms", exposure)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"exposure must look like 2ms16ms, got {exposure!r}")
    ratio = int(match.group(2)) / int(match.group(1))
    k = int(min(2 * STRIDE - 1, max(1, 2 * round((ratio - 1) / 2) + 1)))
    spec = _spec(size)
    wh = _frame_size(frame_size, spec)
    counts = sequences if sequences is not None else spec["bsd"]
    base = Path(out) / "BSD"
    root = base / f"BSD_{exposure}"
    _fresh(root, "BSD", overwrite)
    photos = _photos()
    meta = {"generator": "diffusekit.video.synthetic", "size": size, "seed": seed, "frame_size": wh, "sequences": {}}
    number = 0
    for salt, (split, count) in enumerate(zip(("train", "valid", "test"), counts), start=20):
        lengths = _frame_counts(np.random.default_rng([seed, 100 + salt]), count, frames or spec["frames"])
        for index, length in enumerate(lengths):
            name = f"{number:03d}"
            number += 1
            photo, _, seq = _render(seed, salt, index, photos, length, wh, kernels=(k,))
            for folder, stack in (("Blur", seq.blur), ("Sharp", seq.sharp)):
                path = root / split / name / folder / "RGB"
                path.mkdir(parents=True)
                for frame_number, frame in enumerate(stack):
                    _write_png(path / f"{frame_number:08d}.png", frame)
            meta["sequences"][name] = {
                "split": split,
                "photo": photo,
                "kernels": seq.kernels,
                "extent_px": seq.extent_px,
            }
    _write_meta(root, meta)
    return base


def write_dataset(out: str | Path, layout: str = "gopro", **kwargs) -> Path:
    """`write_gopro`, `write_dvd` or `write_bsd` by ``layout``; returns the dataset folder the readers take."""
    writers = {"gopro": write_gopro, "dvd": write_dvd, "bsd": write_bsd}
    if layout not in writers:
        raise ValueError(f"no synthetic writer for layout {layout!r}; expected one of {', '.join(writers)}")
    return writers[layout](out, **kwargs)
