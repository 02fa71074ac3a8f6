"""The ``diffusekit`` command line: ``demo`` plus one subcommand group per installed domain.

Domains are found through the ``diffusekit.domains`` entry-point group, so the core never imports a domain and a
third party can add one. An entry point names a :class:`Domain` object. Bad user input raises ``DataError``, which
becomes one line on stderr and exit code 2.

Multi-GPU training: ``torchrun --nproc_per_node N -m diffusekit.core.cli <domain> train ... --launcher pytorch``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

from .commands import DemoResult, add_json_flag, add_threads_arg, positive_int, resolve
from .errors import DataError
from .threads import apply_threads

ENTRY_POINT_GROUP = "diffusekit.domains"


@dataclass
class Domain:
    """What a domain registers under the ``diffusekit.domains`` entry-point group.

    ``add_commands(parser)`` adds the domain's subcommands (synth, train, evaluate, predict, demo) to its
    ``argparse`` parser; each subcommand sets ``func(args) -> int | None``. ``demo(out_dir, quick)`` runs the
    domain's end-to-end demo for ``diffusekit demo`` (a function or a ``"module:function"`` string, imported when
    the demo runs). ``requires`` lists the modules that the domain's extra
    (``extra``, default: the domain's name) installs: when one is missing the domain's commands are replaced by
    one line saying which ``pip install`` brings them. The module holding the ``Domain`` must import nothing that
    the extra brings (import inside the command functions).
    """

    name: str
    help: str
    add_commands: Callable[[argparse.ArgumentParser], None]
    demo: Callable[[Path, bool], DemoResult] | str
    requires: tuple[str, ...] = ()
    extra: str | None = None

    def missing_modules(self) -> list[str]:
        """The ``requires`` modules that cannot be imported here."""
        return [module for module in self.requires if not _importable(module)]

    def install_hint(self) -> str:
        return f"pip install 'diffusekit[{self.extra or self.name}]'"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module blocked in sys.modules
        return False


def _unavailable(name: str, missing: str) -> Domain:
    """A stand-in for a registered domain whose command module failed to import (its extra is missing)."""

    def fail(*_args, **_kwargs):
        raise DataError(f"the {name} commands need {missing}: pip install 'diffusekit[{name}]'")

    return Domain(name, f"(needs {missing})", lambda parser: None, fail, requires=(missing,))


def installed_domains() -> list[Domain]:
    """The domains registered through entry points, sorted by name (those whose extra is missing included: see
    :meth:`Domain.missing_modules`)."""
    domains = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            domain = ep.load()
        except ImportError as error:
            if not error.name or _importable(error.name):
                raise  # a broken domain, not a missing extra
            domains.append(_unavailable(ep.name, error.name))
            continue
        if not isinstance(domain, Domain):
            raise TypeError(f"entry point {ep.value} must name a diffusekit.core.cli.Domain")
        domains.append(domain)
    return sorted(domains, key=lambda d: d.name)


def package_version() -> str:
    try:
        return version("diffusekit")
    except PackageNotFoundError:  # running from a source tree without an install
        return "unknown"


def demo_section(name: str, out: str, quick: bool, threads: int | None) -> DemoResult:
    """One section of ``diffusekit demo``: "core" or an installed domain's demo (run in a worker process)."""
    apply_threads(threads)
    print(f"== {name} demo", flush=True)
    if name == "core":
        from .demo import run_core_demo

        return run_core_demo(Path(out), quick=quick)
    domain = next(d for d in installed_domains() if d.name == name)
    return resolve(domain.demo)(Path(out) / name, quick)


def run_demo(args: argparse.Namespace) -> int:
    """The core demo and the demo of every installed domain, written into one markdown report. With ``--jobs N``
    (default: one per CPU core, at most 4) the sections run in N worker processes, each with its share of the
    cores, so that the small models of the sections keep every core busy."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from .demo import write_report

    out = Path(args.out)
    domains = installed_domains()
    wanted = args.sections or ["core", *(d.name for d in domains)]
    unknown = sorted(set(wanted) - {"core", *(d.name for d in domains)})
    if unknown:
        known = ", ".join(["core", *(d.name for d in domains)])
        raise DataError(f"--sections: no demo named {', '.join(unknown)} (installed: {known})")
    names = ["core"] if "core" in wanted else []
    for domain in domains:
        if domain.name not in wanted:
            continue
        missing = domain.missing_modules()
        if missing:
            print(f"== {domain.name} demo skipped: needs {', '.join(missing)} ({domain.install_hint()})", flush=True)
        else:
            names.append(domain.name)
    jobs = args.jobs or min(4, os.cpu_count() or 1)
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    if jobs == 1:
        sections = [demo_section(name, str(out), args.quick, threads) for name in names]
    else:  # spawn: workers start clean (no OpenMP or torch state inherited from this process)
        core_last = sorted(names, key=lambda name: name == "core")  # the domains' sections are longer: first
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {name: pool.submit(demo_section, name, str(out), args.quick, threads) for name in core_last}
            sections = [futures[name].result() for name in names]
    report = write_report(out, sections)
    print(f"report: {report}")
    if args.json:
        print(json.dumps({s.title: s.metrics for s in sections}, sort_keys=True))
    return 0


def _add_domain(sub, domain: Domain) -> None:
    """The domain's command group, or, when its extra is missing, a group that says which install brings it."""
    missing = domain.missing_modules()
    if not missing:
        group = sub.add_parser(domain.name, help=domain.help, description=domain.help)
        domain.add_commands(group)
        return
    hint = f"not installed: {domain.install_hint()} (missing: {', '.join(missing)})"
    group = sub.add_parser(domain.name, help=f"{domain.help} [{hint}]", description=f"{domain.help}. {hint}.")
    group.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    def fail(_args: argparse.Namespace) -> int:
        raise DataError(f"the {domain.name} commands need {', '.join(missing)}: {domain.install_hint()}")

    group.set_defaults(func=fail)


class OneLineParser(argparse.ArgumentParser):
    """argparse, with a usage error as one line (the problem and where to read more) instead of the usage block.
    Subcommand parsers are of the same class (``add_subparsers`` uses the parent's class)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see: {self.prog} --help)\n")


def build_parser(domains: list[Domain] | None = None) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="diffusekit",
        description="Diffusion models for applied domains. Each installed domain adds a command group; "
        "`diffusekit demo` runs every demo into one report. Flags mean the same in every domain: docs/cli.md.",
    )
    parser.add_argument("--version", action="version", version=f"diffusekit {package_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    demo = sub.add_parser(
        "demo",
        help="train, sample and evaluate every installed domain on small data; write a markdown report",
        description="Runs the core demo (a 2-D diffusion model trained through the engine, sampled with ddpm, "
        "ddim and dpmpp_2m at several step counts, scored by sliced Wasserstein distance) and every installed "
        "domain's demo, and writes OUT/report.md with figures.",
    )
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--quick", action="store_true", help="fewer training iterations and samples (for tests)")
    demo.add_argument(
        "--sections", nargs="+", metavar="NAME", help="run only these sections: core and/or domain names (default: all)"
    )
    demo.add_argument(
        "--jobs", type=positive_int, help="sections run at once, in worker processes (default: CPU cores, at most 4)"
    )
    add_threads_arg(demo)
    add_json_flag(demo)
    demo.set_defaults(func=run_demo)
    for domain in installed_domains() if domains is None else domains:
        _add_domain(sub, domain)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):  # a domain group without a subcommand
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
    try:
        apply_threads(getattr(args, "threads", None))
        return int(args.func(args) or 0)
    except DataError as error:
        _error_line(str(error))
        return 2
    except OSError as error:  # an unreadable, missing or unwritable file that no reader turned into a DataError
        _error_line(describe_os_error(error))
        return 2
    except KeyboardInterrupt:
        print("diffusekit: interrupted", file=sys.stderr)
        return 130


def _error_line(message: str) -> None:
    """The one error line; on a terminal, first clear a progress line that is still being redrawn."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K")
    print(f"diffusekit: error: {message}", file=sys.stderr)


def describe_os_error(error: OSError) -> str:
    """``path: reason`` for an OSError (the operating system's reason, e.g. "Permission denied")."""
    reason = error.strerror or str(error)
    names = [name for name in (error.filename, error.filename2) if name is not None]
    return f"{' -> '.join(map(str, names))}: {reason}" if names else reason


if __name__ == "__main__":  # python -m diffusekit.core.cli (torchrun): use the module's own classes, not __main__'s
    from diffusekit.core.cli import main as package_main

    sys.exit(package_main())
