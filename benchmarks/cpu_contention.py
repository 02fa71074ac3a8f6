"""How much a busy neighbour process slows training of each domain's tiny model, with diffusekit's CPU defaults
and with OpenMP's own.

For each domain the script writes a small synthetic dataset, then trains the domain's tiny config for a few dozen
iterations through the real ``diffusekit <domain> train`` command (validation and checkpoints switched off), four
times: idle and beside one busy process (a pure-Python spin loop: one core's worth of someone else's work), each
with diffusekit's defaults (passive OpenMP waiting) and with libgomp's default spin-wait (``GOMP_SPINCOUNT`` set to
its default, 300,000, which keeps diffusekit from choosing a policy). The training rate comes from the last
progress line (iterations per second since training started, so imports and data loading do not count).

    python benchmarks/cpu_contention.py [--iters 40] [--domains timeseries,medical,...] [--settings ...]

Prints one table: it/s idle and busy, and the slowdown busy/idle, per domain and setting. Run it on an otherwise
idle machine: anything else running distorts both columns.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "diffusekit.core.cli"]
NO_VALIDATION = ["train_cfg.val_interval=1000000", "checkpoint_interval=100000"]

# domain -> (synth arguments after the CLI, train arguments after the CLI); {data} and {work} are filled in.
RECIPES = {
    "timeseries": (
        ["timeseries", "synth", "--out", "{data}"],
        ["timeseries", "train", "--config", "imdiffusion_tiny", "--data", "{data}", "--machines", "machine-1-1"],
    ),
    "medical": (
        ["medical", "synth", "--out", "{data}", "--layout", "camus"],
        ["medical", "train", "--config", "echo_dnd_tiny", "--data", "{data}"],
    ),
    "pose (DiffPose)": (
        ["pose", "diffpose", "synth", "--out", "{data}"],
        ["pose", "diffpose", "train", "--config", "diffpose_tiny", "--data", "{data}"],
    ),
    "pose (DDHPose)": (
        ["pose", "ddhpose", "synth", "--out", "{data}"],
        ["pose", "ddhpose", "train", "--config", "ddhpose_tiny", "--data", "{data}"],
    ),
    "robotics": (
        ["robotics", "collect", "--task", "pointmass", "--episodes", "20", "--out", "{data}"],
        ["robotics", "train", "--config", "dp_pointmass_tiny", "--data", "{data}"],
    ),
}
RATE = re.compile(r"iter\s+\d+/\d+.*?([\d.]+) it/s")
SETTINGS = {
    "diffusekit defaults": {},
    "libgomp spin-wait": {"GOMP_SPINCOUNT": "300000"},  # libgomp's default when no policy is set
    "short spin (10k)": {"GOMP_SPINCOUNT": "10000"},
}


def _environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    return {**env, **extra}


def _fill(args: list[str], **paths: Path) -> list[str]:
    return [arg.format(**{k: str(v) for k, v in paths.items()}) for arg in args]


def train_rate(train_args: list[str], data: Path, work: Path, iters: int, env: dict[str, str]) -> float:
    """Iterations per second of one training run (from its last progress line)."""
    options = [f"train_cfg.max_iters={iters}", f"log_interval={iters}", *NO_VALIDATION]
    command = [*CLI, *_fill(train_args, data=data), "--work-dir", str(work), "--cfg-options", *options]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"training failed: {' '.join(command)}\n{done.stderr[-3000:]}")
    rates = RATE.findall(done.stderr + done.stdout)
    if not rates:
        raise SystemExit(f"no progress line in the output of {' '.join(command)}")
    return float(rates[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=40, help="training iterations per run (default 40)")
    parser.add_argument("--domains", default=",".join(RECIPES), help="comma-separated subset of the recipes")
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated subset of the settings")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.domains.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in chosen:
            synth, train = RECIPES[name]
            data = Path(tmp) / re.sub(r"\W+", "_", name) / "data"
            subprocess.run([*CLI, *_fill(synth, data=data)], check=True, capture_output=True, text=True)
            for setting in [name.strip() for name in args.settings.split(",")]:
                env = _environment(SETTINGS[setting])
                idle = train_rate(train, data, data.parent / f"w_idle_{len(rows)}", args.iters, env)
                busy_process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                try:
                    time.sleep(0.5)
                    busy = train_rate(train, data, data.parent / f"w_busy_{len(rows)}", args.iters, env)
                finally:
                    busy_process.kill()
                    busy_process.wait()
                rows.append((name, setting, idle, busy))
                print(f"{name:<18} {setting:<20} idle {idle:7.2f} it/s  busy {busy:7.2f} it/s  "
                      f"slowdown {idle / busy:5.2f}x", flush=True)  # fmt: skip
    print(f"\n{'domain':<18} {'setting':<20} {'idle it/s':>10} {'busy it/s':>10} {'slowdown':>9}")
    for name, setting, idle, busy in rows:
        print(f"{name:<18} {setting:<20} {idle:>10.2f} {busy:>10.2f} {idle / busy:>8.2f}x")
    print(f"\n{os.cpu_count()} CPUs; busy: a pure-Python spin loop beside the training; {args.iters} iterations each")


if __name__ == "__main__":
    main()
