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
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError

__all__ = ["SpatialImage", "image_format", "read_image", "write_image"]

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
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise DataError("the image holds NaN or infinite values", path)
    return array


def _read_nifti(path: Path) -> SpatialImage:
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, nib.filebasedimages.ImageFileError) as err:
        raise DataError(f"cannot read NIfTI ({err})", path) from None
    zooms = tuple(float(z) for z in img.header.get_zooms())
    while data.ndim > 2 and data.shape[-1] == 1:  # trailing singleton axes (a 2-D image saved as W x H x 1)
        data = data[..., 0]
    _check_array(data, path)
    if data.ndim == 2:  # (W, H) -> (H, W)
        return SpatialImage(np.ascontiguousarray(data.T), (zooms[1], zooms[0]), path)
    # (W, H, T) -> (T, H, W)
    return SpatialImage(np.ascontiguousarray(data.transpose(2, 1, 0)), (zooms[2], zooms[1], zooms[0]), path)


def _read_mhd(path: Path) -> SpatialImage:
    import SimpleITK as sitk

    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise DataError(f"cannot read MHD/RAW ({first[-1] if first else err})", path) from None
    data = sitk.GetArrayFromImage(img)  # (T,) H, W
    spacing = tuple(float(s) for s in reversed(img.GetSpacing()))  # (st,) sy, sx
    if data.ndim == 3 and data.shape[0] == 1:
        data, spacing = data[0], spacing[1:]
    return SpatialImage(_check_array(data, path), spacing, path)


def _read_png(path: Path) -> SpatialImage:
    import cv2

    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise DataError("cannot read PNG (missing or corrupt)", path)
    if data.ndim == 3:  # colour: an ultrasound frame stored as RGB(A) is grey in every channel
        data = cv2.cvtColor(data[..., :3], cv2.COLOR_BGR2GRAY)
    return SpatialImage(_check_array(data, path), (1.0, 1.0), path, unit="px")


def read_image(path: str | Path) -> SpatialImage:
    """Read a NIfTI, MHD or PNG image with its spacing (PNG has none: spacing 1 px)."""
    path = Path(path)
    fmt = image_format(path)
    if not path.is_file():
        raise DataError("image file not found", path)
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
