"""The Python example of docs/medical.md runs as written."""

import re
from pathlib import Path

import torch

DOC = Path(__file__).resolve().parents[2] / "docs" / "medical.md"


def test_docs_python_example_runs(capsys):
    (block,) = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        exec(compile(block, str(DOC), "exec"), {})
    finally:
        torch.set_num_threads(threads)
    assert "'dice'" in capsys.readouterr().out
