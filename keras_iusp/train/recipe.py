"""What one distillation run is: its settings (:class:`DistillConfig`, the measured default
recipe) and the losses a method stands for (:func:`distillation_losses`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from keras_iusp.distill.augment import AugmentConfig
from keras_iusp.distill.distillation import IUSPDistillation, LogitsDistillation, SPDistillation
from keras_iusp.distill.methods import METHODS
from keras_iusp.train.optimizer import check_schedule
from keras_iusp.utils.errors import ConfigError

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
    #: :func:`keras_iusp.train.training.distill`, trained by
    #: :func:`keras_iusp.experiments.cross_fit.train_fold_teachers`):
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
