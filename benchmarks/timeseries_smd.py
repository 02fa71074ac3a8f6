"""ImDiffusion against TSB-AD's multivariate detectors on real SMD machines, fast scoring against the released
50-step chain, and ImDiffusion's learning curve, in one run.

1. **Peers.** TSB-AD's detectors (CBLOF, KMeansAD, PCA, HBOS, IForest and the deep CNN, USAD, OmniAnomaly,
   LSTMAD) run through TSB-AD's own API with its published settings in their own environment
   (``--peers-python``, made by ``make tsbad-env``; see ``benchmarks/tsb_ad_peers.py`` for the protocol). Data and
   scores go through files; every score is rated here with diffusekit's metrics.
2. **ImDiffusion** (``--config``, ``--iters`` per machine) trains on the same fit part (the held-out train tail
   calibrates its votes, as the peers' thresholds) and scores the test series with the fast scorer
   (``FAST``: DDPM respaced to 25 trailing steps, voting over 7 rows, 8 windows a batch).
3. **Speed and agreement** on ``--reference-machine``: windows/s of (a) the earlier default (DDPM 50 steps, 64
   windows a batch, fp32; on the first ``--before-windows`` windows), (b) the released chain with 8 windows a batch
   and (c) the fast scorer, over the test span ``--span`` (each calibrated on the same train tail); VUS-PR of (b)
   and (c) on the span.
4. **Learning curve** on the reference machine: VUS-PR on the span of the checkpoints at ``--curve`` iterations.

Metrics per machine and on average: VUS-PR (windows 0..100), stand-alone R-AUC-PR (window 100), AUC-PR (area under
sklearn's precision-recall curve, TSB-AD's AUC-PR), deployable F1 with three thresholds fitted on the held-out
train tail without test labels (the (1 - p0) quantile, POT and SPOT; for ImDiffusion the quantile column is its
own vote calibration), the oracle PA-F1 (marked *: test labels pick the threshold; comparable with published tables
only) and seconds per machine.

    python benchmarks/timeseries_smd.py [--data ../shared/data/smd/ServerMachineDataset] [--iters 450]
        [--peers-python .venv-tsbad/bin/python] [--peer-scores FILE] [--curve 150,300] [--work-dir work_dirs/bench_smd]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import auc, precision_recall_curve

from diffusekit.timeseries.data import validation_length
from diffusekit.timeseries.datasets import entity_names, read_entity
from diffusekit.timeseries.metrics import best_f1, range_auc_pr, vus_pr
from diffusekit.timeseries.pipeline import Settings, calibrate, detect, score_series
from diffusekit.timeseries.thresholds import deployable_metrics
from diffusekit.timeseries.workflow import (
    FINAL_WEIGHTS,
    evaluate_entity,
    load_entity_model,
    load_timeseries_config,
    train_entities,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "smd" / "ServerMachineDataset"
PEERS = ("CBLOF", "KMeansAD", "PCA", "HBOS", "IForest", "CNN", "USAD", "OmniAnomaly", "LSTMAD")
# measured on machine-1-2 (docs/timeseries.md section 7): DDIM loses the ensemble (VUS-PR 0.165 vs 0.551), DDPM-25
# keeps most of it (0.525) at 1.8x the earlier default's speed
FAST = ["model.sample_steps=25", "model.sampler=ddpm", "detect.steps=[0,2,4,6,8,10,12]", "detect.precision=fp32"]
RELEASED = ["model.sample_steps=None", "model.sampler=ddpm", "detect.precision=fp32"]
COLUMNS = ("vus_pr", "r_auc_pr", "auc_pr", "f1_quantile", "f1_pot", "f1_spot", "oracle_pa_f1", "seconds")


def auc_pr(labels: np.ndarray, scores: np.ndarray) -> float:
    """TSB-AD's AUC-PR (``basic_metrics.metric_PR``): the trapezoid area under sklearn's precision-recall curve."""
    precision, recall, _ = precision_recall_curve(labels, scores)
    return float(auc(recall, precision))


def rate(labels: np.ndarray, val: np.ndarray, test: np.ndarray, p0: float, window: int) -> dict[str, float]:
    """Every column for one detector's scores of the held-out train tail (``val``) and of the test series."""
    deployable = deployable_metrics(val, test, labels, quantile=1 - p0)
    return {
        "vus_pr": vus_pr(labels, test, window),
        "r_auc_pr": range_auc_pr(labels, test, window),
        "auc_pr": auc_pr(labels, test),
        "oracle_pa_f1": best_f1(labels, test, adjust=True).f1,
        **{k: deployable[k] for k in ("f1_quantile", "pa_f1_quantile", "f1_pot", "pa_f1_pot", "f1_spot")},
    }


def run_peers(python: str, data: str, machines: list[str], settings: Settings, out: Path, names: str) -> Path:
    """Write fit / val / test per machine, run TSB-AD's detectors in their environment, return the scores file."""
    inputs, scores = out / "peers_input.npz", out / "peers_scores.npz"
    arrays = {}
    for machine in machines:
        split = read_entity(data, "smd", machine)
        n_val = validation_length(len(split.train), settings.val_fraction, settings.window)
        arrays[f"{machine}/fit"], arrays[f"{machine}/val"] = split.train[:-n_val], split.train[-n_val:]
        arrays[f"{machine}/test"] = split.test
    np.savez(inputs, **arrays)
    command = [python, str(ROOT / "benchmarks" / "tsb_ad_peers.py"), "--input", str(inputs), "--output", str(scores)]
    subprocess.run([*command, "--detectors", names], check=True)  # its progress lines stream through
    return scores


def peer_rows(scores_file: Path, data: str, machines: list[str], settings: Settings) -> list[tuple]:
    scores = np.load(scores_file)
    rows = []
    for machine in machines:
        labels = read_entity(data, "smd", machine).test_labels
        for name in PEERS:
            if f"{machine}/{name}/test" not in scores.files:
                continue
            val, test = scores[f"{machine}/{name}/val"], scores[f"{machine}/{name}/test"]
            m = rate(labels, val, test, settings.p0, settings.metric_window)
            m["seconds"] = float(scores[f"{machine}/{name}/seconds"])
            rows.append((machine, name, m))
            print(f"{machine} {name}: " + ", ".join(f"{c} {m[c]:.4f}" for c in COLUMNS), flush=True)
    return rows


def imdiffusion_row(cfg, data: str, machine: str, work_dir: Path, device: str) -> tuple[dict, Path]:
    """Train on one machine (checkpoints kept for the curve), evaluate with the config's (fast) scorer."""
    split = read_entity(data, "smd", machine)
    settings = Settings.from_cfg(cfg)
    start = time.perf_counter()
    (entity_dir,) = train_entities(cfg, data, work_dir, machines=machine, device=device, progress=False)
    train_s = time.perf_counter() - start
    model = load_entity_model(cfg, entity_dir / FINAL_WEIGHTS, split.num_features, device)
    evaluation = evaluate_entity(model, split, settings, progress=False)
    labels, decision = split.test_labels, evaluation.detection.decision
    m = {
        "vus_pr": vus_pr(labels, decision, settings.metric_window),
        "r_auc_pr": range_auc_pr(labels, decision, settings.metric_window),
        "auc_pr": auc_pr(labels, decision),
        "oracle_pa_f1": evaluation.metrics["oracle_pa_f1"],
        "f1_quantile": evaluation.metrics["f1"],  # its own deployable rule: the votes calibrated on the tail
        "pa_f1_quantile": evaluation.metrics["pa_f1"],
        "f1_pot": evaluation.metrics["f1_pot"],
        "pa_f1_pot": evaluation.metrics["pa_f1_pot"],
        "f1_spot": evaluation.metrics["f1_spot"],
        "train_s": train_s,
        "score_s": evaluation.metrics["seconds"],
        "seconds": train_s + evaluation.metrics["seconds"],
        # what VUS rates: the vote decision (above), the final step's imputation error, the mean voting-step error
        "vus_pr_final_error": vus_pr(labels, evaluation.scores.step_scores[0], settings.metric_window),
        "vus_pr_mean_error": vus_pr(
            labels, evaluation.scores.step_scores[list(settings.steps)].mean(axis=0), settings.metric_window
        ),
    }
    print(f"{machine} ImDiffusion: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()), flush=True)
    return m, entity_dir


def span_scores(model, split, settings: Settings, span: slice, windows: int | None = None) -> tuple[float, float]:
    """(VUS-PR of the decision on the span, windows per second) with the votes calibrated on the train tail;
    ``windows`` limits the span to its first windows (speed only: VUS-PR NaN)."""
    part = split.test[span]
    if windows is not None:
        part = part[: settings.window + (windows - 1) * settings.test_stride]
    else:
        calibration, _ = calibrate(model, split.train, settings, progress=False)
    start = time.perf_counter()
    scores = score_series(model, part, settings, progress=False)
    seconds = time.perf_counter() - start
    count = int(np.ceil((len(part) - settings.window) / settings.test_stride)) + 1
    if windows is not None:
        return float("nan"), count / seconds
    decision = detect(scores, calibration).decision
    return vus_pr(split.test_labels[span], decision, settings.metric_window), count / seconds


def scorer(config: str, base: list[str], options: list[str], weights: Path, num_features: int, device: str):
    cfg = load_timeseries_config(config, [*base, *options])
    return load_entity_model(cfg, weights, num_features, device), Settings.from_cfg(cfg)


def reference(args, base: list[str], entity_dir: Path, span: slice) -> dict:
    """Speed (a, b, c) and VUS-PR agreement of the fast scorer with the released chain, and the learning curve."""
    split = read_entity(args.data, "smd", args.reference_machine)
    k, out = split.num_features, {}
    weights = entity_dir / FINAL_WEIGHTS
    model, settings = scorer(args.config, base, [*RELEASED, "detect.batch_size=64"], weights, k, args.device)
    _, out["before_windows_per_s"] = span_scores(model, split, settings, span, args.before_windows)
    print(f"(a) DDPM-50, 64 a batch, fp32: {out['before_windows_per_s']:.3f} windows/s", flush=True)
    model, settings = scorer(args.config, base, [*RELEASED, "detect.batch_size=8"], weights, k, args.device)
    out["released_vus_pr"], out["released_windows_per_s"] = span_scores(model, split, settings, span)
    print(f"(b) DDPM-50, 8 a batch: VUS-PR {out['released_vus_pr']:.4f}, {out['released_windows_per_s']:.3f} w/s")
    model, settings = scorer(args.config, base, FAST, weights, k, args.device)
    out["fast_vus_pr"], out["fast_windows_per_s"] = span_scores(model, split, settings, span)
    print(f"(c) fast: VUS-PR {out['fast_vus_pr']:.4f}, {out['fast_windows_per_s']:.3f} windows/s", flush=True)
    out["curve"] = {args.iters: out["fast_vus_pr"]}
    for iters in args.curve:
        path = entity_dir / f"iter_{iters}.pth"
        model, settings = scorer(args.config, base, FAST, path, k, args.device)
        out["curve"][iters] = span_scores(model, split, settings, span)[0]
        print(f"curve: {iters} iterations, VUS-PR on the span {out['curve'][iters]:.4f}", flush=True)
    return out


def print_table(rows: list[tuple], machines: list[str]) -> None:
    head = f"{'machine':<13}{'method':<13}" + "".join(f"{c:>13}" for c in COLUMNS)
    print("\n" + head + "\n" + "-" * len(head))
    for machine, method, m in rows:
        print(f"{machine:<13}{method:<13}" + "".join(f"{m.get(c, float('nan')):>13.4f}" for c in COLUMNS))
    for method in dict.fromkeys(name for _, name, _ in rows):
        found = [m for _, name, m in rows if name == method]
        if len(found) == len(machines):
            mean = {c: np.nanmean([m.get(c, np.nan) for m in found]) for c in COLUMNS}
            print(f"{'mean':<13}{method:<13}" + "".join(f"{mean[c]:>13.4f}" for c in COLUMNS))
    print("oracle_pa_f1*: test labels pick the threshold. f1_*: deployable thresholds from the held-out train tail.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="SMD folder (train/ test/ test_label/)")
    parser.add_argument("--config", default="imdiffusion_smd")
    parser.add_argument("--iters", type=int, default=450, help="ImDiffusion training iterations per machine")
    parser.add_argument("--cfg-options", nargs="*", default=[], metavar="k=v")
    parser.add_argument("--work-dir", default="work_dirs/bench_smd")
    parser.add_argument("--machines", default="all")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--peers-python", default=str(ROOT / ".venv-tsbad" / "bin" / "python"))
    parser.add_argument("--peers", default=",".join(PEERS), help="TSB-AD detectors to run ('' = none)")
    parser.add_argument("--peer-scores", help="rate an earlier run's peers_scores.npz instead of running the peers")
    parser.add_argument("--reference-machine", default="machine-1-2", help="'' skips speed, agreement and curve")
    parser.add_argument("--span", default="3000:6200", help="test points of the reference comparison (3 anomalies)")
    parser.add_argument("--before-windows", type=int, default=8)
    parser.add_argument("--curve", default="150,300", help="checkpoint iterations scored for the learning curve")
    parser.add_argument("--skip-imdiffusion", action="store_true")
    args = parser.parse_args()
    args.curve = [int(c) for c in args.curve.split(",") if c]
    out = Path(args.work_dir)
    out.mkdir(parents=True, exist_ok=True)
    interval = min([*args.curve, args.iters])
    base = [f"train_cfg.max_iters={args.iters}", f"checkpoint_interval={interval}", "detect.test_stride=100"]
    base += ["train_cfg.val_interval=100000", *args.cfg_options]
    cfg = load_timeseries_config(args.config, [*base, *FAST])
    settings = Settings.from_cfg(cfg)
    machines = entity_names(args.data, "smd") if args.machines == "all" else args.machines.split(",")
    rows: list[tuple] = []
    results: dict = {"machines": machines, "iters": args.iters, "fast": FAST}
    if args.peer_scores or args.peers:
        scores = Path(args.peer_scores) if args.peer_scores else None
        if scores is None:
            if not Path(args.peers_python).exists():
                sys.exit(f"no TSB-AD environment at {args.peers_python}: run `make tsbad-env` first")
            scores = run_peers(args.peers_python, args.data, machines, settings, out, args.peers)
        rows += peer_rows(scores, args.data, machines, settings)
    if not args.skip_imdiffusion:
        for machine in machines:
            m, entity_dir = imdiffusion_row(cfg, args.data, machine, out / "imdiffusion", args.device)
            rows.append((machine, "ImDiffusion", m))
            if machine == args.reference_machine:
                lo, hi = (int(x) for x in args.span.split(":"))
                results["reference"] = reference(args, base, entity_dir, slice(lo, hi))
    results["rows"] = [dict(machine=a, method=b, **m) for a, b, m in rows]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"\nSMD, {len(machines)} machines; ImDiffusion {args.config}, {args.iters} iterations, fast scorer {FAST}")
    print_table(rows, machines)
    if "reference" in results:
        r = results["reference"]
        print(
            f"\nScoring speed on {args.reference_machine} (windows/s, same run): (a) earlier default "
            f"{r['before_windows_per_s']:.3f}, (b) released chain at 8 a batch {r['released_windows_per_s']:.3f}, "
            f"(c) fast {r['fast_windows_per_s']:.3f}: {r['fast_windows_per_s'] / r['before_windows_per_s']:.1f}x "
            f"over (a), {r['fast_windows_per_s'] / r['released_windows_per_s']:.1f}x over (b). VUS-PR on test "
            f"{args.span}: released {r['released_vus_pr']:.4f}, fast {r['fast_vus_pr']:.4f}"
        )
        print("learning curve (VUS-PR on the span): " + ", ".join(f"{k}: {v:.4f}" for k, v in r["curve"].items()))
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
