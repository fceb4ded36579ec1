"""The datasets a run trains on: labelled batches, optionally with the teacher's cached outputs
and clips of an unlabelled pool."""

from __future__ import annotations

import os

import numpy as np

from keras_iusp.data.unlabeled import mix_unlabeled, read_unlabeled
from keras_iusp.features.cache import FeatureCache, build_feature_cache
from keras_iusp.features.pipeline import make_dataset
from keras_iusp.utils.errors import ConfigError, KerasIuspError


def training_datasets(cache: FeatureCache, batch_size: int, seed: int, teacher_outputs=None,
                      train_index: np.ndarray | None = None, pool: FeatureCache | None = None,
                      pool_outputs=None, pool_per_batch: int = 0):
    """Train (shuffled by seed and epoch) and validation datasets; with ``teacher_outputs``
    (:class:`keras_iusp.distill.teacher_targets.TeacherOutputs`) each batch also carries the
    teacher's cached outputs for its clips. ``train_index`` keeps only those training clips
    (indices into ``cache.split("train")``), e.g. a cross-fitting fold teacher's. With ``pool``
    (the feature cache of an unlabelled pool, its teacher outputs in ``pool_outputs``) each
    training batch also holds ``pool_per_batch`` pool clips
    (:func:`keras_iusp.data.unlabeled.mix_unlabeled`).
    """

    x_train, y_train = cache.split("train")
    x_val, y_val = cache.split("validate")
    if len(x_train) == 0:
        raise KerasIuspError(f"{cache.path}: the dataset has no train clips")
    extras = {s: teacher_outputs.split(cache, s) if teacher_outputs is not None else ()
              for s in ("train", "validate")}
    if train_index is not None:
        if teacher_outputs is not None:
            raise ValueError("train_index and teacher_outputs together are not supported")
        train_index = np.asarray(train_index, dtype=np.int64)
        if train_index.size == 0 or train_index.min() < 0 or train_index.max() >= len(x_train):
            raise ConfigError(f"train_index: expected 1 or more indices in [0, {len(x_train)})")
        x_train, y_train = np.asarray(x_train[train_index]), y_train[train_index]
    train = make_dataset(x_train, y_train, batch_size, shuffle=True, seed=seed,
                         extras=extras["train"])
    if pool is not None and pool_per_batch > 0:
        if (teacher_outputs is None) != (pool_outputs is None):
            raise ValueError("teacher outputs are needed for both the labelled data and the "
                             "pool, or for neither")
        train = mix_unlabeled(train, pool.split("train")[0], pool_per_batch, seed=seed,
                              steps_per_epoch=int(train.cardinality().numpy()),
                              pool_extras=pool_outputs.split(pool, "train")
                              if pool_outputs is not None else ())
    val = make_dataset(x_val, y_val, batch_size, extras=extras["validate"]) if len(x_val) \
        else None
    return train, val


def unlabeled_cache(path: str | os.PathLike, cache: FeatureCache) -> FeatureCache:
    """The feature cache of an unlabelled pool, with ``cache``'s feature config and classes
    (built once, reused like any feature cache; a pool that does not decode is an error)."""

    index = read_unlabeled(path, cache.class_names)
    return build_feature_cache(index, cache.config, progress=False)
