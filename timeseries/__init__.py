"""diffusekit.timeseries: ImDiffusion anomaly detection on multivariate time series.

Readers for SMD (text and pickles), TSB-AD-M, PSM, MSL/SMAP and user CSV files, synthetic data in those layouts,
the ImDiffusion model and detector, ensemble voting, metrics, the detection pipeline (``pipeline``: scoring,
calibration, intervals; shared by the detector and the command line), per-entity training and evaluation
(``workflow``, ``predict``) and the ``diffusekit timeseries`` command group (``cli.DOMAIN``). See docs/timeseries.md.
"""

from __future__ import annotations

from diffusekit.timeseries.data import SeriesSplit, WindowDataset, window_starts
from diffusekit.timeseries.datasets import SeriesWindows, read_entity
from diffusekit.timeseries.imdiffusion import ImDiffusion, ImDiffusionDetector
from diffusekit.timeseries.models import ImDiffusionNet
from diffusekit.timeseries.synthetic import write_synthetic

__all__ = [
    "ImDiffusion",
    "ImDiffusionDetector",
    "ImDiffusionNet",
    "SeriesSplit",
    "SeriesWindows",
    "WindowDataset",
    "read_entity",
    "window_starts",
    "write_synthetic",
]
