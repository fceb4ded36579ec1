"""Teacher outputs computed once per clip and memory-mapped for every epoch and every student.

A frozen teacher run in inference mode gives the same logits and layer outputs for a clip every
time it sees it un-augmented, yet a plain distillation step recomputes them for every batch of
every epoch of every student of a grid: the teacher's forward pass then costs more than the
student's whole step. This module runs the teacher once over the whole feature cache and stores
``logits`` and each requested layer as ``.npy`` files, which
:func:`keras_iusp.features.make_dataset` (``extras=``) streams beside the features and the
:class:`~keras_iusp.Distiller` uses instead of running the teacher.

The folder name hashes the teacher's weights, the feature cache's key and the layer names, so a
retrained teacher, other data or other layers never reuse stale outputs. The folder is written
under a temporary name and renamed, so an interrupted build leaves nothing half-written.
With augmentation (consistent teaching) the teacher must see each augmented batch, so no cache
is used there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_iusp.features.cache import FeatureCache
from keras_iusp.utils.errors import ConfigError

# The distiller (tf_keras) is imported inside the function that runs the teacher: reading a
# cache's fingerprint (the report and the archive do) must not load TensorFlow.

CACHE_VERSION = 1


def weights_fingerprint(model) -> str:
    """SHA-256 of a model's weights (values, shapes and dtypes), independent of file format."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass
class TeacherOutputs:
    """Memory-mapped teacher outputs for every clip of a feature cache, in the cache's order."""

    path: Path
    layer_names: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]  # logits first, then each layer in ``layer_names`` order

    def split(self, cache: FeatureCache, name: str) -> list[np.ndarray]:
        """The outputs of one split, aligned with ``cache.split(name)``."""
        where = np.flatnonzero(cache.splits == name)
        if where.size == 0:
            return [a[:0] for a in self.arrays]
        start, stop = int(where[0]), int(where[-1]) + 1
        return [a[start:stop] for a in self.arrays]

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays))


def _cache_root(cache: FeatureCache) -> Path:
    return Path(cache.path).parent


def _complete(target: Path, files: list[str]) -> bool:
    """Whether ``target`` holds finished outputs (``info.json`` is written last)."""
    return (target / "info.json").is_file() and all((target / f).is_file() for f in files)


def teacher_outputs(teacher, layer_names, cache: FeatureCache, *, batch_size: int = 32,
                    verbose: bool = True) -> TeacherOutputs:
    """Compute (or reuse) the teacher's logits and ``layer_names`` outputs for every clip.

    Args:
        teacher: the trained ``tf_keras`` teacher model (run with ``training=False``).
        layer_names: teacher layers a distillation loss reads, in the order the Distiller expects
            (:attr:`keras_iusp.Distiller.teacher_output_layers`).
        cache: the feature cache the students train on.
        batch_size: clips per forward pass.
        verbose: print where the outputs are and whether they were reused.
    """
    layer_names = tuple(layer_names)
    _check_layers(teacher, layer_names)
    key_fields = {"v": CACHE_VERSION, "weights": weights_fingerprint(teacher),
                  "features": Path(cache.path).name, "layers": list(layer_names)}
    everything = np.arange(int(cache.features.shape[0]))
    return _outputs(key_fields, [(teacher, everything)], layer_names, cache, batch_size,
                    verbose)


def cross_fitted_outputs(teacher, fold_teachers, held_out, layer_names, cache: FeatureCache,
                         *, batch_size: int = 32, verbose: bool = True) -> TeacherOutputs:
    """Teacher outputs in which no training clip is scored by a teacher that trained on it.

    A teacher fitted to its training clips returns near-hard copies of their labels there, so
    distilling on those clips repeats the label loss (``benchmarks/kd_target_probe.py``). Here
    ``fold_teachers[k]`` was trained without the training clips ``held_out[k]`` (indices into
    ``cache.split("train")``, together covering every training clip exactly once) and scores
    exactly those; every other clip (validation, test) is scored by ``teacher``, the one
    trained on all training clips. Stored and keyed like :func:`teacher_outputs`, the key also
    holding every fold teacher's weights and the folds.
    """
    layer_names = tuple(layer_names)
    if len(fold_teachers) != len(held_out) or len(fold_teachers) < 2:
        raise ConfigError(f"cross-fitting needs at least 2 fold teachers, one per held-out "
                          f"fold; got {len(fold_teachers)} teachers and {len(held_out)} folds")
    for model in (teacher, *fold_teachers):
        _check_layers(model, layer_names)
    train_rows = np.flatnonzero(cache.splits == "train")
    folds = check_folds(held_out, train_rows.size)
    key_fields = {"v": CACHE_VERSION, "weights": weights_fingerprint(teacher),
                  "features": Path(cache.path).name, "layers": list(layer_names),
                  "folds": [[weights_fingerprint(m), f.tolist()]
                            for m, f in zip(fold_teachers, folds)]}
    others = np.flatnonzero(cache.splits != "train")
    groups = [(teacher, others)] + [(m, train_rows[f]) for m, f in zip(fold_teachers, folds)]
    return _outputs(key_fields, groups, layer_names, cache, batch_size, verbose,
                    prefix="teacher-cf")


def check_folds(held_out, n_train: int) -> list[np.ndarray]:
    """The held-out folds as sorted index arrays, once checked to cover each of ``n_train``
    training clips exactly once (sorted, so the cache key does not depend on their order)."""
    folds = [np.sort(np.asarray(h, dtype=np.int64)) for h in held_out]
    joined = np.sort(np.concatenate(folds)) if folds else np.array([], np.int64)
    if not np.array_equal(joined, np.arange(n_train)):
        raise ConfigError(f"the held-out folds must cover each of the {n_train} training "
                          f"clips exactly once; they hold {joined.size} indices "
                          f"({np.unique(joined).size} distinct)")
    return folds


def _check_layers(teacher, layer_names: tuple[str, ...]) -> None:
    names = [layer.name for layer in teacher.layers]
    for name in layer_names:
        if name not in names:
            raise ConfigError(f"teacher {teacher.name!r} has no layer {name!r}")


def _outputs(key_fields: dict, groups, layer_names: tuple[str, ...], cache: FeatureCache,
             batch_size: int, verbose: bool, prefix: str = "teacher") -> TeacherOutputs:
    """Reuse the outputs keyed by ``key_fields``, or compute them: each ``(model, rows)`` group
    scores its rows of the feature cache (the groups together cover every row)."""
    import tf_keras as keras

    from keras_iusp.distill.distiller import feature_extractor

    text = json.dumps(key_fields)
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    root = _cache_root(cache)
    target = root / f"{prefix}-{key}"
    files = ["logits.npy"] + [f"layer_{i}.npy" for i in range(len(layer_names))]
    n = int(cache.features.shape[0])
    if not _complete(target, files):
        tmp = Path(tempfile.mkdtemp(prefix=f".{prefix}-{key}.", dir=root))
        try:
            out_arrays = None
            bar = keras.utils.Progbar(n, unit_name="clip", verbose=1 if verbose else 0)
            for model, rows in groups:
                rows = np.asarray(rows, dtype=np.int64)
                if rows.size == 0:
                    continue
                extractor = feature_extractor(model, list(layer_names))
                for start in range(0, rows.size, batch_size):
                    chunk = rows[start:start + batch_size]
                    # contiguous rows (the plain cache) read as one slice of the memory map
                    if np.all(np.diff(chunk) == 1):
                        x = cache.features[chunk[0]:chunk[-1] + 1]
                    else:
                        x = cache.features[chunk]
                    outs = extractor(np.asarray(x, np.float32), training=False)
                    outs = outs if isinstance(outs, list) else [outs]
                    if out_arrays is None:
                        out_arrays = [np.lib.format.open_memmap(
                            tmp / f, mode="w+", dtype=np.float32, shape=(n, *o.shape[1:]))
                            for f, o in zip(files, outs)]
                    for array, o in zip(out_arrays, outs):
                        array[chunk] = o.numpy()
                    bar.add(chunk.size)
            for array in out_arrays or []:
                array.flush()
            (tmp / "info.json").write_text(text)
            del out_arrays
            if target.exists() and not _complete(target, files):
                shutil.rmtree(target)  # an incomplete leftover
            try:
                os.replace(tmp, target)
            except OSError:
                # Another process (a parallel grid worker) finished the same outputs first;
                # theirs are equally valid and may be in use, so keep them.
                if not _complete(target, files):
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        if verbose:
            print(f"teacher outputs computed once: {target}", flush=True)
    elif verbose:
        print(f"teacher outputs reused: {target}", flush=True)
    arrays = tuple(np.load(target / f, mmap_mode="r") for f in files)
    if arrays[0].shape[0] != n:
        raise ConfigError(f"{target}: holds {arrays[0].shape[0]} clips, the feature cache "
                          f"{n}; delete the folder to rebuild it")
    return TeacherOutputs(target, layer_names, arrays)


def held_out_folds(fold_teachers: list, cache: FeatureCache) -> list[np.ndarray]:
    """The training clips each fold teacher did not train on, from the indices it recorded."""
    n_train = int((cache.splits == "train").sum())
    held = []
    for run in fold_teachers:
        if Path(str(run.info.get("data_cache", ""))).name != Path(cache.path).name:
            raise ConfigError(f"{run.path}: this fold teacher trained on the feature cache "
                              f"{run.info.get('data_cache')!r}, not {cache.path}")
        stored = run.info.get("hyperparameters", {}).get("train_index")
        if stored is None:
            raise ConfigError(f"{run.path}: not a fold teacher (its model_info.json records no "
                              "train_index)")
        held.append(np.setdiff1d(np.arange(n_train), np.asarray(stored, dtype=np.int64)))
    return held
