"""Teacher outputs computed once per clip and memory-mapped for every epoch and every student.

A frozen teacher run in inference mode gives the same logits and layer outputs for a clip every
time it sees it un-augmented, yet a plain distillation step recomputes them for every batch of
every epoch of every student of a grid: the teacher's forward pass then costs more than the
student's whole step. This module runs the teacher once over the whole feature cache and stores
``logits`` and each requested layer as ``.npy`` files, which
:func:`keras_iusp.data.make_dataset` (``extras=``) streams beside the features and the
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

from keras_iusp.data.cache import FeatureCache
from keras_iusp.errors import ConfigError

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
    import tf_keras as keras

    from keras_iusp.distiller import _extractor

    layer_names = tuple(layer_names)
    names = [layer.name for layer in teacher.layers]
    for name in layer_names:
        if name not in names:
            raise ConfigError(f"teacher {teacher.name!r} has no layer {name!r}")
    text = json.dumps({"v": CACHE_VERSION, "weights": weights_fingerprint(teacher),
                       "features": Path(cache.path).name, "layers": list(layer_names)})
    key = hashlib.sha256(text.encode()).hexdigest()[:16]
    root = _cache_root(cache)
    target = root / f"teacher-{key}"
    files = ["logits.npy"] + [f"layer_{i}.npy" for i in range(len(layer_names))]
    if not _complete(target, files):
        extractor = _extractor(teacher, list(layer_names))
        tmp = Path(tempfile.mkdtemp(prefix=f".teacher-{key}.", dir=root))
        try:
            n = int(cache.features.shape[0])
            out_arrays = None
            bar = keras.utils.Progbar(n, unit_name="clip", verbose=1 if verbose else 0)
            for start in range(0, n, batch_size):
                x = np.asarray(cache.features[start:start + batch_size], np.float32)
                outs = extractor(x, training=False)
                outs = outs if isinstance(outs, list) else [outs]
                if out_arrays is None:
                    out_arrays = [np.lib.format.open_memmap(
                        tmp / f, mode="w+", dtype=np.float32, shape=(n, *o.shape[1:]))
                        for f, o in zip(files, outs)]
                for array, o in zip(out_arrays, outs):
                    array[start:start + len(x)] = o.numpy()
                bar.add(len(x))
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
    if arrays[0].shape[0] != cache.features.shape[0]:
        raise ConfigError(f"{target}: holds {arrays[0].shape[0]} clips, the feature cache "
                          f"{cache.features.shape[0]}; delete the folder to rebuild it")
    return TeacherOutputs(target, layer_names, arrays)
