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

Defaults filled in when the config leaves them out: ``randomness=dict(seed=0)`` (the ``seed`` argument wins),
iteration-based training with ``ExactResumeIterLoop`` (``train_cfg=dict(max_iters=N)``; ``by_epoch=True``
keeps mmengine's epoch loop, without exact resume), ``log_level='WARNING'``, the gloo backend on CPU (nccl with
CUDA), CPU DDP without ``device_ids``, and hooks for RNG state, final weights and (``progress=True``) a one-line
progress display.

Configs must hold only literals and registered ``type`` names: mmengine formats the config into every
checkpoint and fails on live objects.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import logging
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

from .checkpoint import FINAL_WEIGHTS_NAME, TRUSTED_SCHEME, DiffusekitRunner, latest_checkpoint, load_weights
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


def load_config(
    config: str | Path, *, package: str | None = None, cfg_options: Mapping[str, Any] | Sequence[str] | None = None
) -> Config:
    """Read ``config`` (a file path, or the name of a config shipped in ``package``) and apply ``cfg_options``."""
    path = Path(config).expanduser()
    if not path.is_file():
        shipped = shipped_configs(package) if package else {}
        name = path.name.removesuffix(".py")
        if path.parent != Path(".") or name not in shipped:
            where = f"; configs shipped in {package}: {', '.join(sorted(shipped)) or 'none'}" if package else ""
            raise DataError(f"no such config file or shipped config name{where}", config)
        path = shipped[name]
    try:
        cfg = Config.fromfile(str(path))
    except SyntaxError as error:
        raise DataError(f"invalid config: {error.msg}", path, error.lineno) from error
    if cfg_options:
        cfg.merge_from_dict(parse_cfg_options(cfg_options))
    return cfg


# ------------------------------------------------------------------------------------------------ runner
@HOOKS.register_module()
class TrainProgressHook(Hook):
    """Print ``iter done/total  loss  it/s  eta`` every ``interval`` iterations (rank 0, one plain line each)."""

    priority = "BELOW_NORMAL"

    def __init__(self, interval: int = 10):
        self.interval = max(1, int(interval))

    @master_only
    def before_train(self, runner: Runner) -> None:
        self.start_iter, self.start_time = runner.iter, time.perf_counter()
        if runner.iter:
            print(f"resumed at iteration {runner.iter}/{runner.max_iters}", flush=True)

    @master_only
    def after_train_iter(self, runner: Runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        done, total = runner.iter + 1, runner.max_iters
        if done % self.interval and done != total:
            return
        rate = (done - self.start_iter) / max(time.perf_counter() - self.start_time, 1e-9)
        losses = runner.message_hub.log_scalars.get("train/loss")
        loss = f"  loss {losses.mean(self.interval):.4g}" if losses is not None else ""
        eta = datetime.timedelta(seconds=round((total - done) / rate))
        print(f"iter {done:>{len(str(total))}}/{total}{loss}  {rate:.2f} it/s  eta {eta}", flush=True)


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
    max_iters = int(train_cfg.get("max_iters", 0))
    log_interval = int(cfg.get("log_interval", min(max(max_iters // 10, 1), 50)))

    hooks = dict(cfg.get("default_hooks") or {})
    if hooks.get("checkpoint", {}) is not None:  # None switches checkpoints off, as in mmengine
        checkpoint = {"type": "CheckpointHook", "by_epoch": by_epoch, **(hooks.get("checkpoint") or {})}
        checkpoint["interval"] = cfg.get("checkpoint_interval", checkpoint.get("interval", 1000))
        checkpoint["max_keep_ckpts"] = cfg.get("max_keep_ckpts", checkpoint.get("max_keep_ckpts", 3))
        checkpoint.setdefault("save_param_scheduler", bool(cfg.get("param_scheduler")))
        hooks["checkpoint"] = checkpoint
    hooks.setdefault("logger", dict(type="LoggerHook", interval=log_interval))
    cfg.default_hooks = hooks

    custom_hooks = list(cfg.get("custom_hooks") or [])
    if cfg.get("ema"):
        ema = dict(cfg.ema)
        if "decay" in ema:
            ema["momentum"] = 1.0 - ema.pop("decay")
        custom_hooks.append(dict(type="EMAHook", **ema))
    custom_hooks += [dict(type="RngStateHook"), dict(type="FinalWeightsHook")]
    if cfg.get("time_limit"):
        custom_hooks.append(dict(type="TimeLimitHook", seconds=float(cfg.time_limit)))
    if progress:
        custom_hooks.append(dict(type="TrainProgressHook", interval=log_interval))
    cfg.custom_hooks = custom_hooks
    return cfg


def _resume_from(work_dir: Path, resume: bool | str | Path) -> Path | None:
    if resume is True:
        latest = latest_checkpoint(work_dir)
        if latest is None and is_main_process():
            print(f"no checkpoint to resume from in {work_dir}; training from the start", flush=True)
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
) -> Runner:
    """An mmengine Runner for ``cfg`` with diffusekit's defaults (module docstring).

    ``resume=True`` continues from the newest checkpoint recorded in ``work_dir`` (from the start when there is
    none); a path resumes from that checkpoint. Checkpoints are read through the trust check of
    :func:`diffusekit.core.checkpoint.load_checkpoint_file`, also for ``load_from``.
    """
    cfg = copy.deepcopy(cfg) if isinstance(cfg, Config) else Config(copy.deepcopy(dict(cfg)))
    work_dir = Path(work_dir).absolute()
    cfg.work_dir, cfg.launcher = str(work_dir), launcher
    cfg.setdefault("experiment_name", f"{work_dir.name}_{next(_runner_count)}")  # runs in one process stay apart
    cfg = _with_defaults(cfg, seed, progress)
    _init_distributed(cfg)
    resume_from = [_resume_from(work_dir, resume)]
    broadcast_object_list(resume_from)  # every rank resumes from the checkpoint that rank 0 found
    resume_from = resume_from[0]
    cfg.resume = resume_from is not None
    if resume_from is not None:
        cfg.load_from = TRUSTED_SCHEME + str(resume_from.absolute())
    elif cfg.get("load_from") and "://" not in str(cfg.load_from):
        cfg.load_from = TRUSTED_SCHEME + str(Path(cfg.load_from).expanduser().absolute())
    runner = DiffusekitRunner.from_cfg(cfg)
    runner.logger.addFilter(_DropExpectedWarnings())
    return runner


def train(
    cfg: Config | Mapping[str, Any],
    *,
    work_dir: str | Path,
    resume: bool | str | Path = False,
    launcher: str = "none",
    seed: int | None = None,
    progress: bool = True,
) -> nn.Module:
    """Build the runner and train; return the trained model (unwrapped, raw weights).

    ``work_dir/final_weights.pth`` then holds the raw and the EMA weights (see :func:`load_weights`).
    """
    runner = build_runner(cfg, work_dir=work_dir, resume=resume, launcher=launcher, seed=seed, progress=progress)
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
) -> Path:
    """Train ``cfg`` with its training dataset's ``data_root`` set to ``data``; returns the final weights path."""
    cfg = copy.deepcopy(cfg)
    cfg.train_dataloader.dataset["data_root"] = str(Path(data).expanduser().absolute())
    train(cfg, work_dir=work_dir, resume=resume, launcher=launcher, seed=seed, progress=progress)
    return Path(work_dir) / FINAL_WEIGHTS_NAME


def seconds_per_iteration(cfg: Config, data: str | Path, iters: int = 15) -> float:
    """Median wall time of one training step (forward, backward, AdamW) of ``cfg``'s model on real batches of its
    training dataset at ``data`` (the first 3 steps are warm-up). The batch keys are the model's forward
    arguments, as the engine passes them; every loss term whose name contains "loss" is summed."""
    from mmengine.registry import DATASETS, MODELS
    from mmengine.utils import import_modules_from_strings
    from torch.utils.data import DataLoader

    imports = cfg.get("custom_imports")
    if imports:
        import_modules_from_strings(**imports)
    model = MODELS.build(copy.deepcopy(cfg.model)).train()
    spec = copy.deepcopy(dict(cfg.train_dataloader.dataset))
    spec["data_root"] = str(data)
    loader = DataLoader(DATASETS.build(spec), batch_size=cfg.train_dataloader.batch_size, shuffle=True)
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
    print(f"{name}: {per_iter:.3f} s per step -> {iters} iterations planned", flush=True)
    start = time.perf_counter()
    weights = train_on_data(cfg, data, work_dir, seed=seed)
    seconds = time.perf_counter() - start
    done = int(torch.load(weights, weights_only=True)["meta"]["iter"])
    print(f"{name}: {done} iterations in {seconds:.0f} s", flush=True)
    return weights, done, seconds
