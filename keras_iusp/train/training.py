"""Teacher training and student distillation runs, as used by the CLI, the grid and the
quickstart. A student is distilled from a teacher run, and inherits its feature config, so the two
can never disagree on features. Run directories: :mod:`keras_iusp.train.saved_runs`.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.data.unlabeled import unlabeled_per_batch
from keras_iusp.distill.augment import AugmentConfig
from keras_iusp.distill.distiller import Distiller, StopDistillation
from keras_iusp.distill.teacher_targets import (
    cross_fitted_outputs,
    held_out_folds,
    teacher_outputs,
    weights_fingerprint,
)
from keras_iusp.features.cache import FeatureCache
from keras_iusp.models import MODEL_SPECS, build_model, model_summary
from keras_iusp.train.datasets import training_datasets, unlabeled_cache
from keras_iusp.train.defaults import DEFAULT_TEACHER
from keras_iusp.train.optimizer import make_optimizer
from keras_iusp.train.recipe import DistillConfig, distillation_losses
from keras_iusp.train.resume import WORK_DIRNAME, finish, fit_resumable
from keras_iusp.train.run_folder import is_finished
from keras_iusp.train.saved_runs import TrainedModel, save_run
from keras_iusp.utils.errors import ConfigError, KerasIuspError
from keras_iusp.utils.provenance import provenance


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse to silently replace a finished run; an unfinished one (``.work``) is resumed."""
    if is_finished(out) and not overwrite:
        raise ConfigError(f"{out} already holds a finished run; pass overwrite=True "
                          "(CLI: --overwrite) to train it again")
    if overwrite and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def train_teacher(cache: FeatureCache, out: str | os.PathLike, *,
                  model_name: str = DEFAULT_TEACHER,
                  epochs: int = 20, batch_size: int = 16, learning_rate: float = 1e-3,
                  seed: int = 0, verbose: int | str = "auto",
                  overwrite: bool = False, lr_schedule: str = "cosine", warmup_epochs: int = 1,
                  augmentation: AugmentConfig | None = None,
                  train_index: np.ndarray | None = None) -> TrainedModel:
    """Train a zoo model on labels only (BCE) and save it as a run directory.

    ``augmentation`` (mixup, SpecAugment masks; see :mod:`keras_iusp.distill.augment`) and the
    warm-up + cosine schedule are what makes a teacher worth distilling on small data: without
    them the teacher memorises its training clips and its soft labels there say little more than
    the hard labels.

    ``train_index`` trains on those training clips only (indices into ``cache.split("train")``;
    recorded in the run), as a cross-fitting fold teacher does
    (:func:`keras_iusp.experiments.cross_fit.train_fold_teachers`); the feature statistics stay
    those of the whole training split, so every teacher reads the same standardised input.

    Interrupted runs resume from their last finished epoch when called again with the same
    ``out`` (see :mod:`keras_iusp.train.resume`); the best-validation epoch's weights are kept.
    """
    import tf_keras as keras

    if cache.stats is None:
        raise KerasIuspError(f"{cache.path}: no train split, so no feature statistics")
    keras.utils.set_random_seed(seed)
    frames, mels = cache.features.shape[1:]
    model = build_model(model_name, (frames, mels), len(cache.class_names), cache.stats)
    # A Distiller with no distillation loss is plain supervised training; its label loss is
    # reported as `bce` (binary cross-entropy), the teacher being no student.
    trainer = Distiller(student=model, student_loss_weight=1.0, augmentation=augmentation,
                        label_loss_name="bce")
    out = Path(out)
    _prepare_out(out, overwrite)
    train, val = training_datasets(cache, batch_size, seed, train_index=train_index)
    trainer.compile(optimizer=make_optimizer(
        learning_rate, lr_schedule, epochs=epochs, warmup_epochs=warmup_epochs,
        steps_per_epoch=int(train.cardinality().numpy())))
    history = fit_resumable(trainer, model, train, val, epochs=epochs, verbose=verbose,
                            work_dir=out / WORK_DIRNAME)
    hyper = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
             "lr_schedule": lr_schedule, "warmup_epochs": warmup_epochs, "seed": seed,
             "augmentation": augmentation.to_dict() if augmentation else None}
    if train_index is not None:
        hyper["train_index"] = np.asarray(train_index, dtype=np.int64).tolist()
    info = _info(model_name, "teacher", cache, model, hyper)
    metrics = _val_metrics(trainer, val)
    info["summary"] = {k: v for k, v in model_summary(model).items() if k != "layers"}
    save_run(out, model, info, history, metrics)
    finish(out / WORK_DIRNAME)
    return TrainedModel(out, model, info)


def distill(cache: FeatureCache, teacher_run: TrainedModel | None, student_name: str,
            out: str | os.PathLike, config: DistillConfig | None = None,
            verbose: int | str = "auto", overwrite: bool = False,
            fold_teachers: list[TrainedModel] | None = None) -> TrainedModel:
    """Distil ``student_name`` from a trained teacher with one of the methods
    (:data:`keras_iusp.distill.methods.METHODS`); save the run.

    With ``config.cross_fitted``, ``fold_teachers`` (from
    :func:`keras_iusp.experiments.cross_fit.train_fold_teachers`) teach the training clips each of
    them held out, and ``teacher_run`` the validation clips
    (:func:`keras_iusp.distill.teacher_targets.cross_fitted_outputs`).

    Resumable like :func:`train_teacher`.
    """
    import tf_keras as keras

    config = config or DistillConfig()
    if student_name not in MODEL_SPECS:
        raise ConfigError(f"unknown student {student_name!r}; available: {', '.join(MODEL_SPECS)}")
    if teacher_run is None and config.method != "baseline":
        raise ConfigError(f"method {config.method!r} needs a teacher run; only 'baseline' "
                          "trains without one")
    if teacher_run is not None and teacher_run.feature_config != cache.config:
        raise ConfigError(
            f"teacher {teacher_run.path} was trained on features {teacher_run.feature_config} "
            f"but the data cache uses {cache.config}; use the teacher's feature config"
        )
    keras.utils.set_random_seed(config.seed)
    frames, mels = cache.features.shape[1:]
    student = build_model(student_name, (frames, mels), len(cache.class_names), cache.stats)
    items, weights, student_weight = distillation_losses(config,
                                                         MODEL_SPECS[student_name].family)
    distiller = Distiller(teacher=teacher_run.model if items else None, student=student,
                          distillation_losses=items, distillation_loss_weights=weights,
                          student_loss_weight=student_weight,
                          augmentation=config.augmentation)
    out = Path(out)
    _prepare_out(out, overwrite)
    pool = pool_cached = None
    if config.unlabeled and distiller.uses_teacher:
        pool = unlabeled_cache(config.unlabeled, cache)
    cached = None
    if config.cross_fitted and distiller.uses_teacher:
        if not fold_teachers:
            raise ConfigError("cross_fitted=True needs fold_teachers (see "
                              "keras_iusp.experiments.cross_fit.train_fold_teachers)")
        cached = cross_fitted_outputs(teacher_run.model, [t.model for t in fold_teachers],
                                      held_out_folds(fold_teachers, cache),
                                      distiller.teacher_output_layers, cache,
                                      verbose=verbose != 0)
    elif distiller.uses_teacher and config.teacher_cache and distiller.augmentation is None:
        cached = teacher_outputs(teacher_run.model, distiller.teacher_output_layers, cache,
                                 verbose=verbose != 0)
    if pool is not None and cached is not None:
        pool_cached = teacher_outputs(teacher_run.model, distiller.teacher_output_layers, pool,
                                      verbose=verbose != 0)

    train, val = training_datasets(
        cache, config.batch_size, config.seed, cached, pool=pool, pool_outputs=pool_cached,
        pool_per_batch=unlabeled_per_batch(config.batch_size, config.unlabeled_ratio))
    distiller.compile(optimizer=make_optimizer(
        config.learning_rate, config.lr_schedule, epochs=config.epochs,
        warmup_epochs=config.warmup_epochs, steps_per_epoch=int(train.cardinality().numpy())))
    callbacks = []
    if config.distill_epochs and distiller.uses_teacher:
        callbacks.append(StopDistillation(distiller, config.distill_epochs))
    history = fit_resumable(distiller, student, train, val, epochs=config.epochs,
                            verbose=verbose, work_dir=out / WORK_DIRNAME, callbacks=callbacks)
    hyper = config.hyperparameters()
    hyper["losses"] = [repr(x) for x in items]
    hyper["weights"] = weights
    info = _info(student_name, "student", cache, student, hyper)
    info["teacher"] = str(teacher_run.path) if teacher_run is not None else None
    if cached is not None and config.cross_fitted:
        info["fold_teachers"] = [str(t.path) for t in fold_teachers]
        # what a restored record is checked against (keras_iusp.experiments.archive)
        info["fold_teacher_weights"] = [weights_fingerprint(t.model) for t in fold_teachers]
        info["teacher_outputs"] = cached.path.name
    if pool is not None:
        info["unlabeled_pool"] = {"clips": int(pool.features.shape[0]),
                                  "feature_cache": str(pool.path)}
    info["summary"] = {k: v for k, v in model_summary(student).items() if k != "layers"}
    save_run(out, student, info, history, _val_metrics(distiller, val))
    finish(out / WORK_DIRNAME)
    return TrainedModel(out, student, info)


def _info(name: str, role: str, cache: FeatureCache, model, hyper: dict) -> dict[str, Any]:
    return {
        "model_name": name,
        "role": role,
        "feature_config": cache.config.to_dict(),
        "class_names": list(cache.class_names),
        "stats": cache.stats.to_dict(),
        "input_shape": list(model.input.shape[1:]),
        "hyperparameters": hyper,
        "data_cache": str(cache.path),
        "provenance": provenance(),
    }


def _val_metrics(trainer, val) -> dict[str, float]:
    if val is None:
        return {}
    values = trainer.evaluate(val, verbose=0, return_dict=True)
    return {f"val_{k}": float(v) for k, v in values.items()}
