"""The low-rank IUSP (``iusp_loss_lowrank``) against the reference, and ``implementation="auto"``.

The reference evaluated in float64 is the ground truth here: the float32 reference has its own
rounding error (~1e-7 relative), and the low-rank form's must stay within 1e-4 of the truth for
values and for gradients w.r.t. the student's features, in both small- and large-loss regimes.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_iusp.distill import iusp_fast, losses
from keras_iusp.distill.distillation import IUSPDistillation
from keras_iusp.utils.errors import ConfigError

RTOL = 1e-4


@pytest.fixture
def rng():
    return np.random.default_rng(20201030)


# --------------------------------------------------------------------------- realistic features


def relu_conv(rng, b, t, *feature_shape, offset=0.3):
    """ReLU activations of a conv map: slowly varying in time, a per-channel offset, dead units."""
    d = int(np.prod(feature_shape))
    x = np.cumsum(rng.normal(size=(b, t, d)), axis=1) * 0.15 + rng.normal(offset, 1, (b, 1, d))
    x[:, :, rng.random(d) < 0.1] = -1.0  # dead units: all-zero columns after the ReLU
    return np.maximum(x, 0).reshape(b, t, *feature_shape)


def lstm_like(rng, b, t, d):
    """Signed, bounded, temporally smooth activations (an LSTM's tanh output)."""
    x = np.cumsum(rng.normal(size=(b, t, d)), axis=1) * 0.2 + rng.normal(size=(b, 1, d))
    return np.tanh(x)


def smooth_relu(rng, b, t, d):
    """ReLU of slow sinusoids: features smooth enough that resampling barely changes the map."""
    phase = np.linspace(0, 2 * np.pi, t)[None, :, None, None]
    freq = np.array([0.5, 1.0, 1.5])[None, None, None, :]
    amp = rng.normal(size=(b, 1, d, 3))
    shift = rng.uniform(0, 2 * np.pi, (b, 1, d, 3))
    return np.maximum((amp * np.sin(freq * phase + shift)).sum(-1) + rng.normal(0.5, 1, (b, 1, d)),
                      0)


def near_copy(rng, teacher, t_s, d_s, noise):
    """A student whose similarity map is close to the teacher's: the teacher's frames resampled
    to ``t_s`` frames on the half-pixel grid, mapped by orthonormal columns into ``d_s >= D_t``
    features (which keeps ``Q Qᵀ``) and perturbed by relative noise."""
    b, t_t = teacher.shape[:2]
    flat = teacher.reshape(b, t_t, -1).astype(np.float64)
    embed, _ = np.linalg.qr(rng.normal(size=(d_s, flat.shape[-1])))  # [d_s, D_t], orthonormal
    frames = np.einsum("st,btd->bsd", losses.bilinear_resize_matrix(t_t, t_s), flat)
    return (frames * (1 + noise * rng.normal(size=frames.shape))) @ embed.T


# --------------------------------------------------------------------------- helpers


def value_and_grad(fn, teacher, student):
    t, s = tf.constant(teacher), tf.constant(student)
    with tf.GradientTape() as tape:
        tape.watch(s)
        values = fn(t, s)
        total = tf.reduce_sum(values)
    return values.numpy().astype(np.float64), tape.gradient(total, s).numpy().astype(np.float64)


FORMS = losses.IUSP_FORMS


def reference64(teacher, student, form=losses.DEFAULT_IUSP_FORM):
    return value_and_grad(
        lambda t, s: losses.iusp_loss(t, s, implementation="reference", form=form),
        teacher.astype(np.float64), student.astype(np.float64))


def lowrank32(teacher, student, form=losses.DEFAULT_IUSP_FORM):
    return value_and_grad(lambda t, s: losses.iusp_loss_lowrank(t, s, form=form),
                          teacher.astype(np.float32), student.astype(np.float32))


def assert_matches_reference(teacher, student, form):
    ref, ref_grad = reference64(teacher, student, form)
    low, low_grad = lowrank32(teacher, student, form)
    np.testing.assert_allclose(low, ref, rtol=RTOL, atol=0)
    scale = np.abs(ref_grad).max()
    assert scale > 0
    np.testing.assert_allclose(low_grad, ref_grad, rtol=RTOL, atol=RTOL * scale)
    # and the float32 reference, what training used so far, agrees to the same tolerance
    ref32 = losses.iusp_loss(teacher.astype(np.float32), student.astype(np.float32),
                             implementation="reference", form=form).numpy()
    np.testing.assert_allclose(low, ref32, rtol=RTOL, atol=1e-12)
    return ref


# --------------------------------------------------------------------------- resize matrix


@pytest.mark.parametrize("n_in,n_out", [(5, 12), (20, 12), (12, 12), (3, 7), (7, 3), (1, 4),
                                        (4, 1), (250, 125), (125, 250), (500, 250), (64, 100)])
def test_resize_matrix_reproduces_tf_image_resize(rng, n_in, n_out):
    r = losses.bilinear_resize_matrix(n_in, n_out)
    assert r.shape == (n_out, n_in) and r.dtype == np.float64
    np.testing.assert_allclose(r.sum(axis=1), 1.0, rtol=1e-12)  # interpolation weights
    assert np.all(r >= 0) and np.all((r > 0).sum(axis=1) <= 2)  # two taps, no antialiasing
    x = rng.normal(size=(n_in, n_in)).astype(np.float32)
    resized = tf.image.resize(x[None, :, :, None], [n_out, n_out], method="bilinear",
                              antialias=False)[0, :, :, 0].numpy()
    np.testing.assert_allclose(r @ x.astype(np.float64) @ r.T, resized, rtol=1e-5, atol=1e-5)
    # rectangular maps: one matrix per axis
    y = rng.normal(size=(n_in, 3)).astype(np.float32)
    resized = tf.image.resize(y[None, :, :, None], [n_out, 3], method="bilinear")[0, ..., 0]
    np.testing.assert_allclose(r @ y, resized.numpy(), rtol=1e-5, atol=1e-5)


def test_resize_matrix_same_size_is_identity():
    np.testing.assert_array_equal(losses.bilinear_resize_matrix(7, 7), np.eye(7))


def test_resize_matrix_matches_resize_similarity(rng):
    g = rng.normal(size=(2, 9, 9))
    r = losses.bilinear_resize_matrix(9, 20)
    np.testing.assert_allclose(losses.resize_similarity(g, 20).numpy(), r @ g @ r.T,
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args", [(0, 3), (3, 0), (2.5, 3), (True, 3), (3, -1)])
def test_resize_matrix_validates(args):
    with pytest.raises(ValueError, match="positive integer"):
        losses.bilinear_resize_matrix(*args)


# --------------------------------------------------------------------------- values + gradients


@pytest.mark.parametrize("kind", ["relu", "lstm"])
@pytest.mark.parametrize(
    "t_t,t_s,d_t,d_s",
    [
        (40, 40, 24, 12),  # equal T
        (40, 20, 24, 12),  # student half as long: upsampled
        (30, 64, 16, 8),  # student longer: downsampled
        (64, 32, 48, 24),
        (33, 17, 10, 5),  # odd sizes
    ],
)
@pytest.mark.parametrize("form", FORMS)
def test_lowrank_matches_reference_random_features(rng, kind, t_t, t_s, d_t, d_s, form):
    make = relu_conv if kind == "relu" else lstm_like
    teacher, student = make(rng, 3, t_t, d_t), make(rng, 3, t_s, d_s)
    assert_matches_reference(teacher, student, form)


@pytest.mark.parametrize("n_in,n_out", [(499, 249), (64, 30), (101, 20), (998, 500),
                                          (20, 50), (37, 37)])
def test_resize_adjoint_windows_are_exact_and_narrow(rng, n_in, n_out):
    # Downsampling by more than 2x skips some inputs (all-zero columns of R). Such a column
    # once got the window 0..out-1, so the adjoint ran one gather per output row: the
    # low-rank loss at 499 -> 249 frames (the paper grid's student/teacher) was 6x slower
    # than the reference. Each input is read by at most 2 outputs when downsampling and
    # ceil(2·out/in) + 2 when upsampling.
    idx, w = iusp_fast.adjoint_windows(n_in, n_out)
    limit = 2 if n_in >= n_out else -(-2 * n_out // n_in) + 2
    assert idx.shape == (idx.shape[0], n_in) and idx.shape[0] <= limit
    x = rng.normal(size=(2, n_out, 3))
    dense = np.einsum("oi,bod->bid", losses.bilinear_resize_matrix(n_in, n_out), x)
    got = iusp_fast.resize_adjoint_windows(tf.constant(x), n_in, n_out).numpy()
    np.testing.assert_allclose(got, dense, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("t_shape,s_shape", [((2, 24, 4, 6), (2, 12, 2, 5)),
                                             ((2, 24, 4, 6), (2, 40, 7)),
                                             ((2, 30, 9), (2, 15, 3, 2))])
@pytest.mark.parametrize("form", FORMS)
def test_lowrank_matches_reference_on_conv_maps(rng, t_shape, s_shape, form):
    assert_matches_reference(relu_conv(rng, t_shape[0], t_shape[1], *t_shape[2:]),
                             relu_conv(rng, s_shape[0], s_shape[1], *s_shape[2:]), form)


@pytest.mark.parametrize("noise", [0.3, 0.03, 0.003])
@pytest.mark.parametrize("d_s", [40, 64])
@pytest.mark.parametrize("form", FORMS)
def test_lowrank_matches_reference_for_near_identical_maps(rng, noise, d_s, form):
    # The small-loss regime (losses down to ~1e-8 here): the three Gram terms of the expansion
    # nearly cancel, which float32 accumulation cannot resolve (relative errors up to 1e-1 were
    # measured on these inputs), hence the float64 accumulation.
    teacher = smooth_relu(rng, 2, 48, 40)
    student = near_copy(rng, teacher, 48, d_s, noise)
    ref = assert_matches_reference(teacher, student, form)
    assert ref.max() < 3 * noise**2  # a genuinely small loss


@pytest.mark.parametrize("t_s", [24, 80])
@pytest.mark.parametrize("form", FORMS)
def test_lowrank_matches_reference_for_resampled_copies(rng, t_s, form):
    # With T_s != T_t the paper form's row normalisation over a different number of frames
    # leaves a scale mismatch: entries ~1/sqrt(T_s) against ~1/sqrt(T_t), so even a faithful
    # copy keeps a loss near (1/sqrt(T_t) - 1/sqrt(T_s))², here 0.45-1.5 times that of a flat
    # map (the teacher's mean entry everywhere, whose loss is the variance of the entries). The
    # cosine forms' entries do not depend on T: a faithful copy's loss is the resampling error,
    # below 0.2 % of the flat map's here.
    teacher = smooth_relu(rng, 2, 48, 40)
    ref = assert_matches_reference(teacher, near_copy(rng, teacher, t_s, 40, 0.01), form)
    flat = losses.self_similarity(teacher, form).numpy().var(axis=(1, 2))
    if form == "paper":
        assert np.all(ref > 0.4 * flat)
    else:
        assert np.all(ref < 0.01 * flat)


@pytest.mark.parametrize("form", FORMS)
def test_lowrank_matches_reference_in_the_large_loss_regime(rng, form):
    # uncorrelated signed features and a near-orthogonal student: a loss far from zero
    teacher = rng.normal(size=(3, 40, 16))
    student = rng.normal(size=(3, 20, 6))
    student[:, ::2] *= -1
    ref = assert_matches_reference(teacher, student, form)
    assert ref.min() > 1e-2


@pytest.mark.parametrize("form", FORMS)
def test_lowrank_matches_reference_when_features_outnumber_frames(rng, form):
    # D > T: the maps are full rank; lowrank is exact anyway (only slower)
    assert_matches_reference(relu_conv(rng, 2, 10, 40), lstm_like(rng, 2, 6, 30), form)


@pytest.mark.parametrize("form", FORMS)
def test_lowrank_with_silent_frames_and_silent_clips(rng, form):
    teacher, student = relu_conv(rng, 3, 20, 8), relu_conv(rng, 3, 12, 5)
    teacher[0, :4] = 0.0  # silent teacher frames
    student[1, 3] = 0.0  # a silent student frame
    student[1, 7:] = 0.0
    assert_matches_reference(teacher, student, form)
    # a silent student clip: rows of zeros, the loss is ||G_t||² / T² and gradients finite
    student[2] = 0.0
    ref, _ = reference64(teacher, student, form)
    low, grad = lowrank32(teacher, student, form)
    np.testing.assert_allclose(low, ref, rtol=RTOL)
    assert np.all(np.isfinite(grad))


@pytest.mark.parametrize("form", FORMS)
def test_lowrank_is_zero_for_identical_features(rng, form):
    x = relu_conv(rng, 2, 16, 3, 4).astype(np.float32)
    np.testing.assert_allclose(losses.iusp_loss_lowrank(x, x, form=form).numpy(), 0.0,
                               atol=1e-7)


@pytest.mark.parametrize("form", FORMS)
def test_lowrank_gradient_matches_finite_differences(rng, form):
    teacher, student = rng.normal(size=(1, 9, 4)), rng.normal(size=(1, 5, 3))
    _, grad = value_and_grad(lambda t, s: losses.iusp_loss_lowrank(t, s, form=form), teacher,
                             student)
    eps = 1e-6
    for idx in [(0, 0, 0), (0, 2, 1), (0, 4, 2)]:
        plus, minus = student.copy(), student.copy()
        plus[idx] += eps
        minus[idx] -= eps
        fd = (losses.iusp_loss_lowrank(teacher, plus, form=form).numpy()[0]
              - losses.iusp_loss_lowrank(teacher, minus, form=form).numpy()[0]) / (2 * eps)
        np.testing.assert_allclose(grad[idx], fd, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("form", FORMS)
def test_lowrank_teacher_gets_no_gradient(rng, form):
    t = tf.constant(rng.normal(size=(2, 12, 5)), tf.float32)
    s = tf.constant(rng.normal(size=(2, 6, 3)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(t)
        loss = tf.reduce_sum(losses.iusp_loss_lowrank(t, s, form=form))
    grad = tape.gradient(loss, t)
    assert grad is None or not np.any(grad.numpy())


def test_lowrank_dtypes(rng):
    t, s = rng.normal(size=(2, 12, 5)), rng.normal(size=(2, 6, 3))
    assert losses.iusp_loss_lowrank(t, s).dtype == tf.float64
    assert losses.iusp_loss_lowrank(t.astype(np.float32), s.astype(np.float32)).dtype == tf.float32
    half = losses.iusp_loss_lowrank(tf.constant(t, tf.float16), tf.constant(s, tf.float16))
    assert half.dtype == tf.float32


@pytest.mark.parametrize("form", FORMS)
def test_lowrank_is_per_clip_scale_invariant(rng, form):
    t, s = relu_conv(rng, 2, 20, 6), lstm_like(rng, 2, 10, 4)
    base = losses.iusp_loss_lowrank(t, s, form=form).numpy()
    t2 = t.copy()
    t2[1] *= 17.0
    np.testing.assert_allclose(losses.iusp_loss_lowrank(t2, 0.01 * s, form=form).numpy(), base,
                               rtol=1e-10)


@pytest.mark.parametrize("form", FORMS)
def test_lowrank_in_tf_function_with_unknown_shapes(rng, form):
    fn = tf.function(lambda t, s: losses.iusp_loss_lowrank(t, s, form=form), input_signature=[
        tf.TensorSpec([None, None, 6], tf.float32), tf.TensorSpec([None, None, None], tf.float32)])
    for t_s in (20, 12, 7):  # the resize taps are built in the graph
        t = rng.normal(size=(2, 12, 6)).astype(np.float32)
        s = rng.normal(size=(2, t_s, 4)).astype(np.float32)
        np.testing.assert_allclose(fn(t, s).numpy(), reference64(t, s, form)[0], rtol=RTOL)
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        fn(t, s[:1])


def test_lowrank_validates_like_the_reference():
    with pytest.raises(ValueError, match="rank >= 3"):
        losses.iusp_loss_lowrank(np.zeros((2, 5)), np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="same batch size"):
        losses.iusp_loss_lowrank(np.zeros((2, 5, 3)), np.zeros((3, 5, 3)))


# --------------------------------------------------------------------------- implementation=


@pytest.fixture
def spies(monkeypatch):
    """Record which implementation ``iusp_loss`` dispatches to."""
    calls = []
    for module, name in ((iusp_fast, "iusp_lowrank"), (losses, "_iusp_reference")):
        original = getattr(module, name)

        def spy(t, s, form, _original=original, _name=name):
            calls.append(_name.removeprefix("_").removeprefix("iusp_"))
            return _original(t, s, form)

        monkeypatch.setattr(module, name, spy)
    return calls


def test_implementation_argument_selects_and_agrees(rng, spies):
    t, s = relu_conv(rng, 2, 30, 8), relu_conv(rng, 2, 15, 4)
    ref = losses.iusp_loss(t, s, implementation="reference").numpy()
    low = losses.iusp_loss(t, s, implementation="lowrank").numpy()
    assert spies == ["reference", "lowrank"]
    # tf.image.resize computes in float32 even for float64 maps, hence not 1e-15
    np.testing.assert_allclose(low, ref, rtol=1e-6)
    with pytest.raises(ValueError, match="implementation"):
        losses.iusp_loss(t, s, implementation="fast")


@pytest.mark.parametrize(
    "t_shape,s_shape,expected",
    [
        ((2, 500, 32), (2, 250, 12), "lowrank"),  # long clips, narrow layers
        ((2, 250, 128), (2, 500, 12), "lowrank"),  # the default teacher_cnn/cnn_lstm pair, 10 s
        ((2, 12, 40), (2, 6, 30), "reference"),  # D > T
        ((2, 64, 128), (2, 32, 64), "reference"),  # D_t > T_t
        ((2, 128, 64), (2, 64, 64), "reference"),  # D_s = T_s
        ((2, 256, 128), (2, 128, 64), "lowrank"),  # wide layers, measured 2x faster in float32
        ((2, 48, 16), (2, 24, 8), "reference"),  # short clips: the low-rank ops' fixed cost
    ],
)
def test_auto_dispatch(rng, spies, t_shape, s_shape, expected):
    t = rng.normal(size=t_shape).astype(np.float32)
    s = rng.normal(size=s_shape).astype(np.float32)
    out = losses.iusp_loss(t, s)
    assert spies == [expected]
    d_t, d_s = int(np.prod(t_shape[2:])), int(np.prod(s_shape[2:]))
    assert losses.iusp_prefers_lowrank(t_shape[1], s_shape[1], d_t, d_s) is (expected == "lowrank")
    spies.clear()  # the paper form's rule takes the same decisions on these shapes
    losses.iusp_loss(t, s, form="paper")
    assert spies == [expected]
    np.testing.assert_allclose(out.numpy(), reference64(t, s)[0], rtol=RTOL)


def test_auto_rule_in_the_graph_agrees_with_python():
    shapes = [(500, 250, 32, 12), (12, 6, 40, 30), (250, 500, 128, 12), (32, 64, 256, 16),
              (500, 250, 128, 64)]
    for form in FORMS:
        for dims in shapes:
            tensor = losses.iusp_prefers_lowrank(*(tf.constant(v) for v in dims), form=form)
            assert bool(tensor.numpy()) is losses.iusp_prefers_lowrank(*dims, form=form)


@pytest.mark.parametrize("form", FORMS)
def test_auto_rule_follows_the_measured_crossover(form):
    # measured forward + backward CPU ms, batch 16, oneDNN (reference / lowrank): cosine
    # 33.3 / 10.6 and paper 37.7 / 14.0 at (500, 250, 128, 64); cosine 0.63 / 0.68 and paper
    # 0.47 / 1.01 at (32, 16, 16, 8); cosine 2.36 / 0.86 at (128, 64, 16, 8)
    assert losses.iusp_prefers_lowrank(500, 250, 128, 64, form=form)
    assert losses.iusp_prefers_lowrank(128, 64, 16, 8, form=form)
    assert not losses.iusp_prefers_lowrank(32, 16, 16, 8, form=form)
    # the full-frame-rate pair of issue 11 takes the low-rank path in every form
    assert losses.iusp_prefers_lowrank(1000, 500, 128, 32, form=form)
    with pytest.raises(ValueError, match="form"):
        losses.iusp_prefers_lowrank(500, 250, 128, 64, form="cos")


def test_auto_with_unknown_frame_counts_uses_tf_cond(rng):
    fn = tf.function(losses.iusp_loss, input_signature=[
        tf.TensorSpec([None, None, 8], tf.float32), tf.TensorSpec([None, None, 4], tf.float32)])
    for t_t, t_s in [(400, 200), (6, 3)]:  # lowrank at run time, then reference (D > T)
        t = rng.normal(size=(2, t_t, 8)).astype(np.float32)
        s = rng.normal(size=(2, t_s, 4)).astype(np.float32)
        np.testing.assert_allclose(fn(t, s).numpy(), reference64(t, s)[0], rtol=RTOL)


def test_default_iusp_loss_values_unchanged(rng):
    # the documented default ("auto") returns what the reference always returned
    for t_shape, s_shape in [((2, 300, 16), (2, 150, 8)), ((2, 12, 16), (2, 5, 6))]:
        t, s = relu_conv(rng, *t_shape), relu_conv(rng, *s_shape)
        np.testing.assert_allclose(losses.iusp_loss(t.astype(np.float32), s.astype(np.float32)),
                                   reference64(t, s)[0], rtol=RTOL)


# --------------------------------------------------------------------------- IUSPDistillation


def test_iusp_distillation_passes_the_implementation_through(rng, spies):
    t, s = relu_conv(rng, 2, 30, 8), relu_conv(rng, 2, 15, 4)
    for impl in ("reference", "lowrank"):
        item = IUSPDistillation("a", "b", implementation=impl)
        item.compute_loss(t, s)
        assert item.get_config()["implementation"] == impl
        assert f"implementation='{impl}'" in repr(item)
    assert spies == ["reference", "lowrank"]
    assert IUSPDistillation("a", "b").implementation == "auto"
    with pytest.raises(ConfigError, match="implementation"):
        IUSPDistillation("a", "b", implementation="fast")


def test_iusp_distillation_passes_the_form_through(rng):
    t, s = relu_conv(rng, 2, 30, 8), lstm_like(rng, 2, 15, 4)
    values = {}
    for form in FORMS:
        item = IUSPDistillation("a", "b", form=form)
        values[form] = item.compute_loss(t, s).numpy()
        np.testing.assert_allclose(values[form], reference64(t, s, form)[0], rtol=RTOL)
        assert item.get_config()["form"] == form and f"form='{form}'" in repr(item)
    assert len({round(float(v[0]), 6) for v in values.values()}) == len(FORMS)  # really differ
    assert IUSPDistillation("a", "b").form == losses.DEFAULT_IUSP_FORM
    with pytest.raises(ConfigError, match="form"):
        IUSPDistillation("a", "b", form="cos")


def test_distill_config_form_reaches_the_loss():
    from keras_iusp.train.recipe import DistillConfig, distillation_losses

    assert DistillConfig().iusp_form == losses.DEFAULT_IUSP_FORM
    for form in FORMS:
        items, _, _ = distillation_losses(DistillConfig(method="iusp", iusp_form=form), "cnn_lstm")
        assert [item.form for item in items if isinstance(item, IUSPDistillation)] == [form]


# --------------------------------------------------------------------------- float32 / float64


def lowrank_value_and_grad(monkeypatch, teacher, student, form, rtol):
    """Float32 low-rank value and gradient with ``LOWRANK_FLOAT32_RTOL`` set to ``rtol``:
    ``inf`` keeps the float32 evaluation whatever its error, 0 always recomputes in float64."""
    monkeypatch.setattr(iusp_fast, "LOWRANK_FLOAT32_RTOL", rtol)
    return lowrank32(teacher, student, form)


@pytest.mark.parametrize("form", FORMS)
def test_lowrank_keeps_float32_when_the_terms_do_not_cancel(rng, monkeypatch, form):
    # ReLU conv teacher, LSTM student: a loss far above the float32 rounding of the terms
    teacher, student = relu_conv(rng, 3, 200, 64), lstm_like(rng, 3, 100, 16)
    value, grad = lowrank_value_and_grad(monkeypatch, teacher, student, form, 5e-5)
    kept, kept_grad = lowrank_value_and_grad(monkeypatch, teacher, student, form, np.inf)
    in64, in64_grad = lowrank_value_and_grad(monkeypatch, teacher, student, form, 0.0)
    np.testing.assert_array_equal(value, kept)  # the float32 branch was taken ...
    np.testing.assert_array_equal(grad, kept_grad)
    assert np.any(value != in64)  # ... which is not the float64 one
    ref, ref_grad = reference64(teacher, student, form)
    np.testing.assert_allclose(value, ref, rtol=1e-5)
    np.testing.assert_allclose(grad, ref_grad, rtol=RTOL, atol=RTOL * np.abs(ref_grad).max())
    np.testing.assert_allclose(in64_grad, ref_grad, rtol=RTOL, atol=RTOL * np.abs(ref_grad).max())


@pytest.mark.parametrize("form", ["cosine", "centered"])
def test_lowrank_falls_back_to_float64_when_the_terms_cancel(rng, monkeypatch, form):
    # nearly identical maps: float32 terms cannot resolve the loss, so the batch is recomputed
    teacher = smooth_relu(rng, 2, 250, 40)
    student = near_copy(rng, teacher, 125, 64, 0.003)
    ref, ref_grad = reference64(teacher, student, form)
    kept, _ = lowrank_value_and_grad(monkeypatch, teacher, student, form, np.inf)
    assert np.max(np.abs(kept / ref - 1)) > 10 * RTOL  # float32 alone would be wrong
    value, grad = lowrank_value_and_grad(monkeypatch, teacher, student, form, 5e-5)
    in64, in64_grad = lowrank_value_and_grad(monkeypatch, teacher, student, form, 0.0)
    np.testing.assert_array_equal(value, in64)
    np.testing.assert_array_equal(grad, in64_grad)
    np.testing.assert_allclose(value, ref, rtol=RTOL)


def test_lowrank_cosine_keeps_float32_for_maps_dominated_by_a_constant(rng, monkeypatch):
    # Cosine maps of ReLU features with a strong common component (every entry near 1): the
    # plain expansion's terms are ~1000x the loss; split off the constant they are not.
    common = rng.uniform(0.5, 1.5, (2, 1, 64))
    teacher = np.maximum(common + 0.1 * rng.normal(size=(2, 300, 64)), 0)
    student = np.maximum(common[..., :16] + 0.1 * rng.normal(size=(2, 150, 16)), 0)
    g_t = losses.self_similarity(teacher, "cosine").numpy()
    assert g_t.mean() > 0.9
    value, _ = lowrank_value_and_grad(monkeypatch, teacher, student, "cosine", 5e-5)
    kept, _ = lowrank_value_and_grad(monkeypatch, teacher, student, "cosine", np.inf)
    np.testing.assert_array_equal(value, kept)
    np.testing.assert_allclose(value, reference64(teacher, student, "cosine")[0], rtol=1e-5)


@pytest.mark.parametrize("t_in,t_out", [(500, 1000), (7, 21), (21, 7), (13, 5), (17, 33), (6, 6),
                                        (1, 4), (4, 1)])
def test_resize_adjoint_matches_the_matrix(rng, t_in, t_out):
    x = rng.normal(size=(2, t_out, 3))
    expected = np.einsum("oi,bod->bid", losses.bilinear_resize_matrix(t_in, t_out), x)
    taps = iusp_fast.resize_taps(t_in, t_out)
    np.testing.assert_allclose(iusp_fast.resize_adjoint(tf.constant(x), taps, t_in).numpy(),
                               expected, rtol=1e-12, atol=1e-12)  # static sizes: gathers
    dynamic = tf.function(lambda v: iusp_fast.resize_adjoint(v, taps, tf.constant(t_in)),
                          input_signature=[tf.TensorSpec([None, None, 3], tf.float64)])
    np.testing.assert_allclose(dynamic(x).numpy(), expected, rtol=1e-12, atol=1e-12)
