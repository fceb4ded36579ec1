"""Fuzzing the loaders: whatever bytes a user hands us, the result is a valid value or one of the
project's own errors (one line, naming the file), never a stray ValueError, csv.Error, ..."""

from __future__ import annotations

import csv
import io
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from keras_iusp.data import read_audio, read_dataset, read_label_csv, read_sonyc
from keras_iusp.data.index import DatasetIndex
from keras_iusp.data.schema import COARSE_COLUMNS, ID_COLUMNS
from keras_iusp.utils.errors import AudioError, KerasIuspError

# --------------------------------------------------------------------------------------------
# Annotations / label CSV

#: Audio files written in every fuzz dataset, with the split each clip "belongs" to.
AUDIO_NAMES = ["a.wav", "b.wav", "c.flac", "d.wav", "e.ogg", "f g.wav", "ü.wav", "h.WAV"]
SPLIT_OF = dict(zip(AUDIO_NAMES + ["missing.wav"], ["train", "train", "validate", "test"] * 3))
COLUMN_NAMES = (
    list(ID_COLUMNS) + list(COARSE_COLUMNS)
    + ["filename", "borough", "1-1_small-sounding-engine_presence", "5-3_siren_proximity",
       "5_alert-signal_proximity", "8_dogs_presence", "9_bird_presence", "0_engine_presence",
       "1_Engine_presence", "split ", " audio_filename", "", "glass_break", "smoke-alarm",
       "é_presence", "a\nb", 'quo"te', "1_engine_presence_", "ßplit"]
)
CELL_VALUES = ["0", "1", "0.0", "1.0", " 1 ", "", " ", "-1", "2", "nan", "NaN", "inf", "-inf",
               "1e999", "3.5", "0x1", "train", "validate", "test", "val", "a.wav", "b.wav",
               "c.flac", "../a.wav", "audio/a.wav", "x" * 300, '"', '""', "'", ",", "\n", "\r",
               "\u2028", "\x1c", "é", "🎵", "\ufeff", "0" * 5000, "-0", "+1"]

cells = st.one_of(st.sampled_from(CELL_VALUES), st.text(max_size=8),
                  st.integers(-10**6, 10**6).map(str))
names = st.one_of(st.sampled_from(COLUMN_NAMES), st.text(max_size=12))


def _mostly(good: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``good`` three times in four, else any cell value."""
    return st.one_of(good, good, good, cells)


def _good_cell(column: str, filename: str) -> st.SearchStrategy[str]:
    """A value that suits the column, so that rows often load and errors come one at a time."""
    if column == "split":
        return st.just(SPLIT_OF[filename])
    if column in ("audio_filename", "filename"):
        return st.just(filename)
    if column == "annotator_id":
        return st.one_of(st.integers(-3, 60).map(str), st.just("4.0"))
    if column == "sensor_id":
        return st.integers(0, 99).map(str)
    return st.sampled_from(["0", "1", "0", "1", " 1", "1.0"])


@st.composite
def headers(draw) -> list[str]:
    """Mostly near-valid SONYC or label-CSV headers (to reach row parsing), sometimes random."""
    kind = draw(st.sampled_from(["sonyc"] * 3 + ["label"] * 2 + ["random"]))
    if kind == "sonyc":
        header = list(ID_COLUMNS) + list(COARSE_COLUMNS)
        if draw(st.integers(0, 4)) == 0:
            drop = draw(st.lists(st.sampled_from(header), max_size=2))
            header = [h for h in header if h not in drop]
    elif kind == "label":
        header = ["filename", "split"] + draw(st.lists(names, min_size=1, max_size=3, unique=True))
    else:
        header = []
    header += draw(st.lists(names, max_size=4, unique=True))
    if draw(st.integers(0, 4)) > 0:  # mostly no repeated names, to get past the header checks
        header = list(dict.fromkeys(header))
    return draw(st.permutations(header)) if draw(st.booleans()) else header


@st.composite
def csv_texts(draw) -> str:
    header = draw(headers())
    width = len(header)
    # distinct clips mostly (a label CSV lists each file once), one of them without audio
    pool = draw(st.permutations(AUDIO_NAMES + ["missing.wav"]))
    rows = []
    count = draw(st.integers(1, 8)) if draw(st.integers(0, 9)) else 0
    for i in range(count):
        filename = pool[i] if draw(st.integers(0, 3)) else draw(st.sampled_from(pool))
        if width and draw(st.integers(0, 9)) > 0:  # mostly rows as wide as the header
            row = [draw(_good_cell(c, filename)) for c in header]
            if draw(st.integers(0, 4)) == 0:  # now and then one odd cell
                row[draw(st.integers(0, width - 1))] = draw(cells)
        else:
            row = draw(st.lists(cells, max_size=width + 2))
        rows.append(row)
    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out, lineterminator=newline).writerows([header, *rows])
        return out.getvalue()
    return newline.join(",".join(r) for r in [header, *rows]) + newline


def _note(outcome: str, path: Path | None = None) -> None:
    """Count outcomes for ``pytest --hypothesis-show-statistics`` (error words without values)."""
    if path is not None:
        text = outcome[len(str(path)):].split("(")[0]
        outcome = " ".join(w for w in text.split() if w.isalpha())[:40]
    if currently_in_test_context():
        event(outcome)


def _dataset_dir(tmp_path: Path) -> Path:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    (root / "audio").mkdir()
    for name in AUDIO_NAMES:
        (root / "audio" / name).touch()
        (root / name).touch()
    return root


def _check_loaders(root: Path) -> None:
    csv_path = root / "annotations.csv"
    calls = [lambda: read_sonyc(root), lambda: read_sonyc(root, "any", missing_audio="skip"),
             lambda: read_dataset(csv_path), lambda: read_label_csv(csv_path),
             lambda: read_label_csv(csv_path, missing_audio="skip")]
    for call in calls:
        try:
            index = call()
        except KerasIuspError as exc:
            message = str(exc)
            assert "\n" not in message and "\r" not in message, message
            assert message.startswith(str(root)), message
            _note(message, root)
        else:
            _note("loaded")
            assert isinstance(index, DatasetIndex) and len(index) > 0
            assert index.labels.dtype == np.uint8 and set(np.unique(index.labels)) <= {0, 1}
            assert index.labels.shape == (len(index), len(index.class_names))
            assert set(index.splits.tolist()) <= {"train", "validate", "test"}
            assert all(p.is_file() for p in index.paths)
            assert index.describe()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=csv_texts(), bom=st.booleans())
@example(text="filename,split,a\nb.wav,train,1\n", bom=False)
@example(text=",".join(ID_COLUMNS + COARSE_COLUMNS) + "\ntrain,1,a.wav,1,1,0,0,0,0,0,0,1\n",
         bom=True)
@example(text=",".join(ID_COLUMNS + COARSE_COLUMNS) + "\ntrain,1,a.wav,inf,1,0,0,0,0,0,0,1\n",
         bom=False)
@example(text=",".join(ID_COLUMNS + COARSE_COLUMNS) + "\ntrain,1," + "x" * 300
         + ",1,1,0,0,0,0,0,0,1\n", bom=False)
def test_csv_loaders_on_random_text(tmp_path: Path, text: str, bom: bool):
    root = _dataset_dir(tmp_path)
    data = text.encode("utf-8", errors="surrogatepass")
    (root / "annotations.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    _check_loaders(root)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=st.lists(st.tuples(_mostly(st.sampled_from(["train", "test"])),
                               _mostly(st.sampled_from(AUDIO_NAMES)),
                               _mostly(st.integers(-3, 9).map(str)),
                               _mostly(st.sampled_from(["0", "1"]))),
                     min_size=1, max_size=4))
def test_sonyc_rows_with_random_id_cells(tmp_path: Path, rows: list[tuple[str, ...]]):
    """A valid SONYC header; split, audio_filename, annotator_id and one label are random."""
    root = _dataset_dir(tmp_path)
    with (root / "annotations.csv").open("w", newline="", encoding="utf-8",
                                         errors="surrogatepass") as f:
        writer = csv.writer(f)
        writer.writerow(ID_COLUMNS + COARSE_COLUMNS)
        for split, name, annotator, label in rows:
            writer.writerow([split, "1", name, annotator, label] + ["0"] * 7)
    _check_loaders(root)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.one_of(
    st.binary(max_size=600),
    st.tuples(st.sampled_from([b"filename,split,a\n", b",".join(
        c.encode() for c in ID_COLUMNS + COARSE_COLUMNS) + b"\n"]),
        st.binary(max_size=200)).map(b"".join),
))
def test_csv_loaders_on_random_bytes(tmp_path: Path, data: bytes):
    root = _dataset_dir(tmp_path)
    (root / "annotations.csv").write_bytes(data)
    _check_loaders(root)


# --------------------------------------------------------------------------------------------
# Audio decoder


def _check_decoder(path: Path, rate: int = 16000) -> None:
    try:
        x = read_audio(path, rate)
    except AudioError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith(str(path)), message
        _note(message, path)
    else:
        _note("decoded")
        assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 1
        assert x.shape[0] > 0 and np.all(np.isfinite(x))


@st.composite
def wav_files(draw) -> bytes:
    """A RIFF/WAVE header with plausible or absurd fields, followed by random bytes."""
    tag = draw(st.sampled_from([1, 3, 6, 7, 0xFFFE, 0, 2, 0x55]))
    channels = draw(st.sampled_from([0, 1, 2, 3, 8, 300, 65535]))
    rate = draw(st.one_of(st.sampled_from([0, 1, 999, 8000, 16000, 44100, 48000, 2**31 - 1,
                                           2**32 - 1]), st.integers(0, 2**32 - 1)))
    bits = draw(st.sampled_from([8, 16, 24, 32, 64, 0, 12, 65535]))
    block = draw(st.one_of(st.just((channels * bits // 8) & 0xFFFF), st.integers(0, 65535)))
    payload = draw(st.binary(max_size=3000))
    declared = draw(st.one_of(st.just(len(payload)), st.sampled_from([0, 0xFFFFFFFF]),
                              st.integers(0, 2**32 - 1)))
    fmt = struct.pack("<HHIIHH", tag, channels, rate, (rate * max(block, 1)) & 0xFFFFFFFF,
                      block, bits)
    fmt_size = draw(st.sampled_from([16, 18, 40, 14]))
    fmt = (fmt + b"\x00" * 24)[:fmt_size]
    body = (b"WAVE" + b"fmt " + struct.pack("<I", fmt_size) + fmt + b"data"
            + struct.pack("<I", declared) + payload)
    riff_size = draw(st.one_of(st.just(len(body)), st.integers(0, 2**32 - 1)))
    return b"RIFF" + struct.pack("<I", riff_size) + body


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.one_of(
    st.binary(max_size=2048),
    st.tuples(st.sampled_from([b"RIFF", b"RIFF\x00\x00\x00\x00WAVE", b"fLaC", b"OggS",
                               b"FORM\x00\x00\x00\x00AIFF", b".snd", b"RF64", b"ID3"]),
              st.binary(max_size=2048)).map(b"".join),
))
def test_audio_decoder_on_random_bytes(tmp_path: Path, data: bytes):
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "clip.wav"
    path.write_bytes(data)
    _check_decoder(path)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=wav_files(), rate=st.sampled_from([16000, 22050, 8000]))
@example(data=b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x03\x00\x02\x00\x44\xac\x00\x00"
         b"\x00\x00\x00\x00\x08\x00\x20\x00data\x10\x00\x00\x00" + b"\xff\xff\x7f\x7f" * 4,
         rate=16000)
def test_audio_decoder_on_wav_headers_with_random_data(tmp_path: Path, data: bytes, rate: int):
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "clip.wav"
    path.write_bytes(data)
    _check_decoder(path, rate)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(samples=st.lists(st.floats(width=32, allow_nan=True, allow_infinity=True), min_size=1,
                        max_size=64),
       channels=st.integers(1, 3), rate=st.sampled_from([8000, 16000, 44100]))
def test_audio_decoder_on_float_wavs(tmp_path: Path, samples: list[float], channels: int,
                                     rate: int):
    import soundfile

    frames = len(samples) // channels
    assume(frames > 0)
    data = np.asarray(samples[: frames * channels], dtype=np.float32).reshape(frames, channels)
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / "float.wav"
    soundfile.write(str(path), data, rate, subtype="FLOAT")
    _check_decoder(path)


@pytest.mark.parametrize("cut", [12, 40, 44, 45, 100])
def test_audio_decoder_on_cut_wavs(tmp_path: Path, tone_writer, cut: int):
    path = tone_writer(tmp_path / "cut.wav", 16000, 0.1)
    path.write_bytes(path.read_bytes()[:cut])
    _check_decoder(path)
