"""DDHPose (tiny) against the same transformer trained as a deterministic regressor, and against an ensemble of such
regressors of the same total training cost, on synthetic Human3.6M-layout data: MPJPE / P-MPJPE (mm) for
hypotheses H (1, 5, 20) and DDIM steps K (1, 5, 10) under J-Best, P-Agg, J-Agg and P-Best, per-action tables,
frames per second, and whether the spread of the hypotheses predicts their error.

Protocol:
1. Writes the synthetic Human3.6M layout (``--size medium``: 7 subjects, real camera calibration, noisy "det" 2D).
2. Trains, each for a measured wall-clock budget on ``--threads`` threads (`train_for_budget`: max_iters and the
   cosine schedule sized from the timed step, the engine's ``time_limit`` stopping training at the budget):
   ``ddhpose_tiny`` for ``--minutes``; ``ddhpose_regressor_tiny`` for ``--minutes`` (seed 0); and ``--ensemble`` M
   more regressors (seeds 1..M) for ``--minutes`` / M each, so that the ensemble's total training time equals
   DDHPose's. ``--parallel`` runs the trainings in ``--workers`` processes (one thread each on a machine with that
   many cores keeps CPU time equal to wall-clock time).
3. Evaluates on S9 / S11 (the first ``--eval-frames`` of every sequence, all four cameras), flip averaging: DDHPose
   over the (K, H) grid, the regressor, and the ensemble, whose M member predictions are its hypotheses (P-Agg =
   the ensemble mean).
4. Uncertainty (`diffusekit.pose.uncertainty`): per frame and joint, spread = mean distance of the hypotheses to
   their mean, error = distance of that mean to the truth (mm); Spearman's rank correlation of the two over all
   (frame, joint) pairs, the reliability curve over spread deciles, the scale c = mean error / mean spread and the
   calibration error after that scale. DDHPose at H = 20 and at H = M (its first M hypotheses, the ensemble's
   count), K = ``--steps``; the ensemble with its M members.

What a multi-hypothesis model has to show at equal CPU time (printed as the verdict, for K = ``--steps``, H = 20):
J-Agg and J-Best below the regressor's MPJPE, P-Agg within 0.5 mm of it (a squared-error regressor estimates the
conditional mean, so a tie is P-Agg's ceiling: docs/pose3d.md, section 8), and a spread that ranks the errors at
least as well as the ensemble's (Spearman). Writes ``results.json`` (``settings``, ``models``, ``uncertainty``,
``verdict``), ``report.md`` and ``reliability.png`` under ``--out``.

``timestep_power`` (`DDHPose`: training timesteps t = floor(T u^(1/p)), u ~ U(0, 1); 1 is the paper's uniform t,
p > 1 trains more on high noise, where the first DDIM step works): ``--timestep-power 1 2`` trains one DDHPose per
value, each for ``--minutes`` (named ``ddhpose_tiny_p1``, ``ddhpose_tiny_p2``), and scores each; without it one
DDHPose is trained with ``--ddhpose-options`` as given (e.g. ``model.timestep_power=2``).

    python benchmarks/pose_ddhpose.py [--minutes 40] [--size medium] [--out work_dirs/bench_ddhpose] [--threads 1]
                                      [--parallel] [--workers 2] [--ensemble 4] [--steps 5]
                                      [--timestep-power 1 2] [--ddhpose-options model.timestep_power=2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
from dataclasses import replace
from pathlib import Path

import torch

from diffusekit.core.commands import json_ready
from diffusekit.core.engine import train_for_budget
from diffusekit.pose.lifting import load_sequences
from diffusekit.pose.lifting_eval import evaluate_lifting, flat_result, format_lifting_report
from diffusekit.pose.synthetic3d import write_synthetic
from diffusekit.pose.uncertainty import EnsembleLifter, hypotheses_calibration, reliability_figure
from diffusekit.pose.workflow import load_pose_config, load_pose_model, with_data_root, without_validation

DDHPOSE, REGRESSOR = "ddhpose_tiny", "ddhpose_regressor_tiny"
ENSEMBLE = "regressor_ensemble"
HYPOTHESES, STEPS = (1, 5, 20), (1, 5, 10)
P_AGG_TOLERANCE = 0.5  # mm


def train(config: str, options: list[str], data: Path, work_dir: Path, minutes: float, threads: int, seed: int):
    torch.set_num_threads(threads)
    # no validation during training: equal budgets for every model, as measured before it existed
    cfg = with_data_root(without_validation(load_pose_config(config, options, method="ddhpose")), data)
    return train_for_budget(cfg, data, work_dir, minutes, seed=seed)


def row(result: dict, aggregation: str, steps: int, hypotheses: int) -> dict | None:
    found = [
        r for r in result["rows"] if (r["aggregation"], r["steps"], r["hypotheses"]) == (aggregation, steps, hypotheses)
    ]
    return found[0] if found else None


def uncertainty_table(scores: dict[str, dict]) -> list[str]:
    lines = [
        "| model | H | Spearman | scale c | calibration error | mean spread (mm) | mean error (mm) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in scores.items():
        lines.append(
            f"| {name} | {s['hypotheses']} | {s['spearman']:.3f} | {s['scale']:.2f} | "
            f"{100 * s['calibration_error']:.1f}% | {s['mean_spread']:.1f} | {s['mean_error']:.1f} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=40.0, help="training budget of DDHPose and the regressor")
    parser.add_argument("--size", choices=("small", "medium"), default="medium")
    parser.add_argument("--eval-frames", type=int, default=81, help="frames per test sequence scored (0 = all)")
    parser.add_argument("--out", default="work_dirs/bench_ddhpose")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one is fastest for the tiny models)")
    parser.add_argument("--parallel", action="store_true", help="train in --workers processes at once")
    parser.add_argument("--workers", type=int, default=2, help="processes with --parallel (one per core)")
    parser.add_argument("--ensemble", type=int, default=4, help="regressors in the ensemble, --minutes / M each")
    parser.add_argument("--steps", type=int, default=5, help="DDIM steps K of the verdict and the uncertainty")
    parser.add_argument(
        "--timestep-power", type=float, nargs="+", default=None, metavar="P",
        help="train one DDHPose per value of model.timestep_power (1 = the paper's uniform t)",
    )  # fmt: skip
    parser.add_argument(
        "--ddhpose-options", nargs="+", default=[], metavar="KEY=VALUE",
        help="config overrides for DDHPose only, e.g. model.timestep_power=2 (an ablation)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.ensemble < 2:
        parser.error("--ensemble needs at least 2 regressors (a spread needs two predictions)")
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = write_synthetic(out / "data", "h36m", args.size, seed=0)
    m = args.ensemble

    # (name, config, options, minutes, seed)
    if args.timestep_power:
        ddh = [
            (f"{DDHPOSE}_p{p:g}", DDHPOSE, [*args.ddhpose_options, f"model.timestep_power={p:g}"], args.minutes, 0)
            for p in args.timestep_power
        ]
    else:
        ddh = [(DDHPOSE, DDHPOSE, list(args.ddhpose_options), args.minutes, 0)]
    members = [(f"{REGRESSOR}_member{i}", REGRESSOR, [], args.minutes / m, i) for i in range(1, m + 1)]
    runs = [*ddh, (REGRESSOR, REGRESSOR, [], args.minutes, 0), *members]
    jobs = [
        (config, options, data, out / name, minutes, args.threads, seed)
        for name, config, options, minutes, seed in runs
    ]
    print(
        f"training {len(ddh)} DDHPose model(s) and the regressor for {args.minutes:g} min each, {m} regressors for "
        f"{args.minutes / m:g} min each" + (f", {args.workers} at a time" if args.parallel else ""),
        flush=True,
    )
    if args.parallel:
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            trained = dict(zip([r[0] for r in runs], pool.starmap(train, jobs, chunksize=1), strict=True))
    else:
        trained = {run[0]: train(*job) for run, job in zip(runs, jobs, strict=True)}

    sequences = load_sequences(str(data), "test", "h36m", "det")
    if args.eval_frames:
        sequences = [
            replace(s, keypoints_2d=s.keypoints_2d[: args.eval_frames], pose_3d=s.pose_3d[: args.eval_frames])
            for s in sequences
        ]
    steps = tuple(sorted({*STEPS, args.steps}))
    models, reports, scores = {}, [], {}

    def show(name: str, result: dict, title: str) -> None:
        reports.append(format_lifting_report(result, title))
        print(reports[-1], flush=True)

    def show_scores(names: list[str]) -> None:
        print("\n".join(uncertainty_table({n: scores[n] for n in names})), flush=True)

    for name, config, options, _, _ in ddh:
        weights, iters, seconds = trained[name]
        model = load_pose_model(load_pose_config(config, options, method="ddhpose"), weights)
        result = evaluate_lifting(
            model, sequences, "h36m", HYPOTHESES, steps, flip=True, batch_size=32, keep_hypotheses=(args.steps,)
        )
        kept = result.pop("hypotheses")[args.steps]
        models[name] = {**flat_result(result), "iters": iters, "train_s": seconds, "options": options}
        show(name, result, f"{name}: {iters} iterations in {seconds:.0f} s")
        for h in (max(HYPOTHESES), m):
            scores[f"{name} H={h}"] = hypotheses_calibration(kept, hypotheses=h)
        show_scores([f"{name} H={max(HYPOTHESES)}", f"{name} H={m}"])
        del kept

    weights, iters, seconds = trained[REGRESSOR]
    regressor = load_pose_model(load_pose_config(REGRESSOR, [], method="ddhpose"), weights)
    result = evaluate_lifting(regressor, sequences, "h36m", flip=True, batch_size=32)
    models[REGRESSOR] = {**flat_result(result), "iters": iters, "train_s": seconds}
    show(REGRESSOR, result, f"{REGRESSOR}: {iters} iterations in {seconds:.0f} s")

    cfg = load_pose_config(REGRESSOR, [], method="ddhpose")
    ensemble = EnsembleLifter([load_pose_model(cfg, trained[name][0]) for name, *_ in members])
    result = evaluate_lifting(ensemble, sequences, "h36m", (1, m), (1,), True, 32, keep_hypotheses=(1,))
    kept = result.pop("hypotheses")[1]
    member_runs = [{"seed": r[4], "iters": trained[r[0]][1], "train_s": trained[r[0]][2]} for r in members]
    ens_iters, ens_seconds = sum(r["iters"] for r in member_runs), sum(r["train_s"] for r in member_runs)
    models[ENSEMBLE] = {**flat_result(result), "iters": ens_iters, "train_s": ens_seconds, "members": member_runs}
    show(ENSEMBLE, result, f"{ENSEMBLE}: {m} regressors, {ens_iters} iterations in {ens_seconds:.0f} s in all")
    scores[f"{ENSEMBLE} M={m}"] = hypotheses_calibration(kept)
    show_scores([f"{ENSEMBLE} M={m}"])
    del kept

    # ---------------------------------------------------------------- summary (the earlier rows, then the verdict)
    frames = sum(len(s.keypoints_2d) for s in sequences)
    baseline = row(models[REGRESSOR], "P-Agg", 1, 1)
    print(
        f"\nSynthetic Human3.6M ({args.size}), S9 + S11, {frames} frames ({len(sequences)} camera views); "
        f"{args.minutes:g} min of training for DDHPose and the regressor, {m} x {args.minutes / m:g} min for the "
        f"ensemble, {args.threads} thread(s){' (trained in parallel)' if args.parallel else ''}; flip on",
        flush=True,
    )
    print(f"{'model':<22}{'aggregation':<12}{'K':>4}{'H':>4}{'MPJPE':>8}{'P-MPJPE':>9}")
    for name, *_ in ddh:
        for r in sorted(models[name]["rows"], key=lambda r: (r["aggregation"], r["steps"], r["hypotheses"])):
            print(f"{name:<22}{r['aggregation']:<12}{r['steps']:>4}{r['hypotheses']:>4}{r['mpjpe']:>8.1f}"
                  f"{r['p_mpjpe']:>9.1f}")  # fmt: skip
    for r in sorted(models[ENSEMBLE]["rows"], key=lambda r: (r["aggregation"], r["hypotheses"])):
        print(f"{'ensemble':<22}{r['aggregation']:<12}{'-':>4}{r['hypotheses']:>4}{r['mpjpe']:>8.1f}"
              f"{r['p_mpjpe']:>9.1f}")  # fmt: skip
    print(f"{'regressor':<22}{'':<12}{'-':>4}{'-':>4}{baseline['mpjpe']:>8.1f}{baseline['p_mpjpe']:>9.1f}")

    ens_mean = row(models[ENSEMBLE], "P-Agg", 1, m)
    ens_scores = scores[f"{ENSEMBLE} M={m}"]
    print(
        f"Regressor ensemble ({m} x {args.minutes / m:g} min): mean MPJPE {ens_mean['mpjpe']:.1f} mm against the "
        f"single regressor's {baseline['mpjpe']:.1f} mm ({ens_mean['mpjpe'] - baseline['mpjpe']:+.1f})",
        flush=True,
    )
    verdict = {}
    h = max(HYPOTHESES)
    for name, *_ in ddh:
        result = models[name]
        ours = [r for r in result["rows"] if r["aggregation"] == "P-Agg"]
        best = min(ours, key=lambda r: r["mpjpe"])
        beats = "beats" if best["mpjpe"] < baseline["mpjpe"] else "does NOT beat"
        print(f"{name} P-Agg (best: K={best['steps']}, H={best['hypotheses']}) MPJPE {best['mpjpe']:.1f} mm "
              f"{beats} the deterministic regressor's {baseline['mpjpe']:.1f} mm")  # fmt: skip
        j_agg, j_best, p_agg = (row(result, a, args.steps, h) for a in ("J-Agg", "J-Best", "P-Agg"))
        ours_scores, same_h = scores[f"{name} H={h}"], scores[f"{name} H={m}"]
        checks = {
            "j_agg_below_regressor": None if j_agg is None else j_agg["mpjpe"] < baseline["mpjpe"],
            "j_best_below_regressor": j_best["mpjpe"] < baseline["mpjpe"],
            "p_agg_within_tolerance": abs(p_agg["mpjpe"] - baseline["mpjpe"]) <= P_AGG_TOLERANCE,
            "spearman_above_ensemble": ours_scores["spearman"] > ens_scores["spearman"],
            "spearman_above_ensemble_same_h": same_h["spearman"] > ens_scores["spearman"],
        }
        verdict[name] = {
            "steps": args.steps,
            "hypotheses": h,
            "regressor_mpjpe": baseline["mpjpe"],
            "j_agg_mpjpe": None if j_agg is None else j_agg["mpjpe"],
            "j_best_mpjpe": j_best["mpjpe"],
            "p_agg_mpjpe": p_agg["mpjpe"],
            "spearman": ours_scores["spearman"],
            "spearman_same_h": same_h["spearman"],
            "ensemble_spearman": ens_scores["spearman"],
            **checks,
        }

        def yes(ok: bool | None) -> str:
            return "n/a" if ok is None else ("yes" if ok else "NO")

        print(f"Verdict for {name} (K={args.steps}, H={h}) against the regressor's {baseline['mpjpe']:.1f} mm:")
        if j_agg is not None:
            print(f"  J-Agg  {j_agg['mpjpe']:.1f} mm below the regressor: {yes(checks['j_agg_below_regressor'])} "
                  f"({j_agg['mpjpe'] - baseline['mpjpe']:+.1f} mm)")  # fmt: skip
        else:
            print("  J-Agg  n/a (no calibrated cameras)")
        print(f"  J-Best {j_best['mpjpe']:.1f} mm below the regressor: {yes(checks['j_best_below_regressor'])} "
              f"({j_best['mpjpe'] - baseline['mpjpe']:+.1f} mm)")  # fmt: skip
        print(f"  |P-Agg - regressor| = |{p_agg['mpjpe']:.1f} - {baseline['mpjpe']:.1f}| <= {P_AGG_TOLERANCE} mm: "
              f"{yes(checks['p_agg_within_tolerance'])} ({p_agg['mpjpe'] - baseline['mpjpe']:+.1f} mm)")  # fmt: skip
        print(f"  Spearman(spread, error) {ours_scores['spearman']:.3f} (H={h}; {same_h['spearman']:.3f} with its "
              f"first {m}) against the ensemble's {ens_scores['spearman']:.3f} (M={m}): "
              f"{'higher' if checks['spearman_above_ensemble'] else 'NOT higher'}", flush=True)  # fmt: skip
    print("\nUncertainty (per frame and joint; spread = mean distance of the hypotheses to their mean):")
    show_scores(list(scores))

    figure = reliability_figure(
        out / "reliability.png",
        {n: s for n, s in scores.items() if not n.endswith(f" H={m}") or m == h},
        f"Reliability, K={args.steps}: error of the mean vs spread, deciles",
    )
    settings = {**vars(args), "hypotheses": HYPOTHESES, "grid_steps": steps, "frames": frames,
                "sequences": len(sequences)}  # fmt: skip
    record = {"settings": settings, "models": models, "uncertainty": scores, "verdict": verdict}
    (out / "results.json").write_text(json.dumps(json_ready(record), indent=1))
    tables = [f"**Uncertainty** (per frame and joint, K={args.steps})", "", *uncertainty_table(scores)]
    (out / "report.md").write_text("\n\n".join(reports) + "\n\n" + "\n".join(tables) + "\n")
    print(f"results: {out / 'results.json'}, {out / 'report.md'}, {figure}")


if __name__ == "__main__":
    main()
