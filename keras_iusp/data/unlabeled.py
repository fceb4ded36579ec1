"""An unlabelled pool of clips: reading it, and mixing it into the labelled training batches.

A pool is either a folder of audio files (read in sorted name order, not recursively) or a CSV
whose ``audio_filename`` column names the files (relative to the CSV's folder) and which holds
no label column. It becomes a :class:`~keras_iusp.data.DatasetIndex` with every clip in the
``train`` split and all-zero labels, so the usual feature cache
(:func:`~keras_iusp.features.build_feature_cache`) and teacher-output cache
(:func:`keras_iusp.distill.teacher_targets.teacher_outputs`) serve it unchanged; the zero labels are
never read as labels: :func:`mix_unlabeled` marks each pool row with ``label_mask = 0``, and
the :class:`~keras_iusp.Distiller` computes the label loss on ``label_mask = 1`` rows only.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_iusp.data.index import DatasetIndex
from keras_iusp.data.schema import COARSE_COLUMNS
from keras_iusp.utils.errors import DataError

#: File name endings read as audio in a pool folder (what ``soundfile`` decodes).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")

#: The CSV column naming each pool clip's audio file.
FILENAME_COLUMN = "audio_filename"


def unlabeled_paths(path: str | os.PathLike) -> tuple[Path, ...]:
    """The audio files of a pool (a folder or a label-free CSV), each checked to exist.

    Raises:
        DataError: the path is missing, holds no audio, or is a CSV without an
            ``audio_filename`` column, with label columns, or naming missing files.
    """
    path = Path(path)
    if path.is_dir():
        files = tuple(sorted((p.resolve() for p in path.iterdir()
                              if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES),
                             key=lambda p: p.name))
        if not files:
            raise DataError(f"{path}: no audio files ({', '.join(AUDIO_SUFFIXES)}) in the "
                            "folder")
        return files
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise DataError(f"{path}: expected a folder of audio files or a .csv file")
        return _csv_paths(path)
    raise DataError(f"{path}: no such folder or CSV file")


def _csv_paths(path: Path) -> tuple[Path, ...]:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            if FILENAME_COLUMN not in header:
                raise DataError(f"{path}: no {FILENAME_COLUMN!r} column (header: "
                                f"{', '.join(header) or 'empty'})")
            labels = [c for c in header if c in COARSE_COLUMNS or c.endswith("_presence")]
            if labels:
                raise DataError(f"{path}: has label column(s) {', '.join(labels[:3])}; an "
                                "unlabelled pool lists audio files only (labelled clips "
                                "belong in the dataset)")
            names = [row[FILENAME_COLUMN] for row in reader]
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"{path}: unreadable CSV ({exc})") from None
    if not names:
        raise DataError(f"{path}: lists no audio files")
    files = []
    for line, name in enumerate(names, 2):
        file = (path.parent / (name or "")).resolve()
        if not name or not file.is_file():
            raise DataError(f"{path}, line {line}: audio file {name!r} not found "
                            f"(paths are relative to {path.parent})")
        files.append(file)
    if len(set(files)) != len(files):
        raise DataError(f"{path}: lists some audio files more than once")
    return tuple(files)


def read_unlabeled(path: str | os.PathLike, class_names: Sequence[str]) -> DatasetIndex:
    """The pool as a dataset index: every clip in ``train``, labels all zero (never used)."""
    files = unlabeled_paths(path)
    path = Path(path)
    root = path if path.is_dir() else path.parent
    return DatasetIndex(root=root.resolve(), paths=files,
                        splits=np.array(["train"] * len(files)),
                        labels=np.zeros((len(files), len(class_names)), np.uint8),
                        class_names=tuple(class_names))


def unlabeled_per_batch(batch_size: int, ratio: float) -> int:
    """Pool clips in each training batch: ``round(ratio * batch_size)``, at least 1 when
    ``ratio > 0``."""
    return 0 if ratio <= 0 else max(1, int(round(ratio * batch_size)))


def mix_unlabeled(labelled, pool_features: np.ndarray, per_batch: int, *, seed: int,
                  steps_per_epoch: int, pool_extras: Sequence[np.ndarray] = ()):
    """Append ``per_batch`` pool clips to every batch of the labelled dataset ``labelled``.

    ``labelled`` is a :func:`~keras_iusp.features.make_dataset` training dataset (elements
    ``(x, y)`` or ``((x, *extras), y)``, with ``pool_extras`` then the same extras for the pool,
    e.g. the teacher's cached outputs on it). Each element of the result is
    ``({"features": x, "teacher_outputs": (...), "label_mask": m}, y)``: the labelled rows
    first (``m = 1``), then the pool rows (``m = 0``, ``y = 0``); ``teacher_outputs`` only when
    there are extras.

    Every pool clip is used once before any is used twice: the pool is read in a permutation
    per pass, a function of ``seed`` and the pass number, and epoch ``e`` takes the
    ``steps_per_epoch * per_batch`` clips that follow epoch ``e - 1``'s. The epoch is read from
    ``labelled.shuffle_epoch`` (kept in step by training), so a resumed run draws the same pool
    clips as an uninterrupted one. The returned dataset carries the same ``shuffle_epoch``.
    """
    import tensorflow as tf

    epoch = getattr(labelled, "shuffle_epoch", None)
    if epoch is None:
        raise ValueError("mix_unlabeled: the labelled dataset must be a shuffled make_dataset "
                         "dataset (it carries the epoch counter)")
    n = int(pool_features.shape[0])
    if n == 0 or per_batch < 1 or steps_per_epoch < 1:
        raise ValueError(f"mix_unlabeled: pool of {n} clips, {per_batch} per batch, "
                         f"{steps_per_epoch} steps: all must be >= 1")
    extras = list(pool_extras)
    for i, extra in enumerate(extras):
        if extra.shape[0] != n:
            raise ValueError(f"mix_unlabeled: pool_extras[{i}] has {extra.shape[0]} rows, "
                             f"expected {n}")
    frames, bands = int(pool_features.shape[1]), int(pool_features.shape[2])
    per_epoch = steps_per_epoch * per_batch
    base = tf.constant(int(seed) + 1_000_003, tf.int64)  # apart from the labelled order's seed

    def positions(_):
        start = epoch.read_value() * per_epoch
        k = start + tf.range(per_epoch, dtype=tf.int64)
        passes, within = k // n, k % n
        first = passes[0]
        perms = tf.map_fn(
            lambda p: tf.random.experimental.stateless_shuffle(
                tf.range(n, dtype=tf.int64), seed=tf.stack([base, p])),
            tf.range(first, passes[-1] + 1), fn_output_signature=tf.int64)
        picked = tf.gather_nd(perms, tf.stack([passes - first, within], axis=1))
        return tf.data.Dataset.from_tensor_slices(picked)

    def rows(array, where: np.ndarray) -> np.ndarray:
        order = np.argsort(where)
        out = np.empty((where.size, *array.shape[1:]), dtype=np.float32)
        out[order] = array[where[order]]  # sorted reads are sequential on disk
        return out

    def gather(where: np.ndarray):
        return tuple(rows(a, where) for a in (pool_features, *extras))

    def load(where):
        out = tf.numpy_function(gather, [where], [tf.float32] * (1 + len(extras)),
                                stateful=False)
        out[0].set_shape([None, frames, bands])
        for tensor, extra in zip(out[1:], extras):
            tensor.set_shape([None, *extra.shape[1:]])
        return tuple(out)

    pool = (tf.data.Dataset.from_tensors(0).flat_map(positions)
            .batch(per_batch, drop_remainder=True)
            .map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))

    def combine(labelled_batch, pool_batch):
        x, y = labelled_batch
        parts = tuple(x) if isinstance(x, tuple) else (x,)
        if len(parts) != len(pool_batch):
            raise ValueError(f"mix_unlabeled: labelled batches carry {len(parts) - 1} extras, "
                             f"the pool {len(pool_batch) - 1}")
        joined = [tf.concat([a, b], axis=0) for a, b in zip(parts, pool_batch)]
        n_l, n_u = tf.shape(y)[0], tf.shape(pool_batch[0])[0]
        mask = tf.concat([tf.ones([n_l]), tf.zeros([n_u])], axis=0)
        labels = tf.concat([y, tf.zeros([n_u, tf.shape(y)[1]], y.dtype)], axis=0)
        inputs = {"features": joined[0], "label_mask": mask}
        if len(joined) > 1:
            inputs["teacher_outputs"] = tuple(joined[1:])
        return inputs, labels

    # zip stops with the labelled data: an epoch stays one pass over the labelled clips
    ds = tf.data.Dataset.zip((labelled, pool)).map(combine).apply(
        tf.data.experimental.assert_cardinality(steps_per_epoch)).prefetch(tf.data.AUTOTUNE)
    ds.shuffle_epoch = epoch
    return ds
