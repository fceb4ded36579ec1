"""``tf.data`` input pipeline over cached (memory-mapped) features.

Batches are gathered from the memory map by index, so a dataset larger than RAM streams from
disk, and shuffling moves only integers. Normalisation with the train-split statistics happens in
the graph, on the fly, so the cache stays model-independent.
"""

from __future__ import annotations

import numpy as np

from keras_iusp.data.cache import FeatureStats


def make_dataset(
    features: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 32,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    stats: FeatureStats | None = None,
    drop_remainder: bool = False,
):
    """A ``tf.data.Dataset`` of ``(features [B, T, n_mels], labels [B, C])`` float32 batches.

    Args:
        features: ``[N, T, n_mels]`` array or memory map (e.g. ``FeatureCache.split("train")[0]``).
        labels: ``[N, C]`` 0/1 array.
        batch_size: clips per batch.
        shuffle: a new clip order every epoch, a function of ``seed`` and the epoch number
            (the ``shuffle_epoch`` variable on the returned dataset; training advances it).
        seed: shuffle seed.
        stats: when given, features are standardised per mel band with these train statistics.
        drop_remainder: drop the last incomplete batch (useful for fixed-shape distributed steps).
    """
    import tensorflow as tf

    n = int(features.shape[0])
    if n == 0:
        raise ValueError("make_dataset: no clips to batch")
    if labels.shape[0] != n:
        raise ValueError(f"make_dataset: {n} feature rows but {labels.shape[0]} label rows")
    frames, bands = int(features.shape[1]), int(features.shape[2])
    classes = int(labels.shape[1])
    labels = np.asarray(labels, dtype=np.float32)

    def gather(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(positions)  # sorted reads are sequential on disk
        x = np.empty((positions.size, frames, bands), dtype=np.float32)
        x[order] = features[positions[order]]
        return x, labels[positions]

    def load(positions):
        x, y = tf.numpy_function(gather, [positions], (tf.float32, tf.float32), stateful=False)
        x.set_shape([None, frames, bands])
        y.set_shape([None, classes])
        return x, y

    epoch = None
    if shuffle:
        # The order is a pure function of (seed, epoch): a run resumed at epoch k sees the
        # same batches as an uninterrupted one (``ShuffleEpoch`` keeps ``epoch`` in step).
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="shuffle_epoch")
        base = tf.constant(0 if seed is None else seed, tf.int64)

        def permutation(_):
            order = tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([base, epoch.read_value()]))
            return tf.data.Dataset.from_tensor_slices(order)

        # flat_map hides the length; declare it so Keras knows the steps per epoch
        ds = tf.data.Dataset.from_tensors(0).flat_map(permutation).apply(
            tf.data.experimental.assert_cardinality(n))
    else:
        ds = tf.data.Dataset.range(n)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if stats is not None:
        mean = tf.constant(stats.mean, tf.float32)
        inv_std = tf.constant(1.0 / stats.std, tf.float32)
        ds = ds.map(lambda x, y: ((x - mean) * inv_std, y), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    ds.shuffle_epoch = epoch  # read by keras_iusp.training.ShuffleEpoch; None when not shuffled
    return ds
