"""The README's Python example runs as written, and its commands match .ci/run."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_example_runs(tmp_path: Path, monkeypatch, capsys):
    blocks = _python_blocks()
    assert blocks, "README has no python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    for metric in ("'iusp'", "'kd'", "'sp'", "'val_auprc'"):
        assert metric in out
    assert (tmp_path / "student.keras").is_file()


def test_ci_runs_the_readme_test_command():
    bash_blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert len(bash_blocks) >= 2
    quickstart, tests = bash_blocks[0].strip(), bash_blocks[1].strip()
    assert "keras-iusp quickstart" in quickstart
    ci = (README.parent / ".ci" / "run").read_text()
    assert tests in ci
    assert os.access(README.parent / ".ci" / "run", os.X_OK)
