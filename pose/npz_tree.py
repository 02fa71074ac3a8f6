"""Nested dicts of arrays in npz files: the pickled layout the published pose datasets use, and the pickle-free
"flat" layout `convert_npz` writes, plus the checks the readers share.

Flat layout: every array leaf of the nested dicts / lists under its ``/``-joined path (list items by index, dict keys
as ``str(key)``); a container holding no arrays as a JSON string in a 0-d unicode array, its key listed in
``__json__``; ``__format__`` = `FLAT_FORMAT`. ``np.load(..., allow_pickle=False)`` reads it.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from diffusekit.core.checkpoint import atomic_savez
from diffusekit.core.errors import DataError

__all__ = [
    "FLAT_FORMAT",
    "convert_npz",
    "flat_path",
    "numeric_array",
    "pick_file",
    "read_npz",
    "top_key",
    "tree_items",
    "tree_mapping",
]

FLAT_FORMAT = "diffusekit-flat-npz/1"
MAX_COORDINATE = 1e6  # |value| bound of positions (metres, millimetres or pixels): larger is a broken file
_CONVERT_HINT = (
    "run `diffusekit pose ddhpose convert {path}` once to write a pickle-free copy, or pass --allow-pickle "
    "(allow_pickle=True in Python; unpickling can execute arbitrary code: only for files you trust)"
)


def _has_arrays(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype != object or any(_has_arrays(v) for v in value.ravel())
    if isinstance(value, dict):
        return any(_has_arrays(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_arrays(v) for v in value)
    return False


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _flatten(value: Any, key: str, out: dict[str, np.ndarray], json_keys: list[str], path: Path) -> None:
    if isinstance(value, np.ndarray) and value.dtype == object:
        value = value.item() if value.ndim == 0 else list(value)
    if isinstance(value, np.ndarray):
        out[key] = value
    elif isinstance(value, (dict, list, tuple)) and key and not _has_arrays(value):
        try:
            out[key] = np.array(json.dumps(value, default=_json_default))
        except TypeError as err:
            raise DataError(f"key {key!r}: cannot store {err}", path) from None
        json_keys.append(key)
    elif isinstance(value, (dict, list, tuple)):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for name, item in items:
            name = str(name)
            if "/" in name or not name:
                raise DataError(f"key {key + '/' + name!r}: names may not be empty or contain '/'", path)
            _flatten(item, f"{key}/{name}" if key else name, out, json_keys, path)
    elif isinstance(value, (str, int, float, bool, np.generic)):
        out[key] = np.array(value)
    elif value is not None:
        raise DataError(f"key {key!r}: cannot store a {type(value).__name__}", path)


def _open_zip(path: Path, allow_pickle: bool):
    if not path.is_file():
        raise DataError("file not found", path)
    try:
        with open(path, "rb"):  # zipfile.is_zipfile reports an unreadable file as "not a zip file"
            pass
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        raise DataError(f"cannot read the file ({err.strerror or err})", path) from None
    if not is_zip:
        raise DataError("not an .npz file (not a zip archive, or truncated)", path)
    try:
        return np.load(path, allow_pickle=allow_pickle)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise DataError(f"cannot read the npz archive ({err})", path) from None


def read_npz(path: str | Path, allow_pickle: bool = False) -> dict[str, Any]:
    """The nested dict stored in an npz file, pickled (needs ``allow_pickle=True``) or flat.

    Flat files come back as nested dicts (list items keyed "0", "1", ...); pickled object arrays are unpickled.
    """
    path = Path(path)
    archive = _open_zip(path, allow_pickle)
    tree: dict[str, Any] = {}
    with archive:
        names = list(archive.files)
        json_keys: set[str] = set()
        if "__json__" in names:
            try:
                json_keys = {str(k) for k in np.atleast_1d(archive["__json__"])}
            except (ValueError, OSError, zipfile.BadZipFile) as err:
                raise DataError(f"key '__json__' is unreadable ({err})", path) from None
        for name in names:
            if name in ("__json__", "__format__"):
                continue
            try:
                value: Any = archive[name]
            except ValueError as err:
                if "pickle" in str(err):
                    raise DataError(
                        f"key {name!r} holds pickled Python objects; " + _CONVERT_HINT.format(path=path), path
                    ) from None
                raise DataError(f"key {name!r} is unreadable ({err})", path) from None
            except (OSError, EOFError, zipfile.BadZipFile) as err:
                raise DataError(f"key {name!r} is unreadable ({err})", path) from None
            except Exception as err:  # unpickling failures raise anything
                raise DataError(f"key {name!r} is unreadable ({type(err).__name__}: {err})", path) from None
            if not isinstance(value, np.ndarray):  # numpy hands back the raw bytes of a member that is no .npy
                raise DataError(f"key {name!r} is not a numpy array (a {len(value)}-byte file of another kind)", path)
            if value.dtype == object:
                value = value.item() if value.ndim == 0 else list(value)
            elif name in json_keys:
                try:
                    value = json.loads(str(value))
                except json.JSONDecodeError as err:
                    raise DataError(f"key {name!r} is not valid JSON ({err})", path) from None
            node = tree
            *parents, leaf = name.split("/")
            for part in parents:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise DataError(f"key {name!r} nests under the array {part!r}", path)
                node = child
            if isinstance(node.get(leaf), dict):
                raise DataError(f"key {name!r} is both an array and a group", path)
            node[leaf] = value
    return tree


def flat_path(path: str | Path) -> Path:
    """The default converted file next to ``path``: ``data_3d_h36m.npz`` -> ``data_3d_h36m.flat.npz``."""
    path = Path(path)
    stem = path.name[:-4] if path.name.endswith(".npz") else path.name
    return path.with_name(stem + ".flat.npz")


def convert_npz(src: str | Path, dst: str | Path | None = None) -> Path:
    """Rewrite a (pickled) npz of nested dicts / lists of arrays as a flat, pickle-free npz; returns its path.

    This unpickles ``src`` (it is what the user asks for by converting): convert only files you trust. The write is
    atomic (`core.checkpoint.atomic_savez`).
    """
    src = Path(src)
    dst = flat_path(src) if dst is None else Path(dst)
    if dst.resolve() == src.resolve():
        raise DataError("the converted file would overwrite its source; give another destination", src)
    tree = read_npz(src, allow_pickle=True)
    flat: dict[str, np.ndarray] = {}
    json_keys: list[str] = []
    _flatten(tree, "", flat, json_keys, src)
    flat["__format__"] = np.array(FLAT_FORMAT)
    flat["__json__"] = np.array(json_keys, dtype=str)
    return atomic_savez(dst, flat)


# ---- checks shared by the readers


def tree_items(node: Any) -> list[tuple[str, Any]]:
    """(name, child) pairs of a dict or list; dicts with all-digit names (flattened lists) in numeric order."""
    if isinstance(node, dict):
        items = [(str(k), v) for k, v in node.items()]
        if items and all(k.isdigit() for k, _ in items):
            items.sort(key=lambda kv: int(kv[0]))
        return items
    if isinstance(node, (list, tuple)):
        return [(str(i), v) for i, v in enumerate(node)]
    return []


def tree_mapping(node: Any, key: str, path: Path) -> Any:
    """``node`` itself when it is a dict or list, else a `DataError` naming ``key``."""
    if not isinstance(node, (dict, list, tuple)):
        raise DataError(f"key {key!r}: expected a dict, got {type(node).__name__}", path)
    return node


def numeric_array(value: Any, key: str, path: Path, joints: Sequence[int], dims: Sequence[int]) -> np.ndarray:
    """A finite float array (N, J, D) with J in ``joints`` and D in ``dims``."""
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        found = f"an array of {value.dtype}" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"
        raise DataError(f"key {key!r}: expected a numeric array, got {found}", path)
    if value.ndim != 3 or value.shape[1] not in joints or value.shape[2] not in dims:
        want = " or ".join(f"(N, {j}, {'|'.join(map(str, dims))})" for j in joints)
        raise DataError(f"key {key!r}: expected shape {want}, got {value.shape}", path)
    if not np.isfinite(value).all():
        raise DataError(f"key {key!r}: contains NaN or inf", path)
    peak = float(np.abs(value).max(initial=0))
    if peak > MAX_COORDINATE:
        raise DataError(f"key {key!r}: a value of {peak:.3g} is beyond +-{MAX_COORDINATE:.0e} (a broken file)", path)
    return value


def top_key(tree: dict[str, Any], key: str, path: Path, what: str) -> Any:
    """The dict / list under the top-level ``key`` of a `read_npz` tree (else: "not a ``what`` file")."""
    if key not in tree:
        found = ", ".join(sorted(tree)[:8]) or "none"
        raise DataError(f"missing key {key!r}: not a {what} file (keys: {found})", path)
    return tree_mapping(tree[key], key, path)


def pick_file(root: Path, stem: str) -> Path:
    """``root/<stem>.flat.npz`` if present, else the published ``root/<stem>.npz``."""
    flat, published = root / f"{stem}.flat.npz", root / f"{stem}.npz"
    if flat.is_file():
        return flat
    if published.is_file():
        return published
    raise DataError(f"neither {flat.name} nor {published.name} is in this folder", root)
