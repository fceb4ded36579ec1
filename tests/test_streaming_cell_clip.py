"""The streaming export bounds the LSTM cell state, so one unit whose state grows without bound
(forget gate near 1) does not take the int8 state's resolution from all the others."""

from __future__ import annotations

import numpy as np
import pytest

from keras_iusp.export.streaming import DEFAULT_CELL_CLIP, build_streaming, keras_invoke, run_stream
from keras_iusp.export.streaming_export import (
    convert_streaming,
    representative_states,
    tflite_invoke,
)
from keras_iusp.models import build_model
from keras_iusp.utils.errors import ConfigError

FRAMES, MELS, BLOCK = 40, 64, 2


@pytest.fixture(scope="module")
def integrating_student():
    """cnn_lstm_xs with random weights whose LSTM unit 0 adds about 1 to its cell every step."""
    model = build_model("cnn_lstm_xs", (FRAMES, MELS))
    lstm = model.get_layer("lstm")
    kernel, recurrent, bias = lstm.get_weights()
    units = lstm.units
    for gate in range(3):  # input gate, forget gate, candidate: saturated open / positive
        kernel[:, gate * units] = 0.0
        recurrent[:, gate * units] = 0.0
        bias[gate * units] = 20.0
    lstm.set_weights([kernel, recurrent, bias])
    return model


def _cell(streaming, frames):
    invoke, states = keras_invoke(streaming), streaming.zero_states()
    index = [s.name for s in streaming.states].index("lstm_c")
    for n in range(len(frames) // BLOCK):
        _, states = invoke(frames[n * BLOCK:(n + 1) * BLOCK], states)
    return states[index].ravel()


def test_the_clip_bounds_the_state_and_keeps_the_float_outputs(integrating_student):
    frames = np.random.default_rng(0).normal(size=(600, MELS)).astype(np.float32)
    exact = build_streaming(integrating_student, BLOCK)
    clipped = build_streaming(integrating_student, BLOCK, DEFAULT_CELL_CLIP)
    assert _cell(exact, frames)[0] > 200  # the unit integrates without bound
    assert np.abs(_cell(clipped, frames)).max() <= DEFAULT_CELL_CLIP + 1e-5
    # tanh has saturated far below the bound: the frame logits do not change
    np.testing.assert_allclose(run_stream(clipped, frames), run_stream(exact, frames), atol=1e-4)


def test_int8_streaming_follows_float_only_with_the_clip(integrating_student):
    rng = np.random.default_rng(1)
    clips = rng.normal(size=(8, 200, MELS)).astype(np.float32)
    stream = rng.normal(size=(400, MELS)).astype(np.float32)
    errors = {}
    for clip in (None, DEFAULT_CELL_CLIP):
        streaming = build_streaming(integrating_student, BLOCK, clip)
        int8 = convert_streaming(streaming, representative_states(streaming, clips, 100))
        reference = run_stream(streaming, stream)
        errors[clip] = float(np.abs(run_stream(streaming, stream, tflite_invoke(streaming, int8))
                                    - reference).mean() / (np.abs(reference).mean() + 1e-9))
    assert errors[DEFAULT_CELL_CLIP] < 0.5 * errors[None], errors


def test_a_bad_clip_is_refused(integrating_student):
    with pytest.raises(ConfigError, match="cell_clip"):
        build_streaming(integrating_student, BLOCK, 0.0)
