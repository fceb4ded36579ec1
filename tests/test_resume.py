"""Interrupted work: every long command (train-teacher, distill, compress, experiment) killed with
SIGKILL after a finished epoch resumes, when the same command is run again, to the result of an
uninterrupted run: the same per-epoch log, final weights and metrics. A finished run is not
replaced without --overwrite. (Export atomicity is tested by fault injection in test_export.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.cli.main import main

CLI = [sys.executable, "-m", "keras_iusp.cli.main"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    assert main(["synth", str(root / "data"), "--clips", "40", "--seed", "2", "--clip-seconds",
                 "1.0", "--sample-rate", "16000"]) == 0
    assert main(["train-teacher", "--data", str(root / "data"), "--out", str(root / "teacher"),
                 "--clip-seconds", "1.0", "--epochs", "1", "--batch-size", "8"]) == 0
    return root


def _distill_args(root: Path, out: str, epochs: int) -> list[str]:
    return ["distill", "--data", str(root / "data"), "--teacher", str(root / "teacher"),
            "--student", "dscnn_xs", "--method", "kd", "--out", str(root / out),
            "--epochs", str(epochs), "--batch-size", "4", "--seed", "7"]


def _history_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    return max(0, len(path.read_text().strip().splitlines()) - 1)


def test_killed_distillation_resumes_to_the_same_result(setup):
    root = setup
    epochs = 12
    assert main(_distill_args(root, "straight", epochs)) == 0

    proc = subprocess.Popen(CLI + _distill_args(root, "killed", epochs),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = root / "killed" / ".work" / "history.csv"
    deadline = time.time() + 300
    while _history_rows(history) < 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    done_before_kill = _history_rows(history)
    assert 3 <= done_before_kill < epochs
    assert not (root / "killed" / "metrics.json").exists()

    assert main(_distill_args(root, "killed", epochs)) == 0  # same command resumes
    straight = json.loads((root / "straight" / "history.json").read_text())
    resumed = json.loads((root / "killed" / "history.json").read_text())
    assert len(resumed["loss"]) == epochs
    np.testing.assert_allclose(resumed["loss"], straight["loss"], rtol=1e-3)
    np.testing.assert_allclose(resumed["val_auprc"], straight["val_auprc"], atol=1e-3)
    _assert_same_metrics(root / "straight" / "metrics.json", root / "killed" / "metrics.json")
    _assert_same_weights(_model_weights(root / "straight"), _model_weights(root / "killed"))
    assert not (root / "killed" / ".work").exists()


def test_run_records_provenance(setup):
    info = json.loads((setup / "teacher" / "model_info.json").read_text())
    versions = info["provenance"]["versions"]
    for package in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tflite-micro"):
        assert versions[package]
    assert "git_revision" in info["provenance"]


def _kill_after_epochs(args: list[str], history: Path, epochs: int, total: int) -> int:
    """Start ``keras-iusp ARGS``, SIGKILL it once ``history`` logs ``epochs`` finished epochs."""
    proc = subprocess.Popen(CLI + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while _history_rows(history) < epochs and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    done = _history_rows(history)
    assert epochs <= done < total, done
    return done


def _assert_same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4)


def _model_weights(run: Path) -> list[np.ndarray]:
    from keras_iusp.train.saved_runs import load_run

    return load_run(run).model.get_weights()


def _assert_same_metrics(a: Path, b: Path) -> None:
    x, y = json.loads(a.read_text()), json.loads(b.read_text())
    assert set(x) == set(y)
    for key in x:
        if isinstance(x[key], (int, float)):
            assert y[key] == pytest.approx(x[key], abs=2e-3), key


def _teacher_args(root: Path, out: str, epochs: int) -> list[str]:
    return ["train-teacher", "--data", str(root / "data"), "--out", str(root / out),
            "--clip-seconds", "1.0", "--epochs", str(epochs), "--batch-size", "8", "--seed", "4"]


def test_killed_teacher_training_resumes_to_the_same_weights(setup):
    root, epochs = setup, 4
    assert main(_teacher_args(root, "teacher_straight", epochs)) == 0
    _kill_after_epochs(_teacher_args(root, "teacher_killed", epochs),
                       root / "teacher_killed" / ".work" / "history.csv", 2, epochs)
    assert not (root / "teacher_killed" / "metrics.json").exists()
    assert main(_teacher_args(root, "teacher_killed", epochs)) == 0
    straight = json.loads((root / "teacher_straight" / "history.json").read_text())
    resumed = json.loads((root / "teacher_killed" / "history.json").read_text())
    np.testing.assert_allclose(resumed["loss"], straight["loss"], rtol=1e-3)
    _assert_same_metrics(root / "teacher_straight" / "metrics.json",
                         root / "teacher_killed" / "metrics.json")
    _assert_same_weights(_model_weights(root / "teacher_straight"),
                         _model_weights(root / "teacher_killed"))
    assert not (root / "teacher_killed" / ".work").exists()


def _compress_args(root: Path, out: str) -> list[str]:
    return ["compress", str(root / "kd_student"), "--data", str(root / "data"),
            "--out", str(root / out), "--sparsity", "0.5", "--prune-epochs", "4",
            "--qat-epochs", "1", "--batch-size", "8", "--seed", "5"]


def _qat_weights(run: Path) -> list[np.ndarray]:
    from keras_iusp.compress import load_compressed

    return load_compressed(run)[0].get_weights()


def test_killed_compression_resumes_to_the_same_weights(setup):
    root = setup
    if not (root / "kd_student" / "metrics.json").is_file():
        assert main(_distill_args(root, "kd_student", 1)) == 0
    assert main(_compress_args(root, "compressed_straight")) == 0
    # killed in the middle of pruning: the pruning step and the schedule must resume too
    _kill_after_epochs(_compress_args(root, "compressed_killed"),
                       root / "compressed_killed" / ".work" / "prune" / "history.csv", 2, 4)
    assert not (root / "compressed_killed" / "compress_report.json").exists()
    assert main(_compress_args(root, "compressed_killed")) == 0
    straight = json.loads((root / "compressed_straight" / "compress_report.json").read_text())
    resumed = json.loads((root / "compressed_killed" / "compress_report.json").read_text())
    for stage in ("pruning", "qat"):
        np.testing.assert_allclose(resumed[stage]["history"]["loss"],
                                   straight[stage]["history"]["loss"], rtol=1e-3)
        assert resumed[stage]["sparsity"] == pytest.approx(straight[stage]["sparsity"], abs=1e-3)
        assert resumed[stage]["val"] == pytest.approx(straight[stage]["val"], abs=2e-3)
    _assert_same_weights(_model_weights(root / "compressed_straight"),
                         _model_weights(root / "compressed_killed"))
    _assert_same_weights(_qat_weights(root / "compressed_straight"),
                         _qat_weights(root / "compressed_killed"))
    assert not (root / "compressed_killed" / ".work").exists()


EXPERIMENT = """
name = "resume"
[data]
synthetic_clips = 24
clip_seconds = 1.0
data_seed = 3
[teacher]
epochs = 1
batch_size = 8
[grid]
students = ["dscnn_xs"]
methods = ["baseline", "kd"]
seeds = [0]
epochs = 4
batch_size = 8
"""


def test_killed_experiment_resumes_to_the_same_results(setup):
    root = setup
    config = root / "resume.toml"
    config.write_text(EXPERIMENT)
    args = ["experiment", "--config", str(config), "--out"]
    assert main(args + [str(root / "grid_straight")]) == 0
    killed = root / "grid_killed"
    second_run = killed / "runs" / "dscnn_xs" / "kd" / "seed0"
    _kill_after_epochs(args + [str(killed)], second_run / ".work" / "history.csv", 2, 4)
    assert (killed / "runs" / "dscnn_xs" / "baseline" / "seed0" / "metrics.json").is_file()
    assert not (second_run / "metrics.json").exists()
    assert main(args + [str(killed)]) == 0
    straight = json.loads((root / "grid_straight" / "results.json").read_text())
    resumed = json.loads((killed / "results.json").read_text())
    assert [(r["method"], r["seed"]) for r in resumed] == [(r["method"], r["seed"])
                                                           for r in straight]
    for a, b in zip(straight, resumed):
        assert b["micro_auprc"] == pytest.approx(a["micro_auprc"], abs=2e-3)
    for method in ("baseline", "kd"):
        run = Path("runs") / "dscnn_xs" / method / "seed0"
        _assert_same_weights(_model_weights(root / "grid_straight" / run),
                             _model_weights(killed / run))
        _assert_same_metrics(root / "grid_straight" / run / "metrics.json",
                             killed / run / "metrics.json")
    assert (killed / "report.md").is_file()


def test_every_run_writing_command_needs_overwrite(setup, capsys):
    root = setup
    commands = {
        "train-teacher": _teacher_args(root, "guard_teacher", 1),
        "distill": _distill_args(root, "guard_student", 1),
    }
    for name, args in commands.items():
        assert main(args) == 0, name
        assert main(args) == 2, name
        assert "already holds a finished run" in capsys.readouterr().err, name
        mtime = (root / args[args.index("--out") + 1] / "model.keras").stat().st_mtime_ns
        assert main(args + ["--overwrite"]) == 0, name
        assert (root / args[args.index("--out") + 1] / "model.keras").stat().st_mtime_ns != mtime

    compress_args = ["compress", str(root / "guard_student"), "--data", str(root / "data"),
                     "--out", str(root / "guard_compressed"), "--prune-epochs", "1",
                     "--qat-epochs", "1", "--batch-size", "8"]
    assert main(compress_args) == 0
    assert main(compress_args) == 2
    assert "already holds a finished compression" in capsys.readouterr().err
    assert main(compress_args + ["--overwrite"]) == 0

    synth_args = ["synth", str(root / "data"), "--clips", "2", "--clip-seconds", "1.0"]
    before = (root / "data" / "annotations.csv").read_bytes()
    assert main(synth_args) == 2  # the dataset every other test here uses is not replaced
    assert "keras-iusp: error:" in capsys.readouterr().err
    assert (root / "data" / "annotations.csv").read_bytes() == before
