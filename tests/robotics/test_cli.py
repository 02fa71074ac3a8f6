"""`diffusekit robotics ...` end to end on the point-mass task: collect, train, evaluate (every inference mode from
one checkpoint, NFE per control step), a rollout GIF, the demo, and one-line errors with exit code 2."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diffusekit.core.cli import main

TINY = ["train_cfg.max_iters=6", "checkpoint_interval=3", "train_dataloader.batch_size=8"]


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


def test_rollout_writes_a_gif(trained, tmp_path):
    gif = tmp_path / "episode.gif"
    args = ["robotics", "rollout", "--task", "pointmass", "--checkpoint", str(trained), "--out", str(gif)]
    assert main([*args, "--seed", "3"]) == 0
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
    assert metrics["iterations"] == 60 and metrics["rti_2_1_0_consistent_nfe_per_step"] == 3
    assert (tmp_path / "robotics" / "rollout_rti.gif").is_file()
    assert "DDPM-100" in (tmp_path / "report.md").read_text()
