"""Tests of the synthetic SONYC-UST generator and its sound renderers."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.data.schema import (
    COARSE_CLASSES,
    COARSE_COLUMNS,
    FINE_CLASSES,
    SPLITS,
    VERIFIED_ANNOTATOR,
)
from keras_iusp.data.synth import CSV_COLUMNS, synthesize
from keras_iusp.data.synth_sounds import (
    REPETITIVE_SUBTYPES,
    SUBTYPES,
    render_background,
    render_event,
    render_labelled_event,
)
from keras_iusp.utils.errors import ConfigError, DataError

SR = 16000


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------


def _band_energies(x: np.ndarray, hop_s: float, win_s: float, bands: int = 16) -> np.ndarray:
    """[frames, bands] power in log-spaced bands (a tiny, dependency-free spectrogram)."""
    hop, win = int(hop_s * SR), int(win_s * SR)
    count = 1 + (x.size - win) // hop
    index = np.arange(win)[None, :] + hop * np.arange(count)[:, None]
    power = np.abs(np.fft.rfft(x[index] * np.hanning(win), axis=1)) ** 2
    edges = np.unique(np.geomspace(2, power.shape[1], bands + 1).astype(int))
    return np.add.reduceat(power, edges[:-1], axis=1)[:, : edges.size - 1]


def _secondary_peak(features: np.ndarray, hop_s: float, min_lag_s: float = 0.03) -> float:
    """Highest normalised autocorrelation after the first dip, over lags up to half the length.

    1 would be a perfectly periodic signal; a single decaying transient gives about 0.
    """
    x = features - features.mean(axis=0)
    frames = x.shape[0]
    acf = np.array([np.sum(x[: frames - lag] * x[lag:]) for lag in range(frames // 2)])
    acf /= np.sum(x * x)
    i = max(int(round(min_lag_s / hop_s)), 1)
    while i < acf.size - 1 and acf[i + 1] < acf[i]:
        i += 1
    return float(acf[i:].max()) if i < acf.size else 0.0


def _repetition(x: np.ndarray) -> float:
    """Repetition score: best secondary autocorrelation peak of the frame-energy envelope.

    Checked at a fine (5 ms, for jackhammer blows) and a coarse (20 ms, for barks and beeps)
    time scale, on the total energy and on per-band energies (sweeps keep a flat envelope).
    """
    scores = []
    for hop, win in ((0.005, 0.01), (0.02, 0.08)):
        energies = _band_energies(x.astype(np.float64), hop, win)
        scores.append(_secondary_peak(energies, hop))
        scores.append(_secondary_peak(energies.sum(axis=1, keepdims=True), hop))
    return max(scores)


def _mean_power(x: np.ndarray) -> np.ndarray:
    win, hop = 512, 256
    count = 1 + (x.size - win) // hop
    index = np.arange(win)[None, :] + hop * np.arange(count)[:, None]
    return (np.abs(np.fft.rfft(x[index] * np.hanning(win), axis=1)) ** 2).mean(axis=0)


def _centroid(x: np.ndarray) -> float:
    power = _mean_power(x.astype(np.float64))
    freqs = np.fft.rfftfreq(512, 1.0 / SR)
    return float(np.sum(power * freqs) / np.sum(power))


def _read_rows(root: Path) -> list[dict[str, str]]:
    with (root / "annotations.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory) -> Path:
    """12 short clips: enough for every split and several sensors, fast to make."""
    out = tmp_path_factory.mktemp("synth") / "ds"
    return synthesize(out, 12, 7, clip_seconds=1.0, sample_rate=8000, progress=False)


# ------------------------------------------------------------------------------------------
# renderers
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("class_name", COARSE_CLASSES)
def test_every_subtype_renders_finite_float32_within_length(class_name):
    for subtype in SUBTYPES[class_name]:
        for sample_rate, max_seconds in ((SR, 3.0), (8000, 0.05), (22050, 10.0)):
            event = render_labelled_event(class_name, np.random.default_rng(1), sample_rate,
                                          max_seconds, subtype=subtype)
            audio = event.audio
            assert audio.dtype == np.float32 and audio.ndim == 1
            assert 0 < audio.size <= int(max_seconds * sample_rate)
            assert np.all(np.isfinite(audio))
            assert 0.5 < np.max(np.abs(audio)) <= 1.0
            assert event.class_name == class_name and event.subtype == subtype
            assert event.fine in FINE_CLASSES[COARSE_CLASSES.index(class_name) + 1]


def test_render_event_is_reproducible_and_seed_dependent():
    first = render_event("dog", np.random.default_rng(3), SR, 4.0)
    again = render_event("dog", np.random.default_rng(3), SR, 4.0)
    other = render_event("dog", np.random.default_rng(4), SR, 4.0)
    np.testing.assert_array_equal(first, again)
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_render_background_is_unit_rms_noise():
    background = render_background(np.random.default_rng(0), SR, SR * 2)
    assert background.dtype == np.float32 and background.shape == (SR * 2,)
    assert np.all(np.isfinite(background))
    assert np.sqrt(np.mean(background.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    # city noise is low-frequency heavy: more power below 500 Hz than above 2 kHz
    power = _mean_power(background.astype(np.float64))
    freqs = np.fft.rfftfreq(512, 1.0 / SR)
    assert power[freqs < 500].sum() > power[freqs > 2000].sum()


@pytest.mark.parametrize("bad", [
    dict(class_name="cat"),
    dict(sample_rate=4000),
    dict(max_seconds=0.0),
    dict(max_seconds=float("nan")),
])
def test_render_event_rejects_bad_arguments(bad):
    args = dict(class_name="dog", rng=np.random.default_rng(0), sample_rate=SR, max_seconds=1.0)
    args.update(bad)
    with pytest.raises(ConfigError, match=next(iter(bad))):
        render_event(**args)
    with pytest.raises(ConfigError, match="subtype"):
        render_labelled_event("dog", np.random.default_rng(0), SR, 1.0, subtype="siren-wail")


@pytest.mark.parametrize("class_name,subtype", [
    ("machinery-impact", "jackhammer"),
    ("machinery-impact", "rock-drill"),
    ("machinery-impact", "hoe-ram"),
    ("machinery-impact", "pile-driver"),
    ("alert-signal", "siren-yelp"),
    ("alert-signal", "reverse-beeper"),
    ("alert-signal", "smoke-alarm"),
    ("alert-signal", "car-alarm"),
    ("dog", "bark"),
])
def test_repetitive_classes_repeat(class_name, subtype):
    assert subtype in REPETITIVE_SUBTYPES
    for seed in range(4):
        event = render_labelled_event(class_name, np.random.default_rng(seed), SR, 10.0,
                                      subtype=subtype)
        score = _repetition(event.audio)
        assert score > 0.45, f"{subtype} seed {seed}: repetition {score:.2f}"


def test_isolated_impacts_do_not_repeat():
    assert not set(SUBTYPES["non-machinery-impact"]) & REPETITIVE_SUBTYPES
    for seed in range(12):
        audio = render_event("non-machinery-impact", np.random.default_rng(seed), SR, 10.0)
        score = _repetition(audio)
        assert score < 0.3, f"seed {seed}: repetition {score:.2f}"


def test_classes_are_spectrally_distinct():
    seeds = range(4)
    audio = {c: [render_event(c, np.random.default_rng(s), SR, 4.0) for s in seeds]
             for c in COARSE_CLASSES}
    centroid = {c: [_centroid(a) for a in audio[c]] for c in COARSE_CLASSES}
    # a low engine rumble vs high-pitched alarms / barks
    assert max(centroid["engine"]) < 0.25 * min(centroid["alert-signal"])
    assert max(centroid["engine"]) < 0.5 * min(centroid["dog"])
    assert max(centroid["human-voice"]) < min(centroid["dog"])

    # leave-one-out nearest class mean on 24 log bands: far above chance (1/8)
    def profile(x):
        power = _mean_power(x.astype(np.float64))
        edges = np.unique(np.geomspace(2, power.size, 25).astype(int))
        bands = np.log(np.add.reduceat(power, edges[:-1])[: edges.size - 1] + 1e-12)
        return bands - bands.mean()

    feats = {c: [profile(a) for a in audio[c]] for c in COARSE_CLASSES}
    hits = 0
    for c in COARSE_CLASSES:
        for i, f in enumerate(feats[c]):
            means = {d: np.mean([g for j, g in enumerate(feats[d]) if (d, j) != (c, i)], axis=0)
                     for d in COARSE_CLASSES}
            hits += min(means, key=lambda d: np.linalg.norm(f - means[d])) == c
    assert hits / (len(COARSE_CLASSES) * len(seeds)) >= 0.6


# ------------------------------------------------------------------------------------------
# dataset
# ------------------------------------------------------------------------------------------


def test_csv_has_exactly_the_sonyc_v2_columns(small_dataset):
    fine = [name for key in sorted(FINE_CLASSES) for name in FINE_CLASSES[key]]
    expected = ["split", "sensor_id", "audio_filename", "annotator_id", "borough", "block",
                "latitude", "longitude", "year", "week", "day", "hour",
                *(f"{f}_presence" for f in fine), *COARSE_COLUMNS,
                *(f"{f}_proximity" for f in fine)]
    with (small_dataset / "annotations.csv").open(newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header == expected == list(CSV_COLUMNS)
    for row in _read_rows(small_dataset):
        assert all(row[c] in ("0", "1") for c in expected if c.endswith("_presence"))
        assert all(row[c] in ("near", "far", "notsure", "-1")
                   for c in expected if c.endswith("_proximity"))
        for index, cls_column in enumerate(COARSE_COLUMNS, start=1):
            fine_present = any(row[f"{f}_presence"] == "1" for f in FINE_CLASSES[index])
            assert row[cls_column] == ("1" if fine_present else "0")


def test_rows_verified_only_outside_train_and_truth_matches(small_dataset):
    rows = _read_rows(small_dataset)
    config = json.loads((small_dataset / "synth_config.json").read_text())
    truth = {clip["audio_filename"]: {e["class"] for e in clip["events"]}
             for clip in config["clips"]}
    by_clip: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_clip.setdefault(row["audio_filename"], []).append(row)
    assert set(by_clip) == set(truth) and len(truth) == 12
    for name, clip_rows in by_clip.items():
        split = clip_rows[0]["split"]
        assert all(r["split"] == split for r in clip_rows)
        crowd = [r for r in clip_rows if int(r["annotator_id"]) > 0]
        verified = [r for r in clip_rows if int(r["annotator_id"]) == VERIFIED_ANNOTATOR]
        assert len(crowd) == 3 and len({r["annotator_id"] for r in crowd}) == 3
        assert len(verified) == (0 if split == "train" else 1)
        for row in verified:
            present = {c for c, col in zip(COARSE_CLASSES, COARSE_COLUMNS, strict=True)
                       if row[col] == "1"}
            assert present == truth[name]
        assert (small_dataset / "audio" / name).is_file()


def test_splits_are_sensor_disjoint_and_non_empty(small_dataset):
    rows = _read_rows(small_dataset)
    splits_of_sensor: dict[str, set[str]] = {}
    for row in rows:
        splits_of_sensor.setdefault(row["sensor_id"], set()).add(row["split"])
    assert all(len(s) == 1 for s in splits_of_sensor.values())
    assert {r["split"] for r in rows} == set(SPLITS)
    assert len(splits_of_sensor) >= 3


@pytest.mark.parametrize("clips", [3, 4, 7])
def test_every_split_gets_a_clip(tmp_path, clips):
    out = synthesize(tmp_path / "d", clips, 1, clip_seconds=0.2, sample_rate=8000,
                     progress=False)
    assert {r["split"] for r in _read_rows(out)} == set(SPLITS)


def test_wav_files_are_16_bit_mono_at_the_requested_rate(small_dataset):
    import soundfile

    files = sorted((small_dataset / "audio").glob("*.wav"))
    assert len(files) == 12
    for path in files[:3]:
        info = soundfile.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == \
            (8000, 1, 8000, "PCM_16")
        data, _ = soundfile.read(str(path))
        assert np.max(np.abs(data)) > 0.0


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path):
    opts = dict(clip_seconds=2.0, sample_rate=8000, progress=False)
    a = synthesize(tmp_path / "a", 2, 11, **opts)
    b = synthesize(tmp_path / "b", 2, 11, **opts)
    c = synthesize(tmp_path / "c", 2, 12, **opts)
    for name in ("annotations.csv", "synth_config.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    wavs = sorted(p.name for p in (a / "audio").iterdir())
    assert len(wavs) == 2 and wavs == sorted(p.name for p in (b / "audio").iterdir())
    for name in wavs:
        assert (a / "audio" / name).read_bytes() == (b / "audio" / name).read_bytes()
    assert (a / "annotations.csv").read_bytes() != (c / "annotations.csv").read_bytes()
    audio_a = b"".join((a / "audio" / n).read_bytes() for n in wavs)
    audio_c = b"".join(p.read_bytes() for p in sorted((c / "audio").iterdir()))
    assert audio_a != audio_c


def test_clip_audio_does_not_depend_on_dataset_size(tmp_path):
    """Per-clip seeding: clip i sounds the same whether 2 or 5 clips are made."""
    opts = dict(clip_seconds=0.5, sample_rate=8000, progress=False)
    small = json.loads((synthesize(tmp_path / "s", 2, 5, **opts) / "synth_config.json")
                       .read_text())["clips"]
    large = json.loads((synthesize(tmp_path / "l", 5, 5, **opts) / "synth_config.json")
                       .read_text())["clips"]
    for one, two in zip(small, large[:2], strict=True):
        assert one["events"] == two["events"]


def test_label_noise_controls_crowd_disagreement(tmp_path):
    opts = dict(clip_seconds=0.3, sample_rate=8000, progress=False, crowd_annotators=2)
    clean = synthesize(tmp_path / "clean", 16, 2, label_noise=0.0, **opts)
    config = json.loads((clean / "synth_config.json").read_text())
    truth = {c["audio_filename"]: {e["class"] for e in c["events"]} for c in config["clips"]}
    for row in _read_rows(clean):
        present = {c for c, col in zip(COARSE_CLASSES, COARSE_COLUMNS, strict=True)
                   if row[col] == "1"}
        assert present == truth[row["audio_filename"]]
    deaf = synthesize(tmp_path / "deaf", 16, 2, label_noise=1.0, **opts)
    for row in _read_rows(deaf):
        if int(row["annotator_id"]) > 0:  # every true event missed
            assert not any(row[col] == "1" for c, col in zip(COARSE_CLASSES, COARSE_COLUMNS,
                                                             strict=True)
                           if c in truth[row["audio_filename"]])


def test_every_class_is_well_represented(tmp_path):
    out = synthesize(tmp_path / "d", 60, 0, clip_seconds=0.2, sample_rate=8000, progress=False)
    clips = json.loads((out / "synth_config.json").read_text())["clips"]
    assert len(clips) == 60
    for cls in COARSE_CLASSES:
        share = np.mean([any(e["class"] == cls for e in c["events"]) for c in clips])
        assert share >= 0.08, f"{cls} in {share:.0%} of clips"
    assert any(not c["events"] for c in clips)  # some background-only clips


def test_output_reads_back_with_the_sonyc_loader(small_dataset):
    from keras_iusp.data.sonyc import read_sonyc

    index = read_sonyc(small_dataset)
    assert len(index.paths) == 12
    assert index.labels.shape == (12, len(COARSE_CLASSES))


# ------------------------------------------------------------------------------------------
# arguments and target folder
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad,name", [
    (dict(clips=0), "clips"),
    (dict(clips=2.5), "clips"),
    (dict(seed=-1), "seed"),
    (dict(seed="1"), "seed"),
    (dict(clip_seconds=0), "clip_seconds"),
    (dict(clip_seconds=float("inf")), "clip_seconds"),
    (dict(sample_rate=4000), "sample_rate"),
    (dict(split_fractions=(0.5, 0.2, 0.2)), "split_fractions"),
    (dict(split_fractions=(0.5, 0.5)), "split_fractions"),
    (dict(split_fractions=(1.2, -0.1, -0.1)), "split_fractions"),
    (dict(crowd_annotators=0), "crowd_annotators"),
    (dict(label_noise=1.5), "label_noise"),
])
def test_bad_arguments_raise_config_error_naming_them(tmp_path, bad, name):
    args = dict(clips=2, seed=0, clip_seconds=0.2, sample_rate=8000, progress=False)
    args.update(bad)
    with pytest.raises(ConfigError, match=name):
        synthesize(tmp_path / "out", **args)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_existing_output_folder(tmp_path):
    opts = dict(clip_seconds=0.2, sample_rate=8000, progress=False)
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="ds"):
        synthesize(out, 2, 0, **opts)
    assert (out / "keep.txt").read_text() == "mine"

    synthesize(out, 2, 0, overwrite=True, **opts)
    assert not (out / "keep.txt").exists() and (out / "annotations.csv").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temp/old folders left

    empty = tmp_path / "empty"
    empty.mkdir()
    assert (synthesize(empty, 2, 0, **opts) / "annotations.csv").is_file()


def test_failed_run_leaves_nothing_behind(tmp_path, monkeypatch):
    import keras_iusp.data.synth as synth_module

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synth_module, "_write_csv", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        synthesize(tmp_path / "ds", 2, 0, clip_seconds=0.2, sample_rate=8000, progress=False)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------
# figure
# ------------------------------------------------------------------------------------------


def test_plot_class_examples_writes_a_png(tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("keras_iusp.features.logmel")
    from keras_iusp.features.synth_plot import plot_class_examples

    out = plot_class_examples(tmp_path / "fig" / "classes.png", seed=1, seconds=1.0)
    assert out == tmp_path / "fig" / "classes.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["classes.png"]
    with pytest.raises(ConfigError, match="seconds"):
        plot_class_examples(tmp_path / "x.png", seconds=0.0)
