"""Distillation from an unlabelled pool: batching, masks, caches, CLI and grid plumbing.

The promises: the label loss never sees an unlabelled clip (its would-be labels change nothing,
the loss is BCE over the labelled rows alone), the teacher's cached outputs on the pool equal
its direct outputs, the pool rows of each batch come with their own cached outputs, and bad
``--unlabeled`` paths end in one ``keras-iusp: error:`` line with exit code 2.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.cli.main import main
from keras_iusp.utils.errors import ConfigError, DataError

POOL_CLIPS = 10


@pytest.fixture(scope="module")
def pool_dir(tiny_data):
    """A synthetic dataset folder whose ``unlabeled/`` holds :data:`POOL_CLIPS` 1-s clips."""
    from keras_iusp.data import synthesize

    root, _, _ = tiny_data
    out = root / "pooldata"
    if not (out / "unlabeled.csv").is_file():
        synthesize(out, clips=3, seed=12, clip_seconds=1.0, sample_rate=16000,
                   progress=False, unlabeled=POOL_CLIPS)
    return out


@pytest.fixture(scope="module")
def pool_cache(tiny_data, pool_dir):
    from keras_iusp.train.datasets import unlabeled_cache

    _, _, cache = tiny_data
    return unlabeled_cache(pool_dir / "unlabeled", cache)


def _distiller(teacher, cache, seed: int = 0):
    import tf_keras as keras

    from keras_iusp.distill.distiller import Distiller
    from keras_iusp.models import build_model
    from keras_iusp.train.recipe import DistillConfig, distillation_losses

    keras.utils.set_random_seed(seed)
    student = build_model("cnn_lstm_xs", cache.features.shape[1:], len(cache.class_names),
                          cache.stats)
    items, weights, w_s = distillation_losses(DistillConfig(method="iusp"), "cnn_lstm")
    d = Distiller(teacher, student, items, weights, w_s)
    d.compile(optimizer=keras.optimizers.SGD(0.1))
    return d


def _batch(cache, pool_cache, n_l: int = 4, n_u: int = 3, unlabelled_labels=None):
    x_l, y_l = cache.split("train")
    x_u = pool_cache.split("train")[0][:n_u]
    y_u = np.zeros((n_u, y_l.shape[1]), np.float32) if unlabelled_labels is None \
        else unlabelled_labels
    x = np.concatenate([np.asarray(x_l[:n_l]), np.asarray(x_u)]).astype(np.float32)
    y = np.concatenate([np.asarray(y_l[:n_l], np.float32), y_u]).astype(np.float32)
    mask = np.concatenate([np.ones(n_l), np.zeros(n_u)]).astype(np.float32)
    return x, y, mask


def test_label_loss_is_bce_on_labelled_rows_only(tiny_data, tiny_teacher, pool_cache):
    import tensorflow as tf

    _, _, cache = tiny_data
    d = _distiller(tiny_teacher.model, cache)
    x, y, mask = _batch(cache, pool_cache)
    flipped = y.copy()
    flipped[mask == 0] = 1.0  # would-be labels of the unlabelled rows
    x_noisy = x.copy()
    x_noisy[mask == 0] += 3.0  # other unlabelled clips entirely

    def losses(x, y):
        total, _, reports = d._compute_losses(tf.constant(x), tf.constant(y), None,
                                              training=False, label_mask=tf.constant(mask))
        return float(total), {k: float(v) for k, v in reports.items()}

    total, reports = losses(x, y)
    total_flipped, reports_flipped = losses(x, flipped)
    assert total_flipped == pytest.approx(total, rel=1e-6)
    assert reports_flipped == pytest.approx(reports, rel=1e-6)
    # the label loss is BCE over the labelled rows, computed here without the other rows
    logits = d.student(x[mask == 1], training=False)
    bce = tf.keras.losses.binary_crossentropy(y[mask == 1], logits, from_logits=True)
    assert reports["student_loss"] == pytest.approx(float(tf.reduce_mean(bce)), rel=1e-5)
    # unlabelled clips do enter the teacher terms, and leave the label loss alone
    _, reports_noisy = losses(x_noisy, y)
    assert reports_noisy["student_loss"] == pytest.approx(reports["student_loss"], rel=1e-6)
    assert reports_noisy["kd"] != pytest.approx(reports["kd"], rel=1e-4)
    # a labelled row's label does count
    changed = y.copy()
    changed[0] = 1.0 - changed[0]
    assert losses(x, changed)[1]["student_loss"] != pytest.approx(reports["student_loss"],
                                                                  rel=1e-4)


def test_train_step_ignores_unlabelled_labels(tiny_data, tiny_teacher, pool_cache):
    """One train step on batches differing only in the unlabelled rows' labels: equal weights."""
    _, _, cache = tiny_data
    x, y, mask = _batch(cache, pool_cache)
    flipped = y.copy()
    flipped[mask == 0] = 1.0
    weights = []
    for labels in (y, flipped):
        d = _distiller(tiny_teacher.model, cache, seed=3)
        d.train_on_batch({"features": x, "label_mask": mask}, labels)
        weights.append(d.student.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    d = _distiller(tiny_teacher.model, cache, seed=3)
    labelled = y.copy()
    labelled[0] = 1.0 - labelled[0]
    d.train_on_batch({"features": x, "label_mask": mask}, labelled)
    assert any(not np.array_equal(a, b) for a, b in zip(d.student.get_weights(), weights[0]))


def test_teacher_cache_on_pool_is_exact(tiny_data, tiny_teacher, pool_cache):
    from keras_iusp.distill.teacher_targets import teacher_outputs

    _, _, cache = tiny_data
    d = _distiller(tiny_teacher.model, cache)
    layers = d.teacher_output_layers
    cached = teacher_outputs(tiny_teacher.model, layers, pool_cache, verbose=False)
    assert cached.arrays[0].shape[0] == POOL_CLIPS
    direct = d._teacher_features(np.asarray(pool_cache.features, np.float32), training=False)
    for got, want in zip(cached.arrays, direct):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


def test_mixed_batches_carry_each_pool_clip_with_its_own_outputs(tiny_data, tiny_teacher,
                                                                 pool_cache):
    from keras_iusp.distill.teacher_targets import teacher_outputs
    from keras_iusp.train.datasets import training_datasets

    _, _, cache = tiny_data
    layers = _distiller(tiny_teacher.model, cache).teacher_output_layers
    cached = teacher_outputs(tiny_teacher.model, layers, cache, verbose=False)
    pool_out = teacher_outputs(tiny_teacher.model, layers, pool_cache, verbose=False)
    train, _ = training_datasets(cache, 4, 0, cached, pool=pool_cache, pool_outputs=pool_out,
                         pool_per_batch=3)
    pool_x = np.asarray(pool_cache.features)
    n_train = cache.split("train")[0].shape[0]
    seen = []
    for epoch in range(2):
        train.shuffle_epoch.assign(epoch)
        steps = 0
        for inputs, y in train:
            steps += 1
            mask = inputs["label_mask"].numpy()
            x = inputs["features"].numpy()
            n_l = int(mask.sum())
            assert mask.tolist() == [1.0] * n_l + [0.0] * 3
            assert not y.numpy()[n_l:].any()
            for row in range(n_l, len(mask)):
                where = [i for i in range(POOL_CLIPS) if np.array_equal(pool_x[i], x[row])]
                assert len(where) == 1
                seen.append(where[0])
                for got, full in zip(inputs["teacher_outputs"], pool_out.arrays):
                    np.testing.assert_array_equal(got.numpy()[row], full[where[0]])
        assert steps == -(-n_train // 4)
    # each pass over the pool uses every clip once before any clip twice
    for start in range(0, len(seen) - POOL_CLIPS + 1, POOL_CLIPS):
        assert sorted(seen[start:start + POOL_CLIPS]) == list(range(POOL_CLIPS))
    # an epoch's pool clips are a function of the epoch (a resumed run draws the same)
    train.shuffle_epoch.assign(1)
    again = [int(np.flatnonzero((pool_x == r).all(axis=(1, 2)))[0])
             for inputs, _ in train for r in inputs["features"].numpy()[-3:]]
    assert again == seen[len(seen) // 2:]


def test_synth_unlabeled_writes_a_pool_and_keeps_the_labelled_clips(tmp_path):
    from keras_iusp.data import synthesize

    plain = synthesize(tmp_path / "plain", clips=4, seed=2, clip_seconds=0.5,
                       sample_rate=8000, progress=False)
    pooled = synthesize(tmp_path / "pooled", clips=4, seed=2, clip_seconds=0.5,
                        sample_rate=8000, progress=False, unlabeled=3)
    assert (plain / "annotations.csv").read_bytes() == (pooled / "annotations.csv").read_bytes()
    for wav in sorted((plain / "audio").iterdir()):
        assert wav.read_bytes() == (pooled / "audio" / wav.name).read_bytes()
    assert not (plain / "unlabeled").exists()
    with (pooled / "unlabeled.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["audio_filename"] and len(rows) == 4
    assert all((pooled / r[0]).is_file() for r in rows[1:])
    # new clips, not copies of labelled ones
    labelled_audio = {w.read_bytes() for w in (pooled / "audio").iterdir()}
    assert not labelled_audio & {(pooled / r[0]).read_bytes() for r in rows[1:]}
    config = json.loads((pooled / "synth_config.json").read_text())
    assert config["parameters"]["unlabeled"] == 3 and len(config["unlabeled_clips"]) == 3
    again = synthesize(tmp_path / "again", clips=4, seed=2, clip_seconds=0.5,
                       sample_rate=8000, progress=False, unlabeled=3)
    for wav in sorted((pooled / "unlabeled").iterdir()):
        assert wav.read_bytes() == (again / "unlabeled" / wav.name).read_bytes()


def test_cli_distill_with_unlabeled_pool_end_to_end(tmp_path):
    data = tmp_path / "data"
    assert main(["synth", str(data), "--clips", "12", "--seed", "4", "--clip-seconds", "1.0",
                 "--sample-rate", "16000", "--unlabeled", "6"]) == 0
    assert main(["train-teacher", "--data", str(data), "--out", str(tmp_path / "teacher"),
                 "--clip-seconds", "1.0", "--epochs", "1", "--batch-size", "8",
                 "--no-augment"]) == 0
    for pool, name in ((data / "unlabeled", "folder"), (data / "unlabeled.csv", "csv")):
        out = tmp_path / f"student_{name}"
        assert main(["distill", "--data", str(data), "--teacher", str(tmp_path / "teacher"),
                     "--method", "iusp", "--out", str(out), "--epochs", "1",
                     "--batch-size", "4", "--unlabeled", str(pool),
                     "--unlabeled-ratio", "0.5"]) == 0
        info = json.loads((out / "model_info.json").read_text())
        assert info["unlabeled_pool"]["clips"] == 6
        assert info["hyperparameters"]["unlabeled"] == str(pool)
        assert info["hyperparameters"]["unlabeled_ratio"] == 0.5


def _bad_pools(tmp_path: Path) -> list[tuple[str, list[str], str]]:
    empty = tmp_path / "empty"
    empty.mkdir()
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("audio_filename,1_engine_presence\na.wav,1\n")
    missing = tmp_path / "missing.csv"
    missing.write_text("audio_filename\nnot_there.wav\n")
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("file\na.wav\n")
    text = tmp_path / "pool.txt"
    text.write_text("a.wav\n")
    return [
        (str(tmp_path / "nowhere"), [], "no such folder or CSV"),
        (str(empty), [], "no audio files"),
        (str(labelled), [], "label column"),
        (str(missing), [], "not_there.wav"),
        (str(nocol), [], "'audio_filename' column"),
        (str(text), [], "expected a folder of audio files or a .csv"),
    ]


def test_bad_unlabeled_paths_are_one_line_errors(tmp_path, capsys, tiny_data, tiny_teacher):
    _, data, _ = tiny_data
    base = ["distill", "--data", str(data), "--teacher", str(tiny_teacher.path), "--method",
            "kd", "--out", str(tmp_path / "out"), "--epochs", "1"]
    cases = _bad_pools(tmp_path) + [
        (str(tmp_path), ["--method", "baseline"], "--method baseline does not use --unlabeled"),
    ]
    for path, extra, expected in cases:
        code = main(base + ["--unlabeled", path] + extra)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, (path, err)
        assert len(err) == 1 and err[0].startswith("keras-iusp: error: "), err
        assert expected in err[0], err
        assert not (tmp_path / "out").exists()
    assert main(base + ["--unlabeled-ratio", "2"]) == 2
    assert "--unlabeled-ratio needs --unlabeled" in capsys.readouterr().err
    assert main(base + ["--unlabeled", str(tmp_path / "labelled.csv"),
                        "--unlabeled-ratio", "0"]) == 2
    assert "expected a number > 0" in capsys.readouterr().err


def test_library_refuses_a_pool_for_the_baseline_and_bad_ratios():
    from keras_iusp.train.recipe import DistillConfig

    with pytest.raises(ConfigError, match="baseline"):
        DistillConfig(method="baseline", unlabeled="pool")
    with pytest.raises(ConfigError, match="unlabeled_ratio"):
        DistillConfig(method="kd", unlabeled="pool", unlabeled_ratio=0)
    with pytest.raises(DataError, match="no such folder"):
        from keras_iusp.data.unlabeled import unlabeled_paths

        unlabeled_paths("/nonexistent/pool")


def test_grid_and_tune_see_the_pool(tmp_path, tiny_grid_header, pool_dir):
    from keras_iusp.experiments.config import load_config
    from keras_iusp.experiments.stale_runs import settings_differences
    from keras_iusp.experiments.tune import search_space

    path = tmp_path / "grid.toml"
    grid = '[grid]\nstudents = ["cnn_lstm_xs"]\nmethods = ["kd", "kd_pool"]\nseeds = [0]\n'
    variant = '[method.kd_pool]\nmethod = "kd"\nunlabeled_ratio = 2.0\n'
    path.write_text(tiny_grid_header("g") + grid + variant)
    with pytest.raises(ConfigError, match="needs a pool"):
        load_config(path)
    header = tiny_grid_header("g").replace("[data]\n", f'[data]\nunlabeled = '
                                                       f'"{pool_dir / "unlabeled"}"\n')
    path.write_text(header + grid + variant)
    config = load_config(path)
    assert config.distill_config("kd", 0).unlabeled == ""
    pooled = config.distill_config("kd_pool", 0)
    assert pooled.unlabeled == str(pool_dir / "unlabeled") and pooled.unlabeled_ratio == 2.0
    assert "unlabeled_ratio" in search_space(config, "iusp")
    assert "unlabeled_ratio" not in search_space(config, "baseline")
    # staleness: a run recorded with another ratio, or without the pool, is another run
    stored = {"hyperparameters": pooled.hyperparameters(), "teacher": "t"}
    assert settings_differences(stored, pooled, "cnn_lstm_xs", "t") == []
    stored["hyperparameters"] = {**pooled.hyperparameters(), "unlabeled_ratio": 1.0}
    assert [d[0] for d in settings_differences(stored, pooled, "cnn_lstm_xs", "t")] == \
        ["unlabeled_ratio"]
    stored["hyperparameters"] = config.distill_config("kd", 0).hyperparameters()
    assert "unlabeled" in [d[0] for d in settings_differences(stored, pooled, "cnn_lstm_xs",
                                                              "t")]
    # a run recorded before the pool existed reads as one without a pool
    old = {k: v for k, v in config.distill_config("kd", 0).hyperparameters().items()
           if not k.startswith("unlabeled")}
    assert settings_differences({"hyperparameters": old, "teacher": "t"},
                                config.distill_config("kd", 0), "cnn_lstm_xs", "t") == []
