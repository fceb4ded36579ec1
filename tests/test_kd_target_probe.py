"""The KD target probe's statistics against entry-by-entry hand computation."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "kd_target_probe.py"
_spec = importlib.util.spec_from_file_location("kd_target_probe", _PATH)
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_target_statistics_by_hand(temperature):
    labels = [[1, 0], [0, 1]]
    logits = [[2.0, -1.0], [0.5, -3.0]]
    entries = []
    for y_row, z_row in zip(labels, logits):
        for y, z in zip(y_row, z_row):
            p = 1 / (1 + math.exp(-z / temperature))
            entries.append((y, p))
    gap = sum(abs(p - y) for y, p in entries) / 4
    disagree = sum((p >= 0.5) != (y == 1) for y, p in entries) / 4
    soft = sum(0.1 < p < 0.9 for _, p in entries) / 4
    entropy = sum(-(p * math.log2(p) + (1 - p) * math.log2(1 - p)) for _, p in entries) / 4
    bce = sum(-math.log(p) if y else -math.log(1 - p) for y, p in entries) / 4
    got = probe.target_statistics(labels, logits, temperature)
    assert got == pytest.approx({"mean_abs_gap": gap, "disagree_fraction": disagree,
                                 "soft_fraction": soft, "mean_entropy_bits": entropy,
                                 "label_bce": bce})
    # the second clip's class 0 (p > 0.5, y = 0) and class 1 (p < 0.5, y = 1) disagree
    assert got["disagree_fraction"] == 0.5


def test_hard_targets_carry_nothing_beyond_the_labels():
    got = probe.target_statistics([[1, 0]], [[40.0, -40.0]])
    assert got["mean_abs_gap"] < 1e-12 and got["soft_fraction"] == 0.0
    assert got["mean_entropy_bits"] < 1e-9


def test_cross_fitted_split_matches_the_library_outputs(tiny_data, tiny_teacher, tmp_path,
                                                        monkeypatch):
    """The probe's own per-fold predictions agree with the cached cross-fitted outputs that
    distillation reads, and the plain train split still uses the full teacher."""
    import json

    import numpy as np

    from keras_iusp.distill.teacher_targets import cross_fitted_outputs
    from keras_iusp.experiments.cross_fit import held_out_folds, train_fold_teachers

    _, data, cache = tiny_data
    folds = train_fold_teachers(cache, tmp_path / "folds", 2, tiny_teacher, verbose=0)
    out = tmp_path / "probe.json"
    monkeypatch.setattr("sys.argv", ["kd_target_probe.py", "--data", str(data), "--teacher",
                                     str(tiny_teacher.path), "--temperatures", "1",
                                     "--fold-teachers", str(tmp_path / "folds"),
                                     "--out", str(out)])
    probe.main()
    result = json.loads(out.read_text())
    assert set(result["splits"]) == {"train", "validate", "train_cross_fitted"}
    assert result["command"].endswith(f"--fold-teachers {tmp_path / 'folds'}")
    recorded = [json.loads((run.path / "metrics.json").read_text())["val_auprc"]
                for run in (tiny_teacher, *folds)]
    assert list(result["val_auprc"].values()) == recorded
    cached = cross_fitted_outputs(tiny_teacher.model, [f.model for f in folds],
                                  held_out_folds(folds, cache), [], cache, verbose=False)
    _, labels = cache.split("train")
    expected = probe.target_statistics(labels, cached.split(cache, "train")[0], 1.0)
    assert result["splits"]["train_cross_fitted"]["T=1"] == pytest.approx(expected, abs=1e-6)
    plain = probe.target_statistics(
        labels, tiny_teacher.model.predict(np.asarray(cache.split("train")[0]), verbose=0), 1.0)
    assert result["splits"]["train"]["T=1"] == pytest.approx(plain, abs=1e-6)
    # synthetic data: the same statistics against the true labels, and the labels' own error
    truth = probe.true_labels(data, cache.split_filenames("train"), cache.class_names)
    vs_truth = result["splits"]["train_cross_fitted"]["vs_truth"]
    assert vs_truth["label_error_vs_truth"] == pytest.approx(np.mean(truth != labels))
    assert vs_truth["T=1"] == pytest.approx(
        probe.target_statistics(truth, cached.split(cache, "train")[0], 1.0), abs=1e-6)


def test_true_labels_come_from_the_generator_record(tiny_data):
    import json

    import numpy as np

    _, data, cache = tiny_data
    names = cache.split_filenames("validate")
    truth = probe.true_labels(data, names, cache.class_names)
    record = {c["audio_filename"]: c for c in
              json.loads((data / "synth_config.json").read_text())["clips"]}
    for row, name in zip(truth, names):
        classes = {e["class"] for e in record[name]["events"]}
        assert {c for c, v in zip(cache.class_names, row) if v} == classes
    # validate labels are the verified row, which the generator writes from the truth
    np.testing.assert_array_equal(truth, cache.split("validate")[1])
    assert probe.true_labels(data / "audio", names, cache.class_names) is None
