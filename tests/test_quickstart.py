"""The quickstart chain on a tiny setting: every stage runs and reports where its outputs are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from keras_iusp.plots import layer_similarity, pick_repetitive_clip
from keras_iusp.quickstart import run_quickstart


def test_tiny_quickstart_runs_every_stage(tmp_path: Path, capsys):
    summary = run_quickstart(tmp_path / "qs", clips=24, seed=1, clip_seconds=1.0,
                             teacher_epochs=1, student_epochs=1, prune_epochs=1, qat_epochs=1)
    out = capsys.readouterr().out
    for stage in ("[1]", "[2]", "[3]", "[4]", "[5]", "[6]", "[7]", "[8]"):
        assert stage in out
    for key in ("data", "class_examples", "feature_cache", "student_baseline", "student_iusp",
                "similarity_figure", "compressed", "firmware"):
        assert Path(summary[key]).exists(), key
    info = json.loads((tmp_path / "qs" / "student_iusp" / "model_info.json").read_text())
    assert info["hyperparameters"]["method"] == "iusp"
    report = summary["export_report"]
    assert report["tflm_vs_litert_max_diff"] <= 1
    assert (tmp_path / "qs" / "firmware" / "model_data.cc").is_file()
    # a second run reuses every stage instead of recomputing
    run_quickstart(tmp_path / "qs", clips=24, seed=1, clip_seconds=1.0, teacher_epochs=1,
                   student_epochs=1, prune_epochs=1, qat_epochs=1)
    assert capsys.readouterr().out.count("reusing") == 5


def test_pick_repetitive_clip_prefers_a_clean_alert_clip():
    names = ("engine", "alert-signal", "dog")
    labels = np.array([[1, 0, 1], [1, 1, 1], [0, 1, 0], [0, 0, 1]])
    assert pick_repetitive_clip(labels, names) == 2
    assert pick_repetitive_clip(labels[[0, 3]], names) == 1  # no alert: the dog-only clip
    assert pick_repetitive_clip(np.zeros((2, 3)), names) == 0


def test_layer_similarity_is_the_row_normalised_gram():
    import tf_keras as keras

    inputs = keras.Input((6, 4))
    model = keras.Model(inputs, keras.layers.Dense(3, name="proj", use_bias=False)(inputs))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    q = x @ model.get_layer("proj").get_weights()[0]
    g = q @ q.T
    expected = g / np.linalg.norm(g, axis=1, keepdims=True)
    np.testing.assert_allclose(layer_similarity(model, "proj", x), expected, rtol=1e-5, atol=1e-6)
