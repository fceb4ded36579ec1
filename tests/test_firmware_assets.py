"""The committed reference firmware assets are self-consistent and reproduce in TFLite-Micro."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from keras_iusp.export.firmware import model_ops
from keras_iusp.export.verify import run_tflm

ASSETS = Path(__file__).resolve().parents[1] / "firmware_assets" / "reference"


def _c_array_bytes(text: str) -> bytes:
    body = text[text.index("g_model_data[] = {"):text.index("};")]
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))


def _golden(text: str, name: str, rows: int, width: int) -> np.ndarray:
    body = text[text.index(name):]
    body = body[body.index("= {") + 3:body.index("};")]
    values = np.array([int(v) for v in re.findall(r"-?\d+", body)], dtype=np.int8)
    return values.reshape(rows, width)


@pytest.mark.skipif(not ASSETS.is_dir(), reason="no reference assets committed")
def test_reference_assets_reproduce_in_tflm():
    model = (ASSETS / "model.tflite").read_bytes()
    assert _c_array_bytes((ASSETS / "model_data.cc").read_text()) == model
    report = json.loads((ASSETS / "export_report.json").read_text())
    settings = (ASSETS / "model_settings.h").read_text()
    frames = int(re.search(r"kNumFrames = (\d+);", settings).group(1))
    mels = int(re.search(r"kNumMelBins = (\d+);", settings).group(1))
    classes = int(re.search(r"kNumClasses = (\d+);", settings).group(1))
    arena = int(re.search(r"kTensorArenaSize = (\d+);", settings).group(1))
    assert arena == report["arena_bytes"] and frames == report["window_frames"]
    header = (ASSETS / "golden_vectors.h").read_text()
    count = int(re.search(r"kNumGoldenVectors = (\d+);", header).group(1))
    source = (ASSETS / "golden_vectors.cc").read_text()
    inputs = _golden(source, "kGoldenInputs", count, frames * mels)
    outputs = _golden(source, "kGoldenOutputs", count, classes)
    produced = run_tflm(model, inputs.reshape(count, frames, mels), arena)
    np.testing.assert_array_equal(produced.reshape(count, classes), outputs)
    resolver = (ASSETS / "op_resolver.h").read_text()
    assert len(re.findall(r"resolver\.Add\w+\(\)", resolver)) == len(model_ops(model))
