"""Streaming rebuild (keras_iusp.export.streaming): block by block == whole clip, in float.

Untrained models with randomised batch-norm statistics: with Keras' fresh statistics a layer maps
zero padding to zero, which would hide a wrong warm-up (pre-clip frames that are not zero).
"""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

from keras_iusp.export.streaming import (
    build_streaming,
    clip_logits,
    frame_logits_model,
    keras_invoke,
    run_stream,
    valid_block_frames,
)
from keras_iusp.models import build_model
from keras_iusp.utils.errors import ConfigError

FRAMES = 40  # a multiple of the students' time stride (2)


def _model(name: str, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = build_model(name, (FRAMES, 64))
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.5, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2, var.shape)])
    return model


def _clip(seed: int = 1, frames: int = FRAMES) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(frames, 64)).astype(np.float32)


@pytest.mark.parametrize("name,block", [("cnn_lstm_xs", 2), ("cnn_lstm_xs", 8),
                                        ("dscnn_xs", 6), ("dscnn_xs", 8)])
def test_stream_equals_whole_clip(name, block):
    model = _model(name)
    streaming = build_streaming(model, block)
    clip = _clip()
    whole = frame_logits_model(model).predict(clip[None], verbose=0)[0]
    streamed = run_stream(streaming, clip)
    assert streamed.shape == whole.shape == (FRAMES // 2, 8)
    kept = len(whole) - streaming.tail_frames
    np.testing.assert_allclose(streamed[:kept], whole[:kept], atol=1e-5)
    np.testing.assert_allclose(clip_logits(streamed, streaming.tail_frames),
                               clip_logits(whole, streaming.tail_frames), atol=1e-5)
    # the frame-logit mean is the whole-clip model's clip output
    np.testing.assert_allclose(clip_logits(whole), model.predict(clip[None], verbose=0)[0],
                               atol=1e-5)
    # the documented tail is exactly what differs (a clip end pads inner layers with zeros)
    assert np.abs(streamed[kept:] - whole[kept:]).max() > 1e-4


@pytest.mark.parametrize("name", ["cnn_lstm_s", "cnn_lstm_m", "cnn_lstm_l", "dscnn_s",
                                  "dscnn_m", "dscnn_l", "teacher_cnn"])
def test_every_zoo_model_streams_exactly(name):
    model = _model(name)
    streaming = build_streaming(model, 8)
    clip = _clip()
    whole = frame_logits_model(model).predict(clip[None], verbose=0)[0]
    streamed = run_stream(streaming, clip)
    kept = len(whole) - streaming.tail_frames
    assert kept > 0
    np.testing.assert_allclose(streamed[:kept], whole[:kept], atol=1e-5)


def test_tail_and_warmup_per_family():
    lstm = build_streaming(_model("cnn_lstm_xs"), 8)
    dscnn = build_streaming(_model("dscnn_xs"), 8)
    assert (lstm.tail_frames, lstm.warmup_frames, lstm.warmup_blocks) == (1, 8, 2)
    assert (dscnn.tail_frames, dscnn.warmup_frames, dscnn.warmup_blocks) == (2, 9, 2)
    names = [s.name for s in lstm.states]
    assert {"lstm_h", "lstm_c", "conv1_conv_state", "conv2_conv_state"} <= set(names)
    assert all(not layer.stateful for layer in lstm.model.layers if hasattr(layer, "stateful"))


@pytest.mark.parametrize("name", ["cnn_lstm_xs", "dscnn_xs"])
def test_forgetting_the_state_breaks_it(name):
    """What the exactness test above guards: without carried state the outputs differ."""
    model = _model(name)
    streaming = build_streaming(model, 8)
    clip = _clip()
    whole = frame_logits_model(model).predict(clip[None], verbose=0)[0]
    kept = len(whole) - streaming.tail_frames
    forgot = run_stream(streaming, clip, carry_state=False)
    assert np.abs(forgot[:kept] - whole[:kept]).max() > 1e-2


def test_warmup_reset_is_needed():
    """Without the warm-up zeroing, pre-clip frames leak into the clip's first frames."""
    model = _model("cnn_lstm_xs")
    streaming = build_streaming(model, 8)
    clip = _clip()
    whole = frame_logits_model(model).predict(clip[None], verbose=0)[0]
    invoke = keras_invoke(streaming)
    states = streaming.zero_states()
    padded = np.concatenate([clip, np.tile(streaming.pad_frame, (32, 1))])
    outs = []
    for n in range(len(padded) // 8):
        logits, states = invoke(padded[n * 8:(n + 1) * 8], states)
        outs.append(logits)
    no_reset = np.concatenate(outs)[streaming.warmup_frames:][:len(whole) - 1]
    assert np.abs(no_reset[:4] - whole[:4]).max() > 1e-3


def test_periodic_reset_restarts_the_stream():
    model = _model("cnn_lstm_xs")
    streaming = build_streaming(model, 4)
    clip = _clip(frames=48)
    invoke = keras_invoke(streaming)
    reset = run_stream(streaming, clip, invoke, reset_every_blocks=3)  # every 12 frames
    parts = np.concatenate([run_stream(streaming, clip[s:s + 12], invoke)
                            for s in range(0, 48, 12)])
    np.testing.assert_allclose(reset, parts, atol=1e-6)
    carried = run_stream(streaming, clip, invoke)
    assert np.abs(reset - carried).max() > 1e-3
    with pytest.raises(ConfigError, match="reset_every_blocks"):
        run_stream(streaming, clip, invoke, reset_every_blocks=0)


@pytest.mark.parametrize("block", [0, 3, 7, -2, 2.0, True])
def test_invalid_block_sizes_are_rejected(block):
    model = _model("dscnn_xs")
    assert valid_block_frames(model) == 2
    with pytest.raises(ConfigError, match=r"block_frames=.*positive multiple of 2"):
        build_streaming(model, block)


@pytest.mark.parametrize("name", ["teacher_cnn_meanmax", "cnn_lstm_xs_meanmax"])
def test_max_over_time_head_is_rejected(name):
    model = build_model(name, (FRAMES, 64))
    with pytest.raises(ConfigError, match=r"maximum over time \(layer time_pool_max\), which "
                                          "does not stream; export it without --streaming"):
        build_streaming(model, 8)
