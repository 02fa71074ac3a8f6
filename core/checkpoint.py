"""Checkpoints written safely, read safely, and resumed exactly.

- Atomic writes: bytes go to a temporary file in the target directory, are fsynced, then ``os.replace``d onto
  the final name, so a crash never leaves a truncated file under that name (:class:`DiffusekitRunner` saves
  mmengine checkpoints this way).
- Safe reads: every file is read with ``torch.load(..., weights_only=True)``, full training checkpoints included:
  :class:`PlainCheckpointHook` stores mmengine's message hub (its ``HistoryBuffer`` objects) as tensors and plain
  types and :class:`DiffusekitRunner` rebuilds it on load, so nothing is unpickled, no trust file exists, and a
  checkpoint folder copied from someone else cannot run code. mmengine reads checkpoints through the
  ``SAFE_SCHEME`` loader; remote ``load_from`` URLs are refused.
- Resume: :func:`latest_checkpoint` is the newest intact ``iter_N.pth`` / ``epoch_N.pth`` in a work dir (a
  truncated newest one is passed over with a warning); temporaries of a killed write are removed before training.
- Weights for evaluation: :func:`save_weights` / :func:`load_weights` (plain tensors, EMA included).
- Exact resume: :class:`RngStateHook` stores the torch/CUDA/numpy/Python RNG states in each checkpoint, and
  :class:`ExactResumeIterLoop` puts the data stream and those states back where the interrupted run stood.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import random
import re
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dataset import InfiniteSampler
from mmengine.dist import barrier, get_rank, is_main_process, master_only
from mmengine.hooks import EMAHook, Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS, LOOPS
from mmengine.runner import CheckpointLoader, IterBasedTrainLoop, Runner
from torch import nn

from .errors import DataError

FINAL_WEIGHTS_NAME = "final_weights.pth"


def fsync_dir(directory: str | Path) -> None:
    """Make a rename inside ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit_file(tmp_path: str | Path, final_path: str | Path) -> None:
    """fsync ``tmp_path`` and atomically rename it to ``final_path`` (same directory)."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp_path, final_path)
    fsync_dir(Path(final_path).parent)


def temporary_name(path: str | Path) -> Path:
    """A hidden, process-unique sibling of ``path`` to write before renaming."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the complete new one, never a part."""
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        commit_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_savez(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """``np.savez_compressed`` to ``path`` so that readers see the old file or the complete new one (a temporary
    sibling, fsync, rename); returns ``path``. For data files (replay buffers, converted datasets)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
        commit_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


CHECKPOINT_NAME = re.compile(r"(iter|epoch)_(\d+)\.pth")


def is_intact(path: str | Path) -> bool:
    """Whether ``path`` is a complete torch zip archive (every member's CRC checks out)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, RuntimeError, EOFError):
        return False


def latest_checkpoint(work_dir: str | Path) -> Path | None:
    """The newest intact training checkpoint (``iter_N.pth`` or ``epoch_N.pth``, highest N) in ``work_dir``;
    damaged newer ones are reported on stderr and passed over. ``best_*`` copies are not where training stood."""
    found = []
    for path in Path(work_dir).glob("*.pth"):
        match = CHECKPOINT_NAME.fullmatch(path.name)
        if match:
            found.append((int(match.group(2)), path))
    for _, path in sorted(found, reverse=True):
        if is_intact(path):
            return path
        print(f"{path}: damaged checkpoint (truncated or corrupt), trying an older one", file=sys.stderr, flush=True)
    return None


def remove_stale_temporaries(work_dir: str | Path) -> list[Path]:
    """Delete the temporary files that killed checkpoint writes left in ``work_dir`` (see :func:`temporary_name`)."""
    removed = []
    for path in Path(work_dir).glob(".*.tmp*"):
        if re.fullmatch(r"\..+\.tmp\d+", path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def load_checkpoint_file(path: str | Path, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain types only, never an arbitrary pickle.

    Missing, unreadable, corrupt and pickled-object files raise :class:`DataError` naming the file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError("checkpoint file not found", path)
    if path.stat().st_size == 0:
        raise DataError("empty file, not a torch checkpoint", path)
    is_zip = zipfile.is_zipfile(path)
    if is_zip and not is_intact(path):
        raise DataError("truncated or corrupt checkpoint (its zip archive fails the CRC check)", path)
    with path.open("rb") as handle:
        legacy = handle.read(1) == b"\x80"  # torch's legacy format is a pickle stream (protocol >= 2)
    if not is_zip and not legacy:
        raise DataError(
            "not a readable torch checkpoint (neither the zip archive that torch.save writes nor a legacy torch file)",
            path,
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise DataError(
            "refusing to unpickle: the file holds Python objects beyond tensors and plain types (a pickled "
            "object, another tool's checkpoint, or one written before diffusekit 0.2), and loading it could run "
            "code. Load a plain state_dict or a run's final_weights.pth instead",
            path,
        ) from error
    except PermissionError as error:
        raise DataError(f"cannot read the checkpoint ({error.strerror})", path) from error
    except Exception as error:  # noqa: BLE001  torch's unpickler fails on non-checkpoints with any exception type
        if not zipfile.is_zipfile(path):
            reason = "neither the zip archive that torch.save writes nor a legacy torch file"
        else:
            reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise DataError(f"not a readable torch checkpoint ({reason})", path) from error


def save_weights(path: str | Path, state_dict: Mapping, ema_state_dict: Mapping | None = None, **meta) -> None:
    """Write a weights-only file (loads with ``weights_only=True``): model weights, EMA weights, small meta."""
    weights = {"state_dict": {k: v.detach().cpu() for k, v in state_dict.items()}, "meta": dict(meta)}
    if ema_state_dict is not None:
        weights["ema_state_dict"] = {k: v.detach().cpu() for k, v in ema_state_dict.items()}
    buffer = io.BytesIO()
    torch.save(weights, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def select_state_dict(checkpoint: Any, use_ema: bool = True) -> dict[str, torch.Tensor]:
    """The model weights in ``checkpoint``: a plain state_dict, or a dict with ``state_dict`` (and EMA).

    Two EMA layouts exist. :func:`save_weights` keeps EMA weights under ``ema_state_dict`` with plain keys.
    mmengine's ``EMAHook`` swaps them on save: ``state_dict`` holds the EMA weights and ``ema_state_dict`` the
    raw ones as ``module.<key>`` (plus a ``steps`` counter).
    """
    if not isinstance(checkpoint, Mapping):
        raise DataError(f"expected a dict of weights, got {type(checkpoint).__name__}")
    if "state_dict" not in checkpoint:
        state = dict(checkpoint)
    else:
        state, ema = dict(checkpoint["state_dict"]), checkpoint.get("ema_state_dict")
        if ema:
            swapped = any(key.startswith("module.") for key in ema)  # mmengine's EMAHook layout
            if swapped and not use_ema:
                state = {key[len("module.") :]: v for key, v in ema.items() if key.startswith("module.")}
            elif not swapped and use_ema:
                state = dict(ema)
    state = {key.removeprefix("module."): value for key, value in state.items()}  # saved from a DDP wrapper
    if not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise DataError("the checkpoint's weights are not a mapping of names to tensors")
    return state


def weights_path(checkpoint: str | Path) -> Path:
    """The weights file a user names: a file, or a train work dir holding ``final_weights.pth``; DataError if none."""
    path = Path(checkpoint).expanduser()
    if path.is_dir():
        path = path / FINAL_WEIGHTS_NAME
    if not path.is_file():
        raise DataError(f"checkpoint not found (a weights file or a train work dir with {FINAL_WEIGHTS_NAME})", path)
    return path


def load_weights(model: nn.Module, path: str | Path, *, use_ema: bool = True, strict: bool = True) -> nn.Module:
    """Load weights for evaluation or prediction into ``model`` (EMA weights when present and ``use_ema``).

    ``path`` is a plain state_dict, a :func:`save_weights` file, or a full checkpoint of a diffusekit run (all
    read with ``weights_only=True``, see :func:`load_checkpoint_file`).
    """
    state = select_state_dict(load_checkpoint_file(path, map_location="cpu"), use_ema=use_ema)
    mismatch = describe_mismatch(state, model.state_dict(), strict)
    if mismatch:
        raise DataError(f"weights do not fit the model (is it the same config?): {mismatch}", path)
    model.load_state_dict(state, strict=strict)
    return model


def describe_mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], strict: bool) -> str:
    """One line on how ``state`` differs from ``expected``: the first tensor whose shape differs (both shapes),
    else the first missing or unexpected key, and how many more there are; "" when they fit."""
    shapes = [k for k in state if k in expected and tuple(state[k].shape) != tuple(expected[k].shape)]
    missing = [k for k in expected if k not in state] if strict else []
    unexpected = [k for k in state if k not in expected] if strict else []
    problems = len(shapes) + len(missing) + len(unexpected)
    if not problems:
        return ""
    if shapes:
        key = shapes[0]
        first = f"{key!r} is {tuple(state[key].shape)} in the file, {tuple(expected[key].shape)} in the model"
    elif missing:
        first = f"the file has no {missing[0]!r}"
    else:
        first = f"the model has no {unexpected[0]!r}"
    more = f" ({problems - 1} more: {len(shapes)} shapes, {len(missing)} missing, {len(unexpected)} unexpected)"
    return first + (more if problems > 1 else "")


def capture_rng_state() -> dict[str, Any]:
    """The torch, CUDA (current device), numpy and Python RNG states as tensors, numbers and lists.

    All of it loads with ``weights_only=True``.
    """
    _, numpy_keys, *numpy_rest = np.random.get_state()  # ("MT19937", uint32 keys, pos, has_gauss, cached)
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [torch.from_numpy(numpy_keys.astype(np.int64)), *numpy_rest],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # this process's device only
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())  # (mmengine resumes with map_location=<the training device>)
    numpy_keys, *numpy_rest = state["numpy"]
    np.random.set_state(("MT19937", numpy_keys.cpu().numpy().astype(np.uint32), *numpy_rest))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


# ------------------------------------------------------------------------ mmengine: saving, loading, resuming
SAFE_SCHEME = "diffusekit-safe://"
"""Prefix of checkpoint paths that mmengine must read through :func:`load_checkpoint_file`."""


def load_from_diffusekit_safe(filename: str, map_location: Any = None) -> Any:
    """mmengine checkpoint loader for ``SAFE_SCHEME`` paths (mmengine logs the name after ``load_from_``)."""
    return load_checkpoint_file(filename[len(SAFE_SCHEME) :], map_location=map_location or "cpu")


CheckpointLoader.register_scheme(SAFE_SCHEME, load_from_diffusekit_safe, force=True)

_BUFFER_TAG = "__history_buffer__"


def _plain(value: Any) -> Any:
    """``value`` with mmengine ``HistoryBuffer`` objects, numpy arrays and numpy scalars turned into tagged dicts,
    tensors and Python numbers, recursively (what ``torch.load(weights_only=True)`` reads)."""
    from mmengine.logging import HistoryBuffer

    if isinstance(value, HistoryBuffer):
        log, count = (torch.from_numpy(np.asarray(array, np.float64)) for array in value.data)
        return {_BUFFER_TAG: True, "log": log, "count": count, "max_length": int(value.max_length)}
    if isinstance(value, dict):
        return type(value)((key, _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value.copy())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _unplain(value: Any) -> Any:
    """Inverse of :func:`_plain` for the message hub (history buffers back as ``HistoryBuffer`` objects)."""
    from mmengine.logging import HistoryBuffer

    if isinstance(value, dict):
        if value.get(_BUFFER_TAG):
            return HistoryBuffer(value["log"].numpy(), value["count"].numpy(), int(value["max_length"]))
        return type(value)((key, _unplain(item)) for key, item in value.items())
    return value


@HOOKS.register_module()
class PlainCheckpointHook(Hook):
    """Write checkpoints that load with ``weights_only=True``: the message hub and the meta as plain types."""

    priority = "LOWEST"

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        for key in ("message_hub", "meta"):
            if key in checkpoint:
                checkpoint[key] = _plain(checkpoint[key])


_PARTIAL_LOAD = {
    "missing keys in source state_dict": "not in the file (they start from their initialisation)",
    "unexpected key in source state_dict": "in the file but not in the model (ignored)",
}


def summarize_partial_load(printed: str) -> str:
    """mmengine's report of weights that fit the model only in part (a staged training: stage 2 adds modules to a
    stage-1 network) lists every key; one line per kind instead, grouped by top-level module. Other text is kept."""
    if "The model and loaded state dict do not match exactly" not in printed:
        return printed.strip()
    lines = ["load_from: the weights fit the model in part"]
    for line in printed.splitlines():
        head, _, keys = line.partition(": ")
        if head in _PARTIAL_LOAD and keys:
            groups: dict[str, int] = {}
            for key in keys.split(", "):
                groups[key.split(".")[0]] = groups.get(key.split(".")[0], 0) + 1
            listed = ", ".join(f"{name} ({count})" for name, count in groups.items())
            lines.append(f"  tensors {_PARTIAL_LOAD[head]}: {listed}")
    return "\n".join(lines)


class DiffusekitRunner(Runner):
    """mmengine's Runner with atomic checkpoints that load weights-only, and RNG states kept on load."""

    loaded_rng_state: dict | None = None

    @master_only
    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        if "://" in str(out_dir):  # remote storage: no local rename to make it atomic
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        final = Path(out_dir) / filename
        tmp = temporary_name(final)
        try:
            super().save_checkpoint(out_dir, tmp.name, *args, **kwargs)
            commit_file(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def load_checkpoint(self, filename: str, *args, **kwargs) -> dict:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):  # mmengine prints every missing key of a partial load_from
            checkpoint = super().load_checkpoint(filename, *args, **kwargs)
        summary = summarize_partial_load(printed.getvalue())
        if summary != printed.getvalue().strip():
            self.logger.warning(summary)
        else:
            sys.stdout.write(printed.getvalue())
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = _unplain(checkpoint["message_hub"])
        self.loaded_rng_state = checkpoint.get("rng_state")
        return checkpoint


class _ResumableBatches:
    """Endless batches from the loop's dataloader, epoch after epoch, able to resume mid-run exactly.

    mmengine's ``IterBasedTrainLoop.run`` resumes by calling ``next`` once per batch already trained on and
    discarding the results. The first call here fast-forwards instead (:meth:`_fast_forward`) and answers those
    calls with ``None``; just before the first new batch it restores the checkpoint's RNG states, which is where
    the interrupted run stood when it saved them.
    """

    def __init__(self, loop: IterBasedTrainLoop, first_iterator: Iterator | None):
        self.loop, self.dataloader = loop, loop.dataloader
        self.epoch = 0
        self.iterator = first_iterator
        self.batches_to_discard: int | None = None
        self.rng_to_restore = False

    def __iter__(self) -> _ResumableBatches:
        return self

    def __next__(self) -> Any:
        if self.batches_to_discard is None:  # first call: the loop is about to discard `loop.iter` batches
            self.batches_to_discard = self.loop.iter
            if self.loop.iter > 0:
                self._fast_forward(self.loop.iter)
                self.rng_to_restore = True
        if self.batches_to_discard > 0:
            self.batches_to_discard -= 1
            return None
        if self.rng_to_restore:
            self._restore_rng()
            self.rng_to_restore = False
        return self._fetch()

    @property
    def sampler(self) -> Any:
        sampler = getattr(self.dataloader.batch_sampler, "sampler", None)
        return self.dataloader.sampler if sampler is None else sampler

    def _fetch(self) -> Any:
        if self.iterator is None:
            self.iterator = iter(self.dataloader)
        batch = next(self.iterator, _END)
        if batch is _END:  # end of an epoch: start the next one
            self.epoch += 1
            if hasattr(self.sampler, "set_epoch"):
                self.sampler.set_epoch(self.epoch)
            if self.dataloader.num_workers > 0:
                time.sleep(2)  # mmengine's guard against a worker deadlock at epoch transitions
            self.iterator = iter(self.dataloader)
            batch = next(self.iterator, _END)
            if batch is _END:
                raise RuntimeError("the training dataloader yields no batches")
        return batch

    def _fast_forward(self, num_batches: int) -> None:
        """Put the data stream where it stood after ``num_batches`` batches, reading as little data as possible.

        ``InfiniteSampler`` keeps one index stream in the sampler object: restart it (the stream that mmengine's
        first iterator may have prefetched from dies with that iterator) and skip the trained indices, reading no
        data. Finite samplers (``DefaultSampler``: an epoch's order depends only on seed and epoch) skip whole
        epochs by number and re-read the trained part of the current epoch, at most one epoch of data. At an
        exact epoch end the next fetch starts the next epoch, as it did in the interrupted run.
        """
        sampler, batch_size = self.sampler, self.dataloader.batch_size
        if isinstance(sampler, InfiniteSampler):
            if batch_size is None:  # a custom batch sampler: re-read like mmengine does
                for _ in range(num_batches):
                    self._fetch()
                return
            sampler.indices = sampler._indices_of_rank()
            for _ in islice(sampler.indices, num_batches * batch_size):
                pass
            self.iterator = iter(self.dataloader)
            return
        epochs, done = divmod(num_batches, len(self.dataloader))
        if done == 0:
            self.epoch, self.iterator = epochs - 1, iter(())
            return
        self.epoch = epochs
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epochs)
        self.iterator = iter(self.dataloader)
        for _ in range(done):
            next(self.iterator)

    def _restore_rng(self) -> None:
        runner = self.loop.runner
        state = getattr(runner, "loaded_rng_state", None)
        per_rank_seeds = runner.cfg.get("randomness", {}).get("diff_rank_seed", False)
        if state is not None and (get_rank() == 0 or not per_rank_seeds):  # only rank 0's states are saved
            restore_rng_state(state)


_END = object()


@LOOPS.register_module()
class ExactResumeIterLoop(IterBasedTrainLoop):
    """``IterBasedTrainLoop`` whose resume continues the data order and the random draws exactly.

    mmengine's loop re-reads every batch already trained on, sleeps 2 s at every epoch end of a finite sampler
    (even without workers) and saves no RNG state. Here the batches come from :class:`_ResumableBatches`. Exact
    for ``DefaultSampler`` (workers included, when seeded by mmengine's default ``worker_init_fn``) and for
    ``InfiniteSampler`` with randomness in the main process; random augmentations inside the dataloader workers
    of an ``InfiniteSampler`` start afresh at resume.
    """

    def __init__(self, runner: Runner, dataloader: Any, max_iters: int, **kwargs):
        super().__init__(runner, dataloader, max_iters, **kwargs)
        # Keep mmengine's first DataLoader iterator: it may be prefetching already, and dropping it would close
        # an InfiniteSampler's shared index stream.
        first_iterator = getattr(self.dataloader_iterator, "_iterator", None)
        self.dataloader_iterator = _ResumableBatches(self, first_iterator)

    def run(self) -> nn.Module:
        try:
            return super().run()
        finally:  # stop the dataloader workers now: shut down later by the garbage collector, each took 5 s
            self.dataloader_iterator.iterator = None


@HOOKS.register_module()
class RngStateHook(Hook):
    """Save the RNG states in every checkpoint, and keep validation from advancing the training RNG streams."""

    priority = "VERY_HIGH"

    def before_save_checkpoint(self, runner: Runner, checkpoint: dict) -> None:
        checkpoint["rng_state"] = capture_rng_state()

    def before_val(self, runner: Runner) -> None:
        self._training_state = capture_rng_state()

    def after_val(self, runner: Runner) -> None:
        restore_rng_state(self._training_state)


@HOOKS.register_module()
class FinalWeightsHook(Hook):
    """After training, write ``work_dir/final_weights.pth``: model and EMA weights that load weights-only."""

    priority = "LOWEST"

    def after_train(self, runner: Runner) -> None:
        if is_main_process():
            model = runner.model.module if is_model_wrapper(runner.model) else runner.model
            ema = next((hook.ema_model.module for hook in runner.hooks if isinstance(hook, EMAHook)), None)
            save_weights(
                Path(runner.work_dir) / FINAL_WEIGHTS_NAME,
                model.state_dict(),
                None if ema is None else ema.state_dict(),
                iter=runner.iter,
            )
        barrier()  # the other ranks return once rank 0 has written its last files
