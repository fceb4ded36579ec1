"""Custom layers of the model zoo.

:class:`FeatureStandardization` replaces ``keras.layers.Normalization`` as each model's first
layer: TFMOT's pruning and quantisation wrappers reject the built-in preprocessing layer, while
this one declares that it has nothing to prune and converts to two int8 TFLite ops (SUB, MUL).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras
from tensorflow_model_optimization.python.core.sparsity.keras.prunable_layer import PrunableLayer


@keras.utils.register_keras_serializable(package="keras_iusp")
class FeatureStandardization(keras.layers.Layer, PrunableLayer):
    """``(x - mean) / std`` per mel band with fixed train-split statistics (not trainable)."""

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        if self.mean.shape != self.std.shape or self.mean.ndim != 1:
            raise ValueError("FeatureStandardization: mean and std must be equal-length vectors")
        if np.any(self.std <= 0):
            raise ValueError("FeatureStandardization: std must be > 0")

    def call(self, inputs):
        return (inputs - tf.constant(self.mean)) * tf.constant(1.0 / self.std)

    def get_prunable_weights(self):
        return []

    def get_config(self):
        config = super().get_config()
        config.update({"mean": self.mean.tolist(), "std": self.std.tolist()})
        return config
