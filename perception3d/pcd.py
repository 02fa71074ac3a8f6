"""PCD point clouds (PCL's ``.pcd`` v0.7 format) read and written in pure numpy, as ``(N, 4)`` float32 x, y, z, i.

The header lists ``VERSION FIELDS SIZE TYPE COUNT WIDTH HEIGHT VIEWPOINT POINTS DATA`` one per line (``#`` lines are
comments); ``DATA`` is ``ascii`` (one point per line), ``binary`` (packed little-endian records, array of structures)
or ``binary_compressed`` (``uint32`` compressed size, ``uint32`` uncompressed size, then an LZF stream whose
decompressed bytes hold the fields one after the other: all x, then all y, ...). Fields may have any TYPE/SIZE
(``F`` 2/4/8, ``I``/``U`` 1/2/4/8) and COUNT; ``COUNT`` defaults to 1, ``POINTS`` to ``WIDTH * HEIGHT``.
``VIEWPOINT`` is read past and not applied (as Open3D does).

Intensity comes from a field named ``intensity`` (or ``i``); failing that from a packed ``rgb``/``rgba`` field, whose
red byte (bits 16-23 of the 32-bit word) gives ``intensity = red / 255``: OPV2V's ``.pcd`` files were written by
Open3D with the LiDAR intensity in colour channel 0, and OpenCOOD reads it back as ``colors[:, 0]``
(``opencood/utils/pcd_utils.py``). Without either field the intensity is 0. In ASCII files a packed ``rgb`` written
by PCL as an integer (``4278190080``) is told apart from Open3D's float (a denormal such as ``5.9e-39``) by its size.

open3d is optional (heavy, and absent from many Python versions), and no maintained LZF wheel is a dependency
(``python-lzf`` is unmaintained C), so the LZF codec (liblzf's format) is written here.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.core.files import read_bytes

__all__ = ["DATA_KINDS", "lzf_compress", "lzf_decompress", "read_pcd", "write_pcd"]

DATA_KINDS = ("ascii", "binary", "binary_compressed")
_KEYS = ("VERSION", "FIELDS", "SIZE", "TYPE", "COUNT", "WIDTH", "HEIGHT", "VIEWPOINT", "POINTS", "DATA")
_NUMPY_KIND = {"F": "f", "I": "i", "U": "u"}
_LZF_MAX_OFFSET = 8192  # 13-bit distance field (stored minus one)
_LZF_MAX_MATCH = 264  # 7 + 255 + 2: the longest back reference one token can hold
_LZF_MAX_LITERAL = 32  # a literal run's control byte holds length - 1 in 5 bits


# ----------------------------------------------------------------------------------------------------------- LZF
def lzf_decompress(data: bytes, size: int) -> bytes:
    """Decode an LZF stream (liblzf ``lzf_d.c`` format) that must expand to exactly ``size`` bytes.

    A control byte ``c < 32`` is followed by ``c + 1`` literal bytes; otherwise ``c >> 5`` is the match length minus 2
    (7 means "add the next byte"), and ``(c & 31) << 8`` plus the next byte is the distance minus 1 back into the
    output; an overlapping reference repeats the last ``distance`` bytes. Raises ValueError on a corrupt stream.
    """
    src = memoryview(bytes(data))
    n = len(src)
    out = bytearray()
    ip = 0
    while ip < n:
        ctrl = src[ip]
        ip += 1
        if ctrl < 32:
            run = ctrl + 1
            if ip + run > n:
                raise ValueError(f"literal run of {run} bytes at offset {ip - 1} runs past the end of the stream")
            out += src[ip : ip + run]
            ip += run
        else:
            length = ctrl >> 5
            if length == 7:
                if ip >= n:
                    raise ValueError(f"back reference at offset {ip - 1} is cut off")
                length += src[ip]
                ip += 1
            if ip >= n:
                raise ValueError(f"back reference at offset {ip - 1} is cut off")
            distance = ((ctrl & 31) << 8) + src[ip] + 1
            ip += 1
            length += 2
            start = len(out) - distance
            if start < 0:
                raise ValueError(
                    f"back reference {distance} bytes back at output byte {len(out)} points before the start"
                )
            if distance >= length:
                out += out[start : start + length]
            else:  # overlapping copy: the last `distance` bytes repeat
                out += (out[start:] * (length // distance + 1))[:length]
        if len(out) > size:
            raise ValueError(f"the stream expands past the declared {size} bytes")
    if len(out) != size:
        raise ValueError(f"the stream expands to {len(out)} bytes, not the declared {size}")
    return bytes(out)


def _literals(out: bytearray, chunk: bytes) -> None:
    for start in range(0, len(chunk), _LZF_MAX_LITERAL):
        piece = chunk[start : start + _LZF_MAX_LITERAL]
        out.append(len(piece) - 1)
        out += piece


def lzf_compress(data: bytes) -> bytes:
    """Encode ``data`` as an LZF stream: greedy back references to the nearest earlier occurrence of the next three
    bytes (within 8 KiB, found for all positions at once with a stable sort), literal runs elsewhere."""
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    n = len(buf)
    out = bytearray()
    if n < 3:
        _literals(out, buf.tobytes())
        return bytes(out)
    keys = (buf[:-2].astype(np.int32) << 16) | (buf[1:-1].astype(np.int32) << 8) | buf[2:]
    order = np.argsort(keys, kind="stable")
    same = keys[order[1:]] == keys[order[:-1]]
    previous = np.full(n - 2, -1, dtype=np.int64)
    previous[order[1:][same]] = order[:-1][same]  # the nearest earlier position with the same three bytes
    distance = np.arange(n - 2) - previous
    candidates = np.flatnonzero((previous >= 0) & (distance <= _LZF_MAX_OFFSET))
    pos = 0
    while True:
        k = int(np.searchsorted(candidates, pos, side="left"))
        if k >= len(candidates):
            break
        j = int(candidates[k])
        ref = int(previous[j])
        span = min(_LZF_MAX_MATCH, n - j)
        equal = buf[j : j + span] == buf[ref : ref + span]
        length = span if equal.all() else int(np.argmin(equal))
        _literals(out, buf[pos:j].tobytes())
        off = j - ref - 1
        if length - 2 < 7:
            out.append(((length - 2) << 5) | (off >> 8))
        else:
            out.append((7 << 5) | (off >> 8))
            out.append(length - 2 - 7)
        out.append(off & 0xFF)
        pos = j + length
    _literals(out, buf[pos:].tobytes())
    return bytes(out)


# -------------------------------------------------------------------------------------------------------- header
def _parse_header(raw: bytes, path: Path) -> tuple[dict[str, list[str]], int]:
    """The header entries (upper-case key -> words) and the byte offset where the data starts."""
    if not raw:
        raise DataError("empty file (0 bytes), not a PCD point cloud", path)
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = raw.find(b"\n", pos)
        if end < 0:
            what = "no DATA line in the header" if header else "no PCD header (expected VERSION/FIELDS/.../DATA lines)"
            raise DataError(f"not a PCD file: {what}", path)
        try:
            line = raw[pos:end].decode("ascii").strip()
        except UnicodeDecodeError:
            raise DataError("not a PCD file: the header is not ASCII text", path) from None
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *words = line.split()
        key = key.upper()
        if key not in _KEYS:
            raise DataError(f"not a PCD file: unexpected header line {line[:60]!r}", path)
        header[key] = words
        if key == "DATA":
            return header, pos


def _header_int(header: dict[str, list[str]], key: str, path: Path) -> int | None:
    if key not in header:
        return None
    words = header[key]
    if len(words) != 1 or not words[0].isdigit():
        raise DataError(f"PCD header {key} must be one non-negative integer, got {' '.join(words)!r}", path)
    return int(words[0])


def _layout(header: dict[str, list[str]], path: Path) -> tuple[np.dtype, int, str]:
    """The record dtype (one sub-array per field), the number of points and the DATA kind."""
    for key in ("FIELDS", "SIZE", "TYPE"):
        if not header.get(key):
            raise DataError(f"PCD header has no {key} line", path)
    fields = header["FIELDS"]
    sizes, types = header["SIZE"], [t.upper() for t in header["TYPE"]]
    counts = header.get("COUNT", ["1"] * len(fields))
    for key, values in (("SIZE", sizes), ("TYPE", types), ("COUNT", counts)):
        if len(values) != len(fields):
            raise DataError(f"PCD header lists {len(fields)} FIELDS but {len(values)} {key} values", path)
    spec = []
    for name, size, kind, count in zip(fields, sizes, types, counts):
        if not size.isdigit() or not count.isdigit() or int(count) < 1:
            raise DataError(f"PCD field {name!r}: SIZE {size!r} / COUNT {count!r} must be positive integers", path)
        if kind not in _NUMPY_KIND or int(size) not in ((2, 4, 8) if kind == "F" else (1, 2, 4, 8)):
            raise DataError(f"PCD field {name!r}: unsupported TYPE {kind} with SIZE {size}", path)
        if name in {s[0] for s in spec}:
            raise DataError(f"PCD field {name!r} is listed twice", path)
        spec.append((name, f"<{_NUMPY_KIND[kind]}{size}", (int(count),)))
    missing = [axis for axis in "xyz" if axis not in fields]
    if missing:
        raise DataError(f"PCD has no {'/'.join(missing)} field (FIELDS {' '.join(fields)})", path)
    width, height, points = (_header_int(header, key, path) for key in ("WIDTH", "HEIGHT", "POINTS"))
    if points is None and width is None:
        raise DataError("PCD header has neither POINTS nor WIDTH", path)
    total = width * (1 if height is None else height) if width is not None else None
    if points is not None and total is not None and points != total:
        raise DataError(f"PCD header says POINTS {points} but WIDTH x HEIGHT = {total}", path)
    kind = " ".join(header["DATA"]).lower()
    if kind not in DATA_KINDS:
        raise DataError(f"unknown PCD DATA kind {kind!r}; expected one of {', '.join(DATA_KINDS)}", path)
    return np.dtype(spec), points if points is not None else total, kind


# ---------------------------------------------------------------------------------------------------------- data
def _parse_ascii(body: bytes, dtype: np.dtype, count: int, path: Path) -> np.ndarray:
    lines = [line for line in body.decode("ascii", errors="replace").splitlines() if line.strip()]
    if len(lines) < count:
        raise DataError(f"truncated PCD: POINTS says {count} but the file has {len(lines)} data lines", path)
    lines = lines[:count]
    per_point = sum(int(np.prod(dtype[name].shape)) for name in dtype.names)
    words = " ".join(lines).split()
    if len(words) != count * per_point:
        for number, line in enumerate(lines):
            if len(line.split()) != per_point:
                raise DataError(
                    f"PCD data line {number + 1} has {len(line.split())} values, expected {per_point}", path
                )
    try:
        values = np.array(words, dtype=np.float64).reshape(count, per_point)
    except ValueError:
        raise DataError("PCD ascii data holds a value that is not a number", path) from None
    records = np.zeros(count, dtype=dtype)
    column = 0
    for name in dtype.names:
        base, width = dtype[name].base, int(np.prod(dtype[name].shape))
        block = values[:, column : column + width]
        column += width
        if name in ("rgb", "rgba") and base == np.dtype("<f4"):
            # Open3D prints the packed bits as a (denormal) float; PCL prints them as an unsigned integer
            as_int = (block >= 1) & (block == np.round(block))
            bits = np.where(as_int, block, 0).astype(np.uint32)
            bits = np.where(as_int, bits, block.astype("<f4").view(np.uint32))
            records[name] = bits.view("<f4").reshape(records[name].shape)
        else:
            records[name] = block.astype(base).reshape(records[name].shape)
    return records


def _parse_binary(body: bytes, dtype: np.dtype, count: int, path: Path) -> np.ndarray:
    need = count * dtype.itemsize
    if len(body) < need:
        raise DataError(
            f"truncated PCD: {count} points x {dtype.itemsize} bytes need {need} bytes, the file has {len(body)}",
            path,
        )
    return np.frombuffer(body, dtype=dtype, count=count)


def _parse_compressed(body: bytes, dtype: np.dtype, count: int, path: Path) -> np.ndarray:
    if len(body) < 8:
        raise DataError("truncated PCD: binary_compressed data shorter than its 8-byte size header", path)
    packed, unpacked = struct.unpack("<II", body[:8])
    need = count * dtype.itemsize
    if unpacked != need:
        raise DataError(f"corrupt PCD: {unpacked} uncompressed bytes declared, POINTS {count} needs {need}", path)
    if len(body) - 8 < packed:
        raise DataError(f"truncated PCD: {packed} compressed bytes declared, the file has {len(body) - 8}", path)
    try:
        raw = lzf_decompress(body[8 : 8 + packed], unpacked)
    except ValueError as error:
        raise DataError(f"corrupt LZF data in binary_compressed PCD ({error})", path) from None
    records = np.zeros(count, dtype=dtype)
    offset = 0
    for name in dtype.names:  # structure of arrays: every point's value of one field, then the next field
        sub = dtype[name]
        nbytes = count * sub.itemsize
        records[name] = np.frombuffer(
            raw, dtype=sub.base, count=count * int(np.prod(sub.shape)), offset=offset
        ).reshape(records[name].shape)
        offset += nbytes
    return records


def _first(records: np.ndarray, name: str) -> np.ndarray:
    column = records[name]
    return np.ascontiguousarray(column[:, 0] if column.ndim > 1 else column)


def read_pcd(path: str | Path) -> np.ndarray:
    """A ``.pcd`` file as ``(N, 4)`` float32 x, y, z, intensity (see the module docstring for where intensity comes
    from). Every problem (not a PCD, a bad header, truncated or corrupt data, NaN/inf coordinates) is a DataError
    naming the file."""
    path = Path(path)
    raw = read_bytes(path)
    header, start = _parse_header(raw, path)
    dtype, count, kind = _layout(header, path)
    body = raw[start:]
    parse = {"ascii": _parse_ascii, "binary": _parse_binary, "binary_compressed": _parse_compressed}[kind]
    records = parse(body, dtype, count, path)
    points = np.empty((count, 4), dtype=np.float32)
    for column, axis in enumerate("xyz"):
        points[:, column] = _first(records, axis)
    names = records.dtype.names
    if "intensity" in names or "i" in names:
        points[:, 3] = _first(records, "intensity" if "intensity" in names else "i")
    elif "rgb" in names or "rgba" in names:
        colour = _first(records, "rgb" if "rgb" in names else "rgba")
        bits = colour.view(f"<u{colour.dtype.itemsize}").astype(np.uint64)
        points[:, 3] = ((bits >> 16) & 0xFF).astype(np.float32) / 255.0
    else:
        points[:, 3] = 0.0
    bad = ~np.isfinite(points[:, :3]).all(axis=1)
    if bad.any():
        raise DataError(f"NaN points: {int(bad.sum())} of {count} points have NaN or infinite coordinates", path)
    return points


# ------------------------------------------------------------------------------------------------------- writing
def _pack_rgb(intensity: np.ndarray) -> np.ndarray:
    """Open3D's packed colour word with the intensity (clipped to [0, 1], rounded to 1/255; Open3D truncates) in
    red, green and blue: ``r << 16 | g << 8 | b`` reinterpreted as float32."""
    level = np.clip(np.round(np.nan_to_num(intensity.astype(np.float64)) * 255.0), 0, 255).astype(np.uint32)
    return ((level << 16) | (level << 8) | level).view(np.float32)


def write_pcd(path: str | Path, points, data: str = "binary", intensity: str = "rgb") -> Path:
    """Write ``points`` (N, 4) x, y, z, intensity (or (N, 3): intensity 0) as a ``.pcd`` the way Open3D does.

    ``data`` is ``"binary"`` (Open3D's default), ``"ascii"`` or ``"binary_compressed"`` (LZF with back references).
    ``intensity="rgb"`` writes fields ``x y z rgb`` with the intensity packed into the colour bytes (OPV2V's files,
    intensity clipped to [0, 1] and quantised to 1/255); ``"intensity"`` writes a float32 ``intensity`` field.
    Creates the parent folder; returns the path.
    """
    path = Path(path)
    if data not in DATA_KINDS:
        raise ValueError(f"data must be one of {', '.join(DATA_KINDS)}, got {data!r}")
    if intensity not in ("rgb", "intensity"):
        raise ValueError(f"intensity must be 'rgb' or 'intensity', got {intensity!r}")
    pts = np.asarray(points)
    if pts.ndim != 2 or pts.shape[1] not in (3, 4):
        raise DataError(f"points to write must be (N, 3) or (N, 4), got shape {pts.shape}", path)
    pts = pts.astype(np.float32)
    if not np.isfinite(pts[:, :3]).all():
        raise DataError("NaN points: refusing to write NaN or infinite coordinates", path)
    fourth = pts[:, 3] if pts.shape[1] == 4 else np.zeros(len(pts), np.float32)
    name = "rgb" if intensity == "rgb" else "intensity"
    column = _pack_rgb(fourth) if intensity == "rgb" else fourth
    table = np.column_stack([pts[:, :3], column.astype(np.float32)]).astype("<f4")
    n = len(table)
    header = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
        f"FIELDS x y z {name}\nSIZE 4 4 4 4\nTYPE F F F F\nCOUNT 1 1 1 1\n"
        f"WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA {data}\n"
    ).encode("ascii")
    if data == "binary":
        body = np.ascontiguousarray(table).tobytes()
    elif data == "binary_compressed":
        raw = np.ascontiguousarray(table.T).tobytes()  # field by field
        packed = lzf_compress(raw)
        body = struct.pack("<II", len(packed), len(raw)) + packed
    else:
        # %.9g round-trips float32 (the packed colour words are tiny denormals and keep their bits too)
        body = "".join(f"{a:.9g} {b:.9g} {c:.9g} {d:.9g}\n" for a, b, c, d in table.astype(np.float64).tolist())
        body = body.encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + body)
    return path
