"""ImDiffusion versus IsolationForest and a PCA reconstruction detector on real SMD machines, in one run.

Per machine: oracle PA-F1 (test labels choose the threshold; comparable with published tables only), F1 and PA-F1
with a deployable threshold (no test labels), VUS-PR (windows 0..100), the stand-alone R-AUC-PR (window 100; what
published R-AUC-PR columns and ``vus`` ``get_metrics(metric="range_auc")`` report), ADD, training time,
inference windows/s and the process's peak memory; then the paper configuration's training and imputation
throughput and achieved GFLOP/s (`timeseries_model_speed.report`). Baselines score min-max scaled points; their
deployable threshold is the (1 - p0) quantile of their scores on the held-out train tail (the same tail and p0
that calibrate ImDiffusion's votes). Beware: point adjustment inflates everything, so read VUS-PR first.

    python benchmarks/timeseries_smd.py [--data ../shared/data/smd/ServerMachineDataset] [--iters 500]
        [--config imdiffusion_smd] [--cfg-options k=v ...] [--work-dir work_dirs/bench_smd]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from timeseries_model_speed import report as report_model_speed  # the sibling script (benchmarks/ is on sys.path)

from diffusekit.timeseries.data import validation_length
from diffusekit.timeseries.datasets import entity_names, read_entity
from diffusekit.timeseries.metrics import (
    average_detection_delay,
    best_f1,
    f1_point,
    f1_point_adjusted,
    range_auc_pr,
    vus_pr,
)
from diffusekit.timeseries.pipeline import Settings
from diffusekit.timeseries.workflow import (
    FINAL_WEIGHTS,
    evaluate_entity,
    load_entity_model,
    load_timeseries_config,
    train_entities,
)

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "smd" / "ServerMachineDataset"
COLUMNS = ("oracle_pa_f1", "f1", "pa_f1", "vus_pr", "r_auc_pr", "add")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline_metrics(scores_val, scores_test, labels, p0: float, window: int) -> dict[str, float]:
    threshold = np.quantile(scores_val, 1 - p0)
    pred = (scores_test > threshold).astype(np.int64)
    return {
        "oracle_pa_f1": best_f1(labels, scores_test, adjust=True).f1,
        "f1": f1_point(labels, pred),
        "pa_f1": f1_point_adjusted(labels, pred),
        "vus_pr": vus_pr(labels, scores_test, window),
        "r_auc_pr": range_auc_pr(labels, scores_test, window),
        "add": average_detection_delay(labels, pred),
    }


def run_baselines(split, settings: Settings, seed: int = 0) -> dict[str, dict[str, float]]:
    n_val = validation_length(len(split.train), settings.val_fraction, settings.window)
    fit, val = split.train[:-n_val], split.train[-n_val:]
    results = {}
    start = time.perf_counter()
    forest = IsolationForest(n_estimators=100, random_state=seed).fit(fit)
    score = lambda x: -forest.score_samples(x)  # noqa: E731  (higher = more anomalous)
    results["IsolationForest"] = baseline_metrics(
        score(val), score(split.test), split.test_labels, settings.p0, settings.metric_window
    )
    results["IsolationForest"]["train_s"] = time.perf_counter() - start
    start = time.perf_counter()
    pca = PCA(n_components=0.95, random_state=seed).fit(fit)
    recon = lambda x: np.abs(x - pca.inverse_transform(pca.transform(x))).max(axis=1)  # noqa: E731
    results["PCA"] = baseline_metrics(
        recon(val), recon(split.test), split.test_labels, settings.p0, settings.metric_window
    )
    results["PCA"]["train_s"] = time.perf_counter() - start
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SMD folder (train/ test/ test_label/ ...)")
    parser.add_argument("--config", default="imdiffusion_smd")
    parser.add_argument(
        "--iters",
        type=int,
        default=500,
        help="training iterations per machine (500: ~15 min of paper-scale CPU training)",
    )
    parser.add_argument("--cfg-options", nargs="*", default=[], metavar="k=v")
    parser.add_argument("--work-dir", default="work_dirs/bench_smd")
    parser.add_argument("--machines", default="all")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="evaluation device")
    args = parser.parse_args()

    cfg = load_timeseries_config(args.config, [f"train_cfg.max_iters={args.iters}", *args.cfg_options])
    settings = Settings.from_cfg(cfg)
    machines = entity_names(args.data, "smd") if args.machines == "all" else args.machines.split(",")
    rows = []
    for machine in machines:
        split = read_entity(args.data, "smd", machine)
        start = time.perf_counter()
        (entity_dir,) = train_entities(
            cfg, args.data, args.work_dir, machines=machine, device=args.device, progress=False
        )
        train_s = time.perf_counter() - start
        model = load_entity_model(cfg, entity_dir / FINAL_WEIGHTS, split.num_features, args.device)
        evaluation = evaluate_entity(model, split, settings, progress=False)
        windows = int(np.ceil((len(split.test) - settings.window) / settings.test_stride)) + 1
        ours = {k: evaluation.metrics[k] for k in COLUMNS}
        ours.update(train_s=train_s, windows_per_s=windows / evaluation.metrics["seconds"])
        rows.append((machine, "ImDiffusion", ours))
        rows += [(machine, name, m) for name, m in run_baselines(split, settings).items()]
        # each machine's rows as soon as they exist: a long run stopped early keeps what it measured
        for _, method, m in rows[-3:]:
            print(f"{machine} {method}: " + ", ".join(f"{c} {m[c]:.4f}" for c in (*COLUMNS, "train_s")), flush=True)
        print(f"{machine}: done, peak memory {peak_mib():.0f} MiB", flush=True)

    print(
        f"\nSMD, {len(machines)} machines; ImDiffusion {args.config} with {args.iters} iterations; "
        f"VUS windows 0..{settings.metric_window}; deployable p0={settings.p0}"
    )
    head = f"{'machine':<13}{'method':<16}" + "".join(f"{c:>13}" for c in COLUMNS) + f"{'train s':>9}{'win/s':>8}"
    print(head)
    print("-" * len(head))
    for machine, method, m in rows:
        rate = f"{m['windows_per_s']:>8.2f}" if "windows_per_s" in m else f"{'':>8}"
        print(
            f"{machine:<13}{method:<16}" + "".join(f"{m[c]:>13.4f}" for c in COLUMNS) + f"{m['train_s']:>9.1f}" + rate
        )
    for method in ("ImDiffusion", "IsolationForest", "PCA"):
        mean = {c: np.nanmean([m[c] for _, name, m in rows if name == method]) for c in COLUMNS}
        print(f"{'mean':<13}{method:<16}" + "".join(f"{mean[c]:>13.4f}" for c in COLUMNS))
    print("oracle_pa_f1: oracle protocol, test labels used. f1 / pa_f1 / add: deployable thresholds, no test labels.")
    print(f"peak memory {peak_mib():.0f} MiB (process RSS)")
    print("\nPaper-configuration denoiser speed on this machine:")
    report_model_speed(features=38, repeats=3)


if __name__ == "__main__":
    main()
