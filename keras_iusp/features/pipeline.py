"""``tf.data`` input pipeline over cached (memory-mapped) features.

Batches are gathered from the memory map by index, so a dataset larger than RAM streams from
disk, and shuffling moves only integers. Normalisation with the train-split statistics happens in
the graph, on the fly, so the cache stays model-independent.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_iusp.features.cache import FeatureStats


def make_dataset(
    features: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 32,
    *,
    shuffle: bool = False,
    seed: int | None = None,
    stats: FeatureStats | None = None,
    drop_remainder: bool = False,
    extras: Sequence[np.ndarray] = (),
):
    """A ``tf.data.Dataset`` of ``(features [B, T, n_mels], labels [B, C])`` float32 batches.

    With ``extras`` (per-clip arrays ``[N, ...]``, e.g. a teacher's cached outputs from
    :mod:`keras_iusp.distill.teacher_targets`), each element is ``((features, *extras), labels)``:
    the extra rows are gathered with the same indices as the features, so they stay aligned under
    shuffling.

    Args:
        features: ``[N, T, n_mels]`` array or memory map (e.g. ``FeatureCache.split("train")[0]``).
        labels: ``[N, C]`` 0/1 array.
        batch_size: clips per batch.
        shuffle: a new clip order every epoch, a function of ``seed`` and the epoch number
            (the ``shuffle_epoch`` variable on the returned dataset; training advances it).
        seed: shuffle seed.
        stats: when given, features are standardised per mel band with these train statistics.
        drop_remainder: drop the last incomplete batch (useful for fixed-shape distributed steps).
        extras: further per-clip arrays (or memory maps) batched alongside the features.
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
    extras = list(extras)
    for i, extra in enumerate(extras):
        if extra.shape[0] != n:
            raise ValueError(f"make_dataset: extras[{i}] has {extra.shape[0]} rows, expected {n}")

    def rows(array, positions: np.ndarray, order: np.ndarray) -> np.ndarray:
        out = np.empty((positions.size, *array.shape[1:]), dtype=np.float32)
        out[order] = array[positions[order]]  # sorted reads are sequential on disk
        return out

    def gather(positions: np.ndarray):
        order = np.argsort(positions)
        return (rows(features, positions, order), labels[positions],
                *[rows(e, positions, order) for e in extras])

    def load(positions):
        out = tf.numpy_function(gather, [positions], [tf.float32] * (2 + len(extras)),
                                stateful=False)
        x, y, rest = out[0], out[1], out[2:]
        x.set_shape([None, frames, bands])
        y.set_shape([None, classes])
        for tensor, extra in zip(rest, extras):
            tensor.set_shape([None, *extra.shape[1:]])
        return ((x, *rest), y) if extras else (x, y)

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
        if extras:
            ds = ds.map(lambda x, y: (((x[0] - mean) * inv_std, *x[1:]), y),
                        num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.map(lambda x, y: ((x - mean) * inv_std, y),
                        num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    # read by keras_iusp.train.resume.ShuffleEpoch; None when not shuffled
    ds.shuffle_epoch = epoch
    return ds
