"""The shared command-line layer: argument checks, devices, outputs, config-block checks, curves and best
checkpoints."""

import argparse
import json
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from diffusekit.core import commands
from diffusekit.core.config_checks import check_kwargs, config_block
from diffusekit.core.engine import train
from diffusekit.core.errors import DataError

from .engine_fixtures import tiny_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t")
    commands.add_sampling_args(parser, sampler=commands.SAMPLERS)
    commands.add_runtime_args(parser)
    commands.add_seed_arg(parser)
    parser.add_argument("--box", type=commands.float_list(4))
    return parser


@pytest.mark.parametrize(
    "argv",
    [
        ["--steps", "0"],
        ["--steps", "-3"],
        ["--samples", "two"],
        ["--seed", "-1"],
        ["--threads", "0"],
        ["--box", "1,2,nan,4"],
        ["--box", "1,2,3"],
        ["--box", "1,2,inf,4"],
        ["--sampler", "euler"],
        ["--device", "tpu"],
    ],
)
def test_bad_counts_and_numbers_are_argparse_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("t: error: argument --")


def test_good_arguments_parse():
    args = _parser().parse_args(["--steps", "5", "--samples", "3", "--box", "1,2,3.5,4", "--sampler", "ddim"])
    assert (args.steps, args.samples, args.box, args.sampler, args.device, args.seed) == (
        5,
        3,
        (1.0, 2.0, 3.5, 4.0),
        "ddim",
        "auto",
        0,
    )


def test_resolve_device():
    assert commands.resolve_device("cpu") == torch.device("cpu")
    assert commands.resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(DataError, match="no CUDA device"):
            commands.resolve_device("cuda")


def test_report_writes_metrics_and_prints_json_last(tmp_path, capsys):
    args = argparse.Namespace(out=str(tmp_path / "o"), json=True)
    out = commands.report(args, {"dice": 0.5, "hd95": float("nan")}, table="a table")
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0] == "a table" and json.loads(printed[-1]) == {"dice": 0.5, "hd95": None}
    assert json.loads((out / "metrics.json").read_text()) == {"dice": 0.5, "hd95": None}


def test_output_dir_refuses_an_existing_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(DataError, match="existing file"):
        commands.output_dir(tmp_path / "f")


def test_reject_flags_names_the_flag():
    args = argparse.Namespace(box=(1, 2, 3, 4), width=None)
    with pytest.raises(DataError, match="--box only applies"):
        commands.reject_flags(args, {"box": "only applies to DiffPose", "width": "x"})


def test_config_block_names_key_file_and_closest(tmp_path):
    path = tmp_path / "c.py"
    path.write_text("evaluate = dict(stpes=10)\n")
    cfg = Config.fromfile(str(path))
    with pytest.raises(DataError) as error:
        config_block(cfg, "evaluate", {"steps": 5, "samples": 1})
    message = str(error.value)
    assert str(path) in message and "'stpes'" in message and "did you mean 'steps'" in message
    assert config_block({"evaluate": {"steps": 9}}, "evaluate", {"steps": 5, "samples": 1}) == {
        "steps": 9,
        "samples": 1,
    }
    with pytest.raises(DataError, match="needs 'split'"):
        config_block({}, "evaluate", {"split": None}, required=("split",))
    with pytest.raises(DataError, match="must be a dict"):
        config_block({"evaluate": [1]}, "evaluate", {})


def test_check_kwargs():
    def forward(x, steps=10, *, guidance=1.0):
        return x

    check_kwargs(forward, {"steps": 3, "guidance": 2.0}, "forward")
    with pytest.raises(DataError, match="unknown key 'guidence' in model.forward; did you mean 'guidance'"):
        check_kwargs(forward, {"guidence": 2.0}, "model.forward", "cfg.py")
    check_kwargs(lambda x, **kw: x, {"anything": 1}, "forward")  # **kwargs takes every name


def test_validation_keeps_the_best_checkpoint_and_writes_curves(tmp_path: Path):
    cfg = tiny_config(max_iters=12, validate=True, best_metric=dict(key="test/mean_prediction", rule="less"))
    train(cfg, work_dir=tmp_path, progress=False)
    best = sorted(p.name for p in tmp_path.glob("best_*.pth"))
    assert len(best) == 1 and best[0].startswith("best_test_mean_prediction_iter_")
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert [i for i, _ in curves["val"]] == [4, 8, 12]
    assert curves["loss"] and all(v > 0 for _, v in curves["loss"])
    values = [m["test/mean_prediction"] for _, m in curves["val"]]
    assert best[0] == f"best_test_mean_prediction_iter_{4 * (values.index(min(values)) + 1)}.pth"
    assert (tmp_path / "curves.png").stat().st_size > 5_000
    # resuming continues from the newest regular checkpoint, never from the best copy
    from diffusekit.core.checkpoint import latest_checkpoint

    assert latest_checkpoint(tmp_path).name == "iter_12.pth"


def test_a_weights_mismatch_is_one_line_with_the_first_tensor_and_both_shapes(tmp_path: Path):
    from torch import nn

    from diffusekit.core.checkpoint import load_weights, save_weights

    save_weights(tmp_path / "w.pth", nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)).state_dict())
    with pytest.raises(DataError) as error:
        load_weights(nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 2)), tmp_path / "w.pth")
    message = str(error.value)
    assert "\n" not in message and len(message) < 300
    assert (
        "'0.weight' is (8, 4) in the file, (16, 4) in the model (2 more: 3 shapes, 0 missing, 0 unexpected)" in message
    )
    with pytest.raises(DataError, match="the file has no '2.weight' \\(1 more"):
        load_weights(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2), nn.Linear(2, 2)), tmp_path / "w.pth")
