"""The tutorial notebooks run top to bottom in a fresh kernel and leave nothing behind.

Every ``notebooks/*.ipynb`` is executed with nbclient in a kernel started from *this* Python
(``sys.executable``, i.e. the virtualenv running pytest), through a kernelspec written to a
temporary folder, so neither a globally installed ``python3`` kernel nor ``JUPYTER_PATH`` matters.
The kernel's working directory and its ``TMPDIR`` are fresh folders: afterwards the working
directory must be empty (no relative-path outputs), no ``keras-iusp-notebook-*`` folder may be
left in ``TMPDIR`` (each notebook deletes its own), and no new file may appear in the repository.
The stored notebooks must have no outputs, so that diffs stay readable and nothing stale is shown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
EXPECTED = ("01_iusp_in_ten_minutes.ipynb", "02_student_to_microcontroller.ipynb")
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
KERNEL_NAME = "keras-iusp-test-python"
CELL_TIMEOUT_S = 600


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def _listing(folder: Path) -> list[str]:
    """Every path under ``folder`` (hidden ones included, e.g. ``.ipynb_checkpoints``)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _untracked() -> set[str] | None:
    """Untracked, not ignored paths (``git status --porcelain``, read-only); None outside git.

    Only new files are compared: a notebook creates outputs, and edits that other people make to
    tracked files while the test runs must not fail it.
    """
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    result = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        return None
    return {line[3:] for line in result.stdout.splitlines() if line.startswith("?? ")}


@pytest.fixture(scope="session")
def kernel_spec_dir(tmp_path_factory) -> Path:
    """A kernelspec that starts ipykernel with the interpreter running the tests."""
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels"
    spec = kernels / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "keras-iusp tests",
        "language": "python",
    }))
    return kernels


def test_the_tutorial_notebooks_exist():
    names = [p.name for p in NOTEBOOKS]
    for name in EXPECTED:
        assert name in names, f"notebooks/{name} is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_stored_notebook_is_clean(path: Path):
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    kinds = {cell.cell_type for cell in nb.cells}
    assert {"markdown", "code"} <= kinds, "a tutorial needs text between the code cells"
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: cell {index} has stored outputs"
            assert cell.execution_count is None, f"{path.name}: cell {index} has a count"
    first_code = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert 'os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")' in first_code.source


# The outcome each tutorial must prove when executed (an ``assert`` in its cells), so running it
# checks more than that no cell raised.
OUTCOMES = {
    "01_iusp_in_ten_minutes.ipynb": ["the teacher did not learn", "the student did not train",
                                     "loss is not the weighted sum"],
    "02_student_to_microcontroller.ipynb": ["QAT was not teacher-guided",
                                            "TFLite-Micro and LiteRT disagree",
                                            "int8 and float models disagree"],
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_asserts_its_outcomes(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    for message in OUTCOMES.get(path.name, []):
        assert re.search(rf"assert [^\n]*(\n\s+[^\n]*)*\"{message}\"", code), (
            f"{path.name}: no assert for {message!r}")
    assert code.count("assert ") >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_and_leaves_nothing_behind(path: Path, kernel_spec_dir: Path,
                                                 tmp_path: Path):
    cwd, tmpdir = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmpdir.mkdir()
    notebooks_before = _listing(NOTEBOOK_DIR)
    git_before = _untracked()

    nb = nbformat.read(path, as_version=4)
    # one extra cell proves which interpreter ran the notebook
    nb.cells.append(nbformat.v4.new_code_cell("import sys\nprint(sys.executable)"))
    specs = KernelSpecManager(kernel_dirs=[str(kernel_spec_dir)])
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S, allow_errors=False,
                            resources={"metadata": {"path": str(cwd)}})
    env = {**os.environ, "TMPDIR": str(tmpdir), "MPLBACKEND": "Agg",
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    start = time.perf_counter()
    # CellExecutionError (with the cell's traceback) on any error; cleanup_kc=True shuts the
    # kernel down afterwards, which nbclient skips by default for a kernel manager passed in
    client.execute(env=env, cleanup_kc=True)
    print(f"{path.name}: executed in {time.perf_counter() - start:.1f} s")

    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs)
    assert Path(printed.strip()) == Path(sys.executable)
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors

    assert list(cwd.iterdir()) == [], "the notebook wrote into its working directory"
    leftovers = [p.name for p in tmpdir.glob("keras-iusp-notebook-*")]
    assert leftovers == [], f"the notebook did not remove its temporary folder: {leftovers}"
    assert _listing(NOTEBOOK_DIR) == notebooks_before, "files appeared in notebooks/"
    git_after = _untracked()
    if git_before is not None and git_after is not None:
        assert git_after - git_before == set(), "new files appeared in the repository"
