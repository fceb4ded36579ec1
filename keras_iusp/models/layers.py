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


@keras.utils.register_keras_serializable(package="keras_iusp")
class StepDropout(keras.layers.Layer):
    """Dropout whose masks are a function of ``(seed, number of training calls so far)``.

    Keras' ``Dropout`` draws from stateful random ops whose position is not saved in a checkpoint,
    so a run resumed by ``BackupAndRestore`` in a new process drew different masks than an
    uninterrupted run (measured: teacher loss 3 % off two epochs after the resume). Here the call
    count is a non-trainable weight, restored with the others, and each mask comes from a
    stateless draw keyed by it.
    """

    def __init__(self, rate: float, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"rate={rate!r}: expected 0 <= rate < 1")
        self.rate = float(rate)
        self.seed = int(seed)

    def build(self, input_shape):
        # one counter for all replicas under tf.distribute (the first replica's update counts)
        self.calls = self.add_weight(name="calls", shape=(), dtype=tf.int64,
                                     initializer="zeros", trainable=False,
                                     aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        super().build(input_shape)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        self.calls.assign_add(1)
        seed = tf.stack([tf.constant(self.seed, tf.int64), self.calls.read_value()])
        keep = tf.random.stateless_uniform(tf.shape(inputs), seed=seed) >= self.rate
        return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
