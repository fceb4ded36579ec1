"""Keras -> TFLite conversion: batch-1 rebuild, int8 with a representative dataset, float.

The export model is rebuilt with a static batch of 1 and the window length the device runs:
with a dynamic batch the converter cannot lower an LSTM (``TensorListReserve`` needs a static
element shape); with batch 1 it becomes the fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` kernel that
TFLite-Micro has. All zoo layers are length-agnostic, so the same weights serve any window.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf
import tf_keras as keras

from keras_iusp.compress import QUANT, custom_objects
from keras_iusp.utils.errors import ConfigError


def rebuild_for_window(model: keras.Model, frames: int) -> keras.Model:
    """Same layers and weights, input ``[1, frames, n_mels]`` (batch fixed to 1)."""

    n_mels = int(model.input.shape[-1])
    with QUANT.quantize_scope(custom_objects()):
        clone = keras.models.clone_model(
            model, input_tensors=keras.Input(batch_shape=(1, frames, n_mels), name="log_mel"))
    clone.set_weights(model.get_weights())
    return clone


def random_windows(features: np.ndarray, frames: int, count: int, seed: int = 0) -> np.ndarray:
    """``count`` windows of ``frames`` frames cut at random from ``[N, T, n_mels]`` clips."""
    n, total, _ = features.shape
    if frames > total:
        raise ConfigError(f"window of {frames} frames is longer than the clips ({total} frames)")
    rng = np.random.default_rng(seed)
    clips = rng.integers(0, n, count)
    starts = rng.integers(0, total - frames + 1, count)
    return np.stack([features[c, s:s + frames] for c, s in zip(clips, starts)]).astype(np.float32)


def to_tflite(model: keras.Model, representative: np.ndarray | None = None) -> bytes:
    """Convert a batch-1 model; with ``representative`` windows, full-integer int8 in and out."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if representative is not None:
        def samples() -> Iterator[list[np.ndarray]]:
            for window in representative:
                yield [window[None].astype(np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()
