"""The registered training dataset of the Diffusion Policy configs: padded action windows from a replay buffer.

Windows follow Diffusion Policy's ``SequenceSampler`` (Chi et al., RSS 2023;
``real-stanford/diffusion_policy:common/sampler.py``, ``create_indices``): a window of ``horizon`` steps may start at
any index from ``-pad_before`` to ``L - horizon + pad_after`` of an episode of length L, with
``pad_before = n_obs - 1`` and ``pad_after = n_action - 1``; steps outside the episode repeat its first or last step,
so a window never crosses an episode boundary. An episode therefore gives
``max(0, L - horizon + n_obs + n_action - 1)`` windows. Each item holds the window's first ``n_obs`` observations and
all ``horizon`` actions, normalised by a :class:`~diffusekit.robotics.normalizer.LinearNormalizer` fitted on the
whole buffer ('limits', to [-1, 1]).

``split`` holds out the last episodes for validation (``val_episodes``: a fraction of the episodes, or a count;
at least one, and at least one left for training): ``"train"`` keeps the others, ``"val"`` the held-out ones, every
``stride``-th window; with either split the normaliser is fitted on the training episodes only, so both splits are
normalised alike. ``"all"`` (the default) uses every episode.

``gripper_scale != 1`` is RTI-DP-scale (Duan et al. 2025; ``rti/scale_robomimic_dataset.py`` uses 10): the gripper
action columns (``meta/gripper_dims``) are divided by ``gripper_scale`` and passed through the normaliser unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from mmengine.registry import DATASETS
from torch.utils.data import Dataset

from diffusekit.core.errors import DataError
from diffusekit.robotics.normalizer import LinearNormalizer
from diffusekit.robotics.replay import ReplayBuffer

SUFFIX = "_replay.npz"


def resolve_replay_path(data_root: str | Path, file: str | None = None) -> Path:
    """The replay ``.npz`` named by ``data_root`` (the file itself, or a folder holding ``<task>_replay.npz``).

    In a folder, ``file`` picks one buffer by file name or by task name; it is required when there are several.
    """
    root = Path(data_root).expanduser()
    if root.is_file():
        return root
    if not root.is_dir():
        raise DataError("replay data not found (expected a folder with <task>_replay.npz, or the .npz)", root)
    if file is not None:
        name = file if file.endswith(".npz") else f"{file}{SUFFIX}"
        path = root / name
        if not path.is_file():
            raise DataError(f"replay file {name} not found in the data folder", root)
        return path
    found = sorted(root.glob(f"*{SUFFIX}"))
    if not found:
        raise DataError(f"no *{SUFFIX} replay buffer in the data folder", root)
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(f"several replay buffers ({names}); choose one with file=", root)
    return found[0]


def window_indices(episode_ends: np.ndarray, horizon: int, n_obs: int, n_action: int) -> np.ndarray:
    """``(W, 3)`` int64 rows ``(start, episode_start, episode_end)`` of every window, DP's ``create_indices`` order.

    ``start`` is absolute and may precede the episode start or run past its end (the padding).
    """
    pad_before, pad_after = n_obs - 1, n_action - 1
    rows = []
    begin = 0
    for end in np.asarray(episode_ends, dtype=np.int64).tolist():
        length = end - begin
        starts = np.arange(-pad_before, length - horizon + pad_after + 1, dtype=np.int64) + begin
        rows.append(np.stack([starts, np.full_like(starts, begin), np.full_like(starts, end)], axis=1))
        begin = end
    return np.concatenate(rows) if rows else np.zeros((0, 3), np.int64)


@DATASETS.register_module()
class ActionWindows(Dataset):
    """Normalised ``{"obs": (n_obs, obs_dim), "action": (horizon, action_dim)}`` windows of a replay buffer.

    Attributes: ``buffer`` (the :class:`ReplayBuffer`), ``normalizer_stats`` (plain lists, for a config),
    ``normalizer``, ``task``, ``obs_dim``, ``action_dim``, ``gripper_dims``, ``indices`` (see
    :func:`window_indices`).
    """

    def __init__(
        self,
        data_root: str,
        horizon: int = 16,
        n_obs: int = 2,
        n_action: int = 8,
        gripper_scale: float = 1.0,
        file: str | None = None,
        split: str = "all",
        val_episodes: float = 0.1,
        stride: int = 1,
    ):
        if split not in ("all", "train", "val"):
            raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        if n_obs < 1 or n_action < 1 or horizon < n_obs + n_action - 1:
            raise ValueError(
                f"need n_obs >= 1, n_action >= 1 and horizon >= n_obs + n_action - 1, "
                f"got horizon={horizon}, n_obs={n_obs}, n_action={n_action}"
            )
        gripper_scale = float(gripper_scale)
        if not np.isfinite(gripper_scale) or gripper_scale <= 0:
            raise ValueError(f"gripper_scale must be a positive number, got {gripper_scale}")
        self.horizon, self.n_obs, self.n_action = int(horizon), int(n_obs), int(n_action)
        self.gripper_scale = gripper_scale
        self.path = resolve_replay_path(data_root, file)
        self.buffer = ReplayBuffer.load(self.path)
        self.task = self.buffer.task
        self.obs_dim, self.action_dim = self.buffer.obs_dim, self.buffer.action_dim
        self.gripper_dims = self.buffer.gripper_dims

        self.split = split
        first_val = self._first_val_episode(val_episodes) if split != "all" else self.buffer.n_episodes
        fit_steps = int(self.buffer.episode_ends[first_val - 1])  # the normaliser sees the training episodes only
        obs, action = self.buffer.obs, self.buffer.action.copy()
        passthrough: tuple[int, ...] = ()
        if gripper_scale != 1.0:
            if not self.gripper_dims:
                raise DataError("gripper_scale != 1 but the replay buffer has no meta/gripper_dims", self.path)
            action[:, list(self.gripper_dims)] /= gripper_scale
            passthrough = self.gripper_dims
        self.normalizer_stats = LinearNormalizer.fit_stats(obs[:fit_steps], action[:fit_steps], passthrough=passthrough)
        self.normalizer = LinearNormalizer(self.obs_dim, self.action_dim, self.normalizer_stats)
        with torch.no_grad():
            self._obs = self.normalizer.normalize_obs(torch.from_numpy(obs)).numpy()
            self._action = self.normalizer.normalize_action(torch.from_numpy(action)).numpy()

        indices = window_indices(self.buffer.episode_ends, self.horizon, self.n_obs, self.n_action)
        if split != "all":
            held_out = indices[:, 1] >= fit_steps
            indices = indices[held_out if split == "val" else ~held_out]
        self.indices = indices[:: int(stride)]
        if len(self.indices) == 0:
            raise DataError(
                f"no training windows: every episode is shorter than horizon - n_obs - n_action + 2 = "
                f"{self.horizon - self.n_obs - self.n_action + 2} steps",
                self.path,
            )
        self._offsets = np.arange(self.horizon, dtype=np.int64)

    def _first_val_episode(self, val_episodes: float) -> int:
        """Index of the first held-out episode (the last ``val_episodes`` episodes are held out)."""
        total = self.buffer.n_episodes
        count = max(1, round(val_episodes * total)) if 0 < val_episodes < 1 else int(val_episodes)
        if not 1 <= count < total:
            raise DataError(f"cannot hold out {val_episodes} of {total} episodes for validation (need at least one "
                            "held out and one for training)", self.path)  # fmt: skip
        return total - count

    def __len__(self) -> int:
        return len(self.indices)

    def steps(self, index: int) -> np.ndarray:
        """The buffer rows of window ``index`` (padding repeats the episode's first/last row)."""
        start, begin, end = self.indices[index]
        return np.clip(start + self._offsets, begin, end - 1)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rows = self.steps(index)
        return {
            "obs": torch.from_numpy(self._obs[rows[: self.n_obs]]),
            "action": torch.from_numpy(self._action[rows]),
        }
