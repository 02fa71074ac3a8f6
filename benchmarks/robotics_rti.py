"""Diffusion Policy with DDPM-100, DDIM-10 and RTI from one checkpoint, on the point-mass task and Push-T: success
rate, mean score, network evaluations (NFE) and milliseconds per control step.

Per task:
1. Collects scripted-expert demonstrations (``--episodes``) into a replay buffer.
2. Trains the task's tiny config for ``--minutes`` (point mass: ``--minutes-pointmass``) of wall-clock time
   (max_iters and the cosine schedule sized to the budget; the engine's ``time_limit`` stops training at the budget
   in any case). On the point-mass task a second model is trained on the gripper column divided by 10 (RTI-DP-scale).
3. Evaluates ``--eval-episodes`` seeded episodes (Push-T: seeds from 100000, DP's protocol) with DDPM-100,
   DDIM-10, RTI [2, 1, 0] (contiguous: both readings coincide), RTI [3, 1, 0] read both ways (the core's stepping
   between listed levels, and the official code's one t -> t-1 update per listed t), and RTI from the offline K'
   (RTI-DP's choice: the level whose forward-diffusion mean is nearest the shifted guess) as [K', K'/2, 0], both ways.

Targets (issue 7): on both tasks RTI runs <= 3 NFE per control step with a success rate within 5 points of
DDPM-100; the ms-per-step ratio is printed.

    python benchmarks/robotics_rti.py [--tasks pointmass pusht] [--minutes 8] [--minutes-pointmass 1.5]
        [--eval-episodes 50] [--out work_dirs/bench_rti]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from diffusekit.core.commands import json_ready
from diffusekit.core.engine import train_for_budget
from diffusekit.robotics.control import ControlSettings, choose_start_step, evaluate_policy
from diffusekit.robotics.envs import make_env
from diffusekit.robotics.policy import rti_step_list
from diffusekit.robotics.synthetic import collect
from diffusekit.robotics.workflow import format_table, load_policy, load_robotics_config, with_data

MODES = [
    ControlSettings("ddpm"),
    ControlSettings("ddim", steps=10),
    ControlSettings("rti", rti_steps=(2, 1, 0)),
    ControlSettings("rti", rti_steps=(3, 1, 0), rti_mode="consistent"),
    ControlSettings("rti", rti_steps=(3, 1, 0), rti_mode="official"),
]


def train_for(config: str, task: str, data: Path, work_dir: Path, minutes: float):
    cfg = with_data(load_robotics_config(config, task=task), data)
    weights, done, seconds = train_for_budget(cfg, data, work_dir / config, minutes, warmup=100)
    return load_policy(cfg, weights), cfg, done, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["pointmass", "pusht"], choices=["pointmass", "pusht"])
    parser.add_argument("--minutes", type=float, default=8.0, help="Push-T training budget (wall clock)")
    parser.add_argument("--minutes-pointmass", type=float, default=1.5, help="point-mass budget per model")
    parser.add_argument("--episodes", type=int, default=100, help="expert episodes collected per task")
    parser.add_argument("--eval-episodes", type=int, default=50, help="seeded evaluation episodes per mode")
    parser.add_argument("--out", default="work_dirs/bench_rti")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    results, reports = {}, []
    for task in args.tasks:
        data, stats = collect(task, args.episodes, out / task / "data", seed=0)
        print(f"{task}: {stats}", flush=True)
        configs = {"pusht": ["dp_pusht_tiny"], "pointmass": ["dp_pointmass_tiny", "dp_pointmass_scale_tiny"]}[task]
        seed = 100000 if task == "pusht" else 1000
        for config in configs:
            minutes = args.minutes if task == "pusht" else args.minutes_pointmass
            policy, cfg, iters, seconds = train_for(config, task, data, out / task, minutes)
            gripper = dict(cfg.get("evaluate", {})).get("gripper", "clip")
            env = make_env(task)
            k_prime, _ = choose_start_step(policy, env, episodes=2, seed=seed)
            chosen = rti_step_list(k_prime, 3)
            modes = [
                *MODES,
                *(ControlSettings("rti", rti_steps=chosen, rti_mode=m) for m in ("consistent", "official")),
            ]
            modes = [ControlSettings(m.mode, m.steps, m.rti_steps, m.rti_mode, gripper) for m in modes]
            rows = [evaluate_policy(policy, env, m, args.eval_episodes, seed) for m in modes]
            expert = f"{stats['episodes']} expert demos (expert success {stats['expert_success_rate']:.2f})"
            title = f"{task}, {config}: {iters} iterations in {seconds:.0f} s; {args.eval_episodes} episodes from "
            title += f"seed {seed}; {expert}"
            report = format_table(rows, title) + f"\n\nOffline K' (median over 2 DDPM rollouts): {k_prime}."
            ddpm, rti = rows[0], max(rows[2:], key=lambda r: (r["success_rate"], r["mean_score"]))
            gap = 100 * (ddpm["success_rate"] - rti["success_rate"])
            verdict = "MET" if rti["nfe_per_step"] <= 3 and gap <= 5 else "NOT MET"
            report += (f"\nTarget (RTI <= 3 NFE per step, success within 5 points of DDPM-100; best: {rti['label']}): "
                       f"{verdict} "
                       f"({rti['nfe_per_step']:.2f} NFE, {100 * rti['success_rate']:.0f} vs "
                       f"{100 * ddpm['success_rate']:.0f}; {ddpm['ms_per_step'] / rti['ms_per_step']:.1f}x faster "
                       "per control step).")  # fmt: skip
            print(report, flush=True)
            reports.append(report)
            results[f"{task}/{config}"] = {"rows": rows, "iters": iters, "train_s": seconds, "k_prime": k_prime,
                                           "expert": stats}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(json_ready(results), indent=1))
    (out / "report.md").write_text("\n\n".join(reports) + "\n")
    print(f"results: {out / 'results.json'}, {out / 'report.md'}")


if __name__ == "__main__":
    main()
