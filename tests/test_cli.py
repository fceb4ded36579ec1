"""The command line: the synth -> features -> train-teacher -> distill chain, and user errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from keras_iusp.cli.main import main


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    assert main(["synth", str(data), "--clips", "24", "--seed", "3", "--clip-seconds", "1.0",
                 "--sample-rate", "16000"]) == 0
    assert main(["train-teacher", "--data", str(data), "--out", str(root / "teacher"),
                 "--clip-seconds", "1.0", "--epochs", "1", "--batch-size", "8"]) == 0
    assert main(["distill", "--data", str(data), "--teacher", str(root / "teacher"),
                 "--student", "dscnn_xs", "--method", "iusp", "--out", str(root / "student"),
                 "--epochs", "1", "--batch-size", "8"]) == 0
    return root


def test_chain_writes_run_directories(chain: Path):
    for run in ("teacher", "student"):
        for name in ("model.keras", "model_info.json", "history.json", "metrics.json"):
            assert (chain / run / name).is_file(), (run, name)
    info = json.loads((chain / "student" / "model_info.json").read_text())
    assert info["model_name"] == "dscnn_xs" and info["hyperparameters"]["method"] == "iusp"
    assert info["feature_config"]["clip_seconds"] == 1.0
    assert any("IUSPDistillation" in x for x in info["hyperparameters"]["losses"])
    history = json.loads((chain / "student" / "history.json").read_text())
    assert {"loss", "student_loss", "kd", "iusp", "val_auprc"} <= set(history)


def test_teacher_metrics_are_named_for_the_teacher(chain: Path):
    """A teacher is no student: its history and metrics name the label loss ``bce``."""
    history = json.loads((chain / "teacher" / "history.json").read_text())
    assert {"loss", "bce", "val_loss", "val_bce", "val_auprc"} <= set(history)
    assert not [k for k in history if "student" in k], sorted(history)
    metrics = json.loads((chain / "teacher" / "metrics.json").read_text())
    assert "val_bce" in metrics and not [k for k in metrics if "student" in k], metrics
    # the student keeps its names
    assert "student_loss" in json.loads((chain / "student" / "history.json").read_text())


def test_features_command_reuses_cache(chain: Path, capsys):
    assert main(["features", "--data", str(chain / "data"), "--clip-seconds", "1.0"]) == 0
    out = capsys.readouterr().out
    assert "24 clips" in out and "features (24, 98, 64)" in out


def test_models_command_lists_zoo(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("teacher_cnn", "cnn_lstm_xs", "cnn_lstm_l", "dscnn_xs", "dscnn_l"):
        assert name in out
    assert main(["models", "cnn_lstm_xs", "--clip-seconds", "1"]) == 0
    assert "IUSP candidate layers (time axis):" in capsys.readouterr().out


def test_user_errors_are_one_line_without_traceback(tmp_path: Path):
    cases = [
        ["distill", "--data", str(tmp_path), "--teacher", str(tmp_path / "none"),
         "--out", str(tmp_path / "o")],
        ["features", "--data", str(tmp_path / "missing")],
        ["synth", str(tmp_path / "s"), "--clips", "0"],
    ]
    for args in cases:
        proc = subprocess.run([sys.executable, "-m", "keras_iusp.cli.main", *args],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("keras-iusp: error:")]
        assert len(errors) == 1, proc.stderr


def test_distill_rejects_unknown_layer(chain: Path, capsys):
    code = main(["distill", "--data", str(chain / "data"), "--teacher", str(chain / "teacher"),
                 "--student", "dscnn_xs", "--student-layer", "nope", "--out",
                 str(chain / "bad"), "--epochs", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "has no layer 'nope'" in err and "frames" in err


def test_distill_epochs_flag_stops_distillation_after_that_epoch(tiny_data, tiny_teacher,
                                                                   tmp_path):
    """``--distill-epochs 1 --epochs 3``: epoch 1 trains on BCE + KD + IUSP, epochs 2-3 on the
    labels alone (the total equals the label loss), and the run records the setting."""
    _, data, _ = tiny_data
    out = tmp_path / "early"
    assert main(["distill", "--data", str(data), "--teacher", str(tiny_teacher.path),
                 "--method", "iusp", "--out", str(out),
                 "--epochs", "3", "--batch-size", "8", "--distill-epochs", "1"]) == 0
    info = json.loads((out / "model_info.json").read_text())
    assert info["hyperparameters"]["distill_epochs"] == 1
    history = json.loads((out / "history.json").read_text())
    assert history["loss"][0] != pytest.approx(history["student_loss"][0], rel=1e-3)
    for epoch in (1, 2):
        assert history["loss"][epoch] == pytest.approx(history["student_loss"][epoch], rel=1e-5)
        assert history["iusp"][epoch] > 0  # still measured after the switch


@pytest.mark.parametrize("argv, named", [
    (["--method", "baseline", "--distill-epochs", "30"], ["--distill-epochs"]),
    (["--method", "baseline", "--temperature", "2", "--iusp-weight", "3"],
     ["--temperature", "--iusp-weight"]),
    (["--method", "kd", "--iusp-weight", "3"], ["--iusp-weight"]),
    (["--method", "kd", "--student-layer", "lstm"], ["--student-layer"]),
    (["--method", "sp", "--iusp-form", "paper"], ["--iusp-form"]),
    (["--method", "iusp", "--sp-weight", "10"], ["--sp-weight"]),
    (["--method", "baseline", "--no-teacher-cache"], ["--no-teacher-cache"]),
    (["--method", "kd", "--augment", "--no-teacher-cache"], ["--no-teacher-cache"]),
    (["--method", "baseline", "--fold-teachers", "."], ["--fold-teachers"]),
])
def test_distill_refuses_flags_the_method_ignores(tmp_path: Path, capsys, argv, named):
    """A flag the chosen method would ignore fails in one line, before any data is read and
    without a run folder (the data and teacher folders here exist but are empty)."""
    out = tmp_path / "run"
    (tmp_path / "no_data").mkdir()
    (tmp_path / "no_teacher").mkdir()
    code = main(["distill", "--data", str(tmp_path / "no_data"), "--teacher",
                 str(tmp_path / "no_teacher"), "--out", str(out), *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"--method {argv[1]} does not use" in err
    for flag in named:
        assert flag in err
    assert not out.exists()


def test_distill_accepts_the_flags_its_method_reads():
    """The refusal above is not a blanket one: each method's own flags all pass the check
    together, and the list of each method's flags matches the settings the grid compares for
    that method."""
    from keras_iusp.cli.main import _METHOD_FLAGS, _check_method_flags, build_parser
    from keras_iusp.experiments.stale_runs import RELEVANT_SETTINGS

    values = {"temperature": "2", "student_loss_weight": "0.3", "kd_weight": "1",
              "distill_epochs": "5", "sp_weight": "10", "iusp_weight": "3",
              "iusp_form": "paper", "teacher_layer": "embedding", "student_layer": "lstm",
              "unlabeled": "pool", "unlabeled_ratio": "1"}
    for method, flags in _METHOD_FLAGS.items():
        grid_only = set(RELEVANT_SETTINGS[method]) - set(RELEVANT_SETTINGS["baseline"])
        # cross_fitted is set by --fold-teachers DIR, which names the fold teachers too
        assert set(flags) == grid_only - {"cross_fitted"}, method
        argv = ["distill", "--data", ".", "--teacher", ".", "--method", method, "--out", "o",
                "--no-teacher-cache"]
        for flag in flags:
            argv += [f"--{flag.replace('_', '-')}", values[flag]]
        _check_method_flags(build_parser().parse_args(argv))  # raises if one were refused
    # "--distill-epochs 0" (never stop) and --augment say nothing wrong about a baseline
    _check_method_flags(build_parser().parse_args(
        ["distill", "--data", ".", "--teacher", ".", "--method", "baseline", "--out", "o",
         "--distill-epochs", "0", "--augment"]))


def test_fold_teachers_chain_from_the_command_line(tiny_data, tiny_teacher, tmp_path, capsys):
    """train-fold-teachers repeats the teacher's recipe on each fold's complement; distill
    --fold-teachers then teaches every training clip with the teacher that held it out."""
    from keras_iusp.train.saved_runs import load_run

    _, data, _ = tiny_data
    folds = tmp_path / "folds"
    assert main(["train-fold-teachers", "--data", str(data), "--teacher",
                 str(tiny_teacher.path), "--folds", "2", "--out", str(folds)]) == 0
    assert "2 fold teachers in" in capsys.readouterr().out
    out = tmp_path / "student"
    assert main(["distill", "--data", str(data), "--teacher", str(tiny_teacher.path),
                 "--method", "kd", "--fold-teachers", str(folds), "--epochs", "1",
                 "--batch-size", "8", "--out", str(out)]) == 0
    info = load_run(out).info
    assert info["hyperparameters"]["cross_fitted"] is True
    assert info["fold_teachers"] == [str(folds / "fold0"), str(folds / "fold1")]
    assert info["teacher_outputs"].startswith("teacher-cf-")
    # a folder without fold teachers, and consistent teaching, are named errors
    code = main(["distill", "--data", str(data), "--teacher", str(tiny_teacher.path),
                 "--method", "kd", "--fold-teachers", str(tmp_path), "--epochs", "1",
                 "--out", str(tmp_path / "x")])
    assert code == 2 and "expected fold teachers fold0, fold1" in capsys.readouterr().err
    code = main(["distill", "--data", str(data), "--teacher", str(tiny_teacher.path),
                 "--method", "kd", "--fold-teachers", str(folds), "--augment", "--epochs", "1",
                 "--out", str(tmp_path / "y")])
    assert code == 2 and "needs the teacher-output cache" in capsys.readouterr().err
