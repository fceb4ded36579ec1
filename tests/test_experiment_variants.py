"""Method variants in one paired grid, stale-run detection, and the report on any method list."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.experiments.config import load_config
from keras_iusp.experiments.layout import cell_dir, grid_cells
from keras_iusp.experiments.report_figures import run_layers, similarity_students
from keras_iusp.experiments.report_tables import (
    format_class_gains,
    format_distances,
    format_distances_by_form,
    format_paired,
    format_table,
)
from keras_iusp.experiments.stale_runs import (
    PENDING_SETTINGS,
    check_run_settings,
    settings_differences,
)
from keras_iusp.experiments.statistics import comparison_pairs, paired_table, summarize
from keras_iusp.train.recipe import DistillConfig
from keras_iusp.utils.errors import ConfigError

VARIANTS = """
[grid]
students = ["cnn_lstm_xs"]
methods = ["baseline", "iusp_paper", "iusp", "iusp_centered"]
seeds = [0, 1]
iusp_form = "cosine"
[method.iusp]
learning_rate = 0.003
iusp_weight = 10.0
[method.iusp_paper]
method = "iusp"
iusp_form = "paper"
[method.iusp_centered]
method = "iusp"
iusp_form = "centered"
iusp_weight = 3
"""


def _load(tmp_path: Path, text: str):
    path = tmp_path / "c.toml"
    path.write_text(text)
    return load_config(path)


def test_variants_run_their_base_method_with_its_settings(tmp_path):
    config = _load(tmp_path, VARIANTS)
    assert config.variants() == {"iusp_paper": "iusp", "iusp_centered": "iusp"}
    paper = config.distill_config("iusp_paper", seed=1)
    assert paper.method == "iusp" and paper.iusp_form == "paper" and paper.seed == 1
    # inherited from [method.iusp], so the arm differs from IUSP only in its own keys
    assert paper.learning_rate == 0.003 and paper.iusp_weight == 10.0
    centered = config.distill_config("iusp_centered", seed=0)
    assert centered.iusp_form == "centered" and centered.iusp_weight == 3.0
    assert config.distill_config("iusp", seed=0).iusp_form == "cosine"
    assert "method" not in config.settings("iusp_paper")
    assert grid_cells(config) == [("cnn_lstm_xs", m, seed) for seed in (0, 1)
                                  for m in ("baseline", "iusp_paper", "iusp", "iusp_centered")]
    assert cell_dir("out", "cnn_lstm_xs", "iusp_paper", 1) == \
        Path("out/runs/cnn_lstm_xs/iusp_paper/seed1")
    # a built-in table may name itself as its method
    assert _load(tmp_path, '[method.kd]\nmethod = "kd"\ntemperature = 3\n').distill_config(
        "kd", 0).temperature == 3.0


@pytest.mark.parametrize("text,table,message", [
    ('[method.iusp_x]\niusp_form = "paper"\n', "[method.iusp_x]",
     r"'iusp_x' is not one of .* needs method = one of"),
    ('[method.v]\nmethod = "iusp_paper"\n', "[method.v]", "a variant's method must be one of"),
    ('[method.kd]\nmethod = "sp"\n', "[method.kd]", "built-in method 'kd' always runs as itself"),
    ('[method."iusp-paper"]\nmethod = "iusp"\n', "[method.iusp-paper]", "must be an identifier"),
    ('[method.IUSP]\nmethod = "iusp"\n', "[method.IUSP]", "clashes with the built-in method"),
    ('[method.v]\nmethod = "iusp"\ncolour = 1\n', "[method.v]", r"unknown key\(s\) \['colour'\]"),
    ('[method.v]\nmethod = "kd"\nlr_schedule = "step"\n', "[method.v]", "lr_schedule 'step'"),
    ('[method.v]\nmethod = "kd"\naugmentation = { mixup_alpha = -1 }\n', "[method.v]",
     "mixup_alpha"),
    ('[method.v]\nmethod = "iusp"\ndistill_epochs = -1\n', "[method.v]",
     "distill_epochs = -1: expected an integer >= 0"),
    ('[grid]\nmethods = ["baseline", "iusp_paper"]\n', "[grid]", "nor a variant"),
    ('[grid]\nmethods = ["baseline", "kd", "baseline"]\n', "[grid]", "more than once"),
])
def test_bad_variants_name_the_file_and_table(tmp_path, text, table, message):
    path = tmp_path / "bad.toml"
    path.write_text('[grid]\nstudents = ["cnn_lstm_xs"]\n' + text if "[grid]" not in text
                    else text)
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value) and table in str(error.value)


def test_tune_skips_variants_and_refuses_them_by_name(tmp_path, capsys):
    from keras_iusp.experiments.tune import run_tuning

    config = _load(tmp_path, VARIANTS)
    with pytest.raises(ConfigError, match="'iusp_paper' is a variant of 'iusp'"):
        run_tuning(config, tmp_path / "t", methods=["iusp_paper"])
    # the grid's own method list: variants are left out (here nothing is left to tune)
    config.grid.methods = ["iusp_paper", "iusp_centered"]
    with pytest.raises(ConfigError, match="no method to tune"):
        run_tuning(config, tmp_path / "t")
    assert "skipping variant(s) ['iusp_paper', 'iusp_centered']" in capsys.readouterr().out


# ---- the report on synthetic rows ----------------------------------------------------------

SCORES = {  # per seed 0..3
    "baseline": [0.50, 0.60, 0.55, 0.52],
    "sp": [0.52, 0.60, 0.57, 0.50],
    "iusp": [0.53, 0.61, 0.60, 0.52],
    "iusp_paper": [0.49, 0.64, 0.58, 0.55],
    "kd_hot": [0.51, 0.59, 0.50, 0.56],
}
BASES = {"baseline": "baseline", "sp": "sp", "iusp": "iusp", "iusp_paper": "iusp",
         "kd_hot": "kd"}
METHODS = ["baseline", "iusp_paper", "sp", "iusp", "kd_hot"]


def _rows(scores=SCORES):
    return [{"student": "s", "params": 100, "method": m, "base_method": BASES[m], "seed": seed,
             "micro_auprc": v, "per_class_ap": {"a": v, "b": v * v},
             "run": f"runs/s/{m}/seed{seed}"}
            for m, values in scores.items() for seed, v in enumerate(values)]


def test_variant_comparisons_follow_the_grid():
    assert comparison_pairs(METHODS, BASES) == [
        ("sp", "baseline"), ("iusp", "baseline"), ("iusp", "sp"),
        ("iusp_paper", "baseline"), ("iusp_paper", "iusp"), ("iusp_paper", "sp"),
        ("kd_hot", "baseline")]  # kd is not in the grid: no kd_hot - KD
    assert comparison_pairs(["baseline", "kd", "kd_hot"], BASES)[-2:] == [
        ("kd_hot", "baseline"), ("kd_hot", "kd")]


def test_variant_paired_differences_match_a_hand_computation():
    pairs = {(p["method"], p["reference"]): p for p in paired_table(_rows(), ["s"], METHODS)}
    t3 = 3.182446305284263  # t_{3, 0.975} from a t table
    for (method, reference) in [("iusp_paper", "baseline"), ("iusp_paper", "sp"),
                                ("iusp_paper", "iusp"), ("kd_hot", "baseline")]:
        d = np.subtract(SCORES[method], SCORES[reference])
        half = t3 * d.std(ddof=1) / 2.0
        p = pairs[(method, reference)]
        assert p["n"] == 4 and p["mean"] == pytest.approx(d.mean())
        assert (p["ci_low"], p["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    # iusp_paper - baseline by hand: [-0.01, 0.04, 0.03, 0.03] -> mean 0.0225
    assert pairs[("iusp_paper", "baseline")]["mean"] == pytest.approx(0.0225)
    assert format_paired([]).startswith("No two methods")
    text = format_paired(list(pairs.values()))
    # iusp_paper - SP by hand: [-0.03, 0.04, 0.01, 0.05] -> mean 0.0175
    assert "| s | iusp_paper - SP | 4 | +0.0175 |" in text
    assert "| s | kd_hot - baseline | 4 | -0.0025 |" in text


def test_table_columns_follow_the_configured_methods():
    table = summarize(_rows(), METHODS)
    assert list(table[0]["methods"]) == METHODS
    assert table[0]["gain_over_baseline"]["iusp_paper"] == pytest.approx(
        np.mean(SCORES["iusp_paper"]) - np.mean(SCORES["baseline"]))
    header, _, row = format_table(table, METHODS).splitlines()
    assert header == ("| student | params | baseline | iusp_paper | SP | IUSP | kd_hot "
                      "| iusp_paper - base | SP - base | IUSP - base | kd_hot - base "
                      "| IUSP rel. to SP |")
    cells = [f"{np.mean(SCORES[m]):.3f} ± {np.std(SCORES[m], ddof=1):.3f}" for m in METHODS]
    assert row.startswith("| s | 100 | " + " | ".join(cells) + " | +0.022 |")
    # without SP there is no relative column, without variants the four stay as they were
    no_sp = ["baseline", "iusp_paper", "iusp"]
    rows = [r for r in _rows() if r["method"] in no_sp]
    assert "rel. to SP" not in format_table(summarize(rows, no_sp), no_sp)
    # a cell of one seed shows no spread
    one = {"baseline": SCORES["baseline"], "iusp": SCORES["iusp"][:1]}
    row = format_table(summarize(_rows(one), ["baseline", "iusp"]),
                       ["baseline", "iusp"]).splitlines()[2]
    assert f"| {SCORES['iusp'][0]:.3f} (1 seed) |" in row and "± 0.000" not in row
    four = {m: SCORES[m] for m in ("baseline", "sp", "iusp")}
    assert format_table(summarize(_rows(four))).splitlines()[0] == (
        "| student | params | baseline | KD | SP | IUSP | KD - base | SP - base | IUSP - base "
        "| IUSP rel. to SP |")


def test_class_gains_and_distances_cover_every_method():
    text = format_class_gains(_rows(), ["a", "b"], METHODS)
    header, _, a, b = text.splitlines()
    assert header == ("| student | class | iusp_paper - base | SP - base | IUSP - base "
                      "| kd_hot - base |")
    gain_b = np.mean(np.square(SCORES["iusp_paper"]) - np.square(SCORES["baseline"]))
    assert b.split(" | ")[:3] == ["| s", "b", f"{gain_b:+.3f}"]
    distances = [{"student": "s", "method": m, "seed": seed, "distance": 1.0 + i + seed}
                 for i, m in enumerate(METHODS) for seed in (0, 1)]
    lines = format_distances(distances, METHODS).splitlines()[2:]
    assert [line.split(" | ")[1] for line in lines] == METHODS
    # iusp_paper: mean 2.5 over seeds, baseline 1.5
    assert lines[1] == "| s | iusp_paper | 2 | 2.5000 ± 0.7071 | 1.67 |"


def test_class_gains_are_per_student_not_pooled():
    # student "t" has only seed 0 of SP and no kd_hot: its cells are its own, never mixed with
    # "s", and a method it lacks reads n/a
    other = [{**r, "student": "t", "per_class_ap": {"a": 1 - r["micro_auprc"], "b": 0.0},
              "run": r["run"].replace("runs/s", "runs/t")}
             for r in _rows({"baseline": SCORES["baseline"][:1], "sp": SCORES["sp"][:1]})]
    lines = format_class_gains(_rows() + other, ["a", "b"], METHODS).splitlines()
    assert [line.split(" | ")[:2] for line in lines[2:]] == [
        ["| s", "a"], ["| s", "b"], ["| t", "a"], ["| t", "b"]]
    gain_s_a = np.mean(np.subtract(SCORES["sp"], SCORES["baseline"]))
    assert lines[2].split(" | ")[3] == f"{gain_s_a:+.3f}"
    # t, class a: (1 - 0.52) - (1 - 0.50) = -0.02; class b: 0
    assert lines[4] == "| t | a | n/a | -0.020 | n/a | n/a |"
    assert lines[5] == "| t | b | n/a | +0.000 | n/a | n/a |"


def test_distances_by_form_ratio_each_form_to_its_baseline():
    # two forms on different scales: every cell is the method's mean over seeds in that form and
    # its ratio to the baseline's mean in the same form
    distances = [{"student": "s", "method": m, "seed": seed, "distance": 0.0,
                  "distances": {"paper": 1e-3 * (1 + i + seed), "cosine": 0.1 * (2 - i) + seed}}
                 for i, m in enumerate(["baseline", "iusp_paper"]) for seed in (0, 1)]
    lines = format_distances_by_form(distances, ["baseline", "iusp_paper"]).splitlines()
    assert lines[0] == "| student | method | seeds | paper (÷ baseline) | cosine (÷ baseline) |"
    # baseline: paper mean 1.5e-3, cosine mean 0.7; iusp_paper: 2.5e-3 and 0.6
    assert lines[2] == "| s | baseline | 2 | 0.0015 (1.00) | 0.7 (1.00) |"
    assert lines[3] == "| s | iusp_paper | 2 | 0.0025 (1.67) | 0.6 (0.86) |"
    assert format_distances_by_form([{"student": "s", "method": "kd", "seed": 0,
                                      "distance": 1.0}]) == ""


def test_similarity_uses_each_runs_own_layers(tmp_path):
    rows = _rows()
    for r in rows:
        r["student"] = "cnn_lstm_xs"
        r["run"] = str(tmp_path / r["method"] / f"seed{r['seed']}")
        Path(r["run"]).mkdir(parents=True)
        hyper = {"student_layer": "frames" if r["method"] == "sp" else None,
                 "teacher_layer": "pool" if r["method"] == "iusp_paper" else None}
        (Path(r["run"]) / "model_info.json").write_text(json.dumps({"hyperparameters": hyper}))
        (Path(r["run"]) / "model.keras").write_bytes(b"")  # only its presence is read here
    shown = similarity_students(rows, "cnn_lstm_xs", 1, METHODS)
    assert [(m, t, s) for m, _, t, s in shown] == [
        ("baseline", "embedding", "lstm"), ("sp", "embedding", "frames"),
        ("iusp", "embedding", "lstm"), ("iusp_paper", "pool", "lstm")]
    assert shown[1][1] == str(tmp_path / "sp" / "seed1")
    assert run_layers(tmp_path / "missing", "cnn_lstm_xs") == ("embedding", "lstm")
    # a restored record (no weights) is left out of the figure; without any IUSP run, no figure
    (tmp_path / "sp" / "seed1" / "model.keras").unlink()
    assert [m for m, *_ in similarity_students(rows, "cnn_lstm_xs", 1, METHODS)] == [
        "baseline", "iusp", "iusp_paper"]
    for method in ("iusp", "iusp_paper"):
        (tmp_path / method / "seed1" / "model.keras").unlink()
    assert similarity_students(rows, "cnn_lstm_xs", 1, METHODS) == []
    # no IUSP-trained run of that student and seed: no figure
    assert similarity_students([r for r in rows if BASES[r["method"]] != "iusp"],
                               "cnn_lstm_xs", 1, METHODS) == []


# ---- stale runs ----------------------------------------------------------------------------

def _fake_run(run_dir: Path, config: DistillConfig, teacher: str | None, finished=True) -> Path:
    """A run directory holding only what the grid reads before reusing a run."""
    run_dir.mkdir(parents=True)
    (run_dir / "model_info.json").write_text(json.dumps(
        {"hyperparameters": {**config.hyperparameters(), "losses": [], "weights": []},
         "teacher": teacher}))
    if finished:
        (run_dir / "metrics.json").write_text("{}")
    return run_dir


def test_a_run_with_other_settings_is_refused(tmp_path):
    stored = DistillConfig(method="sp", learning_rate=3e-3, sp_weight=100.0, epochs=5,
                           augmentation={"mixup_alpha": 0.4, "seed": 2}, seed=2)
    run = _fake_run(tmp_path / "runs" / "cnn_lstm_xs" / "sp" / "seed2", stored,
                    str(tmp_path / "teacher"))
    wanted = DistillConfig(method="sp", learning_rate=5e-3, sp_weight=100.0, epochs=5,
                           augmentation={"mixup_alpha": 0.4, "seed": 2}, seed=2,
                           student_layer="frames")
    with pytest.raises(ConfigError) as error:
        check_run_settings(run, wanted, "cnn_lstm_xs", tmp_path / "other_teacher")
    message = str(error.value)
    assert str(run) in message and "finished sp run" in message
    assert "learning_rate: stored 0.003, configured 0.005" in message
    assert "student_layer: stored 'lstm', configured 'frames'" in message
    assert f"teacher: stored '{tmp_path / 'teacher'}'" in message
    assert f"Delete {run}" in message and "another --out" in message
    assert "sp_weight" not in message and "epochs" not in message
    # the same settings pass, with the default layer spelled out and a relative teacher path
    same = DistillConfig(method="sp", learning_rate=3e-3 * (1 + 1e-12), sp_weight=100.0,
                         epochs=5, augmentation={"mixup_alpha": 0.4, "seed": 2}, seed=2,
                         student_layer="lstm", teacher_layer="embedding", teacher_cache=False)
    check_run_settings(run, same, "cnn_lstm_xs", tmp_path / "x" / ".." / "teacher")
    # but not a float that moved beyond rounding noise
    same.learning_rate = 3e-3 * (1 + 1e-6)
    assert [d[0] for d in settings_differences(
        json.loads((run / "model_info.json").read_text()), same, "cnn_lstm_xs",
        tmp_path / "teacher")] == ["learning_rate"]


def test_settings_a_method_ignores_do_not_matter(tmp_path):
    stored = DistillConfig(method="baseline", iusp_form="cosine", temperature=4.0,
                           student_layer=None, augmentation={})
    run = _fake_run(tmp_path / "b", stored, None)
    shared = DistillConfig(method="baseline", iusp_form="paper", temperature=1.0,
                           student_layer="frames", sp_weight=7.0, teacher_cache=False,
                           augmentation={"mixup_alpha": 0.0, "seed": 0})
    check_run_settings(run, shared, "cnn_lstm_xs", None)  # reused: nothing relevant differs
    kd = _fake_run(tmp_path / "kd", DistillConfig(method="kd", iusp_form="cosine"), "t")
    check_run_settings(kd, DistillConfig(method="kd", iusp_form="paper", sp_weight=1.0),
                       "cnn_lstm_xs", "t")
    with pytest.raises(ConfigError, match="iusp_form: stored 'cosine', configured 'paper'"):
        iusp = _fake_run(tmp_path / "iusp", DistillConfig(method="iusp"), "t")
        check_run_settings(iusp, DistillConfig(method="iusp", iusp_form="paper"),
                           "cnn_lstm_xs", "t")
    with pytest.raises(ConfigError, match="method: stored 'kd', configured 'sp'"):
        check_run_settings(kd, DistillConfig(method="sp"), "cnn_lstm_xs", "t")


def test_unfinished_runs_are_checked_from_their_pending_settings(tmp_path):
    from keras_iusp.experiments.stale_runs import record_pending_settings

    run = tmp_path / "run"
    first = DistillConfig(method="kd", epochs=4)
    record_pending_settings(run, first, "t")
    assert (run / ".work" / PENDING_SETTINGS).is_file()
    check_run_settings(run, DistillConfig(method="kd", epochs=4), "cnn_lstm_xs", "t")
    with pytest.raises(ConfigError, match=r"unfinished kd run .*\n  epochs: stored 4, "
                                          "configured 6"):
        check_run_settings(run, DistillConfig(method="kd", epochs=6), "cnn_lstm_xs", "t")
    # a run whose training state predates any record: settings unknown, nothing recorded
    legacy = tmp_path / "legacy"
    (legacy / ".work").mkdir(parents=True)
    (legacy / ".work" / "history.csv").write_text("epoch\n0\n")
    record_pending_settings(legacy, first, "t")
    assert not (legacy / ".work" / PENDING_SETTINGS).exists()
    check_run_settings(legacy, DistillConfig(method="kd", epochs=6), "cnn_lstm_xs", "t")


# ---- the grid end to end, on copies of one trained run (no training) -------------------------

def _install(run, out: Path, config, student: str, method: str, seed: int, teacher) -> None:
    """Copy a trained run into a grid cell, recording the settings the cell asks for."""
    target = cell_dir(out, student, method, seed)
    shutil.copytree(run.path, target)
    info = json.loads((target / "model_info.json").read_text())
    dc = config.distill_config(method, seed)
    info["hyperparameters"] = dc.hyperparameters()
    info["teacher"] = str(teacher.path) if dc.method != "baseline" else None
    (target / "model_info.json").write_text(json.dumps(info))


def test_grid_with_variants_reports_and_guards_its_runs(tmp_path, tiny_teacher, lstm_student,
                                                        tiny_grid_header, capsys):
    from keras_iusp.experiments.grid import run_experiment

    text = tiny_grid_header("variants") + """
[grid]
students = ["cnn_lstm_xs"]
methods = ["baseline", "iusp_paper", "iusp"]
seeds = [0]
[method.iusp_paper]
method = "iusp"
iusp_form = "paper"
student_layer = "frames"
epochs = 3
"""
    config = _load(tmp_path, text)
    out = tmp_path / "out"
    for _, method, seed in grid_cells(config):
        _install(lstm_student, out, config, "cnn_lstm_xs", method, seed, tiny_teacher)
    rows = run_experiment(config, out, verbose=0, train=False)
    assert capsys.readouterr().out.count("done, reused") == 3
    assert [(r["method"], r["base_method"]) for r in rows] == [
        ("baseline", "baseline"), ("iusp_paper", "iusp"), ("iusp", "iusp")]
    saved = json.loads((out / "results.json").read_text())
    assert saved[1]["method"] == "iusp_paper" and saved[1]["base_method"] == "iusp"
    assert (out / "results.csv").read_text().splitlines()[0] == \
        "student,params,method,seed,micro_auprc,macro_auprc,micro_f1"
    report = (out / "report.md").read_text()
    assert "| student | params | baseline | iusp_paper | IUSP |" in report
    assert "| cnn_lstm_xs | iusp_paper - baseline | 1 |" in report
    assert "| cnn_lstm_xs | iusp_paper - IUSP | 1 |" in report
    assert '- `iusp_paper`: IUSP with `iusp_form = "paper"`' in report
    assert "Student epochs: 30 (iusp_paper: 3)." in report  # the variant's own epochs
    assert "| cnn_lstm_xs | iusp_paper | 1 |" in report  # IUSP distance table
    # two trained forms: every run's distance in every form, each against the baseline's
    assert "| student | method | seeds | paper (÷ baseline) | cosine (÷ baseline) | " \
        "centered (÷ baseline) |" in report
    # both distance tables and the label-fit table
    assert report.count("| cnn_lstm_xs | baseline | 1 | ") == 3
    assert "## Label fit and validation (diagnostics)" in report
    assert (out / "similarity.png").stat().st_size > 1000

    # a grid that changes the variant finds its old run and stops, naming it
    changed = _load(tmp_path, text.replace('iusp_form = "paper"', 'iusp_form = "centered"'))
    recorded = (out / "config.json").read_text()
    with pytest.raises(ConfigError, match="iusp_paper/seed0 holds a finished iusp run") as error:
        run_experiment(changed, out, verbose=0, train=False)
    # refused before anything is written: config.json still describes the runs the folder holds
    assert (out / "config.json").read_text() == recorded
    assert "iusp_form: stored 'paper', configured 'centered'" in str(error.value)
    # a grid-wide iusp_form that only the baseline sees besides is no change for it
    shared = _load(tmp_path, text.replace("[grid]\n", '[grid]\niusp_form = "centered"\n')
                   .replace('methods = ["baseline", "iusp_paper", "iusp"]',
                            'methods = ["baseline", "iusp_paper"]'))
    assert len(run_experiment(shared, out, verbose=0, train=False)) == 2


def test_distill_epochs_is_a_method_setting_and_old_runs_read_as_zero(tmp_path):
    config = _load(tmp_path, VARIANTS + '[method.iusp_early]\nmethod = "iusp"\n'
                                        'distill_epochs = 30\n')
    early = config.distill_config("iusp_early", seed=0)
    assert early.distill_epochs == 30 and early.iusp_weight == 10.0
    assert config.distill_config("iusp", seed=0).distill_epochs == 0
    # a run recorded before the setting existed distilled in every epoch: reused as 0 ...
    run = _fake_run(tmp_path / "old", config.distill_config("iusp", seed=0), "t")
    info = json.loads((run / "model_info.json").read_text())
    del info["hyperparameters"]["distill_epochs"]
    (run / "model_info.json").write_text(json.dumps(info))
    check_run_settings(run, config.distill_config("iusp", seed=0), "cnn_lstm_xs", "t")
    # ... and refused for an early-stopped arm
    with pytest.raises(ConfigError, match="distill_epochs: stored 0, configured 30"):
        check_run_settings(run, early, "cnn_lstm_xs", "t")
    with pytest.raises(ConfigError, match="distill_epochs=-1"):
        DistillConfig(distill_epochs=-1)
