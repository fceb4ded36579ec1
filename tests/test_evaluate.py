"""Metrics against an independent implementation; evaluate on Keras and TFLite; the grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.cli.main import main
from keras_iusp.experiments.config import load_config
from keras_iusp.experiments.grid import run_experiment
from keras_iusp.experiments.statistics import summarize
from keras_iusp.metrics import evaluate_scores, macro_auprc, micro_auprc, micro_f1, per_class_ap
from keras_iusp.utils.errors import ConfigError


def _average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Step-wise AP written out: mean precision at the rank of every positive (ties grouped)."""
    order = np.argsort(-scores, kind="stable")
    labels, scores = labels[order], scores[order]
    total, hits, ap = labels.sum(), 0, 0.0
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and scores[j + 1] == scores[i]:
            j += 1
        group = labels[i:j + 1].sum()
        hits += group
        ap += group / total * (hits / (j + 1))
        i = j + 1
    return ap


@pytest.mark.parametrize("seed", range(5))
def test_metrics_match_an_independent_implementation(seed):
    rng = np.random.default_rng(seed)
    labels = (rng.random((40, 8)) < 0.3).astype(int)
    labels[:, 3] = 0  # a class without positives
    scores = np.round(rng.random((40, 8)), 2)  # rounding creates ties
    assert micro_auprc(labels, scores) == pytest.approx(
        _average_precision(labels.ravel(), scores.ravel()), abs=1e-12)
    expected = [_average_precision(labels[:, c], scores[:, c]) for c in range(8) if c != 3]
    per_class = per_class_ap(labels, scores)
    assert np.isnan(per_class[3])
    np.testing.assert_allclose(np.delete(per_class, 3), expected, atol=1e-12)
    assert macro_auprc(labels, scores) == pytest.approx(np.mean(expected))
    predicted = scores >= 0.5
    tp = np.sum(predicted & (labels == 1))
    f1 = 2 * tp / (predicted.sum() + labels.sum())
    assert micro_f1(labels, scores) == pytest.approx(f1)


def test_evaluate_scores_json_ready():
    result = evaluate_scores(np.array([[1, 0], [0, 0]]), np.array([[0.9, 0.1], [0.2, 0.3]]),
                             ["a", "b"])
    assert result["per_class_ap"] == {"a": 1.0, "b": None}
    json.dumps(result)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    root = tmp_path_factory.mktemp("grid")
    config = root / "grid.toml"
    config.write_text("""
name = "tiny"
[data]
synthetic_clips = 24
clip_seconds = 1.0
[teacher]
epochs = 1
[grid]
students = ["dscnn_xs"]
methods = ["baseline", "kd", "sp", "iusp"]
seeds = [0, 1]
epochs = 1
batch_size = 8
""")
    rows = run_experiment(load_config(config), root / "out", verbose=0)
    return root, config, rows


def test_grid_results_and_report(grid):
    root, _, rows = grid
    out = root / "out"
    assert len(rows) == 8 and {r["method"] for r in rows} == {"baseline", "kd", "sp", "iusp"}
    saved = json.loads((out / "results.json").read_text())
    assert [r["micro_auprc"] for r in saved] == [r["micro_auprc"] for r in rows]
    assert (out / "results.csv").read_text().count("\n") == 9
    report = (out / "report.md").read_text()
    assert "| dscnn_xs | 1,400 |" in report and "IUSP rel. to SP" in report
    assert "## Paired differences" in report and "IUSP distance to the teacher" in report
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["iusp_distances"]) == 8
    assert all(d["distance"] >= 0 for d in summary["iusp_distances"])
    # every form is measured; the default form's value is the table's distance
    assert all(set(d["distances"]) == {"paper", "cosine", "centered"}
               and d["distances"]["cosine"] == d["distance"] for d in summary["iusp_distances"])
    for figure in ("auprc_vs_params.png", "pr_curves.png", "similarity.png",
                   "per_class_gain.png"):
        assert (out / figure).stat().st_size > 1000, figure
    table = summarize(rows)[0]
    base = np.mean([r["micro_auprc"] for r in rows if r["method"] == "baseline"])
    iusp = np.mean([r["micro_auprc"] for r in rows if r["method"] == "iusp"])
    sp = np.mean([r["micro_auprc"] for r in rows if r["method"] == "sp"])
    assert table["gain_over_baseline"]["iusp"] == pytest.approx(iusp - base)
    if abs(sp - base) > 1e-12:
        assert table["iusp_relative_to_sp"] == pytest.approx((iusp - base) / (sp - base) - 1)


def test_grid_resumes_only_missing_runs(grid, capsys):
    root, config, rows = grid
    missing = root / "out" / "runs" / "dscnn_xs" / "iusp" / "seed1"
    (missing / "metrics.json").unlink()
    # what the earlier model left must not be reported for the retrained one
    np.save(missing / "scores_test.npy", np.zeros_like(np.load(missing / "scores_test.npy")))
    # a record that would be read back as valid, but with a marker value
    record = json.loads((missing / "iusp_distance_test.json").read_text())
    record["distances"] = {form: 123.0 for form in record["distances"]}
    (missing / "iusp_distance_test.json").write_text(json.dumps(record))
    again = run_experiment(load_config(config), root / "out", verbose=0)
    out = capsys.readouterr().out
    assert out.count("done, reused") == 7
    assert "[8/8] dscnn_xs iusp seed 1" in out
    assert len(again) == 8
    assert np.load(missing / "scores_test.npy").any()
    distances = json.loads((missing / "iusp_distance_test.json").read_text())["distances"]
    assert 123.0 not in distances.values()


def test_grid_archived_and_restored_reports_the_same_numbers(grid, tmp_path):
    """A grid folder rebuilt on another machine from the committed run records (no weights):
    same rows, same IUSP distances (read from the records), the students left to train named."""
    import shutil

    root, config, _ = grid
    out = root / "out"
    archive = tmp_path / "archive"
    rows = run_experiment(load_config(config), out, verbose=0, train=False, archive=archive)
    summary = json.loads((out / "summary.json").read_text())
    assert not list(archive.rglob("*.keras")) and len(list(archive.rglob("metrics.json"))) == 8
    again = tmp_path / "again"
    for name in ("data", "teacher"):
        shutil.copytree(out / name, again / name)
    restored = run_experiment(load_config(config), again, verbose=0, train=False,
                              restore=archive)
    strip = [{k: v for k, v in r.items() if k != "run"} for r in rows]
    assert [{k: v for k, v in r.items() if k != "run"} for r in restored] == strip
    assert json.loads((again / "summary.json").read_text())["iusp_distances"] == \
        summary["iusp_distances"]
    assert "| dscnn_xs | iusp |" in (again / "report.md").read_text()
    assert not (again / "similarity.png").exists()  # no weights to draw frames from
    # the restored distilled runs name this folder's teacher, so the grid accepts them
    info = json.loads((again / "runs/dscnn_xs/kd/seed0/model_info.json").read_text())
    assert Path(info["teacher"]) == again / "teacher"
    # records of cells another config does not have, or trains otherwise, are not restored
    changed = tmp_path / "changed.toml"
    changed.write_text(config.read_text().replace("seeds = [0, 1]", "seeds = [0]")
                       + "[method.kd]\ntemperature = 7.0\n")
    third = tmp_path / "third"
    for name in ("data", "teacher"):
        shutil.copytree(out / name, third / name)
    partial = run_experiment(load_config(changed), third, verbose=0, train=False,
                             restore=archive)
    assert sorted(r["method"] for r in partial) == ["baseline", "iusp", "sp"]
    assert not (third / "runs/dscnn_xs/kd/seed0").exists()
    assert not (third / "runs/dscnn_xs/baseline/seed1").exists()


def test_cli_grid_trains_only_the_named_methods(grid, capsys, tmp_path):
    root, config, _ = grid
    runs = root / "out" / "runs" / "dscnn_xs"
    for method in ("kd", "iusp"):
        (runs / method / "seed0" / "metrics.json").unlink()
    archive = tmp_path / "records"
    assert main(["experiment", "--config", str(config), "--out", str(root / "out"),
                 "--methods", "kd", "--students", "dscnn_xs", "--archive", str(archive),
                 "--restore", str(tmp_path / "none yet")]) == 0
    # --archive wrote the finished runs' records (the unfinished iusp seed 0 is not among them)
    assert len(list(archive.rglob("metrics.json"))) == 7
    assert not (archive / "dscnn_xs" / "iusp" / "seed0").exists()
    out = capsys.readouterr().out
    assert "dscnn_xs kd seed 0\n" in out and "dscnn_xs iusp seed 0\n" not in out
    assert (runs / "kd" / "seed0" / "metrics.json").is_file()
    assert not (runs / "iusp" / "seed0" / "metrics.json").is_file()
    # the report covers every finished run of the grid, and says it is partial
    assert "7 of 8 runs finished" in (root / "out" / "report.md").read_text()
    run_experiment(load_config(config), root / "out", verbose=0, methods=["iusp"])
    assert (runs / "iusp" / "seed0" / "metrics.json").is_file()


def test_grid_refuses_a_finished_teacher_of_another_model(grid, tmp_path):
    """The grid's config names no teacher model, so it trained the default; a config asking
    for another model must not reuse that teacher."""
    from keras_iusp.train.defaults import DEFAULT_TEACHER

    root, config, _ = grid
    other_model = "teacher_cnn" if DEFAULT_TEACHER != "teacher_cnn" else "teacher_cnn_meanmax"
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace("[teacher]\n",
                                                f'[teacher]\nmodel = "{other_model}"\n'))
    with pytest.raises(ConfigError, match=f"holds a '{DEFAULT_TEACHER}' teacher, but "
                                          f"\\[teacher\\] model is '{other_model}'"):
        run_experiment(load_config(other), root / "out", verbose=0)


def test_keras_and_float_tflite_evaluate_alike(grid, capsys):
    root, _, _ = grid
    run = root / "out" / "runs" / "dscnn_xs" / "baseline" / "seed0"
    data = root / "out" / "data"
    fw = root / "fw"
    assert main(["export", str(run), "--data", str(data), "--out", str(fw),
                 "--window-seconds", "1.0", "--golden", "1", "--no-target-budget"]) == 0
    keras_json, tflite_json = root / "keras.json", root / "tflite.json"
    assert main(["evaluate", str(run), "--data", str(data), "--split", "validate",
                 "--out", str(keras_json)]) == 0
    assert main(["evaluate", str(fw / "model_float.tflite"), "--data", str(data),
                 "--split", "validate", "--out", str(tflite_json)]) == 0
    a, b = json.loads(keras_json.read_text()), json.loads(tflite_json.read_text())
    assert a["micro_auprc"] == pytest.approx(b["micro_auprc"], abs=1e-4)
    assert a["macro_auprc"] == pytest.approx(b["macro_auprc"], abs=1e-4)
    assert "micro-AUPRC" in capsys.readouterr().out


@pytest.mark.parametrize("text,message", [
    ('[grid]\nepochz = 3\n', r"unknown key\(s\) \['epochz'\]"),
    ('[grid]\nepochs = "3"\n', r"epochs = '3': expected int"),
    ('[grid]\nstudents = ["teacher_cnn"]\n', "unknown student 'teacher_cnn'"),
    ('[grid]\nmethods = ["distill"]\n', "'distill' is not one of"),
    ('colour = 1\n', r"unknown key\(s\) \['colour'\]"),
    ('[data\n', "invalid TOML"),
])
def test_config_errors_name_the_key(tmp_path: Path, text: str, message: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def _litert_window_scores_by_hand(model_path: Path, clips: np.ndarray) -> tuple[np.ndarray, int]:
    """Clip scores of a window .tflite computed here from LiteRT's raw API: every window of
    ``frames`` frames starting at multiples of ``frames // 2``, plus one ending at the clip's end,
    LSTM state cleared before each, int8 (de)quantised by hand, score = sigmoid(max logit)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    frames = inp["shape"][1]
    hop = frames // 2
    scores, windows = [], 0
    for clip in clips:
        total = clip.shape[0]
        starts = list(range(0, total - frames + 1, hop))
        if starts[-1] + frames < total:
            starts.append(total - frames)
        windows = max(windows, len(starts))
        logits = []
        for start in starts:
            x = np.asarray(clip[start:start + frames], np.float32)[None]
            if inp["dtype"] == np.int8:
                scale, zero = inp["quantization"]
                x = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
            interpreter.reset_all_variables()
            interpreter.set_tensor(inp["index"], x)
            interpreter.invoke()
            y = interpreter.get_tensor(out["index"])[0].astype(np.float64)
            if out["dtype"] == np.int8:
                scale, zero = out["quantization"]
                y = scale * (y - zero)
            logits.append(y)
        scores.append(1.0 / (1.0 + np.exp(-np.max(logits, axis=0))))
    return np.array(scores), windows


@pytest.mark.parametrize("name", ["model.tflite", "model_float.tflite"])
def test_evaluate_window_tflite_is_the_max_over_half_overlapping_windows(name, tiny_data,
                                                                         lstm_export, tmp_path):
    root, data, cache = tiny_data
    folder, _ = lstm_export
    out = tmp_path / "metrics.json"
    assert main(["evaluate", str(folder / name), "--data", str(data), "--split", "validate",
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    clips, labels = cache.split("validate")
    scores, windows = _litert_window_scores_by_hand(folder / name, np.asarray(clips))
    assert windows >= 3, "the test needs several windows per clip"
    assert result["micro_auprc"] == pytest.approx(
        _average_precision(labels.ravel(), scores.ravel()), abs=1e-6)
    for c, class_name in enumerate(cache.class_names):
        expected = (_average_precision(labels[:, c], scores[:, c]) if labels[:, c].any()
                    else None)
        assert result["per_class_ap"][class_name] == pytest.approx(expected, abs=1e-6)


def test_mean_iusp_distances_match_numpy_per_clip_mean():
    """The quickstart's and the report's distance: per-clip cosine-form IUSP distance averaged
    over the clips (same frame count here, so no resize), computed independently in numpy."""
    import tf_keras as keras

    from keras_iusp.experiments.distances import mean_iusp_distances

    inputs = keras.Input((6, 5))
    teacher = keras.Model(inputs, keras.layers.Dense(4, name="embedding")(inputs))
    s_in = keras.Input((6, 5))
    student = keras.Model(s_in, keras.layers.Dense(3, name="proj")(s_in))
    x = np.random.default_rng(1).normal(size=(5, 6, 5)).astype(np.float32)

    def cosine_map(q):
        u = q / np.linalg.norm(q, axis=-1, keepdims=True)
        return u @ u.T

    wt, bt = teacher.get_layer("embedding").get_weights()
    ws, bs = student.get_layer("proj").get_weights()
    per_clip = [np.sum((cosine_map(c @ wt + bt) - cosine_map(c @ ws + bs)) ** 2) / 36
                for c in x.astype(np.float64)]
    # batch size 2 leaves a last batch of one clip: the mean is over clips, not batches
    got = mean_iusp_distances(teacher, student, "proj", x, batch_size=2)
    assert set(got) == {"paper", "cosine", "centered"}
    np.testing.assert_allclose(got["cosine"], np.mean(per_clip), rtol=1e-4)
