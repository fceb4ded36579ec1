"""The graph-aware layer probe reads a layer inside a quantised model, where ``layer.output``
points into the float model the layer was first built in."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

from keras_iusp.compress import quantize_annotated
from keras_iusp.models import build_model
from keras_iusp.models.probe import layer_probe


@pytest.fixture(scope="module")
def float_and_quantized():
    model = build_model("cnn_lstm_xs", (40, 64))
    return model, quantize_annotated(model, preserve_sparsity=False)


def test_probe_reads_the_quantized_graph(float_and_quantized):
    _, quantized = float_and_quantized
    x = np.random.default_rng(0).normal(size=(2, 40, 64)).astype(np.float32)
    # quantize_apply leaves the LSTM unwrapped: one layer object with two graph nodes, and
    # `layer.output` is the first node's, outside the quantised model's graph
    assert len(quantized.get_layer("lstm")._inbound_nodes) > 1
    with pytest.raises(ValueError, match="disconnected"):
        keras.Model(quantized.input, quantized.get_layer("lstm").output)
    quantized(x, training=True)  # sets the fake-quantisers' ranges (all zero before)
    probe = layer_probe(quantized, "lstm")
    before = probe(x, training=False).numpy()
    assert np.abs(before).max() > 0
    assert before.shape[0] == 2 and before.shape[-1] == quantized.get_layer("lstm").units
    # the probe follows the quantised model's own layers: change its first convolution
    conv = quantized.get_layer("quant_conv1_conv")
    conv.set_weights([np.zeros_like(w) for w in conv.get_weights()])
    assert not np.allclose(probe(x, training=False).numpy(), before)


def test_probe_with_logits_returns_the_model_output_first(float_and_quantized):
    model, _ = float_and_quantized
    x = np.zeros((1, 40, 64), np.float32)
    logits, frames = layer_probe(model, ["frames"], with_logits=True)(x, training=False)
    np.testing.assert_allclose(logits.numpy(), model(x, training=False).numpy(), atol=1e-6)
    assert frames.shape[1] == model.get_layer("frames").output.shape[1]
