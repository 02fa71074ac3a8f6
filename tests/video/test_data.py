"""Video readers (GoPro, DVD, BSD, paired folders, prediction input) on the synthetic writers' files, the training
and evaluation datasets, and every bad input the issue lists as a DataError naming the file."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DATASETS

from diffusekit.core.errors import DataError
from diffusekit.video.bsd import bsd_sequences
from diffusekit.video.datasets import VideoDeblurClips, VideoDeblurSequences, find_sequences, temporal_indices
from diffusekit.video.dvd import DVD_TEST, dvd_sequences
from diffusekit.video.folders import input_sequence, paired_sequences
from diffusekit.video.frames import (
    VideoSequence,
    frame_paths,
    read_frame,
    read_frames,
    read_video,
    to_tensor,
    to_uint8,
    write_frames,
    write_video,
)
from diffusekit.video.gopro import gopro_sequences
from diffusekit.video.synthetic import write_bsd, write_dvd, write_gopro


@pytest.fixture(scope="module")
def gopro(tmp_path_factory) -> Path:
    return write_gopro(tmp_path_factory.mktemp("gopro"), seed=3)


@pytest.fixture(scope="module")
def dvd(tmp_path_factory) -> Path:
    return write_dvd(tmp_path_factory.mktemp("dvd"), seed=3, sequences=(2, 10), frames=(4, 6))


@pytest.fixture(scope="module")
def bsd(tmp_path_factory) -> Path:
    return write_bsd(tmp_path_factory.mktemp("bsd"), seed=3, exposure="1ms8ms", frames=(4, 6))


def _rgb(h: int, w: int, value: int = 0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (h, w, 3)) if value is None else np.full((h, w, 3), value)).astype(np.uint8)


def _folders_dataset(root: Path, count: int = 8, size: tuple[int, int] = (24, 20), same: bool = True) -> Path:
    """``root/train/{blur,sharp}/seq/`` where frame k is ``10 k`` plus a fixed random pattern (so flips show) and,
    with ``same``, sharp == blur."""
    pattern = np.random.default_rng(0).integers(0, 60, (size[1], size[0], 3))
    frames = np.stack([(pattern + 10 * k).astype(np.uint8) for k in range(count)])
    names = [f"{k + 7:04d}.png" for k in range(count)]
    write_frames(root / "train" / "blur" / "seq", frames, names)
    write_frames(root / "train" / "sharp" / "seq", frames if same else 255 - frames, names)
    return root


# --- frames -------------------------------------------------------------------------------------------------------


def test_frame_paths_sort_numerically_without_assuming_a_start(tmp_path):
    frame = _rgb(4, 4)
    for name in ("10.png", "9.png", "000100.png", "000047.png", "frame_2.png", "frame_11.png"):
        cv2.imwrite(str(tmp_path / name), frame)
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / ".hidden.png").write_bytes(b"")
    assert [p.name for p in frame_paths(tmp_path)] == [
        "9.png",
        "10.png",
        "000047.png",
        "000100.png",
        "frame_2.png",
        "frame_11.png",
    ]
    with pytest.raises(DataError, match="frame folder not found"):
        frame_paths(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no frames") as error:
        frame_paths(tmp_path / "empty")
    assert error.value.path == tmp_path / "empty"


def test_grey_16bit_rgba_bmp_tiff_frames_are_converted(tmp_path):
    grey = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    cv2.imwrite(str(tmp_path / "grey.png"), grey)
    np.testing.assert_array_equal(read_frame(tmp_path / "grey.png"), np.repeat(grey[..., None], 3, axis=2))
    deep = np.random.default_rng(0).integers(0, 65536, (6, 8, 3)).astype(np.uint16)  # BGR on disk
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    frame = read_frame(tmp_path / "deep.png")
    assert frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, np.rint(deep[..., ::-1] / 257).astype(np.uint8))
    rgb = _rgb(6, 8, None, seed=1)
    rgba = np.dstack([rgb[..., ::-1], np.full((6, 8), 7, np.uint8)])
    cv2.imwrite(str(tmp_path / "alpha.png"), rgba)
    np.testing.assert_array_equal(read_frame(tmp_path / "alpha.png"), rgb)
    for suffix in (".bmp", ".tif", ".jpg"):
        cv2.imwrite(str(tmp_path / f"a{suffix}"), rgb[..., ::-1])
        out = read_frame(tmp_path / f"a{suffix}")
        assert out.shape == (6, 8, 3) and out.dtype == np.uint8
        if suffix != ".jpg":
            np.testing.assert_array_equal(out, rgb)


def test_bad_frames_are_one_data_error_naming_the_file_and_silent(tmp_path, capfd):
    image = _rgb(64, 64, None)
    cv2.imwrite(str(tmp_path / "ok.png"), image)
    cv2.imwrite(str(tmp_path / "ok.jpg"), image)
    for suffix in ("png", "jpg"):
        data = (tmp_path / f"ok.{suffix}").read_bytes()
        (tmp_path / f"cut.{suffix}").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.png").write_text("this is not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    capfd.readouterr()
    cases = {
        "cut.png": "cannot decode",
        "cut.jpg": "cannot decode|truncated",
        "text.png": "not an image",
        "empty.png": "empty file",
        "folder.png": "expected an image file",
        "missing.png": "not found",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=message) as error:
            read_frame(tmp_path / name)
        assert error.value.path == tmp_path / name
        assert "\n" not in str(error.value)
    assert capfd.readouterr().err == ""  # libpng / libjpeg printed nothing


def test_unreadable_file_is_a_data_error(tmp_path, monkeypatch):
    cv2.imwrite(str(tmp_path / "locked.png"), _rgb(4, 4))

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)  # chmod 000 does not stop root, who runs CI
    with pytest.raises(DataError, match="cannot read this file \\(Permission denied\\)") as error:
        read_frame(tmp_path / "locked.png")
    assert error.value.path == tmp_path / "locked.png"


def test_read_frames_needs_one_size(tmp_path):
    cv2.imwrite(str(tmp_path / "1.png"), _rgb(8, 10))
    cv2.imwrite(str(tmp_path / "2.png"), _rgb(8, 10))
    cv2.imwrite(str(tmp_path / "3.png"), _rgb(10, 8))
    with pytest.raises(DataError, match="8x10 differs from 10x8 of 1.png") as error:
        read_frames(frame_paths(tmp_path))
    assert error.value.path == tmp_path / "3.png"


def test_video_round_trip_and_unreadable_video(tmp_path, capfd):
    frames = np.stack([_rgb(33, 47, 40 * k) for k in range(4)])  # odd sizes are padded by one row and column
    path = write_video(tmp_path / "clip.mp4", frames, fps=5)
    video = read_video(path)
    assert video.shape == (4, 34, 48, 3) and video.dtype == np.uint8
    assert np.abs(video[:, :33, :47].astype(int) - frames).mean() < 4  # lossy codec
    name, read, names = input_sequence(path)
    assert name == "clip" and read.shape == video.shape and names[:2] == ["00000.png", "00001.png"]
    (tmp_path / "bad.mp4").write_text("not a video")
    capfd.readouterr()
    with pytest.raises(DataError, match="cannot open|no frame") as error:
        read_video(tmp_path / "bad.mp4")
    assert error.value.path == tmp_path / "bad.mp4"
    with pytest.raises(DataError, match="not found"):
        read_video(tmp_path / "missing.mp4")
    assert capfd.readouterr().err == ""


def test_tensor_conversion_round_trips_and_refuses_nan():
    frames = np.random.default_rng(0).integers(0, 256, (2, 5, 6, 3)).astype(np.uint8)
    tensor = to_tensor(frames)
    assert tensor.shape == (2, 3, 5, 6) and tensor.dtype == torch.float32
    assert 0 <= tensor.min() and tensor.max() <= 1
    np.testing.assert_array_equal(to_uint8(tensor), frames)
    assert to_uint8(torch.full((1, 3, 2, 2), 1.7)).max() == 255 and to_uint8(torch.full((3, 2, 2), -1.0)).max() == 0
    bad = tensor.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(DataError, match="NaN"):
        to_uint8(bad)
    with pytest.raises(ValueError):
        to_tensor(frames.astype(np.float32))


# --- readers ------------------------------------------------------------------------------------------------------


def test_gopro_reader(gopro):
    assert gopro.name == "GOPRO_Large"
    train = gopro_sequences(gopro, "train")
    test = gopro_sequences(gopro.parent, "test")  # the parent works too
    assert len(train) == 4 and len(test) == 2
    assert test[0].name == "GOPR0384_11_00" and train[0].name == "GOPR0372_07_00"
    for seq in train + test:
        numbers = [int(p.stem) for p in seq.blur]
        assert numbers[0] > 0 and numbers == list(range(numbers[0], numbers[0] + len(seq)))
        assert len(seq.blur[0].stem) == 6 and [p.name for p in seq.sharp] == seq.frame_names
        assert seq.blur[0].parent.name == "blur"
    gamma = gopro_sequences(gopro, "test", blur="blur_gamma")
    assert gamma[0].blur[0].parent.name == "blur_gamma"
    with pytest.raises(DataError, match="unknown GoPro blur"):
        gopro_sequences(gopro, "test", blur="sharp")
    with pytest.raises(DataError, match="unknown GoPro split"):
        gopro_sequences(gopro, "valid")


def test_dvd_reader_test_list_and_portrait(dvd):
    test = dvd_sequences(dvd, "test")
    assert sorted(s.name for s in test) == sorted(DVD_TEST)
    train = dvd_sequences(dvd / "quantitative_datasets", "train")  # quantitative_datasets itself
    assert len(train) == 2 and not {s.name for s in train} & set(DVD_TEST)
    assert len(dvd_sequences(dvd.parent, "all")) == 12  # the parent of DeepVideoDeblurring_Dataset
    assert test[0].blur[0].name == "00000.jpg" and test[0].blur[0].parent.name == "input"
    portrait = VideoDeblurSequences(str(dvd), "dvd", "test")
    sizes = {item["name"]: tuple(item["blur"].shape[2:]) for item in portrait}
    assert sizes["IMG_0049"] == (96, 64) and sizes["IMG_0003"] == (64, 96)  # (H, W): portrait per sequence
    shutil.rmtree(dvd / "quantitative_datasets" / "IMG_0021" / "input")
    try:
        with pytest.raises(DataError, match="input/ and GT/") as error:
            dvd_sequences(dvd, "test")
        assert error.value.path.name == "IMG_0021"
    finally:
        write_dvd(dvd.parent, seed=3, sequences=(2, 10), frames=(4, 6), overwrite=True)


def test_dvd_partial_test_split_warns(tmp_path):
    root = write_dvd(tmp_path, sequences=(1, 2), frames=(2, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [s.name for s in dvd_sequences(root, "test")] == ["720p_240fps_2", "IMG_0049"]
    assert "only 2 of the 10 official DVD test videos" in str(caught[0].message)


def test_bsd_reader_exposure(bsd):
    assert bsd.name == "BSD"
    assert [s.name for s in bsd_sequences(bsd, "train", exposure="1ms8ms")] == ["000", "001"]
    valid = bsd_sequences(bsd / "BSD_1ms8ms", "val", exposure="1ms8ms")
    assert [s.name for s in valid] == ["002"]
    test = bsd_sequences(bsd.parent, "test", exposure="1ms8ms")
    assert test[0].blur[0].name == "00000000.png" and test[0].blur[0].parent.parent.name == "Blur"
    with pytest.raises(DataError, match="no BSD_2ms16ms folder; found BSD_1ms8ms"):
        bsd_sequences(bsd, "test")
    with pytest.raises(DataError, match="not the requested exposure"):
        bsd_sequences(bsd / "BSD_1ms8ms", "test", exposure="3ms24ms")
    with pytest.raises(DataError, match="invalid BSD exposure"):
        bsd_sequences(bsd, "test", exposure="fast")


def test_readers_reject_missing_and_wrong_layouts(gopro, dvd, bsd, tmp_path):
    with pytest.raises(DataError, match="not found") as error:
        gopro_sequences(tmp_path / "nowhere")
    assert error.value.path == tmp_path / "nowhere"
    for reader, other in ((gopro_sequences, dvd), (dvd_sequences, gopro), (bsd_sequences, gopro)):
        with pytest.raises(DataError, match="expected .*<seq>"):
            reader(other)
    with pytest.raises(DataError, match="unknown video layout"):
        find_sequences(gopro, "reds", "test")
    with pytest.raises(DataError, match="takes no option 'exposure'"):
        find_sequences(gopro, "gopro", "test", exposure="2ms16ms")
    with pytest.raises(DataError, match="GoPro split folder not found"):
        gopro_sequences(_copy_split(gopro, tmp_path, "train"), "test")


def _copy_split(gopro: Path, tmp_path: Path, split: str) -> Path:
    root = tmp_path / "GOPRO_Large"
    shutil.copytree(gopro / split, root / split)
    return root


def test_unequal_counts_and_sizes_between_blur_and_sharp(tmp_path):
    write_frames(tmp_path / "blur" / "a", np.stack([_rgb(8, 8)] * 3), ["1.png", "2.png", "3.png"])
    write_frames(tmp_path / "sharp" / "a", np.stack([_rgb(8, 8)] * 2), ["1.png", "2.png"])
    with pytest.raises(DataError, match=r"3 blurry frames in .*blur/a but 2 sharp frames in .*sharp/a"):
        paired_sequences(tmp_path / "blur", tmp_path / "sharp")
    write_frames(tmp_path / "sharp" / "a", np.stack([_rgb(8, 10)] * 3), ["1.png", "2.png", "3.png"])
    with pytest.raises(DataError, match="sharp frames are 10x8 but blurry frames are 8x8") as error:
        VideoDeblurSequences(str(tmp_path), "folders", None)[0]
    assert error.value.path.parent.name == "a"
    with pytest.raises(DataError, match="sharp frame is 10x8") as error:
        VideoDeblurClips(str(tmp_path), "folders", None, num_frames=2, crop=4)
    with pytest.raises(DataError, match="no sharp folder"):
        (tmp_path / "blur" / "b").mkdir()
        paired_sequences(tmp_path / "blur", tmp_path / "sharp")


def test_paired_folders_and_prediction_inputs(tmp_path):
    frames = np.stack([_rgb(8, 12, 20 * k) for k in range(3)])
    write_frames(tmp_path / "flat_blur", frames, ["7.jpg", "8.jpg", "9.jpg"])  # written as PNG
    write_frames(tmp_path / "flat_sharp", frames, ["a7.png", "a8.png", "a9.png"])
    (seq,) = paired_sequences(tmp_path / "flat_blur", tmp_path / "flat_sharp")
    assert seq.name == "flat_blur" and seq.frame_names == ["7.png", "8.png", "9.png"]
    (alone,) = paired_sequences(tmp_path / "flat_blur")
    assert alone.sharp is None
    name, read, names = input_sequence(tmp_path / "flat_blur")
    assert name == "flat_blur" and read.shape == (3, 8, 12, 3) and names == ["7.png", "8.png", "9.png"]
    np.testing.assert_array_equal(read, frames)
    name, single, names = input_sequence(tmp_path / "flat_blur" / "8.png")
    assert single.shape == (1, 8, 12, 3) and names == ["8.png"]  # one frame is a valid prediction input
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match="expected a frame folder"):
        input_sequence(tmp_path / "notes.txt")
    with pytest.raises(DataError, match="input not found"):
        input_sequence(tmp_path / "nothing")
    with pytest.raises(DataError, match="has no blurry frames"):
        VideoSequence("empty", [])


# --- datasets -----------------------------------------------------------------------------------------------------


def test_temporal_indices_edges():
    assert temporal_indices(0, 10, 5) == [2, 1, 0, 1, 2]
    assert temporal_indices(0, 10, 5, "replicate") == [0, 0, 0, 1, 2]
    assert temporal_indices(9, 10, 5) == [7, 8, 9, 8, 7]
    assert temporal_indices(9, 10, 5, "replicate") == [7, 8, 9, 9, 9]
    assert temporal_indices(4, 10, 5) == [2, 3, 4, 5, 6]
    assert temporal_indices(0, 2, 7) == [1, 0, 1, 0, 1, 0, 1]  # shorter than the window: mirrored again
    assert temporal_indices(1, 3, 7) == [2, 1, 0, 1, 2, 1, 0]
    assert temporal_indices(0, 1, 5) == [0] * 5
    assert temporal_indices(1, 3, 7, "replicate") == [0, 0, 0, 1, 2, 2, 2]
    assert temporal_indices(2, 5, 4) == [0, 1, 2, 3]
    for length in range(1, 9):
        for center in range(length):
            window = temporal_indices(center, length, 7)
            assert window[3] == center and all(0 <= i < length for i in window)
    with pytest.raises(ValueError):
        temporal_indices(5, 5, 3)
    with pytest.raises(ValueError):
        temporal_indices(0, 5, 3, "circle")


def test_training_clips_shapes_ranges_and_cache(gopro):
    config = dict(type="VideoDeblurClips", data_root=str(gopro.parent), split="train", crop=32, cache_frames=12)
    data = DATASETS.build(config)  # registered for mmengine configs
    assert len(data) == sum(len(s) for s in gopro_sequences(gopro, "train"))
    item = data[3]
    assert item["index"] == 3
    for key in ("blur", "sharp"):
        assert item[key].shape == (5, 3, 32, 32) and item[key].dtype == torch.float32
        assert 0 <= item[key].min() and item[key].max() <= 1
    for i in range(6):
        data[i]
    assert len(data._cache) <= 12
    full = VideoDeblurClips(str(gopro), "gopro", "test", num_frames=3, crop=None, augment=False)
    assert len(full) == 2 and full[0]["blur"].shape == (3, 3, 64, 96)
    fixed = VideoDeblurClips(str(gopro), "gopro", "test", num_frames=3, crop=16, augment=False, length=5)
    assert len(fixed) == 5 and torch.equal(fixed[0]["blur"], fixed[2]["blur"])
    with pytest.raises(DataError, match="smaller than the 65x65 crop") as error:
        VideoDeblurClips(str(gopro), "gopro", "train", crop=65)
    assert "GOPR" in str(error.value)
    with pytest.raises(DataError, match="fewer than num_frames=40"):
        VideoDeblurClips(str(gopro), "gopro", "train", num_frames=40)
    with pytest.raises(IndexError):
        data[len(data)]


def test_augmentation_is_identical_for_blur_and_sharp_and_reverses_time(tmp_path):
    root = _folders_dataset(tmp_path)
    data = VideoDeblurClips(str(root), "folders", "train", num_frames=4, crop=12, length=64, seed=1)
    np.random.seed(0)
    directions = set()
    for i in range(len(data)):
        item = data[i]
        assert torch.equal(item["blur"], item["sharp"])  # same crop, flips and order
        levels = to_uint8(item["blur"]).astype(int)
        steps = np.diff((levels - levels[0]).reshape(4, -1).mean(axis=1))
        assert np.all(steps == 10) or np.all(steps == -10)  # consecutive frames, in one direction
        directions.add(int(steps[0]))
    assert directions == {10, -10}
    # a sharp copy that differs from blur still gets the same geometry: sharp = 255 - blur, frame by frame
    other = _folders_dataset(tmp_path / "inverse", same=False)
    data = VideoDeblurClips(str(other), "folders", "train", num_frames=3, crop=10, length=16, seed=2)
    for i in range(len(data)):
        item = data[i]
        torch.testing.assert_close(item["sharp"], 1 - item["blur"], atol=1e-6, rtol=0)


def test_flips_are_applied(tmp_path):
    root = _folders_dataset(tmp_path, count=3, size=(6, 6))
    data = VideoDeblurClips(str(root), "folders", "train", num_frames=1, crop=6, length=40, seed=0)
    pattern = np.random.default_rng(0).integers(0, 60, (6, 6, 3))
    seen = set()
    np.random.seed(1)
    for i in range(len(data)):
        frame = to_uint8(data[i]["blur"])[0].astype(int)  # pattern + 10 k, flipped or not
        for name, view in (
            ("none", pattern),
            ("h", pattern[:, ::-1]),
            ("v", pattern[::-1]),
            ("hv", pattern[::-1, ::-1]),
        ):
            if np.array_equal(frame - view, np.full_like(frame, (frame - view).flat[0])):
                seen.add(name)
    assert seen == {"none", "h", "v", "hv"}


def test_evaluation_sequences(gopro, tmp_path):
    data = VideoDeblurSequences(str(gopro), "gopro", "test", max_frames=4)
    assert len(data) == 2
    item = data[1]
    assert item["name"] == "GOPR0384_11_05" and item["blur"].shape == (4, 3, 64, 96)
    assert item["sharp"].shape == item["blur"].shape and len(item["frames"]) == 4
    assert item["frames"] == [p.name for p in gopro_sequences(gopro, "test")[1].blur[:4]]
    small = VideoDeblurSequences(str(gopro), "gopro", "test", max_sequences=1, as_uint8=True)
    assert len(small) == 1 and small[0]["blur"].dtype == torch.uint8
    write_frames(tmp_path / "test" / "blur" / "clip", np.stack([_rgb(8, 8, 9)] * 2), ["0.png", "1.png"])
    unpaired = VideoDeblurSequences(str(tmp_path), "folders", "test")
    assert "sharp" not in unpaired[0] and unpaired[0]["name"] == "clip"
    with pytest.raises(DataError, match="no sharp frames"):
        VideoDeblurClips(str(tmp_path), "folders", "test", num_frames=2, crop=None)
    with pytest.raises(DataError, match="expected <root>/<split>/blur"):
        VideoDeblurSequences(str(tmp_path), "folders", "train")
