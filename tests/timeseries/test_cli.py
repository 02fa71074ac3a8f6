"""``diffusekit timeseries`` end to end on small synthetic SMD-layout data (tiny config, a handful of iterations)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from diffusekit.core import cli
from diffusekit.core.engine import shipped_configs
from diffusekit.timeseries.cli import DOMAIN
from diffusekit.timeseries.synthetic import write_smd_dataset
from diffusekit.timeseries.workflow import METRIC_KEYS

FAST = [
    "--config",
    "imdiffusion_tiny",
    "--cfg-options",
    "train_cfg.max_iters=4",
    "train_cfg.val_interval=2",
    "model.num_steps=30",
    "detect.test_stride=32",
]


@pytest.fixture(autouse=True)
def _domain(monkeypatch):
    monkeypatch.setattr(cli, "installed_domains", lambda: [DOMAIN])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two 600-step machines; machine-1-1 trained for 4 iterations. Tiny tensors: one thread is faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("ts")
    data, work = root / "data", root / "work"
    write_smd_dataset(data, machines=2, length=600, per_kind=1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "installed_domains", lambda: [DOMAIN])
        args = ["timeseries", "train", *FAST[:2], "--data", str(data), "--work-dir", str(work), *FAST[2:]]
        code = cli.main([*args[:6], "--machines", "machine-1-1", *args[6:]])
    assert code == 0
    yield data, work
    torch.set_num_threads(threads)


def test_synth_writes_the_smd_layout(tmp_path, capsys):
    assert cli.main(["timeseries", "synth", "--out", str(tmp_path), "--seed", "3"]) == 0
    for folder in ("train", "test", "test_label", "interpretation_label"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir())[0] == "machine-1-1.txt"
    assert "3 entities" in capsys.readouterr().out


def test_train_writes_weights_detector_and_validation_curves(trained):
    _, work = trained
    machine = work / "machine-1-1"
    assert (machine / "final_weights.pth").is_file()
    curves = json.loads((machine / "curves.json").read_text())
    assert [it for it, _ in curves["val"]] == [2, 4]
    mse = [metrics["imputation/mse"] for _, metrics in curves["val"]]
    assert all(value > 0 for value in mse) and (machine / "curves.png").is_file()
    best = list(machine.glob("best_imputation_mse_iter_*.pth"))
    assert len(best) == 1 and best[0].name == f"best_imputation_mse_iter_{2 + 2 * (mse[1] < mse[0])}.pth"
    record = json.loads((machine / "detector.json").read_text())
    assert len(record["feature_names"]) == 38 and len(record["thresholds"]) == 10
    assert not (work / "machine-1-2").exists()


def test_evaluate_prints_table_and_json(trained, tmp_path, capsys):
    data, work = trained
    args = ["timeseries", "evaluate", *FAST[:2], "--data", str(data), "--checkpoint", str(work)]
    code = cli.main([*args, "--machines", "machine-1-1", "--out", str(tmp_path), "--json", *FAST[2:]])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert any(line.startswith("machine-1-1") for line in out)
    assert any("oracle protocol, test labels used" in line for line in out)
    result = json.loads(out[-1])
    for key in METRIC_KEYS:
        assert key in result and key in result["per_entity"]["machine-1-1"]
    assert 0.0 <= result["oracle_pa_f1"] <= 1.0 and 0.0 <= result["vus_pr"] <= 1.0
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "machine-1-1.png").is_file()


def test_synth_and_evaluate_in_the_pickle_and_tsb_ad_layouts(trained, tmp_path, capsys):
    """The machines of ``trained`` written again as SMD pickles and TSB-AD-M CSV (``formats``) score like the text
    files with the same weights; ``synth --layout`` writes both layouts too."""
    data, work = trained
    for layout, pattern in (("smd_pkl", "machine-1-1_test_label.pkl"), ("tsb_ad", "001_SMD_id_1_*.csv")):
        assert cli.main(["timeseries", "synth", "--out", str(tmp_path / layout), "--layout", layout]) == 0
        assert len(list((tmp_path / layout).glob(pattern))) == 1
    capsys.readouterr()
    again = tmp_path / "again"
    write_smd_dataset(again, machines=2, length=600, per_kind=1, formats=("pkl", "tsb_ad"))  # the fixture's data
    weights = str(work / "machine-1-1" / "final_weights.pth")
    (tsb_ad,) = again.glob("001_SMD_id_1_Facility_tr_600_1st_*.csv")
    results = {}
    for layout, source, machine in (
        ("smd", data, "machine-1-1"),
        ("smd_pkl", again, "machine-1-1"),
        ("tsb_ad", again, tsb_ad.stem),
    ):
        args = ["timeseries", "evaluate", *FAST[:2], "--data", str(source), "--checkpoint", weights, "--layout"]
        assert cli.main([*args, layout, "--machines", machine, "--json", *FAST[2:]]) == 0
        results[layout] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["per_entity"][machine]
    for key in ("f1", "pa_f1", "vus_pr", "r_auc_pr", "test_steps"):
        assert results["tsb_ad"][key] == results["smd"][key], key  # the same numbers parsed from the same text
    assert results["smd_pkl"]["test_steps"] == 600 and 0.0 <= results["smd_pkl"]["vus_pr"] <= 1.0


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_predict_on_a_csv_and_a_folder(trained, tmp_path, capsys):
    data, work = trained
    test = (data / "test" / "machine-1-1.txt").read_text().splitlines()
    header = "timestamp," + ",".join(f"feature_{k}" for k in range(38))
    (tmp_path / "new.csv").write_text("\n".join([header, *(f"{t},{line}" for t, line in enumerate(test))]) + "\n")
    checkpoint = str(work / "machine-1-1" / "final_weights.pth")
    sources = [(tmp_path / "new.csv", tmp_path / "csv_out"), (data, tmp_path / "dir_out")]
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pandas.read_csv(tmp_path / "new.csv").to_parquet(tmp_path / "new.parquet")
    sources.append((tmp_path / "new.parquet", tmp_path / "parquet_out"))
    for source, out in sources:
        args = ["timeseries", "predict", *FAST[:2], "--checkpoint", checkpoint, "--input", str(source)]
        assert cli.main([*args, "--out", str(out), *FAST[2:]]) == 0
        rows = _rows(out / "scores.csv")
        assert len(rows) == len(test) and list(rows[0]) == ["timestamp", "score", "label", "votes", "top_features"]
        assert len(rows[0]["top_features"].split(";")) == 3
        intervals = _rows(out / "intervals.csv")
        flagged = sum(int(r["label"]) for r in rows)
        assert sum(int(r["end"]) - int(r["start"]) for r in intervals) == flagged
        assert (out / "detection.png").is_file()
    assert "scored 600 timestamps" in capsys.readouterr().out


def _one_line_error(capsys, argv: list[str]) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("diffusekit: error: ")
    return err


def test_user_input_errors_exit_2_with_one_line(trained, tmp_path, capsys):
    data, work = trained
    train = ["timeseries", "train", "--work-dir", str(tmp_path / "w")]
    err = _one_line_error(capsys, [*train, "--config", "imdiffusion_tiny", "--data", str(tmp_path / "nope")])
    assert "nope" in err
    err = _one_line_error(capsys, [*train, "--config", "imdiffusion_tiny", "--data", str(data), "--machines", "m-9"])
    assert "m-9" in err
    err = _one_line_error(capsys, [*train, "--config", "no_such_config", "--data", str(data)])
    assert "imdiffusion_tiny" in err
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,4\n")
    checkpoint = str(work / "machine-1-1")
    predict = ["timeseries", "predict", *FAST[:2], "--checkpoint", checkpoint, "--input", str(tmp_path / "bad.csv")]
    assert "2 feature columns" in _one_line_error(capsys, [*predict, "--out", str(tmp_path / "p")])


def test_misspelt_config_keys_exit_2_naming_key_file_and_closest(trained, tmp_path, capsys):
    data, work = trained
    evaluate = ["timeseries", "evaluate", "--data", str(data), "--checkpoint", str(work), "--machines", "machine-1-1"]
    err = _one_line_error(capsys, [*evaluate, *FAST[:3], "detect.metric_windw=8"])
    assert "'metric_windw'" in err and "imdiffusion_tiny.py" in err and "did you mean 'metric_window'?" in err
    config = tmp_path / "mine.py"
    tiny = shipped_configs("diffusekit.timeseries")["imdiffusion_tiny"]
    config.write_text(f"_base_ = [{str(tiny)!r}]\ndetect = dict(p00=0.1)\n")
    train = ["timeseries", "train", "--data", str(data), "--work-dir", str(tmp_path / "w"), "--config", str(config)]
    err = _one_line_error(capsys, train)
    assert str(config) in err and "'p00'" in err and "did you mean 'p0'?" in err
    assert not (tmp_path / "w").exists()


def test_quick_demo_writes_report_figures_and_metrics(tmp_path, capsys):
    assert cli.main(["timeseries", "demo", "--quick", "--json", "--out", str(tmp_path)]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["iterations"] == 150 and 0.0 < metrics["label_rate"] < 0.5
    assert 0.0 <= metrics["f1"] <= 1.0 and 0.0 <= metrics["vus_pr"] <= 1.0
    report = (tmp_path / "report.md").read_text()
    for figure in ("timeseries/detection.png", "timeseries/work_dir/series/curves.png"):
        assert f"({figure})" in report and (tmp_path / figure).is_file()
    assert (tmp_path / "timeseries" / "data" / "test.csv").read_text().startswith("timestamp,feature_0,")


@pytest.mark.parametrize("command", ["synth", "train", "evaluate", "predict", "demo"])
def test_subcommand_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["timeseries", command, "--help"])
    assert exit_info.value.code == 0
    assert f"timeseries {command}" in capsys.readouterr().out
