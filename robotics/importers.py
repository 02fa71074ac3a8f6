"""Demonstrations from other libraries into our replay buffer (:mod:`diffusekit.robotics.replay`), with its checks.

- **Diffusion Policy zarr** (``real-stanford/diffusion_policy:common/replay_buffer.py``): a zarr group (a folder such
  as ``pusht_cchi_v7_replay.zarr``, or a ``.zip`` of one) with the per-step arrays under ``data/`` and
  ``meta/episode_ends``. Push-T's keys are ``data/{action, state, keypoint, img, n_contacts}``; the observation is
  ``state`` by default (agent x, y, block x, y, angle: our Push-T observation), any ``data/`` keys can be listed and
  are flattened per step and concatenated. Needs the ``zarr`` package (3.x reads zarr format 2, which DP writes).
- **LeRobot** datasets, layout v2.x (``codebase_version`` v2.0 / v2.1): ``meta/info.json`` (``data_path``,
  ``chunks_size``, ``features``), ``meta/episodes.jsonl`` (``episode_index``, ``length``) and one parquet file per
  episode, ``data/chunk-000/episode_000000.parquet``, with ``observation.state`` and ``action`` columns (lists per
  row) and ``frame_index``. The v3.0 layout (several episodes per file) is refused with a message. Needs pyarrow.

Everything lands in :meth:`ReplayBuffer.from_arrays`, which applies the checks that :meth:`ReplayBuffer.load`
applies to our own files (finite values, increasing episode ends that cover every step, gripper dims in range);
failures are a `DataError` naming the source file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffusekit.core.errors import DataError
from diffusekit.core.progress import ProgressLine
from diffusekit.robotics.replay import FLOAT32_MAX, ReplayBuffer

logger = logging.getLogger(__name__)

SOURCES = ("zarr", "lerobot")
DEFAULT_OBS_KEYS = {"zarr": ("state",), "lerobot": ("observation.state",)}

__all__ = ["DEFAULT_OBS_KEYS", "SOURCES", "import_lerobot", "import_replay", "import_zarr"]


def _buffer(task: str, obs: np.ndarray, action: np.ndarray, ends, gripper_dims: Sequence[int], path) -> ReplayBuffer:
    arrays = {
        "data/obs": obs,
        "data/action": action,
        "meta/episode_ends": np.asarray(ends, dtype=np.int64),
        "meta/task": np.array(task, dtype=np.str_),
        "meta/gripper_dims": np.asarray(gripper_dims, dtype=np.int64),
    }
    return ReplayBuffer.from_arrays(arrays, path)


def _per_step(name: str, values: np.ndarray, steps: int, path) -> np.ndarray:
    """``values`` as ``(steps, dims)`` float32 (trailing dims flattened); a `DataError` when not numeric."""
    values = np.asarray(values)
    if values.dtype.kind not in "fiub":
        raise DataError(f"{name} is not numeric (dtype {values.dtype})", path)
    if values.ndim == 0 or len(values) != steps:
        raise DataError(f"{name} has {len(values) if values.ndim else 0} steps, expected {steps}", path)
    with np.errstate(invalid="ignore"):
        too_big = np.abs(values) > FLOAT32_MAX
    if too_big.any():
        raise DataError(f"{name} holds {values[too_big].flat[0]:g}, too large for float32 (the replay buffer's "
                        f"type; at most {FLOAT32_MAX:.4g} in magnitude)", path)  # fmt: skip
    return values.reshape(steps, -1).astype(np.float32)


def import_zarr(path: str | Path, task: str = "pusht", obs_keys: Sequence[str] = DEFAULT_OBS_KEYS["zarr"],
                action_key: str = "action", gripper_dims: Sequence[int] = ()) -> ReplayBuffer:  # fmt: skip
    """A Diffusion Policy zarr replay buffer (folder or ``.zip``) as our :class:`ReplayBuffer` (module docstring)."""
    import zarr

    path = Path(path).expanduser()
    if not path.exists():
        raise DataError("zarr replay buffer not found", path)
    try:
        if path.is_file():
            store = zarr.storage.ZipStore(str(path), mode="r")
            root = zarr.open_group(store, mode="r")
        else:
            root = zarr.open_group(str(path), mode="r")
    except Exception as err:  # zarr raises several types for a folder that is not a group
        raise DataError(f"not a readable zarr group ({type(err).__name__}: {err})", path) from err
    data_keys = sorted(root["data"].array_keys()) if "data" in root else []
    for key in (*obs_keys, action_key):
        if key not in data_keys:
            raise DataError(f"no data/{key} in the zarr group; data/ holds {', '.join(data_keys) or 'nothing'}", path)
    if "meta" not in root or "episode_ends" not in root["meta"]:
        raise DataError("no meta/episode_ends in the zarr group (not a Diffusion Policy replay buffer)", path)
    action = np.asarray(root["data"][action_key][:])
    steps = len(action)
    obs = np.concatenate([_per_step(f"data/{k}", root["data"][k][:], steps, path) for k in obs_keys], axis=1)
    ends = np.asarray(root["meta"]["episode_ends"][:])
    buffer = _buffer(task, obs, _per_step(f"data/{action_key}", action, steps, path), ends, gripper_dims, path)
    logger.info("%s: %d episodes, %d steps", path, buffer.n_episodes, buffer.n_steps)
    return buffer


def _column(table, name: str, rows: int, path) -> np.ndarray:
    """A parquet column of numbers or of fixed-length lists as ``(rows, dims)``."""
    import pyarrow as pa

    column = table.column(name).combine_chunks()
    kind = column.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        if column.null_count:
            raise DataError(f"column {name} has empty rows", path)
        values = column.flatten().to_numpy(zero_copy_only=False)
        if rows == 0 or len(values) % rows:
            raise DataError(f"column {name} has rows of different lengths", path)
        return _per_step(name, values.reshape(rows, -1), rows, path)
    return _per_step(name, column.to_numpy(zero_copy_only=False), rows, path)


def _read_json(path: Path, what: str):
    """The JSON value of ``path``; for ``.jsonl``, a list of (line number, value). Every failure is a DataError
    naming the file (and the line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{what} not found (a LeRobot v2.x dataset has meta/info.json and meta/episodes.jsonl)",
                        path) from None  # fmt: skip
    except UnicodeDecodeError as err:
        raise DataError(f"{what} is not UTF-8 text ({err.reason} at byte {err.start})", path) from None
    except OSError as err:
        raise DataError(f"cannot read {what} ({err.strerror or err})", path) from None
    if path.suffix != ".jsonl":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{what} is not valid JSON ({err.msg})", path, line=err.lineno) from None
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                values.append((number, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(f"{what} is not valid JSON Lines ({err.msg})", path, line=number) from None
    return values


DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"


def _count(value, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _lerobot_episodes(root: Path, columns: Sequence[str]) -> list[tuple[int, int, Path]]:
    """(episode_index, length, parquet file) of every episode of a LeRobot v2.x dataset, in index order, after
    checking meta/info.json, meta/episodes.jsonl and each file's footer (its ``columns`` and row count)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    info_path, episodes_path = root / "meta" / "info.json", root / "meta" / "episodes.jsonl"
    info = _read_json(info_path, "meta/info.json")
    if not isinstance(info, dict):
        raise DataError(f"meta/info.json must hold a JSON object (codebase_version, data_path, chunks_size), "
                        f"got a {type(info).__name__}", info_path)  # fmt: skip
    version = str(info.get("codebase_version", ""))
    if not version.startswith("v2"):
        raise DataError(f"LeRobot codebase_version {version or '(none)'}: only the v2.x layout (one parquet file per "
                        "episode) is read", info_path)  # fmt: skip
    template, chunk = info.get("data_path", DATA_PATH), info.get("chunks_size", 1000)
    if not isinstance(template, str):
        raise DataError(f"data_path must be a string such as {DATA_PATH!r}, got {template!r}", info_path)
    if not _count(chunk, 1):
        raise DataError(f"chunks_size must be a positive integer, got {chunk!r}", info_path)
    episodes, seen = [], {}
    for line, record in _read_json(episodes_path, "meta/episodes.jsonl"):
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object with episode_index and length, got {record!r:.40}", episodes_path,
                            line=line)  # fmt: skip
        index, length = record.get("episode_index"), record.get("length")
        for key, value, minimum in (("episode_index", index, 0), ("length", length, 1)):
            if not _count(value, minimum):
                raise DataError(f"{key} must be an integer >= {minimum}, got {value!r}", episodes_path, line=line)
        if index in seen:
            raise DataError(f"episode {index} is listed twice (also line {seen[index]})", episodes_path, line=line)
        seen[index] = line
        try:
            file = root / template.format(episode_chunk=index // chunk, episode_index=index)
        except (KeyError, IndexError, ValueError) as err:
            raise DataError(f"data_path {template!r} does not format with episode_chunk and episode_index "
                            f"({type(err).__name__}: {err})", info_path) from None  # fmt: skip
        try:
            metadata = pq.read_metadata(file)
        except (OSError, ValueError, pa.ArrowException) as err:
            raise DataError(f"cannot read episode {index} ({err})", file) from None
        names = metadata.schema.to_arrow_schema().names
        missing = [k for k in columns if k not in names]
        if missing:
            raise DataError(f"no column {', '.join(missing)}; the file has {', '.join(names)}", file)
        if metadata.num_rows != length:
            raise DataError(f"episode {index}: {metadata.num_rows} frames (not the {length} of meta/episodes.jsonl)",
                            file)  # fmt: skip
        episodes.append((index, length, file))
    if not episodes:
        raise DataError("meta/episodes.jsonl lists no episodes", episodes_path)
    return sorted(episodes)


def import_lerobot(
    root: str | Path,
    task: str = "pusht",
    obs_keys: Sequence[str] = DEFAULT_OBS_KEYS["lerobot"],
    action_key: str = "action",
    gripper_dims: Sequence[int] = (),
    progress: bool = True,
) -> ReplayBuffer:
    """A LeRobot v2.x dataset folder as our :class:`ReplayBuffer` (module docstring); episodes in index order.
    The metadata and every episode file's footer are checked before the first episode is read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root).expanduser()
    episodes = _lerobot_episodes(root, (*obs_keys, action_key, "frame_index"))
    obs_parts, action_parts, ends = [], [], []
    line = ProgressLine(enabled=progress)
    for n, (index, length, file) in enumerate(episodes):
        try:
            table = pq.read_table(file)
        except (OSError, ValueError, pa.ArrowException) as err:
            raise DataError(f"cannot read episode {index} ({err})", file) from err
        names = table.column_names
        missing = [k for k in (*obs_keys, action_key, "frame_index") if k not in names]
        if missing:
            raise DataError(f"no column {', '.join(missing)}; the file has {', '.join(names)}", file)
        frames = table.column("frame_index").to_numpy()
        if len(frames) != length or not np.array_equal(np.sort(frames), np.arange(len(frames))):
            raise DataError(f"episode {index}: {len(frames)} frames (indices not 0..N-1 or not the {length} of "
                            "meta/episodes.jsonl)", file)  # fmt: skip
        table = table.take(np.argsort(frames, kind="stable"))
        obs_parts.append(np.concatenate([_column(table, k, length, file) for k in obs_keys], axis=1))
        action_parts.append(_column(table, action_key, length, file))
        ends.append((ends[-1] if ends else 0) + length)
        line.update(f"[import lerobot] episode {n + 1}/{len(episodes)}")
    line.finish()
    widths = {p.shape[1] for p in obs_parts}, {p.shape[1] for p in action_parts}
    if len(widths[0]) > 1 or len(widths[1]) > 1:
        raise DataError(f"episodes differ in observation / action widths {widths}", root)
    obs, action = np.concatenate(obs_parts), np.concatenate(action_parts)
    buffer = _buffer(task, obs, action, ends, gripper_dims, root)
    logger.info("%s: %d episodes, %d steps", root, buffer.n_episodes, buffer.n_steps)
    return buffer


def import_replay(source: str, path: str | Path, out: str | Path, task: str = "pusht", **options) -> Path:
    """Import ``path`` (``source`` zarr | lerobot) and write ``out/<task>_replay.npz``; returns the file.
    ``options``: ``obs_keys``, ``action_key``, ``gripper_dims`` (and ``progress`` for LeRobot)."""
    if source == "zarr":
        options.pop("progress", None)
        buffer = import_zarr(path, task, **options)
    elif source == "lerobot":
        buffer = import_lerobot(path, task, **options)
    else:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    return buffer.save(Path(out).expanduser() / f"{task}_replay.npz")
