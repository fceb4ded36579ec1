"""``keras-iusp export --streaming``: int8 streaming model, its assets, TFLM, int8 state drift."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.cli.main import main
from keras_iusp.export.firmware import model_ops
from keras_iusp.export.locations import TFLM_HOST_LIBRARY, TFLM_INCLUDE
from keras_iusp.export.stream_detector import WINDOW_MULTIPLES
from keras_iusp.export.streaming import DEFAULT_CELL_CLIP, build_streaming, keras_invoke, run_stream
from keras_iusp.export.streaming_export import (
    CALIBRATION_CLIPS,
    drift,
    representative_states,
    stream_io,
    tflite_invoke,
    tflm_invoke,
)
from keras_iusp.utils.errors import KerasIuspError

BLOCK = 4


@pytest.fixture(scope="module")
def stream_export(tiny_data, lstm_student, tmp_path_factory):
    """``(folder, printed)`` of a CLI export of the distilled CNN-LSTM with ``--streaming``."""
    _, data, _ = tiny_data
    out = tmp_path_factory.mktemp("stream") / "fw"
    code = main(["export", str(lstm_student.path), "--data", str(data), "--out", str(out),
                 "--window-seconds", "0.5", "--golden", "1", "--streaming",
                 "--block-frames", str(BLOCK), "--no-target-budget"])
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
    # the block runner's detector: windows of frame logits as long as the window export's 0.5 s
    # or twice that, chosen by validation F1 (ties: the shorter), every half window
    detector = report["detector"]
    stride = report["frame_stride"]
    choices = detector["window_choices"]
    assert [c["window_output_frames"] for c in choices] == [48 // stride * m
                                                            for m in WINDOW_MULTIPLES]
    best = max(c["mean_class_f1"] for c in choices)
    chosen = next(c for c in choices if c["mean_class_f1"] == best)["window_output_frames"]
    assert detector["window_output_frames"] == chosen
    assert detector["window_hop_output_frames"] == chosen // 2
    assert f"kWindowOutputs = {chosen};" in settings
    cpp = {name: [int(v) for v in re.search(rf"{name}\[\] = {{([^}}]*)}}", settings)
                  .group(1).split(",")]
           for name in ("kDetectorOnThreshold", "kDetectorOffThreshold",
                        "kDetectorHoldOffWindows")}
    assert cpp["kDetectorOnThreshold"] == detector["settings"]["on_threshold"]
    assert cpp["kDetectorOffThreshold"] == detector["settings"]["off_threshold"]
    assert cpp["kDetectorHoldOffWindows"] == detector["settings"]["hold_off_windows"]
    assert f"kDetectorSmoothingWindows = {detector['settings']['smoothing_windows']};" in settings
    assert set(detector["validation"]["per_class"]) == set(detector["per_class"])


@pytest.mark.parametrize("block", [2, 8])
def test_calibration_hears_many_clips_whatever_the_block(lstm_student, block):
    """The int8 calibration covers CALIBRATION_CLIPS training clips at every block size: its
    samples come from all of them, not from the first one or two a short stream of small blocks
    reaches (the cause of the frame logits' saturation on real recordings, docs/streaming.md)."""
    streaming = build_streaming(lstm_student.model, block, DEFAULT_CELL_CLIP)
    n_mels = int(lstm_student.model.input.shape[-1])
    clips = np.stack([np.full((40, n_mels), float(i), np.float32) for i in range(20)])
    samples = representative_states(streaming, clips, 64, seed=0)
    assert len(samples) == 64
    heard = {float(s["log_mel_block"][0, 0, 0]) for s in samples}  # each clip is one constant
    assert CALIBRATION_CLIPS - 2 <= len(heard) <= CALIBRATION_CLIPS  # a 16-clip stream, all heard
    assert heard <= {float(i) for i in range(20)}


def test_calibration_rejects_clips_shorter_than_a_block(lstm_student):
    streaming = build_streaming(lstm_student.model, 8, DEFAULT_CELL_CLIP)
    n_mels = int(lstm_student.model.input.shape[-1])
    with pytest.raises(KerasIuspError, match="shorter than one block of 8 frames"):
        representative_states(streaming, np.zeros((3, 6, n_mels), np.float32), 10)


def test_int8_stream_in_tflm_follows_float(stream_export, tiny_data, lstm_student):
    _, _, cache = tiny_data
    report = json.loads((stream_export / "stream_report.json").read_text())
    streaming = build_streaming(lstm_student.model, BLOCK, DEFAULT_CELL_CLIP)  # as exported
    x_val, _ = cache.split("validate")
    clip = np.asarray(x_val[0], np.float32)
    model = (stream_export / "stream_model.tflite").read_bytes()
    tflm = run_stream(streaming, clip, tflm_invoke(streaming, model, report["arena_bytes"]))
    ref = run_stream(streaming, clip, keras_invoke(streaming))
    step = stream_io(model).output_quant["frame_logits"].scale
    assert np.abs(tflm - ref).max() < 0.5 * max(1.0, np.abs(ref).max())
    # With the state calibrated on the training clips streamed end to end, six trainings of the
    # tiny student measured 0.6-1.4 output steps of mean error (docs/streaming.md, int8 state).
    assert np.abs(tflm - ref).mean() < 8 * step, (np.abs(tflm - ref).mean(), step)


def test_int8_state_drift_is_bounded(stream_export, tiny_data, lstm_student):
    """Over a stream many clips long, the int8-vs-float error of the last segment is no larger
    than that of the first (carried int8 state does not drift away)."""
    _, _, cache = tiny_data
    streaming = build_streaming(lstm_student.model, BLOCK, DEFAULT_CELL_CLIP)  # as exported
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
    (["--streaming", "--block-frames", "0"], "argument --block-frames: expected an integer >= 1"),
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


CHECK = Path(__file__).resolve().parent / "cpp" / "stream_check.cc"


def test_cpp_runs_the_stream_as_the_header_says(stream_export, tiny_data, lstm_student,
                                                tmp_path):
    """The generated stream_settings.h compiles against the real TFLite-Micro; a C++ loop that
    follows it (zero states, carry with requantisation, warm-up resets) gives the int8 logits
    of the Python TFLM stream within one int8 step."""
    missing = shutil.which("g++") is None or not TFLM_HOST_LIBRARY.is_file()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("g++ or ../shared/tflm-host missing under CI=true")
        pytest.skip("needs g++ and the TFLite-Micro host build in ../shared/tflm-host")
    binary = tmp_path / "stream_check"
    build = subprocess.run(
        ["g++", "-std=c++17", "-O1", "-DTF_LITE_STATIC_MEMORY", f"-I{TFLM_INCLUDE}",
         f"-I{stream_export}", str(CHECK), str(stream_export / "stream_model_data.cc"),
         str(TFLM_HOST_LIBRARY), "-o", str(binary)],
        capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    _, _, cache = tiny_data
    report = json.loads((stream_export / "stream_report.json").read_text())
    model = (stream_export / "stream_model.tflite").read_bytes()
    streaming = build_streaming(lstm_student.model, BLOCK, DEFAULT_CELL_CLIP)  # as exported
    io = stream_io(model)
    block_q = io.input_quant[streaming.model.input_names[0]]
    x_val, _ = cache.split("validate")
    frames = np.concatenate([np.asarray(c, np.float32) for c in x_val[:2]])
    blocks = block_q.quantize(frames[:len(frames) // BLOCK * BLOCK]).reshape(-1, BLOCK, 64)
    (tmp_path / "blocks.bin").write_bytes(blocks.tobytes())
    run = subprocess.run([str(binary), str(tmp_path / "blocks.bin"), str(tmp_path / "out.bin")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"{len(blocks)} blocks" in run.stdout
    cpp = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8).reshape(len(blocks), -1)
    out_q = io.output_quant["frame_logits"]
    invoke = tflm_invoke(streaming, model, report["arena_bytes"])
    states = streaming.zero_states()
    python = []
    for n, block in enumerate(blocks):
        logits, states = invoke(block_q.dequantize(block), states)
        python.append(out_q.quantize(logits).ravel())
        states = [np.zeros_like(s) if spec.reset_after_blocks == n + 1 else s
                  for s, spec in zip(states, streaming.states)]
    diff = np.abs(cpp.astype(int) - np.stack(python).astype(int))
    assert diff.max() <= 1, diff.max()


def test_a_max_head_is_refused_before_the_data_is_read(tiny_data, tiny_teacher, tmp_path,
                                                       capsys):
    """``export --streaming`` of a mean+max student: one line naming the head, exit 2, and no
    feature extraction first (an empty --data folder is never read)."""
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.training import distill

    _, _, cache = tiny_data
    run = distill(cache, tiny_teacher, "cnn_lstm_xs_meanmax", tmp_path / "meanmax",
                  DistillConfig(method="baseline", epochs=1, batch_size=8), verbose=0)
    out, empty = tmp_path / "fw", tmp_path / "empty"
    empty.mkdir()
    assert main(["export", str(run.path), "--data", str(empty), "--out",
                 str(out), "--streaming"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("keras-iusp: error: cnn_lstm_xs_meanmax: its head takes a maximum")
    assert not out.exists()
