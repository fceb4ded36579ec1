"""Audio decoding: formats, rates, channels, pad/trim and clear errors on bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from keras_iusp.data import fit_length, load_audio, read_audio
from keras_iusp.utils.errors import AudioError


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_rates_resampled_to_16k(tmp_path: Path, tone_writer, rate: int):
    path = tone_writer(tmp_path / f"t{rate}.wav", rate, 1.0, freq=440.0)
    x = load_audio(path, 16000, 1.0)
    assert x.dtype == np.float32 and x.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(x[2000:14000] * np.hanning(12000)))
    peak_hz = np.argmax(spectrum) * 16000 / 12000
    assert abs(peak_hz - 440.0) < 3.0  # the tone keeps its pitch after resampling
    assert 0.3 < np.abs(x[2000:14000]).max() < 0.6


def test_stereo_is_downmixed_by_averaging(tmp_path: Path, tone_writer):
    path = tone_writer(tmp_path / "st.wav", 16000, 0.5, channels=2)
    x = read_audio(path, 16000)
    # channel 0 has amplitude 0.5, channel 1 0.375: the average peaks at 0.4375
    assert abs(np.abs(x).max() - 0.4375) < 0.01


@pytest.mark.parametrize("fmt,suffix", [("FLAC", ".flac"), ("OGG", ".ogg"), ("WAV", ".wav")])
def test_formats(tmp_path: Path, tone_writer, fmt: str, suffix: str):
    subtype = "VORBIS" if fmt == "OGG" else None
    path = tone_writer(tmp_path / f"t{suffix}", 44100, 0.5, fmt=fmt, subtype=subtype)
    x = load_audio(path, 16000, 0.5)
    assert x.shape == (8000,) and np.isfinite(x).all() and np.abs(x).max() > 0.3


def test_pad_and_trim(tmp_path: Path, tone_writer):
    short = tone_writer(tmp_path / "short.wav", 16000, 0.25)
    x = load_audio(short, 16000, 1.0)
    assert x.shape == (16000,) and np.all(x[4000:] == 0) and np.abs(x[:4000]).max() > 0.4
    long = tone_writer(tmp_path / "long.wav", 16000, 2.0)
    assert load_audio(long, 16000, 1.0).shape == (16000,)
    np.testing.assert_array_equal(fit_length(np.ones(3, np.float32), 5), [1, 1, 1, 0, 0])


def test_corrupt_file_named(tmp_path: Path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage garbage")
    with pytest.raises(AudioError, match=r"corrupt\.wav: cannot decode"):
        read_audio(bad, 16000)


def test_empty_and_zero_length_files(tmp_path: Path, tone_writer):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav"):
        read_audio(empty, 16000)
    zero = tone_writer(tmp_path / "zero.wav", 16000, 0.0)
    with pytest.raises(AudioError, match=r"zero\.wav: audio file holds no samples"):
        read_audio(zero, 16000)


def test_truncated_file(tmp_path: Path, tone_writer):
    path = tone_writer(tmp_path / "trunc.flac", 16000, 1.0, fmt="FLAC")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    # a truncated FLAC either decodes fewer samples or fails with the file named
    try:
        x = read_audio(path, 16000)
        assert x.shape[0] < 16000
    except AudioError as exc:
        assert "trunc.flac" in str(exc)


def test_nan_samples_rejected(tmp_path: Path):
    import soundfile

    path = tmp_path / "nan.wav"
    data = np.zeros(1600, dtype=np.float32)
    data[100] = np.nan
    soundfile.write(str(path), data, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: audio holds NaN"):
        read_audio(path, 16000)


def test_missing_file_and_bad_rate(tmp_path: Path, tone_writer):
    with pytest.raises(AudioError, match=r"nope\.wav: audio file not found"):
        read_audio(tmp_path / "nope.wav", 16000)
    path = tone_writer(tmp_path / "ok.wav", 16000, 0.1)
    with pytest.raises(AudioError, match="sample rate"):
        read_audio(path, 0)
