"""mmengine glue shared by every domain: configs, a runner with our defaults, exact resume, safe checkpoints.

``load_config`` finds a config by path or shipped name and applies ``--cfg-options``; ``build_runner`` turns it
into an mmengine ``Runner``; ``train`` runs it and returns the trained model. Weights for evaluation are loaded
with ``load_weights`` (from ``diffusekit.core.checkpoint``, which holds the checkpoint and resume machinery).

Config keys that ``build_runner`` reads, beyond mmengine's own (``model``, ``train_dataloader``, ``train_cfg``,
``optim_wrapper``, ``param_scheduler``, ``val_*``, ``default_hooks``, ``custom_hooks``, ``randomness``, ...):

- ``checkpoint_interval`` (int): save every N iterations; else ``default_hooks.checkpoint.interval``; else 1000.
  The last iteration is always saved.
- ``max_keep_ckpts`` (int): checkpoints kept; else the checkpoint hook's own; else 3. mmengine deletes the
  oldest before it writes the next, so keep at least 2 for a crash mid-write to leave a checkpoint behind.
- ``log_interval`` (int): iterations per progress line; default ``clip(max_iters // 10, 1, 50)``.
- ``ema`` (dict): EMA of the weights through mmengine's ``EMAHook``; its kwargs, e.g. ``dict(momentum=1e-4)``
  (mmengine's momentum is ``1 - decay``), or ``dict(decay=0.9999)``.
- ``time_limit`` (seconds): stop training after this much wall-clock time (``TimeLimitHook``), at most
  ``max_iters``; for equal-time comparisons. The final weights and a last checkpoint are written as usual.
- ``best_metric`` (dict ``key``, ``rule``): with ``val_dataloader``, ``val_evaluator`` and ``val_cfg`` (and
  ``train_cfg.val_interval``), keep ``best_<key>_iter_N.pth`` for the best validation value of ``key``
  (``rule`` "greater" or "less"; mmengine's ``save_best``). Every run writes ``curves.json`` and ``curves.png``
  (loss and validation metrics, :class:`~diffusekit.core.curves.CurvesHook`) into its work dir.

Defaults filled in when the config leaves them out: ``randomness=dict(seed=0)`` (the ``seed`` argument wins),
iteration-based training with ``ExactResumeIterLoop`` (``train_cfg=dict(max_iters=N)``; ``by_epoch=True``
keeps mmengine's epoch loop, without exact resume), ``log_level='WARNING'``, the gloo backend on CPU (nccl with
CUDA), CPU DDP without ``device_ids``, and hooks for RNG state, final weights and (``progress=True``) a one-line
progress display.

Configs must hold only literals and registered ``type`` names: mmengine formats the config into every
checkpoint and fails on live objects.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import itertools
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config, DictAction
from mmengine.dist import broadcast_object_list, init_dist, is_main_process, master_only
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import Runner
from torch import nn

from . import curves  # noqa: F401  (registers CurvesHook)
from .checkpoint import (
    CHECKPOINT_NAME,
    FINAL_WEIGHTS_NAME,
    SAFE_SCHEME,
    DiffusekitRunner,
    latest_checkpoint,
    load_weights,
    remove_stale_temporaries,
)
from .config_checks import registry_errors
from .errors import DataError

__all__ = [
    "build_runner",
    "load_config",
    "load_weights",
    "parse_cfg_options",
    "shipped_configs",
    "train",
    "train_on_data",
]


# --------------------------------------------------------------------------------------------------- configs
def shipped_configs(package: str) -> dict[str, Path]:
    """``{name: path}`` of the configs shipped in the ``configs/`` folder of ``package``."""
    folder = files(package).joinpath("configs")
    if not folder.is_dir():
        return {}
    return {
        entry.name[: -len(".py")]: Path(str(entry))
        for entry in folder.iterdir()
        if entry.name.endswith(".py") and not entry.name.startswith("_")
    }


def parse_cfg_options(options: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[1,2]"]`` -> ``{"a.b": 1, "c": [1, 2]}``, values parsed as mmengine's ``DictAction``."""
    if isinstance(options, Mapping):
        return dict(options)
    parsed = {}
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise DataError(f"--cfg-options entries look like key=value, got {option!r}")
        parsed[key] = DictAction._parse_iterable(value)
    return parsed


CONFIG_SUFFIXES = (".py", ".yaml", ".yml", ".json")


def load_config(
    config: str | Path, *, package: str | None = None, cfg_options: Mapping[str, Any] | Sequence[str] | None = None
) -> Config:
    """Read ``config`` (a file path, or the name of a config shipped in ``package``) and apply ``cfg_options``.

    Python configs (mmengine's format, with ``_base_`` inheritance) run code when loaded, by design, like any
    script: load only those you trust. YAML and JSON configs are read as data (``yaml.safe_load``), never as
    code. Every failure is a DataError naming the file.
    """
    path = Path(config).expanduser()
    if not path.is_file():
        shipped = shipped_configs(package) if package else {}
        name = path.name.removesuffix(".py")
        if path.parent != Path(".") or name not in shipped:
            where = f"; configs shipped in {package}: {', '.join(sorted(shipped)) or 'none'}" if package else ""
            raise DataError(f"no such config file or shipped config name{where}", config)
        path = shipped[name]
    if path.suffix.lower() not in CONFIG_SUFFIXES:
        raise DataError(f"a config is a {', '.join(CONFIG_SUFFIXES)} file", path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"cannot read the config ({error.strerror or error})", path) from error
    except UnicodeDecodeError as error:
        raise DataError(f"the config is not UTF-8 text (byte {error.start})", path) from error
    cfg = _parse_config(path, text)
    if cfg_options:
        for key, value in parse_cfg_options(cfg_options).items():
            try:
                cfg.merge_from_dict({key: value})
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
                raise DataError(f"--cfg-options {key}={value!r} does not fit the config ({error})", path) from error
    return cfg


def _parse_config(path: Path, text: str) -> Config:
    if path.suffix.lower() == ".py":
        try:
            return Config.fromfile(str(path))
        except SyntaxError as error:
            raise DataError(f"invalid config: {error.msg}", path, error.lineno) from error
        except DataError:
            raise
        except Exception as error:  # a Python config is user code: whatever it raises is a bad config
            raise DataError(f"the config raised {type(error).__name__}: {error}", path) from error
    try:
        import yaml

        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as error:
        raise DataError(f"invalid {path.suffix[1:].upper()} config ({str(error).splitlines()[0]})", path) from error
    if not isinstance(data, dict):
        raise DataError(f"a config holds a mapping of keys, got {type(data).__name__}", path)
    if "_base_" in data:
        raise DataError("_base_ inheritance needs a Python config (.py)", path)
    return Config(data, filename=str(path))


# ------------------------------------------------------------------------------------------------ runner
@HOOKS.register_module()
class TrainProgressHook(Hook):
    """Print ``iter done/total  loss  it/s  eta`` to stderr every ``interval`` iterations (rank 0, one plain line
    each; stdout stays for results)."""

    priority = "BELOW_NORMAL"

    def __init__(self, interval: int = 10):
        self.interval = max(1, int(interval))

    @master_only
    def before_train(self, runner: Runner) -> None:
        self.start_iter, self.start_time = runner.iter, time.perf_counter()
        if runner.iter:
            print(f"resumed at iteration {runner.iter}/{runner.max_iters}", file=sys.stderr, flush=True)

    @master_only
    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        done, total = runner.iter + 1, runner.max_iters
        if done % self.interval and done != total:
            return
        rate = (done - self.start_iter) / max(time.perf_counter() - self.start_time, 1e-9)
        losses = runner.message_hub.log_scalars.get("train/loss")
        loss = f"  loss {losses.mean(self.interval):.4g}" if losses is not None else ""
        eta = datetime.timedelta(seconds=round((total - done) / rate))
        print(f"iter {done:>{len(str(total))}}/{total}{loss}  {rate:.2f} it/s  eta {eta}", file=sys.stderr, flush=True)


@HOOKS.register_module()
class TimeLimitHook(Hook):
    """Stop training after ``seconds`` of wall-clock time (mmengine's ``stop_training`` flag; every rank stops at
    the same iteration, as rank 0 decides), writing a checkpoint of the last iteration."""

    priority = "VERY_LOW"
    clock = staticmethod(time.perf_counter)

    def __init__(self, seconds: float):
        self.seconds = float(seconds)

    def before_train(self, runner: Runner) -> None:
        self.start = self.clock()

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        stop = [self.clock() - self.start >= self.seconds]
        broadcast_object_list(stop)
        if stop[0] and not runner.train_loop.stop_training:
            runner.train_loop.stop_training = True
            schedulers = bool(runner.param_schedulers)  # mmengine warns when asked to save schedulers it has not
            runner.save_checkpoint(runner.work_dir, f"iter_{runner.iter + 1}.pth", save_param_scheduler=schedulers)


class _DropExpectedWarnings(logging.Filter):
    """mmengine warnings that every diffusekit run triggers and that ask nothing of the user."""

    EXPECTED = (
        '"FileClient" will be deprecated',
        '"HardDiskBackend" is the alias',
        "has no metainfo",
        "Advance dataloader",  # ExactResumeIterLoop skips without re-reading; TrainProgressHook reports resumes
    )

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in self.EXPECTED)


def _count(cfg: Config, key: str, value: Any, minimum: int = 1) -> int:
    """``value`` (the config's ``key``) as an int >= ``minimum``; DataError naming the config file otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value < minimum:
        raise DataError(f"{key} must be an integer >= {minimum}, got {value!r}", cfg.filename)
    return int(value)


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first non-finite loss, before any hook can save the weights it has spoiled."""

    priority = "VERY_HIGH"

    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        for name, value in (outputs or {}).items():
            value = float(value.detach()) if isinstance(value, torch.Tensor) else value
            if "loss" in name and isinstance(value, float) and not math.isfinite(value):
                raise DataError(
                    f"training stopped: {name} is {value} at iteration {runner.iter + 1} (non-finite or huge "
                    "values in the data, or a learning rate too high); nothing was saved after the last checkpoint",
                    runner.work_dir,
                )


def _with_defaults(cfg: Config, seed: int | None, progress: bool) -> Config:
    """Fill in what ``build_runner`` promises (see the module docstring) where ``cfg`` leaves it out."""
    cuda = torch.cuda.is_available()
    randomness = dict(cfg.get("randomness") or {})
    randomness["seed"] = seed if seed is not None else randomness.get("seed") or 0
    cfg.randomness = randomness
    cfg.setdefault("log_level", "WARNING")
    env_cfg = dict(cfg.get("env_cfg") or {})
    env_cfg["dist_cfg"] = {"backend": "nccl" if cuda else "gloo", **(env_cfg.get("dist_cfg") or {})}
    cfg.env_cfg = env_cfg
    if cfg.launcher != "none" and not cuda:  # mmengine's default DDP wrapper asks for a GPU id
        wrapper = dict(type="MMDistributedDataParallel", device_ids=None)
        cfg.model_wrapper_cfg = {**wrapper, **(cfg.get("model_wrapper_cfg") or {})}
        cfg.model_wrapper_cfg.setdefault("find_unused_parameters", cfg.get("find_unused_parameters", False))

    train_cfg = dict(cfg.get("train_cfg") or {})
    by_epoch = train_cfg.get("by_epoch", False) or train_cfg.get("type") == "EpochBasedTrainLoop"
    if cfg.get("train_cfg") is not None:  # a config without training (evaluation only) stays without
        if not by_epoch and train_cfg.get("type", "IterBasedTrainLoop") == "IterBasedTrainLoop":
            train_cfg.pop("by_epoch", None)
            train_cfg["type"] = "ExactResumeIterLoop"
        cfg.train_cfg = train_cfg
    max_iters = _count(cfg, "train_cfg.max_iters", train_cfg.get("max_iters", 0), minimum=0)
    for key in ("val_interval", "val_begin"):
        if key in train_cfg:
            _count(cfg, f"train_cfg.{key}", train_cfg[key])
    log_interval = _count(cfg, "log_interval", cfg.get("log_interval", min(max(max_iters // 10, 1), 50)))

    hooks = dict(cfg.get("default_hooks") or {})
    if hooks.get("checkpoint", {}) is not None:  # None switches checkpoints off, as in mmengine
        checkpoint = {"type": "CheckpointHook", "by_epoch": by_epoch, **(hooks.get("checkpoint") or {})}
        interval = cfg.get("checkpoint_interval", checkpoint.get("interval", 1000))
        checkpoint["interval"] = _count(cfg, "checkpoint_interval", interval)
        keep = cfg.get("max_keep_ckpts", checkpoint.get("max_keep_ckpts", 3))
        checkpoint["max_keep_ckpts"] = _count(cfg, "max_keep_ckpts", keep, minimum=-1)
        checkpoint.setdefault("save_param_scheduler", bool(cfg.get("param_scheduler")))
        if cfg.get("best_metric") and cfg.get("val_evaluator"):
            best = dict(cfg.best_metric)
            checkpoint.update(save_best=best["key"], rule=best.get("rule", "greater"))
        hooks["checkpoint"] = checkpoint
    hooks.setdefault("logger", dict(type="LoggerHook", interval=log_interval))
    cfg.default_hooks = hooks

    custom_hooks = list(cfg.get("custom_hooks") or [])
    if cfg.get("ema"):
        ema = dict(cfg.ema)
        if "decay" in ema:
            ema["momentum"] = 1.0 - ema.pop("decay")
        custom_hooks.append(dict(type="EMAHook", **ema))
    custom_hooks += [
        dict(type="FiniteLossHook"),
        dict(type="RngStateHook"),
        dict(type="PlainCheckpointHook"),
        dict(type="FinalWeightsHook"),
        dict(type="CurvesHook", interval=log_interval),
    ]
    if cfg.get("time_limit"):
        seconds = cfg.time_limit
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < float("inf"):
            raise DataError(f"time_limit must be a positive number of seconds, got {seconds!r}", cfg.filename)
        custom_hooks.append(dict(type="TimeLimitHook", seconds=float(seconds)))
    if progress:
        custom_hooks.append(dict(type="TrainProgressHook", interval=log_interval))
    cfg.custom_hooks = custom_hooks
    return cfg


def earlier_run(work_dir: Path) -> str | None:
    """The name of a file in ``work_dir`` that shows an earlier training run there (a checkpoint or final weights)."""
    if not work_dir.is_dir():
        return None
    for path in sorted(work_dir.glob("*.pth")):
        if CHECKPOINT_NAME.fullmatch(path.name) or path.name == FINAL_WEIGHTS_NAME:
            return path.name
    return None


def _resume_from(work_dir: Path, resume: bool | str | Path) -> Path | None:
    if resume is True:
        latest = latest_checkpoint(work_dir)
        if latest is None and is_main_process():
            print(f"no checkpoint to resume from in {work_dir}; training from the start", file=sys.stderr, flush=True)
        return latest
    if not resume:
        return None
    if not Path(resume).is_file():
        raise DataError("checkpoint to resume from not found", resume)
    return Path(resume)


def _init_distributed(cfg: Config) -> None:
    """Start the process group before the runner would, so that the ranks can agree on what to resume.

    On CPU, mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device`` first; start the group directly.
    """
    if cfg.launcher == "none" or torch.distributed.is_initialized():
        return
    if cfg.launcher == "pytorch" and not all(key in os.environ for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR")):
        raise DataError(
            "--launcher pytorch runs under torchrun (RANK, WORLD_SIZE and MASTER_ADDR are not set): "
            "torchrun --nproc_per_node N -m diffusekit.core.cli <domain> train ... --launcher pytorch"
        )
    dist_cfg = dict(cfg.env_cfg["dist_cfg"])
    if torch.cuda.is_available():
        init_dist(cfg.launcher, **dist_cfg)
        return
    if cfg.launcher != "pytorch":
        raise DataError(f"launcher {cfg.launcher!r} needs CUDA; on CPU use 'pytorch' (torchrun) or 'none'")
    if "timeout" in dist_cfg:
        dist_cfg["timeout"] = datetime.timedelta(seconds=dist_cfg["timeout"])
    torch.distributed.init_process_group(**dist_cfg)


_runner_count = itertools.count()


def build_runner(
    cfg: Config | Mapping[str, Any],
    *,
    work_dir: str | Path,
    resume: bool | str | Path = False,
    launcher: str = "none",
    seed: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Runner:
    """An mmengine Runner for ``cfg`` with diffusekit's defaults (module docstring).

    ``resume=True`` continues from the newest intact checkpoint in ``work_dir`` (from the start when there is
    none); a path resumes from that checkpoint. Without ``resume``, a work dir that holds an earlier run's
    checkpoints is refused unless ``overwrite``. Checkpoints, and ``load_from``, are read with ``weights_only=True``
    (:func:`diffusekit.core.checkpoint.load_checkpoint_file`); a remote ``load_from`` URL is refused.
    """
    cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(copy.deepcopy(dict(cfg)))
    work_dir = Path(work_dir).absolute()
    if work_dir.exists() and not work_dir.is_dir():
        raise DataError("the work dir names an existing file", work_dir)
    earlier = earlier_run(work_dir)
    if earlier and not resume and not overwrite:
        raise DataError(
            f"holds an earlier run ({earlier}); pass --resume to continue it, or choose another --work-dir", work_dir
        )
    cfg.work_dir, cfg.launcher = str(work_dir), launcher
    cfg.setdefault("experiment_name", f"{work_dir.name}_{next(_runner_count)}")  # runs in one process stay apart
    cfg = _with_defaults(cfg, seed, progress)
    load_from = str(cfg.get("load_from") or "")
    if "://" in load_from:
        raise DataError(
            f"load_from={load_from!r}: remote weights are not fetched (torch.hub would unpickle them); download "
            "the file, check it, and pass its local path"
        )
    _init_distributed(cfg)
    if is_main_process() and work_dir.is_dir():
        remove_stale_temporaries(work_dir)
    resume_from = [_resume_from(work_dir, resume)]
    broadcast_object_list(resume_from)  # every rank resumes from the checkpoint that rank 0 found
    resume_from = resume_from[0]
    cfg.resume = resume_from is not None
    if resume_from is not None:
        cfg.load_from = SAFE_SCHEME + str(resume_from.absolute())
    elif load_from:
        cfg.load_from = SAFE_SCHEME + str(Path(load_from).expanduser().absolute())
    with registry_errors(cfg.filename), _undo_new_entries_on_error(work_dir):
        runner = DiffusekitRunner.from_cfg(cfg)
    runner.logger.addFilter(_DropExpectedWarnings())
    return runner


@contextlib.contextmanager
def _undo_new_entries_on_error(work_dir: Path, started=lambda: False):
    """On an error before training started (``started()`` is false) and before any checkpoint exists, remove what
    the runner created in ``work_dir`` (its timestamped log folder; the work dir itself when it was created here),
    so a bad config leaves no half-made run behind. A run that failed while training keeps its logs."""
    existed = work_dir.is_dir()
    before = set(work_dir.iterdir()) if existed else set()
    try:
        yield
    except Exception:
        if is_main_process() and not started() and work_dir.is_dir() and earlier_run(work_dir) is None:
            for entry in set(work_dir.iterdir()) - before:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            if not existed and not any(work_dir.iterdir()):
                work_dir.rmdir()
        raise


def train(
    cfg: Config | Mapping[str, Any],
    *,
    work_dir: str | Path,
    resume: bool | str | Path = False,
    launcher: str = "none",
    seed: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> nn.Module:
    """Build the runner and train; return the trained model (unwrapped, raw weights).

    ``work_dir/final_weights.pth`` then holds the raw and the EMA weights (see :func:`load_weights`).
    """
    runner = build_runner(
        cfg, work_dir=work_dir, resume=resume, launcher=launcher, seed=seed, progress=progress, overwrite=overwrite
    )
    # dataloaders, evaluators and hooks are built here
    with (
        registry_errors(runner.cfg.filename),
        _undo_new_entries_on_error(Path(runner.work_dir), started=lambda: runner.iter > 0),
    ):
        runner.train()
    return runner.model.module if is_model_wrapper(runner.model) else runner.model


def train_on_data(
    cfg: Config,
    data: str | Path,
    work_dir: str | Path,
    resume: bool = False,
    launcher: str = "none",
    seed: int | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Train ``cfg`` with the ``data_root`` of its training dataset (and of its validation dataset, when that has
    one) set to ``data``; returns the final weights path."""
    cfg = copy.deepcopy(cfg)
    root = str(Path(data).expanduser().absolute())
    cfg.train_dataloader.dataset["data_root"] = root
    if "data_root" in (cfg.get("val_dataloader") or {}).get("dataset", {}):
        cfg.val_dataloader.dataset["data_root"] = root
    train(cfg, work_dir=work_dir, resume=resume, launcher=launcher, seed=seed, progress=progress, overwrite=overwrite)
    return Path(work_dir) / FINAL_WEIGHTS_NAME


def seconds_per_iteration(cfg: Config, data: str | Path, iters: int = 15) -> float:
    """Median wall time of one training step (forward, backward, AdamW) of ``cfg``'s model on real batches of its
    training dataset at ``data`` (the first 3 steps are warm-up). The batch keys are the model's forward
    arguments, as the engine passes them; every loss term whose name contains "loss" is summed."""
    from mmengine.registry import DATASETS, FUNCTIONS, MODELS
    from mmengine.utils import import_modules_from_strings
    from torch.utils.data import DataLoader

    imports = cfg.get("custom_imports")
    if imports:
        import_modules_from_strings(**imports)
    model = MODELS.build(copy.deepcopy(cfg.model)).train()
    spec = copy.deepcopy(dict(cfg.train_dataloader.dataset))
    spec["data_root"] = str(data)
    collate = (cfg.train_dataloader.get("collate_fn") or {}).get("type")
    collate_fn = FUNCTIONS.get(collate) if collate and collate != "default_collate" else None
    loader = DataLoader(
        DATASETS.build(spec), batch_size=cfg.train_dataloader.batch_size, shuffle=True, collate_fn=collate_fn
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batches, times = itertools.cycle(loader), []
    for _ in range(iters):
        batch = next(batches)
        start = time.perf_counter()
        loss = sum(v for k, v in model(**batch, mode="loss").items() if "loss" in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    rest = sorted(times[3:])
    return float(rest[len(rest) // 2])


def train_for_budget(
    cfg: Config, data: str | Path, work_dir: str | Path, minutes: float, warmup: int = 50, seed: int = 0
) -> tuple[Path, int, float]:
    """Train ``cfg`` for ``minutes`` of wall-clock time, as the benchmarks compare methods: max_iters and a
    linear warm-up + cosine schedule sized from the measured step time (+15% for data loading and hooks), and the
    ``time_limit`` hook stops training at the budget in any case. Returns (weights, iterations done, seconds)."""
    per_iter = seconds_per_iteration(cfg, data)
    iters = max(2 * warmup, int(minutes * 60 / (per_iter * 1.15)))
    cfg = copy.deepcopy(cfg)
    cfg.merge_from_dict({"train_cfg.max_iters": iters, "time_limit": minutes * 60, "checkpoint_interval": 5000})
    cfg.param_scheduler = [
        dict(type="LinearLR", start_factor=0.01, by_epoch=False, begin=0, end=warmup),
        dict(type="CosineAnnealingLR", by_epoch=False, begin=warmup, end=iters, eta_min=1e-5),
    ]
    name = Path(str(work_dir)).name
    print(f"{name}: {per_iter:.3f} s per step -> {iters} iterations planned", file=sys.stderr, flush=True)
    start = time.perf_counter()
    weights = train_on_data(cfg, data, work_dir, seed=seed, overwrite=True)  # a benchmark rerun starts afresh
    seconds = time.perf_counter() - start
    done = int(torch.load(weights, weights_only=True)["meta"]["iter"])
    print(f"{name}: {done} iterations in {seconds:.0f} s", file=sys.stderr, flush=True)
    return weights, done, seconds
