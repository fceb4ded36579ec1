"""Teacher training and student distillation runs, as used by the CLI and the quickstart.

A *run directory* holds everything needed to reuse a model: ``model.keras`` (the ``tf_keras``
model, normalisation included), ``model_info.json`` (model name, feature config, class names,
feature statistics, method and hyper-parameters), ``history.json`` and ``metrics.json``.
A student is distilled from a teacher run, and inherits its feature config, so the two can never
disagree on features.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from keras_iusp.data.unlabeled import mix_unlabeled, read_unlabeled, unlabeled_per_batch
from keras_iusp.distill.augment import AugmentConfig
from keras_iusp.distill.distillation import IUSPDistillation, LogitsDistillation, SPDistillation
from keras_iusp.distill.distiller import Distiller, StopDistillation
from keras_iusp.distill.methods import METHODS
from keras_iusp.distill.teacher_targets import (
    cross_fitted_outputs,
    held_out_folds,
    teacher_outputs,
    weights_fingerprint,
)
from keras_iusp.features.cache import FeatureCache, FeatureStats, build_feature_cache
from keras_iusp.features.logmel import FeatureConfig
from keras_iusp.features.pipeline import make_dataset
from keras_iusp.models import MODEL_SPECS, build_model, model_summary
from keras_iusp.models.layers import FeatureStandardization
from keras_iusp.train.defaults import DEFAULT_TEACHER
from keras_iusp.train.resume import WORK_DIRNAME, finish, fit_resumable
from keras_iusp.train.run_folder import METRICS_FILE, is_finished
from keras_iusp.utils.atomic import atomic_path, atomic_write_text
from keras_iusp.utils.errors import ConfigError, KerasIuspError
from keras_iusp.utils.provenance import provenance

#: Distillation methods of the paper's comparison. SP and IUSP are added beside classic KD.

#: Default teacher layer for SP/IUSP: the teacher's frame embeddings (time axis kept).
DEFAULT_TEACHER_LAYER = "embedding"

#: Default student layer per family: the last layer that still has a time axis.
DEFAULT_STUDENT_LAYER = {"cnn_lstm": "lstm", "dscnn": "frames"}


@dataclass
class DistillConfig:
    """Hyper-parameters of one distillation run (defaults used by the CLI and the quickstart).

    The defaults are one recipe: KD at temperature 1 with half the weight on the labels, Adam at
    1e-2 with warm-up + cosine decay, and the cosine-form IUSP at weight 1. Where each default
    comes from, with its measurements: ``docs/api.md`` (Why these defaults). Experiment configs
    set every recipe value themselves (``[grid]`` and ``[method.*]``).
    """

    method: str = "iusp"
    temperature: float = 1.0
    student_loss_weight: float = 0.5
    kd_weight: float = 1.0
    sp_weight: float = 100.0
    iusp_weight: float = 1.0
    iusp_form: str = "cosine"
    teacher_layer: str | None = None
    student_layer: str | None = None
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-2
    lr_schedule: str = "cosine"
    warmup_epochs: int = 1
    augmentation: AugmentConfig | None = None
    teacher_cache: bool = True
    seed: int = 0
    #: Distil only in the first ``distill_epochs`` epochs, then train on labels alone
    #: (:class:`~keras_iusp.distill.distiller.StopDistillation`); 0 distils in every epoch.
    distill_epochs: int = 0
    #: Teach each training clip with a teacher that did not train on it (``fold_teachers`` of
    #: :func:`distill`, trained by :func:`keras_iusp.experiments.cross_fit.train_fold_teachers`):
    #: soft labels that say what a teacher predicts on new clips, not its memorised training labels.
    cross_fitted: bool = False
    #: An unlabelled pool (a folder of audio files or a CSV without label columns, see
    #: :mod:`keras_iusp.data.unlabeled`); "" trains on the labelled clips alone. Its clips
    #: enter the teacher-target terms (KD, SP, IUSP) only.
    unlabeled: str = ""
    #: Unlabelled clips per labelled clip in each training batch (a batch holds
    #: ``batch_size`` labelled clips and ``round(unlabeled_ratio * batch_size)`` pool clips);
    #: read only with ``unlabeled``.
    unlabeled_ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method {self.method!r}: expected one of {list(METHODS)}")
        if (not isinstance(self.distill_epochs, int) or isinstance(self.distill_epochs, bool)
                or self.distill_epochs < 0):
            raise ConfigError(f"distill_epochs={self.distill_epochs!r}: expected an integer >= 0 "
                              "(0 distils in every epoch)")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}={value!r}: expected a positive integer")
        check_schedule(self.lr_schedule, self.warmup_epochs)
        if isinstance(self.augmentation, dict):
            self.augmentation = AugmentConfig.from_dict(self.augmentation)
        self.unlabeled = str(self.unlabeled or "")
        if (not isinstance(self.unlabeled_ratio, (int, float))
                or isinstance(self.unlabeled_ratio, bool) or not self.unlabeled_ratio > 0
                or not math.isfinite(self.unlabeled_ratio)):
            raise ConfigError(f"unlabeled_ratio={self.unlabeled_ratio!r}: expected a number > 0 "
                              "(unlabelled clips per labelled clip in a batch)")
        if self.unlabeled and self.method == "baseline":
            raise ConfigError("unlabeled: the baseline has no teacher terms for unlabelled "
                              "clips to enter; choose kd, sp or iusp")
        if self.cross_fitted and self.method == "baseline":
            raise ConfigError("cross_fitted=True: the baseline has no teacher to cross-fit")
        if self.cross_fitted and (self.augmentation is not None and self.augmentation.active
                                  or not self.teacher_cache):
            raise ConfigError("cross_fitted=True needs the teacher-output cache and no "
                              "augmentation: each training clip's outputs come from the fold "
                              "teacher that held it out, computed once on the clean clip")

    def hyperparameters(self) -> dict[str, Any]:
        """JSON-ready copy of the settings, as stored in ``model_info.json``."""
        out = dict(self.__dict__)
        out["augmentation"] = self.augmentation.to_dict() if self.augmentation else None
        return out


#: Learning-rate schedules: ``constant``, or ``cosine`` (linear warm-up then cosine decay to 0).
LR_SCHEDULES = ("constant", "cosine")


def check_schedule(schedule: str, warmup_epochs: int) -> None:
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"lr_schedule {schedule!r}: expected one of {list(LR_SCHEDULES)}")
    if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ConfigError(f"warmup_epochs={warmup_epochs!r}: expected an integer >= 0")


def make_optimizer(learning_rate: float, schedule: str, *, epochs: int, steps_per_epoch: int,
                   warmup_epochs: int = 1):
    """Adam with a constant rate or warm-up + cosine decay over the whole run.

    Warm-up then cosine decay is the usual recipe for audio taggers (e.g. PANNs, AST); decaying
    to zero also makes the last epochs average out mini-batch noise, which the best-epoch
    checkpoint then keeps.
    """
    import tf_keras as keras

    check_schedule(schedule, warmup_epochs)
    if schedule == "constant":
        return keras.optimizers.Adam(learning_rate)
    total = max(1, epochs * steps_per_epoch)
    warmup = min(warmup_epochs * steps_per_epoch, total - 1)
    rate = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10 if warmup else learning_rate,
        decay_steps=total - warmup, warmup_target=learning_rate if warmup else None,
        warmup_steps=warmup)
    return keras.optimizers.Adam(rate)


def save_run(out: Path, model, info: dict[str, Any], history: dict | None = None,
             metrics: dict | None = None) -> Path:
    """Write a run directory; each file is written under a temporary name then renamed."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "model.keras") as tmp:
        model.save(tmp, overwrite=True)
    atomic_write_text(out / "model_info.json", json.dumps(info, indent=1))
    if history is not None:
        clean = {k: [float(v) for v in vals] for k, vals in history.items()}
        atomic_write_text(out / "history.json", json.dumps(clean, indent=1))
    if metrics is not None:
        atomic_write_text(out / METRICS_FILE, json.dumps(metrics, indent=1))
    return out


@dataclass
class TrainedModel:
    """A model loaded from a run directory with the metadata it was trained with."""

    path: Path
    model: Any
    info: dict[str, Any]

    @property
    def feature_config(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.info["feature_config"],
                                       source=str(self.path / "model_info.json"))

    @property
    def stats(self) -> FeatureStats:
        return FeatureStats.from_dict(self.info["stats"])


def load_run(path: str | os.PathLike) -> TrainedModel:
    """Load ``model.keras`` + ``model_info.json`` from a run directory (or the model file)."""
    import tf_keras as keras

    path = Path(path)
    run_dir = path.parent if path.is_file() else path
    model_path = run_dir / "model.keras"
    info_path = run_dir / "model_info.json"
    if not model_path.is_file() or not info_path.is_file():
        raise KerasIuspError(
            f"{run_dir}: not a keras-iusp run directory (expected model.keras and model_info.json)"
        )
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as exc:
        raise KerasIuspError(f"{info_path}: invalid JSON ({exc})") from exc

    # passed explicitly: the registration only exists once the module is imported
    model = keras.models.load_model(
        model_path, compile=False,
        custom_objects={"keras_iusp>FeatureStandardization": FeatureStandardization})
    return TrainedModel(run_dir, model, info)


def training_datasets(cache: FeatureCache, batch_size: int, seed: int, teacher_outputs=None,
              train_index: np.ndarray | None = None, pool: FeatureCache | None = None,
              pool_outputs=None, pool_per_batch: int = 0):
    """Train (shuffled by seed and epoch) and validation datasets; with ``teacher_outputs``
    (:class:`keras_iusp.distill.teacher_targets.TeacherOutputs`) each batch also carries the
    teacher's
    cached outputs for its clips. ``train_index`` keeps only those training clips (indices into
    ``cache.split("train")``), e.g. a cross-fitting fold teacher's. With ``pool`` (the feature
    cache of an unlabelled pool, its teacher outputs in ``pool_outputs``) each training batch
    also holds ``pool_per_batch`` pool clips (:func:`keras_iusp.data.unlabeled.mix_unlabeled`).
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


def distillation_losses(config: DistillConfig, student_family: str):
    """The loss list and weights for a method: what differs between baseline/KD/SP/IUSP."""

    teacher_layer = config.teacher_layer or DEFAULT_TEACHER_LAYER
    student_layer = config.student_layer or DEFAULT_STUDENT_LAYER.get(student_family)
    if config.method in ("sp", "iusp") and student_layer is None:
        raise ConfigError(f"no default student layer for family {student_family!r}; "
                          "pass student_layer")
    if config.method == "baseline":
        return [], [], 1.0
    items = [LogitsDistillation(config.temperature)]
    weights = [config.kd_weight]
    if config.method == "sp":
        items.append(SPDistillation(teacher_layer, student_layer))
        weights.append(config.sp_weight)
    elif config.method == "iusp":
        items.append(IUSPDistillation(teacher_layer, student_layer, form=config.iusp_form))
        weights.append(config.iusp_weight)
    return items, weights, config.student_loss_weight


def distill(cache: FeatureCache, teacher_run: TrainedModel | None, student_name: str,
            out: str | os.PathLike, config: DistillConfig | None = None,
            verbose: int | str = "auto", overwrite: bool = False,
            fold_teachers: list[TrainedModel] | None = None) -> TrainedModel:
    """Distil ``student_name`` from a trained teacher with one of :data:`METHODS`; save the run.

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

    train, val = training_datasets(cache, config.batch_size, config.seed, cached, pool=pool,
                           pool_outputs=pool_cached,
                           pool_per_batch=unlabeled_per_batch(config.batch_size,
                                                              config.unlabeled_ratio))
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


def unlabeled_cache(path: str | os.PathLike, cache: FeatureCache) -> FeatureCache:
    """The feature cache of an unlabelled pool, with ``cache``'s feature config and classes
    (built once, reused like any feature cache; a pool that does not decode is an error)."""

    index = read_unlabeled(path, cache.class_names)
    return build_feature_cache(index, cache.config, progress=False)


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
