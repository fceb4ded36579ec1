"""Log-mel front end, the feature cache and the tf.data pipeline."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.data import read_dataset
from keras_iusp.features import build_feature_cache, make_dataset
from keras_iusp.features.logmel import FeatureConfig, log_mel, mel_matrix
from keras_iusp.utils.errors import AudioError, ConfigError, DataError

SMALL = FeatureConfig(clip_seconds=0.5)


def test_default_config_matches_brief():
    c = FeatureConfig()
    assert (c.sample_rate, c.n_mels, c.window_length, c.hop_length, c.fft_length) == (
        16000, 64, 400, 160, 512)
    assert c.num_frames() == 998  # 10 s at 16 kHz: 1 + (160000 - 400) // 160


def test_log_mel_matches_numpy_stft():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SMALL.clip_samples).astype(np.float32) * 0.1
    got = log_mel(x, SMALL)
    assert got.shape == (SMALL.num_frames(), 64)
    # independent numpy computation: periodic Hann window, |rfft|^2, mel projection, log
    n, hop, nfft = SMALL.window_length, SMALL.hop_length, SMALL.fft_length
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    frames = np.stack([x[i * hop: i * hop + n] * window for i in range(SMALL.num_frames())])
    power = np.abs(np.fft.rfft(frames, nfft)) ** 2
    expected = np.log(power @ mel_matrix(SMALL) + SMALL.log_offset)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)


def test_tone_lands_in_the_right_mel_band():
    t = np.arange(SMALL.clip_samples) / SMALL.sample_rate
    low = log_mel(np.sin(2 * np.pi * 300 * t), SMALL).mean(0).argmax()
    high = log_mel(np.sin(2 * np.pi * 3000 * t), SMALL).mean(0).argmax()
    centers = mel_matrix(SMALL).argmax(axis=0) * SMALL.sample_rate / SMALL.fft_length
    assert abs(centers[low] - 300) < 60 and abs(centers[high] - 3000) < 250


@pytest.mark.parametrize("kwargs,field", [
    ({"n_mels": 0}, "n_mels"), ({"fmax": 9000.0}, "fmax"), ({"hop_ms": 50.0}, "hop_ms"),
    ({"sample_rate": 16000.5}, "sample_rate"), ({"clip_seconds": -1.0}, "clip_seconds"),
])
def test_bad_config_names_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        FeatureConfig(**kwargs)


def test_config_round_trip_and_unknown_keys():
    c = FeatureConfig(n_mels=40, clip_seconds=1.0)
    assert FeatureConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['nmels'\]"):
        FeatureConfig.from_dict({"nmels": 40})
    with pytest.raises(ConfigError, match="n_mels='40': expected an integer"):
        FeatureConfig.from_dict({"n_mels": "40"})


@pytest.fixture
def tiny_dataset(tmp_path: Path, tone_writer) -> Path:
    rows = ["filename,split,low,high"]
    specs = [("a.wav", "train", 200, 0.5), ("b.wav", "train", 3000, 0.5),
             ("c.flac", "validate", 250, 0.3), ("d.wav", "test", 2800, 0.8),
             ("e.wav", "train", 220, 0.5)]
    for name, split, freq, seconds in specs:
        tone_writer(tmp_path / "audio" / name, 44100, seconds, freq=freq,
                    fmt="FLAC" if name.endswith("flac") else None)
        rows.append(f"audio/{name},{split},{int(freq < 1000)},{int(freq >= 1000)}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_cache_build_shapes_splits_and_stats(tiny_dataset: Path):
    index = read_dataset(tiny_dataset / "labels.csv")
    cache = build_feature_cache(index, SMALL, progress=False)
    assert cache.features.shape == (5, SMALL.num_frames(), 64)
    assert cache.splits.tolist() == ["train", "train", "train", "validate", "test"]
    x_train, y_train = cache.split("train")
    assert x_train.shape[0] == 3 and np.shares_memory(x_train, cache.features)
    np.testing.assert_array_equal(y_train, [[1, 0], [0, 1], [1, 0]])
    assert cache.split_filenames("validate") == ("c.flac",)
    flat = np.asarray(x_train, dtype=np.float64).reshape(-1, 64)
    np.testing.assert_allclose(cache.stats.mean, flat.mean(0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(cache.stats.std, np.maximum(flat.std(0), 1e-3), rtol=1e-4)
    assert cache.report["padded"] == 1 and cache.report["trimmed"] == 1  # c is 0.3 s, d 0.8 s


def test_cache_reused_then_rebuilt_when_stale(tiny_dataset: Path, monkeypatch, tone_writer):
    index = read_dataset(tiny_dataset / "labels.csv")
    first = build_feature_cache(index, SMALL, progress=False)

    import keras_iusp.features.cache as cache_module

    def no_decoding(*args, **kwargs):
        raise AssertionError("a valid cache must not decode audio again")

    monkeypatch.setattr(cache_module, "read_audio", no_decoding)
    again = build_feature_cache(read_dataset(tiny_dataset / "labels.csv"), SMALL, progress=False)
    assert again.path == first.path
    monkeypatch.undo()

    # a replaced audio file (new content, new mtime) gives a new key and new features
    tone_writer(tiny_dataset / "audio" / "a.wav", 44100, 0.5, freq=3500)
    os.utime(tiny_dataset / "audio" / "a.wav", ns=(10**18, 10**18))
    rebuilt = build_feature_cache(read_dataset(tiny_dataset / "labels.csv"), SMALL, progress=False)
    assert rebuilt.path != first.path
    assert not np.allclose(rebuilt.features[0], first.features[0])
    # a changed config too
    other = build_feature_cache(read_dataset(tiny_dataset / "labels.csv"),
                                FeatureConfig(clip_seconds=0.5, n_mels=40), progress=False)
    assert other.path != rebuilt.path and other.features.shape[-1] == 40
    assert not list(first.path.parent.glob(".tmp-*"))  # no half-written caches left


def test_bad_file_raises_or_is_skipped_with_report(tiny_dataset: Path, capsys):
    (tiny_dataset / "audio" / "b.wav").write_bytes(b"not audio at all")
    index = read_dataset(tiny_dataset / "labels.csv")
    with pytest.raises(AudioError, match=r"b\.wav: cannot decode"):
        build_feature_cache(index, SMALL, progress=False)
    cache = build_feature_cache(index, SMALL, on_error="skip", progress=False)
    assert len(cache.filenames) == 4 and "b.wav" not in cache.filenames
    out = capsys.readouterr().out
    assert "skipped 1 unreadable clip" in out and "b.wav" in out
    # the lenient cache must not satisfy a strict request later
    with pytest.raises(AudioError, match=r"b\.wav"):
        build_feature_cache(index, SMALL, progress=False)


def test_strict_duration(tiny_dataset: Path):
    index = read_dataset(tiny_dataset / "labels.csv")
    with pytest.raises(AudioError, match=r"c\.flac: 0\.300 s long, expected 0\.5 s"):
        build_feature_cache(index, SMALL, strict_duration=True, progress=False)


def test_pipeline_batches_shuffles_and_normalises(tiny_dataset: Path):
    cache = build_feature_cache(read_dataset(tiny_dataset / "labels.csv"), SMALL, progress=False)
    x, y = cache.split("train")
    ds = make_dataset(x, y, batch_size=2, shuffle=True, seed=3, stats=cache.stats)
    batches = list(ds.as_numpy_iterator())
    frames = SMALL.num_frames()
    assert [b[0].shape for b in batches] == [(2, frames, 64), (1, frames, 64)]
    assert batches[0][1].dtype == np.float32
    seen = np.concatenate([b[0] for b in batches])
    expected = (np.asarray(x) - cache.stats.mean) / cache.stats.std
    # every clip once per epoch, each with its own label, normalised with the train stats
    order = [int(np.argmin([np.abs(s - e).max() for e in expected])) for s in seen]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(seen, expected[order], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y[order])
    again = [b[1] for b in make_dataset(x, y, 2, shuffle=True, seed=3).as_numpy_iterator()]
    np.testing.assert_array_equal(np.concatenate(again), y[order])  # same seed, same order


def test_missing_train_split_gives_no_stats(tiny_dataset: Path):
    index = read_dataset(tiny_dataset / "labels.csv")
    cache = build_feature_cache(index.subset("test"), SMALL, progress=False)
    assert cache.stats is None
    with pytest.raises(DataError, match="unknown split"):
        cache.split("dev")
