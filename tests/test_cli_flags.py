"""Every command-line flag the README lists does what it says (the ones other files do not cover:
``--train-rule``, ``--skip-bad``, ``--strict``, ``--targets``, ``evaluate --split test``), and
both configs in ``configs/`` load and validate."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.cli.main import main
from keras_iusp.experiments.config import load_config
from keras_iusp.models import MODEL_SPECS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("flags") / "data"
    assert main(["synth", str(data), "--clips", "16", "--seed", "9", "--clip-seconds", "1.0",
                 "--sample-rate", "16000"]) == 0
    return data


def _train_positives(stdout: str) -> np.ndarray:
    line = next(ln for ln in stdout.splitlines() if ln.strip().startswith("train"))
    return np.array([int(v) for v in re.findall(r"=(\d+)", line)])


def test_train_rule_any_counts_more_crowd_positives(small_data, capsys):
    counts = {}
    for rule in ("majority", "any"):
        assert main(["features", "--data", str(small_data), "--clip-seconds", "1.0",
                     "--train-rule", rule]) == 0
        counts[rule] = _train_positives(capsys.readouterr().out)
    assert np.all(counts["any"] >= counts["majority"])
    assert counts["any"].sum() > counts["majority"].sum()  # the synthetic crowd disagrees


def _copy(data: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(data, copy, ignore=shutil.ignore_patterns(".keras-iusp-cache"))
    return copy


def test_skip_bad_leaves_out_an_unreadable_clip_with_a_report(small_data, tmp_path, capsys):
    data = _copy(small_data, tmp_path)
    bad = sorted((data / "audio").glob("*.wav"))[0]
    bad.write_bytes(b"RIFF this is not a wave file")
    assert main(["features", "--data", str(data), "--clip-seconds", "1.0"]) == 2
    assert bad.name in capsys.readouterr().err
    assert main(["features", "--data", str(data), "--clip-seconds", "1.0", "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert bad.name in out and "features (15, 98, 64)" in out


def test_strict_rejects_a_clip_of_the_wrong_length(small_data, tmp_path, tone_writer, capsys):
    data = _copy(small_data, tmp_path)
    short = sorted((data / "audio").glob("*.wav"))[1]
    tone_writer(short, 16000, 0.5)
    assert main(["features", "--data", str(data), "--clip-seconds", "1.0", "--strict"]) == 2
    err = capsys.readouterr().err
    assert short.name in err.splitlines()[-1] and "keras-iusp: error:" in err.splitlines()[-1]
    assert main(["features", "--data", str(data), "--clip-seconds", "1.0"]) == 0  # padded


def test_export_targets_and_evaluate_test_split(tiny_data, lstm_compressed, tmp_path, capfd):
    from test_quiet_cli import tensorflow_noise

    _, data, _ = tiny_data
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "tiny_mcu.toml").write_text(
        'name = "tiny-mcu"\ndescription = "8 KB flash, 8 KB RAM"\n'
        "flash_bytes = 8192\nram_bytes = 8192\n")
    fw = tmp_path / "fw"
    assert main(["export", str(lstm_compressed), "--data", str(data), "--out", str(fw),
                 "--window-seconds", "0.5", "--golden", "1", "--targets", str(targets),
                 "--seed", "3", "--no-target-budget"]) == 0
    err = capfd.readouterr().err
    assert tensorflow_noise(err) == [] and "fully_quantize" not in err and "XNNPACK" not in err
    report = json.loads((fw / "export_report.json").read_text())
    assert [t["target"] for t in report["targets"]] == ["tiny-mcu"]
    assert report["targets"][0]["fits"] is False  # a CNN-LSTM does not fit 8 KB
    assert "kNumGoldenVectors = 1" in (fw / "golden_vectors.h").read_text()
    assert "| tiny-mcu |" in (fw / "README.md").read_text()
    out = tmp_path / "test.json"
    assert main(["evaluate", str(fw / "model.tflite"), "--data", str(data), "--split", "test",
                 "--out", str(out)]) == 0
    printed = capfd.readouterr().out
    result = json.loads(out.read_text())
    assert result["clips"] == int(re.search(r"test\s+(\d+) clips", printed).group(1))


@pytest.mark.parametrize("path", sorted((ROOT / "configs").rglob("*.toml")),
                         ids=lambda p: p.stem)
def test_shipped_configs_load_and_validate(path: Path):
    config = load_config(path)
    assert config.name and config.grid.students and config.grid.methods and config.grid.seeds
    for student in config.grid.students:
        assert MODEL_SPECS[student].role == "student"
    assert config.teacher.model in MODEL_SPECS


def test_both_readme_configs_exist():
    names = {p.name for p in (ROOT / "configs").glob("*.toml")}
    assert {"experiment_small.toml", "experiment_benchmark.toml"} <= names


def test_distill_cli_defaults_are_the_library_recipe():
    """The CLI documents the recipe's defaults without importing TensorFlow; they must agree."""
    import re

    from keras_iusp.cli.main import build_parser
    from keras_iusp.train.recipe import DistillConfig

    parser = build_parser()
    distill = next(a for a in parser._subparsers._group_actions[0].choices.items()
                   if a[0] == "distill")[1]
    helps = {a.dest: a.help for a in distill._actions}
    defaults = {a.dest: a.default for a in distill._actions}
    recipe = DistillConfig()
    for dest in ("temperature", "student_loss_weight", "kd_weight", "sp_weight", "iusp_weight"):
        documented = float(re.search(r"default ([0-9.e-]+)\)?", helps[dest]).group(1))
        assert documented == getattr(recipe, dest), dest
    assert f"default {recipe.iusp_form}" in helps["iusp_form"]
    assert defaults["epochs"] == recipe.epochs and defaults["lr"] == recipe.learning_rate


def test_every_default_teacher_is_the_zoo_default():
    """train-teacher, train_teacher(), experiment configs and the quickstart share one default,
    and importing it (as the CLI does before its quiet start-up) loads no TensorFlow."""
    import inspect

    from keras_iusp.cli.main import build_parser
    from keras_iusp.experiments.config import TeacherSection
    from keras_iusp.experiments.quickstart import TEACHER
    from keras_iusp.train.defaults import DEFAULT_TEACHER
    from keras_iusp.train.training import train_teacher

    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items()
                 if a[0] == "train-teacher")[1]
    cli_default = next(a.default for a in train._actions if a.dest == "model")
    assert DEFAULT_TEACHER == "teacher_cnn_meanmax"
    assert MODEL_SPECS[DEFAULT_TEACHER].role == "teacher"
    assert cli_default == TeacherSection().model == TEACHER == DEFAULT_TEACHER
    assert inspect.signature(train_teacher).parameters["model_name"].default == DEFAULT_TEACHER
    probe = ("import sys, keras_iusp.train.defaults, keras_iusp.cli.main, "
             "keras_iusp.experiments.quickstart; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('tensorflow', 'tf_keras')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]", loaded
