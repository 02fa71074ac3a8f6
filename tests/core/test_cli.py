"""The diffusekit command line: version, domain discovery, DataError handling and the core demo."""

import json
import shutil
import subprocess
import sys

import pytest

from diffusekit.core import cli
from diffusekit.core.cli import Domain
from diffusekit.core.commands import DemoResult
from diffusekit.core.errors import DataError


def _fake_domain(calls):
    def add_commands(parser):
        sub = parser.add_subparsers(dest="sub", required=True)
        p = sub.add_parser("evaluate")
        p.add_argument("--data", required=True)

        def run(args):
            calls.append(args.data)
            raise DataError("column count 37 differs from train (38)", args.data, line=12)

        p.set_defaults(func=run)

    return Domain("fake", "a test domain", add_commands, lambda out, quick: DemoResult("fake", "fake section"))


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("diffusekit ")


def test_data_error_is_one_line_and_exit_code_2(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(cli, "installed_domains", lambda: [_fake_domain(calls)])
    code = cli.main(["fake", "evaluate", "--data", "/data/test.csv"])
    err = capsys.readouterr().err
    assert code == 2 and calls == ["/data/test.csv"]
    assert err == "diffusekit: error: /data/test.csv:12: column count 37 differs from train (38)\n"


def test_domain_entry_points_must_name_a_domain(monkeypatch):
    class FakeEntryPoint:
        value = "somewhere:thing"

        def load(self):
            return object()

    monkeypatch.setattr(cli, "entry_points", lambda group: [FakeEntryPoint()])
    with pytest.raises(TypeError, match="Domain"):
        cli.installed_domains()


def test_console_script_is_installed():
    exe = shutil.which("diffusekit") or str(__import__("pathlib").Path(sys.executable).parent / "diffusekit")
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in out


@pytest.mark.slow
def test_demo_writes_report_figure_and_json(tmp_path, capsys):
    # the core and the two newest domains in worker processes (the other domains' demos have their own tests)
    argv = ["demo", "--quick", "--json", "--out", str(tmp_path), "--sections", "core", "video", "perception3d"]
    assert cli.main(argv) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert sorted(last) == ["core", "perception3d", "video"]
    metrics = last["core"]
    report = (tmp_path / "report.md").read_text()
    assert "## core" in report and "![samples](core/samplers.png)" in report
    assert "## perception3d" in report and "## video" in report
    assert (tmp_path / "core" / "samplers.png").stat().st_size > 10_000
    # even the quick run learns the mixture: far closer than pure noise (~0.56), every sampler
    for key in ("ddpm_1000_trailing_sw", "dpmpp_2m_20_logsnr_sw", "ddim_10_logsnr_sw"):
        assert metrics[key] < 0.40, (key, metrics)
    assert metrics["dpmpp_2m_20_logsnr_seconds"] < metrics["ddpm_1000_trailing_seconds"]


def test_demo_refuses_an_unknown_section(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--out", str(tmp_path), "--sections", "core", "nosuch"]) == 2
    assert "--sections: no demo named nosuch" in capsys.readouterr().err
    assert not (tmp_path / "report.md").exists()


def test_a_domain_whose_extra_is_missing_answers_with_its_install_line(monkeypatch, capsys):
    class MissingExtra:
        name, value = "medical", "diffusekit.medical.cli:DOMAIN"

        def load(self):
            raise ModuleNotFoundError("No module named 'no_such_module_x'", name="no_such_module_x")

    class Broken(MissingExtra):
        def load(self):
            raise ImportError("cannot import name 'gone' from 'json'", name="json")

    monkeypatch.setattr(cli, "entry_points", lambda group: [MissingExtra()])
    assert cli.main(["medical", "train", "--config", "x"]) == 2
    err = capsys.readouterr().err
    assert err == "diffusekit: error: the medical commands need no_such_module_x: pip install 'diffusekit[medical]'\n"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "not installed: pip install 'diffusekit[medical]'" in " ".join(capsys.readouterr().out.split())
    monkeypatch.setattr(cli, "entry_points", lambda group: [Broken()])
    with pytest.raises(ImportError, match="gone"):  # a bug in a domain is not hidden behind an install hint
        cli.installed_domains()
