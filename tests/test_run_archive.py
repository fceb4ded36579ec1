"""Run records: archiving a grid's finished runs without weights and restoring them."""

import json
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.experiments.archive import TEACHER_FILE, archive_runs, has_weights, restore_runs
from keras_iusp.experiments.config import ExperimentConfig
from keras_iusp.experiments.layout import grid_cells
from keras_iusp.utils.errors import ConfigError


def _run(grid: Path, student: str, method: str, seed: int, finished: bool = True) -> Path:
    run = grid / "runs" / student / method / f"seed{seed}"
    run.mkdir(parents=True)
    teacher = None if method == "baseline" else str(grid / "teacher")
    (run / "model_info.json").write_text(json.dumps({"teacher": teacher,
                                                     "summary": {"params": 10}}))
    (run / "model.keras").write_bytes(b"weights" * 100)
    (run / "history.json").write_text(json.dumps({"val_auprc": [0.5, 0.6]}))
    (run / "wall.json").write_text(json.dumps({"seconds": 3.0}))
    np.save(run / "scores_test.npy", np.full((4, 2), 0.25 + seed))
    (run / "iusp_distance_test.json").write_text(json.dumps({"distances": {"cosine": 0.1}}))
    (run / "work").mkdir()
    (run / "work" / "best.weights.h5").write_bytes(b"state")
    if finished:
        (run / "metrics.json").write_text(json.dumps({"val_auprc": 0.6}))
    return run


def test_archive_keeps_records_without_weights_and_restore_puts_them_back(tmp_path):
    grid = tmp_path / "grid"
    _run(grid, "s", "baseline", 0)
    _run(grid, "s", "kd", 1)
    _run(grid, "s", "kd", 2, finished=False)  # still training: not archived
    (_run(grid, "s", "kd", 3) / "wall.json").unlink()  # finished a moment ago: not yet
    elsewhere = _run(grid, "s", "sp", 0)  # trained with another teacher folder: not vouched for
    info = json.loads((elsewhere / "model_info.json").read_text())
    (elsewhere / "model_info.json").write_text(json.dumps({**info, "teacher": "other/teacher"}))
    archive = tmp_path / "archive"
    assert archive_runs(grid, archive, "abc", teacher_path=grid / "teacher",
                        required=("scores_test.npy", "wall.json")) == 2
    assert json.loads((archive / TEACHER_FILE).read_text()) == {"weights_sha256": "abc"}
    kept = sorted(str(p.relative_to(archive)) for p in archive.rglob("*") if p.is_file())
    assert kept == sorted([TEACHER_FILE] + [
        f"s/{m}/seed{k}/{f}" for m, k in (("baseline", 0), ("kd", 1))
        for f in ("metrics.json", "model_info.json", "history.json", "wall.json",
                  "scores_test.npy", "iusp_distance_test.json")])

    # a record is replaced as a whole: nothing of the earlier model's files survives
    (archive / "s" / "kd" / "seed1" / "iusp_distance_validate.json").write_text("{}")
    assert archive_runs(grid, archive, "abc", teacher_path=grid / "teacher") == 2
    assert not (archive / "s" / "kd" / "seed1" / "iusp_distance_validate.json").exists()
    assert not list(archive.rglob(".seed*"))  # no temporary folder left behind

    other = tmp_path / "other"
    unfinished = _run(other, "s", "kd", 1, finished=False)
    done = _run(other, "s", "baseline", 0)
    (done / "metrics.json").write_text(json.dumps({"val_auprc": 0.9}))
    assert restore_runs(archive, other, "abc", other / "teacher") == 1
    # a run the grid had finished stays; an unfinished one is replaced by the record
    assert json.loads((done / "metrics.json").read_text()) == {"val_auprc": 0.9}
    assert not (unfinished / "work").exists() and not has_weights(unfinished)
    assert json.loads((unfinished / "metrics.json").read_text()) == {"val_auprc": 0.6}
    np.testing.assert_array_equal(np.load(unfinished / "scores_test.npy"), np.full((4, 2), 1.25))
    # the restored record names this grid's teacher (the weights were compared instead)
    info = json.loads((unfinished / "model_info.json").read_text())
    assert info == {"teacher": str(other / "teacher"), "summary": {"params": 10}}
    # a second restore finds nothing left to do
    assert restore_runs(archive, other, "abc", other / "teacher") == 0


def test_restore_leaves_records_the_grid_refuses(tmp_path, capsys):
    grid = tmp_path / "grid"
    _run(grid, "s", "kd", 0)
    _run(grid, "s", "baseline", 0)
    archive = tmp_path / "archive"
    archive_runs(grid, archive, "abc", teacher_path=grid / "teacher")
    other = tmp_path / "other"
    resumable = _run(other, "s", "kd", 0, finished=False)
    seen = []

    def refuse(relative, info):
        seen.append((str(relative), info["summary"]))
        return "other settings" if relative.parts[1] == "kd" else None

    assert restore_runs(archive, other, "abc", other / "teacher", refuse=refuse) == 1
    assert sorted(seen) == [("s/baseline/seed0", {"params": 10}), ("s/kd/seed0", {"params": 10})]
    assert "s/kd/seed0: not restored, other settings" in capsys.readouterr().out
    # the refused cell's own resumable state is untouched
    assert (resumable / "work" / "best.weights.h5").is_file() and has_weights(resumable)
    assert (other / "runs" / "s" / "baseline" / "seed0" / "metrics.json").is_file()


def test_archive_and_restore_refuse_another_teacher(tmp_path):
    grid = tmp_path / "grid"
    _run(grid, "s", "kd", 0)
    archive = tmp_path / "archive"
    archive_runs(grid, archive, "a" * 64, teacher_path=grid / "teacher")
    with pytest.raises(ConfigError, match="trained against a teacher with weights aaaaaaaaaaaa"):
        archive_runs(grid, archive, "b" * 64, teacher_path=grid / "teacher")
    with pytest.raises(ConfigError, match="cannot restore from"):
        restore_runs(archive, tmp_path / "new", "b" * 64, tmp_path / "new" / "teacher")
    assert not (tmp_path / "new").exists()
    assert restore_runs(tmp_path / "none yet", tmp_path / "new", "a" * 64, "t") == 0
    with pytest.raises(ConfigError, match="not a run archive"):
        restore_runs(grid, tmp_path / "new", "a" * 64, tmp_path / "new" / "teacher")


def test_restricted_grid_trains_only_the_named_students_and_methods():
    config = ExperimentConfig()
    config.grid.students = ["cnn_lstm_xs", "cnn_lstm_s", "cnn_lstm_m"]
    config.grid.methods = ["baseline", "kd", "iusp"]
    config.grid.seeds = [0, 1]
    config.grid.student_seeds = {"cnn_lstm_xs": [0, 1, 2]}
    part = config.restricted(["cnn_lstm_m", "cnn_lstm_xs"], ["iusp", "baseline"])
    # the config's own order is kept; per-student seeds still apply
    assert grid_cells(part) == [(s, m, k) for k in (0, 1) for s in ("cnn_lstm_xs", "cnn_lstm_m")
                                for m in ("baseline", "iusp")] + [
        ("cnn_lstm_xs", "baseline", 2), ("cnn_lstm_xs", "iusp", 2)]
    assert config.grid.students == ["cnn_lstm_xs", "cnn_lstm_s", "cnn_lstm_m"]  # untouched
    assert grid_cells(config.restricted()) == grid_cells(config)
    with pytest.raises(ConfigError, match=r"student\(s\) \['cnn_lstm_l'\] are not in the grid"):
        config.restricted(["cnn_lstm_l"])
    with pytest.raises(ConfigError, match=r"method\(s\) \['sp'\] are not in the grid"):
        config.restricted(methods=["sp"])


def test_restore_leaves_a_run_that_another_process_is_training(tmp_path, capsys):
    import subprocess
    import sys

    grid = tmp_path / "grid"
    _run(grid, "s", "kd", 0)
    archive = tmp_path / "archive"
    archive_runs(grid, archive, "abc", teacher_path=grid / "teacher")
    other = tmp_path / "other"
    busy = _run(other, "s", "kd", 0, finished=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; "
         "from keras_iusp.experiments.claims import try_claim; "
         f"assert try_claim({str(busy)!r}); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert restore_runs(archive, other, "abc", other / "teacher") == 0
        assert "being trained by" in capsys.readouterr().out
        assert has_weights(busy) and (busy / "work" / "best.weights.h5").is_file()
    finally:
        holder.kill()
        holder.wait()
    assert restore_runs(archive, other, "abc", other / "teacher") == 1
