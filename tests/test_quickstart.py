"""The quickstart chain on a tiny setting: every stage runs and reports where its outputs are."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from keras_iusp.experiments.figures import layer_similarity, pick_repetitive_clip

# The CLI's own quickstart, shrunk: clips of 1 s and one prune/QAT epoch are not CLI options, so
# the subprocess binds them into run_quickstart before calling keras_iusp.cli.main.main with real
# argv.
TINY_CLI = """
import functools, sys
import keras_iusp.experiments.quickstart as q
q.run_quickstart = functools.partial(q.run_quickstart, clip_seconds=1.0, prune_epochs=1,
                                     qat_epochs=1)
from keras_iusp.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_tiny_quickstart_runs_every_stage_quietly(tmp_path: Path):
    from test_quiet_cli import fresh_user_env, tensorflow_noise

    out = tmp_path / "qs"
    args = [sys.executable, "-c", TINY_CLI, "quickstart", "--out", str(out), "--clips", "24",
            "--seed", "1", "--teacher-epochs", "1", "--student-epochs", "1"]
    first = subprocess.run(args, capture_output=True, text=True, timeout=900,
                           env=fresh_user_env())
    assert first.returncode == 0, first.stderr[-3000:]
    for stage in ("[1]", "[2]", "[3]", "[4]", "[5]", "[6]", "[7]", "[8]"):
        assert stage in first.stdout
    assert "mean IUSP distance (cosine form) over the" in first.stdout
    assert "false alarms/hour on the" in first.stdout  # the calibrated detector, validation
    assert tensorflow_noise(first.stderr) == [], tensorflow_noise(first.stderr)
    for name in ("data/annotations.csv", "teacher/model.keras", "student_baseline/metrics.json",
                 "student_iusp/metrics.json", "student_iusp_compressed/qat.weights.h5",
                 "firmware/model_data.cc"):
        assert (out / name).is_file(), name
    info = json.loads((out / "student_iusp" / "model_info.json").read_text())
    assert info["hyperparameters"]["method"] == "iusp"
    assert info["hyperparameters"]["epochs"] == 1 and info["hyperparameters"]["seed"] == 1
    teacher = json.loads((out / "teacher" / "model_info.json").read_text())
    assert teacher["hyperparameters"]["epochs"] == 1
    report = json.loads((out / "firmware" / "export_report.json").read_text())
    assert report["tflm_vs_litert_max_diff"] <= 1
    assert len(list((out / "data").rglob("*.wav"))) == 24  # --clips
    # a second run reuses every stage instead of recomputing
    second = subprocess.run(args, capture_output=True, text=True, timeout=600,
                            env=fresh_user_env())
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("reusing") == 5


def test_pick_repetitive_clip_prefers_a_clean_alert_clip():
    names = ("engine", "alert-signal", "dog")
    labels = np.array([[1, 0, 1], [1, 1, 1], [0, 1, 0], [0, 0, 1]])
    assert pick_repetitive_clip(labels, names) == 2
    assert pick_repetitive_clip(labels[[0, 3]], names) == 1  # no alert: the dog-only clip
    assert pick_repetitive_clip(np.zeros((2, 3)), names) == 0


def test_layer_similarity_in_each_form():
    import tf_keras as keras

    inputs = keras.Input((6, 4))
    model = keras.Model(inputs, keras.layers.Dense(3, name="proj", use_bias=False)(inputs))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    q = x @ model.get_layer("proj").get_weights()[0]
    g = q @ q.T
    paper = g / np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(layer_similarity(model, "proj", x, "paper"), paper,
                               rtol=1e-5, atol=1e-6)
    u = q / np.linalg.norm(q, axis=1, keepdims=True)
    # the default form is the cosine self-similarity the IUSP loss uses by default
    np.testing.assert_allclose(layer_similarity(model, "proj", x), u @ u.T, rtol=1e-5, atol=1e-6)
    c = q - q.mean(axis=0)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    np.testing.assert_allclose(layer_similarity(model, "proj", x, "centered"), c @ c.T,
                               rtol=1e-5, atol=1e-5)


def test_similarity_figure_compares_each_student_with_its_own_teacher_layer(tmp_path):
    import tf_keras as keras

    from keras_iusp.experiments.figures import plot_teacher_student_similarity

    inputs = keras.Input((6, 4))
    a = keras.layers.Dense(3, name="a", use_bias=False)(inputs)
    b = keras.layers.Dense(5, name="b", use_bias=False)(a)
    teacher = keras.Model(inputs, b)
    student = keras.Model(inputs, keras.layers.Dense(2, name="s", use_bias=False)(inputs))
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)

    def cosine(q):
        u = q / np.linalg.norm(q, axis=1, keepdims=True)
        return u @ u.T

    q_a = x @ teacher.get_layer("a").get_weights()[0]
    g = {"a": cosine(q_a), "b": cosine(q_a @ teacher.get_layer("b").get_weights()[0])}
    g_s = cosine(x @ student.get_layer("s").get_weights()[0])
    png, distances = plot_teacher_student_similarity(
        teacher, "a", [("plain", student, "s"), ("other", student, "s", "b")], x,
        tmp_path / "sim.png")
    # same frame count, so no resize: the distance is the mean squared map difference against
    # the teacher layer each student names (the 3-tuple one against the default layer "a")
    np.testing.assert_allclose(distances["plain"], np.mean((g["a"] - g_s) ** 2), rtol=1e-4)
    np.testing.assert_allclose(distances["other"], np.mean((g["b"] - g_s) ** 2), rtol=1e-4)
    assert distances["plain"] != distances["other"] and png.stat().st_size > 1000
