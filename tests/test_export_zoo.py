"""Every zoo model -- teachers included -- converts to int8, gets an op resolver, and runs in the
TFLite-Micro interpreter at a small window; the resolver table covers every builtin op that
TFLite-Micro registers; a teacher run exports from the command line."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.export import firmware
from keras_iusp.export.locations import TFLM_INCLUDE
from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.models import MODEL_SPECS, build_model

ROOT = Path(__file__).resolve().parents[1]
RESOLVER_H = TFLM_INCLUDE / "tensorflow" / "lite" / "micro" / "micro_mutable_op_resolver.h"
WINDOW_SECONDS = 0.5
ARENA = 8 << 20


def _tflm_registrations(header: str) -> dict[str, str]:
    """``{BUILTIN_OP: AddMethod}`` for each method of the header that registers a builtin op."""
    out = {}
    for match in re.finditer(r"TfLiteStatus (Add\w+)\((.*?)\n  \}", header, re.S):
        ops = re.findall(r"AddBuiltin\(\s*BuiltinOperator_(\w+)", match.group(2))
        if ops and match.group(1) != "AddBuiltin":
            out[ops[0]] = match.group(1)
    return out


def test_resolver_table_is_tflm_s():
    if not RESOLVER_H.is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{RESOLVER_H} missing: the TFLite-Micro host build is required in CI")
        pytest.skip(f"needs the TFLite-Micro host build ({RESOLVER_H})")
    registered = _tflm_registrations(RESOLVER_H.read_text())
    assert len(registered) > 50  # the parse found the methods
    assert firmware.OP_REGISTRATIONS == registered


def test_an_op_without_a_tflm_kernel_is_one_clear_error():
    from keras_iusp.utils.errors import KerasIuspError

    with pytest.raises(KerasIuspError, match=r"\['RFFT2D'\] that TFLite-Micro has no kernel"):
        firmware.op_resolver_file(["CONV_2D", "RFFT2D"])


@pytest.mark.parametrize("name", list(MODEL_SPECS))
def test_every_zoo_model_runs_in_tflm(name: str):
    """An untrained zoo model at a 0.5 s window: int8 conversion, one resolver registration per
    op it uses, and TFLite-Micro's output within one int8 step of LiteRT's reference kernels."""
    import tf_keras

    from keras_iusp.export.convert import rebuild_for_window, to_tflite
    from keras_iusp.export.verify import io_details, run_litert, run_tflm

    config = FeatureConfig(clip_seconds=1.0)
    frames = config.num_frames(int(round(WINDOW_SECONDS * config.sample_rate)))
    tf_keras.utils.set_random_seed(0)  # the same weights whichever tests ran before
    model = build_model(name, (config.num_frames(), config.n_mels))
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(8, frames, config.n_mels)).astype(np.float32)
    int8 = to_tflite(rebuild_for_window(model, frames), windows)
    ops = firmware.model_ops(int8)
    header = firmware.op_resolver_file(ops)
    assert f"kNumOps = {len(ops)};" in header
    for op in ops:
        assert f"resolver.{firmware.OP_REGISTRATIONS[op]}()" in header
    inp, _ = io_details(int8)
    x = inp.quantize(windows[:2])
    tflm = run_tflm(int8, x, ARENA)  # a generous arena: export measures the smallest one
    assert tflm.shape == (2, 8) and tflm.dtype == np.int8
    # against LiteRT's reference kernels, not its optimised ones: an untrained deep stack on noise
    # accumulates rounding differences of up to two steps against the optimised kernels (seen
    # for teacher_cnn_meanmax, dscnn_s, cnn_lstm_l at other seeds), none against the reference
    # convolutions and one in the LSTM's gate arithmetic
    reference = run_litert(int8, x, reference=True)
    assert np.abs(tflm.astype(int) - reference.astype(int)).max() <= 1


def test_teacher_run_exports_from_the_command_line(tiny_data, tmp_path: Path, capsys):
    """``keras-iusp export TEACHER_RUN``: a mean+max-pooled teacher (REDUCE_MAX) exports."""
    from keras_iusp.cli.main import main
    from keras_iusp.train.training import train_teacher

    _, data, cache = tiny_data
    run = train_teacher(cache, tmp_path / "teacher", model_name="teacher_cnn_meanmax", epochs=1,
                        batch_size=8, verbose=0)
    out = tmp_path / "fw"
    assert main(["export", str(run.path), "--data", str(data), "--out", str(out),
                 "--window-seconds", str(WINDOW_SECONDS), "--golden", "2",
                 "--no-target-budget"]) == 0, \
        capsys.readouterr().err
    report = json.loads((out / "export_report.json").read_text())
    assert report["model"] == "teacher_cnn_meanmax" and "REDUCE_MAX" in report["ops"]
    assert "resolver.AddReduceMax()" in (out / "op_resolver.h").read_text()
