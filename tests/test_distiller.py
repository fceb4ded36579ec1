"""Distiller: losses add up as documented, teacher stays frozen, callbacks and errors work."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

import keras_iusp
from keras_iusp.distill import losses
from keras_iusp.models import build_model
from keras_iusp.utils.errors import ConfigError

T, MELS, C = 48, 16, 8


def _data(n=48, seed=0):
    """Features where class k is present iff mel band 2k carries energy in some frames."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, C)) < 0.3).astype(np.float32)
    x = rng.normal(0, 0.3, (n, T, MELS)).astype(np.float32)
    for i in range(n):
        for k in np.flatnonzero(y[i]):
            start = rng.integers(0, T - 12)
            x[i, start:start + 12, 2 * k] += 3.0
    return x, y


@pytest.fixture(scope="module")
def models():
    keras.utils.set_random_seed(1)
    teacher = build_model("teacher_cnn", (T, MELS))
    student = build_model("cnn_lstm_xs", (T, MELS))
    return teacher, student


def _distiller(teacher, student, **kwargs):
    args = dict(
        distillation_losses=[
            keras_iusp.LogitsDistillation(temperature=3.0),
            keras_iusp.IUSPDistillation(teacher_layer_name="embedding", student_layer_name="lstm"),
            keras_iusp.SPDistillation(teacher_layer_name="block2", student_layer_name="pool1"),
        ],
        distillation_loss_weights=[1.0, 2.0, 0.5],
        student_loss_weight=0.3,
    )
    args.update(kwargs)
    d = keras_iusp.Distiller(teacher=teacher, student=student, **args)
    d.compile(optimizer=keras.optimizers.Adam(1e-3))
    return d


def test_evaluate_matches_manual_formula(models):
    teacher, student = models
    x, y = _data(16)
    d = _distiller(teacher, student)
    got = d.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    feats_t = keras.Model(teacher.input, [teacher.output, teacher.get_layer("embedding").output,
                                          teacher.get_layer("block2").output])(x, training=False)
    feats_s = keras.Model(student.input, [student.output, student.get_layer("lstm").output,
                                          student.get_layer("pool1").output])(x, training=False)
    bce = float(tf.reduce_mean(losses.bce(y, feats_s[0])))
    kd = float(tf.reduce_mean(losses.kd_loss(feats_t[0], feats_s[0], 3.0)))
    iusp = float(tf.reduce_mean(losses.iusp_loss(feats_t[1], feats_s[1])))
    sp = float(losses.sp_loss(feats_t[2], feats_s[2]))
    expected = 0.3 * bce + 0.7 * (kd + 2.0 * iusp + 0.5 * sp)
    for key, value in {"student_loss": bce, "kd": kd, "iusp": iusp, "sp": sp,
                       "loss": expected}.items():
        assert got[key] == pytest.approx(value, rel=1e-4), key
    assert 0.0 <= got["auprc"] <= 1.0


def test_fit_lowers_loss_keeps_teacher_frozen_and_reports_components(models, tmp_path):
    teacher, student = models
    x, y = _data(64)
    d = _distiller(teacher, student)
    before = [w.numpy().copy() for w in teacher.weights]
    first = d.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)["loss"]
    history = d.fit(
        x, y, batch_size=16, epochs=3, verbose=0, validation_data=(x[:16], y[:16]),
        callbacks=[
            keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt.weights.h5"),
                                            save_weights_only=True),
            keras.callbacks.EarlyStopping(monitor="val_auprc", mode="max", patience=5),
            keras.callbacks.TensorBoard(str(tmp_path / "tb")),
        ],
    )
    after = d.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)["loss"]
    assert after < first
    for key in ("loss", "student_loss", "kd", "iusp", "sp", "val_loss", "val_auprc", "val_iusp"):
        assert key in history.history, key
    for w_before, w_after in zip(before, teacher.weights):
        np.testing.assert_array_equal(w_before, w_after.numpy())
    assert (tmp_path / "ckpt.weights.h5").is_file() and any((tmp_path / "tb").iterdir())


def test_student_saved_and_loaded_on_its_own(models, tmp_path):
    teacher, student = models
    x, _ = _data(4)
    path = tmp_path / "student.keras"
    student.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), student.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)


def test_baseline_runs_without_teacher():
    student = build_model("dscnn_xs", (T, MELS))
    d = keras_iusp.Distiller(student=student, student_loss_weight=1.0)
    d.compile(optimizer="adam")
    x, y = _data(16)
    hist = d.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert set(hist.history) == {"loss", "student_loss"}
    assert hist.history["loss"][0] == pytest.approx(hist.history["student_loss"][0], rel=1e-5)


def test_several_iusp_pairs_get_their_own_metric(models):
    teacher, student = models
    d = _distiller(teacher, student, distillation_losses=[
        keras_iusp.IUSPDistillation("embedding", "lstm"),
        keras_iusp.IUSPDistillation("block3", "pool2")], distillation_loss_weights=None)
    x, y = _data(8)
    out = d.evaluate(x, y, verbose=0, return_dict=True)
    assert "iusp" in out and "iusp_2" in out and out["iusp"] != out["iusp_2"]


def test_bad_layer_names_list_valid_choices(models):
    teacher, student = models
    with pytest.raises(ConfigError, match=r"teacher model 'teacher_cnn' has no layer 'nope'.*"
                                          r"valid teacher layers: .*embedding"):
        keras_iusp.Distiller(teacher, student,
                             [keras_iusp.IUSPDistillation("nope", "lstm")])
    with pytest.raises(ConfigError, match=r"student layer 'logits' has no time axis.*lstm"):
        keras_iusp.Distiller(teacher, student,
                             [keras_iusp.IUSPDistillation("embedding", "logits")])
    with pytest.raises(ConfigError, match="one weight per loss"):
        keras_iusp.Distiller(teacher, student, [keras_iusp.LogitsDistillation()],
                             distillation_loss_weights=[1.0, 2.0])
    with pytest.raises(ConfigError, match="student_loss_weight"):
        keras_iusp.Distiller(teacher, student, student_loss_weight=1.5)


def test_mismatched_feature_shapes_rejected(models):
    teacher, _ = models
    other = build_model("cnn_lstm_xs", (T, MELS + 8))
    with pytest.raises(ConfigError, match="same feature config"):
        keras_iusp.Distiller(teacher, other, [keras_iusp.LogitsDistillation()])


def test_switched_off_distillation_is_the_label_loss_alone(models):
    """After StopDistillation's switch the total is BCE at full weight (numpy-independent of
    the distillation terms), and one step moves the student exactly as a baseline step does."""
    teacher, student = models
    x, y = _data(16)
    d = _distiller(teacher, student)
    d.distillation_active.assign(0.0)
    got = d.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    logits = student(x, training=False).numpy().astype(np.float64)
    p = 1.0 / (1.0 + np.exp(-logits))
    bce = -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert got["loss"] == pytest.approx(bce, rel=1e-4)
    assert got["kd"] > 0 and got["iusp"] > 0  # still measured, no longer trained

    # plain SGD: its step is proportional to the gradient, so the loss's scale counts too
    d.compile(optimizer=keras.optimizers.SGD(0.1))
    start = [w.numpy().copy() for w in student.weights]
    d.train_on_batch(x, y)
    switched_off = [w.numpy().copy() for w in student.weights]
    for w, v in zip(student.weights, start):
        w.assign(v)
    base = keras_iusp.Distiller(student=student, student_loss_weight=1.0)
    base.compile(optimizer=keras.optimizers.SGD(0.1))
    base.train_on_batch(x, y)
    for a, b in zip(switched_off, student.weights):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)
    for w, v in zip(student.weights, start):
        w.assign(v)


def test_stop_distillation_switches_at_the_epoch_and_again_on_resume(models, tmp_path):
    teacher, student = models
    x, y = _data(32)
    d = _distiller(teacher, student)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(float(d.distillation_active.numpy()))

    stop = keras_iusp.StopDistillation(d, epochs=2)
    d.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[stop, Record()])
    assert seen == [1.0, 1.0, 0.0, 0.0]
    # a resumed run starts at a later epoch and must switch as the uninterrupted one did
    d.distillation_active.assign(1.0)
    seen.clear()
    d.fit(x, y, batch_size=16, epochs=4, initial_epoch=3, verbose=0, callbacks=[stop, Record()])
    assert seen == [0.0]
    with pytest.raises(ConfigError, match="epochs=0"):
        keras_iusp.StopDistillation(d, epochs=0)
    with pytest.raises(ConfigError, match="no distillation terms"):
        keras_iusp.StopDistillation(keras_iusp.Distiller(student=student), epochs=1)
