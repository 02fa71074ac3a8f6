"""Run TSB-AD's multivariate detectors (Liu & Paparrizos, NeurIPS 2024 Datasets & Benchmarks; PyPI ``tsb-ad``) with
their published settings (``TSB_AD.HP_list.Optimal_Multi_algo_HP_dict``) through TSB-AD's own API, and save their
raw scores. Runs inside the TSB-AD environment (``make tsbad-env``: TSB-AD pins numpy<2), never imports diffusekit:
``benchmarks/timeseries_smd.py`` passes the data and reads the scores back through files and rates them with
diffusekit's metrics.

Input ``--input data.npz``: ``<entity>/fit`` (training part, T1 x K), ``<entity>/val`` (held-out training tail, T2 x K)
and ``<entity>/test`` (T3 x K) for every entity. Protocol, as TSB-AD's ``Run_Detector_M.py`` (seed 2024):

- semi-supervised detectors (TSB-AD's ``Semisupervise_AD_Pool``: CNN, LSTMAD, USAD, OmniAnomaly, ...) train on
  ``fit`` and score ``val`` + ``test`` in one call;
- unsupervised ones (``Unsupervise_AD_Pool``: IForest, PCA, HBOS, KMeansAD, CBLOF, ...) score ``fit`` + ``val`` +
  ``test`` as one series (TSB-AD scores its whole file, train prefix included).

Output ``--output scores.npz``: ``<entity>/<detector>/val`` and ``.../test`` scores (higher = more anomalous) and
``<entity>/<detector>/seconds``; a failing detector is reported on stderr and left out.

    .venv-tsbad/bin/python benchmarks/tsb_ad_peers.py --input data.npz --output scores.npz [--detectors CNN,PCA]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import numpy as np
import torch
from TSB_AD.HP_list import Optimal_Multi_algo_HP_dict
from TSB_AD.model_wrapper import Semisupervise_AD_Pool, Unsupervise_AD_Pool, run_Semisupervise_AD, run_Unsupervise_AD

DETECTORS = ("CBLOF", "KMeansAD", "PCA", "HBOS", "IForest", "CNN", "USAD", "OmniAnomaly", "LSTMAD")


def seed_everything(seed: int = 2024) -> None:
    """TSB-AD's seeding (``Run_Detector_M.py``)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_detector(name: str, fit: np.ndarray, val: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores of ``val`` and ``test`` from one TSB-AD detector with its published multivariate settings."""
    settings = Optimal_Multi_algo_HP_dict.get(name, {})
    seed_everything()
    if name in Semisupervise_AD_Pool:
        scores = run_Semisupervise_AD(name, fit, np.concatenate([val, test]), **settings)
        offset = 0
    elif name in Unsupervise_AD_Pool:
        scores = run_Unsupervise_AD(name, np.concatenate([fit, val, test]), **settings)
        offset = len(fit)
    else:
        raise ValueError(f"{name} is in neither of TSB-AD's detector pools")
    if isinstance(scores, str):  # TSB-AD's wrappers return their error message instead of raising
        raise RuntimeError(scores)
    scores = np.asarray(scores, dtype=np.float64).ravel()
    expected = offset + len(val) + len(test)
    if scores.shape != (expected,):
        raise RuntimeError(f"{len(scores)} scores for {expected} points")
    scores = scores[offset:]
    return scores[: len(val)], scores[len(val) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = np.load(args.input)
    entities = sorted({key.split("/")[0] for key in data.files})
    out: dict[str, np.ndarray] = {}
    for entity in entities:
        fit, val, test = (data[f"{entity}/{part}"] for part in ("fit", "val", "test"))
        for name in args.detectors.split(","):
            start = time.perf_counter()
            try:
                val_scores, test_scores = run_detector(name, fit, val, test)
            except Exception as error:  # noqa: BLE001  (one failing peer must not stop the others)
                print(f"{entity} {name}: FAILED: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
                continue
            seconds = time.perf_counter() - start
            out[f"{entity}/{name}/val"], out[f"{entity}/{name}/test"] = val_scores, test_scores
            out[f"{entity}/{name}/seconds"] = np.float64(seconds)
            print(f"{entity} {name}: {seconds:.1f} s", flush=True)
            np.savez(args.output, **out)  # after every detector: a stopped run keeps what it measured


if __name__ == "__main__":
    main()
