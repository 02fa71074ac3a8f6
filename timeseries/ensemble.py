"""ImDiffusion scoring and ensemble voting (Chen et al., VLDB 2024; released code ``ensemble_proper.py``), as pure
numpy functions.

Conventions:

- Window outputs are ``(W, ..., L)`` (W windows in start order, time last); stitched series are ``(..., T)``.
- Per-step outputs of ``ImDiffusion.impute`` come in sampler order (``imputed[:, i]`` = the state after step i, the
  last one the final x̂₀). Scoring flips them into **step-from-the-end order**: row ``j`` of ``step_scores`` is the
  sample ``j`` steps before the end, so with the full T=50 chain row ``j`` is the sample right after the reverse step
  at level t = j, and row 0 is the final x̂₀. The released default steps ``range(0, 30, 3)`` index these rows.
- Stitching rule (:func:`stitch_owner`): every timestamp is scored by the covering window whose centre is nearest
  (ties to the earlier window). With L=100 and stride 50 this is the released middle half [25, 75) of every window plus
  the first window's head; unlike the released code the last window's tail is scored too (with the extra window of
  ``window_starts(..., tail=True)`` when T is not on the stride grid), so every timestamp is scored exactly once.
- Per-step thresholds (paper/code): ē_i = time-mean of the squared error summed over features, p_i = p0·ē_0/ē_i
  (ē_0 = the first chosen step), threshold_i = the round(p_i·N)-th largest r_i, pred_i = r_i > threshold_i,
  V(t) = Σ_i pred_i(t), label = V > ξ.
- Two ways to pick p0 and ξ: :func:`oracle_search` (the released protocol: grid search on the **test labels**, an
  oracle, for comparison with published numbers only) and :func:`calibrate_votes` (deployable: thresholds from
  validation scores of normal data, ξ a majority vote by default; no test labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np

from diffusekit.timeseries.metrics import f1_point_adjusted

DEFAULT_STEPS: tuple[int, ...] = tuple(range(0, 30, 3))  # released code: 10 of the last 30 of 50 steps
Reduce = Literal["max", "sum"]


class SeriesScores(NamedTuple):
    """Scores of one stitched series: ``step_scores`` (S, T) r_j(t) in step-from-the-end order, ``step_sq_errors``
    (S, T) the feature-summed squared errors, ``feature_scores`` (K, T) = |x̂₀ − x| of the final step."""

    step_scores: np.ndarray
    step_sq_errors: np.ndarray
    feature_scores: np.ndarray

    @property
    def step_errors(self) -> np.ndarray:
        """ē_j (S,): time-mean of the feature-summed squared error of each step."""
        return self.step_sq_errors.mean(axis=1)

    def part(self, index: slice) -> SeriesScores:
        """The scores of a time slice (e.g. a held-out validation part)."""
        return SeriesScores(self.step_scores[:, index], self.step_sq_errors[:, index], self.feature_scores[:, index])


class VoteCalibration(NamedTuple):
    """Per-step thresholds of the chosen steps and the vote threshold ξ (label = V > ξ)."""

    thresholds: np.ndarray
    xi: int
    p0: float
    steps: tuple[int, ...]


class OracleResult(NamedTuple):
    """Best PA-F1 of the grid searched on test labels (an oracle), its (p0, ξ) and its labels."""

    f1: float
    p0: float
    xi: int
    labels: np.ndarray


# ---------------------------------------------------------------------------------------------------------- stitching
def stitch_owner(length: int, window: int, starts: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every timestamp, the index of the window that scores it and the offset inside that window.

    The owner is the covering window with the nearest centre ``start + (window - 1) / 2`` (ties: earlier window).
    Raises ValueError when the windows leave a timestamp uncovered (stride > window, or no window ends at T).
    """
    starts = np.asarray(starts, dtype=np.int64)
    if starts.ndim != 1 or starts.size == 0 or np.any(np.diff(starts) <= 0):
        raise ValueError("starts must be a non-empty strictly increasing 1-D sequence")
    if starts[0] != 0 or starts[-1] + window != length or np.any(np.diff(starts) > window):
        raise ValueError(
            f"windows of {window} at {starts.tolist()[:5]}... do not cover 0..{length - 1}: use "
            "window_starts(length, window, stride <= window, tail=True)"
        )
    centres = starts + (window - 1) / 2.0
    bounds = (centres[1:] + centres[:-1]) / 2.0
    owner = np.searchsorted(bounds, np.arange(length), side="left")
    offset = np.arange(length) - starts[owner]
    return owner, offset


def stitch(window_values: np.ndarray, starts: Sequence[int] | np.ndarray, length: int) -> np.ndarray:
    """Stitch window outputs ``(W, ..., L)`` into a series ``(..., T)``, each timestamp from its owner window."""
    window_values = np.asarray(window_values)
    owner, offset = stitch_owner(length, window_values.shape[-1], starts)
    if window_values.shape[0] != len(np.asarray(starts)):
        raise ValueError(f"{window_values.shape[0]} windows for {len(np.asarray(starts))} starts")
    return np.moveaxis(window_values[owner, ..., offset], 0, -1)


# ---------------------------------------------------------------------------------------------------------- scores
def reduce_features(errors: np.ndarray, reduce: Reduce = "max") -> np.ndarray:
    """r(t) from per-feature errors ``(..., K, T)``: max over features (released: SMD, GCP, PSM) or sum (MSL, SMAP,
    SWaT)."""
    if reduce == "max":
        return errors.max(axis=-2)
    if reduce == "sum":
        return errors.sum(axis=-2)
    raise ValueError(f"unknown reduce {reduce!r}; expected 'max' or 'sum'")


def score_series(imputed: np.ndarray, series: np.ndarray, reduce: Reduce = "max") -> SeriesScores:
    """Scores from stitched per-step imputations ``(S, K, T)`` in sampler order and the series ``(K, T)``."""
    imputed = np.asarray(imputed, dtype=np.float64)[::-1]  # step-from-the-end order: row 0 = final x̂₀
    series = np.asarray(series, dtype=np.float64)
    errors = np.abs(imputed - series[None])
    return SeriesScores(reduce_features(errors, reduce), (errors**2).sum(axis=1), errors[0])


def score_windows(
    imputed: np.ndarray, inputs: np.ndarray, starts: Sequence[int] | np.ndarray, length: int, reduce: Reduce = "max"
) -> SeriesScores:
    """Stitch per-window imputations ``(W, S, K, L)`` (sampler order) and inputs ``(W, K, L)``, then score."""
    return score_series(stitch(imputed, starts, length), stitch(inputs, starts, length), reduce)


# ---------------------------------------------------------------------------------------------------------- voting
def _check_steps(step_scores: np.ndarray, steps: Sequence[int]) -> tuple[int, ...]:
    steps = tuple(int(s) for s in steps)
    if not steps or min(steps) < 0 or max(steps) >= step_scores.shape[0]:
        raise ValueError(f"steps {steps} must index the {step_scores.shape[0]} per-step scores")
    return steps


def _kth_largest(values: np.ndarray, k: int) -> float:
    """The k-th largest value (1-based); +inf for k <= 0 (nothing flagged), the minimum for k >= N."""
    if k <= 0:
        return float("inf")
    k = min(k, values.size)
    return float(np.partition(values, values.size - k)[values.size - k])


def vote_thresholds(
    step_scores: np.ndarray,
    step_errors: np.ndarray,
    p0: float,
    steps: Sequence[int] = DEFAULT_STEPS,
    min_count: int = 0,
) -> np.ndarray:
    """Per-step thresholds of the chosen steps: p_i = p0·ē_0/ē_i, threshold_i = round(p_i·N)-th largest r_i.

    Computed on the scores given: the test scores themselves in the released protocol, or validation scores of normal
    data for a deployable detector (:func:`calibrate_votes`). ``min_count`` floors round(p_i·N) (1 = a threshold
    never above the largest score; 0 lets a tiny p_i·N flag nothing, threshold +inf)."""
    step_scores, step_errors = np.asarray(step_scores, dtype=np.float64), np.asarray(step_errors, dtype=np.float64)
    steps = _check_steps(step_scores, steps)
    if not 0.0 <= p0 <= 1.0:
        raise ValueError(f"p0 must be in [0, 1], got {p0}")
    e = np.maximum(step_errors[list(steps)], np.finfo(np.float64).tiny)
    fractions = p0 * e[0] / e
    n = step_scores.shape[1]
    return np.array([_kth_largest(step_scores[s], max(int(round(p * n)), min_count)) for s, p in zip(steps, fractions)])


def ensemble_votes(step_scores: np.ndarray, thresholds: np.ndarray, steps: Sequence[int] = DEFAULT_STEPS) -> np.ndarray:
    """V(t) = number of chosen steps with r_i(t) > threshold_i, int64 (T,)."""
    step_scores = np.asarray(step_scores, dtype=np.float64)
    steps = _check_steps(step_scores, steps)
    return (step_scores[list(steps)] > np.asarray(thresholds, dtype=np.float64)[:, None]).sum(axis=0)


def vote_labels(votes: np.ndarray, xi: int) -> np.ndarray:
    """label(t) = V(t) > ξ as int64 0/1."""
    return (np.asarray(votes) > xi).astype(np.int64)


def decision_scores(
    step_scores: np.ndarray, thresholds: np.ndarray, steps: Sequence[int] = DEFAULT_STEPS
) -> np.ndarray:
    """Continuous summary d(t) = V(t) + m/(1 + m), m = mean_i r_i(t)/threshold_i (a soft vote in [0, 1)).

    The vote count dominates and the soft vote orders points within a vote count, so ``d >= ξ + 1`` is exactly
    ``V > ξ`` and the score stays usable for threshold-free metrics (VUS, best-F1)."""
    step_scores = np.asarray(step_scores, dtype=np.float64)
    steps = _check_steps(step_scores, steps)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    finite = np.where(np.isfinite(thresholds), thresholds, np.inf)
    scale = np.maximum(finite, 1e-12)[:, None]
    soft = (step_scores[list(steps)] / scale).mean(axis=0)
    return ensemble_votes(step_scores, thresholds, steps) + soft / (1.0 + soft)


# ---------------------------------------------------------------------------------------------------------- thresholds
def oracle_search(
    step_scores: np.ndarray,
    step_errors: np.ndarray,
    labels: np.ndarray,
    steps: Sequence[int] = DEFAULT_STEPS,
    p0_grid: Sequence[float] = (0.02,),
    xi_grid: Sequence[int] | None = None,
) -> OracleResult:
    """ORACLE (uses the test labels): the released protocol. Per-step thresholds from the test scores themselves,
    then ξ over 0..n_steps-1 (and p0 over ``p0_grid``; released: 0.02, or {0.0005·i, i=1..79} for SMD/GCP) for the
    best PA-F1. Only for comparison with published numbers; ties keep the first (smallest p0, then ξ)."""
    labels = np.asarray(labels)
    steps = _check_steps(np.asarray(step_scores), steps)
    xi_grid = range(len(steps)) if xi_grid is None else xi_grid
    best: OracleResult | None = None
    for p0 in p0_grid:
        votes = ensemble_votes(step_scores, vote_thresholds(step_scores, step_errors, p0, steps), steps)
        for xi in xi_grid:
            pred = vote_labels(votes, xi)
            f1 = f1_point_adjusted(labels, pred)
            if best is None or f1 > best.f1:
                best = OracleResult(float(f1), float(p0), int(xi), pred)
    assert best is not None
    return best


def calibrate_votes(
    val_step_scores: np.ndarray,
    val_step_errors: np.ndarray,
    p0: float = 0.02,
    steps: Sequence[int] = DEFAULT_STEPS,
    xi: int | None = None,
) -> VoteCalibration:
    """DEPLOYABLE thresholds, no test labels: the paper's per-step rule p_i = p0·ē_0/ē_i applied to validation scores
    of normal (held-out training) data, so each step flags about p_i of normal data; p0 is the tolerated false-alarm
    rate per step (a target contamination). ξ defaults to a majority vote, ``n_steps // 2`` (label = more than half
    of the steps agree). At least one validation point sits at or above each threshold (``min_count=1``), so a short
    validation series never yields an infinite threshold."""
    steps = _check_steps(np.asarray(val_step_scores), steps)
    thresholds = vote_thresholds(val_step_scores, val_step_errors, p0, steps, min_count=1)
    xi = len(steps) // 2 if xi is None else int(xi)
    if not 0 <= xi < len(steps):
        raise ValueError(f"xi must be in [0, {len(steps) - 1}], got {xi}")
    return VoteCalibration(thresholds, xi, float(p0), steps)
