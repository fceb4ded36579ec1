"""End to end on the host: 16-bit PCM -> C++ front end -> C++ streaming runner (TFLite-Micro)
-> clip scores equal to ``keras-iusp evaluate`` on the same ``.tflite`` within one int8 step.

The runner (``deploy/stream_runner``) is built with g++ against the TFLite-Micro host build in
``<repo>/../shared/tflm-host`` (headers + static library), as an embedded team would build it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from toolchain import require

from keras_iusp.data import read_sonyc, synthesize
from keras_iusp.data.audio import load_audio
from keras_iusp.evaluate import clip_probabilities, evaluate_model
from keras_iusp.export.host_build import build_stream_runner, run_stream_runner
from keras_iusp.export.locations import TFLM_HOST_LIBRARY
from keras_iusp.export.verify import io_details
from keras_iusp.features import build_feature_cache
from keras_iusp.features.logmel import FeatureConfig, log_mel

REFERENCE = Path(__file__).resolve().parents[1] / "firmware_assets" / "reference"
LIBRARY = TFLM_HOST_LIBRARY



@pytest.fixture(autouse=True, scope="module")
def _needs_host_tflm():
    require("g++", "tflm-host")


CLIP_SECONDS = 2.0  # 198 frames: windows at 0, 49, 98 and the end-aligned one at 100


@pytest.fixture(scope="module")
def runner(tmp_path_factory) -> Path:
    return build_stream_runner(REFERENCE, tmp_path_factory.mktemp("runner") / "stream_runner")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream_data")
    synthesize(root / "data", clips=12, seed=11, clip_seconds=CLIP_SECONDS, sample_rate=16000,
               progress=False)
    index = read_sonyc(root / "data")
    cache = build_feature_cache(index, FeatureConfig(clip_seconds=CLIP_SECONDS), progress=False)
    by_name = {Path(p).name: p for p in index.paths}
    pcm = np.stack([soundfile.read(by_name[Path(f).name], dtype="int16")[0]
                    for f in cache.filenames])
    return root, cache, pcm


def logit_steps(probabilities: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Clip probabilities back to the int8 output grid (each is sigmoid of a dequantised int8)."""
    p = np.clip(np.asarray(probabilities, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p)) / scale + zero_point


def test_runner_scores_equal_evaluate(runner, data, tmp_path):
    root, cache, pcm = data
    model = REFERENCE / "model.tflite"
    _, out = io_details(model.read_bytes())
    result = run_stream_runner(runner, pcm, tmp_path)
    assert result["windows"] == [4] * len(pcm)  # the same windows as `evaluate`
    # `keras-iusp evaluate` on the .tflite: every split, the clips in cache order
    python = clip_probabilities(model, np.asarray(cache.features))
    expected = logit_steps(python, out.scale, out.zero_point)
    np.testing.assert_allclose(expected, np.round(expected), atol=1e-3)  # on the int8 grid
    steps = np.abs(result["max_logits"] - np.round(expected))
    assert steps.max() <= 1, steps.max()
    print(f"{len(pcm)} clips: {np.mean(steps == 0):.2%} of clip scores identical, max "
          f"{int(steps.max())} int8 step; host {result['us_per_window']:.0f} us per window")
    # the same through the evaluate entry point (micro-AUPRC on the test split)
    split = cache.splits == "test"
    if split.any():
        from keras_iusp.metrics import micro_auprc

        device = 1 / (1 + np.exp(-out.scale * (result["max_logits"] - out.zero_point)))
        reported = evaluate_model(model, cache, "test")["micro_auprc"]
        assert micro_auprc(cache.labels[split], device[split]) == pytest.approx(reported,
                                                                                abs=0.02)


def test_runner_ram_is_the_reported_ram(runner, data, tmp_path):
    report = json.loads((REFERENCE / "export_report.json").read_text())
    result = run_stream_runner(runner, data[2][:1], tmp_path)
    ram = result["ram"]
    assert ram["frontend_state"] == report["runner"]["frontend_state_bytes"]
    assert ram["frame_ring"] == report["runner"]["frame_ring_bytes"]
    assert ram["arena"] == report["arena_bytes"] and ram["arena_used"] <= ram["arena"]
    assert report["runner"]["total_ram_bytes"] == (
        ram["frontend_state"] + ram["frame_ring"] + ram["arena"])
    for target in report["targets"]:
        assert target["ram"] == report["runner"]["total_ram_bytes"]
        assert target["fits"] == (target["ram"] <= target["ram_budget"]
                                  and target["flash"] <= target["flash_budget"])


def test_resampled_stereo_clip_end_to_end(runner, data, tmp_path):
    """A 44.1 kHz stereo file: `evaluate` scores the loader's resampled float audio; the runner
    gets those samples rounded to 16 bits, as a 16 kHz microphone path delivers them."""
    root, cache, pcm = data
    high = soxr.resample(pcm[0].astype(np.float32) / 32768, 16000, 44100)
    t = np.arange(len(high)) / 44100
    path = tmp_path / "stereo44k.wav"
    soundfile.write(path, np.stack([high, 0.6 * high + 0.05 * np.sin(2 * np.pi * 700 * t)], 1),
                    44100, subtype="PCM_16")
    config = FeatureConfig(clip_seconds=CLIP_SECONDS)
    audio = load_audio(path, config.sample_rate, CLIP_SECONDS)
    device_pcm = np.clip(np.round(audio * 32768), -32768, 32767).astype(np.int16)
    result = run_stream_runner(runner, device_pcm[None], tmp_path)
    model = REFERENCE / "model.tflite"
    _, out = io_details(model.read_bytes())
    python = clip_probabilities(model, log_mel(audio, config)[None])
    steps = np.abs(result["max_logits"] - np.round(logit_steps(python, out.scale,
                                                               out.zero_point)))
    assert steps.max() <= 1, steps


def test_runner_events_on_a_continuous_stream(runner, data, tmp_path):
    """The clips end to end as one stream: the runner's detector events are exactly what
    keras_iusp.detect makes of the runner's own int8 window outputs with the reference assets'
    calibrated settings, and those outputs are the Python window outputs of the same audio
    (the C++ front end's floats differ in the last bits: a window output may move by an int8
    step or two, most are identical)."""
    from keras_iusp.detect import DetectorSettings, detect_events
    from keras_iusp.export.verify import window_outputs

    _, cache, pcm = data
    stream = pcm.reshape(-1)
    result = run_stream_runner(runner, stream[None], tmp_path)
    report = json.loads((REFERENCE / "export_report.json").read_text())
    settings = DetectorSettings.from_dict(report["detector"]["settings"])
    logits = result["window_logits"]
    expected = [(0, e.class_index, e.onset_window, e.offset_window)
                for e in detect_events(logits, settings)]
    assert result["events"] == expected and expected
    config = FeatureConfig(clip_seconds=len(stream) / 16000)
    python = window_outputs((REFERENCE / "model.tflite").read_bytes(),
                            log_mel(stream.astype(np.float32) / 32768, config), 49)
    assert logits.shape == python.shape
    steps = np.abs(logits.astype(int) - python.astype(int))
    assert steps.max() <= 2 and np.mean(steps == 0) > 0.9, (steps.max(), np.mean(steps == 0))


def test_runner_on_a_fresh_export_equals_evaluate(lstm_export, tiny_data, tmp_path):
    """Not only the committed assets: the session's fresh 0.5 s export of a compressed
    cnn_lstm_xs, streamed from the tiny data set's 16-bit files."""
    folder = lstm_export[0]
    _, data_dir, cache = tiny_data
    by_name = {p.name: p for p in Path(data_dir).rglob("*.wav")}
    pcm = np.stack([soundfile.read(by_name[Path(f).name], dtype="int16")[0]
                    for f in cache.filenames])
    binary = build_stream_runner(folder, tmp_path / "fresh_runner")
    result = run_stream_runner(binary, pcm, tmp_path)
    model = folder / "model.tflite"
    _, out = io_details(model.read_bytes())
    expected = np.round(logit_steps(clip_probabilities(model, np.asarray(cache.features)),
                                    out.scale, out.zero_point))
    assert result["windows"] == [4] * len(pcm)  # 98 frames, 48-frame windows every 24 + the end
    assert np.abs(result["max_logits"] - expected).max() <= 1


def test_a_clip_shorter_than_one_window_is_an_error_on_both_sides(runner, data, tmp_path):
    """Half a window of audio: the runner exits 2 with a message instead of -128 logits, and
    `evaluate` on clips of that length says the same instead of failing on a tensor shape."""
    from keras_iusp.utils.errors import KerasIuspError

    root, _, pcm = data
    short = pcm[:2, :8000]  # 0.5 s: 48 frames, the reference window is 98
    with pytest.raises(KerasIuspError, match="48 frames, shorter than the model's window of 98"):
        run_stream_runner(runner, short, tmp_path)
    cache = build_feature_cache(read_sonyc(root / "data"), FeatureConfig(clip_seconds=0.5),
                                progress=False)
    with pytest.raises(KerasIuspError, match="48 frames are shorter than the model's window of "
                                             "98 frames"):
        evaluate_model(REFERENCE / "model.tflite", cache, "validate")
