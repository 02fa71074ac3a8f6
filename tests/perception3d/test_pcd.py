"""PCD reading and writing: round trips, hand-written files (ascii, mixed binary types, hand-built LZF with back
references), the LZF codec, and every bad input as a DataError naming the file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from diffusekit.core.errors import DataError
from diffusekit.perception3d.pcd import DATA_KINDS, lzf_compress, lzf_decompress, read_pcd, write_pcd


def _cloud(count: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    xyz = rng.normal(size=(count, 3)) * [30, 10, 1]
    xyz[: count // 3, 2] = -1.5  # repeated values give the LZF encoder something to refer back to
    return np.column_stack([xyz, rng.integers(0, 256, count) / 255.0]).astype(np.float32)


def _header(fields, size, type_, count=None, points=4, data="binary", extra=()) -> bytes:
    lines = ["# .PCD v0.7 - hand written", "VERSION 0.7", f"FIELDS {fields}", f"SIZE {size}", f"TYPE {type_}"]
    if count is not None:
        lines.append(f"COUNT {count}")
    lines += [f"WIDTH {points}", "HEIGHT 1", "VIEWPOINT 0 0 0 1 0 0 0", f"POINTS {points}", *extra, f"DATA {data}"]
    return ("\n".join(lines) + "\n").encode("ascii")


@pytest.mark.parametrize("data", DATA_KINDS)
@pytest.mark.parametrize("intensity", ["rgb", "intensity"])
def test_round_trip(tmp_path, data, intensity):
    points = _cloud()
    if intensity == "intensity":
        points[:, 3] = np.random.default_rng(1).normal(size=len(points)) * 40  # any float survives
    path = write_pcd(tmp_path / "sub" / "cloud.pcd", points, data=data, intensity=intensity)
    text = path.read_bytes()
    assert f"DATA {data}\n".encode() in text
    assert f"FIELDS x y z {intensity}\n".encode() in text
    back = read_pcd(path)
    assert back.dtype == np.float32 and back.shape == points.shape
    np.testing.assert_array_equal(back, points)


def test_rgb_quantises_and_clips_intensity(tmp_path):
    points = np.array([[0, 0, 0, 0.5], [1, 1, 1, 1.7], [2, 2, 2, -0.3], [3, 3, 3, 0.999]], np.float32)
    back = read_pcd(write_pcd(tmp_path / "q.pcd", points))
    np.testing.assert_allclose(back[:, 3], [128 / 255, 1.0, 0.0, 1.0], rtol=1e-7)
    words = np.frombuffer((tmp_path / "q.pcd").read_bytes()[-16 * 4 :], "<u4").reshape(4, 4)[:, 3]
    np.testing.assert_array_equal(words, [0x808080, 0xFFFFFF, 0, 0xFFFFFF])  # r << 16 | g << 8 | b, as Open3D


def test_three_columns_and_empty_cloud(tmp_path):
    xyz = _cloud(20)[:, :3]
    back = read_pcd(write_pcd(tmp_path / "xyz.pcd", xyz, data="ascii"))
    np.testing.assert_array_equal(back[:, :3], xyz)
    np.testing.assert_array_equal(back[:, 3], 0)
    for data in DATA_KINDS:
        empty = read_pcd(write_pcd(tmp_path / f"empty_{data}.pcd", np.zeros((0, 4)), data=data))
        assert empty.shape == (0, 4) and empty.dtype == np.float32


def test_hand_written_ascii(tmp_path):
    header = _header("x y z intensity ring", "4 4 4 4 2", "F F F F U", "1 1 1 1 1", points=3, data="ascii")
    body = b"1.5 -2 3e1 7 0\n\n0 0 0 0.25 1\r\n-4 5.25 -6 100 65535\n"
    path = tmp_path / "hand.pcd"
    path.write_bytes(header + body)
    np.testing.assert_array_equal(read_pcd(path), [[1.5, -2, 30, 7], [0, 0, 0, 0.25], [-4, 5.25, -6, 100]])


def test_ascii_rgb_open3d_float_and_pcl_integer(tmp_path):
    # Open3D prints the packed word as a float (a denormal); PCL prints the unsigned integer (here alpha 255)
    open3d_word = np.array([(200 << 16) | (10 << 8) | 3], np.uint32).view(np.float32)[0]
    header = _header("x y z rgb", "4 4 4 4", "F F F F", points=2, data="ascii")
    body = f"1 2 3 {float(open3d_word):.9g}\n4 5 6 {0xFF808080}\n".encode()
    path = tmp_path / "rgb.pcd"
    path.write_bytes(header + body)
    np.testing.assert_allclose(read_pcd(path), [[1, 2, 3, 200 / 255], [4, 5, 6, 128 / 255]], rtol=1e-7)
    assert b"e-" in body  # the first word really is a tiny float


def test_binary_mixed_types_and_counts(tmp_path):
    dtype = np.dtype([("x", "<f8"), ("y", "<f8"), ("z", "<f4"), ("normal", "<f4", (3,)), ("i", "<u1"), ("t", "<i2")])
    rec = np.zeros(3, dtype)
    rec["x"], rec["y"], rec["z"] = [1.25, -2.5, 1e6], [0.5, 7.0, -3.0], [9, 8, 7]
    rec["normal"] = np.arange(9).reshape(3, 3)
    rec["i"], rec["t"] = [0, 17, 255], [-5, 0, 5]
    header = _header("x y z normal i t", "8 8 4 4 1 2", "F F F F U I", "1 1 1 3 1 1", points=3)
    path = tmp_path / "mixed.pcd"
    path.write_bytes(header + rec.tobytes())
    np.testing.assert_array_equal(read_pcd(path), [[1.25, 0.5, 9, 0], [-2.5, 7, 8, 17], [1e6, -3, 7, 255]])


def test_no_intensity_field_gives_zeros(tmp_path):
    header = _header("x y z", "4 4 4", "F F F", points=2)
    path = tmp_path / "xyz.pcd"
    path.write_bytes(header + np.arange(6, dtype="<f4").tobytes() + b"\n")  # a trailing newline is ignored
    np.testing.assert_array_equal(read_pcd(path), [[0, 1, 2, 0], [3, 4, 5, 0]])


def _hand_lzf() -> tuple[bytes, bytes]:
    """An LZF stream built token by token for 4 points x y z intensity (float32 SoA) and the bytes it encodes."""
    one, two = struct.pack("<f", 1.0), struct.pack("<f", 2.0)
    stream = bytes(
        [3, *one]  # x: literal 1.0 ...
        + [0xE0, 12 - 2 - 7, 4 - 1]  # ... then 12 bytes from 4 back (overlapping, long form): x = 1 1 1 1
        + [(8 - 2) << 5, 16 - 1]  # y: 8 bytes from 16 back (x's first two values) -> 1 1
        + [3, *two]  # literal 2.0
        + [(4 - 2) << 5, 4 - 1]  # 4 bytes from 4 back: y = 1 1 2 2
        + [0, 0]  # z: one literal zero byte ...
        + [0xE0, 15 - 2 - 7, 1 - 1]  # ... repeated 15 times (distance 1): z = 0 0 0 0
        + [0xE0, 12 - 2 - 7, 48 - 1]  # intensity: 12 bytes from 48 back (x's start): 1 1 1
        + [(4 - 2) << 5, 36 - 1]  # 4 bytes from 36 back (y's 2.0)
    )
    columns = np.array([[1, 1, 1, 1], [1, 1, 2, 2], [0, 0, 0, 0], [1, 1, 1, 2]], "<f4")
    return stream, columns.tobytes()


def test_hand_built_lzf_with_back_references(tmp_path):
    stream, raw = _hand_lzf()
    assert lzf_decompress(stream, len(raw)) == raw
    header = _header("x y z intensity", "4 4 4 4", "F F F F", data="binary_compressed")
    path = tmp_path / "lzf.pcd"
    path.write_bytes(header + struct.pack("<II", len(stream), len(raw)) + stream)
    np.testing.assert_array_equal(read_pcd(path), [[1, 1, 0, 1], [1, 1, 0, 1], [1, 2, 0, 1], [1, 2, 0, 2]])


def test_lzf_compress_round_trip_and_uses_back_references():
    rng = np.random.default_rng(5)
    repetitive = np.tile(rng.integers(0, 256, 50, dtype=np.uint8), 400).tobytes() + b"\x00" * 3000
    packed = lzf_compress(repetitive)
    assert len(packed) < len(repetitive) / 20
    assert any(byte >= 32 for byte in packed[:64])  # control bytes of back references
    assert lzf_decompress(packed, len(repetitive)) == repetitive
    for data in (b"", b"a", b"ab", b"abcabcabcabc", rng.integers(0, 256, 5000, dtype=np.uint8).tobytes()):
        assert lzf_decompress(lzf_compress(data), len(data)) == data
    # matches longer than one token (264 bytes) and references near the 8 KiB window limit
    far = rng.integers(0, 256, 8190, dtype=np.uint8).tobytes()
    data = far + far[:600] + b"z" * 1000
    assert lzf_decompress(lzf_compress(data), len(data)) == data


def test_open3d_cross_check(tmp_path):
    o3d = pytest.importorskip("open3d")
    points = _cloud(100)
    for data in DATA_KINDS:
        path = write_pcd(tmp_path / f"o3d_{data}.pcd", points, data=data)
        cloud = o3d.io.read_point_cloud(str(path))
        np.testing.assert_allclose(np.asarray(cloud.points), points[:, :3], rtol=1e-6)
        np.testing.assert_allclose(np.asarray(cloud.colors)[:, 0], read_pcd(path)[:, 3], atol=1e-6)


# ----------------------------------------------------------------------------------------------- bad input
def _valid_binary(points: int = 4) -> bytes:
    return _header("x y z intensity", "4 4 4 4", "F F F F", points=points) + np.ones((points, 4), "<f4").tobytes()


def _compressed(stream: bytes, size: int) -> bytes:
    return (
        _header("x y z intensity", "4 4 4 4", "F F F F", data="binary_compressed")
        + struct.pack("<II", len(stream), size)
        + stream
    )


_stream, _raw = _hand_lzf()
_nan = np.ones((4, 4), "<f4")
_nan[2, 1] = np.nan
_inf = np.ones((4, 4), "<f4")
_inf[0, 0] = np.inf

BAD = {
    "empty": (b"", "empty file"),
    "png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not a PCD"),
    "text": (b"hello world\nthis is not a point cloud\n", "not a PCD"),
    "no data line": (_header("x y z", "4 4 4", "F F F").replace(b"DATA binary\n", b""), "no DATA line"),
    "unknown data kind": (_header("x y z", "4 4 4", "F F F", data="zip") + bytes(48), "unknown PCD DATA kind"),
    "missing fields": (_header("x y z", "4 4 4", "F F F").replace(b"FIELDS x y z\n", b""), "no FIELDS"),
    "size count mismatch": (_header("x y z", "4 4", "F F F") + bytes(48), "SIZE"),
    "type count mismatch": (_header("x y z", "4 4 4", "F F", count="1 1 1") + bytes(48), "TYPE"),
    "points vs width": (_header("x y z", "4 4 4", "F F F", points=4).replace(b"WIDTH 4", b"WIDTH 5"), "WIDTH x HEIGHT"),
    "bad points": (_header("x y z", "4 4 4", "F F F").replace(b"POINTS 4", b"POINTS many"), "POINTS"),
    "bad type": (_header("x y z", "4 4 4", "F F Q") + bytes(48), "unsupported TYPE"),
    "float of size 1": (_header("x y z", "4 4 1", "F F F") + bytes(36), "unsupported TYPE"),
    "no z": (_header("x y w", "4 4 4", "F F F") + bytes(48), "no z field"),
    "no size of points": (b"FIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nDATA binary\n", "neither POINTS nor WIDTH"),
    "truncated binary": (_valid_binary()[:-5], "truncated"),
    "truncated ascii": (_header("x y z", "4 4 4", "F F F", data="ascii") + b"1 2 3\n4 5 6\n7 8 9\n", "truncated"),
    "short ascii line": (_header("x y z", "4 4 4", "F F F", points=2, data="ascii") + b"1 2 3\n4 5\n", "line 2"),
    "ascii word": (_header("x y z", "4 4 4", "F F F", points=1, data="ascii") + b"1 two 3\n", "not a number"),
    "truncated compressed": (_compressed(_stream, len(_raw))[:-6], "truncated"),
    "compressed size header cut": (
        _header("x y z", "4 4 4", "F F F", data="binary_compressed") + b"\x01\x02",
        "truncated",
    ),
    "uncompressed size wrong": (_compressed(_stream, len(_raw) + 4), "uncompressed bytes"),
    "lzf reference before start": (_compressed(bytes([0x40, 5]) + _stream, len(_raw)), "corrupt LZF"),
    "lzf literal past end": (_compressed(_stream + bytes([31, 1, 2]), len(_raw)), "corrupt LZF"),
    "lzf too short": (_compressed(_stream[:-2], len(_raw)), "corrupt LZF"),
    "nan point": (_header("x y z intensity", "4 4 4 4", "F F F F") + _nan.tobytes(), "NaN points"),
    "inf point": (_header("x y z intensity", "4 4 4 4", "F F F F") + _inf.tobytes(), "NaN points"),
    "nan ascii": (_header("x y z", "4 4 4", "F F F", points=1, data="ascii") + b"1 nan 3\n", "NaN points"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_a_data_error_naming_the_file(tmp_path, case):
    content, reason = BAD[case]
    path = tmp_path / f"{case.replace(' ', '_')}.pcd"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        read_pcd(path)
    assert str(path) in str(info.value)
    assert reason in str(info.value), str(info.value)


def test_missing_file_and_folder(tmp_path):
    for path in (tmp_path / "absent.pcd", tmp_path):
        with pytest.raises(DataError, match=str(Path(path).name)):
            read_pcd(path)


def test_write_rejects_bad_points_and_options(tmp_path):
    path = tmp_path / "w.pcd"
    with pytest.raises(DataError, match="NaN points"):
        write_pcd(path, np.array([[0, np.nan, 0, 1]]))
    with pytest.raises(DataError, match="shape"):
        write_pcd(path, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="data must be"):
        write_pcd(path, np.zeros((3, 4)), data="zip")
    with pytest.raises(ValueError, match="intensity must be"):
        write_pcd(path, np.zeros((3, 4)), intensity="red")
    assert not path.exists()
