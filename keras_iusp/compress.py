"""Pruning and quantisation-aware training (TensorFlow Model Optimization), teacher-guided.

Both fine-tuning phases train through :class:`keras_iusp.Distiller`, so the teacher's KD and IUSP
signals keep guiding the student while weights are removed and while it learns to live with int8
rounding.

* Pruning: ``prune_low_magnitude`` with a polynomial schedule to ``target_sparsity``, then
  ``strip_pruning``.
* QAT: every layer TFMOT's default 8-bit scheme supports is annotated; when the model was pruned
  the prune-preserving scheme keeps the zeros. **LSTM layers are not annotated** (TFMOT has no
  quantize config for them): they train in float here and the TFLite converter quantises them
  to the fused int8 ``UNIDIRECTIONAL_SEQUENCE_LSTM`` kernel by calibration on the representative
  dataset. The feature standardisation layer is annotated with a no-op config (it becomes the
  int8 SUB/MUL pair at conversion).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from keras_iusp.distill.distiller import Distiller
from keras_iusp.features.cache import FeatureCache
from keras_iusp.models import MODEL_SPECS
from keras_iusp.models.layers import FeatureStandardization
from keras_iusp.train.datasets import training_datasets
from keras_iusp.train.recipe import DistillConfig, distillation_losses
from keras_iusp.train.resume import WORK_DIRNAME, finish, fit_resumable
from keras_iusp.train.saved_runs import TrainedModel, load_run, save_run
from keras_iusp.utils.atomic import atomic_path, atomic_write_text
from keras_iusp.utils.errors import ConfigError
from keras_iusp.utils.provenance import provenance

QUANT = tfmot.quantization.keras
SPARSITY = tfmot.sparsity.keras


_no_autograph = tf.autograph.experimental.do_not_convert


@keras.utils.register_keras_serializable(package="keras_iusp")
class NoOpQuantizeConfig(QUANT.QuantizeConfig):
    """Leave a layer's weights and outputs unquantised during QAT (the converter handles them).

    The methods are kept out of autograph: they are trivial, and a benchmark run saw autograph
    dispatch one of these look-alike methods in place of another (a ``TypeError`` on argument
    count inside ``QuantizeWrapperV2.call``).
    """

    @_no_autograph
    def get_weights_and_quantizers(self, layer):
        return []

    @_no_autograph
    def get_activations_and_quantizers(self, layer):
        return []

    @_no_autograph
    def set_quantize_weights(self, layer, quantize_weights):
        if quantize_weights:
            raise ValueError("NoOpQuantizeConfig quantises no weights")

    @_no_autograph
    def set_quantize_activations(self, layer, quantize_activations):
        if quantize_activations:
            raise ValueError("NoOpQuantizeConfig quantises no activations")

    @_no_autograph
    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {}


def custom_objects() -> dict[str, Any]:
    """Objects needed to load a QAT model saved by :func:`compress`."""
    return {"NoOpQuantizeConfig": NoOpQuantizeConfig,
            "FeatureStandardization": FeatureStandardization}


@dataclass
class CompressConfig:
    """Settings of :func:`compress`; distillation weights come from :class:`DistillConfig`."""

    target_sparsity: float = 0.5
    prune_epochs: int = 6
    qat_epochs: int = 3
    learning_rate: float = 5e-4
    batch_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.target_sparsity < 1.0:
            raise ConfigError(f"target_sparsity={self.target_sparsity!r}: expected 0 <= s < 1")
        for name in ("prune_epochs", "qat_epochs"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected an integer >= 0")


def copy_model(model: keras.Model) -> keras.Model:
    """A new model with ``model``'s architecture and a copy of its weights (no shared layers)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def resolve_layer_name(model: keras.Model, name: str) -> str:
    """The name of ``name`` after TFMOT wrapped it (``quant_x``, ``prune_low_magnitude_x``)."""
    names = {layer.name for layer in model.layers}
    for candidate in (name, f"quant_{name}", f"prune_low_magnitude_{name}"):
        if candidate in names:
            return candidate
    raise ConfigError(f"model {model.name!r} has no layer {name!r} (nor a TFMOT-wrapped one)")


def sparsity_report(model: keras.Model) -> dict[str, float]:
    """Fraction of exact zeros in each kernel (conv, depthwise, dense, LSTM), keyed by layer."""
    report = {}
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if "kernel" in short and not short.endswith(("_min", "_max")):
                report[f"{layer.name}/{short}"] = float(np.mean(weight.numpy() == 0.0))
    return report


def overall_sparsity(model: keras.Model) -> float:
    """Zeros over all kernel entries of the model (what the flash saving depends on)."""
    zeros = total = 0
    for layer in model.layers:
        for weight in layer.weights:
            short = weight.name.split("/")[-1].split(":")[0]
            if "kernel" in short and not short.endswith(("_min", "_max")):
                values = weight.numpy()
                zeros += int(np.sum(values == 0.0))
                total += values.size
    return zeros / max(total, 1)


def _fine_tune(student, cache: FeatureCache, teacher: TrainedModel | None,
               distill_config: DistillConfig, family: str, epochs: int, learning_rate: float,
               batch_size: int, seed: int, callbacks: list, verbose, work_dir: Path,
               keep_best: bool) -> dict:
    """Train ``student`` through the Distiller with the run's distillation method."""

    items, weights, student_weight = distillation_losses(distill_config, family)
    if items and teacher is None:
        raise ConfigError(f"method {distill_config.method!r} needs the teacher run")
    for item in items:
        if item.student_layer_name:
            item.student_layer_name = resolve_layer_name(student, item.student_layer_name)
    distiller = Distiller(teacher=teacher.model if items else None, student=student,
                          distillation_losses=items, distillation_loss_weights=weights,
                          student_loss_weight=student_weight)
    distiller.compile(optimizer=keras.optimizers.Adam(learning_rate))
    train, val = training_datasets(cache, batch_size, seed)
    history = fit_resumable(distiller, student, train, val, epochs=epochs, verbose=verbose,
                            work_dir=work_dir, callbacks=callbacks, keep_best=keep_best)
    metrics = distiller.evaluate(val, verbose=0, return_dict=True) if val is not None else {}
    return {"history": history, "val": {k: float(v) for k, v in metrics.items()}}


def prune(student: keras.Model, cache: FeatureCache, teacher: TrainedModel | None,
          distill_config: DistillConfig, family: str, config: CompressConfig,
          verbose="auto", work_dir: Path | None = None) -> tuple[keras.Model, dict]:
    """Prune to ``config.target_sparsity`` while distilling, then strip the pruning wrappers."""
    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = int(np.ceil(len(cache.split("train")[0]) / config.batch_size))
    end_step = max(1, steps_per_epoch * max(1, config.prune_epochs - 1))
    schedule = SPARSITY.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=config.target_sparsity, begin_step=0,
        end_step=end_step, frequency=max(1, steps_per_epoch // 2))
    pruned = SPARSITY.prune_low_magnitude(student, pruning_schedule=schedule)
    work_dir = Path(work_dir or tempfile.mkdtemp(prefix="keras-iusp-prune-"))
    log = _fine_tune(pruned, cache, teacher, distill_config, family, config.prune_epochs,
                     config.learning_rate, config.batch_size, config.seed,
                     [SPARSITY.UpdatePruningStep()], verbose, work_dir, keep_best=False)
    stripped = SPARSITY.strip_pruning(pruned)
    log["sparsity"] = sparsity_report(stripped)
    return stripped, log


def quantize_annotated(model: keras.Model, preserve_sparsity: bool) -> keras.Model:
    """QAT model: supported layers annotated, LSTMs left float (see module docstring)."""

    def annotate(layer):
        if isinstance(layer, keras.layers.LSTM):
            return layer
        if isinstance(layer, FeatureStandardization):
            return QUANT.quantize_annotate_layer(layer, quantize_config=NoOpQuantizeConfig())
        return QUANT.quantize_annotate_layer(layer)

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    scheme = (tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
              if preserve_sparsity else QUANT.default_8bit.Default8BitQuantizeScheme())
    with QUANT.quantize_scope(custom_objects()):
        return QUANT.quantize_apply(annotated, scheme)


class KeepZeros(keras.callbacks.Callback):
    """Re-apply pruning masks to weights that the prune-preserving QAT scheme does not cover.

    LSTM layers are left un-annotated during QAT (module docstring), so TFMOT's prune-preserving
    scheme never sees their kernels and plain fine-tuning would refill the zeros pruning made
    (measured: 50 % -> 0 % LSTM kernel sparsity after one QAT epoch). The mask is taken when
    training starts and applied after every batch.
    """

    def __init__(self, weights: list) -> None:
        super().__init__()
        self._weights = weights
        self._masks: list[np.ndarray] = []

    def on_train_begin(self, logs=None):
        self._masks = [(w.numpy() != 0.0).astype(w.dtype.as_numpy_dtype) for w in self._weights]

    def on_train_batch_end(self, batch, logs=None):
        for weight, mask in zip(self._weights, self._masks):
            weight.assign(weight * mask)


def _unannotated_kernels(model: keras.Model) -> list:
    """Kernel variables of the layers QAT leaves un-annotated (LSTMs)."""
    return [w for layer in model.layers if isinstance(layer, keras.layers.LSTM)
            for w in layer.weights if "kernel" in w.name.split("/")[-1]]


def layer_notes(model: keras.Model) -> dict[str, str]:
    """How pruning and QAT treated each layer with a kernel in the (pruned, float) student.

    These are the TFMOT 0.8 limits the README describes, stated per layer so that a reader of
    ``compress_report.json`` sees why a layer's sparsity or precision differs from the target.
    """
    notes = {}
    for layer in model.layers:
        if not any("kernel" in w.name.split("/")[-1] for w in layer.weights):
            continue  # batch norm, feature standardisation: nothing to prune
        if isinstance(layer, keras.layers.LSTM):
            notes[layer.name] = (
                "LSTM: kernel and recurrent kernel pruned (zeros kept through QAT by a mask); "
                "not QAT-annotated (TFMOT has no LSTM quantize config), so it trains in float "
                "and the converter quantises it to the fused int8 UNIDIRECTIONAL_SEQUENCE_LSTM "
                "by calibration")
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            notes[layer.name] = (
                "depthwise kernel not pruned (TFMOT 0.8 lists no prunable weight for "
                "DepthwiseConv2D); QAT-annotated, int8")
        else:
            notes[layer.name] = f"{type(layer).__name__}: kernel pruned; QAT-annotated, int8"
    return notes


def qat(model: keras.Model, cache: FeatureCache, teacher: TrainedModel | None,
        distill_config: DistillConfig, family: str, config: CompressConfig,
        preserve_sparsity: bool, verbose="auto",
        work_dir: Path | None = None) -> tuple[keras.Model, dict]:
    """Quantisation-aware fine-tuning through the Distiller."""
    keras.utils.set_random_seed(config.seed + 1)
    quantized = quantize_annotated(model, preserve_sparsity)
    work_dir = Path(work_dir or tempfile.mkdtemp(prefix="keras-iusp-qat-"))
    callbacks = [KeepZeros(_unannotated_kernels(quantized))] if preserve_sparsity else []
    log = _fine_tune(quantized, cache, teacher, distill_config, family, config.qat_epochs,
                     config.learning_rate / 2, config.batch_size, config.seed, callbacks,
                     verbose, work_dir, keep_best=True)
    log["sparsity"] = sparsity_report(quantized)
    return quantized, log


def compress(student_run: TrainedModel, cache: FeatureCache, out: str | os.PathLike,
             config: CompressConfig | None = None, teacher_run: TrainedModel | None = None,
             verbose="auto", overwrite: bool = False) -> Path:
    """Prune + QAT a distilled student and write a compressed run directory.

    ``student_run.model`` is left as it was: the work is done on a copy (TFMOT's pruning and QAT
    wrappers hold the layers they wrap, so training them in place would retrain the caller's
    model).

    The directory holds ``model.keras`` (the pruned float model, which the float TFLite comes
    from), ``qat.weights.h5`` (the QAT model's weights and fake-quant ranges), ``model_info.json``
    and ``compress_report.json``.
    """

    config = config or CompressConfig()
    info = dict(student_run.info)
    name = info["model_name"]
    family = MODEL_SPECS[name].family
    hyper = info.get("hyperparameters", {})
    distill_config = DistillConfig(**{k: hyper[k] for k in DistillConfig.__dataclass_fields__
                                      if k in hyper})
    trained_method = distill_config.method
    if distill_config.distill_epochs and distill_config.distill_epochs < distill_config.epochs:
        # The student finished its training on the labels alone (StopDistillation), so its
        # pruning and QAT fine-tuning do too, rather than pulling it back to the teacher.
        distill_config = replace(distill_config, method="baseline")
    if teacher_run is None and distill_config.method != "baseline" and info.get("teacher"):
        teacher_run = load_run(info["teacher"])

    out = Path(out)
    if (out / "compress_report.json").is_file() and not overwrite:
        raise ConfigError(f"{out} already holds a finished compression; pass overwrite=True "
                          "(CLI: --overwrite) to run it again")
    if overwrite and out.exists():
        shutil.rmtree(out)
    work = out / WORK_DIRNAME
    work.mkdir(parents=True, exist_ok=True)
    model = copy_model(student_run.model)
    report: dict[str, Any] = {"config": asdict(config), "method": trained_method,
                              "fine_tune_method": distill_config.method}
    pruned_path = work / "pruned.keras"
    if config.target_sparsity > 0 and config.prune_epochs > 0:
        if pruned_path.is_file():  # resumed: the pruning phase finished before the interruption
            model = keras.models.load_model(pruned_path, compile=False)
            report["pruning"] = json.loads((work / "pruning.json").read_text())
        else:
            model, report["pruning"] = prune(model, cache, teacher_run, distill_config, family,
                                             config, verbose, work_dir=work / "prune")
            atomic_write_text(work / "pruning.json", json.dumps(report["pruning"]))
            with atomic_path(pruned_path) as tmp:  # written last: marks the phase as done
                model.save(tmp, overwrite=True)
    float_model = model
    report["layers"] = layer_notes(float_model)
    quantized, report["qat"] = qat(model, cache, teacher_run, distill_config, family, config,
                                   preserve_sparsity=config.target_sparsity > 0, verbose=verbose,
                                   work_dir=work / "qat")
    info.update({"role": "compressed", "source_run": str(student_run.path),
                 "provenance": provenance(),
                 "compression": {**asdict(config),
                                 "qat_preserve_sparsity": config.target_sparsity > 0}})
    # TFMOT's QAT wrappers do not round-trip through the .keras format, so the QAT model is
    # stored as weights and rebuilt from the pruned float model by load_compressed().
    save_run(out, float_model, info)
    with atomic_path(out / "qat.weights.h5") as tmp:
        quantized.save_weights(tmp)
    atomic_write_text(out / "compress_report.json", json.dumps(report, indent=1))
    finish(work)
    return out


def load_compressed(path: str | os.PathLike) -> tuple[keras.Model, keras.Model, dict]:
    """``(qat_model, float_model, info)`` of a compressed run directory."""

    run = load_run(path)
    preserve = run.info.get("compression", {}).get("qat_preserve_sparsity", False)
    quantized = quantize_annotated(run.model, preserve)
    quantized.load_weights(run.path / "qat.weights.h5")
    return quantized, run.model, run.info
