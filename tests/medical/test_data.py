"""CAMUS (NIfTI and legacy MHD) and EchoNet-Dynamic readers on the synthetic writer's files, and every bad input
the issue lists as a DataError naming the file."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from diffusekit.core.errors import DataError
from diffusekit.medical.camus import camus_layout, camus_patients, label_mask, load_camus_case, parse_info_cfg
from diffusekit.medical.datasets import EchoSegmentation, camus_frames, echonet_frames
from diffusekit.medical.echonet import read_echonet_tracings, read_file_list, read_video, tracing_mask
from diffusekit.medical.io import SpatialImage, read_image, write_image
from diffusekit.medical.synthetic import write_camus, write_echonet


@pytest.fixture(scope="module")
def camus(tmp_path_factory) -> Path:
    return write_camus(tmp_path_factory.mktemp("camus"), seed=1)


@pytest.fixture(scope="module")
def camus_mhd(tmp_path_factory) -> Path:
    return write_camus(tmp_path_factory.mktemp("camus_mhd"), seed=1, legacy=True)


@pytest.fixture(scope="module")
def echonet(tmp_path_factory) -> Path:
    return write_echonet(tmp_path_factory.mktemp("echonet"), seed=1)


def test_nifti_and_mhd_read_the_same_pixels_in_the_same_orientation(camus, camus_mhd):
    nii = load_camus_case(camus, "patient0001", "2CH", "ED")[0]
    mhd = load_camus_case(camus_mhd, "patient0001", "2CH", "ED")[0]
    assert nii.image.array.shape == mhd.image.array.shape  # (H, W) from both, despite nibabel's (W, H) order
    np.testing.assert_array_equal(nii.image.array, mhd.image.array)
    np.testing.assert_array_equal(nii.labels.array, mhd.labels.array)
    np.testing.assert_allclose(nii.image.spacing, mhd.image.spacing, rtol=1e-6)
    sy, sx = nii.image.spacing
    assert sy != pytest.approx(sx)  # anisotropic, read from the header
    # the apex is at the top of the image: the LV (label 1) centroid is in the upper half and centred laterally
    rows, cols = np.nonzero(nii.labels.array == 1)
    h, w = nii.labels.array.shape
    assert rows.mean() < 0.6 * h and abs(cols.mean() - w / 2) < 0.2 * w


def test_split_files_and_legacy_split(camus, camus_mhd):
    assert camus_layout(camus)[0] == "nifti" and camus_layout(camus_mhd)[0] == "mhd"
    train, val, test = (camus_patients(camus, s) for s in ("training", "validation", "testing"))
    assert len(train) + len(val) + len(test) == 12 and not set(train) & set(test)
    assert camus_patients(camus_mhd, "testing") == ["patient0012"]
    legacy_train, legacy_val = camus_patients(camus_mhd, "training"), camus_patients(camus_mhd, "validation")
    assert legacy_train + legacy_val == sorted(legacy_train + legacy_val) and len(legacy_val) == 1


def test_half_sequence_frames_and_targets(camus):
    cases = load_camus_case(camus, "patient0002", "4CH", "half_sequence")
    info = parse_info_cfg(camus / "database_nifti" / "patient0002" / "Info_4CH.cfg")
    assert len(cases) == info["NbFrame"] == info["ES"]
    ed = load_camus_case(camus, "patient0002", "4CH", "ED")[0]
    np.testing.assert_array_equal(cases[0].labels.array, ed.labels.array)  # half sequence starts at ED
    areas = [label_mask(c.labels.array, "lv").sum() for c in cases]
    assert areas[0] == max(areas) and areas[-1] == min(areas)  # ED largest, ES smallest cavity
    labels = ed.labels.array
    epi = label_mask(labels, "epicardium")
    np.testing.assert_array_equal(epi, label_mask(labels, "lv") | label_mask(labels, "myocardium"))
    assert label_mask(labels, "atrium").sum() > 0


def test_echonet_reader_masks_and_ed_es_by_area(echonet):
    files = read_file_list(echonet, "TRAIN")
    assert set(read_file_list(echonet)["Split"]) == {"TRAIN", "VAL", "TEST"}
    tracings = read_echonet_tracings(echonet)
    name = files["FileName"][0]
    ed, es = tracings[name]
    assert ed.mask().sum() > es.mask().sum()
    video = read_video(echonet / "Videos" / f"{name}.avi")
    assert video.shape[1:] == (112, 112) and video.dtype == np.uint8
    # the traced cavity is dark blood in the frame it traces
    frame, mask = video[ed.frame], ed.mask()
    assert frame[mask > 0].mean() < 0.5 * frame[(mask == 0) & (frame > 0)].mean()
    frames = echonet_frames(echonet, "VAL")
    assert {f.phase for f in frames} == {"ED", "ES"} and all(f.unit == "px" for f in frames)


def test_tracing_polygon_rule():
    # a square traced by its long axis and two horizontal chords: the polygon is X1 down, then X2 back up
    chords = np.array([[5, 0, 5, 10], [2, 2, 8, 2], [2, 8, 8, 8]], dtype=float)
    mask = tracing_mask(chords, (12, 12))
    assert mask[2:9, 2:9].all() and mask.sum() == 49  # skimage fills the closed polygon, edges included


def test_dataset_samples(camus, echonet):
    ds = EchoSegmentation(str(camus), "camus", "validation", size=64)
    sample = ds[0]
    assert sample["image"].shape == (1, 64, 64) and sample["mask"].shape == (1, 64, 64)
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1 and set(sample["mask"].unique().tolist()) <= {0, 1}
    assert len(ds) == len(camus_frames(camus, "validation")) == 4  # 1 patient x 2 views x ED/ES
    assert len(EchoSegmentation(str(echonet), "echonet", "TEST", size=32)) > 0
    first = EchoSegmentation(str(camus), "camus", "validation", size=64, max_frames=3)  # a cheap validation set
    assert len(first) == 3 and [f.name for f in first.frames] == [f.name for f in ds.frames[:3]]


# ---------------------------------------------------------------------------------------------- bad input
def _copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "copy"))


def test_truncated_nifti(camus, tmp_path):
    root = _copy(camus, tmp_path)
    path = root / "database_nifti" / "patient0001" / "patient0001_2CH_ED.nii.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="patient0001_2CH_ED.nii.gz"):
        load_camus_case(root, "patient0001", "2CH", "ED")


def test_missing_gt_and_shape_or_spacing_mismatch(camus, tmp_path):
    root = _copy(camus, tmp_path)
    folder = root / "database_nifti" / "patient0001"
    (folder / "patient0001_4CH_ES_gt.nii.gz").unlink()
    with pytest.raises(DataError, match="patient0001_4CH_ES_gt.nii.gz: ground-truth file not found"):
        load_camus_case(root, "patient0001", "4CH", "ES")
    assert load_camus_case(root, "patient0001", "4CH", "ES", require_gt=False)[0].labels is None
    gt = read_image(folder / "patient0001_2CH_ED_gt.nii.gz")
    write_image(folder / "patient0001_2CH_ED_gt.nii.gz", SpatialImage(gt.array[:-3], gt.spacing))
    with pytest.raises(DataError, match="ground truth shape"):
        load_camus_case(root, "patient0001", "2CH", "ED")
    gt = read_image(folder / "patient0001_2CH_ES_gt.nii.gz")
    write_image(folder / "patient0001_2CH_ES_gt.nii.gz", SpatialImage(gt.array, (gt.spacing[0] * 2, gt.spacing[1])))
    with pytest.raises(DataError, match="ground truth spacing"):
        load_camus_case(root, "patient0001", "2CH", "ES")


def test_cfg_without_es_and_bad_dimensions(camus, tmp_path):
    root = _copy(camus, tmp_path)
    cfg = root / "database_nifti" / "patient0003" / "Info_2CH.cfg"
    cfg.write_text("\n".join(line for line in cfg.read_text().splitlines() if not line.startswith("ES")))
    with pytest.raises(DataError, match=r"Info_2CH.cfg: missing or invalid ES"):
        load_camus_case(root, "patient0003", "2CH", "ED")
    path = tmp_path / "volume.nii.gz"
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 7), np.float32), np.eye(4)), str(path))
    with pytest.raises(DataError, match="volume.nii.gz: expected a 2-D image"):
        read_image(path)
    with gzip.open(tmp_path / "nan.nii.gz", "wb"):
        pass
    with pytest.raises(DataError, match="nan.nii.gz"):
        read_image(tmp_path / "nan.nii.gz")


def test_undecodable_avi_and_orphan_tracings(echonet, tmp_path):
    root = _copy(echonet, tmp_path)
    name = read_file_list(root, "TEST")["FileName"][0]
    (root / "Videos" / f"{name}.avi").write_bytes(b"RIFF not really a video")
    read_video.cache_clear()
    with pytest.raises(DataError, match=f"{name}.avi: OpenCV cannot decode"):
        echonet_frames(root, "TEST")
    tracings = root / "VolumeTracings.csv"
    ghost = "".join(f"0XGHOST.avi,{x},2,{x + 4},6,{frame}\n" for frame in (5, 6) for x in (1, 2, 3))
    tracings.write_text(tracings.read_text() + ghost)
    with pytest.raises(DataError, match="VolumeTracings.csv: tracings for 1 videos missing from FileList.csv"):
        echonet_frames(root, "TRAIN")
