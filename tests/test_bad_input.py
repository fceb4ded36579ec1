"""Bad input gets a clear, early error: one line naming the file, line or field and what was
expected, raised as a :class:`KerasIuspError` subclass (and exit code 2 from the CLI)."""

from __future__ import annotations

import csv
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.cli.main import main
from keras_iusp.data import load_audio, read_audio, read_dataset, read_label_csv, read_sonyc
from keras_iusp.data.schema import COARSE_COLUMNS
from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.utils.errors import AudioError, ConfigError, DataError, KerasIuspError

ID = ["split", "sensor_id", "audio_filename", "annotator_id"]
IGNORED = ["borough", "1-1_small-sounding-engine_presence", "1-X_engine-of-uncertain-size_presence",
           "5-3_siren_proximity", "5_alert-signal_proximity", "my_extra_column"]
HEADER = ID + list(COARSE_COLUMNS) + IGNORED


def _row(name: str, annotator: int | str = 1, split: str = "train", **cells: str) -> dict:
    row = {"split": split, "sensor_id": "3", "audio_filename": name,
           "annotator_id": str(annotator), "borough": "1",
           "1-1_small-sounding-engine_presence": "-1", "1-X_engine-of-uncertain-size_presence": "",
           "5-3_siren_proximity": "near", "5_alert-signal_proximity": "-1", "my_extra_column": "x"}
    row.update({c: "0" for c in COARSE_COLUMNS})
    row.update(cells)
    return row


def _sonyc(root: Path, rows: list[dict], header: list[str] = HEADER, audio: bool = True) -> Path:
    """Write ``root/annotations.csv`` (and empty audio files) and return the dataset folder."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    with (root / "annotations.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore", restval="0")
        writer.writeheader()
        writer.writerows(rows)
    if audio:
        for row in rows:
            (root / "audio" / row["audio_filename"]).touch()
    return root


def _csv(root: Path) -> str:
    return re.escape(str(root / "annotations.csv"))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    assert isinstance(exc.value, KerasIuspError)
    return message


# --------------------------------------------------------------------------------------------
# SONYC annotations: columns


def test_valid_dataset_ignores_fine_proximity_and_other_columns(tmp_path: Path):
    index = read_sonyc(_sonyc(tmp_path, [_row("a.wav"), _row("b.wav", **{COARSE_COLUMNS[2]: "1"})]))
    assert index.filenames == ("a.wav", "b.wav")
    np.testing.assert_array_equal(index.labels.sum(0), [0, 0, 1, 0, 0, 0, 0, 0])


def test_missing_coarse_column(tmp_path: Path):
    header = [h for h in HEADER if h != "6_music_presence"]
    _sonyc(tmp_path, [_row("a.wav")], header)
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: missing required column\(s\): "
                                        r"'6_music_presence'; the header has") as exc:
        read_sonyc(tmp_path)
    _one_line(exc)


def test_misspelled_coarse_column_gets_a_hint(tmp_path: Path):
    header = [h if h != "7_human-voice_presence" else "7_human_voice_presence" for h in HEADER]
    _sonyc(tmp_path, [_row("a.wav")], header)
    with pytest.raises(DataError, match=r"'7_human-voice_presence' \(found "
                                        r"'7_human_voice_presence': misspelled\?\)"):
        read_sonyc(tmp_path)


@pytest.mark.parametrize("extra", ["9_bird_presence", "0_engine_presence", "12_siren_presence"])
def test_extra_coarse_looking_column(tmp_path: Path, extra: str):
    _sonyc(tmp_path, [_row("a.wav")], HEADER + [extra])
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: unexpected coarse-level "
                                        rf"column\(s\) \['{extra}'\]; expected exactly the "
                                        r"SONYC-UST coarse columns \['1_engine_presence'") as exc:
        read_sonyc(tmp_path)
    assert "8_dog_presence" in _one_line(exc)


@pytest.mark.parametrize("header_line,missing", [
    # a label CSV read as SONYC
    ("filename,split,a\n", "'sensor_id', 'audio_filename', 'annotator_id', '1_engine_presence'"),
    # SONYC without sensor_id and coarse columns
    ("split,audio_filename,annotator_id\n", "'sensor_id', '1_engine_presence'"),
])
def test_wrong_header_names_expected_columns(tmp_path: Path, header_line: str, missing: str):
    (tmp_path / "annotations.csv").write_text(header_line + "x,train,1\n")
    with pytest.raises(DataError, match=rf"annotations\.csv: missing required column\(s\): "
                                        rf"{missing}, .*'8_dog_presence'; the header has \["):
        read_sonyc(tmp_path)


def test_repeated_header_column(tmp_path: Path):
    (tmp_path / "annotations.csv").write_text(",".join(HEADER + ["split"]) + "\n")
    with pytest.raises(DataError, match=r"header repeats column\(s\) \['split'\]"):
        read_sonyc(tmp_path)


# --------------------------------------------------------------------------------------------
# SONYC annotations: cells and rows


@pytest.mark.parametrize("value", ["2", "-1", "yes", "0.5", "nan", "１"])
def test_label_not_0_or_1(tmp_path: Path, value: str):
    _sonyc(tmp_path, [_row("a.wav"), _row("b.wav", **{"4_powered-saw_presence": value})])
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: line 3: column "
                                        rf"'4_powered-saw_presence' is '{re.escape(value)}', "
                                        r"expected 0 or 1$"):
        read_sonyc(tmp_path)


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_label_cell(tmp_path: Path, value: str):
    _sonyc(tmp_path, [_row("a.wav"), _row("b.wav"), _row("c.wav", **{"8_dog_presence": value})])
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: line 4: column '8_dog_presence' "
                                        r"is empty, expected 0 or 1$"):
        read_sonyc(tmp_path)


def test_row_with_missing_audio_names_line_and_file(tmp_path: Path):
    _sonyc(tmp_path, [_row("a.wav"), _row("gone.wav")])
    (tmp_path / "audio" / "gone.wav").unlink()
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: line 3: audio file 'gone\.wav' "
                                        r"not found under .*looked in audio/, audio-eval/"):
        read_sonyc(tmp_path)


def test_duplicate_filename_and_annotator(tmp_path: Path):
    rows = [_row("a.wav", 7), _row("a.wav", 8), _row("b.wav", 7), _row("a.wav", 7)]
    _sonyc(tmp_path, rows)
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: line 5: duplicate row for "
                                        r"audio_filename 'a\.wav' and annotator_id 7 \(first on "
                                        r"line 2\)"):
        read_sonyc(tmp_path)


def test_same_annotator_written_differently_is_still_a_duplicate(tmp_path: Path):
    _sonyc(tmp_path, [_row("a.wav", "0"), _row("a.wav", "0.0")])
    with pytest.raises(DataError, match=r"line 3: duplicate row .* annotator_id 0 \(first on "
                                        r"line 2\)"):
        read_sonyc(tmp_path)


@pytest.mark.parametrize("value", ["abc", "1.5", "", "inf", "nan", "1e999", "9" * 5000])
def test_annotator_id_not_an_integer(tmp_path: Path, value: str):
    _sonyc(tmp_path, [_row("a.wav"), _row("b.wav", value)])
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: line 3: annotator_id .* is not an "
                                        "integer"):
        read_sonyc(tmp_path)


def test_long_cell_values_are_cut_short_in_messages(tmp_path: Path):
    _sonyc(tmp_path, [_row("a.wav", "7" * 3000 + "x")])
    with pytest.raises(DataError, match=r"line 2: annotator_id '7{37}'\.\.\. is not an integer") \
            as exc:
        read_sonyc(tmp_path)
    assert len(_one_line(exc)) < 300 + len(str(tmp_path))


def test_sonyc_csv_with_a_misspelled_id_column_is_still_read_as_sonyc(tmp_path: Path):
    header = [h if h != "annotator_id" else "annotator" for h in HEADER]
    _sonyc(tmp_path, [_row("a.wav")], header)
    with pytest.raises(DataError, match=r"missing required column\(s\): 'annotator_id' \(found "
                                        r"'annotator': misspelled\?\)"):
        read_dataset(tmp_path / "annotations.csv")


def test_annotator_id_pandas_floats_accepted(tmp_path: Path):
    index = read_sonyc(_sonyc(tmp_path, [_row("a.wav", "3.0"), _row("b.wav", "-2")]))
    assert len(index) == 2


def test_wrong_field_count(tmp_path: Path):
    _sonyc(tmp_path, [_row("a.wav")])
    with (tmp_path / "annotations.csv").open("a") as f:
        f.write("train,3,b.wav,1,0\n")
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: line 3: 5 fields, expected "
                                        rf"{len(HEADER)}"):
        read_sonyc(tmp_path)


def test_bad_split(tmp_path: Path):
    _sonyc(tmp_path, [_row("a.wav", split="val")])
    with pytest.raises(DataError, match=r"line 2: split 'val', expected one of \['train'"):
        read_sonyc(tmp_path)


# --------------------------------------------------------------------------------------------
# Files that are not a CSV at all


@pytest.mark.parametrize("content,match", [
    (b"", r"file is empty, expected a CSV header row"),
    (b"  \n\r\n\t\n", r"file is empty, expected a CSV header row"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"not a text CSV \(contains NUL bytes"),
    (b"filename,split,caf\xe9\nx.wav,train,1\n", r"line 1: byte 0xe9 is not UTF-8, expected UTF-8"),
    (b"filename,split,a\nx.wav,train,1\n\xff\n", r"line 3: byte 0xff is not UTF-8"),
    ("filename,split,a\n".encode("utf-16"), r"file is UTF-16 encoded, expected UTF-8"),
    (b'{"clips": [1, 2, 3]}\n', r"missing required column\(s\): 'filename', 'split'"),
])
def test_not_a_csv(tmp_path: Path, content: bytes, match: str):
    path = tmp_path / "labels.csv"
    path.write_bytes(content)
    for reader in (read_dataset, read_label_csv):
        with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: {match}") as exc:
            reader(path)
        _one_line(exc)
    (tmp_path / "annotations.csv").write_bytes(content)
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: "):
        read_sonyc(tmp_path)


def test_header_only_files(tmp_path: Path):
    _sonyc(tmp_path, [])
    with pytest.raises(DataError, match=rf"^{_csv(tmp_path)}: no annotation rows$"):
        read_sonyc(tmp_path)
    path = tmp_path / "labels.csv"
    path.write_text("filename,split,glass\n\n")
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: no rows after the header$"):
        read_dataset(path)


def test_malformed_csv_field(tmp_path: Path):
    path = tmp_path / "labels.csv"
    path.write_text("filename,split,a\n" + "x" * 200_000 + ",train,1\n")
    with pytest.raises(DataError, match=r"labels\.csv: line 2: malformed CSV \(field larger"):
        read_label_csv(path)


# --------------------------------------------------------------------------------------------
# Plain label CSV


def test_plain_csv_duplicate_filename(tmp_path: Path):
    (tmp_path / "x.wav").touch()
    (tmp_path / "l.csv").write_text("filename,split,a\nx.wav,train,1\ny.wav,test,0\nx.wav,test,1\n")
    with pytest.raises(DataError, match=r"line 4: duplicate filename 'x\.wav' \(first on line 2\)"):
        read_label_csv(tmp_path / "l.csv")


def test_plain_csv_unnamed_label_column(tmp_path: Path):
    (tmp_path / "x.wav").touch()
    (tmp_path / "l.csv").write_text("filename,split,a,\nx.wav,train,1,0\n")
    with pytest.raises(DataError, match=r"l\.csv: header column 4 has no name, expected a class"):
        read_label_csv(tmp_path / "l.csv")


def test_plain_csv_empty_label_and_missing_audio(tmp_path: Path):
    (tmp_path / "x.wav").touch()
    (tmp_path / "l.csv").write_text("filename,split,a\nx.wav,train,\n")
    with pytest.raises(DataError, match=r"l\.csv: line 2: column 'a' is empty, expected 0 or 1"):
        read_label_csv(tmp_path / "l.csv")
    (tmp_path / "m.csv").write_text("filename,split,a\nx.wav,train,1\nnope.wav,test,0\n")
    with pytest.raises(DataError, match=r"m\.csv: line 3: audio file 'nope\.wav' not found"):
        read_label_csv(tmp_path / "m.csv")


def test_overlong_audio_filename_is_missing_not_oserror(tmp_path: Path):
    _sonyc(tmp_path, [_row("a.wav"), _row("x" * 300 + ".wav")], audio=False)
    (tmp_path / "audio" / "a.wav").touch()
    with pytest.raises(DataError, match=r"line 3: audio file 'x+\.wav' not found"):
        read_sonyc(tmp_path)


# --------------------------------------------------------------------------------------------
# Audio files


def _wav_bytes(rate: int, channels: int = 1, bits: int = 16, fmt_tag: int = 1,
               data: bytes = b"\x00\x10" * 200, declared: int | None = None) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, (rate * block) & 0xFFFFFFFF,
                      block & 0xFFFF, bits)
    size = len(data) if declared is None else declared
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", size)
    return b"RIFF" + struct.pack("<I", len(body) + len(data)) + body + data


def _audio_error(path: Path, match: str, **kwargs) -> str:
    with pytest.raises(AudioError, match=rf"^{re.escape(str(path))}: {match}") as exc:
        read_audio(path, kwargs.get("rate", 16000))
    return _one_line(exc)


def test_hand_written_wav_is_valid(tmp_path: Path):
    path = tmp_path / "ok.wav"
    path.write_bytes(_wav_bytes(16000))
    x = read_audio(path, 16000)
    assert x.dtype == np.float32 and x.shape == (200,)


def test_corrupt_audio(tmp_path: Path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunkjunkjunkjunkjunk")
    _audio_error(path, r"cannot decode audio \(Error opening .*\)$")
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    _audio_error(text, r"cannot decode audio \(.*Format not recognised")


def test_truncated_wav(tmp_path: Path, tone_writer):
    path = tone_writer(tmp_path / "cut.wav", 16000, 1.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _audio_error(path, r"truncated WAV: the header declares 32000 bytes of audio data, the file "
                       r"holds 159\d\d$")
    path.write_bytes(data[:30])  # cut inside the header
    _audio_error(path, r"cannot decode audio")


def test_streaming_wav_placeholder_size_is_accepted(tmp_path: Path):
    path = tmp_path / "stream.wav"
    path.write_bytes(_wav_bytes(16000, declared=0xFFFFFFFF))
    assert read_audio(path, 16000).shape == (200,)


def test_empty_audio_file(tmp_path: Path, tone_writer):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    _audio_error(path, r"file is empty \(0 bytes\), expected audio$")
    zero = tone_writer(tmp_path / "zero.wav", 16000, 0.0)
    _audio_error(zero, r"audio file holds no samples$")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path: Path, bad: float):
    import soundfile

    path = tmp_path / "bad.wav"
    data = np.zeros((1600, 2), dtype=np.float32)
    data[700, 1] = bad
    soundfile.write(str(path), data, 16000, subtype="FLOAT")
    _audio_error(path, r"audio holds NaN or infinite samples$")


def test_absurd_float_samples(tmp_path: Path):
    path = tmp_path / "huge.wav"
    samples = np.full(400, 3e38, dtype=np.float32)
    path.write_bytes(_wav_bytes(44100, bits=32, fmt_tag=3, data=samples.tobytes()))
    _audio_error(path, r"sample magnitude 3e\+38, expected audio within about \[-1, 1\]")


def test_sample_rate_zero_in_header(tmp_path: Path):
    path = tmp_path / "rate0.wav"
    path.write_bytes(_wav_bytes(0))
    _audio_error(path, r"WAV header gives sample rate 0, expected > 0$")


@pytest.mark.parametrize("rate", [1, 999, 2**31 - 1])
def test_implausible_sample_rate_in_header(tmp_path: Path, rate: int):
    path = tmp_path / "odd.wav"
    path.write_bytes(_wav_bytes(rate))
    _audio_error(path, rf"header gives sample rate {rate} Hz, expected 1000\.\.10000000")


def test_zero_channels_in_header(tmp_path: Path):
    path = tmp_path / "mono0.wav"
    path.write_bytes(_wav_bytes(16000, channels=0))
    _audio_error(path, r"WAV header gives 0 channels, expected >= 1$")


def test_too_short_to_resample(tmp_path: Path):
    path = tmp_path / "one.wav"
    path.write_bytes(_wav_bytes(48000, data=b"\x00\x10"))
    _audio_error(path, r"1 sample\(s\) at 48000 Hz are too short to resample to 16000 Hz$")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root reads files whatever their permissions")
def test_unreadable_audio_file(tmp_path: Path, tone_writer):
    path = tone_writer(tmp_path / "locked.wav", 16000, 0.1)
    path.chmod(0)
    try:
        _audio_error(path, r"cannot read audio file \(Permission denied\)$")
    finally:
        path.chmod(0o644)


def test_directory_passed_as_audio(tmp_path: Path):
    folder = tmp_path / "clip.wav"
    folder.mkdir()
    _audio_error(folder, r"is a directory, expected an audio file$")


def test_missing_audio_and_bad_arguments(tmp_path: Path, tone_writer):
    _audio_error(tmp_path / "nope.wav", r"audio file not found$")
    path = tone_writer(tmp_path / "ok.wav", 16000, 0.1)
    for rate in (0, -8000, True, 16000.0):
        with pytest.raises(AudioError, match="target sample rate must be a positive integer"):
            read_audio(path, rate)
    for duration in (0, -1.0, float("nan"), float("inf"), "10"):
        with pytest.raises(AudioError, match=r"ok\.wav: duration must be a finite number > 0"):
            load_audio(path, 16000, duration)


# --------------------------------------------------------------------------------------------
# FeatureConfig.from_dict


def test_feature_config_unknown_key():
    with pytest.raises(ConfigError, match=r"^cfg\.json: unknown key\(s\) \['n_mel'\]; valid keys "
                                          r"are \[.*'n_mels'"):
        FeatureConfig.from_dict({"n_mel": 40}, source="cfg.json")


@pytest.mark.parametrize("key,value,expected", [
    ("n_mels", "64", "an integer"), ("n_mels", 6.5, "an integer"), ("sample_rate", True,
                                                                     "an integer"),
    ("hop_ms", "10", "a number"), ("clip_seconds", float("nan"), "a number"),
])
def test_feature_config_wrong_type(key: str, value, expected: str):
    with pytest.raises(ConfigError, match=rf"^feature config: {key}=.*: expected {expected}$"):
        FeatureConfig.from_dict({key: value})
    with pytest.raises(ConfigError, match="expected a mapping"):
        FeatureConfig.from_dict([(key, value)])


# --------------------------------------------------------------------------------------------
# The CLI: exit code 2 and exactly one error line, no traceback


def _bad_columns(root: Path) -> str:
    _sonyc(root, [_row("a.wav")], HEADER + ["9_bird_presence"])
    return "unexpected coarse-level column"


def _bad_label(root: Path) -> str:
    _sonyc(root, [_row("a.wav", **{"2_machinery-impact_presence": ""})])
    return "line 2: column '2_machinery-impact_presence' is empty"


def _bad_duplicate(root: Path) -> str:
    _sonyc(root, [_row("a.wav", 4), _row("a.wav", 4)])
    return "line 3: duplicate row"


def _bad_binary(root: Path) -> str:
    (root / "audio").mkdir()
    (root / "annotations.csv").write_bytes(bytes(range(256)) * 4)
    return "not a text CSV"


def _bad_header_only(root: Path) -> str:
    _sonyc(root, [])
    return "no annotation rows"


def _bad_missing_audio(root: Path) -> str:
    _sonyc(root, [_row("a.wav"), _row("b.wav")])
    (root / "audio" / "b.wav").unlink()
    return "line 3: audio file 'b.wav' not found"


def _bad_corrupt_audio(root: Path) -> str:
    _sonyc(root, [_row("a.wav")], audio=False)
    (root / "audio" / "a.wav").write_bytes(_wav_bytes(0))
    return "a.wav: WAV header gives sample rate 0"


@pytest.mark.parametrize("make_bad", [_bad_columns, _bad_label, _bad_duplicate, _bad_binary,
                                      _bad_header_only, _bad_missing_audio, _bad_corrupt_audio],
                         ids=lambda f: f.__name__[5:])
def test_cli_features_on_bad_dataset(tmp_path: Path, capsys, make_bad):
    root = tmp_path / "data"
    root.mkdir()
    expected = make_bad(root)
    code = main(["features", "--data", str(root), "--clip-seconds", "1.0",
                 "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("keras-iusp: error:")]
    assert len(errors) == 1, err
    assert errors[0].startswith(f"keras-iusp: error: {root}"), errors[0]
    assert expected in errors[0], errors[0]
