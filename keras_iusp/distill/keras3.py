"""Keras 3 adapter: IUSP and SP as ``keras.distillation`` losses.

The project trains with ``tf_keras``; this module is the only place that imports Keras 3
(``keras>=3.15``), for users of ``keras.distillation.Distiller``::

    import keras
    from keras_iusp.distill.keras3 import IUSPDistillation

    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=[
            keras.distillation.LogitsDistillation(temperature=2.0),
            IUSPDistillation(teacher_layer_name="t_conv3", student_layer_name="s_conv2"),
        ],
        distillation_loss_weights=[1.0, 10.0],
        student_loss_weight=0.5,
    )
    distiller.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))

Both classes subclass ``keras.distillation.FeatureDistillation`` so they reuse its layer-name
handling: the ``Distiller`` sees ``teacher_layer_name`` / ``student_layer_name``, builds one
feature-extractor model per network and hands the two layers' outputs to
:meth:`compute_loss`, which calls the very same TensorFlow functions as the ``tf_keras`` code
(:func:`keras_iusp.distill.losses.iusp_loss`, :func:`keras_iusp.distill.losses.sp_loss`) and
reduces them to the
scalar the ``Distiller`` requires (batch mean for IUSP; SP is already a batch-level scalar).
Those functions are TensorFlow code, so the Keras 3 backend must be ``tensorflow``
(``KERAS_BACKEND=tensorflow``, the default).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from keras_iusp.distill import losses
from keras_iusp.utils.errors import ConfigError

__all__ = ["IUSPDistillation", "SPDistillation"]

if not hasattr(keras, "distillation"):  # pragma: no cover - guarded by the keras>=3.15 pin
    raise ImportError(
        "keras_iusp.distill.keras3 needs keras.distillation (Keras >= 3.15); the installed "
        f"Keras is {keras.__version__}"
    )


def _require_tensorflow_backend(owner: str) -> None:
    backend = keras.config.backend()
    if backend != "tensorflow":
        raise ConfigError(
            f"{owner} computes its loss with TensorFlow ops and needs the Keras 3 'tensorflow' "
            f"backend; the active backend is {backend!r} (set KERAS_BACKEND=tensorflow before "
            f"importing keras)"
        )


class _TFFeatureDistillation(keras.distillation.FeatureDistillation):
    """Shared plumbing: layer names, backend check, scalar reduction, config."""

    def __init__(self, teacher_layer_name: str | None = None,
                 student_layer_name: str | None = None) -> None:
        name = type(self).__name__
        _require_tensorflow_backend(name)
        if (teacher_layer_name is None) != (student_layer_name is None):
            # keras.distillation.Distiller only looks at student_layer_name when
            # teacher_layer_name is set, and otherwise distils the final outputs, so a single
            # name would be silently ignored or paired with the other model's output.
            raise ValueError(
                f"{name}: expected both teacher_layer_name and student_layer_name (or neither, "
                f"to use the final outputs); got teacher_layer_name={teacher_layer_name!r}, "
                f"student_layer_name={student_layer_name!r}"
            )
        super().__init__(loss=self._per_batch_loss, teacher_layer_name=teacher_layer_name,
                         student_layer_name=student_layer_name)

    def _per_batch_loss(self, teacher_features: Any, student_features: Any) -> tf.Tensor:
        raise NotImplementedError

    def compute_loss(self, teacher_outputs: Any, student_outputs: Any, **kwargs: Any
                     ) -> tf.Tensor:
        """Scalar loss between the teacher's and the student's extracted layer outputs."""
        return self._per_batch_loss(teacher_outputs, student_outputs)

    def get_config(self) -> dict[str, Any]:
        return {"teacher_layer_name": self.teacher_layer_name,
                "student_layer_name": self.student_layer_name}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> _TFFeatureDistillation:
        return cls(**config)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(teacher_layer_name={self.teacher_layer_name!r}, "
                f"student_layer_name={self.student_layer_name!r})")


@keras.saving.register_keras_serializable(package="keras_iusp")
class IUSPDistillation(_TFFeatureDistillation):
    """Intra-utterance similarity preserving distillation (Chang et al., Interspeech 2020).

    Loss: ``mean_b ||G_t,b - resize(G_s,b, T_t)||²_F / T_t²`` over the clips of the batch, with
    ``G`` each clip's frame self-similarity in the chosen ``form``
    (:func:`keras_iusp.distill.losses.iusp_loss`). The named layers must output ``[B, T, ...]``
    (e.g. ``Conv1D``/``Conv2D``/recurrent outputs with a time axis); the teacher and student
    may differ in frame count and width. The teacher's features carry no gradient.

    Args:
        teacher_layer_name: teacher layer whose output is compared.
        student_layer_name: student layer whose output is compared.
        form: ``"cosine"`` (default: cosine similarity of frames, entries in ``[-1, 1]``, a
            mean over entries so one weight serves any ``T``), ``"centered"`` (the same after
            subtracting the clip's mean frame) or ``"paper"`` (the paper's ``Q Qᵀ`` with
            L2-normalised rows; the loss then scales like ``1/T_t``). Same forms, same values
            as the ``tf_keras`` :class:`keras_iusp.IUSPDistillation`.
        implementation: ``"auto"`` (default), ``"reference"`` or ``"lowrank"``; all give the
            same value (see :func:`keras_iusp.distill.losses.iusp_loss`).
    """

    def __init__(self, teacher_layer_name: str | None = None,
                 student_layer_name: str | None = None, form: str = losses.DEFAULT_IUSP_FORM,
                 implementation: str = "auto") -> None:
        if form not in losses.IUSP_FORMS:
            raise ConfigError(f"IUSPDistillation.form={form!r}: expected one of "
                              f"{list(losses.IUSP_FORMS)}")
        if implementation not in losses.IUSP_IMPLEMENTATIONS:
            raise ConfigError(f"IUSPDistillation.implementation={implementation!r}: expected one "
                              f"of {list(losses.IUSP_IMPLEMENTATIONS)}")
        self.form = form
        self.implementation = implementation
        super().__init__(teacher_layer_name, student_layer_name)

    def _per_batch_loss(self, teacher_features: Any, student_features: Any) -> tf.Tensor:
        return tf.reduce_mean(losses.iusp_loss(teacher_features, student_features,
                                               implementation=self.implementation,
                                               form=self.form))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "form": self.form,
                "implementation": self.implementation}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(teacher_layer_name={self.teacher_layer_name!r}, "
                f"student_layer_name={self.student_layer_name!r}, form={self.form!r}, "
                f"implementation={self.implementation!r})")


@keras.saving.register_keras_serializable(package="keras_iusp")
class SPDistillation(_TFFeatureDistillation):
    """Similarity-preserving distillation (Tung & Mori, ICCV 2019).

    Loss: ``||G_t - G_s||²_F / b²`` with ``G`` the row-normalised ``b × b`` Gram matrix of the
    batch's flattened activations (:func:`keras_iusp.distill.losses.sp_loss`). Any layer shapes work
    as long as the batch axis comes first. The teacher's features carry no gradient.

    Args:
        teacher_layer_name: teacher layer whose output is compared.
        student_layer_name: student layer whose output is compared.
    """

    def _per_batch_loss(self, teacher_features: Any, student_features: Any) -> tf.Tensor:
        return losses.sp_loss(teacher_features, student_features)
