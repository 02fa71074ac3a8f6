"""Validation during training: the action error of sampled chunks on held-out demonstration episodes.

:class:`ActionChunkMSE` averages, over the validation windows (``ActionWindows(split="val")``), the squared error
between the executed actions of a chunk sampled by the policy (``DiffusionPolicy.val_step``: DDIM-10 by default)
and the demonstrated ones, in normalised units ([-1, 1] per action dim, so the value compares across tasks). It is
cheap (one short sampling per window, no simulator) and tracks what a rollout needs: the chunk the policy would
execute. On multimodal demonstrations (left or right of an obstacle) a good policy may pick the other mode and pay
for it, so the value is a relative signal for choosing a checkpoint, not an absolute one; the closed-loop success
rate stays `diffusekit robotics evaluate`'s job (docs/robotics.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.registry import METRICS

__all__ = ["ActionChunkMSE"]


@METRICS.register_module()
class ActionChunkMSE(BaseMetric):
    """``val/action_mse`` (lower is better) over every validation window; ``val/action_mse_max`` the worst one."""

    default_prefix = "val"

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            error = (sample["pred"].float() - sample["target"].float()) ** 2
            self.results.append(float(error.mean()))

    def compute_metrics(self, results: list) -> dict[str, float]:
        errors = np.asarray(results, dtype=np.float64)
        return {"action_mse": float(errors.mean()), "action_mse_max": float(errors.max())}
