"""Distillation-loss objects for :class:`keras_iusp.Distiller`.

They mirror Keras 3's ``keras.distillation`` objects (``LogitsDistillation``,
``FeatureDistillation(teacher_layer_name, student_layer_name)``) so Keras users recognise them,
but run on ``tf_keras`` and return *per-example* losses where the loss is per example, which the
Distiller averages over the global batch (correct under ``tf.distribute``).
"""

from __future__ import annotations

from typing import Any

import tf_keras as keras

from keras_iusp.distill import losses
from keras_iusp.models.summary import time_axis_layers
from keras_iusp.utils.errors import ConfigError


class DistillationLoss:
    """Base class: a loss between teacher and student outputs.

    ``teacher_layer_name``/``student_layer_name`` name the layers whose outputs the loss compares;
    ``None`` means the model's final output (logits). Subclasses implement :meth:`compute_loss`.
    """

    #: Name used for this component's metric in ``fit`` history and the progress bar.
    default_name = "distill"
    #: Whether :meth:`compute_loss` returns one value per example (``[B]``) or one per batch.
    per_example = True
    #: Whether the chosen layers must keep a time axis.
    needs_time_axis = False

    def __init__(self, teacher_layer_name: str | None = None,
                 student_layer_name: str | None = None, name: str | None = None):
        self.teacher_layer_name = teacher_layer_name
        self.student_layer_name = student_layer_name
        self.name = name or self.default_name

    def compute_loss(self, teacher_outputs, student_outputs):
        raise NotImplementedError

    def validate_model_compatibility(self, teacher: keras.Model, student: keras.Model) -> None:
        """Fail early, listing valid choices, when a layer name does not fit the models."""
        for role, model, layer_name in (("teacher", teacher, self.teacher_layer_name),
                                        ("student", student, self.student_layer_name)):
            if layer_name is None:
                continue
            names = [layer.name for layer in model.layers]
            valid = time_axis_layers(model) if self.needs_time_axis else names
            if layer_name not in names:
                raise ConfigError(
                    f"{type(self).__name__}: {role} model {model.name!r} has no layer "
                    f"{layer_name!r}; valid {role} layers: {', '.join(valid)}"
                )
            if layer_name not in valid:
                raise ConfigError(
                    f"{type(self).__name__}: {role} layer {layer_name!r} has no time axis "
                    f"(output {model.get_layer(layer_name).output.shape}); layers with a time "
                    f"axis: {', '.join(valid)}"
                )

    def get_config(self) -> dict[str, Any]:
        return {"teacher_layer_name": self.teacher_layer_name,
                "student_layer_name": self.student_layer_name, "name": self.name}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class LogitsDistillation(DistillationLoss):
    """Classic KD on soft targets, *multi-label* form (sigmoid per class, not softmax).

    Per example: ``T² · mean_c BCE(sigmoid(z_t/T), sigmoid(z_s/T))``
    (:func:`keras_iusp.distill.losses.kd_loss`). Sound-event tagging is multi-label, so the soft
    target of
    each class is its own Bernoulli; a softmax over classes would make co-occurring events compete.
    """

    default_name = "kd"

    def __init__(self, temperature: float = 4.0, name: str | None = None):
        if not isinstance(temperature, (int, float)) or temperature <= 0:
            raise ConfigError(f"LogitsDistillation.temperature={temperature!r}: expected > 0")
        super().__init__(None, None, name)
        self.temperature = float(temperature)

    def compute_loss(self, teacher_outputs, student_outputs):
        return losses.kd_loss(teacher_outputs, student_outputs, self.temperature)

    def get_config(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "name": self.name}


class IUSPDistillation(DistillationLoss):
    """Intra-utterance similarity preserving KD between one teacher layer and one student layer.

    Per clip: ``||G_t - resize(G_s)||²_F / T_t²`` where ``G`` is the frame-by-frame
    self-similarity of the layer output in the chosen ``form``
    (:func:`keras_iusp.distill.losses.iusp_loss`). Both layers must keep a time axis; their lengths
    and widths may differ. Use several objects for several pairs.

    ``form`` (default :data:`keras_iusp.distill.losses.DEFAULT_IUSP_FORM`, ``"cosine"``):

    - ``"paper"``: Chang et al.'s map, ``G = Q Qᵀ`` with L2-normalised rows; the loss scales
      like ``1/T_t`` (at most ``4/T_t``).
    - ``"cosine"``: ``G[i, j] = cos(q_i, q_j)``, the Gram matrix of L2-normalised frames.
    - ``"centered"``: the same after subtracting the clip's mean frame from every frame.

    For the cosine forms the loss is the mean squared difference of map entries in ``[-1, 1]``,
    so one weight serves any frame count. The paper form barely trains a student on ReLU
    teacher features (its map is mostly a constant); see ``docs/iusp_diagnosis.md``.

    ``implementation`` is passed to :func:`~keras_iusp.distill.losses.iusp_loss`: ``"auto"``
    (default)
    picks the faster of ``"reference"`` (builds the ``T × T`` maps) and ``"lowrank"`` (the same
    value from ``D × D`` Gram matrices) for the layers' shapes.
    """

    default_name = "iusp"
    needs_time_axis = True

    def __init__(self, teacher_layer_name: str, student_layer_name: str, name: str | None = None,
                 implementation: str = "auto", form: str = losses.DEFAULT_IUSP_FORM):
        if not teacher_layer_name or not student_layer_name:
            raise ConfigError("IUSPDistillation needs teacher_layer_name and student_layer_name")
        if implementation not in losses.IUSP_IMPLEMENTATIONS:
            raise ConfigError(f"IUSPDistillation.implementation={implementation!r}: expected one "
                              f"of {list(losses.IUSP_IMPLEMENTATIONS)}")
        if form not in losses.IUSP_FORMS:
            raise ConfigError(f"IUSPDistillation.form={form!r}: expected one of "
                              f"{list(losses.IUSP_FORMS)}")
        super().__init__(teacher_layer_name, student_layer_name, name)
        self.implementation = implementation
        self.form = form

    def compute_loss(self, teacher_outputs, student_outputs):
        return losses.iusp_loss(teacher_outputs, student_outputs,
                                implementation=self.implementation, form=self.form)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "implementation": self.implementation, "form": self.form}


class SPDistillation(DistillationLoss):
    """Similarity-preserving KD (Tung & Mori, ICCV 2019): batch-wise ``b×b`` similarities.

    One value per batch (:func:`keras_iusp.distill.losses.sp_loss`). Under ``tf.distribute`` the
    Distiller gathers the layer outputs of all replicas first, so the loss is that of the global
    batch, as on one device.
    """

    default_name = "sp"
    per_example = False

    def __init__(self, teacher_layer_name: str, student_layer_name: str, name: str | None = None):
        if not teacher_layer_name or not student_layer_name:
            raise ConfigError("SPDistillation needs teacher_layer_name and student_layer_name")
        super().__init__(teacher_layer_name, student_layer_name, name)

    def compute_loss(self, teacher_outputs, student_outputs):
        return losses.sp_loss(teacher_outputs, student_outputs)
