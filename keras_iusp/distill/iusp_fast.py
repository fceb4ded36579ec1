"""The exact low-rank evaluation of the IUSP loss, and the cost model that picks it.

Every IUSP form's ``T × T`` map is a product of two ``T × D`` factors and bilinear resizing is a
sparse linear map ``R`` on each axis, so the squared Frobenius distance of teacher and resized
student maps expands into ``D × D`` products: the same value in ``O(T·D²)`` time and ``O(T·D)``
memory (:func:`iusp_lowrank`, called by :func:`keras_iusp.distill.losses.iusp_loss` and
:func:`~keras_iusp.distill.losses.iusp_loss_lowrank`, which validate the inputs).

A semi-public module: the building blocks below (the resize operators and their adjoints, the
expansion terms of each form, the float32 guard, the cost model) are tested one by one
(``tests/test_iusp_fast.py``) and measured by ``benchmarks/``; user code calls the losses.
How fast and how accurate, measured: ``docs/performance.md``.
"""

from __future__ import annotations

import functools
import numbers
import os

import numpy as np
import tensorflow as tf

from keras_iusp.distill.frames import (
    DEFAULT_IUSP_FORM,
    NORM_EPS,
    as_frames,
    check_form,
    dim,
    unit_frames,
)


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
    lower, upper, lerp = resize_taps_np(int(in_size), int(out_size))
    rows = np.arange(out_size)
    matrix = np.zeros((out_size, in_size), np.float64)
    np.add.at(matrix, (rows, lower), 1.0 - lerp)
    np.add.at(matrix, (rows, upper), lerp)
    return matrix


def resize_taps_np(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy twin of :func:`resize_taps` (float32 arithmetic, like the TF kernel)."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(src).astype(np.int64), in_size - 1)
    return lower, upper, (src - floor).astype(np.float64)


def resize_taps(in_size: int | tf.Tensor, out_size: int | tf.Tensor
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


def resize_frames(x: tf.Tensor, taps: tuple[tf.Tensor, tf.Tensor, tf.Tensor]) -> tf.Tensor:
    """``R @ x`` along axis 1 of ``[B, T_in, D]`` in ``O(T·D)``: two gathers and a lerp."""
    lower, upper, lerp = taps
    w = tf.cast(lerp, x.dtype)[None, :, None]
    return tf.gather(x, lower, axis=1) * (1.0 - w) + tf.gather(x, upper, axis=1) * w


def resize_adjoint(x: tf.Tensor, taps: tuple[tf.Tensor, tf.Tensor, tf.Tensor],
                    in_size: int | tf.Tensor) -> tf.Tensor:
    """``Rᵀ @ x`` along axis 1, ``[B, T_out, D] -> [B, T_in, D]``.

    Applied to the teacher's frames, so the student-side products of the low-rank forms run at
    the student's frame count and their gradients never pass through a gather. With static sizes
    it is :func:`resize_adjoint_windows` (faster, ``docs/performance.md``); otherwise two
    segment sums.
    """
    out_size = x.shape[1]
    if isinstance(in_size, numbers.Integral) and out_size is not None:
        return resize_adjoint_windows(x, int(in_size), int(out_size))
    lower, upper, lerp = taps
    w = tf.cast(lerp, x.dtype)[:, None, None]
    rows = tf.transpose(x, [1, 0, 2])  # [T_out, B, D]: segment sums work on the first axis
    out = (tf.math.unsorted_segment_sum(rows * (1.0 - w), lower, in_size)
           + tf.math.unsorted_segment_sum(rows * w, upper, in_size))
    return tf.transpose(out, [1, 0, 2])


@functools.lru_cache(maxsize=64)
def adjoint_windows(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``idx [K, in]`` and weights ``w [K, in]`` with ``(Rᵀx)_j = Σ_k w[k, j]·x[idx[k, j]]``.

    Column ``j`` of ``R`` is non-zero on a contiguous range of outputs (the outputs whose two
    taps include input ``j``); ``K`` is the longest range (4 for a 2x upsampling) and shorter
    ranges are padded with weight 0 on a valid row.
    """
    r = bilinear_resize_matrix(in_size, out_size)  # [out, in]
    nonzero = r != 0
    # Downsampling by more than 2x skips some inputs: their column is all zero. Without this,
    # argmax would give such a column the range 0..out-1 and K would become out_size (one
    # gather per output row: the slow case of docs/performance.md).
    used = nonzero.any(axis=0)
    first = np.where(used, np.argmax(nonzero, axis=0), 0)
    last = np.where(used, out_size - 1 - np.argmax(nonzero[::-1], axis=0), 0)
    width = int((last - first).max()) + 1
    rows = first[None, :] + np.arange(width)[:, None]
    idx = np.minimum(rows, out_size - 1)
    w = np.where(rows <= last[None, :], r[idx, np.arange(in_size)[None, :]], 0.0)
    return idx.astype(np.int32), w


def resize_adjoint_windows(x: tf.Tensor, in_size: int, out_size: int) -> tf.Tensor:
    """``Rᵀ @ x`` for static sizes as ``K`` row gathers weighted per output row.

    Each gather copies whole contiguous ``D``-rows and the weights broadcast along ``D``, so this
    avoids the segment sums' transposes and scattered adds (a large share of the loss's time
    when profiled, ``docs/performance.md``).
    """
    idx, w = adjoint_windows(in_size, out_size)
    out = None
    for k in range(idx.shape[0]):
        term = tf.gather(x, idx[k], axis=1) * tf.constant(w[k][None, :, None], x.dtype)
        out = term if out is None else out + term
    return out


def resize_gram_operator(taps: tuple[tf.Tensor, tf.Tensor, tf.Tensor], in_size: int | tf.Tensor,
                          dtype: tf.DType):
    """``x ↦ RᵀR x`` along axis 1 of ``[B, T_in, D]`` without gathers: ``RᵀR`` is tridiagonal.

    Every row of ``R`` has its two taps on adjacent inputs (or one input with weight 1), so
    ``RᵀR = diag(α) + diag(β, 1) + diag(β, -1)`` with ``α_j = Σ_o R[o, j]²`` and
    ``β_j = Σ_o R[o, j]·R[o, j+1]``; both are built from the taps (no gradient flows there).
    Then ``(R x)ᵀ(R y) = xᵀ (RᵀR y)``, so the resized student Gram costs ``O(T_in·D²)``.

    ``RᵀR`` is symmetric, so the gradient of ``x ↦ RᵀR x`` is the same map applied to the
    upstream gradient: a custom gradient does exactly that instead of differentiating the
    slices (TensorFlow's ``StridedSliceGrad`` was a large share of the loss's time when
    profiled, ``docs/performance.md``).
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


def normalized_rows(q: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """``(D⁻¹ Q, ||D⁻¹ Q Qᵀ||²_F)`` with ``D`` the row norms of ``Q Qᵀ``, without forming it.

    Row ``i`` of ``Q Qᵀ`` has squared norm ``q_iᵀ (QᵀQ) q_i``; the scale is
    ``rsqrt(max(norm², NORM_EPS))`` exactly as ``tf.math.l2_normalize`` in
    :func:`keras_iusp.distill.losses.self_similarity`,
    and the normalised map's squared Frobenius norm is ``Σ_i norm²_i · scale²_i`` (about the
    number of non-zero frames).
    """
    gram = tf.matmul(q, q, transpose_a=True)  # [B, D, D]
    norm2 = tf.reduce_sum(tf.matmul(q, gram) * q, axis=-1)  # [B, T]
    scale = tf.math.rsqrt(tf.maximum(norm2, tf.cast(NORM_EPS, q.dtype)))
    total = tf.reduce_sum(norm2 * tf.square(scale), axis=-1)  # [B]
    return q * scale[..., None], total


def paper_terms(teacher: tf.Tensor, student: tf.Tensor, dtype: tf.DType
                 ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, None]:
    """The paper form's three expansion terms ``(||A||², Σ cross, Σ student)``, each ``[B]``.

    ``A = U_t Q_tᵀ`` (``U = D⁻¹ Q``) and ``B = R U_s (R Q_s)ᵀ``, so
    ``||A - B||² = ||A||² - 2 Σ ((RᵀU_t)ᵀ U_s) ∘ ((RᵀQ_t)ᵀ Q_s) + Σ (U_sᵀ M U_s) ∘ (Q_sᵀ M Q_s)``
    with ``M = RᵀR`` (tridiagonal). Everything is formed in ``dtype``.
    """
    t_t, t_s = dim(teacher, 1), dim(student, 1)
    q_t = tf.cast(as_frames(teacher), dtype)
    q_s = tf.cast(as_frames(student), dtype)
    u_t, teacher_term = normalized_rows(q_t)
    u_s, _ = normalized_rows(q_s)
    if isinstance(t_t, int) and isinstance(t_s, int) and t_t == t_s:
        # Like resize_similarity: skipped when the sizes statically agree (then R = I anyway).
        w_u, w_q, m_u, m_q = u_t, q_t, u_s, q_s
    else:
        taps = resize_taps(t_s, t_t)
        w_u, w_q = resize_adjoint(u_t, taps, t_s), resize_adjoint(q_t, taps, t_s)
        gram_op = resize_gram_operator(taps, t_s, dtype)
        m_u, m_q = gram_op(u_s), gram_op(q_s)
    cross = tf.reduce_sum(tf.matmul(w_u, u_s, transpose_a=True)
                          * tf.matmul(w_q, q_s, transpose_a=True), axis=[1, 2])
    student_term = tf.reduce_sum(tf.matmul(u_s, m_u, transpose_a=True)
                                 * tf.matmul(q_s, m_q, transpose_a=True), axis=[1, 2])
    return teacher_term, cross, student_term, None


def unit_terms(teacher: tf.Tensor, student: tf.Tensor, center: bool, dtype: tf.DType
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
    t_t, t_s = dim(teacher, 1), dim(student, 1)
    u_t = unit_frames(tf.cast(as_frames(teacher), dtype), center)
    u_s = unit_frames(tf.cast(as_frames(student), dtype), center)
    n = tf.cast(t_t, dtype)
    same = isinstance(t_t, int) and isinstance(t_s, int) and t_t == t_s
    taps = None if same else resize_taps(t_s, t_t)
    # r = Rᵀ1: how much of the resized map each student frame feeds (1 each when R = I)
    if same:
        r = tf.ones([1, t_s, 1], dtype)
    elif isinstance(t_t, int) and isinstance(t_s, int):
        r = tf.constant(bilinear_resize_matrix(t_s, t_t).sum(axis=0)[None, :, None], dtype)
    else:
        r = resize_adjoint(tf.ones([1, t_t, 1], dtype), taps, t_s)
    a = tf.reduce_sum(u_t, axis=1, keepdims=True)  # [B, 1, D_t]
    b = tf.reduce_sum(u_s * r, axis=1, keepdims=True)  # [B, 1, D_s]
    c_t, c_s = u_t - a / n, u_s - b / n
    teacher_term = tf.reduce_sum(tf.square(tf.matmul(c_t, c_t, transpose_a=True)), axis=[1, 2])
    if same:
        w_t, m_s = c_t, c_s
    else:
        w_t = resize_adjoint(c_t, taps, t_s)
        m_s = resize_gram_operator(taps, t_s, dtype)(c_s)
    cross = tf.reduce_sum(tf.square(tf.matmul(w_t, c_s, transpose_a=True)), axis=[1, 2])
    student_term = tf.reduce_sum(tf.square(tf.matmul(c_s, m_s, transpose_a=True)), axis=[1, 2])

    # The rest, 2||Px||²/n + (1ᵀx)²/n², from the row sums x = A1 - B1 = U_t a - R U_s b. x is
    # itself a small difference of large row sums (nearly identical maps), so it is formed in
    # float64 from the same unit frames; O(T·D), the sums as matrix products (faster than a
    # float64 reduction over the time axis, docs/performance.md).
    u_t64, u_s64 = tf.cast(u_t, tf.float64), tf.cast(u_s, tf.float64)
    a64 = tf.matmul(tf.ones_like(u_t64[:, :, :1]), u_t64, transpose_a=True)  # [B, 1, D_t]
    b64 = tf.matmul(tf.cast(r, tf.float64) * tf.ones_like(u_s64[:, :, :1]), u_s64,
                    transpose_a=True)  # [B, 1, D_s]
    x = tf.linalg.matvec(u_t64, a64[:, 0])  # [B, T_t]
    x_s = tf.linalg.matvec(u_s64, b64[:, 0])  # [B, T_s]
    x = x - (x_s if same else resize_frames(x_s[..., None], taps)[..., 0])
    n64 = tf.cast(t_t, tf.float64)
    total = tf.reduce_sum(x, axis=1)
    centred = x - total[:, None] / n64
    rest = 2.0 * tf.reduce_sum(tf.square(centred), axis=1) / n64 + tf.square(total / n64)
    return teacher_term, cross, student_term, rest


#: The float32 evaluation of the low-rank expansion is kept when its predicted rounding error is
#: at most this fraction of the loss (else the batch is recomputed in float64); the prediction
#: (:data:`F32_ERROR`) is pessimistic, and how far the kept values are from float64 is in
#: ``docs/performance.md``.
LOWRANK_FLOAT32_RTOL = 5e-5

#: Bound on the rounding error of the float32 expansion per unit of ``|t| + 2|c| + |s|`` (its
#: three terms), before the ``√max(1, T_t/256)`` growth factor, per form (``u = 2⁻²⁴``): a margin
#: above the largest error measured against the float64 evaluation (``docs/performance.md``).
F32_ERROR = {"paper": 8.0 * 2.0**-24, "unit": 16.0 * 2.0**-24}


def lowrank_squared(terms, teacher: tf.Tensor, t_t: int | tf.Tensor, term_error: float
                     ) -> tf.Tensor:
    """``T_t²·loss``, ``[B]``, from ``terms(dtype) -> (t, c, s, rest)``: ``t - 2c + s (+ rest)``.

    ``t``, ``c`` and ``s`` are formed in ``dtype`` and may be much larger than the loss, which
    is their small difference, so their rounding errors can swamp it (on nearly identical maps,
    ``docs/performance.md``); ``rest`` (float64, or None) is
    accurate by construction. Float64 inputs are computed in float64. Float32 inputs are first
    computed in float32 (several times cheaper on CPU); that result is kept when its predicted error
    ``term_error·√max(1, T_t/256)·(|t| + 2|c| + |s|)`` (``term_error`` from ``F32_ERROR``) is
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


def _lowrank_paper(teacher: tf.Tensor, student: tf.Tensor) -> tf.Tensor:
    """Paper-form IUSP from the factors of the maps, in ``O(T·D²)`` time and ``O(T·D)`` memory.

    See :func:`paper_terms` for the expansion and :func:`lowrank_squared` for the precision:
    the three terms are each about ``T`` while their sum is ``T²·loss``, often far smaller.
    """
    t_t = dim(teacher, 1)
    squared = lowrank_squared(lambda dtype: paper_terms(teacher, student, dtype), teacher, t_t,
                               F32_ERROR["paper"])
    n = tf.cast(t_t, squared.dtype)
    return tf.cast(squared / (n * n), teacher.dtype)


def _lowrank_unit(teacher: tf.Tensor, student: tf.Tensor, center: bool) -> tf.Tensor:
    """Cosine-form IUSP (``center`` = ``"centered"``) from unit frames, ``O(T·D²)``.

    See :func:`unit_terms` for the expansion and :func:`lowrank_squared` for the precision:
    the terms are about ``T²`` and may nearly cancel.
    """
    t_t = dim(teacher, 1)
    squared = lowrank_squared(lambda dtype: unit_terms(teacher, student, center, dtype),
                               teacher, t_t, F32_ERROR["unit"])
    n = tf.cast(t_t, squared.dtype)
    return tf.cast(squared / (n * n), teacher.dtype)


def iusp_lowrank(teacher: tf.Tensor, student: tf.Tensor, form: str = "paper") -> tf.Tensor:
    """The low-rank evaluation of :func:`iusp_loss` for ``form``."""
    if form == "paper":
        return _lowrank_paper(teacher, student)
    return _lowrank_unit(teacher, student, center=form == "centered")




@functools.lru_cache(maxsize=1)
def uses_onednn() -> bool:
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
    implementation: the reference's grows with ``T_t²·D_t`` (the two ``T × T`` maps, the same in
    every form), the low-rank path's with its multiply-adds (``T·D²`` terms, per form) plus a
    larger fixed cost (more, smaller ops). The formulas, their coefficients fitted to CPU
    timings, where the rule picks well and what a miss costs: ``docs/performance.md`` (the
    ``implementation="auto"`` cost model). The low-rank path is chosen only when both layers
    have fewer features than frames (``D_t < T_t`` and ``D_s < T_s``; otherwise nothing is low
    rank).

    Returns a Python bool for Python ints, else a boolean tensor (for ``tf.cond``).

    Raises:
        ValueError: an unknown ``form``.
    """
    check_form(form, "iusp_prefers_lowrank")
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
