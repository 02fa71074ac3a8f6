"""The synthetic video writers: deterministic, real motion blur (blurrier than sharp, more so with a longer blur
path), K varying from frame to frame, refusing to overwrite, the frame size honoured."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from diffusekit.core.errors import DataError
from diffusekit.video.frames import read_frames
from diffusekit.video.gopro import gopro_sequences
from diffusekit.video.synthetic import (
    KERNELS,
    available_photos,
    render_sequence,
    write_bsd,
    write_dataset,
    write_gopro,
)


def _sharpness(frames: np.ndarray) -> np.ndarray:
    """Variance of the Laplacian of each frame's grey level."""
    return np.array([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in frames])


@pytest.fixture(scope="module")
def gopro(tmp_path_factory):
    start = time.perf_counter()
    root = write_gopro(tmp_path_factory.mktemp("gopro"), seed=5)
    return root, time.perf_counter() - start


def test_small_gopro_is_fast_and_deterministic(gopro, tmp_path):
    root, seconds = gopro
    assert seconds < 5
    again = write_gopro(tmp_path / "again", seed=5)
    other = write_gopro(tmp_path / "other", seed=6)
    assert json.loads((root / "synthetic.json").read_text()) == json.loads((again / "synthetic.json").read_text())
    for a, b in zip(gopro_sequences(root, "test"), gopro_sequences(again, "test")):
        assert a.frame_names == b.frame_names
        for x, y in ((a.blur, b.blur), (a.sharp, b.sharp)):
            np.testing.assert_array_equal(read_frames(x), read_frames(y))
    first, different = gopro_sequences(root, "test")[0], gopro_sequences(other, "test")[0]
    assert read_frames(first.blur[:1]).tobytes() != read_frames(different.blur[:1]).tobytes()


def test_blur_is_blurrier_than_sharp_and_varies_with_k(gopro):
    root, _ = gopro
    meta = json.loads((root / "synthetic.json").read_text())["sequences"]
    assert set(meta) == {s.name for s in gopro_sequences(root, "train") + gopro_sequences(root, "test")}
    ratios, extents = [], []
    for split in ("train", "test"):
        for seq in gopro_sequences(root, split):
            sharp = _sharpness(read_frames(seq.sharp))
            blur = _sharpness(read_frames(seq.blur))
            gamma = _sharpness(read_frames([p.parent.parent / "blur_gamma" / p.name for p in seq.blur]))
            assert blur.mean() < 0.8 * sharp.mean() and gamma.mean() < 0.8 * sharp.mean()
            info = meta[seq.name]
            assert len(info["kernels"]) == len(seq) and set(info["kernels"]) <= set(KERNELS)
            assert len(set(info["kernels"])) >= 3  # K varies from frame to frame
            assert int(seq.blur[0].stem) == info["first_frame"] > 0
            ratios += list(blur / sharp)
            extents += info["extent_px"]
    # a longer blur path gives a blurrier frame, and neighbouring frames differ: some are much sharper
    assert np.corrcoef(np.log(extents), np.log(ratios))[0, 1] < -0.5
    assert max(extents) > 3 * min(extents)


def test_linear_and_gamma_averages_differ():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (80, 80, 3)).astype(np.uint8)
    seq = render_sequence(photo, 3, (32, 24), rng, kernels=(9,), noise=(0.0, 0.0))
    assert seq.sharp.shape == seq.blur.shape == seq.blur_gamma.shape == (3, 24, 32, 3)
    # averaging in linear light weights bright values more: the blur_gamma frames are brighter
    assert seq.blur_gamma.astype(float).mean() > seq.blur.astype(float).mean() + 2
    still = render_sequence(photo, 2, (32, 24), rng, kernels=(1,), noise=(0.0, 0.0))
    np.testing.assert_array_equal(still.blur, still.sharp)  # K = 1 and no noise: the sharp frame itself


def test_refuses_to_overwrite_and_honours_frame_size(tmp_path):
    root = write_gopro(tmp_path, seed=1, sequences=(1, 1), frames=(3, 3), frame_size=(40, 24))
    assert read_frames(gopro_sequences(root, "train")[0].blur).shape == (3, 24, 40, 3)
    with pytest.raises(DataError, match="already holds a GoPro dataset") as error:
        write_gopro(tmp_path, seed=1)
    assert error.value.path == root
    (root / "train" / "stale").mkdir()
    write_gopro(tmp_path, seed=1, sequences=(1, 1), frames=(2, 2), frame_size=(16, 16), overwrite=True)
    assert not (root / "train" / "stale").exists() and len(gopro_sequences(root, "test")[0]) == 2
    bsd = write_dataset(tmp_path, "bsd", seed=1, frames=(2, 2))
    assert bsd == tmp_path / "BSD"
    write_bsd(tmp_path, seed=1, exposure="3ms24ms", frames=(2, 2))  # another exposure beside it is fine
    assert sorted(p.name for p in bsd.iterdir()) == ["BSD_2ms16ms", "BSD_3ms24ms"]
    with pytest.raises(ValueError, match="unknown size"):
        write_gopro(tmp_path / "x", size="huge")


def test_photos_are_shipped():
    assert {"astronaut", "coffee", "chelsea", "rocket"} <= set(available_photos())
