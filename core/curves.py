"""Training curves a user can look at: the loss and every validation metric, written to the work dir.

:class:`CurvesHook` (added by ``build_runner`` to every run) keeps the mean training loss of each logging interval
and the metrics of each validation, and rewrites ``curves.json`` and ``curves.png`` in the work dir after each
validation and at the end of training. A resumed run continues the curves from ``curves.json``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mmengine.dist import master_only
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from .checkpoint import atomic_write_bytes
from .figures import save_figure, subplots

CURVES_JSON = "curves.json"
CURVES_PNG = "curves.png"


@HOOKS.register_module()
class CurvesHook(Hook):
    """Record ``train/loss`` every ``interval`` iterations and the validation metrics; write JSON and a figure."""

    priority = "BELOW_NORMAL"

    def __init__(self, interval: int = 10):
        self.interval = max(1, int(interval))
        self.loss: list[tuple[int, float]] = []
        self.val: list[tuple[int, dict[str, float]]] = []

    def before_train(self, runner) -> None:
        path = Path(runner.work_dir) / CURVES_JSON
        if runner.iter and path.is_file():  # resumed: keep the points before the checkpoint
            try:
                saved = json.loads(path.read_text())
                self.loss = [(int(i), float(v)) for i, v in saved.get("loss", []) if int(i) <= runner.iter]
                self.val = [(int(i), dict(m)) for i, m in saved.get("val", []) if int(i) <= runner.iter]
            except (OSError, ValueError, TypeError):
                self.loss, self.val = [], []

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        done = runner.iter + 1
        if done % self.interval and done != runner.max_iters:
            return
        history = runner.message_hub.log_scalars.get("train/loss")
        if history is not None:
            self.loss.append((done, float(history.mean(self.interval))))

    def after_val_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:
        numbers = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
        if numbers:
            self.val.append((runner.iter, numbers))
            self._write(runner)

    def after_train(self, runner) -> None:
        self._write(runner)

    @master_only
    def _write(self, runner) -> None:
        work_dir = Path(runner.work_dir)
        record = {"loss": self.loss, "val": self.val}
        atomic_write_bytes(work_dir / CURVES_JSON, json.dumps(record).encode())
        if self.loss or self.val:
            plot_curves(work_dir / CURVES_PNG, self.loss, self.val, title=work_dir.name)


def plot_curves(path: Path, loss: list[tuple[int, float]], val: list[tuple[int, dict[str, float]]], title: str = ""):
    """The training loss (log scale) and one panel per validation metric (each on its own scale: Dice and a
    distance in pixels do not share an axis), against iterations."""
    names = sorted({name for _, metrics in val for name in metrics})[:7]
    columns = min(4, 1 + len(names))
    rows = -(-(1 + len(names)) // columns)
    fig, axes = subplots(rows, columns, figsize=(3.4 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.flat[1 + len(names) :]:
        ax.set_visible(False)
    ax = axes.flat[0]
    points = [(i, v) for i, v in loss if math.isfinite(v)]
    if points:
        ax.plot(*zip(*points), lw=1.0)
        if all(v > 0 for _, v in points):
            ax.set_yscale("log")
    ax.set_title("training loss", fontsize=9)
    ax.set_xlabel("iteration")
    for ax, name in zip(axes.flat[1:], names):
        xy = [(i, m[name]) for i, m in val if name in m and math.isfinite(m[name])]
        if xy:
            ax.plot(*zip(*xy), marker="o", ms=3, color="tab:orange")
        ax.set_title(f"validation: {name}", fontsize=9)
        ax.set_xlabel("iteration")
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
