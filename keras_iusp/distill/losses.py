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

import functools
import numbers
import os
from typing import Any

import numpy as np
import tensorflow as tf

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

# Guard for the L2 normalisation of similarity rows: rows whose squared norm is below it are
# divided by sqrt(eps) instead, so an all-zero row (a silent / dead frame) stays exactly 0.
_NORM_EPS = 1e-12

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
    return tf.math.l2_normalize(g, axis=-1, epsilon=_NORM_EPS)


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


#: Valid ``form`` values of :func:`self_similarity` and :func:`iusp_loss`.
IUSP_FORMS = ("paper", "cosine", "centered")

#: The form :func:`iusp_loss` and :class:`keras_iusp.IUSPDistillation` use unless told otherwise.
#: Chosen by measurement (``docs/iusp_diagnosis.md``): trained on the IUSP term alone, a
#: ``cnn_lstm_xs`` student lowered its validation distance by far more in this form than in the
#: paper's, whose map is mostly a constant for non-negative (ReLU) features.
DEFAULT_IUSP_FORM = "cosine"


def _check_form(form: str, owner: str) -> None:
    if form not in IUSP_FORMS:
        raise ValueError(f"{owner}: form={form!r}; expected one of {list(IUSP_FORMS)}")


def _as_frames(q: tf.Tensor) -> tf.Tensor:
    """``[B, T, ...] -> [B, T, D]`` with ``D`` the product of the trailing axes."""
    shape = tf.shape(q)
    return tf.reshape(q, [shape[0], shape[1], _feature_size(q)])


def _unit_frames(q: tf.Tensor, center: bool) -> tf.Tensor:
    """Frames ``[B, T, D]`` scaled to unit L2 norm, optionally after removing the clip's mean frame.

    The scale is ``rsqrt(max(||q_i||², 1e-12))`` (``tf.math.l2_normalize``), so an all-zero frame
    stays exactly 0 (and, centred, so does every frame of a clip whose frames are all equal).
    """
    if center:
        q = q - tf.reduce_mean(q, axis=1, keepdims=True)
    return tf.math.l2_normalize(q, axis=-1, epsilon=_NORM_EPS)


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
    _check_form(form, "self_similarity")
    q = _as_float(x, "x")
    _check_rank(q, 3, "self_similarity", "features of shape [B, T, ...] with rank >= 3")
    q = _as_frames(q)
    if form == "paper":
        return _row_normalized_gram(q)
    u = _unit_frames(q, center=form == "centered")
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


def _dim(t: tf.Tensor, axis: int) -> int | tf.Tensor:
    """Static size of ``axis`` when known, else the runtime size."""
    static = t.shape[axis]
    return static if static is not None else tf.shape(t)[axis]


def _feature_size(t: tf.Tensor) -> int | tf.Tensor:
    """``D``: product of the axes after ``[B, T]`` (static when all of them are known)."""
    static = t.shape[2:]
    if static.is_fully_defined():
        return int(static.num_elements())
    return tf.reduce_prod(tf.shape(t)[2:])


def _iusp_reference(teacher: tf.Tensor, student: tf.Tensor, form: str = "paper") -> tf.Tensor:
    """IUSP by its definition: both ``T × T`` similarity maps, resized, compared entrywise."""
    g_t = self_similarity(teacher, form)
    g_s = self_similarity(student, form)
    t_static = g_t.shape[1]
    t_t = t_static if t_static is not None else tf.shape(g_t)[1]
    g_s = resize_similarity(g_s, t_t)
    n = tf.cast(t_t, g_t.dtype)
    return tf.reduce_sum(tf.square(g_t - g_s), axis=[1, 2]) / (n * n)


def bilinear_resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The linear map of 1-D bilinear resizing as a matrix ``R`` of shape ``[out_size, in_size]``.

    ``tf.image.resize(x, ..., method="bilinear", antialias=False)`` is separable and linear, so
    resizing a ``[H, W]`` map is ``R_H @ x @ R_Wᵀ`` with this matrix on each axis. TF2's
    half-pixel centres are used: output ``o`` samples the source coordinate
    ``c = (o + 0.5)·in/out - 0.5`` from the two nearest inputs ``floor(c)`` and ``ceil(c)``
    (clamped to ``[0, in-1]``) with weights ``1 - frac(c)`` and ``frac(c)``. There is no
    antialiasing, so downsampling also mixes only two inputs per output; ``in == out`` gives the
    identity. The coordinates are computed in float32 as TensorFlow's kernel computes them (so
    the taps and weights are the kernel's); the matrix is returned in float64.

    Raises:
        ValueError: a size is not a positive integer.
    """
    for name, value in (("in_size", in_size), ("out_size", out_size)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"bilinear_resize_matrix: expected a positive integer {name}, got "
                             f"{value!r}")
    lower, upper, lerp = _resize_taps_np(int(in_size), int(out_size))
    rows = np.arange(out_size)
    matrix = np.zeros((out_size, in_size), np.float64)
    np.add.at(matrix, (rows, lower), 1.0 - lerp)
    np.add.at(matrix, (rows, upper), lerp)
    return matrix


def _resize_taps_np(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy twin of :func:`_resize_taps` (float32 arithmetic, like the TF kernel)."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
    return lower, upper, (src - floor).astype(np.float64)


def _resize_taps(in_size: int | tf.Tensor, out_size: int | tf.Tensor
                 ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Indices and weight of the two inputs each output of a 1-D bilinear resize reads.

    Mirrors ``ResizeBilinear(half_pixel_centers=True)``: ``c = (o + 0.5)·scale - 0.5`` in float32,
    ``lower = max(floor(c), 0)``, ``upper = min(ceil(c), in - 1)``, weight ``c - floor(c)``.
    """
    scale = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
    src = (tf.range(out_size, dtype=tf.float32) + 0.5) * scale - 0.5
    floor = tf.floor(src)
    lower = tf.maximum(tf.cast(floor, tf.int32), 0)
    upper = tf.minimum(tf.cast(tf.math.ceil(src), tf.int32), tf.cast(in_size, tf.int32) - 1)
    return lower, upper, src - floor


def _resize_frames(x: tf.Tensor, taps: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tf.Tensor:
    """``R @ x`` along axis 1 of ``[B, T_in, D]`` in ``O(T·D)``: two gathers and a lerp."""
    lower, upper, lerp = taps
    w = tf.cast(lerp, x.dtype)[None, :, None]
    return tf.gather(x, lower, axis=1) * (1.0 - w) + tf.gather(x, upper, axis=1) * w


def _resize_adjoint(x: tf.Tensor, taps: tuple[tf.Tensor, tf.Tensor, tf.Tensor],
                    in_size: int | tf.Tensor) -> tf.Tensor:
    """``Rᵀ @ x`` along axis 1, ``[B, T_out, D] -> [B, T_in, D]``.

    Applied to the teacher's frames, so the student-side products of the low-rank forms run at
    the student's frame count and their gradients never pass through a gather. With static sizes
    it is :func:`_resize_adjoint_windows` (2-3x faster); otherwise two segment sums.
    """
    out_size = x.shape[1]
    if isinstance(in_size, numbers.Integral) and out_size is not None:
        return _resize_adjoint_windows(x, int(in_size), int(out_size))
    lower, upper, lerp = taps
    w = tf.cast(lerp, x.dtype)[:, None, None]
    rows = tf.transpose(x, [1, 0, 2])  # [T_out, B, D]: segment sums work on the first axis
    out = (tf.math.unsorted_segment_sum(rows * (1.0 - w), lower, in_size)
           + tf.math.unsorted_segment_sum(rows * w, upper, in_size))
    return tf.transpose(out, [1, 0, 2])


@functools.lru_cache(maxsize=64)
def _adjoint_windows(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``idx [K, in]`` and weights ``w [K, in]`` with ``(Rᵀx)_j = Σ_k w[k, j]·x[idx[k, j]]``.

    Column ``j`` of ``R`` is non-zero on a contiguous range of outputs (the outputs whose two
    taps include input ``j``); ``K`` is the longest range (4 for a 2x upsampling) and shorter
    ranges are padded with weight 0 on a valid row.
    """
    r = bilinear_resize_matrix(in_size, out_size)  # [out, in]
    nonzero = r != 0
    # Downsampling by more than 2x skips some inputs: their column is all zero. Without this,
    # argmax would give such a column the range 0..out-1 and K would become out_size (one
    # gather per output row: measured 6x slower than the reference loss at 499 -> 249 frames).
    used = nonzero.any(axis=0)
    first = np.where(used, np.argmax(nonzero, axis=0), 0)
    last = np.where(used, out_size - 1 - np.argmax(nonzero[::-1], axis=0), 0)
    width = int((last - first).max()) + 1
    rows = first[None, :] + np.arange(width)[:, None]
    idx = np.minimum(rows, out_size - 1)
    w = np.where(rows <= last[None, :], r[idx, np.arange(in_size)[None, :]], 0.0)
    return idx.astype(np.int32), w


def _resize_adjoint_windows(x: tf.Tensor, in_size: int, out_size: int) -> tf.Tensor:
    """``Rᵀ @ x`` for static sizes as ``K`` row gathers weighted per output row.

    Each gather copies whole contiguous ``D``-rows and the weights broadcast along ``D``, so this
    avoids the segment sums' transposes and scattered adds (profiled at 8 ms of the 17 ms
    float32 cosine loss at ``[16, 1000, 128]``).
    """
    idx, w = _adjoint_windows(in_size, out_size)
    out = None
    for k in range(idx.shape[0]):
        term = tf.gather(x, idx[k], axis=1) * tf.constant(w[k][None, :, None], x.dtype)
        out = term if out is None else out + term
    return out


def _resize_gram_operator(taps: tuple[tf.Tensor, tf.Tensor, tf.Tensor], in_size: int | tf.Tensor,
                          dtype: tf.DType):
    """``x ↦ RᵀR x`` along axis 1 of ``[B, T_in, D]`` without gathers: ``RᵀR`` is tridiagonal.

    Every row of ``R`` has its two taps on adjacent inputs (or one input with weight 1), so
    ``RᵀR = diag(α) + diag(β, 1) + diag(β, -1)`` with ``α_j = Σ_o R[o, j]²`` and
    ``β_j = Σ_o R[o, j]·R[o, j+1]``; both are built from the taps (no gradient flows there).
    Then ``(R x)ᵀ(R y) = xᵀ (RᵀR y)``, so the resized student Gram costs ``O(T_in·D²)``.

    ``RᵀR`` is symmetric, so the gradient of ``x ↦ RᵀR x`` is the same map applied to the
    upstream gradient: a custom gradient does exactly that instead of differentiating the
    slices (TensorFlow's ``StridedSliceGrad`` took 4 of the 17 ms of the float32 cosine loss at
    ``[16, 1000, 128]`` / ``[16, 500, 32]``).
    """
    lower, upper, lerp = taps
    a, b = tf.cast(1.0 - lerp, dtype), tf.cast(lerp, dtype)
    same = tf.cast(tf.equal(lower, upper), dtype)
    alpha = (tf.math.unsorted_segment_sum(a * a + 2.0 * a * b * same, lower, in_size)
             + tf.math.unsorted_segment_sum(b * b, upper, in_size))
    beta = tf.math.unsorted_segment_sum(a * b * (1.0 - same), lower, in_size)[:-1]
    beta = beta[None, :, None]
    alpha = alpha[None, :, None]

    def tridiagonal(x: tf.Tensor) -> tf.Tensor:
        zero = tf.zeros_like(x[:, :1])
        above = tf.concat([beta * x[:, 1:], zero], axis=1)  # row j += β_j x_{j+1}
        below = tf.concat([zero, beta * x[:, :-1]], axis=1)  # row j += β_{j-1} x_{j-1}
        return alpha * x + above + below

    @tf.custom_gradient
    def apply(x: tf.Tensor):
        return tridiagonal(x), tridiagonal

    return apply


def _normalized_rows(q: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(D⁻¹ Q, ||D⁻¹ Q Qᵀ||²_F)`` with ``D`` the row norms of ``Q Qᵀ``, without forming it.

    Row ``i`` of ``Q Qᵀ`` has squared norm ``q_iᵀ (QᵀQ) q_i``; the scale is
    ``rsqrt(max(norm², 1e-12))`` exactly as ``tf.math.l2_normalize`` in :func:`self_similarity`,
    and the normalised map's squared Frobenius norm is ``Σ_i norm²_i · scale²_i`` (about the
    number of non-zero frames).
    """
    gram = tf.matmul(q, q, transpose_a=True)  # [B, D, D]
    norm2 = tf.reduce_sum(tf.matmul(q, gram) * q, axis=-1)  # [B, T]
    scale = tf.math.rsqrt(tf.maximum(norm2, tf.cast(_NORM_EPS, q.dtype)))
    total = tf.reduce_sum(norm2 * tf.square(scale), axis=-1)  # [B]
    return q * scale[..., None], total


def _paper_terms(teacher: tf.Tensor, student: tf.Tensor, dtype: tf.DType
                 ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, None]:
    """The paper form's three expansion terms ``(||A||², Σ cross, Σ student)``, each ``[B]``.

    ``A = U_t Q_tᵀ`` (``U = D⁻¹ Q``) and ``B = R U_s (R Q_s)ᵀ``, so
    ``||A - B||² = ||A||² - 2 Σ ((RᵀU_t)ᵀ U_s) ∘ ((RᵀQ_t)ᵀ Q_s) + Σ (U_sᵀ M U_s) ∘ (Q_sᵀ M Q_s)``
    with ``M = RᵀR`` (tridiagonal). Everything is formed in ``dtype``.
    """
    t_t, t_s = _dim(teacher, 1), _dim(student, 1)
    q_t = tf.cast(_as_frames(teacher), dtype)
    q_s = tf.cast(_as_frames(student), dtype)
    u_t, teacher_term = _normalized_rows(q_t)
    u_s, _ = _normalized_rows(q_s)
    if isinstance(t_t, int) and isinstance(t_s, int) and t_t == t_s:
        # Like resize_similarity: skipped when the sizes statically agree (then R = I anyway).
        w_u, w_q, m_u, m_q = u_t, q_t, u_s, q_s
    else:
        taps = _resize_taps(t_s, t_t)
        w_u, w_q = _resize_adjoint(u_t, taps, t_s), _resize_adjoint(q_t, taps, t_s)
        gram_op = _resize_gram_operator(taps, t_s, dtype)
        m_u, m_q = gram_op(u_s), gram_op(q_s)
    cross = tf.reduce_sum(tf.matmul(w_u, u_s, transpose_a=True)
                          * tf.matmul(w_q, q_s, transpose_a=True), axis=[1, 2])
    student_term = tf.reduce_sum(tf.matmul(u_s, m_u, transpose_a=True)
                                 * tf.matmul(q_s, m_q, transpose_a=True), axis=[1, 2])
    return teacher_term, cross, student_term, None


def _unit_terms(teacher: tf.Tensor, student: tf.Tensor, center: bool, dtype: tf.DType
                ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The cosine forms' expansion ``(t, c, s, rest)``, ``[B]`` each: ``t, c, s`` in ``dtype``.

    With ``U`` the (centred,) unit-norm frames, the maps are ``A = U_tU_tᵀ`` and
    ``B = R U_sU_sᵀ Rᵀ`` (``R`` the ``T_t × T_s`` bilinear resize, whose rows sum to 1), and
    ``X = A - B``. Cosine maps of ReLU features are mostly one constant (every pair of frames
    shares the common component), so expanding ``||X||²`` directly gives three terms up to ~900x
    the loss, whose float32 rounding then swamps it. Split off the constant first: with
    ``n = T_t``, ``P = I - 11ᵀ/n`` and ``x = X1``,

    ``||X||² = ||PXP||² + 2||Px||²/n + (1ᵀx)²/n²``

    (the four blocks of ``(P + 11ᵀ/n) X (P + 11ᵀ/n)`` are orthogonal). ``PXP = ŨŨᵀ - ṼṼᵀ`` with
    ``Ũ_t = U_t - 1aᵀ/n`` (``a = U_tᵀ1``) and ``Ṽ = R Ũ_s``, ``Ũ_s = U_s - 1bᵀ/n``
    (``b = U_sᵀRᵀ1``, using ``R1 = 1``), so

    ``||PXP||² = ||Ũ_tᵀŨ_t||² - 2||(RᵀŨ_t)ᵀŨ_s||² + ||Ũ_sᵀMŨ_s||²``, ``M = RᵀR`` tridiagonal,

    three ``D × D`` products whose size is that of the maps' *variation*. The rest only needs the
    row sums ``x = U_t a - R(U_s b)`` (``O(T·D)``), formed in float64. Centring and normalising
    happen at each network's own frame rate, before the resize, exactly as in the reference.
    """
    t_t, t_s = _dim(teacher, 1), _dim(student, 1)
    u_t = _unit_frames(tf.cast(_as_frames(teacher), dtype), center)
    u_s = _unit_frames(tf.cast(_as_frames(student), dtype), center)
    n = tf.cast(t_t, dtype)
    same = isinstance(t_t, int) and isinstance(t_s, int) and t_t == t_s
    taps = None if same else _resize_taps(t_s, t_t)
    # r = Rᵀ1: how much of the resized map each student frame feeds (1 each when R = I)
    if same:
        r = tf.ones([1, t_s, 1], dtype)
    elif isinstance(t_t, int) and isinstance(t_s, int):
        r = tf.constant(bilinear_resize_matrix(t_s, t_t).sum(axis=0)[None, :, None], dtype)
    else:
        r = _resize_adjoint(tf.ones([1, t_t, 1], dtype), taps, t_s)
    a = tf.reduce_sum(u_t, axis=1, keepdims=True)  # [B, 1, D_t]
    b = tf.reduce_sum(u_s * r, axis=1, keepdims=True)  # [B, 1, D_s]
    c_t, c_s = u_t - a / n, u_s - b / n
    teacher_term = tf.reduce_sum(tf.square(tf.matmul(c_t, c_t, transpose_a=True)), axis=[1, 2])
    if same:
        w_t, m_s = c_t, c_s
    else:
        w_t = _resize_adjoint(c_t, taps, t_s)
        m_s = _resize_gram_operator(taps, t_s, dtype)(c_s)
    cross = tf.reduce_sum(tf.square(tf.matmul(w_t, c_s, transpose_a=True)), axis=[1, 2])
    student_term = tf.reduce_sum(tf.square(tf.matmul(c_s, m_s, transpose_a=True)), axis=[1, 2])

    # The rest, 2||Px||²/n + (1ᵀx)²/n², from the row sums x = A1 - B1 = U_t a - R U_s b. x is
    # itself a small difference of large row sums (nearly identical maps), so it is formed in
    # float64 from the same unit frames; O(T·D), the sums as matrix products (a float64 reduction
    # over the time axis took 1.4 ms at [16, 1000, 128], the matmul 0.7 ms).
    u_t64, u_s64 = tf.cast(u_t, tf.float64), tf.cast(u_s, tf.float64)
    a64 = tf.matmul(tf.ones_like(u_t64[:, :, :1]), u_t64, transpose_a=True)  # [B, 1, D_t]
    b64 = tf.matmul(tf.cast(r, tf.float64) * tf.ones_like(u_s64[:, :, :1]), u_s64,
                    transpose_a=True)  # [B, 1, D_s]
    x = tf.linalg.matvec(u_t64, a64[:, 0])  # [B, T_t]
    x_s = tf.linalg.matvec(u_s64, b64[:, 0])  # [B, T_s]
    x = x - (x_s if same else _resize_frames(x_s[..., None], taps)[..., 0])
    n64 = tf.cast(t_t, tf.float64)
    total = tf.reduce_sum(x, axis=1)
    centred = x - total[:, None] / n64
    rest = 2.0 * tf.reduce_sum(tf.square(centred), axis=1) / n64 + tf.square(total / n64)
    return teacher_term, cross, student_term, rest


#: The float32 evaluation of the low-rank expansion is kept when its predicted rounding error is
#: at most this fraction of the loss (else the batch is recomputed in float64). The prediction is
#: at least 3x pessimistic (see ``_F32_ERROR``): the kept values were within 2.9e-6 of the
#: float64 ones (measured), 30x inside the 1e-4 to which the low-rank form is tested against the
#: float64 reference.
LOWRANK_FLOAT32_RTOL = 5e-5

#: Rounding error of the float32 expansion per unit of ``|t| + 2|c| + |s|`` (its three terms),
#: before the ``√max(1, T_t/256)`` growth factor, per form; ``u = 2⁻²⁴``. Measured at
#: ``T_t`` = 48..4000 (``T_s = T_t/2``, ``T_t`` and ``2T_t``; ReLU/tanh, conv-like and near-copy
#: features; oneDNN and Eigen matmuls) against the float64 evaluation, the error was at most
#: ``1.52·u`` (paper) and ``5.3·u`` (cosine forms: their centred terms are small, so the float32
#: normalisation of the frames weighs more) times ``√max(1, T_t/256)·(|t| + 2|c| + |s|)``.
_F32_ERROR = {"paper": 8.0 * 2.0**-24, "unit": 16.0 * 2.0**-24}


def _lowrank_squared(terms, teacher: tf.Tensor, t_t: int | tf.Tensor, term_error: float
                     ) -> tf.Tensor:
    """``T_t²·loss``, ``[B]``, from ``terms(dtype) -> (t, c, s, rest)``: ``t - 2c + s (+ rest)``.

    ``t``, ``c`` and ``s`` are formed in ``dtype`` and may be much larger than the loss, which
    is their small difference, so their rounding errors can swamp it (measured: float32 terms
    lose up to 1e-1 relative accuracy on nearly identical maps); ``rest`` (float64, or None) is
    accurate by construction. Float64 inputs are computed in float64. Float32 inputs are first
    computed in float32 (3-4x cheaper on CPU); that result is kept when its predicted error
    ``term_error·√max(1, T_t/256)·(|t| + 2|c| + |s|)`` (``term_error`` from ``_F32_ERROR``) is
    at most :data:`LOWRANK_FLOAT32_RTOL` of the result for every clip of the batch; otherwise (the
    small-loss regime, where the terms nearly cancel) the whole batch is recomputed in float64.
    Gradients follow the branch that was taken.
    """
    def combine(t, c, s, rest):
        squared = tf.cast(t - 2.0 * c + s, tf.float64)
        return squared if rest is None else squared + rest

    if teacher.dtype == tf.float64:
        # The exact value is >= 0; rounding may leave a few ulps below.
        return tf.maximum(combine(*terms(tf.float64)), 0.0)
    t, c, s, rest = terms(tf.float32)
    squared = combine(t, c, s, rest)
    grow = tf.sqrt(tf.maximum(tf.cast(t_t, tf.float32) / 256.0, 1.0))
    error = term_error * grow * (tf.abs(t) + 2.0 * tf.abs(c) + tf.abs(s))
    accurate = tf.reduce_all(tf.cast(error, tf.float64) <= LOWRANK_FLOAT32_RTOL * squared)

    def in_float64() -> tf.Tensor:
        return tf.cast(tf.maximum(combine(*terms(tf.float64)), 0.0), tf.float32)

    return tf.cond(accurate, lambda: tf.cast(tf.maximum(squared, 0.0), tf.float32), in_float64)


def _iusp_lowrank_paper(teacher: tf.Tensor, student: tf.Tensor) -> tf.Tensor:
    """Paper-form IUSP from the factors of the maps, in ``O(T·D²)`` time and ``O(T·D)`` memory.

    See :func:`_paper_terms` for the expansion and :func:`_lowrank_squared` for the precision:
    the three terms are each about ``T`` while their sum is ``T²·loss``, 1e-2..1e-7 of that.
    """
    t_t = _dim(teacher, 1)
    squared = _lowrank_squared(lambda dtype: _paper_terms(teacher, student, dtype), teacher, t_t,
                               _F32_ERROR["paper"])
    n = tf.cast(t_t, squared.dtype)
    return tf.cast(squared / (n * n), teacher.dtype)


def _iusp_lowrank_unit(teacher: tf.Tensor, student: tf.Tensor, center: bool) -> tf.Tensor:
    """Cosine-form IUSP (``center`` = ``"centered"``) from unit frames, ``O(T·D²)``.

    See :func:`_unit_terms` for the expansion and :func:`_lowrank_squared` for the precision:
    the terms are about ``T²`` and may nearly cancel.
    """
    t_t = _dim(teacher, 1)
    squared = _lowrank_squared(lambda dtype: _unit_terms(teacher, student, center, dtype),
                               teacher, t_t, _F32_ERROR["unit"])
    n = tf.cast(t_t, squared.dtype)
    return tf.cast(squared / (n * n), teacher.dtype)


def _iusp_lowrank(teacher: tf.Tensor, student: tf.Tensor, form: str = "paper") -> tf.Tensor:
    """The low-rank evaluation of :func:`iusp_loss` for ``form``."""
    if form == "paper":
        return _iusp_lowrank_paper(teacher, student)
    return _iusp_lowrank_unit(teacher, student, center=form == "centered")


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
      (:func:`_unit_terms`), which cosine maps of ReLU features mostly are.
    - ``"paper"``: ``G = D⁻¹ Q Qᵀ`` (``D`` the row norms of ``Q Qᵀ``, computed as
      ``q_iᵀ(QᵀQ)q_i``), a product of ``D⁻¹Q`` and ``Q``; the same expansion with two factors.

    ``R`` is never a dense matrix: ``RᵀU_t`` is a few row gathers of the teacher's frames (forward
    only: the teacher gets no gradient) and ``RᵀR`` is tridiagonal, so the student's products run
    at its own frame count without gathers on its gradient path.

    Precision: the expansion subtracts terms up to ``~T²`` to get a result that can be 1e-7 of
    them. Float64 features are computed in float64. Float32 features are computed in float32
    first and that result is kept only when its predicted rounding error is at most
    :data:`LOWRANK_FLOAT32_RTOL` (5e-5) of the loss; otherwise (nearly identical teacher and
    student maps) the batch is recomputed in float64, where the error is ~1e-7 like the float32
    reference's (:func:`_lowrank_squared`). Kept float32 values were measured within 3e-6 of the
    float64 evaluation. At ``[16, 1000, 128]`` / ``[16, 500, 32]`` the float32 path takes 16 ms
    (cosine) and 21 ms (paper) of CPU for forward + backward, a refused one 57 and 89 ms.
    Arguments, shapes, the teacher's stopped gradient and the ``[B]`` result are those of
    :func:`iusp_loss`.

    Raises:
        ValueError: rank < 3, different batch sizes or an unknown ``form``.
    """
    _check_form(form, "iusp_loss_lowrank")
    teacher, student = _iusp_inputs(teacher_feats, student_feats, "iusp_loss_lowrank")
    return _iusp_lowrank(teacher, student, form)


#: Valid ``implementation`` values of :func:`iusp_loss`.
IUSP_IMPLEMENTATIONS = ("auto", "reference", "lowrank")


@functools.lru_cache(maxsize=1)
def _uses_onednn() -> bool:
    """Whether TensorFlow runs float32 matmuls through oneDNN (default on x86 Linux)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # private API; fall back to the documented switch
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") not in ("0", "false", "False")


def iusp_prefers_lowrank(t_teacher: int | tf.Tensor, t_student: int | tf.Tensor,
                         d_teacher: int | tf.Tensor, d_student: int | tf.Tensor,
                         form: str = DEFAULT_IUSP_FORM) -> bool | tf.Tensor:
    """The ``implementation="auto"`` rule of :func:`iusp_loss`: is the low-rank form faster?

    Predicted forward + backward CPU microseconds at batch 16 (float32 features) of each
    implementation. The reference builds the same two ``T × T`` maps in every ``form``::

        reference  = 470 + 5.0e-4·T_t²·D_t + 0.057·(T_t² + T_s²)

    The low-rank path's multiply-adds ``F`` depend on the form, and it has more (small) ops::

        paper             F = T_t·(D_t² + D_t·D_s + 4·D_s²) + 4·T_s·D_s²
        cosine, centered  F = T_t·D_t² + 2·T_s·D_t·D_s + 3·T_s·D_s²
        lowrank = 680 + 1.7e-4·F + 0.087·(T_t·D_t + T_s·D_s)   (cosine, centered)
        lowrank = 940 + 1.8e-4·F + 0.12·(T_t·D_t + T_s·D_s)    (paper)

    The coefficients were fitted to CPU timings; where the rule picks well and what a miss
    costs: ``docs/performance.md`` (the ``implementation="auto"`` cost model). The low-rank
    path is chosen only when both layers have fewer features than frames (``D_t < T_t`` and
    ``D_s < T_s``; otherwise nothing is low rank).

    Returns a Python bool for Python ints, else a boolean tensor (for ``tf.cond``).

    Raises:
        ValueError: an unknown ``form``.
    """
    _check_form(form, "iusp_prefers_lowrank")
    dims = (t_teacher, t_student, d_teacher, d_student)

    def costs(t_t, t_s, d_t, d_s):
        if form == "paper":
            flops = t_t * (d_t * d_t + d_t * d_s + 4 * d_s * d_s) + 4 * t_s * d_s * d_s
            lowrank = 940.0 + 1.8e-4 * flops + 0.12 * (t_t * d_t + t_s * d_s)
        else:
            flops = t_t * d_t * d_t + 2 * t_s * d_t * d_s + 3 * t_s * d_s * d_s
            lowrank = 680.0 + 1.7e-4 * flops + 0.087 * (t_t * d_t + t_s * d_s)
        reference = 470.0 + 5.0e-4 * t_t * t_t * d_t + 0.057 * (t_t * t_t + t_s * t_s)
        return lowrank, reference

    if all(isinstance(v, numbers.Integral) for v in dims):
        t_t, t_s, d_t, d_s = (float(v) for v in dims)
        lowrank, reference = costs(t_t, t_s, d_t, d_s)
        return bool(d_t < t_t and d_s < t_s and lowrank < reference)
    t_t, t_s, d_t, d_s = (tf.cast(v, tf.float64) for v in dims)
    lowrank, reference = costs(t_t, t_s, d_t, d_s)
    return tf.logical_and(tf.logical_and(d_t < t_t, d_s < t_s), lowrank < reference)


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
            the shapes are static and with ``tf.cond`` otherwise. In float32 the reference is
            within ~4e-7 and lowrank within ~3e-6 of the reference evaluated in float64 on
            typical features (tested to 1e-4, values and gradients); for nearly identical
            teacher and student maps (losses ~1e-8) rounding the inputs to float32 alone moves
            either by up to ~2e-5.

    Measured forward + backward, default form, batch 32, ``D_t = 128``, ``T_s = T_t/2``,
    2-core x86 CPU shared with other jobs, oneDNN on (``bench_loss`` of ``benchmarks/run.py``
    at its full sizes; median process CPU milliseconds, reference / lowrank)::

        T_t     D_s = 12     D_s = 32     D_s = 64
        250     18 / 8       20 / 11      19 / 12
        500     74 / 15      69 / 17      70 / 19
        1000   260 / 27     265 / 31     279 / 42

    ``auto`` picks lowrank for all of these.

    Raises:
        ValueError: rank < 3, different batch sizes, an unknown ``implementation`` or ``form``.
    """
    if implementation not in IUSP_IMPLEMENTATIONS:
        raise ValueError(f"iusp_loss: implementation={implementation!r}; expected one of "
                         f"{list(IUSP_IMPLEMENTATIONS)}")
    _check_form(form, "iusp_loss")
    teacher, student = _iusp_inputs(teacher_feats, student_feats, "iusp_loss")
    if implementation == "reference":
        return _iusp_reference(teacher, student, form)
    if implementation == "lowrank":
        return _iusp_lowrank(teacher, student, form)
    lowrank = iusp_prefers_lowrank(_dim(teacher, 1), _dim(student, 1), _feature_size(teacher),
                                   _feature_size(student), form=form)
    if isinstance(lowrank, bool):
        return (_iusp_lowrank if lowrank else _iusp_reference)(teacher, student, form)
    return tf.cond(lowrank, lambda: _iusp_lowrank(teacher, student, form),
                   lambda: _iusp_reference(teacher, student, form))
