"""Crash and concurrency safety of shared outputs: an export folder swap killed between its two
renames is put right by the next export (old or new assets whole, never both or neither), and
processes sharing an experiment folder never overwrite a newer ``results.json`` with an older
view of the grid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.utils.atomic import recover_dir

ROOT = Path(__file__).resolve().parents[1]

#: A writer that replaces OUT with new assets and is killed (os._exit, no clean-up runs) at the
#: moment named by argv[2]: "writing" (staging half-written), "between" (old folder moved
#: away, new one not yet in place) or "after" (new one in place, old one not yet deleted).
WRITER = textwrap.dedent("""
    import os, shutil, sys
    from pathlib import Path
    from keras_iusp.utils import atomic

    out, when = Path(sys.argv[1]), sys.argv[2]
    tmp = atomic.staging_dir(out)
    (tmp / "model.tflite").write_bytes(b"new model")
    if when == "writing":
        os._exit(9)
    (tmp / "model_settings.h").write_text("new settings")
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(src)
        if when == "between" and len(calls) == 2:
            os._exit(9)
        real_replace(src, dst)

    def rmtree(path, **kwargs):
        os._exit(9)

    os.replace, shutil.rmtree = replace, rmtree if when == "after" else shutil.rmtree
    atomic.replace_dir(tmp, out)
""")


def _old_assets(out: Path) -> None:
    out.mkdir(parents=True)
    (out / "model.tflite").write_bytes(b"old model")
    (out / "model_settings.h").write_text("old settings")


def _kill_writer(out: Path, when: str) -> None:
    proc = subprocess.run([sys.executable, "-c", WRITER, str(out), when], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 9, proc.stderr


def _contents(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


OLD = {"model.tflite": b"old model", "model_settings.h": b"old settings"}
NEW = {"model.tflite": b"new model", "model_settings.h": b"new settings"}


@pytest.mark.parametrize("when,expected", [("writing", OLD), ("between", OLD), ("after", NEW)])
def test_a_killed_swap_is_recovered_whole(tmp_path: Path, when: str, expected: dict):
    out = tmp_path / "fw"
    _old_assets(out)
    _kill_writer(out, when)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".fw."))
    assert leftovers, "the killed writer left nothing to recover"
    if when == "between":
        assert not out.exists()  # the state the next run must put right
    assert recover_dir(out) is not None
    assert _contents(out) == expected  # one set of assets, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw"]  # nothing else left
    assert recover_dir(out) is None  # and nothing more to do


def test_a_live_writer_s_folders_are_left_alone(tmp_path: Path):
    out = tmp_path / "fw"
    busy = tmp_path / f".fw.old-{os.getpid()}"  # this process is alive: mid-swap, not dead
    _old_assets(busy)
    assert recover_dir(out) is None
    assert busy.is_dir() and not out.exists()


def test_export_recovers_an_interrupted_swap_before_anything_else(tmp_path: Path):
    """``export_model`` puts the folder right first, so even an export that then fails (here:
    no such run) leaves the old assets in place."""
    from keras_iusp.export import export_model
    from keras_iusp.utils.errors import KerasIuspError

    out = tmp_path / "fw"
    _old_assets(out)
    _kill_writer(out, "between")
    with pytest.raises(KerasIuspError):
        export_model(tmp_path / "no_run", None, out)
    assert _contents(out) == OLD


# --- results.json shared by several experiment processes --------------------------------------

GRID = """
[data]
path = "{data}"
[grid]
students = ["cnn_lstm_xs"]
methods = ["baseline"]
seeds = [0, 1]
eval_split = "validate"
"""


def _finish_cell(out: Path, seed: int, labels: np.ndarray) -> None:
    """What a finished cell holds for result collection (metrics, info, cached scores)."""
    from keras_iusp.experiments.layout import cell_dir

    run = cell_dir(out, "cnn_lstm_xs", "baseline", seed)
    run.mkdir(parents=True)
    (run / "model_info.json").write_text(json.dumps({"summary": {"params": 1}}))
    np.save(run / "scores_validate.npy", np.random.default_rng(seed).random(labels.shape))
    (run / "metrics.json").write_text("{}")


def test_an_older_view_never_overwrites_a_newer_results_json(tmp_path: Path, monkeypatch):
    """Process A scans the grid (one cell finished), then B finishes the second cell and
    collects; A writes last. Without the results lock A's one-row view replaced B's two rows;
    with it B waits for A and scans afresh, so the file ends with both cells."""
    import keras_iusp.experiments.grid as experiment
    from keras_iusp.experiments.config import load_config

    (tmp_path / "c.toml").write_text(GRID.format(data=tmp_path))
    config = load_config(tmp_path / "c.toml")
    out = tmp_path / "exp"
    labels = np.array([[1, 0], [0, 1], [1, 1]], np.uint8)
    _finish_cell(out, 0, labels)

    scanned, b_wrote = threading.Event(), threading.Event()
    real_write = experiment._write_results

    def write(out_dir, rows):
        if threading.current_thread().name == "A":
            scanned.set()
            b_wrote.wait(timeout=2.0)  # B may write first only when nothing stops it
        real_write(out_dir, rows)
        if threading.current_thread().name == "B":
            b_wrote.set()

    monkeypatch.setattr(experiment, "_write_results", write)

    def collect():
        experiment._collect_rows(config, out, None, labels, ["a", "b"])

    a = threading.Thread(target=collect, name="A")
    a.start()
    assert scanned.wait(timeout=30)
    _finish_cell(out, 1, labels)
    b = threading.Thread(target=collect, name="B")
    b.start()
    a.join(timeout=30)
    b.join(timeout=30)
    rows = json.loads((out / "results.json").read_text())
    assert [r["seed"] for r in rows] == [0, 1]
    csv_rows = (out / "results.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + len(rows)  # the CSV is from the same scan
