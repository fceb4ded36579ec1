"""keras_iusp.distill.keras3: IUSP/SP as keras.distillation losses inside a Keras 3 Distiller."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")
if keras.config.backend() != "tensorflow":  # pragma: no cover - the project runs on TF
    pytest.skip("the Keras 3 adapter needs the tensorflow backend", allow_module_level=True)

import tensorflow as tf  # noqa: E402

from keras_iusp.distill import losses  # noqa: E402
from keras_iusp.distill.keras3 import IUSPDistillation, SPDistillation  # noqa: E402
from keras_iusp.utils.errors import ConfigError  # noqa: E402

T_FRAMES, N_MELS, N_CLASSES = 16, 8, 8


def make_teacher():
    inp = keras.Input((T_FRAMES, N_MELS), name="mels")
    x = keras.layers.Conv1D(16, 3, padding="same", activation="relu", name="t_conv1")(inp)
    x = keras.layers.Conv1D(16, 3, padding="same", activation="relu", name="t_conv2")(x)
    x = keras.layers.GlobalAveragePooling1D(name="t_pool")(x)
    out = keras.layers.Dense(N_CLASSES, name="t_logits")(x)  # sigmoid applied in the loss
    return keras.Model(inp, out, name="teacher")


def make_student():
    inp = keras.Input((T_FRAMES, N_MELS), name="mels")
    # stride 2: the student's feature map has 8 frames against the teacher's 16
    x = keras.layers.Conv1D(4, 3, strides=2, padding="same", activation="relu",
                            name="s_conv")(inp)
    x = keras.layers.Dense(6, activation="relu", name="s_frame_dense")(x)  # [B, 8, 6]
    x = keras.layers.GlobalAveragePooling1D(name="s_pool")(x)
    out = keras.layers.Dense(N_CLASSES, name="s_logits")(x)
    return keras.Model(inp, out, name="student")


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(32, T_FRAMES, N_MELS)).astype(np.float32)
    y = (rng.uniform(size=(32, N_CLASSES)) < 0.3).astype(np.float32)
    return x, y


def features(model, layer_name, x):
    return keras.Model(model.input, model.get_layer(layer_name).output)(x, training=False)


def test_distiller_fits_with_logits_and_iusp_losses(data):
    keras.utils.set_random_seed(1)
    x, y = data
    teacher, student = make_teacher(), make_student()
    teacher_before = [w.copy() for w in teacher.get_weights()]
    student_before = [w.copy() for w in student.get_weights()]
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=[
            keras.distillation.LogitsDistillation(temperature=2.0),
            IUSPDistillation(teacher_layer_name="t_conv2", student_layer_name="s_frame_dense"),
            SPDistillation(teacher_layer_name="t_conv1", student_layer_name="s_conv"),
        ],
        distillation_loss_weights=[1.0, 10.0, 1.0],
        student_loss_weight=0.5,
    )
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      jit_compile=False)
    history = distiller.fit(x, y, batch_size=8, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    for key, values in history.history.items():
        assert np.all(np.isfinite(values)), (key, values)
    # the teacher is frozen; the student learns
    for before, after in zip(teacher_before, teacher.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    student_after = student.get_weights()
    assert any(not np.array_equal(b, a) for b, a in zip(student_before, student_after, strict=True))


def test_distiller_iusp_term_equals_losses_iusp_mean(data):
    x, y = data
    x = x[:8]
    teacher, student = make_teacher(), make_student()
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=[IUSPDistillation(teacher_layer_name="t_conv2",
                                              student_layer_name="s_conv")],
        student_loss_weight=0.0,
    )
    distiller.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(from_logits=True))
    total = distiller.compute_loss(x=tf.constant(x), y=tf.constant(y[:8]))
    t_feats = features(teacher, "t_conv2", x)
    s_feats = features(student, "s_conv", x)
    assert t_feats.shape == (8, 16, 16) and s_feats.shape == (8, 8, 4)
    expected = float(tf.reduce_mean(losses.iusp_loss(t_feats, s_feats)))
    assert expected > 0
    np.testing.assert_allclose(float(total), expected, rtol=1e-5)


def test_adapter_values_equal_the_tf_functions():
    rng = np.random.default_rng(3)
    t = tf.constant(rng.normal(size=(4, 12, 5, 3)).astype(np.float32))
    s = tf.constant(rng.normal(size=(4, 20, 6)).astype(np.float32))
    iusp = IUSPDistillation(teacher_layer_name="a", student_layer_name="b").compute_loss(t, s)
    assert iusp.shape == ()
    np.testing.assert_allclose(float(iusp), float(tf.reduce_mean(losses.iusp_loss(t, s))),
                               rtol=1e-6)
    sp = SPDistillation(teacher_layer_name="a", student_layer_name="b").compute_loss(t, s)
    assert sp.shape == ()
    np.testing.assert_allclose(float(sp), float(losses.sp_loss(t, s)), rtol=1e-6)


@pytest.mark.parametrize("form", losses.IUSP_FORMS)
def test_adapter_forms_match_the_tf_functions_values_and_gradients(form):
    rng = np.random.default_rng(5)
    t = tf.constant(np.maximum(rng.normal(size=(3, 14, 6)), 0).astype(np.float32))
    s = tf.constant(rng.normal(size=(3, 9, 4)).astype(np.float32))
    adapter = IUSPDistillation("a", "b", form=form)
    assert adapter.get_config()["form"] == form and f"form='{form}'" in repr(adapter)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(s)
        got = adapter.compute_loss(t, s)
        want = tf.reduce_mean(losses.iusp_loss(t, s, implementation="reference", form=form))
    np.testing.assert_allclose(float(got), float(want), rtol=1e-5)
    np.testing.assert_allclose(tape.gradient(got, s).numpy(), tape.gradient(want, s).numpy(),
                               rtol=1e-4, atol=1e-7)
    assert IUSPDistillation("a", "b").form == losses.DEFAULT_IUSP_FORM
    with pytest.raises(ConfigError, match="form"):
        IUSPDistillation("a", "b", form="cosine_similarity")


def test_adapter_implementation_gives_the_same_value():
    rng = np.random.default_rng(6)
    t = tf.constant(rng.normal(size=(2, 40, 6)).astype(np.float32))
    s = tf.constant(rng.normal(size=(2, 20, 4)).astype(np.float32))
    for form in losses.IUSP_FORMS:
        ref = IUSPDistillation("a", "b", form=form, implementation="reference").compute_loss(t, s)
        low = IUSPDistillation("a", "b", form=form, implementation="lowrank").compute_loss(t, s)
        np.testing.assert_allclose(float(low), float(ref), rtol=1e-5)
    with pytest.raises(ConfigError, match="implementation"):
        IUSPDistillation("a", "b", implementation="fast")


def test_adapter_gradients_reach_only_the_student():
    rng = np.random.default_rng(4)
    t = tf.constant(rng.normal(size=(2, 12, 4)).astype(np.float32))
    s = tf.constant(rng.normal(size=(2, 5, 3)).astype(np.float32))
    for loss in (IUSPDistillation("a", "b"), SPDistillation("a", "b")):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([t, s])
            value = loss.compute_loss(t, s)
        assert tape.gradient(value, t) is None
        assert np.any(tape.gradient(value, s).numpy())


def test_config_round_trip_through_keras_serialization():
    loss = IUSPDistillation(teacher_layer_name="t_conv2", student_layer_name="s_conv",
                            form="centered", implementation="lowrank")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is IUSPDistillation
    assert restored.get_config() == loss.get_config()
    assert (restored.form, restored.implementation) == ("centered", "lowrank")
    restored = SPDistillation.from_config(SPDistillation("x", "y").get_config())
    assert (restored.teacher_layer_name, restored.student_layer_name) == ("x", "y")


def test_single_layer_name_is_rejected():
    with pytest.raises(ValueError, match="both teacher_layer_name and student_layer_name"):
        IUSPDistillation(teacher_layer_name="t_conv2")


def test_unknown_layer_name_is_reported_by_the_distiller():
    with pytest.raises(ValueError, match="In student model"):
        keras.distillation.Distiller(
            teacher=make_teacher(), student=make_student(),
            distillation_losses=[IUSPDistillation("t_conv2", "no_such_layer")])


def test_non_tensorflow_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(keras.config, "backend", lambda: "jax")
    with pytest.raises(ConfigError, match="tensorflow"):
        IUSPDistillation("a", "b")
