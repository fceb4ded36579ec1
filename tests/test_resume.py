"""Interrupted work: a killed distillation resumes to the same result; a killed export leaves
either the old assets or the new ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.cli import main

CLI = [sys.executable, "-m", "keras_iusp.cli"]


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
    assert not (root / "killed" / ".work").exists()


def test_finished_run_is_not_overwritten_silently(setup, capsys):
    root = setup
    assert main(_distill_args(root, "once", 1)) == 0
    assert main(_distill_args(root, "once", 1)) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert main(_distill_args(root, "once", 1) + ["--overwrite"]) == 0


def test_run_records_provenance(setup):
    info = json.loads((setup / "teacher" / "model_info.json").read_text())
    versions = info["provenance"]["versions"]
    for package in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tflite-micro"):
        assert versions[package]
    assert "git_revision" in info["provenance"]


def test_killed_export_leaves_old_or_new_assets(setup):
    root = setup
    assert main(_distill_args(root, "student", 1)) == 0
    args = ["export", str(root / "student"), "--data", str(root / "data"),
            "--out", str(root / "fw"), "--window-seconds", "0.5"]
    assert main(args + ["--golden", "2"]) == 0
    for delay in (2.0, 6.0, 10.0):
        proc = subprocess.Popen(CLI + args + ["--golden", "3"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        fw = root / "fw"
        report = json.loads((fw / "export_report.json").read_text())
        model = (fw / "model.tflite").read_bytes()
        golden = (fw / "golden_vectors.h").read_text()
        assert report["flash_int8_bytes"] == len(model)
        assert f"g_model_data_len = {len(model)};" in (fw / "model_data.cc").read_text()
        assert "kNumGoldenVectors = 2" in golden or "kNumGoldenVectors = 3" in golden
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(".fw")]
    # a killed export may leave its own temporary folder, never a half-replaced asset folder
    assert all(".tmp-" in name or ".old-" in name for name in leftovers)
    assert os.path.isdir(root / "fw")
