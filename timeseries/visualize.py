"""Figures for ImDiffusion detections (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from diffusekit.core.figures import save_figure, subplots


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` of every run of 1s."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], np.asarray(flags, dtype=np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def plot_detection(
    path: str | Path,
    series: np.ndarray,
    scores: np.ndarray,
    votes: np.ndarray,
    predicted: np.ndarray,
    feature_scores: np.ndarray,
    *,
    labels: np.ndarray | None = None,
    feature_names: Sequence[str] | None = None,
    threshold: float | None = None,
    xi: int | None = None,
    top: int = 3,
    title: str = "",
) -> Path:
    """Draw the ``top`` features with the largest imputation error (series (T, K)), the decision score with its
    threshold, the ensemble votes with ξ, and the true labels; detected intervals are shaded red on every panel,
    labelled anomalies green on the series panels. ``feature_scores`` is (K, T)."""
    series = np.asarray(series)
    T, K = series.shape
    names = list(feature_names) if feature_names is not None else [f"feature_{k}" for k in range(K)]
    ranked = np.argsort(-np.asarray(feature_scores).mean(axis=1), kind="stable")[: min(top, K)]
    panels = len(ranked) + 2 + (labels is not None)
    fig, axes = subplots(panels, 1, figsize=(12, 1.5 * panels + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]
    t = np.arange(T)
    detected = _runs(predicted)
    truth = _runs(labels) if labels is not None else []
    for ax, k in zip(axes, ranked):
        ax.plot(t, series[:, k], lw=0.7, color="tab:blue")
        ax.set_ylabel(names[k], fontsize=8, rotation=0, ha="right")
        for start, end in truth:
            ax.axvspan(start, end, color="tab:green", alpha=0.15, lw=0)
    ax = axes[len(ranked)]
    ax.plot(t, scores, lw=0.7, color="k")
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", ls="--", lw=0.8, label="threshold")
        ax.legend(fontsize=7, loc="upper right")
    ax.set_ylabel("score", fontsize=8, rotation=0, ha="right")
    ax = axes[len(ranked) + 1]
    ax.step(t, votes, where="mid", lw=0.7, color="tab:purple")
    if xi is not None:
        ax.axhline(xi + 0.5, color="tab:red", ls="--", lw=0.8, label=f"votes > ξ={xi}")
        ax.legend(fontsize=7, loc="upper right")
    ax.set_ylabel("votes", fontsize=8, rotation=0, ha="right")
    if labels is not None:
        ax = axes[-1]
        ax.fill_between(t, np.asarray(labels), step="mid", color="tab:green", alpha=0.6)
        ax.set_ylabel("labels", fontsize=8, rotation=0, ha="right")
        ax.set_yticks([0, 1])
    for ax in axes:
        for start, end in detected:
            ax.axvspan(start, end, color="tab:red", alpha=0.2, lw=0)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("time step")
    shaded = "red: detected" + (", green: labelled anomalies" if labels is not None else "")
    fig.suptitle(f"{title} ({shaded})" if title else shaded, fontsize=9)
    return save_figure(fig, path)
