"""Zoo models: the clip pooling of the head, checked against numpy."""

import numpy as np
import pytest
import tf_keras as keras

from keras_iusp.models import MODEL_SPECS, build_model
from keras_iusp.models.zoo import build_teacher_cnn
from keras_iusp.utils.errors import ConfigError

T, MELS = 40, 16


def _frames_and_head(model, x):
    layer = "embedding" if model.name.startswith("teacher") else "lstm"
    embed = keras.Model(model.input, model.get_layer(layer).output)
    frames = embed(x, training=False).numpy()
    kernel, bias = model.get_layer("logits").get_weights()
    return frames, kernel, bias


@pytest.mark.parametrize("name, pool", [("teacher_cnn", lambda f: f.mean(axis=1)),
                                        ("teacher_cnn_meanmax",
                                         lambda f: f.mean(axis=1) + f.max(axis=1)),
                                        ("cnn_lstm_xs", lambda f: f.mean(axis=1)),
                                        ("cnn_lstm_xs_meanmax",
                                         lambda f: f.mean(axis=1) + f.max(axis=1))])
def test_head_pools_frames_as_documented(name, pool):
    keras.utils.set_random_seed(3)
    model = build_model(name, (T, MELS))
    x = np.random.default_rng(0).normal(size=(4, T, MELS)).astype(np.float32)
    frames, kernel, bias = _frames_and_head(model, x)
    expected = pool(frames.astype(np.float64)) @ kernel + bias
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, rtol=1e-4, atol=1e-5)


def test_meanmax_teacher_has_the_same_parameters_and_layers_for_distillation():
    a = build_model("teacher_cnn", (T, MELS))
    b = build_model("teacher_cnn_meanmax", (T, MELS))
    assert a.count_params() == b.count_params()
    for layer in ("block1", "block4", "embedding", "time_pool", "logits"):
        assert a.get_layer(layer).output.shape == b.get_layer(layer).output.shape
    assert MODEL_SPECS["teacher_cnn_meanmax"].role == "teacher"
    assert b.name == "teacher_cnn_meanmax"


def test_meanmax_student_differs_from_cnn_lstm_xs_only_in_its_pooling():
    a = build_model("cnn_lstm_xs", (T, MELS))
    b = build_model("cnn_lstm_xs_meanmax", (T, MELS))
    assert a.count_params() == b.count_params()
    assert [la.name for la in a.layers if la.weights] == [la.name for la in b.layers if la.weights]
    assert MODEL_SPECS["cnn_lstm_xs_meanmax"].role == "student"
    assert MODEL_SPECS["cnn_lstm_xs_meanmax"].family == "cnn_lstm"


def test_unknown_time_pool_is_refused():
    with pytest.raises(ConfigError, match="time_pool 'median'"):
        build_teacher_cnn((T, MELS), time_pool="median")
