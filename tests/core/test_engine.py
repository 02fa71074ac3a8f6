"""diffusekit.core.engine: configs, exact resume, atomic and trusted checkpoints, weights, CPU DDP."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from mmengine.fileio.backends.local_backend import LocalBackend
from mmengine.hooks import Hook

from diffusekit.core import checkpoint as ckpt
from diffusekit.core.checkpoint import latest_checkpoint, load_checkpoint_file, load_weights
from diffusekit.core.engine import TimeLimitHook, build_runner, load_config, train
from diffusekit.core.errors import DataError

from .engine_fixtures import EngineTestDenoiser, tiny_config

HERE = Path(__file__).parent


class _Interrupted(Exception):
    pass


class _InterruptAt(Hook):
    """Crash the run just before iteration ``at`` (0-based) would train."""

    def __init__(self, at: int):
        self.at = at

    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        if runner.iter == self.at:
            raise _Interrupted


def assert_same(a: Any, b: Any, where: str = "") -> None:
    """Exact equality of nested dicts/lists of tensors and plain values."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a.cpu(), b.cpu()), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# --------------------------------------------------------------------------------------------- exact resume
@pytest.mark.parametrize(
    "sampler, interval, num_workers",
    [("DefaultSampler", 4, 0), ("DefaultSampler", 5, 0), ("InfiniteSampler", 4, 0), ("InfiniteSampler", 5, 2)],
    ids=["default-mid-epoch", "default-epoch-end", "infinite", "infinite-workers"],
)
def test_interrupted_run_resumes_exactly(tmp_path: Path, sampler: str, interval: int, num_workers: int) -> None:
    # 5 batches per epoch, validation (which draws random numbers) every 4 iterations, EMA and an LR schedule.
    cfg = tiny_config(12, sampler, validate=True, num_workers=num_workers, checkpoint_interval=interval)
    reference = build_runner(cfg, work_dir=tmp_path / "reference", progress=False)
    reference.train()

    interrupted = build_runner(cfg, work_dir=tmp_path / "run", progress=False)
    interrupted.register_hook(_InterruptAt(interval + 2))
    with pytest.raises(_Interrupted):
        interrupted.train()
    assert latest_checkpoint(tmp_path / "run") == tmp_path / "run" / f"iter_{interval}.pth"

    torch.manual_seed(999)  # whatever the crashed process left in the RNGs must not matter
    resumed = build_runner(cfg, work_dir=tmp_path / "run", resume=True, progress=False)
    resumed.train()

    assert resumed.iter == reference.iter == 12
    assert_same(resumed.model.state_dict(), reference.model.state_dict(), "model")
    assert_same(resumed.optim_wrapper.state_dict(), reference.optim_wrapper.state_dict(), "optimizer")
    assert_same(
        [s.state_dict() for s in resumed.param_schedulers], [s.state_dict() for s in reference.param_schedulers]
    )
    final = torch.load(tmp_path / "run" / "final_weights.pth", weights_only=True)
    expected = torch.load(tmp_path / "reference" / "final_weights.pth", weights_only=True)
    assert_same(final, expected, "final weights (with EMA)")


# ------------------------------------------------------------------------------------------- atomic writes
def test_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    real_put = LocalBackend.put

    def put_that_fails_halfway(self, obj: bytes, filepath) -> None:
        if "iter_8" in str(filepath):
            with open(filepath, "wb") as f:
                f.write(obj[: len(obj) // 2])
            raise OSError("disk full")
        real_put(self, obj, filepath)

    monkeypatch.setattr(LocalBackend, "put", put_that_fails_halfway)
    with pytest.raises(OSError, match="disk full"):
        train(tiny_config(8, checkpoint_interval=4), work_dir=tmp_path)

    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["iter_4.pth"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary file left behind"
    assert (tmp_path / "last_checkpoint").read_text().endswith("iter_4.pth")
    assert load_checkpoint_file(tmp_path / "iter_4.pth")["meta"]["iter"] == 4
    monkeypatch.undo()
    build_runner(tiny_config(8, checkpoint_interval=4), work_dir=tmp_path, resume=True, progress=False).train()
    assert latest_checkpoint(tmp_path) == tmp_path / "iter_8.pth"


def test_atomic_write_bytes_replaces_whole_files_only(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "file.bin"
    ckpt.atomic_write_bytes(target, b"old")

    def crash(*args) -> None:
        raise OSError("crash before rename")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError, match="crash before rename"):
        ckpt.atomic_write_bytes(target, b"new contents")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_rng_state_round_trip_loads_weights_only(tmp_path: Path) -> None:
    state = ckpt.capture_rng_state()
    draws = (torch.rand(3), np.random.rand(), np.random.randn(), random.random())
    torch.save(state, tmp_path / "rng.pth")
    ckpt.restore_rng_state(torch.load(tmp_path / "rng.pth", weights_only=True))
    assert torch.equal(draws[0], torch.rand(3))
    assert draws[1:] == (np.random.rand(), np.random.randn(), random.random())


# ------------------------------------------------------------------------------ trusted and external weights
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """An 8-iteration run with EMA: checkpoints iter_4/iter_8, final_weights.pth."""
    work_dir = tmp_path_factory.mktemp("trained")
    train(tiny_config(8, checkpoint_interval=4), work_dir=work_dir)
    return work_dir


def test_progress_lines_and_final_weights(tmp_path: Path, capsys) -> None:
    model = train(tiny_config(6, checkpoint_interval=3, log_interval=2), work_dir=tmp_path)
    captured = capsys.readouterr()
    out = captured.err
    assert "iter" not in captured.out  # progress goes to stderr, results to stdout
    lines = [line for line in out.splitlines() if line.startswith("iter")]
    assert [line.split()[1] for line in lines] == ["2/6", "4/6", "6/6"]
    assert re.fullmatch(r"iter 6/6  loss \S+  [\d.]+ it/s  eta 0:00:00", lines[-1])
    assert "mmengine - WARNING" not in out and "\r" not in out

    weights = torch.load(tmp_path / "final_weights.pth", weights_only=True)
    assert_same(weights["state_dict"], model.state_dict())
    assert weights["ema_state_dict"].keys() == model.state_dict().keys()


def test_weights_load_with_weights_only(tmp_path: Path, trained_run: Path, monkeypatch) -> None:
    source = EngineTestDenoiser()
    torch.save(source.state_dict(), tmp_path / "plain.pth")
    torch.save({"state_dict": source.state_dict(), "meta": {"note": "external"}}, tmp_path / "wrapped.pth")
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    for name in ("plain.pth", "wrapped.pth"):
        model = load_weights(EngineTestDenoiser(), tmp_path / name)
        assert_same(model.state_dict(), source.state_dict())
    final = trained_run / "final_weights.pth"
    ema = load_weights(EngineTestDenoiser(), final).state_dict()
    raw = load_weights(EngineTestDenoiser(), final, use_ema=False).state_dict()
    # A full training checkpoint of a run loads weights-only too (no trust file), in both EMA layouts.
    assert_same(load_weights(EngineTestDenoiser(), trained_run / "iter_8.pth").state_dict(), ema)
    assert_same(load_weights(EngineTestDenoiser(), trained_run / "iter_8.pth", use_ema=False).state_dict(), raw)
    assert calls == [True] * 6
    assert not list(trained_run.glob("*.json")) or not (trained_run / "trusted_checkpoints.json").exists()
    with pytest.raises(DataError, match="do not fit"):
        load_weights(EngineTestDenoiser(hidden=8), final)


class _Payload:
    """Unpickling this creates a directory: a stand-in for arbitrary code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_untrusted_pickles_are_refused(tmp_path: Path, trained_run: Path) -> None:
    marker = tmp_path / "code-was-executed"
    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": EngineTestDenoiser().state_dict(), "payload": _Payload(marker)}, evil)

    with pytest.raises(DataError, match="refusing to unpickle"):
        load_weights(EngineTestDenoiser(), evil)
    with pytest.raises(DataError, match="refusing to unpickle"):  # inside a run's work_dir, but not listed
        (trained_run / "evil.pth").write_bytes(evil.read_bytes())
        load_weights(EngineTestDenoiser(), trained_run / "evil.pth")
    # A forged trust file beside it (the sha256 of the pickle, as older releases trusted) changes nothing.
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / "iter_8.pth").write_bytes(evil.read_bytes())
    (forged / "trusted_checkpoints.json").write_text(
        json.dumps({"iter_8.pth": hashlib.sha256(evil.read_bytes()).hexdigest()})
    )
    with pytest.raises(DataError, match="refusing to unpickle"):
        load_checkpoint_file(forged / "iter_8.pth")
    with pytest.raises(DataError, match="refusing to unpickle"):
        build_runner(tiny_config(8), work_dir=forged, resume=True, progress=False).train()
    with pytest.raises(DataError, match="remote weights are not fetched"):
        build_runner(tiny_config(8, load_from="http://127.0.0.1:9/w.pth"), work_dir=tmp_path / "r", progress=False)
    with pytest.raises(DataError, match="refusing to unpickle"):
        build_runner(tiny_config(8), work_dir=tmp_path / "wd", resume=evil, progress=False).train()
    assert not marker.exists()
    with pytest.raises(DataError, match="not found"):
        build_runner(tiny_config(8), work_dir=tmp_path / "wd", resume=tmp_path / "missing.pth")


# --------------------------------------------------------------------------------------------- CPU DDP
def test_two_process_cpu_training(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}  # a CPU (gloo) run on any machine
    result = subprocess.run(
        [*command, str(HERE / "ddp_train.py"), str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and "ddp-script-started" not in output:
        pytest.skip(f"torchrun could not start 2 CPU workers here:\n{output[-2000:]}")
    assert result.returncode == 0, output[-4000:]
    for stage in ("first", "resumed"):
        rank0 = torch.load(tmp_path / f"rank0_{stage}.pth", weights_only=True)
        rank1 = torch.load(tmp_path / f"rank1_{stage}.pth", weights_only=True)
        assert_same(rank0, rank1, stage)
    assert "resumed at iteration 6/8" in output
    first = torch.load(tmp_path / "rank0_first.pth", weights_only=True)
    assert not torch.equal(first["net.0.weight"], rank0["net.0.weight"])


# ------------------------------------------------------------------------------------------------ configs
@pytest.fixture
def config_package(tmp_path: Path, monkeypatch) -> str:
    """An importable package ``cfgpkg`` shipping configs ``base`` and ``tiny`` (which inherits base)."""
    configs = tmp_path / "cfgpkg" / "configs"
    configs.mkdir(parents=True)
    (tmp_path / "cfgpkg" / "__init__.py").write_text("")
    (configs / "__init__.py").write_text("")
    (configs / "base.py").write_text("optim_wrapper = dict(optimizer=dict(type='AdamW', lr=1e-3))\n")
    (configs / "tiny.py").write_text("_base_ = ['./base.py']\ntrain_cfg = dict(by_epoch=False, max_iters=20)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "cfgpkg"


def test_load_config_by_name_and_path(config_package: str, tmp_path: Path) -> None:
    by_name = load_config("tiny", package=config_package)
    assert by_name.train_cfg.max_iters == 20 and by_name.optim_wrapper.optimizer.lr == 1e-3
    assert load_config("tiny.py", package=config_package).to_dict() == by_name.to_dict()
    by_path = load_config(tmp_path / "cfgpkg" / "configs" / "tiny.py")
    assert by_path.to_dict() == by_name.to_dict()

    options = ["train_cfg.max_iters=7", "optim_wrapper.optimizer.lr=0.5", "extra=[1,(2,3)]", "flag=true"]
    cfg = load_config("tiny", package=config_package, cfg_options=options)
    assert (cfg.train_cfg.max_iters, cfg.optim_wrapper.optimizer.lr) == (7, 0.5)
    assert cfg.extra == [1, (2, 3)] and cfg.flag is True
    cfg = load_config("tiny", package=config_package, cfg_options={"train_cfg.max_iters": 3})
    assert cfg.train_cfg.max_iters == 3 and cfg.train_cfg.by_epoch is False


def test_load_config_errors(config_package: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="shipped in cfgpkg: base, tiny") as error:
        load_config("nope", package=config_package)
    assert error.value.path == Path("nope")
    with pytest.raises(DataError, match="no such config"):
        load_config(tmp_path / "missing.py")
    with pytest.raises(DataError, match="key=value"):
        load_config("tiny", package=config_package, cfg_options=["max_iters"])
    broken = tmp_path / "broken.py"
    broken.write_text("a = 1\nb = (\n")
    with pytest.raises(DataError, match="invalid config"):
        load_config(broken)


def test_time_limit_stops_training_and_writes_weights(tmp_path: Path, monkeypatch) -> None:
    clock = iter(range(1000))  # a fake clock: one second per call, so the stop iteration is deterministic
    monkeypatch.setattr(TimeLimitHook, "clock", staticmethod(lambda: float(next(clock))))
    train(tiny_config(10_000, time_limit=4, checkpoint_interval=10_000), work_dir=tmp_path, progress=False)
    weights = torch.load(tmp_path / "final_weights.pth", weights_only=True)
    assert weights["meta"]["iter"] == 4  # four ticks after before_train: stopped after the 4th iteration, not at 10000
    assert (tmp_path / "iter_4.pth").is_file()  # the last iteration is checkpointed, so --resume can continue


# ------------------------------------------------------------------------------------- damaged checkpoints
def test_resume_passes_over_a_damaged_newest_checkpoint_and_removes_temporaries(tmp_path: Path, capsys) -> None:
    cfg = tiny_config(12, checkpoint_interval=4)
    reference = train(cfg, work_dir=tmp_path / "reference", progress=False)
    run = tmp_path / "run"
    interrupted = build_runner(cfg, work_dir=run, progress=False)
    interrupted.register_hook(_InterruptAt(10))
    with pytest.raises(_Interrupted):
        interrupted.train()
    every = [torch.load(run / f"iter_{i}.pth", weights_only=True) for i in (4, 8)]  # weights-only, no trust file
    assert [c["meta"]["iter"] for c in every] == [4, 8]
    newest = run / "iter_8.pth"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # killed mid-copy, say
    (run / ".iter_12.pth.tmp4242").write_bytes(b"half a checkpoint")
    assert latest_checkpoint(run) == run / "iter_4.pth"
    assert "damaged checkpoint" in capsys.readouterr().err
    with pytest.raises(DataError, match="not a readable torch checkpoint"):
        load_checkpoint_file(newest)
    resumed = build_runner(cfg, work_dir=run, resume=True, progress=False)
    assert not (run / ".iter_12.pth.tmp4242").exists()
    resumed.train()
    assert_same(resumed.model.state_dict(), reference.state_dict())


# ------------------------------------------------------------------------------------------- bad configs
def test_yaml_and_json_configs_are_data_never_code(tmp_path: Path) -> None:
    marker = tmp_path / "code-was-executed"
    evil = tmp_path / "evil.yaml"
    evil.write_text(f"a: !!python/object/apply:os.makedirs ['{marker}']\n")
    with pytest.raises(DataError, match="invalid YAML config") as error:
        load_config(evil)
    assert error.value.path == evil and not marker.exists()
    good = tmp_path / "good.yaml"
    good.write_text("train_cfg:\n  max_iters: 5\nmodel:\n  type: EngineTestDenoiser\n")
    assert load_config(good, cfg_options=["train_cfg.max_iters=7"]).train_cfg.max_iters == 7
    (tmp_path / "c.json").write_text('{"model": {"type": "EngineTestDenoiser"}}')
    assert load_config(tmp_path / "c.json").model.type == "EngineTestDenoiser"


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("c.txt", "a = 1\n", "a config is a .py, .yaml, .yml, .json file"),
        ("c.json", "{oops", "invalid JSON config"),
        ("c.json", "[1, 2]", "a config holds a mapping"),
        ("c.py", "raise RuntimeError('boom')\n", "the config raised RuntimeError: boom"),
        ("c.py", b"a = '\xff\xfe'\n", "not UTF-8 text"),
    ],
)
def test_bad_config_files_are_one_data_error(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=re.escape(message)) as error:
        load_config(path)
    assert error.value.path == path and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(train_cfg=dict(max_iters="abc")), "train_cfg.max_iters must be an integer >= 0, got 'abc'"),
        (dict(checkpoint_interval=-4), "checkpoint_interval must be an integer >= 1"),
        (dict(log_interval=0), "log_interval must be an integer >= 1"),
        (dict(time_limit="soon"), "time_limit must be a positive number"),
    ],
)
def test_bad_engine_values_are_one_data_error(tmp_path: Path, options: dict, message: str) -> None:
    cfg = tiny_config(4)
    for key, value in options.items():
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) else value
    with pytest.raises(DataError, match=re.escape(message)):
        build_runner(cfg, work_dir=tmp_path, progress=False)


def test_launcher_pytorch_outside_torchrun_is_a_data_error(tmp_path: Path, monkeypatch) -> None:
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(DataError, match="runs under torchrun"):
        build_runner(tiny_config(4), work_dir=tmp_path, launcher="pytorch", progress=False)


def test_a_non_finite_loss_stops_training_before_anything_is_saved(tmp_path: Path) -> None:
    cfg = tiny_config(8, checkpoint_interval=2)
    cfg["train_dataloader"]["dataset"]["size"] = 40
    runner = build_runner(cfg, work_dir=tmp_path, progress=False)
    runner.train_dataloader.dataset.data[:] = 1e30  # overflows in the squared error
    with pytest.raises(DataError, match="training stopped: loss is (nan|inf) at iteration 1"):
        runner.train()
    assert not list(tmp_path.glob("*.pth"))


def test_misspelt_registry_arguments_and_types_are_one_data_error(tmp_path: Path) -> None:
    cfg = tiny_config(4)
    cfg["model"] = dict(type="EngineTestDenoiser", hiden=8)
    with pytest.raises(
        DataError, match="unknown key 'hiden' in the arguments of EngineTestDenoiser; did you mean 'hidden'"
    ):
        build_runner(cfg, work_dir=tmp_path / "a", progress=False)
    cfg = tiny_config(4)
    cfg["train_dataloader"]["dataset"]["type"] = "EngineTestVector"  # built lazily, when training starts
    with pytest.raises(DataError, match="type 'EngineTestVector' is not registered"):
        train(cfg, work_dir=tmp_path / "b", progress=False)


def test_a_partial_load_from_is_summarised_by_module():
    from diffusekit.core.checkpoint import summarize_partial_load

    printed = (
        "The model and loaded state dict do not match exactly\n\n"
        "unexpected key in source state_dict: old.weight\n\n"
        "missing keys in source state_dict: denoiser.a.weight, denoiser.b.bias, compressor.encoder.0.weight\n"
    )
    assert summarize_partial_load(printed) == (
        "load_from: the weights fit the model in part\n"
        "  tensors in the file but not in the model (ignored): old (1)\n"
        "  tensors not in the file (they start from their initialisation): denoiser (2), compressor (1)"
    )
    assert summarize_partial_load("plain text\n") == "plain text"
