"""Cross-fitted teachers: soft labels for training clips from teachers that never saw them.

A teacher trained with augmentation until its validation score peaks still fits its own
training clips almost exactly: on the paper-scale data its outputs there disagree with the
training labels on 0.23 % of entries and are soft on 7.4 %, against 2.6 % / 15.6 % on validation
clips (``benchmarks/results/kd_target_probe.json``). Distilling on its training clips therefore
mostly repeats the label loss. Cross-fitting (as in stacking and out-of-fold prediction) splits
the training clips into K folds and trains one teacher per fold on the other K-1; each teacher
then scores the fold it held out, so every training clip gets the outputs a teacher gives a
clip it has not memorised, the same kind of target the student meets on new clips.

The cost is K more teacher trainings, paid once per grid: the outputs are cached like the
plain teacher's (:func:`keras_iusp.distill.teacher_targets.cross_fitted_outputs`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from keras_iusp.distill.augment import AugmentConfig
from keras_iusp.distill.teacher_targets import held_out_folds  # noqa: F401  (re-exported: its old home)
from keras_iusp.features.cache import FeatureCache
from keras_iusp.train.resume import WORK_DIRNAME
from keras_iusp.train.run_folder import is_finished
from keras_iusp.train.saved_runs import load_run
from keras_iusp.train.training import train_teacher
from keras_iusp.utils.atomic import atomic_write_text
from keras_iusp.utils.errors import ConfigError


def fold_assignment(n_train: int, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (0..folds-1) of each of ``n_train`` training clips: a seeded shuffle dealt out
    in turn, so fold sizes differ by at most one and no fold follows the dataset's order."""
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ConfigError(f"folds={folds!r}: expected an integer >= 2")
    if n_train < folds:
        raise ConfigError(f"{n_train} training clips cannot fill {folds} folds")
    order = np.random.default_rng(seed).permutation(n_train)
    assignment = np.empty(n_train, dtype=np.int64)
    assignment[order] = np.arange(n_train) % folds
    return assignment


def fold_dir(out: str | os.PathLike, fold: int) -> Path:
    return Path(out) / f"fold{fold}"


#: Written into a fold teacher's folder before it trains: what it trains on and how. A later
#: call reuses or resumes the folder only when this record matches what it would train.
FOLD_RECORD = "cross_fit.json"


def train_fold_teachers(cache: FeatureCache, out: str | os.PathLike, folds: int, like, *,
                        fold_seed: int = 0, verbose: int | str = "auto") -> list:
    """Train (or reuse) one teacher per fold, each on the training clips outside its fold.

    Every fold teacher repeats the recipe recorded in ``like`` (the full teacher's run: model,
    epochs, batch size, learning rate and schedule, augmentation, seed), so the folds differ
    from it only in the clips they see. Fold ``k`` is saved in ``out/fold{k}`` (a normal
    teacher run that records its training indices). Before a fold trains, its clips, recipe
    and feature cache are written to ``fold{k}/cross_fit.json``; a finished *or interrupted*
    fold whose record differs (another teacher recipe, other data, another fold assignment) or
    is missing is refused rather than reused or resumed: a resumed fold could otherwise have
    trained on clips it later scores. ``fold_seed`` seeds the assignment.
    """

    hyper = like.info.get("hyperparameters", {})
    if "train_index" in hyper:
        raise ConfigError(f"{like.path}: is itself a fold teacher; pass the full teacher")
    aug = hyper.get("augmentation")
    recipe = {"model_name": like.info["model_name"], "epochs": hyper["epochs"],
              "batch_size": hyper["batch_size"], "learning_rate": hyper["learning_rate"],
              "lr_schedule": hyper.get("lr_schedule", "constant"),
              "warmup_epochs": hyper.get("warmup_epochs", 0), "seed": hyper.get("seed", 0),
              "augmentation": AugmentConfig.from_dict(aug) if aug else None}
    n_train = int((cache.splits == "train").sum())
    assignment = fold_assignment(n_train, folds, fold_seed)
    teachers = []
    for k in range(folds):
        where = fold_dir(out, k)
        keep = np.flatnonzero(assignment != k)
        record = {"fold": k, "folds": folds, "fold_seed": fold_seed,
                  "train_index": keep.tolist(), "features": Path(cache.path).name,
                  **{key: (value.to_dict() if isinstance(value, AugmentConfig) else value)
                     for key, value in recipe.items()}}
        started = is_finished(where) or (
            (where / WORK_DIRNAME).is_dir() and any((where / WORK_DIRNAME).iterdir()))
        if started:
            _check_fold_record(where, record)
        if is_finished(where):
            teachers.append(load_run(where))
            continue
        if not started:
            where.mkdir(parents=True, exist_ok=True)
            atomic_write_text(where / FOLD_RECORD, json.dumps(record, indent=1))
        print(f"\n== fold teacher {k + 1}/{folds} ({keep.size} of {n_train} training clips)",
              flush=True)
        begin = time.perf_counter()
        teachers.append(train_teacher(cache, where, verbose=verbose, train_index=keep,
                                      **recipe))
        # the same record as a grid run's, so a report can count the folds' cost
        atomic_write_text(where / "wall.json",
                          json.dumps({"seconds": time.perf_counter() - begin}))
    return teachers


def _check_fold_record(where: Path, wanted: dict) -> None:
    """Refuse a started fold teacher that is not the one ``wanted`` describes."""
    path = where / FOLD_RECORD
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        raise ConfigError(f"{where}: holds a fold teacher without a readable {FOLD_RECORD}, so "
                          "which clips it trained on is unknown; delete it to train it "
                          "again") from None
    differ = sorted(k for k in wanted if stored.get(k) != wanted[k])
    if differ:
        shown = ", ".join("the training clips" if k == "train_index" else
                          f"{k} {stored.get(k)!r} (now {wanted[k]!r})" for k in differ)
        raise ConfigError(f"{where}: a fold teacher trained differently from what is asked now: "
                          f"{shown}. Delete the fold teachers in {where.parent} and the "
                          "cross-fitted runs distilled from them, or use another folder")


def load_fold_teachers(folder: str | os.PathLike) -> list:
    """The fold teachers ``fold0``, ``fold1``, ... that :func:`train_fold_teachers` saved in
    ``folder``, in fold order; an error names a missing or unfinished fold."""

    folder = Path(folder)
    found = sorted(int(p.name[4:]) for p in folder.glob("fold*") if p.name[4:].isdigit()) \
        if folder.is_dir() else []
    if len(found) < 2:
        raise ConfigError(f"{folder}: expected fold teachers fold0, fold1, ... (written by "
                          f"`keras-iusp train-fold-teachers`); found {len(found)}")
    if found != list(range(len(found))):
        raise ConfigError(f"{folder}: fold teachers {found}, expected 0..{len(found) - 1}")
    unfinished = [str(fold_dir(folder, k)) for k in found
                  if not is_finished(fold_dir(folder, k))]
    if unfinished:
        raise ConfigError(f"unfinished fold teacher(s) {unfinished}: run "
                          "`keras-iusp train-fold-teachers` again to finish them")
    return [load_run(fold_dir(folder, k)) for k in found]
