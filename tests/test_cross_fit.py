"""Cross-fitted teachers: each training clip scored by a teacher that held it out."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from keras_iusp.utils.errors import ConfigError


def test_folds_partition_the_training_clips_evenly_and_by_seed():
    from keras_iusp.experiments.cross_fit import fold_assignment

    a = fold_assignment(11, 3, seed=5)
    assert sorted(np.bincount(a, minlength=3).tolist()) == [3, 4, 4]
    assert set(a.tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(a, fold_assignment(11, 3, seed=5))
    assert not np.array_equal(a, fold_assignment(11, 3, seed=6))
    assert not np.array_equal(a, np.arange(11) % 3)  # shuffled, not the dataset's order
    for folds, n, message in [(1, 10, "folds=1"), (True, 10, "folds=True"),
                              (4, 3, "3 training clips cannot fill 4 folds")]:
        with pytest.raises(ConfigError, match=message):
            fold_assignment(n, folds)


def _clone(model, shift: float):
    import tf_keras as keras

    other = keras.models.clone_model(model)
    other.set_weights([w + shift for w in model.get_weights()])
    return other


def test_each_training_clip_is_scored_by_the_teacher_that_held_it_out(tiny_data, tiny_teacher):
    from keras_iusp.distill.teacher_targets import cross_fitted_outputs, teacher_outputs
    from keras_iusp.experiments.cross_fit import fold_assignment

    _, _, cache = tiny_data
    main = tiny_teacher.model
    folds = [_clone(main, 0.01), _clone(main, -0.02)]
    n_train = int((cache.splits == "train").sum())
    assignment = fold_assignment(n_train, 2, seed=3)
    held = [np.flatnonzero(assignment == k) for k in range(2)]
    out = cross_fitted_outputs(main, folds, held, ["embedding"], cache, verbose=False)
    train_rows = np.flatnonzero(cache.splits == "train")
    features = np.asarray(cache.features)
    for k, model in enumerate(folds):
        rows = train_rows[held[k]]
        # rtol 1e-4: float32 outputs of ~1e4 from batches of another composition differed by
        # 1.5e-5 relative under oneDNN on an Intel host; the fold teachers differ by >= 1e-2
        np.testing.assert_allclose(out.arrays[0][rows], model.predict(features[rows], verbose=0),
                                   rtol=1e-4, atol=1e-5)
    others = np.flatnonzero(cache.splits != "train")
    assert others.size > 0
    np.testing.assert_allclose(out.arrays[0][others], main.predict(features[others], verbose=0),
                               rtol=1e-4, atol=1e-5)
    # the fold teachers really differ from the main one on the training rows
    assert not np.allclose(out.arrays[0][train_rows],
                           main.predict(features[train_rows], verbose=0), atol=1e-3)
    # keyed on every teacher and the folds: never the plain teacher's folder, never stale
    plain = teacher_outputs(main, ["embedding"], cache, verbose=False)
    other_folds = cross_fitted_outputs(main, folds, held[::-1], ["embedding"], cache,
                                       verbose=False)
    changed = cross_fitted_outputs(main, [folds[0], _clone(main, 0.03)], held, ["embedding"],
                                   cache, verbose=False)
    assert len({plain.path, out.path, other_folds.path, changed.path}) == 4
    again = cross_fitted_outputs(main, folds, held, ["embedding"], cache, verbose=False)
    assert again.path == out.path
    # a fold's indices in another order are the same fold (and no row lands elsewhere)
    shuffled = [np.random.default_rng(k).permutation(h) for k, h in enumerate(held)]
    assert cross_fitted_outputs(main, folds, shuffled, ["embedding"], cache,
                                verbose=False).path == out.path


def test_folds_must_cover_every_training_clip_once(tiny_data, tiny_teacher):
    from keras_iusp.distill.teacher_targets import cross_fitted_outputs

    _, _, cache = tiny_data
    n_train = int((cache.splits == "train").sum())
    m = tiny_teacher.model
    cases = [([np.arange(n_train)], "at least 2 fold teachers"),
             ([np.arange(3), np.arange(3, n_train - 1)], "exactly once"),
             ([np.arange(4), np.arange(3, n_train)], "exactly once")]
    for held, message in cases:
        with pytest.raises(ConfigError, match=message):
            cross_fitted_outputs(m, [m] * len(held), held, ["embedding"], cache, verbose=False)


@pytest.fixture(scope="module")
def fold_teachers(tiny_data, tiny_teacher):
    from keras_iusp.experiments.cross_fit import train_fold_teachers

    root, _, cache = tiny_data
    return train_fold_teachers(cache, root / "teacher_folds", 2, tiny_teacher, verbose=0)


def test_fold_teachers_repeat_the_recipe_on_the_other_folds(tiny_data, tiny_teacher,
                                                            fold_teachers, capsys):
    from keras_iusp.experiments.cross_fit import (
        fold_assignment,
        held_out_folds,
        train_fold_teachers,
    )
    from keras_iusp.train.saved_runs import TrainedModel

    root, _, cache = tiny_data
    n_train = int((cache.splits == "train").sum())
    assignment = fold_assignment(n_train, 2, seed=0)
    recipe = tiny_teacher.info["hyperparameters"]
    for k, run in enumerate(fold_teachers):
        hyper = run.info["hyperparameters"]
        assert hyper["train_index"] == np.flatnonzero(assignment != k).tolist()
        assert {key: hyper[key] for key in recipe} == recipe
        assert run.info["model_name"] == tiny_teacher.info["model_name"]
        history = json.loads((run.path / "history.json").read_text())
        assert len(history["loss"]) == recipe["epochs"]
    held = held_out_folds(fold_teachers, cache)
    for k in range(2):
        np.testing.assert_array_equal(held[k], np.flatnonzero(assignment == k))
    # finished folds are reused as they are; other folds in the same folder are refused
    capsys.readouterr()
    again = train_fold_teachers(cache, root / "teacher_folds", 2, tiny_teacher, verbose=0)
    assert [r.path for r in again] == [r.path for r in fold_teachers]
    assert "fold teacher" not in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"fold0: a fold teacher trained differently from "
                                          r"what is asked now: fold_seed 0 \(now 1\), the "
                                          "training clips"):
        train_fold_teachers(cache, root / "teacher_folds", 2, tiny_teacher, fold_seed=1,
                            verbose=0)
    # another teacher recipe (here: more epochs) is refused too, not reused
    other = TrainedModel(tiny_teacher.path, tiny_teacher.model, {
        **tiny_teacher.info, "hyperparameters": {**recipe, "epochs": recipe["epochs"] + 1}})
    with pytest.raises(ConfigError, match=rf"epochs {recipe['epochs']} \(now "
                                          rf"{recipe['epochs'] + 1}\)"):
        train_fold_teachers(cache, root / "teacher_folds", 2, other, verbose=0)
    with pytest.raises(ConfigError, match="is itself a fold teacher"):
        train_fold_teachers(cache, root / "nested", 2, fold_teachers[0], verbose=0)
    with pytest.raises(ConfigError, match="not a fold teacher"):
        held_out_folds([tiny_teacher], cache)


def test_an_interrupted_fold_teacher_resumes_only_on_the_same_clips(tiny_data, tiny_teacher,
                                                                    tmp_path):
    """A fold whose training started (``.work`` holds state) under another assignment, or with
    no record of it, would resume on weights that saw clips it is now to score."""
    from keras_iusp.experiments.cross_fit import FOLD_RECORD, train_fold_teachers

    _, _, cache = tiny_data
    work = tmp_path / "folds" / "fold0" / ".work"
    work.mkdir(parents=True)
    (work / "epoch_log.csv").write_text("epoch\n0\n")
    with pytest.raises(ConfigError, match="without a readable cross_fit.json"):
        train_fold_teachers(cache, tmp_path / "folds", 2, tiny_teacher, verbose=0)
    (work.parent / FOLD_RECORD).write_text(json.dumps({"train_index": [0, 1]}))
    with pytest.raises(ConfigError, match="the training clips"):
        train_fold_teachers(cache, tmp_path / "folds", 2, tiny_teacher, verbose=0)


def test_cross_fitted_distillation_with_one_teacher_everywhere_equals_the_plain_cache(
        tiny_data, tiny_teacher):
    """With every fold teacher the full teacher itself, the cross-fitted outputs are the plain
    ones placed row by row: identical training, so any misplaced row would show."""
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.saved_runs import TrainedModel
    from keras_iusp.train.training import distill

    root, _, cache = tiny_data
    n_train = int((cache.splits == "train").sum())
    same = [TrainedModel(tiny_teacher.path, tiny_teacher.model,
                         {**tiny_teacher.info, "hyperparameters": {
                             **tiny_teacher.info["hyperparameters"],
                             "train_index": [i for i in range(n_train) if i % 2 != k]}})
            for k in range(2)]
    histories = {}
    for crossed in (False, True):
        out = root / f"cross_fit_equal_{crossed}"
        run = distill(cache, tiny_teacher, "cnn_lstm_xs", out,
                      DistillConfig(method="iusp", epochs=2, batch_size=8, cross_fitted=crossed),
                      verbose=0, overwrite=True, fold_teachers=same if crossed else None)
        histories[crossed] = json.loads((out / "history.json").read_text())
        if crossed:
            assert run.info["teacher_outputs"].startswith("teacher-cf-")
            assert run.info["fold_teachers"] == [str(tiny_teacher.path)] * 2
            assert run.info["hyperparameters"]["cross_fitted"] is True
    for key, values in histories[False].items():
        np.testing.assert_allclose(histories[True][key], values, rtol=1e-5, atol=1e-7,
                                   err_msg=key)


def test_cross_fitted_distillation_uses_the_fold_teachers(tiny_data, tiny_teacher,
                                                          fold_teachers):
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.training import distill

    root, _, cache = tiny_data
    config = DistillConfig(method="kd", epochs=1, batch_size=8, cross_fitted=True)
    run = distill(cache, tiny_teacher, "cnn_lstm_xs", root / "cross_fit_kd", config, verbose=0,
                  overwrite=True, fold_teachers=fold_teachers)
    assert run.info["fold_teachers"] == [str(t.path) for t in fold_teachers]
    with pytest.raises(ConfigError, match="needs fold_teachers"):
        distill(cache, tiny_teacher, "cnn_lstm_xs", root / "cross_fit_none", config, verbose=0)


@pytest.mark.parametrize("settings, message", [
    ({"method": "baseline"}, "baseline has no teacher"),
    ({"augmentation": {"mixup_alpha": 0.4}}, "needs the teacher-output cache"),
    ({"teacher_cache": False}, "needs the teacher-output cache"),
])
def test_cross_fitted_settings_that_cannot_work_are_refused(settings, message):
    from keras_iusp.train.recipe import DistillConfig

    with pytest.raises(ConfigError, match=message):
        DistillConfig(**{"method": "kd", "cross_fitted": True, **settings})


CROSS_FIT_GRID = """cross_fit_folds = 2
[grid]
students = ["cnn_lstm_xs"]
methods = ["baseline", "kd_cf"]
seeds = [0]
epochs = 1
batch_size = 8
[method.kd_cf]
method = "kd"
cross_fitted = true
"""


def test_experiment_trains_fold_teachers_once_and_distils_from_them(tmp_path, tiny_teacher,
                                                                     tiny_grid_header, capsys):
    from keras_iusp.experiments.config import load_config
    from keras_iusp.experiments.grid import run_experiment
    from keras_iusp.experiments.layout import cell_dir
    from keras_iusp.train.saved_runs import load_run

    path = tmp_path / "cf.toml"
    path.write_text(tiny_grid_header("cf") + CROSS_FIT_GRID)
    config = load_config(path)
    assert config.distill_config("kd_cf", 0).cross_fitted
    assert not config.distill_config("baseline", 0).cross_fitted
    out = tmp_path / "out"
    # a call that trains only the baseline needs no fold teachers
    run_experiment(config, out, verbose=0, methods=["baseline"])
    assert not (out / "teacher_folds").exists()
    rows = run_experiment(config, out, verbose=0)
    assert [r["method"] for r in rows] == ["baseline", "kd_cf"]
    folds = [out / "teacher_folds" / f"fold{k}" for k in range(2)]
    assert all((f / "metrics.json").is_file() and (f / "wall.json").is_file() for f in folds)
    summary = json.loads((out / "summary.json").read_text())
    walls = [json.loads((d / "wall.json").read_text())["seconds"]
             for d in [*folds, *(cell_dir(out, "cnn_lstm_xs", m, 0) for m in ("baseline",
                                                                            "kd_cf"))]]
    assert summary["wall_seconds"] == pytest.approx(sum(walls))  # the teacher's run= has none
    info = load_run(cell_dir(out, "cnn_lstm_xs", "kd_cf", 0)).info
    assert info["fold_teachers"] == [str(f) for f in folds]
    assert info["teacher"] == str(tiny_teacher.path)
    assert len(info["fold_teacher_weights"]) == 2
    capsys.readouterr()
    run_experiment(config, out, verbose=0, archive=tmp_path / "archive")
    assert "fold teacher" not in capsys.readouterr().out  # all finished: nothing trained again
    # a record of a cross-fitted run is restored only where the same fold teachers are
    elsewhere = tmp_path / "elsewhere"
    run_experiment(config, elsewhere, verbose=0, train=False, restore=tmp_path / "archive")
    assert "fold teachers are not this grid's" in capsys.readouterr().out
    assert not (cell_dir(elsewhere, "cnn_lstm_xs", "kd_cf", 0) / "metrics.json").exists()
    assert (cell_dir(elsewhere, "cnn_lstm_xs", "baseline", 0) / "metrics.json").exists()
    shutil.copytree(out / "teacher_folds", elsewhere / "teacher_folds")
    rows = run_experiment(config, elsewhere, verbose=0, train=False,
                          restore=tmp_path / "archive")
    assert [r["method"] for r in rows] == ["baseline", "kd_cf"]
    restored = json.loads((cell_dir(elsewhere, "cnn_lstm_xs", "kd_cf", 0)
                           / "model_info.json").read_text())
    assert restored["fold_teachers"] == [str(elsewhere / "teacher_folds" / f"fold{k}")
                                         for k in range(2)]
    # the cell's fold teachers changed (retrained differently): its run is not reused
    from keras_iusp.train.saved_runs import save_run

    fold0 = load_run(folds[0])
    fold0.model.set_weights([w + 0.01 for w in fold0.model.get_weights()])
    save_run(folds[0], fold0.model, fold0.info)
    with pytest.raises(ConfigError, match=r"fold teachers \(weights\)"):
        run_experiment(config, out, verbose=0, train=False)
    shutil.rmtree(out / "teacher_folds")
    shutil.copytree(elsewhere / "teacher_folds", out / "teacher_folds")
    # the same cell configured without cross-fitting is another training: refused, named
    path.write_text(tiny_grid_header("cf") + CROSS_FIT_GRID.replace(
        "cross_fitted = true", "cross_fitted = false"))
    with pytest.raises(ConfigError, match="cross_fitted: stored True, configured False"):
        run_experiment(load_config(path), out, verbose=0, train=False)


def test_a_grid_wide_cross_fitted_leaves_the_baseline_alone(tmp_path, tiny_grid_header):
    from keras_iusp.experiments.config import load_config

    path = tmp_path / "cf.toml"
    path.write_text(tiny_grid_header("cf") + CROSS_FIT_GRID.replace(
        "batch_size = 8\n", "batch_size = 8\ncross_fitted = true\n"))
    config = load_config(path)
    assert not config.distill_config("baseline", 0).cross_fitted
    assert config.distill_config("kd_cf", 0).cross_fitted


@pytest.mark.parametrize("change, message", [
    (("cross_fit_folds = 2\n", ""), r"needs \[teacher\] cross_fit_folds >= 2 \(it is 0\)"),
    (("[method.kd_cf]", "[method.baseline]\ncross_fitted = true\n[method.kd_cf]"),
     r"\[method.baseline\]: cross_fitted = true, but the baseline has no teacher"),
    (("cross_fit_folds = 2", "cross_fit_folds = 1"), "cross_fit_folds = 1: expected 0"),
    (('method = "kd"', 'method = "baseline"'), "baseline has no teacher"),
    (("cross_fitted = true", "cross_fitted = true\naugmentation = { mixup_alpha = 0.4 }"),
     "needs no augmentation"),
    (("cross_fitted = true", 'cross_fitted = "yes"'), "cross_fitted = 'yes': expected bool"),
])
def test_cross_fit_config_errors_name_the_table(tmp_path, tiny_grid_header, change, message):
    from keras_iusp.experiments.config import load_config

    path = tmp_path / "bad.toml"
    path.write_text(tiny_grid_header("cf") + CROSS_FIT_GRID.replace(*change))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_runs_recorded_before_cross_fitting_existed_read_as_not_cross_fitted():
    from keras_iusp.experiments.stale_runs import settings_differences
    from keras_iusp.train.recipe import DistillConfig

    config = DistillConfig(method="kd")
    old = {k: v for k, v in config.hyperparameters().items() if k != "cross_fitted"}
    assert settings_differences({"hyperparameters": old, "teacher": "t"}, config,
                                "cnn_lstm_xs", "t") == []
    crossed = DistillConfig(method="kd", cross_fitted=True)
    assert settings_differences({"hyperparameters": old, "teacher": "t"}, crossed,
                                "cnn_lstm_xs", "t") == [("cross_fitted", False, True)]
