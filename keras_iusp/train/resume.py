"""Interruptible training: ``fit`` that resumes after Ctrl-C or a kill and ends where it would have.

A run keeps its scratch state in ``<run dir>/.work/``: Keras ``BackupAndRestore`` checkpoints
(model, optimizer, epoch), the best-validation weights with their score, and the per-epoch log.
Starting the same run again continues from the last finished epoch. Shuffling is a function of
(seed, epoch) (:func:`keras_iusp.features.make_dataset`), so the resumed epochs see the same batches
as an uninterrupted run. When ``fit`` completes, the best weights are restored and the scratch
folder is removed by the caller once the run directory is written.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import tf_keras as keras

from keras_iusp.utils.atomic import atomic_path, atomic_write_text

WORK_DIRNAME = ".work"


class ShuffleEpoch(keras.callbacks.Callback):
    """Keeps a dataset's ``shuffle_epoch`` variable equal to the epoch about to be read.

    Keras creates the next epoch's iterator before ``on_epoch_begin``, so the variable is set at
    the start of training (from the restored optimizer step) and at the end of each epoch.
    """

    def __init__(self, variable, steps_per_epoch: int):
        super().__init__()
        self.variable = variable
        self.steps_per_epoch = max(1, int(steps_per_epoch))

    def on_train_begin(self, logs=None):
        done = int(self.model.optimizer.iterations.numpy()) // self.steps_per_epoch
        self.variable.assign(done)

    def on_epoch_end(self, epoch, logs=None):
        self.variable.assign(epoch + 1)


class BestWeights(keras.callbacks.Callback):
    """Saves the trained model's weights whenever ``monitor`` improves; survives a resume.

    Unlike ``EarlyStopping(restore_best_weights=True)``, the best score and weights live on disk,
    so a run resumed after a kill still knows which epoch was best.
    """

    def __init__(self, model_to_save: keras.Model, folder: Path, monitor: str = "val_auprc"):
        super().__init__()
        self.target = model_to_save
        self.folder = Path(folder)
        self.monitor = monitor
        self.weights_path = self.folder / "best.weights.h5"
        self.score_path = self.folder / "best.json"

    def best(self) -> dict | None:
        if self.score_path.is_file() and self.weights_path.is_file():
            return json.loads(self.score_path.read_text())
        return None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(value):  # a diverged epoch is never the best
            return
        best = self.best()
        if best is not None and value <= best["value"]:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.weights_path) as tmp:
            self.target.save_weights(tmp)
        atomic_write_text(self.score_path, json.dumps({"epoch": epoch, "value": float(value)}))

    def restore(self) -> None:
        if self.best() is not None:
            self.target.load_weights(self.weights_path)


def _read_history(path: Path) -> dict[str, list[float]]:
    """Per-epoch log written by ``CSVLogger(append=True)``; a repeated epoch keeps its last row."""
    if not path.is_file():
        return {}
    rows: dict[int, dict[str, str]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("epoch", "").isdigit():
                rows[int(row["epoch"])] = row
    history: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            if key == "epoch":
                continue
            try:
                history.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):  # CSVLogger writes "NA" for a missing value
                history.setdefault(key, []).append(float("nan"))
    return history


def fit_resumable(trainer: keras.Model, model_to_keep: keras.Model, train, val, *, epochs: int,
                  work_dir: str | os.PathLike, verbose="auto", callbacks=(),
                  keep_best: bool = True) -> dict:
    """``trainer.fit`` with resume support; returns the full per-epoch history (all sessions).

    ``model_to_keep`` is the model whose best-validation weights are restored at the end (the
    student inside a Distiller) when ``keep_best`` is true; pruning passes ``False``, since an
    earlier epoch's weights would be less sparse than the schedule's final ones.
    """
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    steps = int(train.cardinality().numpy())
    if steps <= 0:
        raise ValueError("fit_resumable needs a dataset of known length (see make_dataset)")
    best = BestWeights(model_to_keep, work) if (val is not None and keep_best) else None
    all_callbacks = [keras.callbacks.BackupAndRestore(str(work / "backup"))]
    if getattr(train, "shuffle_epoch", None) is not None:
        all_callbacks.append(ShuffleEpoch(train.shuffle_epoch, steps))
    if best is not None:
        all_callbacks.append(best)
    all_callbacks.append(keras.callbacks.CSVLogger(str(work / "history.csv"), append=True))
    all_callbacks.extend(callbacks)
    trainer.fit(train, validation_data=val, epochs=epochs, verbose=verbose,
                callbacks=all_callbacks)
    if best is not None:
        best.restore()
    return _read_history(work / "history.csv")


def finish(work_dir: str | os.PathLike) -> None:
    """Remove a run's scratch folder once its final artifacts are written."""
    shutil.rmtree(work_dir, ignore_errors=True)
