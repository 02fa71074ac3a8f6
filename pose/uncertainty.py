"""Uncertainty of multi-hypothesis 3D pose estimates: does the spread of the hypotheses say where the error is?

Per frame and joint (root-relative, in the unit of the inputs: mm in the benchmarks):
- spread: the mean Euclidean distance of the H hypotheses to their mean (needs H >= 2);
- error: the Euclidean distance of the aggregated prediction (the mean of the hypotheses: P-Agg for a diffusion
  model, the ensemble mean for an ensemble of regressors) to the ground truth.

`calibration` scores spread against error over all (frame, joint) pairs:
- ``spearman``: Spearman's rank correlation (scipy.stats.spearmanr), invariant to any monotone rescaling of the
  spread: does a larger spread mean a larger error?
- a reliability curve: the pairs sorted by spread and cut into equal-count bins (spread deciles by default), mean
  spread against mean error per bin (Kuleshov et al., "Accurate uncertainties for deep learning using calibrated
  regression", ICML 2018, for the recalibrated-regression view; Lakshminarayanan et al., "Simple and scalable
  predictive uncertainty estimation using deep ensembles", NeurIPS 2017, for the ensemble baseline);
- ``scale`` c = mean error / mean spread: the one factor that makes the spread an unbiased error estimate on
  average. Even a perfect sampler has c != 1: if the truth and the H hypotheses are independent draws of one
  isotropic Gaussian, spread and error are sigma sqrt(1 -/+ 1/H) times the same chi(3) mean, so
  c = sqrt((H + 1) / (H - 1)) (1.05 for H = 20, 1.29 for H = 4);
- ``calibration_error``: the mean over bins of |mean error - c mean spread|, divided by the mean error (0 when the
  error is proportional to the spread bin by bin; ``calibration_error_mm`` is the same before the division). An
  expected-calibration-error-like summary after the best single rescaling, so a model is not penalised for a
  spread that is right up to a constant.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from diffusekit.core.errors import DataError

__all__ = [
    "EnsembleLifter",
    "calibration",
    "hypotheses_calibration",
    "hypothesis_spread",
    "mean_error",
    "reliability_curve",
    "reliability_figure",
]


def _check_hypotheses(hypotheses: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    hypotheses = np.asarray(hypotheses, dtype=np.float64)
    if hypotheses.ndim < 3 or hypotheses.shape[-1] not in (2, 3):
        raise DataError(f"hypotheses must be (H, ..., J, 2 or 3), got shape {hypotheses.shape}")
    if truth is not None and np.shape(truth) != hypotheses.shape[1:]:
        raise DataError(f"truth of shape {np.shape(truth)} does not match hypotheses of shape {hypotheses.shape}")
    if not np.isfinite(hypotheses).all():
        raise DataError("hypotheses contain NaN or inf")
    return hypotheses


def hypothesis_spread(hypotheses: np.ndarray) -> np.ndarray:
    """(H, ..., J, 3) hypotheses -> (..., J): the mean distance of the H hypotheses to their mean (H >= 2)."""
    hypotheses = _check_hypotheses(hypotheses)
    if hypotheses.shape[0] < 2:
        raise DataError(f"a spread needs at least 2 hypotheses, got {hypotheses.shape[0]}")
    return np.linalg.norm(hypotheses - hypotheses.mean(0), axis=-1).mean(0)


def mean_error(hypotheses: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(H, ..., J, 3) hypotheses, (..., J, 3) truth -> (..., J): the distance of the hypotheses' mean to the truth."""
    hypotheses = _check_hypotheses(hypotheses, truth)
    return np.linalg.norm(hypotheses.mean(0) - np.asarray(truth, dtype=np.float64), axis=-1)


def reliability_curve(spread: np.ndarray, error: np.ndarray, bins: int = 10) -> dict[str, np.ndarray]:
    """Equal-count bins of the pairs sorted by spread (ties kept in input order): per bin the mean ``spread``, the
    mean ``error`` and the ``count`` of pairs (counts differ by at most one)."""
    spread, error = np.ravel(spread).astype(np.float64), np.ravel(error).astype(np.float64)
    if spread.shape != error.shape:
        raise DataError(f"spread ({spread.size} values) and error ({error.size} values) differ in size")
    if spread.size < bins or bins < 1:
        raise DataError(f"{bins} bins need at least as many (frame, joint) pairs, got {spread.size}")
    order = np.argsort(spread, kind="stable")
    parts = np.array_split(order, bins)
    return {
        "spread": np.array([spread[p].mean() for p in parts]),
        "error": np.array([error[p].mean() for p in parts]),
        "count": np.array([len(p) for p in parts]),
    }


def calibration(spread: np.ndarray, error: np.ndarray, bins: int = 10) -> dict:
    """Spread against error over all pairs (see the module docstring): ``spearman``, ``scale``,
    ``calibration_error`` (relative), ``calibration_error_mm``, ``mean_spread``, ``mean_error``, ``pairs`` and the
    reliability curve as ``bins`` [{spread, error, count}]. Spearman is NaN when the spread or error is constant."""
    from scipy.stats import spearmanr

    curve = reliability_curve(spread, error, bins)
    spread, error = np.ravel(spread).astype(np.float64), np.ravel(error).astype(np.float64)
    if not (np.isfinite(spread).all() and np.isfinite(error).all()):
        raise DataError("spread or error contains NaN or inf")
    constant = np.ptp(spread) == 0 or np.ptp(error) == 0
    rho = float("nan") if constant else float(spearmanr(spread, error).statistic)
    mean_spread, mean_err = float(spread.mean()), float(error.mean())
    scale = mean_err / mean_spread if mean_spread > 0 else float("nan")
    gap = float(np.abs(curve["error"] - scale * curve["spread"]).mean()) if mean_spread > 0 else float("nan")
    return {
        "spearman": rho,
        "scale": scale,
        "calibration_error": gap / mean_err if mean_err > 0 else float("nan"),
        "calibration_error_mm": gap,
        "mean_spread": mean_spread,
        "mean_error": mean_err,
        "pairs": int(spread.size),
        "bins": [
            {"spread": float(s), "error": float(e), "count": int(c)}
            for s, e, c in zip(curve["spread"], curve["error"], curve["count"])
        ],
    }


def hypotheses_calibration(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], hypotheses: int | None = None, bins: int = 10
) -> dict:
    """`calibration` over several sequences: ``pairs`` of (hypotheses (H, N, J, 3), truth (N, J, 3)), e.g.
    ``evaluate_lifting(..., keep_hypotheses=(K,))["hypotheses"][K]``; ``hypotheses``: use only the first H."""
    if not pairs:
        raise DataError("no sequences to score")
    spreads, errors = [], []
    for hyps, truth in pairs:
        hyps = hyps[:hypotheses] if hypotheses else hyps
        spreads.append(hypothesis_spread(hyps).ravel())
        errors.append(mean_error(hyps, truth).ravel())
    used = pairs[0][0].shape[0] if not hypotheses else min(hypotheses, pairs[0][0].shape[0])
    return {"hypotheses": int(used), **calibration(np.concatenate(spreads), np.concatenate(errors), bins)}


class EnsembleLifter(nn.Module):
    """M lifting models (e.g. regressors trained with different seeds) behind the `DDHPose.sample` interface: the
    members' predictions are the M "hypotheses", so `evaluate_lifting` scores the ensemble mean as P-Agg and
    `hypotheses_calibration` its spread (Lakshminarayanan et al. 2017). Each member is sampled with one hypothesis
    and one step (a deterministic member ignores them anyway); only the final poses are returned."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if len(members) < 1:
            raise ValueError("an ensemble needs at least one member")
        frames = {int(m.frames) for m in members}
        if len(frames) != 1:
            raise ValueError(f"the members' clip lengths differ: {sorted(frames)}")
        self.members = nn.ModuleList(members)
        self.frames = frames.pop()

    @torch.no_grad()
    def sample(
        self,
        keypoints_2d: torch.Tensor,
        hypotheses: int | None = None,
        steps: int = 1,
        flip: bool = True,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(1, M, B, F, J, 3): member m's prediction as hypothesis m; ``hypotheses`` must be M (or None)."""
        if hypotheses is not None and hypotheses != len(self.members):
            raise ValueError(
                f"an ensemble of {len(self.members)} gives {len(self.members)} hypotheses, not {hypotheses}"
            )
        poses = [m.sample(keypoints_2d, 1, 1, flip=flip, generator=generator)[-1, :1] for m in self.members]
        return torch.cat(poses)[None]


def reliability_figure(path: str | Path, curves: dict[str, dict], title: str = "") -> Path:
    """Mean error against mean spread per bin (log axes) for each ``curves`` entry (a `calibration` result, the
    legend showing Spearman, scale and calibration error), with the line error = spread."""
    from diffusekit.core.figures import save_figure, subplots

    fig, ax = subplots(figsize=(5.6, 4.6))
    low, high = np.inf, 0.0
    for name, result in curves.items():
        spread = np.array([b["spread"] for b in result["bins"]])
        error = np.array([b["error"] for b in result["bins"]])
        label = (
            f"{name}: rho={result['spearman']:.2f}, c={result['scale']:.2f}, "
            f"CE={100 * result['calibration_error']:.0f}%"
        )
        ax.plot(spread, error, "o-", label=label)
        positive = np.concatenate([spread, error])
        positive = positive[positive > 0]
        if positive.size:
            low, high = min(low, positive.min()), max(high, positive.max())
    if high > 0:
        ax.plot([low, high], [low, high], "k--", lw=1, label="error = spread")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("mean spread of the hypotheses per bin (mm)")
    ax.set_ylabel("mean error of their mean per bin (mm)")
    ax.set_title(title or "Reliability: spread deciles")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    return save_figure(fig, path)
