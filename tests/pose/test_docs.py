"""The Python example of docs/pose.md runs as written."""

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "pose.md"


def test_docs_python_example_runs(capsys):
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    exec(compile(block, str(DOC), "exec"), {})
    assert "'Total'" in capsys.readouterr().out


def test_pose3d_docs_python_example_runs(capsys):
    doc = DOC.with_name("pose3d.md")
    api = doc.read_text().split("## 6. Python API")[1].split("\n## ")[0]  # the section's own example
    (block,) = re.findall(r"```python\n(.*?)```", api, flags=re.S)
    exec(compile(block, str(doc), "exec"), {})
    out = capsys.readouterr().out
    assert "'P-Agg'" in out and "MPJPE" in out
