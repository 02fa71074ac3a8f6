"""The ``diffusekit`` command line: ``demo`` plus one subcommand group per installed domain.

Domains are found through the ``diffusekit.domains`` entry-point group, so the core never imports a domain and a
third party can add one. An entry point names a :class:`Domain` object. Bad user input raises ``DataError``, which
becomes one line on stderr and exit code 2.

Multi-GPU training: ``torchrun --nproc_per_node N -m diffusekit.core.cli <domain> train ... --launcher pytorch``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, entry_points, version
from pathlib import Path

from .errors import DataError

ENTRY_POINT_GROUP = "diffusekit.domains"


@dataclass
class DemoResult:
    """One section of the demo report: markdown (figures linked relative to the report) and flat metrics."""

    title: str
    markdown: str
    metrics: dict = field(default_factory=dict)


@dataclass
class Domain:
    """What a domain registers under the ``diffusekit.domains`` entry-point group.

    ``add_commands(parser)`` adds the domain's subcommands (synth, train, evaluate, predict, demo) to its
    ``argparse`` parser; each subcommand sets ``func(args) -> int | None``. ``demo(out_dir, quick)`` runs the
    domain's end-to-end demo for ``diffusekit demo``.
    """

    name: str
    help: str
    add_commands: Callable[[argparse.ArgumentParser], None]
    demo: Callable[[Path, bool], DemoResult]


def installed_domains() -> list[Domain]:
    """The domains registered through entry points, sorted by name."""
    domains = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        domain = ep.load()
        if not isinstance(domain, Domain):
            raise TypeError(f"entry point {ep.value} must name a diffusekit.core.cli.Domain")
        domains.append(domain)
    return sorted(domains, key=lambda d: d.name)


def package_version() -> str:
    try:
        return version("diffusekit")
    except PackageNotFoundError:  # running from a source tree without an install
        return "unknown"


def add_demo_command(
    subparsers,
    name: str,
    run: Callable[..., DemoResult],
    help: str,
    description: str,
    options: Callable[[argparse.Namespace], dict] | None = None,
) -> argparse.ArgumentParser:
    """The ``<domain> demo [--out DIR] [--quick] [--json]`` subcommand: ``run(OUT/<name>, quick, **options(args))``
    makes the domain's section, written to ``OUT/report.md``; ``--json`` prints its metrics on the last line.
    ``options`` maps extra arguments the caller adds to the returned parser to keyword arguments of ``run``."""

    def command(args: argparse.Namespace) -> int:
        from .demo import write_report

        out = Path(args.out)
        section = run(out / name, args.quick, **(options(args) if options else {}))
        print(f"report: {write_report(out, [section])}")
        if args.json:
            print(json.dumps(json_ready(section.metrics), sort_keys=True))
        return 0

    demo = subparsers.add_parser("demo", help=help, description=description)
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--quick", action="store_true", help="fewer training iterations (for tests)")
    add_json_flag(demo)
    demo.set_defaults(func=command)
    return demo


def json_ready(value):
    """Metrics as strict JSON values: NaN / inf (an undefined metric) become null, numpy scalars plain numbers;
    dicts and lists are converted recursively."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # numpy / torch scalars
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def add_train_flags(
    parser: argparse.ArgumentParser,
    work_dir_help: str = "output folder",
    resume_help: str = "continue from the newest checkpoint in WORK_DIR",
) -> None:
    """The flags every domain's ``train`` shares: --work-dir, --resume, --launcher, --seed."""
    parser.add_argument("--work-dir", required=True, help=work_dir_help)
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument("--launcher", choices=("none", "pytorch"), default="none", help="pytorch: under torchrun")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the config's)")


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print every metric as one JSON object on the last line")


def run_demo(args: argparse.Namespace) -> int:
    """The core demo and the demo of every installed domain, written into one markdown report."""
    from .demo import run_core_demo, write_report

    out = Path(args.out)
    sections = [run_core_demo(out, quick=args.quick)]
    for domain in installed_domains():
        print(f"== {domain.name} demo", flush=True)
        sections.append(domain.demo(out / domain.name, args.quick))
    report = write_report(out, sections)
    print(f"report: {report}")
    if args.json:
        print(json.dumps({s.title: s.metrics for s in sections}, sort_keys=True))
    return 0


def build_parser(domains: list[Domain] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffusekit",
        description="Diffusion models for applied domains. Each installed domain adds a command group; "
        "`diffusekit demo` runs every demo into one report.",
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
    add_json_flag(demo)
    demo.set_defaults(func=run_demo)
    for domain in installed_domains() if domains is None else domains:
        group = sub.add_parser(domain.name, help=domain.help, description=domain.help)
        domain.add_commands(group)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):  # a domain group without a subcommand
        parser.parse_args([*(argv if argv is not None else sys.argv[1:]), "--help"])
    try:
        return int(args.func(args) or 0)
    except DataError as error:
        print(f"diffusekit: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("diffusekit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
