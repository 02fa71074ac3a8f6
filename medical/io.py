"""Reading and writing echocardiography images with their pixel spacing: NIfTI (nibabel), MHD/RAW (SimpleITK), PNG.

Every reader returns a `SpatialImage`: the array in ``(H, W)`` or ``(T, H, W)`` order (rows first, as displayed) and
the spacing in millimetres in the same order, read from the file's header. The two libraries order axes differently:
SimpleITK's ``GetArrayFromImage`` is already ``(T,) H, W`` with ``GetSpacing()`` = ``(sx, sy[, st])``, while nibabel's
``get_fdata`` is ``(W, H[, T])`` with zooms ``(sx, sy[, st])``, so the NIfTI arrays are transposed here. Writers take
the same `SpatialImage` plus, optionally, the reference file whose geometry (affine, origin, direction) to copy, so a
prediction lands on the input's grid.
"""

from __future__ import annotations

import gzip
import logging
import math
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.core.files import image_truncation, native_stderr_captured, read_bytes, read_text

__all__ = [
    "SpatialImage",
    "check_readable",
    "check_spacing",
    "decode_image",
    "image_format",
    "read_image",
    "write_image",
]

logger = logging.getLogger(__name__)
FLOAT32_MAX = float(np.finfo(np.float32).max)
# MetaImage element types -> bytes per value (the types SimpleITK writes and reads)
MET_BYTES = {
    "MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4, "MET_UINT": 4, "MET_LONG": 8,
    "MET_ULONG": 8, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4, "MET_DOUBLE": 8,
}  # fmt: skip

NIFTI_SUFFIXES = (".nii.gz", ".nii")
MHD_SUFFIXES = (".mhd",)
PNG_SUFFIXES = (".png",)


@dataclass(frozen=True)
class SpatialImage:
    """An image array with its spacing. ``array``: ``(H, W)`` or ``(T, H, W)``; ``spacing``: mm per pixel in the
    same axis order (``(sy, sx)`` or ``(st, sy, sx)``); ``unit``: ``"mm"`` or ``"px"`` (no physical spacing known)."""

    array: np.ndarray
    spacing: tuple[float, ...]
    path: Path | None = None
    unit: str = "mm"

    @property
    def pixel_spacing(self) -> tuple[float, float]:
        """(sy, sx) of one frame."""
        return (float(self.spacing[-2]), float(self.spacing[-1]))

    def frame(self, index: int) -> SpatialImage:
        """Frame ``index`` (0-based) of a ``(T, H, W)`` image as a 2-D image."""
        if self.array.ndim != 3:
            raise DataError(f"expected a sequence (T, H, W), got shape {self.array.shape}", self.path)
        if not 0 <= index < self.array.shape[0]:
            raise DataError(f"frame {index} out of range 0..{self.array.shape[0] - 1}", self.path)
        return replace(self, array=self.array[index], spacing=self.spacing[-2:])


def decode_image(path: str | Path, flags: int | None = None) -> np.ndarray:
    """An image file decoded by OpenCV (``flags``: default ``IMREAD_UNCHANGED``), checked to be complete first;
    the decoders' stderr warnings are kept off the terminal. A DataError names the file and the problem."""
    import cv2

    path = Path(path)
    data = read_bytes(path)
    problem = image_truncation(data)
    if problem:
        raise DataError(problem, path)
    with native_stderr_captured() as noise:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED if flags is None else flags)
    if image is None:
        reason = noise[-1] if noise else "not an image format OpenCV reads"
        raise DataError(f"cannot decode the image ({reason})", path)
    if any("premature end" in line.lower() or "corrupt" in line.lower() for line in noise):
        raise DataError(f"corrupt image data ({noise[0]})", path)
    return image


def check_spacing(spacing: tuple[float, ...], path: str | Path, what: str = "pixel spacing") -> tuple[float, ...]:
    """``spacing`` when every value is a finite positive number; else a DataError (distances would be wrong)."""
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        shown = ", ".join(f"{s:g}" for s in spacing)
        raise DataError(f"{what} ({shown}) must be positive and finite; the header is broken", path)
    return spacing


def image_format(path: str | Path) -> str:
    """``"nifti"``, ``"mhd"`` or ``"png"`` from the file name."""
    name = Path(path).name.lower()
    for fmt, suffixes in (("nifti", NIFTI_SUFFIXES), ("mhd", MHD_SUFFIXES), ("png", PNG_SUFFIXES)):
        if name.endswith(suffixes):
            return fmt
    raise DataError("unsupported image format (expected .nii, .nii.gz, .mhd or .png)", path)


def _check_array(array: np.ndarray, path: Path) -> np.ndarray:
    if array.ndim not in (2, 3):
        raise DataError(f"expected a 2-D image or a 2-D+time sequence, got {array.ndim} dimensions {array.shape}", path)
    if array.size == 0:
        raise DataError("the image is empty", path)
    if array.dtype.kind not in "biuf":
        raise DataError(f"expected numeric pixel values, got {array.dtype}", path)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DataError("the image holds NaN or infinite values", path)
        peak = float(np.abs(array).max())
        if peak > FLOAT32_MAX:
            raise DataError(f"pixel values up to {peak:.3g} overflow float32 (at most {FLOAT32_MAX:.3g})", path)
    return array


def _raw_zooms(path: Path, header_class) -> np.ndarray:
    """pixdim[1:] as stored in the file: nibabel's own header check replaces zero or negative values on load."""
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as stream:
        header = header_class.from_fileobj(stream, check=False)
    return np.asarray(header["pixdim"][1:], dtype=np.float64)


def _read_nifti(path: Path) -> SpatialImage:
    import nibabel as nib
    from nibabel.imageglobals import LoggingOutputSuppressor

    try:
        with LoggingOutputSuppressor():  # nibabel logs (and repairs) header problems; they are errors here
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)
            stored = _raw_zooms(path, type(img.header))
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"cannot read NIfTI ({str(err).strip() or type(err).__name__})", path) from None
    zooms = tuple(float(z) for z in img.header.get_zooms())
    while data.ndim > 2 and data.shape[-1] == 1:  # trailing singleton axes (a 2-D image saved as W x H x 1)
        data = data[..., 0]
    _check_array(data, path)
    check_spacing(tuple(float(z) for z in stored[: data.ndim]), path, "pixdim")
    if data.ndim == 2:  # (W, H) -> (H, W)
        return SpatialImage(np.ascontiguousarray(data.T), (zooms[1], zooms[0]), path)
    # (W, H, T) -> (T, H, W)
    return SpatialImage(np.ascontiguousarray(data.transpose(2, 1, 0)), (zooms[2], zooms[1], zooms[0]), path)


def check_readable(path: Path) -> None:
    """DataError when ``path`` cannot be opened for reading (libraries report that as "no such file" or not at all)."""
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise DataError(f"cannot read the file ({error.strerror or error})", path) from None


def _mhd_header(path: Path) -> dict[str, str]:
    """The ``Key = Value`` lines of a MetaImage header, checked so that SimpleITK is only handed a consistent pair:
    positive sizes and spacings, a known element type and a data file that holds every voxel."""
    text = read_text(path)
    header = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        key, sep, value = raw.partition("=")
        if not sep or not key.strip() or "\x00" in raw:
            raise DataError(f"not a MetaImage header: expected 'Key = Value', got {raw.strip()[:60]!r}", path, number)
        header[key.strip()] = value.strip()
    try:
        ndims = int(header["NDims"])
        sizes = [int(v) for v in header["DimSize"].split()]
        spacing = [float(v) for v in header.get("ElementSpacing", header.get("ElementSize", "")).split()] or [1.0]
        channels = int(header.get("ElementNumberOfChannels", "1"))
    except KeyError as missing:
        raise DataError(f"the MetaImage header lacks {missing.args[0]}", path) from None
    except ValueError:
        raise DataError("NDims, DimSize, ElementSpacing and ElementNumberOfChannels must be numbers", path) from None
    if len(sizes) != ndims or any(size < 1 for size in sizes):
        raise DataError(f"DimSize {header['DimSize']!r}: expected {ndims} positive sizes (NDims = {ndims})", path)
    check_spacing(tuple(spacing), path, "ElementSpacing")
    kind = header.get("ElementType", "")
    if kind not in MET_BYTES:
        raise DataError(f"ElementType {kind!r} is not a MetaImage type ({', '.join(MET_BYTES)})", path)
    source = header.get("ElementDataFile", "")
    compressed = header.get("CompressedData", "False").lower() == "true"
    if source and source not in ("LOCAL", "LIST") and "%" not in source and not compressed:
        raw = path.parent / source
        needed = math.prod(sizes) * MET_BYTES[kind] * max(channels, 1)
        if not raw.is_file():
            raise DataError(f"the data file named by {path.name} is missing", raw)
        check_readable(raw)
        if raw.stat().st_size < needed:
            raise DataError(
                f"truncated: {raw.stat().st_size} bytes, the header {path.name} needs {needed} ({header['DimSize']})",
                raw,
            )
    return header


def _read_mhd(path: Path) -> SpatialImage:
    import SimpleITK as sitk

    _mhd_header(path)
    try:
        with native_stderr_captured() as noise:
            img = sitk.ReadImage(str(path))
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reason = "; ".join(noise) or (lines[-1] if lines else type(err).__name__)
        raise DataError(f"cannot read MHD/RAW ({reason})", path) from None
    data = sitk.GetArrayFromImage(img)  # (T,) H, W
    spacing = check_spacing(tuple(float(s) for s in reversed(img.GetSpacing())), path, "ElementSpacing")  # (st,) sy, sx
    if data.ndim == 3 and data.shape[0] == 1:
        data, spacing = data[0], spacing[1:]
    return SpatialImage(_check_array(data, path), spacing, path)


def _read_png(path: Path) -> SpatialImage:
    import cv2

    data = decode_image(path)
    if data.ndim == 3:  # colour: an ultrasound frame stored as RGB(A) is grey in every channel
        data = cv2.cvtColor(data[..., :3], cv2.COLOR_BGR2GRAY)
    return SpatialImage(_check_array(data, path), (1.0, 1.0), path, unit="px")


def read_image(path: str | Path) -> SpatialImage:
    """Read a NIfTI, MHD or PNG image with its spacing (PNG has none: spacing 1 px)."""
    path = Path(path)
    fmt = image_format(path)
    if not path.is_file():
        raise DataError("image file not found", path)
    check_readable(path)
    return {"nifti": _read_nifti, "mhd": _read_mhd, "png": _read_png}[fmt](path)


def write_image(path: str | Path, image: SpatialImage, reference: str | Path | None = None) -> Path:
    """Write ``image`` as NIfTI, MHD or PNG (by suffix). With ``reference`` (a NIfTI or MHD file of the same grid),
    the affine / origin / direction are copied from it, so the output overlays the reference in any viewer."""
    path = Path(path)
    fmt = image_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(image.array)
    if fmt == "png":
        import cv2

        if array.ndim != 2:
            raise DataError(f"PNG holds one 2-D frame, got shape {array.shape}", path)
        if not cv2.imwrite(str(path), array.astype(np.uint8)):
            raise DataError("cannot write PNG", path)
        return path
    if fmt == "nifti":
        import nibabel as nib

        data = array.T if array.ndim == 2 else array.transpose(2, 1, 0)
        if reference is not None and image_format(reference) == "nifti":
            ref = nib.load(str(reference))
            header = ref.header.copy()
            header.set_data_dtype(data.dtype)
            out = nib.Nifti1Image(data, ref.affine, header)
        else:
            sx, sy = image.spacing[-1], image.spacing[-2]
            zooms = (sx, sy) + ((image.spacing[0],) if array.ndim == 3 else ())
            affine = np.diag([sx, sy, 1.0, 1.0])
            out = nib.Nifti1Image(data, affine)
            out.header.set_zooms(zooms)
        nib.save(out, str(path))
        return path
    import SimpleITK as sitk

    out = sitk.GetImageFromArray(array)
    if reference is not None and image_format(reference) == "mhd":
        ref = sitk.ReadImage(str(reference))
        if ref.GetSize() != out.GetSize():
            raise DataError(f"reference grid {ref.GetSize()} differs from the image {out.GetSize()}", reference)
        out.CopyInformation(ref)
    else:
        out.SetSpacing(tuple(float(s) for s in reversed(image.spacing)))
    sitk.WriteImage(out, str(path))
    return path
