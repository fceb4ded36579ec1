"""SONYC-UST annotations reader: columns, aggregation rules, verified rows, errors."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.data import aggregate, read_dataset, read_label_csv, read_sonyc
from keras_iusp.data.schema import COARSE_CLASSES, COARSE_COLUMNS
from keras_iusp.utils.errors import DataError

FINE_AND_EXTRA = ["borough", "1-1_small-sounding-engine_presence", "5-3_siren_presence",
                  "5-3_siren_proximity", "8-1_dog-barking-whining_proximity", "my_extra_column"]


def _write_annotations(root: Path, rows: list[dict], header: list[str] | None = None) -> Path:
    header = header or (["split", "sensor_id", "audio_filename", "annotator_id"]
                        + FINE_AND_EXTRA[:3] + list(COARSE_COLUMNS) + FINE_AND_EXTRA[3:])
    (root / "audio").mkdir(parents=True, exist_ok=True)
    with (root / "annotations.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        for row in rows:
            full = {h: "" for h in header}
            full.update({"borough": "1", "1-1_small-sounding-engine_presence": "-1",
                         "5-3_siren_presence": "0", "5-3_siren_proximity": "near",
                         "8-1_dog-barking-whining_proximity": "-1", "my_extra_column": "x"})
            full.update(row)
            writer.writerow({h: full[h] for h in header})
            (root / "audio" / row["audio_filename"]).touch()
    return root / "annotations.csv"


def _row(split, name, annotator, labels, sensor="7"):
    row = {"split": split, "sensor_id": sensor, "audio_filename": name,
           "annotator_id": str(annotator)}
    row.update({c: str(v) for c, v in zip(COARSE_COLUMNS, labels)})
    return row


def _onehot(*positives):
    v = [0] * 8
    for p in positives:
        v[p] = 1
    return v


@pytest.fixture
def sonyc_root(tmp_path: Path) -> Path:
    rows = [
        # train clip a: 3 crowd annotators: engine 3/3, alert 1/3, dog 2/3
        _row("train", "a.wav", 11, _onehot(0, 4, 7)),
        _row("train", "a.wav", 12, _onehot(0, 7)),
        _row("train", "a.wav", 13, _onehot(0)),
        # train clip b: 2 crowd annotators tie on music (1/2), agree on voice; a team row is ignored
        _row("train", "b.wav", 21, _onehot(5, 6)),
        _row("train", "b.wav", 22, _onehot(6)),
        _row("train", "b.wav", -5, _onehot(1)),
        # validate clip c: crowd says dog, verified says alert only
        _row("validate", "c.wav", 31, _onehot(7)),
        _row("validate", "c.wav", 32, _onehot(7)),
        _row("validate", "c.wav", 0, _onehot(4)),
        # test clip d: no verified row -> falls back to the rule over crowd rows
        _row("test", "d.wav", 41, _onehot(2)),
        _row("test", "d.wav", 42, _onehot(2, 3)),
        _row("test", "d.wav", 43, _onehot()),
    ]
    _write_annotations(tmp_path, rows)
    return tmp_path


def test_majority_rule_and_verified_rows(sonyc_root: Path):
    index = read_sonyc(sonyc_root)
    assert index.class_names == COARSE_CLASSES
    assert index.filenames == ("a.wav", "b.wav", "c.wav", "d.wav")
    assert index.splits.tolist() == ["train", "train", "validate", "test"]
    expected = np.array([_onehot(0, 7), _onehot(6), _onehot(4), _onehot(2)], dtype=np.uint8)
    np.testing.assert_array_equal(index.labels, expected)
    assert index.labels.dtype == np.uint8 and index.labels.shape == (4, 8)
    assert all(p.is_absolute() and p.is_file() for p in index.paths)


def test_any_rule(sonyc_root: Path):
    index = read_sonyc(sonyc_root, train_rule="any")
    expected = np.array([_onehot(0, 4, 7), _onehot(5, 6), _onehot(4), _onehot(2, 3)],
                        dtype=np.uint8)
    np.testing.assert_array_equal(index.labels, expected)


def test_aggregate_exact_thresholds():
    votes = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(aggregate(votes, "any"), [1, 1, 1, 0])
    np.testing.assert_array_equal(aggregate(votes, "majority"), [1, 0, 0, 0])  # 2/4 is a tie
    np.testing.assert_array_equal(aggregate(votes[:3], "majority"), [1, 0, 0, 0])
    with pytest.raises(DataError, match="train_rule"):
        aggregate(votes, "mean")


def test_subset_and_read_dataset_dispatch(sonyc_root: Path):
    index = read_dataset(sonyc_root / "annotations.csv")
    assert len(index.subset("train")) == 2
    assert index.subset("validate").filenames == ("c.wav",)
    assert "4 clips" in index.describe()


def test_missing_coarse_column_is_named(tmp_path: Path):
    header = ["split", "sensor_id", "audio_filename", "annotator_id"] + [
        c if c != "8_dog_presence" else "8_dogs_presence" for c in COARSE_COLUMNS]
    row = {"split": "train", "sensor_id": "1", "audio_filename": "a.wav", "annotator_id": "1"}
    row.update({c: "0" for c in header[4:]})
    (tmp_path / "audio").mkdir()
    with (tmp_path / "annotations.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerow(row)
    with pytest.raises(DataError,
                       match=r"missing required column.*'8_dog_presence'.*8_dogs_presence"):
        read_sonyc(tmp_path)


def test_bad_label_value_names_line_and_column(tmp_path: Path):
    rows = [_row("train", "a.wav", 1, _onehot(0)), _row("train", "b.wav", 1, _onehot(1))]
    rows[1]["3_non-machinery-impact_presence"] = "2"
    _write_annotations(tmp_path, rows)
    with pytest.raises(DataError, match=r"line 3: column '3_non-machinery-impact_presence' is '2'"):
        read_sonyc(tmp_path)


def test_missing_audio_raise_and_skip(sonyc_root: Path, capsys):
    (sonyc_root / "audio" / "b.wav").unlink()
    with pytest.raises(DataError, match=r"b\.wav.*not found"):
        read_sonyc(sonyc_root)
    index = read_sonyc(sonyc_root, missing_audio="skip")
    assert "b.wav" not in index.filenames and len(index) == 3
    assert "skipped 1 clip" in capsys.readouterr().out


def test_clip_in_two_splits_is_an_error(tmp_path: Path):
    _write_annotations(tmp_path, [_row("train", "a.wav", 1, _onehot()),
                                  _row("test", "a.wav", 2, _onehot())])
    with pytest.raises(DataError, match=r"line 3: a\.wav is in split 'test' but line 2"):
        read_sonyc(tmp_path)


def test_missing_folder_and_file(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        read_sonyc(tmp_path / "nope")
    with pytest.raises(DataError, match="annotations file not found"):
        read_sonyc(tmp_path)


def test_plain_label_csv(tmp_path: Path):
    for name in ("x.wav", "y.flac"):
        (tmp_path / name).touch()
    (tmp_path / "labels.csv").write_text(
        "filename,split,glass_break,smoke_alarm\nx.wav,train,1,0\ny.flac,test,0,1\n")
    index = read_dataset(tmp_path / "labels.csv")
    assert index.class_names == ("glass_break", "smoke_alarm")
    np.testing.assert_array_equal(index.labels, [[1, 0], [0, 1]])
    assert index.splits.tolist() == ["train", "test"]


def test_plain_csv_duplicate_and_bad_split(tmp_path: Path):
    (tmp_path / "x.wav").touch()
    (tmp_path / "dup.csv").write_text("filename,split,a\nx.wav,train,1\nx.wav,train,0\n")
    with pytest.raises(DataError, match=r"line 3: duplicate filename 'x.wav' \(first on line 2\)"):
        read_label_csv(tmp_path / "dup.csv")
    (tmp_path / "split.csv").write_text("filename,split,a\nx.wav,val,1\n")
    with pytest.raises(DataError, match=r"split 'val', expected one of"):
        read_label_csv(tmp_path / "split.csv")
