"""An on-disk replay buffer of demonstrations in Diffusion Policy's layout, stored as a pickle-free ``.npz``.

Diffusion Policy (Chi et al., RSS 2023; ``real-stanford/diffusion_policy:common/replay_buffer.py``) keeps all steps
of all episodes concatenated along time under ``data/`` and the cumulative, exclusive end index of every episode in
``meta/episode_ends`` (episode ``i`` is ``[ends[i-1], ends[i])``). This file uses the same keys in a numpy archive:

- ``data/obs`` ``(N, obs_dim)`` float32 and ``data/action`` ``(N, action_dim)`` float32 (the observation before the
  action, and that action);
- ``meta/episode_ends`` ``(E,)`` int64, strictly increasing, the last equal to N;
- ``meta/task`` a 0-d unicode array (the task name) and ``meta/gripper_dims`` an int64 array of the action dims that
  are a binary gripper.

:meth:`ReplayBuffer.load` checks all of it and raises :class:`~diffusekit.core.errors.DataError` naming the file.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from diffusekit.core.checkpoint import atomic_savez
from diffusekit.core.errors import DataError

FLOAT32_MAX = float(np.finfo(np.float32).max)
KEYS = ("data/obs", "data/action", "meta/episode_ends", "meta/task", "meta/gripper_dims")


class ReplayBuffer:
    """Demonstrations of one task: concatenated ``obs``/``action`` steps and the ``episode_ends`` index."""

    def __init__(self, task: str, obs_dim: int, action_dim: int, gripper_dims: Iterable[int] = ()):
        if obs_dim < 1 or action_dim < 1:
            raise ValueError(f"obs_dim and action_dim must be >= 1, got {obs_dim} and {action_dim}")
        self.task = str(task)
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.gripper_dims = tuple(int(d) for d in gripper_dims)
        bad = [d for d in self.gripper_dims if not 0 <= d < self.action_dim]
        if bad or len(set(self.gripper_dims)) != len(self.gripper_dims):
            raise ValueError(f"gripper_dims {self.gripper_dims} must be distinct dims in [0, {self.action_dim})")
        self._obs: list[np.ndarray] = []
        self._action: list[np.ndarray] = []
        self._ends: list[int] = []
        self._cache: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ contents
    @property
    def n_episodes(self) -> int:
        return len(self._ends)

    @property
    def n_steps(self) -> int:
        return self._ends[-1] if self._ends else 0

    @property
    def episode_ends(self) -> np.ndarray:
        return np.asarray(self._ends, dtype=np.int64)

    def _concat(self) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            if self._obs:
                self._obs = [np.concatenate(self._obs)]
                self._action = [np.concatenate(self._action)]
                self._cache = (self._obs[0], self._action[0])
            else:
                empty = np.zeros((0, self.obs_dim), np.float32), np.zeros((0, self.action_dim), np.float32)
                self._cache = empty
        return self._cache

    @property
    def obs(self) -> np.ndarray:
        """All observations, ``(N, obs_dim)`` float32."""
        return self._concat()[0]

    @property
    def action(self) -> np.ndarray:
        """All actions, ``(N, action_dim)`` float32."""
        return self._concat()[1]

    def episode_slice(self, i: int) -> slice:
        """The steps of episode ``i`` (negative indices count from the end)."""
        if not -self.n_episodes <= i < self.n_episodes:
            raise IndexError(f"episode {i} out of range for {self.n_episodes} episodes")
        i %= self.n_episodes
        return slice(self._ends[i - 1] if i > 0 else 0, self._ends[i])

    def episode(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """``(obs, action)`` of episode ``i``."""
        part = self.episode_slice(i)
        return self.obs[part], self.action[part]

    def add_episode(self, obs: np.ndarray, action: np.ndarray) -> None:
        """Append one episode: ``obs`` ``(T, obs_dim)`` and ``action`` ``(T, action_dim)``, T >= 1, all finite."""
        obs = np.asarray(obs, dtype=np.float32)
        action = np.asarray(action, dtype=np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"obs must be (T, {self.obs_dim}), got {obs.shape}")
        if action.ndim != 2 or action.shape[1] != self.action_dim:
            raise ValueError(f"action must be (T, {self.action_dim}), got {action.shape}")
        if len(obs) != len(action) or len(obs) == 0:
            raise ValueError(f"obs and action need the same non-zero length, got {len(obs)} and {len(action)}")
        if not (np.isfinite(obs).all() and np.isfinite(action).all()):
            raise ValueError("obs and action must be finite")
        self._obs.append(obs.copy())
        self._action.append(action.copy())
        self._ends.append(self.n_steps + len(obs))
        self._cache = None

    # ------------------------------------------------------------------ disk
    def save(self, path: str | Path) -> Path:
        """Write the buffer to ``path`` atomically (`core.checkpoint.atomic_savez`)."""
        arrays = {
            "data/obs": self.obs,
            "data/action": self.action,
            "meta/episode_ends": self.episode_ends,
            "meta/task": np.array(self.task, dtype=np.str_),
            "meta/gripper_dims": np.asarray(self.gripper_dims, dtype=np.int64),
        }
        return atomic_savez(path, arrays)

    @classmethod
    def load(cls, path: str | Path) -> ReplayBuffer:
        """Read and validate a buffer written by :meth:`save` (or by hand in the same layout)."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise DataError("replay buffer not found", path)
        try:
            with path.open("rb") as handle:
                head = handle.read(6)
            if not head.startswith(b"PK") and head != b"\x93NUMPY":  # np.load would call anything else a pickle
                raise DataError("not an .npz replay buffer (not a zip archive: a text or other file?)", path)
            archive = np.load(path, allow_pickle=False)
        except OSError as err:
            raise DataError(f"cannot read the replay buffer ({err.strerror or err})", path) from err
        except (ValueError, zipfile.BadZipFile, EOFError) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"not a readable .npz replay buffer ({err})", path) from err
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError("not an .npz replay buffer (a single .npy array)", path)
        with archive:
            missing = [key for key in KEYS if key not in archive.files]
            if missing:
                raise DataError(f"replay buffer lacks key(s) {', '.join(missing)}", path)
            arrays = {}
            for key in KEYS:
                try:
                    arrays[key] = archive[key]
                except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
                    raise DataError(f"cannot read {key} ({err})", path) from err
        return cls.from_arrays(arrays, path)

    @classmethod
    def from_arrays(cls, arrays, path: str | Path | None = None) -> ReplayBuffer:
        """A buffer from the :data:`KEYS` arrays after every check of :meth:`load`; ``path`` (the file or folder the
        arrays came from: an importer's source) is named in the `DataError`."""
        obs, action = arrays["data/obs"], arrays["data/action"]
        ends, task, grip = arrays["meta/episode_ends"], arrays["meta/task"], arrays["meta/gripper_dims"]

        for key, value in (("data/obs", obs), ("data/action", action)):
            if value.ndim != 2 or value.shape[1] < 1:
                raise DataError(f"{key} must be a 2-D (steps, dims) array, got shape {value.shape}", path)
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                raise DataError(f"{key} must be numeric, got dtype {value.dtype}", path)
            if not np.isfinite(value).all():
                raise DataError(f"{key} holds NaN or inf values", path)
            largest = float(np.abs(value).max()) if value.size else 0.0
            if largest > FLOAT32_MAX:
                raise DataError(f"{key} holds {largest:g}, too large for float32 (the buffer's type; at most "
                                f"{FLOAT32_MAX:.4g} in magnitude)", path)  # fmt: skip
        if len(obs) != len(action):
            raise DataError(f"data/obs has {len(obs)} steps but data/action has {len(action)}", path)
        if ends.ndim != 1 or not np.issubdtype(ends.dtype, np.integer):
            raise DataError(f"meta/episode_ends must be a 1-D integer array, got {ends.dtype} {ends.shape}", path)
        if len(ends) == 0:
            raise DataError("replay buffer holds no episodes (meta/episode_ends is empty)", path)
        if ends[0] <= 0 or (np.diff(ends) <= 0).any():
            raise DataError("meta/episode_ends must be strictly increasing and positive (an episode is empty)", path)
        if int(ends[-1]) != len(obs):
            raise DataError(f"meta/episode_ends ends at {int(ends[-1])} but the buffer holds {len(obs)} steps", path)
        if task.ndim != 0 or task.dtype.kind != "U":
            raise DataError(f"meta/task must be a 0-d unicode array, got {task.dtype} {task.shape}", path)
        if grip.ndim != 1 or (grip.size and not np.issubdtype(grip.dtype, np.integer)):
            raise DataError(f"meta/gripper_dims must be a 1-D integer array, got {grip.dtype} {grip.shape}", path)
        action_dim = action.shape[1]
        if ((grip < 0) | (grip >= action_dim)).any() or len(set(grip.tolist())) != len(grip):
            raise DataError(f"meta/gripper_dims {grip.tolist()} must be distinct dims in [0, {action_dim})", path)

        buffer = cls(str(task), obs.shape[1], action_dim, grip.tolist())
        buffer._obs = [obs.astype(np.float32, copy=False)]
        buffer._action = [action.astype(np.float32, copy=False)]
        buffer._ends = [int(e) for e in ends]
        return buffer

    def __repr__(self) -> str:
        return (
            f"ReplayBuffer(task={self.task!r}, episodes={self.n_episodes}, steps={self.n_steps}, "
            f"obs_dim={self.obs_dim}, action_dim={self.action_dim}, gripper_dims={self.gripper_dims})"
        )
