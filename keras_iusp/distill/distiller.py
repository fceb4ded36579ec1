"""The Distiller: a ``tf_keras.Model`` whose ``train_step`` adds BCE + KD + SP + IUSP.

Argument names follow Keras 3's ``keras.distillation.Distiller`` (``distillation_losses``,
``distillation_loss_weights``, ``student_loss_weight``) and so does the weighting::

    total = student_loss_weight * student_loss
            + (1 - student_loss_weight) * sum_i(weight_i * distillation_loss_i)

It runs on ``tf_keras`` because the compression path (TFMOT pruning/QAT, int8 LSTM conversion)
needs it, and it reduces every loss by the *global* batch size so ``tf.distribute`` strategies
give the same loss as one device.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tf_keras as keras

from keras_iusp.distill.augment import AugmentConfig, augment_batch
from keras_iusp.distill.distillation import DistillationLoss
from keras_iusp.models.probe import layer_probe
from keras_iusp.utils.errors import ConfigError

#: Key of the label loss among the per-step loss reports (its metric name is ``label_loss_name``).
_LABEL_LOSS = "student_loss"


def _unique_names(items: Sequence[DistillationLoss]) -> list[str]:
    """Metric names per loss object: ``iusp``, ``iusp_2``, ... when a kind repeats."""
    counts: dict[str, int] = {}
    names = []
    for item in items:
        counts[item.name] = counts.get(item.name, 0) + 1
        names.append(item.name if counts[item.name] == 1 else f"{item.name}_{counts[item.name]}")
    return names


def feature_extractor(model: keras.Model, layer_names: list[str]) -> keras.Model:
    """A model sharing ``model``'s layers that returns its logits and the named layer outputs."""
    return layer_probe(model, list(layer_names), with_logits=True, name=f"{model.name}_features")


class Distiller(keras.Model):
    """Train a student to imitate a frozen teacher; call ``compile`` then ``fit`` as usual.

    Args:
        teacher: trained teacher (frozen here, always run with ``training=False``). May be
            ``None`` for a baseline with no distillation losses.
        student: model to train; ``distiller.student`` is the trained model to save or export.
        distillation_losses: list of :class:`~keras_iusp.LogitsDistillation`,
            :class:`~keras_iusp.IUSPDistillation`, :class:`~keras_iusp.SPDistillation`
            (several IUSP/SP entries = several layer pairs). ``None``/empty = baseline.
        distillation_loss_weights: one weight per distillation loss (default all 1).
        student_loss_weight: weight of the supervised loss on labels, in ``[0, 1]``.
        augmentation: an :class:`~keras_iusp.distill.augment.AugmentConfig` drawn per training batch
            (mixup, SpecAugment masks, crops). Teacher and student see the *same* augmented batch
            (consistent teaching); draws are a function of (seed, step), so runs of different
            methods with one seed see identical augmentations.
        label_loss_name: metric name of the supervised loss on labels (``student_loss``; a
            teacher trained with this class names it ``bce``, for what it is).

    Teacher outputs may be supplied with the data instead of computed in every step: when a
    batch's ``x`` is a tuple ``(features, logits, layer_1, ...)`` in the order of
    :attr:`teacher_output_layers` (see :mod:`keras_iusp.distill.teacher_targets`), the teacher is
    not run.
    That is exact only for un-augmented inputs, so it is refused together with ``augmentation``.

    Batches may mix labelled and unlabelled clips (:func:`keras_iusp.data.unlabeled.mix_unlabeled`):
    ``x`` is then a dict ``{"features": ..., "label_mask": [B], "teacher_outputs": (...)}``
    (``teacher_outputs`` optional, as the tuple form's cached outputs). Rows with
    ``label_mask = 0`` enter only the teacher-target terms (KD, SP, IUSP); the label loss is the
    mean over the ``label_mask = 1`` rows alone (so its scale does not depend on how many
    unlabelled rows ride along), and the labels of the other rows are never read. With
    ``augmentation``, labelled and unlabelled rows are augmented apart (mixup never mixes a
    label with an absent one). Label-mask batches run on one device.

    Metrics in ``fit`` history / progress bar: ``loss`` (total), ``student_loss`` (or
    ``label_loss_name``), one entry per
    distillation loss (``kd``, ``sp``, ``iusp``, ``iusp_2``, ...) and, on validation data,
    ``auprc`` (micro-averaged area under the precision-recall curve of the student).
    """

    def __init__(
        self,
        teacher: keras.Model | None = None,
        student: keras.Model | None = None,
        distillation_losses: Sequence[DistillationLoss] | DistillationLoss | None = None,
        distillation_loss_weights: Sequence[float] | None = None,
        student_loss_weight: float = 0.5,
        augmentation: AugmentConfig | None = None,
        label_loss_name: str = "student_loss",
        name: str = "distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        if not isinstance(student, keras.Model):
            raise ConfigError("Distiller: student must be a tf_keras Model")
        if isinstance(distillation_losses, DistillationLoss):
            distillation_losses = [distillation_losses]
        losses = list(distillation_losses or [])
        for item in losses:
            if not isinstance(item, DistillationLoss):
                raise ConfigError(
                    f"Distiller: distillation_losses entries must be keras_iusp distillation "
                    f"losses (LogitsDistillation, IUSPDistillation, SPDistillation), got {item!r}"
                )
        if losses and not isinstance(teacher, keras.Model):
            raise ConfigError("Distiller: distillation losses need a tf_keras teacher Model")
        weights = [1.0] * len(losses) if distillation_loss_weights is None else [
            float(w) for w in distillation_loss_weights]
        if len(weights) != len(losses):
            raise ConfigError(
                f"Distiller: {len(weights)} distillation_loss_weights for {len(losses)} "
                "distillation_losses; give one weight per loss"
            )
        if not isinstance(student_loss_weight, (int, float)) or not 0 <= student_loss_weight <= 1:
            raise ConfigError(
                f"Distiller: student_loss_weight={student_loss_weight!r}: "
                "expected a number in [0, 1]"
            )
        if teacher is not None:
            self._check_shapes(teacher, student)
        for item in losses:
            item.validate_model_compatibility(teacher, student)

        self.teacher = teacher
        self.student = student
        if teacher is not None:
            teacher.trainable = False
        self.distillation_losses = losses
        self.distillation_loss_weights = weights
        self.student_loss_weight = float(student_loss_weight)
        self._loss_names = _unique_names(losses)
        if augmentation is not None and not isinstance(augmentation, AugmentConfig):
            raise ConfigError(f"Distiller: augmentation must be an AugmentConfig, got "
                              f"{augmentation!r}")
        self.augmentation = augmentation if augmentation is not None and augmentation.active \
            else None
        self._use_teacher = bool(losses) and self.student_loss_weight < 1.0
        # 1.0: the distillation terms count; 0.0: labels only (see StopDistillation). A variable,
        # not a Python float, so switching it does not retrace the train step.
        self.distillation_active = tf.Variable(1.0, trainable=False, dtype=tf.float32,
                                               name="distillation_active") \
            if self._use_teacher else None

        teacher_layers = sorted({x.teacher_layer_name for x in losses if x.teacher_layer_name})
        student_layers = sorted({x.student_layer_name for x in losses if x.student_layer_name})
        self._teacher_layers = teacher_layers
        self._teacher_slots = {n: i + 1 for i, n in enumerate(teacher_layers)}
        self._student_slots = {n: i + 1 for i, n in enumerate(student_layers)}
        self._teacher_features = (feature_extractor(teacher, teacher_layers)
                                  if self._use_teacher else None)
        self._student_features = feature_extractor(student, student_layers)

        self.total_loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name=label_loss_name)
        self.component_trackers = [keras.metrics.Mean(name=n) for n in self._loss_names]
        self.auprc = keras.metrics.AUC(curve="PR", num_thresholds=500, from_logits=True,
                                       multi_label=False, name="auprc")
        self.student_loss_fn: keras.losses.Loss | None = None
        # A step returns metric results, already the same on every replica. Keras's default
        # ("auto") sums them over the workers of a MultiWorkerMirroredStrategy whenever the step's
        # keys differ from ``metrics`` (training leaves out the AUPRC), which multiplied the
        # training history by the number of workers.
        self.distribute_reduction_method = "first"
        self.built = True  # both sub-models are built; lets checkpoints save weights at once

    @property
    def uses_teacher(self) -> bool:
        """Whether the loss needs teacher outputs at all (False for a baseline)."""
        return self._use_teacher

    @property
    def teacher_output_layers(self) -> list[str]:
        """Teacher layers the losses read, after the logits: the order of cached outputs."""
        return list(self._teacher_layers) if self._use_teacher else []

    @staticmethod
    def _check_shapes(teacher: keras.Model, student: keras.Model) -> None:
        t_in, s_in = teacher.input.shape[1:], student.input.shape[1:]
        if t_in != s_in:
            raise ConfigError(
                f"Distiller: teacher input {tuple(t_in)} differs from student input {tuple(s_in)}; "
                "both must use the same feature config"
            )
        t_out, s_out = teacher.output.shape[-1], student.output.shape[-1]
        if t_out != s_out:
            raise ConfigError(
                f"Distiller: teacher has {t_out} outputs but the student has {s_out}"
            )

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Like ``Model.compile``; ``loss`` is the student's supervised loss (default: BCE).

        ``metrics`` are applied to the student's logits and labels.
        """
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        if loss is None:
            loss = keras.losses.BinaryCrossentropy(from_logits=True)
        self.student_loss_fn = keras.losses.get(loss)

    @property
    def metrics(self):
        tracked = [self.total_loss_tracker, self.student_loss_tracker, *self.component_trackers,
                   self.auprc]
        if self.compiled_metrics is not None:
            tracked += self.compiled_metrics.metrics
        return tracked

    def call(self, inputs, training=None):
        if isinstance(inputs, dict):  # a batch with a label mask
            inputs = inputs["features"]
        if isinstance(inputs, (tuple, list)):  # features + cached teacher outputs
            inputs = inputs[0]
        return self.student(inputs, training=training)

    # --- loss computation -------------------------------------------------------------------

    def _per_example_student_loss(self, y, logits):
        fn = self.student_loss_fn
        if fn is None:
            raise RuntimeError("Distiller: call compile() before fit/evaluate")
        return fn.call(y, logits) if isinstance(fn, keras.losses.Loss) else fn(y, logits)

    def _split_inputs(self, x):
        """``(features, cached teacher outputs or None, label mask or None)`` from a batch's
        ``x``."""
        if isinstance(x, dict):
            unknown = set(x) - {"features", "label_mask", "teacher_outputs"}
            if "features" not in x or unknown:
                raise ConfigError("Distiller: a dict batch holds 'features' and optionally "
                                  f"'label_mask', 'teacher_outputs'; got {sorted(x)}")
            cached = x.get("teacher_outputs")
            features, cached, _ = self._split_inputs(
                (x["features"], *cached) if cached is not None else x["features"])
            mask = x.get("label_mask")
            return features, cached, (tf.cast(mask, tf.float32) if mask is not None else None)
        if isinstance(x, (tuple, list)):
            if not self._use_teacher:
                return x[0], None, None
            cached = list(x[1:])
            expected = 1 + len(self._teacher_layers)
            if len(cached) != expected:
                raise ConfigError(
                    f"Distiller: the data carries {len(cached)} cached teacher outputs, expected "
                    f"{expected} (logits + {self._teacher_layers})")
            return x[0], cached, None
        return x, None, None

    def _augment(self, x, y, mask=None):
        if self.augmentation is None:
            return x, y, mask
        step = self.optimizer.iterations
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:  # distinct draws per replica
            step = step * ctx.num_replicas_in_sync + tf.cast(ctx.replica_id_in_sync_group,
                                                             step.dtype)
        if mask is None:
            x, y = augment_batch(x, y, self.augmentation, step)
            return x, y, None
        # labelled rows, then unlabelled rows, each augmented on its own (own draws)
        rows_l, rows_u = tf.where(mask > 0)[:, 0], tf.where(mask <= 0)[:, 0]
        x_l, y_l = augment_batch(tf.gather(x, rows_l), tf.gather(y, rows_l),
                                 self.augmentation, step)
        x_u, _ = augment_batch(tf.gather(x, rows_u), tf.gather(y, rows_u),
                               self.augmentation, -1 - tf.cast(step, tf.int64))
        y_u = tf.zeros_like(tf.gather(y, rows_u), dtype=y_l.dtype)
        mask = tf.concat([tf.ones_like(rows_l, tf.float32), tf.zeros_like(rows_u, tf.float32)],
                         axis=0)
        return tf.concat([x_l, x_u], axis=0), tf.concat([y_l, y_u], axis=0), mask

    def _compute_losses(self, x, y, sample_weight, training: bool, teacher_out=None,
                        label_mask=None):
        """Total loss (scaled for the global batch) and the per-component values to report.

        ``teacher_out``: precomputed ``[logits, *layers]`` of the teacher, or None to run it.
        ``label_mask``: ``[B]``, 1 for a labelled row, 0 for an unlabelled one (None: all
        labelled); the label loss averages over the labelled rows only.
        """
        student_out = self._student_features(x, training=training)
        student_out = student_out if isinstance(student_out, list) else [student_out]
        logits = student_out[0]
        if label_mask is None:
            per_example = tf.cast(self._per_example_student_loss(y, logits), tf.float32)
            student_loss = tf.nn.compute_average_loss(per_example, sample_weight=sample_weight)
            reports = {_LABEL_LOSS: tf.reduce_mean(per_example)}
        else:
            student_loss = self._masked_student_loss(y, logits, sample_weight, label_mask)
            reports = {_LABEL_LOSS: student_loss}
        total = self.student_loss_weight * student_loss
        if self._use_teacher:
            # with the distillation switched off, the labels get the whole weight
            active = tf.identity(self.distillation_active)
            total = (self.student_loss_weight
                     + (1.0 - self.student_loss_weight) * (1.0 - active)) * student_loss
            if teacher_out is None:
                teacher_out = self._teacher_features(x, training=False)
                teacher_out = teacher_out if isinstance(teacher_out, list) else [teacher_out]
            teacher_out = [tf.stop_gradient(t) for t in teacher_out]
            distill = 0.0
            for item, weight, name in zip(self.distillation_losses,
                                          self.distillation_loss_weights, self._loss_names):
                t = teacher_out[self._teacher_slots.get(item.teacher_layer_name, 0)]
                s = student_out[self._student_slots.get(item.student_layer_name, 0)]
                value, report = self._reduce(item, t, s, sample_weight)
                distill += weight * value
                reports[name] = report
            total += (1.0 - self.student_loss_weight) * active * distill
        reg = self.student.losses
        if reg:
            total += tf.nn.scale_regularization_loss(tf.add_n(reg))
        return total, logits, reports

    def _masked_student_loss(self, y, logits, sample_weight, label_mask):
        """Mean label loss over the labelled rows only: the unlabelled rows' logits and
        would-be labels are dropped before the loss is computed."""
        ctx = tf.distribute.get_replica_context()
        if ctx is not None and ctx.num_replicas_in_sync > 1:
            raise ConfigError("Distiller: batches with a label_mask (an unlabelled pool) run "
                              "on one device")
        rows = tf.where(label_mask > 0)[:, 0]
        per_example = tf.cast(self._per_example_student_loss(tf.gather(y, rows),
                                                             tf.gather(logits, rows)),
                              tf.float32)
        weight = tf.ones_like(per_example) if sample_weight is None else tf.cast(
            tf.reshape(tf.gather(sample_weight, rows), tf.shape(per_example)), tf.float32)
        count = tf.cast(tf.size(per_example), tf.float32)
        return tf.math.divide_no_nan(tf.reduce_sum(per_example * weight), count)

    @staticmethod
    def _reduce(item: DistillationLoss, t, s, sample_weight):
        """Scale a component so that summing gradients over replicas gives the global-batch loss."""
        if item.per_example:
            values = item.compute_loss(t, s)
            return (tf.nn.compute_average_loss(values, sample_weight=sample_weight),
                    tf.reduce_mean(values))
        ctx = tf.distribute.get_replica_context()
        replicas = ctx.num_replicas_in_sync if ctx is not None else 1
        if replicas > 1:  # a batch-wise loss must see the global batch
            # One collective for both (two can be ordered differently on each replica); SP
            # only needs each example flattened, so pack both into one [b, Dt + Ds] tensor.
            b = tf.shape(t)[0]
            t, s = tf.reshape(t, [b, -1]), tf.reshape(s, [b, -1])
            width = tf.shape(t)[1]
            both = ctx.all_gather(tf.concat([t, tf.cast(s, t.dtype)], axis=1), axis=0)
            t, s = both[:, :width], both[:, width:]
        value = item.compute_loss(t, s)
        return value / replicas, value

    def _update_trackers(self, total, reports, replicas_scale):
        # ``total`` is this replica's share of the global-batch loss; report the full value.
        self.total_loss_tracker.update_state(total * replicas_scale)
        self.student_loss_tracker.update_state(reports[_LABEL_LOSS])
        for tracker in self.component_trackers:
            tracker.update_state(reports[tracker.name])

    def _results(self, include_auprc: bool) -> dict:
        out = {m.name: m.result() for m in self.metrics if include_auprc or m is not self.auprc}
        return out

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, cached, mask = self._split_inputs(x)
        if cached is not None and self.augmentation is not None:
            raise ConfigError("Distiller: cached teacher outputs belong to un-augmented inputs; "
                              "with augmentation the teacher must see each augmented batch")
        if mask is not None and sample_weight is not None and self.augmentation is not None:
            raise ConfigError("Distiller: sample weights with a label_mask and augmentation "
                              "are not supported (augmentation reorders the rows)")
        x, y, mask = self._augment(x, y, mask)
        with tf.GradientTape() as tape:
            total, logits, reports = self._compute_losses(x, y, sample_weight, training=True,
                                                          teacher_out=cached, label_mask=mask)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        self._update_trackers(total, reports, self.distribute_strategy.num_replicas_in_sync)
        self.compiled_metrics.update_state(y, logits, self._metric_weight(sample_weight, mask))
        return self._results(include_auprc=False)

    @staticmethod
    def _metric_weight(sample_weight, mask):
        """Weights for label metrics: the unlabelled rows count zero."""
        if mask is None:
            return sample_weight
        if sample_weight is None:
            return mask
        return tf.cast(tf.reshape(sample_weight, tf.shape(mask)), tf.float32) * mask

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, cached, mask = self._split_inputs(x)
        total, logits, reports = self._compute_losses(x, y, sample_weight, training=False,
                                                      teacher_out=cached, label_mask=mask)
        self._update_trackers(total, reports, self.distribute_strategy.num_replicas_in_sync)
        weight = self._metric_weight(sample_weight, mask)
        self.auprc.update_state(y, logits, weight)
        self.compiled_metrics.update_state(y, logits, weight)
        return self._results(include_auprc=True)

    def get_config(self):
        raise NotImplementedError(
            "Distiller is a training wrapper: save distiller.student (student.save(path)) and the "
            "teacher separately; checkpoints with save_weights_only=True work"
        )


class StopDistillation(keras.callbacks.Callback):
    """Distil for the first ``epochs`` epochs, then train on the labels alone.

    Early-stopped distillation (Cho & Hariharan, "On the Efficacy of Knowledge Distillation",
    ICCV 2019): a student much smaller than its teacher cannot follow it to the end of
    training, and the distillation terms then compete with the labels for its capacity
    (measured for IUSP: ``docs/api.md``, Why these defaults).

    The switch is set at the start of every epoch from the epoch's index, so a resumed run
    (``BackupAndRestore``) switches at the same epoch as an uninterrupted one. The distillation
    terms are still computed and logged after the switch, which shows how far the student
    drifts from the teacher once it is free.
    """

    def __init__(self, distiller: Distiller, epochs: int):
        super().__init__()
        if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
            raise ConfigError(f"StopDistillation: epochs={epochs!r}: expected an integer >= 1")
        if distiller.distillation_active is None:
            raise ConfigError("StopDistillation: the Distiller has no distillation terms to stop")
        self.distiller = distiller
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.distiller.distillation_active.assign(1.0 if epoch < self.epochs else 0.0)
