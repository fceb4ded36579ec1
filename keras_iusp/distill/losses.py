"""Training losses: supervised BCE, multi-label KD, SP (Tung & Mori) and IUSP (Chang et al.).

Everything here is a plain TensorFlow function on tensors, so the same code serves the
``tf_keras`` training loop, custom loops and the Keras 3 adapter (:mod:`keras_iusp.distill.keras3`).

Shapes use ``B`` for the batch, ``C`` for classes and ``T`` for frames (time steps of a feature
map). Per-example losses return ``[B]`` so callers can weight or mask clips before the batch
mean; :func:`sp_loss` is inherently a batch-level quantity and returns a scalar.

The distillation losses (:func:`kd_loss`, :func:`sp_loss`, :func:`iusp_loss`) apply
``tf.stop_gradient`` to the teacher's inputs: a teacher is a fixed target and is never trained by
them, even when a caller forgets to freeze it.

Half-precision inputs (``float16``/``bfloat16``, e.g. under a mixed-precision policy) are computed
in ``float32``: Gram matrices sum ``D`` products and overflow ``float16`` easily, and the
normalisation epsilon (``1e-12``) underflows to zero in ``float16``, which would turn silent
frames into NaN. Other float dtypes are kept; integer inputs become ``float32``.

References:
    Hinton, Vinyals & Dean, "Distilling the knowledge in a neural network", 2015.
    Tung & Mori, "Similarity-preserving knowledge distillation", ICCV 2019.
    Chang et al., "Intra-utterance similarity preserving knowledge distillation for audio
    tagging", Interspeech 2020 (arXiv 2009.01759).
"""

from __future__ import annotations

import numbers
from typing import Any

import tensorflow as tf

from keras_iusp.distill import iusp_fast
from keras_iusp.distill.frames import (
    DEFAULT_IUSP_FORM,
    IUSP_FORMS,
    NORM_EPS,
    as_frames,
    check_form,
    dim,
    feature_size,
    unit_frames,
)
from keras_iusp.distill.iusp_fast import (
    LOWRANK_FLOAT32_RTOL,
    bilinear_resize_matrix,
    iusp_prefers_lowrank,
)

__all__ = [
    "bce",
    "kd_loss",
    "sp_loss",
    "self_similarity",
    "resize_similarity",
    "bilinear_resize_matrix",
    "iusp_loss",
    "iusp_loss_lowrank",
    "iusp_prefers_lowrank",
    "LOWRANK_FLOAT32_RTOL",
    "IUSP_IMPLEMENTATIONS",
    "IUSP_FORMS",
    "DEFAULT_IUSP_FORM",
]


TensorLike = Any  # tf.Tensor, np.ndarray, nested lists: anything tf.convert_to_tensor accepts


def _as_float(x: TensorLike, name: str) -> tf.Tensor:
    """Convert to a float tensor; half precision and integers are promoted to float32."""
    t = tf.convert_to_tensor(x, name=name)
    if not t.dtype.is_floating or t.dtype in (tf.float16, tf.bfloat16):
        t = tf.cast(t, tf.float32)
    return t


def _common_float(a: TensorLike, b: TensorLike, name_a: str, name_b: str
                  ) -> tuple[tf.Tensor, tf.Tensor]:
    """Convert both to float tensors of one dtype (the wider one), so mixed inputs combine."""
    ta, tb = _as_float(a, name_a), _as_float(b, name_b)
    if ta.dtype != tb.dtype:
        wide = tf.float64 if tf.float64 in (ta.dtype, tb.dtype) else tf.float32
        ta, tb = tf.cast(ta, wide), tf.cast(tb, wide)
    return ta, tb


def _check_rank(t: tf.Tensor, min_rank: int, what: str, expected: str) -> None:
    rank = t.shape.rank
    if rank is not None and rank < min_rank:
        raise ValueError(f"{what}: expected {expected}, got a rank-{rank} tensor of shape "
                         f"{t.shape}")


def _check_same_batch(a: tf.Tensor, b: tf.Tensor, what: str) -> None:
    """ValueError when the static batch sizes differ; a runtime assertion when unknown."""
    ba, bb = a.shape[0], b.shape[0]
    message = (f"{what}: teacher and student must have the same batch size (one row per clip); "
               f"got teacher {a.shape} and student {b.shape}")
    if ba is not None and bb is not None:
        if ba != bb:
            raise ValueError(message)
    else:  # only known when the graph runs (tf.function with a None batch dimension)
        tf.debugging.assert_equal(tf.shape(a)[0], tf.shape(b)[0], message=message)


def _check_same_shape(a: tf.Tensor, b: tf.Tensor, what: str, names: tuple[str, str]) -> None:
    if not a.shape.is_compatible_with(b.shape):
        raise ValueError(f"{what}: expected {names[0]} and {names[1]} of the same shape, got "
                         f"{a.shape} and {b.shape}")


def _mean_over_non_batch(x: tf.Tensor) -> tf.Tensor:
    """Mean over every axis but the first: ``[B, ...] -> [B]``."""
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def bce(labels: TensorLike, logits: TensorLike) -> tf.Tensor:
    """Per-example multi-label binary cross-entropy from logits, ``[B, C] -> [B]``.

    ``bce_b = mean_c [ -y_bc log σ(z_bc) - (1 - y_bc) log(1 - σ(z_bc)) ]``

    Audio tagging is multi-label (several sources sound at once), so each class is an
    independent sigmoid rather than one softmax. Computed from logits with
    ``tf.nn.sigmoid_cross_entropy_with_logits`` (``max(z, 0) - z y + log(1 + e^{-|z|})``),
    which never evaluates ``log(0)``. The mean (not the sum) over classes keeps the loss scale
    independent of the taxonomy size. Extra non-batch axes (e.g. frame-level ``[B, T, C]``)
    are averaged too. ``labels`` may be soft targets in ``[0, 1]``.

    Raises:
        ValueError: rank < 2, or ``labels`` and ``logits`` of different shapes.
    """
    logits = _as_float(logits, "logits")
    labels = tf.cast(_as_float(labels, "labels"), logits.dtype)
    _check_rank(logits, 2, "bce", "logits of shape [B, C]")
    _check_same_shape(labels, logits, "bce", ("labels", "logits"))
    return _mean_over_non_batch(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels,
                                                                          logits=logits))


def kd_loss(teacher_logits: TensorLike, student_logits: TensorLike,
            temperature: float = 4.0) -> tf.Tensor:
    """Multi-label knowledge distillation (Hinton et al.), ``[B, C] x [B, C] -> [B]``.

    ``kd_b = T² · mean_c BCE(σ(t_bc / T), σ(s_bc / T))``

    i.e. every class's teacher probability softened by the temperature ``T`` is a soft target
    for the student's softened sigmoid. A softmax KL divergence would wrongly force the classes
    to compete; for sigmoid outputs the per-class Bernoulli cross-entropy is the analogue. The
    prediction side is computed from the student's logits
    (``sigmoid_cross_entropy_with_logits(labels=σ(t/T), logits=s/T)``) for numerical stability.

    The ``T²`` factor follows Hinton's argument: softening by ``T`` scales the gradients
    w.r.t. the student logits by ``1/T²``, so multiplying back keeps the KD term's weight
    comparable to the hard-label loss when ``T`` changes.

    Note:
        This is a cross-entropy, not a KL divergence: for identical logits it is **not** 0 but
        ``T² · mean_c H(σ(t/T))``, the (scaled) entropy of the soft targets. That constant
        does not depend on the student, so gradients and optima are those of the KL form; only
        the reported value is offset.

    The teacher's logits go through ``tf.stop_gradient``.

    Raises:
        ValueError: non-positive temperature, rank < 2, or differently shaped logits.
    """
    if isinstance(temperature, numbers.Real) and not temperature > 0:
        raise ValueError(f"kd_loss: expected a temperature > 0, got {temperature!r}")
    teacher, student = _common_float(teacher_logits, student_logits,
                                     "teacher_logits", "student_logits")
    _check_rank(student, 2, "kd_loss", "logits of shape [B, C]")
    _check_same_shape(teacher, student, "kd_loss", ("teacher_logits", "student_logits"))
    teacher = tf.stop_gradient(teacher)
    t = tf.cast(temperature, student.dtype)
    targets = tf.sigmoid(teacher / t)
    per_class = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=student / t)
    return t * t * _mean_over_non_batch(per_class)


def _row_normalized_gram(q: tf.Tensor) -> tf.Tensor:
    """``G = Q Qᵀ`` over the last two axes, each row scaled to unit L2 norm (zero rows stay 0)."""
    g = tf.matmul(q, q, transpose_b=True)
    return tf.math.l2_normalize(g, axis=-1, epsilon=NORM_EPS)


def sp_loss(teacher_feats: TensorLike, student_feats: TensorLike) -> tf.Tensor:
    """Similarity-preserving KD (Tung & Mori, ICCV 2019): scalar over the batch.

    ``A ∈ R^{b×d}`` is each example's activation flattened to a vector (``[b, ...] -> [b, d]``),
    ``G = A Aᵀ ∈ R^{b×b}`` with every row L2-normalised, and

    ``L_SP = ||G_t - G_s||²_F / b²``.

    The student is asked to reproduce *which clips of the batch look alike* to the teacher, not
    the teacher's activations themselves, so the two networks may have different layer shapes
    (only ``b`` must agree: ``d_t ≠ d_s`` is fine) and no adaptor layer is needed.

    Row normalisation makes the loss invariant to scaling a whole batch of features by a
    positive constant, but not to scaling one example: that changes the example's similarity to
    the others relative to its own norm. (Contrast :func:`iusp_loss`, which is per clip.)

    The teacher's features go through ``tf.stop_gradient``.

    Raises:
        ValueError: rank < 2 (no feature axis) or different batch sizes.
    """
    teacher, student = _common_float(teacher_feats, student_feats,
                                     "teacher_feats", "student_feats")
    _check_rank(teacher, 2, "sp_loss", "teacher features of shape [B, ...] with rank >= 2")
    _check_rank(student, 2, "sp_loss", "student features of shape [B, ...] with rank >= 2")
    _check_same_batch(teacher, student, "sp_loss")
    teacher = tf.stop_gradient(teacher)
    a_t = tf.reshape(teacher, [tf.shape(teacher)[0], -1])
    a_s = tf.reshape(student, [tf.shape(student)[0], -1])
    g_t = _row_normalized_gram(a_t)
    g_s = _row_normalized_gram(a_s)
    b = tf.cast(tf.shape(a_s)[0], student.dtype)
    return tf.reduce_sum(tf.square(g_t - g_s)) / (b * b)


def self_similarity(x: TensorLike, form: str = "paper") -> tf.Tensor:
    """Intra-utterance self-similarity, ``[B, T, ...] -> [B, T, T]``.

    Each clip's feature map is read as ``T`` frame vectors ``Q ∈ R^{T×D}`` (``D`` = product of
    the remaining axes, e.g. ``F·C`` for a conv map ``[B, T, F, C]``). ``G[i, j]`` says how much
    frame ``i`` resembles frame ``j`` in the clip: the temporal structure of the sound
    (repetitions, onsets, stationarity), independent of the layer's width ``D``. Forms:

    - ``"paper"`` (Chang et al. 2020): ``G = Q Qᵀ`` with every *row* L2-normalised,
      ``G[i, :] /= ||G[i, :]||₂``. Entries are about ``1/√T``. For non-negative (ReLU) frames
      every entry is positive and the map is mostly the constant that the frames' common
      component produces; the repetition pattern is a small modulation on top of it.
    - ``"cosine"``: ``G[i, j] = q_iᵀ q_j / (||q_i|| ||q_j||)``, the Gram matrix of the
      L2-normalised *frames* (cosine self-similarity): entries in ``[-1, 1]``, diagonal 1,
      whatever ``T``. Symmetric, which the paper's map is not.
    - ``"centered"``: the cosine form after subtracting the clip's mean frame
      ``q̄ = (1/T) Σ_t q_t`` from every frame, so the part that all frames share (the DC
      component) cannot dominate the map; ``G[i, j]`` is then how frames ``i`` and ``j``
      deviate from the clip's average in the same direction.

    All forms are invariant to the clip's overall activation scale. An all-zero frame (silence
    after a ReLU; in ``"centered"``, a frame equal to the clip's mean) gives an all-zero row
    (and, except in ``"paper"``, column), not NaN; rows/frames with squared norm below 1e-12
    are not fully normalised.

    Raises:
        ValueError: rank < 3 (no frame axis plus feature axis) or an unknown ``form``.
    """
    check_form(form, "self_similarity")
    q = _as_float(x, "x")
    _check_rank(q, 3, "self_similarity", "features of shape [B, T, ...] with rank >= 3")
    q = as_frames(q)
    if form == "paper":
        return _row_normalized_gram(q)
    u = unit_frames(q, center=form == "centered")
    return tf.matmul(u, u, transpose_b=True)


def resize_similarity(g: TensorLike, size: int | tf.Tensor) -> tf.Tensor:
    """Bilinearly resize a batch of ``[B, T, T]`` similarity maps to ``[B, size, size]``.

    Used to compare a student's ``T_s × T_s`` matrix with a teacher's ``T_t × T_t`` one when
    the two networks pool time differently. It is ``tf.image.resize(..., "bilinear")`` with
    TF2's half-pixel centres (source coordinate ``(dst + 0.5)·in/out - 0.5`` clamped to
    ``[0, in-1]``) and no antialiasing, applied to the map as a one-channel image. When the
    size already matches (statically) the input is returned unchanged. The result keeps
    ``g``'s float dtype (``tf.image.resize`` itself always returns float32).

    Raises:
        ValueError: ``g`` is not rank 3 or ``size`` is not a positive integer.
    """
    g = _as_float(g, "g")
    if g.shape.rank is not None and g.shape.rank != 3:
        raise ValueError(f"resize_similarity: expected similarity maps of shape [B, T, T], got "
                         f"shape {g.shape}")
    if isinstance(size, numbers.Integral):
        if size <= 0:
            raise ValueError(f"resize_similarity: expected a positive size, got {size!r}")
        if g.shape[1] == size and g.shape[2] == size:
            return g
    elif isinstance(size, numbers.Number):
        raise ValueError(f"resize_similarity: expected an integer size, got {size!r}")
    resized = tf.image.resize(g[..., None], tf.stack([size, size]), method="bilinear",
                              antialias=False)[..., 0]
    return tf.cast(resized, g.dtype)


def _iusp_inputs(teacher_feats: TensorLike, student_feats: TensorLike, what: str
                 ) -> tuple[tf.Tensor, tf.Tensor]:
    """Validated float ``(teacher, student)`` for IUSP; the teacher is a stopped gradient."""
    teacher, student = _common_float(teacher_feats, student_feats,
                                     "teacher_feats", "student_feats")
    _check_rank(teacher, 3, what, "teacher features of shape [B, T, ...] with rank >= 3")
    _check_rank(student, 3, what, "student features of shape [B, T, ...] with rank >= 3")
    _check_same_batch(teacher, student, what)
    return tf.stop_gradient(teacher), student


def _iusp_reference(teacher: tf.Tensor, student: tf.Tensor, form: str = "paper") -> tf.Tensor:
    """IUSP by its definition: both ``T × T`` similarity maps, resized, compared entrywise."""
    g_t = self_similarity(teacher, form)
    g_s = self_similarity(student, form)
    t_static = g_t.shape[1]
    t_t = t_static if t_static is not None else tf.shape(g_t)[1]
    g_s = resize_similarity(g_s, t_t)
    n = tf.cast(t_t, g_t.dtype)
    return tf.reduce_sum(tf.square(g_t - g_s), axis=[1, 2]) / (n * n)


def iusp_loss_lowrank(teacher_feats: TensorLike, student_feats: TensorLike,
                      form: str = DEFAULT_IUSP_FORM) -> tf.Tensor:
    """:func:`iusp_loss` computed without any ``T × T`` matrix: same value, ``O(T·D²)`` time.

    Every form's map is a product of two ``T × D`` factors, so every form has this exact fast
    path. Bilinear resizing is a linear map ``R`` on each axis (:func:`bilinear_resize_matrix`),
    so a resized map is ``R G_s Rᵀ``, and the squared Frobenius distance of two such products
    expands into elementwise products of ``D × D`` Gram matrices, giving the exact IUSP value in
    ``O(T·D²)`` time and ``O(T·D)`` memory instead of ``O(T²·D)`` / ``O(T²)``:

    - ``"cosine"``/``"centered"``: ``G = U Uᵀ`` with ``U`` the (centred,) unit frames;
      ``||U_tU_tᵀ - R U_sU_sᵀ Rᵀ||²_F = ||U_tᵀU_t||²_F - 2||(RᵀU_t)ᵀU_s||²_F
      + ||U_sᵀ(RᵀR)U_s||²_F``, evaluated after splitting off the maps' constant part
      (:func:`keras_iusp.distill.iusp_fast.unit_terms`), which cosine maps of ReLU features
      mostly are.
    - ``"paper"``: ``G = D⁻¹ Q Qᵀ`` (``D`` the row norms of ``Q Qᵀ``, computed as
      ``q_iᵀ(QᵀQ)q_i``), a product of ``D⁻¹Q`` and ``Q``; the same expansion with two factors.

    ``R`` is never a dense matrix: ``RᵀU_t`` is a few row gathers of the teacher's frames (forward
    only: the teacher gets no gradient) and ``RᵀR`` is tridiagonal, so the student's products run
    at its own frame count without gathers on its gradient path.

    Precision: the expansion subtracts terms up to ``~T²`` to get a result that can be far
    smaller. Float64 features are computed in float64. Float32 features are computed in float32
    first and that result is kept only when its predicted rounding error is at most
    :data:`LOWRANK_FLOAT32_RTOL` of the loss; otherwise (nearly identical teacher and student
    maps) the batch is recomputed in float64 (:func:`keras_iusp.distill.iusp_fast.lowrank_squared`).
    Its accuracy and speed, measured: ``docs/performance.md``.
    Arguments, shapes, the teacher's stopped gradient and the ``[B]`` result are those of
    :func:`iusp_loss`.

    Raises:
        ValueError: rank < 3, different batch sizes or an unknown ``form``.
    """
    check_form(form, "iusp_loss_lowrank")
    teacher, student = _iusp_inputs(teacher_feats, student_feats, "iusp_loss_lowrank")
    return iusp_fast.iusp_lowrank(teacher, student, form)


#: Valid ``implementation`` values of :func:`iusp_loss`.
IUSP_IMPLEMENTATIONS = ("auto", "reference", "lowrank")


def iusp_loss(teacher_feats: TensorLike, student_feats: TensorLike,
              implementation: str = "auto", form: str = DEFAULT_IUSP_FORM) -> tf.Tensor:
    """Intra-utterance similarity preserving KD (Chang et al. 2020), per clip ``-> [B]``.

    ``L_b = ||G_t,b - resize(G_s,b, T_t)||²_F / T_t²``, ``G = self_similarity(features, form)``:

    - ``form="paper"``: the paper's map, ``G = Q Qᵀ`` with L2-normalised rows. Its entries are
      about ``1/√T``, so this loss shrinks like ``1/T`` (at most ``4/T_t``): a weight tuned at
      one frame count is too small at a higher one.
    - ``form="cosine"`` (default, see :data:`DEFAULT_IUSP_FORM`): ``G[i, j] = cos(q_i, q_j)``.
    - ``form="centered"``: the cosine of the frames minus the clip's mean frame.

    For the two cosine forms every entry lies in ``[-1, 1]`` whatever ``T``, so dividing by
    ``T_t²`` makes the loss the *mean* squared difference of the two maps' entries (at most 4):
    one weight serves any frame count, and no ``T``-dependent factor is needed on top.

    Where SP (:func:`sp_loss`) relates different clips of a batch, IUSP relates the frames
    *within* each clip: the student learns the teacher's temporal self-similarity pattern.
    Teacher features are ``[B, T_t, ...]`` and student features ``[B, T_s, ...]``; frame
    counts and feature sizes may differ (the student's map is resized bilinearly to
    ``T_t × T_t``, see :func:`resize_similarity`). The batch mean of the result is the paper's
    loss; returning ``[B]`` lets callers weight clips. The value is unchanged when one clip's
    (teacher or student) features are multiplied by a positive constant.

    The teacher's features go through ``tf.stop_gradient``.

    Args:
        implementation: ``"reference"`` builds both ``T × T`` maps as defined above (``O(T²·D)``
            time, ``O(T²)`` memory per clip); ``"lowrank"`` is :func:`iusp_loss_lowrank`, the
            same value from ``D × D`` Gram matrices (``O(T·D²)``, ``O(T·D)``);
            ``"auto"`` (default) picks whichever a measured cost model says is faster for the
            shapes (:func:`iusp_prefers_lowrank`: lowrank needs ``D_t < T_t`` and ``D_s < T_s``,
            ``D`` = features per frame, and then wins as ``T`` grows), decided in Python when
            the shapes are static and with ``tf.cond`` otherwise. Both agree with the
            reference evaluated in float64 to 1e-4 relative, values and gradients (tested);
            their accuracy and speed, measured: ``docs/performance.md``.

    Raises:
        ValueError: rank < 3, different batch sizes, an unknown ``implementation`` or ``form``.
    """
    if implementation not in IUSP_IMPLEMENTATIONS:
        raise ValueError(f"iusp_loss: implementation={implementation!r}; expected one of "
                         f"{list(IUSP_IMPLEMENTATIONS)}")
    check_form(form, "iusp_loss")
    teacher, student = _iusp_inputs(teacher_feats, student_feats, "iusp_loss")
    if implementation == "reference":
        return _iusp_reference(teacher, student, form)
    if implementation == "lowrank":
        return iusp_fast.iusp_lowrank(teacher, student, form)
    lowrank = iusp_prefers_lowrank(dim(teacher, 1), dim(student, 1), feature_size(teacher),
                                   feature_size(student), form=form)
    if isinstance(lowrank, bool):
        return (iusp_fast.iusp_lowrank if lowrank else _iusp_reference)(teacher, student, form)
    return tf.cond(lowrank, lambda: iusp_fast.iusp_lowrank(teacher, student, form),
                   lambda: _iusp_reference(teacher, student, form))
