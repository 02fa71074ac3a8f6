"""docs/adding-a-domain.md is a working recipe: its files, written as shown and registered through an entry point,
make a domain that the real `diffusekit` command discovers, trains (with validation, a best checkpoint and curves)
and evaluates."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "adding-a-domain.md"


def _write_domain(root: Path) -> list[str]:
    """The doc's ``# file:`` blocks as the top-level package ``rings`` (instead of ``diffusekit.rings``), and a
    dist-info that registers it under the ``diffusekit.domains`` entry-point group."""
    written = []
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S):
        first, _, body = block.partition("\n")
        if not first.startswith("# file: "):
            continue
        path = root / first.removeprefix("# file: ").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body.replace("diffusekit.rings", "rings"))
        written.append(path.relative_to(root).as_posix())
    info = root / "rings_example-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rings-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[diffusekit.domains]\nrings = rings.cli:DOMAIN\n")
    return written


def _diffusekit(root: Path, *argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "diffusekit.core.cli", *argv]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=root, timeout=300)


def test_the_documented_domain_trains_validates_and_evaluates(tmp_path: Path):
    written = _write_domain(tmp_path)
    assert sorted(written) == [
        "rings/__init__.py",
        "rings/cli.py",
        "rings/configs/rings_tiny.py",
        "rings/data.py",
        "rings/metrics.py",
        "rings/model.py",
    ]
    assert len((tmp_path / "rings" / "cli.py").read_text().splitlines()) < 100

    helped = _diffusekit(tmp_path, "--help")
    assert helped.returncode == 0 and "rings" in helped.stdout, helped.stderr
    assert _diffusekit(tmp_path, "rings", "synth", "--out", "data").returncode == 0
    trained = _diffusekit(tmp_path, "rings", "train", "--config", "rings_tiny", "--data", "data", "--work-dir", "w")
    assert trained.returncode == 0, trained.stderr[-3000:]
    work = tmp_path / "w"
    assert (work / "final_weights.pth").is_file() and (work / "curves.png").is_file()
    assert len(list(work.glob("best_rings_distance_iter_*.pth"))) == 1
    distances = [m["rings/distance"] for _, m in json.loads((work / "curves.json").read_text())["val"]]
    assert len(distances) == 3

    evaluated = _diffusekit(tmp_path, "rings", "evaluate", "--config", "rings_tiny", "--data", "data",
                            "--checkpoint", "w", "--json")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    distance = json.loads(evaluated.stdout.strip().splitlines()[-1])["distance"]
    # samples move towards the circles: standard normal noise lies 0.45 from them on average, the data 0.016
    assert distance < 0.25, distance

    # bad input: one line naming the file, exit 2
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "points.csv").write_text("x,y\n1,oops\n")
    failed = _diffusekit(tmp_path, "rings", "evaluate", "--config", "rings_tiny", "--data", "bad", "--checkpoint", "w")
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1
    assert "points.csv" in failed.stderr and "numeric columns" in failed.stderr
    misspelt = _diffusekit(tmp_path, "rings", "evaluate", "--config", "rings_tiny", "--data", "data",
                           "--checkpoint", "w", "--cfg-options", "evaluate.stpes=3")  # fmt: skip
    assert misspelt.returncode == 2 and "did you mean 'steps'" in misspelt.stderr
