"""``diffusekit perception3d train|evaluate|predict`` end to end on a tiny dataset and network, and the bad-input
cases of the perception3d command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from diffusekit.core.cli import main
from tests.bad_input import check_case

TINY = [
    "model.pillar_channels=8",
    "model.backbone.filters=(8,8,16)",
    "model.backbone.upsample_filters=8",
    "model.backbone.out_channels=16",
    "train_cfg.max_iters=3",
    "train_cfg.val_interval=3",
    "checkpoint_interval=3",
    "log_interval=1",
]
CODIFF = ["model.denoiser.channels=(8,16)", "model.denoiser.attention_levels=()", "model.denoiser.norm_groups=4"]


def _write(root: Path) -> Path:
    from diffusekit.perception3d.synthetic import write_scenario

    for index, split in enumerate(("train", "validate", "test")):
        write_scenario(
            root / split, seed=[3, index], frames=2, infrastructure=index != 1, name=f"2021_08_2{index}_10_00_00",
            azimuth_resolution=2.0, compressed_files=0,
        )  # fmt: skip
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("p3_cli")
    data = _write(root / "data")
    works = {}
    for name, extra in (("attfuse_tiny", []), ("pointpillar_tiny", [])):
        work = root / name
        assert main(["perception3d", "train", "--config", name, "--data", str(data), "--work-dir", str(work),
                     "--cfg-options", *TINY, *extra]) == 0  # fmt: skip
        works[name] = work
    work = root / "codiff_tiny"
    options = [*TINY, *CODIFF, f"load_from={works['attfuse_tiny'] / 'final_weights.pth'}"]
    argv = ["perception3d", "train", "--config", "codiff_tiny", "--data", str(data), "--work-dir", str(work)]
    assert main([*argv, "--cfg-options", *options]) == 0
    works["codiff_tiny"] = work
    return {"root": root, "data": data, **works}


def _options(config: str) -> list[str]:
    return TINY + (CODIFF if config == "codiff_tiny" else [])


def _evaluate(trained, config: str, *extra: str) -> list[str]:
    return ["perception3d", "evaluate", "--config", config, "--data", str(trained["data"]), "--checkpoint",
            str(trained[config]), "--cfg-options", *_options(config), *extra]  # fmt: skip


def test_train_validates_and_stage_two_starts_from_the_detector(trained):
    import torch

    curves = json.loads((trained["attfuse_tiny"] / "curves.json").read_text())
    assert "det/ap_50" in curves["val"][-1][1]
    detector = torch.load(trained["attfuse_tiny"] / "final_weights.pth", weights_only=True)["state_dict"]
    codiff = torch.load(trained["codiff_tiny"] / "final_weights.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(detector[k], codiff[k]) for k in detector)  # frozen in the diffusion stage
    assert not torch.equal(codiff["latent_std"], torch.ones_like(codiff["latent_std"]))


@pytest.mark.parametrize("config", ["codiff_tiny", "pointpillar_tiny"])
def test_evaluate_sweeps_noise_and_delay_in_both_sorts(config, trained, capsys):
    out = trained["root"] / f"eval_{config}"
    extra = ["--fusion", "late"] if config == "pointpillar_tiny" else ["--steps", "2"]
    argv = _evaluate(trained, config, "--noise", "0", "0.4", "--delay", "0", "1", "--json", "--out", str(out), *extra)
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads(printed.strip().splitlines()[-1])
    assert "detection sort: frame" in printed
    assert [(r["noise"], r["delay"]) for r in summary["results"]] == [(0.0, 0), (0.4, 0), (0.0, 1), (0.4, 1)]
    for record in summary["results"]:
        for key in ("ap_30", "ap_50", "ap_70", "ap_50_global", "ap_70_global"):
            assert 0.0 <= record[key] <= 1.0
        assert record["frames"] == 2 and record["gt"] > 0 and record["frames_per_second"] > 0
    assert summary["results"][0]["fusion"] == ("late" if config == "pointpillar_tiny" else "attention")
    assert (out / "ap_vs_noise_delay0.png").is_file() and (out / "metrics.json").is_file()


def test_predict_writes_boxes_and_figures(trained, capsys):
    scenario = next((trained["data"] / "test").iterdir())
    out = trained["root"] / "pred"
    argv = ["perception3d", "predict", "--config", "codiff_tiny", "--checkpoint", str(trained["codiff_tiny"]),
            "--cfg-options", *_options("codiff_tiny"), "--input", str(scenario), "--out", str(out),
            "--figures", "1", "--export"]  # fmt: skip
    assert main(argv) == 0
    frames = sorted((out / scenario.name).glob("*.json"))
    assert len(frames) == 2 and len(list((out / scenario.name).glob("*_bev.png"))) == 1
    record = json.loads(frames[0].read_text())
    exported = sorted(p.name for p in (out / scenario.name / f"{frames[0].stem}_3d").iterdir())
    assert "gt_boxes.ply" in exported and "det_boxes.ply" in exported
    assert sum(name.startswith("points_") for name in exported) == len(record["agents"])
    assert record["frame"] == frames[0].stem and record["agents"]
    for box in record["boxes"]:
        assert set(box) == {"x", "y", "z", "l", "w", "h", "yaw", "score"}


# ------------------------------------------------------------------------------------------------ bad input
def _broken_copy(trained, name: str) -> tuple[Path, Path]:
    """A copy of the test split (with the other splits) to break; returns (dataset root, first agent folder)."""
    root = trained["root"] / "bad" / name
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(trained["data"], root)
    scenario = next((root / "test").iterdir())
    agent = sorted(p for p in scenario.iterdir() if p.is_dir())[0]
    return root, agent


def _first(agent: Path, suffix: str) -> Path:
    return sorted(agent.glob(f"*{suffix}"))[0]


def _pcd_without_yaml(agent):
    path = _first(agent, ".yaml")
    path.unlink()
    return path.with_suffix(".pcd").name


def _yaml_without_pcd(agent):
    path = _first(agent, ".pcd")
    path.unlink()
    return path.with_suffix(".yaml").name


def _truncated_pcd(agent):
    path = _first(agent, ".pcd")
    path.write_bytes(path.read_bytes()[:-100])
    return path.name


def _unknown_pcd(agent):
    path = _first(agent, ".pcd")
    data = path.read_bytes().replace(b"DATA binary", b"DATA zipped")
    path.write_bytes(data)
    return path.name


def _no_lidar_pose(agent):
    import yaml

    path = _first(agent, ".yaml")
    params = yaml.safe_load(path.read_text())
    del params["lidar_pose"]
    path.write_text(yaml.safe_dump(params))
    return path.name


def _nan_points(agent):
    from diffusekit.perception3d.pcd import read_pcd, write_pcd

    path = _first(agent, ".pcd")
    write_pcd(path, read_pcd(path), data="ascii")  # the writer refuses NaN: put it in the text
    lines = path.read_text().splitlines(True)
    body = next(i for i, line in enumerate(lines) if line.startswith("DATA")) + 1
    lines[body + 3] = "nan 1.0 0.5 0\n"
    path.write_text("".join(lines))
    return path.name


def _empty_agent(agent):
    for path in list(agent.iterdir()):
        path.unlink()
    return agent.name


DATA_CASES = {
    "pcd_without_yaml": _pcd_without_yaml,
    "yaml_without_pcd": _yaml_without_pcd,
    "truncated_pcd": _truncated_pcd,
    "unknown_pcd_format": _unknown_pcd,
    "yaml_without_lidar_pose": _no_lidar_pose,
    "nan_points": _nan_points,
    "agent_without_frames": _empty_agent,
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_is_one_line(case, trained, capfd):
    root, agent = _broken_copy(trained, case)
    named = DATA_CASES[case](agent)
    argv = _evaluate({**trained, "data": root}, "attfuse_tiny", "--noise", "0")
    out = trained["root"] / "bad_out" / case
    check_case([*argv, "--out", str(out)], capfd, names=(named,), untouched=(root,))
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--noise", "-0.2"], "--noise"),
        (["--noise", "nan"], "--noise"),
        (["--fusion", "late"], "--fusion late"),
        (["--steps", "3"], "--steps"),
        (["--split", "nosuchsplit"], "nosuchsplit"),
    ],
)
def test_bad_evaluate_options_are_one_line(flags, named, trained, capfd):
    check_case(_evaluate(trained, "attfuse_tiny", *flags), capfd, names=(named,))


def test_predict_refuses_an_output_inside_the_scenario_and_a_missing_folder(trained, capfd):
    scenario = next((trained["data"] / "test").iterdir())
    base = ["perception3d", "predict", "--config", "attfuse_tiny", "--checkpoint", str(trained["attfuse_tiny"]),
            "--cfg-options", *TINY]  # fmt: skip
    check_case([*base, "--input", str(scenario), "--out", str(scenario / "out")], capfd, names=("--out",),
               untouched=(scenario,))  # fmt: skip
    missing = trained["root"] / "no_such_scenario"
    check_case([*base, "--input", str(missing), "--out", str(trained["root"] / "p")], capfd, names=(str(missing),))


def test_synth_refuses_to_overwrite(trained, capfd):
    check_case(["perception3d", "synth", "--out", str(trained["data"])], capfd, names=(str(trained["data"]),),
               untouched=(trained["data"],))  # fmt: skip
