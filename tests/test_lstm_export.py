"""A fresh export of a compressed CNN-LSTM student, checked the way a firmware team would.

The session fixtures in ``conftest.py`` distil ``cnn_lstm_xs`` with IUSP, prune it to 50 % and
QAT-train it with the teacher still guiding, then export 0.5 s windows. These tests read what
came out: the fused LSTM op, TFLM == LiteRT with the LSTM state cleared per window, the LSTM's
zeros surviving into the int8 model, per-layer notes, and the generated headers' *content*
(compared with the .tflite and the run's statistics, not only compiled). The C++ harness in
``deploy/tflm_app`` is built against the real TFLite-Micro in ``../shared/tflm-host`` and run on
the shipped reference assets and on the fresh export.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import LSTM_SPARSITY
from toolchain import require

from keras_iusp.compress import load_compressed
from keras_iusp.export.firmware import model_ops
from keras_iusp.export.locations import HARNESS_DIR, TFLM_HOST_LIBRARY, TFLM_INCLUDE
from keras_iusp.export.verify import _litert, io_details, run_litert, run_tflm

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "firmware_assets" / "reference"
HARNESS = HARNESS_DIR / "main.cc"

# TFLite builtin op name -> the MicroMutableOpResolver method that registers it. Written out by
# hand (not derived the way the exporter derives it), so a wrong mapping there shows up here.
TFLM_ADD = {
    "CONV_2D": "AddConv2D", "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "FULLY_CONNECTED": "AddFullyConnected", "MAX_POOL_2D": "AddMaxPool2D",
    "AVERAGE_POOL_2D": "AddAveragePool2D", "MEAN": "AddMean", "MUL": "AddMul", "SUB": "AddSub",
    "ADD": "AddAdd", "QUANTIZE": "AddQuantize", "DEQUANTIZE": "AddDequantize",
    "RESHAPE": "AddReshape", "RELU": "AddRelu", "RELU6": "AddRelu6", "LOGISTIC": "AddLogistic",
    "REDUCE_MAX": "AddReduceMax", "PAD": "AddPad", "CONCATENATION": "AddConcatenation",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
}


def _int(text: str, name: str) -> int:
    return int(re.search(rf"\b{name} = (-?\d+);", text).group(1))


def _float(text: str, name: str) -> float:
    return float(re.search(rf"\b{name} = (-?[\d.e+-]+)f;", text).group(1))


def _float_array(text: str, name: str) -> np.ndarray:
    body = text[text.index(f"{name}["):]
    body = body[body.index("{") + 1:body.index("};")]
    return np.array([float(v) for v in re.findall(r"(-?[\d.e+-]+)f", body)])


def _golden(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    settings = (folder / "model_settings.h").read_text()
    frames, mels = _int(settings, "kNumFrames"), _int(settings, "kNumMelBins")
    classes = _int(settings, "kNumClasses")
    count = _int((folder / "golden_vectors.h").read_text(), "kNumGoldenVectors")
    source = (folder / "golden_vectors.cc").read_text()

    def block(name: str) -> np.ndarray:
        body = source[source.index(name):]
        body = body[body.index("= {") + 3:body.index("};")]
        return np.array([int(v) for v in re.findall(r"-?\d+", body)], dtype=np.int8)

    return (block("kGoldenInputs").reshape(count, frames, mels),
            block("kGoldenOutputs").reshape(count, classes))


def test_lstm_becomes_the_fused_int8_kernel(lstm_export):
    folder, report = lstm_export
    model = (folder / "model.tflite").read_bytes()
    ops = model_ops(model)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops
    assert not {"WHILE", "SPLIT", "TANH"} & set(ops), "the LSTM was unrolled, not fused"
    interpreter = _litert(model)
    lstm = [op for op in interpreter._get_ops_details()
            if op["op_name"] == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    assert len(lstm) == 1
    assert tensors[lstm[0]["inputs"][0]]["dtype"] == np.int8  # int8 activations in
    assert tensors[lstm[0]["inputs"][1]]["dtype"] == np.int8  # int8 weights
    assert tensors[lstm[0]["outputs"][0]]["dtype"] == np.int8
    assert report["ops"] == ops


def test_tflm_equals_litert_with_lstm_state_reset_per_window(tiny_data, lstm_export):
    _, _, cache = tiny_data
    folder, report = lstm_export
    model = (folder / "model.tflite").read_bytes()
    inp, _ = io_details(model)
    frames = inp.shape[1]
    clips = np.asarray(cache.split("validate")[0][:2], np.float32)
    a, b = inp.quantize(clips[0, :frames]), inp.quantize(clips[1, -frames:])
    sequence = np.stack([a, b, a, b])
    tflm = run_tflm(model, sequence, report["arena_bytes"])
    litert = run_litert(model, sequence)
    assert np.abs(tflm.astype(int) - litert.astype(int)).max() <= 1
    # a window's output must not depend on the window before it (state cleared in between)
    np.testing.assert_array_equal(tflm[0], tflm[2])
    np.testing.assert_array_equal(tflm[1], tflm[3])
    np.testing.assert_array_equal(litert[0], litert[2])
    np.testing.assert_array_equal(litert[1], litert[3])
    # ... and equals a fresh interpreter's output for that window alone
    np.testing.assert_array_equal(run_tflm(model, b[None], report["arena_bytes"])[0], tflm[1])
    np.testing.assert_array_equal(run_litert(model, b[None])[0], litert[1])
    assert not np.array_equal(tflm[0], tflm[1]), "two different windows gave the same output"


def test_golden_outputs_equal_litert(lstm_export):
    folder, report = lstm_export
    inputs, outputs = _golden(folder)
    assert len(inputs) == 3
    litert = run_litert((folder / "model.tflite").read_bytes(), inputs)
    assert np.abs(litert.astype(int) - outputs.astype(int)).max() <= report[
        "tflm_vs_litert_max_diff"] <= 1


def test_pruned_lstm_kernels_stay_at_target_sparsity(lstm_compressed, lstm_export):
    folder, _ = lstm_export
    qat_model, float_model, _ = load_compressed(lstm_compressed)
    for model in (float_model, qat_model):
        lstm = model.get_layer("lstm")
        for weight in lstm.weights:
            if "kernel" in weight.name.split("/")[-1]:
                zeros = float(np.mean(weight.numpy() == 0.0))
                assert zeros == pytest.approx(LSTM_SPARSITY, abs=0.03), (model.name, weight.name)
    report = json.loads((lstm_compressed / "compress_report.json").read_text())
    for stage in ("pruning", "qat"):
        for key in ("lstm/kernel", "lstm/recurrent_kernel"):
            assert report[stage]["sparsity"][key] == pytest.approx(LSTM_SPARSITY, abs=0.03), (
                stage, key)
    # the zeros reach the int8 flatbuffer: the LSTM's int8 gate weight matrices are half zeros
    interpreter = _litert((folder / "model.tflite").read_bytes())
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    op = next(op for op in interpreter._get_ops_details()
              if op["op_name"] == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    gate_weights = [interpreter.get_tensor(i) for i in op["inputs"][1:9]
                    if i >= 0 and tensors[i]["dtype"] == np.int8]
    assert len(gate_weights) == 8  # 4 input + 4 recurrent gate matrices
    zeros = np.mean(np.concatenate([w.ravel() for w in gate_weights]) == 0)
    assert zeros >= LSTM_SPARSITY - 0.03


def test_compress_leaves_the_callers_student_as_it_was(lstm_student, lstm_compressed):
    """TFMOT's wrappers hold the layers they wrap: compressing must work on a copy, or the
    caller's in-memory student would come back pruned and fine-tuned."""
    from keras_iusp.train.saved_runs import load_run

    on_disk = load_run(lstm_student.path).model
    for kept, saved in zip(lstm_student.model.weights, on_disk.weights, strict=True):
        np.testing.assert_array_equal(kept.numpy(), saved.numpy(), err_msg=kept.name)


def test_compress_report_notes_every_weighted_layer(lstm_compressed):
    report = json.loads((lstm_compressed / "compress_report.json").read_text())
    notes = report["layers"]
    assert set(notes) == {"conv1_conv", "conv2_conv", "lstm", "logits"}
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in notes["lstm"]
    assert "not QAT-annotated" in notes["lstm"] and "pruned" in notes["lstm"]
    assert "QAT-annotated, int8" in notes["conv1_conv"]


def test_compression_is_guided_by_the_teacher(lstm_compressed):
    report = json.loads((lstm_compressed / "compress_report.json").read_text())
    assert report["method"] == "iusp" and report["fine_tune_method"] == "iusp"
    for stage in ("pruning", "qat"):
        history = report[stage]["history"]
        epochs = len(history["loss"])
        assert epochs == report["config"][f"{'prune' if stage == 'pruning' else 'qat'}_epochs"]
        for term in ("kd", "iusp", "student_loss"):
            values = np.asarray(history[term])
            assert len(values) == epochs and np.all(np.isfinite(values)), (stage, term)
            assert np.all(values > 0), (stage, term)


def test_model_settings_match_the_tflite_and_the_run(lstm_student, lstm_export):
    folder, report = lstm_export
    settings = (folder / "model_settings.h").read_text()
    inp, out = io_details((folder / "model.tflite").read_bytes())
    assert _float(settings, "kInputScale") == pytest.approx(inp.scale, rel=1e-6)
    assert _int(settings, "kInputZeroPoint") == inp.zero_point
    assert _float(settings, "kOutputScale") == pytest.approx(out.scale, rel=1e-6)
    assert _int(settings, "kOutputZeroPoint") == out.zero_point
    assert _int(settings, "kNumFrames") == inp.shape[1] == report["window_frames"]
    assert _int(settings, "kNumMelBins") == inp.shape[2] == 64
    assert _int(settings, "kNumClasses") == out.shape[-1] == 8
    assert _int(settings, "kTensorArenaSize") == report["arena_bytes"]
    stats = lstm_student.info["stats"]
    np.testing.assert_allclose(_float_array(settings, "kFeatureMean"), stats["mean"], rtol=1e-6)
    np.testing.assert_allclose(_float_array(settings, "kFeatureStd"), stats["std"], rtol=1e-6)
    names = re.search(r"kClassNames\[kNumClasses\] = \{(.*?)\};", settings).group(1)
    assert re.findall(r'"([^"]+)"', names) == lstm_student.info["class_names"]
    config = lstm_student.info["feature_config"]
    assert _int(settings, "kSampleRate") == config["sample_rate"]


@pytest.mark.parametrize("which", ["fresh", "reference"])
def test_op_resolver_registers_the_model_op_list(which, request):
    folder = request.getfixturevalue("lstm_export")[0] if which == "fresh" else REFERENCE
    ops = model_ops((folder / "model.tflite").read_bytes())
    header = (folder / "op_resolver.h").read_text()
    registered = re.findall(r"resolver\.(Add\w+)\(\)", header)
    assert sorted(registered) == sorted(TFLM_ADD[op] for op in ops)
    assert _int(header, "kNumOps") == len(ops)
    resolver_api = TFLM_INCLUDE / "tensorflow/lite/micro/micro_mutable_op_resolver.h"
    if resolver_api.is_file():  # every call exists in the real TFLite-Micro API
        api = resolver_api.read_text()
        for name in registered:
            assert re.search(rf"TfLiteStatus {name}\(", api), name


def _build_and_run_harness(assets: Path, workdir: Path) -> str:
    binary = workdir / f"check_{assets.name}"
    build = subprocess.run(
        ["g++", "-std=c++17", "-O1", "-DTF_LITE_STATIC_MEMORY", f"-I{TFLM_INCLUDE}",
         f"-I{assets}", str(HARNESS), str(assets / "model_data.cc"),
         str(assets / "golden_vectors.cc"), str(TFLM_HOST_LIBRARY),
         "-o", str(binary)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return run.stdout


@pytest.mark.parametrize("which", ["reference", "fresh"])
def test_tflm_harness_builds_and_passes_the_golden_vectors(which, request, tmp_path):
    require("g++", "tflm-host")
    folder = request.getfixturevalue("lstm_export")[0] if which == "fresh" else REFERENCE
    stdout = _build_and_run_harness(folder, tmp_path)
    inputs, outputs = _golden(folder)
    expected = outputs.size
    assert re.search(rf"^{expected} passed, 0 failed$", stdout, re.M), stdout[-1000:]
    assert "arena used:" in stdout


def test_an_early_stopped_student_is_compressed_on_labels_alone(tiny_data, tiny_teacher,
                                                                tmp_path):
    """A student that finished on labels (distill_epochs < epochs) is pruned on labels too."""
    from keras_iusp.compress import CompressConfig, compress
    from keras_iusp.train.recipe import DistillConfig
    from keras_iusp.train.training import distill

    _, _, cache = tiny_data
    run = distill(cache, tiny_teacher, "dscnn_xs", tmp_path / "student",
                  DistillConfig(method="iusp", epochs=2, distill_epochs=1, batch_size=8),
                  verbose=0)
    out = compress(run, cache, tmp_path / "compressed",
                   CompressConfig(prune_epochs=1, qat_epochs=1, batch_size=8), verbose=0)
    report = json.loads((out / "compress_report.json").read_text())
    assert report["method"] == "iusp" and report["fine_tune_method"] == "baseline"
    for stage in ("pruning", "qat"):
        history = report[stage]["history"]
        assert "kd" not in history and "iusp" not in history, stage
