"""Paper-scale experiment pieces: config loading, per-method settings, paired statistics, tuning."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.experiments.config import load_config
from keras_iusp.experiments.layout import grid_cells
from keras_iusp.experiments.report_tables import format_paired
from keras_iusp.experiments.statistics import (
    paired_difference,
    paired_table,
    per_class_gains,
    teacher_gap_share,
)
from keras_iusp.utils.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(str(p.relative_to(ROOT / "configs"))
                                          for p in (ROOT / "configs").rglob("*.toml")))
def test_every_committed_config_loads(name):
    config = load_config(ROOT / "configs" / name)
    for method in config.grid.methods:
        config.distill_config(method, seed=0)  # every cell's settings validate


def test_paper_config_is_at_the_paper_scale():
    config = load_config(ROOT / "configs" / "experiment_paper.toml")
    assert config.data.clip_seconds == 10.0 and config.data.synthetic_clips >= 900
    cells = grid_cells(config)
    for student in ("cnn_lstm_xs", "cnn_lstm_s"):
        assert len({s for st, _, s in cells if st == student}) >= 5
    for student in ("cnn_lstm_m", "cnn_lstm_l"):
        assert len({s for st, _, s in cells if st == student}) >= 3
    assert config.teacher.augmentation["mixup_alpha"] > 0


def test_method_tables_override_the_grid(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[grid]\nstudents = ["cnn_lstm_xs"]\nseeds = [0, 1]\n'
                    'student_seeds = { cnn_lstm_xs = [3] }\n'
                    '[method.kd]\ntemperature = 2\naugmentation = { mixup_alpha = 0.3 }\n'
                    '[method.iusp]\niusp_weight = 10.0\nstudent_layer = "frames"\n')
    config = load_config(path)
    kd = config.distill_config("kd", seed=3)
    assert kd.temperature == 2.0 and kd.augmentation.mixup_alpha == 0.3
    assert config.distill_config("sp", seed=3).augmentation is None
    iusp = config.distill_config("iusp", seed=3)
    assert iusp.iusp_weight == 10.0 and iusp.student_layer == "frames"
    assert config.distill_config("baseline", 3).temperature == config.grid.temperature
    assert grid_cells(config) == [("cnn_lstm_xs", m, 3) for m in config.grid.methods]


@pytest.mark.parametrize("text,message", [
    ('[method.distill]\nepochs = 3\n', "'distill' is not one of"),
    ('[method.kd]\ncolour = 3\n', r"unknown key\(s\) \['colour'\]"),
    ('[method.kd]\ntemperature = "hot"\n', "temperature = 'hot'"),
    ('[method.kd]\naugmentation = { mixup_alpha = -1 }\n', "mixup_alpha"),
    ('[teacher]\nlr_schedule = "step"\n', "lr_schedule 'step'"),
    ('[grid]\nstudent_seeds = { dscnn_xs = [0] }\n', "not in students"),
])
def test_bad_method_tables_are_named(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def _rows(values):
    """Rows for one student from ``{method: [score per seed]}``."""
    return [{"student": "s", "method": m, "seed": seed, "micro_auprc": v,
             "per_class_ap": {"a": v, "b": 2 * v}}
            for m, scores in values.items() for seed, v in enumerate(scores)]


def test_paired_difference_matches_a_hand_computation():
    rows = _rows({"baseline": [0.50, 0.60, 0.55, 0.52], "iusp": [0.53, 0.61, 0.60, 0.52]})
    d = np.array([0.03, 0.01, 0.05, 0.00])
    result = paired_difference(rows, "s", "iusp", "baseline")
    mean, sd = d.mean(), d.std(ddof=1)
    half = 3.182446305284263 * sd / 2.0  # t_{3, 0.975} from a t table
    assert result["n"] == 4 and result["mean"] == pytest.approx(mean)
    assert result["ci_low"] == pytest.approx(mean - half)
    assert result["ci_high"] == pytest.approx(mean + half)


def test_teacher_gap_share_matches_a_hand_computation():
    # baseline has a fifth seed that IUSP lacks: the gap uses the paired seeds' baseline only
    rows = _rows({"baseline": [0.50, 0.60, 0.55, 0.52, 0.10], "iusp": [0.53, 0.61, 0.60, 0.52]})
    teacher = 0.80
    gap = 0.80 - (0.50 + 0.60 + 0.55 + 0.52) / 4  # 0.2575
    d = np.array([0.03, 0.01, 0.05, 0.00])
    half = 3.182446305284263 * d.std(ddof=1) / 2.0
    share = teacher_gap_share(paired_difference(rows, "s", "iusp", "baseline"), teacher)
    assert share["gap"] == pytest.approx(gap)
    assert share["share"] == pytest.approx(0.0225 / gap)  # 8.7 % of the gap
    assert share["share_low"] == pytest.approx((0.0225 - half) / gap)
    assert share["share_high"] == pytest.approx((0.0225 + half) / gap)
    # a baseline at or above the teacher has no gap to close
    assert teacher_gap_share(paired_difference(rows, "s", "iusp", "baseline"), 0.5) is None


def test_paired_table_reports_the_gap_share_against_the_baseline_only():
    rows = _rows({"baseline": [0.50, 0.60], "kd": [0.55, 0.65], "iusp": [0.60, 0.70],
                  "sp": [0.52, 0.62]})
    pairs = {(p["method"], p["reference"]): p
             for p in paired_table(rows, ["s"], ["baseline", "kd", "iusp", "sp"],
                                   teacher_score=0.75)}
    assert pairs[("kd", "baseline")]["share"] == pytest.approx(0.05 / 0.20)
    assert pairs[("iusp", "baseline")]["share"] == pytest.approx(0.10 / 0.20)
    assert "share" not in pairs[("iusp", "sp")]
    text = format_paired(list(pairs.values()))
    assert "share of teacher - baseline gap" in text
    kd_line = next(line for line in text.splitlines() if "| KD - baseline |" in line)
    assert kd_line.rstrip().endswith("+25% [+25%, +25%] |")


def test_paired_difference_pairs_by_seed_and_handles_one_seed():
    rows = _rows({"baseline": [0.5, 0.6], "kd": [0.7]})
    result = paired_difference(rows, "s", "kd", "baseline")
    assert result["n"] == 1 and result["mean"] == pytest.approx(0.2)
    assert np.isnan(result["ci_low"])
    assert paired_difference(rows, "s", "sp", "baseline") is None


def test_per_class_gains_are_paired_means():
    rows = _rows({"baseline": [0.5, 0.6], "sp": [0.6, 0.6]})
    gains = per_class_gains(rows, ["a", "b"], "sp")
    assert gains["a"] == pytest.approx(0.05) and gains["b"] == pytest.approx(0.1)
    # a second student enters the pooled mean but not the first student's own
    other = [{**r, "student": "t", "per_class_ap": {"a": 0.0, "b": 0.0}}
             for r in _rows({"baseline": [0.5], "sp": [0.9]})]
    other[1]["per_class_ap"] = {"a": 0.3, "b": 0.3}
    pooled = per_class_gains(rows + other, ["a", "b"], "sp")
    assert pooled["a"] == pytest.approx((0.1 + 0.0 + 0.3) / 3)
    own = per_class_gains(rows + other, ["a", "b"], "sp", student="s")
    assert own == pytest.approx(gains)
    assert per_class_gains(rows + other, ["a", "b"], "sp", student="t")["b"] == pytest.approx(0.3)
    assert per_class_gains(rows, ["a", "b"], "sp", student="nobody") is None


def test_tuning_writes_loadable_method_tables(tmp_path, tiny_data):
    from keras_iusp.experiments.config import ExperimentConfig, GridSection, TeacherSection
    from keras_iusp.experiments.tune import run_tuning

    _, data_dir, _ = tiny_data
    config = ExperimentConfig(
        name="t", teacher=TeacherSection(epochs=1, batch_size=8),
        grid=GridSection(students=["cnn_lstm_xs"], methods=["baseline", "kd"], seeds=[0],
                         epochs=1, batch_size=8))
    config.data.path = str(data_dir)
    config.data.clip_seconds = 1.0
    summary = run_tuning(config, tmp_path / "exp", trials=2, epochs=1, verbose=0)
    for method in ("baseline", "kd"):
        trials = summary["methods"][method]["trials"]
        assert len(trials) == 2
        # the first trial is the grid's own settings
        assert trials[0]["params"]["learning_rate"] == pytest.approx(config.grid.learning_rate)
    best = (tmp_path / "exp" / "tuning" / "best.toml").read_text()
    merged = tmp_path / "merged.toml"
    merged.write_text('[grid]\nstudents = ["cnn_lstm_xs"]\n' + best)
    loaded = load_config(merged)
    assert set(loaded.method) == {"baseline", "kd"}
    # a second call finds the studies finished and trains nothing new
    again = run_tuning(config, tmp_path / "exp", trials=2, epochs=1, verbose=0)
    assert again["methods"]["kd"]["best_value"] == summary["methods"]["kd"]["best_value"]
    assert json.loads((tmp_path / "exp" / "tuning" / "trials.json").read_text())["trials"] == 2


def test_a_killed_tuning_leaves_the_trials_it_finished(tmp_path, tiny_data, monkeypatch):
    """trials.json is written after every trial: a search killed during its second trial keeps
    the first, marked as one of two, and writes no winners."""
    from keras_iusp.experiments import tune
    from keras_iusp.experiments.config import ExperimentConfig, GridSection, TeacherSection

    _, data_dir, _ = tiny_data
    config = ExperimentConfig(
        name="t", teacher=TeacherSection(epochs=1, batch_size=8),
        grid=GridSection(students=["cnn_lstm_xs"], methods=["baseline"], seeds=[0], epochs=1,
                         batch_size=8))
    config.data.path = str(data_dir)
    config.data.clip_seconds = 1.0
    calls = []
    real_distill = tune.distill

    def killed_on_the_second_run(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_distill(*args, **kwargs)

    monkeypatch.setattr(tune, "distill", killed_on_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        tune.run_tuning(config, tmp_path / "exp", trials=2, epochs=1, verbose=0)
    record = json.loads((tmp_path / "exp" / "tuning" / "trials.json").read_text())
    baseline = record["methods"]["baseline"]
    assert (baseline["trials_finished"], baseline["budget"], len(baseline["trials"])) == (1, 2, 1)
    assert baseline["best_value"] == baseline["trials"][0]["val_micro_auprc"]
    assert not (tmp_path / "exp" / "tuning" / "best.toml").exists()


def test_augmentation_draws_follow_the_run_seed(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[grid]\nstudents = ["cnn_lstm_xs"]\n'
                    '[method.sp]\naugmentation = { mixup_alpha = 0.4, seed = 0 }\n'
                    '[method.kd]\naugmentation = { mixup_alpha = 0.4 }\n')
    config = load_config(path)
    assert config.distill_config("sp", seed=3).augmentation.seed == 3
    assert config.distill_config("kd", seed=3).augmentation.seed == 3


def _history(run: Path, val_auprc, student_loss, val_student_loss) -> dict:
    run.mkdir(parents=True)
    (run / "history.json").write_text(json.dumps({
        "val_auprc": val_auprc, "student_loss": student_loss,
        "val_student_loss": val_student_loss}))
    return {"student": "cnn_lstm_xs", "params": 1, "run": str(run)}


def test_label_fit_reads_the_kept_epoch_and_the_last_training_loss(tmp_path):
    from keras_iusp.experiments.report_tables import format_label_fit
    from keras_iusp.experiments.statistics import label_fit

    rows = [
        {**_history(tmp_path / "b0", [0.5, 0.7, 0.6], [0.5, 0.4, 0.3], [0.6, 0.45, 0.5]),
         "method": "baseline", "seed": 0},
        {**_history(tmp_path / "b1", [0.6, 0.65, 0.8], [0.5, 0.4, 0.2], [0.6, 0.5, 0.4]),
         "method": "baseline", "seed": 1},
        {**_history(tmp_path / "i0", [0.9, 0.1, 0.2], [0.7, 0.6, 0.5], [0.3, 0.2, 0.1]),
         "method": "iusp", "seed": 0},
        # a run still training (no history yet) is skipped, not counted
        {"student": "cnn_lstm_xs", "params": 1, "run": str(tmp_path / "missing"),
         "method": "iusp", "seed": 1},
    ]
    fit = label_fit(rows, ["baseline", "iusp"])
    assert [(e["method"], e["n"]) for e in fit] == [("baseline", 2), ("iusp", 1)]
    base, iusp = fit
    # baseline: kept epochs 2 (0.7) and 3 (0.8); last-epoch training BCE 0.3 and 0.2;
    # validation BCE at the kept epochs 0.45 and 0.4
    assert base["val_auprc"] == pytest.approx(0.75)
    assert base["best_epoch"] == pytest.approx(2.5)
    assert base["train_label_bce"] == pytest.approx(0.25)
    assert base["val_label_bce"] == pytest.approx(0.425)
    assert iusp["best_epoch"] == 1 and iusp["val_label_bce"] == pytest.approx(0.3)
    assert iusp["train_label_bce"] == pytest.approx(0.5)
    text = format_label_fit(fit)
    assert "| cnn_lstm_xs | IUSP | 1 | 0.900 | 1.0 / 3 | 0.500 | 0.300 |" in text
    assert "| cnn_lstm_xs | baseline | 2 | 0.750 | 2.5 / 3 | 0.250 | 0.425 |" in text


def test_label_fit_and_best_weights_skip_diverged_epochs(tmp_path):
    import tf_keras as keras

    from keras_iusp.experiments.statistics import label_fit
    from keras_iusp.train.resume import BestWeights

    nan = float("nan")
    rows = [{**_history(tmp_path / "r", [0.5, nan, 0.4], [0.5, 0.4, 0.3], [0.6, 0.5, 0.7]),
             "method": "baseline", "seed": 0},
            {**_history(tmp_path / "dead", [nan, nan], [0.5, 0.4], [0.6, 0.5]),
             "method": "baseline", "seed": 1}]
    (fit,) = label_fit(rows)
    assert fit["n"] == 1 and fit["best_epoch"] == 1 and fit["val_label_bce"] == 0.6

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    best = BestWeights(model, tmp_path / "work")
    for epoch, value in enumerate([0.5, nan, 0.4, 0.6, nan]):
        best.on_epoch_end(epoch, {"val_auprc": value})
        if epoch == 2:
            assert best.best()["epoch"] == 0  # NaN never displaced the kept epoch
    assert best.best() == {"epoch": 3, "value": 0.6}


def test_kept_epoch_is_the_first_finite_maximum_as_best_weights_keeps_it():
    from keras_iusp.experiments.statistics import kept_epoch

    nan = float("nan")
    assert kept_epoch({"val_auprc": [0.3, 0.5, nan, 0.5, 0.4]}) == 1  # ties: the first
    assert kept_epoch({"val_auprc": [nan, 0.2, float("inf"), 0.1]}) == 1  # never inf or NaN
    assert kept_epoch({"val_auprc": [nan, nan]}) is None
    assert kept_epoch({}) is None


def test_tuning_scores_trials_on_paired_seeds_and_warm_starts_children(tmp_path, tiny_data,
                                                                        capsys):
    """``seeds=[0, 1]``: every trial trains both seeds and scores their mean. KD, tuned in a
    later call, starts its second trial from the baseline's winner (read from the baseline's
    study) with KD's own settings. Finished runs are reused, not retrained, when a study has to
    re-run their trial, and a study scored on other seeds is refused before any work."""
    from keras_iusp.experiments.config import ExperimentConfig, GridSection, TeacherSection
    from keras_iusp.experiments.tune import run_tuning

    _, data_dir, _ = tiny_data
    config = ExperimentConfig(
        name="t", teacher=TeacherSection(epochs=1, batch_size=8),
        grid=GridSection(students=["cnn_lstm_xs"], methods=["kd", "baseline"], seeds=[0],
                         epochs=1, batch_size=8),
        method={"kd": {"learning_rate": 5e-3, "temperature": 2.0}})
    config.data.path = str(data_dir)
    config.data.clip_seconds = 1.0
    out = tmp_path / "exp"
    base = run_tuning(config, out, trials=2, epochs=1, seeds=[0, 1], methods=["baseline"],
                      verbose=0)
    summary = run_tuning(config, out, trials=2, epochs=1, seeds=[0, 1], methods=["kd"], verbose=0)
    for method, result in (("baseline", base), ("kd", summary)):
        for trial in result["methods"][method]["trials"]:
            assert len(trial["per_seed"]) == 2
            assert trial["val_micro_auprc"] == pytest.approx(np.mean(trial["per_seed"]))
        folders = sorted(p.name for p in (out / "tuning" / method).glob("trial-*/seed*"))
        assert folders == ["seed0", "seed0", "seed1", "seed1"]
    baseline_best = base["methods"]["baseline"]["best_params"]
    kd_trials = summary["methods"]["kd"]["trials"]
    assert kd_trials[0]["params"]["learning_rate"] == pytest.approx(5e-3)  # KD's own first
    assert kd_trials[1]["params"] == {**kd_trials[0]["params"],
                                      "learning_rate": baseline_best["learning_rate"],
                                      "augment": baseline_best["augment"]}
    assert "kd: trial 2 starts from baseline's winner" in capsys.readouterr().out
    assert "seeds 0, 1" in (out / "tuning" / "best.toml").read_text()

    # parents first, whatever the order asked; both studies are finished: nothing trains
    both = run_tuning(config, out, trials=2, epochs=1, seeds=[0, 1], methods=["kd", "baseline"],
                      verbose=0)
    assert list(both["methods"]) == ["baseline", "kd"]

    # a lost study re-runs its trials: their finished runs are read back, not retrained
    models = sorted((out / "tuning" / "baseline").glob("trial-*/seed*/model.keras"))
    stamps = [m.stat().st_mtime_ns for m in models]
    (out / "tuning" / "baseline.db").unlink()
    again = run_tuning(config, out, trials=2, epochs=1, seeds=[0, 1], methods=["baseline"],
                       verbose=0)
    assert [m.stat().st_mtime_ns for m in models] == stamps
    assert sorted((out / "tuning" / "baseline").glob("trial-*/seed*/model.keras")) == models
    assert again["methods"]["baseline"]["best_value"] == pytest.approx(
        base["methods"]["baseline"]["best_value"])

    with pytest.raises(ConfigError, match=r"scored its trials on seeds \[0, 1\], not \[0\]"):
        run_tuning(config, out, trials=2, epochs=1, seeds=[0], methods=["kd"], verbose=0)


def test_warm_start_takes_the_parents_shared_parameters_only():
    from keras_iusp.experiments.config import ExperimentConfig, GridSection
    from keras_iusp.experiments.tune import warm_start_params

    config = ExperimentConfig(
        name="t", grid=GridSection(students=["cnn_lstm_xs"], methods=["kd", "iusp"],
                                   iusp_weight=10.0, learning_rate=3e-3),
        method={"iusp": {"student_layer": "frames"}})
    kd_best = {"learning_rate": 9e-3, "augment": False, "epochs": 60, "temperature": 1.0,
               "student_loss_weight": 0.52}
    params = warm_start_params(config, "iusp", kd_best)
    assert params == {**kd_best, "iusp_weight": 10.0, "student_layer": "frames",
                      "iusp_form": "cosine"}
    # the baseline's winner gives KD only what KD shares with it
    assert warm_start_params(config, "kd", {"learning_rate": 1e-3, "augment": True}) == {
        "learning_rate": 1e-3, "augment": True, "epochs": config.grid.epochs,
        "temperature": config.grid.temperature,
        "student_loss_weight": config.grid.student_loss_weight}
