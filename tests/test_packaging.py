"""The wheel holds every module and shipped config of the source tree under its diffusekit.* name."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["core", "medical", "pose", "timeseries", "robotics", "video", "perception3d"]


def _tree_files() -> set[str]:
    """Every .py file of the package folders, as its path inside the wheel."""
    found = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            if "__pycache__" not in path.parts:
                found.add(f"diffusekit/{pkg}/{path.relative_to(ROOT / pkg).as_posix()}")
    return found


@pytest.mark.slow
def test_wheel_contains_every_module_and_config(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ["pyproject.toml", "README.md"]:
        shutil.copy(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        str(tmp_path),
        str(src),
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    (wheel,) = tmp_path.glob("diffusekit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = _tree_files()
    assert any(n.startswith("diffusekit/core/configs/") for n in expected)
    missing = sorted(expected - names)
    assert not missing, f"modules or configs missing from the wheel (list the package in pyproject.toml): {missing}"
    assert "diffusekit/__init__.py" not in names  # diffusekit is a namespace
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "diffusekit = diffusekit.core.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
