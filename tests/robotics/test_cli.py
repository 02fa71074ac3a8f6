"""`diffusekit robotics ...` end to end on the point-mass task: collect, train (validation, curves, best checkpoint),
evaluate (every inference mode from one checkpoint, NFE per control step, the figure), a rollout GIF, the demo, and
one-line errors with exit code 2 (bad files, bad counts at parse time, misspelt config keys)."""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np
import pytest

from diffusekit.core.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "robotics" / "configs"

TINY = ["train_cfg.max_iters=6", "train_cfg.val_interval=3", "checkpoint_interval=3", "train_dataloader.batch_size=8"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    out = tmp_path_factory.mktemp("pm")
    assert main(["robotics", "collect", "--task", "pointmass", "--episodes", "6", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    work = tmp_path_factory.mktemp("pm_work")
    args = ["robotics", "train", "--task", "pointmass", "--data", str(data), "--work-dir", str(work)]
    assert main([*args, "--cfg-options", *TINY]) == 0
    return work


def test_training_validates_on_held_out_episodes_and_keeps_the_best(trained):
    curves = json.loads((trained / "curves.json").read_text())
    assert (trained / "curves.png").stat().st_size > 1000
    assert list(glob.glob(str(trained / "best_val_action_mse_iter_*.pth")))
    assert "val/action_mse" in json.dumps(curves)


def test_evaluate_every_mode_from_one_checkpoint(trained, tmp_path, capsys):
    args = ["robotics", "evaluate", "--task", "pointmass", "--checkpoint", str(trained), "--episodes", "1"]
    assert main([*args, "--rti-steps", "3", "1", "0", "--rti-mode", "both", "--out", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    labels = [r["label"] for r in rows]
    assert labels == ["DDPM-100", "DDIM-10", "RTI [3, 1, 0] consistent", "RTI [3, 1, 0] official"]
    rti = rows[2]
    assert rti["nfe_per_step"] == 3 and rti["first_call_nfe"] == 100
    assert rows[0]["nfe_per_step"] == pytest.approx(100 / 8, rel=0.2)  # one chunk of 8 actions per 100 calls
    assert all(0 <= r["success_rate"] <= 1 and np.isfinite(r["ms_per_step"]) for r in rows)
    assert (tmp_path / "report.md").read_text().count("|") > 10
    assert json.loads((tmp_path / "metrics.json").read_text()) == rows
    assert (tmp_path / "evaluation.png").stat().st_size > 1000


def test_evaluate_defaults_its_outputs_beside_the_checkpoint(trained, capsys):
    args = ["robotics", "evaluate", "--task", "pointmass", "--checkpoint", str(trained), "--episodes", "1"]
    assert main([*args, "--modes", "ddim", "--steps", "4", "--device", "cpu"]) == 0
    assert "DDIM-4" in capsys.readouterr().out
    assert (trained / "evaluate" / "evaluation.png").is_file()


@pytest.mark.parametrize(
    "flags",
    [["--episodes", "0"], ["--steps", "0"], ["--rti-steps", "-1"], ["--seed", "-3"], ["--episodes", "two"]],
)
def test_counts_are_checked_at_parse_time(flags, capsys):
    args = ["robotics", "evaluate", "--task", "pointmass", "--checkpoint", "nowhere"]
    with pytest.raises(SystemExit) as exit_:
        main([*args, *flags])
    assert exit_.value.code == 2 and flags[0] in capsys.readouterr().err


def test_rti_steps_must_descend(trained, capsys):
    args = ["robotics", "evaluate", "--task", "pointmass", "--checkpoint", str(trained), "--rti-steps", "0", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "--rti-steps must strictly descend" in err and len(err.splitlines()) == 1


def test_a_misspelt_evaluate_key_exits_2_naming_key_file_and_closest(tmp_path, capsys):
    config = tmp_path / "my_pointmass.py"
    config.write_text(f'_base_ = ["{CONFIGS / "dp_pointmass_tiny.py"}"]\nevaluate = dict(episode=3)\n')
    args = ["robotics", "evaluate", "--task", "pointmass", "--config", str(config), "--checkpoint", "nowhere"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "'episode'" in err and "my_pointmass.py" in err and "did you mean 'episodes'" in err


def test_rollout_writes_a_gif(trained, tmp_path):
    gif = tmp_path / "episode.gif"
    args = ["robotics", "rollout", "--task", "pointmass", "--checkpoint", str(trained), "--out", str(gif)]
    assert main([*args, "--seed", "3", "--sampler", "ddim", "--steps", "5"]) == 0
    from PIL import Image

    with Image.open(gif) as image:
        assert image.n_frames > 1


def test_a_broken_replay_buffer_exits_2_naming_the_file(data, tmp_path, capsys):
    with np.load(data / "pointmass_replay.npz") as f:
        arrays = dict(f)
    arrays["meta/episode_ends"] = arrays["meta/episode_ends"][::-1].copy()  # not increasing
    broken = tmp_path / "pointmass_replay.npz"
    np.savez(broken, **arrays)
    args = ["robotics", "train", "--task", "pointmass", "--data", str(broken), "--work-dir", str(tmp_path / "w")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "pointmass_replay.npz" in err and "episode" in err and len(err.splitlines()) == 1


def test_a_checkpoint_for_another_action_space_exits_2(trained, capsys):
    pytest.importorskip("gym_pusht")
    args = ["robotics", "evaluate", "--task", "pusht", "--checkpoint", str(trained), "--episodes", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "final_weights.pth" in err and "action dims" in err


def test_demo_quick(tmp_path, capsys):
    assert main(["robotics", "demo", "--out", str(tmp_path), "--quick", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["iterations"] == 60 and metrics["ddpm-100_nfe_per_step"] > 10
    assert [k for k in metrics if k.startswith("rti_") and k.endswith("_nfe_per_step")]
    assert (tmp_path / "robotics" / "rollout_rti.gif").is_file()
    assert (tmp_path / "robotics" / "evaluation.png").is_file()
    assert "DDPM-100" in (tmp_path / "report.md").read_text()
