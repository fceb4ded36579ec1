"""``keras-iusp tune`` from the command line, and its promise that the test split is never read:
with the test clips' labels scrambled, every trial, score and winner is the same."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.cli.main import main
from keras_iusp.data.schema import COARSE_COLUMNS


def _copy_dataset(data: Path, out: Path, scramble_test: bool) -> Path:
    """A copy of a SONYC-format dataset; with ``scramble_test`` every coarse label of a test
    row is flipped (train and validation rows are left as they are)."""
    shutil.copytree(data, out, ignore=shutil.ignore_patterns(".keras-iusp-cache"))
    if scramble_test:
        path = out / "annotations.csv"
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            if row["split"] == "test":
                for column in COARSE_COLUMNS:
                    row[column] = {"0": "1", "1": "0"}.get(row[column], row[column])
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return out


def _tune(tmp_path: Path, name: str, data: Path, teacher: Path, capsys) -> dict:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'name = "{name}"\n[data]\npath = "{data}"\nclip_seconds = 1.0\n'
        f'[teacher]\nrun = "{teacher}"\n'
        '[grid]\nstudents = ["cnn_lstm_xs"]\nmethods = ["kd"]\nseeds = [0]\nepochs = 1\n'
        'batch_size = 8\n')
    out = tmp_path / f"exp_{name}"
    code = main(["tune", "--config", str(config), "--out", str(out), "--trials", "2",
                 "--epochs", "1"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "kd        best validation micro-AUPRC" in printed and "best.toml" in printed
    summary = json.loads((out / "tuning" / "trials.json").read_text())
    return {"summary": summary, "best": (out / "tuning" / "best.toml").read_text()}


def test_tune_from_the_cli_ignores_the_test_labels(tiny_data, tiny_teacher, tmp_path, capsys):
    from keras_iusp.data import read_sonyc
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig

    _, data, _ = tiny_data
    plain = _copy_dataset(data, tmp_path / "plain", scramble_test=False)
    scrambled = _copy_dataset(data, tmp_path / "scrambled", scramble_test=True)
    config = FeatureConfig(clip_seconds=1.0)
    caches = [build_feature_cache(read_sonyc(d), config, progress=False)
              for d in (plain, scrambled)]
    # the scrambling reached the test labels and nothing else
    assert not np.array_equal(caches[0].split("test")[1], caches[1].split("test")[1])
    for split in ("train", "validate"):
        assert np.array_equal(caches[0].split(split)[1], caches[1].split(split)[1])

    a = _tune(tmp_path, "plain", plain, tiny_teacher.path, capsys)
    b = _tune(tmp_path, "scrambled", scrambled, tiny_teacher.path, capsys)
    assert a["best"] == b["best"]  # the winners' tables, scores included
    trials_a = a["summary"]["methods"]["kd"]["trials"]
    trials_b = b["summary"]["methods"]["kd"]["trials"]
    assert len(trials_a) == len(trials_b) == 2
    for ta, tb in zip(trials_a, trials_b):
        assert ta["params"] == tb["params"]
        assert ta["val_micro_auprc"] == pytest.approx(tb["val_micro_auprc"], abs=1e-9)
    assert a["summary"]["methods"]["kd"]["best_params"] == \
        b["summary"]["methods"]["kd"]["best_params"]
