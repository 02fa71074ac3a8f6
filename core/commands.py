"""Command-line plumbing shared by every domain's ``cli.py``: one flag name per meaning, argument checks at parse
time, and the steps each command repeats (config, model, weights on a device, outputs, threads, the demo).

A domain's ``cli.py`` only declares its commands with these helpers and calls its library functions; see
docs/adding-a-domain.md. Flag names and meanings (documented once, in docs/cli.md):

``--config/--cfg-options``  a config file or shipped name, and ``key=value`` overrides
``--data``                  the dataset folder in its published layout
``--checkpoint``            a weights file or a train work dir (its ``final_weights.pth``)
``--device``                ``auto`` (CUDA when available), ``cpu`` or ``cuda``
``--threads``               CPU threads for torch (default: see :mod:`diffusekit.core.threads`)
``--steps``                 sampling steps (network evaluations of the sampler)
``--samples``               samples drawn per input and fused (ensemble size, hypotheses)
``--sampler``               ``ddpm``, ``ddim`` or ``dpmpp_2m`` where a method offers a choice
``--seed``                  random seed (a non-negative integer)
``--out``/``--json``        an output folder; one JSON object with every metric on stdout's last line
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError

SAMPLERS = ("ddpm", "ddim", "dpmpp_2m")


@dataclass
class DemoResult:
    """One section of the demo report: markdown (figures linked relative to the report) and flat metrics."""

    title: str
    markdown: str
    metrics: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- argument types
def _number(kind: Callable[[str], Any], text: str, minimum: float | None, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if minimum is not None and value < minimum:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(int, text, 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (counts that may be zero, seeds)."""
    return _number(int, text, 0, "a non-negative integer")


def finite_float(text: str) -> float:
    """argparse type: a finite number (no NaN, no inf)."""
    return _number(float, text, None, "a number")


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    return _number(float, text, 0.0, "a non-negative number")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = _number(float, text, None, "a positive number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def float_list(count: int) -> Callable[[str], tuple[float, ...]]:
    """argparse type: ``count`` comma-separated finite numbers, e.g. a box ``x,y,w,h``."""

    def parse(text: str) -> tuple[float, ...]:
        parts = text.split(",")
        if len(parts) != count:
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated numbers, got {text!r}")
        return tuple(finite_float(part) for part in parts)

    return parse


# ------------------------------------------------------------------------------------------------- flags
def add_config_args(parser: argparse.ArgumentParser, package: str, default: str | None = None) -> None:
    """``--config`` (a file or the name of a config shipped in ``package``) and ``--cfg-options``."""
    from .engine import shipped_configs

    names = ", ".join(sorted(shipped_configs(package))) or "none"
    default_help = f" (default: {default})" if default else ""
    parser.add_argument(
        "--config",
        required=default is None,
        default=default,
        help=f"a config file or a shipped name: {names}{default_help}",
    )
    parser.add_argument(
        "--cfg-options", nargs="+", default=[], metavar="KEY=VALUE", help="override config keys, e.g. a.b=1"
    )


def add_runtime_args(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--threads``: for every command that runs a network."""
    parser.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto (default): CUDA when available"
    )
    add_threads_arg(parser)


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=positive_int,
        help="CPU threads for torch (default: OMP_NUM_THREADS if set, else chosen for the machine)",
    )


def add_seed_arg(parser: argparse.ArgumentParser, default: int | None = 0, help: str | None = None) -> None:
    what = help or ("random seed" + (f" (default: {default})" if default is not None else " (default: the config's)"))
    parser.add_argument("--seed", type=nonnegative_int, default=default, help=what)


def add_sampling_args(
    parser: argparse.ArgumentParser,
    *,
    steps: str | None = "sampling steps (default: the config's)",
    samples: str | None = "samples fused per input (default: the config's)",
    sampler: Iterable[str] | None = None,
    many: bool = False,
) -> None:
    """``--steps``, ``--samples`` (positive integers; ``many``: one or more values each, for sweeps) and, when
    ``sampler`` names the choices, ``--sampler``. Pass None to leave a flag out."""
    nargs = "+" if many else None
    if steps:
        parser.add_argument("--steps", type=positive_int, nargs=nargs, help=steps)
    if samples:
        parser.add_argument("--samples", type=positive_int, nargs=nargs, help=samples)
    if sampler:
        parser.add_argument("--sampler", choices=tuple(sampler), help="sampler (default: the config's)")


def add_output_args(
    parser: argparse.ArgumentParser,
    out_help: str | None = "also write metrics.json and figures here",
    json: bool = True,
    required: bool = False,
) -> None:
    """``--out`` (left out when ``out_help`` is None) and ``--json``."""
    if out_help:
        parser.add_argument("--out", required=required, help=out_help)
    if json:
        add_json_flag(parser)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print every metric as one JSON object on the last line")


def add_train_args(
    parser: argparse.ArgumentParser,
    work_dir_help: str = "output folder (checkpoints, final_weights.pth, curves.png)",
    resume_help: str = "continue from the newest intact checkpoint in WORK_DIR",
) -> None:
    """The flags every ``train`` shares: --work-dir, --resume, --launcher, --seed, --threads."""
    parser.add_argument("--work-dir", required=True, help=work_dir_help)
    parser.add_argument("--resume", action="store_true", help=resume_help)
    parser.add_argument("--launcher", choices=("none", "pytorch"), default="none", help="pytorch: under torchrun")
    add_seed_arg(parser, default=None)
    add_threads_arg(parser)


# ------------------------------------------------------------------------------------------------- steps
def config_from_args(args: argparse.Namespace, package: str, require: Iterable[str] = ("model",)):
    """The config named by ``--config`` with ``--cfg-options`` applied; DataError when a required key is absent."""
    from .engine import load_config

    cfg = load_config(args.config, package=package, cfg_options=getattr(args, "cfg_options", None) or [])
    for key in require:
        if key not in cfg:
            raise DataError(f"the config has no {key!r}; is it a config of {package}?", cfg.filename)
    return cfg


def resolve_device(name: str = "auto"):
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a DataError."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DataError("--device cuda, but torch sees no CUDA device (a CPU build of torch, or no GPU)")
    return torch.device(name)


def build_model(cfg, imports: Iterable[str] = ()):
    """The model of ``cfg`` with random weights. ``imports`` (modules that register the domain's models) and the
    config's ``custom_imports`` are imported first."""
    from mmengine.registry import MODELS
    from mmengine.utils import import_modules_from_strings

    from .config_checks import registry_errors

    for module in imports:
        importlib.import_module(module)
    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg.custom_imports)
    with registry_errors(getattr(cfg, "filename", None)):
        return MODELS.build(copy.deepcopy(cfg.model))


def load_model(cfg, checkpoint: str | Path, device: str = "auto", imports: Iterable[str] = ()):
    """Build ``cfg``'s model, load the weights that ``checkpoint`` names (EMA when present; a file or a train work
    dir), move it to ``device`` and switch it to eval mode."""
    from .checkpoint import load_weights, weights_path

    path = weights_path(checkpoint)
    model = load_weights(build_model(cfg, imports), path)
    return model.to(resolve_device(device)).eval()


def output_dir(path: str | Path) -> Path:
    """Create (if needed) and return an output folder; a file of that name is a DataError."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise DataError("output folder names an existing file", path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the output folder ({error.strerror})", path) from error
    return path


def report(args: argparse.Namespace, summary: Mapping[str, Any], table: str | None = None) -> Path | None:
    """Print ``table``; with ``--out``, write ``metrics.json`` there (returns the folder); with ``--json``, print
    ``summary`` as one JSON object on the last line."""
    if table:
        print(table)
    out = None
    if getattr(args, "out", None):
        out = output_dir(args.out)
        (out / "metrics.json").write_text(json.dumps(json_ready(summary), indent=1))
    if getattr(args, "json", False):
        print(json.dumps(json_ready(summary), sort_keys=True))
    return out


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


# ---------------------------------------------------------------------------------------------- commands
def add_command(
    subparsers, name: str, func: Callable[[argparse.Namespace], int | None], help: str, description: str
) -> argparse.ArgumentParser:
    """A subcommand whose ``func(args)`` runs it."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=func)
    return parser


def resolve(target: Callable | str) -> Callable:
    """``target`` itself, or the object a ``"package.module:name"`` string names (imported on first use, so that
    a command module can point at code that needs its domain's extra without importing it)."""
    if callable(target):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def add_demo_command(
    subparsers,
    name: str,
    run: Callable[..., DemoResult] | str,
    help: str,
    description: str,
    options: Callable[[argparse.Namespace], dict] | None = None,
) -> argparse.ArgumentParser:
    """The ``<domain> demo [--out DIR] [--quick] [--json]`` subcommand: ``run(OUT/<name>, quick, **options(args))``
    makes the domain's section, written to ``OUT/report.md``; ``--json`` prints its metrics on the last line.
    ``run`` may be a ``"module:function"`` string (see :func:`resolve`). ``options`` maps extra arguments the
    caller adds to the returned parser to keyword arguments of ``run``."""

    def command(args: argparse.Namespace) -> int:
        from .demo import write_report

        out = output_dir(args.out)
        section = resolve(run)(out / name, args.quick, **(options(args) if options else {}))
        print(f"report: {write_report(out, [section])}")
        if args.json:
            print(json.dumps(json_ready(section.metrics), sort_keys=True))
        return 0

    demo = add_command(subparsers, "demo", command, help, description)
    demo.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    demo.add_argument("--quick", action="store_true", help="fewer training iterations (for tests)")
    add_threads_arg(demo)
    add_json_flag(demo)
    return demo


def reject_flags(args: argparse.Namespace, flags: Mapping[str, str]) -> None:
    """DataError for flags given where they mean nothing: ``flags`` maps attribute -> the reason."""
    for attr, reason in flags.items():
        if getattr(args, attr, None) not in (None, False, [], ()):
            raise DataError(f"--{attr.replace('_', '-')} {reason}")
