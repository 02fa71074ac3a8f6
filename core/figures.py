"""Figure plumbing shared by the demo and every domain's ``visualize.py``.

Figures are built through matplotlib's object API (``matplotlib.figure.Figure``), never through pyplot: no global
backend is switched, no figure registry grows, and a user's interactive session or notebook backend is left alone.
"""

from __future__ import annotations

from pathlib import Path


def new_figure(figsize: tuple[float, float] = (6.4, 4.8), **kwargs):
    """A stand-alone ``Figure`` (no pyplot state; matplotlib is imported lazily, it is slow to load)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, **kwargs)


def subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6.4, 4.8), **kwargs):
    """``(figure, axes)`` as ``pyplot.subplots`` returns them, on a stand-alone figure."""
    fig = new_figure(figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Lay out and write ``fig`` (creating the folder); returns the path."""
    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
