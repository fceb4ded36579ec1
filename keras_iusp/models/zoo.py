"""Teacher and student architectures, built with ``tf_keras`` (what TFMOT and the int8 path need).

Every model takes raw log-mel ``[T, n_mels]`` and returns 8 (``num_classes``) logits. The first
layer, ``normalize``, standardises each mel band with the training statistics, so a saved model
is self-contained: the device feeds it the same log-mel the cache holds, nothing else.

Every layer has a stable name, so teacher/student layer pairs for IUSP or SP can be chosen by
name; layers whose output keeps a time axis (``[B, T, ...]``) are the IUSP candidates
(:func:`keras_iusp.models.time_axis_layers`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tf_keras as keras

from keras_iusp.features.cache import FeatureStats
from keras_iusp.models.layers import FeatureStandardization, StepDropout
from keras_iusp.utils.errors import ConfigError

layers = keras.layers

#: Batch-norm moving-average momentum. Keras' default (0.99) needs several hundred steps before
#: the inference statistics are usable; small datasets train for far fewer, and a teacher with
#: stale statistics scored near chance on validation in our runs, so a faster average is used.
BN_MOMENTUM = 0.9


def _normalize(x, stats: FeatureStats | None, n_mels: int):
    if stats is None:
        mean, std = np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32)
    else:
        mean, std = stats.mean, stats.std
        if mean.shape != (n_mels,):
            raise ConfigError(
                f"feature stats have {mean.shape[0]} mel bands but the model input has {n_mels}"
            )
    return FeatureStandardization(mean, std, name="normalize")(x)


def _conv_bn_relu(x, filters: int, name: str, kernel=(3, 3), strides=(1, 1)):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _frames(x, name: str):
    """``[B, T, F, C]`` -> ``[B, T, F*C]``: one feature vector per time step."""
    _, _, f, c = x.shape
    return layers.Reshape((-1, f * c), name=name)(x)


#: How a model turns per-frame features into one clip vector. ``"mean"`` averages frames, which
#: suits sounds that last (engines, music) but dilutes an isolated transient: one door slam in a
#: 10-s clip is about 1 % of the frames. ``"mean+max"`` adds the per-channel maximum over time
#: (the clip-level pooling of PANNs, Kong et al., IEEE/ACM TASLP 2020), so a single strong frame
#: still counts. Measured on the paper-scale teacher: taking the max of its per-frame logits,
#: without retraining, raised validation AP on non-machinery-impact from 0.47 to 0.68
#: (benchmarks/results/teacher_pooling_probe.json).
TIME_POOLS = ("mean", "mean+max")


def _head(x, num_classes: int, time_pool: str = "mean"):
    if time_pool not in TIME_POOLS:
        raise ConfigError(f"time_pool {time_pool!r}: expected one of {TIME_POOLS}")
    if time_pool == "mean":
        x = layers.GlobalAveragePooling1D(name="time_pool")(x)
    else:
        mean = layers.GlobalAveragePooling1D(name="time_pool_mean")(x)
        peak = layers.GlobalMaxPooling1D(name="time_pool_max")(x)
        x = layers.Add(name="time_pool")([mean, peak])
    return layers.Dense(num_classes, name="logits")(x)


def build_teacher_cnn(input_shape, num_classes=8, stats=None, width=16,
                      time_pool: str = "mean", name: str = "teacher_cnn") -> keras.Model:
    """VGG-style teacher: 4 blocks of two 3x3 conv + BN + ReLU.

    Pooling is (2, 2) in the first two blocks and frequency-only afterwards, so every block keeps
    a time axis (IUSP candidates ``block1``..``block4`` and ``embedding``) while compute stays small
    enough to train on a CPU. About 0.36 M parameters at the default width. ``time_pool`` is the
    clip pooling of the head (:data:`TIME_POOLS`); it adds no parameters.
    """
    inputs = keras.Input(shape=input_shape, name="log_mel")
    x = _normalize(inputs, stats, input_shape[-1])
    x = layers.Reshape((-1, input_shape[-1], 1), name="add_channel")(x)
    for i, (pool, mult) in enumerate([((2, 2), 1), ((2, 2), 2), ((1, 2), 4), ((1, 2), 8)], 1):
        x = _conv_bn_relu(x, width * mult, f"block{i}_a")
        x = _conv_bn_relu(x, width * mult, f"block{i}_b")
        x = layers.MaxPooling2D(pool, name=f"block{i}")(x)
    x = _frames(x, "frames")
    x = layers.Dense(8 * width, activation="relu", name="embedding")(x)
    # resumable dropout: a resumed run draws the masks an uninterrupted one would; its seed
    # follows keras.utils.set_random_seed like the weight initialisers
    x = StepDropout(0.2, seed=int(np.random.randint(2**31 - 1)), name="dropout")(x)
    return keras.Model(inputs, _head(x, num_classes, time_pool), name=name)


def build_cnn_lstm(input_shape, num_classes=8, stats=None, *, conv=(8, 16), hidden=12,
                   time_pool: str = "mean", name="cnn_lstm") -> keras.Model:
    """The paper's student family: a two-block CNN front end followed by an LSTM.

    The front end halves time once (so student and teacher time axes differ, which IUSP handles
    by resizing the similarity matrix) and shrinks frequency 8x to keep the LSTM input small.
    ``time_pool`` is the clip pooling of the head (:data:`TIME_POOLS`, no parameters); only
    ``"mean"`` streams (:mod:`keras_iusp.export.streaming`).
    """
    inputs = keras.Input(shape=input_shape, name="log_mel")
    x = _normalize(inputs, stats, input_shape[-1])
    x = layers.Reshape((-1, input_shape[-1], 1), name="add_channel")(x)
    # Striding the first conv in frequency (instead of pooling after it) halves the largest
    # activation, which sets the TFLM arena: 66 KB -> 35 KB for cnn_lstm_xs on a 1 s window.
    x = _conv_bn_relu(x, conv[0], "conv1", strides=(1, 2))
    x = layers.MaxPooling2D((2, 1), name="pool1")(x)
    x = _conv_bn_relu(x, conv[1], "conv2")
    x = layers.MaxPooling2D((1, 4), name="pool2")(x)
    x = _frames(x, "frames")
    x = layers.LSTM(hidden, return_sequences=True, name="lstm")(x)
    return keras.Model(inputs, _head(x, num_classes, time_pool), name=name)


def build_dscnn(input_shape, num_classes=8, stats=None, *, channels=16, blocks=2,
                name="dscnn") -> keras.Model:
    """Depthwise-separable CNN for microcontrollers: every op has an int8 TFLM kernel.

    A strided first conv, then ``blocks`` x (3x3 depthwise + 1x1 pointwise); frequency is averaged
    away at the end, leaving ``frames`` ``[B, T/2, channels]`` with a time axis for IUSP.
    """
    inputs = keras.Input(shape=input_shape, name="log_mel")
    x = _normalize(inputs, stats, input_shape[-1])
    x = layers.Reshape((-1, input_shape[-1], 1), name="add_channel")(x)
    x = layers.Conv2D(channels, (3, 3), strides=(2, 2), padding="same", use_bias=False,
                      name="stem_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    # Pool frequency before the first block: the blocks' activations set the TFLM arena.
    x = layers.MaxPooling2D((1, 2), name="stem_pool")(x)
    for i in range(1, blocks + 1):
        x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False, name=f"ds{i}_dw")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"ds{i}_dw_bn")(x)
        x = layers.ReLU(name=f"ds{i}_dw_relu")(x)
        x = _conv_bn_relu(x, channels, f"ds{i}_pw", kernel=(1, 1))
        if i == 1:
            x = layers.MaxPooling2D((1, 2), name=f"ds{i}_pool")(x)
    x = layers.AveragePooling2D((1, x.shape[2]), name="freq_pool")(x)
    x = layers.Reshape((-1, channels), name="frames")(x)
    return keras.Model(inputs, _head(x, num_classes), name=name)


@dataclass(frozen=True)
class ModelSpec:
    """A named architecture in the zoo."""

    name: str
    role: str  # "teacher" or "student"
    family: str
    builder: Callable[..., keras.Model]
    description: str


def _spec(spec_name, role, family, builder, description, **kwargs) -> ModelSpec:
    def build(input_shape, num_classes=8, stats=None):
        return builder(input_shape, num_classes, stats, **kwargs)

    return ModelSpec(spec_name, role, family, build, description)


MODEL_SPECS: dict[str, ModelSpec] = {
    s.name: s
    for s in [
        _spec("teacher_cnn", "teacher", "cnn", build_teacher_cnn,
              "VGG-style 8-conv teacher, ~0.36 M parameters", width=16),
        _spec("teacher_cnn_l", "teacher", "cnn", build_teacher_cnn,
              "wider VGG-style teacher, ~1.4 M parameters", width=32, name="teacher_cnn_l"),
        _spec("teacher_cnn_meanmax", "teacher", "cnn", build_teacher_cnn,
              "teacher_cnn with mean+max time pooling (keeps isolated transients), ~0.36 M "
              "parameters", width=16, time_pool="mean+max", name="teacher_cnn_meanmax"),
        _spec("cnn_lstm_xs", "student", "cnn_lstm", build_cnn_lstm, "CNN-LSTM, ~8 k parameters",
              conv=(8, 16), hidden=12, name="cnn_lstm_xs"),
        _spec("cnn_lstm_xs_meanmax", "student", "cnn_lstm", build_cnn_lstm,
              "cnn_lstm_xs with mean+max time pooling (whole windows only, does not stream), "
              "~8 k parameters", conv=(8, 16), hidden=12, time_pool="mean+max",
              name="cnn_lstm_xs_meanmax"),
        _spec("cnn_lstm_s", "student", "cnn_lstm", build_cnn_lstm, "CNN-LSTM, ~24 k parameters",
              conv=(12, 24), hidden=24, name="cnn_lstm_s"),
        _spec("cnn_lstm_m", "student", "cnn_lstm", build_cnn_lstm, "CNN-LSTM, ~64 k parameters",
              conv=(16, 32), hidden=48, name="cnn_lstm_m"),
        _spec("cnn_lstm_l", "student", "cnn_lstm", build_cnn_lstm, "CNN-LSTM, ~196 k parameters",
              conv=(24, 48), hidden=96, name="cnn_lstm_l"),
        _spec("dscnn_xs", "student", "dscnn", build_dscnn, "DS-CNN, ~1.4 k parameters",
              channels=16, blocks=2, name="dscnn_xs"),
        _spec("dscnn_s", "student", "dscnn", build_dscnn, "DS-CNN, ~3.5 k parameters",
              channels=24, blocks=3, name="dscnn_s"),
        _spec("dscnn_m", "student", "dscnn", build_dscnn, "DS-CNN, ~10 k parameters",
              channels=40, blocks=4, name="dscnn_m"),
        _spec("dscnn_l", "student", "dscnn", build_dscnn, "DS-CNN, ~34 k parameters",
              channels=72, blocks=5, name="dscnn_l"),
    ]
}


def build_model(
    name: str,
    input_shape: tuple[int, int],
    num_classes: int = 8,
    stats: FeatureStats | None = None,
) -> keras.Model:
    """Build a zoo model by name for ``[frames, n_mels]`` inputs.

    Args:
        name: one of :data:`MODEL_SPECS` (``teacher_cnn``, ``cnn_lstm_xs`` ... ``dscnn_l``).
        input_shape: ``(frames, n_mels)``, e.g. ``(FeatureConfig().num_frames(), 64)``.
        num_classes: number of sigmoid outputs.
        stats: train-split feature statistics baked into the ``normalize`` layer.
    """
    if name not in MODEL_SPECS:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(MODEL_SPECS)}")
    if len(input_shape) != 2 or min(input_shape) < 1:
        raise ConfigError(f"input_shape {input_shape!r}: expected (frames, n_mels)")
    return MODEL_SPECS[name].builder(tuple(int(v) for v in input_shape), num_classes, stats)
