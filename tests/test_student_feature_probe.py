"""The student-feature probe reads each named layer's frames, batch by batch, exactly as one call
of the whole network would give them, and refuses a layer without a time axis."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "real_audio"
sys.path.insert(0, str(_DIR))  # the probe imports its sibling linear_probe
_spec = importlib.util.spec_from_file_location("student_feature_probe",
                                               _DIR / "student_feature_probe.py")
probe_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe_module)


def _model():
    import tf_keras as keras

    from keras_iusp.models import build_model

    keras.utils.set_random_seed(0)
    return build_model("cnn_lstm_xs", (40, 64)), keras


def test_frames_of_each_layer_match_one_whole_call_across_batches():
    model, keras = _model()
    x = np.random.default_rng(0).normal(size=(probe_module.BATCH + 5, 40, 64)).astype(np.float32)
    got = probe_module.layer_frames(model, ["frames", "lstm"], x)
    whole = keras.Model(model.input, [model.get_layer("frames").output,
                                      model.get_layer("lstm").output])(x, training=False)
    assert got["frames"].shape == (len(x), 20, 128) and got["lstm"].shape == (len(x), 20, 12)
    np.testing.assert_allclose(got["frames"], np.asarray(whole[0]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["lstm"], np.asarray(whole[1]), rtol=1e-5, atol=1e-5)


def test_a_layer_without_a_time_axis_is_refused():
    model, _ = _model()
    x = np.zeros((2, 40, 64), np.float32)
    with pytest.raises(ValueError, match=r"\['logits'\] have no \[batch, time, features\]"):
        probe_module.layer_frames(model, ["logits"], x)
    with pytest.raises(ValueError, match=r"\['nope'\] not in"):
        probe_module.layer_frames(model, ["nope"], x)
