"""Bad input shared by every domain's ``train`` and ``evaluate``: configs, checkpoints, work dirs and launchers.

Each case runs through the real CLI of every installed domain (the readers' own cases are in
tests/<domain>/test_bad_input.py). The security cases plant a payload that would create a marker file if any code
from the shared file ran, and check that the marker does not exist afterwards.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from tests.bad_input import check_case

# domain -> (the command prefix, a tiny shipped config, the command that writes its synthetic data after --out)
COMMANDS = {
    "timeseries": (["timeseries"], "imdiffusion_tiny", ["synth"]),
    "medical": (["medical"], "echo_dnd_tiny", ["synth", "--layout", "camus"]),
    "diffpose": (["pose", "diffpose"], "diffpose_tiny", ["synth"]),
    "ddhpose": (["pose", "ddhpose"], "ddhpose_tiny", ["synth"]),
    "robotics": (["robotics"], "dp_pointmass_tiny", ["collect", "--task", "pointmass", "--episodes", "3"]),
}


class Payload:
    """Unpickling this runs ``touch <marker>``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _forged_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "meta": {}, "payload": Payload(marker)}, path)
    return path


def _train(domain: str, config: str, data: Path, work_dir: Path, *options: str) -> list[str]:
    prefix = COMMANDS[domain][0]
    argv = [*prefix, "train", "--config", config, "--data", str(data), "--work-dir", str(work_dir)]
    return argv + (["--cfg-options", *options] if options else [])


def _evaluate(domain: str, config: str, data: Path, checkpoint: Path) -> list[str]:
    prefix = COMMANDS[domain][0]
    inputs = [] if domain == "robotics" else ["--data", str(data)]  # robotics evaluates by rollouts: no data
    return [*prefix, "evaluate", "--config", config, *inputs, "--checkpoint", str(checkpoint)]


def _config_files(root: Path, shipped: str, marker: Path) -> dict[str, tuple[Path, str]]:
    """Broken configs: name -> (file, what the one line must name besides the file)."""
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "yaml_code": ("evil.yaml", f'model: !!python/object/apply:os.system ["touch {marker}"]\n', "evil.yaml"),
        "txt_suffix": ("config.txt", "model = dict()\n", "config.txt"),
        "invalid_json": ("config.json", '{"model": {"type": "X",}', "config.json"),
        "non_utf8": ("latin1.py", b"# caf\xe9\nmodel = dict(type='X')\n", "latin1.py"),
        "raises": ("raises.py", "raise RuntimeError('broken on purpose')\n", "raises.py"),
        "json_list": ("list.json", "[1, 2, 3]", "list.json"),
    }
    out = {}
    for case, (name, content, named) in files.items():
        path = root / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        out[case] = (path, named)
    return out


# (case id, cfg-options, what the line names)
BAD_OPTIONS = [
    ("max_iters_text", ["train_cfg.max_iters=many"], "max_iters"),
    ("max_iters_negative", ["train_cfg.max_iters=-5"], "max_iters"),
    ("val_interval_zero", ["train_cfg.val_interval=0"], "val_interval"),
    ("remote_load_from", ["load_from=http://127.0.0.1:9/weights.pth"], "load_from"),
    ("misspelt_model_key", ["model.no_such_setting=3"], "no_such_setting"),
    ("unknown_model_type", ["model.type=NoSuchModel"], "NoSuchModel"),
    ("no_equals", ["max_iters"], "max_iters"),
]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bad_input_shared")


@pytest.fixture(scope="module")
def data(root) -> dict[str, Path]:
    """Each domain's small synthetic dataset, written once (the cases fail before training reads much of it)."""
    from diffusekit.core.cli import main

    folders = {}
    for domain, (prefix, _, synth) in COMMANDS.items():
        folders[domain] = root / "data" / domain
        assert main([*prefix, synth[0], "--out", str(folders[domain]), *synth[1:]]) == 0
    return folders


@pytest.mark.parametrize("domain", COMMANDS)
@pytest.mark.parametrize("case", ["yaml_code", "txt_suffix", "invalid_json", "non_utf8", "raises", "json_list"])
def test_broken_config_is_one_line(domain, case, root, data, capfd):
    marker = root / f"ran_{domain}_{case}"
    path, named = _config_files(root / domain / case, COMMANDS[domain][1], marker)[case]
    work = root / domain / case / "work"
    check_case(_train(domain, str(path), data[domain], work), capfd, names=(named,), untouched=(root / domain / case,))
    assert not marker.exists(), "the config's code ran"
    assert not work.exists()


@pytest.mark.parametrize("domain", COMMANDS)
@pytest.mark.parametrize("case,options,named", BAD_OPTIONS, ids=[c[0] for c in BAD_OPTIONS])
def test_bad_cfg_options_are_one_line(domain, case, options, named, root, data, capfd):
    work = root / domain / f"opt_{case}"
    check_case(_train(domain, COMMANDS[domain][1], data[domain], work, *options), capfd, names=(named,))
    assert not any(work.glob("*.pth")) if work.exists() else True


@pytest.mark.parametrize("domain", COMMANDS)
def test_launcher_pytorch_outside_torchrun(domain, root, data, capfd, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(key, raising=False)
    argv = _train(domain, COMMANDS[domain][1], data[domain], root / domain / "launcher") + ["--launcher", "pytorch"]
    check_case(argv, capfd, names=("torchrun",))


@pytest.mark.parametrize("domain", COMMANDS)
def test_work_dir_that_is_a_file_or_holds_a_run(domain, root, data, capfd):
    as_file = root / domain / "work_file"
    as_file.parent.mkdir(parents=True, exist_ok=True)
    as_file.write_text("not a folder")
    check_case(
        _train(domain, COMMANDS[domain][1], data[domain], as_file), capfd, names=(str(as_file),), untouched=(as_file,)
    )
    earlier = root / domain / "earlier_run"
    run = earlier / "machine-1-1" if domain == "timeseries" else earlier  # timeseries: one run per entity
    run.mkdir(parents=True, exist_ok=True)
    (run / "iter_10.pth").write_bytes(b"an earlier run's checkpoint")
    line = check_case(
        _train(domain, COMMANDS[domain][1], data[domain], earlier), capfd, names=(str(earlier),), untouched=(earlier,)
    )
    assert "--resume" in line


@pytest.mark.parametrize("domain", COMMANDS)
def test_forged_checkpoint_in_a_shared_work_dir_runs_nothing(domain, root, data, capfd):
    """A copied work dir with a pickled payload (and the old trust file beside it): --resume and evaluate refuse it."""
    shared = root / domain / "shared_work_dir"
    shared.mkdir(parents=True, exist_ok=True)
    marker = root / f"ran_{domain}_forged"
    forged = _forged_checkpoint(shared / "iter_10.pth", marker)
    _forged_checkpoint(shared / "final_weights.pth", marker)
    (shared / "trusted_checkpoints.json").write_text(json.dumps({"iter_10.pth": "0" * 64}))
    config = COMMANDS[domain][1]
    check_case(
        _evaluate(domain, config, data[domain], shared), capfd, names=("final_weights.pth",), untouched=(shared,)
    )
    check_case(_evaluate(domain, config, data[domain], forged), capfd, names=(str(forged),), untouched=(shared,))
    assert not marker.exists(), "the checkpoint's code ran"


@pytest.mark.parametrize("domain", COMMANDS)
@pytest.mark.parametrize("case", ["truncated", "text", "empty", "zip_without_weights", "directory_without_weights"])
def test_corrupt_checkpoint_is_one_line(domain, case, root, data, capfd):
    folder = root / domain / f"ckpt_{case}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "weights.pth"
    if case == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif case == "text":
        path.write_text("these are not weights\n")
    elif case == "empty":
        path.write_bytes(b"")
    elif case == "zip_without_weights":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "hello")
    else:
        path = folder
    check_case(
        _evaluate(domain, COMMANDS[domain][1], data[domain], path), capfd, names=(str(path),), untouched=(folder,)
    )


@pytest.mark.parametrize("domain", COMMANDS)
def test_weights_of_another_model_name_the_first_mismatch(domain, root, data, capfd):
    path = root / domain / "other_model.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"some.layer.weight": torch.zeros(3, 3)}}, path)
    line = check_case(_evaluate(domain, COMMANDS[domain][1], data[domain], path), capfd, names=(str(path),))
    assert len(line) < 400, "a mismatch is one short line, not every key name"


def test_plain_pickle_is_not_loaded(root, data, capfd):
    marker = root / "ran_plain_pickle"
    path = root / "plain.pkl"
    path.write_bytes(pickle.dumps(Payload(marker)))
    check_case(_evaluate("timeseries", "imdiffusion_tiny", data["timeseries"], path), capfd, names=(str(path),))
    assert not marker.exists()
