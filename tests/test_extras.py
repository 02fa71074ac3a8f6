"""Installs per extra: with only the core and one domain's extra, every command of that domain, `--version` and
`--help` work, and the other domains answer with one line saying which `pip install` brings them.

An install without an extra is simulated by a subprocess in which the other extras' modules cannot be imported
(a meta-path finder that refuses them). CI also installs the wheel with one extra into a fresh virtual environment
(.ci/extras_check).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from diffusekit.core.cli import installed_domains

ROOT = Path(__file__).resolve().parents[1]
# Modules the core's own dependencies install (mmengine needs OpenCV, matplotlib needs Pillow): an extra may list
# them, but no install lacks them, so blocking them would simulate an impossible install.
BROUGHT_BY_CORE = {"cv2", "PIL"}

BLOCKER = """
import contextlib, importlib, io, json, pkgutil, sys
BLOCKED = set(sys.argv[1].split(",")) - {""}
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, Refuse())
from diffusekit.core.cli import main
results = []
for argv in json.loads(sys.argv[2]):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:
            code = stop.code
    results.append(dict(argv=argv, code=code, out=out.getvalue(), err=err.getvalue()))
failed_imports = {}
for package in json.loads(sys.argv[3]):
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        try:
            importlib.import_module(info.name)
        except ImportError as error:
            failed_imports[info.name] = str(error)
print(json.dumps(dict(results=results, failed_imports=failed_imports)))
"""

DOMAINS = {domain.name: domain for domain in installed_domains()}


def _run(blocked: set[str], commands: list[list[str]], packages: list[str] = ()) -> tuple[list[dict], dict]:
    """Run each command line in one interpreter where ``blocked`` modules cannot be imported; also import every
    module of ``packages`` there. Returns the results (argv, code, out, err) and the modules that failed."""
    argv = [sys.executable, "-c", BLOCKER, ",".join(sorted(blocked)), json.dumps(commands), json.dumps(packages)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    return record["results"], record["failed_imports"]


def _blocked_without(keep: str | None) -> set[str]:
    """Every other extra's modules (none of ``keep``'s)."""
    mine = set(DOMAINS[keep].requires) if keep else set()
    return {m for d in DOMAINS.values() for m in d.requires} - mine - BROUGHT_BY_CORE


def _one_line_hint(result: dict, name: str) -> None:
    lines = result["err"].strip().splitlines()
    assert result["code"] == 2 and len(lines) == 1, result
    assert f"pip install 'diffusekit[{DOMAINS[name].extra or name}]'" in lines[0]


def test_every_domain_declares_its_extra_modules_in_pyproject():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    distributions = packages_distributions()
    for name, domain in DOMAINS.items():
        assert domain.requires, f"{name} declares no required modules"
        listed = {canonicalize_name(Requirement(req).name) for req in extras[domain.extra or name]}
        for module in domain.requires:
            dists = {canonicalize_name(d) for d in distributions.get(module, [])}
            assert dists & listed, f"{name}: module {module} ({dists}) is not in the [{name}] extra {listed}"


def test_core_only_install_lists_every_domain_with_its_install_line():
    version, helped, failed = _run(_blocked_without(None), [["--version"], ["--help"], ["medical", "train"]])[0]
    assert version["code"] == 0 and version["out"].startswith("diffusekit "), version
    assert helped["code"] == 0, helped
    text = " ".join(helped["out"].split())
    for name in DOMAINS:
        assert name in text and f"pip install 'diffusekit[{DOMAINS[name].extra or name}]'" in text
    _one_line_hint(failed, "medical")


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every leaf command under ``parser`` (nested groups such as ``pose diffpose train`` included)."""
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _command_paths(sub, (*prefix, name)) or [(*prefix, name)]
    return paths


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_one_extra_gives_its_domain_and_hints_for_the_others(name):
    blocked = _blocked_without(name)
    group = argparse.ArgumentParser()
    DOMAINS[name].add_commands(group)
    commands = [[name, *path, "--help"] for path in _command_paths(group)]
    assert len(commands) >= 4, commands
    others = [
        o
        for o in sorted(set(DOMAINS) - {name})
        if set(DOMAINS[o].requires) - BROUGHT_BY_CORE - set(DOMAINS[name].requires)
    ]
    results, failed_imports = _run(
        blocked, [[name, "--help"], *commands, *[[o, "demo"] for o in others]], [f"diffusekit.{name}"]
    )
    assert not failed_imports, failed_imports  # every module of the domain imports with its extra alone
    for result in results[: 1 + len(commands)]:  # the group's and every command's help, without the other extras
        assert result["code"] == 0 and "usage:" in result["out"] and "not installed" not in result["out"], result
    for other, result in zip(others, results[1 + len(commands) :]):
        _one_line_hint(result, other)
