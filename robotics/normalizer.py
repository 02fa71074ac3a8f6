"""Diffusion Policy's 'limits' normaliser: per-dimension min-max scaling of observations and actions to [-1, 1].

Follows ``real-stanford/diffusion_policy:model/common/normalizer.py`` (``_fit`` with ``mode='limits'``,
``output_min=-1``, ``output_max=1``, ``range_eps=1e-4``): ``y = scale * x + offset`` with
``scale = 2 / (high - low)`` and ``offset = -1 - scale * low``. A dimension whose range is below 1e-4 keeps
``scale = 1`` and gets ``offset = -low``, so its constant maps to 0 and 0 maps back to the constant (the map stays
invertible). Action dimensions flagged ``action_passthrough`` are left unchanged (``scale = 1``, ``offset = 0``), as
DP does for robomimic's rotation and gripper and RTI-DP-scale (Duan et al. 2025) does for the scaled gripper.

The statistics are buffers, so they travel in the model's ``state_dict``; they can also be given as plain lists
(:meth:`LinearNormalizer.fit_stats`) so that a config can hold them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

RANGE_EPS = 1e-4
STAT_KEYS = ("obs_low", "obs_high", "action_low", "action_high", "action_passthrough")


def _as_2d(values: Any, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim < 1 or array.shape[-1] < 1 or array.size == 0:
        raise ValueError(f"{name} must hold at least one value per dimension, got shape {array.shape}")
    array = array.reshape(-1, array.shape[-1])
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return array


class LinearNormalizer(nn.Module):
    """Min-max ('limits') normalisation of observations and actions; identity until given statistics."""

    obs_low: torch.Tensor
    obs_high: torch.Tensor
    action_low: torch.Tensor
    action_high: torch.Tensor
    action_passthrough: torch.Tensor

    def __init__(self, obs_dim: int, action_dim: int, stats: dict[str, Sequence] | None = None):
        super().__init__()
        if obs_dim < 1 or action_dim < 1:
            raise ValueError(f"obs_dim and action_dim must be >= 1, got {obs_dim} and {action_dim}")
        self.obs_dim, self.action_dim = int(obs_dim), int(action_dim)
        stats = dict(stats or {})
        unknown = set(stats) - set(STAT_KEYS)
        if unknown:
            raise ValueError(f"unknown normaliser stat(s) {sorted(unknown)}; expected {list(STAT_KEYS)}")
        sizes = {"obs_low": obs_dim, "obs_high": obs_dim, "action_low": action_dim, "action_high": action_dim}
        defaults = {"obs_low": -1.0, "obs_high": 1.0, "action_low": -1.0, "action_high": 1.0}
        for key, size in sizes.items():
            value = torch.as_tensor(stats.get(key, [defaults[key]] * size), dtype=torch.float32).reshape(-1)
            if value.numel() != size:
                raise ValueError(f"normaliser stat {key} needs {size} values, got {value.numel()}")
            if not torch.isfinite(value).all():
                raise ValueError(f"normaliser stat {key} holds NaN or inf values")
            self.register_buffer(key, value)
        passthrough = torch.as_tensor(stats.get("action_passthrough", [False] * action_dim), dtype=torch.bool)
        if passthrough.numel() != action_dim:
            raise ValueError(f"normaliser stat action_passthrough needs {action_dim} values, got {passthrough.numel()}")
        self.register_buffer("action_passthrough", passthrough.reshape(-1))
        for kind in ("obs", "action"):
            if (getattr(self, f"{kind}_low") > getattr(self, f"{kind}_high")).any():
                raise ValueError(f"normaliser stat {kind}_low exceeds {kind}_high")

    @staticmethod
    def fit_stats(obs: Any, action: Any, passthrough: Iterable[int] = ()) -> dict[str, list]:
        """Per-dimension min/max over all leading dims of ``obs`` (..., obs_dim) and ``action`` (..., action_dim).

        ``passthrough`` lists the action dims to leave unnormalised. Returns plain python lists.
        """
        obs, action = _as_2d(obs, "obs"), _as_2d(action, "action")
        dims = sorted({int(d) for d in passthrough})
        if any(not 0 <= d < action.shape[1] for d in dims):
            raise ValueError(f"passthrough dims {dims} out of range for action_dim {action.shape[1]}")
        return {
            "obs_low": obs.min(0).tolist(),
            "obs_high": obs.max(0).tolist(),
            "action_low": action.min(0).tolist(),
            "action_high": action.max(0).tolist(),
            "action_passthrough": [d in dims for d in range(action.shape[1])],
        }

    def stats(self) -> dict[str, list]:
        """The statistics as plain lists, in the format the constructor accepts."""
        return {key: getattr(self, key).tolist() for key in STAT_KEYS}

    @staticmethod
    def _affine(low: torch.Tensor, high: torch.Tensor, passthrough: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        span = high - low
        flat = span < RANGE_EPS
        scale = torch.where(flat, torch.ones_like(span), 2.0 / torch.where(flat, torch.ones_like(span), span))
        offset = torch.where(flat, -low, -1.0 - scale * low)
        if passthrough is not None:
            scale = torch.where(passthrough, torch.ones_like(scale), scale)
            offset = torch.where(passthrough, torch.zeros_like(offset), offset)
        return scale, offset

    def _params(self, kind: str, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low, high = getattr(self, f"{kind}_low"), getattr(self, f"{kind}_high")
        dim = low.numel()
        if like.shape[-1:] != (dim,):
            raise ValueError(f"expected {kind} with last dim {dim}, got shape {tuple(like.shape)}")
        scale, offset = self._affine(low, high, self.action_passthrough if kind == "action" else None)
        dtype = like.dtype if like.is_floating_point() else torch.float32
        return scale.to(like.device, dtype), offset.to(like.device, dtype)

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        scale, offset = self._params("obs", obs)
        return obs * scale + offset

    def normalize_action(self, action: torch.Tensor) -> torch.Tensor:
        scale, offset = self._params("action", action)
        return action * scale + offset

    def unnormalize_action(self, action: torch.Tensor) -> torch.Tensor:
        scale, offset = self._params("action", action)
        return (action - offset) / scale

    def unnormalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        scale, offset = self._params("obs", obs)
        return (obs - offset) / scale

    def extra_repr(self) -> str:
        passthrough = self.action_passthrough.nonzero().flatten().tolist()
        return f"obs_dim={self.obs_dim}, action_dim={self.action_dim}, passthrough={passthrough}"
