"""Run by test_distributed.py in a fresh process: two logical CPUs must be set before TF starts.

Prints one JSON line comparing one device with MirroredStrategy over two logical CPU devices on
the same global batch: evaluation losses, and student weights after one SGD step.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import tf_keras as keras  # noqa: E402

import keras_iusp  # noqa: E402
from keras_iusp.models import build_model  # noqa: E402

T, MELS = 32, 16


def bn_free_student():
    """Batch norm uses per-replica statistics in training, so the train-step check uses none."""
    inputs = keras.Input((T, MELS))
    x = keras.layers.Conv1D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    x = keras.layers.LSTM(8, return_sequences=True, name="lstm")(x)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(8, name="logits")(x))


def run(strategy, teacher_weights, student_weights, x, y, student_builder):
    with strategy.scope():
        keras.utils.set_random_seed(0)
        teacher = build_model("teacher_cnn", (T, MELS))
        teacher.set_weights(teacher_weights)
        student = student_builder()
        student.set_weights(student_weights)
        d = keras_iusp.Distiller(
            teacher, student,
            [keras_iusp.LogitsDistillation(2.0),
             keras_iusp.IUSPDistillation("embedding", "lstm"),
             keras_iusp.SPDistillation("block2", "lstm")],
            student_loss_weight=0.4)
        d.compile(optimizer=keras.optimizers.SGD(0.5))
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(len(x))
    evaluated = d.evaluate(ds, verbose=0, return_dict=True)
    d.fit(ds, epochs=1, verbose=0)
    return evaluated, [w.numpy() for w in student.weights]


def main() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, T, MELS)).astype(np.float32)
    y = (rng.random((16, 8)) < 0.3).astype(np.float32)
    keras.utils.set_random_seed(0)
    teacher_w = build_model("teacher_cnn", (T, MELS)).get_weights()
    # One student kind per process: two MirroredStrategy objects in one process can mix up
    # their collective instance keys.
    kind = sys.argv[1]
    builder = {"zoo": lambda: build_model("cnn_lstm_xs", (T, MELS)),
               "bn_free": bn_free_student}[kind]
    student_w = builder().get_weights()
    one = run(tf.distribute.OneDeviceStrategy("/cpu:0"), teacher_w, student_w, x, y, builder)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two = run(mirrored, teacher_w, student_w, x, y, builder)
    results = {
        "replicas": mirrored.num_replicas_in_sync,
        "eval_one": one[0], "eval_two": two[0],
        "max_weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(one[1], two[1])),
        "max_weight_change": max(float(np.abs(a - b).max()) for a, b in zip(one[1], student_w)),
    }
    print("RESULT " + json.dumps(results))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
