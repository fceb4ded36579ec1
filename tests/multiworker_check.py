"""Run by test_distributed.py in fresh processes: distil one student with tf.distribute.

``python multiworker_check.py worker OUT`` is one worker of a ``MultiWorkerMirroredStrategy``
cluster; it reads its place in the cluster from ``TF_CONFIG`` (set by the caller) like any
multi-worker job. ``python multiworker_check.py reference OUT`` is one process with
``MirroredStrategy`` over two logical CPUs: two replicas that each see one half of every global
batch, as the two one-replica workers do. Both distil the same student from the same teacher on
the same global batches (Keras ``fit`` on a ``tf.data`` pipeline batched to the global batch; the
multi-worker strategy shards it by data: each worker takes its half of every global batch), then
write ``OUT`` (JSON): replicas, the Keras history, the student's weights before and after.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

KIND, OUT = sys.argv[1], sys.argv[2]
if KIND == "reference":  # two logical CPUs must be set before TensorFlow starts
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])

import tf_keras as keras  # noqa: E402

import keras_iusp  # noqa: E402
from keras_iusp.models import build_model  # noqa: E402

T, MELS, CLASSES = 32, 16, 8
EXAMPLES, GLOBAL_BATCH = 32, 8  # four steps per epoch, four examples per replica per step


def dataset(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    """Batched to the global batch; sharded by data across workers (no files to shard by)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).with_options(options)


def main() -> None:
    if KIND == "worker":
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    elif KIND == "reference":
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        raise SystemExit(f"unknown kind {KIND!r}: expected worker or reference")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, T, MELS)).astype(np.float32)
    y = (rng.random((EXAMPLES, CLASSES)) < 0.3).astype(np.float32)
    # The same initial weights in every process: built from one seed outside the strategy.
    keras.utils.set_random_seed(0)
    teacher_w = build_model("teacher_cnn", (T, MELS)).get_weights()
    student_w = build_model("cnn_lstm_xs", (T, MELS)).get_weights()
    with strategy.scope():
        teacher = build_model("teacher_cnn", (T, MELS))
        teacher.set_weights(teacher_w)
        student = build_model("cnn_lstm_xs", (T, MELS))
        student.set_weights(student_w)
        distiller = keras_iusp.Distiller(
            teacher, student,
            [keras_iusp.LogitsDistillation(2.0),
             keras_iusp.IUSPDistillation("embedding", "lstm"),
             keras_iusp.SPDistillation("block2", "lstm")],
            student_loss_weight=0.4)
        distiller.compile(optimizer=keras.optimizers.SGD(0.5))
    history = distiller.fit(dataset(x, y), validation_data=dataset(x[:16], y[:16]), epochs=1,
                            verbose=0)
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "before": [w.tolist() for w in student_w],
        "after": [w.numpy().tolist() for w in student.weights],
    }
    with open(OUT, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
