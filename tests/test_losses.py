"""keras_iusp.distill.losses against independent numpy references written here (no TF in the
oracles)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from keras_iusp.distill import losses

RTOL = 1e-5
ATOL = 1e-6


# --------------------------------------------------------------------------- numpy references


def np_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_bce(labels, logits):
    """Per-example mean over classes of -y log p - (1-y) log(1-p), from probabilities."""
    p = np_sigmoid(np.asarray(logits, np.float64))
    y = np.asarray(labels, np.float64)
    per = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return per.reshape(per.shape[0], -1).mean(axis=1)


def np_row_normalize(g):
    norm = np.sqrt((g * g).sum(axis=-1, keepdims=True))
    return g / np.maximum(norm, 1e-6)


def np_sp(teacher, student):
    b = teacher.shape[0]
    a_t = teacher.reshape(b, -1).astype(np.float64)
    a_s = student.reshape(b, -1).astype(np.float64)
    g_t = np_row_normalize(a_t @ a_t.T)
    g_s = np_row_normalize(a_s @ a_s.T)
    return ((g_t - g_s) ** 2).sum() / b**2


def np_self_similarity(x, form="paper"):
    x = np.asarray(x, np.float64)
    q = x.reshape(x.shape[0], x.shape[1], -1)
    if form == "paper":
        return np_row_normalize(np.einsum("btd,bsd->bts", q, q))
    if form == "centered":
        q = q - q.mean(axis=1, keepdims=True)
    norm = np.sqrt((q * q).sum(axis=-1, keepdims=True))
    u = q / np.maximum(norm, 1e-6)
    return np.einsum("btd,bsd->bts", u, u)


def np_linear_weights(n_in, n_out):
    """TF2 half-pixel-centre bilinear sampling along one axis: (lower, upper, frac) per output."""
    dst = np.arange(n_out, dtype=np.float64)
    src = (dst + 0.5) * n_in / n_out - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, src - lo


def np_resize_bilinear(g, size):
    """[B, H, W] -> [B, size, size], separable linear interpolation on each axis."""
    lo, hi, w = np_linear_weights(g.shape[1], size)
    rows = g[:, lo, :] * (1 - w)[None, :, None] + g[:, hi, :] * w[None, :, None]
    lo, hi, w = np_linear_weights(g.shape[2], size)
    return rows[:, :, lo] * (1 - w)[None, None, :] + rows[:, :, hi] * w[None, None, :]


def np_iusp(teacher, student, form="paper"):
    g_t = np_self_similarity(teacher, form)
    g_s = np_resize_bilinear(np_self_similarity(student, form), g_t.shape[1])
    return ((g_t - g_s) ** 2).sum(axis=(1, 2)) / g_t.shape[1] ** 2


def np_iusp_grad_unit_forms(teacher, student, form):
    """Analytic d(sum_b L_b)/d(student) of the cosine forms, derived by hand, in numpy.

    ``L = ||G_t - R U Uᵀ Rᵀ||² / n²`` with ``U`` the unit frames: with ``E = G_t - R U Uᵀ Rᵀ``
    (symmetric), ``dL/dU = -(4/n²) Rᵀ E R U``; through ``u = c/||c||``:
    ``dL/dc = (g - u (uᵀg)) / ||c||``; through centring ``c = q - mean_t q``: subtract the time
    mean of ``dL/dc``.
    """
    b, t_s = student.shape[:2]
    q = np.asarray(student, np.float64).reshape(b, t_s, -1)
    c = q - q.mean(axis=1, keepdims=True) if form == "centered" else q
    norm = np.sqrt((c * c).sum(-1, keepdims=True))
    u = c / norm
    g_t = np_self_similarity(teacher, form)
    n = g_t.shape[1]
    lo, hi, w = np_linear_weights(t_s, n)
    r = np.zeros((n, t_s))
    np.add.at(r, (np.arange(n), lo), 1 - w)
    np.add.at(r, (np.arange(n), hi), w)
    v = np.einsum("ot,btd->bod", r, u)
    e = g_t - np.einsum("bod,bpd->bop", v, v)
    grad_u = -4.0 / n**2 * np.einsum("to,bop,bpd->btd", r.T, e, v)
    grad_c = (grad_u - u * (u * grad_u).sum(-1, keepdims=True)) / norm
    if form == "centered":
        grad_c = grad_c - grad_c.mean(axis=1, keepdims=True)
    return grad_c.reshape(student.shape)


@pytest.fixture
def rng():
    return np.random.default_rng(20200902)


def close(actual, expected):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------- resize oracle sanity


def test_numpy_resize_reference_matches_hand_computed_values():
    # 2 -> 4 upsampling along one axis: sources -0.25, 0.25, 0.75, 1.25 -> clamp -> [0, .25, .75, 1]
    lo, hi, w = np_linear_weights(2, 4)
    np.testing.assert_allclose(lo + w, [0.0, 0.25, 0.75, 1.0])
    # 4 -> 2 downsampling: sources 0.5 and 2.5
    lo, hi, w = np_linear_weights(4, 2)
    np.testing.assert_allclose(lo + w, [0.5, 2.5])
    g = np.array([[[0.0, 1.0], [2.0, 3.0]]])
    np.testing.assert_allclose(np_resize_bilinear(g, 4)[0, 1], [0.5, 0.75, 1.25, 1.5])


# --------------------------------------------------------------------------- bce / kd


@pytest.mark.parametrize("shape", [(4, 8), (3, 5, 8)])
def test_bce_matches_numpy(rng, shape):
    logits = rng.normal(0, 3, shape).astype(np.float32)
    labels = rng.integers(0, 2, shape).astype(np.float32)
    out = losses.bce(labels, logits)
    assert out.shape == (shape[0],)
    close(out, np_bce(labels, logits))
    # soft targets work as well
    soft = rng.uniform(0, 1, shape).astype(np.float32)
    close(losses.bce(soft, logits), np_bce(soft, logits))


def test_bce_is_stable_for_large_logits():
    out = losses.bce(np.array([[1.0, 0.0]], np.float32), np.array([[-200.0, 200.0]], np.float32))
    close(out, [200.0])


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0])
def test_kd_loss_is_t_squared_times_numpy_bce(rng, temperature):
    t = rng.normal(0, 4, (5, 8)).astype(np.float32)
    s = rng.normal(0, 4, (5, 8)).astype(np.float32)
    expected = temperature**2 * np_bce(np_sigmoid(t.astype(np.float64) / temperature),
                                       s.astype(np.float64) / temperature)
    out = losses.kd_loss(t, s, temperature=temperature)
    assert out.shape == (5,)
    close(out, expected)


def test_kd_loss_default_temperature_is_4(rng):
    t = rng.normal(size=(2, 3)).astype(np.float32)
    s = rng.normal(size=(2, 3)).astype(np.float32)
    close(losses.kd_loss(t, s), losses.kd_loss(t, s, temperature=4.0).numpy())


def test_kd_loss_for_identical_logits_is_scaled_target_entropy(rng):
    z = rng.normal(0, 2, (3, 6))
    p = np_sigmoid(z / 2.0)
    entropy = -(p * np.log(p) + (1 - p) * np.log(1 - p)).mean(axis=1)
    close(losses.kd_loss(z, z, temperature=2.0), 4.0 * entropy)


# --------------------------------------------------------------------------- sp


@pytest.mark.parametrize(
    "t_shape,s_shape",
    [((6, 10), (6, 10)), ((6, 12, 16), (6, 5, 3)), ((5, 12, 4, 3), (5, 20, 2, 2))],
)
def test_sp_loss_matches_numpy(rng, t_shape, s_shape):
    t = rng.normal(size=t_shape).astype(np.float32)
    s = rng.normal(size=s_shape).astype(np.float32)
    out = losses.sp_loss(t, s)
    assert out.shape == ()
    close(out, np_sp(t, s))


def test_sp_loss_zero_for_identical_features(rng):
    x = rng.normal(size=(4, 7, 3)).astype(np.float32)
    assert abs(float(losses.sp_loss(x, x))) < 1e-7


def test_sp_loss_invariant_to_scaling_the_whole_batch(rng):
    t = rng.normal(size=(4, 12, 6)).astype(np.float32)
    s = rng.normal(size=(4, 5, 3)).astype(np.float32)
    base = float(losses.sp_loss(t, s))
    close(losses.sp_loss(t, 3.7 * s), base)
    close(losses.sp_loss(3.7 * t, s), base)


def test_sp_loss_is_not_per_clip_scale_invariant(rng):
    # SP compares clips with each other; scaling one clip changes its similarity to the others
    # relative to its own norm (G[i, i] scales by c², G[i, j] by c). Documented, checked here
    # against the numpy reference so the oracle and the implementation agree on it.
    t = rng.normal(size=(4, 12, 6)).astype(np.float32)
    s = rng.normal(size=(4, 5, 3)).astype(np.float32)
    s2 = s.copy()
    s2[1] *= 3.7
    close(losses.sp_loss(t, s2), np_sp(t, s2))
    assert not np.isclose(np_sp(t, s2), np_sp(t, s), rtol=1e-3)


# --------------------------------------------------------------------------- self-similarity


@pytest.mark.parametrize("shape", [(3, 12, 16), (2, 9, 4, 3)])
def test_self_similarity_matches_numpy(rng, shape):
    x = rng.normal(size=shape).astype(np.float32)
    out = losses.self_similarity(x)
    assert out.shape == (shape[0], shape[1], shape[1])
    close(out, np_self_similarity(x))


def test_self_similarity_rows_are_unit_norm_and_zero_frames_give_zero_rows(rng):
    x = rng.normal(size=(2, 6, 5)).astype(np.float32)
    x[0, 2] = 0.0
    g = losses.self_similarity(x).numpy()
    assert np.all(np.isfinite(g))
    norms = np.linalg.norm(g, axis=-1)
    np.testing.assert_allclose(norms[0, 2], 0.0)
    np.testing.assert_allclose(np.delete(norms[0], 2), 1.0, rtol=1e-5)
    np.testing.assert_allclose(norms[1], 1.0, rtol=1e-5)
    assert np.all(np.isfinite(losses.self_similarity(np.zeros((1, 4, 3), np.float32)).numpy()))


def test_repetitive_sequence_gives_striped_self_similarity(rng):
    # frames alternate between two patterns: a, b, a, b, ... (T = 10)
    a, b = rng.normal(size=8), rng.normal(size=8)
    frames = np.stack([a if i % 2 == 0 else b for i in range(10)]).astype(np.float32)
    g = losses.self_similarity(frames[None])[0].numpy()
    # identical frames have identical rows, so the diagonal repeats every 2 frames: a stripe
    for i in range(8):
        np.testing.assert_allclose(g[i], g[i + 2], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g[i, i + 2], g[i, i], rtol=1e-5)
    # with orthogonal patterns the map is exactly a checkerboard of stripes: G[i, i+2k] equals
    # 1/sqrt(T/2) (each row has T/2 equal entries and unit L2 norm), odd offsets are 0
    a = np.array([1.0, 2.0, 0.0, 0.0])
    b = np.array([0.0, 0.0, 3.0, -1.0])
    frames = np.stack([a if i % 2 == 0 else b for i in range(10)]).astype(np.float32)
    g = losses.self_similarity(frames[None])[0].numpy()
    i, j = np.indices(g.shape)
    expected = np.where((i - j) % 2 == 0, 1.0 / np.sqrt(5.0), 0.0)
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)
    # relative to the row's self-similarity the stripe is 1 (frame i+2 is a copy of frame i)
    np.testing.assert_allclose(np.diagonal(g, offset=2) / np.diagonal(g)[:8], 1.0, rtol=1e-6)


# --------------------------------------------------------------------------- resize


@pytest.mark.parametrize("n_in,n_out", [(5, 12), (20, 12), (12, 12), (3, 7), (7, 3)])
def test_resize_similarity_matches_numpy_half_pixel_bilinear(rng, n_in, n_out):
    g = rng.normal(size=(2, n_in, n_in)).astype(np.float32)
    out = losses.resize_similarity(g, n_out)
    assert out.shape == (2, n_out, n_out)
    close(out, np_resize_bilinear(g.astype(np.float64), n_out))


def test_resize_similarity_identity_and_dtype(rng):
    g = tf.constant(rng.normal(size=(1, 4, 4)))
    np.testing.assert_array_equal(losses.resize_similarity(g, 4).numpy(), g.numpy())
    assert losses.resize_similarity(g, 6).dtype == tf.float64


def test_resize_similarity_validates():
    with pytest.raises(ValueError, match="positive size"):
        losses.resize_similarity(np.zeros((1, 3, 3), np.float32), 0)
    with pytest.raises(ValueError, match=r"\[B, T, T\]"):
        losses.resize_similarity(np.zeros((3, 3), np.float32), 4)


# --------------------------------------------------------------------------- iusp


@pytest.mark.parametrize(
    "t_shape,s_shape",
    [
        ((3, 12, 16), (3, 12, 16)),  # same shapes
        ((3, 12, 16), (3, 5, 6)),  # student T shorter: bilinear upsampling, unequal D
        ((3, 12, 16), (3, 20, 4)),  # student T longer: bilinear downsampling
        ((2, 12, 4, 3), (2, 5, 2, 5)),  # conv-shaped [B, T, F, C]
        ((2, 12, 4, 3), (2, 20, 7)),  # conv teacher, recurrent-shaped student
    ],
)
@pytest.mark.parametrize("form", losses.IUSP_FORMS)
@pytest.mark.parametrize("implementation", ["reference", "lowrank"])
def test_iusp_loss_matches_numpy(rng, t_shape, s_shape, form, implementation):
    t = rng.normal(size=t_shape).astype(np.float32)
    s = rng.normal(size=s_shape).astype(np.float32)
    out = losses.iusp_loss(t, s, implementation=implementation, form=form)
    assert out.shape == (t_shape[0],)
    close(out, np_iusp(t, s, form))


@pytest.mark.parametrize("form", losses.IUSP_FORMS)
def test_self_similarity_forms_match_numpy(rng, form):
    # float64: a centred frame is zero only up to rounding, which the normalisation amplifies
    x = np.maximum(rng.normal(0.2, 1, size=(2, 9, 3, 2)), 0)
    # a silent frame; centred, a frame equal to the clip's mean frame: a zero row (and, except
    # in the paper form, a zero column)
    x[0, 4] = np.delete(x[0], 4, axis=0).mean(axis=0) if form == "centered" else 0.0
    g = losses.self_similarity(x, form).numpy()
    close(g, np_self_similarity(x, form))
    if form != "paper":
        # Gram matrices of (centred) unit frames: symmetric, unit diagonal, entries in [-1, 1]
        np.testing.assert_allclose(g, np.swapaxes(g, 1, 2), atol=1e-6)
        diag = np.diagonal(g, axis1=1, axis2=2)
        np.testing.assert_allclose(np.delete(diag[0], 4), 1.0, rtol=1e-5)
        assert np.all(np.abs(g) <= 1 + 1e-6)
    np.testing.assert_allclose(g[0, 4], 0.0, atol=1e-6)


def test_centered_form_ignores_the_frames_common_component(rng):
    # adding the same vector to every frame of a clip changes the paper and cosine maps but not
    # the centred one: that shared (DC) part is exactly what the centred form removes
    x = rng.normal(size=(2, 10, 6)).astype(np.float32)
    shifted = x + rng.normal(size=(2, 1, 6)).astype(np.float32) * 5
    close(losses.self_similarity(shifted, "centered"), losses.self_similarity(x, "centered"))
    for form in ("paper", "cosine"):
        assert np.abs(losses.self_similarity(shifted, form).numpy()
                      - losses.self_similarity(x, form).numpy()).max() > 0.1


def test_default_form_is_the_documented_one(rng):
    assert losses.DEFAULT_IUSP_FORM == "cosine"
    t = rng.normal(size=(2, 12, 6)).astype(np.float32)
    s = rng.normal(size=(2, 5, 4)).astype(np.float32)
    close(losses.iusp_loss(t, s), np_iusp(t, s, "cosine"))
    close(losses.iusp_loss_lowrank(t, s), np_iusp(t, s, "cosine"))
    assert losses.self_similarity(t).shape == (2, 12, 12)
    close(losses.self_similarity(t), np_self_similarity(t, "paper"))


@pytest.mark.parametrize("form", losses.IUSP_FORMS)
def test_iusp_loss_with_relu_features_and_silent_frames(rng, form):
    t = np.maximum(rng.normal(size=(2, 12, 8)), 0).astype(np.float32)
    s = np.maximum(rng.normal(size=(2, 5, 3)), 0).astype(np.float32)
    t[0, :3] = 0.0
    s[1, 4] = 0.0
    for implementation in ("reference", "lowrank"):
        out = losses.iusp_loss(t, s, implementation=implementation, form=form).numpy()
        assert np.all(np.isfinite(out))
        close(out, np_iusp(t, s, form))


@pytest.mark.parametrize("form", losses.IUSP_FORMS)
def test_iusp_loss_zero_for_identical_features(rng, form):
    x = rng.normal(size=(3, 9, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(losses.iusp_loss(x, x, form=form).numpy(), 0.0, atol=1e-7)


@pytest.mark.parametrize("form", losses.IUSP_FORMS)
def test_iusp_loss_per_clip_invariant_to_scaling_one_clip(rng, form):
    t = rng.normal(size=(3, 12, 6)).astype(np.float32)
    s = rng.normal(size=(3, 5, 4)).astype(np.float32)
    base = losses.iusp_loss(t, s, form=form).numpy()
    s2, t2 = s.copy(), t.copy()
    s2[1] *= 3.7
    t2[2] *= 3.7
    close(losses.iusp_loss(t, s2, form=form), base)
    close(losses.iusp_loss(t2, s, form=form), base)


def test_cosine_forms_do_not_shrink_with_the_frame_count(rng):
    # A clip and the same clip with every frame repeated k times have the same cosine maps up to
    # the repetition, so their losses against a repeated student are equal: the mean over
    # entries makes one weight serve any T. The paper form's entries are ~1/sqrt(T), so its loss
    # shrinks about k-fold.
    t = rng.normal(size=(2, 10, 6))
    s = rng.normal(size=(2, 10, 4))
    for form in ("cosine", "centered"):
        short = losses.iusp_loss(t, s, form=form).numpy()
        long = losses.iusp_loss(np.repeat(t, 4, axis=1), np.repeat(s, 4, axis=1), form=form)
        np.testing.assert_allclose(long.numpy(), short, rtol=1e-10)
    short = losses.iusp_loss(t, s, form="paper").numpy()
    long = losses.iusp_loss(np.repeat(t, 4, axis=1), np.repeat(s, 4, axis=1), form="paper")
    np.testing.assert_allclose(long.numpy(), short / 4, rtol=1e-10)


def test_iusp_loss_in_tf_function_with_unknown_shapes(rng):
    fn = tf.function(losses.iusp_loss, input_signature=[
        tf.TensorSpec([None, None, 6], tf.float32), tf.TensorSpec([None, None, 4], tf.float32)])
    t = rng.normal(size=(2, 12, 6)).astype(np.float32)
    s = rng.normal(size=(2, 20, 4)).astype(np.float32)
    close(fn(t, s), np_iusp(t, s, losses.DEFAULT_IUSP_FORM))
    with pytest.raises(tf.errors.InvalidArgumentError, match="same batch size"):
        fn(t, s[:1])


@pytest.mark.parametrize("form", losses.IUSP_FORMS)
def test_half_precision_is_computed_in_float32(rng, form):
    t = rng.normal(size=(2, 12, 6)).astype(np.float16)
    s = rng.normal(size=(2, 5, 4)).astype(np.float16)
    out = losses.iusp_loss(tf.constant(t), tf.constant(s), form=form)
    assert out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), np_iusp(t, s, form), rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------- gradients


def _grads(fn, teacher, student):
    t = tf.constant(teacher)
    s = tf.constant(student)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([t, s])
        loss = tf.reduce_mean(fn(t, s))
    return tape.gradient(loss, t), tape.gradient(loss, s)


@pytest.mark.parametrize(
    "fn,t_shape,s_shape",
    [
        (losses.kd_loss, (4, 8), (4, 8)),
        (losses.sp_loss, (4, 12, 6), (4, 5, 3)),
        (losses.iusp_loss, (2, 12, 6), (2, 5, 3)),
        (losses.iusp_loss, (2, 12, 4, 3), (2, 20, 2, 2)),
    ],
)
def test_gradients_reach_student_but_not_teacher(rng, fn, t_shape, s_shape):
    t = rng.normal(size=t_shape).astype(np.float32)
    s = rng.normal(size=s_shape).astype(np.float32)
    g_t, g_s = _grads(fn, t, s)
    assert g_t is None or not np.any(g_t.numpy())
    assert g_s is not None
    g_s = g_s.numpy()
    assert np.all(np.isfinite(g_s)) and np.any(g_s)


@pytest.mark.parametrize("form", losses.IUSP_FORMS)
@pytest.mark.parametrize("implementation", ["reference", "lowrank"])
@pytest.mark.parametrize("t_frames,s_frames", [(6, 4), (5, 5), (4, 7)])
def test_iusp_gradient_matches_numpy_finite_differences(rng, form, implementation, t_frames,
                                                        s_frames):
    # every entry of the student's gradient against central differences of the numpy loss
    t = rng.normal(size=(2, t_frames, 3))
    s = rng.normal(size=(2, s_frames, 2))
    _, g = _grads(lambda a, b: losses.iusp_loss(a, b, implementation=implementation, form=form),
                  t, s)
    eps = 1e-6
    fd = np.zeros_like(s)
    for idx in np.ndindex(*s.shape):
        sp, sm = s.copy(), s.copy()
        sp[idx] += eps
        sm[idx] -= eps
        fd[idx] = (np_iusp(t, sp, form).mean() - np_iusp(t, sm, form).mean()) / (2 * eps)
    np.testing.assert_allclose(g.numpy(), fd, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("form", ["cosine", "centered"])
@pytest.mark.parametrize("implementation", ["reference", "lowrank"])
def test_unit_form_gradients_match_the_analytic_numpy_gradient(rng, form, implementation):
    t = np.maximum(rng.normal(0.3, 1, size=(3, 20, 8)), 0)
    s = np.tanh(rng.normal(size=(3, 11, 5)))
    _, g = _grads(lambda a, b: tf.reduce_sum(losses.iusp_loss(
        a, b, implementation=implementation, form=form)) / 3, t, s)
    expected = np_iusp_grad_unit_forms(t, s, form) / 3
    # the reference resizes with tf.image.resize, which computes in float32 even for float64
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-4,
                               atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("form", losses.IUSP_FORMS)
@pytest.mark.parametrize("implementation", ["reference", "lowrank"])
def test_gradients_finite_with_all_zero_student_frames(form, implementation):
    t = np.random.default_rng(0).normal(size=(1, 6, 3)).astype(np.float32)
    s = np.zeros((1, 4, 2), np.float32)
    _, g = _grads(lambda a, b: losses.iusp_loss(a, b, implementation=implementation, form=form),
                  t, s)
    assert np.all(np.isfinite(g.numpy()))


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: losses.self_similarity(np.zeros((2, 5))), "rank >= 3"),
        (lambda: losses.iusp_loss(np.zeros((2, 5)), np.zeros((2, 5, 3))), "rank >= 3"),
        (lambda: losses.iusp_loss(np.zeros((2, 5, 3)), np.zeros((2, 5))), "rank >= 3"),
        (lambda: losses.iusp_loss(np.zeros((2, 5, 3)), np.zeros((3, 5, 3))), "same batch size"),
        (lambda: losses.iusp_loss(np.zeros((2, 5, 3)), np.zeros((2, 5, 3)), form="cos"),
         "form='cos'"),
        (lambda: losses.iusp_loss_lowrank(np.zeros((2, 5, 3)), np.zeros((2, 5, 3)), form="x"),
         "expected one of"),
        (lambda: losses.self_similarity(np.zeros((2, 5, 3)), form="Paper"), "form='Paper'"),
        (lambda: losses.sp_loss(np.zeros((2, 5)), np.zeros((3, 5))), "same batch size"),
        (lambda: losses.sp_loss(np.zeros((2,)), np.zeros((2,))), "rank >= 2"),
        (lambda: losses.kd_loss(np.zeros((2, 5)), np.zeros((2, 4))), "same shape"),
        (lambda: losses.kd_loss(np.zeros((2, 5)), np.zeros((2, 5)), temperature=0.0), "> 0"),
        (lambda: losses.bce(np.zeros((2, 5)), np.zeros((2, 4))), "same shape"),
        (lambda: losses.bce(np.zeros((2,)), np.zeros((2,))), r"\[B, C\]"),
    ],
)
def test_shape_errors_are_clear_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
