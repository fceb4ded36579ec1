"""``keras-iusp export --streaming``: int8 streaming model, its assets, TFLM, int8 state drift."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from keras_iusp.cli import main
from keras_iusp.export.firmware import model_ops
from keras_iusp.export.streaming import build_streaming, keras_invoke, run_stream
from keras_iusp.export.streaming_export import (
    drift,
    stream_io,
    tflite_invoke,
    tflm_invoke,
)

BLOCK = 4


@pytest.fixture(scope="module")
def stream_export(tiny_data, lstm_student, tmp_path_factory):
    """``(folder, printed)`` of a CLI export of the distilled CNN-LSTM with ``--streaming``."""
    _, data, _ = tiny_data
    out = tmp_path_factory.mktemp("stream") / "fw"
    code = main(["export", str(lstm_student.path), "--data", str(data), "--out", str(out),
                 "--window-seconds", "0.5", "--golden", "1", "--streaming",
                 "--block-frames", str(BLOCK)])
    assert code == 0
    return out


def test_streaming_assets_beside_the_window_export(stream_export):
    for name in ("model.tflite", "model_settings.h", "stream_model.tflite",
                 "stream_model_float.tflite", "stream_model_data.h", "stream_model_data.cc",
                 "stream_settings.h", "stream_report.json"):
        assert (stream_export / name).is_file(), name
    report = json.loads((stream_export / "stream_report.json").read_text())
    assert json.loads((stream_export / "export_report.json").read_text())["streaming"] == report
    model = (stream_export / "stream_model.tflite").read_bytes()
    ops = model_ops(model)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" not in ops  # LSTM state is external, not a kernel's
    io = stream_io(model)
    assert all(q.dtype == np.int8 for q in io.input_quant.values())
    states = {s["name"]: s for s in report["state_quantization"]}
    assert {"lstm_h", "lstm_c", "conv1_conv_state"} <= set(states)
    assert states["conv1_conv_state"]["carry_is_copy"]  # a buffer slice keeps its scale
    settings = (stream_export / "stream_settings.h").read_text()
    assert f"kBlockFrames = {BLOCK};" in settings
    assert f"kNumStates = {len(states)};" in settings
    assert int(re.search(r"kTensorArenaSize = (\d+);", settings).group(1)) == \
        report["arena_bytes"]
    for op in ops:
        assert f"// {op}" in settings
    assert "g_stream_model_data" in (stream_export / "stream_model_data.cc").read_text()
    assert report["tflm_vs_litert_max_diff_steps"] <= 8
    assert 0.0 <= report["int8_streaming_auprc"] <= 1.0


def test_int8_stream_in_tflm_follows_float(stream_export, tiny_data, lstm_student):
    _, _, cache = tiny_data
    report = json.loads((stream_export / "stream_report.json").read_text())
    streaming = build_streaming(lstm_student.model, BLOCK)
    x_val, _ = cache.split("validate")
    clip = np.asarray(x_val[0], np.float32)
    model = (stream_export / "stream_model.tflite").read_bytes()
    tflm = run_stream(streaming, clip, tflm_invoke(streaming, model, report["arena_bytes"]))
    ref = run_stream(streaming, clip, keras_invoke(streaming))
    step = stream_io(model).output_quant["frame_logits"].scale
    assert np.abs(tflm - ref).max() < 0.5 * max(1.0, np.abs(ref).max())
    assert np.abs(tflm - ref).mean() < 20 * step


def test_int8_state_drift_is_bounded(stream_export, tiny_data, lstm_student):
    """Over a stream many clips long, the int8-vs-float error of the last segment is no larger
    than that of the first (carried int8 state does not drift away)."""
    _, _, cache = tiny_data
    streaming = build_streaming(lstm_student.model, BLOCK)
    stream = np.concatenate([np.asarray(c, np.float32) for c in cache.features] * 3)
    int8 = tflite_invoke(streaming, (stream_export / "stream_model.tflite").read_bytes())
    flt = tflite_invoke(streaming, (stream_export / "stream_model_float.tflite").read_bytes())
    result = drift(streaming, stream, int8, flt, segments=4)
    means = result["segment_mean_abs_error"]
    assert result["output_frames"] == len(stream) // 2
    assert means[-1] <= 2 * means[0] + 1e-3
    assert result["max_abs_error"] < 1.0


def test_export_without_the_flag_writes_no_stream_files(lstm_export):
    folder, report = lstm_export
    assert "streaming" not in report
    assert not list(folder.glob("stream_*"))


@pytest.mark.parametrize("flags,needle", [
    (["--streaming", "--block-frames", "3"], "--block-frames=3"),
    (["--streaming", "--block-frames", "0"], "--block-frames=0"),
    (["--block-frames", "8"], "--block-frames: only used with --streaming"),
])
def test_bad_streaming_flags(tiny_data, lstm_student, tmp_path, capsys, flags, needle):
    _, data, _ = tiny_data
    out = tmp_path / "fw"
    assert main(["export", str(lstm_student.path), "--data", str(data), "--out", str(out),
                 *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("keras-iusp: error:") and needle in err[-1]
    assert not out.exists()
