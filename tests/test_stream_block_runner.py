"""The block streaming runner (``deploy/stream_runner/block_runner.cc``): 16-bit PCM -> C++
front end -> blocks of int8 frames -> the streaming model with its state tensors carried ->
frame logits and clip scores equal to the Python streaming model (TFLite-Micro) within one int8
step, on the host (reference kernels) and on the emulated Cortex-M4F (CMSIS-NN kernels); and
its window scores and detector events exactly those of keras_iusp.export.stream_detector and
keras_iusp.detect on the frame logits it printed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
import stream_block_target as blocks
from toolchain import CORTEX_M4, require

import keras_iusp.export.cortex_m4 as m4
from keras_iusp.cli.main import main
from keras_iusp.data import read_sonyc
from keras_iusp.detect import DetectorSettings, detect_events
from keras_iusp.export.host_build import FrontendLib
from keras_iusp.export.stream_detector import StreamWindows, window_scores
from keras_iusp.export.streaming import DEFAULT_CELL_CLIP, build_streaming
from keras_iusp.export.streaming_export import stream_io

BLOCK = 4


@pytest.fixture(scope="module")
def export(tiny_data, lstm_student, tmp_path_factory) -> Path:
    _, data, _ = tiny_data
    out = tmp_path_factory.mktemp("block_runner") / "fw"
    assert main(["export", str(lstm_student.path), "--data", str(data), "--out", str(out),
                 "--window-seconds", "0.5", "--golden", "1", "--streaming",
                 "--block-frames", str(BLOCK)]) == 0
    return out


@pytest.fixture(scope="module")
def pcm(tiny_data) -> np.ndarray:
    """Four 1 s clips of the tiny set as int16 ``[4, 16000]``."""
    _, data, _ = tiny_data
    paths = sorted(read_sonyc(data).paths)[:4]
    return np.stack([soundfile.read(p, dtype="int16")[0] for p in paths])


@pytest.fixture(scope="module")
def reference(export, pcm, lstm_student, tmp_path_factory):
    """``expect(clips, carry_state=True)``: the Python int8 frame logits of each clip."""
    frontend = FrontendLib(export, tmp_path_factory.mktemp("frontend"))
    streaming = build_streaming(lstm_student.model, BLOCK, DEFAULT_CELL_CLIP)  # as exported
    model = (export / "stream_model.tflite").read_bytes()
    arena = json.loads((export / "stream_report.json").read_text())["arena_bytes"]

    def expect(clips: np.ndarray, carry_state: bool = True) -> list[np.ndarray]:
        return [blocks.python_reference(streaming, model, arena, frontend.frames(c)[0],
                                        carry_state) for c in clips]

    return expect


def _scale_zero(export: Path) -> tuple[float, int]:
    q = stream_io((export / "stream_model.tflite").read_bytes()).output_quant["frame_logits"]
    return q.scale, q.zero_point


def check_scores(result: dict, expected: list[np.ndarray], export: Path) -> None:
    scale, zero = _scale_zero(export)
    for cpp, python in zip(result["frames"], expected, strict=True):
        assert cpp.shape == python.shape
        diff = np.abs(cpp.astype(int) - python.astype(int))
        assert diff.max() <= 1, (int(diff.max()), int((diff > 1).sum()))
    maxes = np.stack([p.max(axis=0) for p in expected]).astype(int)
    assert np.abs(result["max_logits"].astype(int) - maxes).max() <= 1
    means = np.stack([(p.astype(float) - zero).mean(axis=0) for p in expected])
    assert np.abs(result["mean_logits"] / scale - means).max() <= 1.0


def _windows(export: Path) -> StreamWindows:
    report = json.loads((export / "stream_report.json").read_text())
    d = report["detector"]
    return StreamWindows(d["window_output_frames"], d["window_hop_output_frames"],
                         report["frame_stride"])


def firing_settings(scores: np.ndarray) -> DetectorSettings:
    """Settings under which every class fires on these window scores (the calibrated ones may
    disable classes on the tiny set): on at the class's 60th percentile, 2 steps of hysteresis,
    K = 2, a hold-off of one window."""
    on = tuple(int(v) for v in np.percentile(scores.astype(int), 60, axis=0).round())
    return DetectorSettings(2, on, tuple(max(-127, v - 2) for v in on), (1,) * len(on))


def check_events(result: dict, export: Path, settings: DetectorSettings) -> int:
    """The runner's window scores and events are those of the Python detector on the frame
    logits the runner printed; returns the number of events."""
    _, zero = _scale_zero(export)
    count = 0
    for frames, windows, onsets, events in zip(result["frames"], result["windows"],
                                               result["onsets"], result["events"], strict=True):
        expected = window_scores(frames, _windows(export), zero)
        np.testing.assert_array_equal(windows, expected)
        python = detect_events(expected, settings)
        assert events == [(e.class_index, e.onset_window, e.offset_window) for e in python]
        assert onsets == sorted(((e.class_index, e.onset_window) for e in python),
                                key=lambda o: (o[1], o[0]))
        count += len(python)
    return count


def test_host_runner_equals_python_stream(export, pcm, reference, tmp_path):
    require("g++", "tflm-host")
    binary = blocks.build_host(export, tmp_path / "block_runner")
    # clip by clip (each from zero state), then the four clips as one continuous stream
    per_clip = blocks.run_host(binary, pcm, tmp_path)
    check_scores(per_clip, reference(pcm), export)
    stream = pcm.reshape(1, -1)
    continuous = blocks.run_host(binary, stream, tmp_path)
    expected = reference(stream)
    check_scores(continuous, expected, export)
    # the comparison can tell a runner that forgets its state: Python without the carry
    forgetful = reference(stream, carry_state=False)[0]
    assert np.abs(forgetful.astype(int) - expected[0].astype(int)).max() > 1
    # windows and events: the calibrated detector, then one that fires on every class
    calibrated = DetectorSettings.from_dict(
        json.loads((export / "stream_report.json").read_text())["detector"]["settings"])
    check_events(continuous, export, calibrated)
    firing = firing_settings(continuous["windows"][0])
    fired = blocks.run_host(binary, stream, tmp_path, settings=firing)
    assert check_events(fired, export, firing) >= 2
    np.testing.assert_array_equal(fired["windows"][0], continuous["windows"][0])
    ram = continuous["ram"]
    assert ram["block"] == BLOCK * 64
    report = json.loads((export / "stream_report.json").read_text())
    assert ram["state"] == report["state_bytes"]
    assert ram["arena_used"] <= ram["arena"]


def test_m4_runner_equals_python_stream(export, pcm, reference, tmp_path):
    require(*CORTEX_M4)
    builder = m4.M4Builder(tmp_path / "m4")
    elf = blocks.build_m4(builder, export)
    stream = pcm[:2].reshape(1, -1)
    result = blocks.run_m4(elf, stream, tmp_path)
    check_scores(result, reference(stream), export)
    firing = firing_settings(result["windows"][0])
    fired = blocks.run_m4(elf, stream, tmp_path, settings=firing)
    assert check_events(fired, export, firing) >= 1
    assert result["ram"]["arena_used"] <= result["ram"]["arena"] + 1024
