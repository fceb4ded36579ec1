"""The always-on event detector: Python (keras_iusp.detect) and the generated C++
(detector.h/.cc, compiled with g++) make the same decisions on the same int8 window outputs;
calibration meets its operating point; ``keras-iusp evaluate --stream`` reports event metrics.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.detect import (
    NEVER,
    DetectorSettings,
    Event,
    OperatingPoint,
    WindowTiming,
    calibrate,
    detect_events,
)
from keras_iusp.export.host_build import build_detector_check, run_detector_check

REFERENCE = Path(__file__).resolve().parents[1] / "firmware_assets" / "reference"


@pytest.fixture(scope="module")
def gxx() -> None:
    if shutil.which("g++") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("g++ is missing: the C++ detector cannot be checked (install g++)")
        pytest.skip("needs g++")


def _events(logits: np.ndarray, settings: DetectorSettings) -> list[tuple[int, int, int]]:
    return [(e.class_index, e.onset_window, e.offset_window)
            for e in detect_events(logits, settings)]


def _reference_settings(folder: Path) -> DetectorSettings:
    report = json.loads((folder / "export_report.json").read_text())
    return DetectorSettings.from_dict(report["detector"]["settings"])


def boundary_stream(settings: DetectorSettings, windows: int, seed: int) -> np.ndarray:
    """int8 outputs that sit on and around every class's thresholds, in runs long and short
    compared with the smoothing and the hold-offs, so that any difference in a threshold, a
    comparison or a hold-off changes the events."""
    rng = np.random.default_rng(seed)
    out = np.zeros((windows, settings.num_classes), np.int8)
    for c in range(settings.num_classes):
        on, off = settings.on_threshold[c], settings.off_threshold[c]
        if on == NEVER:  # a disabled class: it must stay silent even at the top of the range
            levels = [127, 126, 0, -128]
        else:
            levels = [on, on - 1, on + 1, off, off - 1, off + 1, 127, -128]
        levels = np.clip(levels, -128, 127)
        w = 0
        while w < windows:
            run = int(rng.integers(1, settings.hold_off_windows[c] + settings.smoothing_windows
                                   + 3))
            out[w:w + run, c] = rng.choice(levels)
            w += run
    return out


def test_detector_rules_by_hand():
    # K = 2, on 10, off 0, hold-off 2 windows; one class
    settings = DetectorSettings(2, (10,), (0,), (2,))
    x = np.array([[v] for v in [20, 0, 5, 20, 20, -20, 30, 30, 30, -60, 0, 40, 40]], np.int8)
    # sums of the last 2: 20 (n = 1) -> on@0 | 20 | 5 | 25 | 40 | 0 (not < 0 * 2) | 10 | 60 |
    # 60 | -30 -> off@9, hold until 11 | -60 | 40 at 11 -> on@11 | 80 | end -> offset 13
    assert _events(x, settings) == [(0, 0, 9), (0, 11, 13)]
    # without the hold-off: the same; with hold-off 3 the onset moves to window 12
    assert _events(x, DetectorSettings(2, (10,), (0,), (3,))) == [(0, 0, 9), (0, 12, 13)]
    # no hysteresis (off = on): the first dip below 10 ends the event
    assert _events(x, DetectorSettings(2, (10,), (10,), (0,)))[0] == (0, 0, 2)
    assert _events(x, DetectorSettings(1, (NEVER,), (NEVER,), (0,))) == []


def test_settings_are_checked():
    from keras_iusp.utils.errors import ConfigError

    for bad in [(0, (1,), (0,), (0,)), (9, (1,), (0,), (0,)), (1, (1,), (2,), (0,)),
                (1, (1,), (-128,), (0,)), (1, (1,), (0,), (-1,)), (1, (1, 2), (0,), (0,))]:
        with pytest.raises(ConfigError):
            DetectorSettings(*bad)
    with pytest.raises(ConfigError):
        detect_events(np.zeros((3, 1), np.float32), DetectorSettings(1, (1,), (0,), (0,)))


def test_reference_cpp_detector_equals_python(gxx, tmp_path):
    """The reference assets' model_settings.h (C++) and export_report.json (Python) hold the
    same detector: equal events on real window outputs and on threshold-boundary streams."""
    from keras_iusp.export.verify import window_outputs

    binary = build_detector_check(REFERENCE, tmp_path / "detector_check")
    settings = _reference_settings(REFERENCE)
    rng = np.random.default_rng(3)
    frames = rng.normal(0, 3, (1500, 64)).astype(np.float32)
    real = window_outputs((REFERENCE / "model.tflite").read_bytes(), frames, 49)
    assert real.dtype == np.int8 and real.shape == (len(range(0, 1500 - 98 + 1, 49)), 8)
    for logits in (real, boundary_stream(settings, 3000, 0), boundary_stream(settings, 500, 1)):
        python = _events(logits, settings)
        assert run_detector_check(binary, logits, tmp_path) == python
    assert len(_events(boundary_stream(settings, 3000, 0), settings)) > 50


def test_reference_detector_files_are_current():
    from keras_iusp.export.detector_files import detector_files

    for name, text in detector_files().items():
        assert (REFERENCE / name).read_text() == text, name


def test_cpp_detector_equals_python_random_settings(gxx, tmp_path):
    """The generator's current detector.cc (with the reference's model_settings.h) against
    keras_iusp.detect, for random smoothing lengths, thresholds and hold-offs."""
    from keras_iusp.export.detector_files import detector_files

    assets = tmp_path / "assets"
    assets.mkdir()
    shutil.copy(REFERENCE / "model_settings.h", assets)
    for name, text in detector_files().items():
        (assets / name).write_text(text)
    binary = build_detector_check(assets, tmp_path / "detector_check")
    rng = np.random.default_rng(7)
    for trial in range(12):
        k = int(rng.integers(1, 9))
        on = rng.integers(-100, 129, 8)
        off = np.maximum(-127, on - rng.integers(0, 40, 8))
        settings = DetectorSettings(k, tuple(int(v) for v in on), tuple(int(v) for v in off),
                                    tuple(int(v) for v in rng.integers(0, 6, 8)))
        logits = boundary_stream(settings, 800, trial)
        assert run_detector_check(binary, logits, tmp_path, settings) == _events(logits,
                                                                                settings)


def test_fresh_export_has_a_calibrated_detector(gxx, lstm_export, tmp_path):
    folder, report = lstm_export
    block = report["detector"]
    settings = DetectorSettings.from_dict(block["settings"])
    assert settings.num_classes == len(report["class_names"])
    assert block["reference_events"].startswith("synthetic")
    header = (folder / "model_settings.h").read_text()
    assert "kDetectorOnThreshold[kNumClasses] = {" + ", ".join(
        str(v) for v in settings.on_threshold) + "}" in header
    assert "detector.h/.cc" in (folder / "README.md").read_text()
    binary = build_detector_check(folder, tmp_path / "detector_check")
    for seed in (0, 1):
        logits = boundary_stream(settings, 1500, seed)
        assert run_detector_check(binary, logits, tmp_path) == _events(logits, settings)


def _timing() -> WindowTiming:
    return WindowTiming(frames=50, hop=25, frame_hop_seconds=0.01, frame_seconds=0.025)


def test_window_timing():
    t = _timing()
    assert t.hop_seconds == pytest.approx(0.25)
    assert t.end_seconds(0) == pytest.approx(0.515)
    assert t.tile(1)[0] == pytest.approx(t.tile(0)[1])  # consecutive tiles touch
    assert t.event_seconds(Event(0, 2, 4)) == (pytest.approx(t.tile(2)[0]),
                                               pytest.approx(t.tile(3)[1]))


def _toy_stream(rng):
    """Class a has 12 clear events; b fires at random (5 % of windows); c has a's events at 20
    and b's single-window spikes at 40."""
    t = _timing()
    windows = 600
    logits = np.full((windows, 3), -60, np.int8)
    reference = []
    for i in range(12):
        w = 20 + 45 * i
        logits[w:w + 8, 0] = 50
        logits[w:w + 8, 2] = 20
        onset, _ = t.tile(w)
        reference += [("a", onset, onset + 8 * t.hop_seconds),
                      ("c", onset, onset + 8 * t.hop_seconds)]
    noise = rng.random(windows) < 0.05
    logits[noise, 1] = 60
    logits[noise, 2] = 40  # false alarms of class c score higher than its events
    reference += [("b", t.tile(w)[0], t.tile(w)[0] + 1.0) for w in (100, 300)]
    return logits, sorted(reference, key=lambda e: e[1])


def test_calibration_meets_the_operating_point():
    rng = np.random.default_rng(0)
    logits, reference = _toy_stream(rng)
    names = ["a", "b", "c"]
    result = calibrate(logits, reference, names, _timing(), 0.05,
                       OperatingPoint(target_precision=0.9))
    settings = DetectorSettings.from_dict(result["settings"])
    a, b, c = (result["per_class"][n] for n in names)
    assert a["enabled"] and a["f1"] == 1.0 and a["false_alarms_per_hour"] == 0
    assert not b["enabled"] and settings.on_threshold[1] == NEVER
    # class c: its false alarms are single windows scoring above its events; no threshold
    # alone separates them, smoothing over 2+ windows does
    assert settings.smoothing_windows >= 2 and c["enabled"] and c["f1"] == 1.0
    k1 = DetectorSettings(1, (50, NEVER, settings.on_threshold[2]),
                          (50, NEVER, settings.off_threshold[2]), (0, 0, 0))
    assert len([e for e in detect_events(logits, k1) if e.class_index == 2]) > 12
    loose = calibrate(logits, reference, names, _timing(), 0.05,
                      OperatingPoint(false_alarms_per_hour=10_000))
    assert loose["per_class"]["a"]["enabled"] and loose["per_class"]["c"]["enabled"]
    hours = len(logits) * _timing().hop_seconds / 3600
    for r in loose["per_class"].values():
        assert r["false_alarms_per_hour"] <= 10_000
        assert r["false_alarms_per_hour"] * hours == pytest.approx(round(r["false_alarms_per_hour"]
                                                                         * hours))


def test_calibration_disables_a_class_that_never_varies():
    logits = np.full((40, 2), -20, np.int8)
    logits[10:15, 0] = 40
    result = calibrate(logits, [("a", 2.7, 4.0)], ["a", "b"], _timing(), 0.05)
    assert result["settings"]["on_threshold"][1] == NEVER
    assert result["per_class"]["a"]["enabled"]


def test_operating_point_is_checked():
    from keras_iusp.utils.errors import ConfigError

    for kwargs in [{}, {"target_precision": 0.5, "false_alarms_per_hour": 1.0},
                   {"target_precision": 0.0}, {"target_precision": 1.2},
                   {"false_alarms_per_hour": -1.0}]:
        with pytest.raises(ConfigError):
            OperatingPoint(**kwargs)


def test_evaluate_stream_cli(lstm_export, tiny_data, tmp_path, capsys):
    from keras_iusp.cli.main import main

    folder, report = lstm_export
    _, data_dir, _ = tiny_data
    out = tmp_path / "stream.json"
    assert main(["evaluate", str(folder / "model.tflite"), "--data", str(data_dir), "--stream",
                 "--split", "validate", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "FA/hour" in printed and "micro event F1" in printed
    result = json.loads(out.read_text())
    assert result["reference_events"].startswith("synthetic")
    assert set(result["per_class"]) == set(report["class_names"])
    # the export's calibration scored the same validation stream with the same settings
    assert result["overall"] == report["detector"]["validation"]["overall"]
    for r in result["per_class"].values():
        assert r["false_alarms_per_hour"] == pytest.approx(
            r["false_alarms"] * 3600 / (result["windows"] * result["hop_seconds"]))


def test_clip_level_fallback_without_event_times(tiny_data, tmp_path):
    """A dataset without synth_config.json (SONYC-UST): each labelled clip is one event."""
    from keras_iusp.data import read_sonyc
    from keras_iusp.export.stream_eval import CLIP_SOURCE, build_stream, reference_events
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig

    _, data_dir, _ = tiny_data
    copy = tmp_path / "sonyc_like"
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns(".keras-iusp-cache",
                                                                  "synth_config.json"))
    cache = build_feature_cache(read_sonyc(copy), FeatureConfig(clip_seconds=1.0),
                                progress=False)
    stream = build_stream(cache, "validate", seed=0)
    events, source = reference_events(stream, cache)
    assert source == CLIP_SOURCE
    clip = stream.frame_hop_seconds * len(stream.frames) / len(stream.filenames)
    expected = sum(int(v) for v in np.asarray(stream.labels).ravel())
    # merged where the same class is in consecutive clips, so never more events than labels
    assert 0 < len(events) <= expected
    for _, a, b in events:
        assert (b - a) / clip == pytest.approx(round((b - a) / clip))


def test_stream_cli_bad_input(tmp_path, capsys, lstm_student):
    from keras_iusp.cli.main import main

    assert main(["evaluate", str(lstm_student.path), "--data", str(tmp_path), "--stream"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("keras-iusp: error: --stream")
    (tmp_path / "x.tflite").write_bytes(b"")
    assert main(["evaluate", str(tmp_path / "x.tflite"), "--data", str(tmp_path),
                 "--collar", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--collar" in err[0]
    assert main(["export", str(lstm_student.path), "--data", str(tmp_path), "--out",
                 str(tmp_path / "fw"), "--target-precision", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--target-precision" in err[0]
    assert not (tmp_path / "fw").exists()


def test_reference_events_from_the_real_recordings_builder(tiny_data, tmp_path):
    """A dataset made by ``build-real-audio`` (real_audio_config.json, events with a list of
    classes, distractors that are not events) gives its true event times, not clip-level ones,
    and takes precedence over a synth_config.json beside it."""
    from keras_iusp.data import read_sonyc
    from keras_iusp.export.stream_eval import REAL_SOURCE, build_stream, reference_events
    from keras_iusp.features import build_feature_cache
    from keras_iusp.features.logmel import FeatureConfig

    _, data_dir, _ = tiny_data
    copy = tmp_path / "real_like"
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns(".keras-iusp-cache"))
    assert (copy / "synth_config.json").is_file()
    index = read_sonyc(copy)
    names = list(index.class_names)
    clips = [{"audio_filename": Path(p).name,
              "events": [{"classes": [names[0], names[1]], "onset": 0.25, "duration": 0.5}],
              "distractors": [{"onset": 0.0, "duration": 1.0, "source": 3}]}
             for p in index.paths]
    (copy / "real_audio_config.json").write_text(json.dumps({"clips": clips}))
    cache = build_feature_cache(index, FeatureConfig(clip_seconds=1.0), progress=False)
    stream = build_stream(cache, "validate", seed=0)
    events, source = reference_events(stream, cache)
    assert source == REAL_SOURCE
    assert len(events) == 2 * len(stream.filenames)  # two classes per clip, nothing else
    starts = {round(stream.starts[k] * stream.frame_hop_seconds + 0.25, 6)
              for k in range(len(stream.filenames))}
    for cls, a, b in events:
        assert cls in names[:2] and round(a, 6) in starts and b - a == pytest.approx(0.5)
