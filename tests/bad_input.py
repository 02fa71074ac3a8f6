"""Shared checks for the bad-input tables (tests/<domain>/test_bad_input.py).

Each case runs the real command line in this process (``diffusekit.core.cli.main``) and captures file
descriptors 1 and 2, so warnings that C libraries (libjpeg, OpenCV, SimpleITK) write straight to stderr count too.
A case passes when the command exits with code 2, stderr is exactly one line, that line names the offending file
or option, no traceback was printed, and nothing was written where the case says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from diffusekit.core.cli import main


@dataclass
class Outcome:
    code: int
    out: str
    err: str


def run_cli(argv: list[str], capfd) -> Outcome:
    """Run ``diffusekit <argv>`` in-process; argparse's ``SystemExit`` is folded into the exit code."""
    capfd.readouterr()  # drop whatever earlier set-up printed
    try:
        code = main([str(arg) for arg in argv])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capfd.readouterr()
    return Outcome(code, captured.out, captured.err)


def files_under(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file below ``roots`` with its size and modification time (to show that nothing was written)."""
    found = {}
    for root in roots:
        root = Path(root)
        if root.is_file():
            stat = root.stat()
            found[str(root)] = (stat.st_size, stat.st_mtime_ns)
            continue
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath, name)
                stat = path.stat()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def assert_one_line(outcome: Outcome, *names: str) -> str:
    """Exit code 2, one line on stderr naming each of ``names`` (a file, an option), no traceback; the line."""
    lines = [line for line in outcome.err.splitlines() if line.strip()]
    assert outcome.code == 2, f"exit code {outcome.code}; stderr:\n{outcome.err}"
    assert "Traceback" not in outcome.err, outcome.err
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{outcome.err}"
    for name in names:
        assert str(name) in lines[0], f"{name!r} not named in: {lines[0]}"
    return lines[0]


def check_case(argv: list[str], capfd, names: tuple[str, ...] = (), untouched: tuple[Path, ...] = ()) -> str:
    """Run one bad-input case: one line naming ``names``; the files under ``untouched`` neither change nor appear."""
    before = files_under(*[p for p in untouched if Path(p).exists()])
    outcome = run_cli(argv, capfd)
    line = assert_one_line(outcome, *names)
    after = files_under(*[p for p in untouched if Path(p).exists()])
    assert after == before, f"files written or changed: {sorted(set(after.items()) ^ set(before.items()))}"
    return line
